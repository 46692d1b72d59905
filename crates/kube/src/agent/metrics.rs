//! Resource metrics (metrics-server's role, fed as the kubelet's summary feeds it): every
//! [`PERIOD`] each running pod container's cgroup is read — CPU time and memory working set —
//! and the node's (`/proc/stat`, `/proc/meminfo`); CPU usage is the rate between two samples.
//! Served as `metrics.k8s.io/v1beta1` PodMetrics and NodeMetrics (`kubectl top`), and read by
//! the HorizontalPodAutoscaler controller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::pods::{CONTAINER, POD_NAME, POD_NAMESPACE};

/// How often usage is sampled (the usage window).
pub const PERIOD: Duration = Duration::from_secs(5);

/// One container's latest usage.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    /// The pod's namespace and name, the container's name.
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// CPU in nanocores over the last window.
    pub cpu_nanocores: u64,
    /// Memory working set (bytes).
    pub memory: u64,
}

struct Sample {
    cpu_ns: u64,
    at: Instant,
    usage: Option<ContainerUsage>,
}

/// The node's last CPU counters (busy, total jiffies), its CPU rate (nanocores) and memory.
#[derive(Default)]
struct NodeSample {
    counters: Option<(u64, u64)>,
    cpu_nanocores: u64,
    memory: u64,
}

/// The latest samples.
#[derive(Default)]
pub struct Metrics {
    containers: Mutex<HashMap<String, Sample>>,
    node: Mutex<NodeSample>,
    stamp: Mutex<String>,
}

fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // busy = all but idle and iowait
    let total: u64 = f.iter().sum();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

fn memory_working_set() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kib("MemTotal:") - kib("MemAvailable:")) * 1024
}

/// CPU as Kubernetes prints a usage (`12345678n`), memory in Ki.
fn quantities(cpu_nanocores: u64, memory: u64) -> Value {
    json!({"cpu": format!("{cpu_nanocores}n"), "memory": format!("{}Ki", memory / 1024)})
}

impl Metrics {
    /// Sample every [`PERIOD`] until the daemon stops.
    pub async fn run(self: Arc<Self>, engine: Arc<dyn engine::service::ContainerService>) {
        let mut tick = tokio::time::interval(PERIOD);
        loop {
            tick.tick().await;
            self.sample(engine.as_ref());
        }
    }

    fn sample(&self, engine: &dyn engine::service::ContainerService) {
        let now = Instant::now();
        let mut seen = HashMap::new();
        {
            let old = self.containers.lock().expect("metrics lock");
            for c in engine.containers() {
                let labels = &c.config.labels;
                let (Some(ns), Some(pod), Some(name)) = (labels.get(POD_NAMESPACE), labels.get(POD_NAME), labels.get(CONTAINER)) else {
                    continue;
                };
                if name == super::pods::SANDBOX || !c.state.running {
                    continue;
                }
                let Some(u) = engine.usage(&c.id) else { continue };
                let usage = old.get(&c.id).and_then(|prev| {
                    let dt = now.duration_since(prev.at).as_secs_f64();
                    (dt > 0.0 && u.cpu_ns >= prev.cpu_ns).then(|| ContainerUsage {
                        namespace: ns.clone(),
                        pod: pod.clone(),
                        container: name.clone(),
                        cpu_nanocores: ((u.cpu_ns - prev.cpu_ns) as f64 / dt) as u64,
                        memory: u.memory_working_set,
                    })
                });
                seen.insert(
                    c.id.clone(),
                    Sample {
                        cpu_ns: u.cpu_ns,
                        at: now,
                        usage,
                    },
                );
            }
        }
        *self.containers.lock().expect("metrics lock") = seen;
        let mut node = self.node.lock().expect("metrics lock");
        if let Some((busy, total)) = cpu_jiffies() {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
            if let Some((b0, t0)) = node.counters {
                if total > t0 {
                    node.cpu_nanocores = (busy.saturating_sub(b0)) * cores * 1_000_000_000 / (total - t0);
                }
            }
            node.counters = Some((busy, total));
        }
        node.memory = memory_working_set();
        *self.stamp.lock().expect("metrics lock") = crate::apiserver::objects::now();
    }

    /// Each container's usage over the last window (those sampled twice).
    pub fn containers(&self) -> Vec<ContainerUsage> {
        self.containers
            .lock()
            .expect("metrics lock")
            .values()
            .filter_map(|s| s.usage.clone())
            .collect()
    }

    /// PodMetrics of a namespace (all for `None`), as metrics-server serves them.
    pub fn pod_metrics(&self, namespace: Option<&str>, pods: &[Value]) -> Vec<Value> {
        let stamp = self.stamp.lock().expect("metrics lock").clone();
        let mut by_pod: HashMap<(String, String), Vec<Value>> = HashMap::new();
        for u in self.containers() {
            if namespace.is_some_and(|n| n != u.namespace) {
                continue;
            }
            by_pod
                .entry((u.namespace.clone(), u.pod.clone()))
                .or_default()
                .push(json!({"name": u.container, "usage": quantities(u.cpu_nanocores, u.memory)}));
        }
        let mut out: Vec<Value> = by_pod
            .into_iter()
            .map(|((ns, name), mut containers)| {
                containers.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                let labels = pods
                    .iter()
                    .find(|p| p["metadata"]["namespace"] == ns && p["metadata"]["name"] == name)
                    .map(|p| p["metadata"]["labels"].clone())
                    .unwrap_or(json!({}));
                json!({
                    "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {"name": name, "namespace": ns, "labels": labels, "creationTimestamp": stamp},
                    "timestamp": stamp, "window": format!("{}s", PERIOD.as_secs()), "containers": containers,
                })
            })
            .collect();
        out.sort_by_key(|m| (m["metadata"]["namespace"].to_string(), m["metadata"]["name"].to_string()));
        out
    }

    /// This node's NodeMetrics.
    pub fn node_metrics(&self, node: &Value) -> Option<Value> {
        let stamp = self.stamp.lock().expect("metrics lock").clone();
        let n = self.node.lock().expect("metrics lock");
        n.counters?;
        Some(json!({
            "kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": node["metadata"]["name"], "labels": node["metadata"]["labels"], "creationTimestamp": stamp},
            "timestamp": stamp, "window": format!("{}s", PERIOD.as_secs()), "usage": quantities(n.cpu_nanocores, n.memory),
        }))
    }
}
