//! The node agent (the kubelet's part, in the daemon). So far: it registers this machine as a
//! Node — capacity and allocatable, nodeInfo, addresses, conditions — and keeps its Lease in
//! `kube-node-lease` renewed every 10 s, as the kubelet's heartbeat does; the Node's status is
//! written again every minute. Its pods are in [`pods`].

pub mod build;
pub mod events;
pub mod logs;
pub mod metrics;
pub mod pods;
pub mod probe;
pub mod remote;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::apiserver::objects::{now, stored_bytes, uuid};
use crate::store::{Error as StoreError, Store};

/// How the agent describes its node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The Node's name (the host name by default).
    pub name: String,
    /// The version the agent reports (`v1.33.0+berth-…`).
    pub kubelet_version: String,
    /// `berth://<version>`.
    pub runtime_version: String,
    /// Where ephemeral storage lives (the data root).
    pub root: std::path::PathBuf,
    /// Where CDI device specs are: each kind's devices are offered as an extended resource
    /// (`nvidia.com/gpu: 2`).
    pub cdi_spec_dirs: Vec<std::path::PathBuf>,
}

fn micro_now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_string()
}

/// The host name, as a node name (lower case).
pub fn hostname() -> String {
    let h = read("/proc/sys/kernel/hostname").to_lowercase();
    if h.is_empty() {
        "berth".into()
    } else {
        h
    }
}

fn os_image() -> String {
    read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

pub(crate) fn memory_kib() -> u64 {
    read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn storage_kib(root: &std::path::Path) -> u64 {
    nix::sys::statvfs::statvfs(root)
        .map(|s| s.blocks() * s.fragment_size() / 1024)
        .unwrap_or(0)
}

/// The address other machines would reach this one at: the source address of the default
/// route (found by connecting a UDP socket, which sends nothing).
pub(crate) fn internal_ip() -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then(|| ip.to_string())
}

/// The Node object this agent reports.
pub fn node_object(cfg: &NodeConfig, created: Option<&Value>) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut capacity = json!({
        "cpu": cpus.to_string(),
        "memory": format!("{}Ki", memory_kib()),
        "pods": "110",
        "ephemeral-storage": format!("{}Ki", storage_kib(&cfg.root)),
        "hugepages-2Mi": "0",
        "hugepages-1Gi": "0",
    });
    for (kind, names) in engine::cdi::Catalog::load(&cfg.cdi_spec_dirs).kinds() {
        capacity[kind] = json!(names.len().to_string());
    }
    let t = now();
    let cond = |ty: &str, status: &str, reason: &str, msg: &str| {
        let since = created
            .and_then(|c| c.pointer("/status/conditions"))
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| x["type"] == ty && x["status"] == status))
            .and_then(|x| x["lastTransitionTime"].as_str())
            .map(String::from)
            .unwrap_or_else(|| t.clone());
        json!({"type": ty, "status": status, "lastHeartbeatTime": t, "lastTransitionTime": since, "reason": reason, "message": msg})
    };
    let mut addresses = Vec::new();
    if let Some(ip) = internal_ip() {
        addresses.push(json!({"type": "InternalIP", "address": ip}));
    }
    addresses.push(json!({"type": "Hostname", "address": cfg.name}));
    let machine_id = read("/etc/machine-id");
    let mut labels = json!({
        "kubernetes.io/hostname": cfg.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node-role.kubernetes.io/control-plane": "",
    });
    // Labels, annotations, taints and unschedulable set by users stay.
    if let Some(Value::Object(old)) = created.and_then(|c| c.pointer("/metadata/labels")) {
        for (k, v) in old {
            labels[k] = v.clone();
        }
    }
    let mut node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": cfg.name, "labels": labels},
        "spec": created.and_then(|c| c.get("spec")).cloned().unwrap_or_else(|| json!({})),
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                cond("Ready", "True", "KubeletReady", "berth's node agent is posting ready status"),
            ],
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": machine_id,
                "systemUUID": machine_id,
                "bootID": read("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": read("/proc/sys/kernel/osrelease"),
                "osImage": os_image(),
                "containerRuntimeVersion": cfg.runtime_version,
                "kubeletVersion": cfg.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    });
    if let Some(c) = created {
        for k in ["uid", "creationTimestamp", "annotations"] {
            if let Some(v) = c.pointer(&format!("/metadata/{k}")) {
                node["metadata"][k] = v.clone();
            }
        }
    }
    node
}

