//! The engine: images, containers, volumes and events, callable in-process. The Docker API
//! (`crate::api`) is a thin layer over this.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use image::ImageStore;
use runtime::client::ShimClient;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::error::{internal, Error, Result};
use crate::events::Events;
use crate::types::{Container, RestartMode};
use crate::volumes::Volumes;

/// Where the engine keeps things.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state (images, containers, volumes).
    pub root: PathBuf,
    /// Runtime state (shim sockets, OCI runtime state).
    pub exec_root: PathBuf,
    /// The berth binary, re-executed as `berth shim`.
    pub exe: PathBuf,
    /// A static init binary (tini) for `--init`, if one is installed.
    pub init_path: Option<PathBuf>,
    /// Registries (`host[:port]`) reached over plain HTTP or unverified TLS, besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Directories of per-registry CA certificates (`DIR/HOST[:PORT]/*.crt`).
    pub certs_dirs: Vec<PathBuf>,
    /// External OCI runtimes by name (binary names are looked up on PATH when used); the built-in
    /// one, [`BUILTIN_RUNTIME`], is libcontainer in the shim.
    pub runtimes: std::collections::BTreeMap<String, PathBuf>,
    /// The runtime of containers that do not ask for one.
    pub default_runtime: String,
    /// What a layer taken in (load, import, pull) may expand to.
    pub image_limits: image::Limits,
    /// The default bridge network (`--bridge`, `--bip`); `None` (`--bridge none`): containers
    /// on the default network get loopback only.
    pub bridge: Option<crate::networks::BridgeConfig>,
    /// `--dns`: the resolvers container DNS forwards to (the host's when empty).
    pub dns: Vec<std::net::SocketAddr>,
    /// `--cdi-spec-dir`: where CDI device specs are read, lowest priority first.
    pub cdi_spec_dirs: Vec<PathBuf>,
}

/// The name of the built-in runtime: youki's libcontainer, in the shim.
pub const BUILTIN_RUNTIME: &str = "berth";

impl EngineConfig {
    /// The runtimes every daemon knows: the built-in one, and runc and crun if installed.
    pub fn standard_runtimes() -> std::collections::BTreeMap<String, PathBuf> {
        ["runc", "crun"].into_iter().map(|n| (n.to_string(), PathBuf::from(n))).collect()
    }
}

/// What waiters see change on a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub exits: u64,
    pub last_exit: i64,
    pub running: bool,
    pub removed: bool,
}

/// A client stream waiting for a container to start (attach before start).
pub type BoxStream = Box<dyn Stream>;
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub struct PendingAttach {
    pub stream: BoxStream,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// The detach sequence (`detachKeys`); Docker's ctrl-p ctrl-q when `None`. It applies to a
    /// TTY container's input.
    pub detach_keys: Option<Vec<u8>>,
}

pub struct Entry {
    pub id: String,
    pub rec: Mutex<Container>,
    /// Serializes lifecycle operations (start, stop, remove) on this container.
    pub op: tokio::sync::Mutex<()>,
    pub progress: watch::Sender<Progress>,
    pub pending: Mutex<Vec<PendingAttach>>,
    /// Filesystem operations (cp, export) using the rootfs while the container is not running; the
    /// rootfs is unmounted only when the last one ends and the container is still not running.
    pub fs_users: Mutex<u32>,
}

