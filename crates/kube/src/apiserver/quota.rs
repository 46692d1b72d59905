//! Pod admission by the namespace's LimitRanges and ResourceQuotas, as the LimitRanger and
//! ResourceQuota admission plugins do it:
//!
//! - LimitRange `Container` limits give containers their `defaultRequest` and `default`
//!   (limits) when they set none, and refuse one below `min` or above `max`;
//! - ResourceQuota `hard` for `pods`, `count/pods`, `requests.cpu`/`cpu`, `requests.memory`/
//!   `memory`, `limits.cpu`, `limits.memory`: a pod that would take the namespace past one is
//!   refused (403, the real server's wording), as is one that leaves out a resource a quota
//!   tracks. `status.used` is kept by the quota controller (`controllers::quota`).

use serde_json::{json, Value};

use super::status::{ApiError, ApiResult, Details};
use crate::quantity;
use crate::store::Store;

/// The quota resources enforced here (others are refused when the quota is written).
pub const TRACKED: &[&str] = &[
    "pods",
    "count/pods",
    "requests.cpu",
    "cpu",
    "requests.memory",
    "memory",
    "limits.cpu",
    "limits.memory",
];

/// How much of a tracked resource a pod takes (none: it leaves the resource out).
pub fn pod_usage(pod: &Value, resource: &str) -> Option<i64> {
    let sum = |kind: &str, res: &str| -> Option<i64> {
        let mut total = 0;
        for c in pod.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
            let q = c.pointer(&format!("/resources/{kind}/{res}")).and_then(Value::as_str)?;
            total += if res == "cpu" {
                quantity::milli_cpu(q)?
            } else {
                quantity::bytes(q)?
            };
        }
        Some(total)
    };
    match resource {
        "pods" | "count/pods" => Some(1),
        "requests.cpu" | "cpu" => sum("requests", "cpu"),
        "requests.memory" | "memory" => sum("requests", "memory"),
        "limits.cpu" => sum("limits", "cpu"),
        "limits.memory" => sum("limits", "memory"),
        _ => None,
    }
}

/// A quota's amount of `resource` (millicores for cpu, bytes for memory, a count otherwise).
fn amount(resource: &str, q: &str) -> Option<i64> {
    if resource.ends_with("cpu") {
        quantity::milli_cpu(q)
    } else if resource.ends_with("memory") {
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
    if resource.ends_with("memory") {
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
    let forbidden = |msg: String| ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("pods \"{name}\" is forbidden: {msg}"),
        details: Some(Details::of(name.clone(), "", "pods")),
    };
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
    let quotas = list(store, &format!("/registry/core/resourcequotas/{ns}/")).await?;
    if quotas.is_empty() {
        return Ok(());
    }
    let pods: Vec<Value> = list(store, &format!("/registry/core/pods/{ns}/"))
        .await?
        .into_iter()
        .filter(counts)
        .collect();
    for q in quotas {
        let qname = q.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let mut missing = Vec::new();
        let mut over = Vec::new();
        for (res, hard) in q.pointer("/spec/hard").and_then(Value::as_object).into_iter().flatten() {
            let Some(limit) = hard.as_str().and_then(|h| amount(res, h)) else {
                continue;
            };
            if !TRACKED.contains(&res.as_str()) {
                continue;
            }
            let Some(mine) = pod_usage(pod, res) else {
                missing.push(res.clone());
                continue;
            };
            let used: i64 = pods.iter().filter_map(|p| pod_usage(p, res)).sum();
            if used + mine > limit {
                over.push((res.clone(), mine, used, hard.as_str().unwrap_or("").to_string()));
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
    }
}
