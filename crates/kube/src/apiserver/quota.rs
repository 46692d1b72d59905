//! Pod admission by the namespace's LimitRanges and ResourceQuotas, as the LimitRanger and
//! ResourceQuota admission plugins do it:
//!
//! - LimitRange `Container` limits give containers their `defaultRequest` and `default`
//!   (limits) when they set none, and refuse one below `min` or above `max`;
//! - ResourceQuota `hard` on pods' compute resources (`requests.cpu`/`cpu`,
//!   `requests.memory`/`memory`, `limits.cpu`, `limits.memory`), on storage
//!   (`requests.storage`, and per class `<class>.storageclass.storage.k8s.io/requests.storage`
//!   and `.../persistentvolumeclaims`), on object counts (`pods`, `services`,
//!   `services.nodeports`, `services.loadbalancers`, `configmaps`, `secrets`,
//!   `persistentvolumeclaims`, `resourcequotas`, and `count/<resource>[.<group>]` for every
//!   namespaced kind served): an object that would take the namespace past one is refused
//!   (403, the real server's wording), as is a pod that leaves out a resource a quota tracks.
//!   A quota's `scopes` and `scopeSelector` (Terminating, NotTerminating, BestEffort,
//!   NotBestEffort, PriorityClass) narrow which pods it counts. `status.used` is kept by the
//!   quota controller (`controllers::quota`).

use serde_json::{json, Value};

use super::resources::{Resource, RESOURCES};
use super::status::{ApiError, ApiResult};
use crate::quantity;
use crate::store::Store;

/// Pods' compute resources a quota may hold (with `pods` and `count/pods`).
const POD_COMPUTE: &[&str] = &["requests.cpu", "cpu", "requests.memory", "memory", "limits.cpu", "limits.memory"];

/// The named (not `count/...`) object counts and which resource (plural) each counts.
const NAMED_COUNTS: &[(&str, &str)] = &[
    ("pods", "pods"),
    ("services", "services"),
    ("services.nodeports", "services"),
    ("services.loadbalancers", "services"),
    ("configmaps", "configmaps"),
    ("secrets", "secrets"),
    ("persistentvolumeclaims", "persistentvolumeclaims"),
    ("resourcequotas", "resourcequotas"),
];

const CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// The kind (its served resource) a quota resource name is about; none: not one enforced here.
pub fn counted(resource: &str) -> Option<&'static Resource> {
    let storage = |plural: &str| {
        RESOURCES
            .iter()
            .find(|r| r.group.is_empty() && r.plural == plural && r.namespaced && !super::resources::is_view(r))
    };
    // Extended resources are quota'd by request only (`requests.nvidia.com/gpu`), as Kubernetes
    // does: they cannot be overcommitted.
    if POD_COMPUTE.contains(&resource) || resource.strip_prefix("requests.").is_some_and(crate::scheduler::is_extended) {
        return storage("pods");
    }
    if let Some((_, plural)) = NAMED_COUNTS.iter().find(|(n, _)| *n == resource) {
        return storage(plural);
    }
    if resource == "requests.storage" {
        return storage("persistentvolumeclaims");
    }
    if let Some((class, what)) = resource.split_once(CLASS_SUFFIX) {
        let valid = super::resources::is_dns_subdomain(class) && matches!(what, "requests.storage" | "persistentvolumeclaims");
        return valid.then(|| storage("persistentvolumeclaims")).flatten();
    }
    let named = resource.strip_prefix("count/")?;
    let (plural, group) = named.split_once('.').unwrap_or((named, ""));
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural && r.namespaced && !super::resources::is_view(r))
}

