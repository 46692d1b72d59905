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

/// The json-file options Docker knows, and the ones Berth applies.
const JSON_FILE_OPTS: &[&str] = &[
    "max-size",
    "max-file",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

/// Check `HostConfig.LogConfig` as Docker does at create (an empty type is the default,
/// json-file) and return the rotation it asks for. Options Docker takes but Berth does not
/// apply are refused by name.
pub fn log_rotation(lc: &crate::types::LogConfig) -> Result<runtime::shim::LogRotation> {
    match lc.kind.as_str() {
        "" | "json-file" => {}
        "none" | "local" | "journald" | "syslog" | "gelf" | "fluentd" | "awslogs" | "splunk" | "etwlogs" | "gcplogs" | "logentries" => {
            return Err(Error::BadRequest(format!(
                "log driver {:?} is not supported by Berth (json-file is)",
                lc.kind
            )))
        }
        other => return Err(Error::BadRequest(format!("logger: no log driver named '{other}' is registered"))),
    }
    let mut r = runtime::shim::LogRotation { max_size: 0, max_files: 1 };
    for (k, v) in &lc.config {
        match k.as_str() {
            "max-size" => {
                r.max_size =
                    parse_ram_size(v).ok_or_else(|| Error::BadRequest(format!("invalid max-size {v:?} for json-file log driver")))?
            }
            "max-file" => {
                r.max_files = v
                    .parse()
                    .map_err(|_| Error::BadRequest(format!("invalid max-file {v:?} for json-file log driver")))?;
                if r.max_files < 1 {
                    return Err(Error::BadRequest("max-file cannot be less than 1".into()));
                }
            }
            "compress" if v == "false" => {}
            k if JSON_FILE_OPTS.contains(&k) => {
                return Err(Error::BadRequest(format!(
                    "log opt '{k}' of the json-file log driver is not supported by Berth (max-size and max-file are)"
                )))
            }
            k => return Err(Error::BadRequest(format!("unknown log opt '{k}' for json-file log driver"))),
        }
    }
    if r.max_files > 1 && r.max_size == 0 {
        return Err(Error::BadRequest("max-file cannot be set when max-size is not set".into()));
    }
    Ok(r)
}

/// Docker's RAM sizes for `max-size`: a number with an optional k, m, g or t (binary) and an
/// optional b (`10m`, `1.5g`, `512kb`).
fn parse_ram_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n > 0.0 && n.is_finite()).then_some((n * mult as f64) as u64)
}

/// What a `Mounts` entry's `BindOptions`/`VolumeOptions` ask for (refusing what Berth cannot do).
struct MountOptions {
    no_copy: bool,
    propagation: String,
    non_recursive: bool,
    create_mountpoint: bool,
}

impl MountOptions {
    fn of(m: &crate::types::MountPoint) -> Result<MountOptions> {
        let mut o = MountOptions {
            no_copy: false,
            propagation: "rprivate".into(),
            non_recursive: false,
            create_mountpoint: false,
        };
        let bad = |what: &str| Error::BadRequest(format!("invalid mount config for type {:?}: {what}", m.kind));
        if let Some(v) = m.extra.get("VolumeOptions").filter(|v| !v.is_null()) {
            if m.kind != "volume" {
                return Err(bad("VolumeOptions must not be specified on mount type"));
            }
            o.no_copy = v["NoCopy"].as_bool().unwrap_or(false);
            if v["Labels"].as_object().is_some_and(|l| !l.is_empty()) {
                return Err(bad(
                    "volume labels in a mount are not supported by Berth (create the volume with its labels)",
                ));
            }
            if let Some(d) = v["DriverConfig"]["Name"].as_str().filter(|d| !d.is_empty() && *d != "local") {
                return Err(bad(&format!("volume driver {d:?} is not supported (local is)")));
            }
            if v["DriverConfig"]["Options"].as_object().is_some_and(|x| !x.is_empty()) {
                return Err(bad("volume driver options are not supported"));
            }
            if v["Subpath"].as_str().is_some_and(|x| !x.is_empty()) {
                return Err(bad("volume subpaths are not supported"));
            }
        }
        if let Some(b) = m.extra.get("BindOptions").filter(|v| !v.is_null()) {
            if m.kind != "bind" {
                return Err(bad("BindOptions must not be specified on mount type"));
            }
            match b["Propagation"].as_str().unwrap_or("") {
                "" => {}
                p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave") => o.propagation = p.into(),
                p => return Err(bad(&format!("invalid propagation mode: {p}"))),
            }
            o.non_recursive = b["NonRecursive"].as_bool().unwrap_or(false);
            o.create_mountpoint = b["CreateMountpoint"].as_bool().unwrap_or(false);
            if b["ReadOnlyNonRecursive"].as_bool().unwrap_or(false) || b["ReadOnlyForceRecursive"].as_bool().unwrap_or(false) {
                return Err(bad("ReadOnlyNonRecursive and ReadOnlyForceRecursive are not supported"));
            }
        }
        Ok(o)
    }
}

