//! Compose (issue 11.4): `berth compose` and the real docker-compose 1.29 on the same files, a
//! three-service Python app built from a Dockerfile, and the errors compose files can have.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{curl, curl_eventually, free_port, host_links, Daemon};

const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compose_app");

/// A copy of the app directory with its `.env`.
fn app_dir(env: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["Dockerfile", "compose.yaml", "web.py", "kv.py", "worker.py"] {
        std::fs::copy(Path::new(APP).join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join(".env"), env).unwrap();
    dir
}

fn compose(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    let mut c = d.berth_cmd(&["compose"]);
    c.current_dir(dir).args(args);
    common::run_timeout(c, None, 300)
}

fn compose_ok(d: &Daemon, dir: &Path, args: &[&str]) -> (String, String) {
    let o = compose(d, dir, args);
    assert!(
        o.status.success(),
        "berth compose {args:?} failed:\n{}\n{}",
        common::text(&o),
        common::errtext(&o)
    );
    (common::text(&o), common::errtext(&o))
}

fn ids(d: &Daemon) -> Vec<(String, String)> {
    let out = d.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.ID}}"]);
    let mut v: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    v.sort();
    v
}

fn id_of(v: &[(String, String)], name: &str) -> String {
    v.iter().find(|(n, _)| n == name).map(|(_, i)| i.clone()).unwrap_or_default()
}

/// The bridges of the daemon's user networks now (`br-` and the network ID's first 12 digits).
fn bridges(d: &Daemon) -> Vec<String> {
    let out = d.docker_ok(&["network", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}}"]);
    out.lines()
        .filter(|l| !l.ends_with(" bridge") && !l.ends_with(" host") && !l.ends_with(" none"))
        .map(|l| format!("br-{}", &l[..12]))
        .collect()
}

/// Nothing of a project is left: no container, no network but the built-in ones, no volume, and
/// none of the `bridges` its networks had.
fn assert_nothing_left(d: &Daemon, bridges: &[String]) {
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "", "containers left");
    assert_eq!(
        d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]).trim(),
        "bridge\nhost\nnone"
    );
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "", "volumes left");
    let links = host_links();
    for b in bridges {
        assert!(!links.contains(&format!(" {b}:")), "{b} left: {links}");
    }
}

