//! Interfaces through netlink: the bridge of a network, and the veth pair that puts a container
//! on it (one end on the bridge, the other in the container's namespace as `eth0`).

use std::net::Ipv4Addr;
use std::path::Path;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::{netns, Error, Result};

fn nl<'a>(op: &'static str, target: &'a str) -> impl FnOnce(rtnetlink::Error) -> Error + 'a {
    move |e| Error::Netlink {
        op,
        target: target.to_string(),
        message: e.to_string(),
    }
}

/// The index of interface `name`, if there is one.
async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(l) => Ok(l.map(|l| l.header.index)),
        // ENODEV: no such interface.
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl("look up", name)(e)),
    }
}

/// Whether interface `name` exists in the caller's namespace.
pub fn exists(name: &str) -> Result<bool> {
    let n = name.to_string();
    netns::run_in(None, move |h| async move { Ok(index_of(&h, &n).await?.is_some()) })
}

/// Make sure bridge `name` exists, holds `gateway` (its address and the subnet's prefix) and is
/// up; `mtu` when given. Returns whether it was made now.
pub fn ensure_bridge(name: &str, gateway: Ipv4Net, mtu: Option<u32>) -> Result<bool> {
    let n = name.to_string();
    netns::run_in(None, move |h| async move {
        let (idx, made) = match index_of(&h, &n).await? {
            Some(i) => (i, false),
            None => {
                let mut b = LinkBridge::new(&n);
                if let Some(m) = mtu {
                    b = b.mtu(m);
                }
                h.link().add(b.build()).execute().await.map_err(nl("create bridge", &n))?;
                (
                    index_of(&h, &n)
                        .await?
                        .ok_or_else(|| Error::Other(format!("bridge {n} vanished")))?,
                    true,
                )
            }
        };
        let mut addrs = h.address().get().set_link_index_filter(idx).execute();
        let mut has = false;
        while let Some(a) = addrs.try_next().await.map_err(nl("list addresses of", &n))? {
            has |= a.attributes.iter().any(|at| {
                matches!(at, netlink_packet_route::address::AddressAttribute::Address(std::net::IpAddr::V4(ip))
                    if *ip == gateway.addr())
            });
        }
        if !has {
            h.address()
                .add(idx, gateway.addr().into(), gateway.prefix_len())
                .execute()
                .await
                .map_err(nl("address bridge", &n))?;
        }
        h.link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .map_err(nl("bring up", &n))?;
        Ok(made)
    })
}

/// Remove interface `name` (a bridge, or a veth with its peer); a missing one is not an error.
pub fn remove(name: &str) -> Result<()> {
    let n = name.to_string();
    netns::run_in(None, move |h| async move {
        if let Some(idx) = index_of(&h, &n).await? {
            h.link().del(idx).execute().await.map_err(nl("delete", &n))?;
        }
        Ok(())
    })
}

/// What a container's interface on a network is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The bridge the host end joins.
    pub bridge: String,
    /// The host end's name (`veth…`).
    pub host_if: String,
    /// The container end's name (`eth0`, `eth1`, …).
    pub ifname: String,
    /// The container's address, with the network's prefix.
    pub addr: Ipv4Net,
    /// The default route's gateway, if this interface carries it.
    pub gateway: Option<Ipv4Addr>,
    pub mac: [u8; 6],
    pub mtu: Option<u32>,
    /// More addresses on the interface (link-local ones a container asked for).
    pub extra: Vec<Ipv4Net>,
}

/// Docker's MAC for an address: `02:42` and the address's four bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff`: six two-digit hex bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
        return None;
    }
    let bytes: Vec<u8> = parts.iter().filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
    <[u8; 6]>::try_from(bytes).ok()
}

/// `aa:bb:…` as Docker prints MACs.
pub fn mac_string(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Put the namespace at `ns` on `a.bridge`: a veth pair whose host end joins the bridge and
/// whose other end, in the namespace, is `a.ifname` with `a.addr` (and the default route via
/// `a.gateway`); loopback is brought up too. Nothing is left behind when a step fails.
pub fn attach(ns: &Path, a: &Attachment) -> Result<()> {
    let peer = format!("bp{}", &a.host_if[a.host_if.len().saturating_sub(8)..]);
    let nsfile = std::fs::File::open(ns).map_err(|e| Error::Io {
        op: "open",
        target: ns.display().to_string(),
        source: e,
    })?;
    let host = a.clone();
    let p = peer.clone();
    let made = netns::run_in(None, move |h| async move {
        use std::os::fd::AsRawFd;
        let bridge = index_of(&h, &host.bridge)
            .await?
            .ok_or_else(|| Error::Other(format!("bridge {} does not exist", host.bridge)))?;
        let mut veth = LinkVeth::new(&host.host_if, &p);
        if let Some(m) = host.mtu {
            veth = veth.mtu(m);
        }
        h.link()
            .add(veth.build())
            .execute()
            .await
            .map_err(nl("create veth", &host.host_if))?;
        let step = async {
            let hidx = index_of(&h, &host.host_if)
                .await?
                .ok_or_else(|| Error::Other("veth vanished".into()))?;
            let pidx = index_of(&h, &p).await?.ok_or_else(|| Error::Other("veth peer vanished".into()))?;
            h.link()
                .set(LinkUnspec::new_with_index(pidx).setns_by_fd(nsfile.as_raw_fd()).build())
                .execute()
                .await
                .map_err(nl("move into the container's namespace", &p))?;
            h.link()
                .set(LinkUnspec::new_with_index(hidx).controller(bridge).up().build())
                .execute()
                .await
                .map_err(nl("join bridge", &host.host_if))?;
            Ok::<(), Error>(())
        };
        if let Err(e) = step.await {
            if let Ok(Some(i)) = index_of(&h, &host.host_if).await {
                let _ = h.link().del(i).execute().await;
            }
            return Err(e);
        }
        Ok(())
    });
    made?;
    let inner = a.clone();
    let configured = netns::run_in(Some(ns), move |h| async move {
        let idx = index_of(&h, &peer)
            .await?
            .ok_or_else(|| Error::Other("the veth end did not arrive".into()))?;
        h.link()
            .set(
                LinkUnspec::new_with_index(idx)
                    .name(inner.ifname.clone())
                    .address(inner.mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(nl("name", &inner.ifname))?;
        h.address()
            .add(idx, inner.addr.addr().into(), inner.addr.prefix_len())
            .execute()
            .await
            .map_err(nl("address", &inner.ifname))?;
        for a in &inner.extra {
            h.address()
                .add(idx, a.addr().into(), a.prefix_len())
                .execute()
                .await
                .map_err(nl("address", &inner.ifname))?;
        }
        h.link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .map_err(nl("bring up", &inner.ifname))?;
        if let Some(lo) = index_of(&h, "lo").await? {
            h.link()
                .set(LinkUnspec::new_with_index(lo).up().build())
                .execute()
                .await
                .map_err(nl("bring up", "lo"))?;
        }
        if let Some(gw) = inner.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(idx).build();
            h.route()
                .add(route)
                .execute()
                .await
                .map_err(nl("add the default route via", &gw.to_string()))?;
        }
        Ok(())
    });
    if configured.is_err() {
        let _ = remove(&a.host_if);
    }
    configured
}
