//! From a project to engine requests: start order, the config hash that says whether a container
//! is current, what `up` does with each service's containers, and the Engine API bodies for
//! networks, volumes and containers, labelled `com.docker.compose.*` as Docker Compose labels them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::load::Loaded;
use crate::model::{Condition, Project, Service};

/// Label keys.
pub mod labels {
    /// Project name.
    pub const PROJECT: &str = "com.docker.compose.project";
    /// Service name.
    pub const SERVICE: &str = "com.docker.compose.service";
    /// 1-based replica number.
    pub const NUMBER: &str = "com.docker.compose.container-number";
    /// "True" for `run` containers.
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    /// Hash of the service's configuration.
    pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
    /// Project directory.
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    /// Files, comma separated.
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    /// Version of the compose implementation.
    pub const VERSION: &str = "com.docker.compose.version";
    /// Image ID the container was made from.
    pub const IMAGE: &str = "com.docker.compose.image";
    /// `service:condition:restart` entries, comma separated.
    pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
    /// Key of a network in the file.
    pub const NETWORK: &str = "com.docker.compose.network";
    /// Key of a volume in the file.
    pub const VOLUME: &str = "com.docker.compose.volume";
    /// Random suffix of a `run` container.
    pub const SLUG: &str = "com.docker.compose.slug";
}

/// Version written in `com.docker.compose.version`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-berth");

/// `services` and everything they depend on, dependencies first; a cycle is an error.
pub fn order(p: &Project, services: &[String]) -> Result<Vec<String>> {
    fn visit(p: &Project, s: &str, done: &mut Vec<String>, stack: &mut Vec<String>) -> Result<()> {
        if done.iter().any(|d| d == s) {
            return Ok(());
        }
        if let Some(i) = stack.iter().position(|x| x == s) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(s.to_string());
            return Err(Error::Cycle(cycle));
        }
        let Some(svc) = p.services.get(s) else {
            return Err(Error::Reference(format!("no such service: {s}")));
        };
        stack.push(s.to_string());
        for d in svc.dependencies() {
            if p.services.contains_key(&d) {
                visit(p, &d, done, stack)?;
            }
        }
        stack.pop();
        done.push(s.to_string());
        Ok(())
    }
    let mut done = Vec::new();
    for s in services {
        visit(p, s, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

/// Each service's depth in the dependency graph: 0 for one that depends on nothing, else one
/// more than its deepest dependency. Services of one depth can start (or stop) together.
pub fn depths(p: &Project) -> BTreeMap<String, usize> {
    fn depth(p: &Project, s: &str, memo: &mut BTreeMap<String, usize>, seen: &mut Vec<String>) -> usize {
        if let Some(d) = memo.get(s) {
            return *d;
        }
        if seen.iter().any(|x| x == s) {
            return 0; // a cycle: the loader refuses those; stay finite regardless
        }
        seen.push(s.to_string());
        let d = p.services.get(s).map_or(0, |svc| {
            svc.dependencies()
                .iter()
                .filter(|d| p.services.contains_key(*d))
                .map(|d| depth(p, d, memo, seen) + 1)
                .max()
                .unwrap_or(0)
        });
        seen.pop();
        memo.insert(s.to_string(), d);
        d
    }
    let mut memo = BTreeMap::new();
    for s in p.services.keys() {
        depth(p, s, &mut memo, &mut Vec::new());
    }
    memo
}

/// The image a service runs: its `image`, or `<project>-<service>` for a build without one.
pub fn image_name(p: &Project, service: &str) -> String {
    match p.services.get(service).and_then(|s| s.image.clone()) {
        Some(i) => i,
        None => format!("{}-{service}", p.name),
    }
}

/// The engine's name of a network key (`default` included).
pub fn network_name(p: &Project, key: &str) -> String {
    match p.networks.get(key).and_then(|n| n.name.clone()) {
        Some(n) => n,
        None => format!("{}_{key}", p.name),
    }
}

/// The engine's name of a volume key.
pub fn volume_name(p: &Project, key: &str) -> String {
    match p.volumes.get(key).and_then(|v| v.name.clone()) {
        Some(n) => n,
        None => format!("{}_{key}", p.name),
    }
}

/// A service's container name for replica `n`.
pub fn container_name(p: &Project, service: &str, n: u32) -> String {
    match p.services.get(service).and_then(|s| s.container_name.clone()) {
        Some(c) => c,
        None => format!("{}-{service}-{n}", p.name),
    }
}

/// The networks a service joins, in the order compose connects them (priority, then name); the
/// project's `default` when it names none and has no network_mode.
pub fn service_networks(svc: &Service) -> Vec<(String, crate::model::ServiceNetwork)> {
    if svc.network_mode.is_some() {
        return Vec::new();
    }
    let mut v: Vec<(String, crate::model::ServiceNetwork)> = match &svc.networks {
        Some(m) => m.iter().map(|(k, n)| (k.clone(), n.clone())).collect(),
        None => vec![("default".into(), Default::default())],
    };
    v.sort_by(|a, b| b.1.priority.unwrap_or(0).cmp(&a.1.priority.unwrap_or(0)).then(a.0.cmp(&b.0)));
    v
}

/// Networks the project uses: the declared ones any enabled service joins, and `default` if used.
pub fn used_networks(p: &Project) -> BTreeSet<String> {
    p.services
        .values()
        .flat_map(|s| service_networks(s).into_iter().map(|(k, _)| k))
        .collect()
}

/// The hash recorded in `com.docker.compose.config-hash`: the service's configuration (all but
/// its scale) and the image ID it runs; a change means the container is recreated.
pub fn config_hash(svc: &Service, image_id: &str) -> String {
    let mut s = svc.clone();
    s.scale = None;
    if let Some(d) = &mut s.deploy {
        d.replicas = None;
    }
    let body = json!({"service": s, "image": image_id});
    hex::encode(Sha256::digest(serde_json::to_vec(&body).unwrap_or_default()))
}

/// A container of the project as the engine lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Container ID.
    pub id: String,
    /// Its replica number.
    pub number: u32,
    /// Its config-hash label.
    pub hash: String,
    /// Whether it runs.
    pub running: bool,
}

/// What `up` does with one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Create (and start) replica `number`.
    Create(u32),
    /// Replace the container by a new one with the same number.
    Recreate(String, u32),
    /// Start the existing, current container.
    Start(String),
    /// Nothing to do: it runs and is current.
    Keep(String),
    /// Stop and remove (scaled down).
    Remove(String),
}

