//! Packet rules through nftables: each bridge network's rules are one table of Berth's own
//! (`ip berth-<bridge>`), written whole as one atomic `nft` batch on every change, so a
//! restarted daemon's rules are exactly what its store says, and nothing of another's is
//! touched.

use std::io::Write;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::{Error, Result};

/// What one bridge network needs from the packet filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// Rewrite the source of traffic leaving the host (Docker's `enable_ip_masquerade`).
    pub masquerade: bool,
    /// Nothing leaves the bridge and nothing comes in from elsewhere (`--internal`).
    pub internal: bool,
    /// Berth's other bridges: no traffic crosses from this one to them (network isolation).
    pub others: Vec<String>,
    /// Published ports whose traffic the kernel sends to the container (DNAT). Traffic to the
    /// host's loopback cannot be DNATed without `route_localnet`: the userland proxy serves it.
    pub ports: Vec<PortRule>,
}

/// One published port: `host_ip:host_port` (any local address when `host_ip` is unset) to
/// `target:target_port`, TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    /// `tcp` or `udp`.
    pub proto: &'static str,
    pub host_ip: Option<std::net::Ipv4Addr>,
    pub host_port: u16,
    pub target: std::net::Ipv4Addr,
    pub target_port: u16,
}

impl PortRule {
    fn matcher(&self) -> String {
        match self.host_ip {
            Some(ip) => format!("ip daddr {ip} {} dport {}", self.proto, self.host_port),
            None => format!("fib daddr type local {} dport {}", self.proto, self.host_port),
        }
    }
}

/// The table a bridge's rules live in.
pub fn table_name(bridge: &str) -> String {
    format!("berth-{bridge}")
}

