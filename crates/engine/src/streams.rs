//! Attach, exec and logs: the streams between clients and a container's shim.

use std::io::{BufRead, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use runtime::proto::Request;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::engine::{random_id, BoxStream, Engine, Entry, ExecConfig, ExecEntry, ExecState, PendingAttach};
use crate::error::{Error, Result};

/// One frame of Docker's multiplexed stream: stream (1 stdout, 2 stderr), 0, 0, 0, the
/// big-endian length, the bytes.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 8);
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// Read multiplexed frames from `r` until it ends, writing their payloads (stdout and stderr
/// together) to `w`; past `max` bytes (if given) the rest is read and dropped.
pub(crate) async fn unframe(r: &mut (impl tokio::io::AsyncRead + Unpin), w: &mut (impl tokio::io::AsyncWrite + Unpin), max: Option<usize>) {
    use tokio::io::AsyncReadExt;
    let mut hdr = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    let mut written = 0usize;
    while r.read_exact(&mut hdr).await.is_ok() {
        let mut left = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
        while left > 0 {
            let n = left.min(buf.len());
            if r.read_exact(&mut buf[..n]).await.is_err() {
                return;
            }
            let keep = max.map_or(n, |m| n.min(m.saturating_sub(written)));
            if keep > 0 && w.write_all(&buf[..keep]).await.is_err() {
                return;
            }
            written += keep;
            left -= n;
        }
    }
}

/// Copy a client's input to `w` until it ends, watching it for `escape` (when given); true if
/// the detach sequence ended it (`w` is then left open), false at its end (`w` is shut down).
pub async fn copy_input(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    mut escape: Option<Escape>,
) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = Vec::with_capacity(buf.len());
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        out.clear();
        let detached = match escape.as_mut() {
            Some(e) => e.feed(&buf[..n], &mut out),
            None => {
                out.extend_from_slice(&buf[..n]);
                false
            }
        };
        if !out.is_empty() && w.write_all(&out).await.is_err() {
            break;
        }
        if detached {
            return true;
        }
    }
    let _ = w.shutdown().await;
    false
}

/// How the shim's output reaches the client. The shim frames by the exec's (or container's) own
/// TTY setting; an exec started with the other `Tty` than it was created with is converted, as
/// Docker frames by the start request's `Tty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// As the shim sends it.
    AsIs,
    /// Raw TTY output wrapped in stdout frames.
    Frame,
    /// Multiplexed frames unwrapped into one raw stream.
    Unframe,
}

/// What an exec's start request may change.
#[derive(Debug, Clone, Default)]
pub struct ExecStartOptions {
    /// The start's `Tty` (framing of the output).
    pub tty: Option<bool>,
    /// The start's `ConsoleSize` (rows, columns), over the create's.
    pub console_size: Option<(u16, u16)>,
}

/// Docker's default detach sequence, ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Parse a detach sequence as Docker writes it: comma-separated keys, each a single character or
/// `ctrl-<key>` (`a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`), e.g. `ctrl-p,ctrl-q` or `ctrl-a,x`.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let bad = || Error::BadRequest(format!("Invalid detach keys ({s}) provided"));
    let mut out = Vec::new();
    for key in s.split(',') {
        let k = key.to_ascii_lowercase();
        match k.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0];
                out.push(match c {
                    b'a'..=b'z' => c - b'a' + 1,
                    b'@' => 0,
                    b'[' => 27,
                    b'\\' => 28,
                    b']' => 29,
                    b'^' => 30,
                    b'_' => 31,
                    _ => return Err(bad()),
                });
            }
            None if key.len() == 1 => out.push(key.as_bytes()[0]),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Watches a client's input for the detach sequence. Bytes that may begin it are held back until
/// the sequence completes (then they are dropped) or breaks (then they are passed on).
#[derive(Debug, Clone)]
pub struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

impl Escape {
    pub fn new(keys: Vec<u8>) -> Escape {
        Escape { keys, matched: 0 }
    }

    /// Append to `out` what of `input` goes on to the process; true when the sequence completed
    /// (what follows it in `input` is dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return false;
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return true;
                }
            } else {
                out.push(b);
            }
        }
        false
    }
}

/// The client's side of a stream to a shim: what to forward and how.
pub(crate) struct Splice {
    pub forward_input: bool,
    /// Watch the input for this detach sequence (TTY streams only, as in Docker).
    pub escape: Option<Escape>,
    pub framing: Framing,
}

