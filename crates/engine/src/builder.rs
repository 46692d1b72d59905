//! Builds: the engine as the builder's [`build::Backend`] (RUN steps are ordinary containers), and
//! the build of a context tar as `POST /build` and `berth build` use it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::containers::CreateRequest;
use crate::engine::Engine;
use crate::error::{internal, Error, Result};
use crate::streams::LogOptions;
use crate::types::{ContainerConfig, HostConfig};

/// The engine seen by the builder. Its methods block: call them from a blocking thread.
struct EngineBackend {
    engine: Arc<Engine>,
    rt: tokio::runtime::Handle,
    /// Credentials per registry, for pulls of base images (`X-Registry-Config`).
    auth: BTreeMap<String, registry::client::Credentials>,
}

impl build::Backend for EngineBackend {
    fn images(&self) -> &image::ImageStore {
        &self.engine.images
    }

    fn run(&self, req: &build::RunRequest, events: &mut dyn FnMut(build::RunEvent)) -> build::Result<build::RunOutcome> {
        // The container runs on the runtime; its events come back here, to the blocking thread the
        // builder runs on (the callback may block, so it is never called inside the runtime).
        enum Ev {
            Started(String),
            Output(Vec<u8>),
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Ev>(64);
        let e = self.engine.clone();
        let req = req.clone();
        let task = self.rt.spawn(async move {
            let mut labels = BTreeMap::new();
            labels.insert("berth.build.step".to_string(), "true".to_string());
            let create = CreateRequest {
                config: ContainerConfig {
                    image: req.image.to_string(),
                    cmd: Some(req.argv.clone()),
                    // The image's ENTRYPOINT does not apply to RUN.
                    entrypoint: Some(vec![String::new()]),
                    env: Some(req.env.clone()),
                    user: req.user.clone(),
                    working_dir: req.workdir.clone(),
                    labels,
                    ..Default::default()
                },
                host_config: HostConfig {
                    network_mode: req.network.clone(),
                    ..Default::default()
                },
                ..Default::default()
            };
            let (id, _) = e.create(None, create).await?;
            let res = async {
                let waiter = e.wait(&id, "next-exit")?;
                e.start(&id).await?;
                let _ = tx.send(Ev::Started(id.clone())).await;
                let (ltx, mut lrx) = tokio::sync::mpsc::channel(64);
                let e2 = e.clone();
                let id2 = id.clone();
                let logs = tokio::spawn(async move {
                    let opts = LogOptions {
                        stdout: true,
                        stderr: true,
                        follow: true,
                        timestamps: false,
                        tail: None,
                        since: None,
                        until: None,
                    };
                    e2.logs(&id2, opts, ltx).await
                });
                while let Some(frame) = lrx.recv().await {
                    // Non-TTY log frames carry Docker's 8-byte stream header.
                    let _ = tx.send(Ev::Output(frame.get(8..).unwrap_or_default().to_vec())).await;
                }
                let _ = logs.await;
                let code = waiter.await;
                // The upper dir becomes a layer: the overlay must be gone first.
                image::snapshot::unmount(&e.rootfs(&id))?;
                Ok::<_, Error>(code)
            }
            .await;
            match res {
                Ok(exit_code) => Ok(build::RunOutcome {
                    upper: e.container_dir(&id).join("diff"),
                    container: id,
                    exit_code,
                }),
                Err(err) => {
                    let _ = e.remove(&id, true, true).await;
                    Err(err)
                }
            }
        });
        while let Some(ev) = rx.blocking_recv() {
            match ev {
                Ev::Started(id) => events(build::RunEvent::Started(&id)),
                Ev::Output(b) => events(build::RunEvent::Output(&b)),
            }
        }
        match self.rt.block_on(task) {
            Ok(r) => r.map_err(|e| build::Error::Backend(e.to_string())),
            Err(e) => Err(build::Error::Backend(format!("build step task failed: {e}"))),
        }
    }

    fn pull(&self, reference: &str, events: &mut dyn FnMut(&str)) -> build::Result<()> {
        let r = image::Reference::parse(reference).map_err(|e| build::Error::Backend(e.to_string()))?;
        let registry = crate::distribution::split_repository(&r.repo).registry;
        let creds = self.auth.get(&registry).cloned().unwrap_or_default();
        tracing::debug!(%registry, with_credentials = !creds.is_empty(), "pulling a base image");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(64);
        let e = self.engine.clone();
        let reference = reference.to_string();
        let task = self.rt.spawn(async move { e.pull(&reference, None, &creds, &tx).await });
        // Status lines as the classic builder prints them; per-byte progress is left out.
        while let Some(v) = rx.blocking_recv() {
            if v.get("progressDetail").and_then(|p| p.get("current")).is_some() {
                continue;
            }
            if let Some(st) = v.get("status").and_then(Value::as_str) {
                let line = match v.get("id").and_then(Value::as_str) {
                    Some(id) => format!("{id}: {st}"),
                    None => st.to_string(),
                };
                events(&line);
            }
        }
        match self.rt.block_on(task) {
            Ok(r) => r.map(drop).map_err(|e| build::Error::Backend(e.to_string())),
            Err(e) => Err(build::Error::Backend(format!("pull task failed: {e}"))),
        }
    }

    fn fetch(&self, url: &str, out: &mut std::fs::File) -> build::Result<String> {
        let file = out.try_clone().map_err(|e| build::Error::Backend(format!("download file: {e}")))?;
        let mut file = tokio::fs::File::from_std(file);
        let client = self.engine.registry.clone();
        self.rt
            .block_on(async move { client.download(url, &mut file).await })
            .map_err(|e| build::Error::Backend(e.to_string()))
    }

    fn remove_container(&self, id: &str) {
        let e = self.engine.clone();
        let id = id.to_string();
        self.rt.block_on(async move {
            if let Err(err) = e.remove(&id, true, true).await {
                tracing::warn!(container = %id, error = %err, "removing a build step's container");
            }
        });
    }
}

/// Messages of a build as the Engine API streams them (`{"stream": ...}`, `{"aux": ...}`).
pub type Message = Value;

/// A build request (the query of `POST /build`).
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub options: build::BuildOptions,
    /// Build from this directory on the daemon's machine instead of a context sent in the body
    /// (`localcontext`, Berth's own parameter: a local client then sends nothing, and unchanged
    /// files are not even read again).
    pub local_context: Option<PathBuf>,
    /// Only the result is reported (`q`).
    pub quiet: bool,
    /// Credentials per registry (`X-Registry-Config`), for pulls of base images.
    pub auth: BTreeMap<String, registry::client::Credentials>,
}