/// The batch that replaces a bridge's table: declared (so the delete cannot fail), deleted,
/// written anew — one transaction.
pub fn render(r: &BridgeRules) -> String {
    let t = table_name(&r.bridge);
    let b = &r.bridge;
    let mut s = format!("table ip {t} {{}}\ndelete table ip {t}\ntable ip {t} {{\n");
    s.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    if !r.others.is_empty() {
        let set = r.others.iter().map(|o| format!("\"{o}\"")).collect::<Vec<_>>().join(", ");
        s.push_str(&format!("    iifname \"{b}\" oifname {{ {set} }} drop\n"));
    }
    if r.internal {
        s.push_str(&format!("    iifname \"{b}\" oifname != \"{b}\" drop\n"));
        s.push_str(&format!("    oifname \"{b}\" iifname != \"{b}\" drop\n"));
    }
    s.push_str(&format!("    iifname \"{b}\" accept\n"));
    s.push_str(&format!("    oifname \"{b}\" ct state established,related accept\n"));
    if !r.ports.is_empty() {
        // New connections to published ports, once DNATed.
        s.push_str(&format!("    oifname \"{b}\" ct status dnat accept\n"));
    }
    s.push_str("  }\n");
    let loopback_ok = |p: &PortRule| p.host_ip.is_none_or(|ip| !ip.is_loopback());
    if r.ports.iter().any(loopback_ok) {
        s.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n");
        for p in r.ports.iter().filter(|p| loopback_ok(p)) {
            s.push_str(&format!("    {} counter dnat to {}:{}\n", p.matcher(), p.target, p.target_port));
        }
        s.push_str("  }\n  chain output {\n    type nat hook output priority -100; policy accept;\n");
        for p in r.ports.iter().filter(|p| loopback_ok(p)) {
            s.push_str(&format!(
                "    ip daddr != 127.0.0.0/8 {} counter dnat to {}:{}\n",
                p.matcher(),
                p.target,
                p.target_port
            ));
        }
        s.push_str("  }\n");
    }
    if (r.masquerade && !r.internal) || !r.ports.is_empty() {
        s.push_str("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
        if r.masquerade && !r.internal {
            s.push_str(&format!("    ip saddr {} oifname != \"{b}\" masquerade\n", r.subnet));
        }
        // Hairpin: a container reaching a published port of its own network through the host's
        // address gets replies through the host too.
        for p in &r.ports {
            s.push_str(&format!(
                "    ip saddr {} ip daddr {} {} dport {} oifname \"{b}\" masquerade\n",
                r.subnet, p.target, p.proto, p.target_port
            ));
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

/// Run one `nft -f -` batch (a transaction: all of it or nothing).
pub fn nft(batch: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Io {
            op: "run",
            target: "nft (install the nftables package)".into(),
            source: e,
        })?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(batch.as_bytes())
        .map_err(|e| Error::Io {
            op: "write to",
            target: "nft".into(),
            source: e,
        })?;
    let out = child.wait_with_output().map_err(|e| Error::Io {
        op: "wait for",
        target: "nft".into(),
        source: e,
    })?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "nft refused the rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Write a bridge's rules (replacing whatever its table held).
pub fn apply(r: &BridgeRules) -> Result<()> {
    nft(&render(r))
}

/// Remove a bridge's table; a missing one is not an error.
pub fn remove(bridge: &str) -> Result<()> {
    let t = table_name(bridge);
    nft(&format!("table ip {t} {{}}\ndelete table ip {t}\n"))
}

/// Let the host forward IPv4 between its interfaces, as Docker does for its bridges (in the
/// caller's network namespace).
pub fn enable_forwarding() -> Result<()> {
    let p = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(p).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(p, "1").map_err(|e| Error::Io {
        op: "enable",
        target: p.into(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_replaced_whole() {
        let r = BridgeRules {
            bridge: "berth0".into(),
            subnet: "172.17.0.0/16".parse().unwrap(),
            masquerade: true,
            internal: false,
            others: vec!["br-1".into(), "br-2".into()],
            ports: vec![],
        };
        let s = render(&r);
        assert!(s.contains("iifname \"berth0\" oifname { \"br-1\", \"br-2\" } drop"), "{s}");
        let internal = render(&BridgeRules {
            internal: true,
            ..r.clone()
        });
        assert!(
            internal.contains("iifname \"berth0\" oifname != \"berth0\" drop") && !internal.contains("masquerade"),
            "{internal}"
        );
        assert!(
            s.starts_with("table ip berth-berth0 {}\ndelete table ip berth-berth0\ntable ip berth-berth0 {"),
            "{s}"
        );
        assert!(s.contains("ip saddr 172.17.0.0/16 oifname != \"berth0\" masquerade"), "{s}");
        assert!(s.contains("iifname \"berth0\" accept"), "{s}");
        let quiet = render(&BridgeRules {
            masquerade: false,
            ..r.clone()
        });
        assert!(!quiet.contains("masquerade") && !quiet.contains("postrouting"), "{quiet}");
        let published = render(&BridgeRules {
            ports: vec![
                PortRule {
                    proto: "tcp",
                    host_ip: None,
                    host_port: 8080,
                    target: "172.17.0.2".parse().unwrap(),
                    target_port: 80,
                },
                PortRule {
                    proto: "udp",
                    host_ip: Some("127.0.0.1".parse().unwrap()),
                    host_port: 9090,
                    target: "172.17.0.3".parse().unwrap(),
                    target_port: 90,
                },
            ],
            ..r.clone()
        });
        assert!(
            published.contains("fib daddr type local tcp dport 8080 counter dnat to 172.17.0.2:80"),
            "{published}"
        );
        assert!(
            published.contains("ip daddr != 127.0.0.0/8 fib daddr type local tcp dport 8080 counter dnat to 172.17.0.2:80"),
            "{published}"
        );
        assert!(
            !published.contains("dport 9090 dnat"),
            "loopback-only ports are the proxy's: {published}"
        );
        assert!(
            published.contains("ip saddr 172.17.0.0/16 ip daddr 172.17.0.2 tcp dport 80 oifname \"berth0\" masquerade"),
            "{published}"
        );
        assert!(
            published.contains("ip saddr 172.17.0.0/16 ip daddr 172.17.0.3 udp dport 90 oifname \"berth0\" masquerade"),
            "{published}"
        );
    }
}
