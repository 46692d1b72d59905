//! The disruption controller: each PodDisruptionBudget's status — the pods it expects, how
//! many of them must stay healthy, how many are, and so how many may be disrupted — as
//! kube-controller-manager's keeps it. The eviction API (`apiserver::eviction`) spends that
//! allowance and notes each pod it evicts in `disruptedPods`; this controller forgets a noted
//! pod once it is being deleted, or two minutes on if it never was.
//!
//! `minAvailable` as a number counts the selected pods; a percentage, or `maxUnavailable`,
//! scales against the replicas their controllers ask for (ReplicaSets, through their
//! Deployment when they have one, and StatefulSets); pods no controller owns are left out of
//! that count, with an `UnmanagedPods` warning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::runtime::{controller_of, key_of, split_key, str_at, Action, Client, Queue};
use super::Informers;
use crate::apiserver::eviction::{ready, selects_pod, set_budget_condition};
use crate::apiserver::status::ApiResult;
use crate::apiserver::workloads::int_or_percent;

/// How long an eviction noted in `disruptedPods` is trusted to be followed by a deletion.
const DELETION_TIMEOUT: f64 = 120.0;

/// The controller.
pub struct Controller {
    pub(super) client: Client,
    pub(super) informers: Arc<Informers>,
    pub(super) queue: Queue,
}

impl Controller {
    /// A pod changed: the budgets selecting it (before or after) are looked at again.
    pub fn pod_changed(&self, old: Option<&Value>, new: Option<&Value>) {
        for pod in [old, new].into_iter().flatten() {
            for pdb in self.informers.budgets.list(str_at(pod, "/metadata/namespace")) {
                if selects_pod(&pdb, pod) {
                    self.queue.add(key_of(&pdb));
                }
            }
        }
    }

    /// A controller of pods changed (its scale may have): its namespace's budgets again.
    pub fn owner_changed(&self, o: &Value) {
        for pdb in self.informers.budgets.list(str_at(o, "/metadata/namespace")) {
            self.queue.add(key_of(&pdb));
        }
    }

    /// The replicas `pod`'s controller asks for: (the controller's UID, its scale).
    fn scale_of(&self, pod: &Value) -> Result<Option<(String, i64)>, String> {
        let Some(owner) = controller_of(pod) else {
            return Ok(None);
        };
        let ns = str_at(pod, "/metadata/namespace");
        let uid = owner["uid"].as_str().unwrap_or("");
        let found =
            |inf: &super::runtime::Informer, name: &str| inf.get(&format!("{ns}/{name}")).filter(|o| str_at(o, "/metadata/uid") == uid);
        let name = owner["name"].as_str().unwrap_or("");
        let scale = match owner["kind"].as_str().unwrap_or("") {
            "ReplicaSet" => found(&self.informers.replica_sets, name).map(|rs| match controller_of(&rs) {
                Some(d) if d["kind"] == "Deployment" => self
                    .informers
                    .deployments
                    .get(&format!("{ns}/{}", d["name"].as_str().unwrap_or("")))
                    .filter(|dep| dep["metadata"]["uid"] == d["uid"])
                    .map(|dep| {
                        (
                            str_at(&dep, "/metadata/uid").to_string(),
                            dep["spec"]["replicas"].as_i64().unwrap_or(1),
                        )
                    }),
                _ => Some((uid.to_string(), rs["spec"]["replicas"].as_i64().unwrap_or(1))),
            }),
            "StatefulSet" => {
                found(&self.informers.stateful_sets, name).map(|s| Some((uid.to_string(), s["spec"]["replicas"].as_i64().unwrap_or(1))))
            }
            _ => None,
        };
        match scale.flatten() {
            Some(s) => Ok(Some(s)),
            None => Err(format!("found no controllers for pod \"{}\"", str_at(pod, "/metadata/name"))),
        }
    }

