//! Container DNS: the resolver each container on a user-defined network reaches at
//! `127.0.0.11:53`, as Docker's embedded one. Its socket is bound inside the container's own
//! network namespace and served by the daemon. Names of the containers on the networks the
//! asker is on (their names, short IDs and aliases) answer with their addresses, several in
//! turn; anything else goes to the upstream resolvers.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

use crate::{Error, Result};

/// The address containers ask, Docker's.
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// One name a network answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The container the name belongs to.
    pub owner: String,
    pub addr: Ipv4Addr,
}

/// What the resolver knows: per network, names and their addresses; per container, the
/// networks it is on (the ones whose names it may resolve).
#[derive(Debug, Default)]
pub struct Table {
    names: BTreeMap<String, BTreeMap<String, Vec<Entry>>>,
    networks_of: BTreeMap<String, Vec<String>>,
    /// Per container: its links on user-defined networks, (network, alias, target name). The
    /// alias answers for that container only, with the target's addresses when it exists.
    links: BTreeMap<String, Vec<(String, String, String)>>,
}

/// The shared table the engine writes and the resolvers read.
pub type Names = Arc<RwLock<Table>>;

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Table {
    /// Container `owner` is on `network` at `addr`, known by `names`.
    pub fn add(&mut self, network: &str, owner: &str, addr: Ipv4Addr, names: &[String]) {
        let net = self.names.entry(network.to_string()).or_default();
        for n in names.iter().filter(|n| !n.is_empty()) {
            let e = net.entry(key(n)).or_default();
            if !e.iter().any(|x| x.owner == owner) {
                e.push(Entry {
                    owner: owner.to_string(),
                    addr,
                });
            }
        }
        let nets = self.networks_of.entry(owner.to_string()).or_default();
        if !nets.iter().any(|n| n == network) {
            nets.push(network.to_string());
        }
    }

    /// Container `owner` links `target` as `alias` on `network` (Docker's `--link` on a
    /// user-defined network: a name only `owner` resolves, looked up when it asks).
    pub fn link(&mut self, network: &str, owner: &str, target: &str, alias: &str) {
        let l = self.links.entry(owner.to_string()).or_default();
        let entry = (network.to_string(), key(alias), key(target));
        if !l.contains(&entry) {
            l.push(entry);
        }
    }

    /// Container `owner` left `network`.
    pub fn remove(&mut self, network: &str, owner: &str) {
        if let Some(l) = self.links.get_mut(owner) {
            l.retain(|(n, _, _)| n != network);
            if l.is_empty() {
                self.links.remove(owner);
            }
        }
        if let Some(net) = self.names.get_mut(network) {
            for entries in net.values_mut() {
                entries.retain(|e| e.owner != owner);
            }
            net.retain(|_, e| !e.is_empty());
        }
        if let Some(nets) = self.networks_of.get_mut(owner) {
            nets.retain(|n| n != network);
            if nets.is_empty() {
                self.networks_of.remove(owner);
            }
        }
    }

    /// The addresses `name` has for `asker`, on the networks it is on.
    pub fn lookup(&self, asker: &str, name: &str) -> Vec<Ipv4Addr> {
        let k = key(name);
        let mut out = Vec::new();
        for (net, alias, target) in self.links.get(asker).into_iter().flatten() {
            if *alias == k {
                for e in self.names.get(net).and_then(|n| n.get(target)).into_iter().flatten() {
                    if !out.contains(&e.addr) {
                        out.push(e.addr);
                    }
                }
            }
        }
        if !out.is_empty() {
            return out;
        }
        for net in self.networks_of.get(asker).into_iter().flatten() {
            for e in self.names.get(net).and_then(|n| n.get(&k)).into_iter().flatten() {
                if !out.contains(&e.addr) {
                    out.push(e.addr);
                }
            }
        }
        out
    }
}

/// Bind the resolver's socket inside the namespace at `ns` (its loopback must be up).
pub fn bind_in(ns: &Path) -> Result<UdpSocket> {
    let f = std::fs::File::open(ns).map_err(|e| Error::Io {
        op: "open",
        target: ns.display().to_string(),
        source: e,
    })?;
    let p = ns.to_path_buf();
    std::thread::spawn(move || -> Result<UdpSocket> {
        use std::os::fd::AsFd;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| Error::Sys {
            op: "join the network namespace",
            target: p.display().to_string(),
            source: e,
        })?;
        let s = UdpSocket::bind((RESOLVER, 53)).map_err(|e| Error::Io {
            op: "bind",
            target: format!("{RESOLVER}:53 in {}", p.display()),
            source: e,
        })?;
        s.set_nonblocking(true).map_err(|e| Error::Io {
            op: "set non-blocking",
            target: "the resolver's socket".into(),
            source: e,
        })?;
        Ok(s)
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Other("the resolver thread panicked".into())))
}

