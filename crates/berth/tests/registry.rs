//! Berth's registry server (`berth registry serve`, and `berth daemon --registry`) on loopback,
//! driven by Debian's skopeo: push and pull of an OCI layout written by the test, inspect, list-tags
//! and delete; anonymous, htpasswd basic auth, the bearer token flow with per-user rules, and TLS
//! with a self-signed certificate.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{errtext, run_timeout, text, BERTH};
use sha2::Digest as _;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16, what: &str, log: &Path) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{what} did not start; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `berth registry serve` on a free loopback port and a temporary root; stopped and removed on drop.
struct Reg {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl Reg {
    fn start(extra: &[&str]) -> Reg {
        let dir = tempfile::Builder::new().prefix("breg").tempdir_in("/tmp").unwrap();
        let port = free_port();
        let log = dir.path().join("registry.log");
        let child = Command::new(BERTH)
            .args(["registry", "serve", "--log-level", "info,registry=debug", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start berth registry serve");
        let r = Reg {
            dir,
            child: Some(child),
            port,
        };
        wait_port(port, "berth registry", &log);
        r
    }

    fn image(&self, repo: &str) -> String {
        format!("docker://127.0.0.1:{}/{repo}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn skopeo(&self, args: &[&str]) -> Output {
        skopeo(self.dir.path(), args)
    }

    /// `skopeo copy` with digests preserved (the test compares them), `flags` before the references.
    fn copy(&self, flags: &[&str], src: &str, dest: &str) -> Output {
        let mut args = vec!["--insecure-policy", "copy", "-q", "--preserve-digests"];
        args.extend_from_slice(flags);
        args.extend([src, dest]);
        self.skopeo(&args)
    }

    fn copy_ok(&self, flags: &[&str], src: &str, dest: &str) {
        let o = self.copy(flags, src, dest);
        assert!(
            o.status.success(),
            "skopeo copy {flags:?} {src} {dest} failed: {}\nregistry log:\n{}",
            errtext(&o),
            self.log()
        );
    }

    /// skopeo, required to succeed (the registry's log helps when it does not).
    fn skopeo_ok(&self, args: &[&str]) -> String {
        let o = self.skopeo(args);
        assert!(
            o.status.success(),
            "skopeo {args:?} failed: {}\n{}\nregistry log:\n{}",
            errtext(&o),
            text(&o),
            self.log()
        );
        text(&o)
    }
}

impl Drop for Reg {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            common::stop(c);
        }
    }
}

/// skopeo with no ambient credentials.
fn skopeo(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("skopeo");
    c.env("REGISTRY_AUTH_FILE", dir.join("auth.json")).args(args);
    run_timeout(c, None, 120)
}

fn skopeo_ok(dir: &Path, args: &[&str]) -> String {
    let o = skopeo(dir, args);
    assert!(o.status.success(), "skopeo {args:?} failed: {}\n{}", errtext(&o), text(&o));
    text(&o)
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// An OCI image layout: one image (a gzip layer, a plain layer, a config) tagged `tag`.
struct Layout {
    manifest: String,
    blobs: BTreeSet<String>,
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn make_layout(dir: &Path, tag: &str, seed: &str) -> Layout {
    let blobs_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let d = sha256(data);
        std::fs::write(blobs_dir.join(d.trim_start_matches("sha256:")), data).unwrap();
        (d, data.len())
    };
    // Two gzip layers (registries get compressed layers: skopeo would compress plain ones, changing
    // the manifest), the first big enough to be sent in several pieces.
    let gzip = |data: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    };
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let tar1 = tar_of(&[("data/big.bin", &big), ("data/seed", seed.as_bytes())]);
    let tar2 = tar_of(&[("etc/hello", format!("hello {seed}\n").as_bytes())]);
    let (l1, n1) = put(&gzip(&tar1));
    let (l2, n2) = put(&gzip(&tar2));
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&tar1), sha256(&tar2)]},
    })
    .to_string();
    let (c, cn) = put(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": cn},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l1, "size": n1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l2, "size": n2},
        ],
    })
    .to_string();
    let (m, mn) = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": mn,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    Layout {
        manifest: m,
        blobs: [l1, l2, c].into_iter().collect(),
    }
}

/// What an OCI layout holds: the manifest digest tagged `tag`, and every blob but that manifest.
fn read_layout(dir: &Path, tag: &str) -> Layout {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"));
    let manifest = m["digest"].as_str().unwrap().to_string();
    let mut blobs = BTreeSet::new();
    for e in std::fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let data = std::fs::read(e.path()).unwrap();
        let d = sha256(&data);
        assert_eq!(d, format!("sha256:{}", e.file_name().to_string_lossy()), "corrupt blob");
        if d != manifest {
            blobs.insert(d);
        }
    }
    Layout { manifest, blobs }
}

