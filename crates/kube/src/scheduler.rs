//! The scheduler: binds each pending pod (no `spec.nodeName`, `schedulerName:
//! default-scheduler`) to a node that can take it — schedulable (or the pod tolerates that),
//! every `NoSchedule`/`NoExecute` taint tolerated, `nodeSelector` matched, its CPU and memory
//! requests within what the node has left — the least requested first. A pod no node takes
//! gets `PodScheduled=False` (reason `Unschedulable`, the count of nodes and why, as
//! kube-scheduler words it) and a `FailedScheduling` event, and is tried again.
//!
//! Pending pods are taken the highest `spec.priority` first. One that fits nowhere may
//! preempt (unless its `preemptionPolicy` is `Never`): on the node where the fewest and least
//! important lower-priority pods make room, those pods get a `DisruptionTarget` condition and
//! are deleted gracefully, a `Preempted` event says by whom, and the pod is nominated there
//! (`status.nominatedNodeName`), the room held for it against lower-priority pods until it
//! is bound.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::apiserver::objects::{set_condition, stored_bytes};
use crate::quantity;
use crate::store::{ListOptions, Store};

const PODS: &str = "/registry/core/pods/";
const NODES: &str = "/registry/core/nodes/";
const PDBS: &str = "/registry/policy/poddisruptionbudgets/";

fn parse(v: &[u8]) -> Value {
    serde_json::from_slice(v).unwrap_or_default()
}

fn tolerates(pod: &Value, taint: &Value) -> bool {
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| {
            let key_ok = match t["key"].as_str().unwrap_or("") {
                "" => t["operator"] == "Exists",
                k => k == taint["key"].as_str().unwrap_or(""),
            };
            let value_ok = t["operator"] == "Exists" || t["value"].as_str().unwrap_or("") == taint["value"].as_str().unwrap_or("");
            let effect_ok = match t["effect"].as_str().unwrap_or("") {
                "" => true,
                e => e == taint["effect"].as_str().unwrap_or(""),
            };
            key_ok && value_ok && effect_ok
        })
}

/// What a pod asks of a node: CPU (millicores), memory (bytes), and extended resources
/// (`nvidia.com/gpu`) by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Req {
    pub cpu: i64,
    pub mem: i64,
    pub ext: std::collections::BTreeMap<String, i64>,
}

/// Whether `name` is an extended resource (one a device, not the kernel, provides): any
/// domain-qualified name outside `kubernetes.io`, as Kubernetes defines them.
pub fn is_extended(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(domain, _)| !domain.is_empty() && domain != "kubernetes.io" && !domain.ends_with(".kubernetes.io"))
}

/// A container's request for an extended resource: its request, else its limit (Kubernetes
/// defaults the one to the other; they must be equal).
pub fn extended(c: &Value) -> impl Iterator<Item = (String, i64)> + '_ {
    let limits = c.pointer("/resources/limits").and_then(Value::as_object);
    let requests = c.pointer("/resources/requests").and_then(Value::as_object);
    let names: std::collections::BTreeSet<&String> = limits
        .into_iter()
        .chain(requests)
        .flat_map(|m| m.keys())
        .filter(|k| is_extended(k))
        .collect();
    names.into_iter().map(move |k| {
        let v = requests.and_then(|r| r.get(k)).or_else(|| limits.and_then(|l| l.get(k)));
        let n = v.and_then(Value::as_str).and_then(quantity::parse).unwrap_or(0.0).ceil() as i64;
        (k.clone(), n)
    })
}

