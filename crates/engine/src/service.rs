//! The engine as the orchestrator's node agent sees it: the plain Rust trait design.md names, so
//! `crates/kube` depends on these operations and not on the Docker Engine API or the engine's
//! internals. [`Engine`] implements it; the CLI-over-HTTP path calls the same methods.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use crate::containers::{CreateRequest, WaitCondition};
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
    /// A container's logs into `tx` (raw bytes when `opts.raw`).
    fn logs<'a>(&'a self, id: &'a str, opts: LogOptions, tx: mpsc::Sender<Vec<u8>>) -> BoxFuture<'a, Result<()>>;
    /// The engine's events from now on.
    fn events(&self) -> broadcast::Receiver<Event>;
    /// Make the bridge network `name` (interface `bridge`, `subnet`) unless it exists.
    fn ensure_network(&self, name: &str, subnet: &str, bridge: &str) -> Result<()>;
    /// The image pod sandboxes are made from ([`PAUSE_IMAGE`], empty: a sandbox runs nothing
    /// from it), imported when missing; its ID.
    fn pause_image(&self) -> Result<String>;
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
