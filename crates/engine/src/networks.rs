//! Networks: the default bridge (`bridge`, on the daemon's `--bridge` interface), persisted
//! with its address pool and leases, and the endpoints that put containers on it. The host side
//! (bridge, veth pairs, namespaces) is `crates/net`'s.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use net::ipam::{Leases, Pool};
use serde::{Deserialize, Serialize};

use crate::error::{internal, Error, Result};
use crate::types::Container;

/// The default bridge network's name, as Docker calls it.
pub const DEFAULT_NETWORK: &str = "bridge";

/// The daemon's default bridge: its interface and the gateway address with the subnet's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// The interface (`berth0`; Docker's is `docker0`).
    pub name: String,
    /// `--bip`: the bridge's address and prefix (`172.17.0.1/16`); a free default pool if unset.
    pub bip: Option<ipnet::Ipv4Net>,
    pub mtu: Option<u32>,
}

/// A network as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: String,
    pub created: String,
    /// The bridge interface.
    pub bridge: String,
    pub pool: Pool,
    #[serde(default)]
    pub leases: Leases,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// No traffic leaves the network (`--internal`).
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    /// The driver options given at create, as inspect shows them.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Whether the create request carried IPAM options (empty: Berth takes none), so inspect
    /// echoes `{}` or null as Docker does.
    #[serde(default)]
    pub ipam_options: bool,
}

impl Network {
    /// The orchestrator's pod network (label `io.berth.cluster=pods`): Berth's own, as
    /// predefined as `bridge` (never pruned or removed by hand).
    pub fn is_cluster(&self) -> bool {
        self.labels.get("io.berth.cluster").map(String::as_str) == Some("pods")
    }
}

/// What a container asks of a network it joins (`--network`, `--ip`, `--network-alias`,
/// `network connect`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    /// `--ip`: a fixed address (user-defined networks only).
    #[serde(rename = "IPv4Address", skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<Ipv4Addr>,
    /// `--network-alias`: more names container DNS answers for it on this network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A fixed MAC address for this endpoint (`network connect`'s `MacAddress`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Endpoint driver options: kept and shown by inspect, as Docker's bridge driver keeps the
    /// ones it has no use for.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Link-local addresses (`IPAMConfig.LinkLocalIPs`), added to the interface with a /16.
    #[serde(rename = "LinkLocalIPs", skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<Ipv4Addr>,
    /// Links on a user-defined network, `container:alias`: the alias (and the container's own
    /// name) resolve, for this container only, to that container's address on this network.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

/// A container's place on a network, recorded with the container while it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub ip_address: Ipv4Addr,
    pub ip_prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac_address: String,
    /// The host end of the veth pair.
    pub host_if: String,
    /// The interface in the container (`eth0`).
    pub ifname: String,
}

impl EndpointSettings {
    /// An `EndpointSettings` of the API (create's `EndpointsConfig` entry, connect's
    /// `EndpointConfig`): the fixed address and the aliases; `Null` is none.
    pub fn from_config(ep: &serde_json::Value) -> Result<EndpointSettings> {
        let ipv4_address = ep
            .get("IPAMConfig")
            .and_then(|i| i.get("IPv4Address"))
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().map_err(|_| Error::BadRequest(format!("invalid IPv4 address: {a}"))))
            .transpose()?;
        let aliases = ep
            .get("Aliases")
            .and_then(|a| a.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str()).map(String::from).collect())
            .unwrap_or_default();
        let mac_address = match ep.get("MacAddress").and_then(|m| m.as_str()).filter(|m| !m.is_empty()) {
            Some(m) => {
                net::link::parse_mac(m).ok_or_else(|| Error::BadRequest(format!("invalid MAC address: {m}")))?;
                Some(m.to_string())
            }
            None => None,
        };
        let mut driver_opts = BTreeMap::new();
        if let Some(o) = ep.get("DriverOpts").and_then(|o| o.as_object()) {
            for (k, v) in o {
                let v = v
                    .as_str()
                    .ok_or_else(|| Error::BadRequest(format!("endpoint driver option {k}: the value must be a string")))?;
                driver_opts.insert(k.clone(), v.to_string());
            }
        }
        let mut link_local_ips = Vec::new();
        for a in ep
            .get("IPAMConfig")
            .and_then(|i| i.get("LinkLocalIPs"))
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten()
        {
            let a = a.as_str().unwrap_or_default();
            let ip: Ipv4Addr = a
                .parse()
                .map_err(|_| Error::BadRequest(format!("invalid link-local IP {a:?} (IPv4 only on Berth)")))?;
            if !ip.is_link_local() {
                return Err(Error::BadRequest(format!("{ip} is not a link-local address (169.254.0.0/16)")));
            }
            link_local_ips.push(ip);
        }
        let mut links = Vec::new();
        for l in ep.get("Links").and_then(|l| l.as_array()).into_iter().flatten() {
            let l = l
                .as_str()
                .ok_or_else(|| Error::BadRequest("each link must be a string, container[:alias]".into()))?;
            let (target, alias) = l.split_once(':').unwrap_or((l, l));
            let target = target.trim_start_matches('/');
            if target.is_empty() || alias.is_empty() {
                return Err(Error::BadRequest(format!("invalid link {l:?}: use container[:alias]")));
            }
            links.push(format!("{target}:{alias}"));
        }
        Ok(EndpointSettings {
            ipv4_address,
            aliases,
            mac_address,
            driver_opts,
            link_local_ips,
            links,
        })
    }
}

