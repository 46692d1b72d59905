//! IP address management: a network's pool (subnet, gateway, allocation range, reserved
//! addresses) and the leases handed out from it, as Docker's default IPAM driver keeps them.
//!
//! Leases are plain data the caller persists with the network; a pool never hands out an address
//! that is leased, reserved, the gateway, or the subnet's network or broadcast address.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Errors of address management; each names the address or subnet at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid subnet {0}: {1}")]
    InvalidSubnet(String, String),
    #[error("invalid address {0:?}")]
    InvalidAddress(String),
    #[error("{what} {addr} is not in subnet {subnet}")]
    OutsideSubnet { what: &'static str, addr: String, subnet: Ipv4Net },
    #[error("requested address {addr} is out of the network's IP range {range}")]
    OutOfRange { addr: Ipv4Addr, range: Ipv4Net },
    #[error("address {0} is already in use")]
    InUse(Ipv4Addr),
    #[error("address {addr} is reserved ({why}) in {subnet}")]
    Reserved {
        addr: Ipv4Addr,
        why: &'static str,
        subnet: Ipv4Net,
    },
    #[error("no available IPv4 addresses in {0}")]
    Exhausted(Ipv4Net),
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoFreePool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A network's address pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Where dynamic addresses come from (`--ip-range`); the whole subnet when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Ipv4Net>,
    /// Addresses the pool never hands out (`--aux-address name=ip`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reserved: BTreeMap<String, Ipv4Addr>,
}

/// The addresses a pool has handed out, each to its owner (an endpoint ID).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leases {
    #[serde(default)]
    pub by_addr: BTreeMap<Ipv4Addr, String>,
}

impl Leases {
    /// The address leased to `owner`, if any.
    pub fn of(&self, owner: &str) -> Option<Ipv4Addr> {
        self.by_addr.iter().find(|(_, o)| *o == owner).map(|(a, _)| *a)
    }

    /// Forget every lease whose owner `live` does not know (after a crash, say); returns the
    /// addresses freed.
    pub fn retain_owners(&mut self, live: impl Fn(&str) -> bool) -> Vec<Ipv4Addr> {
        let gone: Vec<Ipv4Addr> = self.by_addr.iter().filter(|(_, o)| !live(o)).map(|(a, _)| *a).collect();
        for a in &gone {
            self.by_addr.remove(a);
        }
        gone
    }
}

fn parse_addr(s: &str) -> Result<Ipv4Addr> {
    s.parse().map_err(|_| Error::InvalidAddress(s.to_string()))
}

/// A CIDR that must name its network (`172.20.0.0/16`, not `172.20.0.1/16`), as Docker requires.
pub fn parse_subnet(s: &str) -> Result<Ipv4Net> {
    let n: Ipv4Net = s
        .parse()
        .map_err(|_| Error::InvalidSubnet(s.to_string(), "not an IPv4 CIDR (like 172.20.0.0/16)".into()))?;
    if n.addr() != n.network() {
        return Err(Error::InvalidSubnet(s.to_string(), format!("it should be {}", n.trunc())));
    }
    if n.prefix_len() > 30 {
        return Err(Error::InvalidSubnet(
            s.to_string(),
            "too small for a gateway and a container (at most /30)".into(),
        ));
    }
    Ok(n)
}

/// Whether two subnets share any address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

