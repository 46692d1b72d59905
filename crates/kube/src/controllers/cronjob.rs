//! The CronJob controller: at each time the schedule names (in `timeZone`), a Job from the
//! template, named `<cronjob>-<minutes since the epoch>` as the real controller names it;
//! `concurrencyPolicy` (Allow, Forbid: skip while one runs, Replace: the running one goes),
//! `startingDeadlineSeconds` (a start missed by more is skipped), `suspend`, and the history
//! limits on finished Jobs; status `active`, `lastScheduleTime`, `lastSuccessfulTime`. It
//! wakes at the next scheduled time, not on a timer over everything.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::runtime::{controller_of, controller_ref, int_at, owner_key, split_key, str_at, Action, Client, Queue};
use super::Informers;
use crate::apiserver::status::ApiResult;
use crate::cron::{zone, Schedule};

fn finished(job: &Value) -> Option<&str> {
    job.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
        .and_then(|c| c["type"].as_str())
}

fn ts(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// A time in a zone as Go's RFC 3339 writes it (`Z` for UTC).
fn rfc3339(t: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    let s = t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
    match s.strip_suffix("+00:00") {
        Some(utc) => format!("{utc}Z"),
        None => s,
    }
}

/// The controller.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
}

impl Controller {
    /// Queue the CronJob a Job belongs to.
    pub fn job_changed(&self, job: &Value) {
        if let Some(k) = owner_key(job, "CronJob") {
            self.queue.add(k);
        }
    }

