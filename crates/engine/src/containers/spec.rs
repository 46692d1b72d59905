//! The run spec of a container, made at each start: its rootfs, mounts, namespaces, /etc
//! files and process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use runtime::spec::{MountSpec, NetMode, RunSpec};

use crate::engine::{random_id, Engine};
use crate::error::{internal, Error, Result};
use crate::types::{Container, HostConfig};

use super::*;

use super::checks::{tmpfs_options, MountOptions};

/// Create the working directory in the container's root filesystem when the image lacks it (a
/// `-w` or `WORKDIR` that names a new directory), as Docker does: mode 0755, owned by root,
/// resolved inside the root so a symlink in the image cannot point it elsewhere.
pub(crate) fn make_workdir(rootfs: &std::path::Path, cwd: &str) -> Result<()> {
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
pub(crate) fn console_size(hc: &HostConfig) -> Option<(u16, u16)> {
    let a = hc.extra.get("ConsoleSize")?.as_array()?;
    Some((a.first()?.as_u64()? as u16, a.get(1)?.as_u64()? as u16)).filter(|(h, w)| *h > 0 && *w > 0)
}

/// `name:ip` (Docker's `--add-host`); `ip` may be `host-gateway`, the host's address on the
/// default bridge, put in when the container starts.
/// `--add-host NAME:host-gateway`'s special address.
pub(crate) const HOST_GATEWAY: &str = "host-gateway";

pub(crate) fn parse_extra_host(h: &str) -> Result<(String, String)> {
    let (name, ip) = h
        .split_once(':')
        .ok_or_else(|| Error::BadRequest(format!("invalid extra host {h:?}: expected name:ip")))?;
    if ip == HOST_GATEWAY {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Error::BadRequest(format!("invalid extra host {h:?}: expected name:ip")));
        }
        return Ok((name.to_string(), ip.to_string()));
    }
    if ip.parse::<std::net::IpAddr>().is_err() || name.is_empty() || name.contains(char::is_whitespace) {
        return Err(Error::BadRequest(format!("invalid extra host {h:?}: expected name:ip")));
    }
    Ok((name.to_string(), ip.to_string()))
}

/// The container's resolv.conf: the host's, or the `--dns*` options.
pub(crate) fn resolv_conf(hc: &HostConfig, embedded: bool) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if embedded {
        // On a user-defined network: the embedded resolver, which forwards the rest (to the
        // container's --dns servers, or the host's).
        let mut out = String::new();
        match hc.dns_search.as_ref().filter(|s| !s.is_empty()) {
            Some(s) => out.push_str(&format!("search {}\n", s.join(" "))),
            None => out.push_str(
                &host
                    .lines()
                    .filter(|l| l.starts_with("search"))
                    .map(|l| format!("{l}\n"))
                    .collect::<String>(),
            ),
        }
        out.push_str(&format!("nameserver {}\n", net::dns::RESOLVER));
        let mut opts = vec!["ndots:0".to_string()];
        opts.extend(hc.dns_options.clone().unwrap_or_default());
        out.push_str(&format!("options {}\n", opts.join(" ")));
        return out;
    }
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