/// A pod's requests: the sum over its containers, or the largest init container's when larger
/// (init containers run one at a time).
pub fn requests(pod: &Value) -> Req {
    let one = |c: &Value| -> Req {
        let cpu = c
            .pointer("/resources/requests/cpu")
            .and_then(Value::as_str)
            .and_then(quantity::milli_cpu);
        let mem = c
            .pointer("/resources/requests/memory")
            .and_then(Value::as_str)
            .and_then(quantity::bytes);
        Req {
            cpu: cpu.unwrap_or(0),
            mem: mem.unwrap_or(0),
            ext: extended(c).collect(),
        }
    };
    let list = |name: &str| -> Vec<Req> {
        pod.pointer(&format!("/spec/{name}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(one)
            .collect()
    };
    let mut out = list("containers").iter().fold(Req::default(), |a, b| add(&a, b));
    for i in list("initContainers") {
        out.cpu = out.cpu.max(i.cpu);
        out.mem = out.mem.max(i.mem);
        for (k, v) in i.ext {
            let e = out.ext.entry(k).or_default();
            *e = (*e).max(v);
        }
    }
    out
}

/// Why `node` cannot take `pod` (none: it can), given the requests of the pods already on it.
fn unfit(pod: &Value, node: &Value, used: &Req) -> Option<String> {
    if node.pointer("/spec/unschedulable") == Some(&json!(true)) {
        let t = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
        if !tolerates(pod, &t) {
            return Some("node(s) were unschedulable".into());
        }
    }
    for t in node.pointer("/spec/taints").and_then(Value::as_array).into_iter().flatten() {
        let hard = matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute"));
        if hard && !tolerates(pod, t) {
            return Some(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t["key"].as_str().unwrap_or(""),
                t["value"].as_str().unwrap_or("")
            ));
        }
    }
    let labels = node.pointer("/metadata/labels").cloned().unwrap_or_default();
    for (k, v) in pod.pointer("/spec/nodeSelector").and_then(Value::as_object).into_iter().flatten() {
        if labels.get(k) != Some(v) {
            return Some("node(s) didn't match Pod's node affinity/selector".into());
        }
    }
    if pod.pointer("/spec/affinity/nodeAffinity").is_some_and(|a| !a.is_null()) && !node_affinity(pod, &labels) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    let want = requests(pod);
    let (cpu, mem) = (want.cpu, want.mem);
    let alloc = |k: &str, f: fn(&str) -> Option<i64>| {
        // By key, not pointer: an extended resource's name has a `/`.
        node.pointer("/status/allocatable")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .and_then(f)
            .unwrap_or(0)
    };
    if cpu > 0 && used.cpu + cpu > alloc("cpu", quantity::milli_cpu) {
        return Some("Insufficient cpu".into());
    }
    if mem > 0 && used.mem + mem > alloc("memory", quantity::bytes) {
        return Some("Insufficient memory".into());
    }
    let whole = |s: &str| quantity::parse(s).map(|f| f.floor() as i64);
    for (k, n) in want.ext.iter().filter(|(_, n)| **n > 0) {
        if used.ext.get(k).copied().unwrap_or(0) + n > alloc(k, whole) {
            return Some(format!("Insufficient {k}"));
        }
    }
    None
}

/// `requiredDuringSchedulingIgnoredDuringExecution` node selector terms (any term; every
/// expression of a term) over the node's labels.
fn node_affinity(pod: &Value, labels: &Value) -> bool {
    let Some(terms) = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    terms.iter().any(|term| {
        term["matchExpressions"].as_array().into_iter().flatten().all(|e| {
            let got = labels.get(e["key"].as_str().unwrap_or("")).and_then(Value::as_str);
            let vals: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            match e["operator"].as_str().unwrap_or("") {
                "In" => got.is_some_and(|g| vals.contains(&g)),
                "NotIn" => got.is_none_or(|g| !vals.contains(&g)),
                "Exists" => got.is_some(),
                "DoesNotExist" => got.is_none(),
                "Gt" | "Lt" => {
                    let (Some(g), Some(v)) = (
                        got.and_then(|g| g.parse::<i64>().ok()),
                        vals.first().and_then(|v| v.parse::<i64>().ok()),
                    ) else {
                        return false;
                    };
                    if e["operator"] == "Gt" {
                        g > v
                    } else {
                        g < v
                    }
                }
                _ => false,
            }
        })
    })
}

fn pending(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName").and_then(Value::as_str).is_none_or(str::is_empty)
        && pod
            .pointer("/spec/schedulerName")
            .and_then(Value::as_str)
            .unwrap_or("default-scheduler")
            == "default-scheduler"
        && pod.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null)
}

fn priority(pod: &Value) -> i64 {
    pod.pointer("/spec/priority").and_then(Value::as_i64).unwrap_or(0)
}

fn terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_some_and(|d| !d.is_null())
}

fn add(a: &Req, b: &Req) -> Req {
    let mut out = a.clone();
    out.cpu += b.cpu;
    out.mem += b.mem;
    for (k, v) in &b.ext {
        *out.ext.entry(k.clone()).or_default() += v;
    }
    out
}

/// A pending pod nominated to a node: its key, priority and requests.
type Nomination = (String, i64, Req);

