//! The engine as the orchestrator's node agent sees it: the plain Rust trait design.md names, so
//! `crates/kube` depends on these operations and not on the Docker Engine API or the engine's
//! internals. [`Engine`] implements it; the CLI-over-HTTP path calls the same methods.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use crate::containers::{CreateRequest, WaitCondition};
use crate::engine::{BoxStream, ExecConfig, PendingAttach};
use crate::events::Event;
use crate::streams::LogOptions;
use crate::types::Container;
use crate::{Engine, Result};

/// A boxed future, so the trait can be used as `dyn ContainerService`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the node agent asks of the container engine.
pub trait ContainerService: Send + Sync + 'static {
    /// The ID of a local image (by reference or ID), if there is one.
    fn image_id(&self, reference: &str) -> Option<String>;
    /// Pull an image (anonymously); its ID.
    fn pull<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<String>>;
    /// Create a container named `name`; its ID.
    fn create<'a>(&'a self, name: &'a str, req: CreateRequest) -> BoxFuture<'a, Result<String>>;
    /// Start a created or stopped container.
    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Stop: its stop signal, then SIGKILL after `timeout` seconds.
    fn stop<'a>(&'a self, id: &'a str, timeout: i64) -> BoxFuture<'a, Result<()>>;
    /// Remove (force: killed first if running).
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Wait until the container is not running; its exit code.
    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<i64>>;
    /// Every container.
    fn containers(&self) -> Vec<Container>;
    /// One container.
    fn container(&self, id: &str) -> Result<Container>;
    /// Run `argv` in a running container (as a probe): exit code and output, -1 and why when it
    /// could not run or outlived `timeout`.
    fn exec<'a>(&'a self, id: &'a str, argv: &'a [String], timeout: Duration) -> BoxFuture<'a, (i64, String)>;
    /// Start `argv` in a running container with its streams on the returned stream: the
    /// process's input is what is written to it (its end closes stdin), its output what is read
    /// from it — raw with `tty`, else multiplexed as Docker frames it (see
    /// [`crate::streams::frame`]). The stream ends once the process has exited and its code is
    /// known to [`ContainerService::exec_exit_code`] under the returned exec ID.
    /// `size` is the TTY's first size (rows, columns).
    fn exec_stream<'a>(
        &'a self,
        id: &'a str,
        argv: Vec<String>,
        tty: bool,
        stdin: bool,
        size: Option<(u16, u16)>,
    ) -> BoxFuture<'a, Result<(String, BoxStream)>>;
    /// Resize an exec's TTY (rows, columns).
    fn exec_resize<'a>(&'a self, exec_id: &'a str, rows: u16, cols: u16) -> BoxFuture<'a, Result<()>>;
    /// An exec's exit code, once it exited.
    fn exec_exit_code(&self, exec_id: &str) -> Option<i64>;
    /// Attach to a running container's main process: as [`ContainerService::exec_stream`], the
    /// container's own TTY setting deciding the framing; no detach sequence.
    fn attach_stream<'a>(&'a self, id: &'a str, stdin: bool, stdout: bool, stderr: bool) -> BoxFuture<'a, Result<BoxStream>>;
    /// Resize a container's TTY (rows, columns).
    fn resize<'a>(&'a self, id: &'a str, rows: u16, cols: u16) -> BoxFuture<'a, Result<()>>;
    /// A container's logs into `tx` (raw bytes when `opts.raw`).
    fn logs<'a>(&'a self, id: &'a str, opts: LogOptions, tx: mpsc::Sender<Vec<u8>>) -> BoxFuture<'a, Result<()>>;
    /// The engine's events from now on.
    fn events(&self) -> broadcast::Receiver<Event>;
    /// Make the bridge network `name` (interface `bridge`, `subnet`) unless it exists.
    fn ensure_network(&self, name: &str, subnet: &str, bridge: &str) -> Result<()>;
    /// The image pod sandboxes are made from ([`PAUSE_IMAGE`], empty: a sandbox runs nothing
    /// from it), imported when missing; its ID.
    fn pause_image(&self) -> Result<String>;
    /// A running container's resource use from its cgroup (none: not running).
    fn usage(&self, id: &str) -> Option<Usage>;
    /// The CDI devices this engine can give containers, by kind (`nvidia.com/gpu` → `0`, `1`).
    fn cdi_devices(&self) -> std::collections::BTreeMap<String, Vec<String>>;
}

/// What a container uses, as the kubelet's summary reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used since it started (ns).
    pub cpu_ns: u64,
    /// Memory working set: what it uses less the page cache it could give back (bytes).
    pub memory_working_set: u64,
}

/// The sandbox image's name.
pub const PAUSE_IMAGE: &str = "berth/pause:1";

impl ContainerService for Arc<Engine> {
    fn image_id(&self, reference: &str) -> Option<String> {
        self.resolve_image(reference).ok().map(|d| d.to_string())
    }

