//! OCI runtime bundle (`config.json`) generation from the engine's run options, with Docker's
//! defaults: its capability set, masked and read-only paths, a default seccomp profile, and cgroup
//! limits for memory, CPU and pids.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability name the kernel knows (for `--cap-add ALL`).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Syscalls the default seccomp profile refuses with EPERM: the ones Docker's default profile leaves
/// out of its allow-list because they reach the host kernel's global state (modules, clocks, keys,
/// reboot, swap, raw I/O ports, namespaces, BPF, tracing of other processes' memory, ...).
pub const SECCOMP_DENY: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "move_pages",
    "name_to_handle_at",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "mount",
    "fsmount",
    "fsopen",
    "fspick",
    "move_mount",
    "open_tree",
    "syslog",
    "adjtimex",
    "fanotify_init",
];

/// A mount into the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountSpec {
    pub source: String,
    pub destination: String,
    /// `bind` or `tmpfs`.
    pub kind: String,
    pub options: Vec<String>,
}

/// Which namespace (network, PID, IPC, UTS) a container gets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub enum NsMode {
    /// A fresh one (for the network: with only loopback).
    #[default]
    Private,
    /// The host's.
    Host,
    /// Join an existing one (a bind-mounted file or /proc/PID/ns/<kind>).
    Path(PathBuf),
}

/// The network namespace's mode.
pub type NetMode = NsMode;

/// Where `/dev/shm` comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub enum Shm {
    /// A private tmpfs of `shm_size` bytes.
    #[default]
    Private,
    /// None at all (`--ipc none`).
    None,
    /// Bind-mounted from this path (the host's, or another container's).
    Bind(PathBuf),
}

/// What the engine asks the runtime to run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunSpec {
    pub id: String,
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub tty: bool,
    pub mounts: Vec<MountSpec>,
    pub readonly_rootfs: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `--security-opt seccomp=unconfined`: no seccomp filter.
    pub seccomp_unconfined: bool,
    pub no_new_privileges: bool,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub pids_limit: Option<i64>,
    pub net: NetMode,
    pub cgroup_path: String,
    pub shm_size: Option<i64>,
    /// `(name, soft, hard)`, names as Docker spells them (`nofile`, `nproc`, ...).
    pub rlimits: Vec<(String, u64, u64)>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// Initial TTY size (rows, columns).
    pub console_size: Option<(u16, u16)>,
    /// `--pid`, `--ipc`, `--uts`.
    #[serde(default)]
    pub pid_ns: NsMode,
    #[serde(default)]
    pub ipc_ns: NsMode,
    #[serde(default)]
    pub uts_ns: NsMode,
    #[serde(default)]
    pub shm: Shm,
    /// `--device-cgroup-rule`: OCI device rules allowed after the defaults.
    #[serde(default)]
    pub device_rules: Vec<serde_json::Value>,
    /// `--oom-score-adj`.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// `--cgroupns private`: a cgroup namespace of its own.
    #[serde(default)]
    pub cgroup_ns_private: bool,
    /// The client's masked and read-only paths (`--security-opt systempaths=unconfined` sends
    /// empty lists), instead of the defaults.
    #[serde(default)]
    pub masked_paths: Option<Vec<String>>,
    #[serde(default)]
    pub readonly_paths: Option<Vec<String>>,
    /// `--memory-reservation` (soft limit), `--memory-swappiness` (cgroup v1).
    #[serde(default)]
    pub memory_reservation: Option<i64>,
    #[serde(default)]
    pub memory_swappiness: Option<u64>,
    /// `--domainname`.
    #[serde(default)]
    pub domainname: String,
    /// A sandbox (a pod's "pause" container): the process holds the namespaces and waits for a
    /// signal instead of running the program (the built-in runtime only).
    #[serde(default)]
    pub pause: bool,
    /// Device nodes made in the container's `/dev` (`--device`, CDI devices), each one allowed by
    /// the device cgroup with its own permissions.
    #[serde(default)]
    pub devices: Vec<DeviceNode>,
    /// OCI hooks by phase (`createRuntime`, `createContainer`, `startContainer`, `poststart`,
    /// `poststop`), as CDI specs ask for them.
    #[serde(default)]
    pub hooks: std::collections::BTreeMap<String, Vec<Hook>>,
}

/// A device node in the container (OCI `linux.devices`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceNode {
    /// Its path in the container.
    pub path: String,
    /// `c` (character), `b` (block), `u` (unbuffered character) or `p` (FIFO).
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub file_mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The device cgroup access: some of `r`, `w`, `m`.
    pub permissions: String,
}

