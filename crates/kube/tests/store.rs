//! The store conformance suite: the behaviour the API server relies on, run against every
//! implementation of `kube::store::Store` (redb here; etcd joins with the same suite).

use std::sync::Arc;
use std::time::Duration;

use kube::store::redb::RedbStore;
use kube::store::{Error, EventKind, ListOptions, Store};

async fn next(w: &mut kube::store::Watch) -> kube::store::Event {
    tokio::time::timeout(Duration::from_secs(5), w.recv())
        .await
        .expect("an event within 5 s")
        .expect("the watch is open")
        .expect("no error")
}

/// Every check, on a store that starts empty.
async fn conformance(s: Arc<dyn Store>) {
    let r0 = s.revision().await.unwrap();

    // Create, get, conflicts.
    let a = s.create("/registry/pods/default/a", b"a1".to_vec()).await.unwrap();
    assert_eq!(a.mod_revision, r0 + 1);
    assert_eq!(a.create_revision, a.mod_revision);
    assert_eq!(s.revision().await.unwrap(), a.mod_revision);
    assert_eq!(
        s.create("/registry/pods/default/a", b"again".to_vec()).await.unwrap_err(),
        Error::AlreadyExists("/registry/pods/default/a".into())
    );
    assert_eq!(s.get("/registry/pods/default/a", None).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get("/registry/pods/default/nope", None).await.unwrap(), None);

    // Update compared on the revision read; 0 is unconditional.
    let a2 = s.update("/registry/pods/default/a", b"a2".to_vec(), a.mod_revision).await.unwrap();
    assert_eq!((a2.create_revision, a2.mod_revision), (a.mod_revision, a.mod_revision + 1));
    let stale = s
        .update("/registry/pods/default/a", b"x".to_vec(), a.mod_revision)
        .await
        .unwrap_err();
    assert_eq!(
        stale,
        Error::Conflict {
            key: "/registry/pods/default/a".into(),
            expected: a.mod_revision,
            actual: a2.mod_revision
        }
    );
    assert!(matches!(
        s.update("/registry/pods/default/nope", b"x".to_vec(), 0).await,
        Err(Error::NotFound(_))
    ));
    let a3 = s.update("/registry/pods/default/a", b"a3".to_vec(), 0).await.unwrap();

    // More keys; lists in key order, by prefix only (not /registry/pods/default2).
    let b = s.create("/registry/pods/default/b", b"b1".to_vec()).await.unwrap();
    let c = s.create("/registry/pods/default/c", b"c1".to_vec()).await.unwrap();
    s.create("/registry/pods/default2/x", b"other".to_vec()).await.unwrap();
    s.create("/registry/configmaps/default/k", b"cm".to_vec()).await.unwrap();
    let page = s.list("/registry/pods/default/", ListOptions::default()).await.unwrap();
    let keys: Vec<&str> = page.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        ["/registry/pods/default/a", "/registry/pods/default/b", "/registry/pods/default/c"]
    );
    assert_eq!(page.revision, s.revision().await.unwrap());
    assert!(!page.more);

    // Pages: limit and start_after, at one revision.
    let p1 = s
        .list(
            "/registry/pods/",
            ListOptions {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 2);
    assert!(p1.more);
    let p2 = s
        .list(
            "/registry/pods/",
            ListOptions {
                limit: 2,
                start_after: Some(p1.items[1].key.clone()),
                revision: Some(p1.revision),
            },
        )
        .await
        .unwrap();
    let keys: Vec<&str> = p2.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/registry/pods/default/c", "/registry/pods/default2/x"]);
    assert!(!p2.more);

    // Reads at a revision see the past.
    let at_a2 = s.get("/registry/pods/default/a", Some(a2.mod_revision)).await.unwrap().unwrap();
    assert_eq!(at_a2.value, b"a2");
    assert_eq!(s.get("/registry/pods/default/b", Some(a3.mod_revision)).await.unwrap(), None);
    let old = s
        .list(
            "/registry/pods/default/",
            ListOptions {
                revision: Some(b.mod_revision),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let vals: Vec<&[u8]> = old.items.iter().map(|kv| kv.value.as_slice()).collect();
    assert_eq!(vals, [b"a3".as_slice(), b"b1".as_slice()]);
    let now = s.revision().await.unwrap();
    assert!(matches!(s.get("/x", Some(now + 10)).await, Err(Error::FutureRevision { .. })));

    // Delete: compared like update; gives the last value at the delete's revision.
    assert!(matches!(
        s.delete("/registry/pods/default/c", c.mod_revision + 100).await,
        Err(Error::Conflict { .. })
    ));
    let gone = s.delete("/registry/pods/default/c", c.mod_revision).await.unwrap();
    assert_eq!((gone.value.as_slice(), gone.create_revision), (b"c1".as_slice(), c.create_revision));
    assert_eq!(gone.mod_revision, now + 1);
    assert_eq!(s.get("/registry/pods/default/c", None).await.unwrap(), None);
    assert!(matches!(s.delete("/registry/pods/default/c", 0).await, Err(Error::NotFound(_))));
    // Created again, it starts a new life.
    let c2 = s.create("/registry/pods/default/c", b"c2".to_vec()).await.unwrap();
    assert_eq!(c2.create_revision, c2.mod_revision);

    // Watch from a revision: history first (with previous values), then live; prefix only.
    let mut w = s.watch("/registry/pods/default/", a.mod_revision).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!(
        (e.kind, e.kv.value.as_slice(), e.kv.mod_revision),
        (EventKind::Put, b"a2".as_slice(), a2.mod_revision)
    );
    assert_eq!(e.prev.as_ref().map(|p| p.value.as_slice()), Some(b"a1".as_slice()));
    let mut seen = vec![e.kv.mod_revision];
    loop {
        let e = next(&mut w).await;
        seen.push(e.kv.mod_revision);
        if e.kv.mod_revision == c2.mod_revision {
            break;
        }
        if e.kind == EventKind::Delete {
            assert_eq!(e.kv.key, "/registry/pods/default/c");
            assert_eq!(e.prev.as_ref().map(|p| p.value.as_slice()), Some(b"c1".as_slice()));
        }
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in revision order: {seen:?}");
    assert_eq!(seen.len(), 6, "a2 a3 b c delete-c c2: {seen:?}");
    let live = s.update("/registry/pods/default/b", b"b2".to_vec(), 0).await.unwrap();
    s.update("/registry/configmaps/default/k", b"cm2".to_vec(), 0).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!(
        (e.kv.key.as_str(), e.kv.mod_revision),
        ("/registry/pods/default/b", live.mod_revision)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), w.recv()).await.is_err(),
        "other prefixes are not sent"
    );

    // Many watchers, many writes: each sees every event once, in order.
    let mut watchers = Vec::new();
    let start = s.revision().await.unwrap();
    for _ in 0..20 {
        watchers.push(s.watch("/registry/leases/", start).await.unwrap());
    }
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    s.create(&format!("/registry/leases/t{t}-{i}"), vec![i as u8]).await.unwrap();
                }
            })
        })
        .collect();
    for h in writers {
        h.await.unwrap();
    }
    for w in &mut watchers {
        let mut last = start;
        for _ in 0..200 {
            let e = next(w).await;
            assert!(e.kv.mod_revision > last);
            last = e.kv.mod_revision;
        }
    }

    // Compaction: history before the revision is gone (reads and watches say so), state at
    // and after it is kept.
    let b3 = s.update("/registry/pods/default/b", b"b3".to_vec(), 0).await.unwrap();
    s.compact(b3.mod_revision).await.unwrap();
    assert_eq!(s.compacted().await.unwrap(), b3.mod_revision);
    assert!(matches!(
        s.get("/registry/pods/default/a", Some(a2.mod_revision)).await,
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(
        s.list(
            "/registry/pods/",
            ListOptions {
                revision: Some(a2.mod_revision),
                ..Default::default()
            }
        )
        .await,
        Err(Error::Compacted { .. })
    ));
    assert!(matches!(
        s.watch("/registry/pods/", a2.mod_revision).await,
        Err(Error::Compacted { .. })
    ));
    // The compacted revision itself is kept: a watch from just before it sees it.
    let mut from_compacted = s.watch("/registry/pods/", b3.mod_revision - 1).await.unwrap();
    assert_eq!(next(&mut from_compacted).await.kv.mod_revision, b3.mod_revision);
    assert_eq!(
        s.get("/registry/pods/default/a", Some(b3.mod_revision))
            .await
            .unwrap()
            .unwrap()
            .value,
        b"a3"
    );
    let page = s.list("/registry/pods/default/", ListOptions::default()).await.unwrap();
    let vals: Vec<&[u8]> = page.items.iter().map(|kv| kv.value.as_slice()).collect();
    assert_eq!(vals, [b"a3".as_slice(), b"b3".as_slice(), b"c2".as_slice()]);
    let mut w = s.watch("/registry/pods/", b3.mod_revision).await.unwrap();
    let b4 = s.update("/registry/pods/default/b", b"b4".to_vec(), b3.mod_revision).await.unwrap();
    assert_eq!(next(&mut w).await.kv.mod_revision, b4.mod_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::open(&dir.path().join("store.redb")).unwrap();
    conformance(Arc::new(s)).await;
}

/// A real etcd (Debian's etcd-server) on loopback ports of its own, in a temporary directory;
/// killed when dropped.
struct Etcd {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    url: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_etcd() -> Etcd {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = std::process::Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
        .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcd (apt-get install etcd-server)");
    Etcd {
        child,
        _dir: dir,
        url: format!("etcd://127.0.0.1:{client}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_conforms() {
    let etcd = start_etcd();
    let mut store = None;
    for _ in 0..100 {
        if let Ok(s) = kube::store::etcd::EtcdStore::connect(&etcd.url).await {
            store = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conformance(Arc::new(store.expect("etcd answers within 10 s"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_keeps_everything_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let (rev, kv) = {
        let s = RedbStore::open(&path).unwrap();
        let kv = s.create("/registry/namespaces/default", b"ns".to_vec()).await.unwrap();
        s.update("/registry/namespaces/default", b"ns2".to_vec(), kv.mod_revision)
            .await
            .unwrap();
        (s.revision().await.unwrap(), kv)
    };
    let s = RedbStore::open(&path).unwrap();
    assert_eq!(s.revision().await.unwrap(), rev);
    assert_eq!(s.get("/registry/namespaces/default", None).await.unwrap().unwrap().value, b"ns2");
    assert_eq!(
        s.get("/registry/namespaces/default", Some(kv.mod_revision))
            .await
            .unwrap()
            .unwrap()
            .value,
        b"ns"
    );
    let next = s.create("/registry/namespaces/kube-system", b"ks".to_vec()).await.unwrap();
    assert_eq!(next.mod_revision, rev + 1);
}
