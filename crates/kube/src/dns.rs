//! The cluster DNS (CoreDNS's `kubernetes` plugin's role), served by the daemon on the pod
//! network's gateway (UDP and TCP, port 53) behind the `kube-dns` Service, with the records
//! the Kubernetes DNS specification names:
//!
//! - `<svc>.<ns>.svc.cluster.local`: A, the cluster IP; for a headless Service one A per ready
//!   endpoint; an ExternalName Service a CNAME;
//! - `<hostname>.<svc>.<ns>.svc.cluster.local`: a headless Service's endpoint by its hostname
//!   (a pod's `hostname` + `subdomain`) or its dashed address;
//! - `_<port>._<proto>.<svc>.<ns>.svc.cluster.local`: SRV for named ports;
//! - `<a-b-c-d>.<ns>.pod.cluster.local`: A (CoreDNS's `pods insecure`).
//!
//! Names under `cluster.local` the cluster does not have are NXDOMAIN (with the zone's SOA, for
//! negative caching); every other name is forwarded to the node's resolvers. TTL 5 s, as
//! CoreDNS answers.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::controllers::runtime::str_at;
use crate::controllers::Informers;

/// The cluster's domain.
pub const DOMAIN: &str = "cluster.local";
const TTL: u32 = 5;

/// What the cluster says of a name.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// Not a cluster name: ask upstream.
    Forward,
    /// The name exists; its records of the asked type (maybe none).
    Records(Vec<RData>),
    /// No such name in the cluster.
    NxDomain,
}

fn name(s: &str) -> Option<Name> {
    Name::from_ascii(s).ok().map(|mut n| {
        n.set_fqdn(true);
        n
    })
}

/// Look a name up in the cluster's Services and Endpoints.
pub fn lookup(informers: &Informers, qname: &str, qtype: RecordType) -> Lookup {
    let q = qname.trim_end_matches('.').to_ascii_lowercase();
    let Some(rest) = q.strip_suffix(DOMAIN) else {
        return Lookup::Forward;
    };
    if !rest.is_empty() && !rest.ends_with('.') {
        return Lookup::Forward;
    }
    let labels: Vec<&str> = rest.trim_end_matches('.').split('.').filter(|l| !l.is_empty()).collect();
    let a = |ips: Vec<Ipv4Addr>| {
        if qtype == RecordType::A || qtype == RecordType::ANY {
            Lookup::Records(ips.into_iter().map(|ip| RData::A(ip.into())).collect())
        } else {
            Lookup::Records(vec![])
        }
    };
    match labels.as_slice() {
        // The zone and its namespaces: names that exist, with nothing of their own.
        [] | ["svc"] | ["pod"] => Lookup::Records(vec![]),
        [ns, "svc"] | [ns, "pod"] => {
            if informers.services.list("").iter().any(|s| str_at(s, "/metadata/namespace") == *ns) {
                Lookup::Records(vec![])
            } else {
                Lookup::NxDomain
            }
        }
        [ip, _ns, "pod"] => match ip.replace('-', ".").parse::<Ipv4Addr>() {
            Ok(addr) => a(vec![addr]),
            Err(_) => Lookup::NxDomain,
        },
        [svc, ns, "svc"] => {
            let Some(s) = informers.services.get(&format!("{ns}/{svc}")) else {
                return Lookup::NxDomain;
            };
            if str_at(&s, "/spec/type") == "ExternalName" {
                return match name(str_at(&s, "/spec/externalName")) {
                    Some(target) => Lookup::Records(vec![RData::CNAME(CNAME(target))]),
                    None => Lookup::NxDomain,
                };
            }
            match str_at(&s, "/spec/clusterIP") {
                "None" | "" => a(ready_endpoints(informers, ns, svc).into_iter().map(|(ip, _)| ip).collect()),
                ip => a(ip.parse().into_iter().collect()),
            }
        }
        [host, svc, ns, "svc"] if !host.starts_with('_') => {
            let found: Vec<Ipv4Addr> = ready_endpoints(informers, ns, svc)
                .into_iter()
                .filter(|(ip, h)| h.as_deref() == Some(*host) || ip.to_string().replace('.', "-") == *host)
                .map(|(ip, _)| ip)
                .collect();
            if found.is_empty() {
                Lookup::NxDomain
            } else {
                a(found)
            }
        }
        [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            srv(informers, &port[1..], &proto[1..], svc, ns, qtype)
        }
        _ => Lookup::NxDomain,
    }
}

