//! `pods/exec`, `pods/attach` and `pods/portforward` on the node: the kubelet's streaming
//! side, whatever the wire (WebSocket channels or SPDY streams, in `apiserver::remote`).

use std::sync::Arc;
use std::time::Duration;

use engine::service::ContainerService;
use engine::types::Container;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::pods::{Pods, SANDBOX};
use crate::apiserver::status::{ApiError, ApiResult};

/// Output of an exec or attach, as the client is to get it.
#[derive(Debug)]
pub enum Output {
    /// Bytes for the client's stdout (all output, with a TTY).
    Stdout(Vec<u8>),
    /// Bytes for the client's stderr.
    Stderr(Vec<u8>),
}

/// The client's side of an exec or attach.
pub struct Io {
    /// Its input; the channel's end is the end of input. None: stdin was not asked for.
    pub stdin: Option<mpsc::Receiver<Vec<u8>>>,
    /// Terminal sizes (columns, rows).
    pub resize: Option<mpsc::Receiver<(u16, u16)>>,
    /// Where output goes.
    pub out: mpsc::Sender<Output>,
}

/// What an exec or attach asks for (the query of `pods/<name>/exec`).
#[derive(Debug, Clone, Default)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The running container of `pod` a request names (`container=`, or the only one).
pub fn running_container(pods: &Pods, pod: &Value, wanted: Option<&str>) -> ApiResult<Container> {
    let container = super::logs::container_named(pod, wanted)?;
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("").is_empty() {
        return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
    }
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    match Pods::instances(&pods.containers_of(uid), &container).0 {
        Some(c) if c.state.running => Ok(c),
        _ => Err(ApiError::bad_request(format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        ))),
    }
}

/// The running sandbox of `pod` (whose network namespace port-forwards enter).
pub fn sandbox(pods: &Pods, pod: &Value) -> ApiResult<Container> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let uid = pod.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    match Pods::instances(&pods.containers_of(uid), SANDBOX).0 {
        Some(c) if c.state.running => Ok(c),
        _ => Err(ApiError::bad_request(format!(
            "unable to upgrade connection: pod {name} has no running sandbox"
        ))),
    }
}

/// A `Status` for the error channel: Success, or the exit code as kubelet reports it.
pub fn exit_status(code: i64) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command, exit code {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
}

/// A `Status` for the error channel when the process could not run.
pub fn failure_status(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {message}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500
    })
}

/// Copy the engine's output (raw with a TTY, else in Docker's frames) to the client.
async fn pump_output(mut r: impl tokio::io::AsyncRead + Unpin, tty: bool, out: &mpsc::Sender<Output>) {
    let mut buf = vec![0u8; 32 * 1024];
    if tty {
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 || out.send(Output::Stdout(buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
        return;
    }
    let mut hdr = [0u8; 8];
    while r.read_exact(&mut hdr).await.is_ok() {
        let len = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
        let mut data = vec![0u8; len];
        if r.read_exact(&mut data).await.is_err() {
            return;
        }
        let o = if hdr[0] == 2 { Output::Stderr(data) } else { Output::Stdout(data) };
        if out.send(o).await.is_err() {
            return;
        }
    }
}

/// Feed the client's input to the engine's stream, closing it at the input's end.
async fn pump_input(mut w: impl tokio::io::AsyncWrite + Unpin, stdin: Option<mpsc::Receiver<Vec<u8>>>) {
    if let Some(mut rx) = stdin {
        while let Some(b) = rx.recv().await {
            if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    }
    std::future::pending::<()>().await
}

/// Carry the client's input, terminal sizes (through `resize`, rows and columns) and output to
/// and from an engine stream, until the output ends or the input does.
async fn splice<F, Fut>(stream: engine::engine::BoxStream, tty: bool, io: Io, resize: F)
where
    F: Fn(u16, u16) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (r, w) = tokio::io::split(stream);
    let resizer = io.resize.map(|mut rx| {
        tokio::spawn(async move {
            while let Some((cols, rows)) = rx.recv().await {
                resize(rows, cols).await;
            }
        })
    });
    tokio::select! {
        _ = pump_output(r, tty, &io.out) => {}
        _ = pump_input(w, io.stdin) => {}
    }
    if let Some(t) = resizer {
        t.abort();
    }
}

/// Run `argv` in the container; the Status for the error channel.
pub async fn exec(engine: Arc<dyn ContainerService>, container: &str, argv: Vec<String>, s: &Streams, mut io: Io) -> Value {
    // Clients send the terminal's size first thing: the process starts with it (a resize
    // after the start would race the process's first look at its terminal).
    let mut size = None;
    if let Some(rx) = io.resize.as_mut() {
        if let Ok(Some((cols, rows))) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            size = Some((rows, cols));
        }
    }
    let (exec_id, stream) = match engine
        .exec_stream(container, argv, s.tty, s.stdin && io.stdin.is_some(), size)
        .await
    {
        Ok(x) => x,
        Err(e) => return failure_status(&e.to_string()),
    };
    let (e, id) = (engine.clone(), exec_id.clone());
    splice(stream, s.tty, io, move |rows, cols| {
        let (e, id) = (e.clone(), id.clone());
        async move {
            let _ = e.exec_resize(&id, rows, cols).await;
        }
    })
    .await;
    // The stream ends after the exit code is recorded; allow for a late one all the same.
    for _ in 0..50 {
        if let Some(code) = engine.exec_exit_code(&exec_id) {
            return exit_status(code);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    failure_status("the command's exit code is unknown")
}

/// Attach to the container's process until it ends (or the client goes); the Status.
pub async fn attach(engine: Arc<dyn ContainerService>, container: &Container, s: &Streams, io: Io) -> Value {
    let stdin = s.stdin && io.stdin.is_some();
    if stdin && !container.config.open_stdin {
        return failure_status("the container was not made with stdin: true, so it takes no input");
    }
    let stream = match engine.attach_stream(&container.id, stdin, s.stdout, s.stderr).await {
        Ok(x) => x,
        Err(e) => return failure_status(&e.to_string()),
    };
    let (e, id) = (engine.clone(), container.id.clone());
    splice(stream, container.config.tty, io, move |rows, cols| {
        let (e, id) = (e.clone(), id.clone());
        async move {
            let _ = e.resize(&id, rows, cols).await;
        }
    })
    .await;
    json!({"metadata": {}, "status": "Success"})
}

/// Connect to `port` on localhost inside the network namespace of process `pid` (a pod's
/// sandbox), as the kubelet's port-forward does: a listener bound to the pod's loopback is
/// reached too.
pub async fn connect_in_pod(pid: i64, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A thread of its own, ended after: it enters the namespace and never leaves it.
    std::thread::spawn(move || {
        let connect = || -> std::io::Result<std::net::TcpStream> {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            let timeout = Duration::from_secs(10);
            let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            std::net::TcpStream::connect_timeout(&v4, timeout).or_else(|e4| {
                std::net::TcpStream::connect_timeout(&std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)), timeout)
                    .map_err(|e6| std::io::Error::new(e4.kind(), format!("IPv4: {e4}; IPv6: {e6}")))
            })
        };
        let _ = tx.send(connect());
    });
    let s = rx.await.map_err(|_| std::io::Error::other("the connecting thread failed"))??;
    s.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(s)
}

/// The message the kubelet writes on a port's error stream.
pub fn forward_error(port: u16, sandbox: &str, err: &std::io::Error) -> String {
    format!(
        "error forwarding port {port} to pod {sandbox}, uid : failed to connect to localhost:{port} inside the pod's network namespace: {err}"
    )
}