/// Copy the shim's output to the client in `framing`.
async fn copy_output(sr: &mut (impl tokio::io::AsyncRead + Unpin), cw: &mut (impl tokio::io::AsyncWrite + Unpin), framing: Framing) {
    use tokio::io::AsyncReadExt;
    match framing {
        Framing::AsIs => {
            let _ = tokio::io::copy(sr, cw).await;
        }
        Framing::Frame => {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = sr.read(&mut buf).await {
                if n == 0 || cw.write_all(&frame(1, &buf[..n])).await.is_err() {
                    break;
                }
            }
        }
        Framing::Unframe => unframe(sr, cw, None).await,
    }
}

/// Copy both ways until the shim side ends (or the client detaches); then close the client.
async fn splice(client: BoxStream, shim: tokio::io::BufReader<tokio::net::UnixStream>, how: Splice) {
    splice_then(client, shim, how, async {}).await
}

/// Like [`splice`], running `before_close` after the shim's output ended and before the client's
/// stream is closed (so state the client reads next, like an exit code, is already recorded).
async fn splice_then(
    mut client: BoxStream,
    shim: tokio::io::BufReader<tokio::net::UnixStream>,
    how: Splice,
    before_close: impl std::future::Future<Output = ()>,
) {
    let (mut sr, mut sw) = tokio::io::split(shim);
    let (mut cr, mut cw) = tokio::io::split(&mut client);
    let escape = how.escape;
    let input = async {
        // Detached: the client goes; the process keeps its input open, as in Docker.
        if how.forward_input && copy_input(&mut cr, &mut sw, escape).await {
            return;
        }
        std::future::pending::<()>().await
    };
    let output = async {
        copy_output(&mut sr, &mut cw, how.framing).await;
        let _ = cw.flush().await;
        before_close.await;
    };
    tokio::select! {
        _ = input => {}
        _ = output => {}
    }
    let _ = cw.shutdown().await;
    // Read what the client still sends until it closes its side (bounded): closing a socket with
    // unread input resets it, and the client would then lose the end of the output.
    let _ = tokio::time::timeout(Duration::from_secs(2), tokio::io::copy(&mut cr, &mut tokio::io::sink())).await;
}

impl Engine {
    /// Hand a client stream to the container: now if it runs, at start if it is created.
    pub async fn attach(self: &Arc<Self>, key: &str, p: PendingAttach) -> Result<()> {
        let entry = self.get(key)?;
        let c = entry.snapshot();
        if c.state.running {
            self.connect_attach(&entry, p, c.config.stdin_once).await;
        } else {
            entry.pending.lock().unwrap().push(p);
        }
        Ok(())
    }

    pub(crate) async fn connect_attach(&self, entry: &Entry, p: PendingAttach, stdin_once: bool) {
        let shim = self.shim(&entry.id);
        let req = Request::Attach {
            stdin: p.stdin,
            stdout: p.stdout,
            stderr: p.stderr,
            stdin_once,
        };
        match shim.open(&req).await {
            Ok((_, conn)) => {
                let how = Splice {
                    forward_input: p.stdin,
                    escape: entry
                        .snapshot()
                        .config
                        .tty
                        .then(|| Escape::new(p.detach_keys.clone().unwrap_or_else(|| DEFAULT_DETACH_KEYS.to_vec()))),
                    framing: Framing::AsIs,
                };
                tokio::spawn(splice(p.stream, conn, how));
            }
            Err(e) => {
                tracing::debug!(container = %entry.id, error = %e, "attach failed");
                let mut s = p.stream;
                let _ = s.shutdown().await;
            }
        }
    }

    pub async fn resize(&self, key: &str, h: u16, w: u16) -> Result<()> {
        let entry = self.get(key)?;
        if !entry.snapshot().state.running {
            return Err(Error::Conflict(format!("Container {} is not running", entry.id)));
        }
        self.shim(&entry.id)
            .call(&Request::Resize {
                height: h,
                width: w,
                exec_id: None,
            })
            .await?;
        Ok(())
    }

    // ---- exec ----

