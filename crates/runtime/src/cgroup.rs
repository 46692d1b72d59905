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
    /// Memory plus swap (-1: unlimited).
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// CFS quota and period, in microseconds (ignored when `nano_cpus` is given).
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
}

fn write(p: PathBuf, v: &str) -> std::io::Result<()> {
    fs::write(&p, v).map_err(|e| std::io::Error::new(e.kind(), format!("write {}: {e}", p.display())))
}

/// Apply new limits to a running container's cgroup.
pub fn update(cg: &str, u: &Update) -> std::io::Result<()> {
    let max = |v: i64, unlimited: &str| if v > 0 { v.to_string() } else { unlimited.to_string() };
    if is_v2() {
        let d = v2(cg);
        if let Some(m) = u.memory {
            write(d.join("memory.max"), &max(m, "max"))?;
        }
        if let Some(s) = u.memory_swap {
            // cgroup2 limits swap alone; Docker's figure is memory plus swap.
            let mem = u.memory.unwrap_or(0);
            let v = if s > 0 && mem > 0 {
                (s - mem).max(0).to_string()
            } else {
                "max".into()
            };
            write(d.join("memory.swap.max"), &v)?;
        }
        if let Some(r) = u.memory_reservation {
            write(d.join("memory.low"), &max(r, "0"))?;
        }
        if let Some(v) = cpu_max(u) {
            write(d.join("cpu.max"), &v)?;
        }
        if let Some(s) = u.cpu_shares {
            // Docker's conversion of shares (2..262144) to a weight (1..10000).
            let w = 1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142;
            write(d.join("cpu.weight"), &w.to_string())?;
        }
        if let Some(c) = &u.cpuset_cpus {
            write(d.join("cpuset.cpus"), c)?;
        }
        if let Some(m) = &u.cpuset_mems {
            write(d.join("cpuset.mems"), m)?;
        }
        if let Some(p) = u.pids_limit {
            write(d.join("pids.max"), &max(p, "max"))?;
        }
    } else {
        let mem = v1("memory", cg);
        // memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: when raising the
        // limit above the current memory+swap one, the latter moves first.
        let memsw = mem.join("memory.memsw.limit_in_bytes");
        let swap = u.memory_swap.map(|s| max(s, "-1"));
        if swap.is_some() && !memsw.exists() {
            return Err(std::io::Error::other(
                "this kernel does not support swap limits (no memory.memsw.limit_in_bytes): boot with swapaccount=1",
            ));
        }
        let current_swap = || -> i64 {
            fs::read_to_string(&memsw)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(i64::MAX)
        };
        let swap_first = swap.is_some() && u.memory.is_some_and(|m| m <= 0 || m > current_swap());
        if swap_first {
            if let Some(s) = &swap {
                write(memsw.clone(), s)?;
            }
        }
        if let Some(m) = u.memory {
            write(mem.join("memory.limit_in_bytes"), &max(m, "-1"))?;
        }
        if !swap_first {
            if let Some(s) = &swap {
                write(memsw, s)?;
            }
        }
        if let Some(r) = u.memory_reservation {
            write(mem.join("memory.soft_limit_in_bytes"), &max(r, "-1"))?;
        }
        if let Some(v) = cpu_max(u) {
            let (q, p) = v.split_once(' ').unwrap_or((&v, "100000"));
            write(v1("cpu", cg).join("cpu.cfs_period_us"), p)?;
            write(v1("cpu", cg).join("cpu.cfs_quota_us"), if q == "max" { "-1" } else { q })?;
        }
        if let Some(s) = u.cpu_shares {
            write(v1("cpu", cg).join("cpu.shares"), &s.to_string())?;
        }
        if let Some(c) = &u.cpuset_cpus {
            write(v1("cpuset", cg).join("cpuset.cpus"), c)?;
        }
        if let Some(m) = &u.cpuset_mems {
            write(v1("cpuset", cg).join("cpuset.mems"), m)?;
        }
        if let Some(p) = u.pids_limit {
            write(v1("pids", cg).join("pids.max"), &max(p, "max"))?;
        }
    }
    Ok(())
}

