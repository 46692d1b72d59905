//! The HorizontalPodAutoscaler controller (autoscaling/v2; v1 objects are the same objects
//! converted), after kube-controller-manager's: every 15 s each autoscaler reads its target's
//! pods' resource metrics (CPU and memory, as utilization of their requests or as an average
//! value), proposes `ceil(current replicas × usage / target)` per metric (nothing changes within
//! the 10% tolerance; pods without metrics count as using nothing when scaling up, their full
//! target when scaling down), takes the largest proposal, stabilizes it over the behavior's
//! window (the highest recommendation of the last 5 minutes before scaling down), limits the
//! change by the behavior's policies (by default up by 4 pods or 100% per 15 s, down by 100%),
//! clamps it to min/maxReplicas, and writes the target's replicas and its own status and
//! conditions (AbleToScale, ScalingActive, ScalingLimited) with the real reasons.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::runtime::{int_at, split_key, str_at, Action, Client};
use super::Informers;
use crate::agent::metrics::Metrics;
use crate::apiserver::select::selects;
use crate::apiserver::status::ApiResult;
use crate::quantity;

const SYNC: Duration = Duration::from_secs(15);
const TOLERANCE: f64 = 0.1;

/// What the controller remembers of each autoscaler between passes.
#[derive(Default)]
pub struct History {
    /// Recommendations (when, replicas).
    recommendations: Vec<(Instant, i64)>,
    /// Scale changes (when, change).
    events: Vec<(Instant, i64)>,
}

/// One metric's proposal: replicas, and the current value for the status.
struct Proposal {
    replicas: i64,
    status: Value,
    description: String,
}

/// A resource quantity's canonical amount: millicores for cpu, bytes for memory.
fn amount(resource: &str, q: &str) -> Option<i64> {
    if resource == "cpu" {
        quantity::milli_cpu(q)
    } else {
        quantity::bytes(q)
    }
}

fn format_amount(resource: &str, v: i64) -> String {
    if resource == "cpu" {
        format!("{v}m")
    } else {
        format!("{v}")
    }
}

/// The replicas a rule set allows from `current` given the recent changes (k8s'
/// calculateScaleUpLimit / calculateScaleDownLimit).
fn limit(rules: &Value, current: i64, events: &[(Instant, i64)], up: bool) -> i64 {
    let select = rules["selectPolicy"].as_str().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let mut proposals = Vec::new();
    for p in rules["policies"].as_array().into_iter().flatten() {
        let period = Duration::from_secs(p["periodSeconds"].as_u64().unwrap_or(15));
        let changed: i64 = events
            .iter()
            .filter(|(t, d)| t.elapsed() < period && (*d > 0) == up)
            .map(|(_, d)| d.abs())
            .sum();
        let value = int_at(p, "/value", 0);
        let start = if up { current - changed } else { current + changed };
        let proposal = match (p["type"].as_str(), up) {
            (Some("Pods"), true) => start + value,
            (Some("Pods"), false) => start - value,
            (_, true) => (start as f64 * (1.0 + value as f64 / 100.0)).ceil() as i64,
            (_, false) => (start as f64 * (1.0 - value as f64 / 100.0)).ceil() as i64,
        };
        proposals.push(proposal);
    }
    let pick_max = (select == "Max") == up;
    let chosen = if pick_max { proposals.iter().max() } else { proposals.iter().min() };
    chosen.copied().unwrap_or(current)
}

fn condition(status: &mut Value, ty: &str, st: &str, reason: &str, message: &str) {
    let now = super::runtime::now();
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let conds = status["conditions"].as_array_mut().expect("an array");
    let mut c = json!({"type": ty, "status": st, "reason": reason, "message": message, "lastTransitionTime": now});
    match conds.iter_mut().find(|x| x["type"] == ty) {
        Some(x) => {
            if x["status"] == st {
                c["lastTransitionTime"] = x["lastTransitionTime"].clone();
            }
            *x = c;
        }
        None => conds.push(c),
    }
}

/// The controller.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) metrics: Option<Arc<Metrics>>,
    pub(super) history: Mutex<HashMap<String, History>>,
}