impl Entry {
    pub(crate) fn snapshot(&self) -> Container {
        self.rec.lock().unwrap().clone()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub privileged: bool,
    /// Initial TTY size (rows, columns).
    pub console_size: Option<(u16, u16)>,
    /// The detach sequence (`DetachKeys`); Docker's ctrl-p ctrl-q when `None`.
    pub detach_keys: Option<Vec<u8>>,
}

pub struct ExecEntry {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecState {
    pub running: bool,
    pub started: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
}

pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) images: ImageStore,
    pub(crate) volumes: Volumes,
    pub(crate) networks: crate::networks::Networks,
    pub(crate) events: Events,
    /// The builder's step cache.
    pub(crate) build_cache: build::Cache,
    /// The client for pulls and pushes.
    pub(crate) registry: registry::client::Client,
    /// Starts shims (through the zygote).
    pub(crate) launcher: Arc<runtime::client::Launcher>,
    pub(crate) containers: Mutex<BTreeMap<String, Arc<Entry>>>,
    pub(crate) execs: Mutex<HashMap<String, Arc<ExecEntry>>>,
    /// The listeners of published ports, by container.
    pub(crate) proxies: Mutex<HashMap<String, Vec<tokio::task::AbortHandle>>>,
    /// The kernel's side of published ports, by container: its network's bridge and rules.
    pub(crate) port_rules: Mutex<HashMap<String, (String, Vec<net::rules::PortRule>)>>,
    /// The names container DNS answers, and each container's resolver task.
    pub(crate) dns_names: net::dns::Names,
    pub(crate) resolvers: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Where container DNS sends names it does not know (`--dns`, or the host's resolvers).
    pub(crate) dns_upstream: Arc<Vec<std::net::SocketAddr>>,
    /// The daemon's dashboard (its URL with the access token), once it listens.
    dashboard: std::sync::OnceLock<String>,
}

/// A 64-hex-digit ID (containers, execs), from the kernel's random generator.
pub fn random_id() -> String {
    oci::random::hex(32)
}

impl Engine {
    /// Open the engine's state, re-adopting containers whose shims are still running.
    pub async fn open(cfg: EngineConfig) -> Result<Arc<Engine>> {
        for d in [cfg.root.join("containers"), cfg.exec_root.join("c"), cfg.exec_root.join("runtime")] {
            std::fs::create_dir_all(&d).map_err(|e| Error::Internal(format!("create {}: {e}", d.display())))?;
        }
        let images = ImageStore::open(&cfg.root.join("image"))?.with_limits(cfg.image_limits);
        let volumes = Volumes::open(&cfg.root)?;
        let networks = crate::networks::Networks::open(&cfg.root)?;
        let build_cache = build::Cache::open(cfg.root.join("image").join("build-cache.json"));
        let registry = registry::client::Client::new(cfg.insecure_registries.clone(), cfg.certs_dirs.clone())
            .map_err(|e| Error::Internal(e.to_string()))?;
        // Contexts of builds interrupted by a daemon stop.
        let tmp = cfg.root.join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        crate::private::ensure_dir(&tmp, crate::private::DIR_MODE, 0)?;
        let launcher = Arc::new(runtime::client::Launcher::new(&cfg.exe, Some(&cfg.exec_root.join("zygote.sock"))));
        let dns_upstream = if cfg.dns.is_empty() {
            net::dns::upstreams_of(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        } else {
            cfg.dns.clone()
        };
        let engine = Arc::new(Engine {
            cfg,
            launcher,
            images,
            volumes,
            networks,
            events: Events::default(),
            build_cache,
            registry,
            containers: Mutex::new(BTreeMap::new()),
            execs: Mutex::new(HashMap::new()),
            proxies: Mutex::new(HashMap::new()),
            port_rules: Mutex::new(HashMap::new()),
            dns_names: Default::default(),
            resolvers: Mutex::new(HashMap::new()),
            dns_upstream: Arc::new(dns_upstream),
            dashboard: std::sync::OnceLock::new(),
        });
        engine.restore().await?;
        engine.open_networks()?;
        engine.reconcile_networks();
        Ok(engine)
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.cfg.root.join("containers").join(id)
    }

    pub(crate) fn state_dir(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("c").join(id)
    }

    /// Where the OCI runtime (libcontainer) keeps container state.
    pub(crate) fn runtime_root(&self) -> PathBuf {
        self.cfg.exec_root.join("runtime")
    }

    pub(crate) fn shim(&self, id: &str) -> ShimClient {
        ShimClient::new(self.state_dir(id))
    }

    pub(crate) fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    /// The host-side `/dev/shm` of a container with `--ipc shareable` (a tmpfs mounted while it
    /// runs, which containers joining its IPC namespace bind-mount too), as Docker keeps it.
    pub(crate) fn shm_dir(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("shm")
    }

    pub(crate) fn rootfs(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("rootfs")
    }

    pub(crate) fn save(&self, c: &Container) -> Result<()> {
        let data = serde_json::to_vec_pretty(c).expect("json");
        let path = self.container_dir(&c.id).join("container.json");
        // An auto-removed container is not meant to outlive its run, let alone a power loss: its
        // record is written atomically but not synced (two fsyncs fewer on `run --rm`).
        if c.host_config.auto_remove {
            oci::store::write_volatile(&path, &data).map_err(internal)
        } else {
            oci::store::write_atomic(&path, &data).map_err(internal)
        }
    }

    pub(crate) fn insert(&self, c: Container) -> Arc<Entry> {
        let running = c.state.running;
        let e = Arc::new(Entry {
            id: c.id.clone(),
            rec: Mutex::new(c),
            op: tokio::sync::Mutex::new(()),
            progress: watch::channel(Progress {
                running,
                ..Default::default()
            })
            .0,
            pending: Mutex::new(Vec::new()),
            fs_users: Mutex::new(0),
        });
        self.containers.lock().unwrap().insert(e.id.clone(), e.clone());
        e
    }

    /// Find a container by full ID, name (with or without `/`), or unique ID prefix.
    pub(crate) fn get(&self, key: &str) -> Result<Arc<Entry>> {
        let map = self.containers.lock().unwrap();
        if let Some(e) = map.get(key) {
            return Ok(e.clone());
        }
        let name = if key.starts_with('/') { key.to_string() } else { format!("/{key}") };
        if let Some(e) = map.values().find(|e| e.rec.lock().unwrap().name == name) {
            return Ok(e.clone());
        }
        if !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit()) {
            let m: Vec<_> = map.iter().filter(|(id, _)| id.starts_with(key)).collect();
            if m.len() == 1 {
                return Ok(m[0].1.clone());
            }
            if m.len() > 1 {
                return Err(Error::BadRequest(format!("multiple IDs found with provided prefix: {key}")));
            }
        }
        Err(Error::NotFound(format!("No such container: {key}")))
    }