/// A raw HTTP/1.1 request to the registry: status, headers (lowercased), body.
fn http(port: u16, method: &str, path: &str, auth: Option<&str>) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    // A server that hangs up first (TLS on the port) may make the write fail: no response then.
    let _ = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\nContent-Length: 0\r\n\r\n"
    );
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, head.to_ascii_lowercase(), body.to_string())
}

fn htpasswd_file(path: &Path, users: &[(&str, &str)]) {
    let mut lines = String::new();
    for (u, p) in users {
        let o = Command::new("htpasswd")
            .args(["-Bbn", u, p])
            .output()
            .expect("htpasswd (apache2-utils)");
        assert!(o.status.success(), "{}", errtext(&o));
        lines.push_str(String::from_utf8_lossy(&o.stdout).trim());
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

/// No upload left half-done in the content store.
fn assert_no_partial_uploads(root: &Path) {
    let ingest = root.join("blobs/ingest");
    let left: Vec<_> = std::fs::read_dir(&ingest)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", ingest.display());
}

#[test]
fn skopeo_push_pull_anonymous() {
    let r = Reg::start(&[]);
    let src = r.path("src");
    let layout = make_layout(&src, "v1", "one");
    let src_ref = format!("oci:{}:v1", src.display());
    let dest = format!("{}:v1", r.image("lib/app"));
    r.copy_ok(&["--dest-tls-verify=false"], &src_ref, &dest);

    // inspect: the digest is the manifest's, byte for byte.
    let out = r.skopeo_ok(&["inspect", "--tls-verify=false", &dest]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], layout.manifest);
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    let raw = r.skopeo_ok(&["inspect", "--raw", "--tls-verify=false", &dest]);
    assert_eq!(sha256(raw.as_bytes()), layout.manifest);
    let cfg = r.skopeo_ok(&["inspect", "--config", "--raw", "--tls-verify=false", &dest]);
    assert!(cfg.contains("\"diff_ids\""), "{cfg}");

    // A second tag, and the same image in another repository (its blobs are already here).
    r.copy_ok(&["--dest-tls-verify=false"], &src_ref, &format!("{}:v2", r.image("lib/app")));
    r.copy_ok(&["--dest-tls-verify=false"], &src_ref, &format!("{}:latest", r.image("other")));
    let tags = r.skopeo_ok(&["list-tags", "--tls-verify=false", &r.image("lib/app")]);
    let v: serde_json::Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(v["Tags"], serde_json::json!(["v1", "v2"]));
    let (code, _, body) = http(r.port, "GET", "/v2/_catalog", None);
    assert_eq!(code, 200);
    assert_eq!(body, r#"{"repositories":["lib/app","other"]}"#);
    let (code, head, _) = http(r.port, "GET", "/v2/lib/app/tags/list?n=1", None);
    assert_eq!(code, 200);
    assert!(head.contains("link: </v2/lib/app/tags/list?n=1&last=v1>; rel=\"next\""), "{head}");

    // Back into a fresh layout: the same manifest and blobs.
    let out_dir = r.path("out");
    r.copy_ok(&["--src-tls-verify=false"], &dest, &format!("oci:{}:v1", out_dir.display()));
    let back = read_layout(&out_dir, "v1");
    assert_eq!(back.manifest, layout.manifest);
    assert_eq!(back.blobs, layout.blobs);

    // Traversal attempts are refused before touching storage.
    for path in [
        "/v2/%2e%2e/%2e%2e/tags/list",
        "/v2/../../etc/manifests/latest",
        "/v2/a/..%2F..%2Fb/blobs/uploads/",
    ] {
        let method = if path.ends_with("uploads/") { "POST" } else { "GET" };
        let (code, _, body) = http(r.port, method, path, None);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.contains("NAME_INVALID"), "{body}");
    }

    // Delete by digest (what skopeo does): every tag of it goes.
    r.skopeo_ok(&["delete", "--tls-verify=false", &dest]);
    let o = r.skopeo(&["inspect", "--tls-verify=false", &dest]);
    assert!(!o.status.success());
    let o = r.skopeo(&["inspect", "--tls-verify=false", &format!("{}:v2", r.image("lib/app"))]);
    assert!(!o.status.success());
    r.skopeo_ok(&["inspect", "--tls-verify=false", &format!("{}:latest", r.image("other"))]);
    assert_no_partial_uploads(&r.path("root"));
}

/// Send a request announcing `declared` body bytes, send only `body`, and hang up.
fn send_truncated(port: u16, method: &str, path: &str, declared: usize, body: &[u8]) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {declared}\r\n\r\n"
    )
    .unwrap();
    s.write_all(body).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
}

fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {head}"))
        .trim()
}

#[test]
fn interrupted_uploads() {
    let r = Reg::start(&[]);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let digest = sha256(&data);
    // A monolithic upload cut short: nothing stored, nothing left behind.
    send_truncated(
        r.port,
        "POST",
        &format!("/v2/cut/blobs/uploads/?digest={digest}"),
        data.len(),
        &data[..40_000],
    );
    let t0 = Instant::now();
    while std::fs::read_dir(r.path("root/blobs/ingest")).map(|d| d.count()).unwrap_or(0) > 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "partial upload left behind");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, _, _) = http(r.port, "HEAD", &format!("/v2/cut/blobs/{digest}"), None);
    assert_eq!(code, 404);
    // A chunk cut short: the session keeps what arrived, and the upload resumes from there.
    let (code, head, _) = http(r.port, "POST", "/v2/cut/blobs/uploads/", None);
    assert_eq!(code, 202);
    let loc = header(&head, "location").to_string();
    send_truncated(r.port, "PATCH", &loc, data.len(), &data[..40_000]);
    let mut offset = 0;
    let t0 = Instant::now();
    while offset != 40_000 {
        assert!(t0.elapsed() < Duration::from_secs(10), "upload offset stuck at {offset}");
        let (code, head, _) = http(r.port, "GET", &loc, None);
        assert_eq!(code, 204);
        offset = header(&head, "range").trim_start_matches("0-").parse::<usize>().unwrap() + 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    write!(
        s,
        "PUT {loc}?digest={digest} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Range: 40000-{}\r\nContent-Length: {}\r\n\r\n",
        data.len() - 1,
        data.len() - 40_000
    )
    .unwrap();
    s.write_all(&data[40_000..]).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let (code, head, _) = http(r.port, "HEAD", &format!("/v2/cut/blobs/{digest}"), None);
    assert_eq!(code, 200);
    assert_eq!(header(&head, "content-length"), data.len().to_string());
    assert_no_partial_uploads(&r.path("root"));
}