/// How much of quota resource `resource` an object of its kind takes (none: a pod that leaves
/// the resource out).
pub fn usage(object: &Value, resource: &str) -> Option<i64> {
    let sum = |kind: &str, res: &str| -> Option<i64> {
        let mut total = 0;
        for c in object.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
            // By key, not pointer: an extended resource's name has a `/`.
            let q = c
                .pointer(&format!("/resources/{kind}"))
                .and_then(|m| m.get(res))
                .and_then(Value::as_str)?;
            total += match res {
                "cpu" => quantity::milli_cpu(q)?,
                "memory" => quantity::bytes(q)?,
                _ => quantity::parse(q)?.ceil() as i64,
            };
        }
        Some(total)
    };
    let class = object.pointer("/spec/storageClassName").and_then(Value::as_str).unwrap_or("");
    let storage = || {
        object
            .pointer("/spec/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(quantity::bytes)
            .unwrap_or(0)
    };
    let service_type = object.pointer("/spec/type").and_then(Value::as_str).unwrap_or("ClusterIP");
    Some(match resource {
        "requests.cpu" | "cpu" => sum("requests", "cpu")?,
        "requests.memory" | "memory" => sum("requests", "memory")?,
        "limits.cpu" => sum("limits", "cpu")?,
        "limits.memory" => sum("limits", "memory")?,
        // A pod that asks for none of an extended resource takes none of it.
        r if r.strip_prefix("requests.").is_some_and(crate::scheduler::is_extended) => crate::scheduler::requests(object)
            .ext
            .get(&r["requests.".len()..])
            .copied()
            .unwrap_or(0),
        "requests.storage" => storage(),
        "services.nodeports" if matches!(service_type, "NodePort" | "LoadBalancer") => object
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .map_or(0, |p| p.len() as i64),
        "services.nodeports" => 0,
        "services.loadbalancers" => i64::from(service_type == "LoadBalancer"),
        r => match r.split_once(CLASS_SUFFIX) {
            Some((c, "requests.storage")) if c == class => storage(),
            Some((c, _)) if c == class => 1,
            Some(_) => 0,
            None => 1,
        },
    })
}

/// How much of a pod resource a pod takes (the pod-only view of [`usage`]).
pub fn pod_usage(pod: &Value, resource: &str) -> Option<i64> {
    usage(pod, resource)
}

/// Is the pod BestEffort (no requests or limits on any container)?
fn best_effort(pod: &Value) -> bool {
    ["containers", "initContainers"].iter().all(|list| {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .all(|c| {
                ["requests", "limits"].iter().all(|k| {
                    c.pointer(&format!("/resources/{k}"))
                        .and_then(Value::as_object)
                        .is_none_or(|m| m.is_empty())
                })
            })
    })
}

/// A quota's scopes, each as (scope, operator, values): `spec.scopes` (as `Exists`) and
/// `spec.scopeSelector.matchExpressions`.
fn scopes(quota: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| (s.to_string(), "Exists".to_string(), Vec::new()))
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let values = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
        out.push((
            e["scopeName"].as_str().unwrap_or("").to_string(),
            e["operator"].as_str().unwrap_or("").to_string(),
            values,
        ));
    }
    out
}

/// Does the quota count `object` (of kind `res`)? Scopes select pods; a quota with scopes
/// tracks only pod resources (its validation sees to that).
pub fn selects(quota: &Value, res: &Resource, object: &Value) -> bool {
    let scopes = scopes(quota);
    if scopes.is_empty() {
        return true;
    }
    if res.kind != "Pod" {
        return false;
    }
    scopes.iter().all(|(scope, op, values)| {
        let terminating = object
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|d| d >= 0);
        let matched = match scope.as_str() {
            "Terminating" => terminating,
            "NotTerminating" => !terminating,
            "BestEffort" => best_effort(object),
            "NotBestEffort" => !best_effort(object),
            "PriorityClass" => {
                let class = object.pointer("/spec/priorityClassName").and_then(Value::as_str).unwrap_or("");
                return match op.as_str() {
                    "In" => values.iter().any(|v| v == class),
                    "NotIn" => !values.iter().any(|v| v == class),
                    "Exists" => !class.is_empty(),
                    "DoesNotExist" => class.is_empty(),
                    _ => false,
                };
            }
            _ => false,
        };
        match op.as_str() {
            "DoesNotExist" => !matched,
            _ => matched,
        }
    })
}