#[test]
fn berth_compose_runs_a_python_app_with_a_store_and_a_worker() {
    let d = Daemon::start_bridged(&[]);
    d.python_image("pybase");
    let port = free_port();
    let dir = app_dir(&format!("WEB_PORT={port}\n"));
    let p = dir.path();
    let (_, err) = compose_ok(&d, p, &["-p", "capp", "up", "-d", "--wait"]);
    assert!(err.contains("Container capp-web-1  Healthy"), "{err}");
    assert!(err.contains("Network capp_default  Created"), "{err}");
    assert_eq!(curl(&format!("http://127.0.0.1:{port}/greeting")).as_deref(), Some("hello"));
    let first: u64 = curl(&format!("http://127.0.0.1:{port}/hit")).unwrap().parse().unwrap();
    // The worker reaches web by its service name and web reaches kv: the count goes on.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = compose_ok(&d, p, &["-p", "capp", "logs", "worker"]).0;
        if logs.lines().filter(|l| l.starts_with("worker-1  | hits ")).count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(logs.lines().filter(|l| l.starts_with("worker-1  | hits ")).count() >= 2, "{logs}");
    let (ps, _) = compose_ok(&d, p, &["-p", "capp", "ps", "--format", "{{.Service}} {{.Status}}"]);
    assert!(
        ps.contains("web Up") && ps.contains("(healthy)") && ps.contains("kv Up") && ps.contains("worker Up"),
        "{ps}"
    );
    let labels = d.docker_ok(&["inspect", "-f", "{{json .Config.Labels}}", "capp-web-1"]);
    for l in [
        r#""com.docker.compose.project":"capp""#,
        r#""com.docker.compose.service":"web""#,
        r#""com.docker.compose.container-number":"1""#,
        r#""com.docker.compose.oneoff":"False""#,
        r#""com.docker.compose.config-hash":"#,
    ] {
        assert!(labels.contains(l), "{l} missing in {labels}");
    }

    // Nothing changed: nothing is touched.
    let before = ids(&d);
    let (_, err) = compose_ok(&d, p, &["-p", "capp", "up", "-d"]);
    assert!(!err.contains("Recreate") && !err.contains("Creat"), "{err}");
    assert_eq!(ids(&d), before);

    // A changed service is recreated (its config hash); the others stay; the store kept its data.
    std::fs::write(p.join(".env"), format!("WEB_PORT={port}\nGREETING=bonjour\n")).unwrap();
    let (_, err) = compose_ok(&d, p, &["-p", "capp", "up", "-d", "--wait"]);
    assert!(err.contains("Container capp-web-1  Recreated"), "{err}");
    let after = ids(&d);
    assert_ne!(id_of(&after, "capp-web-1"), id_of(&before, "capp-web-1"));
    assert_eq!(id_of(&after, "capp-kv-1"), id_of(&before, "capp-kv-1"));
    assert_eq!(
        curl_eventually(&format!("http://127.0.0.1:{port}/greeting")).as_deref(),
        Some("bonjour")
    );
    let later: u64 = curl(&format!("http://127.0.0.1:{port}/hit")).unwrap().parse().unwrap();
    assert!(later > first, "{later} <= {first}");

    // Scale, exec, a one-off run.
    compose_ok(&d, p, &["-p", "capp", "up", "-d", "--scale", "worker=2"]);
    let (ps, _) = compose_ok(&d, p, &["-p", "capp", "ps", "--format", "{{.Name}}"]);
    assert!(ps.contains("capp-worker-2"), "{ps}");
    let (stored, _) = compose_ok(&d, p, &["-p", "capp", "exec", "-T", "kv", "cat", "/data/hits"]);
    assert!(stored.trim().parse::<u64>().unwrap() >= later, "{stored}");
    let (out, _) = compose_ok(
        &d,
        p,
        &[
            "-p",
            "capp",
            "run",
            "--rm",
            "-T",
            "--no-deps",
            "kv",
            "python3",
            "-c",
            "print('one-off')",
        ],
    );
    assert_eq!(out.trim(), "one-off");
    assert!(!d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]).contains("-run-"));
    let (ls, _) = compose_ok(&d, p, &["ls"]);
    assert!(ls.contains("capp") && ls.contains("running(4)"), "{ls}");

    // Another compose client sees the same project (the labels are the only state).
    let mut dc = Command::new("docker-compose");
    dc.current_dir(p)
        .env("DOCKER_HOST", d.host())
        .args(["-p", "capp", "ps", "--services"]);
    let o = common::run_timeout(dc, None, 60);
    let services = common::text(&o);
    assert!(
        services.contains("web") && services.contains("kv") && services.contains("worker"),
        "{services}{}",
        common::errtext(&o)
    );

    let br = bridges(&d);
    assert_eq!(br.len(), 1);
    assert!(host_links().contains(&format!(" {}:", br[0])), "{}", host_links());
    let (_, err) = compose_ok(&d, p, &["-p", "capp", "down", "-v", "--rmi", "all"]);
    assert!(err.contains("Volume capp_kvdata  Removed"), "{err}");
    assert_nothing_left(&d, &br);
    assert!(!d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).contains("pyapp:1"));
}

