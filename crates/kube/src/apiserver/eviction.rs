//! `POST pods/<name>/eviction` (policy/v1 Eviction, what `kubectl drain` sends), honouring the
//! PodDisruptionBudget that selects the pod, as kube-apiserver's eviction REST does: a pod that
//! is not running (pending, finished, already being deleted) goes at once; one no budget
//! selects goes; otherwise the budget must allow a disruption — its `disruptionsAllowed` is
//! taken down by one, the pod entered in its `disruptedPods` (so that the disruption
//! controller does not count it healthy before it is gone), and the pod gets its
//! `DisruptionTarget` condition and is deleted. A budget with no disruption left answers 429
//! TooManyRequests, which `kubectl drain` retries.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::objects::{self, Query, Target};
use super::resources::{cause, Resource};
use super::select::selects;
use super::status::{ApiError, ApiResult, Details};
use super::ApiServer;
use crate::store::Error as StoreError;

/// How many evictions a budget may hold unconfirmed by its controller.
const MAX_DISRUPTED_PODS: usize = 2000;

fn budgets() -> &'static Resource {
    super::resources::find("policy", "v1", "poddisruptionbudgets").expect("budgets are served")
}

/// Is the pod Ready?
pub fn ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Does `pdb` select `pod`? (policy/v1: an empty selector selects every pod of the namespace,
/// none selects none.)
pub fn selects_pod(pdb: &Value, pod: &Value) -> bool {
    pdb.pointer("/spec/selector")
        .filter(|s| s.is_object())
        .is_some_and(|s| selects(s, pod.pointer("/metadata/labels")))
}

fn too_many_requests(message: &str, retry_after: u32, why: String) -> ApiError {
    let mut e = ApiError::new(429, "TooManyRequests", message);
    let mut d = Details::of("", "", "");
    d.retry_after = retry_after;
    d.causes = vec![cause("DisruptionBudget", "", why)];
    e.details = Some(d);
    e
}

/// Serve one eviction.
pub async fn evict(s: &ApiServer, t: &Target, q: &Query, ev: Value) -> ApiResult<Response> {
    if ev["kind"] != "Eviction" {
        return Err(ApiError::bad_request("the body must be a policy/v1 Eviction"));
    }
    let name = t.name.clone().unwrap_or_default();
    if ev.pointer("/metadata/name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object ({name})"
        )));
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let pod_target = Target {
        res: t.res,
        namespace: t.namespace.clone(),
        name: t.name.clone(),
        sub: None,
    };
    let pod = objects::get(s, &pod_target).await?;
    let mut opts = ev
        .get("deleteOptions")
        .filter(|o| o.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let dry = objects::dry_run(q)?
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or("Pending");
    let terminating = pod.pointer("/metadata/deletionTimestamp").is_some_and(|d| !d.is_null());
    let ignores_budgets = matches!(phase, "Succeeded" | "Failed" | "Pending") || terminating;
    if !ignores_budgets {
        let res = budgets();
        'retry: for attempt in 0.. {
            let page = s.store.list(&res.prefix(Some(&ns)), Default::default()).await?;
            let mut matching = Vec::new();
            for kv in &page.items {
                let pdb = objects::from_kv(res, kv)?;
                if selects_pod(&pdb, &pod) {
                    matching.push((kv, pdb));
                }
            }
            if matching.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            let Some((kv, mut pdb)) = matching.pop() else {
                break;
            };
            let pdb_name = pdb.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
            let st = |f: &str| pdb.pointer(&format!("/status/{f}")).and_then(Value::as_i64).unwrap_or(0);
            if !ready(&pod) {
                let always = pdb.pointer("/spec/unhealthyPodEvictionPolicy").and_then(Value::as_str) == Some("AlwaysAllow");
                if always || (st("currentHealthy") >= st("desiredHealthy") && st("desiredHealthy") > 0) {
                    // An unhealthy pod may go without spending the budget — if it is still
                    // the pod that was looked at.
                    opts["preconditions"]["resourceVersion"] = pod["metadata"]["resourceVersion"].clone();
                    break;
                }
            }
            if st("observedGeneration") < pdb.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0) {
                return Err(too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    10,
                    format!("The disruption budget {pdb_name} is still being processed by the server."),
                ));
            }
            let allowed = st("disruptionsAllowed");
            if allowed < 0 {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!("poddisruptionbudgets.policy \"{pdb_name}\" is forbidden: pdb disruptions allowed is negative"),
                ));
            }
            let disrupted = pdb
                .pointer("/status/disruptedPods")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            if disrupted > MAX_DISRUPTED_PODS {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!(
                        "poddisruptionbudgets.policy \"{pdb_name}\" is forbidden: DisruptedPods map too big - too many evictions not confirmed by PDB controller"
                    ),
                ));
            }
            if allowed == 0 {
                return Err(too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    0,
                    format!(
                        "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                        st("desiredHealthy"),
                        st("currentHealthy")
                    ),
                ));
            }
            if dry {
                break;
            }
            pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
            if allowed == 1 {
                set_budget_condition(&mut pdb, false, "InsufficientPods", "");
            }
            if !pdb["status"]["disruptedPods"].is_object() {
                pdb["status"]["disruptedPods"] = json!({});
            }
            pdb["status"]["disruptedPods"][&name] = json!(super::objects::now());
            pdb["metadata"]["resourceVersion"] = Value::Null;
            match s.store.update(&kv.key, objects::stored_bytes(&pdb), kv.mod_revision).await {
                Ok(_) => break 'retry,
                Err(StoreError::Conflict { .. }) if attempt < 5 => continue,
                Err(StoreError::Conflict { .. }) => {
                    return Err(ApiError::conflict("policy", "poddisruptionbudgets", &pdb_name));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    if dry {
        return Ok(success());
    }
    if !matches!(phase, "Succeeded" | "Failed") && !terminating {
        mark_disruption_target(s, &pod_target).await?;
    }
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    objects::delete(s, &pod_target, q, &headers, Body::from(opts.to_string())).await?;
    Ok(success())
}

fn success() -> Response {
    objects::respond(
        StatusCode::CREATED,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// The pod's `DisruptionTarget` condition: it is going because of an eviction.
async fn mark_disruption_target(s: &ApiServer, t: &Target) -> ApiResult<()> {
    for _ in 0..5 {
        let key = t.res.key(t.namespace.as_deref(), t.name.as_deref().unwrap_or(""));
        let Some(kv) = s.store.get(&key, None).await? else {
            return Ok(());
        };
        let mut pod: Value = serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))?;
        objects::set_condition(
            &mut pod,
            "DisruptionTarget",
            "True",
            "EvictionByEvictionAPI",
            "Eviction API: evicting",
        );
        match s.store.update(&key, objects::stored_bytes(&pod), kv.mod_revision).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A budget's `DisruptionAllowed` condition.
pub fn set_budget_condition(pdb: &mut Value, allowed: bool, reason: &str, message: &str) {
    let status = if allowed { "True" } else { "False" };
    if !pdb["status"]["conditions"].is_array() {
        pdb["status"]["conditions"] = json!([]);
    }
    let generation = pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(0));
    let conds = pdb["status"]["conditions"].as_array_mut().expect("an array");
    let mut c = json!({
        "type": "DisruptionAllowed", "status": status, "reason": reason, "message": message,
        "observedGeneration": generation, "lastTransitionTime": super::objects::now(),
    });
    match conds.iter_mut().find(|x| x["type"] == "DisruptionAllowed") {
        Some(x) => {
            if x["status"] == status {
                c["lastTransitionTime"] = x["lastTransitionTime"].clone();
            }
            *x = c;
        }
        None => conds.push(c),
    }
}
