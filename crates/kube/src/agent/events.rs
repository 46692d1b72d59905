//! Events about objects (`kubectl describe` and `kubectl get events` show them), written as
//! the kubelet and the scheduler write theirs: core/v1 Events named `<object>.<nanoseconds in
//! hex>` (so names sort as the events happened), gone an hour after they were last seen, as
//! the real server's `--event-ttl` keeps them.

use serde_json::{json, Value};

use crate::apiserver::objects::{now, stored_bytes, uuid};
use crate::store::Store;

/// Record an event about `obj` (`kind`: `Normal` or `Warning`) from `component`. A failure to
/// write one is logged, never an error of the caller.
pub async fn record(store: &dyn Store, obj: &Value, kind: &str, reason: &str, message: &str, component: &str) {
    record_at(store, obj, None, kind, reason, message, component).await
}

/// As [`record`], about one field of the object (`spec.containers{web}`).
pub async fn record_at(store: &dyn Store, obj: &Value, field_path: Option<&str>, kind: &str, reason: &str, message: &str, component: &str) {
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let ev_name = format!("{name}.{nanos:x}");
    let t = now();
    let mut involved = json!({
        "kind": obj["kind"].as_str().unwrap_or("Pod"),
        "namespace": ns,
        "name": name,
        "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
        "apiVersion": obj["apiVersion"].as_str().unwrap_or("v1"),
    });
    if let Some(f) = field_path {
        involved["fieldPath"] = json!(f);
    }
    let ev = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": ev_name, "namespace": ns, "uid": uuid(), "creationTimestamp": t},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": t,
        "lastTimestamp": t,
        "count": 1,
        "type": kind,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    let key = format!("/registry/core/events/{ns}/{ev_name}");
    if let Err(e) = store.create(&key, stored_bytes(&ev)).await {
        tracing::warn!(%reason, error = %e, "recording an event");
    }
}

/// How long an event is kept after it was last seen.
pub const EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Delete the events last seen more than [`EVENT_TTL`] ago; how many went.
pub async fn expire(store: &dyn Store) -> usize {
    let Ok(page) = store.list("/registry/core/events/", Default::default()).await else {
        return 0;
    };
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(EVENT_TTL).unwrap_or_default();
    let mut gone = 0;
    for kv in page.items {
        let Ok(ev) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let last = ["lastTimestamp", "eventTime", "firstTimestamp"]
            .iter()
            .find_map(|k| ev[*k].as_str())
            .or_else(|| ev.pointer("/metadata/creationTimestamp").and_then(Value::as_str))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if last.is_some_and(|t| t < cutoff) && store.delete(&kv.key, kv.mod_revision).await.is_ok() {
            gone += 1;
        }
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_go_an_hour_after_they_were_last_seen() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::redb::RedbStore::open(&dir.path().join("s.redb")).unwrap();
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "default", "uid": "u"}});
        record(&store, &pod, "Normal", "Fresh", "now", "kubelet").await;
        let old = json!({"metadata": {"name": "p.1", "namespace": "default"}, "lastTimestamp": "2020-01-01T00:00:00Z"});
        store.create("/registry/core/events/default/p.1", stored_bytes(&old)).await.unwrap();
        assert_eq!(expire(&store).await, 1);
        let left = store.list("/registry/core/events/", Default::default()).await.unwrap().items;
        assert_eq!(left.len(), 1);
        assert!(String::from_utf8_lossy(&left[0].value).contains("Fresh"));
    }
}
