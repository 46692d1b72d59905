//! Networks: the default bridge (`bridge`, on the daemon's `--bridge` interface), persisted
//! with its address pool and leases, and the endpoints that put containers on it. The host side
//! (bridge, veth pairs, namespaces) is `crates/net`'s.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    pub(crate) fn open_default_bridge(&self) -> Result<()> {
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
                };
                self.networks.insert(n.clone())?;
                n
            }
        };
        let gw = ipnet::Ipv4Net::new(net.pool.gateway, net.pool.subnet.prefix_len()).expect("valid prefix");
        net::link::ensure_bridge(&net.bridge, gw, net.mtu).map_err(|e| Error::Internal(format!("the default bridge: {e}")))?;
        // Outbound traffic leaves with the host's address, as Docker's default bridge does.
        net::rules::enable_forwarding()
            .and_then(|_| {
                net::rules::apply(&net::rules::BridgeRules {
                    bridge: net.bridge.clone(),
                    subnet: net.pool.subnet,
                    masquerade: true,
                })
            })
            .map_err(|e| Error::Internal(format!("the default bridge's packet rules: {e}")))?;
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

    /// Whether a container joins the default bridge when it starts.
    pub(crate) fn on_default_bridge(&self, c: &Container) -> bool {
        self.cfg.bridge.is_some() && c.host_config.network_mode.is_default_bridge()
    }

    /// Put a starting container on the default bridge: its own namespace, a lease, a veth pair.
    /// Nothing is left when a step fails.
    pub(crate) fn connect_default(&self, c: &mut Container) -> Result<()> {
        let Some(n) = self.networks.find(DEFAULT_NETWORK) else {
            return Err(Error::Internal("the default bridge network is not set up".into()));
        };
        let ns = self.netns_path(&c.id);
        crate::private::ensure_dir(ns.parent().expect("netns dir"), 0o700, 0)?;
        if ns.exists() {
            let _ = net::netns::remove(&ns);
        }
        let ip = self.networks.update(&n.id, |n| {
            n.pool
                .allocate(&mut n.leases, &c.id, None)
                .map_err(|e| Error::Internal(format!("network {}: {e}", n.name)))
        })?;
        let endpoint_id = crate::engine::random_id();
        let asked = c.config.extra.get("MacAddress").and_then(|v| v.as_str()).and_then(|m| {
            let b: Vec<u8> = m.split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect();
            <[u8; 6]>::try_from(b).ok()
        });
        let mac = asked.unwrap_or_else(|| net::link::mac_for(ip));
        let host_if = format!("veth{}", &endpoint_id[..7]);
        let attached = net::netns::create(&ns).and_then(|_| {
            net::link::attach(
                &ns,
                &net::link::Attachment {
                    bridge: n.bridge.clone(),
                    host_if: host_if.clone(),
                    ifname: "eth0".into(),
                    addr: ipnet::Ipv4Net::new(ip, n.pool.subnet.prefix_len()).expect("valid prefix"),
                    gateway: Some(n.pool.gateway),
                    mac,
                    mtu: n.mtu,
                },
            )
        });
        if let Err(e) = attached {
            let _ = net::netns::remove(&ns);
            let _ = self.networks.update(&n.id, |n| Ok(n.pool.release(&mut n.leases, &c.id)));
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
                ifname: "eth0".into(),
            },
        );
        Ok(())
    }

    /// Take a container off its networks (at exit, a failed start, removal): its veths, its
    /// leases and its namespace go.
    pub(crate) fn disconnect_all(&self, c: &mut Container) {
        self.unpublish(c);
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
