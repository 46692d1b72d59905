//! The daemon's side of the shim: spawning one, and talking to its control socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::{Error, ErrorKind, Result};
use crate::proto::{exec_exit_file, parse_ready_error, ExitInfo, Reply, Request, EXIT_FILE, SHIM_SOCKET};
use crate::shim::ShimArgs;

/// Starts shims: forked by the zygote (see [`crate::zygote`]) while it answers, else by exec'ing
/// `berth shim`.
pub struct Launcher {
    exe: PathBuf,
    zygote: Option<Zygote>,
}

struct Zygote {
    socket: PathBuf,
    /// Its stdin is the pipe whose end tells it the daemon is gone.
    child: std::sync::Mutex<std::process::Child>,
}

impl Launcher {
    /// A launcher for `exe`; with `zygote_socket`, the zygote is started and listens there.
    pub fn new(exe: &Path, zygote_socket: Option<&Path>) -> Launcher {
        let zygote = zygote_socket.and_then(|sock| match start_zygote(exe, sock) {
            Ok(z) => Some(z),
            Err(e) => {
                tracing::warn!(error = %e, "shim zygote not started; shims will be exec'd");
                None
            }
        });
        Launcher {
            exe: exe.to_path_buf(),
            zygote,
        }
    }

    /// Start a shim for `a` and wait until it reports the container created. Returns the init
    /// pid. Blocking: call from a blocking context.
    pub fn spawn(&self, a: &ShimArgs) -> Result<i32> {
        if let Some(z) = &self.zygote {
            match z.spawn(a) {
                Ok(r) => return r,
                Err(e) => tracing::warn!(error = %e, "shim zygote did not answer; exec'ing the shim"),
            }
        }
        spawn(&self.exe, a)
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Some(z) = &self.zygote {
            if let Ok(mut c) = z.child.lock() {
                drop(c.stdin.take());
                let _ = c.wait();
            }
        }
    }
}

fn start_zygote(exe: &Path, socket: &Path) -> std::io::Result<Zygote> {
    let _ = std::fs::remove_file(socket);
    let mut child = Command::new(exe)
        .arg("shim-zygote")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let t0 = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(std::io::Error::other(format!("berth shim-zygote exited: {st}")));
        }
        if t0.elapsed() > std::time::Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("berth shim-zygote did not listen within 5 s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(Zygote {
        socket: socket.to_path_buf(),
        child: std::sync::Mutex::new(child),
    })
}

impl Zygote {
    /// The outer error: the zygote could not be asked (fall back to exec). The inner one: the
    /// shim's answer.
    fn spawn(&self, a: &ShimArgs) -> std::io::Result<Result<i32>> {
        use std::io::{BufRead, Write};
        let mut conn = std::os::unix::net::UnixStream::connect(&self.socket)?;
        let mut req = serde_json::to_vec(a).expect("json");
        req.push(b'\n');
        conn.write_all(&req)?;
        // From here on the request is out: whatever happens is the shim's answer, never a reason
        // to start a second shim for the same container.
        let mut msg = String::new();
        // One line: the container's processes keep the connection open until they exec.
        if let Err(e) = std::io::BufReader::new(conn).read_line(&mut msg) {
            return Ok(Err(Error::ShimIo {
                context: "reading the shim's report".into(),
                source: e,
            }));
        }
        if msg.is_empty() {
            return Ok(Err(Error::Shim("the shim exited without reporting (see its shim.log)".into())));
        }
        Ok(parse_ready(&msg, ""))
    }
}

/// The shim's `ok <pid>` or `error: <message>` (with its stderr, if the message is empty), the
/// error's kind as the shim reported it (see [`crate::proto::ready_error`]).
fn parse_ready(msg: &str, stderr: &str) -> Result<i32> {
    let msg = msg.trim();
    if let Some(pid) = msg.strip_prefix("ok ") {
        return pid.trim().parse().map_err(|_| Error::Shim(format!("bad ready message {msg:?}")));
    }
    let (kind, msg) = parse_ready_error(msg).unwrap_or((ErrorKind::Other, msg));
    let message = if msg.is_empty() {
        stderr.trim().to_string()
    } else {
        msg.to_string()
    };
    Err(Error::Runtime { kind, message })
}

