//! The Deployment controller, after kube-controller-manager's: a Deployment owns one
//! ReplicaSet per pod template it has had (named `<deployment>-<pod-template-hash>`, the hash
//! also a label of its pods and part of its selector); the one whose template is the
//! Deployment's is the new one, the rest are old.
//!
//! - RollingUpdate: the new ReplicaSet grows while all pods stay within `replicas + maxSurge`,
//!   old ones shrink while at least `replicas - maxUnavailable` pods stay available (their
//!   unavailable pods first). Recreate: old ones go to zero, and once their pods are gone the
//!   new one is scaled up.
//! - Revisions: `deployment.kubernetes.io/revision` on each ReplicaSet (a template that comes
//!   back takes the next revision, its old ones listed in `revision-history`), the Deployment
//!   carrying its new ReplicaSet's; old ReplicaSets beyond `revisionHistoryLimit` are deleted.
//!   `kubectl rollout history|undo` read and patch these as they do against a real cluster.
//! - A change of `replicas` mid-rollout is spread over the ReplicaSets in proportion to their
//!   sizes (the `desired-replicas`/`max-replicas` annotations say what each was sized for).
//! - Paused: scaling only. Status: replica counts, `Available` and `Progressing` conditions with
//!   the real controller's reasons — NewReplicaSetCreated, FoundNewReplicaSet,
//!   ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded (when no progress was
//!   made for `progressDeadlineSeconds`), DeploymentPaused/Resumed — and `ReplicaFailure`
//!   copied from the ReplicaSets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::runtime::{controller_of, controller_ref, int_at, key_of, owner_key, seconds_since, split_key, str_at, Action, Client, Queue};
use super::Informers;
use crate::apiserver::select::selects;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::workloads::int_or_percent;

const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";
const HASH: &str = "pod-template-hash";

/// Annotations of a Deployment its ReplicaSets do not copy.
fn skip_annotation(k: &str) -> bool {
    k == "kubectl.kubernetes.io/last-applied-configuration" || k.starts_with("deployment.kubernetes.io/")
}

/// The pod-template-hash of a template (and the collision count), as the real controller
/// spells it: FNV-1a of the template, its decimal digits mapped onto consonants and digits.
pub fn template_hash(template: &Value, collisions: i64) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(template.to_string().as_bytes());
    if collisions > 0 {
        feed(&(collisions as u32).to_le_bytes());
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// A template without its pod-template-hash label (what two templates are compared on).
fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(l) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        l.remove(HASH);
        if l.is_empty() {
            t["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
    }
    if t.pointer("/metadata").and_then(Value::as_object).is_some_and(|m| m.is_empty()) {
        t.as_object_mut().map(|m| m.remove("metadata"));
    }
    t
}

/// `kubectl rollout undo`: the Deployment's pod template set back to its previous revision's
/// (that of the ReplicaSet with the highest revision below the newest); the revision it goes
/// back to. The controller then rolls it out as a new revision.
pub async fn rollback(client: &Client, ns: &str, name: &str) -> ApiResult<i64> {
    let deployments = crate::apiserver::resources::find("apps", "v1", "deployments").expect("served");
    let replicasets = crate::apiserver::resources::find("apps", "v1", "replicasets").expect("served");
    let mut d = client.get(deployments, ns, name).await?;
    if d.pointer("/spec/paused") == Some(&json!(true)) {
        return Err(ApiError::bad_request(format!(
            "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume deployment/{name}' and try again"
        )));
    }
    let uid = str_at(&d, "/metadata/uid").to_string();
    let mut owned: Vec<Value> = client
        .list(replicasets, ns)
        .await?
        .into_iter()
        .filter(|rs| controller_of(rs).is_some_and(|c| c["uid"] == json!(uid)))
        .collect();
    owned.sort_by_key(revision);
    let newest = owned.last().map(revision).unwrap_or(0);
    let Some(previous) = owned.iter().rev().find(|rs| revision(rs) < newest) else {
        return Err(ApiError::bad_request(format!("no rollout history found for deployment {name:?}")));
    };
    let rev = revision(previous);
    let template = without_hash(&previous["spec"]["template"]);
    if without_hash(&d["spec"]["template"]) == template {
        return Err(ApiError::bad_request(format!(
            "skipped rollback (current template already matches revision {rev})"
        )));
    }
    d["spec"]["template"] = template;
    client.update(deployments, &d).await?;
    Ok(rev)
}

fn revision(o: &Value) -> i64 {
    o.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn replicas(o: &Value) -> i64 {
    int_at(o, "/spec/replicas", 1).max(0)
}

fn status_of(o: &Value, field: &str) -> i64 {
    int_at(o, &format!("/status/{field}"), 0)
}

/// maxSurge and maxUnavailable resolved against the replicas (both zero: one unavailable).
pub fn surge_and_unavailable(d: &Value) -> (i64, i64) {
    if str_at(d, "/spec/strategy/type") == "Recreate" {
        return (0, 0);
    }
    let want = replicas(d);
    let ru = d.pointer("/spec/strategy/rollingUpdate");
    let get = |k: &str, round_up: bool| {
        let v = ru.and_then(|r| r.get(k)).cloned().unwrap_or(json!("25%"));
        int_or_percent(&v, want, round_up).unwrap_or(0).max(0)
    };
    let surge = get("maxSurge", true);
    let mut unavailable = get("maxUnavailable", false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(want))
}

/// What the rollout may leave unavailable (zero for Recreate or no replicas).
fn max_unavailable(d: &Value) -> i64 {
    if replicas(d) == 0 {
        0
    } else {
        surge_and_unavailable(d).1
    }
}

fn condition<'a>(status: &'a Value, ty: &str) -> Option<&'a Value> {
    status.get("conditions")?.as_array()?.iter().find(|c| c["type"] == ty)
}