    pub(crate) fn list(&self) -> Vec<Arc<Entry>> {
        self.containers.lock().unwrap().values().cloned().collect()
    }

    /// Every container, as recorded now.
    pub fn containers(&self) -> Vec<Container> {
        self.list().iter().map(|e| e.snapshot()).collect()
    }

    /// A container by ID, unique ID prefix or name, as recorded now.
    pub fn container(&self, key: &str) -> Result<Container> {
        Ok(self.get(key)?.snapshot())
    }

    /// The IDs of a container's exec instances.
    pub fn exec_ids(&self, container: &str) -> Vec<String> {
        self.execs
            .lock()
            .unwrap()
            .values()
            .filter(|x| x.container == container)
            .map(|x| x.id.clone())
            .collect()
    }

    /// The daemon's configuration.
    /// The edits of the CDI devices the container's `DeviceRequests` ask for (none: it asks for
    /// none), from the spec directories as they are now, so a spec a vendor tool writes applies
    /// at once.
    pub fn cdi_edits(&self, hc: &crate::types::HostConfig) -> Result<Option<crate::cdi::Edits>> {
        let Some(requests) = hc.extra.get("DeviceRequests").filter(|r| !r.is_null()) else {
            return Ok(None);
        };
        let catalog = crate::cdi::Catalog::load(&self.cfg.cdi_spec_dirs);
        let names = catalog.requested(requests)?;
        if names.is_empty() {
            return Ok(None);
        }
        catalog.edits(&names).map(Some)
    }

    /// Record the dashboard's URL (with its token), which `GET /berth/dashboard` gives clients of
    /// the socket — those who may already do everything the dashboard does.
    pub fn set_dashboard_url(&self, url: String) {
        let _ = self.dashboard.set(url);
    }