/// The CFS bandwidth as cgroup2's `cpu.max` writes it ("QUOTA PERIOD", "max PERIOD"), if changed.
fn cpu_max(u: &Update) -> Option<String> {
    if let Some(n) = u.nano_cpus {
        return Some(if n > 0 {
            format!("{} 100000", n * 100_000 / 1_000_000_000)
        } else {
            "max 100000".into()
        });
    }
    if u.cpu_quota.is_none() && u.cpu_period.is_none() {
        return None;
    }
    let period = u.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
    Some(match u.cpu_quota {
        Some(q) if q > 0 => format!("{q} {period}"),
        _ => format!("max {period}"),
    })
}

/// A cgroup filesystem mount, from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupMount {
    path: PathBuf,
    v2: bool,
    /// Per-mount options (`rw,nosuid,nodev,noexec,relatime`).
    mount_opts: String,
    /// Superblock options (`rw,nsdelegate`, `rw,cpu,cpuacct`).
    super_opts: String,
}

/// Mountinfo escapes spaces and a few other bytes in paths as `\NNN` octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            let v2 = match *post.first()? {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(CgroupMount {
                path: PathBuf::from(unescape_mountinfo(pre.get(4)?)),
                v2,
                mount_opts: pre.get(5)?.to_string(),
                super_opts: post.get(2)?.to_string(),
            })
        })
        .collect()
}

/// What [`favor_dynmods`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FavorDynmods {
    /// A cgroup mount already had the option.
    AlreadyOn(PathBuf),
    /// This mount was remounted with it.
    Enabled(PathBuf),
}

/// Remount a cgroup hierarchy with `favordynmods` (Linux 6.0+), unless one already has it.
///
/// Moving a process into a cgroup (the write to `cgroup.procs` every container start makes) takes
/// the kernel's global threadgroup lock for writing; by default that waits for an RCU grace period,
/// 10–20 ms on a small machine — more than half of a container start. With `favordynmods` the lock
/// stays in the mode that needs no grace period, at a small cost to fork and exit. The lock is
/// global, so one mount is enough: the cgroup2 one when there is one (`/sys/fs/cgroup` on a v2
/// host, `/sys/fs/cgroup/unified` on a hybrid one), else the first v1 hierarchy. The mount's own
/// options are kept. Since Linux 6.18 the kernel cannot turn the mode off again.
pub fn favor_dynmods() -> std::io::Result<FavorDynmods> {
    use nix::mount::{mount, MsFlags};
    let mounts = cgroup_mounts(&fs::read_to_string("/proc/self/mountinfo")?);
    if let Some(m) = mounts.iter().find(|m| m.super_opts.split(',').any(|o| o == "favordynmods")) {
        return Ok(FavorDynmods::AlreadyOn(m.path.clone()));
    }
    let m = mounts
        .iter()
        .find(|m| m.v2)
        .or_else(|| mounts.first())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no cgroup filesystem is mounted"))?;
    let mut flags = MsFlags::MS_REMOUNT;
    for o in m.mount_opts.split(',') {
        flags |= match o {
            "ro" => MsFlags::MS_RDONLY,
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            "strictatime" => MsFlags::MS_STRICTATIME,
            _ => MsFlags::empty(),
        };
    }
    // The superblock options are passed back whole (a remount of cgroup2 resets the ones left out,
    // e.g. nsdelegate; one of v1 must name its controllers), with favordynmods added.
    let data = format!("{},favordynmods", m.super_opts);
    mount(None::<&str>, &m.path, None::<&str>, flags, Some(data.as_str())).map_err(|e| {
        std::io::Error::new(
            std::io::Error::from(e).kind(),
            format!("remount {} with {data}: {e}", m.path.display()),
        )
    })?;
    Ok(FavorDynmods::Enabled(m.path.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup_mounts_with_their_options() {
        let mi = "\
25 31 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
29 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
30 29 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 29 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
34 29 0:31 / /sys/fs/cgroup/a\\040b rw,relatime shared:15 - cgroup cgroup rw,name=systemd
";
        let m = cgroup_mounts(mi);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].path, PathBuf::from("/sys/fs/cgroup/unified"));
        assert!(m[0].v2);
        assert_eq!(m[0].mount_opts, "rw,nosuid,nodev,noexec,relatime");
        assert_eq!(m[0].super_opts, "rw,nsdelegate");
        assert_eq!(m[1].path, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(!m[1].v2);
        assert_eq!(m[1].super_opts, "rw,cpu,cpuacct");
        assert_eq!(m[2].path, PathBuf::from("/sys/fs/cgroup/a b"));
    }
}
