//! Loading real files: merge, interpolation, errors with file and line, profiles, cycles.

use std::collections::BTreeMap;
use std::path::Path;

use compose::model::Condition;
use compose::{load, Options};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn opts(dir: &Path) -> Options {
    Options {
        cwd: dir.to_path_buf(),
        environ: BTreeMap::from([("HOME".to_string(), "/home/u".to_string())]),
        ..Options::default()
    }
}

#[test]
fn merges_files_and_interpolates_from_dot_env() {
    let d = tempfile::tempdir().unwrap();
    let app = d.path().join("My App!");
    std::fs::create_dir(&app).unwrap();
    write(&app, ".env", "TAG=1.2\nPORT=8080\n");
    write(
        &app,
        "compose.yaml",
        r#"
x-common: &common
  restart: unless-stopped
services:
  web:
    <<: *common
    image: "web:${TAG}"
    build: ./web
    command: python -m http.server "8000"
    environment:
      - A=1
      - FROM_HOST
    ports: ["${PORT}:8000", "127.0.0.1::9000/udp"]
    volumes: [data:/data, ./src:/src:ro]
    depends_on:
      db: {condition: service_healthy}
  db:
    image: "redis:${REDIS:-7}"
    healthcheck: {test: redis-cli ping, interval: 2s, retries: 5}
    profiles: [backend]
  debug:
    image: busybox
    profiles: [debug]
volumes:
  data:
"#,
    );
    write(
        &app,
        "compose.override.yaml",
        "services:\n  web:\n    environment: {A: \"2\", B: three}\n    command: [\"serve\"]\n    ports: [\"9090:9090\"]\n    volumes: [\"other:/data\"]\nvolumes:\n  other: {}\n",
    );
    let mut o = opts(&app);
    o.environ.insert("FROM_HOST".into(), "yes".into());
    o.profiles = vec!["backend".into()];
    let l = load(&o).unwrap();
    let p = &l.project;
    assert_eq!(p.name, "myapp");
    assert_eq!(l.files.len(), 2);
    let web = &p.services["web"];
    assert_eq!(web.image.as_deref(), Some("web:1.2"));
    assert_eq!(web.restart.as_deref(), Some("unless-stopped"));
    assert_eq!(web.command.as_deref(), Some(&["serve".to_string()][..]));
    let env: Vec<(&str, Option<&str>)> = web.environment.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
    assert_eq!(env, vec![("A", Some("2")), ("B", Some("three")), ("FROM_HOST", Some("yes"))]);
    let ports: Vec<(Option<&str>, u16)> = web.ports.iter().map(|p| (p.published.as_deref(), p.target)).collect();
    assert_eq!(ports, vec![(Some("8080"), 8000), (None, 9000), (Some("9090"), 9090)]);
    assert_eq!(web.ports[1].protocol, "udp");
    // volumes merge by target: /data is now the override's volume.
    assert_eq!(web.volumes.len(), 2);
    assert_eq!(web.volumes[0].source.as_deref(), Some("other"));
    assert_eq!(web.volumes[1].source.as_deref(), Some(app.join("src").to_str().unwrap()));
    assert!(web.volumes[1].read_only);
    assert_eq!(web.build.as_ref().unwrap().context, app.join("web").to_str().unwrap());
    assert_eq!(web.depends_on["db"].condition, Condition::ServiceHealthy);
    assert_eq!(p.services["db"].image.as_deref(), Some("redis:7"));
    assert_eq!(
        p.services["db"].healthcheck.as_ref().unwrap().test.as_deref(),
        Some(&["CMD-SHELL".to_string(), "redis-cli ping".to_string()][..])
    );
    assert!(!p.services.contains_key("debug"), "debug profile is not enabled");
    assert_eq!(compose::plan::order(p, &["web".into()]).unwrap(), vec!["db", "web"]);
}

fn load_err(text: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "compose.yaml", text);
    load(&opts(d.path())).unwrap_err().to_string()
}

#[test]
fn errors_name_file_line_and_key() {
    let e = load_err("services:\n  web:\n    image: busybox\n    prots: [\"80:80\"]\n");
    assert!(e.contains("compose.yaml:4: services.web.prots: unknown key \"prots\""), "{e}");
    let e = load_err("services:\n  web:\n    image: busybox\n    ports:\n      - \"80:80\"\n      - \"eighty\"\n");
    assert!(e.contains("compose.yaml:6: services.web.ports"), "{e}");
    assert!(e.contains("invalid port"), "{e}");
    let e = load_err("services:\n  web:\n    image: busybox\n    privileged: maybe\n");
    assert!(e.contains(":4: services.web.privileged"), "{e}");
    let e = load_err("services:\n  web:\n    image: busybox\n    healthcheck:\n      interval: 5\n");
    assert!(e.contains(":5: services.web.healthcheck.interval") && e.contains("duration"), "{e}");
    let e = load_err("services:\n  web:\n    image: ${NOPE:?set NOPE first}\n");
    assert!(
        e.contains(":3: services.web.image: required variable NOPE is missing a value: set NOPE first"),
        "{e}"
    );
    let e = load_err("services:\n  web:\n    image: busybox\n   bad: indent\n");
    assert!(e.contains("compose.yaml") && e.contains("line 4"), "{e}");
}

#[test]
fn references_cycles_and_profiles() {
    let e = load_err("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [c]}\n  c: {image: x, depends_on: [a]}\n");
    assert!(e.contains("dependency cycle") && e.contains("a -> b -> c -> a"), "{e}");
    let e = load_err("services:\n  a: {image: x, depends_on: [nope]}\n");
    assert!(e.contains("undefined service \"nope\""), "{e}");
    let e = load_err("services:\n  a: {image: x, volumes: [\"data:/d\"]}\n");
    assert!(e.contains("undefined volume \"data\""), "{e}");
    let e = load_err("services:\n  a: {image: x, networks: [front]}\n");
    assert!(e.contains("undefined network \"front\""), "{e}");
    let e = load_err("services:\n  a: {build: .}\n  b: {}\n");
    assert!(e.contains("\"b\" has neither an image nor a build"), "{e}");
    let e = load_err("services:\n  a: {image: x, container_name: one, deploy: {replicas: 2}}\n");
    assert!(e.contains("cannot be scaled"), "{e}");
    let e = load_err("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, profiles: [p]}\n");
    assert!(e.contains("not enabled"), "{e}");
}
