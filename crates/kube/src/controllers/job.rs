//! The Job controller: runs a Job's pods to `completions` successes, `parallelism` at a time
//! (Indexed: one success per index, each pod told its index), replaces failed pods with an
//! exponential back-off until `backoffLimit` failures, fails the Job at its
//! `activeDeadlineSeconds`, applies `podFailurePolicy` rules (FailJob, Ignore, Count on exit
//! codes or pod conditions), suspends and resumes, and deletes a finished Job after
//! `ttlSecondsAfterFinished`.
//!
//! Finished pods are counted as the real controller counts them, so that none is lost or
//! counted twice even when pods are deleted or the daemon dies mid-way: each pod carries the
//! `batch.kubernetes.io/job-tracking` finalizer; a finished one is first recorded in
//! `status.uncountedTerminatedPods`, then its finalizer is removed, then it moves into the
//! `succeeded`/`failed` counts.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::replicaset::ready_since;
use super::runtime::{
    controller_of, controller_ref, int_at, owner_key, seconds_since, split_key, str_at, Action, Client, Expectations, Queue,
};
use super::Informers;
use crate::apiserver::status::ApiResult;

/// The finalizer a Job's pods carry until they are counted.
pub const TRACKING: &str = "batch.kubernetes.io/job-tracking";
/// An Indexed Job's pod's index (annotation and label).
pub const INDEX: &str = "batch.kubernetes.io/job-completion-index";

fn finished(job: &Value) -> Option<&'static str> {
    let conds = job.pointer("/status/conditions")?.as_array()?;
    ["Complete", "Failed"]
        .into_iter()
        .find(|t| conds.iter().any(|c| c["type"] == *t && c["status"] == "True"))
}

fn has_tracking(pod: &Value) -> bool {
    pod.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x == TRACKING))
}

fn index_of(pod: &Value) -> Option<i64> {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(INDEX))
        .and_then(Value::as_str)
        .and_then(|i| i.parse().ok())
}

/// `1,3-5` from a set of indexes.
pub fn format_indexes(set: &BTreeSet<i64>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().peekable();
    while let Some(&a) = it.next() {
        let mut b = a;
        while it.peek() == Some(&&(b + 1)) {
            b += 1;
            it.next();
        }
        out.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    }
    out.join(",")
}

/// The indexes in `1,3-5`.
pub fn parse_indexes(s: &str) -> BTreeSet<i64> {
    let mut set = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    set.extend(a..=b);
                }
            }
            None => set.extend(part.parse::<i64>().ok()),
        }
    }
    set
}

/// What a failed pod means under the Job's podFailurePolicy: `Ignore`, `FailJob` (with the
/// message), or `Count`.
fn failure_action(job: &Value, pod: &Value) -> (&'static str, String) {
    let pod_name = format!("{}/{}", str_at(pod, "/metadata/namespace"), str_at(pod, "/metadata/name"));
    let Some(rules) = job.pointer("/spec/podFailurePolicy/rules").and_then(Value::as_array) else {
        return ("Count", String::new());
    };
    let statuses: Vec<&Value> = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    for (i, r) in rules.iter().enumerate() {
        let action = match r["action"].as_str() {
            Some("FailJob") => "FailJob",
            Some("Ignore") => "Ignore",
            Some("FailIndex") => "FailIndex",
            _ => "Count",
        };
        if let Some(on) = r.get("onExitCodes").filter(|v| !v.is_null()) {
            let values: Vec<i64> = on["values"].as_array().into_iter().flatten().filter_map(Value::as_i64).collect();
            let want_in = on["operator"] == "In";
            let container = on["containerName"].as_str();
            let hit = statuses.iter().find_map(|c| {
                if container.is_some_and(|n| c["name"].as_str() != Some(n)) {
                    return None;
                }
                let code = c.pointer("/state/terminated/exitCode").and_then(Value::as_i64)?;
                (code != 0 && values.contains(&code) == want_in).then(|| (c["name"].as_str().unwrap_or("").to_string(), code))
            });
            if let Some((name, code)) = hit {
                let msg = format!("Container {name} for pod {pod_name} failed with exit code {code} matching {action} rule at index {i}");
                return (action, msg);
            }
        }
        if let Some(on) = r.get("onPodConditions").and_then(Value::as_array) {
            let conds = pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let hit = on.iter().find(|want| {
                conds
                    .iter()
                    .any(|c| c["type"] == want["type"] && c["status"] == want.get("status").cloned().unwrap_or(json!("True")))
            });
            if let Some(want) = hit {
                let msg = format!(
                    "Pod {pod_name} has condition {} matching {action} rule at index {i}",
                    want["type"].as_str().unwrap_or("")
                );
                return (action, msg);
            }
        }
    }
    ("Count", String::new())
}