    /// Start what is due, tidy the history, write the status; wake at the next time.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let Some(cj) = self.informers.cron_jobs.get(&key) else {
            return Ok(Action::Done);
        };
        let cj = (*cj).clone();
        if cj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
            return Ok(Action::Done);
        }
        let (ns, name) = split_key(&key);
        let (Ok(schedule), Ok(tz)) = (
            Schedule::parse(str_at(&cj, "/spec/schedule")),
            zone(cj.pointer("/spec/timeZone").and_then(Value::as_str)),
        ) else {
            super::event(
                &self.client,
                &cj,
                "Warning",
                "UnparseableSchedule",
                "unparseable schedule or time zone",
            )
            .await;
            return Ok(Action::Done);
        };
        let uid = cj["metadata"]["uid"].clone();
        let mut jobs: Vec<Arc<Value>> = self
            .informers
            .jobs
            .list(ns)
            .into_iter()
            .filter(|j| controller_of(j).is_some_and(|r| r["uid"] == uid))
            .collect();
        jobs.sort_by_key(|j| str_at(j, "/metadata/creationTimestamp").to_string());
        // History: finished Jobs beyond the limits go, oldest first.
        for (kind, limit) in [
            ("Complete", int_at(&cj, "/spec/successfulJobsHistoryLimit", 3)),
            ("Failed", int_at(&cj, "/spec/failedJobsHistoryLimit", 1)),
        ] {
            let done: Vec<&Arc<Value>> = jobs.iter().filter(|j| finished(j) == Some(kind)).collect();
            let excess = done.len() as i64 - limit.max(0);
            for j in done.into_iter().take(excess.max(0) as usize) {
                self.client
                    .delete_with(
                        super::jobs(),
                        ns,
                        str_at(j, "/metadata/name"),
                        str_at(j, "/metadata/uid"),
                        "Background",
                    )
                    .await?;
            }
        }
        let mut active: Vec<Arc<Value>> = jobs
            .iter()
            .filter(|j| finished(j).is_none() && j.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null))
            .cloned()
            .collect();
        let last_success = jobs
            .iter()
            .filter(|j| finished(j) == Some("Complete"))
            .filter_map(|j| j.pointer("/status/completionTime").and_then(Value::as_str).map(String::from))
            .max();
        let now = Timestamp::now();
        let mut last_schedule = cj.pointer("/status/lastScheduleTime").and_then(Value::as_str).map(String::from);
        if cj.pointer("/spec/suspend") != Some(&json!(true)) {
            let since = last_schedule
                .as_deref()
                .or(cj.pointer("/metadata/creationTimestamp").and_then(Value::as_str))
                .and_then(ts)
                .unwrap_or(now);
            let (due, missed) = schedule.missed(since, now, &tz);
            if missed > 100 {
                super::event(
                    &self.client,
                    &cj,
                    "Warning",
                    "TooManyMissedTimes",
                    &format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
                )
                .await;
            }
            if let Some(t) = due {
                let late = (now.as_second() - t.as_second()) as f64;
                let deadline = cj.pointer("/spec/startingDeadlineSeconds").and_then(Value::as_i64);
                let policy = str_at(&cj, "/spec/concurrencyPolicy");
                if deadline.is_some_and(|d| late > d as f64) {
                    let msg = format!("Missed scheduled time to start a job: {}", rfc3339(t, &tz));
                    super::event(&self.client, &cj, "Warning", "MissSchedule", &msg).await;
                    last_schedule = Some(t.to_string());
                } else if policy == "Forbid" && !active.is_empty() {
                    // Skipped; tried again while the window lasts.
                    super::event(
                        &self.client,
                        &cj,
                        "Normal",
                        "JobAlreadyActive",
                        "Not starting job because prior execution is running and concurrency policy is Forbid",
                    )
                    .await;
                } else {
                    if policy == "Replace" {
                        for j in active.drain(..) {
                            self.client
                                .delete_with(
                                    super::jobs(),
                                    ns,
                                    str_at(&j, "/metadata/name"),
                                    str_at(&j, "/metadata/uid"),
                                    "Background",
                                )
                                .await?;
                            let msg = format!("Deleted job {}", str_at(&j, "/metadata/name"));
                            super::event(&self.client, &cj, "Normal", "SuccessfulDelete", &msg).await;
                        }
                    }
                    let job = self.new_job(&cj, name, t, &tz);
                    match self.client.create(super::jobs(), ns, job).await {
                        Ok(j) => {
                            let msg = format!("Created job {}", str_at(&j, "/metadata/name"));
                            super::event(&self.client, &cj, "Normal", "SuccessfulCreate", &msg).await;
                            active.push(Arc::new(j));
                        }
                        Err(e) if e.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                    last_schedule = Some(t.to_string());
                }
            }
        }
        let refs: Vec<Value> = active
            .iter()
            .map(|j| {
                json!({"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"], "namespace": ns,
                    "uid": j["metadata"]["uid"], "resourceVersion": j["metadata"]["resourceVersion"]})
            })
            .collect();
        let mut status = cj["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let before = status.clone();
        let names = |v: &Value| -> Vec<Value> { v.as_array().into_iter().flatten().map(|r| r["uid"].clone()).collect() };
        if names(&status["active"]) != names(&json!(refs)) {
            status["active"] = json!(refs);
        }
        if refs.is_empty() {
            status.as_object_mut().map(|m| m.remove("active"));
        }
        if let Some(t) = last_schedule {
            // Kubernetes writes whole seconds.
            status["lastScheduleTime"] = json!(ts(&t).map_or(t, |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()));
        }
        if let Some(t) = last_success {
            status["lastSuccessfulTime"] = json!(t);
        }
        if status != before {
            let mut o = cj.clone();
            o["status"] = status;
            self.client.update_status(super::cron_jobs(), &o).await?;
        }
        if cj.pointer("/spec/suspend") == Some(&json!(true)) {
            return Ok(Action::Done);
        }
        Ok(match schedule.next(now, &tz) {
            Some(t) => Action::After(Duration::from_secs((t.as_second() - now.as_second()).max(1) as u64) + Duration::from_millis(200)),
            None => Action::Done,
        })
    }

    fn new_job(&self, cj: &Value, name: &str, t: Timestamp, tz: &jiff::tz::TimeZone) -> Value {
        let tpl = &cj["spec"]["jobTemplate"];
        let mut meta = tpl["metadata"].clone();
        if !meta.is_object() {
            meta = json!({});
        }
        meta["name"] = json!(format!("{name}-{}", t.as_second() / 60));
        meta["namespace"] = cj["metadata"]["namespace"].clone();
        if !meta["annotations"].is_object() {
            meta["annotations"] = json!({});
        }
        meta["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] = json!(rfc3339(t, tz));
        meta["ownerReferences"] = json!([controller_ref(cj)]);
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": tpl["spec"]})
    }
}