/// A Service's ready endpoint addresses, with their hostnames.
fn ready_endpoints(informers: &Informers, ns: &str, svc: &str) -> Vec<(Ipv4Addr, Option<String>)> {
    let Some(ep) = informers.endpoints.get(&format!("{ns}/{svc}")) else {
        return vec![];
    };
    let mut out: Vec<(Ipv4Addr, Option<String>)> = ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| Some((a["ip"].as_str()?.parse().ok()?, a["hostname"].as_str().map(String::from))))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn srv(informers: &Informers, port: &str, proto: &str, svc: &str, ns: &str, qtype: RecordType) -> Lookup {
    let Some(s) = informers.services.get(&format!("{ns}/{svc}")) else {
        return Lookup::NxDomain;
    };
    let Some(p) = s["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str() == Some(port) && p["protocol"].as_str().unwrap_or("TCP").eq_ignore_ascii_case(proto))
    else {
        return Lookup::NxDomain;
    };
    if qtype != RecordType::SRV && qtype != RecordType::ANY {
        return Lookup::Records(vec![]);
    }
    let base = format!("{svc}.{ns}.svc.{DOMAIN}");
    let headless = str_at(&s, "/spec/clusterIP") == "None";
    if !headless {
        let port = p["port"].as_u64().unwrap_or(0) as u16;
        return Lookup::Records(name(&base).map(|t| RData::SRV(SRV::new(0, 100, port, t))).into_iter().collect());
    }
    // Headless: one per endpoint, at its port, named by its hostname or dashed address.
    let Some(ep) = informers.endpoints.get(&format!("{ns}/{svc}")) else {
        return Lookup::Records(vec![]);
    };
    let mut out = Vec::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        let Some(port) = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["name"].as_str() == Some(port))
        else {
            continue;
        };
        let port = port["port"].as_u64().unwrap_or(0) as u16;
        for a in subset["addresses"].as_array().into_iter().flatten() {
            let host = a["hostname"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| a["ip"].as_str().unwrap_or("").replace('.', "-"));
            if let Some(t) = name(&format!("{host}.{base}")) {
                out.push(RData::SRV(SRV::new(0, 100, port, t)));
            }
        }
    }
    Lookup::Records(out)
}

fn soa() -> Option<Record> {
    let zone = name(DOMAIN)?;
    let rdata = SOA::new(
        name(&format!("ns.dns.{DOMAIN}"))?,
        name(&format!("hostmaster.{DOMAIN}"))?,
        1,
        7200,
        1800,
        86400,
        TTL,
    );
    Some(Record::from_rdata(zone, TTL, RData::SOA(rdata)))
}

/// Answer one query (wire format); `None` when it is unreadable or nobody answered.
pub async fn answer(informers: &Informers, query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let found = lookup(informers, &question.name().to_ascii(), question.query_type());
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_query(question.clone());
    match found {
        Lookup::Forward => {
            for up in upstream {
                if let Some(reply) = net::dns::forward(query, *up).await {
                    return Some(reply);
                }
            }
            let mut r = Message::error_msg(q.metadata.id, q.metadata.op_code, ResponseCode::ServFail);
            r.metadata.message_type = MessageType::Response;
            r.add_query(question);
            return r.to_vec().ok();
        }
        Lookup::Records(records) => {
            r.metadata.authoritative = true;
            if records.is_empty() {
                r.add_authority(soa()?);
            }
            for rd in records {
                r.add_answer(Record::from_rdata(question.name().clone(), TTL, rd));
            }
        }
        Lookup::NxDomain => {
            r.metadata.authoritative = true;
            r.metadata.response_code = ResponseCode::NXDomain;
            r.add_authority(soa()?);
        }
    }
    r.to_vec().ok()
}