#[test]
fn htpasswd_basic_auth() {
    let r0 = tempfile::tempdir().unwrap();
    let users = r0.path().join("htpasswd");
    htpasswd_file(&users, &[("alice", "secret")]);
    let r = Reg::start(&["--htpasswd", users.to_str().unwrap()]);
    let src = r.path("src");
    let layout = make_layout(&src, "v1", "auth");
    let src_ref = format!("oci:{}:v1", src.display());
    let dest = format!("{}:v1", r.image("private/app"));
    let o = r.copy(&["--dest-tls-verify=false"], &src_ref, &dest);
    assert!(!o.status.success(), "anonymous push succeeded");
    assert!(errtext(&o).contains("unauthorized"), "{}", errtext(&o));
    let o = r.copy(&["--dest-tls-verify=false", "--dest-creds", "alice:wrong"], &src_ref, &dest);
    assert!(!o.status.success(), "push with a wrong password succeeded");
    r.copy_ok(&["--dest-tls-verify=false", "--dest-creds", "alice:secret"], &src_ref, &dest);
    let out = r.skopeo_ok(&["inspect", "--tls-verify=false", "--creds", "alice:secret", &dest]);
    assert!(out.contains(&layout.manifest), "{out}");
    assert!(!r.skopeo(&["inspect", "--tls-verify=false", &dest]).status.success());
    // The catalog needs credentials too; the challenge is basic.
    let (code, head, body) = http(r.port, "GET", "/v2/_catalog", None);
    assert_eq!(code, 401, "{body}");
    assert!(head.contains("www-authenticate: basic realm=\"berth registry\""), "{head}");
    assert!(body.contains("UNAUTHORIZED"), "{body}");
    let (code, _, body) = http(r.port, "GET", "/v2/_catalog", Some("Basic YWxpY2U6c2VjcmV0"));
    assert_eq!((code, body.as_str()), (200, r#"{"repositories":["private/app"]}"#));
}

#[test]
fn anonymous_pull_next_to_users() {
    let r0 = tempfile::tempdir().unwrap();
    let users = r0.path().join("htpasswd");
    htpasswd_file(&users, &[("alice", "secret")]);
    let r = Reg::start(&["--htpasswd", users.to_str().unwrap(), "--anonymous", "pull"]);
    let src = r.path("src");
    make_layout(&src, "v1", "public");
    let src_ref = format!("oci:{}:v1", src.display());
    let dest = format!("{}:v1", r.image("public/app"));
    assert!(!r.copy(&["--dest-tls-verify=false"], &src_ref, &dest).status.success());
    r.copy_ok(&["--dest-tls-verify=false", "--dest-creds", "alice:secret"], &src_ref, &dest);
    r.skopeo_ok(&["inspect", "--tls-verify=false", &dest]);
    assert!(!r.skopeo(&["delete", "--tls-verify=false", &dest]).status.success());
}

#[test]
fn token_flow_with_rules() {
    let r0 = tempfile::tempdir().unwrap();
    let users = r0.path().join("htpasswd");
    htpasswd_file(&users, &[("alice", "secret"), ("bob", "builder")]);
    let rules = r0.path().join("rules");
    std::fs::write(&rules, "# who  where  what\nalice  *  pull,push,delete\nbob  *  pull\n").unwrap();
    let r = Reg::start(&[
        "--htpasswd",
        users.to_str().unwrap(),
        "--token",
        "--access-rules",
        rules.to_str().unwrap(),
    ]);
    let (code, head, _) = http(r.port, "GET", "/v2/", None);
    assert_eq!(code, 401);
    let realm = format!(
        "www-authenticate: bearer realm=\"http://127.0.0.1:{}/token\",service=\"berth-registry\"",
        r.port
    );
    assert!(head.contains(&realm), "{head}");
    let (code, head, _) = http(r.port, "POST", "/v2/team/app/blobs/uploads/", None);
    assert_eq!(code, 401);
    assert!(head.contains("scope=\"repository:team/app:pull,push\""), "{head}");

    let src = r.path("src");
    let layout = make_layout(&src, "v1", "token");
    let src_ref = format!("oci:{}:v1", src.display());
    let dest = format!("{}:v1", r.image("team/app"));
    // bob may only pull.
    let o = r.copy(&["--dest-tls-verify=false", "--dest-creds", "bob:builder"], &src_ref, &dest);
    assert!(!o.status.success(), "bob pushed");
    r.copy_ok(&["--dest-tls-verify=false", "--dest-creds", "alice:secret"], &src_ref, &dest);
    let out = r.skopeo_ok(&["inspect", "--tls-verify=false", "--creds", "bob:builder", &dest]);
    assert!(out.contains(&layout.manifest), "{out}");
    let tags = r.skopeo_ok(&["list-tags", "--tls-verify=false", "--creds", "bob:builder", &r.image("team/app")]);
    assert!(tags.contains("\"v1\""), "{tags}");
    assert!(!r.skopeo(&["inspect", "--tls-verify=false", &dest]).status.success());
    assert!(!r
        .skopeo(&["inspect", "--tls-verify=false", "--creds", "bob:wrong", &dest])
        .status
        .success());
    assert!(!r
        .skopeo(&["delete", "--tls-verify=false", "--creds", "bob:builder", &dest])
        .status
        .success());
    r.skopeo_ok(&["delete", "--tls-verify=false", "--creds", "alice:secret", &dest]);
    // The token endpoint itself.
    let (code, _, body) = http(
        r.port,
        "GET",
        "/token?service=berth-registry&scope=repository:team/app:pull,push",
        Some("Basic Ym9iOmJ1aWxkZXI="),
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["expires_in"], 300);
    assert_eq!(v["token"], v["access_token"]);
}

#[test]
fn tls_with_self_signed_certificate() {
    let r0 = tempfile::tempdir().unwrap();
    let cert = r0.path().join("cert.pem");
    let key = r0.path().join("key.pem");
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", errtext(&o));
    let certs = r0.path().join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&cert, certs.join("ca.crt")).unwrap();
    let users = r0.path().join("htpasswd");
    htpasswd_file(&users, &[("alice", "secret")]);
    let r = Reg::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--htpasswd",
        users.to_str().unwrap(),
        "--token",
    ]);
    let src = r.path("src");
    let layout = make_layout(&src, "v1", "tls");
    let src_ref = format!("oci:{}:v1", src.display());
    let dest = format!("{}:v1", r.image("secure/app"));
    let certs = certs.to_str().unwrap();
    // Without the certificate, the client refuses the server.
    let o = r.copy(&["--dest-creds", "alice:secret"], &src_ref, &dest);
    assert!(!o.status.success());
    assert!(errtext(&o).contains("certificate"), "{}", errtext(&o));
    // With it, push (tokens from https://127.0.0.1:PORT/token) and pull back.
    r.copy_ok(&["--dest-cert-dir", certs, "--dest-creds", "alice:secret"], &src_ref, &dest);
    let out_dir = r.path("out");
    let out_ref = format!("oci:{}:v1", out_dir.display());
    r.copy_ok(&["--src-cert-dir", certs, "--src-creds", "alice:secret"], &dest, &out_ref);
    let back = read_layout(&out_dir, "v1");
    assert_eq!((back.manifest, back.blobs), (layout.manifest, layout.blobs));
    // Plain HTTP on the TLS port gets nowhere.
    let (code, _, _) = http(r.port, "GET", "/v2/", None);
    assert_ne!(code, 200);
}