/// An OCI hook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hook {
    pub path: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub timeout: Option<i64>,
}

/// The hook phases the OCI runtime spec defines (`prestart` is deprecated, and refused).
pub const HOOK_PHASES: &[&str] = &["createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

/// An OCI device cgroup rule from Docker's `--device-cgroup-rule` text: `TYPE MAJOR:MINOR ACCESS`
/// (`c 1:3 rwm`, `b *:* m`, `a *:* rwm`).
pub fn device_cgroup_rule(rule: &str) -> Result<serde_json::Value> {
    let bad = || Error::InvalidSpec(format!("invalid device cgroup rule format: '{rule}'"));
    let parts: Vec<&str> = rule.split_whitespace().collect();
    let [kind, numbers, access] = parts[..] else { return Err(bad()) };
    if !matches!(kind, "a" | "b" | "c") || access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(bad());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let num = |n: &str| -> Result<Option<i64>> {
        if n == "*" {
            Ok(None)
        } else {
            n.parse::<i64>().map(Some).map_err(|_| bad())
        }
    };
    let mut v = serde_json::json!({"allow": true, "type": kind, "access": access});
    if let Some(m) = num(major)? {
        v["major"] = serde_json::json!(m);
    }
    if let Some(m) = num(minor)? {
        v["minor"] = serde_json::json!(m);
    }
    Ok(v)
}

/// The kernel name of a Docker ulimit name.
pub fn rlimit_name(name: &str) -> Result<String> {
    const KNOWN: &[&str] = &[
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    if KNOWN.contains(&name) {
        Ok(format!("RLIMIT_{}", name.to_ascii_uppercase()))
    } else {
        Err(Error::InvalidSpec(format!("invalid ulimit type: {name}")))
    }
}

/// Normalize a capability name (`net_admin` → `CAP_NET_ADMIN`), refusing unknown ones.
pub fn normalize_cap(c: &str) -> Result<String> {
    let up = c.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let name = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    if ALL_CAPS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(Error::InvalidSpec(format!("unknown capability: {c:?}")))
    }
}

/// The effective capability set after `--cap-add`/`--cap-drop`.
pub fn capabilities(spec: &RunSpec) -> Result<Vec<String>> {
    if spec.privileged {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for c in &spec.cap_add {
        let c = normalize_cap(c)?;
        if c == "ALL" {
            caps = ALL_CAPS.iter().map(|s| s.to_string()).collect();
        } else if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for c in &spec.cap_drop {
        let c = normalize_cap(c)?;
        if c == "ALL" {
            caps.clear();
        } else {
            caps.retain(|x| *x != c);
        }
    }
    Ok(caps)
}

fn seccomp() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            { "names": SECCOMP_DENY, "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }
        ]
    })
}

/// The process of a container or an exec.
#[derive(Debug, Clone)]
pub struct ProcessSpec<'a> {
    pub args: &'a [String],
    pub env: &'a [String],
    pub cwd: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub gids: &'a [u32],
    pub tty: bool,
    pub caps: &'a [String],
    pub no_new_privileges: bool,
}

/// The process part of a spec (also used for `exec`).
pub fn process_json(ps: &ProcessSpec<'_>) -> Value {
    let ProcessSpec {
        args,
        env,
        cwd,
        uid,
        gid,
        gids,
        tty,
        caps,
        no_new_privileges: nnp,
    } = *ps;
    let mut p = json!({
        "terminal": tty,
        "user": { "uid": uid, "gid": gid, "additionalGids": gids },
        "args": args,
        "env": env,
        "cwd": if cwd.is_empty() { "/" } else { cwd },
        "capabilities": { "bounding": caps, "effective": caps, "permitted": caps }
    });
    // Present only when set: libcontainer loads the seccomp filter before dropping capabilities only
    // when the field is absent (an explicit `false` would make loading fail without CAP_SYS_ADMIN).
    if nnp {
        p["noNewPrivileges"] = json!(true);
    }
    p
}

/// Build the OCI runtime `config.json` for a container.
/// The annotation that marks a sandbox's spec: its process pauses instead of running `args`.
pub const PAUSE_ANNOTATION: &str = "io.berth.pause";

