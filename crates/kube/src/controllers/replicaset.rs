//! The ReplicaSet controller: keeps `spec.replicas` pods of a ReplicaSet's template alive —
//! creating the missing ones in slow-start batches (1, 2, 4, … as kube-controller-manager
//! does, so a template that cannot be admitted fails once, not a hundred times), deleting the
//! extra ones least valuable first (unscheduled, pending, not ready, ready for the shortest
//! time, most restarted, newest) — adopts the orphans its selector matches and releases the
//! pods it owns that no longer match, and writes its status: replicas, fully labelled, ready
//! and available (ready for `minReadySeconds`) counts, `observedGeneration`, and the
//! `ReplicaFailure` condition when pods cannot be made.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::runtime::{
    controller_of, controller_ref, int_at, key_of, seconds_since, split_key, str_at, Action, Client, Expectations, Queue,
};
use super::Informers;
use crate::apiserver::select::selects;
use crate::apiserver::status::ApiResult;

/// The manager the controller's writes carry.
pub const AGENT: &str = "kube-controller-manager";

/// The most pods created or deleted in one pass (kube-controller-manager's burstReplicas).
const BURST: usize = 500;

/// Whether a pod counts: not finished and not being deleted.
pub fn is_active(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null) && !matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// A pod's Ready condition: since when it has been ready, when it is.
pub fn ready_since(pod: &Value) -> Option<&str> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .map(|c| c["lastTransitionTime"].as_str().unwrap_or(""))
}

/// Whether a pod is available: ready for at least `min_ready` seconds. Also how long until it
/// will be, when it is ready but not yet long enough.
pub fn available(pod: &Value, min_ready: i64) -> (bool, Option<Duration>) {
    let Some(since) = ready_since(pod) else { return (false, None) };
    if min_ready <= 0 {
        return (true, None);
    }
    let ready_for = seconds_since(since).unwrap_or(0.0);
    if ready_for >= min_ready as f64 {
        (true, None)
    } else {
        (false, Some(Duration::from_secs_f64(min_ready as f64 - ready_for + 0.05)))
    }
}

/// Pods of `owner` (by controller reference) among `pods`.
pub fn owned_by<'a>(owner: &Value, pods: &'a [Arc<Value>]) -> Vec<&'a Arc<Value>> {
    let uid = &owner["metadata"]["uid"];
    pods.iter().filter(|p| controller_of(p).is_some_and(|r| &r["uid"] == uid)).collect()
}

/// The order in which extra pods are deleted (the first go first).
fn deletion_rank(pod: &Value) -> (u8, u8, u8, i64, i64, std::cmp::Reverse<String>) {
    let scheduled = u8::from(!str_at(pod, "/spec/nodeName").is_empty());
    let phase = match str_at(pod, "/status/phase") {
        "Pending" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready = ready_since(pod);
    // Ready longer ranks later (kept); never-ready first.
    let ready_for = ready.and_then(seconds_since).map_or(-1, |s| s as i64);
    let restarts: i64 = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| int_at(c, "/restartCount", 0))
        .sum();
    (
        scheduled,
        phase,
        u8::from(ready.is_some()),
        ready_for,
        -restarts,
        std::cmp::Reverse(str_at(pod, "/metadata/creationTimestamp").to_string()),
    )
}

/// A pod for `rs`, from its template.
fn new_pod(rs: &Value) -> Value {
    let t = &rs["spec"]["template"];
    let mut meta = t["metadata"].clone();
    if !meta.is_object() {
        meta = json!({});
    }
    meta["generateName"] = json!(format!("{}-", str_at(rs, "/metadata/name")));
    meta["namespace"] = rs["metadata"]["namespace"].clone();
    meta["ownerReferences"] = json!([controller_ref(rs)]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": t["spec"]})
}

/// The controller's state.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
    pub(super) expectations: Expectations,
}