/// A pod bound to a node and not finished: what it takes there.
struct Placed {
    kv: crate::store::KeyValue,
    pod: Value,
    requests: Req,
}

/// Which of `victims` (in order) their PodDisruptionBudgets would not let go: a budget lets go
/// as many as its `disruptionsAllowed`, counted down as pods are taken, as kube-scheduler
/// counts them.
fn pdb_violations(victims: &[&Placed], pdbs: &[Value]) -> Vec<bool> {
    let mut left: Vec<i64> = pdbs
        .iter()
        .map(|b| b.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0))
        .collect();
    victims
        .iter()
        .map(|v| {
            let ns = str_of(&v.pod, "/metadata/namespace");
            let mut violates = false;
            for (i, b) in pdbs.iter().enumerate() {
                if str_of(b, "/metadata/namespace") == ns && crate::apiserver::eviction::selects_pod(b, &v.pod) {
                    left[i] -= 1;
                    if left[i] < 0 {
                        violates = true;
                    }
                }
            }
            violates
        })
        .collect()
}

/// The pods preemption would remove from `node` for `pod` to fit (none: it would not fit
/// even then), and how many of them their disruption budgets would rather keep. Every
/// lower-priority pod is taken off, then as many as still leave room are given back — first
/// those whose budgets forbid their eviction, then the others, the highest priority first — as
/// kube-scheduler's default preemption does.
fn victims<'a>(pod: &Value, node: &Value, placed: &'a [Placed], reserved: Req, pdbs: &[Value]) -> Option<(Vec<&'a Placed>, usize)> {
    let p = priority(pod);
    let mut used = reserved;
    let mut lower: Vec<&Placed> = Vec::new();
    for x in placed {
        if priority(&x.pod) < p && !terminating(&x.pod) {
            lower.push(x);
        } else {
            used = add(&used, &x.requests);
        }
    }
    if lower.is_empty() || unfit(pod, node, &used).is_some() {
        return None;
    }
    lower.sort_by_key(|x| std::cmp::Reverse(priority(&x.pod)));
    let violating = pdb_violations(&lower, pdbs);
    // The protected first (a stable sort keeps each group's priority order).
    let mut order: Vec<(&Placed, bool)> = lower.into_iter().zip(violating).collect();
    order.sort_by_key(|(_, violates)| !*violates);
    let mut out = Vec::new();
    let mut violations = 0;
    for (x, violates) in order {
        let with = add(&used, &x.requests);
        if unfit(pod, node, &with).is_none() {
            used = with;
        } else {
            violations += usize::from(violates);
            out.push(x);
        }
    }
    Some((out, violations))
}

/// Why a pending pod may not preempt others (none: it may).
fn not_eligible(pod: &Value, placed: &std::collections::HashMap<String, Vec<Placed>>) -> Option<&'static str> {
    if pod.pointer("/spec/preemptionPolicy").and_then(Value::as_str) == Some("Never") {
        return Some("not eligible due to preemptionPolicy=Never.");
    }
    let nominated = pod.pointer("/status/nominatedNodeName").and_then(Value::as_str).unwrap_or("");
    let waiting = placed
        .get(nominated)
        .is_some_and(|on| on.iter().any(|x| terminating(&x.pod) && priority(&x.pod) < priority(pod)));
    waiting.then_some("not eligible due to a terminating pod on the nominated node.")
}

/// Mark a preemption victim for graceful deletion (its node's agent stops it and removes it).
async fn evict_victim(store: &dyn Store, victim: &Placed, preemptor: &Value, node: &str) {
    let mut v = victim.pod.clone();
    let grace = v
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30)
        .max(0);
    let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
    v["metadata"]["deletionTimestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    v["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    set_condition(
        &mut v,
        "DisruptionTarget",
        "True",
        "PreemptionByScheduler",
        "default-scheduler: preempting to accommodate a higher priority pod",
    );
    if store.update(&victim.kv.key, stored_bytes(&v), victim.kv.mod_revision).await.is_ok() {
        let uid = preemptor.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
        let msg = format!("Preempted by pod {uid} on node {node}");
        crate::agent::events::record(store, &v, "Normal", "Preempted", &msg, "default-scheduler").await;
    }
}

