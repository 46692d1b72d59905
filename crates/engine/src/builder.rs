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
    /// What every RUN step's container gets (limits, shm size, ulimits, extra hosts); the network
    /// mode is the step's.
    host_config: HostConfig,
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
            Output(Vec<u8>, bool),
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Ev>(64);
        let e = self.engine.clone();
        let req = req.clone();
        let mut host_config = self.host_config.clone();
        host_config.network_mode = crate::types::NetworkMode::parse(&req.network);
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
                host_config,
                ..Default::default()
            };
            let (id, _) = e.create(None, create).await?;
            let res = async {
                let waiter = e.wait(&id, crate::containers::WaitCondition::NextExit)?;
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
                        raw: false,
                    };
                    e2.logs(&id2, opts, ltx).await
                });
                while let Some(frame) = lrx.recv().await {
                    // Non-TTY log frames carry Docker's 8-byte stream header: 1 stdout, 2 stderr.
                    let stderr = frame.first() == Some(&2);
                    let _ = tx.send(Ev::Output(frame.get(8..).unwrap_or_default().to_vec(), stderr)).await;
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
                Ev::Output(b, stderr) => events(build::RunEvent::Output { data: &b, stderr }),
            }
        }
        match self.rt.block_on(task) {
            Ok(r) => r.map_err(|e| build::Error::Backend(e.to_string())),
            Err(e) => Err(build::Error::Backend(format!("build step task failed: {e}"))),
        }
    }

    fn pull(&self, reference: &str, events: &mut dyn FnMut(&str)) -> build::Result<()> {
        let r = image::Reference::parse(reference).map_err(|e| build::Error::Backend(e.to_string()))?;
        let registry = r.registry().to_string();
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
    /// The host config of every RUN step's container (`memory`, `cpushares`, `shmsize`,
    /// `ulimits`, `extrahosts`, ...), as Docker's classic builder makes it from the query; the
    /// network mode is set per step.
    pub host_config: HostConfig,
}

/// The 12-digit short form of a container or image ID (`sha256:` dropped), as Docker prints it.
fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..12.min(hex.len())]
}

impl Engine {
    /// Build from a context tar (plain, gzip, bzip2 or xz) read from `context`, reporting as it
    /// goes. Blocks: call from a blocking thread.
    pub fn build(self: &Arc<Self>, context: impl Read, req: &BuildRequest, out: &mut dyn FnMut(Message)) -> Result<build::BuildResult> {
        let dir = TempDir::new(&self.cfg.root.join("tmp"))?;
        let ctx = dir.0.join("context");
        extract_context(context, &ctx)?;
        self.build_dir(&ctx, req, out)
    }

    /// Build from a context directory. The messages are the classic builder's, line for line; a
    /// quiet build holds them back, as Docker does: on success only the image ID is said, on
    /// failure everything is, before the error (which the caller reports).
    pub fn build_dir(self: &Arc<Self>, ctx: &Path, req: &BuildRequest, out: &mut dyn FnMut(Message)) -> Result<build::BuildResult> {
        let backend = EngineBackend {
            engine: self.clone(),
            rt: tokio::runtime::Handle::current(),
            auth: req.auth.clone(),
            host_config: req.host_config.clone(),
        };
        let quiet = req.quiet;
        let mut held: Vec<Message> = Vec::new();
        let res = {
            let mut emit = |m: Message| {
                if quiet {
                    held.push(m)
                } else {
                    out(m)
                }
            };
            let mut progress = |p: build::Progress| {
                let mut say = |s: String| emit(json!({ "stream": s }));
                match p {
                    // Docker writes the step line and its newline separately.
                    build::Progress::Step { n, total, text } => {
                        say(format!("Step {n}/{total} : {text}"));
                        say("\n".into());
                    }
                    build::Progress::Triggers(n) => {
                        say(format!("# Executing {n} build trigger{}", if n > 1 { "s" } else { "" }));
                        say("\n".into());
                    }
                    build::Progress::Cached => say(" ---> Using cache\n".into()),
                    build::Progress::Running(id) => say(format!(" ---> Running in {}\n", short(id))),
                    build::Progress::Output { data, stderr: false } => say(String::from_utf8_lossy(data).into_owned()),
                    // A step's stderr in bright red, as Docker's stderr formatter marks it.
                    build::Progress::Output { data, stderr: true } => say(format!("\x1b[91m{}\x1b[0m", String::from_utf8_lossy(data))),
                    build::Progress::Removed(id) => say(format!("Removing intermediate container {}\n", short(id))),
                    build::Progress::Done { id } => say(format!(" ---> {}\n", id.map(|d| d.short()).unwrap_or(""))),
                    build::Progress::Stage(id) => emit(json!({"aux": {"ID": id.to_string()}})),
                    build::Progress::Warning(w) => say(format!("{w}\n")),
                    build::Progress::Pulling(l) => say(format!("{l}\n")),
                }
            };
            build::build(&backend, &self.build_cache, ctx, &req.options, &mut progress)
        };
        let res = match res {
            Ok(r) => r,
            Err(e) => {
                for m in held {
                    out(m);
                }
                return Err(match e {
                    build::Error::Image(i) => Error::from(i),
                    build::Error::RunFailed { code, .. } => Error::StepFailed {
                        message: e.to_string(),
                        code,
                    },
                    other => Error::BadRequest(other.to_string()),
                });
            }
        };
        // Every image built carries its provenance and SBOM.
        self.attest_build(&res)?;
        if quiet {
            // All a quiet build says: the ID (the docker CLI's `build -q` prints it).
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

/// A reader that, once its source ends, goes on with what a tar archive cut short after its last
/// entry lacks: zeros to the next 512-byte block and the two zero blocks that end an archive. The
/// docker CLI sends such an archive when it adds a Dockerfile from outside the context (Go's tar
/// reader takes it); `len` says how much really came, to tell that from one cut inside an entry.
struct Padded<R> {
    inner: R,
    len: u64,
    pad: Option<u64>,
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pad.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.len += n as u64;
                return Ok(n);
            }
            self.pad = Some((512 - self.len % 512) % 512 + 1024);
        }
        let left = self.pad.as_mut().expect("padding");
        let n = (*left).min(buf.len() as u64) as usize;
        buf[..n].fill(0);
        *left -= n as u64;
        Ok(n)
    }
}

