//! Bridges and veth pairs through netlink, for real, inside network namespaces the test makes
//! (the host's own namespace is never touched). Needs root.

use std::net::Ipv4Addr;
use std::process::Command;

use net::link::{self, Attachment};
use net::netns;

/// Run `f` on a thread in a fresh network namespace of its own (a stand-in for the host), which
/// goes away with everything in it when the thread ends.
fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): run as root");
        f()
    })
    .join()
    .expect("test thread")
}

/// Unbinds namespace files however the test ends, so no mount outlives it.
struct Unbind(Vec<std::path::PathBuf>);

impl Drop for Unbind {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = netns::remove(p);
        }
    }
}

fn ping_from(ns: &std::path::Path, ip: &str) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["busybox", "ping", "-c", "1", "-W", "2", ip])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn containers_on_one_bridge_reach_each_other_and_nothing_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a2, b2) = (a.clone(), b.clone());
    let _unbind = Unbind(vec![a.clone(), b.clone()]);
    in_fresh_netns(move || {
        let gw: ipnet::Ipv4Net = "10.99.0.1/24".parse().unwrap();
        assert!(link::ensure_bridge("br-test", gw, None).unwrap(), "made now");
        assert!(!link::ensure_bridge("br-test", gw, None).unwrap(), "already there");
        for (ns, ip, veth) in [(&a2, "10.99.0.2", "vethtesta"), (&b2, "10.99.0.3", "vethtestb")] {
            netns::create(ns).unwrap();
            assert!(netns::exists(ns));
            let addr: Ipv4Addr = ip.parse().unwrap();
            link::attach(
                ns,
                &Attachment {
                    bridge: "br-test".into(),
                    host_if: veth.into(),
                    ifname: "eth0".into(),
                    addr: ipnet::Ipv4Net::new(addr, 24).unwrap(),
                    gateway: Some(gw.addr()),
                    extra: vec!["169.254.8.8/16".parse().unwrap()],
                    mac: link::mac_for(addr),
                    mtu: None,
                },
            )
            .unwrap();
            assert!(link::exists(veth).unwrap());
        }
        // Container to container across the bridge, and to the gateway.
        assert!(ping_from(&a2, "10.99.0.3"));
        assert!(ping_from(&b2, "10.99.0.2"));
        assert!(ping_from(&a2, "10.99.0.1"));
        // The container end is eth0 with Docker's MAC; the default route goes via the gateway.
        let show = Command::new("nsenter")
            .arg(format!("--net={}", a2.display()))
            .args(["ip", "-o", "link", "show", "eth0"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&show.stdout).contains("02:42:0a:63:00:02"), "{show:?}");
        let route = Command::new("nsenter")
            .arg(format!("--net={}", a2.display()))
            .args(["ip", "route", "show", "default"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&route.stdout).contains("via 10.99.0.1 dev eth0"),
            "{route:?}"
        );
        // Detaching removes both ends; removing the namespace file releases it.
        link::remove("vethtesta").unwrap();
        assert!(!link::exists("vethtesta").unwrap());
        assert!(!ping_from(&b2, "10.99.0.2"));
        link::remove("vethtesta").unwrap();
        for ns in [&a2, &b2] {
            netns::remove(ns).unwrap();
            assert!(!ns.exists());
        }
        link::remove("vethtestb").unwrap();
        link::remove("br-test").unwrap();
        assert!(!link::exists("br-test").unwrap());
    });
    assert!(!a.exists() && !b.exists());
}

#[test]
fn a_failed_attach_leaves_no_interface() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path().join("c");
    let _unbind = Unbind(vec![ns.clone()]);
    in_fresh_netns(move || {
        netns::create(&ns).unwrap();
        let addr: Ipv4Addr = "10.98.0.2".parse().unwrap();
        let a = Attachment {
            bridge: "br-missing".into(),
            host_if: "vethtestc".into(),
            ifname: "eth0".into(),
            addr: ipnet::Ipv4Net::new(addr, 24).unwrap(),
            gateway: None,
            mac: link::mac_for(addr),
            mtu: None,
            extra: Vec::new(),
        };
        let e = link::attach(&ns, &a).unwrap_err();
        assert!(e.to_string().contains("bridge br-missing does not exist"), "{e}");
        assert!(!link::exists("vethtestc").unwrap());
        netns::remove(&ns).unwrap();
    });
}

fn nft_list() -> String {
    String::from_utf8_lossy(&Command::new("nft").args(["list", "ruleset"]).output().unwrap().stdout).into_owned()
}

#[test]
fn rules_are_one_table_replaced_and_removed_whole() {
    in_fresh_netns(|| {
        let r = net::rules::BridgeRules {
            bridge: "br-test".into(),
            subnet: "10.97.0.0/24".parse().unwrap(),
            masquerade: true,
            internal: false,
            others: vec![],
            ports: vec![],
        };
        net::rules::apply(&r).unwrap();
        net::rules::apply(&r).unwrap();
        let set = nft_list();
        assert_eq!(set.matches("table ip berth-br-test").count(), 1, "{set}");
        assert!(set.contains("ip saddr 10.97.0.0/24 oifname != \"br-test\" masquerade"), "{set}");
        net::rules::apply(&net::rules::BridgeRules { masquerade: false, ..r }).unwrap();
        assert!(!nft_list().contains("masquerade"));
        net::rules::remove("br-test").unwrap();
        net::rules::remove("br-test").unwrap();
        assert!(!nft_list().contains("berth-br-test"));
    });
}