/// One pass: every pending pod bound or marked unschedulable, the highest priority first; a
/// pod no node can take may preempt lower-priority pods (it is then nominated to their node
/// and bound once they are gone). Whether any pod is left pending.
pub async fn schedule_once(store: &dyn Store) -> Result<bool, crate::store::Error> {
    let nodes: Vec<Value> = store
        .list(NODES, ListOptions::default())
        .await?
        .items
        .iter()
        .map(|kv| parse(&kv.value))
        .collect();
    let pods = store.list(PODS, ListOptions::default()).await?.items;
    // The disruption budgets, which preemption would rather not break.
    let pdbs: Vec<Value> = store
        .list(PDBS, ListOptions::default())
        .await?
        .items
        .iter()
        .map(|kv| parse(&kv.value))
        .collect();
    let mut placed: std::collections::HashMap<String, Vec<Placed>> = Default::default();
    let mut waiting = Vec::new();
    for kv in pods {
        let p = parse(&kv.value);
        let phase = p.pointer("/status/phase").and_then(Value::as_str).unwrap_or("");
        match p.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            Some(n) if !matches!(phase, "Succeeded" | "Failed") => {
                let requests = requests(&p);
                placed.entry(n.to_string()).or_default().push(Placed { kv, pod: p, requests });
            }
            Some(_) => {}
            None if pending(&p) => waiting.push((kv, p)),
            None => {}
        }
    }
    // The highest priority first, then the oldest.
    waiting.sort_by(|(_, a), (_, b)| {
        priority(b)
            .cmp(&priority(a))
            .then_with(|| str_of(a, "/metadata/creationTimestamp").cmp(str_of(b, "/metadata/creationTimestamp")))
    });
    // What pods nominated to a node after preempting there hold of it (pod key, priority, requests).
    let mut nominated: std::collections::HashMap<String, Vec<Nomination>> = Default::default();
    for (kv, p) in &waiting {
        if let Some(n) = p
            .pointer("/status/nominatedNodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            nominated
                .entry(n.to_string())
                .or_default()
                .push((kv.key.clone(), priority(p), requests(p)));
        }
    }
    let mut left = false;
    for (kv, mut pod) in waiting {
        let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
        let mut best: Option<(&Value, i64)> = None;
        // What others hold of a node against this pod: nominations of no lower priority.
        let reserved = |node: &str| -> Req {
            nominated
                .get(node)
                .into_iter()
                .flatten()
                .filter(|(k, p, _)| *k != kv.key && *p >= priority(&pod))
                .fold(Req::default(), |a, (_, _, r)| add(&a, r))
        };
        let used_on = |node: &str| -> Req {
            placed
                .get(node)
                .into_iter()
                .flatten()
                .fold(Req::default(), |a, x| add(&a, &x.requests))
        };
        for n in &nodes {
            let name = str_of(n, "/metadata/name");
            let u = add(&used_on(name), &reserved(name));
            match unfit(&pod, n, &u) {
                Some(r) => *reasons.entry(r).or_default() += 1,
                None => {
                    // Least requested: the node with the most CPU left (then memory).
                    let cpu_left = n
                        .pointer("/status/allocatable/cpu")
                        .and_then(Value::as_str)
                        .and_then(quantity::milli_cpu)
                        .unwrap_or(0)
                        - u.cpu;
                    if best.is_none_or(|(_, b)| cpu_left > b) {
                        best = Some((n, cpu_left));
                    }
                }
            }
        }
        let ns = str_of(&pod, "/metadata/namespace").to_string();
        let name = str_of(&pod, "/metadata/name").to_string();
        if let Some((n, _)) = best {
            let node = str_of(n, "/metadata/name").to_string();
            pod["spec"]["nodeName"] = json!(node);
            if let Some(st) = pod["status"].as_object_mut() {
                st.remove("nominatedNodeName");
            }
            set_condition(&mut pod, "PodScheduled", "True", "", "");
            if store.update(&kv.key, stored_bytes(&pod), kv.mod_revision).await.is_ok() {
                let requests = requests(&pod);
                let msg = format!("Successfully assigned {ns}/{name} to {node}");
                crate::agent::events::record(store, &pod, "Normal", "Scheduled", &msg, "default-scheduler").await;
                let kv = crate::store::KeyValue {
                    value: stored_bytes(&pod),
                    ..kv
                };
                placed.entry(node).or_default().push(Placed { kv, pod, requests });
            }
            continue;
        }
        left = true;
        let mut why: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
        why.sort();
        let fit_error = format!(
            "0/{} nodes are available: {}.",
            nodes.len(),
            if why.is_empty() {
                "no nodes registered".to_string()
            } else {
                why.join(", ")
            },
        );
        // Preemption: the node where the fewest, then the least important, pods make room.
        let mut chosen: Option<(String, Vec<&Placed>, usize)> = None;
        let mut preemption = String::new();
        if !nodes.is_empty() {
            match not_eligible(&pod, &placed) {
                Some(why) => preemption = format!(" preemption: {why}"),
                None => {
                    let mut helpless = 0;
                    for n in &nodes {
                        let node = str_of(n, "/metadata/name");
                        let on = placed.get(node).map(Vec::as_slice).unwrap_or(&[]);
                        match victims(&pod, n, on, reserved(node), &pdbs) {
                            Some((v, violations)) => {
                                // kube-scheduler's order: the fewest budget violations, then
                                // the lowest highest victim priority, the lowest sum of
                                // priorities, the fewest victims.
                                let rank = |v: &[&Placed], violations: usize| {
                                    (
                                        violations,
                                        v.iter().map(|x| priority(&x.pod)).max().unwrap_or(i64::MIN),
                                        v.iter().map(|x| priority(&x.pod)).sum::<i64>(),
                                        v.len(),
                                    )
                                };
                                if chosen.as_ref().is_none_or(|(_, c, cv)| rank(&v, violations) < rank(c, *cv)) {
                                    chosen = Some((node.to_string(), v, violations));
                                }
                            }
                            None => helpless += 1,
                        }
                    }
                    if chosen.is_none() {
                        preemption = format!(
                            " preemption: 0/{} nodes are available: {helpless} {}.",
                            nodes.len(),
                            if pod_blocked_by_resources_only(&reasons) {
                                "No preemption victims found for incoming pod"
                            } else {
                                "Preemption is not helpful for scheduling"
                            }
                        );
                    }
                }
            }
        }
        let msg = format!("{fit_error}{preemption}");
        let before = pod.pointer("/status/conditions").cloned();
        set_condition(&mut pod, "PodScheduled", "False", "Unschedulable", &msg);
        let changed = before
            .as_ref()
            .and_then(|c| c.as_array())
            .is_none_or(|c| !c.iter().any(|x| x["type"] == "PodScheduled" && x["message"] == json!(msg)));
        let nominate = chosen.as_ref().map(|(n, _, _)| n.clone());
        let renominated = nominate
            .as_deref()
            .is_some_and(|n| pod.pointer("/status/nominatedNodeName").and_then(Value::as_str) != Some(n));
        if let Some(n) = &nominate {
            pod["status"]["nominatedNodeName"] = json!(n);
        }
        if (changed || renominated) && store.update(&kv.key, stored_bytes(&pod), kv.mod_revision).await.is_ok() {
            if changed {
                crate::agent::events::record(store, &pod, "Warning", "FailedScheduling", &msg, "default-scheduler").await;
            }
            if let Some((node, victims, _)) = &chosen {
                for v in victims {
                    evict_victim(store, v, &pod, node).await;
                }
                nominated
                    .entry(node.clone())
                    .or_default()
                    .push((kv.key.clone(), priority(&pod), requests(&pod)));
            }
        }
    }
    Ok(left)
}