/// The stored networks.
pub struct Networks {
    dir: PathBuf,
    nets: Mutex<BTreeMap<String, Network>>,
}

impl Networks {
    pub fn open(root: &Path) -> Result<Networks> {
        let dir = root.join("networks");
        crate::private::ensure_dir(&dir, 0o700, 0)?;
        let mut nets = BTreeMap::new();
        for e in std::fs::read_dir(&dir).map_err(internal)?.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                match std::fs::read(&p).ok().and_then(|b| serde_json::from_slice::<Network>(&b).ok()) {
                    Some(n) => {
                        nets.insert(n.id.clone(), n);
                    }
                    None => tracing::warn!(path = %p.display(), "skipping unreadable network record"),
                }
            }
        }
        Ok(Networks {
            dir,
            nets: Mutex::new(nets),
        })
    }

    fn save(&self, n: &Network) -> Result<()> {
        let data = serde_json::to_vec_pretty(n).map_err(internal)?;
        oci::store::write_atomic(&self.dir.join(format!("{}.json", n.id)), &data).map_err(internal)
    }

    /// A network by name, ID or unique ID prefix.
    pub fn find(&self, key: &str) -> Option<Network> {
        let nets = self.nets.lock().unwrap();
        if let Some(n) = nets.values().find(|n| n.name == key || n.id == key) {
            return Some(n.clone());
        }
        let mut hits = nets.values().filter(|n| !key.is_empty() && n.id.starts_with(key));
        match (hits.next(), hits.next()) {
            (Some(n), None) => Some(n.clone()),
            _ => None,
        }
    }

    pub fn list(&self) -> Vec<Network> {
        self.nets.lock().unwrap().values().cloned().collect()
    }

    /// Change a network and persist it; the change is kept only if it is saved.
    pub fn update<T>(&self, id: &str, f: impl FnOnce(&mut Network) -> Result<T>) -> Result<T> {
        let mut nets = self.nets.lock().unwrap();
        let n = nets.get_mut(id).ok_or_else(|| Error::NotFound(format!("network {id} not found")))?;
        let mut copy = n.clone();
        let out = f(&mut copy)?;
        self.save(&copy)?;
        *n = copy;
        Ok(out)
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        self.nets.lock().unwrap().remove(id);
        match std::fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(internal(e)),
        }
    }

    pub fn insert(&self, n: Network) -> Result<()> {
        self.save(&n)?;
        self.nets.lock().unwrap().insert(n.id.clone(), n);
        Ok(())
    }
}

/// The subnets of the host's IPv4 routes (`/proc/net/route`), which a default pool must avoid.
fn host_routes() -> Vec<ipnet::Ipv4Net> {
    let Ok(t) = std::fs::read_to_string("/proc/net/route") else {
        return vec![];
    };
    t.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            if dest == 0 {
                return None;
            }
            let prefix = u32::from_be(mask).count_ones() as u8;
            ipnet::Ipv4Net::new(Ipv4Addr::from(u32::from_be(dest)), prefix).ok()
        })
        .collect()
}

impl crate::Engine {
    /// Set up the default bridge at daemon start: its record (made the first time, from `--bip`
    /// or a default pool no host route or other network uses) and its interface.
    pub(crate) fn open_networks(&self) -> Result<()> {
        self.open_default_bridge()?;
        // User-defined networks' bridges are made again if they went (a host reboot).
        for n in self.networks.list().into_iter().filter(|n| n.name != DEFAULT_NETWORK) {
            let gw = ipnet::Ipv4Net::new(n.pool.gateway, n.pool.subnet.prefix_len()).expect("valid prefix");
            net::link::ensure_bridge(&n.bridge, gw, n.mtu).map_err(|e| Error::Internal(format!("network {}: {e}", n.name)))?;
        }
        if !self.networks.list().is_empty() {
            net::rules::enable_forwarding().map_err(|e| Error::Internal(e.to_string()))?;
        }
        self.apply_rules()
    }