/// A quota spec's faults: resources not enforced here, amounts that are not quantities,
/// scopes unknown, conflicting or applied to resources they cannot select.
pub fn validate(o: &Value) -> Vec<super::status::Cause> {
    use super::resources::cause;
    let mut causes = Vec::new();
    let scopes = scopes(o);
    for (k, v) in o.pointer("/spec/hard").and_then(Value::as_object).into_iter().flatten() {
        if counted(k).is_none() {
            causes.push(cause(
                "FieldValueNotSupported",
                format!("spec.hard[{k}]"),
                format!("Unsupported value: \"{k}\": this server enforces pod compute resources, storage requests and object counts"),
            ));
            continue;
        }
        if v.as_str().is_none_or(|q| crate::quantity::parse(q).is_none()) {
            causes.push(cause(
                "FieldValueInvalid",
                format!("spec.hard[{k}]"),
                format!("Invalid value: {v}: must be a quantity"),
            ));
        }
        for (scope, _, _) in &scopes {
            let pod_count = matches!(k.as_str(), "pods" | "count/pods");
            let ok = match scope.as_str() {
                "BestEffort" => pod_count,
                _ => pod_count || POD_COMPUTE.contains(&k.as_str()),
            };
            if !ok {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("spec.hard[{k}]"),
                    format!("Invalid value: \"{k}\": unsupported scope applied to resource"),
                ));
            }
        }
    }
    let names: Vec<&str> = scopes.iter().map(|(s, _, _)| s.as_str()).collect();
    for (i, (scope, op, values)) in scopes.iter().enumerate() {
        let at = "spec.scopeSelector.matchExpressions";
        match scope.as_str() {
            "Terminating" | "NotTerminating" | "BestEffort" | "NotBestEffort" => {
                if !matches!(op.as_str(), "Exists" | "DoesNotExist") || !values.is_empty() {
                    causes.push(cause(
                        "FieldValueInvalid",
                        format!("{at}[{i}].operator"),
                        format!("Invalid value: \"{op}\": must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort or ResourceQuotaScopeNotBestEffort"),
                    ));
                }
            }
            "PriorityClass" => {
                let needs_values = matches!(op.as_str(), "In" | "NotIn");
                if !matches!(op.as_str(), "In" | "NotIn" | "Exists" | "DoesNotExist") {
                    causes.push(cause(
                        "FieldValueNotSupported",
                        format!("{at}[{i}].operator"),
                        format!("Unsupported value: \"{op}\": supported values: \"DoesNotExist\", \"Exists\", \"In\", \"NotIn\""),
                    ));
                } else if needs_values == values.is_empty() {
                    causes.push(cause(
                        "FieldValueRequired",
                        format!("{at}[{i}].values"),
                        "Required value: must be at least one value when `operator` is 'In' or 'NotIn' for scope selector, and no values otherwise",
                    ));
                }
            }
            other => causes.push(cause(
                "FieldValueNotSupported",
                "spec.scopes",
                format!("Unsupported value: \"{other}\": supported values: \"BestEffort\", \"NotBestEffort\", \"NotTerminating\", \"PriorityClass\", \"Terminating\""),
            )),
        }
    }
    for (a, b) in [("Terminating", "NotTerminating"), ("BestEffort", "NotBestEffort")] {
        if names.contains(&a) && names.contains(&b) {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.scopes",
                format!("Invalid value: [\"{a}\",\"{b}\"]: conflicting scopes"),
            ));
        }
    }
    causes
}

/// A quota's amount of `resource` (millicores for cpu, bytes for memory, a count otherwise).
pub fn amount(resource: &str, q: &str) -> Option<i64> {
    if resource.ends_with("cpu") {
        quantity::milli_cpu(q)
    } else if resource.ends_with("memory") || resource.ends_with("storage") {
        quantity::bytes(q)
    } else {
        quantity::parse(q).map(|v| v as i64)
    }
}

/// An amount as Kubernetes prints it.
pub fn format(resource: &str, v: i64) -> String {
    if resource.ends_with("cpu") {
        return if v % 1000 == 0 { (v / 1000).to_string() } else { format!("{v}m") };
    }
    if resource.ends_with("memory") || resource.ends_with("storage") {
        for (unit, size) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if v != 0 && v % size == 0 {
                return format!("{}{unit}", v / size);
            }
        }
    }
    v.to_string()
}