/// How `up` treats containers that exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Recreate {
    /// Recreate when the config hash differs.
    #[default]
    Changed,
    /// Always (`--force-recreate`).
    Always,
    /// Never (`--no-recreate`).
    Never,
}

/// The steps for one service: `replicas` wanted, `hash` current, `existing` as found.
pub fn plan_service(replicas: u32, hash: &str, existing: &[Existing], mode: Recreate) -> Vec<Step> {
    let mut by_number: Vec<&Existing> = existing.iter().collect();
    by_number.sort_by_key(|e| (e.number, e.id.clone()));
    let mut steps = Vec::new();
    let mut seen = BTreeSet::new();
    for e in &by_number {
        // Duplicates of a number (left by another client) and numbers above the scale go.
        if e.number == 0 || e.number > replicas || !seen.insert(e.number) {
            steps.push(Step::Remove(e.id.clone()));
            continue;
        }
        let stale = match mode {
            Recreate::Changed => e.hash != hash,
            Recreate::Always => true,
            Recreate::Never => false,
        };
        steps.push(match (stale, e.running) {
            (true, _) => Step::Recreate(e.id.clone(), e.number),
            (false, true) => Step::Keep(e.id.clone()),
            (false, false) => Step::Start(e.id.clone()),
        });
    }
    for n in 1..=replicas {
        if !seen.contains(&n) {
            steps.push(Step::Create(n));
        }
    }
    steps
}