/// A tmpfs `Mounts` entry's `TmpfsOptions` (`SizeBytes`, `Mode`) as mount options.
fn tmpfs_options(m: &crate::types::MountPoint) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if let Some(t) = m.tmpfs_options.as_ref().filter(|v| !v.is_null()) {
        if let Some(n) = t["SizeBytes"].as_i64().filter(|n| *n != 0) {
            if n < 0 {
                return Err(Error::BadRequest(
                    "invalid mount config for type \"tmpfs\": size must not be negative".into(),
                ));
            }
            out.push(format!("size={n}"));
        }
        if let Some(mode) = t["Mode"].as_u64().filter(|n| *n != 0) {
            out.push(format!("mode={:o}", mode & 0o7777));
        }
        if t["Options"].as_array().is_some_and(|o| !o.is_empty()) {
            return Err(Error::BadRequest(
                "tmpfs mount Options are not supported by Berth (SizeBytes and Mode are)".into(),
            ));
        }
    }
    Ok(out)
}

/// Check `HostConfig.Mounts` at create as Docker does: known types, absolute targets, an existing
/// bind source (unless it is to be created), options Berth can apply.
fn check_mounts(hc: &HostConfig) -> Result<()> {
    for m in hc.mounts.iter().flatten() {
        let bad = |what: String| Error::BadRequest(format!("invalid mount config for type {:?}: {what}", m.kind));
        if !m.target.starts_with('/') {
            return Err(bad(format!("invalid mount path: '{}' mount path must be absolute", m.target)));
        }
        match m.kind.as_str() {
            "bind" => {
                let o = MountOptions::of(m)?;
                if m.source.is_empty() {
                    return Err(bad("field Source must not be empty".into()));
                }
                if !o.create_mountpoint && !std::path::Path::new(&m.source).exists() {
                    return Err(bad(format!("bind source path does not exist: {}", m.source)));
                }
            }
            "volume" => {
                MountOptions::of(m)?;
            }
            "tmpfs" => {
                if !m.source.is_empty() {
                    return Err(bad("field Source must not be specified".into()));
                }
                tmpfs_options(m)?;
            }
            other => return Err(Error::BadRequest(format!("mount type {other:?} is not supported"))),
        }
    }
    Ok(())
}

/// What Docker discards on Linux with a warning (the field is cleared, as Docker clears it).
fn create_warnings(hc: &mut HostConfig) -> Vec<String> {
    let mut w = Vec::new();
    for (k, what) in [("CpuPercent", "CPU percent"), ("CpuCount", "CPU count")] {
        if hc.extra.get(k).and_then(|v| v.as_i64()).is_some_and(|n| n > 0) {
            w.push(format!(
                "linux does not support {what}. {} discarded.",
                if k == "CpuCount" { "Count" } else { "Percent" }
            ));
            hc.extra.insert(k.into(), serde_json::json!(0));
        }
    }
    if runtime::cgroup::is_v2() && hc.extra.get("MemorySwappiness").and_then(|v| v.as_i64()).is_some_and(|s| s >= 0) {
        w.push(
            "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".into(),
        );
        hc.extra.insert("MemorySwappiness".into(), serde_json::Value::Null);
    }
    w
}