    fn pull<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            let (tx, mut rx) = mpsc::channel(64);
            let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let r = Engine::pull(self, reference, None, &Default::default(), &tx).await;
            drop(tx);
            let _ = drain.await;
            r.map(|d| d.to_string())
        })
    }

    fn create<'a>(&'a self, name: &'a str, req: CreateRequest) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move { Engine::create(self, Some(name), req).await.map(|(id, _)| id) })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::start(self, id))
    }

    fn stop<'a>(&'a self, id: &'a str, timeout: i64) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::stop(self, id, Some(timeout), None))
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::remove(self, id, true, true))
    }

    fn wait<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move { Ok(Engine::wait(self, id, WaitCondition::NotRunning)?.await) })
    }

    fn containers(&self) -> Vec<Container> {
        Engine::containers(self)
    }

    fn container(&self, id: &str) -> Result<Container> {
        Engine::container(self, id)
    }

    fn exec<'a>(&'a self, id: &'a str, argv: &'a [String], timeout: Duration) -> BoxFuture<'a, (i64, String)> {
        Box::pin(self.probe(id, argv, timeout))
    }

    fn exec_stream<'a>(
        &'a self,
        id: &'a str,
        argv: Vec<String>,
        tty: bool,
        stdin: bool,
        size: Option<(u16, u16)>,
    ) -> BoxFuture<'a, Result<(String, BoxStream)>> {
        Box::pin(async move {
            let cfg = ExecConfig {
                cmd: argv,
                tty,
                attach_stdin: stdin,
                attach_stdout: true,
                attach_stderr: !tty,
                console_size: size.filter(|_| tty),
                // The kubelet's exec has no detach sequence: every byte goes to the process.
                detach_keys: Some(Vec::new()),
                ..Default::default()
            };
            let exec_id = self.exec_create(id, cfg)?;
            let (mine, theirs) = tokio::io::duplex(64 * 1024);
            let run = self.exec_start(&exec_id, Some(Box::new(theirs)), Default::default()).await?;
            tokio::spawn(run);
            Ok((exec_id, Box::new(mine) as BoxStream))
        })
    }

    fn exec_resize<'a>(&'a self, exec_id: &'a str, rows: u16, cols: u16) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::exec_resize(self, exec_id, rows, cols))
    }

    fn exec_exit_code(&self, exec_id: &str) -> Option<i64> {
        let ex = self.exec_get(exec_id).ok()?;
        let st = ex.state.lock().unwrap();
        if st.running {
            None
        } else {
            st.exit_code
        }
    }

    fn attach_stream<'a>(&'a self, id: &'a str, stdin: bool, stdout: bool, stderr: bool) -> BoxFuture<'a, Result<BoxStream>> {
        Box::pin(async move {
            let c = Engine::container(self, id)?;
            if !c.state.running {
                return Err(crate::Error::Conflict(format!("Container {} is not running", c.id)));
            }
            let (mine, theirs) = tokio::io::duplex(64 * 1024);
            let p = PendingAttach {
                stream: Box::new(theirs),
                stdin,
                stdout,
                stderr,
                detach_keys: Some(Vec::new()),
            };
            self.attach(id, p).await?;
            Ok(Box::new(mine) as BoxStream)
        })
    }

    fn resize<'a>(&'a self, id: &'a str, rows: u16, cols: u16) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::resize(self, id, rows, cols))
    }

    fn logs<'a>(&'a self, id: &'a str, opts: LogOptions, tx: mpsc::Sender<Vec<u8>>) -> BoxFuture<'a, Result<()>> {
        Box::pin(Engine::logs(self, id, opts, tx))
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.subscribe_events().1
    }

    fn ensure_network(&self, name: &str, subnet: &str, bridge: &str) -> Result<()> {
        if self.network_id(name).is_some() {
            return Ok(());
        }
        let req = crate::networks::NetworkCreate {
            name: name.into(),
            driver: "bridge".into(),
            ipam: Some(crate::networks::IpamRequest {
                config: Some(vec![crate::networks::IpamPool {
                    subnet: subnet.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            options: Some([("com.docker.network.bridge.name".to_string(), bridge.to_string())].into()),
            labels: Some([("io.berth.cluster".to_string(), "pods".to_string())].into()),
            ..Default::default()
        };
        match self.create_network(req) {
            // Made meanwhile by another caller.
            Err(_) if self.network_id(name).is_some() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    fn usage(&self, id: &str) -> Option<Usage> {
        let c = self.container(id).ok()?;
        if !c.state.running {
            return None;
        }
        let s = runtime::cgroup::stats(&crate::containers::cgroup_path(&c.id));
        Some(Usage {
            cpu_ns: s.cpu_total_ns,
            memory_working_set: s.memory_usage.saturating_sub(s.memory_cache),
        })
    }

    fn cdi_devices(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        crate::cdi::Catalog::load(&self.config().cdi_spec_dirs).kinds()
    }

    fn pause_image(&self) -> Result<String> {
        if let Ok(d) = self.resolve_image(PAUSE_IMAGE) {
            return Ok(d.to_string());
        }
        // An empty tar archive: two zero blocks.
        let empty = std::io::Cursor::new(vec![0u8; 1024]);
        let changes = ["LABEL io.berth.role=pod-sandbox".to_string()];
        self.import(
            empty,
            Some(PAUSE_IMAGE),
            "pod sandbox: holds a pod's namespaces, runs nothing",
            &changes,
        )
        .map(|d| d.to_string())
    }
}
