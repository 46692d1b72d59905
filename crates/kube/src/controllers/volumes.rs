//! Persistent volumes: the binder (kube-controller-manager's persistentvolume controller) and
//! the node's `local-path` provisioner (the StorageClass made at start, marked default).
//!
//! - A claim without a class gets the default one (as the DefaultStorageClass admission and
//!   the retroactive assignment do); a claim is bound to the smallest Available volume of its
//!   class whose access modes, volume mode, capacity and the claim's selector fit, else — for
//!   the `berth.dev/local-path` class — a volume is made for it: a directory under
//!   `ROOT/kube/volumes/<pv>` on this node, a `hostPath` PersistentVolume pre-bound to the
//!   claim, with node affinity to the node.
//! - A volume whose claim is gone is Released; `persistentVolumeReclaimPolicy: Delete` then
//!   removes it (and a provisioned volume's directory), `Retain` keeps it.
//! - `kubernetes.io/pvc-protection`: a claim in use by a pod is not removed until no pod uses
//!   it.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use super::runtime::{split_key, str_at, Action, Client, Queue};
use super::Informers;
use crate::apiserver::select::selects;
use crate::apiserver::status::ApiResult;
use crate::quantity;

/// The provisioner of the `local-path` class.
pub const PROVISIONER: &str = "berth.dev/local-path";
const PROTECTION: &str = "kubernetes.io/pvc-protection";
const DEFAULT_CLASS: &str = crate::apiserver::storage::DEFAULT_CLASS;

fn storage(o: &Value, at: &str) -> i64 {
    o.pointer(at).and_then(Value::as_str).and_then(quantity::bytes).unwrap_or(0)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

/// Whether volume `pv` can hold claim `pvc`.
pub fn fits(pv: &Value, pvc: &Value) -> bool {
    let class = |o: &Value, p: &str| str_at(o, p).to_string();
    let modes = strings(&pv["spec"]["accessModes"]);
    let mode = |o: &Value, p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("Filesystem").to_string();
    class(pv, "/spec/storageClassName") == class(pvc, "/spec/storageClassName")
        && strings(&pvc["spec"]["accessModes"]).iter().all(|m| modes.contains(m))
        && mode(pv, "/spec/volumeMode") == mode(pvc, "/spec/volumeMode")
        && storage(pv, "/spec/capacity/storage") >= storage(pvc, "/spec/resources/requests/storage")
        && pvc
            .pointer("/spec/selector")
            .filter(|s| !s.is_null())
            .is_none_or(|s| selects(s, pv.pointer("/metadata/labels")))
}

/// The controller.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) claims: Queue,
    /// Where provisioned volumes live (`ROOT/kube/volumes`).
    pub(super) dir: PathBuf,
    /// This node (provisioned volumes' node affinity).
    pub(super) node: String,
}

impl Controller {
    /// The default StorageClass's name, if any.
    fn default_class(&self) -> Option<String> {
        self.informers
            .storage_classes
            .list("")
            .into_iter()
            .find(|c| c.pointer("/metadata/annotations").and_then(|a| a.get(DEFAULT_CLASS)) == Some(&json!("true")))
            .map(|c| str_at(&c, "/metadata/name").to_string())
    }

