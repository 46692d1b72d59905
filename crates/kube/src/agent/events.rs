//! Events about objects (`kubectl describe` and `kubectl get events` show them), written as
//! the kubelet and the scheduler write theirs: core/v1 Events named `<object>.<random hex>`.

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
    let suffix: String = uuid().replace('-', "").chars().take(16).collect();
    let ev_name = format!("{name}.{suffix}");
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