impl Controller {
    /// Queue the owner of a pod change (and, for an orphan, every ReplicaSet that could adopt it).
    pub fn pod_changed(&self, old: Option<&Value>, new: Option<&Value>) {
        for pod in [old, new].into_iter().flatten() {
            match controller_of(pod) {
                Some(r) if r["kind"] == "ReplicaSet" => {
                    let owner = format!("{}/{}", str_at(pod, "/metadata/namespace"), r["name"].as_str().unwrap_or(""));
                    let gone = new.is_none_or(|n| !is_active(n));
                    self.expectations.observed(&owner, str_at(pod, "/metadata/name"), gone);
                    self.queue.add(owner);
                }
                Some(_) => {}
                None => {
                    let ns = str_at(pod, "/metadata/namespace");
                    for rs in self.informers.replica_sets.list(ns) {
                        if selects(&rs["spec"]["selector"], pod.pointer("/metadata/labels")) {
                            self.queue.add(key_of(&rs));
                        }
                    }
                }
            }
        }
    }

    /// Bring one ReplicaSet's pods to its spec, and its status to what is.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let Some(rs) = self.informers.replica_sets.get(&key) else {
            self.expectations.forget(&key);
            return Ok(Action::Done);
        };
        let (ns, _) = split_key(&key);
        let pods = self.informers.pods.list(ns);
        let deleting = rs.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null());
        let mut mine: Vec<Arc<Value>> = Vec::new();
        for p in &pods {
            let matches = selects(&rs["spec"]["selector"], p.pointer("/metadata/labels"));
            match controller_of(p) {
                Some(r) if r["uid"] == rs["metadata"]["uid"] => {
                    if matches || deleting {
                        mine.push(p.clone());
                    } else {
                        self.release(p).await?;
                    }
                }
                None if matches && !deleting && is_active(p) => {
                    if let Some(adopted) = self.adopt(&rs, p).await? {
                        mine.push(Arc::new(adopted));
                    }
                }
                _ => {}
            }
        }
        let active: Vec<&Arc<Value>> = mine.iter().filter(|p| is_active(p)).collect();
        let mut failure = None;
        if self.expectations.satisfied(&key) && !deleting {
            failure = self.manage(&rs, &key, &active).await;
        }
        self.write_status(&rs, &mine, failure).await
    }

    async fn adopt(&self, rs: &Value, pod: &Value) -> ApiResult<Option<Value>> {
        let mut p = pod.clone();
        let mut refs = p["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        refs.push(controller_ref(rs));
        p["metadata"]["ownerReferences"] = json!(refs);
        match self.client.update(super::pods(), &p).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn release(&self, pod: &Value) -> ApiResult<()> {
        let mut p = pod.clone();
        let refs: Vec<Value> = p["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["controller"] != json!(true))
            .cloned()
            .collect();
        p["metadata"]["ownerReferences"] = json!(refs);
        match self.client.update(super::pods(), &p).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Create or delete pods; the reason pods could not be made, if that failed.
    async fn manage(&self, rs: &Value, key: &str, active: &[&Arc<Value>]) -> Option<String> {
        let want = int_at(rs, "/spec/replicas", 1).max(0) as usize;
        let ns = str_at(rs, "/metadata/namespace");
        if active.len() < want {
            let mut left = (want - active.len()).min(BURST);
            let mut batch = 1;
            let pod = new_pod(rs);
            while left > 0 {
                let n = batch.min(left);
                let results = futures_util::future::join_all((0..n).map(|_| self.client.create(super::pods(), ns, pod.clone()))).await;
                let mut failed = None;
                for r in results {
                    match r {
                        Ok(p) => self.expectations.expect_add(key, str_at(&p, "/metadata/name")),
                        Err(e) => failed = Some(e.message),
                    }
                }
                if let Some(msg) = failed {
                    super::event(&self.client, rs, "Warning", "FailedCreate", &format!("Error creating: {msg}")).await;
                    return Some(msg);
                }
                left -= n;
                batch *= 2;
            }
            let made = (want - active.len()).min(BURST);
            tracing::debug!(replicaset = key, made, "pods created");
        } else if active.len() > want {
            let mut victims: Vec<&Arc<Value>> = active.to_vec();
            victims.sort_by_key(|p| deletion_rank(p));
            let victims = &victims[..(active.len() - want).min(BURST)];
            for v in victims {
                self.expectations.expect_delete(key, str_at(v, "/metadata/name"));
            }
            let results = futures_util::future::join_all(victims.iter().map(|p| {
                self.client
                    .delete(super::pods(), ns, str_at(p, "/metadata/name"), str_at(p, "/metadata/uid"))
            }))
            .await;
            for (r, p) in results.into_iter().zip(victims) {
                match r {
                    Ok(()) => {
                        let msg = format!("Deleted pod: {}", str_at(p, "/metadata/name"));
                        super::event(&self.client, rs, "Normal", "SuccessfulDelete", &msg).await;
                    }
                    Err(e) => {
                        self.expectations.observed(key, str_at(p, "/metadata/name"), true);
                        return Some(e.message);
                    }
                }
            }
        }
        None
    }

    async fn write_status(&self, rs: &Value, mine: &[Arc<Value>], failure: Option<String>) -> ApiResult<Action> {
        let min_ready = int_at(rs, "/spec/minReadySeconds", 0);
        let template_labels = rs.pointer("/spec/template/metadata/labels").cloned().unwrap_or(json!({}));
        let active: Vec<&Arc<Value>> = mine.iter().filter(|p| is_active(p)).collect();
        let mut ready = 0;
        let mut avail = 0;
        let mut next: Option<Duration> = None;
        let mut fully = 0;
        for p in &active {
            if ready_since(p).is_some() {
                ready += 1;
            }
            let (a, wait) = available(p, min_ready);
            if a {
                avail += 1;
            }
            if let Some(w) = wait {
                next = Some(next.map_or(w, |n| n.min(w)));
            }
            let labels = p.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
            let all = template_labels
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, v)| labels.get(k) == Some(v));
            if all {
                fully += 1;
            }
        }
        let mut status = json!({
            "replicas": active.len(),
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": avail,
            "observedGeneration": rs["metadata"]["generation"],
        });
        if let Some(msg) = &failure {
            let since = rs
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| c["type"] == "ReplicaFailure"))
                .and_then(|c| c["lastTransitionTime"].as_str())
                .map_or_else(super::runtime::now, str::to_string);
            status["conditions"] = json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": msg, "lastTransitionTime": since}]);
        }
        let status = super::compact_status(status, &["replicas"]);
        let current = super::compact_status(rs["status"].clone(), &["replicas"]);
        if status != current {
            let mut o = (*rs).clone();
            o["status"] = status;
            self.client.update_status(super::replica_sets(), &o).await?;
        }
        if failure.is_some() {
            return Ok(Action::After(Duration::from_secs(5)));
        }
        Ok(next.map_or(Action::Done, Action::After))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ready: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": node}, "status": {"phase": phase}});
        if let Some(t) = ready {
            p["status"]["conditions"] = json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]);
        }
        p
    }

    #[test]
    fn the_least_valuable_pods_go_first() {
        let mut pods = [
            pod("ready-long", "n", "Running", Some("2020-01-01T00:00:00Z")),
            pod("unscheduled", "", "Pending", None),
            pod("ready-short", "n", "Running", Some("2026-01-01T00:00:00Z")),
            pod("pending", "n", "Pending", None),
            pod("running-unready", "n", "Running", None),
        ];
        pods.sort_by_key(deletion_rank);
        let order: Vec<&str> = pods.iter().map(|p| str_at(p, "/metadata/name")).collect();
        assert_eq!(order, ["unscheduled", "pending", "running-unready", "ready-short", "ready-long"]);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = crate::apiserver::objects::now();
        let p = pod("p", "n", "Running", Some(&now));
        assert_eq!(available(&p, 0), (true, None));
        let (a, wait) = available(&p, 30);
        assert!(!a && wait.is_some_and(|w| w > Duration::from_secs(25)));
        assert!(!available(&pod("q", "n", "Running", None), 0).0);
        let mut done = p.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert!(!is_active(&done));
    }
}