/// Set a deployment condition: `lastUpdateTime` now, `lastTransitionTime` kept unless the
/// status changes.
fn set_condition(status: &mut Value, ty: &str, st: &str, reason: &str, message: &str) {
    let now = super::runtime::now();
    let mut c = json!({"type": ty, "status": st, "lastUpdateTime": now, "lastTransitionTime": now, "reason": reason, "message": message});
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conds = status["conditions"].as_array_mut().expect("an array");
    match conds.iter_mut().find(|x| x["type"] == ty) {
        Some(x) => {
            if x["status"] == st {
                if x["reason"] == reason && x["message"] == message {
                    // Nothing new: keep the times (a status write that changes nothing).
                    return;
                }
                c["lastTransitionTime"] = x["lastTransitionTime"].clone();
            }
            *x = c;
        }
        None => conds.push(c),
    }
}

fn remove_condition(status: &mut Value, ty: &str) {
    if let Some(c) = status["conditions"].as_array_mut() {
        c.retain(|x| x["type"] != ty);
    }
}

/// The ReplicaSets of a Deployment: the new one (its template), and the old ones oldest first.
struct Sets {
    new: Option<Value>,
    old: Vec<Value>,
}

impl Sets {
    fn all(&self) -> impl Iterator<Item = &Value> {
        self.new.iter().chain(self.old.iter())
    }

    fn sum(&self, f: impl Fn(&Value) -> i64) -> i64 {
        self.all().map(f).sum()
    }
}

/// The controller's state.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
}

impl Controller {
    /// Queue the Deployment a ReplicaSet change concerns.
    pub fn replica_set_changed(&self, rs: &Value) {
        let ns = str_at(rs, "/metadata/namespace");
        match controller_of(rs) {
            Some(r) if r["kind"] == "Deployment" => self.queue.add(format!("{ns}/{}", r["name"].as_str().unwrap_or(""))),
            Some(_) => {}
            None => {
                for d in self.informers.deployments.list(ns) {
                    if selects(&d["spec"]["selector"], rs.pointer("/metadata/labels")) {
                        self.queue.add(key_of(&d));
                    }
                }
            }
        }
    }

    /// A pod went away: a Recreate rollout may be waiting for it.
    pub fn pod_gone(&self, pod: &Value) {
        let Some(rs) = owner_key(pod, "ReplicaSet").and_then(|k| self.informers.replica_sets.get(&k)) else {
            return;
        };
        if let Some(key) = owner_key(&rs, "Deployment") {
            if self
                .informers
                .deployments
                .get(&key)
                .is_some_and(|d| str_at(&d, "/spec/strategy/type") == "Recreate")
            {
                self.queue.add(key);
            }
        }
    }