/// A new volume mounted over a path that has content in the image gets that content (Docker's
/// behaviour), resolved safely inside the rootfs.
pub(crate) fn copy_image_content(rootfs: &std::path::Path, target: &str, dest: &std::path::Path) {
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

impl Engine {
    /// Mount the host-side tmpfs of a shareable container's `/dev/shm` (see `shm_dir`).
    pub(crate) fn mount_shm(&self, id: &str, size: i64) -> Result<PathBuf> {
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
    pub(crate) fn namespace_mode(&self, mode: &str, ns: &str, what: &str) -> Result<NetMode> {
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

    /// A container's run spec, made at each start: process, /etc files, mounts, namespaces and
    /// limits from its config and host config.
    pub(crate) fn build_run_spec(&self, c: &mut Container) -> Result<RunSpec> {
        let rootfs = self.rootfs(&c.id);
        let hc = c.host_config.clone();
        // Sharing another's network stack: its host name too (and its /etc files, below).
        let donor_net = match &hc.network_mode {
            crate::types::NetworkMode::Container(key) => {
                let ns = self.namespace_mode(&format!("container:{key}"), "net", "network")?;
                let donor = self.get(key)?.snapshot();
                c.config.hostname = donor.config.hostname.clone();
                c.config.domainname = donor.config.domainname.clone();
                Some((ns, donor.id))
            }
            _ => None,
        };
        let (uid, gid, gids, env) = process_identity(&rootfs, c)?;
        let mut args = vec![c.path.clone()];
        args.extend(c.args.iter().cloned());
        let mut mounts = match &donor_net {
            Some((_, donor)) => self.donor_etc_files(donor),
            None => self.etc_files(c)?,
        };
        let mut targets: Vec<String> = Vec::new();
        mounts.extend(self.bind_mounts(&rootfs, &hc, &mut targets)?);
        mounts.extend(self.mount_entries(&rootfs, c, &mut targets)?);
        mounts.extend(tmpfs_mounts(&hc, &mut targets));
        mounts.extend(self.image_volumes(&rootfs, c, &targets)?);
        if hc.init == Some(true) {
            mounts.push(self.init_mount()?);
            args.splice(0..0, ["/sbin/docker-init".to_string(), "--".to_string()]);
        }
        let (pid_ns, ipc_ns, shm) = self.pid_ipc_namespaces(c)?;
        let uts_ns = if hc.uts_mode == "host" { NetMode::Host } else { NetMode::Private };
        let nnp = hc
            .security_opt
            .iter()
            .flatten()
            .any(|o| o == "no-new-privileges" || o.ends_with(":true") || o.ends_with("=true"));
        let net = match hc.network_mode {
            _ if donor_net.is_some() => donor_net.map(|(ns, _)| ns).expect("checked"),
            crate::types::NetworkMode::Host => NetMode::Host,
            _ if !c.endpoints.is_empty() => NetMode::Path(self.netns_path(&c.id)),
            _ => NetMode::Private,
        };
        let device_rules = hc
            .extra
            .get("DeviceCgroupRules")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .map(|r| runtime::spec::device_cgroup_rule(r.as_str().unwrap_or("")))
            .collect::<runtime::Result<Vec<_>>>()?;
        let paths = |k: &str| -> Option<Vec<String>> { hc.extra.get(k).and_then(|v| serde_json::from_value(v.clone()).ok()) };
        let mut spec = RunSpec {
            devices: crate::cdi::host_devices(hc.devices.as_deref().unwrap_or_default())?,
            hooks: Default::default(),
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
            pause: c.sandbox,
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
        };
        // CDI devices, resolved again at each start: the devices are the host's as it is now.
        if let Some(edits) = self.cdi_edits(&hc)? {
            crate::cdi::apply(&mut spec, &edits)?;
        }
        Ok(spec)
    }

    /// The /etc files of the container whose network stack this one shares, as Docker shares them.
    fn donor_etc_files(&self, donor: &str) -> Vec<MountSpec> {
        let dir = self.container_dir(donor);
        ["hostname", "hosts", "resolv.conf"]
            .iter()
            .map(|f| MountSpec {
                source: dir.join(f).display().to_string(),
                destination: format!("/etc/{f}"),
                kind: "bind".into(),
                options: vec!["rbind".into(), "rprivate".into()],
            })
            .collect()
    }

    /// /etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker provides them: written in the
    /// container's directory and bind-mounted.
    fn etc_files(&self, c: &Container) -> Result<Vec<MountSpec>> {
        let dir = self.container_dir(&c.id);
        let hc = &c.host_config;
        let mut mounts = Vec::new();
        std::fs::write(dir.join("hostname"), format!("{}\n", c.config.hostname)).map_err(internal)?;
        let mut hosts = if hc.network_mode == crate::types::NetworkMode::Host {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            // The container's own name resolves to its address on its network, as in Docker.
            let own = c
                .endpoints
                .values()
                .next()
                .map_or("127.0.1.1".to_string(), |ep| ep.ip_address.to_string());
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n{own}\t{}\n", c.config.hostname)
        };
        for h in hc.extra_hosts.iter().flatten() {
            let (name, mut ip) = parse_extra_host(h)?;
            if ip == HOST_GATEWAY {
                // Docker's default host-gateway-ip: the host's address on the default bridge.
                ip = self
                    .networks
                    .find(crate::networks::DEFAULT_NETWORK)
                    .filter(|_| self.cfg.bridge.is_some())
                    .map(|n| n.pool.gateway.to_string())
                    .ok_or_else(|| {
                        Error::BadRequest(format!(
                            "extra host {h:?}: host-gateway is the default bridge's address, and this daemon has none (--bridge none)"
                        ))
                    })?;
            }
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
        std::fs::write(dir.join("hosts"), hosts).map_err(internal)?;
        let resolv = resolv_conf(hc, c.endpoints.keys().any(|n| self.embedded_dns(n)));
        std::fs::write(dir.join("resolv.conf"), resolv).map_err(internal)?;
        for f in ["hostname", "hosts", "resolv.conf"] {
            mounts.push(MountSpec {
                source: dir.join(f).display().to_string(),
                destination: format!("/etc/{f}"),
                kind: "bind".into(),
                options: vec!["rbind".into(), "rprivate".into()],
            });
        }
        Ok(mounts)
    }

    /// The volumes a container mounts, made at create as Docker makes them: named and
    /// anonymous ones (filled from the image when new, which needs its rootfs mounted for the
    /// while) and missing bind sources. A start finds them made.
    pub(crate) fn make_volumes(&self, c: &mut Container) -> Result<()> {
        let hc = c.host_config.clone();
        let wanted = c.config.volumes.as_ref().is_some_and(|v| !v.is_empty())
            || hc.binds.as_ref().is_some_and(|b| !b.is_empty())
            || hc.mounts.as_ref().is_some_and(|m| m.iter().any(|m| m.kind != "tmpfs"));
        if !wanted {
            return Ok(());
        }
        self.mount_rootfs(c)?;
        let rootfs = self.rootfs(&c.id);
        let mut targets: Vec<String> = Vec::new();
        let made = self
            .bind_mounts(&rootfs, &hc, &mut targets)
            .and_then(|_| self.mount_entries(&rootfs, c, &mut targets))
            .and_then(|_| {
                tmpfs_mounts(&hc, &mut targets);
                self.image_volumes(&rootfs, c, &targets)
            });
        let _ = image::snapshot::unmount(&rootfs);
        made.map(|_| ())
    }

    /// `HostConfig.Binds`: host paths (made if missing) and named volumes (made, and filled from
    /// the image, if new).
    fn bind_mounts(&self, rootfs: &Path, hc: &HostConfig, targets: &mut Vec<String>) -> Result<Vec<MountSpec>> {
        let mut mounts = Vec::new();
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
                    copy_image_content(rootfs, &dst, std::path::Path::new(&v.mountpoint));
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
        Ok(mounts)
    }

    /// `HostConfig.Mounts` and the mounts inherited with `VolumesFrom`.
    fn mount_entries(&self, rootfs: &Path, c: &mut Container, targets: &mut Vec<String>) -> Result<Vec<MountSpec>> {
        let mut mounts = Vec::new();
        let entries: Vec<crate::types::MountPoint> = c.host_config.mounts.iter().flatten().chain(&c.inherited_mounts).cloned().collect();
        for m in &entries {
            match m.kind.as_str() {
                "bind" | "volume" => {
                    let opts = MountOptions::of(m)?;
                    let source = if m.kind == "volume" {
                        // An anonymous volume is made once and kept for later starts.
                        let anon = m.source.is_empty().then(|| {
                            c.anon_volumes.iter().find(|n| {
                                self.volumes
                                    .get(n)
                                    .is_ok_and(|v| v.labels.get(crate::volumes::ANONYMOUS_LABEL) == Some(&m.target))
                            })
                        });
                        let name = match anon {
                            Some(Some(n)) => n.clone(),
                            Some(None) => random_id(),
                            None => m.source.clone(),
                        };
                        let labels = if m.source.is_empty() {
                            BTreeMap::from([(crate::volumes::ANONYMOUS_LABEL.to_string(), m.target.clone())])
                        } else {
                            BTreeMap::new()
                        };
                        let (v, new) = self.volumes.create(&name, labels, "local", BTreeMap::new())?;
                        if new {
                            if !opts.no_copy {
                                copy_image_content(rootfs, &m.target, std::path::Path::new(&v.mountpoint));
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
        Ok(mounts)
    }

    /// Image VOLUMEs not otherwise mounted get anonymous volumes (made once, kept for later starts).
    fn image_volumes(&self, rootfs: &Path, c: &mut Container, targets: &[String]) -> Result<Vec<MountSpec>> {
        let mut mounts = Vec::new();
        for vpath in c.config.volumes.clone().unwrap_or_default().keys() {
            if targets.iter().any(|t| t.trim_end_matches('/') == vpath.trim_end_matches('/')) {
                continue;
            }
            let name = match c.anon_volumes.iter().find(|n| {
                self.volumes
                    .get(n)
                    .ok()
                    .is_some_and(|v| v.labels.get(crate::volumes::ANONYMOUS_LABEL) == Some(vpath))
            }) {
                Some(n) => n.clone(),
                None => {
                    let n = random_id();
                    let (v, _) = self.volumes.create(
                        &n,
                        BTreeMap::from([(crate::volumes::ANONYMOUS_LABEL.to_string(), vpath.clone())]),
                        "local",
                        BTreeMap::new(),
                    )?;
                    copy_image_content(rootfs, vpath, std::path::Path::new(&v.mountpoint));
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
        Ok(mounts)
    }

    /// `--init`: the daemon's init binary mounted at /sbin/docker-init.
    fn init_mount(&self) -> Result<MountSpec> {
        let init = self.cfg.init_path.clone().ok_or_else(|| {
            Error::BadRequest("--init: no init binary found (install Debian's tini package, which provides /usr/bin/tini-static)".into())
        })?;
        Ok(MountSpec {
            source: init.display().to_string(),
            destination: "/sbin/docker-init".into(),
            kind: "bind".into(),
            options: vec!["rbind".into(), "ro".into()],
        })
    }

    /// The PID and IPC namespaces a container asks for, and its /dev/shm.
    fn pid_ipc_namespaces(&self, c: &Container) -> Result<(NetMode, NetMode, runtime::spec::Shm)> {
        let hc = &c.host_config;
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
        Ok((pid_ns, ipc_ns, shm))
    }
}

/// The user, groups and environment a container's process runs with.
fn process_identity(rootfs: &Path, c: &Container) -> Result<(u32, u32, Vec<u32>, Vec<String>)> {
    let hc = &c.host_config;
    let (uid, gid, mut gids, home) = runtime::spec::resolve_user(rootfs, &c.config.user)?;
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
    Ok((uid, gid, gids, env))
}

/// `HostConfig.Tmpfs`.
fn tmpfs_mounts(hc: &HostConfig, targets: &mut Vec<String>) -> Vec<MountSpec> {
    let mut mounts = Vec::new();
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
    mounts
}