/// Serve the cluster DNS on `addr` (UDP and TCP) until the daemon stops. Binding waits for the
/// address to exist (the pod network's bridge).
pub async fn run(informers: Arc<Informers>, addr: SocketAddr, upstream: Vec<SocketAddr>) {
    let upstream = Arc::new(upstream);
    let (udp, tcp) = loop {
        match (tokio::net::UdpSocket::bind(addr).await, tokio::net::TcpListener::bind(addr).await) {
            (Ok(u), Ok(t)) => break (Arc::new(u), t),
            (u, t) => {
                let e = u.err().or(t.err()).map(|e| e.to_string()).unwrap_or_default();
                tracing::debug!(%addr, error = %e, "cluster DNS not bound yet");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(%addr, "cluster DNS listening");
    {
        let (informers, upstream) = (informers.clone(), upstream.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = tcp.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let (informers, upstream) = (informers.clone(), upstream.clone());
                tokio::spawn(async move {
                    // Length-prefixed messages, as many as the client sends.
                    loop {
                        let Ok(len) = conn.read_u16().await else { return };
                        let mut buf = vec![0u8; usize::from(len)];
                        if conn.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        let Some(reply) = answer(&informers, &buf, &upstream).await else {
                            return;
                        };
                        let Ok(n) = u16::try_from(reply.len()) else { return };
                        if conn.write_u16(n).await.is_err() || conn.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else { continue };
        let query = buf[..n].to_vec();
        let (informers, upstream, udp) = (informers.clone(), upstream.clone(), udp.clone());
        tokio::spawn(async move {
            if let Some(mut reply) = answer(&informers, &query, &upstream).await {
                if reply.len() > 512 {
                    // Too long for plain UDP: truncated, the client asks again over TCP.
                    if let Ok(mut m) = Message::from_vec(&reply) {
                        m.answers.clear();
                        m.metadata.truncation = true;
                        reply = m.to_vec().unwrap_or(reply);
                    }
                }
                let _ = udp.send_to(&reply, from).await;
            }
        });
    }
}

/// The address the cluster DNS answers on: the pod network's gateway (its first address).
pub fn listen_addr(pod_cidr: &str) -> Option<SocketAddr> {
    let net: ipnet::Ipv4Net = pod_cidr.parse().ok()?;
    Some(SocketAddr::from((Ipv4Addr::from(u32::from(net.network()) + 1), 53)))
}

/// The Endpoints of a Service whose backends are the node itself (`kube-dns`, `kubernetes`).
pub fn node_endpoints(name: &str, namespace: &str, ip: Ipv4Addr, ports: &[(&str, u16, &str)]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p, proto)| serde_json::json!({"name": n, "port": p, "protocol": proto}))
        .collect();
    serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace},
        "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": ports}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_the_cluster_are_forwarded() {
        let i = Informers::new();
        assert_eq!(lookup(&i, "example.org.", RecordType::A), Lookup::Forward);
        assert_eq!(lookup(&i, "notcluster.local.", RecordType::A), Lookup::Forward);
        assert_eq!(lookup(&i, "nope.default.svc.cluster.local.", RecordType::A), Lookup::NxDomain);
        assert_eq!(
            lookup(&i, "10-1-2-3.default.pod.cluster.local.", RecordType::A),
            Lookup::Records(vec![RData::A(Ipv4Addr::new(10, 1, 2, 3).into())])
        );
        assert_eq!(listen_addr("10.42.0.0/16"), Some("10.42.0.1:53".parse().unwrap()));
    }
}