pub fn build_spec(spec: &RunSpec) -> Result<Value> {
    if spec.args.is_empty() {
        return Err(Error::InvalidSpec("no command specified".into()));
    }
    let caps = capabilities(spec)?;
    let process = spec_process(spec, &caps)?;
    let mut linux = json!({
        "namespaces": spec_namespaces(spec),
        "cgroupsPath": spec.cgroup_path,
        "resources": spec_resources(spec),
        "maskedPaths": match (&spec.masked_paths, spec.privileged) {
            (_, true) => vec![],
            (Some(p), _) => p.clone(),
            (None, _) => MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
        },
        "readonlyPaths": match (&spec.readonly_paths, spec.privileged) {
            (_, true) => vec![],
            (Some(p), _) => p.clone(),
            (None, _) => READONLY_PATHS.iter().map(|s| s.to_string()).collect(),
        },
    });
    if !spec.privileged && !spec.seccomp_unconfined {
        linux["seccomp"] = seccomp();
    }
    if !spec.devices.is_empty() {
        linux["devices"] = spec
            .devices
            .iter()
            .map(|d| {
                let mut v = json!({"path": d.path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor});
                if let Some(m) = d.file_mode {
                    v["fileMode"] = json!(m);
                }
                if let Some(u) = d.uid {
                    v["uid"] = json!(u);
                }
                if let Some(g) = d.gid {
                    v["gid"] = json!(g);
                }
                v
            })
            .collect();
    }
    let v = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": { "path": spec.rootfs, "readonly": spec.readonly_rootfs },
        // Only a private UTS namespace can take a hostname.
        "hostname": if spec.uts_ns == NsMode::Private { Some(&spec.hostname) } else { None },
        "domainname": if spec.uts_ns == NsMode::Private && !spec.domainname.is_empty() { Some(&spec.domainname) } else { None },
        "mounts": spec_mounts(spec),
        "linux": linux,
    });
    let mut v = v;
    if spec.pause {
        v["annotations"] = json!({ PAUSE_ANNOTATION: "true" });
    }
    if !spec.hooks.is_empty() {
        let mut hooks = serde_json::Map::new();
        for (phase, list) in &spec.hooks {
            if !HOOK_PHASES.contains(&phase.as_str()) {
                return Err(Error::InvalidSpec(format!("unknown hook phase {phase:?}")));
            }
            let list: Vec<Value> = list
                .iter()
                .map(|h| {
                    let mut v = json!({"path": h.path, "args": h.args, "env": h.env});
                    if let Some(t) = h.timeout {
                        v["timeout"] = json!(t);
                    }
                    v
                })
                .collect();
            hooks.insert(phase.clone(), Value::Array(list));
        }
        v["hooks"] = Value::Object(hooks);
    }
    // Validate the document against the OCI runtime spec types before anyone runs it.
    let _: oci_spec::runtime::Spec =
        serde_json::from_value(v.clone()).map_err(|e| Error::InvalidSpec(format!("generated runtime spec is invalid: {e}")))?;
    Ok(v)
}

/// The spec's mounts: the kernel filesystems every container has, `/dev/shm`, then the run's own.
fn spec_mounts(spec: &RunSpec) -> Vec<Value> {
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
    ];
    match &spec.shm {
        Shm::Private => mounts.push(
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={}", spec.shm_size.unwrap_or(64 << 20))]}),
        ),
        Shm::None => {}
        Shm::Bind(p) => mounts.push(json!({"destination": "/dev/shm", "type": "bind", "source": p, "options": ["rbind", "nosuid", "noexec", "nodev"]})),
    }
    for m in &spec.mounts {
        let mut opts = m.options.clone();
        if m.kind == "bind" && !opts.iter().any(|o| o == "bind" || o == "rbind") {
            opts.push("rbind".into());
        }
        mounts.push(json!({"destination": m.destination, "type": m.kind, "source": m.source, "options": opts}));
    }
    mounts
}

/// The namespaces the container gets: its own mount namespace, a cgroup one if private, and the
/// pid, uts, ipc and network ones as configured (private, the host's, or another's by path).
fn spec_namespaces(spec: &RunSpec) -> Vec<Value> {
    let mut namespaces = vec![json!({"type": "mount"})];
    if spec.cgroup_ns_private {
        namespaces.push(json!({"type": "cgroup"}));
    }
    for (kind, mode) in [
        ("pid", &spec.pid_ns),
        ("uts", &spec.uts_ns),
        ("ipc", &spec.ipc_ns),
        ("network", &spec.net),
    ] {
        match mode {
            NsMode::Private => namespaces.push(json!({"type": kind})),
            NsMode::Host => {}
            NsMode::Path(p) => namespaces.push(json!({"type": kind, "path": p})),
        }
    }
    namespaces
}