    /// Write every network's packet rules again (each is one table; a network's isolation from
    /// the others names them all, so a change to one rewrites each).
    pub(crate) fn apply_rules(&self) -> Result<()> {
        let nets: Vec<Network> = self
            .networks
            .list()
            .into_iter()
            .filter(|n| n.name != DEFAULT_NETWORK || self.cfg.bridge.is_some())
            .collect();
        for n in &nets {
            let rules = net::rules::BridgeRules {
                bridge: n.bridge.clone(),
                subnet: n.pool.subnet,
                masquerade: n
                    .options
                    .get("com.docker.network.bridge.enable_ip_masquerade")
                    .is_none_or(|v| v != "false"),
                internal: n.internal,
                others: nets.iter().filter(|o| o.id != n.id).map(|o| o.bridge.clone()).collect(),
                ports: self
                    .port_rules
                    .lock()
                    .unwrap()
                    .values()
                    .filter(|(b, _)| *b == n.bridge)
                    .flat_map(|(_, r)| r.iter().cloned())
                    .collect(),
            };
            net::rules::apply(&rules).map_err(|e| Error::Internal(format!("network {}'s packet rules: {e}", n.name)))?;
        }
        Ok(())
    }

    fn open_default_bridge(&self) -> Result<()> {
        let Some(bc) = &self.cfg.bridge else { return Ok(()) };
        let existing = self.networks.find(DEFAULT_NETWORK);
        let wanted_pool = |bip: ipnet::Ipv4Net| -> Result<Pool> {
            let mut p = Pool::new(&bip.trunc().to_string(), Some(&bip.addr().to_string()), None, &BTreeMap::new())
                .map_err(|e| Error::BadRequest(format!("--bip {bip}: {e}")))?;
            p.gateway = bip.addr();
            Ok(p)
        };
        let net = match existing {
            Some(mut n) => {
                if let Some(bip) = bc.bip {
                    let p = wanted_pool(bip)?;
                    if p != n.pool || n.bridge != bc.name {
                        // A changed --bip or --bridge: the old leases belong to containers that
                        // are stopped now (endpoints go at exit).
                        n.pool = p;
                        n.bridge = bc.name.clone();
                        n.leases = Leases::default();
                        self.networks.insert(n.clone())?;
                    }
                }
                n
            }
            None => {
                let bip = match bc.bip {
                    Some(b) => b,
                    None => {
                        let mut taken = host_routes();
                        taken.extend(self.networks.list().iter().map(|n| n.pool.subnet));
                        let subnet = net::ipam::next_free_pool(&taken).map_err(|e| Error::Internal(e.to_string()))?;
                        ipnet::Ipv4Net::new(net::ipam::first_host(&subnet), subnet.prefix_len()).expect("valid prefix")
                    }
                };
                let n = Network {
                    id: crate::engine::random_id(),
                    name: DEFAULT_NETWORK.into(),
                    driver: "bridge".into(),
                    created: crate::types::now(),
                    bridge: bc.name.clone(),
                    pool: wanted_pool(bip)?,
                    leases: Leases::default(),
                    mtu: bc.mtu,
                    labels: BTreeMap::new(),
                    internal: false,
                    attachable: false,
                    options: BTreeMap::new(),
                    ipam_options: false,
                };
                self.networks.insert(n.clone())?;
                n
            }
        };
        let gw = ipnet::Ipv4Net::new(net.pool.gateway, net.pool.subnet.prefix_len()).expect("valid prefix");
        net::link::ensure_bridge(&net.bridge, gw, net.mtu).map_err(|e| Error::Internal(format!("the default bridge: {e}")))?;
        Ok(())
    }

    /// Leases whose container is not running are freed (after a crash, say), with the veth and
    /// namespace they may have left.
    pub(crate) fn reconcile_networks(&self) {
        let running: std::collections::BTreeSet<String> = self.containers().into_iter().filter(|c| c.state.running).map(|c| c.id).collect();
        for n in self.networks.list() {
            let _ = self.networks.update(&n.id, |n| {
                for gone in n.leases.retain_owners(|o| running.contains(o)) {
                    tracing::info!(network = %n.name, address = %gone, "freed the lease of a container that is not running");
                }
                Ok(())
            });
        }
    }

