//! The StatefulSet and DaemonSet controllers.
//!
//! StatefulSets: pods with stable names (`<set>-<ordinal>`), hostnames under the governing
//! Service (`serviceName`), and a claim per volumeClaimTemplate per ordinal
//! (`<template>-<set>-<ordinal>`, kept when pods go unless the retention policy says Delete);
//! `OrderedReady` starts ordinal N only once 0…N-1 are Running and Ready and removes from the
//! highest down, one at a time; `Parallel` does all at once. Each template is a
//! ControllerRevision (`<set>-<hash>`, the pods' `controller-revision-hash`); RollingUpdate
//! replaces pods from the highest ordinal down to the partition, one at a time, each once the
//! previous is Ready again; OnDelete waits for pods to be deleted. `kubectl rollout
//! status|history|undo` read and write these as on a real cluster.
//!
//! DaemonSets: one pod per node that fits (node selector, taints), bound to it by node affinity;
//! RollingUpdate replaces an old pod once the others are available; OnDelete waits.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::deployment::template_hash;
use super::replicaset::{available, is_active, ready_since};
use super::runtime::{controller_of, controller_ref, int_at, owner_key, split_key, str_at, Action, Client, Queue};
use super::Informers;
use crate::apiserver::status::ApiResult;

const REVISION_HASH: &str = "controller-revision-hash";

fn revisions_of(informers: &Informers, owner: &Value) -> Vec<Arc<Value>> {
    let ns = str_at(owner, "/metadata/namespace");
    let mut r: Vec<Arc<Value>> = informers
        .revisions
        .list(ns)
        .into_iter()
        .filter(|c| controller_of(c).is_some_and(|r| r["uid"] == owner["metadata"]["uid"]))
        .collect();
    r.sort_by_key(|c| int_at(c, "/revision", 0));
    r
}

/// The ControllerRevision of `owner`'s current template: found (by its data) or made, with
/// the next revision number; its name.
async fn ensure_revision(client: &Client, informers: &Informers, owner: &Value) -> ApiResult<(String, i64)> {
    let ns = str_at(owner, "/metadata/namespace");
    let template = owner["spec"]["template"].clone();
    let mut t = template.clone();
    t["$patch"] = json!("replace");
    let data = json!({"spec": {"template": t}});
    let existing = revisions_of(informers, owner);
    let next = existing.last().map_or(1, |c| int_at(c, "/revision", 0) + 1);
    if let Some(c) = existing.iter().find(|c| c["data"] == data) {
        let name = str_at(c, "/metadata/name").to_string();
        let rev = int_at(c, "/revision", 0);
        // A template that came back becomes the newest revision.
        if existing.last().is_some_and(|l| l["metadata"]["name"] != c["metadata"]["name"]) {
            let mut o = (**c).clone();
            o["revision"] = json!(next);
            client.update(super::revisions(), &o).await?;
            return Ok((name, next));
        }
        return Ok((name, rev));
    }
    let hash = template_hash(&template, 0);
    let name = format!("{}-{hash}", str_at(owner, "/metadata/name"));
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[REVISION_HASH] = json!(hash);
    let o = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "ownerReferences": [controller_ref(owner)]},
        "data": data, "revision": next,
    });
    match client.create(super::revisions(), ns, o).await {
        Ok(_) => Ok((name, next)),
        Err(e) if e.code == 409 => Ok((name, next)),
        Err(e) => Err(e),
    }
}

/// Old revisions beyond `revisionHistoryLimit` that no pod still runs go.
async fn prune_revisions(client: &Client, informers: &Informers, owner: &Value, live: &[String]) -> ApiResult<()> {
    let limit = int_at(owner, "/spec/revisionHistoryLimit", 10).max(0) as usize;
    let all = revisions_of(informers, owner);
    let old: Vec<&Arc<Value>> = all
        .iter()
        .filter(|c| !live.iter().any(|l| l == str_at(c, "/metadata/name")))
        .collect();
    if old.len() > limit {
        for c in &old[..old.len() - limit] {
            client
                .delete(
                    super::revisions(),
                    str_at(c, "/metadata/namespace"),
                    str_at(c, "/metadata/name"),
                    str_at(c, "/metadata/uid"),
                )
                .await?;
        }
    }
    Ok(())
}