/// `linux.resources`: Docker's default device rules and the run's own, and the memory, CPU and
/// pids limits.
fn spec_resources(spec: &RunSpec) -> Value {
    let mut resources = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
        ]
    });
    if let Some(d) = resources["devices"].as_array_mut() {
        d.extend(spec.device_rules.iter().cloned());
        // The nodes the container was given, each with its own access (FIFOs need no rule).
        for n in spec.devices.iter().filter(|n| n.kind != 'p') {
            let kind = if n.kind == 'b' { "b" } else { "c" };
            d.push(json!({"allow": true, "type": kind, "major": n.major, "minor": n.minor, "access": n.permissions}));
        }
    }
    let mut mem = serde_json::Map::new();
    if let Some(m) = spec.memory.filter(|m| *m > 0) {
        mem.insert("limit".into(), json!(m));
        if let Some(s) = spec.memory_swap.filter(|s| *s != 0) {
            mem.insert("swap".into(), json!(s));
        }
    }
    if let Some(r) = spec.memory_reservation.filter(|r| *r > 0) {
        mem.insert("reservation".into(), json!(r));
    }
    if let Some(w) = spec.memory_swappiness {
        mem.insert("swappiness".into(), json!(w));
    }
    if !mem.is_empty() {
        resources["memory"] = serde_json::Value::Object(mem);
    }
    let mut cpu = serde_json::Map::new();
    if let Some(n) = spec.nano_cpus.filter(|n| *n > 0) {
        let period: u64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!((n as i128 * period as i128 / 1_000_000_000) as i64));
    } else if let Some(q) = spec.cpu_quota.filter(|q| *q > 0) {
        cpu.insert("quota".into(), json!(q));
        cpu.insert("period".into(), json!(spec.cpu_period.unwrap_or(100_000)));
    }
    if let Some(s) = spec.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(c) = spec.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = spec.cpuset_mems.as_ref().filter(|m| !m.is_empty()) {
        cpu.insert("mems".into(), json!(m));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = spec.pids_limit.filter(|p| *p > 0) {
        resources["pids"] = json!({"limit": p});
    }
    resources
}

/// The container's process: [`process_json`] with the console size, OOM score and rlimits.
fn spec_process(spec: &RunSpec, caps: &[String]) -> Result<Value> {
    let mut process = process_json(&ProcessSpec {
        args: &spec.args,
        env: &spec.env,
        cwd: &spec.cwd,
        uid: spec.uid,
        gid: spec.gid,
        gids: &spec.additional_gids,
        tty: spec.tty,
        caps,
        no_new_privileges: spec.no_new_privileges,
    });
    if let Some((h, w)) = spec.console_size.filter(|_| spec.tty) {
        process["consoleSize"] = json!({"height": h, "width": w});
    }
    if let Some(n) = spec.oom_score_adj {
        process["oomScoreAdj"] = json!(n);
    }
    if !spec.rlimits.is_empty() {
        let mut rl = Vec::new();
        for (name, soft, hard) in &spec.rlimits {
            rl.push(json!({"type": rlimit_name(name)?, "soft": soft, "hard": hard}));
        }
        process["rlimits"] = json!(rl);
    }
    Ok(process)
}

/// Write `config.json` into `bundle`.
pub fn write_bundle(bundle: &Path, spec: &RunSpec) -> Result<()> {
    let v = build_spec(spec)?;
    std::fs::create_dir_all(bundle).map_err(|e| Error::Io {
        op: "create",
        path: bundle.to_path_buf(),
        source: e,
    })?;
    oci::store::write_volatile(&bundle.join("config.json"), &serde_json::to_vec_pretty(&v).expect("json"))?;
    Ok(())
}