impl Pool {
    /// A pool from `network create`'s IPAM config: the gateway defaults to the subnet's first
    /// address; the range, the gateway and every reserved address must lie in the subnet.
    pub fn new(subnet: &str, gateway: Option<&str>, range: Option<&str>, aux: &BTreeMap<String, String>) -> Result<Pool> {
        let subnet = parse_subnet(subnet)?;
        let inside = |what: &'static str, a: Ipv4Addr| -> Result<Ipv4Addr> {
            if subnet.contains(&a) {
                Ok(a)
            } else {
                Err(Error::OutsideSubnet {
                    what,
                    addr: a.to_string(),
                    subnet,
                })
            }
        };
        let gateway = match gateway.filter(|g| !g.is_empty()) {
            Some(g) => inside("gateway", parse_addr(g)?)?,
            None => first_host(&subnet),
        };
        let range = match range.filter(|r| !r.is_empty()) {
            Some(r) => {
                let n: Ipv4Net = r
                    .parse()
                    .map_err(|_| Error::InvalidSubnet(r.to_string(), "not an IPv4 CIDR".into()))?;
                if !subnet.contains(&n) {
                    return Err(Error::OutsideSubnet {
                        what: "ip range",
                        addr: r.to_string(),
                        subnet,
                    });
                }
                Some(n.trunc())
            }
            None => None,
        };
        let mut reserved = BTreeMap::new();
        for (name, a) in aux {
            reserved.insert(name.clone(), inside("auxiliary address", parse_addr(a)?)?);
        }
        Ok(Pool {
            subnet,
            gateway,
            range,
            reserved,
        })
    }

    /// Why `a` may never be handed out, if it may not.
    fn reserved_why(&self, a: Ipv4Addr) -> Option<&'static str> {
        if a == self.subnet.network() {
            Some("the network address")
        } else if a == self.subnet.broadcast() {
            Some("the broadcast address")
        } else if a == self.gateway {
            Some("the gateway")
        } else if self.reserved.values().any(|r| *r == a) {
            Some("an auxiliary address")
        } else {
            None
        }
    }

    /// Lease an address to `owner`: the one asked for (which must be free and, when the
    /// network has an IP range, inside it), or the first free one of the range. An owner that
    /// holds a lease gets the same address back.
    pub fn allocate(&self, leases: &mut Leases, owner: &str, want: Option<Ipv4Addr>) -> Result<Ipv4Addr> {
        if let Some(held) = leases.of(owner) {
            if want.is_none_or(|w| w == held) {
                return Ok(held);
            }
        }
        let a = match want {
            Some(a) => {
                if !self.subnet.contains(&a) {
                    return Err(Error::OutsideSubnet {
                        what: "requested address",
                        addr: a.to_string(),
                        subnet: self.subnet,
                    });
                }
                if let Some(range) = self.range.filter(|r| !r.contains(&a)) {
                    return Err(Error::OutOfRange { addr: a, range });
                }
                if let Some(why) = self.reserved_why(a) {
                    return Err(Error::Reserved {
                        addr: a,
                        why,
                        subnet: self.subnet,
                    });
                }
                if leases.by_addr.contains_key(&a) {
                    return Err(Error::InUse(a));
                }
                a
            }
            None => {
                let range = self.range.unwrap_or(self.subnet);
                let (lo, hi) = (u32::from(range.network()), u32::from(range.broadcast()));
                (lo..=hi)
                    .map(Ipv4Addr::from)
                    .find(|a| self.reserved_why(*a).is_none() && !leases.by_addr.contains_key(a))
                    .ok_or(Error::Exhausted(range))?
            }
        };
        leases.by_addr.retain(|_, o| o != owner);
        leases.by_addr.insert(a, owner.to_string());
        Ok(a)
    }

    /// Free whatever `owner` holds.
    pub fn release(&self, leases: &mut Leases, owner: &str) -> Option<Ipv4Addr> {
        let a = leases.of(owner)?;
        leases.by_addr.remove(&a);
        Some(a)
    }
}

/// The subnet's first host address (`172.20.0.1` in `172.20.0.0/16`), Docker's default gateway.
pub fn first_host(n: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(n.network()) + 1)
}

/// Docker's default address pools for networks created without a subnet: `172.17.0.0/16` to
/// `172.31.0.0/16`, then `192.168.0.0/20` to `192.168.240.0/20`.
pub fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let b = (17u8..=31).map(|x| Ipv4Net::new(Ipv4Addr::new(172, x, 0, 0), 16).expect("valid"));
    let c = (0u8..16).map(|x| Ipv4Net::new(Ipv4Addr::new(192, 168, x * 16, 0), 20).expect("valid"));
    b.chain(c)
}