/// Start `exe shim ...` and wait until it reports the container created. Returns the init pid.
/// Blocking: call from a blocking context.
pub fn spawn(exe: &Path, a: &ShimArgs) -> Result<i32> {
    let mut cmd = Command::new(exe);
    cmd.arg("shim")
        .arg("--id")
        .arg(&a.id)
        .arg("--bundle")
        .arg(&a.bundle)
        .arg("--state-dir")
        .arg(&a.state_dir)
        .arg("--log")
        .arg(&a.log_path)
        .arg("--runtime-root")
        .arg(&a.runtime_root)
        .arg("--cgroup")
        .arg(&a.cgroup_path);
    if a.tty {
        cmd.arg("--tty");
    }
    if a.stdin {
        cmd.arg("--stdin");
    }
    if let Some((h, w)) = a.console_size {
        cmd.arg("--console-size").arg(format!("{h}x{w}"));
    }
    if let Some(r) = &a.runtime {
        cmd.arg("--runtime").arg(r);
    }
    if a.log_rotation.max_size > 0 {
        cmd.arg("--log-max-size")
            .arg(a.log_rotation.max_size.to_string())
            .arg("--log-max-files")
            .arg(a.log_rotation.max_files.to_string());
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::Io {
            op: "spawn shim",
            path: exe.to_path_buf(),
            source: e,
        })?;
    parse_ready(&String::from_utf8_lossy(&out.stdout), &String::from_utf8_lossy(&out.stderr))
}

/// A connection to a container's shim.
#[derive(Debug, Clone)]
pub struct ShimClient {
    state_dir: PathBuf,
}

impl ShimClient {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ShimClient {
            state_dir: state_dir.into(),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.state_dir.join(SHIM_SOCKET)
    }

    /// Is a shim answering?
    pub async fn alive(&self) -> bool {
        UnixStream::connect(self.socket()).await.is_ok()
    }

    /// Send a request without waiting for its reply (read it later with [`ShimClient::reply`]).
    pub async fn send(&self, req: &Request) -> Result<BufReader<UnixStream>> {
        let sock = self.socket();
        let mut s = UnixStream::connect(&sock).await.map_err(|e| Error::ShimIo {
            context: format!("connect {}", sock.display()),
            source: e,
        })?;
        let mut line = serde_json::to_vec(req).expect("json");
        line.push(b'\n');
        s.write_all(&line).await.map_err(|e| Error::ShimIo {
            context: "send".into(),
            source: e,
        })?;
        Ok(BufReader::new(s))
    }

    /// Read the reply of a request sent with [`ShimClient::send`].
    pub async fn reply(mut r: BufReader<UnixStream>) -> Result<(Reply, BufReader<UnixStream>)> {
        let mut resp = String::new();
        r.read_line(&mut resp).await.map_err(|e| Error::ShimIo {
            context: "read reply".into(),
            source: e,
        })?;
        if resp.is_empty() {
            return Err(Error::Shim("shim closed the connection".into()));
        }
        let reply: Reply = serde_json::from_str(&resp).map_err(|e| Error::BadReply {
            reply: resp.clone(),
            source: e,
        })?;
        if let Some(e) = &reply.error {
            return Err(Error::Runtime {
                kind: reply.kind.unwrap_or_default(),
                message: e.clone(),
            });
        }
        Ok((reply, r))
    }

    /// Send a request; return the reply and the connection (for streaming requests).
    pub async fn open(&self, req: &Request) -> Result<(Reply, BufReader<UnixStream>)> {
        let r = self.send(req).await?;
        Self::reply(r).await
    }

    /// A request with a single reply.
    pub async fn call(&self, req: &Request) -> Result<Reply> {
        self.open(req).await.map(|(r, _)| r)
    }

    /// The exit record the shim wrote, if the container has exited.
    pub fn exit_info(&self) -> Option<ExitInfo> {
        serde_json::from_slice(&std::fs::read(self.state_dir.join(EXIT_FILE)).ok()?).ok()
    }

    pub fn exec_exit(&self, exec_id: &str) -> Option<ExitInfo> {
        serde_json::from_slice(&std::fs::read(self.state_dir.join(exec_exit_file(exec_id))).ok()?).ok()
    }

    /// Like [`ShimClient::exec_exit`], removing the record once read (for execs nobody inspects
    /// later, such as health probes).
    pub fn take_exec_exit(&self, exec_id: &str) -> Option<ExitInfo> {
        let info = self.exec_exit(exec_id)?;
        let _ = std::fs::remove_file(self.state_dir.join(exec_exit_file(exec_id)));
        Some(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reports_keep_their_kind() {
        assert_eq!(parse_ready("ok 42\n", "").unwrap(), 42);
        let e = parse_ready("error[executable_not_found]: executable 'x' not found in $PATH\n", "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ExecutableNotFound);
        assert_eq!(e.to_string(), "OCI runtime error: executable 'x' not found in $PATH");
        // As an older shim reports: the generic kind, the same message.
        let e = parse_ready("error: executable 'x' not found in $PATH\n", "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Other);
        assert_eq!(e.to_string(), "OCI runtime error: executable 'x' not found in $PATH");
        let e = parse_ready("", "thread 'main' panicked\n").unwrap_err();
        assert_eq!(e.to_string(), "OCI runtime error: thread 'main' panicked");
        let e = parse_ready("ok x", "").unwrap_err();
        assert_eq!(
            (e.kind(), e.to_string().as_str()),
            (ErrorKind::Unavailable, "shim: bad ready message \"ok x\"")
        );
    }
}