/// Endpoint settings and a MAC address need bridge networking, which Berth does not have yet:
/// refused rather than dropped.
fn check_networking(req: &CreateRequest) -> Result<()> {
    if req
        .config
        .extra
        .get("MacAddress")
        .and_then(|v| v.as_str())
        .is_some_and(|m| !m.is_empty())
    {
        return Err(Error::BadRequest(
            "conflicting options: mac-address and the network mode (Berth has no bridge networking yet)".into(),
        ));
    }
    if req.config.network_disabled == Some(true) && !matches!(req.host_config.network_mode.as_str(), "" | "default" | "none" | "bridge") {
        return Err(Error::BadRequest(
            "conflicting options: NetworkDisabled and the network mode".into(),
        ));
    }
    let endpoints = req
        .networking_config
        .as_ref()
        .and_then(|n| n.get("EndpointsConfig"))
        .and_then(|e| e.as_object());
    for (net, ep) in endpoints.into_iter().flatten() {
        for k in [
            "Aliases",
            "Links",
            "IPAMConfig",
            "DriverOpts",
            "MacAddress",
            "IPAddress",
            "NetworkID",
            "EndpointID",
        ] {
            let set = match ep.get(k) {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::String(s)) => !s.is_empty(),
                Some(serde_json::Value::Array(a)) => !a.is_empty(),
                Some(serde_json::Value::Object(o)) => o.values().any(|v| !v.is_null() && v != "" && v != &serde_json::json!([])),
                Some(_) => true,
            };
            if set {
                return Err(Error::BadRequest(format!(
                    "network {net}: endpoint setting {k} needs networks, which Berth does not have yet"
                )));
            }
        }
    }
    Ok(())
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
        "Sysctls",
        "OomKillDisable",
        "CgroupParent",
        "BlkioWeight",
        "BlkioWeightDevice",
        "BlkioDeviceReadBps",
        "BlkioDeviceWriteBps",
        "DeviceRequests",
        "StorageOpt",
        "KernelMemory",
        "KernelMemoryTCP",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
        "BlkioDeviceReadIOps",
        "BlkioDeviceWriteIOps",
        "Annotations",
    ] {
        if set(k) {
            return Err(Error::BadRequest(format!("HostConfig.{k} is not supported by Berth")));
        }
    }
    // Docker's answers for what Linux cannot do.
    if set("IOMaximumIOps") || set("IOMaximumBandwidth") {
        return Err(Error::BadRequest(
            "Invalid QoS settings: linux does not support IOMaximumIOps or IOMaximumBandwidth".into(),
        ));
    }
    if let Some(i) = hc
        .extra
        .get("Isolation")
        .and_then(|v| v.as_str())
        .filter(|i| !i.is_empty() && *i != "default")
    {
        return Err(Error::BadRequest(format!("invalid isolation '{i}' on linux")));
    }
    if let Some(v) = hc
        .extra
        .get("VolumeDriver")
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty() && *v != "local")
    {
        return Err(Error::BadRequest(format!(
            "volume driver {v:?} is not supported by Berth (local is)"
        )));
    }
    match hc.extra.get("CgroupnsMode").and_then(|v| v.as_str()).unwrap_or("") {
        "" | "host" | "private" => {}
        m => return Err(Error::BadRequest(format!("invalid cgroup namespace mode: {m}"))),
    }
    if let Some(n) = hc.extra.get("OomScoreAdj").and_then(|v| v.as_i64()) {
        if !(-1000..=1000).contains(&n) {
            return Err(Error::BadRequest(format!(
                "Invalid value {n}, range for oom score adj is [-1000, 1000]"
            )));
        }
    }
    if let Some(s) = hc.extra.get("MemorySwappiness").and_then(|v| v.as_i64()).filter(|s| *s != -1) {
        if !(0..=100).contains(&s) {
            return Err(Error::BadRequest(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
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
    let joins = |v: &str| v.strip_prefix("container:").is_some_and(|c| !c.is_empty());
    if !(matches!(hc.pid_mode.as_str(), "" | "host") || joins(&hc.pid_mode)) {
        return Err(Error::BadRequest(format!("invalid PID mode: {}", hc.pid_mode)));
    }
    if !(matches!(hc.ipc_mode.as_str(), "" | "private" | "shareable" | "host" | "none") || joins(&hc.ipc_mode)) {
        return Err(Error::BadRequest(format!("invalid IPC mode: {}", hc.ipc_mode)));
    }
    if !matches!(hc.uts_mode.as_str(), "" | "host") {
        return Err(Error::BadRequest(format!("invalid UTS mode: {}", hc.uts_mode)));
    }
    // Berth runs no user namespaces: "host" is what every container gets.
    if !matches!(hc.userns_mode.as_str(), "" | "host") {
        return Err(Error::BadRequest(format!(
            "HostConfig.UsernsMode={:?} is not supported by Berth",
            hc.userns_mode
        )));
    }
    for r in hc.extra.get("DeviceCgroupRules").and_then(|v| v.as_array()).into_iter().flatten() {
        runtime::spec::device_cgroup_rule(r.as_str().unwrap_or(""))?;
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
    hc.restart_policy.validate().map_err(Error::BadRequest)?;
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
        check_networking(&req)?;
        let warnings = create_warnings(&mut req.host_config);
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
        log_rotation(&req.host_config.log_config)?;
        if req.host_config.log_config.kind.is_empty() {
            req.host_config.log_config.kind = "json-file".into();
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
        if req.host_config.ipc_mode.is_empty() {
            req.host_config.ipc_mode = "private".into();
        }
        if req.host_config.uts_mode == "host" && !cfg.hostname.is_empty() {
            return Err(Error::BadRequest("conflicting options: hostname and the UTS mode".into()));
        }
        let id = random_id();
        if cfg.hostname.is_empty() {
            cfg.hostname = if req.host_config.network_mode == "host" || req.host_config.uts_mode == "host" {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                id[..12].to_string()
            };
        }
        check_mounts(&req.host_config)?;
        let inherited_mounts = self.volumes_from(&req.host_config)?;
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
            inherited_mounts,
        };
        let dir = self.container_dir(&id);
        for d in ["diff", "work", "rootfs"] {
            std::fs::create_dir_all(dir.join(d)).map_err(internal)?;
        }
        self.save(&c)?;
        self.emit(&c, "create");
        self.insert(c);
        Ok((id, warnings))
    }

    /// The mounts `VolumesFrom` (`CONTAINER[:ro|rw]`) takes from each donor: its binds, named
    /// and anonymous volumes and what it inherited itself (tmpfs mounts are its own), read-only
    /// when asked, else as the donor has them.
    fn volumes_from(&self, hc: &HostConfig) -> Result<Vec<crate::types::MountPoint>> {
        let mut out: Vec<crate::types::MountPoint> = Vec::new();
        let specs: Vec<String> = match hc.extra.get("VolumesFrom") {
            None | Some(serde_json::Value::Null) => return Ok(out),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error::BadRequest(format!("HostConfig.VolumesFrom: {e}")))?,
        };
        for spec in specs {
            let (name, mode) = match spec.split_once(':') {
                Some((n, m)) => (n, m),
                None => (spec.as_str(), ""),
            };
            let force_ro = match mode {
                "" | "rw" => None,
                "ro" => Some(true),
                m => return Err(Error::BadRequest(format!("invalid mode for volumes-from: {m}"))),
            };
            let donor = self.get(name)?.snapshot();
            let mut add = |kind: &str, source: String, target: String, ro: bool| {
                out.retain(|m| m.target != target);
                out.push(crate::types::MountPoint {
                    kind: kind.into(),
                    source,
                    target,
                    read_only: match (force_ro, mode) {
                        (Some(r), _) => r,
                        (None, "rw") => false,
                        _ => ro,
                    },
                    ..Default::default()
                });
            };
            for b in donor.host_config.binds.iter().flatten() {
                let (src, dst, ro) = parse_bind(b)?;
                add(if src.starts_with('/') { "bind" } else { "volume" }, src, dst, ro);
            }
            for v in &donor.anon_volumes {
                if let Ok(vol) = self.volumes.get(v) {
                    if let Some(t) = vol.labels.get("berth.anonymous.target") {
                        add("volume", v.clone(), t.clone(), false);
                    }
                }
            }
            for m in donor.host_config.mounts.iter().flatten().chain(&donor.inherited_mounts) {
                if m.kind == "bind" || (m.kind == "volume" && !m.source.is_empty()) {
                    add(&m.kind, m.source.clone(), m.target.clone(), m.read_only);
                }
            }
        }
        Ok(out)
    }

    /// Mount the host-side tmpfs of a shareable container's `/dev/shm` (see `shm_dir`).
    fn mount_shm(&self, id: &str, size: i64) -> Result<PathBuf> {
        let dir = self.shm_dir(id);
        if image::snapshot::is_mountpoint(&dir) {
            return Ok(dir);
        }
        std::fs::create_dir_all(&dir).map_err(internal)?;
        let size = if size > 0 { size } else { 64 << 20 };
        nix::mount::mount(
            Some("shm"),
            &dir,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC,
            Some(format!("mode=1777,size={size}").as_str()),
        )
        .map_err(|e| Error::Internal(format!("mount the shared /dev/shm of {id}: {e}")))?;
        Ok(dir)
    }

    /// The namespace `mode` (`host`, `container:<name|id>`, else private) of kind `ns`
    /// (`pid`, `ipc`); joining another container's needs it running (and, for IPC, shareable).
    fn namespace_mode(&self, mode: &str, ns: &str, what: &str) -> Result<NetMode> {
        if mode == "host" {
            return Ok(NetMode::Host);
        }
        let Some(key) = mode.strip_prefix("container:") else {
            return Ok(NetMode::Private);
        };
        let donor = self.get(key)?.snapshot();
        if !donor.state.running {
            return Err(Error::Conflict(format!("cannot join {what} of a non running container: {key}")));
        }
        if ns == "ipc" && !matches!(donor.host_config.ipc_mode.as_str(), "shareable" | "host") {
            return Err(Error::Conflict(format!(
                "cannot join IPC of container {key}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
            )));
        }
        Ok(NetMode::Path(format!("/proc/{}/ns/{ns}", donor.state.pid).into()))
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
        for m in hc.mounts.iter().flatten().chain(&c.inherited_mounts) {
            match m.kind.as_str() {
                "bind" | "volume" => {
                    let opts = MountOptions::of(m)?;
                    let source = if m.kind == "volume" {
                        // An anonymous volume is made once and kept for later starts.
                        let anon = m.source.is_empty().then(|| {
                            c.anon_volumes.iter().find(|n| {
                                self.volumes
                                    .get(n)
                                    .is_ok_and(|v| v.labels.get("berth.anonymous.target") == Some(&m.target))
                            })
                        });
                        let name = match anon {
                            Some(Some(n)) => n.clone(),
                            Some(None) => random_id(),
                            None => m.source.clone(),
                        };
                        let labels = if m.source.is_empty() {
                            BTreeMap::from([("berth.anonymous.target".to_string(), m.target.clone())])
                        } else {
                            BTreeMap::new()
                        };
                        let (v, new) = self.volumes.create(&name, labels, "local", BTreeMap::new())?;
                        if new {
                            if !opts.no_copy {
                                copy_image_content(&rootfs, &m.target, std::path::Path::new(&v.mountpoint));
                            }
                            if m.source.is_empty() {
                                c.anon_volumes.push(name);
                            }
                        }
                        v.mountpoint
                    } else {
                        if opts.create_mountpoint {
                            std::fs::create_dir_all(&m.source).map_err(internal)?;
                        }
                        m.source.clone()
                    };
                    targets.push(m.target.clone());
                    mounts.push(MountSpec {
                        source,
                        destination: m.target.clone(),
                        kind: "bind".into(),
                        options: vec![
                            if opts.non_recursive { "bind".into() } else { "rbind".into() },
                            if m.read_only { "ro".into() } else { "rw".into() },
                            opts.propagation.clone(),
                        ],
                    });
                }
                "tmpfs" => {
                    targets.push(m.target.clone());
                    let mut options: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
                    if m.read_only {
                        options.push("ro".into());
                    }
                    options.extend(tmpfs_options(m)?);
                    mounts.push(MountSpec {
                        source: "tmpfs".into(),
                        destination: m.target.clone(),
                        kind: "tmpfs".into(),
                        options,
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
        let pid_ns = self.namespace_mode(&hc.pid_mode, "pid", "PID")?;
        let ipc_ns = self.namespace_mode(&hc.ipc_mode, "ipc", "IPC")?;
        let shm = match hc.ipc_mode.as_str() {
            "host" => runtime::spec::Shm::Bind("/dev/shm".into()),
            "none" => runtime::spec::Shm::None,
            "shareable" => runtime::spec::Shm::Bind(self.mount_shm(&c.id, hc.shm_size)?),
            // Joining another's IPC: its /dev/shm too, where POSIX shared memory lives.
            m if m.starts_with("container:") => {
                let donor = self.get(&m["container:".len()..])?;
                runtime::spec::Shm::Bind(self.shm_dir(&donor.id))
            }
            _ => runtime::spec::Shm::Private,
        };
        let uts_ns = if hc.uts_mode == "host" { NetMode::Host } else { NetMode::Private };
        let device_rules = hc
            .extra
            .get("DeviceCgroupRules")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(|r| runtime::spec::device_cgroup_rule(r.as_str().unwrap_or("")))
            .collect::<runtime::Result<Vec<_>>>()?;
        let paths = |k: &str| -> Option<Vec<String>> { hc.extra.get(k).and_then(|v| serde_json::from_value(v.clone()).ok()) };
        Ok(RunSpec {
            oom_score_adj: hc
                .extra
                .get("OomScoreAdj")
                .and_then(|v| v.as_i64())
                .filter(|n| *n != 0)
                .map(|n| n as i32),
            cgroup_ns_private: hc.extra.get("CgroupnsMode").and_then(|v| v.as_str()) == Some("private"),
            masked_paths: paths("MaskedPaths"),
            readonly_paths: paths("ReadonlyPaths"),
            memory_reservation: (hc.memory_reservation > 0).then_some(hc.memory_reservation),
            // cgroup v2 has no swappiness: Docker warns at create and discards it.
            memory_swappiness: hc
                .extra
                .get("MemorySwappiness")
                .and_then(|v| v.as_i64())
                .filter(|s| *s >= 0 && !runtime::cgroup::is_v2())
                .map(|s| s as u64),
            domainname: c.config.domainname.clone(),
            pid_ns,
            ipc_ns,
            uts_ns,
            shm,
            device_rules,
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
            let _ = image::snapshot::unmount(&self.shm_dir(&entry.id));
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
            log_rotation: log_rotation(&c.host_config.log_config)?,
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
            "CpuCount",
            "CpuPercent",
            "IOMaximumIOps",
            "IOMaximumBandwidth",
        ] {
            if get(k).is_some_and(|v| v > 0) {
                return Err(Error::BadRequest(format!("updating {k} is not supported")));
            }
        }
        if u.get("OomKillDisable").and_then(|v| v.as_bool()) == Some(true) {
            return Err(Error::BadRequest("updating OomKillDisable is not supported".into()));
        }
        if u.get("CgroupParent").and_then(|v| v.as_str()).is_some_and(|v| !v.is_empty()) {
            return Err(Error::BadRequest("updating CgroupParent is not supported".into()));
        }
        if u.get("Init").and_then(|v| v.as_bool()).is_some() {
            return Err(Error::BadRequest("updating Init is not supported (it is set at create)".into()));
        }
        for k in [
            "BlkioWeightDevice",
            "BlkioDeviceReadBps",
            "BlkioDeviceWriteBps",
            "BlkioDeviceReadIOps",
            "BlkioDeviceWriteIOps",
            "Devices",
            "DeviceCgroupRules",
            "DeviceRequests",
            "Ulimits",
        ] {
            if u.get(k).and_then(|v| v.as_array()).is_some_and(|a| !a.is_empty()) {
                return Err(Error::BadRequest(format!("updating {k} is not supported")));
            }
        }
        if let Some(rp) = u.get("RestartPolicy").filter(|v| !v.is_null()) {
            let rp: crate::types::RestartPolicy = serde_json::from_value(rp.clone()).map_err(|e| Error::BadRequest(e.to_string()))?;
            rp.validate().map_err(Error::BadRequest)?;
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

pub use crate::engine::{purge_trash, TRASH_PREFIX};

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