    /// The dashboard's URL, when it is served.
    pub fn dashboard_url(&self) -> Option<&str> {
        self.dashboard.get().map(String::as_str)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The content store (blobs by digest), which the registry server shares.
    pub fn content_store(&self) -> &oci::ContentStore {
        self.images.content()
    }

    pub(crate) fn name_taken(&self, name: &str) -> Option<String> {
        self.containers
            .lock()
            .unwrap()
            .values()
            .find(|e| e.rec.lock().unwrap().name == name)
            .map(|e| e.id.clone())
    }

    pub(crate) fn attrs(c: &Container) -> BTreeMap<String, String> {
        let mut a: BTreeMap<String, String> = c.config.labels.clone();
        a.insert("name".into(), c.name.trim_start_matches('/').to_string());
        a.insert("image".into(), c.config.image.clone());
        a
    }

    pub(crate) fn emit(&self, c: &Container, action: &str) {
        self.events.emit("container", action, &c.id, Self::attrs(c));
    }

    /// Load containers from disk; running ones are re-adopted if their shim is alive, otherwise their
    /// exit status is taken from the shim's exit file.
    async fn restore(self: &Arc<Self>) -> Result<()> {
        let dir = self.cfg.root.join("containers");
        let rd = std::fs::read_dir(&dir).map_err(internal)?;
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(TRASH_PREFIX) {
                purge_trash(&e.path());
                continue;
            }
            let path = e.path().join("container.json");
            let Ok(data) = std::fs::read(&path) else {
                // A container whose creation never completed: nothing refers to it.
                let _ = std::fs::remove_dir_all(e.path());
                continue;
            };
            let Ok(c) = serde_json::from_slice::<Container>(&data) else {
                tracing::warn!(path = %path.display(), "skipping unreadable container record");
                continue;
            };
            let was_running = c.state.running;
            let id = c.id.clone();
            let entry = self.insert(c);
            if was_running {
                let shim = self.shim(&id);
                if shim.alive().await {
                    tracing::info!(container = %id, "re-adopted running container");
                    if let Err(e) = self.republish(&entry.snapshot()) {
                        tracing::warn!(container = %id, error = %e, "could not publish its ports again");
                    }
                    if let Err(e) = self.register_dns(&entry.snapshot()) {
                        tracing::warn!(container = %id, error = %e, "could not serve its DNS again");
                    }
                    self.spawn_health_monitor(&entry, true);
                    self.clone().spawn_monitor(entry, None);
                } else {
                    let info = shim.exit_info();
                    self.mark_exited(
                        &entry,
                        info.unwrap_or(runtime::proto::ExitInfo {
                            exit_code: 255,
                            oom_killed: false,
                            finished_at: crate::types::now(),
                        }),
                    );
                    let _ = image::snapshot::unmount(&self.rootfs(&id));
                    let _ = image::snapshot::unmount(&self.shm_dir(&id));
                    let mut r = entry.rec.lock().unwrap();
                    self.disconnect_all(&mut r);
                    let _ = self.save(&r);
                }
            }
        }
        // Restart policies "always" and "unless-stopped" apply when the daemon starts.
        for entry in self.list() {
            let c = entry.snapshot();
            let pol = c.host_config.restart_policy.name;
            if !c.state.running
                && c.state.started_at != crate::types::ZERO_TIME
                && (pol == RestartMode::Always || (pol == RestartMode::UnlessStopped && !c.manually_stopped))
            {
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.start(&entry.id).await {
                        tracing::warn!(container = %entry.id, error = %e, "restart on daemon start failed");
                    }
                });
            }
        }
        Ok(())
    }

    /// Record an exit in the container's state and tell waiters.
    pub(crate) fn mark_exited(&self, entry: &Entry, info: runtime::proto::ExitInfo) {
        let mut c = entry.rec.lock().unwrap();
        c.state.running = false;
        c.state.paused = false;
        c.state.restarting = false;
        c.state.status = "exited".into();
        c.state.pid = 0;
        c.state.exit_code = info.exit_code as i64;
        c.state.oom_killed = info.oom_killed;
        c.state.finished_at = info.finished_at.clone();
        // An auto-removed container's record is deleted next: its exit need not reach the disk
        // (if the daemon dies first, the restart finds the shim gone and records the exit then).
        if !c.host_config.auto_remove {
            let _ = self.save(&c);
        }
        let snap = c.clone();
        drop(c);
        entry.progress.send_modify(|p| {
            p.exits += 1;
            p.last_exit = info.exit_code as i64;
            p.running = false;
        });
        if info.oom_killed {
            self.emit(&snap, "oom");
        }
        let mut attrs = Self::attrs(&snap);
        attrs.insert("exitCode".into(), info.exit_code.to_string());
        self.events.emit("container", "die", &snap.id, attrs);
    }

    /// Watch a running container's shim until it exits, then apply restart policy / auto-remove.
    /// `wait` is a Wait request already sent to the shim (registered before the process could exit).
    pub(crate) fn spawn_monitor(self: Arc<Self>, entry: Arc<Entry>, wait: Option<tokio::io::BufReader<tokio::net::UnixStream>>) {
        tokio::spawn(async move {
            let shim = self.shim(&entry.id);
            let conn = match wait {
                Some(c) => Ok(c),
                None => shim.send(&runtime::proto::Request::Wait).await,
            };
            let info = match conn {
                Ok(c) => runtime::client::ShimClient::reply(c).await.ok().and_then(|(r, _)| r.exit),
                Err(_) => None,
            };
            tracing::debug!(container = %entry.id, "shim reported exit");
            let info = info.or_else(|| shim.exit_info()).unwrap_or(runtime::proto::ExitInfo {
                exit_code: 255,
                oom_killed: false,
                finished_at: crate::types::now(),
            });
            // Unmount before the exit is published: a stop (or restart) in progress returns as soon
            // as it sees the exit, and a start that follows must not find the old mount and then
            // lose it to this unmount. Auto-removal unmounts in the background instead.
            if !entry.snapshot().host_config.auto_remove && *entry.fs_users.lock().unwrap() == 0 {
                let _ = image::snapshot::unmount(&self.rootfs(&entry.id));
            }
            let _ = image::snapshot::unmount(&self.shm_dir(&entry.id));
            // Off its networks before the exit is published, so a restart that follows finds the
            // address free and the namespace gone.
            self.disconnect_all(&mut entry.rec.lock().unwrap());
            // If a lifecycle op (stop/kill/rm) is in progress it will see the exit through `progress`.
            self.mark_exited(&entry, info.clone());
            self.after_exit(entry, info.exit_code).await;
        });
    }

    async fn after_exit(self: Arc<Self>, entry: Arc<Entry>, code: i32) {
        let c = entry.snapshot();
        if c.host_config.auto_remove {
            if let Err(e) = self.remove(&entry.id, true, true).await {
                tracing::warn!(container = %entry.id, error = %e, "auto-remove failed");
            }
            return;
        }
        let pol = &c.host_config.restart_policy;
        let restart = !c.manually_stopped && pol.restarts_after(code, c.restart_count);
        if restart {
            {
                let mut r = entry.rec.lock().unwrap();
                r.restart_count += 1;
                r.state.restarting = true;
                r.state.status = "restarting".into();
                let _ = self.save(&r);
            }
            // Docker backs off from 100ms doubling; a short fixed delay keeps a crash loop cheap.
            let delay = 100u64 << c.restart_count.clamp(0, 6);
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            if entry.snapshot().manually_stopped {
                let mut r = entry.rec.lock().unwrap();
                r.state.restarting = false;
                r.state.status = "exited".into();
                let _ = self.save(&r);
                return;
            }
            if let Err(e) = self.start(&entry.id).await {
                tracing::warn!(container = %entry.id, error = %e, "restart failed");
                let mut r = entry.rec.lock().unwrap();
                r.state.restarting = false;
                r.state.status = "exited".into();
                r.state.error = e.to_string();
                let _ = self.save(&r);
            }
        }
    }

    /// Wait until `cond` holds for the container's progress.
    pub(crate) async fn wait_progress(&self, entry: &Entry, mut cond: impl FnMut(&Progress) -> bool) -> Progress {
        let mut rx = entry.progress.subscribe();
        loop {
            {
                let p = rx.borrow_and_update();
                if cond(&p) {
                    return p.clone();
                }
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone();
            }
        }
    }
}

/// Prefix of a removed container's directory awaiting deletion.
pub const TRASH_PREFIX: &str = ".removed-";

/// Unmount and delete a removed container's directory.
pub fn purge_trash(dir: &std::path::Path) {
    let _ = image::snapshot::unmount(&dir.join("rootfs"));
    let _ = image::snapshot::unmount(&dir.join("shm"));
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cleaning up a removed container");
    }
}
