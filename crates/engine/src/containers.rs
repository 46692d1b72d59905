//! Container lifecycle: create, start, stop, kill, restart, pause, remove, rename, update, wait.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use runtime::proto::Request;
use runtime::spec::{MountSpec, NetMode, RunSpec};
use serde::Deserialize;

use crate::engine::{random_id, Engine, Entry, PendingAttach};
use crate::error::{internal, Error, Result};
use crate::types::{now, Container, ContainerConfig, HostConfig, State};

/// The body of `POST /containers/create`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    #[serde(default)]
    pub host_config: HostConfig,
    #[serde(default)]
    pub networking_config: Option<serde_json::Value>,
}

pub fn parse_signal(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::BadRequest(format!("invalid signal: {s}")));
    }
    let up = t.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::BadRequest(format!("invalid signal: {s}")))
}

/// A process's environment from `Config.Env`: entries without `=` (`-e NAME` with NAME unset on
/// the client) only hide a variable, as in Docker; they are not passed on.
pub(crate) fn process_env(env: &[String]) -> Vec<String> {
    env.iter().filter(|e| e.contains('=')).cloned().collect()
}

fn valid_container_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// Name generator: docker-like adjective_noun.
fn generate_name(engine: &Engine) -> String {
    const A: &[&str] = &[
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nifty", "proud", "quirky", "sharp",
        "tender", "vivid", "witty", "zealous",
    ];
    const N: &[&str] = &[
        "turing", "hopper", "lovelace", "curie", "noether", "euler", "gauss", "ritchie", "thompson", "torvalds", "knuth", "dijkstra",
        "shannon", "babbage", "hamilton", "liskov",
    ];
    loop {
        let id = random_id();
        let b = u64::from_str_radix(&id[..12], 16).unwrap_or(0);
        let name = format!("/{}_{}", A[(b % A.len() as u64) as usize], N[((b >> 16) % N.len() as u64) as usize]);
        let name = if engine.name_taken(&name).is_some() {
            format!("{name}{}", b % 100)
        } else {
            name
        };
        if engine.name_taken(&name).is_none() {
            return name;
        }
    }
}

/// Create the working directory in the container's root filesystem when the image lacks it (a
/// `-w` or `WORKDIR` that names a new directory), as Docker does: mode 0755, owned by root,
/// resolved inside the root so a symlink in the image cannot point it elsewhere.
fn make_workdir(rootfs: &std::path::Path, cwd: &str) -> Result<()> {
    let comps: Vec<&std::ffi::OsStr> = cwd
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(std::ffi::OsStr::new)
        .collect();
    if comps.is_empty() {
        return Ok(());
    }
    let root = std::fs::File::open(rootfs).map_err(internal)?;
    image::unpack::mkdir_all_in_root(std::os::fd::AsRawFd::as_raw_fd(&root), &comps, std::path::Path::new(cwd))
        .map(drop)
        .map_err(|e| Error::BadRequest(format!("working directory {cwd}: {e}")))
}

/// The client's terminal size at create time (`HostConfig.ConsoleSize`, rows and columns).
fn console_size(hc: &HostConfig) -> Option<(u16, u16)> {
    let a = hc.extra.get("ConsoleSize")?.as_array()?;
    Some((a.first()?.as_u64()? as u16, a.get(1)?.as_u64()? as u16)).filter(|(h, w)| *h > 0 && *w > 0)
}

/// `name:ip` (Docker's `--add-host`); `host-gateway` needs bridge networking.
pub(crate) fn parse_extra_host(h: &str) -> Result<(String, String)> {
    let (name, ip) = h
        .split_once(':')
        .ok_or_else(|| Error::BadRequest(format!("invalid extra host {h:?}: expected name:ip")))?;
    if ip == "host-gateway" {
        return Err(Error::BadRequest(format!(
            "extra host {h:?}: host-gateway needs bridge networking, which Berth does not have yet"
        )));
    }
    if ip.parse::<std::net::IpAddr>().is_err() || name.is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::BadRequest(format!("invalid extra host {h:?}: expected name:ip")));
    }
    Ok((name.to_string(), ip.to_string()))
}