/// `POST /networks/create` body for a network key.
pub fn network_body(l: &Loaded, key: &str) -> Value {
    let p = &l.project;
    let n = p.networks.get(key).cloned().unwrap_or_default();
    let mut labels: Map<String, Value> = n.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    labels.insert(labels::PROJECT.into(), json!(p.name));
    labels.insert(labels::NETWORK.into(), json!(key));
    labels.insert(labels::VERSION.into(), json!(VERSION));
    let mut body = json!({
        "Name": network_name(p, key),
        "Driver": n.driver.as_deref().unwrap_or("bridge"),
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Options": n.driver_opts,
        "Labels": labels,
        "CheckDuplicate": true,
    });
    if let Some(ipam) = &n.ipam {
        let config: Vec<Value> = ipam
            .config
            .iter()
            .map(|c| {
                let mut o = Map::new();
                if let Some(s) = &c.subnet {
                    o.insert("Subnet".into(), json!(s));
                }
                if let Some(r) = &c.ip_range {
                    o.insert("IPRange".into(), json!(r));
                }
                if let Some(g) = &c.gateway {
                    o.insert("Gateway".into(), json!(g));
                }
                if !c.aux_addresses.is_empty() {
                    o.insert("AuxiliaryAddresses".into(), json!(c.aux_addresses));
                }
                Value::Object(o)
            })
            .collect();
        body["IPAM"] = json!({"Driver": "default", "Config": config});
    }
    body
}

/// `POST /volumes/create` body for a volume key.
pub fn volume_body(p: &Project, key: &str) -> Value {
    let v = p.volumes.get(key).cloned().unwrap_or_default();
    let mut labels: Map<String, Value> = v.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    labels.insert(labels::PROJECT.into(), json!(p.name));
    labels.insert(labels::VOLUME.into(), json!(key));
    labels.insert(labels::VERSION.into(), json!(VERSION));
    json!({
        "Name": volume_name(p, key),
        "Driver": v.driver.as_deref().unwrap_or("local"),
        "DriverOpts": v.driver_opts,
        "Labels": labels,
    })
}

/// The compose labels of a container.
pub fn container_labels(l: &Loaded, service: &str, number: u32, oneoff: bool, hash: &str, image_id: &str) -> Map<String, Value> {
    let p = &l.project;
    let svc = &p.services[service];
    let mut m: Map<String, Value> = svc.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let deps: Vec<String> = svc
        .depends_on
        .iter()
        .map(|(d, dep)| {
            let c = serde_json::to_value(dep.condition)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            format!("{d}:{c}:{}", dep.restart)
        })
        .collect();
    let files: Vec<String> = l.files.iter().map(|f| f.display().to_string()).collect();
    for (k, v) in [
        (labels::PROJECT, p.name.clone()),
        (labels::SERVICE, service.to_string()),
        (labels::NUMBER, number.to_string()),
        (labels::ONEOFF, if oneoff { "True" } else { "False" }.to_string()),
        (labels::CONFIG_HASH, hash.to_string()),
        (labels::WORKING_DIR, l.dir.display().to_string()),
        (labels::CONFIG_FILES, files.join(",")),
        (labels::VERSION, VERSION.to_string()),
        (labels::IMAGE, image_id.to_string()),
        (labels::DEPENDS_ON, deps.join(",")),
    ] {
        m.insert(k.into(), json!(v));
    }
    m
}

/// A file to put into a container after it is created (a config or secret from `environment`
/// or `content`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inject {
    /// Absolute path in the container.
    pub target: String,
    /// The bytes.
    pub content: Vec<u8>,
    /// File mode.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
}

