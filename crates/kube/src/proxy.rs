//! The node's service proxy (kube-proxy's role, in its nftables mode's shape): every Service
//! port's cluster IP, and its node port on the host's addresses, load-balanced by the kernel
//! over the port's ready endpoints. One nftables table of the daemon's own
//! (`ip berth-svc-<pod bridge>`), rewritten whole in one `nft` batch whenever Services or
//! Endpoints change:
//!
//! - `dispatch` (from the nat prerouting and output hooks) sends a cluster IP:port, or a local
//!   address's node port, to the port's chain;
//! - a port's chain marks the packet for masquerade (so replies come back through the host
//!   even when client and endpoint share the bridge) and picks an endpoint at random
//!   (`numgen`), or the one a client was sent to before (`sessionAffinity: ClientIP`, a
//!   timed set per endpoint);
//! - an endpoint's chain DNATs to it;
//! - whatever still goes to the service range (no ready endpoint, or no such Service) is
//!   rejected — refused at once, never routed off the machine.
//!
//! The host's loopback cannot be DNATed to a pod (without `route_localnet`), so node ports on
//! 127.0.0.1 are served by a small TCP relay in the daemon, as Docker's userland proxy serves
//! published ports there.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::controllers::runtime::str_at;
use crate::controllers::{on_change, Informers};

/// One Service port as the data path serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `namespace/name:port` (for comments and logs).
    pub id: String,
    /// The cluster IP (none for headless Services).
    pub cluster_ip: Option<Ipv4Addr>,
    /// The Service's port.
    pub port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub proto: &'static str,
    /// The node port, if any.
    pub node_port: Option<u16>,
    /// The ready endpoints.
    pub backends: Vec<SocketAddr>,
    /// ClientIP affinity's timeout (seconds), when on.
    pub affinity: Option<i64>,
}