    /// Queue the claims a pod uses (protection waits for pods to go).
    pub fn pod_changed(&self, pod: &Value) {
        let ns = str_at(pod, "/metadata/namespace");
        for v in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
            if let Some(c) = v.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str) {
                self.claims.add(format!("{ns}/{c}"));
            }
        }
    }

    fn in_use(&self, ns: &str, name: &str) -> bool {
        self.informers.pods.list(ns).iter().any(|p| {
            !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed")
                && p.pointer("/spec/volumes").and_then(Value::as_array).is_some_and(|vs| {
                    vs.iter()
                        .any(|v| v.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str) == Some(name))
                })
        })
    }

    /// Bind one claim (provisioning a volume for it when its class is ours).
    pub async fn reconcile_claim(&self, key: String) -> ApiResult<Action> {
        let (ns, name) = split_key(&key);
        let Some(pvc) = self.informers.pvcs.get(&key) else {
            return Ok(Action::Done);
        };
        let mut pvc = (*pvc).clone();
        let finalizers = strings(&pvc["metadata"]["finalizers"]);
        if pvc.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
            if finalizers.iter().any(|f| f == PROTECTION) && !self.in_use(ns, name) {
                let rest: Vec<String> = finalizers.into_iter().filter(|f| f != PROTECTION).collect();
                pvc["metadata"]["finalizers"] = json!(rest);
                if rest_is_empty(&pvc) {
                    pvc["metadata"].as_object_mut().map(|m| m.remove("finalizers"));
                }
                self.client.update(super::pvcs(), &pvc).await?;
            }
            return Ok(Action::Done);
        }
        if !finalizers.iter().any(|f| f == PROTECTION) || pvc.pointer("/spec/storageClassName").is_none_or(Value::is_null) {
            if !finalizers.iter().any(|f| f == PROTECTION) {
                let mut f = finalizers.clone();
                f.push(PROTECTION.into());
                pvc["metadata"]["finalizers"] = json!(f);
            }
            if pvc.pointer("/spec/storageClassName").is_none_or(Value::is_null) {
                if let Some(c) = self.default_class() {
                    pvc["spec"]["storageClassName"] = json!(c);
                }
            }
            self.client.update(super::pvcs(), &pvc).await?;
            return Ok(Action::Done);
        }
        if str_at(&pvc, "/status/phase") == "Bound" {
            let vol = str_at(&pvc, "/spec/volumeName");
            if self.informers.pvs.get(vol).is_none() {
                pvc["status"]["phase"] = json!("Lost");
                self.client.update_status(super::pvcs(), &pvc).await?;
            }
            return Ok(Action::Done);
        }
        // A volume named by the claim, one pre-bound to it, or the smallest that fits.
        let uid = pvc["metadata"]["uid"].clone();
        let wanted = str_at(&pvc, "/spec/volumeName").to_string();
        let mut candidates: Vec<Arc<Value>> = self
            .informers
            .pvs
            .list("")
            .into_iter()
            .filter(|pv| {
                let claim = &pv["spec"]["claimRef"];
                let free = claim.is_null()
                    || (claim["namespace"] == ns && claim["name"] == name && (claim["uid"].is_null() || claim["uid"] == uid));
                free && pv.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null)
                    && matches!(str_at(pv, "/status/phase"), "Available" | "Pending" | "Bound" | "")
                    && (wanted.is_empty() || str_at(pv, "/metadata/name") == wanted)
                    && fits(pv, &pvc)
            })
            .collect();
        candidates.sort_by_key(|pv| {
            let pre_bound = !pv["spec"]["claimRef"].is_null();
            (!pre_bound, storage(pv, "/spec/capacity/storage"))
        });
        let pv = match candidates.into_iter().next() {
            Some(pv) => (*pv).clone(),
            None => {
                let class = str_at(&pvc, "/spec/storageClassName").to_string();
                let ours = self
                    .informers
                    .storage_classes
                    .get(&class)
                    .is_some_and(|c| str_at(&c, "/provisioner") == PROVISIONER);
                if !ours || !wanted.is_empty() {
                    let msg = if class.is_empty() {
                        "no persistent volumes available for this claim and no storage class is set".to_string()
                    } else {
                        format!("storageclass.storage.k8s.io \"{class}\" not found or not provisioned here")
                    };
                    super::event(&self.client, &pvc, "Normal", "FailedBinding", &msg).await;
                    return Ok(Action::Done);
                }
                self.provision(&pvc, &class).await?
            }
        };
        self.bind(pv, pvc).await
    }

    /// A directory and a PersistentVolume for `pvc`, pre-bound to it.
    async fn provision(&self, pvc: &Value, class: &str) -> ApiResult<Value> {
        let name = format!("pvc-{}", str_at(pvc, "/metadata/uid"));
        let path = self.dir.join(&name);
        std::fs::create_dir_all(&path).map_err(|e| crate::apiserver::status::ApiError::internal(format!("{}: {e}", path.display())))?;
        // Any pod user may write its volume (local-path's 0777); the parent stays private.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777));
        let reclaim = self
            .informers
            .storage_classes
            .get(class)
            .and_then(|c| c["reclaimPolicy"].as_str().map(String::from))
            .unwrap_or_else(|| "Delete".into());
        let pv = json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": pvc.pointer("/spec/resources/requests/storage").cloned().unwrap_or(json!("1Gi"))},
                "accessModes": pvc["spec"]["accessModes"], "volumeMode": pvc["spec"]["volumeMode"],
                "persistentVolumeReclaimPolicy": reclaim, "storageClassName": class,
                "hostPath": {"path": path.display().to_string(), "type": "DirectoryOrCreate"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": pvc["metadata"]["namespace"], "name": pvc["metadata"]["name"], "uid": pvc["metadata"]["uid"]},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [self.node]}]}]}},
            },
        });
        let made = match self.client.create(super::pvs(), "", pv).await {
            Ok(v) => v,
            Err(e) if e.code == 409 => self.informers.pvs.get(&name).map(|v| (*v).clone()).ok_or(e)?,
            Err(e) => return Err(e),
        };
        let msg = format!("Successfully provisioned volume {name}");
        super::event(&self.client, pvc, "Normal", "ProvisioningSucceeded", &msg).await;
        Ok(made)
    }

    async fn bind(&self, mut pv: Value, mut pvc: Value) -> ApiResult<Action> {
        let pv_name = str_at(&pv, "/metadata/name").to_string();
        if pv["spec"]["claimRef"]["uid"] != pvc["metadata"]["uid"] {
            pv["spec"]["claimRef"] = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": pvc["metadata"]["namespace"], "name": pvc["metadata"]["name"], "uid": pvc["metadata"]["uid"], "resourceVersion": pvc["metadata"]["resourceVersion"]});
            if !pv["metadata"]["annotations"].is_object() {
                pv["metadata"]["annotations"] = json!({});
            }
            pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            pv = self.client.update(super::pvs(), &pv).await?;
        }
        if str_at(&pv, "/status/phase") != "Bound" {
            pv["status"] = json!({"phase": "Bound"});
            self.client.update_status(super::pvs(), &pv).await?;
        }
        if str_at(&pvc, "/spec/volumeName") != pv_name {
            pvc["spec"]["volumeName"] = json!(pv_name);
            if !pvc["metadata"]["annotations"].is_object() {
                pvc["metadata"]["annotations"] = json!({});
            }
            pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
            pvc["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            pvc = self.client.update(super::pvcs(), &pvc).await?;
        }
        pvc["status"] = json!({"phase": "Bound", "accessModes": pv["spec"]["accessModes"], "capacity": pv["spec"]["capacity"]});
        self.client.update_status(super::pvcs(), &pvc).await?;
        Ok(Action::Done)
    }

    /// Keep one volume's phase: Available, Bound, or Released and reclaimed.
    pub async fn reconcile_volume(&self, key: String) -> ApiResult<Action> {
        let Some(pv) = self.informers.pvs.get(&key) else {
            return Ok(Action::Done);
        };
        let mut pv = (*pv).clone();
        let claim = pv["spec"]["claimRef"].clone();
        if claim.is_null() {
            if str_at(&pv, "/status/phase") != "Available" {
                pv["status"] = json!({"phase": "Available"});
                self.client.update_status(super::pvs(), &pv).await?;
            }
            // A claim may be waiting for it.
            for c in self.informers.pvcs.list("") {
                if str_at(&c, "/status/phase") == "Pending" {
                    self.claims.add(super::runtime::key_of(&c));
                }
            }
            return Ok(Action::Done);
        }
        let ckey = format!(
            "{}/{}",
            claim["namespace"].as_str().unwrap_or(""),
            claim["name"].as_str().unwrap_or("")
        );
        let pvc = self.informers.pvcs.get(&ckey);
        let gone = match &pvc {
            None => !claim["uid"].is_null(),
            Some(c) => !claim["uid"].is_null() && c["metadata"]["uid"] != claim["uid"],
        };
        if !gone {
            if pvc.is_some() {
                self.claims.add(ckey);
            }
            return Ok(Action::Done);
        }
        match str_at(&pv, "/spec/persistentVolumeReclaimPolicy") {
            "Delete" => {
                let provisioned = pv
                    .pointer("/metadata/annotations/pv.kubernetes.io~1provisioned-by")
                    .and_then(Value::as_str)
                    == Some(PROVISIONER);
                if provisioned {
                    let path = PathBuf::from(str_at(&pv, "/spec/hostPath/path"));
                    // Only what this provisioner made, under its own directory.
                    if path.parent() == Some(self.dir.as_path()) {
                        if let Err(e) = std::fs::remove_dir_all(&path) {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                let msg = format!("Error deleting volume {}: {e}", path.display());
                                super::event(&self.client, &pv, "Warning", "VolumeFailedDelete", &msg).await;
                                return Ok(Action::After(std::time::Duration::from_secs(10)));
                            }
                        }
                    }
                }
                self.client
                    .delete(super::pvs(), "", str_at(&pv, "/metadata/name"), str_at(&pv, "/metadata/uid"))
                    .await?;
            }
            _ => {
                if str_at(&pv, "/status/phase") != "Released" {
                    pv["status"] = json!({"phase": "Released"});
                    self.client.update_status(super::pvs(), &pv).await?;
                }
            }
        }
        Ok(Action::Done)
    }
}

fn rest_is_empty(pvc: &Value) -> bool {
    pvc["metadata"]["finalizers"].as_array().is_some_and(|f| f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_fit_claims_by_class_modes_and_size() {
        let pv = json!({"metadata": {"labels": {"tier": "fast"}}, "spec": {"storageClassName": "", "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "capacity": {"storage": "2Gi"}}});
        let pvc = |size: &str, modes: Value| json!({"spec": {"storageClassName": "", "accessModes": modes, "resources": {"requests": {"storage": size}}}});
        assert!(fits(&pv, &pvc("1Gi", json!(["ReadWriteOnce"]))));
        assert!(!fits(&pv, &pvc("3Gi", json!(["ReadWriteOnce"]))));
        assert!(!fits(&pv, &pvc("1Gi", json!(["ReadWriteMany"]))));
        let mut sel = pvc("1Gi", json!(["ReadWriteOnce"]));
        sel["spec"]["selector"] = json!({"matchLabels": {"tier": "slow"}});
        assert!(!fits(&pv, &sel));
        let mut other = pvc("1Gi", json!(["ReadWriteOnce"]));
        other["spec"]["storageClassName"] = json!("local-path");
        assert!(!fits(&pv, &other));
    }
}