/// The first default pool that overlaps none of `taken` (other networks' subnets and the
/// host's own routes).
pub fn next_free_pool(taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    default_pools()
        .find(|p| !taken.iter().any(|t| overlaps(p, t)))
        .ok_or(Error::NoFreePool)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(subnet: &str) -> Pool {
        Pool::new(subnet, None, None, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn subnets_must_name_their_network() {
        assert_eq!(parse_subnet("10.1.0.0/24").unwrap().to_string(), "10.1.0.0/24");
        assert_eq!(
            parse_subnet("10.1.0.5/24").unwrap_err().to_string(),
            "invalid subnet 10.1.0.5/24: it should be 10.1.0.0/24"
        );
        assert!(parse_subnet("10.1.0.0/31").is_err());
        assert!(parse_subnet("nope").is_err());
        assert!(parse_subnet("fd00::/64").is_err());
    }

    #[test]
    fn gateway_range_and_aux_are_checked_against_the_subnet() {
        let aux = BTreeMap::from([("host".to_string(), "10.1.0.9".to_string())]);
        let p = Pool::new("10.1.0.0/24", Some("10.1.0.254"), Some("10.1.0.0/28"), &aux).unwrap();
        assert_eq!(p.gateway, Ipv4Addr::new(10, 1, 0, 254));
        assert!(matches!(
            Pool::new("10.1.0.0/24", Some("10.2.0.1"), None, &BTreeMap::new()),
            Err(Error::OutsideSubnet { what: "gateway", .. })
        ));
        assert!(matches!(
            Pool::new("10.1.0.0/24", None, Some("10.9.0.0/28"), &BTreeMap::new()),
            Err(Error::OutsideSubnet { what: "ip range", .. })
        ));
        let bad_aux = BTreeMap::from([("x".to_string(), "192.168.1.1".to_string())]);
        assert!(Pool::new("10.1.0.0/24", None, None, &bad_aux).is_err());
    }

    #[test]
    fn addresses_are_handed_out_once_skipping_the_reserved_ones() {
        let aux = BTreeMap::from([("h".to_string(), "10.1.0.3".to_string())]);
        let p = Pool::new("10.1.0.0/29", None, None, &aux).unwrap();
        let mut l = Leases::default();
        // .0 network, .1 gateway, .3 aux, .7 broadcast.
        let got: Vec<_> = ["a", "b", "c", "d"].iter().map(|o| p.allocate(&mut l, o, None).unwrap()).collect();
        assert_eq!(
            got,
            ["10.1.0.2", "10.1.0.4", "10.1.0.5", "10.1.0.6"].map(|s| s.parse::<Ipv4Addr>().unwrap())
        );
        assert_eq!(p.allocate(&mut l, "e", None), Err(Error::Exhausted(p.subnet)));
        // The same owner gets its address back; a freed one is handed out again.
        assert_eq!(p.allocate(&mut l, "b", None).unwrap(), got[1]);
        assert_eq!(p.release(&mut l, "b"), Some(got[1]));
        assert_eq!(p.allocate(&mut l, "e", None).unwrap(), got[1]);
    }

    #[test]
    fn requested_addresses() {
        let p = Pool::new("10.1.0.0/24", None, Some("10.1.0.128/25"), &BTreeMap::new()).unwrap();
        let mut l = Leases::default();
        let want = |s: &str| Some(s.parse::<Ipv4Addr>().unwrap());
        assert_eq!(p.allocate(&mut l, "a", want("10.1.0.200")).unwrap().to_string(), "10.1.0.200");
        assert_eq!(
            p.allocate(&mut l, "b", want("10.1.0.200")),
            Err(Error::InUse("10.1.0.200".parse().unwrap()))
        );
        assert!(matches!(p.allocate(&mut l, "b", want("10.1.0.5")), Err(Error::OutOfRange { .. })));
        assert!(matches!(p.allocate(&mut l, "b", want("10.1.0.1")), Err(Error::OutOfRange { .. })));
        assert!(matches!(
            p.allocate(&mut l, "b", want("10.2.0.1")),
            Err(Error::OutsideSubnet { .. })
        ));
        let open = pool("10.3.0.0/24");
        assert!(matches!(
            open.allocate(&mut l, "b", want("10.3.0.1")),
            Err(Error::Reserved { why: "the gateway", .. })
        ));
        assert!(matches!(
            open.allocate(&mut l, "b", want("10.3.0.255")),
            Err(Error::Reserved { .. })
        ));
        // Dynamic addresses come from the range only.
        assert_eq!(p.allocate(&mut l, "c", None).unwrap().to_string(), "10.1.0.128");
    }

    #[test]
    fn leases_of_gone_owners_are_reconciled_away() {
        let p = pool("10.1.0.0/24");
        let mut l = Leases::default();
        for o in ["a", "b", "c"] {
            p.allocate(&mut l, o, None).unwrap();
        }
        let freed = l.retain_owners(|o| o != "b");
        assert_eq!(freed, vec!["10.1.0.3".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(l.by_addr.len(), 2);
        let round: Leases = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(round, l);
    }

    #[test]
    fn default_pools_skip_what_is_taken() {
        let taken = [parse_subnet("172.17.0.0/16").unwrap(), parse_subnet("172.18.5.0/24").unwrap()];
        assert_eq!(next_free_pool(&taken).unwrap().to_string(), "172.19.0.0/16");
        let all: Vec<Ipv4Net> = default_pools().collect();
        assert_eq!(next_free_pool(&all), Err(Error::NoFreePool));
        assert!(overlaps(
            &parse_subnet("10.0.0.0/8").unwrap(),
            &parse_subnet("10.5.0.0/16").unwrap()
        ));
        assert!(!overlaps(
            &parse_subnet("10.0.0.0/16").unwrap(),
            &parse_subnet("10.1.0.0/16").unwrap()
        ));
    }
}