/// Whether a pod counts against quota (not finished).
pub fn counts(pod: &Value) -> bool {
    !matches!(pod.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

async fn list(store: &dyn Store, prefix: &str) -> ApiResult<Vec<Value>> {
    let page = store.list(prefix, Default::default()).await?;
    Ok(page.items.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
}

/// Apply the namespace's LimitRanges to a new pod, then its ResourceQuotas.
pub async fn admit_pod(store: &dyn Store, pod: &mut Value, ns: &str) -> ApiResult<()> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let forbidden = |msg: String| ApiError::forbidden("pods", "", "pods", &name, msg);
    for lr in list(store, &format!("/registry/core/limitranges/{ns}/")).await? {
        for l in lr.pointer("/spec/limits").and_then(Value::as_array).into_iter().flatten() {
            if l["type"] != "Container" {
                continue;
            }
            for c in pod
                .pointer_mut("/spec/containers")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if !c["resources"].is_object() {
                    c["resources"] = json!({});
                }
                for (field, into) in [("default", "limits"), ("defaultRequest", "requests")] {
                    for (res, q) in l[field].as_object().into_iter().flatten() {
                        if !c["resources"][into].is_object() {
                            c["resources"][into] = json!({});
                        }
                        if c["resources"][into].get(res).is_none() {
                            c["resources"][into][res] = q.clone();
                        }
                    }
                }
                // A limit without a request: the request is the limit.
                let limits = c["resources"]["limits"].as_object().cloned().unwrap_or_default();
                for (res, q) in limits {
                    if !c["resources"]["requests"].is_object() {
                        c["resources"]["requests"] = json!({});
                    }
                    if c["resources"]["requests"].get(&res).is_none() {
                        c["resources"]["requests"][&res] = q;
                    }
                }
                for (res, q) in l["min"].as_object().into_iter().flatten() {
                    let min = q.as_str().and_then(|q| amount(res, q)).unwrap_or(0);
                    let req = c.pointer(&format!("/resources/requests/{res}")).and_then(Value::as_str);
                    if let Some(r) = req.filter(|r| amount(res, r).is_some_and(|v| v < min)) {
                        return Err(forbidden(format!(
                            "minimum {res} usage per Container is {}, but request is {r}",
                            q.as_str().unwrap_or("")
                        )));
                    }
                }
                for (res, q) in l["max"].as_object().into_iter().flatten() {
                    let max = q.as_str().and_then(|q| amount(res, q)).unwrap_or(i64::MAX);
                    match c.pointer(&format!("/resources/limits/{res}")).and_then(Value::as_str) {
                        Some(v) if amount(res, v).is_some_and(|x| x > max) => {
                            return Err(forbidden(format!(
                                "maximum {res} usage per Container is {}, but limit is {v}",
                                q.as_str().unwrap_or("")
                            )))
                        }
                        None => {
                            return Err(forbidden(format!(
                                "maximum {res} usage per Container is {}.  No limit is specified",
                                q.as_str().unwrap_or("")
                            )))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    admit(store, pods(), pod, ns).await
}

fn pods() -> &'static Resource {
    super::resources::find("", "v1", "pods").expect("pods are served")
}

/// Whether an object counts against quota (a pod: unless finished).
pub fn counts_object(res: &Resource, o: &Value) -> bool {
    res.kind != "Pod" || counts(o)
}

/// The ResourceQuota admission of a new object of kind `res` in `ns`: refused if it would take
/// the namespace past a quota that counts it.
pub async fn admit(store: &dyn Store, res: &'static Resource, obj: &Value, ns: &str) -> ApiResult<()> {
    let quotas = list(store, &format!("/registry/core/resourcequotas/{ns}/")).await?;
    let same_kind = |r: &Resource| r.group == res.group && r.plural == res.plural;
    let applies = |q: &Value| {
        q.pointer("/spec/hard")
            .and_then(Value::as_object)
            .is_some_and(|h| h.keys().any(|k| counted(k).is_some_and(same_kind)))
    };
    if !quotas.iter().any(applies) {
        return Ok(());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let shown = if res.group.is_empty() {
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    };
    let forbidden = |msg: String| ApiError::forbidden(&shown, res.group, res.plural, &name, msg);
    let existing: Vec<Value> = list(store, &res.prefix(Some(ns)))
        .await?
        .into_iter()
        .filter(|o| counts_object(res, o))
        .collect();
    for q in quotas.iter().filter(|q| applies(q) && selects(q, res, obj)) {
        let qname = q.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let mut missing = Vec::new();
        let mut over = Vec::new();
        for (key, hard) in q.pointer("/spec/hard").and_then(Value::as_object).into_iter().flatten() {
            if !counted(key).is_some_and(same_kind) {
                continue;
            }
            let Some(limit) = hard.as_str().and_then(|h| amount(key, h)) else {
                continue;
            };
            let Some(mine) = usage(obj, key) else {
                missing.push(key.clone());
                continue;
            };
            if mine == 0 {
                continue;
            }
            let used: i64 = existing.iter().filter(|o| selects(q, res, o)).filter_map(|o| usage(o, key)).sum();
            if used + mine > limit {
                over.push((key.clone(), mine, used, hard.as_str().unwrap_or("").to_string()));
            }
        }
        if !missing.is_empty() {
            missing.sort();
            return Err(forbidden(format!("failed quota: {qname}: must specify {}", missing.join(","))));
        }
        if !over.is_empty() {
            over.sort();
            let requested: Vec<String> = over.iter().map(|(r, m, _, _)| format!("{r}={}", format(r, *m))).collect();
            let used: Vec<String> = over.iter().map(|(r, _, u, _)| format!("{r}={}", format(r, *u))).collect();
            let limited: Vec<String> = over.iter().map(|(r, _, _, h)| format!("{r}={h}")).collect();
            return Err(forbidden(format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                requested.join(","),
                used.join(","),
                limited.join(",")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_amounts_as_quotas_count_them() {
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m"}}}]}});
        assert_eq!(pod_usage(&pod, "requests.cpu"), Some(500));
        assert_eq!(pod_usage(&pod, "memory"), Some(128 << 20));
        assert_eq!(pod_usage(&pod, "limits.cpu"), Some(1500));
        assert_eq!(pod_usage(&pod, "limits.memory"), None);
        assert_eq!(pod_usage(&pod, "pods"), Some(1));
        assert_eq!(format("requests.cpu", 500), "500m");
        assert_eq!(format("cpu", 2000), "2");
        assert_eq!(format("memory", 128 << 20), "128Mi");
        assert_eq!(format("pods", 3), "3");
        let gpu = json!({"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}, {"resources": {}}]}});
        assert!(counted("requests.nvidia.com/gpu").is_some());
        assert_eq!(pod_usage(&gpu, "requests.nvidia.com/gpu"), Some(2));
        assert_eq!(pod_usage(&pod, "requests.nvidia.com/gpu"), Some(0), "none asked, none taken");
    }

    #[test]
    fn quota_names_count_kinds_storage_and_scoped_pods() {
        assert_eq!(counted("count/deployments.apps").map(|r| r.kind), Some("Deployment"));
        assert_eq!(counted("services.nodeports").map(|r| r.kind), Some("Service"));
        assert_eq!(
            counted("fast.storageclass.storage.k8s.io/requests.storage").map(|r| r.kind),
            Some("PersistentVolumeClaim")
        );
        assert!(counted("count/nodes").is_none(), "nodes are not namespaced");
        assert!(counted("gpus").is_none());
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(usage(&svc, "services.nodeports"), Some(2));
        assert_eq!(usage(&svc, "services.loadbalancers"), Some(0));
        let pvc = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "2Gi"}}}});
        assert_eq!(usage(&pvc, "requests.storage"), Some(2 << 30));
        assert_eq!(usage(&pvc, "fast.storageclass.storage.k8s.io/requests.storage"), Some(2 << 30));
        assert_eq!(usage(&pvc, "slow.storageclass.storage.k8s.io/persistentvolumeclaims"), Some(0));
        assert_eq!(format("requests.storage", 2 << 30), "2Gi");
        let pods = super::super::resources::find("", "v1", "pods").unwrap();
        let q = json!({"spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort", "NotTerminating"]}});
        assert!(selects(&q, pods, &json!({"spec": {"containers": [{}]}})));
        assert!(!selects(
            &q,
            pods,
            &json!({"spec": {"activeDeadlineSeconds": 5, "containers": [{}]}})
        ));
        assert!(!selects(
            &q,
            pods,
            &json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}})
        ));
        let by_class = json!({"spec": {"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        assert!(selects(&by_class, pods, &json!({"spec": {"priorityClassName": "high"}})));
        assert!(!selects(&by_class, pods, &json!({"spec": {}})));
        let bad = json!({"spec": {"hard": {"services": "1"}, "scopes": ["Terminating", "NotTerminating"]}});
        let why: Vec<String> = validate(&bad).into_iter().map(|c| c.message).collect();
        assert!(why.iter().any(|m| m.contains("unsupported scope applied to resource")), "{why:?}");
        assert!(why.iter().any(|m| m.contains("conflicting scopes")), "{why:?}");
    }
}