impl Engine {
    /// Build from a context tar (plain or gzip) read from `context`, reporting as it goes. Blocks:
    /// call from a blocking thread.
    pub fn build(self: &Arc<Self>, context: impl Read, req: &BuildRequest, out: &mut dyn FnMut(Message)) -> Result<build::BuildResult> {
        let dir = TempDir::new(&self.cfg.root.join("tmp"))?;
        let ctx = dir.0.join("context");
        extract_context(context, &ctx)?;
        self.build_dir(&ctx, req, out)
    }

    /// Build from a context directory.
    pub fn build_dir(self: &Arc<Self>, ctx: &Path, req: &BuildRequest, out: &mut dyn FnMut(Message)) -> Result<build::BuildResult> {
        let backend = EngineBackend {
            engine: self.clone(),
            rt: tokio::runtime::Handle::current(),
            auth: req.auth.clone(),
        };
        let quiet = req.quiet;
        let mut say = |s: String| {
            if !quiet {
                out(json!({ "stream": s }));
            }
        };
        let mut progress = |p: build::Progress| match p {
            build::Progress::Step { n, total, text } => say(format!("Step {n}/{total} : {text}\n")),
            build::Progress::Cached => say(" ---> Using cache\n".into()),
            build::Progress::Running(id) => say(format!(" ---> Running in {}\n", &id[..12.min(id.len())])),
            build::Progress::Output(b) => say(String::from_utf8_lossy(b).into_owned()),
            build::Progress::Removed(id) => say(format!("Removing intermediate container {}\n", &id[..12.min(id.len())])),
            build::Progress::Done { id: Some(id), secs } => say(format!(" ---> {} ({secs:.2}s)\n", id.short())),
            build::Progress::Done { id: None, .. } => {}
            build::Progress::Warning(w) => say(format!("{w}\n")),
            build::Progress::Pulling(l) => say(format!("{l}\n")),
        };
        let res = build::build(&backend, &self.build_cache, ctx, &req.options, &mut progress).map_err(|e| match e {
            build::Error::Image(i) => Error::from(i),
            other => Error::BadRequest(other.to_string()),
        })?;
        out(json!({"aux": {"ID": res.id.to_string()}}));
        if quiet {
            // The docker CLI's `build -q` prints what the quiet stream says: the ID.
            out(json!({"stream": format!("{}\n", res.id)}));
        } else {
            out(json!({"stream": format!("Successfully built {}\n", res.id.short())}));
            for t in &res.tags {
                out(json!({"stream": format!("Successfully tagged {t}\n")}));
            }
        }
        for t in &res.tags {
            let mut attrs = BTreeMap::new();
            attrs.insert("name".to_string(), t.clone());
            self.events.emit("image", "tag", &res.id.to_string(), attrs);
        }
        Ok(res)
    }
}

/// A directory removed (with everything below it) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path) -> Result<TempDir> {
        let d = parent.join(format!("build-{}", &crate::engine::random_id()[..16]));
        std::fs::create_dir_all(&d).map_err(internal)?;
        Ok(TempDir(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Extract a build context tar (plain or gzip) into `dest`; entries that would land outside it are
/// refused by the tar crate's checks.
fn extract_context(r: impl Read, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(internal)?;
    let mut r = std::io::BufReader::with_capacity(256 * 1024, r);
    let head = std::io::BufRead::fill_buf(&mut r).map_err(internal)?;
    let plain: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(r))
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(Error::BadRequest(
            "the build context is compressed with bzip2, xz or zstd; send it plain or gzip-compressed".into(),
        ));
    } else {
        Box::new(r)
    };
    let mut a = tar::Archive::new(plain);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_unpack_xattrs(false);
    a.set_overwrite(true);
    for entry in a
        .entries()
        .map_err(|e| Error::BadRequest(format!("reading the build context: {e}")))?
    {
        let mut entry = entry.map_err(|e| Error::BadRequest(format!("reading the build context: {e}")))?;
        let kind = entry.header().entry_type();
        if kind.is_block_special() || kind.is_character_special() || kind.is_fifo() {
            continue;
        }
        let path = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
        entry
            .unpack_in(dest)
            .map_err(|e| Error::BadRequest(format!("build context entry {path:?}: {e}")))?;
    }
    Ok(())
}
