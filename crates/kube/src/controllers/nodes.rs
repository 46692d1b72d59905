//! The node lifecycle controller: a node whose Lease has not been renewed for the grace period
//! (`--node-monitor-grace-period`, 40 s) gets its conditions Unknown ("Kubelet stopped posting
//! node status.") and the `node.kubernetes.io/unreachable` NoSchedule and NoExecute taints;
//! its pods that do not tolerate NoExecute taints are evicted at once, those that do after
//! their `tolerationSeconds` (300 s for the tolerations every pod gets by default). A node
//! whose Lease is renewed again loses the taints. It looks every 5 s, as the real controller's
//! monitor period.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::runtime::{seconds_since, str_at, Client};
use super::Informers;
use crate::apiserver::status::ApiResult;

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const PERIOD: Duration = Duration::from_secs(5);

/// How long a pod may stay on a node with this NoExecute taint: None = evict now,
/// Some(None) = for ever, Some(Some(s)) = s seconds after the taint.
fn toleration(pod: &Value, taint: &Value) -> Option<Option<i64>> {
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)?
        .iter()
        .filter(|t| {
            let key_ok = match t["key"].as_str().unwrap_or("") {
                "" => t["operator"] == "Exists",
                k => k == taint["key"].as_str().unwrap_or(""),
            };
            let effect_ok = t["effect"].as_str().is_none_or(|e| e.is_empty() || e == "NoExecute");
            let value_ok = t["operator"] == "Exists" || t["value"] == taint["value"];
            key_ok && effect_ok && value_ok
        })
        .map(|t| t["tolerationSeconds"].as_i64())
        .max_by_key(|s| s.unwrap_or(i64::MAX))
}

/// The controller.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    /// How long a Lease may go unrenewed.
    pub(super) grace: Duration,
}

impl Controller {
    /// Watch the nodes' heartbeats until the daemon stops.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(PERIOD);
        loop {
            tick.tick().await;
            if let Err(e) = self.pass().await {
                if e.code != 409 {
                    tracing::warn!(error = %e.message, "node lifecycle");
                }
            }
        }
    }

    async fn pass(&self) -> ApiResult<()> {
        let page = self.client.store().list("/registry/core/nodes/", Default::default()).await?;
        for kv in page.items {
            let Ok(node) = crate::apiserver::objects::from_kv(super::nodes(), &kv) else {
                continue;
            };
            let name = str_at(&node, "/metadata/name").to_string();
            let lease = self
                .client
                .store()
                .get(&format!("/registry/coordination.k8s.io/leases/kube-node-lease/{name}"), None)
                .await?
                .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok());
            let renewed = lease
                .as_ref()
                .and_then(|l| l.pointer("/spec/renewTime").and_then(Value::as_str).and_then(seconds_since));
            let stale = renewed.is_none_or(|s| s > self.grace.as_secs_f64());
            let tainted = node["spec"]["taints"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["key"] == UNREACHABLE));
            if stale && !tainted {
                self.mark_unreachable(node.clone()).await?;
                continue;
            }
            if !stale && tainted {
                let mut o = node.clone();
                if let Some(t) = o["spec"]["taints"].as_array_mut() {
                    t.retain(|t| t["key"] != UNREACHABLE);
                    if t.is_empty() {
                        o["spec"].as_object_mut().map(|m| m.remove("taints"));
                    }
                }
                self.client.update(super::nodes(), &o).await?;
                continue;
            }
            if stale {
                self.evict(&node).await?;
            }
        }
        Ok(())
    }

    async fn mark_unreachable(&self, node: Value) -> ApiResult<()> {
        let now = super::runtime::now();
        let mut o = node.clone();
        if !o["spec"]["taints"].is_array() {
            o["spec"]["taints"] = json!([]);
        }
        for effect in ["NoSchedule", "NoExecute"] {
            o["spec"]["taints"]
                .as_array_mut()
                .expect("an array")
                .push(json!({"key": UNREACHABLE, "effect": effect, "timeAdded": now}));
        }
        let mut o = self.client.update(super::nodes(), &o).await?;
        for c in o["status"]["conditions"].as_array_mut().into_iter().flatten() {
            if c["status"] != "Unknown" {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!("Unknown");
            c["reason"] = json!("NodeStatusUnknown");
            c["message"] = json!("Kubelet stopped posting node status.");
        }
        let o = self.client.update_status(super::nodes(), &o).await?;
        let msg = format!("Node {} status is now: NodeNotReady", str_at(&o, "/metadata/name"));
        super::event(&self.client, &o, "Normal", "NodeNotReady", &msg).await;
        Ok(())
    }

    /// Evict the node's pods whose tolerations of its NoExecute taints have run out.
    async fn evict(&self, node: &Value) -> ApiResult<()> {
        let name = str_at(node, "/metadata/name");
        let taints: Vec<&Value> = node["spec"]["taints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["effect"] == "NoExecute")
            .collect();
        for pod in self.informers.pods.list("") {
            if str_at(&pod, "/spec/nodeName") != name || pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
                continue;
            }
            let due = taints.iter().any(|t| {
                let since = t["timeAdded"].as_str().and_then(seconds_since).unwrap_or(0.0);
                match toleration(&pod, t) {
                    None => true,
                    Some(None) => false,
                    Some(Some(s)) => since >= s as f64,
                }
            });
            if due {
                let (ns, pname) = (str_at(&pod, "/metadata/namespace"), str_at(&pod, "/metadata/name"));
                self.client.delete(super::pods(), ns, pname, str_at(&pod, "/metadata/uid")).await?;
                let msg = format!("Marking for deletion Pod {ns}/{pname}");
                super::event(&self.client, &pod, "Normal", "TaintManagerEviction", &msg).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerations_of_no_execute_taints() {
        let taint = json!({"key": UNREACHABLE, "effect": "NoExecute"});
        let pod = |t: Value| json!({"spec": {"tolerations": t}});
        assert_eq!(toleration(&pod(json!([])), &taint), None);
        assert_eq!(
            toleration(
                &pod(json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}])),
                &taint
            ),
            Some(Some(300))
        );
        assert_eq!(toleration(&pod(json!([{"operator": "Exists"}])), &taint), Some(None));
        assert_eq!(toleration(&pod(json!([{"key": "other", "operator": "Exists"}])), &taint), None);
    }
}