/// Write `make(current)` at `key`, created when missing, retried on a conflict.
async fn upsert(store: &dyn Store, key: &str, make: impl Fn(Option<&Value>) -> Value) -> Result<(), StoreError> {
    for _ in 0..5 {
        match store.get(key, None).await? {
            None => {
                let mut o = make(None);
                o["metadata"]["uid"] = json!(uuid());
                o["metadata"]["creationTimestamp"] = json!(now());
                match store.create(key, stored_bytes(&o)).await {
                    Err(StoreError::AlreadyExists(_)) => continue,
                    r => return r.map(|_| ()),
                }
            }
            Some(kv) => {
                let old: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
                let o = make(Some(&old));
                match store.update(key, stored_bytes(&o), kv.mod_revision).await {
                    Err(StoreError::Conflict { .. }) => continue,
                    r => return r.map(|_| ()),
                }
            }
        }
    }
    Err(StoreError::Backend(format!("{key}: too many conflicting writes")))
}

/// Register the node and keep its heartbeat until the task is aborted.
pub async fn run_node(store: Arc<dyn Store>, cfg: NodeConfig) {
    let node_key = format!("/registry/core/nodes/{}", cfg.name);
    let lease_key = format!("/registry/coordination.k8s.io/leases/kube-node-lease/{}", cfg.name);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let mut n = 0u64;
    loop {
        tick.tick().await;
        if n.is_multiple_of(6) {
            if let Err(e) = upsert(store.as_ref(), &node_key, |old| node_object(&cfg, old)).await {
                tracing::warn!(node = %cfg.name, error = %e, "updating the Node");
            }
        }
        n += 1;
        let lease = |old: Option<&Value>| {
            let mut l = json!({
                "metadata": {"name": cfg.name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": cfg.name, "leaseDurationSeconds": 40, "renewTime": micro_now()},
            });
            if let Some(o) = old {
                for k in ["uid", "creationTimestamp", "labels", "annotations"] {
                    if let Some(v) = o.pointer(&format!("/metadata/{k}")) {
                        l["metadata"][k] = v.clone();
                    }
                }
            }
            l
        };
        if let Err(e) = upsert(store.as_ref(), &lease_key, lease).await {
            tracing::warn!(node = %cfg.name, error = %e, "renewing the node's Lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_update_keeps_what_users_set() {
        let cfg = NodeConfig {
            name: "n1".into(),
            kubelet_version: "v1.33.0+berth".into(),
            runtime_version: "berth://0".into(),
            root: "/".into(),
            cdi_spec_dirs: vec![],
        };
        let first = node_object(&cfg, None);
        assert_eq!(first["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        let mut old = first.clone();
        old["metadata"]["labels"]["gpu"] = json!("true");
        old["metadata"]["uid"] = json!("u-1");
        old["spec"] = json!({"unschedulable": true});
        let next = node_object(&cfg, Some(&old));
        assert_eq!(next["metadata"]["labels"]["gpu"], "true");
        assert_eq!(next["metadata"]["uid"], "u-1");
        assert_eq!(next["spec"]["unschedulable"], true);
        let ready = |n: &Value| n["status"]["conditions"][3]["lastTransitionTime"].clone();
        assert_eq!(
            ready(&next),
            ready(&old),
            "a condition that did not change keeps its transition time"
        );
    }
}