#[test]
fn docker_compose_runs_the_same_python_app() {
    let d = Daemon::start_bridged(&[]);
    d.python_image("pybase");
    let port = free_port();
    let dir = app_dir(&format!("WEB_PORT={port}\nGREETING=hallo\n"));
    let dc = |args: &[&str]| {
        let mut c = Command::new("docker-compose");
        c.current_dir(dir.path())
            .env("DOCKER_HOST", d.host())
            .args(["-p", "dapp"])
            .args(args);
        common::run_timeout(c, None, 300)
    };
    let up = dc(&["up", "-d"]);
    assert!(up.status.success(), "{}", common::errtext(&up));
    assert_eq!(
        curl_eventually(&format!("http://127.0.0.1:{port}/greeting")).as_deref(),
        Some("hallo")
    );
    let mut hits = None;
    for _ in 0..50 {
        hits = curl(&format!("http://127.0.0.1:{port}/hit"));
        if hits.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(hits.unwrap_or_default().parse::<u64>().is_ok());
    // berth compose sees docker-compose's project too.
    let (ps, _) = compose_ok(&d, dir.path(), &["-p", "dapp", "ps", "--format", "{{.Service}}"]);
    assert!(ps.contains("web") && ps.contains("kv"), "{ps}");
    let br = bridges(&d);
    let down = dc(&["down", "-v", "--rmi", "all"]);
    assert!(down.status.success(), "{}", common::errtext(&down));
    assert_nothing_left(&d, &br);
}

#[test]
fn compose_features_on_busybox() {
    let d = Daemon::start_bridged(&[]);
    d.busybox("bb");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("app.env"), "FROM_FILE=file\nBOTH=file\n").unwrap();
    std::fs::write(p.join("secret.txt"), "s3cret").unwrap();
    std::fs::write(
        p.join("compose.yaml"),
        r#"name: feat
services:
  main:
    image: bb
    command: sh -c 'echo started; exec sleep 600'
    stop_grace_period: 1s
    env_file: [app.env]
    environment:
      BOTH: inline
    tmpfs: [/scratch]
    secrets: [token]
    configs:
      - source: conf
        target: /etc/app.conf
        mode: 0440
    networks:
      front:
        aliases: [mainalias]
      back: {}
    labels:
      team: ds
  follower:
    image: bb
    command: sleep 600
    stop_grace_period: 1s
    networks: [front]
    depends_on:
      main:
        condition: service_started
        restart: true
  debug:
    image: bb
    command: sleep 600
    stop_grace_period: 1s
    profiles: [debug]
    networks: [front]
networks:
  front:
  back:
    internal: true
secrets:
  token:
    file: ./secret.txt
configs:
  conf:
    content: |
      key=value
"#,
    )
    .unwrap();
    std::fs::write(
        p.join("override.yaml"),
        "services:\n  main:\n    environment:\n      EXTRA: \"1\"\n",
    )
    .unwrap();
    let f = ["-f", "compose.yaml", "-f", "override.yaml"];
    let c = |args: &[&str]| compose_ok(&d, p, &[&f[..], args].concat());
    c(&["up", "-d"]);
    let env = d.docker_ok(&["exec", "feat-main-1", "env"]);
    for kv in ["FROM_FILE=file", "BOTH=inline", "EXTRA=1"] {
        assert!(env.lines().any(|l| l == kv), "{kv} missing in {env}");
    }
    assert_eq!(d.docker_ok(&["exec", "feat-main-1", "cat", "/run/secrets/token"]), "s3cret");
    assert_eq!(d.docker_ok(&["exec", "feat-main-1", "cat", "/etc/app.conf"]).trim(), "key=value");
    assert_eq!(
        d.docker_ok(&["exec", "feat-main-1", "wc", "-c", "/etc/app.conf"])
            .split_whitespace()
            .next(),
        Some("10")
    );
    assert_eq!(
        d.docker_ok(&["exec", "feat-main-1", "stat", "-c", "%a", "/etc/app.conf"]).trim(),
        "440"
    );
    assert!(d
        .docker_ok(&["exec", "feat-main-1", "grep", " /scratch ", "/proc/mounts"])
        .contains("tmpfs"));
    let nets = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "feat-main-1",
    ]);
    assert_eq!(nets.trim(), "feat_back feat_front");
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.Config.Labels.team}}", "feat-main-1"]).trim(),
        "ds"
    );
    // Profiles: debug is not up until asked for; then it reaches main by its alias on front.
    assert!(!d.docker_ok(&["ps", "--format", "{{.Names}}"]).contains("feat-debug-1"));
    c(&["--profile", "debug", "up", "-d"]);
    assert!(d
        .docker(&["exec", "feat-debug-1", "ping", "-c", "1", "-W", "2", "mainalias"])
        .status
        .success());
    // stop/start/restart and logs.
    c(&["stop", "main"]);
    assert!(d
        .docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"])
        .contains("feat-main-1 exited"));
    c(&["start", "main"]);
    c(&["restart", "-t", "1", "main"]);
    let (logs, _) = c(&["logs", "--no-log-prefix", "main"]);
    assert_eq!(logs.matches("started").count(), 3, "{logs}");
    let (cfg, _) = c(&["config"]);
    assert!(
        cfg.contains("BOTH: inline") && cfg.contains("EXTRA: '1'") || cfg.contains("EXTRA: \"1\""),
        "{cfg}"
    );
    // main changes: it is recreated, and follower (restart: true) restarted in place.
    let started = |n: &str| d.docker_ok(&["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", n]);
    let (main_before, follower_before) = (started("feat-main-1"), started("feat-follower-1"));
    std::fs::write(
        p.join("override.yaml"),
        "services:\n  main:\n    environment:\n      EXTRA: \"2\"\n",
    )
    .unwrap();
    let (_, err) = c(&["up", "-d"]);
    assert!(err.contains("Container feat-follower-1  Restarted"), "{err}");
    let (main_after, follower_after) = (started("feat-main-1"), started("feat-follower-1"));
    assert_ne!(main_after.split(' ').next(), main_before.split(' ').next());
    assert_eq!(follower_after.split(' ').next(), follower_before.split(' ').next());
    assert_ne!(follower_after, follower_before);
    let br = bridges(&d);
    assert_eq!(br.len(), 2);
    c(&["--profile", "debug", "down", "-v"]);
    assert_nothing_left(&d, &br);
}