/// The Service ports the data path serves, from the Services and their Endpoints.
pub fn service_ports(informers: &Informers) -> Vec<ServicePort> {
    let mut out = Vec::new();
    for svc in informers.services.list("") {
        let ty = str_at(&svc, "/spec/type");
        if ty == "ExternalName" {
            continue;
        }
        let cluster_ip = str_at(&svc, "/spec/clusterIP").parse::<Ipv4Addr>().ok();
        let key = crate::controllers::runtime::key_of(&svc);
        let ep = informers.endpoints.get(&key);
        let affinity = (str_at(&svc, "/spec/sessionAffinity") == "ClientIP").then(|| {
            svc.pointer("/spec/sessionAffinityConfig/clientIP/timeoutSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(10800)
        });
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            let proto = match p["protocol"].as_str().unwrap_or("TCP") {
                "UDP" => "udp",
                "SCTP" => "sctp",
                _ => "tcp",
            };
            let name = p["name"].as_str().unwrap_or("");
            let mut backends = Vec::new();
            for subset in ep.as_ref().and_then(|e| e["subsets"].as_array().cloned()).unwrap_or_default() {
                let Some(port) = subset["ports"].as_array().into_iter().flatten().find(|ep| {
                    ep["name"].as_str().unwrap_or("") == name && ep["protocol"].as_str().unwrap_or("TCP").eq_ignore_ascii_case(proto)
                }) else {
                    continue;
                };
                let Some(port) = port["port"].as_u64().and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                for a in subset["addresses"].as_array().into_iter().flatten() {
                    if let Ok(ip) = a["ip"].as_str().unwrap_or("").parse::<Ipv4Addr>() {
                        backends.push(SocketAddr::from((ip, port)));
                    }
                }
            }
            backends.sort();
            let node_port = matches!(ty, "NodePort" | "LoadBalancer")
                .then(|| p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()))
                .flatten();
            out.push(ServicePort {
                id: format!("{key}:{}", if name.is_empty() { p["port"].to_string() } else { name.to_string() }),
                cluster_ip,
                port: p["port"].as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
                proto,
                node_port,
                backends,
                affinity,
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// The table's batch: declared (so the delete cannot fail), deleted, written anew.
pub fn render(table: &str, service_cidr: &str, ports: &[ServicePort]) -> String {
    let mut s = format!("table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n");
    let mut dispatch = String::new();
    let mut chains = String::new();
    for (i, p) in ports.iter().enumerate() {
        if p.backends.is_empty() {
            continue;
        }
        let comment = format!("comment \"{}\"", p.id.replace('"', ""));
        if let Some(ip) = p.cluster_ip {
            dispatch.push_str(&format!("    ip daddr {ip} {} dport {} goto svc_{i} {comment}\n", p.proto, p.port));
        }
        if let Some(np) = p.node_port {
            dispatch.push_str(&format!(
                "    fib daddr type local ip daddr != 127.0.0.0/8 {} dport {np} goto svc_{i} {comment}\n",
                p.proto
            ));
        }
        chains.push_str(&format!("  chain svc_{i} {{\n    meta mark set meta mark | 0x4000\n"));
        if let Some(t) = p.affinity {
            for j in 0..p.backends.len() {
                s.push_str(&format!(
                    "  set aff_{i}_{j} {{ type ipv4_addr; flags dynamic,timeout; timeout {t}s; }}\n"
                ));
                chains.push_str(&format!("    ip saddr @aff_{i}_{j} goto ep_{i}_{j}\n"));
            }
        }
        let n = p.backends.len();
        if n == 1 {
            chains.push_str(&format!("    goto ep_{i}_0\n  }}\n"));
        } else {
            let arms: Vec<String> = (0..n).map(|j| format!("{j} : goto ep_{i}_{j}")).collect();
            chains.push_str(&format!("    numgen random mod {n} vmap {{ {} }}\n  }}\n", arms.join(", ")));
        }
        for (j, b) in p.backends.iter().enumerate() {
            chains.push_str(&format!("  chain ep_{i}_{j} {{\n"));
            if p.affinity.is_some() {
                chains.push_str(&format!("    update @aff_{i}_{j} {{ ip saddr }}\n"));
            }
            chains.push_str(&format!("    meta l4proto {} dnat to {b}\n  }}\n", p.proto));
        }
    }
    s.push_str("  chain nat_prerouting { type nat hook prerouting priority -105; policy accept; jump dispatch; }\n");
    s.push_str("  chain nat_output { type nat hook output priority -105; policy accept; jump dispatch; }\n");
    s.push_str(
        "  chain nat_postrouting { type nat hook postrouting priority 95; policy accept; meta mark & 0x4000 == 0x4000 masquerade; }\n",
    );
    // Still bound for the service range: no ready endpoint (or no such Service) — refused.
    for (name, hook) in [("filter_forward", "forward"), ("filter_output", "output")] {
        s.push_str(&format!(
            "  chain {name} {{ type filter hook {hook} priority -5; policy accept; ip daddr {service_cidr} meta l4proto tcp reject with tcp reset; ip daddr {service_cidr} reject; }}\n"
        ));
    }
    s.push_str("  chain dispatch {\n");
    s.push_str(&dispatch);
    s.push_str("  }\n");
    s.push_str(&chains);
    s.push_str("}\n");
    s
}

/// A relay's task and the endpoints it picks from.
type Relay = (tokio::task::AbortHandle, Arc<RwLock<Vec<SocketAddr>>>);

/// The node ports on the host's loopback, relayed to their endpoints (round robin).
struct Loopback {
    listeners: BTreeMap<u16, Relay>,
}

impl Loopback {
    fn sync(&mut self, ports: &[ServicePort]) {
        let mut want: BTreeMap<u16, Vec<SocketAddr>> = BTreeMap::new();
        for p in ports.iter().filter(|p| p.proto == "tcp") {
            if let Some(np) = p.node_port {
                want.entry(np).or_default().extend(p.backends.iter().copied());
            }
        }
        self.listeners.retain(|port, (task, _)| {
            let keep = want.contains_key(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for (port, backends) in want {
            if let Some((_, b)) = self.listeners.get(&port) {
                *b.write().expect("backends lock") = backends;
                continue;
            }
            let listener = match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(port, error = %e, "node port on 127.0.0.1 not served");
                    continue;
                }
            };
            let _ = listener.set_nonblocking(true);
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                continue;
            };
            let targets = Arc::new(RwLock::new(backends));
            let t = targets.clone();
            let task = tokio::spawn(async move {
                let mut turn = 0usize;
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let list = t.read().expect("backends lock").clone();
                    if list.is_empty() {
                        continue;
                    }
                    turn = turn.wrapping_add(1);
                    let target = list[turn % list.len()];
                    tokio::spawn(async move {
                        if let Ok(Ok(mut up)) = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(target)).await {
                            let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                        }
                    });
                }
            });
            self.listeners.insert(port, (task.abort_handle(), targets));
        }
    }
}

/// The proxy's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The nftables table (`berth-svc-<pod bridge>`).
    pub table: String,
    /// The Services' range (`10.43.0.0/16`).
    pub service_cidr: String,
}

/// Keep the data path to what Services and Endpoints say, until the daemon stops.
pub async fn run(informers: Arc<Informers>, cfg: Config) {
    let wake = Arc::new(tokio::sync::Notify::new());
    for i in [&informers.services, &informers.endpoints] {
        let (w1, w2) = (wake.clone(), wake.clone());
        on_change(i, move |_| w1.notify_one(), move || w2.notify_one());
    }
    let mut loopback = Loopback {
        listeners: BTreeMap::new(),
    };
    let mut applied = String::new();
    loop {
        let ports = service_ports(&informers);
        let batch = render(&cfg.table, &cfg.service_cidr, &ports);
        if batch != applied {
            match tokio::task::spawn_blocking({
                let b = batch.clone();
                move || net::rules::nft(&b)
            })
            .await
            {
                Ok(Ok(())) => applied = batch,
                Ok(Err(e)) => tracing::warn!(error = %e, "service rules"),
                Err(e) => tracing::warn!(error = %e, "service rules"),
            }
        }
        loopback.sync(&ports);
        if applied.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        } else {
            wake.notified().await;
            // Coalesce a burst of changes (a rollout writes many) into one rewrite.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Remove the table (the daemon's pod network is going away).
pub fn remove(table: &str) {
    let _ = net::rules::nft(&format!("table ip {table} {{}}\ndelete table ip {table}\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_balance_ready_endpoints_and_refuse_the_rest() {
        let ports = vec![
            ServicePort {
                id: "default/web:http".into(),
                cluster_ip: Some(Ipv4Addr::new(10, 43, 0, 5)),
                port: 80,
                proto: "tcp",
                node_port: Some(30080),
                backends: vec!["10.42.0.5:8080".parse().unwrap(), "10.42.0.6:8080".parse().unwrap()],
                affinity: Some(60),
            },
            ServicePort {
                id: "default/empty:80".into(),
                cluster_ip: Some(Ipv4Addr::new(10, 43, 0, 6)),
                port: 80,
                proto: "tcp",
                node_port: None,
                backends: vec![],
                affinity: None,
            },
        ];
        let r = render("berth-svc-x", "10.43.0.0/16", &ports);
        assert!(r.contains("ip daddr 10.43.0.5 tcp dport 80 goto svc_0"), "{r}");
        assert!(
            r.contains("fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 30080 goto svc_0"),
            "{r}"
        );
        assert!(r.contains("numgen random mod 2 vmap { 0 : goto ep_0_0, 1 : goto ep_0_1 }"), "{r}");
        assert!(
            r.contains("set aff_0_1 { type ipv4_addr; flags dynamic,timeout; timeout 60s; }"),
            "{r}"
        );
        assert!(r.contains("meta l4proto tcp dnat to 10.42.0.6:8080"), "{r}");
        assert!(!r.contains("10.43.0.6"), "a port without endpoints is not dispatched: {r}");
        assert!(r.contains("ip daddr 10.43.0.0/16 meta l4proto tcp reject with tcp reset"), "{r}");
    }
}
