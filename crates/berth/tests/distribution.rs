//! Pull and push through the Berth engine: `berth` and the real docker CLI and docker-py against
//! Debian's `docker-registry` (the reference distribution server) on loopback, with and without auth.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{errtext, text, Daemon};

/// Debian's docker-registry on a free loopback port, with its own storage; stopped on drop.
struct RefRegistry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RefRegistry {
    /// `users`: (name, password) pairs for htpasswd auth; none means open.
    fn start(users: &[(&str, &str)]) -> RefRegistry {
        Self::start_with(users, None)
    }

    /// With `tls`: (certificate, key, CA that client certificates must come from) PEM files,
    /// served over HTTPS.
    fn start_with(users: &[(&str, &str)], tls: Option<(&Path, &Path, Option<&Path>)>) -> RefRegistry {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key, client_ca)) = tls {
            cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
            if let Some(ca) = client_ca {
                cfg.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
            }
        }
        if !users.is_empty() {
            let htpasswd = dir.path().join("htpasswd");
            let mut lines = String::new();
            for (u, p) in users {
                let o = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                assert!(o.status.success());
                lines.push_str(String::from_utf8_lossy(&o.stdout).trim());
                lines.push('\n');
            }
            std::fs::write(&htpasswd, lines).unwrap();
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(15), "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        RefRegistry { child, port, dir }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RefRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `berth` with its credentials file in `cfg`.
fn berth(d: &Daemon, cfg: &Path, args: &[&str], input: Option<&[u8]>) -> std::process::Output {
    let mut c = d.berth_cmd(args);
    c.env("BERTH_CONFIG", cfg);
    common::run_timeout(c, input, 120)
}

fn ok(o: std::process::Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed:\n{}\n{}", text(&o), errtext(&o));
    text(&o)
}

fn image_id(d: &Daemon, name: &str) -> String {
    d.berth_ok(&["image", "inspect", "-f", "{{.Id}}", name])
}

#[test]
fn push_and_pull_through_the_reference_registry() {
    let d = Daemon::start();
    d.busybox("bb");
    let reg = RefRegistry::start(&[]);
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg: PathBuf = cfg_dir.path().to_path_buf();
    let name = format!("{}/team/bb:1", reg.host());
    let id = image_id(&d, "bb");
    d.berth_ok(&["tag", "bb", &name]);

    // berth push, then again: the registry has every blob the second time.
    let out = ok(berth(&d, &cfg, &["push", &name], None), "berth push");
    assert!(out.contains("Pushed") && out.contains("1: digest: sha256:"), "{out}");
    let digest = out.split("digest: ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let out = ok(berth(&d, &cfg, &["push", &name], None), "berth push again");
    assert!(out.contains("Layer already exists") && !out.contains("Pushed"), "{out}");
    // Another repository of the same registry: the layer is mounted from the first, not sent.
    let mirror = format!("{}/mirror/bb:1", reg.host());
    d.berth_ok(&["tag", "bb", &mirror]);
    let out = ok(berth(&d, &cfg, &["push", &mirror], None), "berth push to another repository");
    assert!(out.contains("Mounted from team/bb") && !out.contains("Pushed"), "{out}");

    // berth pull into an engine without the image: the same image ID comes back, and runs.
    d.berth_ok(&["rmi", &name, &mirror, "bb"]);
    let out = ok(berth(&d, &cfg, &["pull", &name], None), "berth pull");
    assert!(out.contains("Pull complete") && out.contains(&format!("Digest: {digest}")), "{out}");
    assert_eq!(image_id(&d, &name), id);
    assert_eq!(d.berth_ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled");
    let out = ok(berth(&d, &cfg, &["pull", &name], None), "berth pull again");
    assert!(out.contains("Already exists") && out.contains("Image is up to date"), "{out}");
    // By digest.
    let by_digest = format!("{}/team/bb@{digest}", reg.host());
    ok(berth(&d, &cfg, &["pull", &by_digest], None), "berth pull by digest");
    let digests = d.berth_ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", &name]);
    assert!(digests.contains(&digest), "{digests}");

    // The real docker CLI through Berth.
    let other = format!("{}/other/bb:2", reg.host());
    d.docker_ok(&["tag", &name, &other]);
    let out = d.docker_ok(&["push", &other]);
    assert!(out.contains("2: digest: sha256:"), "{out}");
    d.docker_ok(&["rmi", &other, &name]);
    let out = d.docker_ok(&["pull", &other]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(d.docker_ok(&["run", "--rm", &other, "echo", "docker-pulled"]), "docker-pulled");
    let o = d.docker(&["pull", &format!("{}/nope/x:1", reg.host())]);
    assert!(!o.status.success());
    assert!(errtext(&o).contains("not found"), "{}", errtext(&o));

    // docker-py.
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
img = c.images.pull("{reg}/team/bb", tag="1")
assert img.id == "{id}", img.id
print("ok")
"#,
        host = d.host(),
        reg = reg.host(),
    );
    let mut c = Command::new("python3");
    c.args(["-c", &script]);
    let o = common::run_timeout(c, None, 120);
    assert_eq!(ok(o, "docker-py pull"), "ok");
}

/// `openssl` with `args`, in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", errtext(&o));
}

/// A CA (`NAME.crt`/`NAME.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let subj = format!("/CN=Berth test {name}");
    #[rustfmt::skip]
    openssl(dir, &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", &subj, "-keyout", &key, "-out", &crt]);
}

#[test]
fn private_ca_from_certs_dir_is_trusted_and_verified() {
    // A registry (Debian's reference distribution) with a certificate for 127.0.0.1 from a private
    // CA, as a company's registry would have.
    let pki = tempfile::tempdir().unwrap();
    let p = pki.path();
    make_ca(p, "ca");
    make_ca(p, "other");
    #[rustfmt::skip]
    openssl(p, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=127.0.0.1", "-keyout", "srv.key", "-out", "srv.csr"]);
    std::fs::write(
        p.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    #[rustfmt::skip]
    openssl(p, &["x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "ext.cnf", "-out", "srv.crt"]);
    let reg = RefRegistry::start_with(&[], Some((&p.join("srv.crt"), &p.join("srv.key"), None)));
    // The daemon's certs.d has an entry for the registry, first with the wrong CA.
    let certs = p.join("certs.d");
    let entry = certs.join(reg.host());
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::copy(p.join("other.crt"), entry.join("ca.crt")).unwrap();
    let d = Daemon::start_with(&["--certs-dir", certs.to_str().unwrap()]);
    d.busybox("bb");
    let cfg = tempfile::tempdir().unwrap();
    let name = format!("{}/corp/bb:1", reg.host());
    d.berth_ok(&["tag", "bb", &name]);
    // A loopback registry is otherwise insecure, but one with a certs.d entry is verified: the
    // wrong CA fails the handshake.
    let o = berth(&d, cfg.path(), &["push", &name], None);
    assert!(!o.status.success(), "push with the wrong CA succeeded: {}", text(&o));
    let err = format!("{}{}", text(&o), errtext(&o));
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // The right CA, read again without restarting the daemon: push, pull back, run.
    std::fs::copy(p.join("ca.crt"), entry.join("ca.crt")).unwrap();
    let out = ok(berth(&d, cfg.path(), &["push", &name], None), "berth push with the CA");
    assert!(out.contains("1: digest: sha256:"), "{out}");
    d.berth_ok(&["rmi", &name]);
    let out = d.docker_ok(&["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(d.berth_ok(&["run", "--rm", &name, "echo", "trusted"]), "trusted");
    // A file that is not a certificate is named in the error.
    std::fs::write(entry.join("broken.crt"), "not a certificate").unwrap();
    let o = d.docker(&["pull", &name]);
    assert!(!o.status.success());
    assert!(errtext(&o).contains("broken.crt"), "{}", errtext(&o));

    // A registry that wants a client certificate from the CA (mutual TLS).
    #[rustfmt::skip]
    openssl(p, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=berth-client", "-keyout", "client.key", "-out", "client.csr"]);
    std::fs::write(p.join("client.cnf"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
    #[rustfmt::skip]
    openssl(p, &["x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "client.cnf", "-out", "client.cert"]);
    let mtls = RefRegistry::start_with(&[], Some((&p.join("srv.crt"), &p.join("srv.key"), Some(&p.join("ca.crt")))));
    let entry = certs.join(mtls.host());
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::copy(p.join("ca.crt"), entry.join("ca.crt")).unwrap();
    let name = format!("{}/corp/bb:2", mtls.host());
    d.berth_ok(&["tag", "bb", &name]);
    let o = berth(&d, cfg.path(), &["push", &name], None);
    assert!(!o.status.success(), "push without a client certificate succeeded: {}", text(&o));
    // A certificate without its key is named; with both, the push goes through.
    std::fs::copy(p.join("client.cert"), entry.join("client.cert")).unwrap();
    let o = berth(&d, cfg.path(), &["push", &name], None);
    assert!(!o.status.success());
    let err = format!("{}{}", text(&o), errtext(&o));
    assert!(err.contains("client.cert: client certificate without its key"), "{err}");
    std::fs::copy(p.join("client.key"), entry.join("client.key")).unwrap();
    let out = ok(
        berth(&d, cfg.path(), &["push", &name], None),
        "berth push with a client certificate",
    );
    assert!(out.contains("2: digest: sha256:"), "{out}");
    d.berth_ok(&["rmi", &name]);
    ok(
        berth(&d, cfg.path(), &["pull", &name], None),
        "berth pull with a client certificate",
    );
}

#[test]
fn login_and_auth_with_the_reference_registry() {
    let d = Daemon::start();
    d.busybox("bb");
    let reg = RefRegistry::start(&[("alice", "s3cret")]);
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg: PathBuf = cfg_dir.path().to_path_buf();
    let name = format!("{}/alice/bb:1", reg.host());
    d.berth_ok(&["tag", "bb", &name]);

    // Without credentials the registry refuses.
    let o = berth(&d, &cfg, &["push", &name], None);
    assert!(!o.status.success());
    assert!(errtext(&o).contains("unauthorized"), "{}", errtext(&o));
    // A wrong password is refused at login and nothing is saved.
    let o = berth(
        &d,
        &cfg,
        &["login", "-u", "alice", "--password-stdin", &reg.host()],
        Some(b"wrong\n"),
    );
    assert!(!o.status.success());
    assert!(!cfg.join("config.json").exists() || !std::fs::read_to_string(cfg.join("config.json")).unwrap().contains(&reg.host()));
    // Logged in, push and pull work.
    let out = ok(
        berth(
            &d,
            &cfg,
            &["login", "-u", "alice", "--password-stdin", &reg.host()],
            Some(b"s3cret\n"),
        ),
        "login",
    );
    assert_eq!(out, "Login Succeeded");
    ok(berth(&d, &cfg, &["push", &name], None), "push with auth");
    d.berth_ok(&["rmi", &name]);
    ok(berth(&d, &cfg, &["pull", &name], None), "pull with auth");
    let out = ok(berth(&d, &cfg, &["logout", &reg.host()], None), "logout");
    assert!(out.contains("Removing login credentials"), "{out}");
    d.berth_ok(&["rmi", &name]);
    let o = berth(&d, &cfg, &["pull", &name], None);
    assert!(!o.status.success(), "pull after logout must fail");

    // The docker CLI's login, push and pull through Berth.
    let o = d.docker_in(&["login", "-u", "alice", "--password-stdin", &reg.host()], b"s3cret\n");
    assert!(o.status.success(), "{}", errtext(&o));
    assert!(text(&o).contains("Login Succeeded"), "{}", text(&o));
    let other = format!("{}/alice/other:1", reg.host());
    d.docker_ok(&["tag", "bb", &other]);
    d.docker_ok(&["push", &other]);
    d.docker_ok(&["rmi", &other]);
    d.docker_ok(&["pull", &other]);
}

/// An OCI layout whose `multi` tag is an index of a linux/amd64 image (a zstd busybox layer and a
/// gzip layer) and a linux/arm64 one.
fn multi_platform_layout(dir: &Path) {
    use sha2::Digest as _;
    use std::io::Write;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let hex = hex::encode(sha2::Sha256::digest(data));
        std::fs::write(blobs.join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    };
    let sha = |data: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)));
    let file_tar = |name: &str, content: &str| {
        let mut t = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        t.append_data(&mut h, name, content.as_bytes()).unwrap();
        t.into_inner().unwrap()
    };
    let gzip = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let zstd = |data: &[u8]| {
        let o = common::run_timeout(
            {
                let mut c = Command::new("zstd");
                c.args(["-q", "-c"]);
                c
            },
            Some(data),
            60,
        );
        assert!(o.status.success(), "zstd failed");
        o.stdout
    };
    let image = |arch: &str, layers: Vec<(Vec<u8>, Vec<u8>, &str)>| -> serde_json::Value {
        let diff_ids: Vec<String> = layers.iter().map(|(raw, _, _)| sha(raw)).collect();
        let descs: Vec<serde_json::Value> = layers
            .iter()
            .map(|(_, blob, mt)| {
                let (d, n) = put(blob);
                serde_json::json!({"mediaType": mt, "digest": d, "size": n})
            })
            .collect();
        let config = serde_json::json!({"architecture": arch, "os": "linux", "config": {"Cmd": ["cat", "/hello"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let (cd, cn) = put(config.to_string().as_bytes());
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": descs});
        let (md, mn) = put(m.to_string().as_bytes());
        serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
            "platform": {"architecture": arch, "os": "linux"}})
    };
    let bb = common::busybox_tar();
    let hello_amd = file_tar("hello", "amd64\n");
    let hello_arm = file_tar("hello", "arm64\n");
    let amd = image(
        "amd64",
        vec![
            (bb.clone(), zstd(&bb), "application/vnd.oci.image.layer.v1.tar+zstd"),
            (hello_amd.clone(), gzip(&hello_amd), "application/vnd.oci.image.layer.v1.tar+gzip"),
        ],
    );
    let arm = image(
        "arm64",
        vec![(hello_arm.clone(), gzip(&hello_arm), "application/vnd.oci.image.layer.v1.tar+gzip")],
    );
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [arm, amd]});
    let (id, n) = put(index.to_string().as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": id, "size": n, "annotations": {"org.opencontainers.image.ref.name": "multi"}}]});
    std::fs::write(dir.join("index.json"), top.to_string()).unwrap();
}

#[test]
fn multi_platform_index_and_zstd_layers() {
    let d = Daemon::start();
    let reg = RefRegistry::start(&[]);
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg: PathBuf = cfg_dir.path().to_path_buf();
    let layout = tempfile::tempdir().unwrap();
    multi_platform_layout(layout.path());
    let dest = format!("docker://{}/multi:1", reg.host());
    let src = format!("oci:{}:multi", layout.path().display());
    let mut c = Command::new("skopeo");
    c.args(["--insecure-policy", "copy", "-q", "--all", "--dest-tls-verify=false", &src, &dest]);
    ok(common::run_timeout(c, None, 120), "skopeo copy --all");
    let name = format!("{}/multi:1", reg.host());
    // The host's platform is chosen from the index; its zstd and gzip layers unpack and run.
    ok(berth(&d, &cfg, &["pull", &name], None), "pull the index");
    assert_eq!(d.berth_ok(&["image", "inspect", "-f", "{{.Architecture}}", &name]), "amd64");
    assert_eq!(d.berth_ok(&["run", "--rm", &name]), "amd64");
    // The manifest is kept as the registry sent it: pushed elsewhere, it has the same digest
    // (skopeo wrote it, with its own key order, not Berth).
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{name}")]);
    let index: serde_json::Value = serde_json::from_str(&ok(common::run_timeout(c, None, 60), "skopeo inspect --raw")).unwrap();
    let amd = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let copy = format!("{}/copy:1", reg.host());
    ok(berth(&d, &cfg, &["tag", &name, &copy], None), "tag");
    ok(berth(&d, &cfg, &["push", &copy], None), "push the copy");
    let mut c = Command::new("skopeo");
    c.args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{copy}"),
    ]);
    assert_eq!(ok(common::run_timeout(c, None, 60), "skopeo inspect").trim(), amd);
    // --platform picks another entry.
    ok(berth(&d, &cfg, &["pull", "--platform", "linux/arm64", &name], None), "pull arm64");
    assert_eq!(d.berth_ok(&["image", "inspect", "-f", "{{.Architecture}}", &name]), "arm64");
    let o = berth(&d, &cfg, &["pull", "--platform", "linux/s390x", &name], None);
    assert!(!o.status.success());
    assert!(errtext(&o).contains("no matching manifest for linux/s390x"), "{}", errtext(&o));
}

#[test]
fn docker_cli_to_the_daemons_own_registry_with_tokens() {
    // Daemon A serves a registry (htpasswd users, Bearer tokens) on its own content store.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let auth = tempfile::tempdir().unwrap();
    let o = Command::new("htpasswd").args(["-Bbn", "bob", "pw"]).output().unwrap();
    std::fs::write(auth.path().join("htpasswd"), &o.stdout).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let htpasswd = auth.path().join("htpasswd");
    let a = Daemon::start_with(&[
        "--registry",
        &addr,
        "--registry-htpasswd",
        htpasswd.to_str().unwrap(),
        "--registry-token",
    ]);
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the daemon's registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    a.busybox("bb");
    let name = format!("{addr}/team/bb:1");
    a.docker_ok(&["tag", "bb", &name]);
    let o = a.docker(&["push", &name]);
    assert!(!o.status.success(), "push without login must fail");
    let o = a.docker_in(&["login", "-u", "bob", "--password-stdin", &addr], b"pw\n");
    assert!(o.status.success(), "{}", errtext(&o));
    // With access control a repository sees only its own blobs: the first push uploads the layer
    // (the content store keeps one copy), the next finds it there.
    let out = a.docker_ok(&["push", &name]);
    assert!(out.contains("Pushed") && out.contains("1: digest: sha256:"), "{out}");
    let out = a.docker_ok(&["push", &name]);
    assert!(out.contains("Layer already exists"), "{out}");
    // --all-tags pushes every local tag of the repository.
    a.docker_ok(&["tag", "bb", &format!("{addr}/team/bb:2")]);
    let out = a.docker_ok(&["push", "--all-tags", &format!("{addr}/team/bb")]);
    assert!(out.contains("1: digest: sha256:") && out.contains("2: digest: sha256:"), "{out}");

    // Daemon B (another root) pulls it over the network with the docker CLI, and runs it.
    let b = Daemon::start();
    let o = b.docker_in(&["login", "-u", "bob", "--password-stdin", &addr], b"pw\n");
    assert!(o.status.success(), "{}", errtext(&o));
    let out = b.docker_ok(&["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(b.docker_ok(&["run", "--rm", &name, "echo", "from-a"]), "from-a");
    assert_eq!(
        b.docker_ok(&["image", "inspect", "-f", "{{.Id}}", &name]),
        a.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "bb"])
    );
    // B pushes back under a new name; A's registry now holds it.
    let back = format!("{addr}/team/back:1");
    b.docker_ok(&["tag", &name, &back]);
    b.docker_ok(&["push", &back]);
    a.docker_ok(&["pull", &back]);
}

#[test]
fn a_corrupt_blob_is_refused_and_nothing_is_kept() {
    let d = Daemon::start();
    d.busybox("bb");
    let reg = RefRegistry::start(&[]);
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg: PathBuf = cfg_dir.path().to_path_buf();
    let name = format!("{}/team/bb:1", reg.host());
    d.berth_ok(&["tag", "bb", &name]);
    ok(berth(&d, &cfg, &["push", &name], None), "push");
    // Flip bytes of the layer in the registry's storage (same length).
    let layer = d.berth_ok(&["image", "inspect", "-f", "{{index .RootFS.Layers 0}}", &name]);
    let hex = layer.trim_start_matches("sha256:").to_string();
    let data = reg
        .dir
        .path()
        .join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    let mut bytes = std::fs::read(&data).unwrap();
    for b in bytes.iter_mut().take(4096).skip(1024) {
        *b ^= 0xff;
    }
    std::fs::write(&data, bytes).unwrap();
    d.berth_ok(&["rmi", &name, "bb"]);
    let o = berth(&d, &cfg, &["pull", &name], None);
    assert!(!o.status.success(), "a corrupt layer must fail the pull");
    assert!(errtext(&o).contains("digest"), "{}", errtext(&o));
    assert!(!d.berth(&["image", "inspect", &name]).status.success());
    assert!(!d.root.join("image/blobs/sha256").join(&hex).exists(), "the bad blob was kept");
}

/// A Dockerfile whose FROM (and COPY --from) names an image only a registry has: the build pulls
/// it, with the client's credentials (berth login → X-Registry-Config; docker login likewise), and
/// `--pull` refreshes a local copy.
#[test]
fn builds_pull_base_images_with_credentials() {
    let d = Daemon::start();
    d.busybox("bb");
    let reg = RefRegistry::start(&[("alice", "s3cret")]);
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg: PathBuf = cfg_dir.path().to_path_buf();
    let base = format!("{}/alice/base:1", reg.host());
    d.berth_ok(&["tag", "bb", &base]);
    ok(
        berth(
            &d,
            &cfg,
            &["login", "-u", "alice", "--password-stdin", &reg.host()],
            Some(b"s3cret\n"),
        ),
        "login",
    );
    ok(berth(&d, &cfg, &["push", &base], None), "push");
    d.berth_ok(&["rmi", &base]);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nCOPY --from={base} /bin/busybox /copied\nRUN echo built > /b.txt\n"),
    )
    .unwrap();
    let c = ctx.path().to_str().unwrap();
    // Without credentials the pull is refused, and the error says which image and why.
    let nocreds = tempfile::tempdir().unwrap();
    let o = berth(&d, nocreds.path(), &["build", "-t", "child:0", c], None);
    assert!(!o.status.success());
    let err = format!("{}{}", text(&o), errtext(&o));
    assert!(err.contains(&base) && err.contains("unauthorized"), "{err}");
    // berth build: the login goes along.
    let out = ok(berth(&d, &cfg, &["build", "-t", "child:1", c], None), "berth build");
    assert!(out.contains("Pulling from alice/base") && out.contains("Pull complete"), "{out}");
    assert_eq!(
        d.berth_ok(&["run", "--rm", "child:1", "sh", "-c", "cat /b.txt; test -x /copied && echo copied"]),
        "built\ncopied"
    );
    // --pull asks the registry again though the image is local now.
    let out = ok(
        berth(&d, &cfg, &["build", "--pull", "-t", "child:2", c], None),
        "berth build --pull",
    );
    assert!(out.contains("Image is up to date"), "{out}");
    // The docker CLI's classic build, with docker login's credentials.
    d.berth_ok(&["rmi", &base, "child:1", "child:2"]);
    let o = d.docker_in(&["login", "-u", "alice", "--password-stdin", &reg.host()], b"s3cret\n");
    assert!(o.status.success(), "{}", errtext(&o));
    d.docker_ok(&["build", "-t", "child:3", c]);
    assert_eq!(d.docker_ok(&["run", "--rm", "child:3", "cat", "/b.txt"]), "built");
}

/// An OCI layout (tag `bomb`) of one image whose only layer is `layer` (gzip bytes, diff ID).
fn one_layer_layout(dir: &Path, layer: &(Vec<u8>, String)) {
    use sha2::Digest as _;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let hex = hex::encode(sha2::Sha256::digest(data));
        std::fs::write(blobs.join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    };
    let (ld, ln) = put(&layer.0);
    let (cd, cn) = put(&common::image_config(&[&layer.1]));
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ln}]});
    let (md, mn) = put(m.to_string().as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "bomb"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

/// Put a one-layer image into the registry as `repo:1` with skopeo; returns the layer's blob digest.
fn push_layer_image(reg: &RefRegistry, repo: &str, layer: &(Vec<u8>, String)) -> String {
    use sha2::Digest as _;
    let layout = tempfile::tempdir().unwrap();
    one_layer_layout(layout.path(), layer);
    let src = format!("oci:{}:bomb", layout.path().display());
    let dest = format!("docker://{}/{repo}:1", reg.host());
    let mut c = Command::new("skopeo");
    c.args(["--insecure-policy", "copy", "-q", "--dest-tls-verify=false", &src, &dest]);
    ok(common::run_timeout(c, None, 120), "skopeo copy");
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&layer.0)))
}

/// A gzip bomb in a registry: pulled through docker-py and the docker CLI into a daemon with a
/// small --max-layer-size, and into one with the default limits (where the expansion ratio
/// refuses it), the pull fails naming the limit and the layer, and leaves no blob (neither the
/// downloaded layer nor the config), no temporary file, no layer directory and no image.
#[test]
fn a_gzip_bomb_pull_is_refused_with_nothing_left_behind() {
    let reg = RefRegistry::start(&[]);
    let small = push_layer_image(&reg, "bomb", &common::zeros_layer(200 << 20));
    let d = Daemon::start_with(&["--max-layer-size", "64m"]);
    let before = common::image_state(&d);
    let unchanged = |d: &Daemon, before: &[String], what: &str| {
        assert_eq!(common::image_state(d), before, "{what} left something behind");
        assert_eq!(d.docker_ok(&["images", "-a", "-q"]), "", "{what} left an image");
    };

    // docker-py: `images.pull` ignores the stream's errors and then finds no image, as with
    // Docker; the stream itself carries the refusal.
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
try:
    c.images.pull("{reg}/bomb", tag="1")
    raise SystemExit("the bomb was pulled")
except docker.errors.NotFound:
    pass
errors = [m["error"] for m in c.api.pull("{reg}/bomb", tag="1", stream=True, decode=True) if "error" in m]
assert len(errors) == 1, errors
print(errors[0])
"#,
        host = d.host(),
        reg = reg.host(),
    );
    let mut c = Command::new("python3");
    c.args(["-c", &script]);
    let out = ok(common::run_timeout(c, None, 180), "docker-py pull");
    assert!(
        out.contains(&format!("layer {small} expands past the daemon's --max-layer-size limit of 64 MiB")),
        "{out}"
    );
    unchanged(&d, &before, "docker-py pull of a gzip bomb");

    // The docker CLI.
    let o = d.docker(&["pull", &format!("{}/bomb:1", reg.host())]);
    assert!(!o.status.success(), "the bomb was pulled: {}", text(&o));
    assert!(errtext(&o).contains("--max-layer-size limit of 64 MiB"), "{}", errtext(&o));
    unchanged(&d, &before, "docker pull of a gzip bomb");

    // Under the default limits, 320 MiB of zeros (about 320 KiB) are refused for their ratio
    // once past 256 MiB; a normal image pulls.
    let big = push_layer_image(&reg, "bigbomb", &common::zeros_layer(320 << 20));
    let dd = Daemon::start();
    dd.busybox("bb");
    let normal = format!("{}/team/bb:1", reg.host());
    dd.docker_ok(&["tag", "bb", &normal]);
    dd.docker_ok(&["push", &normal]);
    dd.docker_ok(&["rmi", "bb", &normal]);
    let before = common::image_state(&dd);
    let o = dd.docker(&["pull", &format!("{}/bigbomb:1", reg.host())]);
    assert!(!o.status.success(), "the bomb was pulled: {}", text(&o));
    assert!(
        errtext(&o).contains(&format!(
            "layer {big} expands more than 100 times its compressed size (the daemon's --max-layer-ratio limit)"
        )),
        "{}",
        errtext(&o)
    );
    unchanged(&dd, &before, "a pull past --max-layer-ratio");
    assert!(dd.docker_ok(&["pull", &normal]).contains("Downloaded newer image"));
    assert_eq!(dd.docker_ok(&["run", "--rm", &normal, "echo", "pulled"]), "pulled");
}