/// Extract a build context tar (plain, gzip, bzip2 or xz) into `dest`; entries that would land
/// outside it are refused by the tar crate's checks.
fn extract_context(r: impl Read, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(internal)?;
    let r = std::io::BufReader::with_capacity(256 * 1024, r);
    let plain = build::decompressed(r)
        .map_err(|e| Error::BadRequest(format!("reading the build context: {e}")))?
        .ok_or_else(|| {
            Error::BadRequest("the build context is compressed with zstd; send it plain, or compressed with gzip, bzip2 or xz".into())
        })?;
    let mut a = tar::Archive::new(Padded {
        inner: plain,
        len: 0,
        pad: None,
    });
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_unpack_xattrs(false);
    a.set_overwrite(true);
    // Where the last entry's data ends: past what came, the archive was cut inside it.
    let mut end = 0u64;
    let mut last = String::new();
    for entry in a
        .entries()
        .map_err(|e| Error::BadRequest(format!("reading the build context: {e}")))?
    {
        let mut entry = entry.map_err(|e| Error::BadRequest(format!("reading the build context: {e}")))?;
        let path = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
        end = entry.raw_file_position() + entry.size();
        last.clone_from(&path);
        let kind = entry.header().entry_type();
        if kind.is_block_special() || kind.is_character_special() || kind.is_fifo() {
            continue;
        }
        entry
            .unpack_in(dest)
            .map_err(|e| Error::BadRequest(format!("build context entry {path:?}: {e}")))?;
    }
    let got = a.into_inner().len;
    if end > got {
        return Err(Error::BadRequest(format!(
            "reading the build context: the archive ends inside {last:?} ({got} bytes came, its data ends at {end})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn context_cut_after_its_last_entry_is_taken_but_not_inside_one() {
        let full = tar_of(&[("Dockerfile", b"FROM scratch\n"), ("f.txt", b"hello")]);
        // As the docker CLI sends it with a Dockerfile from outside: no padding, no end blocks.
        let unpadded = &full[..512 * 3 + 5];
        let dir = tempfile::tempdir().unwrap();
        extract_context(unpadded, dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f.txt")).unwrap(), b"hello");
        // Cut inside f.txt's data: refused, naming it.
        let dir = tempfile::tempdir().unwrap();
        let err = extract_context(&full[..512 * 3 + 3], dir.path()).unwrap_err().to_string();
        assert!(err.contains("f.txt"), "{err}");
        // bzip2 and xz contexts, as the Engine API allows.
        for (prog, arg) in [("bzip2", "-c"), ("xz", "-c")] {
            let mut child = std::process::Command::new(prog)
                .arg(arg)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), &full).unwrap();
            let packed = child.wait_with_output().unwrap().stdout;
            let dir = tempfile::tempdir().unwrap();
            extract_context(&packed[..], dir.path()).unwrap();
            assert_eq!(std::fs::read(dir.path().join("f.txt")).unwrap(), b"hello", "{prog}");
        }
    }
}