    /// (expected pods, desired healthy, whether some pod has no controller).
    fn expected(&self, pdb: &Value, pods: &[Arc<Value>]) -> Result<(i64, i64, bool), String> {
        let scaled = |pods: &[Arc<Value>]| -> Result<(i64, bool), String> {
            let mut scales = BTreeMap::new();
            let mut unmanaged = false;
            for p in pods {
                match self.scale_of(p)? {
                    Some((uid, n)) => {
                        scales.insert(uid, n);
                    }
                    None => unmanaged = true,
                }
            }
            Ok((scales.values().sum(), unmanaged))
        };
        if let Some(max) = pdb.pointer("/spec/maxUnavailable").filter(|v| !v.is_null()) {
            let (expected, unmanaged) = scaled(pods)?;
            let max = int_or_percent(max, expected, true)?;
            return Ok((expected, (expected - max).max(0), unmanaged));
        }
        match pdb.pointer("/spec/minAvailable").filter(|v| !v.is_null()) {
            Some(Value::Number(n)) => Ok((pods.len() as i64, n.as_i64().unwrap_or(0), false)),
            Some(min) => {
                let (expected, unmanaged) = scaled(pods)?;
                Ok((expected, int_or_percent(min, expected, true)?, unmanaged))
            }
            None => Ok((pods.len() as i64, 0, false)),
        }
    }

    /// Write one budget's status.
    pub async fn reconcile(&self, key: String) -> ApiResult<Action> {
        let Some(pdb) = self.informers.budgets.get(&key) else {
            return Ok(Action::Done);
        };
        let (ns, _) = split_key(&key);
        let pods: Vec<Arc<Value>> = self.informers.pods.list(ns).into_iter().filter(|p| selects_pod(&pdb, p)).collect();
        let mut o = (*pdb).clone();
        let generation = pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(0));
        let mut next = Action::Done;
        let mut warning = None;
        match self.expected(&pdb, &pods) {
            Err(e) => {
                // Fail safe: no disruption allowed while the budget cannot be worked out.
                o["status"]["disruptionsAllowed"] = json!(0);
                o["status"]["observedGeneration"] = generation;
                set_budget_condition(&mut o, false, "SyncFailed", &e);
                warning = Some((
                    "CalculateExpectedPodCountFailed",
                    format!("Failed to calculate the number of expected pods: {e}"),
                ));
            }
            Ok((expected, desired, unmanaged)) => {
                // The evictions still expected to be followed by a deletion.
                let mut disrupted = serde_json::Map::new();
                let noted = pdb
                    .pointer("/status/disruptedPods")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for p in &pods {
                    let name = str_at(p, "/metadata/name");
                    let terminating = p.pointer("/metadata/deletionTimestamp").is_some_and(|d| !d.is_null());
                    let Some(at) = noted.get(name).filter(|_| !terminating) else {
                        continue;
                    };
                    let age = at.as_str().and_then(super::runtime::seconds_since).unwrap_or(f64::MAX);
                    if age < DELETION_TIMEOUT {
                        disrupted.insert(name.to_string(), at.clone());
                        let left = Duration::from_secs_f64((DELETION_TIMEOUT - age).max(0.0) + 1.0);
                        next = match next {
                            Action::After(d) if d < left => next,
                            _ => Action::After(left),
                        };
                    }
                }
                let healthy = pods
                    .iter()
                    .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null))
                    .filter(|p| !disrupted.contains_key(str_at(p, "/metadata/name")))
                    .filter(|p| ready(p))
                    .count() as i64;
                let allowed = if expected <= 0 { 0 } else { (healthy - desired).max(0) };
                let st = &mut o["status"];
                st["currentHealthy"] = json!(healthy);
                st["desiredHealthy"] = json!(desired);
                st["expectedPods"] = json!(expected);
                st["disruptionsAllowed"] = json!(allowed);
                st["observedGeneration"] = generation;
                if disrupted.is_empty() {
                    st.as_object_mut().map(|m| m.remove("disruptedPods"));
                } else {
                    st["disruptedPods"] = Value::Object(disrupted);
                }
                if allowed > 0 {
                    set_budget_condition(&mut o, true, "SufficientPods", "");
                } else {
                    set_budget_condition(&mut o, false, "InsufficientPods", "");
                }
                if pods.is_empty() {
                    warning = Some(("NoPods", "No matching pods found".to_string()));
                } else if unmanaged {
                    warning = Some((
                        "UnmanagedPods",
                        format!(
                            "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                            crate::apiserver::select::map_string(pdb.pointer("/spec/selector/matchLabels"))
                        ),
                    ));
                }
            }
        }
        if o["status"] != pdb["status"] {
            self.client.update_status(super::budgets(), &o).await?;
            if let Some((reason, msg)) = warning {
                let kind = if reason == "NoPods" { "Normal" } else { "Warning" };
                super::event(&self.client, &o, kind, reason, &msg).await;
            }
        }
        Ok(next)
    }
}
