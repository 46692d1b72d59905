//! Filesystem views of a container: `cp` (archive), `export`, `diff`, and process views (`top`,
//! `stats`). Paths inside the container are resolved with the rootfs as root, so symlinks in the
//! container cannot point these operations at the host.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use serde_json::{json, Value};

use crate::engine::Engine;
use crate::error::{internal, Error, ErrorKind, Result};

/// Open `path` inside `rootfs` (resolved as if rootfs were `/`), as an O_PATH fd.
fn open_in(rootfs: &Path, path: &str) -> Result<OwnedFd> {
    let root = std::fs::File::open(rootfs).map_err(internal)?;
    let rel = format!("./{}", path.trim_start_matches('/'));
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root.as_raw_fd(), rel.as_str(), how).map_err(|e| match e {
        nix::errno::Errno::ENOENT => Error::NotFound(format!("Could not find the file {path} in container")),
        other => Error::Internal(format!("{path}: {other}")),
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A not-found below a mount names the path the client gave.
fn not_found_as(e: Error, path: &str) -> Error {
    match e.kind() {
        ErrorKind::NotFound => Error::NotFound(format!("Could not find the file {path} in container")),
        _ => e,
    }
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The host path an fd opened inside `rootfs` refers to; refused if it is not below the rootfs.
fn real_path(rootfs: &Path, fd: &OwnedFd) -> Result<PathBuf> {
    let p = std::fs::read_link(fd_path(fd)).map_err(internal)?;
    if !p.starts_with(rootfs) {
        return Err(Error::BadRequest("path resolves outside the container".into()));
    }
    Ok(p)
}

/// An RAII guard that unmounts a rootfs mounted only for an operation.
struct Mounted {
    engine_rootfs: PathBuf,
    entry: Arc<crate::engine::Entry>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let mut users = self.entry.fs_users.lock().unwrap();
        *users -= 1;
        if *users == 0 && !self.entry.snapshot().state.running {
            let _ = image::snapshot::unmount(&self.engine_rootfs);
        }
    }
}

/// A mount `cp` sees through: files under `target` in the container are in `source` on the host.
struct CpMount {
    target: String,
    source: PathBuf,
    read_only: bool,
}

/// Lexically clean an absolute container path (`/a/./b/../c/` → `/a/c`).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

impl Engine {
    /// The container's binds and volumes, where `cp` reads and writes as Docker does (through the
    /// mount, not the rootfs below it; the same whether the container runs or not).
    fn cp_mounts(&self, c: &crate::types::Container) -> Vec<CpMount> {
        let mut out = Vec::new();
        let volume = |name: &str| self.volumes.data_path(name);
        for b in c.host_config.binds.iter().flatten() {
            if let Ok((src, dst, ro)) = crate::containers::parse_bind(b) {
                let source = if src.starts_with('/') { PathBuf::from(&src) } else { volume(&src) };
                out.push(CpMount {
                    target: dst,
                    source,
                    read_only: ro,
                });
            }
        }
        for v in &c.anon_volumes {
            if let Ok(vol) = self.volumes.get(v) {
                if let Some(t) = vol.labels.get(crate::volumes::ANONYMOUS_LABEL) {
                    out.push(CpMount {
                        target: t.clone(),
                        source: PathBuf::from(&vol.mountpoint),
                        read_only: false,
                    });
                }
            }
        }
        for m in c.host_config.mounts.iter().flatten().chain(&c.inherited_mounts) {
            let source = match m.kind.as_str() {
                "bind" => PathBuf::from(&m.source),
                "volume" if !m.source.is_empty() => volume(&m.source),
                _ => continue,
            };
            out.push(CpMount {
                target: m.target.clone(),
                source,
                read_only: m.read_only,
            });
        }
        for m in &mut out {
            m.target = clean(&m.target);
        }
        out
    }

    /// Where `path` of the container lives: the root to resolve it in (the deepest bind or
    /// volume holding it, else the rootfs), the path below that root, and whether it is read-only.
    fn cp_location(&self, key: &str, rootfs: &Path, path: &str) -> Result<(PathBuf, String, bool)> {
        let c = self.get(key)?.snapshot();
        let want = clean(path);
        let best = self
            .cp_mounts(&c)
            .into_iter()
            .filter(|m| m.target == "/" || want == m.target || want.starts_with(&format!("{}/", m.target)))
            .max_by_key(|m| m.target.len());
        match best {
            Some(m) => {
                let rest = want[m.target.len()..].to_string();
                let source = std::fs::canonicalize(&m.source)
                    .map_err(|_| Error::NotFound(format!("Could not find the file {path} in container")))?;
                Ok((source, if rest.is_empty() { "/".into() } else { rest }, m.read_only))
            }
            None => Ok((
                rootfs.to_path_buf(),
                path.to_string(),
                c.host_config.readonly_rootfs && c.state.running,
            )),
        }
    }

    /// The container's rootfs, mounted for the duration of the returned guard.
    fn mounted(&self, key: &str) -> Result<(Mounted, PathBuf)> {
        let entry = self.get(key)?;
        let mut users = entry.fs_users.lock().unwrap();
        self.mount_rootfs(&entry.snapshot())?;
        *users += 1;
        drop(users);
        let rootfs = self.rootfs(&entry.id);
        Ok((
            Mounted {
                engine_rootfs: rootfs.clone(),
                entry,
            },
            rootfs,
        ))
    }

    /// Stat of a path (`X-Docker-Container-Path-Stat`).
    pub fn path_stat(&self, key: &str, path: &str) -> Result<Value> {
        let (_g, rootfs) = self.mounted(key)?;
        let (root, rel, _) = self.cp_location(key, &rootfs, path)?;
        let fd = open_in(&root, &rel).map_err(|e| not_found_as(e, path))?;
        let real = real_path(&root, &fd)?;
        let md = std::fs::symlink_metadata(&real).map_err(internal)?;
        use std::os::unix::fs::MetadataExt;
        let name = Path::new(path)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into());
        // Go's os.FileMode: type bits in the high bits.
        let mut mode = md.mode() & 0o777;
        if md.is_dir() {
            mode |= 1 << 31;
        }
        let mtime = chrono::DateTime::from_timestamp(md.mtime(), 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        Ok(json!({"name": name, "size": md.size(), "mode": mode, "mtime": mtime, "linkTarget": ""}))
    }

    /// Tar of `path` in the container, entries named from its base name (as `docker cp` expects).
    pub fn archive_get(self: &Arc<Self>, key: &str, path: &str, out: impl std::io::Write) -> Result<()> {
        let (_g, rootfs) = self.mounted(key)?;
        let (root, rel, _) = self.cp_location(key, &rootfs, path)?;
        let fd = open_in(&root, &rel).map_err(|e| not_found_as(e, path))?;
        let base = Path::new(path.trim_end_matches('/'))
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let real = real_path(&root, &fd)?;
        image::diff::write_tar(
            &real,
            out,
            image::diff::TarOptions {
                prefix: Some(base),
                ..Default::default()
            },
        )
        .map_err(internal)?;
        Ok(())
    }

    /// Extract a tar into directory `path` of the container.
    pub fn archive_put(&self, key: &str, path: &str, input: impl std::io::Read) -> Result<()> {
        let (_g, rootfs) = self.mounted(key)?;
        let (root, rel, read_only) = self.cp_location(key, &rootfs, path)?;
        if read_only {
            return Err(Error::Conflict(if root == rootfs {
                "container rootfs is marked read-only".into()
            } else {
                format!("mounted volume is marked read-only: {path}")
            }));
        }
        let fd = open_in(&root, &rel).map_err(|e| not_found_as(e, path))?;
        let p = fd_path(&fd);
        if !std::fs::metadata(&p).map(|m| m.is_dir()).unwrap_or(false) {
            return Err(Error::BadRequest(format!("extraction point is not a directory: {path}")));
        }
        // Reopen as a real directory fd so extraction is relative to it.
        let dir = std::fs::File::open(&p).map_err(internal)?;
        let dpath = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        image::unpack::unpack_layer(input, &dpath).map_err(|e| Error::BadRequest(e.to_string()))?;
        Ok(())
    }

    pub fn export(&self, key: &str, out: impl std::io::Write) -> Result<()> {
        let (_g, rootfs) = self.mounted(key)?;
        image::diff::write_tar(&rootfs, out, image::diff::TarOptions::default()).map_err(internal)?;
        Ok(())
    }

    pub fn changes(&self, key: &str) -> Result<Vec<Value>> {
        let entry = self.get(key)?;
        let c = entry.snapshot();
        let mut lowers = self.images.lower_dirs(&oci::Digest::parse(&c.image)?)?;
        lowers.insert(0, self.container_dir(&c.id).join("init"));
        let ch = image::diff::changes(&self.container_dir(&c.id).join("diff"), &lowers).map_err(internal)?;
        Ok(ch.into_iter().map(|c| json!({"Path": c.path, "Kind": c.kind})).collect())
    }

    /// `GET /containers/{id}/top`.
    pub fn top(&self, key: &str) -> Result<Value> {
        let entry = self.get(key)?;
        let c = entry.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!("Container {} is not running", c.id)));
        }
        let tick = 100.0;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("btime"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
            })
            .unwrap_or(0);
        let mut procs = Vec::new();
        let mut pids = runtime::cgroup::pids(&crate::containers::cgroup_path(&c.id));
        pids.sort();
        for pid in pids {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else { continue };
            let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let ppid = f.get(1).copied().unwrap_or("0");
            let utime: f64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0);
            let stime: f64 = f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
            let start: f64 = f.get(19).and_then(|s| s.parse().ok()).unwrap_or(0.0);
            let secs = ((utime + stime) / tick) as u64;
            let started = chrono::DateTime::from_timestamp(boot + (start / tick) as i64, 0)
                .map(|t| t.format("%H:%M").to_string())
                .unwrap_or_default();
            let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Uid:"))
                        .and_then(|l| l.split_whitespace().nth(1).map(String::from))
                })
                .unwrap_or_default();
            let uid = if uid == "0" { "root".to_string() } else { uid };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    b.split(|x| *x == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            procs.push(json!([
                uid,
                pid.to_string(),
                ppid,
                "0",
                started,
                "?",
                format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
                cmd
            ]));
        }
        Ok(json!({"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], "Processes": procs}))
    }

    /// One stats sample in Docker's JSON form.
    pub fn stats_sample(&self, key: &str, pre: Option<&Value>) -> Result<Value> {
        let entry = self.get(key)?;
        let c = entry.snapshot();
        let s = if c.state.running {
            runtime::cgroup::stats(&crate::containers::cgroup_path(&c.id))
        } else {
            Default::default()
        };
        let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u64;
        let system = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|st| {
                st.lines()
                    .next()
                    .map(|l| l.split_whitespace().skip(1).filter_map(|x| x.parse::<u64>().ok()).sum::<u64>())
            })
            .unwrap_or(0)
            * 10_000_000;
        let host_mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
            .unwrap_or(0)
            * 1024;
        let limit = if s.memory_limit == 0 || s.memory_limit > host_mem {
            host_mem
        } else {
            s.memory_limit
        };
        let cpu = json!({"cpu_usage": {"total_usage": s.cpu_total_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "system_cpu_usage": system, "online_cpus": ncpu, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
        Ok(json!({
            "read": crate::types::now(),
            "preread": pre.and_then(|p| p.get("read").cloned()).unwrap_or(json!(crate::types::ZERO_TIME)),
            "id": c.id,
            "name": c.name,
            "pids_stats": {"current": s.pids, "limit": s.pids_limit},
            "cpu_stats": cpu,
            "precpu_stats": pre.and_then(|p| p.get("cpu_stats").cloned()).unwrap_or(json!({"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": ncpu, "throttling_data": {}})),
            "memory_stats": {"usage": s.memory_usage, "limit": limit, "stats": {"cache": s.memory_cache, "inactive_file": 0}},
            "blkio_stats": {"io_service_bytes_recursive": null},
            "networks": {},
            "num_procs": 0,
            "storage_stats": {},
        }))
    }
}

/// Bytes of the files under `dir` (apparent sizes, each inode once, symlinks not followed).
pub(crate) fn dir_size(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for entry in rd.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if m.is_dir() {
                stack.push(entry.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

impl Engine {
    /// The bytes in a container's writable layer, and with its image's layers added
    /// (`SizeRw`, `SizeRootFs` of `docker ps -s` and `docker inspect -s`).
    pub fn container_sizes(&self, c: &crate::types::Container) -> (u64, u64) {
        let rw = dir_size(&self.container_dir(&c.id).join("diff"));
        let image = self.images.resolve(&c.image).ok().and_then(|id| self.images.manifest(&id).ok());
        (rw, rw + image.map(|m| m.layers.iter().map(|l| l.size).sum::<u64>()).unwrap_or(0))
    }
}

impl Engine {
    /// `docker top CONTAINER PS_ARGS`: the host's `ps` with those arguments, as Docker runs it, keeping
    /// the lines of the container's processes (its output needs a PID column).
    pub async fn top_ps(&self, key: &str, args: &str) -> Result<Value> {
        let c = self.get(key)?.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!("Container {} is not running", c.id)));
        }
        let pids: std::collections::HashSet<String> = runtime::cgroup::pids(&crate::containers::cgroup_path(&c.id))
            .iter()
            .map(|p| p.to_string())
            .collect();
        let out = tokio::process::Command::new("ps")
            .args(args.split_whitespace())
            .output()
            .await
            .map_err(|e| Error::Internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(Error::BadRequest(format!(
                "ps {args}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

/// `ps` output as `{"Titles", "Processes"}`, only the lines whose PID is in `pids`; the last column
/// (the command) keeps its spaces.
fn parse_ps(out: &str, pids: &std::collections::HashSet<String>) -> Result<Value> {
    let mut lines = out.lines();
    let titles: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let pid_col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| Error::BadRequest("Couldn't find PID field in ps output".into()))?;
    let mut procs = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() <= pid_col || !pids.contains(fields[pid_col]) {
            continue;
        }
        let mut row: Vec<String> = fields.iter().take(titles.len().saturating_sub(1)).map(|f| f.to_string()).collect();
        row.push(
            fields
                .get(titles.len().saturating_sub(1)..)
                .map(|r| r.join(" "))
                .unwrap_or_default(),
        );
        procs.push(row);
    }
    Ok(json!({"Titles": titles, "Processes": procs}))
}