/// Resolve `user[:group]` (names or numbers) against the container's `/etc/passwd` and `/etc/group`.
/// Returns uid, gid, supplementary gids and the home directory.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32, Vec<u32>, String)> {
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && (f[0] == u || f[2] == u));
    let (uid, mut gid, name, home) = match (u.parse::<u32>(), &entry) {
        (_, Some(f)) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            Some(f[0].to_string()),
            f[5].to_string(),
        ),
        (Ok(n), None) => (n, 0, None, "/".to_string()),
        (Err(_), None) => {
            return Err(Error::InvalidSpec(format!(
                "unable to find user {u}: no matching entries in passwd file"
            )))
        }
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| Error::InvalidSpec(format!("unable to find group {g}: no matching entries in group file")))?,
        };
    }
    let mut gids = Vec::new();
    if let Some(name) = name {
        for f in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid && !gids.contains(&n) {
                        gids.push(n);
                    }
                }
            }
        }
    }
    Ok((uid, gid, gids, home))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RunSpec {
        RunSpec {
            pid_ns: NsMode::Private,
            ipc_ns: NsMode::Private,
            uts_ns: NsMode::Private,
            shm: Shm::Private,
            device_rules: vec![],
            oom_score_adj: None,
            cgroup_ns_private: false,
            masked_paths: None,
            readonly_paths: None,
            memory_reservation: None,
            memory_swappiness: None,
            domainname: String::new(),
            pause: false,
            devices: vec![],
            hooks: Default::default(),
            id: "x".into(),
            rootfs: "/tmp/r".into(),
            args: vec!["sh".into()],
            env: vec![],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            hostname: "h".into(),
            tty: false,
            mounts: vec![],
            readonly_rootfs: false,
            cap_add: vec![],
            cap_drop: vec![],
            privileged: false,
            seccomp_unconfined: false,
            no_new_privileges: false,
            memory: Some(64 << 20),
            memory_swap: None,
            nano_cpus: Some(1_500_000_000),
            cpu_shares: None,
            cpu_quota: None,
            cpu_period: None,
            pids_limit: Some(10),
            net: NetMode::Private,
            cgroup_path: "/berth/x".into(),
            shm_size: None,
            rlimits: vec![("nofile".into(), 1024, 2048)],
            cpuset_cpus: Some("0".into()),
            cpuset_mems: None,
            console_size: None,
        }
    }

    #[test]
    fn spec_has_docker_defaults_and_limits() {
        let v = build_spec(&base()).unwrap();
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 150000);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 10);
        assert_eq!(v["linux"]["resources"]["cpu"]["cpus"], "0");
        assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert!(v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_CHOWN"));
        assert!(!v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "CAP_SYS_ADMIN"));
        assert!(v["linux"]["maskedPaths"].as_array().unwrap().iter().any(|c| c == "/proc/kcore"));
    }

    #[test]
    fn caps_add_drop() {
        let mut s = base();
        s.cap_add = vec!["net_admin".into()];
        s.cap_drop = vec!["CHOWN".into()];
        let c = capabilities(&s).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()) && !c.contains(&"CAP_CHOWN".to_string()));
        s.cap_add = vec!["bogus".into()];
        assert!(capabilities(&s).unwrap_err().to_string().contains("bogus"));
    }

    #[test]
    fn devices_get_nodes_and_cgroup_rules_and_hooks_their_phase() {
        let mut s = base();
        s.devices.push(DeviceNode {
            path: "/dev/gpu0".into(),
            kind: 'c',
            major: 1,
            minor: 5,
            file_mode: Some(0o666),
            uid: None,
            gid: Some(44),
            permissions: "rw".into(),
        });
        s.hooks.insert(
            "createContainer".into(),
            vec![Hook {
                path: "/bin/true".into(),
                args: vec!["true".into()],
                env: vec![],
                timeout: Some(5),
            }],
        );
        let v = build_spec(&s).unwrap();
        assert_eq!(v["linux"]["devices"][0]["path"], "/dev/gpu0");
        assert_eq!(v["linux"]["devices"][0]["type"], "c");
        assert_eq!(v["linux"]["devices"][0]["gid"], 44);
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(
            rules.last().unwrap(),
            &json!({"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw"})
        );
        assert_eq!(v["hooks"]["createContainer"][0]["timeout"], 5);
        s.hooks.insert("prestart".into(), vec![]);
        assert!(build_spec(&s).unwrap_err().to_string().contains("prestart"));
    }

    #[test]
    fn users_resolve() {
        let t = std::env::temp_dir().join(format!("berth-user-test-{}", std::process::id()));
        std::fs::create_dir_all(t.join("etc")).unwrap();
        std::fs::write(
            t.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(t.join("etc/group"), "root:x:0:\nbob:x:1000:\nstaff:x:50:bob\n").unwrap();
        assert_eq!(resolve_user(&t, "bob").unwrap(), (1000, 1000, vec![50], "/home/bob".into()));
        assert_eq!(resolve_user(&t, "1000:staff").unwrap().1, 50);
        assert_eq!(resolve_user(&t, "4242").unwrap().0, 4242);
        assert!(resolve_user(&t, "nobody-here").is_err());
        std::fs::remove_dir_all(&t).unwrap();
    }
}