fn revision_of_pod(pod: &Value) -> &str {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(REVISION_HASH))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn running_and_ready(pod: &Value) -> bool {
    str_at(pod, "/status/phase") == "Running" && ready_since(pod).is_some()
}

/// The StatefulSet controller.
pub struct StatefulSets {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
}

impl StatefulSets {
    /// Queue the StatefulSet a pod belongs to.
    pub fn pod_changed(&self, pod: &Value) {
        if let Some(k) = owner_key(pod, "StatefulSet") {
            self.queue.add(k);
        }
    }

    fn new_pod(&self, sts: &Value, ordinal: i64, revision: &str) -> Value {
        let name = str_at(sts, "/metadata/name");
        let pod_name = format!("{name}-{ordinal}");
        let t = &sts["spec"]["template"];
        let mut meta = t["metadata"].clone();
        if !meta.is_object() {
            meta = json!({});
        }
        if !meta["labels"].is_object() {
            meta["labels"] = json!({});
        }
        let hash = revision.rsplit('-').next().unwrap_or("");
        meta["labels"][REVISION_HASH] = json!(format!("{name}-{hash}"));
        meta["labels"]["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
        meta["labels"]["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
        meta["name"] = json!(pod_name);
        meta["namespace"] = sts["metadata"]["namespace"].clone();
        meta["ownerReferences"] = json!([controller_ref(sts)]);
        let mut spec = t["spec"].clone();
        spec["hostname"] = json!(pod_name);
        if let Some(svc) = sts.pointer("/spec/serviceName").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            spec["subdomain"] = json!(svc);
        }
        // Each claim template is this pod's own claim.
        for ct in sts["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten() {
            let vname = str_at(ct, "/metadata/name");
            if !spec["volumes"].is_array() {
                spec["volumes"] = json!([]);
            }
            let vols = spec["volumes"].as_array_mut().expect("an array");
            vols.retain(|v| v["name"] != vname);
            vols.push(json!({"name": vname, "persistentVolumeClaim": {"claimName": format!("{vname}-{pod_name}")}}));
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    }

    async fn ensure_claims(&self, sts: &Value, ordinal: i64) -> ApiResult<()> {
        let ns = str_at(sts, "/metadata/namespace");
        let name = str_at(sts, "/metadata/name");
        let delete_with_set = str_at(sts, "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted") == "Delete";
        for ct in sts["spec"]["volumeClaimTemplates"].as_array().into_iter().flatten() {
            let claim = format!("{}-{name}-{ordinal}", str_at(ct, "/metadata/name"));
            if self.informers.pvcs.get(&format!("{ns}/{claim}")).is_some() {
                continue;
            }
            let mut meta = ct["metadata"].clone();
            meta["name"] = json!(claim);
            meta["namespace"] = json!(ns);
            let mut labels = meta["labels"].as_object().cloned().unwrap_or_default();
            for (k, v) in sts
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                labels.insert(k.clone(), v.clone());
            }
            meta["labels"] = Value::Object(labels);
            if delete_with_set {
                let mut r = controller_ref(sts);
                r["controller"] = json!(false);
                meta["ownerReferences"] = json!([r]);
            }
            let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": ct["spec"]});
            match self.client.create(super::pvcs(), ns, pvc).await {
                Ok(_) => {
                    let msg = format!("create Claim {claim} Pod {name}-{ordinal} in StatefulSet {name} success");
                    super::event(&self.client, sts, "Normal", "SuccessfulCreate", &msg).await;
                }
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One pass over a StatefulSet: at most one ordered step, the status, look again later.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let (ns, name) = split_key(&key);
        let Some(sts) = self.informers.stateful_sets.get(&key) else {
            return Ok(Action::Done);
        };
        let sts = (*sts).clone();
        if sts.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
            return Ok(Action::Done);
        }
        let (update_rev, _) = ensure_revision(&self.client, &self.informers, &sts).await?;
        let replicas = int_at(&sts, "/spec/replicas", 1).max(0);
        let ordered = str_at(&sts, "/spec/podManagementPolicy") != "Parallel";
        let pods: Vec<Arc<Value>> = self
            .informers
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| controller_of(p).is_some_and(|r| r["uid"] == sts["metadata"]["uid"]))
            .collect();
        let ordinal = |p: &Value| -> Option<i64> { str_at(p, "/metadata/name").strip_prefix(&format!("{name}-"))?.parse().ok() };
        let by_ordinal = |i: i64| pods.iter().find(|p| ordinal(p) == Some(i));
        let mut next = None;
        // 1. Missing ordinals below replicas (in order, or all at once).
        let mut acted = false;
        for i in 0..replicas {
            match by_ordinal(i) {
                None => {
                    self.ensure_claims(&sts, i).await?;
                    let pod = self.new_pod(&sts, i, &update_rev);
                    match self.client.create(super::pods(), ns, pod).await {
                        Ok(_) => {
                            let msg = format!("create Pod {name}-{i} in StatefulSet {name} successful");
                            super::event(&self.client, &sts, "Normal", "SuccessfulCreate", &msg).await;
                        }
                        Err(e) if e.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                    acted = true;
                    if ordered {
                        break;
                    }
                }
                Some(p) if matches!(str_at(p, "/status/phase"), "Failed" | "Succeeded") => {
                    // A finished pod is replaced (same name: deleted first).
                    self.client
                        .delete(super::pods(), ns, str_at(p, "/metadata/name"), str_at(p, "/metadata/uid"))
                        .await?;
                    acted = true;
                    if ordered {
                        break;
                    }
                }
                Some(p) if ordered && !running_and_ready(p) => {
                    acted = true;
                    break;
                }
                Some(_) => {}
            }
        }
        // 2. Ordinals above replicas go, highest first (one at a time when ordered).
        if !acted {
            let mut extra: Vec<&Arc<Value>> = pods.iter().filter(|p| ordinal(p).is_some_and(|i| i >= replicas)).collect();
            extra.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
            for p in extra {
                if p.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
                    acted = ordered;
                } else {
                    self.client
                        .delete(super::pods(), ns, str_at(p, "/metadata/name"), str_at(p, "/metadata/uid"))
                        .await?;
                    let msg = format!("delete Pod {} in StatefulSet {name} successful", str_at(p, "/metadata/name"));
                    super::event(&self.client, &sts, "Normal", "SuccessfulDelete", &msg).await;
                    acted = true;
                }
                if ordered {
                    break;
                }
            }
        }
        // 3. Rolling update: the highest ordinal at or above the partition still on an old
        //    revision, once every other is Running and Ready.
        let rolling = str_at(&sts, "/spec/updateStrategy/type") != "OnDelete";
        let partition = int_at(&sts, "/spec/updateStrategy/rollingUpdate/partition", 0);
        if !acted && rolling {
            let all_ready = (0..replicas).all(|i| by_ordinal(i).is_some_and(|p| running_and_ready(p)));
            if all_ready {
                if let Some(p) = (partition..replicas)
                    .rev()
                    .filter_map(by_ordinal)
                    .find(|p| revision_of_pod(p) != update_rev)
                {
                    self.client
                        .delete(super::pods(), ns, str_at(p, "/metadata/name"), str_at(p, "/metadata/uid"))
                        .await?;
                }
            }
        }
        // Status.
        let min_ready = int_at(&sts, "/spec/minReadySeconds", 0);
        let active: Vec<&Arc<Value>> = pods.iter().filter(|p| is_active(p)).collect();
        let ready = active.iter().filter(|p| ready_since(p).is_some()).count();
        let mut avail = 0;
        for p in &active {
            let (a, wait) = available(p, min_ready);
            if a {
                avail += 1;
            }
            if let Some(w) = wait {
                next = Some(next.map_or(w, |n: Duration| n.min(w)));
            }
        }
        let updated = active.iter().filter(|p| revision_of_pod(p) == update_rev).count();
        let current_rev = if updated == active.len() && active.len() as i64 == replicas {
            update_rev.clone()
        } else {
            sts.pointer("/status/currentRevision")
                .and_then(Value::as_str)
                .unwrap_or(&update_rev)
                .to_string()
        };
        let current = active.iter().filter(|p| revision_of_pod(p) == current_rev).count();
        let status = super::compact_status(
            json!({
                "replicas": active.len(), "readyReplicas": ready, "currentReplicas": current, "updatedReplicas": updated,
                "availableReplicas": avail, "currentRevision": current_rev, "updateRevision": update_rev,
                "observedGeneration": sts["metadata"]["generation"], "collisionCount": 0,
            }),
            &["replicas", "availableReplicas"],
        );
        if super::compact_status(sts["status"].clone(), &["replicas", "availableReplicas"]) != status {
            let mut o = sts.clone();
            o["status"] = status;
            self.client.update_status(super::stateful_sets(), &o).await?;
        }
        let live: Vec<String> = vec![update_rev, current_rev];
        prune_revisions(&self.client, &self.informers, &sts, &live).await?;
        Ok(next.map_or(Action::Done, Action::After))
    }
}

/// The DaemonSet controller.
pub struct DaemonSets {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
}

/// Whether a DaemonSet's pods may run on `node` (selector and taints; the daemon tolerations
/// for not-ready and unschedulable nodes are implied, as the real controller adds them).
fn fits(ds: &Value, node: &Value) -> bool {
    let spec = &ds["spec"]["template"]["spec"];
    let labels = node.pointer("/metadata/labels");
    let selector_ok = spec["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let tolerated = |t: &Value| {
        spec["tolerations"].as_array().into_iter().flatten().any(|x| {
            (x["operator"] == "Exists" && (x["key"].is_null() || x["key"] == t["key"]))
                || (x["key"] == t["key"] && x.get("value").unwrap_or(&Value::Null) == t.get("value").unwrap_or(&Value::Null))
        })
    };
    let taints_ok = node["spec"]["taints"].as_array().into_iter().flatten().all(|t| {
        let key = t["key"].as_str().unwrap_or("");
        !matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")) || key.starts_with("node.kubernetes.io/") || tolerated(t)
    });
    selector_ok && taints_ok
}

impl DaemonSets {
    /// Queue the DaemonSet a pod belongs to.
    pub fn pod_changed(&self, pod: &Value) {
        if let Some(k) = owner_key(pod, "DaemonSet") {
            self.queue.add(k);
        }
    }