    /// The networks (bridges) there are.
    pub fn network_list(&self) -> Vec<Network> {
        self.networks.list()
    }

    /// A network's ID by name or ID (the built-in `host` and `none` are their own IDs).
    pub fn network_id(&self, key: &str) -> Option<String> {
        match key {
            "host" | "none" => Some(key.to_string()),
            _ => self.networks.find(key).map(|n| n.id),
        }
    }

    /// The file a container's network namespace is bound on.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("netns").join(id)
    }

    /// The networks a starting container joins, in order: those it was given (`--network`,
    /// `network connect`), or the default bridge.
    pub(crate) fn networks_of(&self, c: &Container) -> Vec<(String, EndpointSettings)> {
        if !c.networks.is_empty() {
            return c.networks.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        if self.cfg.bridge.is_some() && c.host_config.network_mode.is_default_bridge() {
            return vec![(DEFAULT_NETWORK.to_string(), EndpointSettings::default())];
        }
        vec![]
    }

    /// Put a container on network `key`: a namespace of its own if it has none yet, a lease, a
    /// veth pair (`eth0`, then `eth1`, …; the first carries the default route). Works on a
    /// running container too (hot-plug). Nothing is left when a step fails.
    pub(crate) fn connect(&self, c: &mut Container, key: &str, settings: &EndpointSettings) -> Result<()> {
        let n = self
            .networks
            .find(key)
            .ok_or_else(|| Error::NotFound(format!("network {key} not found")))?;
        if c.endpoints.contains_key(&n.name) {
            return Err(Error::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                c.name.trim_start_matches('/'),
                n.name
            )));
        }
        let ns = self.netns_path(&c.id);
        crate::private::ensure_dir(ns.parent().expect("netns dir"), 0o700, 0)?;
        if c.state.running && !net::netns::exists(&ns) {
            return Err(Error::Conflict(format!(
                "container {} runs in a network namespace of its own making (it started without a network): restart it to connect it",
                c.id
            )));
        }
        let fresh = c.endpoints.is_empty() && !c.state.running;
        if fresh && ns.exists() {
            let _ = net::netns::remove(&ns);
        }
        let owner = c.id.clone();
        let ip = self.networks.update(&n.id, |n| {
            n.pool.allocate(&mut n.leases, &owner, settings.ipv4_address).map_err(|e| match e {
                net::ipam::Error::InUse(_) => Error::Conflict(format!("Address already in use: {e}")),
                net::ipam::Error::Exhausted(_) => Error::Internal(format!("network {}: {e}", n.name)),
                other => Error::BadRequest(format!("network {}: {other}", n.name)),
            })
        })?;
        let endpoint_id = crate::engine::random_id();
        let asked = settings.mac_address.as_deref().and_then(net::link::parse_mac).or_else(|| {
            c.config
                .extra
                .get("MacAddress")
                .and_then(|v| v.as_str())
                .filter(|_| c.endpoints.is_empty())
                .and_then(net::link::parse_mac)
        });
        let mac = asked.unwrap_or_else(|| net::link::mac_for(ip));
        let host_if = format!("veth{}", &endpoint_id[..7]);
        let ifname = format!("eth{}", c.endpoints.len());
        let gateway = (c.endpoints.is_empty() && !n.internal).then_some(n.pool.gateway);
        let made_ns = fresh || !ns.exists();
        let attached = (if made_ns { net::netns::create(&ns) } else { Ok(()) }).and_then(|_| {
            net::link::attach(
                &ns,
                &net::link::Attachment {
                    bridge: n.bridge.clone(),
                    host_if: host_if.clone(),
                    ifname: ifname.clone(),
                    addr: ipnet::Ipv4Net::new(ip, n.pool.subnet.prefix_len()).expect("valid prefix"),
                    gateway,
                    mac,
                    mtu: n.mtu,
                    extra: settings
                        .link_local_ips
                        .iter()
                        .map(|ip| ipnet::Ipv4Net::new(*ip, 16).expect("valid prefix"))
                        .collect(),
                },
            )
        });
        if let Err(e) = attached {
            if made_ns {
                let _ = net::netns::remove(&ns);
            }
            let _ = self.networks.update(&n.id, |n| Ok(n.pool.release(&mut n.leases, &owner)));
            return Err(Error::Internal(format!("connecting to network {}: {e}", n.name)));
        }
        c.endpoints.insert(
            n.name.clone(),
            Endpoint {
                network_id: n.id.clone(),
                endpoint_id,
                ip_address: ip,
                ip_prefix_len: n.pool.subnet.prefix_len(),
                gateway: n.pool.gateway,
                mac_address: net::link::mac_string(&mac),
                host_if,
                ifname,
            },
        );
        Ok(())
    }

    /// Take a running container off one network: its veth and lease go.
    pub(crate) fn disconnect(&self, c: &mut Container, name: &str) {
        self.unregister_dns(c, Some(name));
        if let Some(ep) = c.endpoints.remove(name) {
            if let Err(e) = net::link::remove(&ep.host_if) {
                tracing::warn!(network = %name, interface = %ep.host_if, error = %e, "removing a veth");
            }
            let owner = c.id.clone();
            let _ = self.networks.update(&ep.network_id, |n| Ok(n.pool.release(&mut n.leases, &owner)));
        }
    }

    /// Take a container off its networks (at exit, a failed start, removal): its veths, its
    /// leases and its namespace go.
    pub(crate) fn disconnect_all(&self, c: &mut Container) {
        self.unpublish(c);
        self.unregister_dns(c, None);
        for (name, ep) in std::mem::take(&mut c.endpoints) {
            if let Err(e) = net::link::remove(&ep.host_if) {
                tracing::warn!(network = %name, interface = %ep.host_if, error = %e, "removing a veth");
            }
            let _ = self.networks.update(&ep.network_id, |n| Ok(n.pool.release(&mut n.leases, &c.id)));
        }
        let ns = self.netns_path(&c.id);
        if ns.exists() {
            if let Err(e) = net::netns::remove(&ns) {
                tracing::warn!(container = %c.id, error = %e, "removing a network namespace");
            }
        }
    }
}