/// The container's resolv.conf: the host's, or the `--dns*` options.
fn resolv_conf(hc: &HostConfig) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (dns, search, opts) = (
        hc.dns.clone().unwrap_or_default(),
        hc.dns_search.clone().unwrap_or_default(),
        hc.dns_options.clone().unwrap_or_default(),
    );
    if dns.is_empty() && search.is_empty() && opts.is_empty() {
        return host;
    }
    let mut out = String::new();
    let keep = |prefix: &str| {
        host.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    if search.is_empty() {
        out.push_str(&keep("search"));
    } else {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if dns.is_empty() {
        out.push_str(&keep("nameserver"));
    } else {
        for d in &dns {
            out.push_str(&format!("nameserver {d}\n"));
        }
    }
    if opts.is_empty() {
        out.push_str(&keep("options"));
    } else {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

/// HostConfig fields Berth does not implement, refused when set rather than silently ignored.
fn check_unimplemented(hc: &HostConfig) -> Result<()> {
    let set = |k: &str| -> bool {
        match hc.extra.get(k) {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(serde_json::Value::String(s)) => !s.is_empty(),
            Some(serde_json::Value::Array(a)) => !a.is_empty(),
            Some(serde_json::Value::Object(o)) => !o.is_empty(),
        }
    };
    let ports = hc
        .port_bindings
        .as_ref()
        .is_some_and(|p| p.as_object().is_some_and(|o| !o.is_empty()));
    if ports || set("PublishAllPorts") {
        return Err(Error::BadRequest(
            "publishing ports (-p/-P) needs bridge networking, which Berth does not have yet".into(),
        ));
    }
    for k in [
        "Links",
        "VolumesFrom",
        "Sysctls",
        "OomKillDisable",
        "CgroupParent",
        "BlkioWeight",
        "BlkioWeightDevice",
        "BlkioDeviceReadBps",
        "BlkioDeviceWriteBps",
        "DeviceCgroupRules",
        "DeviceRequests",
        "StorageOpt",
        "KernelMemory",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
    ] {
        if set(k) {
            return Err(Error::BadRequest(format!("HostConfig.{k} is not supported by Berth")));
        }
    }
    for h in hc.extra_hosts.iter().flatten() {
        parse_extra_host(h)?;
    }
    for u in hc.ulimits.iter().flatten() {
        runtime::spec::rlimit_name(&u.name)?;
        if u.soft > u.hard {
            return Err(Error::BadRequest(format!(
                "ulimit {}: soft limit {} is above the hard limit {}",
                u.name, u.soft, u.hard
            )));
        }
    }
    Ok(())
}

pub(crate) fn check_supported(hc: &HostConfig) -> Result<()> {
    check_unimplemented(hc)?;
    for (field, v) in [
        ("PidMode", &hc.pid_mode),
        ("IpcMode", &hc.ipc_mode),
        ("UTSMode", &hc.uts_mode),
        ("UsernsMode", &hc.userns_mode),
    ] {
        if !v.is_empty() && v != "private" && v != "shareable" {
            return Err(Error::BadRequest(format!("HostConfig.{field}={v:?} is not supported by Berth")));
        }
    }
    if hc.devices.as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(Error::BadRequest("HostConfig.Devices is not supported by Berth".into()));
    }
    match hc.network_mode.as_str() {
        "" | "default" | "bridge" | "none" | "host" => {}
        other if other.starts_with("container:") => {
            return Err(Error::BadRequest(format!(
                "network mode {other:?} (sharing another container's network) is not supported by Berth"
            )))
        }
        // As Docker answers for a network that does not exist (user-defined networks are not here yet).
        other => return Err(Error::NotFound(format!("network {other} not found"))),
    }
    match hc.restart_policy.name.as_str() {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
        other => {
            return Err(Error::BadRequest(format!(
                "invalid restart policy: unknown policy {other:?}; use one of 'no', 'always', 'on-failure' or 'unless-stopped'"
            )))
        }
    }
    if hc.restart_policy.maximum_retry_count != 0 && hc.restart_policy.name != "on-failure" {
        return Err(Error::BadRequest(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'".into(),
        ));
    }
    if hc.auto_remove && !matches!(hc.restart_policy.name.as_str(), "" | "no") {
        return Err(Error::BadRequest(
            "conflicting options: cannot specify both --restart and --rm".into(),
        ));
    }
    for o in hc.security_opt.iter().flatten() {
        let ok = o == "no-new-privileges"
            || o == "no-new-privileges:true"
            || o == "no-new-privileges=true"
            || o == "no-new-privileges:false"
            || o == "no-new-privileges=false"
            || o == "seccomp=unconfined"
            || o == "seccomp:unconfined";
        if !ok {
            return Err(Error::BadRequest(format!("security option {o:?} is not supported by Berth")));
        }
    }
    for c in hc.cap_add.iter().flatten().chain(hc.cap_drop.iter().flatten()) {
        runtime::spec::normalize_cap(c)?;
    }
    if hc.memory != 0 && hc.memory < 6 * 1024 * 1024 {
        return Err(Error::BadRequest("Minimum memory limit allowed is 6MB".into()));
    }
    if hc.nano_cpus != 0 && (hc.cpu_quota != 0 || hc.cpu_period != 0) {
        return Err(Error::BadRequest(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set".into(),
        ));
    }
    let ncpu = std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1);
    if hc.nano_cpus > ncpu * 1_000_000_000 {
        return Err(Error::BadRequest(format!(
            "range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    Ok(())
}

impl Engine {
    /// The runtime a container asks for by name (`""`: the daemon's default), or Docker's error
    /// for one the daemon does not know.
    pub fn runtime_name(&self, asked: &str) -> Result<String> {
        let name = match asked {
            "" => self.cfg.default_runtime.as_str(),
            // What Docker calls its runc shim.
            "io.containerd.runc.v2" => "runc",
            n => n,
        };
        if name == crate::engine::BUILTIN_RUNTIME || self.cfg.runtimes.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(Error::BadRequest(format!("unknown or invalid runtime name: {asked}")))
        }
    }

    /// The binary of runtime `name`; `None` for the built-in one.
    pub fn runtime_binary(&self, name: &str) -> Result<Option<PathBuf>> {
        if name == crate::engine::BUILTIN_RUNTIME {
            return Ok(None);
        }
        let p = self
            .cfg
            .runtimes
            .get(name)
            .ok_or_else(|| Error::BadRequest(format!("unknown or invalid runtime name: {name}")))?;
        runtime::external::resolve(p)
            .map(Some)
            .ok_or_else(|| Error::BadRequest(format!("runtime {name}: {} is not installed (not found on PATH)", p.display())))
    }

    /// The runtime recorded for a container at create (the default one for older records).
    fn container_runtime(&self, c: &Container) -> Result<Option<PathBuf>> {
        let asked = c.host_config.extra.get("Runtime").and_then(|v| v.as_str()).unwrap_or("");
        self.runtime_binary(&self.runtime_name(asked)?)
    }

    /// `POST /containers/create`.
    pub async fn create(self: &Arc<Self>, name: Option<&str>, mut req: CreateRequest) -> Result<(String, Vec<String>)> {
        check_supported(&req.host_config)?;
        let rt = self.runtime_name(req.host_config.extra.get("Runtime").and_then(|v| v.as_str()).unwrap_or(""))?;
        self.runtime_binary(&rt)?;
        req.host_config.extra.insert("Runtime".into(), serde_json::Value::String(rt));
        if req.config.image.is_empty() {
            return Err(Error::BadRequest("config.Image must be set".into()));
        }
        let image_id = self
            .images
            .resolve(&req.config.image)
            .map_err(|_| Error::NotFound(format!("No such image: {}", req.config.image)))?;
        let img = self.images.config(&image_id)?;
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.trim_start_matches('/');
                if !valid_container_name(n) {
                    return Err(Error::BadRequest(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                let full = format!("/{n}");
                if let Some(other) = self.name_taken(&full) {
                    return Err(Error::Conflict(format!(
                        "Conflict. The container name \"{full}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                full
            }
            None => generate_name(self),
        };
        // Merge the image's defaults into the container config, as Docker does at create time.
        let ic = &img.config;
        let cfg = &mut req.config;
        let mut env: Vec<String> = ic.env.clone().unwrap_or_default();
        // `-e NAME` (unset on the client's side) is kept as Docker keeps it: it hides the image's
        // NAME, and the process gets no NAME at all (see `process_env`).
        for kv in cfg.env.clone().unwrap_or_default() {
            let key = kv.split('=').next().unwrap_or("").to_string();
            env.retain(|e| e.split('=').next() != Some(&key));
            env.push(kv);
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        }
        cfg.env = Some(env);
        let entry_overridden = cfg.entrypoint.is_some();
        if cfg.entrypoint.is_none() {
            cfg.entrypoint = ic.entrypoint.clone();
        }
        if cfg.entrypoint.as_ref().is_some_and(|e| e.len() == 1 && e[0].is_empty()) {
            cfg.entrypoint = None;
        }
        if cfg.cmd.is_none() && !entry_overridden {
            cfg.cmd = ic.cmd.clone();
        }
        if cfg.working_dir.is_empty() {
            cfg.working_dir = ic.working_dir.clone().unwrap_or_default();
        }
        if !cfg.working_dir.is_empty() && !cfg.working_dir.starts_with('/') {
            return Err(Error::BadRequest(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                cfg.working_dir
            )));
        }
        if cfg.user.is_empty() {
            cfg.user = ic.user.clone().unwrap_or_default();
        }
        if cfg.stop_signal.is_none() {
            cfg.stop_signal = ic.stop_signal.clone();
        }
        if let Some(s) = &cfg.stop_signal {
            parse_signal(s)?;
        }
        let image_check = match &ic.healthcheck {
            Some(v) => Some(
                serde_json::from_value::<crate::health::HealthConfig>(v.clone())
                    .map_err(|e| Error::BadRequest(format!("the image's healthcheck: {e}")))?,
            ),
            None => None,
        };
        match (&mut cfg.healthcheck, image_check) {
            (None, img) => cfg.healthcheck = img,
            (Some(mine), Some(img)) => mine.inherit(&img),
            (Some(_), None) => {}
        }
        if let Some(h) = &cfg.healthcheck {
            h.validate()?;
        }
        for (k, v) in ic.labels.clone().unwrap_or_default() {
            cfg.labels.entry(k).or_insert(v);
        }
        if let Some(v) = &ic.volumes {
            let mut vols = cfg.volumes.clone().unwrap_or_default();
            for k in v.keys() {
                vols.entry(k.clone()).or_insert(serde_json::json!({}));
            }
            cfg.volumes = Some(vols);
        }
        if cfg.exposed_ports.is_none() {
            cfg.exposed_ports = ic.exposed_ports.clone();
        }
        let mut args: Vec<String> = cfg.entrypoint.clone().unwrap_or_default();
        args.extend(cfg.cmd.clone().unwrap_or_default());
        if args.is_empty() {
            return Err(Error::BadRequest("no command specified".into()));
        }
        if req.host_config.network_mode.is_empty() || req.host_config.network_mode == "default" {
            req.host_config.network_mode = "bridge".into();
        }
        if req.host_config.restart_policy.name.is_empty() {
            req.host_config.restart_policy.name = "no".into();
        }
        let id = random_id();
        if cfg.hostname.is_empty() {
            cfg.hostname = if req.host_config.network_mode == "host" {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                id[..12].to_string()
            };
        }
        // Binds must parse now so a bad one fails create, not start.
        for b in req.host_config.binds.iter().flatten() {
            parse_bind(b)?;
        }
        let c = Container {
            id: id.clone(),
            name,
            created: now(),
            path: args[0].clone(),
            args: args[1..].to_vec(),
            config: req.config,
            host_config: req.host_config,
            image: image_id.to_string(),
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            anon_volumes: vec![],
        };
        let dir = self.container_dir(&id);
        for d in ["diff", "work", "rootfs"] {
            std::fs::create_dir_all(dir.join(d)).map_err(internal)?;
        }
        self.save(&c)?;
        self.emit(&c, "create");
        self.insert(c);
        Ok((id, vec![]))
    }

    /// Mount the container's rootfs (overlay of init layer, image layers and upper dir) unless it is.
    pub(crate) fn mount_rootfs(&self, c: &Container) -> Result<()> {
        let target = self.rootfs(&c.id);
        if image::snapshot::is_mountpoint(&target) {
            return Ok(());
        }
        let image_id = oci::Digest::parse(&c.image)?;
        let mut lowers = self.images.lower_dirs(&image_id)?;
        if lowers.is_empty() {
            let empty = self.cfg.root.join("image").join("empty");
            std::fs::create_dir_all(&empty).map_err(internal)?;
            lowers.push(empty);
        }
        let dir = self.container_dir(&c.id);
        // The init layer holds the runtime's mount points, so they never show up as changes.
        let init = dir.join("init");
        if !init.exists() {
            let tmp = dir.join("init.tmp");
            let _ = std::fs::remove_dir_all(&tmp);
            for d in ["dev/pts", "dev/shm", "dev/mqueue", "proc", "sys", "etc"] {
                std::fs::create_dir_all(tmp.join(d)).map_err(internal)?;
            }
            for f in ["etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab"] {
                std::fs::write(tmp.join(f), b"").map_err(internal)?;
            }
            let _ = std::fs::remove_file(tmp.join("etc/mtab"));
            let _ = std::os::unix::fs::symlink("/proc/mounts", tmp.join("etc/mtab"));
            std::fs::rename(&tmp, &init).map_err(internal)?;
        }
        lowers.insert(0, init);
        std::fs::create_dir_all(&target).map_err(internal)?;
        image::snapshot::mount_overlay(&lowers, &dir.join("diff"), &dir.join("work"), &target)?;
        Ok(())
    }

    fn build_run_spec(&self, c: &mut Container) -> Result<RunSpec> {
        let dir = self.container_dir(&c.id);
        let rootfs = self.rootfs(&c.id);
        let hc = c.host_config.clone();
        let (uid, gid, mut gids, home) = runtime::spec::resolve_user(&rootfs, &c.config.user)?;
        for g in hc.group_add.iter().flatten() {
            let n: u32 = g
                .parse()
                .map_err(|_| Error::BadRequest(format!("group {g:?}: only numeric groups are supported in GroupAdd")))?;
            gids.push(n);
        }
        let mut env = process_env(c.config.env.as_deref().unwrap_or_default());
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={home}"));
        }
        if c.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={}", c.config.hostname));
        }
        let mut args = vec![c.path.clone()];
        args.extend(c.args.iter().cloned());
        let mut mounts = Vec::new();
        // /etc/hostname, /etc/hosts, /etc/resolv.conf, as Docker provides them.
        std::fs::write(dir.join("hostname"), format!("{}\n", c.config.hostname)).map_err(internal)?;
        let mut hosts = if hc.network_mode == "host" {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{}\n", c.config.hostname)
        };
        for h in hc.extra_hosts.iter().flatten() {
            let (name, ip) = parse_extra_host(h)?;
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
        std::fs::write(dir.join("hosts"), hosts).map_err(internal)?;
        let resolv = resolv_conf(&hc);
        std::fs::write(dir.join("resolv.conf"), resolv).map_err(internal)?;
        for f in ["hostname", "hosts", "resolv.conf"] {
            mounts.push(MountSpec {
                source: dir.join(f).display().to_string(),
                destination: format!("/etc/{f}"),
                kind: "bind".into(),
                options: vec!["rbind".into(), "rprivate".into()],
            });
        }
        // Volumes and binds.
        let mut targets: Vec<String> = Vec::new();
        for b in hc.binds.iter().flatten() {
            let (src, dst, ro) = parse_bind(b)?;
            let source = if src.starts_with('/') {
                if !std::path::Path::new(&src).exists() {
                    std::fs::create_dir_all(&src)
                        .map_err(|e| Error::BadRequest(format!("invalid mount config: bind source path {src}: {e}")))?;
                }
                src
            } else {
                let (v, new) = self.volumes.create(&src, BTreeMap::new(), "local", BTreeMap::new())?;
                if new {
                    self.events
                        .emit("volume", "create", &v.name, BTreeMap::from([("driver".into(), "local".into())]));
                    copy_image_content(&rootfs, &dst, std::path::Path::new(&v.mountpoint));
                }
                v.mountpoint
            };
            targets.push(dst.clone());
            mounts.push(MountSpec {
                source,
                destination: dst,
                kind: "bind".into(),
                options: vec!["rbind".into(), if ro { "ro".into() } else { "rw".into() }, "rprivate".into()],
            });
        }
        for m in hc.mounts.iter().flatten() {
            match m.kind.as_str() {
                "bind" | "volume" => {
                    let source = if m.kind == "volume" {
                        let name = if m.source.is_empty() { random_id() } else { m.source.clone() };
                        let (v, new) = self.volumes.create(&name, BTreeMap::new(), "local", BTreeMap::new())?;
                        if new {
                            copy_image_content(&rootfs, &m.target, std::path::Path::new(&v.mountpoint));
                            if m.source.is_empty() {
                                c.anon_volumes.push(name);
                            }
                        }
                        v.mountpoint
                    } else {
                        m.source.clone()
                    };
                    targets.push(m.target.clone());
                    mounts.push(MountSpec {
                        source,
                        destination: m.target.clone(),
                        kind: "bind".into(),
                        options: vec![
                            "rbind".into(),
                            if m.read_only { "ro".into() } else { "rw".into() },
                            "rprivate".into(),
                        ],
                    });
                }
                "tmpfs" => {
                    targets.push(m.target.clone());
                    mounts.push(MountSpec {
                        source: "tmpfs".into(),
                        destination: m.target.clone(),
                        kind: "tmpfs".into(),
                        options: vec!["nosuid".into(), "nodev".into()],
                    });
                }
                other => return Err(Error::BadRequest(format!("mount type {other:?} is not supported"))),
            }
        }
        for (path, opts) in hc.tmpfs.iter().flatten() {
            let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
            o.extend(opts.split(',').filter(|s| !s.is_empty()).map(String::from));
            targets.push(path.clone());
            mounts.push(MountSpec {
                source: "tmpfs".into(),
                destination: path.clone(),
                kind: "tmpfs".into(),
                options: o,
            });
        }
        // Image VOLUMEs not otherwise mounted get anonymous volumes.
        for vpath in c.config.volumes.clone().unwrap_or_default().keys() {
            if targets.iter().any(|t| t.trim_end_matches('/') == vpath.trim_end_matches('/')) {
                continue;
            }
            let name = match c.anon_volumes.iter().find(|n| {
                self.volumes
                    .get(n)
                    .ok()
                    .is_some_and(|v| v.labels.get("berth.anonymous.target") == Some(vpath))
            }) {
                Some(n) => n.clone(),
                None => {
                    let n = random_id();
                    let (v, _) = self.volumes.create(
                        &n,
                        BTreeMap::from([("berth.anonymous.target".to_string(), vpath.clone())]),
                        "local",
                        BTreeMap::new(),
                    )?;
                    copy_image_content(&rootfs, vpath, std::path::Path::new(&v.mountpoint));
                    c.anon_volumes.push(n.clone());
                    n
                }
            };
            mounts.push(MountSpec {
                source: self.volumes.data_path(&name).display().to_string(),
                destination: vpath.clone(),
                kind: "bind".into(),
                options: vec!["rbind".into(), "rw".into()],
            });
        }
        if hc.init == Some(true) {
            let init = self.cfg.init_path.clone().ok_or_else(|| {
                Error::BadRequest(
                    "--init: no init binary found (install Debian's tini package, which provides /usr/bin/tini-static)".into(),
                )
            })?;
            mounts.push(MountSpec {
                source: init.display().to_string(),
                destination: "/sbin/docker-init".into(),
                kind: "bind".into(),
                options: vec!["rbind".into(), "ro".into()],
            });
            args.splice(0..0, ["/sbin/docker-init".to_string(), "--".to_string()]);
        }
        let nnp = hc
            .security_opt
            .iter()
            .flatten()
            .any(|o| o == "no-new-privileges" || o.ends_with(":true") || o.ends_with("=true"));
        let net = match hc.network_mode.as_str() {
            "host" => NetMode::Host,
            _ => NetMode::Private,
        };
        Ok(RunSpec {
            id: c.id.clone(),
            rootfs,
            args,
            env,
            cwd: if c.config.working_dir.is_empty() {
                "/".into()
            } else {
                c.config.working_dir.clone()
            },
            uid,
            gid,
            additional_gids: gids,
            hostname: c.config.hostname.clone(),
            tty: c.config.tty,
            mounts,
            readonly_rootfs: hc.readonly_rootfs,
            cap_add: hc.cap_add.clone().unwrap_or_default(),
            cap_drop: hc.cap_drop.clone().unwrap_or_default(),
            privileged: hc.privileged,
            seccomp_unconfined: hc
                .security_opt
                .iter()
                .flatten()
                .any(|o| o == "seccomp=unconfined" || o == "seccomp:unconfined"),
            no_new_privileges: nnp,
            memory: (hc.memory > 0).then_some(hc.memory),
            memory_swap: (hc.memory_swap != 0).then_some(hc.memory_swap),
            nano_cpus: (hc.nano_cpus > 0).then_some(hc.nano_cpus),
            cpu_shares: (hc.cpu_shares > 0).then_some(hc.cpu_shares as u64),
            cpu_quota: (hc.cpu_quota > 0).then_some(hc.cpu_quota),
            cpu_period: (hc.cpu_period > 0).then_some(hc.cpu_period as u64),
            pids_limit: hc.pids_limit.filter(|p| *p > 0),
            net,
            cgroup_path: cgroup_path(&c.id),
            shm_size: (hc.shm_size > 0).then_some(hc.shm_size),
            rlimits: hc
                .ulimits
                .iter()
                .flatten()
                .map(|u| (u.name.clone(), u.soft.max(0) as u64, u.hard.max(0) as u64))
                .collect(),
            cpuset_cpus: Some(hc.cpuset_cpus.clone()).filter(|c| !c.is_empty()),
            cpuset_mems: Some(hc.cpuset_mems.clone()).filter(|m| !m.is_empty()),
            console_size: console_size(&hc),
        })
    }

    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<()> {
        let entry = self.get(key)?;
        let _op = entry.op.lock().await;
        let mut c = entry.snapshot();
        if c.state.running {
            if c.state.paused {
                return Err(Error::Conflict("cannot start a paused container, try unpause instead".into()));
            }
            return Err(Error::NotModified("container already started".into()));
        }
        let res = self.start_locked(&entry, &mut c).await;
        if let Err(e) = &res {
            {
                let mut r = entry.rec.lock().unwrap();
                r.state.error = e.to_string();
                if r.state.status == "created" || r.state.status == "restarting" {
                    r.state.restarting = false;
                    if r.state.started_at != crate::types::ZERO_TIME {
                        r.state.status = "exited".into();
                    }
                }
                if r.state.exit_code == 0 {
                    r.state.exit_code = 128;
                }
                let _ = self.save(&r);
            }
            // Pending attach clients get their streams closed.
            entry.pending.lock().unwrap().clear();
            let _ = image::snapshot::unmount(&self.rootfs(&entry.id));
            // `run --rm` waits for removal: a container that cannot start is removed, as Docker does.
            if entry.snapshot().host_config.auto_remove {
                drop(_op);
                let _ = self.remove(&entry.id, true, true).await;
            }
        }
        res
    }

    async fn start_locked(self: &Arc<Self>, entry: &Arc<Entry>, c: &mut Container) -> Result<()> {
        let t0 = std::time::Instant::now();
        let runtime = self.container_runtime(c)?;
        self.mount_rootfs(c)?;
        let t_mount = t0.elapsed();
        let spec = self.build_run_spec(c)?;
        make_workdir(&self.rootfs(&c.id), &spec.cwd)?;
        let bundle = self.container_dir(&c.id);
        runtime::spec::write_bundle(&bundle, &spec)?;
        let t_bundle = t0.elapsed();
        // A previous run's shim deletes its OCI runtime state just after reporting the exit; a fast
        // restart must not race it ("container already exists").
        let old_state = self.runtime_root().join(&c.id);
        let t_wait = std::time::Instant::now();
        while old_state.exists() && t_wait.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if old_state.exists() && !self.shim(&c.id).alive().await {
            tracing::warn!(container = %c.id, "removing runtime state left by a dead shim");
            let _ = std::fs::remove_dir_all(&old_state);
        }
        let state_dir = self.state_dir(&c.id);
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).map_err(internal)?;
        let args = runtime::shim::ShimArgs {
            id: c.id.clone(),
            bundle,
            state_dir,
            log_path: self.log_path(&c.id),
            runtime_root: self.runtime_root(),
            cgroup_path: cgroup_path(&c.id),
            tty: c.config.tty,
            stdin: c.config.open_stdin,
            console_size: console_size(&c.host_config),
            runtime,
        };
        let launcher = self.launcher.clone();
        let pid = tokio::task::spawn_blocking(move || launcher.spawn(&args))
            .await
            .map_err(internal)??;
        let t_shim = t0.elapsed();
        // Attach clients that were waiting for the start.
        let pending: Vec<PendingAttach> = std::mem::take(&mut *entry.pending.lock().unwrap());
        for p in pending {
            self.connect_attach(entry, p, c.config.stdin_once).await;
        }
        let shim = self.shim(&c.id);
        // Register the exit watch before the process can exit.
        let wait = shim.send(&Request::Wait).await?;
        shim.call(&Request::Start).await?;
        tracing::debug!(container = %c.id, mount = ?t_mount, bundle = ?t_bundle, shim = ?t_shim, started = ?t0.elapsed(), "container started");
        {
            let mut r = entry.rec.lock().unwrap();
            r.anon_volumes = c.anon_volumes.clone();
            r.state.status = "running".into();
            r.state.running = true;
            r.state.paused = false;
            r.state.restarting = false;
            r.state.oom_killed = false;
            r.state.dead = false;
            r.state.pid = pid as i64;
            r.state.exit_code = 0;
            r.state.error = String::new();
            r.state.started_at = now();
            r.state.finished_at = crate::types::ZERO_TIME.into();
            r.manually_stopped = false;
            self.save(&r)?;
            *c = r.clone();
        }
        entry.progress.send_modify(|p| p.running = true);
        self.emit(c, "start");
        self.spawn_health_monitor(entry, false);
        self.clone().spawn_monitor(entry.clone(), Some(wait));
        Ok(())
    }

    /// Send a signal; `Conflict` if the container is not running.
    pub async fn kill(&self, key: &str, signal: Option<&str>) -> Result<()> {
        let entry = self.get(key)?;
        let c = entry.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!(
                "Cannot kill container: {}: Container {} is not running",
                key, c.id
            )));
        }
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL"))?;
        if sig == libc::SIGKILL || sig == libc::SIGTERM || sig == libc::SIGINT {
            let mut r = entry.rec.lock().unwrap();
            r.manually_stopped = true;
            let _ = self.save(&r);
        }
        let exits = entry.progress.borrow().exits;
        self.shim(&c.id).call(&Request::Kill { signal: sig }).await?;
        let mut attrs = Self::attrs(&c);
        attrs.insert("signal".into(), sig.to_string());
        self.events.emit("container", "kill", &c.id, attrs);
        if sig == libc::SIGKILL {
            // A frozen process dies only once thawed; Docker resumes it.
            if entry.snapshot().state.paused {
                let _ = self.shim(&c.id).call(&Request::Resume).await;
            }
            // As Docker, a SIGKILL returns once the container is gone (up to 10 s), so an
            // inspect or rm that follows sees it exited (137).
            let gone = self.wait_progress(&entry, |p| p.exits != exits || !p.running || p.removed);
            if tokio::time::timeout(Duration::from_secs(10), gone).await.is_err() {
                return Err(Error::Internal(format!("container {} did not exit within 10 s of SIGKILL", c.id)));
            }
        }
        Ok(())
    }

    /// Stop: the stop signal, then SIGKILL after `timeout` seconds.
    pub async fn stop(&self, key: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let entry = self.get(key)?;
        let _op = entry.op.lock().await;
        self.stop_locked(&entry, timeout, signal).await
    }

    pub(crate) async fn stop_locked(&self, entry: &Entry, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let c = entry.snapshot();
        {
            let mut r = entry.rec.lock().unwrap();
            r.manually_stopped = true;
            let _ = self.save(&r);
        }
        if !c.state.running {
            if c.state.restarting {
                let mut r = entry.rec.lock().unwrap();
                r.state.restarting = false;
                r.state.status = "exited".into();
                let _ = self.save(&r);
                return Ok(());
            }
            return Err(Error::NotModified("container already stopped".into()));
        }
        let sig = parse_signal(signal.or(c.config.stop_signal.as_deref()).unwrap_or("SIGTERM"))?;
        let timeout = timeout.or(c.config.stop_timeout).unwrap_or(10);
        let exits = entry.progress.borrow().exits;
        let shim = self.shim(&c.id);
        if c.state.paused {
            let _ = shim.call(&Request::Resume).await;
        }
        let _ = shim.call(&Request::Kill { signal: sig }).await;
        let waited = if timeout < 0 {
            self.wait_progress(entry, |p| p.exits > exits).await;
            true
        } else {
            tokio::time::timeout(Duration::from_secs(timeout as u64), self.wait_progress(entry, |p| p.exits > exits))
                .await
                .is_ok()
        };
        if !waited {
            let _ = shim.call(&Request::Kill { signal: libc::SIGKILL }).await;
            if tokio::time::timeout(Duration::from_secs(10), self.wait_progress(entry, |p| p.exits > exits))
                .await
                .is_err()
            {
                return Err(Error::Internal(format!("container {} did not exit after SIGKILL", c.id)));
            }
        }
        self.emit(&entry.snapshot(), "stop");
        Ok(())
    }

    pub async fn restart(self: &Arc<Self>, key: &str, timeout: Option<i64>, signal: Option<&str>) -> Result<()> {
        let entry = self.get(key)?;
        {
            let _op = entry.op.lock().await;
            match self.stop_locked(&entry, timeout, signal).await {
                Ok(()) | Err(Error::NotModified(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.start(&entry.id).await?;
        self.emit(&entry.snapshot(), "restart");
        Ok(())
    }

    pub async fn pause(&self, key: &str, pause: bool) -> Result<()> {
        let entry = self.get(key)?;
        let _op = entry.op.lock().await;
        let c = entry.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!("Container {} is not running", c.id)));
        }
        if pause && c.state.paused {
            return Err(Error::Conflict(format!("Container {} is already paused", c.id)));
        }
        if !pause && !c.state.paused {
            return Err(Error::Conflict(format!("Container {} is not paused", c.id)));
        }
        self.shim(&c.id)
            .call(if pause { &Request::Pause } else { &Request::Resume })
            .await?;
        let mut r = entry.rec.lock().unwrap();
        r.state.paused = pause;
        r.state.status = if pause { "paused".into() } else { "running".into() };
        self.save(&r)?;
        let snap = r.clone();
        drop(r);
        self.emit(&snap, if pause { "pause" } else { "unpause" });
        Ok(())
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let entry = self.get(key)?;
        let _op = entry.op.lock().await;
        let c = entry.snapshot();
        if c.state.running {
            if !force {
                let what = if c.state.paused { "paused" } else { "running" };
                return Err(Error::Conflict(format!(
                    "cannot remove container \"{}\": container is {what}: stop the container before removing or force remove",
                    c.name
                )));
            }
            let exits = entry.progress.borrow().exits;
            {
                let mut r = entry.rec.lock().unwrap();
                r.manually_stopped = true;
            }
            let shim = self.shim(&c.id);
            if c.state.paused {
                let _ = shim.call(&Request::Resume).await;
            }
            let _ = shim.call(&Request::Kill { signal: libc::SIGKILL }).await;
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                self.wait_progress(&entry, |p| p.exits > exits || !p.running),
            )
            .await;
        }
        // Move the container's directory aside atomically (a crash after this never brings it back),
        // answer, and unmount and delete in the background: unmounting waits for an RCU grace
        // period, which is most of a short container's removal time.
        let trash = self.cfg.root.join("containers").join(format!("{TRASH_PREFIX}{}", c.id));
        std::fs::rename(self.container_dir(&c.id), &trash).map_err(internal)?;
        self.containers.lock().unwrap().remove(&c.id);
        let _ = std::fs::remove_dir_all(self.state_dir(&c.id));
        tokio::task::spawn_blocking(move || purge_trash(&trash));
        if volumes {
            for v in &c.anon_volumes {
                let _ = self.volumes.remove(v);
            }
        }
        self.execs.lock().unwrap().retain(|_, e| e.container != c.id);
        self.emit(&c, "destroy");
        tracing::debug!(container = %c.id, "removed");
        entry.progress.send_modify(|p| p.removed = true);
        Ok(())
    }

    pub fn rename(&self, key: &str, new: &str) -> Result<()> {
        let entry = self.get(key)?;
        let n = new.trim_start_matches('/');
        if !valid_container_name(n) {
            return Err(Error::BadRequest(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let full = format!("/{n}");
        if let Some(other) = self.name_taken(&full) {
            if other != entry.id {
                return Err(Error::Conflict(format!("Conflict. The container name \"{full}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name.")));
            }
        }
        let mut r = entry.rec.lock().unwrap();
        let old = r.name.clone();
        r.name = full;
        self.save(&r)?;
        let mut attrs = Self::attrs(&r);
        attrs.insert("oldName".into(), old);
        self.events.emit("container", "rename", &r.id, attrs);
        Ok(())
    }

    /// `POST /containers/{id}/update`.
    pub fn update(&self, key: &str, u: &serde_json::Value) -> Result<()> {
        let entry = self.get(key)?;
        let mut r = entry.rec.lock().unwrap();
        let get = |k: &str| u.get(k).and_then(|v| v.as_i64()).filter(|v| *v != 0);
        // Changes go to a copy, recorded only when every one was valid and applied.
        let mut hc = r.host_config.clone();
        let mut up = runtime::cgroup::Update::default();
        if let Some(m) = get("Memory") {
            if m < 6 * 1024 * 1024 {
                return Err(Error::BadRequest("Minimum memory limit allowed is 6MB".into()));
            }
            hc.memory = m;
            up.memory = Some(m);
        }
        if let Some(n) = get("NanoCpus") {
            hc.nano_cpus = n;
            up.nano_cpus = Some(n);
        }
        if let Some(s) = get("CpuShares") {
            hc.cpu_shares = s;
            up.cpu_shares = Some(s as u64);
        }
        if let Some(p) = get("PidsLimit") {
            hc.pids_limit = Some(p);
            up.pids_limit = Some(p);
        }
        if let (Some(m), None) = (up.memory, get("MemorySwap")) {
            if hc.memory_swap > 0 && m > hc.memory_swap {
                return Err(Error::BadRequest(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
                ));
            }
        }
        if let Some(s) = get("MemorySwap") {
            let mem = up.memory.unwrap_or(hc.memory);
            if s > 0 && (mem <= 0 || s < mem) {
                return Err(Error::BadRequest(
                    "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
                ));
            }
            hc.memory_swap = s;
            up.memory_swap = Some(s);
            up.memory.get_or_insert(mem);
        }
        if let Some(m) = get("MemoryReservation") {
            hc.memory_reservation = m;
            up.memory_reservation = Some(m);
        }
        if get("NanoCpus").is_some() && (hc.cpu_quota > 0 || hc.cpu_period > 0) && get("CpuQuota").is_none() {
            return Err(Error::BadRequest(
                "Conflicting options: Nano CPUs cannot be updated as CPU Period/Quota has already been set".into(),
            ));
        }
        for (k, what) in [("CpuQuota", "CPU Quota"), ("CpuPeriod", "CPU Period")] {
            if get(k).is_some() && hc.nano_cpus > 0 && up.nano_cpus.is_none() {
                return Err(Error::BadRequest(format!(
                    "Conflicting options: {what} cannot be updated as NanoCPUs has already been set"
                )));
            }
        }
        if let Some(q) = get("CpuQuota") {
            hc.cpu_quota = q;
            up.cpu_quota = Some(q);
        }
        if let Some(p) = get("CpuPeriod") {
            hc.cpu_period = p;
            up.cpu_period = Some(p);
            up.cpu_quota.get_or_insert(hc.cpu_quota);
        }
        let text = |k: &str| u.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(String::from);
        if let Some(c) = text("CpusetCpus") {
            hc.cpuset_cpus = c.clone();
            up.cpuset_cpus = Some(c);
        }
        if let Some(m) = text("CpusetMems") {
            hc.cpuset_mems = m.clone();
            up.cpuset_mems = Some(m);
        }
        // Limits Berth does not apply are refused, never recorded and ignored.
        for k in [
            "BlkioWeight",
            "KernelMemory",
            "KernelMemoryTCP",
            "CpuRealtimePeriod",
            "CpuRealtimeRuntime",
            "MemorySwappiness",
        ] {
            if get(k).is_some_and(|v| v > 0) {
                return Err(Error::BadRequest(format!("updating {k} is not supported")));
            }
        }
        for k in [
            "BlkioWeightDevice",
            "BlkioDeviceReadBps",
            "BlkioDeviceWriteBps",
            "BlkioDeviceReadIOps",
            "BlkioDeviceWriteIOps",
            "Devices",
            "DeviceCgroupRules",
            "Ulimits",
        ] {
            if u.get(k).and_then(|v| v.as_array()).is_some_and(|a| !a.is_empty()) {
                return Err(Error::BadRequest(format!("updating {k} is not supported")));
            }
        }
        if let Some(rp) = u.get("RestartPolicy").filter(|v| !v.is_null()) {
            let rp: crate::types::RestartPolicy = serde_json::from_value(rp.clone()).map_err(|e| Error::BadRequest(e.to_string()))?;
            if !rp.name.is_empty() {
                if hc.auto_remove && rp.name != "no" {
                    return Err(Error::BadRequest(
                        "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                    ));
                }
                hc.restart_policy = rp;
            }
        }
        if r.state.running {
            runtime::cgroup::update(&cgroup_path(&r.id), &up)
                .map_err(|e| Error::Internal(format!("Cannot update container {}: {e}", r.id)))?;
        }
        r.host_config = hc;
        self.save(&r)?;
        self.emit(&r, "update");
        Ok(())
    }

    /// `POST /containers/{id}/wait`. The condition is judged against the state at the time of the
    /// call, so an exit right after it is not missed; the returned future gives the exit code.
    pub fn wait(self: &Arc<Self>, key: &str, condition: &str) -> Result<impl std::future::Future<Output = i64> + Send + 'static> {
        let entry = self.get(key)?;
        let snap = entry.snapshot();
        let start = entry.progress.borrow().clone();
        let until_removed = match condition {
            "" | "not-running" | "next-exit" => false,
            "removed" => true,
            other => return Err(Error::BadRequest(format!("invalid condition: {other:?}"))),
        };
        let done = matches!(condition, "" | "not-running") && !snap.state.running && !snap.state.restarting;
        let me = self.clone();
        Ok(async move {
            if done {
                return snap.state.exit_code;
            }
            let p = me
                .wait_progress(&entry, |p| p.removed || (!until_removed && p.exits > start.exits))
                .await;
            if p.exits > start.exits {
                p.last_exit
            } else {
                entry.snapshot().state.exit_code
            }
        })
    }
}

/// Prefix of a removed container's directory awaiting deletion.
pub const TRASH_PREFIX: &str = ".removed-";

/// Unmount and delete a removed container's directory.
pub fn purge_trash(dir: &std::path::Path) {
    let _ = image::snapshot::unmount(&dir.join("rootfs"));
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cleaning up a removed container");
    }
}

pub fn cgroup_path(id: &str) -> String {
    format!("/berth/{id}")
}

/// Parse a bind `src:dst[:opts]`.
pub fn parse_bind(b: &str) -> Result<(String, String, bool)> {
    let parts: Vec<&str> = b.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => return Err(Error::BadRequest(format!("invalid volume specification: '{b}'"))),
    };
    if !dst.starts_with('/') {
        return Err(Error::BadRequest(format!(
            "invalid volume specification: '{b}': mount path must be absolute"
        )));
    }
    if src.is_empty() {
        return Err(Error::BadRequest(format!("invalid volume specification: '{b}'")));
    }
    if !src.starts_with('/') && !crate::volumes::valid_name(src) {
        return Err(Error::BadRequest(format!(
            "invalid volume specification: '{b}': invalid volume name {src:?}"
        )));
    }
    let mut ro = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => ro = true,
            "rw" | "z" | "Z" | "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" | "nocopy" | "consistent" | "cached"
            | "delegated" => {}
            other => {
                return Err(Error::BadRequest(format!(
                    "invalid volume specification: '{b}': unknown option {other:?}"
                )))
            }
        }
    }
    Ok((src.to_string(), dst.to_string(), ro))
}

/// A new volume mounted over a path that has content in the image gets that content (Docker's
/// behaviour), resolved safely inside the rootfs.
fn copy_image_content(rootfs: &std::path::Path, target: &str, dest: &std::path::Path) {
    let src: PathBuf = rootfs.join(target.trim_start_matches('/'));
    // Refuse to follow a symlink out of the rootfs: only copy a real directory.
    let Ok(md) = std::fs::symlink_metadata(&src) else { return };
    if !md.is_dir() {
        return;
    }
    let mut buf = Vec::new();
    if image::diff::write_tar(&src, &mut buf, image::diff::TarOptions::default()).is_ok() {
        let _ = image::unpack::unpack_layer(std::io::Cursor::new(buf), dest);
    }
}