/// `POST /containers/create` body for replica `number` (without the networks beyond the first,
/// which are connected after create), and the files to inject. `network_mode` is the resolved
/// mode when the service uses `service:<name>` (the caller knows that container's ID).
pub fn container_body(
    l: &Loaded,
    service: &str,
    labels: Map<String, Value>,
    network_mode: Option<String>,
    env: &dyn crate::interpolate::Lookup,
) -> Result<(Value, Vec<Inject>)> {
    let p = &l.project;
    let svc = &p.services[service];
    let mut host = Map::new();
    let mut cfg = Map::new();
    cfg.insert("Image".into(), json!(image_name(p, service)));
    cfg.insert("Labels".into(), Value::Object(labels));
    if let Some(c) = &svc.command {
        cfg.insert("Cmd".into(), json!(c));
    }
    if let Some(e) = &svc.entrypoint {
        cfg.insert("Entrypoint".into(), json!(e));
    }
    let env_list: Vec<String> = svc
        .environment
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    if !env_list.is_empty() {
        cfg.insert("Env".into(), json!(env_list));
    }
    for (key, v) in [
        ("WorkingDir", &svc.working_dir),
        ("User", &svc.user),
        ("Hostname", &svc.hostname),
        ("Domainname", &svc.domainname),
        ("StopSignal", &svc.stop_signal),
    ] {
        if let Some(v) = v {
            cfg.insert(key.into(), json!(v));
        }
    }
    if let Some(t) = svc.tty {
        cfg.insert("Tty".into(), json!(t));
    }
    if let Some(s) = svc.stdin_open {
        cfg.insert("OpenStdin".into(), json!(s));
    }
    if let Some(g) = svc.stop_grace_period {
        cfg.insert("StopTimeout".into(), json!(g.ceil() as i64));
    }
    if let Some(h) = &svc.healthcheck {
        let ns = |s: Option<f64>| s.map(|s| (s * 1e9) as i64).unwrap_or(0);
        let test = if h.disable {
            Some(vec!["NONE".to_string()])
        } else {
            h.test.clone()
        };
        let mut hc = json!({
            "Interval": ns(h.interval),
            "Timeout": ns(h.timeout),
            "Retries": h.retries.unwrap_or(0),
            "StartPeriod": ns(h.start_period),
            "StartInterval": ns(h.start_interval),
        });
        if let Some(t) = test {
            hc["Test"] = json!(t);
        }
        cfg.insert("Healthcheck".into(), hc);
    }

    // Ports.
    let mut exposed = Map::new();
    let mut bindings: Map<String, Value> = Map::new();
    for e in &svc.expose {
        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (a, b) = match port.split_once('-') {
            Some((a, b)) => (a.parse::<u16>(), b.parse::<u16>()),
            None => (port.parse::<u16>(), port.parse::<u16>()),
        };
        let (Ok(a), Ok(b)) = (a, b) else {
            return Err(Error::Reference(format!("service {service:?}: invalid expose entry {e:?}")));
        };
        for port in a..=b {
            exposed.insert(format!("{port}/{proto}"), json!({}));
        }
    }
    for port in &svc.ports {
        let end = port.target_end.unwrap_or(port.target);
        let (pub_start, pub_end) = match &port.published {
            Some(p) => match p.split_once('-') {
                Some((a, b)) => (a.parse::<u16>().ok(), b.parse::<u16>().ok()),
                None => (p.parse::<u16>().ok(), None),
            },
            None => (None, None),
        };
        if port.published.is_some() && pub_start.is_none() {
            return Err(Error::Reference(format!(
                "service {service:?}: invalid published port {:?}",
                port.published
            )));
        }
        for (i, t) in (port.target..=end).enumerate() {
            let key = format!("{t}/{}", port.protocol);
            exposed.insert(key.clone(), json!({}));
            let host_port = match (pub_start, pub_end) {
                (Some(a), Some(b)) if end == port.target => format!("{a}-{b}"),
                (Some(a), _) => (a + i as u16).to_string(),
                (None, _) => String::new(),
            };
            let entry = json!({"HostIp": port.host_ip.clone().unwrap_or_default(), "HostPort": host_port});
            match bindings.get_mut(&key) {
                Some(Value::Array(a)) => a.push(entry),
                _ => {
                    bindings.insert(key, json!([entry]));
                }
            }
        }
    }
    if !exposed.is_empty() {
        cfg.insert("ExposedPorts".into(), Value::Object(exposed));
    }
    if !bindings.is_empty() {
        host.insert("PortBindings".into(), Value::Object(bindings));
    }

    // Mounts.
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    let mut tmpfs = Map::new();
    for t in &svc.tmpfs {
        let (path, opts) = t.split_once(':').unwrap_or((t, ""));
        tmpfs.insert(path.to_string(), json!(opts));
    }
    for m in &svc.volumes {
        match m.kind.as_str() {
            "bind" if m.bind.as_ref().and_then(|b| b.create_host_path).unwrap_or(false) => {
                let mut opts = Vec::new();
                if m.read_only {
                    opts.push("ro".to_string());
                }
                if let Some(pr) = m.bind.as_ref().and_then(|b| b.propagation.clone()) {
                    opts.push(pr);
                }
                let src = m.source.clone().unwrap_or_default();
                binds.push(if opts.is_empty() {
                    format!("{src}:{}", m.target)
                } else {
                    format!("{src}:{}:{}", m.target, opts.join(","))
                });
            }
            "tmpfs" => {
                let mut o = json!({"Type": "tmpfs", "Target": m.target, "ReadOnly": m.read_only});
                if let Some(t) = &m.tmpfs {
                    let mut opts = Map::new();
                    if let Some(s) = t.size {
                        opts.insert("SizeBytes".into(), json!(s));
                    }
                    if let Some(md) = t.mode {
                        opts.insert("Mode".into(), json!(md));
                    }
                    o["TmpfsOptions"] = Value::Object(opts);
                }
                mounts.push(o);
            }
            kind => {
                let source = match (kind, &m.source) {
                    ("volume", Some(s)) => volume_name(p, s),
                    (_, s) => s.clone().unwrap_or_default(),
                };
                let mut o = json!({"Type": kind, "Source": source, "Target": m.target, "ReadOnly": m.read_only});
                if let Some(v) = &m.volume {
                    let mut opts = json!({"NoCopy": v.nocopy});
                    if let Some(sp) = &v.subpath {
                        opts["Subpath"] = json!(sp);
                    }
                    o["VolumeOptions"] = opts;
                }
                if let Some(pr) = m.bind.as_ref().and_then(|b| b.propagation.clone()) {
                    o["BindOptions"] = json!({"Propagation": pr});
                }
                mounts.push(o);
            }
        }
    }
    // Configs and secrets: files are bound read-only; environment/content are injected.
    let mut inject = Vec::new();
    for (refs, defs, secret) in [(&svc.secrets, &p.secrets, true), (&svc.configs, &p.configs, false)] {
        for r in refs {
            let def = &defs[&r.source];
            let target = match &r.target {
                Some(t) if t.starts_with('/') => t.clone(),
                Some(t) if secret => format!("/run/secrets/{t}"),
                Some(t) => format!("/{t}"),
                None if secret => format!("/run/secrets/{}", r.source),
                None => format!("/{}", r.source),
            };
            if let Some(f) = &def.file {
                if r.uid.is_some() || r.gid.is_some() || r.mode.is_some() {
                    return Err(Error::Reference(format!(
                        "service {service:?}: uid, gid and mode of {:?} need a config or secret from environment or content (a file is bind-mounted as it is)",
                        r.source
                    )));
                }
                mounts.push(json!({"Type": "bind", "Source": f, "Target": target, "ReadOnly": true}));
                continue;
            }
            let content = match (&def.environment, &def.content) {
                (Some(var), _) => env
                    .get(var)
                    .ok_or_else(|| Error::Reference(format!("{:?}: environment variable {var} is not set", r.source)))?,
                (None, Some(c)) => c.clone(),
                (None, None) => String::new(),
            };
            let num = |s: &Option<String>| s.as_deref().map(str::parse::<u64>).transpose();
            let (Ok(uid), Ok(gid)) = (num(&r.uid), num(&r.gid)) else {
                return Err(Error::Reference(format!(
                    "service {service:?}: uid and gid of {:?} must be numbers",
                    r.source
                )));
            };
            inject.push(Inject {
                target,
                content: content.into_bytes(),
                mode: r.mode.unwrap_or(0o444),
                uid: uid.unwrap_or(0),
                gid: gid.unwrap_or(0),
            });
        }
    }
    if !binds.is_empty() {
        host.insert("Binds".into(), json!(binds));
    }
    if !mounts.is_empty() {
        host.insert("Mounts".into(), json!(mounts));
    }
    if !tmpfs.is_empty() {
        host.insert("Tmpfs".into(), Value::Object(tmpfs));
    }

    // Restart policy: `restart`, else deploy.restart_policy.
    let restart = match (&svc.restart, svc.deploy.as_ref().and_then(|d| d.restart_policy.as_ref())) {
        (Some(r), _) => {
            let (name, n) = r.split_once(':').map(|(a, b)| (a, b.parse().unwrap_or(0))).unwrap_or((r, 0));
            Some((name.to_string(), n))
        }
        (None, Some(rp)) => Some((
            match rp.condition.as_deref() {
                Some("none") => "no".to_string(),
                Some("on-failure") => "on-failure".to_string(),
                _ => "always".to_string(),
            },
            rp.max_attempts.unwrap_or(0),
        )),
        (None, None) => None,
    };
    if let Some((name, n)) = restart {
        host.insert("RestartPolicy".into(), json!({"Name": name, "MaximumRetryCount": n}));
    }

    // Resources: the plain keys, else deploy.resources.
    let limits = svc
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    let reservations = svc
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.clone())
        .unwrap_or_default();
    if let Some(m) = svc.mem_limit.or(limits.memory) {
        host.insert("Memory".into(), json!(m));
    }
    if let Some(m) = svc.memswap_limit {
        host.insert("MemorySwap".into(), json!(m));
    }
    if let Some(m) = reservations.memory {
        host.insert("MemoryReservation".into(), json!(m));
    }
    // Devices: GPU and CDI requests (the engine resolves them against its CDI specs), host
    // device nodes.
    let mut requests: Vec<Value> = svc
        .gpus
        .iter()
        .chain(&reservations.devices)
        .map(|r| {
            json!({
                "Driver": r.driver.clone().unwrap_or_default(),
                "Count": r.count.unwrap_or(if r.device_ids.is_empty() { -1 } else { 0 }),
                "DeviceIDs": r.device_ids,
                "Capabilities": [r.capabilities],
                "Options": r.options,
            })
        })
        .collect();
    let (cdi, nodes): (Vec<&String>, Vec<&String>) = svc.devices.iter().partition(|d| is_cdi_name(d));
    if !cdi.is_empty() {
        requests.push(json!({"Driver": "cdi", "DeviceIDs": cdi}));
    }
    if !requests.is_empty() {
        host.insert("DeviceRequests".into(), Value::Array(requests));
    }
    if !nodes.is_empty() {
        let mut list = Vec::new();
        for d in nodes {
            let (h, c, p) = crate::units::device_mapping(d).map_err(|e| Error::Reference(format!("service {service:?}: {e}")))?;
            list.push(json!({"PathOnHost": h, "PathInContainer": c, "CgroupPermissions": p}));
        }
        host.insert("Devices".into(), Value::Array(list));
    }
    if let Some(c) = svc.cpus.or(limits.cpus) {
        host.insert("NanoCpus".into(), json!((c * 1e9).round() as i64));
    }
    if let Some(c) = svc.cpu_shares {
        host.insert("CpuShares".into(), json!(c));
    }
    if let Some(pl) = svc.pids_limit.or(limits.pids) {
        host.insert("PidsLimit".into(), json!(pl));
    }
    if let Some(s) = svc.shm_size {
        host.insert("ShmSize".into(), json!(s));
    }
    for (key, list) in [
        ("ExtraHosts", &svc.extra_hosts),
        ("Dns", &svc.dns),
        ("DnsSearch", &svc.dns_search),
        ("DnsOptions", &svc.dns_opt),
        ("CapAdd", &svc.cap_add),
        ("CapDrop", &svc.cap_drop),
        ("SecurityOpt", &svc.security_opt),
    ] {
        if !list.is_empty() {
            host.insert(key.into(), json!(list));
        }
    }
    if !svc.sysctls.is_empty() {
        host.insert("Sysctls".into(), json!(svc.sysctls));
    }
    if !svc.ulimits.is_empty() {
        let u: Vec<Value> = svc
            .ulimits
            .iter()
            .map(|(n, u)| json!({"Name": n, "Soft": u.soft, "Hard": u.hard}))
            .collect();
        host.insert("Ulimits".into(), json!(u));
    }
    for (key, v) in [
        ("Privileged", svc.privileged),
        ("Init", svc.init),
        ("ReadonlyRootfs", svc.read_only),
    ] {
        if let Some(v) = v {
            host.insert(key.into(), json!(v));
        }
    }

    // Networks: the first at create, the others connected after.
    let nets = service_networks(svc);
    let mut networking = Map::new();
    match (network_mode, svc.network_mode.as_deref(), nets.first()) {
        (Some(m), _, _) => {
            host.insert("NetworkMode".into(), json!(m));
        }
        (None, Some(m), _) => {
            host.insert("NetworkMode".into(), json!(m));
        }
        (None, None, Some((key, n))) => {
            let name = network_name(p, key);
            host.insert("NetworkMode".into(), json!(name));
            networking.insert(name, endpoint(service, n));
        }
        (None, None, None) => {}
    }
    let mut body = Value::Object(cfg);
    body["HostConfig"] = Value::Object(host);
    if !networking.is_empty() {
        body["NetworkingConfig"] = json!({"EndpointsConfig": networking});
    }
    Ok((body, inject))
}

