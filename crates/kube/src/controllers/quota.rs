//! The resource quota controller: each ResourceQuota's `status.hard` and `status.used` (what
//! the namespace's unfinished pods take of each tracked resource), kept as pods come and go.
//! Enforcement is the API server's admission (`apiserver::quota`).

use std::sync::Arc;

use serde_json::{json, Value};

use super::runtime::{split_key, str_at, Action, Client, Queue};
use super::Informers;
use crate::apiserver::quota::{counts, format, pod_usage};
use crate::apiserver::status::ApiResult;

/// The controller.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
}

impl Controller {
    /// A pod changed: its namespace's quotas are looked at again.
    pub fn pod_changed(&self, pod: &Value) {
        for q in self.informers.quotas.list(str_at(pod, "/metadata/namespace")) {
            self.queue.add(super::runtime::key_of(&q));
        }
    }

    /// Write one quota's usage.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let Some(q) = self.informers.quotas.get(&key) else {
            return Ok(Action::Done);
        };
        let (ns, _) = split_key(&key);
        let pods: Vec<Arc<Value>> = self.informers.pods.list(ns).into_iter().filter(|p| counts(p)).collect();
        let mut used = serde_json::Map::new();
        for res in q
            .pointer("/spec/hard")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let total: i64 = pods.iter().filter_map(|p| pod_usage(p, res)).sum();
            used.insert(res.clone(), json!(format(res, total)));
        }
        let status = json!({"hard": q["spec"]["hard"], "used": used});
        if q["status"] != status {
            let mut o = (*q).clone();
            o["status"] = status;
            self.client.update_status(super::quotas(), &o).await?;
        }
        Ok(Action::Done)
    }
}
