//! The daemon's side of the shim: spawning one, and talking to its control socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::{Error, Result};
use crate::proto::{exec_exit_file, ExitInfo, Reply, Request, EXIT_FILE, SHIM_SOCKET};
use crate::shim::ShimArgs;

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
    let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if let Some(pid) = msg.strip_prefix("ok ") {
        return pid.trim().parse().map_err(|_| Error::Shim(format!("bad ready message {msg:?}")));
    }
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let detail = if msg.is_empty() { stderr.trim().to_string() } else { msg };
    Err(Error::Runtime(detail))
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
        let mut s = UnixStream::connect(&sock)
            .await
            .map_err(|e| Error::Shim(format!("connect {}: {e}", sock.display())))?;
        let mut line = serde_json::to_vec(req).expect("json");
        line.push(b'\n');
        s.write_all(&line).await.map_err(|e| Error::Shim(format!("send: {e}")))?;
        Ok(BufReader::new(s))
    }

    /// Read the reply of a request sent with [`ShimClient::send`].
    pub async fn reply(mut r: BufReader<UnixStream>) -> Result<(Reply, BufReader<UnixStream>)> {
        let mut resp = String::new();
        r.read_line(&mut resp).await.map_err(|e| Error::Shim(format!("read reply: {e}")))?;
        if resp.is_empty() {
            return Err(Error::Shim("shim closed the connection".into()));
        }
        let reply: Reply = serde_json::from_str(&resp).map_err(|e| Error::Shim(format!("bad reply {resp:?}: {e}")))?;
        if let Some(e) = &reply.error {
            return Err(Error::Runtime(e.clone()));
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
}