/// The endpoint settings of a service on one network: the service name and its aliases as DNS
/// names, a fixed address and MAC when given.
pub fn endpoint(service: &str, n: &crate::model::ServiceNetwork) -> Value {
    let mut aliases = vec![service.to_string()];
    aliases.extend(n.aliases.iter().cloned());
    let mut e = json!({"Aliases": aliases});
    if let Some(ip) = &n.ipv4_address {
        e["IPAMConfig"] = json!({"IPv4Address": ip});
    }
    if let Some(m) = &n.mac_address {
        e["MacAddress"] = json!(m);
    }
    e
}

/// The dependencies `up` must wait on before starting `service`, with their condition.
pub fn waits(svc: &Service) -> BTreeMap<String, Condition> {
    svc.depends_on.iter().map(|(k, d)| (k.clone(), d.condition)).collect()
}

/// Whether a `devices:` entry is a CDI name (`vendor.com/class=name`) rather than a path.
fn is_cdi_name(d: &str) -> bool {
    !d.starts_with('/') && d.split_once('=').is_some_and(|(kind, n)| kind.contains('/') && !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, number: u32, hash: &str, running: bool) -> Existing {
        Existing {
            id: id.into(),
            number,
            hash: hash.into(),
            running,
        }
    }

    #[test]
    fn plan_keeps_current_recreates_changed_and_scales() {
        let existing = [ex("a", 1, "h", true), ex("b", 2, "old", true), ex("c", 3, "h", false)];
        assert_eq!(
            plan_service(4, "h", &existing, Recreate::Changed),
            vec![
                Step::Keep("a".into()),
                Step::Recreate("b".into(), 2),
                Step::Start("c".into()),
                Step::Create(4)
            ]
        );
        assert_eq!(
            plan_service(1, "h", &existing, Recreate::Never),
            vec![Step::Keep("a".into()), Step::Remove("b".into()), Step::Remove("c".into())]
        );
        assert_eq!(
            plan_service(1, "h", &[ex("a", 1, "h", true)], Recreate::Always),
            vec![Step::Recreate("a".into(), 1)]
        );
        assert_eq!(plan_service(2, "h", &[], Recreate::Changed), vec![Step::Create(1), Step::Create(2)]);
    }

    #[test]
    fn depths_group_services_that_stop_together() {
        let y = "services:\n  web: {image: x, depends_on: [db, cache]}\n  db: {image: x}\n  cache: {image: x, depends_on: [db]}\n  w1: {image: x, depends_on: [web]}\n  w2: {image: x, depends_on: [web]}\n";
        let node = crate::node::Node::parse(y, 0, "f").unwrap();
        let p: Project = serde_json::from_value(node.to_json()).unwrap();
        let d = depths(&p);
        assert_eq!((d["db"], d["cache"], d["web"], d["w1"], d["w2"]), (0, 1, 2, 3, 3));
    }

    #[test]
    fn hash_ignores_scale_only() {
        let mut s = Service {
            image: Some("busybox".into()),
            ..Service::default()
        };
        let h = config_hash(&s, "sha256:1");
        s.scale = Some(3);
        assert_eq!(config_hash(&s, "sha256:1"), h);
        assert_ne!(config_hash(&s, "sha256:2"), h);
        s.command = Some(vec!["true".into()]);
        assert_ne!(config_hash(&s, "sha256:1"), h);
    }
}