    /// One DaemonSet's pass.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let (ns, name) = split_key(&key);
        let Some(ds) = self.informers.daemon_sets.get(&key) else {
            return Ok(Action::Done);
        };
        let ds = (*ds).clone();
        if ds.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
            return Ok(Action::Done);
        }
        let (rev, _) = ensure_revision(&self.client, &self.informers, &ds).await?;
        let generation = int_at(&ds, "/metadata/generation", 1);
        let page = self.client.store().list("/registry/core/nodes/", Default::default()).await?;
        let nodes: Vec<Value> = page.items.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect();
        let pods: Vec<Arc<Value>> = self
            .informers
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| controller_of(p).is_some_and(|r| r["uid"] == ds["metadata"]["uid"]) && is_active(p))
            .collect();
        let min_ready = int_at(&ds, "/spec/minReadySeconds", 0);
        let (mut desired, mut scheduled, mut misscheduled, mut ready, mut avail, mut updated) = (0, 0, 0, 0, 0, 0);
        let rolling = str_at(&ds, "/spec/updateStrategy/type") != "OnDelete";
        let max_unavailable = int_at(&ds, "/spec/updateStrategy/rollingUpdate/maxUnavailable", 1).max(1);
        let mut unavailable_now = 0;
        let mut replace = Vec::new();
        for node in &nodes {
            let node_name = str_at(node, "/metadata/name");
            let here: Vec<&Arc<Value>> = pods
                .iter()
                .filter(|p| str_at(p, "/spec/nodeName") == node_name || pod_node(p) == node_name)
                .collect();
            if !fits(&ds, node) {
                misscheduled += here.len();
                for p in here {
                    self.client
                        .delete(super::pods(), ns, str_at(p, "/metadata/name"), str_at(p, "/metadata/uid"))
                        .await?;
                }
                continue;
            }
            desired += 1;
            match here.first() {
                None => {
                    let pod = self.new_pod(&ds, node_name, &rev, generation);
                    self.client.create(super::pods(), ns, pod).await?;
                    let msg = format!("Created pod: {name} on {node_name}");
                    super::event(&self.client, &ds, "Normal", "SuccessfulCreate", &msg).await;
                }
                Some(p) => {
                    scheduled += 1;
                    let r = ready_since(p).is_some();
                    let (a, _) = available(p, min_ready);
                    ready += usize::from(r);
                    avail += usize::from(a);
                    if !a {
                        unavailable_now += 1;
                    }
                    if revision_of_pod(p) == rev.rsplit('-').next().unwrap_or("") || revision_of_pod(p) == rev {
                        updated += 1;
                    } else if rolling {
                        replace.push((*p).clone());
                    }
                }
            }
        }
        // Replace old pods while few enough are unavailable.
        for p in replace.into_iter().take((max_unavailable - unavailable_now).max(0) as usize) {
            self.client
                .delete(super::pods(), ns, str_at(&p, "/metadata/name"), str_at(&p, "/metadata/uid"))
                .await?;
        }
        let status = super::compact_status(
            json!({
                "desiredNumberScheduled": desired, "currentNumberScheduled": scheduled, "numberMisscheduled": misscheduled,
                "numberReady": ready, "numberAvailable": avail, "updatedNumberScheduled": updated,
                "numberUnavailable": desired - avail, "observedGeneration": ds["metadata"]["generation"],
            }),
            &[
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "numberMisscheduled",
                "numberReady",
            ],
        );
        let keep = [
            "desiredNumberScheduled",
            "currentNumberScheduled",
            "numberMisscheduled",
            "numberReady",
        ];
        if super::compact_status(ds["status"].clone(), &keep) != status {
            let mut o = ds.clone();
            o["status"] = status;
            self.client.update_status(super::daemon_sets(), &o).await?;
        }
        prune_revisions(&self.client, &self.informers, &ds, &[rev]).await?;
        Ok(if min_ready > 0 {
            Action::After(Duration::from_secs(min_ready as u64))
        } else {
            Action::Done
        })
    }

    fn new_pod(&self, ds: &Value, node: &str, revision: &str, generation: i64) -> Value {
        let t = &ds["spec"]["template"];
        let mut meta = t["metadata"].clone();
        if !meta.is_object() {
            meta = json!({});
        }
        if !meta["labels"].is_object() {
            meta["labels"] = json!({});
        }
        meta["labels"][REVISION_HASH] = json!(revision.rsplit('-').next().unwrap_or(""));
        meta["labels"]["pod-template-generation"] = json!(generation.to_string());
        meta["generateName"] = json!(format!("{}-", str_at(ds, "/metadata/name")));
        meta["namespace"] = ds["metadata"]["namespace"].clone();
        meta["ownerReferences"] = json!([controller_ref(ds)]);
        let mut spec = t["spec"].clone();
        // Bound to its node by affinity, as the real controller does; the daemon tolerations.
        spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]});
        if !spec["tolerations"].is_array() {
            spec["tolerations"] = json!([]);
        }
        let tol = spec["tolerations"].as_array_mut().expect("an array");
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        ] {
            if !tol.iter().any(|t| t["key"] == key) {
                tol.push(json!({"key": key, "operator": "Exists", "effect": effect}));
            }
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    }
}

/// The node a DaemonSet pod is bound to by its affinity (before the scheduler binds it).
fn pod_node(pod: &Value) -> &str {
    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
        .and_then(Value::as_str)
        .unwrap_or("")
}