fn set_job_condition(status: &mut Value, ty: &str, st: &str, reason: &str, message: &str) {
    let now = super::runtime::now();
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conds = status["conditions"].as_array_mut().expect("an array");
    let c = json!({"type": ty, "status": st, "reason": reason, "message": message, "lastProbeTime": now, "lastTransitionTime": now});
    match conds.iter_mut().find(|x| x["type"] == ty) {
        Some(x) if x["status"] == st => {}
        Some(x) => *x = c,
        None => conds.push(c),
    }
}

/// The controller.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
    pub(super) expectations: Expectations,
    /// Failures seen per Job, and when the last one was (for the back-off).
    pub(super) backoff: Mutex<HashMap<String, (i64, Instant)>>,
}

impl Controller {
    /// Queue the Job a pod belongs to.
    pub fn pod_changed(&self, old: Option<&Value>, new: Option<&Value>) {
        for pod in [old, new].into_iter().flatten() {
            if let Some(owner) = owner_key(pod, "Job") {
                let gone = new.is_none_or(|n| n.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()));
                self.expectations.observed(&owner, str_at(pod, "/metadata/name"), gone);
                self.queue.add(owner);
            }
        }
    }

    async fn drop_tracking(&self, pod: &Value) -> ApiResult<()> {
        let mut p = pod.clone();
        if let Some(f) = p["metadata"]["finalizers"].as_array_mut() {
            f.retain(|x| x != TRACKING);
            if f.is_empty() {
                p["metadata"].as_object_mut().map(|m| m.remove("finalizers"));
            }
        }
        match self.client.update(super::pods(), &p).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Bring one Job's pods and status to what its spec asks.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let Some(job) = self.informers.jobs.get(&key) else {
            self.expectations.forget(&key);
            self.backoff.lock().expect("backoff lock").remove(&key);
            return Ok(Action::Done);
        };
        let mut job = (*job).clone();
        if job
            .pointer("/spec/managedBy")
            .and_then(Value::as_str)
            .is_some_and(|m| m != "kubernetes.io/job-controller")
        {
            return Ok(Action::Done);
        }
        let (ns, _) = split_key(&key);
        let uid = job["metadata"]["uid"].clone();
        let pods: Vec<Arc<Value>> = self
            .informers
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| controller_of(p).is_some_and(|r| r["uid"] == uid))
            .collect();
        if finished(&job).is_some() {
            for p in pods.iter().filter(|p| has_tracking(p)) {
                self.drop_tracking(p).await?;
            }
            return self.ttl(&job).await;
        }
        // 1. Count the pods that finished: recorded as uncounted, finalizers off, counted.
        let mut status = job["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let mut uncounted_ok: Vec<Value> = status
            .pointer("/uncountedTerminatedPods/succeeded")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut uncounted_failed: Vec<Value> = status
            .pointer("/uncountedTerminatedPods/failed")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut completed = parse_indexes(status["completedIndexes"].as_str().unwrap_or(""));
        let mut fail_job: Option<String> = None;
        let mut fresh = false;
        for p in &pods {
            let puid = p["metadata"]["uid"].clone();
            if !has_tracking(p) || uncounted_ok.contains(&puid) || uncounted_failed.contains(&puid) {
                continue;
            }
            match str_at(p, "/status/phase") {
                "Succeeded" => {
                    uncounted_ok.push(puid);
                    completed.extend(index_of(p));
                    fresh = true;
                }
                "Failed" => {
                    let (action, msg) = failure_action(&job, p);
                    match action {
                        "Ignore" => {
                            // Neither counted nor kept: replaced, not held against the limit.
                            self.drop_tracking(p).await?;
                        }
                        _ => {
                            if action == "FailJob" && fail_job.is_none() {
                                fail_job = Some(msg);
                            }
                            uncounted_failed.push(puid);
                            fresh = true;
                        }
                    }
                }
                _ => {}
            }
        }
        let indexed = str_at(&job, "/spec/completionMode") == "Indexed";
        if fresh {
            status["uncountedTerminatedPods"] = json!({"succeeded": uncounted_ok, "failed": uncounted_failed});
            if indexed {
                status["completedIndexes"] = json!(format_indexes(&completed));
            }
            job["status"] = status.clone();
            job = self.client.update_status(super::jobs(), &job).await?;
        }
        let counted: Vec<Value> = uncounted_ok.iter().chain(uncounted_failed.iter()).cloned().collect();
        if !counted.is_empty() {
            for p in pods.iter().filter(|p| counted.contains(&p["metadata"]["uid"]) && has_tracking(p)) {
                self.drop_tracking(p).await?;
            }
            status = job["status"].clone();
            status["succeeded"] = json!(int_at(&status, "/succeeded", 0) + uncounted_ok.len() as i64);
            status["failed"] = json!(int_at(&status, "/failed", 0) + uncounted_failed.len() as i64);
            status["uncountedTerminatedPods"] = json!({});
            if !uncounted_failed.is_empty() {
                let mut b = self.backoff.lock().expect("backoff lock");
                let e = b.entry(key.clone()).or_insert((0, Instant::now()));
                e.0 += uncounted_failed.len() as i64;
                e.1 = Instant::now();
            }
            job["status"] = status;
            job = self.client.update_status(super::jobs(), &job).await?;
        }
        self.manage(&key, job, &pods, fail_job, completed).await
    }

    /// Decide: failed, complete, suspended, or pods to make or remove; write the status.
    async fn manage(
        &self,
        key: &str,
        mut job: Value,
        pods: &[Arc<Value>],
        fail_job: Option<String>,
        completed: BTreeSet<i64>,
    ) -> ApiResult<Action> {
        let ns = str_at(&job, "/metadata/namespace").to_string();
        let mut status = job["status"].clone();
        let before = status.clone();
        let succeeded = int_at(&status, "/succeeded", 0);
        let failed = int_at(&status, "/failed", 0);
        let running: Vec<&Arc<Value>> = pods
            .iter()
            .filter(|p| !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed"))
            .collect();
        let terminating = running
            .iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()))
            .count();
        // podReplacementPolicy Failed: a terminating pod still holds its place.
        let replace_terminating = str_at(&job, "/spec/podReplacementPolicy") != "Failed";
        let active: Vec<&Arc<Value>> = running
            .into_iter()
            .filter(|p| !replace_terminating || p.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null))
            .collect();
        let indexed = str_at(&job, "/spec/completionMode") == "Indexed";
        let completions = job.pointer("/spec/completions").and_then(Value::as_i64);
        let parallelism = int_at(&job, "/spec/parallelism", 1).max(0);
        let backoff_limit = int_at(&job, "/spec/backoffLimit", 6);
        let suspended = job.pointer("/spec/suspend") == Some(&json!(true));
        let mut next: Option<Duration> = None;

        // Failure.
        let mut failure: Option<(&str, String)> = fail_job.map(|m| ("PodFailurePolicy", m));
        if failure.is_none() && failed > backoff_limit {
            failure = Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit".into()));
        }
        if failure.is_none() && !suspended {
            if let (Some(deadline), Some(start)) = (
                job.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64),
                status["startTime"].as_str().and_then(seconds_since),
            ) {
                if start >= deadline as f64 {
                    failure = Some(("DeadlineExceeded", "Job was active longer than specified deadline".into()));
                } else {
                    next = Some(Duration::from_secs_f64(deadline as f64 - start + 0.1));
                }
            }
        }
        let done = match (indexed, completions) {
            (true, Some(c)) => (0..c).all(|i| completed.contains(&i)),
            (false, Some(c)) => succeeded >= c,
            (_, None) => succeeded > 0 && active.is_empty(),
        };
        if let Some((reason, message)) = failure {
            for p in &active {
                self.client
                    .delete(super::pods(), &ns, str_at(p, "/metadata/name"), str_at(p, "/metadata/uid"))
                    .await?;
            }
            set_job_condition(&mut status, "FailureTarget", "True", reason, &message);
            set_job_condition(&mut status, "Failed", "True", reason, &message);
            status["active"] = json!(0);
            status["ready"] = json!(0);
            job["status"] = status;
            let job = self.client.update_status(super::jobs(), &job).await?;
            super::event(&self.client, &job, "Warning", reason, &message).await;
            return self.ttl(&job).await;
        }
        if done {
            for p in &active {
                self.client
                    .delete(super::pods(), &ns, str_at(p, "/metadata/name"), str_at(p, "/metadata/uid"))
                    .await?;
            }
            set_job_condition(
                &mut status,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            set_job_condition(
                &mut status,
                "Complete",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            status["completionTime"] = json!(super::runtime::now());
            status["active"] = json!(0);
            status["ready"] = json!(0);
            job["status"] = status;
            let job = self.client.update_status(super::jobs(), &job).await?;
            super::event(&self.client, &job, "Normal", "Completed", "Job completed").await;
            return self.ttl(&job).await;
        }
        if suspended {
            for p in &active {
                self.client
                    .delete(super::pods(), &ns, str_at(p, "/metadata/name"), str_at(p, "/metadata/uid"))
                    .await?;
            }
            set_job_condition(&mut status, "Suspended", "True", "JobSuspended", "Job suspended");
            status["active"] = json!(0);
            status["ready"] = json!(0);
            if status != before {
                job["status"] = status;
                self.client.update_status(super::jobs(), &job).await?;
            }
            return Ok(Action::Done);
        }
        let resumed = before
            .get("conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Suspended" && c["status"] == "True"));
        if resumed {
            set_job_condition(&mut status, "Suspended", "False", "JobResumed", "Job resumed");
            status["startTime"] = json!(super::runtime::now());
        }
        if status["startTime"].is_null() {
            status["startTime"] = json!(super::runtime::now());
            if let Some(d) = job.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_i64) {
                next = Some(Duration::from_secs(d.max(0) as u64) + Duration::from_millis(100));
            }
        }
        // Pods: after a failure, the next one waits 10 s, doubling to 6 minutes.
        let mut active_n = active.len() as i64;
        if self.expectations.satisfied(key) {
            let wait = self.backoff.lock().expect("backoff lock").get(key).map(|(n, at)| {
                let d = Duration::from_secs(10u64.saturating_mul(1 << (n - 1).clamp(0, 6))).min(Duration::from_secs(360));
                d.saturating_sub(at.elapsed())
            });
            match wait.filter(|w| !w.is_zero()) {
                Some(w) => next = Some(next.map_or(w, |n| n.min(w))),
                None => {
                    let mut to_make: Vec<Option<i64>> = Vec::new();
                    if indexed {
                        let busy: BTreeSet<i64> = active.iter().filter_map(|p| index_of(p)).collect();
                        let room = (parallelism - active_n).max(0) as usize;
                        to_make = (0..completions.unwrap_or(0))
                            .filter(|i| !completed.contains(i) && !busy.contains(i))
                            .take(room)
                            .map(Some)
                            .collect();
                    } else {
                        let want = match completions {
                            Some(c) => parallelism.min(c - succeeded).max(0),
                            None if succeeded > 0 => active_n,
                            None => parallelism,
                        };
                        if want > active_n {
                            to_make = vec![None; (want - active_n) as usize];
                        } else if want < active_n {
                            let mut extra: Vec<&&Arc<Value>> = active.iter().collect();
                            extra.sort_by_key(|p| std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").to_string()));
                            for p in extra.into_iter().take((active_n - want) as usize) {
                                self.expectations.expect_delete(key, str_at(p, "/metadata/name"));
                                self.client
                                    .delete(super::pods(), &ns, str_at(p, "/metadata/name"), str_at(p, "/metadata/uid"))
                                    .await?;
                                active_n -= 1;
                            }
                        }
                    }
                    for index in to_make {
                        let pod = self.new_pod(&job, index);
                        match self.client.create(super::pods(), &ns, pod).await {
                            Ok(p) => {
                                self.expectations.expect_add(key, str_at(&p, "/metadata/name"));
                                active_n += 1;
                                let msg = format!("Created pod: {}", str_at(&p, "/metadata/name"));
                                super::event(&self.client, &job, "Normal", "SuccessfulCreate", &msg).await;
                            }
                            Err(e) => {
                                super::event(
                                    &self.client,
                                    &job,
                                    "Warning",
                                    "FailedCreate",
                                    &format!("Error creating: {}", e.message),
                                )
                                .await;
                                next = Some(Duration::from_secs(5));
                                break;
                            }
                        }
                    }
                }
            }
        }
        status["active"] = json!(active_n);
        status["ready"] = json!(active.iter().filter(|p| ready_since(p).is_some()).count());
        status["terminating"] = json!(terminating);
        if status != before {
            job["status"] = status;
            self.client.update_status(super::jobs(), &job).await?;
        }
        Ok(next.map_or(Action::Done, Action::After))
    }

    /// A pod for the Job (for `index`, when Indexed).
    fn new_pod(&self, job: &Value, index: Option<i64>) -> Value {
        let t = &job["spec"]["template"];
        let mut meta = t["metadata"].clone();
        if !meta.is_object() {
            meta = json!({});
        }
        let name = str_at(job, "/metadata/name");
        let mut spec = t["spec"].clone();
        match index {
            Some(i) => {
                meta["generateName"] = json!(format!("{name}-{i}-"));
                if !meta["annotations"].is_object() {
                    meta["annotations"] = json!({});
                }
                meta["annotations"][INDEX] = json!(i.to_string());
                if !meta["labels"].is_object() {
                    meta["labels"] = json!({});
                }
                meta["labels"][INDEX] = json!(i.to_string());
                if spec["hostname"].is_null() {
                    spec["hostname"] = json!(format!("{name}-{i}"));
                }
                // Every container learns its index (JOB_COMPLETION_INDEX), as the real
                // controller injects it.
                for list in ["containers", "initContainers"] {
                    for c in spec[list].as_array_mut().into_iter().flatten() {
                        if !c["env"].is_array() {
                            c["env"] = json!([]);
                        }
                        let env = c["env"].as_array_mut().expect("an array");
                        if !env.iter().any(|e| e["name"] == "JOB_COMPLETION_INDEX") {
                            env.push(json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath": format!("metadata.annotations['{INDEX}']")}}}));
                        }
                    }
                }
            }
            None => meta["generateName"] = json!(format!("{name}-")),
        }
        meta["namespace"] = job["metadata"]["namespace"].clone();
        meta["ownerReferences"] = json!([controller_ref(job)]);
        meta["finalizers"] = json!([TRACKING]);
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    }

    /// A finished Job goes `ttlSecondsAfterFinished` after it finished (the TTL controller's
    /// part), its pods with it.
    async fn ttl(&self, job: &Value) -> ApiResult<Action> {
        let Some(ttl) = job.pointer("/spec/ttlSecondsAfterFinished").and_then(Value::as_i64) else {
            return Ok(Action::Done);
        };
        let at = job
            .pointer("/status/completionTime")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| {
                job.pointer("/status/conditions")
                    .and_then(Value::as_array)?
                    .iter()
                    .find(|c| c["type"] == "Failed" && c["status"] == "True")
                    .and_then(|c| c["lastTransitionTime"].as_str().map(String::from))
            });
        let since = at.as_deref().and_then(seconds_since).unwrap_or(0.0);
        if since < ttl as f64 {
            return Ok(Action::After(Duration::from_secs_f64(ttl as f64 - since + 0.1)));
        }
        self.client
            .delete_with(
                super::jobs(),
                str_at(job, "/metadata/namespace"),
                str_at(job, "/metadata/name"),
                str_at(job, "/metadata/uid"),
                "Foreground",
            )
            .await?;
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sets_read_and_print_as_kubernetes_writes_them() {
        let s = parse_indexes("0,2-4,7");
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), [0, 2, 3, 4, 7]);
        assert_eq!(format_indexes(&s), "0,2-4,7");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn pod_failure_policy_rules_match_exit_codes_and_conditions() {
        let job = json!({"spec": {"podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        ]}}});
        let pod = |code: i64, cond: Option<&str>| {
            let mut p = json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code}}}]}});
            if let Some(c) = cond {
                p["status"]["conditions"] = json!([{"type": c, "status": "True"}]);
            }
            p
        };
        let (a, msg) = failure_action(&job, &pod(42, None));
        assert_eq!(a, "FailJob");
        assert_eq!(
            msg,
            "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
        );
        assert_eq!(failure_action(&job, &pod(1, None)).0, "Count");
        assert_eq!(failure_action(&job, &pod(137, Some("DisruptionTarget"))).0, "Ignore");
    }
}