/// Whether every node turned the pod down for lack of CPU or memory alone.
fn pod_blocked_by_resources_only(reasons: &std::collections::BTreeMap<String, usize>) -> bool {
    reasons.keys().all(|r| r.starts_with("Insufficient"))
}

fn str_of<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Schedule as pods and nodes change (and every 5 s while some pod waits), until aborted.
pub async fn run(store: Arc<dyn Store>) {
    loop {
        let rev = store.revision().await.unwrap_or(0);
        let left = match schedule_once(store.as_ref()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "scheduling");
                true
            }
        };
        // Wake at the next write to pods or nodes, or after a while when some pod waits.
        let mut rx = match store.watch("/registry/core/", rev).await {
            Ok(rx) => rx,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let wait = if left { Duration::from_secs(5) } else { Duration::from_secs(60) };
        let _ = tokio::time::timeout(wait, async {
            while let Some(ev) = rx.recv().await {
                match ev {
                    Ok(e) if e.kv.key.starts_with(PODS) || e.kv.key.starts_with(NODES) => {
                        // A heartbeat-only node write does not change what fits.
                        if e.kv.key.starts_with(NODES) && e.prev.is_some() {
                            continue;
                        }
                        return;
                    }
                    Ok(_) => continue,
                    Err(_) => return,
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(cpu: i64, mem: i64) -> Req {
        Req {
            cpu,
            mem,
            ..Default::default()
        }
    }

    fn node() -> Value {
        json!({"metadata": {"name": "n", "labels": {"disk": "ssd"}}, "spec": {}, "status": {"allocatable": {"cpu": "2", "memory": "1Gi"}}})
    }

    #[test]
    fn fits_by_requests_selectors_and_taints() {
        let pod = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}}]}});
        assert_eq!(unfit(&pod, &node(), &used(0, 0)), None);
        assert_eq!(unfit(&pod, &node(), &used(1600, 0)).as_deref(), Some("Insufficient cpu"));
        assert_eq!(unfit(&pod, &node(), &used(0, 900 << 20)).as_deref(), Some("Insufficient memory"));
        let mut sel = pod.clone();
        sel["spec"]["nodeSelector"] = json!({"disk": "hdd"});
        assert!(unfit(&sel, &node(), &used(0, 0)).unwrap().contains("selector"));
        let mut tainted = node();
        tainted["spec"]["taints"] = json!([{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]);
        assert_eq!(
            unfit(&pod, &tainted, &used(0, 0)).as_deref(),
            Some("node(s) had untolerated taint {gpu: yes}")
        );
        let mut tol = pod.clone();
        tol["spec"]["tolerations"] = json!([{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}]);
        assert_eq!(unfit(&tol, &tainted, &used(0, 0)), None);
        let mut cordoned = node();
        cordoned["spec"]["unschedulable"] = json!(true);
        assert!(unfit(&pod, &cordoned, &used(0, 0)).is_some());
        let init = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "100m"}}}], "initContainers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!((requests(&init).cpu, requests(&init).mem), (1000, 0));
    }

    #[test]
    fn extended_resources_default_to_limits_and_must_fit() {
        let mut n = node();
        n["status"]["allocatable"]["nvidia.com/gpu"] = json!("2");
        let pod = json!({"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "1"}}}]}});
        assert_eq!(requests(&pod).ext["nvidia.com/gpu"], 2);
        assert_eq!(unfit(&pod, &n, &used(0, 0)), None);
        let mut one_used = used(0, 0);
        one_used.ext.insert("nvidia.com/gpu".into(), 1);
        assert_eq!(unfit(&pod, &n, &one_used).as_deref(), Some("Insufficient nvidia.com/gpu"));
        assert_eq!(unfit(&pod, &node(), &used(0, 0)).as_deref(), Some("Insufficient nvidia.com/gpu"));
        assert!(!is_extended("cpu") && !is_extended("kubernetes.io/foo") && is_extended("example.com/fpga"));
    }

    #[test]
    fn preemption_spares_pods_their_budgets_protect() {
        let placed = |name: &str, prio: i64| {
            let pod = json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
                "spec": {"priority": prio, "containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
            Placed {
                kv: crate::store::KeyValue {
                    key: name.into(),
                    value: vec![],
                    create_revision: 1,
                    mod_revision: 1,
                },
                requests: requests(&pod),
                pod,
            }
        };
        let on = vec![placed("a", 5), placed("b", 10)];
        let high = json!({"spec": {"priority": 100, "containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        let names = |v: &[&Placed]| v.iter().map(|x| str_of(&x.pod, "/metadata/name").to_string()).collect::<Vec<_>>();
        // No budgets: the lowest priority goes.
        let (v, n) = victims(&high, &node(), &on, Req::default(), &[]).unwrap();
        assert_eq!((names(&v), n), (vec!["a".to_string()], 0));
        // A budget that allows no disruption of `a`: `b` goes instead.
        let pdb = json!({"metadata": {"namespace": "default"}, "spec": {"selector": {"matchLabels": {"app": "a"}}}, "status": {"disruptionsAllowed": 0}});
        let (v, n) = victims(&high, &node(), &on, Req::default(), std::slice::from_ref(&pdb)).unwrap();
        assert_eq!((names(&v), n), (vec!["b".to_string()], 0));
        // When both must go, the violation is counted.
        let big = json!({"spec": {"priority": 100, "containers": [{"resources": {"requests": {"cpu": "2"}}}]}});
        let (v, n) = victims(&big, &node(), &on, Req::default(), &[pdb]).unwrap();
        assert_eq!((v.len(), n), (2, 1));
    }
}
