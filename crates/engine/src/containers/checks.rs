//! What `create` checks before it records a container: mounts, log options, networking
//! fields, and the host-config fields Berth refuses rather than ignores.

use crate::error::{Error, Result};
use crate::types::{HostConfig, NetworkMode, RestartMode};

use super::*;

/// The json-file options Docker knows, and the ones Berth applies.
pub(crate) const JSON_FILE_OPTS: &[&str] = &[
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
pub(crate) fn parse_ram_size(s: &str) -> Option<u64> {
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
pub(crate) struct MountOptions {
    pub(crate) no_copy: bool,
    pub(crate) propagation: String,
    pub(crate) non_recursive: bool,
    pub(crate) create_mountpoint: bool,
}

impl MountOptions {
    pub(crate) fn of(m: &crate::types::MountPoint) -> Result<MountOptions> {
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
pub(crate) fn tmpfs_options(m: &crate::types::MountPoint) -> Result<Vec<String>> {
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
pub(crate) fn check_mounts(hc: &HostConfig) -> Result<()> {
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
pub(crate) fn create_warnings(hc: &mut HostConfig) -> Vec<String> {
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

/// The MAC address a container asks for (`--mac-address`: `Config.MacAddress`, or its
/// endpoint's on API 1.44), checked.
pub(crate) fn requested_mac(req: &CreateRequest) -> Result<Option<[u8; 6]>> {
    let from_config = req
        .config
        .extra
        .get("MacAddress")
        .and_then(|v| v.as_str())
        .filter(|m| !m.is_empty());
    let from_endpoint = req
        .networking_config
        .as_ref()
        .and_then(|n| n.get("EndpointsConfig"))
        .and_then(|e| e.as_object())
        .and_then(|e| {
            e.values()
                .find_map(|ep| ep.get("MacAddress").and_then(|m| m.as_str()).filter(|m| !m.is_empty()))
        });
    let Some(m) = from_config.or(from_endpoint) else { return Ok(None) };
    match net::link::parse_mac(m) {
        Some(mac) if mac[0] & 1 == 0 => Ok(Some(mac)),
        _ => Err(Error::BadRequest(format!("{m} is not a valid mac address"))),
    }
}

/// Endpoint settings Berth does not apply yet are refused rather than dropped; a MAC address
/// needs a network to be on.
pub(crate) fn check_networking(req: &CreateRequest) -> Result<()> {
    if let NetworkMode::Container(_) = &req.host_config.network_mode {
        // What Docker refuses for a container that shares another's network stack.
        let hc = &req.host_config;
        let conflict = |what: &str| Err(Error::BadRequest(format!("conflicting options: {what} and the network mode")));
        if !req.config.hostname.is_empty() {
            return conflict("hostname");
        }
        if hc.dns.as_ref().is_some_and(|d| !d.is_empty())
            || hc.dns_search.as_ref().is_some_and(|d| !d.is_empty())
            || hc.dns_options.as_ref().is_some_and(|d| !d.is_empty())
        {
            return conflict("dns");
        }
        if hc.extra_hosts.as_ref().is_some_and(|h| !h.is_empty()) {
            return conflict("custom host-to-IP mapping");
        }
        if hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || hc.extra.get("PublishAllPorts") == Some(&serde_json::Value::Bool(true))
        {
            return Err(Error::BadRequest(
                "conflicting options: port publishing and the container type network mode".into(),
            ));
        }
        if req.config.exposed_ports.as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(Error::BadRequest(
                "conflicting options: port exposing and the container type network mode".into(),
            ));
        }
        let eps = req
            .networking_config
            .as_ref()
            .and_then(|n| n.get("EndpointsConfig"))
            .and_then(|e| e.as_object());
        if eps.is_some_and(|e| !e.is_empty()) {
            return Err(Error::BadRequest(
                "conflicting options: networking endpoints and the container type network mode".into(),
            ));
        }
    }
    if requested_mac(req)?.is_some() && !req.host_config.network_mode.is_default_bridge() {
        return Err(Error::BadRequest("conflicting options: mac-address and the network mode".into()));
    }
    if req.config.network_disabled == Some(true)
        && !(req.host_config.network_mode.is_default_bridge() || req.host_config.network_mode == NetworkMode::None)
    {
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
            let fixed = ["IPv4Address", "IPv6Address"]
                .iter()
                .any(|a| ep[k].get(*a).and_then(|v| v.as_str()).is_some_and(|v| !v.is_empty()));
            if set && k == "IPAMConfig" && fixed && matches!(net.as_str(), "bridge" | "default") {
                return Err(Error::BadRequest(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            if set && k == "Aliases" {
                if matches!(net.as_str(), "bridge" | "default") {
                    return Err(Error::BadRequest(
                        "network-scoped alias is supported only for containers in user defined networks".into(),
                    ));
                }
                // Names container DNS answers on that network.
                continue;
            }
            if set && k == "IPAMConfig" {
                // --ip on a user-defined network, link-local addresses; IPv6 is not here yet.
                let ipam = &ep[k];
                if ipam.get("IPv6Address").and_then(|v| v.as_str()).is_some_and(|v| !v.is_empty()) {
                    return Err(Error::BadRequest(format!(
                        "network {net}: IPAMConfig.IPv6Address is not supported by Berth yet"
                    )));
                }
                if let Some(a) = ipam.get("IPv4Address").and_then(|v| v.as_str()).filter(|a| !a.is_empty()) {
                    a.parse::<std::net::Ipv4Addr>()
                        .map_err(|_| Error::BadRequest(format!("invalid IPv4 address: {a}")))?;
                }
                continue;
            }
            if set && k == "DriverOpts" {
                // Kept with the endpoint and shown by inspect.
                continue;
            }
            if set && k == "Links" {
                if matches!(net.as_str(), "bridge" | "default") {
                    return Err(Error::BadRequest(
                        "network bridge: endpoint links are for user-defined networks (the default bridge's legacy --link is not supported by Berth)".into(),
                    ));
                }
                continue;
            }
            if set {
                return Err(Error::BadRequest(format!(
                    "network {net}: endpoint setting {k} is not supported by Berth yet"
                )));
            }
        }
    }
    Ok(())
}

/// HostConfig fields Berth does not implement, refused when set rather than silently ignored.
pub(crate) fn check_unimplemented(hc: &HostConfig) -> Result<()> {
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
    for k in [
        "Links",
        "Sysctls",
        "OomKillDisable",
        "CgroupParent",
        "BlkioWeight",
        "BlkioWeightDevice",
        "BlkioDeviceReadBps",
        "BlkioDeviceWriteBps",
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
    crate::cdi::host_devices(hc.devices.as_deref().unwrap_or_default())?;
    match &hc.network_mode {
        NetworkMode::Default | NetworkMode::Bridge | NetworkMode::None | NetworkMode::Host => {}
        // Whether the donor exists is the engine's to say, at create; that it runs, at start.
        NetworkMode::Container(_) => {}
        // Whether the network exists is the engine's to say, at create.
        NetworkMode::Named(_) => {}
    }
    hc.restart_policy.validate().map_err(Error::BadRequest)?;
    if hc.auto_remove && !matches!(hc.restart_policy.name, RestartMode::Unset | RestartMode::No) {
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

pub(crate) fn valid_container_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}
