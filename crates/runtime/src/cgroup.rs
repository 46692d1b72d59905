//! Reading and updating a container's cgroup directly (stats, `update`, OOM detection), for the v1
//! hierarchies and cgroup v2.

use std::fs;
use std::path::PathBuf;

const V1: &str = "/sys/fs/cgroup";

/// Is the host on the unified (v2-only) hierarchy?
pub fn is_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn v1(controller: &str, cg: &str) -> PathBuf {
    PathBuf::from(V1).join(controller).join(cg.trim_start_matches('/'))
}

fn v2(cg: &str) -> PathBuf {
    PathBuf::from(V1).join(cg.trim_start_matches('/'))
}

fn read_u64(p: PathBuf) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn kv(p: PathBuf, key: &str) -> Option<u64> {
    let s = fs::read_to_string(p).ok()?;
    s.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// Number of OOM kills in the container's memory cgroup.
pub fn oom_kills(cg: &str) -> u64 {
    if is_v2() {
        kv(v2(cg).join("memory.events"), "oom_kill").unwrap_or(0)
    } else {
        kv(v1("memory", cg).join("memory.oom_control"), "oom_kill").unwrap_or(0)
    }
}

/// A snapshot of usage.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub memory_usage: u64,
    pub memory_limit: u64,
    pub memory_cache: u64,
    pub cpu_total_ns: u64,
    pub pids: u64,
    pub pids_limit: u64,
}

pub fn stats(cg: &str) -> Stats {
    if is_v2() {
        let d = v2(cg);
        Stats {
            memory_usage: read_u64(d.join("memory.current")).unwrap_or(0),
            memory_limit: read_u64(d.join("memory.max")).unwrap_or(u64::MAX),
            memory_cache: kv(d.join("memory.stat"), "file").unwrap_or(0),
            cpu_total_ns: kv(d.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
            pids: read_u64(d.join("pids.current")).unwrap_or(0),
            pids_limit: read_u64(d.join("pids.max")).unwrap_or(0),
        }
    } else {
        Stats {
            memory_usage: read_u64(v1("memory", cg).join("memory.usage_in_bytes")).unwrap_or(0),
            memory_limit: read_u64(v1("memory", cg).join("memory.limit_in_bytes")).unwrap_or(u64::MAX),
            memory_cache: kv(v1("memory", cg).join("memory.stat"), "cache").unwrap_or(0),
            cpu_total_ns: read_u64(v1("cpuacct", cg).join("cpuacct.usage")).unwrap_or(0),
            pids: read_u64(v1("pids", cg).join("pids.current")).unwrap_or(0),
            pids_limit: read_u64(v1("pids", cg).join("pids.max")).unwrap_or(0),
        }
    }
}

/// Pids of every process in the container's cgroup.
pub fn pids(cg: &str) -> Vec<i32> {
    let p = if is_v2() {
        v2(cg).join("cgroup.procs")
    } else {
        v1("pids", cg).join("cgroup.procs")
    };
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Limits for `docker update`; `None` leaves a limit unchanged.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
}

fn write(p: PathBuf, v: &str) -> std::io::Result<()> {
    fs::write(&p, v).map_err(|e| std::io::Error::new(e.kind(), format!("write {}: {e}", p.display())))
}

/// Apply new limits to a running container's cgroup.
pub fn update(cg: &str, u: &Update) -> std::io::Result<()> {
    if is_v2() {
        let d = v2(cg);
        if let Some(m) = u.memory {
            write(d.join("memory.max"), &if m > 0 { m.to_string() } else { "max".into() })?;
        }
        if let Some(n) = u.nano_cpus {
            let v = if n > 0 {
                format!("{} 100000", n * 100_000 / 1_000_000_000)
            } else {
                "max 100000".into()
            };
            write(d.join("cpu.max"), &v)?;
        }
        if let Some(p) = u.pids_limit {
            write(d.join("pids.max"), &if p > 0 { p.to_string() } else { "max".into() })?;
        }
    } else {
        if let Some(m) = u.memory {
            write(
                v1("memory", cg).join("memory.limit_in_bytes"),
                &if m > 0 { m.to_string() } else { "-1".into() },
            )?;
        }
        if let Some(n) = u.nano_cpus {
            write(v1("cpu", cg).join("cpu.cfs_period_us"), "100000")?;
            let q = if n > 0 {
                (n * 100_000 / 1_000_000_000).to_string()
            } else {
                "-1".into()
            };
            write(v1("cpu", cg).join("cpu.cfs_quota_us"), &q)?;
        }
        if let Some(s) = u.cpu_shares {
            write(v1("cpu", cg).join("cpu.shares"), &s.to_string())?;
        }
        if let Some(p) = u.pids_limit {
            write(v1("pids", cg).join("pids.max"), &if p > 0 { p.to_string() } else { "max".into() })?;
        }
    }
    Ok(())
}