    /// Bring one Deployment's ReplicaSets to its spec, and its status to what they are.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let Some(d) = self.informers.deployments.get(&key) else {
            return Ok(Action::Done);
        };
        let mut d = (*d).clone();
        let (ns, _) = split_key(&key);
        let deleting = d.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
        let mut owned = Vec::new();
        for rs in self.informers.replica_sets.list(ns) {
            let matches = selects(&d["spec"]["selector"], rs.pointer("/metadata/labels"));
            match controller_of(&rs) {
                Some(r) if r["uid"] == d["metadata"]["uid"] => {
                    if matches || deleting {
                        owned.push((*rs).clone());
                    } else {
                        let mut o = (*rs).clone();
                        if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                            refs.retain(|r| r["controller"] != json!(true));
                        }
                        self.client.update(super::replica_sets(), &o).await?;
                    }
                }
                None if matches && !deleting && rs.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null) => {
                    let mut o = (*rs).clone();
                    let mut refs = o["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
                    refs.push(controller_ref(&d));
                    o["metadata"]["ownerReferences"] = json!(refs);
                    owned.push(self.client.update(super::replica_sets(), &o).await?);
                }
                _ => {}
            }
        }
        owned.sort_by(|a, b| {
            str_at(a, "/metadata/creationTimestamp")
                .cmp(str_at(b, "/metadata/creationTimestamp"))
                .then(str_at(a, "/metadata/name").cmp(str_at(b, "/metadata/name")))
        });
        if deleting {
            let sets = self.split(&d, owned);
            return self.sync_status(&d, &sets, false).await;
        }
        self.paused_conditions(&mut d).await?;
        let paused = d.pointer("/spec/paused") == Some(&json!(true));
        let scaling = self.is_scaling_event(&d, &owned);
        if paused || scaling {
            let mut sets = self.split(&d, owned);
            self.sync_revision(&mut d, &mut sets, false).await?;
            self.scale(&d, &mut sets).await?;
            if paused {
                self.cleanup(&d, &sets).await?;
            }
            return self.sync_status(&d, &sets, false).await;
        }
        let mut sets = self.split(&d, owned);
        if str_at(&d, "/spec/strategy/type") == "Recreate" {
            return self.recreate(&mut d, &mut sets).await;
        }
        self.sync_revision(&mut d, &mut sets, true).await?;
        let Some(new) = sets.new.clone() else {
            return Ok(Action::After(Duration::from_secs(1)));
        };
        // Scale up the new ReplicaSet within maxSurge, then down the old ones within
        // maxUnavailable; each pass does what it may and the next one continues.
        let (surge, _) = surge_and_unavailable(&d);
        let want = replicas(&d);
        let cur = replicas(&new);
        let target = if cur > want {
            want
        } else {
            let total = sets.sum(replicas);
            let room = want + surge - total;
            if room <= 0 {
                cur
            } else {
                cur + room.min(want - cur)
            }
        };
        if target != cur {
            let scaled = self.scale_rs(&d, &new, target).await?;
            sets.new = Some(scaled);
        }
        self.scale_down_old(&d, &mut sets).await?;
        if sets.old.iter().all(|rs| replicas(rs) == 0) && sets.new.as_ref().is_some_and(|n| replicas(n) == want) {
            self.cleanup(&d, &sets).await?;
        }
        self.sync_status(&d, &sets, true).await
    }

    fn split(&self, d: &Value, owned: Vec<Value>) -> Sets {
        let template = without_hash(&d["spec"]["template"]);
        let mut new = None;
        let mut old = Vec::new();
        for rs in owned {
            if new.is_none() && without_hash(&rs["spec"]["template"]) == template {
                new = Some(rs);
            } else {
                old.push(rs);
            }
        }
        Sets { new, old }
    }

    /// Whether `replicas` changed since the active ReplicaSets were sized.
    fn is_scaling_event(&self, d: &Value, owned: &[Value]) -> bool {
        let want = replicas(d).to_string();
        owned.iter().filter(|rs| replicas(rs) > 0).any(|rs| {
            rs.pointer("/metadata/annotations")
                .and_then(|a| a.get(DESIRED))
                .and_then(Value::as_str)
                .is_some_and(|v| v != want)
        })
    }

    /// Paused and resumed show in the Progressing condition.
    async fn paused_conditions(&self, d: &mut Value) -> ApiResult<()> {
        if d.pointer("/spec/progressDeadlineSeconds").is_none_or(Value::is_null) {
            return Ok(());
        }
        let paused = d.pointer("/spec/paused") == Some(&json!(true));
        let mut status = d["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let reason = condition(&status, "Progressing").map(|c| c["reason"].as_str().unwrap_or("").to_string());
        let paused_cond = reason.as_deref() == Some("DeploymentPaused");
        if paused && !paused_cond {
            set_condition(&mut status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused");
        } else if !paused && paused_cond {
            set_condition(&mut status, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed");
        } else {
            return Ok(());
        }
        let mut o = d.clone();
        o["status"] = status;
        *d = self.client.update_status(super::deployments(), &o).await?;
        Ok(())
    }

    /// The next revision's number, the new ReplicaSet made (when `create`) or its revision
    /// brought up to date, and the Deployment's revision annotation with it.
    async fn sync_revision(&self, d: &mut Value, sets: &mut Sets, create: bool) -> ApiResult<()> {
        let max_old = sets.old.iter().map(revision).max().unwrap_or(0);
        let next = max_old + 1;
        match sets.new.clone() {
            Some(rs) => {
                let mut o = rs.clone();
                let cur = revision(&rs);
                let mut changed = false;
                // The Deployment's annotations (a change-cause among them) follow onto it.
                for (k, v) in d["metadata"]["annotations"].as_object().into_iter().flatten() {
                    if !skip_annotation(k) && o["metadata"]["annotations"].get(k) != Some(v) {
                        if !o["metadata"]["annotations"].is_object() {
                            o["metadata"]["annotations"] = json!({});
                        }
                        o["metadata"]["annotations"][k] = v.clone();
                        changed = true;
                    }
                }
                if cur < next {
                    let ann = &mut o["metadata"]["annotations"];
                    if !ann.is_object() {
                        *ann = json!({});
                    }
                    if cur > 0 {
                        let hist = ann.get(REVISION_HISTORY).and_then(Value::as_str).unwrap_or("").to_string();
                        let hist = if hist.is_empty() {
                            cur.to_string()
                        } else {
                            format!("{hist},{cur}")
                        };
                        ann[REVISION_HISTORY] = json!(hist);
                    }
                    ann[REVISION] = json!(next.to_string());
                    changed = true;
                }
                if o["spec"]["minReadySeconds"] != d["spec"]["minReadySeconds"] && !d["spec"]["minReadySeconds"].is_null() {
                    o["spec"]["minReadySeconds"] = d["spec"]["minReadySeconds"].clone();
                    changed = true;
                }
                if changed {
                    sets.new = Some(self.client.update(super::replica_sets(), &o).await?);
                }
                if !d["spec"]["progressDeadlineSeconds"].is_null() && condition(&d["status"], "Progressing").is_none() {
                    let mut o = d.clone();
                    if !o["status"].is_object() {
                        o["status"] = json!({});
                    }
                    let msg = format!("Found new replica set \"{}\"", str_at(&rs, "/metadata/name"));
                    set_condition(&mut o["status"], "Progressing", "True", "FoundNewReplicaSet", &msg);
                    *d = self.client.update_status(super::deployments(), &o).await?;
                }
            }
            None if create => {
                let rs = self.create_new(d, sets, next).await?;
                sets.new = Some(rs);
            }
            None => {}
        }
        let want = sets.new.as_ref().map(revision).unwrap_or(0);
        if want > 0 && revision(d) != want {
            *d = self
                .client
                .patch(
                    super::deployments(),
                    str_at(d, "/metadata/namespace"),
                    str_at(d, "/metadata/name"),
                    json!({"metadata": {"annotations": {REVISION: want.to_string()}}}),
                )
                .await?;
        }
        Ok(())
    }

    /// Make the new ReplicaSet (named by its template's hash; a name taken by another
    /// template is a collision, counted in the status, and the hash changes).
    async fn create_new(&self, d: &mut Value, sets: &Sets, rev: i64) -> ApiResult<Value> {
        let ns = str_at(d, "/metadata/namespace").to_string();
        let collisions = int_at(d, "/status/collisionCount", 0);
        let template = without_hash(&d["spec"]["template"]);
        let hash = template_hash(&template, collisions);
        let mut t = template.clone();
        if !t["metadata"].is_object() {
            t["metadata"] = json!({});
        }
        if !t["metadata"]["labels"].is_object() {
            t["metadata"]["labels"] = json!({});
        }
        t["metadata"]["labels"][HASH] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        if !selector["matchLabels"].is_object() {
            selector["matchLabels"] = json!({});
        }
        selector["matchLabels"][HASH] = json!(hash);
        let mut ann: BTreeMap<String, Value> = d["metadata"]["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !skip_annotation(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (surge, _) = surge_and_unavailable(d);
        let want = replicas(d);
        ann.insert(REVISION.into(), json!(rev.to_string()));
        ann.insert(DESIRED.into(), json!(want.to_string()));
        ann.insert(MAX.into(), json!((want + surge).to_string()));
        let start = if str_at(d, "/spec/strategy/type") == "Recreate" {
            want
        } else {
            let room = want + surge - sets.sum(replicas);
            room.clamp(0, want)
        };
        let name = format!("{}-{hash}", str_at(d, "/metadata/name"));
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": name, "namespace": ns, "labels": t["metadata"]["labels"],
                "annotations": ann, "ownerReferences": [controller_ref(d)],
            },
            "spec": {
                "replicas": start, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                "selector": selector, "template": t,
            },
        });
        match self.client.create(super::replica_sets(), &ns, rs).await {
            Ok(created) => {
                if start > 0 {
                    let msg = format!("Scaled up replica set {name} from 0 to {start}");
                    super::event(&self.client, d, "Normal", "ScalingReplicaSet", &msg).await;
                }
                if !d["spec"]["progressDeadlineSeconds"].is_null() {
                    let mut o = d.clone();
                    if !o["status"].is_object() {
                        o["status"] = json!({});
                    }
                    set_condition(
                        &mut o["status"],
                        "Progressing",
                        "True",
                        "NewReplicaSetCreated",
                        &format!("Created new replica set \"{name}\""),
                    );
                    *d = self.client.update_status(super::deployments(), &o).await?;
                }
                Ok(created)
            }
            Err(e) if e.code == 409 && e.reason == "AlreadyExists" => {
                // Ours with this template (a cache behind its writes)? Then it is the new one.
                let existing = self.informers.replica_sets.get(&format!("{ns}/{name}"));
                if let Some(rs) = existing.filter(|rs| {
                    controller_of(rs).is_some_and(|r| r["uid"] == d["metadata"]["uid"]) && without_hash(&rs["spec"]["template"]) == template
                }) {
                    return Ok((*rs).clone());
                }
                let mut o = d.clone();
                if !o["status"].is_object() {
                    o["status"] = json!({});
                }
                o["status"]["collisionCount"] = json!(collisions + 1);
                self.client.update_status(super::deployments(), &o).await?;
                Err(ApiError::conflict("apps", "replicasets", &name))
            }
            Err(e) => {
                let mut o = d.clone();
                if !o["status"].is_object() {
                    o["status"] = json!({});
                }
                let msg = format!("Failed to create new replica set \"{name}\": {}", e.message);
                set_condition(&mut o["status"], "Progressing", "False", "ReplicaSetCreateError", &msg);
                let _ = self.client.update_status(super::deployments(), &o).await;
                super::event(&self.client, d, "Warning", "FailedCreate", &msg).await;
                Err(e)
            }
        }
    }

    /// Set a ReplicaSet's replicas (and what it was sized for), with the event saying so.
    async fn scale_rs(&self, d: &Value, rs: &Value, to: i64) -> ApiResult<Value> {
        let from = replicas(rs);
        let (surge, _) = surge_and_unavailable(d);
        let want = replicas(d);
        let mut o = rs.clone();
        o["spec"]["replicas"] = json!(to);
        if !o["metadata"]["annotations"].is_object() {
            o["metadata"]["annotations"] = json!({});
        }
        o["metadata"]["annotations"][DESIRED] = json!(want.to_string());
        o["metadata"]["annotations"][MAX] = json!((want + surge).to_string());
        if o == *rs {
            return Ok(o);
        }
        let updated = self.client.update(super::replica_sets(), &o).await?;
        if from != to {
            let how = if to > from { "up" } else { "down" };
            let msg = format!("Scaled {how} replica set {} from {from} to {to}", str_at(rs, "/metadata/name"));
            super::event(&self.client, d, "Normal", "ScalingReplicaSet", &msg).await;
        }
        Ok(updated)
    }

    /// Shrink old ReplicaSets as far as availability allows: their unavailable pods first,
    /// then, oldest first, what `replicas - maxUnavailable` available pods can spare.
    async fn scale_down_old(&self, d: &Value, sets: &mut Sets) -> ApiResult<()> {
        let old_pods: i64 = sets.old.iter().map(replicas).sum();
        if old_pods == 0 {
            return Ok(());
        }
        let all = sets.sum(replicas);
        let min_available = replicas(d) - max_unavailable(d);
        let new_unavailable = sets
            .new
            .as_ref()
            .map_or(0, |n| replicas(n) - status_of(n, "availableReplicas"))
            .max(0);
        let mut budget = all - min_available - new_unavailable;
        if budget <= 0 {
            return Ok(());
        }
        // Unavailable pods of old ReplicaSets cost no availability.
        for i in 0..sets.old.len() {
            if budget <= 0 {
                break;
            }
            let rs = &sets.old[i];
            let unhealthy = (replicas(rs) - status_of(rs, "availableReplicas")).max(0);
            let down = unhealthy.min(budget);
            if down > 0 {
                let r = self.scale_rs(d, rs, replicas(rs) - down).await?;
                sets.old[i] = r;
                budget -= down;
            }
        }
        let available: i64 = sets.sum(|rs| status_of(rs, "availableReplicas").min(replicas(rs)));
        let mut spare = available - min_available;
        for i in 0..sets.old.len() {
            if spare <= 0 {
                break;
            }
            let rs = &sets.old[i];
            let down = replicas(rs).min(spare);
            if down > 0 {
                let r = self.scale_rs(d, rs, replicas(rs) - down).await?;
                sets.old[i] = r;
                spare -= down;
            }
        }
        Ok(())
    }

    /// Recreate: old ReplicaSets to zero; once none of their pods is left, the new one up.
    async fn recreate(&self, d: &mut Value, sets: &mut Sets) -> ApiResult<Action> {
        self.sync_revision(d, sets, false).await?;
        let mut scaled = false;
        for i in 0..sets.old.len() {
            if replicas(&sets.old[i]) > 0 {
                sets.old[i] = self.scale_rs(d, &sets.old[i].clone(), 0).await?;
                scaled = true;
            }
        }
        if scaled {
            return self.sync_status(d, sets, true).await;
        }
        let ns = str_at(d, "/metadata/namespace");
        let old_uids: Vec<&Value> = sets.old.iter().map(|rs| &rs["metadata"]["uid"]).collect();
        let running = self.informers.pods.list(ns).iter().any(|p| {
            controller_of(p).is_some_and(|r| old_uids.contains(&&r["uid"])) && !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed")
        });
        if running {
            return self.sync_status(d, sets, true).await;
        }
        if sets.new.is_none() {
            self.sync_revision(d, sets, true).await?;
        }
        if let Some(new) = sets.new.clone() {
            if replicas(&new) != replicas(d) {
                sets.new = Some(self.scale_rs(d, &new, replicas(d)).await?);
            }
        }
        if sets.new.as_ref().is_some_and(|n| status_of(n, "availableReplicas") >= replicas(d)) {
            self.cleanup(d, sets).await?;
        }
        self.sync_status(d, sets, true).await
    }

    /// A change of `replicas`: the active ReplicaSets take it in proportion to their sizes
    /// (all to the only active one, or to the newest when none is).
    async fn scale(&self, d: &Value, sets: &mut Sets) -> ApiResult<()> {
        let want = replicas(d);
        let active: Vec<usize> = (0..sets.old.len()).filter(|i| replicas(&sets.old[*i]) > 0).collect();
        let new_active = sets.new.as_ref().is_some_and(|n| replicas(n) > 0);
        // One ReplicaSet takes all.
        if active.is_empty() || (active.len() == 1 && !new_active) || (active.is_empty() && new_active) {
            let target = if new_active || active.is_empty() {
                sets.new.clone().or_else(|| sets.old.last().cloned())
            } else {
                Some(sets.old[active[0]].clone())
            };
            if let Some(rs) = target {
                let scaled = self.scale_rs(d, &rs, want).await?;
                if sets.new.as_ref().is_some_and(|n| n["metadata"]["uid"] == scaled["metadata"]["uid"]) {
                    sets.new = Some(scaled);
                } else if let Some(i) = sets.old.iter().position(|o| o["metadata"]["uid"] == scaled["metadata"]["uid"]) {
                    sets.old[i] = scaled;
                }
            }
            return Ok(());
        }
        if str_at(d, "/spec/strategy/type") == "Recreate" {
            return Ok(());
        }
        let (surge, _) = surge_and_unavailable(d);
        let allowed = if want > 0 { want + surge } else { 0 };
        let total = sets.sum(replicas);
        let to_add = allowed - total;
        if to_add == 0 {
            return Ok(());
        }
        // Proportions by each set's share of what it was sized for; leftovers to the largest.
        let mut all: Vec<Value> = sets.all().cloned().collect();
        all.sort_by_key(|rs| std::cmp::Reverse(replicas(rs)));
        let mut added = 0;
        let mut sizes: Vec<i64> = Vec::new();
        for rs in &all {
            let max = rs
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(MAX))
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|m| *m > 0)
                .unwrap_or(total.max(1));
            let share = if to_add > 0 {
                (replicas(rs) * allowed / max - replicas(rs)).clamp(0, to_add - added)
            } else {
                (replicas(rs) * allowed / max - replicas(rs)).clamp(to_add - added, 0)
            };
            added += share;
            sizes.push(replicas(rs) + share);
        }
        if let Some(first) = sizes.first_mut() {
            *first = (*first + to_add - added).max(0);
        }
        for (rs, size) in all.iter().zip(sizes) {
            let scaled = self.scale_rs(d, rs, size).await?;
            if sets.new.as_ref().is_some_and(|n| n["metadata"]["uid"] == scaled["metadata"]["uid"]) {
                sets.new = Some(scaled);
            } else if let Some(i) = sets.old.iter().position(|o| o["metadata"]["uid"] == scaled["metadata"]["uid"]) {
                sets.old[i] = scaled;
            }
        }
        Ok(())
    }

    /// Delete old ReplicaSets with nothing left beyond `revisionHistoryLimit`, oldest revision
    /// first.
    async fn cleanup(&self, d: &Value, sets: &Sets) -> ApiResult<()> {
        let Some(limit) = d.pointer("/spec/revisionHistoryLimit").and_then(Value::as_i64) else {
            return Ok(());
        };
        let mut old: Vec<&Value> = sets
            .old
            .iter()
            .filter(|rs| rs.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null))
            .collect();
        let excess = old.len() as i64 - limit;
        if excess <= 0 {
            return Ok(());
        }
        old.sort_by_key(|rs| revision(rs));
        for rs in old.into_iter().take(excess as usize) {
            if replicas(rs) != 0 || status_of(rs, "replicas") != 0 {
                continue;
            }
            self.client
                .delete(
                    super::replica_sets(),
                    str_at(rs, "/metadata/namespace"),
                    str_at(rs, "/metadata/name"),
                    str_at(rs, "/metadata/uid"),
                )
                .await?;
        }
        Ok(())
    }

    /// Write the Deployment's status from its ReplicaSets'; the progress conditions when
    /// `progress` (a rollout pass, not a pause or a scale); look again at the deadline.
    async fn sync_status(&self, d: &Value, sets: &Sets, progress: bool) -> ApiResult<Action> {
        let want = replicas(d);
        let available = sets.sum(|rs| status_of(rs, "availableReplicas"));
        let total_spec = sets.sum(replicas);
        let mut status = d["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let before = status.clone();
        status["observedGeneration"] = d["metadata"]["generation"].clone();
        status["replicas"] = json!(sets.sum(|rs| status_of(rs, "replicas")));
        status["updatedReplicas"] = json!(sets.new.as_ref().map_or(0, |n| status_of(n, "replicas")));
        status["readyReplicas"] = json!(sets.sum(|rs| status_of(rs, "readyReplicas")));
        status["availableReplicas"] = json!(available);
        status["unavailableReplicas"] = json!((total_spec - available).max(0));
        if available >= want - max_unavailable(d) {
            set_condition(
                &mut status,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            );
        } else {
            set_condition(
                &mut status,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            );
        }
        let deadline = d.pointer("/spec/progressDeadlineSeconds").and_then(Value::as_i64);
        let mut next = None;
        let paused = d.pointer("/spec/paused") == Some(&json!(true));
        if deadline.is_none() {
            remove_condition(&mut status, "Progressing");
        }
        if let (Some(deadline), true, false) = (deadline, progress, paused) {
            let cur = condition(&status, "Progressing").cloned();
            let complete_already =
                status["replicas"] == status["updatedReplicas"] && cur.as_ref().is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
            let name = sets.new.as_ref().map(|n| str_at(n, "/metadata/name").to_string());
            if !complete_already {
                let updated = status["updatedReplicas"].as_i64().unwrap_or(0);
                let complete = updated == want
                    && status["replicas"].as_i64() == Some(want)
                    && available == want
                    && status["observedGeneration"] == d["metadata"]["generation"];
                let grew = |f: &str| status[f].as_i64().unwrap_or(0) > before[f].as_i64().unwrap_or(0);
                let progressing = grew("updatedReplicas")
                    || status["replicas"].as_i64().unwrap_or(0) < before["replicas"].as_i64().unwrap_or(0)
                    || grew("readyReplicas")
                    || grew("availableReplicas");
                if complete {
                    let msg = format!("ReplicaSet \"{}\" has successfully progressed.", name.clone().unwrap_or_default());
                    set_condition(&mut status, "Progressing", "True", "NewReplicaSetAvailable", &msg);
                } else if progressing {
                    let msg = match &name {
                        Some(n) => format!("ReplicaSet \"{n}\" is progressing."),
                        None => format!("Deployment \"{}\" is progressing.", str_at(d, "/metadata/name")),
                    };
                    // A fresh update time, the transition time kept while it stays True.
                    if let Some(c) = status["conditions"]
                        .as_array_mut()
                        .and_then(|c| c.iter_mut().find(|c| c["type"] == "Progressing"))
                    {
                        if c["status"] == "True" {
                            c["reason"] = json!("ReplicaSetUpdated");
                            c["message"] = json!(msg);
                            c["lastUpdateTime"] = json!(super::runtime::now());
                        } else {
                            set_condition(&mut status, "Progressing", "True", "ReplicaSetUpdated", &msg);
                        }
                    } else {
                        set_condition(&mut status, "Progressing", "True", "ReplicaSetUpdated", &msg);
                    }
                } else if let Some(c) = condition(&status, "Progressing").cloned() {
                    if c["reason"] != "ProgressDeadlineExceeded" && c["reason"] != "NewReplicaSetAvailable" {
                        let since = seconds_since(c["lastUpdateTime"].as_str().unwrap_or("")).unwrap_or(0.0);
                        if since > deadline as f64 {
                            let msg = match &name {
                                Some(n) => format!("ReplicaSet \"{n}\" has timed out progressing."),
                                None => format!("Deployment \"{}\" has timed out progressing.", str_at(d, "/metadata/name")),
                            };
                            set_condition(&mut status, "Progressing", "False", "ProgressDeadlineExceeded", &msg);
                            super::event(&self.client, d, "Warning", "ProgressDeadlineExceeded", &msg).await;
                        } else {
                            next = Some(Duration::from_secs_f64(deadline as f64 - since + 0.5));
                        }
                    }
                }
            }
        }
        // ReplicaFailure from the ReplicaSets.
        let failure = sets.all().find_map(|rs| {
            condition(&rs["status"], "ReplicaFailure")
                .filter(|c| c["status"] == "True")
                .cloned()
        });
        match failure {
            Some(f) => set_condition(
                &mut status,
                "ReplicaFailure",
                "True",
                f["reason"].as_str().unwrap_or(""),
                f["message"].as_str().unwrap_or(""),
            ),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        let status = super::compact_status(status, &[]);
        if status != super::compact_status(before, &[]) {
            let mut o = d.clone();
            o["status"] = status;
            self.client.update_status(super::deployments(), &o).await?;
        }
        Ok(next.map_or(Action::Done, Action::After))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_spelled_as_the_real_ones() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let h = template_hash(&t, 0);
        assert_eq!(h, template_hash(&t, 0));
        assert_ne!(h, template_hash(&t, 1));
        assert!(h.len() <= 10 && h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)), "{h}");
        let mut labelled = t.clone();
        labelled["metadata"]["labels"][HASH] = json!(h);
        assert_eq!(without_hash(&labelled), t);
    }

    #[test]
    fn surge_and_unavailability_resolve_as_kubernetes_does() {
        let d = |surge: Value, unavail: Value, n: i64| json!({"spec": {"replicas": n, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}}}});
        assert_eq!(surge_and_unavailable(&d(json!("25%"), json!("25%"), 10)), (3, 2));
        assert_eq!(surge_and_unavailable(&d(json!(0), json!(0), 3)), (0, 1));
        assert_eq!(surge_and_unavailable(&d(json!(1), json!(5), 3)), (1, 3));
        assert_eq!(
            surge_and_unavailable(&json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}})),
            (0, 0)
        );
    }
}