impl Controller {
    /// The target's object, the kind's resource and its selector.
    fn target(&self, ns: &str, r: &Value) -> Option<(Arc<Value>, &'static crate::apiserver::resources::Resource)> {
        let name = r["name"].as_str()?;
        let key = format!("{ns}/{name}");
        match r["kind"].as_str()? {
            "Deployment" => Some((self.informers.deployments.get(&key)?, super::deployments())),
            "ReplicaSet" => Some((self.informers.replica_sets.get(&key)?, super::replica_sets())),
            _ => None,
        }
    }

    /// One autoscaler's pass.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let (ns, _) = split_key(&key);
        let Some(hpa) = self.informers.hpas.get(&key) else {
            self.history.lock().expect("history lock").remove(&key);
            return Ok(Action::Done);
        };
        let hpa = (*hpa).clone();
        let mut status = hpa["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let before = status.clone();
        let r = hpa["spec"]["scaleTargetRef"].clone();
        let Some((target, res)) = self.target(ns, &r) else {
            let msg = format!(
                "the HPA controller was unable to get the target's current scale: {} \"{}\" not found (or not scalable here)",
                r["kind"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            );
            condition(&mut status, "AbleToScale", "False", "FailedGetScale", &msg);
            return self.write(hpa, status, before).await;
        };
        let current = int_at(&target, "/spec/replicas", 1);
        let min = int_at(&hpa, "/spec/minReplicas", 1);
        let max = int_at(&hpa, "/spec/maxReplicas", 1);
        status["currentReplicas"] = json!(current);
        if current == 0 && min > 0 {
            // Scaled to zero by hand: autoscaling is off until it is scaled up again.
            condition(
                &mut status,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            );
            status["desiredReplicas"] = json!(0);
            return self.write(hpa, status, before).await;
        }
        condition(
            &mut status,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        );
        let selector = target["spec"]["selector"].clone();
        let pods: Vec<Arc<Value>> = self
            .informers
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| {
                selects(&selector, p.pointer("/metadata/labels"))
                    && p.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null)
                    && !matches!(str_at(p, "/status/phase"), "Succeeded" | "Failed")
            })
            .collect();
        let usage = self.metrics.as_ref().map(|m| m.containers()).unwrap_or_default();
        let mut proposals = Vec::new();
        let mut failure = None;
        for metric in hpa["spec"]["metrics"].as_array().into_iter().flatten() {
            match self.propose(metric, &pods, &usage, current) {
                Ok(p) => proposals.push(p),
                Err(e) => failure = Some(e),
            }
        }
        let Some(best) = proposals.iter().max_by_key(|p| p.replicas) else {
            let (reason, msg) = failure.unwrap_or(("FailedGetResourceMetric", "no metrics to scale on".into()));
            condition(&mut status, "ScalingActive", "False", reason, &msg);
            status["desiredReplicas"] = json!(current);
            return self.write(hpa, status, before).await;
        };
        condition(
            &mut status,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            &format!(
                "the HPA was able to successfully calculate a replica count from {}",
                best.description
            ),
        );
        status["currentMetrics"] = json!(proposals.iter().map(|p| p.status.clone()).collect::<Vec<_>>());
        let desired = self.normalize(&key, &hpa, current, best.replicas, min, max, &mut status);
        status["desiredReplicas"] = json!(desired);
        if desired != current {
            let mut t = (*target).clone();
            t["spec"]["replicas"] = json!(desired);
            self.client.update(res, &t).await?;
            status["lastScaleTime"] = json!(super::runtime::now());
            self.history
                .lock()
                .expect("history lock")
                .entry(key.clone())
                .or_default()
                .events
                .push((Instant::now(), desired - current));
            let direction = if desired > current { "above" } else { "below" };
            let msg = format!("New size: {desired}; reason: {} {direction} target", best.description);
            super::event(&self.client, &hpa, "Normal", "SuccessfulRescale", &msg).await;
            condition(
                &mut status,
                "AbleToScale",
                "True",
                "SucceededRescale",
                &format!("the HPA controller was able to update the target scale to {desired}"),
            );
        } else {
            condition(
                &mut status,
                "AbleToScale",
                "True",
                "ReadyForNewScale",
                "recommended size matches current size",
            );
        }
        self.write(hpa, status, before).await
    }

    /// One metric's proposal.
    fn propose(
        &self,
        metric: &Value,
        pods: &[Arc<Value>],
        usage: &[crate::agent::metrics::ContainerUsage],
        current: i64,
    ) -> Result<Proposal, (&'static str, String)> {
        let ty = metric["type"].as_str().unwrap_or("");
        let (src, container) = match ty {
            "Resource" => (&metric["resource"], None),
            "ContainerResource" => (&metric["containerResource"], metric["containerResource"]["container"].as_str()),
            other => {
                return Err((
                    "FailedGetExternalMetric",
                    format!("{other} metrics are not served here (resource metrics only)"),
                ))
            }
        };
        let resource = src["name"].as_str().unwrap_or("cpu");
        if resource != "cpu" && resource != "memory" {
            return Err(("FailedGetResourceMetric", format!("no metrics for resource {resource}")));
        }
        let target = &src["target"];
        // Usage and requests per pod (sum over its containers).
        let mut used_total = 0i64;
        let mut requested_total = 0i64;
        let mut with_metrics = 0i64;
        let mut missing = 0i64;
        let mut missing_requests = false;
        for p in pods {
            let ns = str_at(p, "/metadata/namespace");
            let name = str_at(p, "/metadata/name");
            let mine: Vec<_> = usage
                .iter()
                .filter(|u| u.namespace == ns && u.pod == name && container.is_none_or(|c| c == u.container))
                .collect();
            let req: i64 = p["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| container.is_none_or(|n| c["name"].as_str() == Some(n)))
                .map(|c| {
                    c.pointer(&format!("/resources/requests/{resource}"))
                        .and_then(Value::as_str)
                        .and_then(|q| amount(resource, q))
                        .unwrap_or_else(|| {
                            missing_requests = true;
                            0
                        })
                })
                .sum();
            if mine.is_empty() {
                missing += 1;
                requested_total += req;
                continue;
            }
            with_metrics += 1;
            let used: i64 = mine
                .iter()
                .map(|u| {
                    if resource == "cpu" {
                        (u.cpu_nanocores / 1_000_000) as i64
                    } else {
                        u.memory as i64
                    }
                })
                .sum();
            used_total += used;
            requested_total += req;
        }
        if with_metrics == 0 {
            return Err((
                "FailedGetResourceMetric",
                format!("unable to get metrics for resource {resource}: no metrics returned from resource metrics API"),
            ));
        }
        let utilization = target["type"] == "Utilization";
        if utilization && missing_requests {
            return Err((
                "FailedGetResourceMetric",
                format!("failed to get {resource} utilization: missing request for {resource}"),
            ));
        }
        // Usage of pods with metrics; the others as 0 (scale up) or at target (scale down).
        let per_pod_request = if pods.is_empty() { 0 } else { requested_total / pods.len() as i64 };
        let (ratio, current_status) = if utilization {
            let want = int_at(target, "/averageUtilization", 80) as f64;
            let measured_req = (requested_total - per_pod_request * missing).max(1);
            let util = used_total as f64 * 100.0 / measured_req as f64;
            let ratio = util / want;
            let adjusted = if ratio > 1.0 {
                used_total as f64 * 100.0 / requested_total.max(1) as f64 / want
            } else {
                (used_total as f64 + want / 100.0 * (per_pod_request * missing) as f64) * 100.0 / requested_total.max(1) as f64 / want
            };
            (
                if missing > 0 { adjusted } else { ratio },
                json!({"averageUtilization": util.round() as i64, "averageValue": format_amount(resource, used_total / with_metrics)}),
            )
        } else {
            let want = target
                .get("averageValue")
                .and_then(Value::as_str)
                .and_then(|q| amount(resource, q))
                .unwrap_or(1)
                .max(1) as f64;
            let avg = used_total as f64 / with_metrics as f64;
            (avg / want, json!({"averageValue": format_amount(resource, avg as i64)}))
        };
        let replicas = if (ratio - 1.0).abs() <= TOLERANCE {
            current
        } else {
            (ratio * (with_metrics + missing) as f64).ceil() as i64
        };
        let kind_key = if ty == "Resource" { "resource" } else { "containerResource" };
        let mut st = json!({"type": ty, kind_key: {"name": resource, "current": current_status}});
        if let Some(c) = container {
            st[kind_key]["container"] = json!(c);
        }
        let description = if utilization {
            format!("{resource} resource utilization (percentage of request)")
        } else {
            format!("{resource} resource")
        };
        Ok(Proposal {
            replicas,
            status: st,
            description,
        })
    }

    /// Stabilize, rate-limit and clamp a proposal (k8s normalizeDesiredReplicasWithBehaviors).
    #[allow(clippy::too_many_arguments)]
    fn normalize(&self, key: &str, hpa: &Value, current: i64, proposed: i64, min: i64, max: i64, status: &mut Value) -> i64 {
        let behavior = &hpa["spec"]["behavior"];
        let up = &behavior["scaleUp"];
        let down = &behavior["scaleDown"];
        let up_window = Duration::from_secs(up["stabilizationWindowSeconds"].as_u64().unwrap_or(0));
        let down_window = Duration::from_secs(down["stabilizationWindowSeconds"].as_u64().unwrap_or(300));
        let mut hist = self.history.lock().expect("history lock");
        let h = hist.entry(key.to_string()).or_default();
        let keep = up_window.max(down_window);
        h.recommendations.retain(|(t, _)| t.elapsed() <= keep);
        h.events.retain(|(t, _)| t.elapsed() <= Duration::from_secs(1800));
        let mut up_rec = proposed;
        let mut down_rec = proposed;
        for (t, r) in &h.recommendations {
            if t.elapsed() <= up_window {
                up_rec = up_rec.min(*r);
            }
            if t.elapsed() <= down_window {
                down_rec = down_rec.max(*r);
            }
        }
        h.recommendations.push((Instant::now(), proposed));
        // Up to the lowest recommendation of the up window, down to the highest of the down one.
        let mut desired = current;
        if desired < up_rec {
            desired = up_rec;
        }
        if desired > down_rec {
            desired = down_rec;
        }
        // Rate limits of the policies.
        let default_up = json!({"selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        let default_down = json!({"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]});
        let up_rules = if up["policies"].is_array() { up } else { &default_up };
        let down_rules = if down["policies"].is_array() { down } else { &default_down };
        if desired > current {
            desired = desired.min(limit(up_rules, current, &h.events, true));
        } else if desired < current {
            desired = desired.max(limit(down_rules, current, &h.events, false));
        }
        let (limited, reason, msg) = if desired > max {
            (
                true,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        } else if desired < min {
            (
                true,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        } else {
            (false, "DesiredWithinRange", "the desired count is within the acceptable range")
        };
        condition(status, "ScalingLimited", if limited { "True" } else { "False" }, reason, msg);
        desired.clamp(min, max)
    }

    async fn write(&self, mut hpa: Value, mut status: Value, before: Value) -> ApiResult<Action> {
        status["observedGeneration"] = hpa["metadata"]["generation"].clone();
        if status != before {
            hpa["status"] = status;
            self.client.update_status(super::hpas(), &hpa).await?;
        }
        Ok(Action::After(SYNC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_limit_the_rate_of_change() {
        let up = json!({"selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        // From 1: +4 pods beats +100%.
        assert_eq!(limit(&up, 1, &[], true), 5);
        // From 10: +100% beats +4.
        assert_eq!(limit(&up, 10, &[], true), 20);
        // Already grew by 3 in this period: counted from where the period started.
        assert_eq!(limit(&up, 4, &[(Instant::now(), 3)], true), 5);
        let down = json!({"selectPolicy": "Max", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]});
        assert_eq!(limit(&down, 5, &[], false), 4);
        assert_eq!(limit(&json!({"selectPolicy": "Disabled"}), 5, &[], false), 5);
    }
}