/// Answer one query: a name of the asker's networks (A; other types of such a name answer
/// nothing, as Docker's does), or the upstreams' answer; `None` when the query is unreadable.
pub async fn answer(query: &[u8], asker: &str, names: &Names, upstream: &[SocketAddr], turn: usize) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let found = names.read().unwrap().lookup(asker, &question.name().to_ascii());
    if !found.is_empty() {
        let mut r = Message::response(q.metadata.id, q.metadata.op_code);
        r.metadata.recursion_desired = q.metadata.recursion_desired;
        r.metadata.recursion_available = true;
        r.metadata.authoritative = true;
        r.add_query(question.clone());
        if question.query_type() == RecordType::A {
            // Round robin: each answer starts one further along.
            let n = found.len();
            for i in 0..n {
                let a = found[(turn + i) % n];
                r.add_answer(Record::from_rdata(question.name().clone(), 600, RData::A(a.into())));
            }
        }
        return r.to_vec().ok();
    }
    for up in upstream {
        if let Some(reply) = forward(query, *up).await {
            return Some(reply);
        }
    }
    let mut r = Message::error_msg(q.metadata.id, q.metadata.op_code, ResponseCode::ServFail);
    r.metadata.message_type = MessageType::Response;
    r.add_query(question);
    r.to_vec().ok()
}

/// Ask one upstream resolver (UDP, 2 s).
pub async fn forward(query: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
    let local: SocketAddr = if up.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = tokio::net::UdpSocket::bind(local).await.ok()?;
    s.send_to(query, up).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), s.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    (from == up).then(|| buf[..n].to_vec())
}

/// Serve the resolver for container `asker` on `sock` until the task is aborted.
pub async fn serve(sock: UdpSocket, asker: String, names: Names, upstream: Arc<Vec<SocketAddr>>) {
    let Ok(sock) = tokio::net::UdpSocket::from_std(sock) else { return };
    let sock = Arc::new(sock);
    let mut turn = 0usize;
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else { continue };
        let query = buf[..n].to_vec();
        turn = turn.wrapping_add(1);
        let (sock, asker, names, upstream) = (sock.clone(), asker.clone(), names.clone(), upstream.clone());
        tokio::spawn(async move {
            if let Some(reply) = answer(&query, &asker, &names, &upstream, turn).await {
                let _ = sock.send_to(&reply, from).await;
            }
        });
    }
}

/// The upstream resolvers of a `resolv.conf` (port 53).
pub fn upstreams_of(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii(name).unwrap(),
            t,
        ));
        m.to_vec().unwrap()
    }

    fn addrs(reply: &[u8]) -> Vec<Ipv4Addr> {
        Message::from_vec(reply)
            .unwrap()
            .answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn names_of_shared_networks_answer_in_turn() {
        let names: Names = Default::default();
        {
            let mut t = names.write().unwrap();
            t.add("front", "web1", "10.0.0.2".parse().unwrap(), &["web1".into(), "web".into()]);
            t.add("front", "web2", "10.0.0.3".parse().unwrap(), &["web2".into(), "web".into()]);
            t.add("back", "db", "10.1.0.2".parse().unwrap(), &["db".into()]);
            t.add("front", "client", "10.0.0.4".parse().unwrap(), &["client".into()]);
        }
        let one = answer(&query("web.", RecordType::A), "client", &names, &[], 0).await.unwrap();
        let two = answer(&query("WEB", RecordType::A), "client", &names, &[], 1).await.unwrap();
        assert_eq!(addrs(&one).len(), 2);
        assert_ne!(addrs(&one)[0], addrs(&two)[0], "round robin");
        // A name on a network the asker is not on is not known; with no upstream: SERVFAIL.
        let db = answer(&query("db", RecordType::A), "client", &names, &[], 0).await.unwrap();
        assert!(addrs(&db).is_empty());
        assert_eq!(Message::from_vec(&db).unwrap().metadata.response_code, ResponseCode::ServFail);
        names.write().unwrap().remove("front", "web1");
        let after = answer(&query("web", RecordType::A), "client", &names, &[], 0).await.unwrap();
        assert_eq!(addrs(&after), vec!["10.0.0.3".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(
            upstreams_of("# x\nnameserver 10.9.9.9\nnameserver ::1\nsearch a"),
            vec!["10.9.9.9:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