#[test]
fn refuses_unsafe_or_broken_configurations() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let serve = |args: &[&str]| {
        let mut c = Command::new(BERTH);
        c.args(["registry", "serve", "--root"]).arg(&root).args(args);
        run_timeout(c, None, 30)
    };
    // Open to anyone on a non-loopback address: refused before binding anything.
    let o = serve(&["--addr", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        errtext(&o).contains("refusing to serve a registry on 0.0.0.0:0 open to anyone"),
        "{}",
        errtext(&o)
    );
    let o = serve(&["--addr", "127.0.0.1:0", "--anonymous", "none"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(errtext(&o).contains("nobody could use this registry"), "{}", errtext(&o));
    // Hashes other than bcrypt.
    let md5 = t.path().join("md5");
    let o = Command::new("htpasswd").args(["-mbc"]).arg(&md5).args(["u", "p"]).output().unwrap();
    assert!(o.status.success());
    let o = serve(&["--addr", "127.0.0.1:0", "--htpasswd", md5.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(errtext(&o).contains("only bcrypt"), "{}", errtext(&o));
    // A certificate without its key; a key that is not one.
    let o = serve(&["--addr", "127.0.0.1:0", "--tls-cert", "/nonexistent"]);
    assert_ne!(o.status.code(), Some(0));
    std::fs::write(t.path().join("junk"), "junk").unwrap();
    let junk = t.path().join("junk");
    let o = serve(&[
        "--addr",
        "127.0.0.1:0",
        "--tls-cert",
        junk.to_str().unwrap(),
        "--tls-key",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(errtext(&o).contains("TLS"), "{}", errtext(&o));
    // Help explains the flags.
    let o = run_timeout(
        {
            let mut c = Command::new(BERTH);
            c.args(["registry", "serve", "--help"]);
            c
        },
        None,
        30,
    );
    let help = text(&o);
    for flag in [
        "--addr",
        "--root",
        "--htpasswd",
        "--anonymous",
        "--token",
        "--tls-cert",
        "--tls-key",
        "--access-rules",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn daemon_registry_shares_the_engine_store() {
    let port = free_port();
    let d = common::Daemon::start_with(&["--log-level", "info,registry=debug", "--registry", &format!("127.0.0.1:{port}")]);
    wait_port(port, "the daemon's registry", &d.dir.join("daemon.log"));
    d.busybox("bb");
    let image = format!("127.0.0.1:{port}/tools/bb:1");
    d.berth_ok(&["tag", "bb", &image]);
    d.berth_ok(&["push", "-q", &image]);
    // The engine's blobs were found in place: nothing was uploaded.
    let log = d.log();
    assert!(log.contains("manifest stored"), "{log}");
    assert!(!log.contains("upload started"), "{log}");
    let dir = tempfile::tempdir().unwrap();
    let src = format!("docker://{image}");
    let out = skopeo_ok(dir.path(), &["inspect", "--tls-verify=false", &src]);
    let digest = serde_json::from_str::<serde_json::Value>(&out).unwrap()["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    // Removing the image from the engine leaves the registry's copy whole.
    d.berth_ok(&["rmi", &image]);
    d.berth_ok(&["rmi", "bb"]);
    let layout = dir.path().join("out");
    skopeo_ok(
        dir.path(),
        &[
            "--insecure-policy",
            "copy",
            "-q",
            "--preserve-digests",
            "--src-tls-verify=false",
            &src,
            &format!("oci:{}:1", layout.display()),
        ],
    );
    assert_eq!(read_layout(&layout, "1").manifest, digest);
    // And the engine can pull it back from its own registry.
    d.berth_ok(&["pull", "-q", &image]);
    let id = d.berth_ok(&["images", "-q", &image]);
    assert!(!id.is_empty());
}
