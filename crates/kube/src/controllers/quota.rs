//! The resource quota controller: each ResourceQuota's `status.hard` and `status.used` (what
//! the namespace's unfinished pods, claims and other objects take of each resource it holds),
//! kept as they come and go (kinds no informer caches are counted again every 10 s).
//! Enforcement is the API server's admission (`apiserver::quota`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::runtime::{split_key, str_at, Action, Client, Queue};
use super::Informers;
use crate::apiserver::quota::{counted, counts_object, format, selects, usage};
use crate::apiserver::status::ApiResult;

/// The controller.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
}

impl Controller {
    /// An object changed: its namespace's quotas are looked at again.
    pub fn object_changed(&self, o: &Value) {
        for q in self.informers.quotas.list(str_at(o, "/metadata/namespace")) {
            self.queue.add(super::runtime::key_of(&q));
        }
    }

    /// Write one quota's usage.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let Some(q) = self.informers.quotas.get(&key) else {
            return Ok(Action::Done);
        };
        let (ns, _) = split_key(&key);
        let mut used = serde_json::Map::new();
        let mut unwatched = false;
        let mut objects: BTreeMap<&'static str, Vec<Arc<Value>>> = BTreeMap::new();
        for res in q
            .pointer("/spec/hard")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let Some(kind) = counted(res) else {
                continue;
            };
            let listed = match objects.get(kind.plural) {
                Some(l) => l,
                None => {
                    let informer = self
                        .informers
                        .all()
                        .into_iter()
                        .find(|i| i.resource().group == kind.group && i.resource().plural == kind.plural);
                    let list: Vec<Arc<Value>> = match informer {
                        Some(i) => i.list(ns),
                        None => {
                            // A kind no informer caches: read, and read again in a while.
                            unwatched = true;
                            let page = self.client.store().list(&kind.prefix(Some(ns)), Default::default()).await?;
                            page.items
                                .iter()
                                .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
                                .map(Arc::new)
                                .collect()
                        }
                    };
                    objects.entry(kind.plural).or_insert(list)
                }
            };
            let total: i64 = listed
                .iter()
                .filter(|o| counts_object(kind, o) && selects(&q, kind, o))
                .filter_map(|o| usage(o, res))
                .sum();
            used.insert(res.clone(), json!(format(res, total)));
        }
        let status = json!({"hard": q["spec"]["hard"], "used": used});
        if q["status"] != status {
            let mut o = (*q).clone();
            o["status"] = status;
            self.client.update_status(super::quotas(), &o).await?;
        }
        Ok(if unwatched {
            Action::After(std::time::Duration::from_secs(10))
        } else {
            Action::Done
        })
    }
}
