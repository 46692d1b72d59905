//! Published ports (`-p`, `-P`): what a container asks for, checked at create, and the
//! listeners that serve them while it runs on the default bridge.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{Container, NetworkMode};

/// One binding of `HostConfig.PortBindings` (and of `NetworkSettings.Ports`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// A container port: number and protocol (`80/tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContainerPort {
    pub port: u16,
    pub proto: &'static str,
}

impl ContainerPort {
    /// `80`, `80/tcp`, `53/udp`, as Docker writes them.
    pub fn parse(s: &str) -> Result<ContainerPort> {
        let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let proto = match proto {
            "tcp" => "tcp",
            "udp" => "udp",
            "sctp" => "sctp",
            other => return Err(Error::BadRequest(format!("invalid proto: {other}"))),
        };
        let port = p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::BadRequest(format!("invalid containerPort: {p}")))?;
        Ok(ContainerPort { port, proto })
    }
}

impl std::fmt::Display for ContainerPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

/// What a container publishes: each container port with the host address and port asked for
/// (port 0: any free one). `PublishAllPorts` adds every exposed port without a binding.
pub fn requested(c: &Container) -> Result<Vec<(ContainerPort, IpAddr, u16)>> {
    let mut out = Vec::new();
    let hc = &c.host_config;
    let mut bound = std::collections::BTreeSet::new();
    for (k, bindings) in hc.port_bindings.iter().flatten() {
        let cp = ContainerPort::parse(k)?;
        bound.insert(cp);
        for b in bindings.iter().flatten() {
            out.push((cp, host_ip(&b.host_ip)?, host_port(&b.host_port)?));
        }
    }
    if hc.extra.get("PublishAllPorts").and_then(|v| v.as_bool()) == Some(true) {
        for k in c.config.exposed_ports.iter().flat_map(|p| p.keys()) {
            let cp = ContainerPort::parse(k)?;
            if bound.insert(cp) {
                out.push((cp, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
            }
        }
    }
    Ok(out)
}

fn host_ip(s: &str) -> Result<IpAddr> {
    if s.is_empty() {
        return Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
    let ip: IpAddr = s.parse().map_err(|_| Error::BadRequest(format!("invalid host IP: {s}")))?;
    if ip.is_ipv6() {
        return Err(Error::BadRequest(format!(
            "publishing on IPv6 address {ip} is not supported by Berth yet"
        )));
    }
    Ok(ip)
}

fn host_port(s: &str) -> Result<u16> {
    if s.is_empty() {
        return Ok(0);
    }
    if s.contains('-') {
        return Err(Error::BadRequest(format!(
            "host port range {s} in one binding is not supported by Berth yet (give one port per binding, as the docker CLI does)"
        )));
    }
    s.parse::<u16>().map_err(|_| Error::BadRequest(format!("invalid hostPort: {s}")))
}

/// Create-time checks: the bindings parse, and the network mode can publish. Returns Docker's
/// warning for host networking, which discards them.
pub fn check(c: &Container, has_bridge: bool) -> Result<Vec<String>> {
    let wanted = requested(c)?;
    if wanted.is_empty() {
        return Ok(vec![]);
    }
    if let Some((cp, _, _)) = wanted.iter().find(|(cp, _, _)| !matches!(cp.proto, "tcp" | "udp")) {
        return Err(Error::BadRequest(format!(
            "publishing {cp} is not supported by Berth yet (TCP and UDP only)"
        )));
    }
    Ok(match &c.host_config.network_mode {
        NetworkMode::Host => vec!["Published ports are discarded when using host network mode".into()],
        m if m.is_default_bridge() && has_bridge => vec![],
        NetworkMode::Named(_) => vec![],
        m if m.is_default_bridge() => {
            return Err(Error::BadRequest(
                "publishing ports needs the default bridge, and this daemon has none (--bridge none)".into(),
            ))
        }
        m => {
            return Err(Error::BadRequest(format!(
                "publishing ports needs a network; network mode \"{m}\" has none"
            )))
        }
    })
}

/// Bind `host` for `proto` and relay it to `target` in a task of its own: the address it got
/// (port 0 takes a free one) and the task's handle.
fn serve_port(proto: &str, host: SocketAddr, target: SocketAddr) -> net::Result<(SocketAddr, tokio::task::AbortHandle)> {
    let local = |r: std::io::Result<SocketAddr>| {
        r.map_err(|e| net::Error::Io {
            op: "local address",
            target: host.to_string(),
            source: e,
        })
    };
    if proto == "udp" {
        let s = net::proxy::bind_udp(host)?;
        let actual = local(s.local_addr())?;
        Ok((actual, tokio::spawn(net::proxy::serve_udp(s, target)).abort_handle()))
    } else {
        let l = net::proxy::bind_tcp(host)?;
        let actual = local(l.local_addr())?;
        Ok((actual, tokio::spawn(net::proxy::serve_tcp(l, target)).abort_handle()))
    }
}

/// The `HostConfig.PortBindings` shape, typed.
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

impl crate::Engine {
    /// Serve a started container's published ports: bind each (a port in use fails the start,
    /// with Docker's message) and relay it to the container's address on the default bridge.
    pub(crate) fn publish(&self, c: &mut Container) -> Result<()> {
        let Some(ep) = c.endpoints.values().next().cloned() else {
            return Ok(());
        };
        let wanted = requested(c)?;
        let mut handles = Vec::new();
        let mut published: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
        for (cp, ip, port) in wanted {
            let target = SocketAddr::new(IpAddr::V4(ep.ip_address), cp.port);
            let bound = serve_port(cp.proto, SocketAddr::new(ip, port), target).map_err(|e| {
                Error::Conflict(format!(
                    "driver failed programming external connectivity on endpoint {}: {e}",
                    c.name.trim_start_matches('/')
                ))
            });
            let (actual, h) = match bound {
                Ok(x) => x,
                Err(e) => {
                    for h in handles {
                        tokio::task::AbortHandle::abort(&h);
                    }
                    return Err(e);
                }
            };
            handles.push(h);
            published.entry(cp.to_string()).or_default().push(PortBinding {
                host_ip: ip.to_string(),
                host_port: actual.port().to_string(),
            });
        }
        if !handles.is_empty() {
            self.proxies.lock().unwrap().insert(c.id.clone(), handles);
        }
        c.published = published;
        self.program_ports(c)
    }

    /// The kernel's data path for `c`'s published ports (DNAT to its address, hairpin), in its
    /// network's rules.
    fn program_ports(&self, c: &Container) -> Result<()> {
        let Some((net_name, ep)) = c.endpoints.iter().next() else {
            return Ok(());
        };
        if c.published.is_empty() {
            return Ok(());
        }
        let Some(n) = self.networks.find(net_name) else { return Ok(()) };
        let mut rules = Vec::new();
        for (k, bindings) in &c.published {
            let cp = ContainerPort::parse(k)?;
            for b in bindings {
                let host_ip = match host_ip(&b.host_ip)? {
                    IpAddr::V4(ip) if ip.is_unspecified() => None,
                    IpAddr::V4(ip) => Some(ip),
                    IpAddr::V6(_) => continue,
                };
                rules.push(net::rules::PortRule {
                    proto: cp.proto,
                    host_ip,
                    host_port: b.host_port.parse().unwrap_or(0),
                    target: ep.ip_address,
                    target_port: cp.port,
                });
            }
        }
        self.port_rules.lock().unwrap().insert(c.id.clone(), (n.bridge.clone(), rules));
        self.apply_rules()
    }

    /// Serve again what a running container published (after a daemon restart: the listeners
    /// lived in the old daemon), on the same host ports.
    pub(crate) fn republish(&self, c: &Container) -> Result<()> {
        let Some(ep) = c.endpoints.values().next() else {
            return Ok(());
        };
        let mut handles = Vec::new();
        for (k, bindings) in &c.published {
            let cp = ContainerPort::parse(k)?;
            for b in bindings {
                let port: u16 = b.host_port.parse().unwrap_or(0);
                let target = SocketAddr::new(IpAddr::V4(ep.ip_address), cp.port);
                let (_, h) = serve_port(cp.proto, SocketAddr::new(host_ip(&b.host_ip)?, port), target)
                    .map_err(|e| Error::Conflict(e.to_string()))?;
                handles.push(h);
            }
        }
        if !handles.is_empty() {
            self.proxies.lock().unwrap().insert(c.id.clone(), handles);
        }
        self.program_ports(c)
    }

    /// Stop serving a container's published ports.
    pub(crate) fn unpublish(&self, c: &mut Container) {
        for h in self.proxies.lock().unwrap().remove(&c.id).unwrap_or_default() {
            h.abort();
        }
        c.published.clear();
        if self.port_rules.lock().unwrap().remove(&c.id).is_some() {
            if let Err(e) = self.apply_rules() {
                tracing::warn!(container = %c.id, error = %e, "removing the rules of its published ports");
            }
        }
    }
}

/// `NetworkSettings.Ports`: every exposed or published port, with its bindings while published
/// (null otherwise), as Docker's inspect has them.
pub fn settings_ports(c: &Container) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for k in c.config.exposed_ports.iter().flat_map(|p| p.keys()) {
        m.insert(k.clone(), serde_json::Value::Null);
    }
    for (k, b) in &c.published {
        m.insert(k.clone(), serde_json::to_value(b).expect("json"));
    }
    serde_json::Value::Object(m)
}

/// `Ports` of a container list entry (`docker ps`'s PORTS column).
pub fn summary_ports(c: &Container) -> serde_json::Value {
    let mut out = Vec::new();
    for k in c.config.exposed_ports.iter().flat_map(|p| p.keys()) {
        let Ok(cp) = ContainerPort::parse(k) else { continue };
        match c.published.get(&cp.to_string()) {
            Some(bs) => {
                for b in bs {
                    out.push(serde_json::json!({"IP": b.host_ip, "PrivatePort": cp.port, "PublicPort": b.host_port.parse::<u16>().unwrap_or(0), "Type": cp.proto}));
                }
            }
            None => out.push(serde_json::json!({"PrivatePort": cp.port, "Type": cp.proto})),
        }
    }
    serde_json::Value::Array(out)
}