/// The body of `POST /networks/create`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreate {
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub name: String,
    pub check_duplicate: Option<bool>,
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub driver: String,
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub scope: String,
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub internal: bool,
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub attachable: bool,
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub ingress: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Option<IpamRequest>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    pub options: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub config_only: bool,
    pub config_from: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamRequest {
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub driver: String,
    pub config: Option<Vec<IpamPool>>,
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamPool {
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub subnet: String,
    #[serde(rename = "IPRange")]
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub ip_range: String,
    #[serde(deserialize_with = "crate::types::null_as_default")]
    pub gateway: String,
    pub auxiliary_addresses: Option<BTreeMap<String, String>>,
}

/// Docker takes any name that is not blank (spaces included); Berth keeps `/` and control
/// characters out, as they would break paths and names on the wire.
fn valid_network_name(n: &str) -> bool {
    !n.trim().is_empty() && n.len() <= 255 && !n.chars().any(|c| c == '/' || c.is_control())
}

/// The bridge options Berth applies; any other is refused.
const BRIDGE_OPTIONS: &[&str] = &[
    "com.docker.network.bridge.name",
    "com.docker.network.driver.mtu",
    "com.docker.network.bridge.enable_ip_masquerade",
    "com.docker.network.bridge.enable_icc",
];

impl crate::Engine {
    /// `POST /networks/create`: a bridge network, its pool (the subnet given, or the first free
    /// default one), its interface and rules. Everything Berth does not apply is refused.
    pub fn create_network(&self, req: NetworkCreate) -> Result<Network> {
        let bad = |m: String| Error::BadRequest(m);
        if !valid_network_name(&req.name) {
            return Err(bad(format!(
                "invalid network name {:?}: it must not be blank, nor contain '/' or control characters",
                req.name
            )));
        }
        if matches!(req.name.as_str(), "bridge" | "host" | "none" | "default")
            || self.networks.find(&req.name).is_some_and(|n| n.name == req.name)
        {
            return Err(Error::Conflict(format!("network with name {} already exists", req.name)));
        }
        if !matches!(req.driver.as_str(), "" | "bridge") {
            return Err(bad(format!(
                "network driver {:?} is not supported by Berth (bridge only)",
                req.driver
            )));
        }
        if !matches!(req.scope.as_str(), "" | "local") {
            return Err(bad(format!("network scope {:?} is not supported by Berth (local only)", req.scope)));
        }
        if req.ingress
            || req.config_only
            || req
                .config_from
                .as_ref()
                .is_some_and(|v| !v.is_null() && v.get("Network").and_then(|n| n.as_str()).is_some_and(|n| !n.is_empty()))
        {
            return Err(bad("ingress and config-only networks are not supported by Berth".into()));
        }
        if req.enable_ipv6 == Some(true) {
            return Err(bad("IPv6 networks are not supported by Berth yet".into()));
        }
        let ipam = req.ipam.clone().unwrap_or_default();
        if !matches!(ipam.driver.as_str(), "" | "default") {
            return Err(bad(format!(
                "IPAM driver {:?} is not supported by Berth (default only)",
                ipam.driver
            )));
        }
        if ipam.options.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(bad("IPAM options are not supported by Berth".into()));
        }
        let options = req.options.clone().unwrap_or_default();
        for (k, v) in &options {
            if !BRIDGE_OPTIONS.contains(&k.as_str()) {
                return Err(bad(format!("network option {k} is not supported by Berth")));
            }
            if k == "com.docker.network.bridge.enable_icc" && v != "true" {
                return Err(bad("enable_icc=false is not supported by Berth yet".into()));
            }
        }
        let configs = ipam.config.unwrap_or_default();
        if configs.len() > 1 {
            return Err(bad("more than one IPAM pool per network is not supported by Berth yet".into()));
        }
        let taken: Vec<ipnet::Ipv4Net> = self.networks.list().iter().map(|n| n.pool.subnet).collect();
        let pool = match configs.first().filter(|c| !c.subnet.is_empty()) {
            Some(c) => {
                if c.subnet.contains(':') {
                    return Err(bad("IPv6 subnets are not supported by Berth yet".into()));
                }
                let p = Pool::new(
                    &c.subnet,
                    Some(&c.gateway),
                    Some(&c.ip_range),
                    &c.auxiliary_addresses.clone().unwrap_or_default(),
                )
                .map_err(|e| bad(e.to_string()))?;
                if let Some(o) = taken.iter().find(|t| net::ipam::overlaps(t, &p.subnet)) {
                    return Err(Error::Conflict(format!(
                        "invalid pool request: Pool overlaps with other one on this address space ({} and {o})",
                        p.subnet
                    )));
                }
                p
            }
            None => {
                if configs.first().is_some_and(|c| !c.gateway.is_empty() || !c.ip_range.is_empty()) {
                    return Err(bad("a gateway or an IP range needs a subnet".into()));
                }
                let mut avoid = host_routes();
                avoid.extend(taken);
                let subnet = net::ipam::next_free_pool(&avoid).map_err(|e| Error::Conflict(e.to_string()))?;
                Pool::new(&subnet.to_string(), None, None, &BTreeMap::new()).map_err(|e| bad(e.to_string()))?
            }
        };
        let id = crate::engine::random_id();
        let bridge = options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ':', ' ']) {
            return Err(bad(format!("bridge name {bridge:?} is not an interface name (1 to 15 characters)")));
        }
        if self.networks.list().iter().any(|n| n.bridge == bridge) || net::link::exists(&bridge).unwrap_or(false) {
            return Err(Error::Conflict(format!("bridge interface {bridge} already exists")));
        }
        let mtu = match options.get("com.docker.network.driver.mtu") {
            Some(m) => Some(
                m.parse::<u32>()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| bad(format!("invalid MTU {m}")))?,
            ),
            None => None,
        };
        let n = Network {
            id,
            name: req.name.clone(),
            driver: "bridge".into(),
            created: crate::types::now(),
            bridge,
            pool,
            leases: Leases::default(),
            mtu,
            labels: req.labels.clone().unwrap_or_default(),
            internal: req.internal,
            attachable: req.attachable,
            options,
            ipam_options: req.ipam.as_ref().is_some_and(|i| i.options.is_some()),
        };
        let gw = ipnet::Ipv4Net::new(n.pool.gateway, n.pool.subnet.prefix_len()).expect("valid prefix");
        net::link::ensure_bridge(&n.bridge, gw, n.mtu).map_err(|e| Error::Internal(format!("network {}: {e}", n.name)))?;
        let made = self
            .networks
            .insert(n.clone())
            .and_then(|_| net::rules::enable_forwarding().map_err(|e| Error::Internal(e.to_string())))
            .and_then(|_| self.apply_rules());
        if let Err(e) = made {
            let _ = self.forget_network(&n);
            return Err(e);
        }
        self.emit_network(&n, "create", None);
        Ok(n)
    }

    /// Remove a network's record, interface and rules.
    fn forget_network(&self, n: &Network) -> Result<()> {
        let _ = net::rules::remove(&n.bridge);
        let _ = net::link::remove(&n.bridge);
        self.networks.remove(&n.id)?;
        self.apply_rules()
    }

    /// The containers on a network now (running, with an endpoint there).
    fn network_users(&self, n: &Network) -> Vec<Container> {
        self.containers()
            .into_iter()
            .filter(|c| c.endpoints.contains_key(&n.name))
            .collect()
    }

    /// `DELETE /networks/{id}`: refused for the predefined networks and while containers are on it.
    pub fn remove_network(&self, key: &str) -> Result<()> {
        if matches!(key, "host" | "none") {
            return Err(Error::Conflict(format!("{key} is a pre-defined network and cannot be removed")));
        }
        let n = self
            .networks
            .find(key)
            .ok_or_else(|| Error::NotFound(format!("network {key} not found")))?;
        if n.name == DEFAULT_NETWORK || n.is_cluster() {
            return Err(Error::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if !self.network_users(&n).is_empty() {
            return Err(Error::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.forget_network(&n)?;
        self.emit_network(&n, "destroy", None);
        Ok(())
    }

    /// `POST /networks/prune`: user-defined networks no container is on or asks for.
    pub fn prune_networks(&self, f: &crate::prune::PruneFilter) -> Vec<String> {
        let containers = self.containers();
        let mut out = Vec::new();
        for n in self.networks.list() {
            let created = chrono::DateTime::parse_from_rfc3339(&n.created)
                .map(|t| t.timestamp() as f64)
                .unwrap_or(0.0);
            let used = containers
                .iter()
                .any(|c| c.endpoints.contains_key(&n.name) || c.networks.contains_key(&n.name));
            if n.name == DEFAULT_NETWORK || n.is_cluster() || used || !f.matches(&n.labels, created) {
                continue;
            }
            if self.remove_network(&n.id).is_ok() {
                out.push(n.name);
            }
        }
        out
    }

    /// `POST /networks/{id}/connect`: a running container is plugged in now; a stopped one joins
    /// at its next start.
    pub async fn connect_container(&self, key: &str, container: &str, settings: EndpointSettings) -> Result<()> {
        let n = self
            .networks
            .find(key)
            .ok_or_else(|| Error::NotFound(format!("network {key} not found")))?;
        let entry = self.get(container)?;
        let _op = entry.op.lock().await;
        let mut c = entry.snapshot();
        if !matches!(
            c.host_config.network_mode,
            crate::types::NetworkMode::Named(_) | crate::types::NetworkMode::Default | crate::types::NetworkMode::Bridge
        ) {
            return Err(Error::BadRequest(format!(
                "container sharing network namespace with another container or host cannot be connected to any other network (network mode {})",
                c.host_config.network_mode
            )));
        }
        if n.name == DEFAULT_NETWORK && settings.ipv4_address.is_some() {
            return Err(Error::BadRequest(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if n.name == DEFAULT_NETWORK && !(settings.links.is_empty() && settings.aliases.is_empty()) {
            return Err(Error::BadRequest(
                "links and network-scoped aliases are supported only for containers in user defined networks".into(),
            ));
        }
        // The networks it is on now become explicit, so the default bridge is kept at a restart.
        let mut wanted: BTreeMap<String, EndpointSettings> = self.networks_of(&c).into_iter().collect();
        if wanted.contains_key(&n.name) {
            return Err(Error::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                c.name.trim_start_matches('/'),
                n.name
            )));
        }
        wanted.insert(n.name.clone(), settings.clone());
        if c.state.running {
            self.connect(&mut c, &n.name, &settings)?;
            c.networks = wanted.clone();
            if let Err(e) = self.register_dns(&c) {
                self.disconnect(&mut c, &n.name);
                return Err(e);
            }
            if self.embedded_dns(&n.name) {
                // Its first user-defined network: names now come from the embedded resolver, as
                // Docker rewrites the file (in place: the container has it bind-mounted).
                let resolv = crate::containers::resolv_conf(&c.host_config, true);
                std::fs::write(self.container_dir(&c.id).join("resolv.conf"), resolv).map_err(internal)?;
            }
        }
        let mut r = entry.rec.lock().unwrap();
        r.networks = wanted;
        r.endpoints = c.endpoints;
        self.save(&r)?;
        self.emit_network(&n, "connect", Some(&r.id));
        Ok(())
    }

    /// A network event, with the container it concerns if any.
    fn emit_network(&self, n: &Network, action: &str, container: Option<&str>) {
        let mut attrs = BTreeMap::from([("name".to_string(), n.name.clone()), ("type".to_string(), "bridge".to_string())]);
        if let Some(c) = container {
            attrs.insert("container".into(), c.to_string());
        }
        self.events.emit("network", action, &n.id, attrs);
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_container(&self, key: &str, container: &str) -> Result<()> {
        let n = self
            .networks
            .find(key)
            .ok_or_else(|| Error::NotFound(format!("network {key} not found")))?;
        let entry = self.get(container)?;
        let _op = entry.op.lock().await;
        let mut c = entry.snapshot();
        let mut wanted: BTreeMap<String, EndpointSettings> = self.networks_of(&c).into_iter().collect();
        if wanted.remove(&n.name).is_none() && !c.endpoints.contains_key(&n.name) {
            return Err(Error::Conflict(format!(
                "container {} is not connected to network {}",
                c.id, n.name
            )));
        }
        self.disconnect(&mut c, &n.name);
        let mut r = entry.rec.lock().unwrap();
        r.networks = wanted;
        if r.networks.is_empty() && r.host_config.network_mode.is_default_bridge() {
            // Off every network: what `--network none` would have given.
            r.host_config.network_mode = crate::types::NetworkMode::None;
        }
        r.endpoints = c.endpoints;
        self.save(&r)?;
        self.emit_network(&n, "disconnect", Some(&r.id));
        Ok(())
    }
}

impl crate::Engine {
    /// The names container DNS answers for `c` on network `name`: its name, its short ID and
    /// its aliases there.
    fn dns_names_of(c: &Container, name: &str) -> Vec<String> {
        let mut names = vec![c.name.trim_start_matches('/').to_string(), c.id[..12].to_string()];
        if let Some(s) = c.networks.get(name) {
            names.extend(s.aliases.iter().cloned());
        }
        names
    }

    /// Whether containers on network `name` get the embedded resolver: user-defined networks
    /// do, as in Docker, except the orchestrator's pod network (label `io.berth.cluster=pods`),
    /// whose pods get the resolv.conf the node agent asks for (the cluster DNS), as a
    /// kubelet writes it.
    pub(crate) fn embedded_dns(&self, name: &str) -> bool {
        name != DEFAULT_NETWORK && self.networks.find(name).is_none_or(|n| !n.is_cluster())
    }

    /// Make `c`'s names known on its user-defined networks and serve its resolver at
    /// 127.0.0.11 in its namespace (once; again after a daemon restart).
    pub(crate) fn register_dns(&self, c: &Container) -> Result<()> {
        let user: Vec<(&String, &Endpoint)> = c.endpoints.iter().filter(|(n, _)| self.embedded_dns(n)).collect();
        if user.is_empty() {
            return Ok(());
        }
        {
            let mut t = self.dns_names.write().unwrap();
            for (name, ep) in &user {
                t.add(name, &c.id, ep.ip_address, &Self::dns_names_of(c, name));
                for l in c.networks.get(*name).map(|s| s.links.as_slice()).unwrap_or_default() {
                    let (target, alias) = l.split_once(':').unwrap_or((l, l));
                    t.link(name, &c.id, target, alias);
                    t.link(name, &c.id, target, target);
                }
            }
        }
        if self.resolvers.lock().unwrap().contains_key(&c.id) {
            return Ok(());
        }
        let sock = net::dns::bind_in(&self.netns_path(&c.id)).map_err(|e| Error::Internal(format!("container DNS: {e}")))?;
        let upstream = match c.host_config.dns.as_ref().filter(|d| !d.is_empty()) {
            Some(d) => Arc::new(
                d.iter()
                    .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
                    .map(|ip| std::net::SocketAddr::new(ip, 53))
                    .collect(),
            ),
            None => self.dns_upstream.clone(),
        };
        let h = tokio::spawn(net::dns::serve(sock, c.id.clone(), self.dns_names.clone(), upstream)).abort_handle();
        self.resolvers.lock().unwrap().insert(c.id.clone(), h);
        Ok(())
    }

    /// Forget `c`'s names on network `name` (all of them when `None`); its resolver stops when
    /// it is on no user-defined network any more.
    pub(crate) fn unregister_dns(&self, c: &Container, name: Option<&str>) {
        {
            let mut t = self.dns_names.write().unwrap();
            for n in c.endpoints.keys().filter(|n| name.is_none_or(|x| x == n.as_str())) {
                t.remove(n, &c.id);
            }
        }
        let left = c
            .endpoints
            .keys()
            .any(|n| n != DEFAULT_NETWORK && name.is_some_and(|x| x != n.as_str()));
        if !left {
            if let Some(h) = self.resolvers.lock().unwrap().remove(&c.id) {
                h.abort();
            }
        }
    }
}