    pub fn exec_create(&self, key: &str, cfg: ExecConfig) -> Result<String> {
        let entry = self.get(key)?;
        let c = entry.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!("Container {} is not running", c.id)));
        }
        if c.state.paused {
            return Err(Error::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if cfg.cmd.is_empty() {
            return Err(Error::BadRequest("No exec command specified".into()));
        }
        let id = random_id();
        self.execs.lock().unwrap().insert(
            id.clone(),
            Arc::new(ExecEntry {
                id: id.clone(),
                container: c.id.clone(),
                config: cfg,
                state: Default::default(),
            }),
        );
        let mut attrs = Self::attrs(&c);
        attrs.insert("execID".into(), id.clone());
        self.events.emit("container", "exec_create", &c.id, attrs);
        Ok(id)
    }

    pub fn exec_get(&self, id: &str) -> Result<Arc<ExecEntry>> {
        self.execs
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))
    }

    fn exec_process(&self, ex: &ExecEntry) -> Result<Value> {
        self.exec_process_for(&ex.container, &ex.config)
    }

    /// The OCI process of an exec of `cfg` in container `container`: the container's user, env,
    /// working directory and capabilities unless `cfg` says otherwise.
    pub(crate) fn exec_process_for(&self, container: &str, cfg: &ExecConfig) -> Result<Value> {
        let entry = self.get(container)?;
        let c = entry.snapshot();
        let rootfs = self.rootfs(&c.id);
        let user = if cfg.user.is_empty() {
            c.config.user.clone()
        } else {
            cfg.user.clone()
        };
        let (uid, gid, gids, home) = runtime::spec::resolve_user(&rootfs, &user)?;
        let mut env = crate::containers::process_env(c.config.env.as_deref().unwrap_or_default());
        for kv in &cfg.env {
            let k = kv.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(k));
            env.push(kv.clone());
        }
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={home}"));
        }
        if cfg.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let spec = std::fs::read(self.container_dir(&c.id).join("config.json")).map_err(crate::error::internal)?;
        let spec: Value = serde_json::from_slice(&spec).map_err(crate::error::internal)?;
        let caps: Vec<String> = if cfg.privileged {
            runtime::spec::ALL_CAPS.iter().map(|s| s.to_string()).collect()
        } else {
            serde_json::from_value(spec["process"]["capabilities"]["bounding"].clone()).unwrap_or_default()
        };
        let nnp = spec["process"]["noNewPrivileges"].as_bool().unwrap_or(false);
        let cwd = if cfg.working_dir.is_empty() {
            if c.config.working_dir.is_empty() {
                "/".to_string()
            } else {
                c.config.working_dir.clone()
            }
        } else {
            cfg.working_dir.clone()
        };
        Ok(runtime::spec::process_json(&runtime::spec::ProcessSpec {
            args: &cfg.cmd,
            env: &env,
            cwd: &cwd,
            uid,
            gid,
            gids: &gids,
            tty: cfg.tty,
            caps: &caps,
            no_new_privileges: nnp,
        }))
        .map(|mut p| {
            if let Some((h, w)) = cfg.console_size {
                p["consoleSize"] = serde_json::json!({"height": h, "width": w});
            }
            p
        })
    }

    /// Start an exec. With a client stream, output goes to it (and its input to the process); the
    /// future ends when the process has exited and its exit code is recorded.
    ///
    /// `opts.tty` is the start request's `Tty`, which decides how the output is framed (as in
    /// Docker): raw with it, multiplexed without; `None` keeps the exec's own setting.
    pub async fn exec_start(
        self: &Arc<Self>,
        id: &str,
        client: Option<BoxStream>,
        opts: ExecStartOptions,
    ) -> Result<impl std::future::Future<Output = ()>> {
        let tty = opts.tty;
        let ex = self.exec_get(id)?;
        {
            let mut st = ex.state.lock().unwrap();
            if st.started {
                return Err(Error::Conflict(format!("Error: Exec command {id} has already run")));
            }
            st.started = true;
            st.running = true;
        }
        let process = match opts.console_size {
            Some(size) => self.exec_process_for(
                &ex.container,
                &ExecConfig {
                    console_size: Some(size),
                    ..ex.config.clone()
                },
            ),
            None => self.exec_process(&ex),
        };
        let process = match process {
            Ok(p) => p,
            Err(e) => {
                *ex.state.lock().unwrap() = ExecState {
                    started: true,
                    running: false,
                    exit_code: Some(126),
                    pid: 0,
                };
                return Err(e);
            }
        };
        let shim = self.shim(&ex.container);
        let opened = shim
            .open(&Request::Exec {
                exec_id: ex.id.clone(),
                process,
                stdin: ex.config.attach_stdin && client.is_some(),
            })
            .await;
        let (reply, conn) = match opened {
            Ok(x) => x,
            Err(e) => {
                *ex.state.lock().unwrap() = ExecState {
                    started: true,
                    running: false,
                    exit_code: Some(126),
                    pid: 0,
                };
                return Err(Error::Conflict(format!("OCI runtime exec failed: {e}")));
            }
        };
        ex.state.lock().unwrap().pid = reply.pid.unwrap_or(0) as i64;
        if let Ok(entry) = self.get(&ex.container) {
            let mut attrs = Self::attrs(&entry.snapshot());
            attrs.insert("execID".into(), ex.id.clone());
            self.events.emit("container", "exec_start", &ex.container, attrs);
        }
        let me = self.clone();
        let forward_input = ex.config.attach_stdin;
        let ex2 = ex.clone();
        // The shim ends the stream only after the process exited and its status is in the exit file.
        let record = async move {
            let mut code = None;
            for _ in 0..50 {
                if let Some(i) = shim.exec_exit(&ex2.id) {
                    code = Some(i.exit_code as i64);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut st = ex2.state.lock().unwrap();
            st.running = false;
            st.exit_code = Some(code.unwrap_or(-1));
        };
        Ok(async move {
            match client {
                Some(c) => {
                    let own = ex.config.tty;
                    let how = Splice {
                        forward_input,
                        escape: own.then(|| Escape::new(ex.config.detach_keys.clone().unwrap_or_else(|| DEFAULT_DETACH_KEYS.to_vec()))),
                        framing: match (own, tty.unwrap_or(own)) {
                            (true, false) => Framing::Frame,
                            (false, true) => Framing::Unframe,
                            _ => Framing::AsIs,
                        },
                    };
                    splice_then(c, conn, how, record).await
                }
                None => {
                    let mut conn = conn;
                    let _ = tokio::io::copy(&mut conn, &mut tokio::io::sink()).await;
                    record.await;
                }
            }
            let code = ex.state.lock().unwrap().exit_code;
            if let Ok(entry) = me.get(&ex.container) {
                let mut attrs = Self::attrs(&entry.snapshot());
                attrs.insert("execID".into(), ex.id.clone());
                attrs.insert("exitCode".into(), code.unwrap_or(-1).to_string());
                me.events.emit("container", "exec_die", &ex.container, attrs);
            }
        })
    }

    pub async fn exec_resize(&self, id: &str, h: u16, w: u16) -> Result<()> {
        let ex = self.exec_get(id)?;
        self.shim(&ex.container)
            .call(&Request::Resize {
                height: h,
                width: w,
                exec_id: Some(ex.id.clone()),
            })
            .await?;
        Ok(())
    }
}

// ---- logs ----

/// Options of `GET /containers/{id}/logs`.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    pub tail: Option<usize>,
    pub since: Option<f64>,
    pub until: Option<f64>,
    /// The bytes only, never Docker's stream frames (the node agent's logs).
    pub raw: bool,
}