#[test]
fn compose_errors_are_clear_and_create_nothing() {
    let d = Daemon::start_bridged(&[]);
    d.busybox("bb");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let fail = |yaml: &str, args: &[&str]| -> String {
        std::fs::write(p.join("compose.yaml"), yaml).unwrap();
        let o = compose(&d, p, args);
        assert!(!o.status.success(), "{yaml} was accepted");
        common::errtext(&o)
    };
    let e = fail(
        "services:\n  web:\n    image: bb\n    prots: [\"80:80\"]\n",
        &["-p", "bad", "up", "-d"],
    );
    assert!(e.contains("compose.yaml:4: services.web.prots: unknown key \"prots\""), "{e}");
    let e = fail("services:\n  web:\n    image: bb\n    mem_limit: [1]\n", &["-p", "bad", "up", "-d"]);
    assert!(e.contains("compose.yaml:4: services.web.mem_limit"), "{e}");
    let e = fail(
        "services:\n  a: {image: bb, depends_on: [b]}\n  b: {image: bb, depends_on: [a]}\n",
        &["-p", "bad", "up", "-d"],
    );
    assert!(e.contains("dependency cycle between services: a -> b -> a"), "{e}");
    let e = fail("services:\n  web: {image: bb}\n", &["-p", "Bad Name", "up", "-d"]);
    assert!(e.contains("invalid project name"), "{e}");
    assert_nothing_left(&d, &[]);
    // A port in use is refused, and no container is left for it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = fail(
        &format!("services:\n  web:\n    image: bb\n    command: sleep 60\n    ports: [\"127.0.0.1:{port}:80\"]\n"),
        &["-p", "busy", "up", "-d"],
    );
    assert!(e.contains(&port.to_string()), "{e}");
    let left = d.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert!(!left.contains("running"), "{left}");
    let br = bridges(&d);
    compose_ok(&d, p, &["-p", "busy", "down"]);
    assert_nothing_left(&d, &br);
}
