//! Deletion as Kubernetes does it: an object with finalizers is only marked (its
//! `deletionTimestamp` set) until they are all removed; when an object goes, its dependents
//! (objects whose `ownerReferences` name its uid) go too — after it (`Background`, the default),
//! before it (`Foreground`), or they stay with the reference removed (`Orphan`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{json, Value};

use super::objects::{from_kv, now, stored_bytes, write_error};
use super::resources::{Resource, RESOURCES};
use super::status::{ApiError, ApiResult};
use crate::store::{KeyValue, ListOptions, Store};

/// What happens to an object's dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// The owner goes now, its dependents after.
    Background,
    /// The dependents go first, then the owner.
    Foreground,
    /// The dependents stay, without their reference to the owner.
    Orphan,
}

/// The policy of a DeleteOptions body (and the deprecated `orphanDependents`).
pub fn propagation(opts: &Value) -> ApiResult<Propagation> {
    match opts.get("propagationPolicy").and_then(Value::as_str) {
        None | Some("") => Ok(if opts.get("orphanDependents") == Some(&json!(true)) {
            Propagation::Orphan
        } else {
            Propagation::Background
        }),
        Some("Background") => Ok(Propagation::Background),
        Some("Foreground") => Ok(Propagation::Foreground),
        Some("Orphan") => Ok(Propagation::Orphan),
        Some(p) => Err(ApiError::bad_request(format!(
            "propagationPolicy {p:?} is not one of Background, Foreground, Orphan"
        ))),
    }
}

/// What a deletion did.
pub enum Outcome {
    /// Finalizers remain: the object is marked, with this state.
    Marked(Value),
    /// The object is gone; its last state.
    Deleted(KeyValue),
}

fn finalizers(o: &Value) -> usize {
    o.pointer("/metadata/finalizers").and_then(Value::as_array).map_or(0, Vec::len)
}

/// Every object whose ownerReferences name `uid`.
async fn dependents(store: &dyn Store, uid: &str) -> ApiResult<Vec<(&'static Resource, KeyValue, Value)>> {
    let mut out = Vec::new();
    for res in RESOURCES.iter().filter(|r| !super::resources::is_view(r)) {
        let page = store.list(&res.prefix(None), ListOptions::default()).await?;
        for kv in page.items {
            let o = from_kv(res, &kv)?;
            let owned = o
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid));
            if owned {
                out.push((res, kv, o));
            }
        }
    }
    Ok(out)
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Delete the object stored as `old` (compared on `expected`), as its finalizers and `policy`
/// say.
pub fn remove<'a>(
    store: &'a Arc<dyn Store>,
    res: &'static Resource,
    old: KeyValue,
    expected: i64,
    policy: Propagation,
) -> Boxed<'a, ApiResult<Outcome>> {
    Box::pin(async move {
        let obj = from_kv(res, &old)?;
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        if finalizers(&obj) > 0 {
            if obj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
                return Ok(Outcome::Marked(obj));
            }
            let mut marked = obj.clone();
            marked["metadata"]["deletionTimestamp"] = json!(now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let kv = store
                .update(&old.key, stored_bytes(&marked), expected)
                .await
                .map_err(write_error(res, &name))?;
            return Ok(Outcome::Marked(from_kv(res, &kv)?));
        }
        let uid = obj.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_string();
        match policy {
            Propagation::Foreground => {
                for (r, kv, _) in dependents(store.as_ref(), &uid).await? {
                    let rev = kv.mod_revision;
                    match remove(store, r, kv, rev, Propagation::Foreground).await {
                        Ok(_) => {}
                        Err(e) if e.reason == "NotFound" => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Propagation::Orphan => {
                for (r, kv, mut o) in dependents(store.as_ref(), &uid).await? {
                    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|x| x["uid"] != uid.as_str());
                        if refs.is_empty() {
                            // An empty list is no list, as the real server writes it.
                            if let Some(m) = o["metadata"].as_object_mut() {
                                m.remove("ownerReferences");
                            }
                        }
                    }
                    let n = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
                    store
                        .update(&kv.key, stored_bytes(&o), kv.mod_revision)
                        .await
                        .map_err(write_error(r, &n))?;
                }
            }
            Propagation::Background => {}
        }
        let gone = store.delete(&old.key, expected).await.map_err(write_error(res, &name))?;
        if policy == Propagation::Background {
            collect(store.clone(), uid);
        }
        Ok(Outcome::Deleted(gone))
    })
}

/// Delete the dependents of `uid` in the background (their own dependents after them).
pub fn collect(store: Arc<dyn Store>, uid: String) {
    tokio::spawn(async move {
        let deps = match dependents(store.as_ref(), &uid).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(owner = %uid, error = %e.message, "garbage collection: listing dependents");
                return;
            }
        };
        for (r, kv, _) in deps {
            let rev = kv.mod_revision;
            if let Err(e) = remove(&store, r, kv, rev, Propagation::Background).await {
                if e.reason != "NotFound" {
                    tracing::warn!(owner = %uid, error = %e.message, "garbage collection: deleting a dependent");
                }
            }
        }
    });
}