fn parse_time(s: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp() as f64 + t.timestamp_subsec_nanos() as f64 / 1e9)
}

/// Parse a Docker time filter: unix seconds (with fraction), RFC 3339, or a relative duration (`10m`).
pub fn parse_since(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    if let Ok(v) = s.parse::<f64>() {
        return Some(v);
    }
    if let Some(t) = parse_time(s) {
        return Some(t);
    }
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "ms" => 0.001,
        _ => return None,
    };
    Some(now - n * mult)
}

struct LogLine {
    stream: u8,
    data: Vec<u8>,
    time: String,
    ts: f64,
}

fn parse_line(l: &str) -> Option<LogLine> {
    let v: Value = serde_json::from_str(l).ok()?;
    let time = v["time"].as_str()?.to_string();
    Some(LogLine {
        stream: if v["stream"] == "stderr" { 2 } else { 1 },
        data: v["log"].as_str()?.as_bytes().to_vec(),
        ts: parse_time(&time).unwrap_or(0.0),
        time,
    })
}

fn render(l: &LogLine, opts: &LogOptions, tty: bool) -> Option<Vec<u8>> {
    if (l.stream == 1 && !opts.stdout) || (l.stream == 2 && !opts.stderr) {
        return None;
    }
    if opts.since.is_some_and(|s| l.ts < s) || opts.until.is_some_and(|u| l.ts > u) {
        return None;
    }
    let mut payload = Vec::new();
    if opts.timestamps {
        payload.extend_from_slice(l.time.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(&l.data);
    if tty || opts.raw {
        return Some(payload);
    }
    Some(frame(l.stream, &payload))
}

/// Complete JSON-lines records of a log file from byte offset `pos`, and the offset after them. A
/// partial last record (still being written) is left for the next read.
/// Read the complete records appended to `file` since the last call; the file is held open so a
/// container removed mid-follow (its directory renamed away) still yields what was written.
async fn read_records(file: Option<std::fs::File>) -> Result<(Vec<String>, Option<std::fs::File>)> {
    let Some(f) = file else { return Ok((vec![], None)) };
    tokio::task::spawn_blocking(move || {
        let pos = (&f).stream_position().unwrap_or(0);
        let mut r = std::io::BufReader::new(&f);
        let (mut out, mut p, mut buf) = (Vec::new(), pos, String::new());
        loop {
            buf.clear();
            match r.read_line(&mut buf) {
                Ok(n) if n > 0 && buf.ends_with('\n') => {
                    p += n as u64;
                    out.push(buf.trim_end().to_string());
                }
                _ => break,
            }
        }
        // A partial last line is read again next time.
        drop(r);
        let _ = (&f).seek(SeekFrom::Start(p));
        (out, Some(f))
    })
    .await
    .map_err(crate::error::internal)
}

impl Engine {
    /// Stream a container's logs into `tx` (frames or raw bytes).
    pub async fn logs(self: &Arc<Self>, key: &str, opts: LogOptions, tx: tokio::sync::mpsc::Sender<Vec<u8>>) -> Result<()> {
        let entry = self.get(key)?;
        // Subscribe before looking at the state so an exit in between is seen.
        let mut prog = entry.progress.subscribe();
        let start_exits = prog.borrow_and_update().exits;
        let c = entry.snapshot();
        let tty = c.config.tty;
        let path = self.log_path(&c.id);
        // Rotated files first, oldest first (`--log-opt max-file`).
        let kept = crate::containers::log_rotation(&c.host_config.log_config)
            .map(|r| r.max_files)
            .unwrap_or(1);
        let mut lines = Vec::new();
        for n in (1..kept).rev() {
            let (old, _) = read_records(std::fs::File::open(runtime::shim::rotated_log(&path, n)).ok()).await?;
            lines.extend(old);
        }
        let (current, mut file) = read_records(std::fs::File::open(&path).ok()).await?;
        lines.extend(current);
        let mut parsed: Vec<LogLine> = lines
            .iter()
            .filter_map(|l| parse_line(l))
            .filter(|l| (l.stream == 1 && opts.stdout) || (l.stream == 2 && opts.stderr))
            .collect();
        if let Some(t) = opts.tail {
            let skip = parsed.len().saturating_sub(t);
            parsed.drain(..skip);
        }
        for l in &parsed {
            if let Some(b) = render(l, &opts, tty) {
                if tx.send(b).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !opts.follow || !c.state.running {
            return Ok(());
        }
        // Follow: poll the file for appended records until the container stops.
        loop {
            let stopped = {
                let p = prog.borrow_and_update();
                p.exits > start_exits || p.removed
            };
            let (mut new, f) = read_records(file).await?;
            file = f;
            // Rotated: the file we hold is now `<log>.1` (its last records were read just
            // now); go on with the new one. Cut back (one file kept): start again at its top.
            if let Some(f) = &file {
                use std::os::unix::fs::MetadataExt;
                let held = f.metadata().ok();
                let now = std::fs::metadata(&path).ok();
                match (held, now) {
                    (Some(h), Some(n)) if h.ino() != n.ino() => {
                        let (more, f) = read_records(std::fs::File::open(&path).ok()).await?;
                        new.extend(more);
                        file = f;
                    }
                    (Some(h), _) if (&*f).stream_position().unwrap_or(0) > h.len() => {
                        let _ = (&*f).seek(SeekFrom::Start(0));
                    }
                    _ => {}
                }
            }
            for l in new.iter().filter_map(|l| parse_line(l)) {
                if let Some(b) = render(&l, &opts, tty) {
                    if tx.send(b).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if stopped {
                return Ok(());
            }
            tokio::select! {
                _ = prog.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tx.closed() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_docker_writes_them() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), DEFAULT_DETACH_KEYS);
        assert_eq!(parse_detach_keys("ctrl-a,x,ctrl-@,ctrl-\\").unwrap(), [1, b'x', 0, 28]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
        assert!(parse_detach_keys("").is_err());
    }

    #[test]
    fn escape_holds_back_a_partial_sequence_and_detaches_on_the_whole() {
        let mut e = Escape::new(DEFAULT_DETACH_KEYS.to_vec());
        let mut out = Vec::new();
        assert!(!e.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab");
        // A broken sequence is passed on.
        assert!(!e.feed(b"c", &mut out));
        assert_eq!(out, b"ab\x10c");
        out.clear();
        assert!(!e.feed(b"\x10", &mut out));
        assert!(e.feed(b"\x11rest", &mut out));
        assert!(out.is_empty());
        // ctrl-p ctrl-p ctrl-q: the first ctrl-p goes through.
        let mut e = Escape::new(DEFAULT_DETACH_KEYS.to_vec());
        let mut out = Vec::new();
        assert!(e.feed(b"\x10\x10\x11", &mut out));
        assert_eq!(out, b"\x10");
    }
}
