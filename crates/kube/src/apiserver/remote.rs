//! The streaming subresources — `pods/exec`, `pods/attach`, `pods/portforward` — on the wire:
//! the HTTP upgrade to a WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`; for
//! port-forward also `SPDY/3.1+portforward.k8s.io`, SPDY tunnelled in WebSocket messages, as
//! kubectl 1.31+ sends it) or to SPDY/3.1 (`X-Stream-Protocol-Version`, what older clients and
//! kubectl's fallback speak). What runs is in `agent::remote`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha1::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::spdy;
use super::status::{ApiError, ApiResult};
use super::ApiServer;
use crate::agent::remote::{self as agent, Io, Output, Streams};

/// Which subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Exec,
    Attach,
    PortForward,
}

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";
const PORT_FORWARD: &str = "portforward.k8s.io";
const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

enum Wire {
    /// A WebSocket with this subprotocol ("" for none).
    WebSocket { protocol: String, key: String },
    /// SPDY/3.1 with this stream protocol.
    Spdy(String),
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

fn header_list(h: &HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn negotiate(kind: Kind, h: &HeaderMap) -> ApiResult<Wire> {
    let upgrade = header_list(h, "upgrade");
    let unsupported = |offered: &[String]| {
        ApiError::bad_request(format!(
            "unable to upgrade connection: none of the requested protocols is supported: {offered:?}"
        ))
    };
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let key = h
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::bad_request("websocket upgrade without Sec-WebSocket-Key"))?
            .to_string();
        let offered = header_list(h, "sec-websocket-protocol");
        let ours: &[&str] = match kind {
            Kind::PortForward => &[TUNNEL, V4],
            _ => &[V5, V4],
        };
        let protocol = match offered.iter().find(|p| ours.contains(&p.as_str())) {
            Some(p) => p.clone(),
            // Port-forward's WebSocket protocol predates subprotocols: none means v4's channels.
            None if offered.is_empty() && kind == Kind::PortForward => String::new(),
            None => return Err(unsupported(&offered)),
        };
        return Ok(Wire::WebSocket { protocol, key });
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        let offered = header_list(h, "x-stream-protocol-version");
        let ours: &[&str] = match kind {
            Kind::PortForward => &[PORT_FORWARD],
            _ => &[V5, V4],
        };
        return match offered.iter().find(|p| ours.contains(&p.as_str())) {
            Some(p) => Ok(Wire::Spdy(p.clone())),
            None => Err(unsupported(&offered)),
        };
    }
    Err(ApiError::bad_request("Upgrade request required"))
}

fn query_all(q: Option<&str>) -> Vec<(String, String)> {
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// What to run once the connection is upgraded.
enum Job {
    Exec {
        container: String,
        argv: Vec<String>,
        streams: Streams,
    },
    Attach {
        container: Box<engine::types::Container>,
        streams: Streams,
    },
    Forward {
        pid: i64,
        sandbox: String,
        ports: Vec<u16>,
    },
}

/// Serve `kind` for `pod`: check the request, answer 101, and run it on the upgraded connection.
pub async fn serve(s: &Arc<ApiServer>, kind: Kind, pod: Value, mut req: Request<Body>) -> ApiResult<Response> {
    let pods = s
        .pods
        .clone()
        .ok_or_else(|| ApiError::bad_request("this API server runs no node agent: pods cannot be reached"))?;
    let q = query_all(req.uri().query());
    let all = |k: &str| -> Vec<String> { q.iter().filter(|(n, _)| n == k).map(|(_, v)| v.clone()).collect() };
    let flag = |k: &str| q.iter().any(|(n, v)| n == k && (v == "true" || v == "1"));
    let job = match kind {
        Kind::Exec | Kind::Attach => {
            let streams = Streams {
                stdin: flag("stdin"),
                stdout: flag("stdout"),
                stderr: flag("stderr"),
                tty: flag("tty"),
            };
            if !(streams.stdin || streams.stdout || streams.stderr) {
                return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
            }
            if streams.tty && streams.stderr {
                return Err(ApiError::bad_request("tty and stderr cannot both be true"));
            }
            let wanted = all("container").into_iter().next();
            let c = agent::running_container(&pods, &pod, wanted.as_deref())?;
            if kind == Kind::Exec {
                let argv = all("command");
                if argv.is_empty() {
                    return Err(ApiError::bad_request("you must specify at least 1 command"));
                }
                Job::Exec {
                    container: c.id,
                    argv,
                    streams,
                }
            } else {
                if streams.tty && !c.config.tty {
                    return Err(ApiError::bad_request(
                        "the container was not made with tty: true; attach without a TTY",
                    ));
                }
                Job::Attach {
                    container: Box::new(c),
                    streams,
                }
            }
        }
        Kind::PortForward => {
            let mut ports = Vec::new();
            for v in all("ports") {
                for p in v.split(',') {
                    match p.trim().parse::<u16>() {
                        Ok(n) if n > 0 => ports.push(n),
                        _ => return Err(ApiError::bad_request(format!("unable to parse {p:?} as a port"))),
                    }
                }
            }
            let sb = agent::sandbox(&pods, &pod)?;
            Job::Forward {
                pid: sb.state.pid,
                sandbox: sb.id,
                ports,
            }
        }
    };
    let wire = negotiate(kind, req.headers())?;
    if let (Wire::WebSocket { protocol, .. }, Job::Forward { ports, .. }) = (&wire, &job) {
        if protocol != TUNNEL && ports.is_empty() {
            return Err(ApiError::bad_request("query parameter \"port\" is required"));
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("connection", HeaderValue::from_static("Upgrade"));
    match &wire {
        Wire::WebSocket { protocol, key } => {
            h.insert("upgrade", HeaderValue::from_static("websocket"));
            let mut sha = sha1::Sha1::new();
            sha.update(key.as_bytes());
            sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
            let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
            h.insert(
                "sec-websocket-accept",
                HeaderValue::from_str(&accept).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            if !protocol.is_empty() {
                h.insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_str(protocol).map_err(|e| ApiError::internal(e.to_string()))?,
                );
            }
        }
        Wire::Spdy(p) => {
            h.insert("upgrade", HeaderValue::from_static("SPDY/3.1"));
            h.insert(
                "x-stream-protocol-version",
                HeaderValue::from_str(p).map_err(|e| ApiError::internal(e.to_string()))?,
            );
        }
    }
    let engine = pods.engine.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "upgrading a streaming request");
                return;
            }
        };
        match wire {
            Wire::WebSocket { protocol, .. } => {
                let ws = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                match job {
                    Job::Forward { pid, sandbox, .. } if protocol == TUNNEL => {
                        let (a, b) = tokio::io::duplex(256 * 1024);
                        tokio::spawn(spdy_forward(b, pid, sandbox));
                        tunnel(ws, a).await;
                    }
                    Job::Forward { pid, sandbox, ports } => ws_forward(ws, pid, sandbox, ports).await,
                    job => ws_exec(ws, protocol == V5, engine, job).await,
                }
            }
            Wire::Spdy(_) => match job {
                Job::Forward { pid, sandbox, .. } => spdy_forward(upgraded, pid, sandbox).await,
                job => spdy_exec(upgraded, engine, job).await,
            },
        }
    });
    Ok(resp)
}

fn streams_of(job: &Job) -> Streams {
    match job {
        Job::Exec { streams, .. } | Job::Attach { streams, .. } => streams.clone(),
        Job::Forward { .. } => Streams::default(),
    }
}

async fn run(engine: Arc<dyn engine::service::ContainerService>, job: Job, io: Io) -> Value {
    match job {
        Job::Exec { container, argv, streams } => agent::exec(engine, &container, argv, &streams, io).await,
        Job::Attach { container, streams } => agent::attach(engine, &container, &streams, io).await,
        Job::Forward { .. } => agent::failure_status("not an exec"),
    }
}

fn parse_size(b: &[u8]) -> Option<(u16, u16)> {
    let v: Value = serde_json::from_slice(b).ok()?;
    Some((v["Width"].as_u64()? as u16, v["Height"].as_u64()? as u16))
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: the client closed the channel in the next byte.
const CLOSE: u8 = 255;

fn frame(ch: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(ch);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

async fn close(sink: &mut futures_util::stream::SplitSink<Ws, Message>) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    let _ = sink.flush().await;
}

async fn ws_exec(ws: Ws, v5: bool, engine: Arc<dyn engine::service::ContainerService>, job: Job) {
    let streams = streams_of(&job);
    let (mut sink, mut source) = ws.split();
    let (stdin_tx, stdin_rx) = mpsc::channel::<Vec<u8>>(16);
    let (resize_tx, resize_rx) = mpsc::channel(4);
    let reader = tokio::spawn(async move {
        let mut stdin_tx = Some(stdin_tx);
        while let Some(Ok(msg)) = source.next().await {
            let b = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            match b.first() {
                Some(&STDIN) => {
                    if let Some(tx) = &stdin_tx {
                        if tx.send(b[1..].to_vec()).await.is_err() {
                            stdin_tx = None;
                        }
                    }
                }
                Some(&RESIZE) => {
                    if let Some(size) = parse_size(&b[1..]) {
                        let _ = resize_tx.send(size).await;
                    }
                }
                Some(&CLOSE) if v5 && b.get(1) == Some(&STDIN) => stdin_tx = None,
                _ => {}
            }
        }
    });
    // An empty message on the lowest channel the client reads says the stream is up.
    let first = if streams.stdout {
        STDOUT
    } else if streams.stderr {
        STDERR
    } else {
        ERROR
    };
    let _ = sink.send(frame(first, &[])).await;
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let io = Io {
        stdin: streams.stdin.then_some(stdin_rx),
        resize: streams.tty.then_some(resize_rx),
        out: out_tx,
    };
    let mut task = tokio::spawn(run(engine, job, io));
    let mut reader = reader;
    loop {
        tokio::select! {
            o = out_rx.recv() => {
                let Some(o) = o else { break };
                let m = match o {
                    Output::Stdout(d) if streams.stdout => frame(STDOUT, &d),
                    Output::Stderr(d) if streams.stderr => frame(STDERR, &d),
                    _ => continue,
                };
                if sink.send(m).await.is_err() {
                    break;
                }
            }
            // The client went: its streams go (the process runs on, as under the kubelet).
            _ = &mut reader => {
                task.abort();
                return;
            }
        }
    }
    drop(out_rx);
    let status = tokio::select! {
        s = &mut task => s.unwrap_or_else(|_| agent::failure_status("the exec failed")),
        _ = &mut reader => {
            task.abort();
            return;
        }
    };
    let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
    close(&mut sink).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
}

async fn ws_forward(ws: Ws, pid: i64, sandbox: String, ports: Vec<u16>) {
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<(u8, Vec<u8>)>(16);
    let mut inputs = Vec::new();
    let mut tasks = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let (data, err) = ((2 * i) as u8, (2 * i + 1) as u8);
        for ch in [data, err] {
            let _ = sink.send(frame(ch, &port.to_le_bytes())).await;
        }
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
        inputs.push(tx);
        let out = out_tx.clone();
        let sandbox = sandbox.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = match agent::connect_in_pod(pid, port).await {
                Ok(t) => t,
                Err(e) => {
                    let _ = out.send((err, agent::forward_error(port, &sandbox, &e).into_bytes())).await;
                    return;
                }
            };
            let (mut r, mut w) = tcp.into_split();
            let up = async move {
                while let Some(b) = rx.recv().await {
                    if w.write_all(&b).await.is_err() {
                        break;
                    }
                }
                let _ = w.shutdown().await;
                std::future::pending::<()>().await
            };
            let down = async {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || out.send((data, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        }));
    }
    drop(out_tx);
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            let b = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if let Some(&ch) = b.first() {
                if ch % 2 == 0 {
                    if let Some(tx) = inputs.get((ch / 2) as usize) {
                        let _ = tx.send(b[1..].to_vec()).await;
                    }
                }
            }
        }
    });
    // Until every port's connection is over (or the client went).
    while let Some((ch, d)) = out_rx.recv().await {
        if sink.send(frame(ch, &d)).await.is_err() {
            break;
        }
    }
    for t in tasks {
        t.abort();
    }
    close(&mut sink).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
}

/// Carry a byte stream in WebSocket binary messages, both ways, until either side ends.
async fn tunnel(ws: Ws, io: tokio::io::DuplexStream) {
    let (mut sink, mut source) = ws.split();
    let (mut r, mut w) = tokio::io::split(io);
    let inbound = async move {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(b) if w.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = w.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 || sink.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                break;
            }
        }
        close(&mut sink).await;
    };
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
}

/// Port-forward over SPDY: a data and an error stream per connection the client makes, paired
/// by `requestID`, each carried to `port` inside the pod.
async fn spdy_forward<S>(io: S, pid: i64, sandbox: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (writer, mut streams) = spdy::serve(io);
    let mut pending: HashMap<String, (Option<spdy::Stream>, Option<spdy::Stream>)> = HashMap::new();
    let mut tasks = Vec::new();
    while let Some(st) = streams.recv().await {
        let kind = spdy::header(&st.headers, "streamtype").unwrap_or("").to_string();
        let request = spdy::header(&st.headers, "requestid").unwrap_or("").to_string();
        if !(kind == "data" || kind == "error") {
            writer.reset(st.id, spdy::REFUSED_STREAM).await;
            continue;
        }
        writer.reply(st.id).await;
        let slot = pending.entry(request.clone()).or_default();
        if kind == "data" {
            slot.0 = Some(st);
        } else {
            slot.1 = Some(st);
        }
        if let (Some(_), Some(_)) = slot {
            let (Some(data), Some(err)) = pending.remove(&request).unwrap_or_default() else {
                continue;
            };
            let w = writer.clone();
            let sandbox = sandbox.clone();
            tasks.push(tokio::spawn(forward_one(w, data, err, pid, sandbox)));
        }
    }
    for t in tasks {
        t.abort();
    }
}

async fn forward_one(w: spdy::Writer, data: spdy::Stream, err: spdy::Stream, pid: i64, sandbox: String) {
    let port = spdy::header(&data.headers, "port").and_then(|p| p.parse::<u16>().ok());
    let Some(port) = port.filter(|p| *p > 0) else {
        let msg = format!("invalid port {:?}", spdy::header(&data.headers, "port").unwrap_or(""));
        w.data(err.id, msg.as_bytes()).await;
        w.fin(err.id).await;
        w.fin(data.id).await;
        return;
    };
    let tcp = match agent::connect_in_pod(pid, port).await {
        Ok(t) => t,
        Err(e) => {
            w.data(err.id, agent::forward_error(port, &sandbox, &e).as_bytes()).await;
            w.fin(err.id).await;
            w.fin(data.id).await;
            return;
        }
    };
    let (mut r, mut tw) = tcp.into_split();
    let mut rx = data.rx;
    let up = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if tw.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = tw.shutdown().await;
    });
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || !w.data(data.id, &buf[..n]).await {
            break;
        }
    }
    w.fin(data.id).await;
    w.fin(err.id).await;
    // The client's side ends with its FIN (or the session).
    let _ = up.await;
}

/// Exec or attach over SPDY: the client opens an error stream and one per stream it asked for
/// (`streamType` stdin, stdout, stderr, resize), each answered.
async fn spdy_exec<S>(io: S, engine: Arc<dyn engine::service::ContainerService>, job: Job)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let want = streams_of(&job);
    let (writer, mut incoming) = spdy::serve(io);
    let mut got: HashMap<String, spdy::Stream> = HashMap::new();
    let expected = |got: &HashMap<String, spdy::Stream>| {
        got.contains_key("error")
            && (!want.stdin || got.contains_key("stdin"))
            && (!want.stdout || got.contains_key("stdout"))
            && (!want.stderr || got.contains_key("stderr"))
            && (!want.tty || got.contains_key("resize"))
    };
    let collect = async {
        while !expected(&got) {
            let Some(st) = incoming.recv().await else { return false };
            let kind = spdy::header(&st.headers, "streamtype").unwrap_or("").to_string();
            if !["error", "stdin", "stdout", "stderr", "resize"].contains(&kind.as_str()) {
                writer.reset(st.id, spdy::REFUSED_STREAM).await;
                continue;
            }
            writer.reply(st.id).await;
            got.insert(kind, st);
        }
        true
    };
    if !matches!(tokio::time::timeout(Duration::from_secs(30), collect).await, Ok(true)) {
        tracing::debug!("an exec's SPDY streams did not all arrive");
        writer.close().await;
        return;
    }
    let err_id = got["error"].id;
    let out_id = got.get("stdout").map(|s| s.id);
    let errout_id = got.get("stderr").map(|s| s.id);
    let stdin = got.remove("stdin").map(|s| s.rx);
    let resize = got.remove("resize").map(|s| {
        let (tx, rx) = mpsc::channel(4);
        let mut src = s.rx;
        tokio::spawn(async move {
            // A stream of JSON objects, one per size.
            let mut buf = Vec::new();
            while let Some(b) = src.recv().await {
                buf.extend_from_slice(&b);
                let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
                let mut used = 0;
                while let Some(Ok(v)) = it.next() {
                    used = it.byte_offset();
                    if let (Some(w), Some(h)) = (v["Width"].as_u64(), v["Height"].as_u64()) {
                        let _ = tx.send((w as u16, h as u16)).await;
                    }
                }
                buf.drain(..used);
            }
        });
        rx
    });
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let io = Io {
        stdin,
        resize,
        out: out_tx,
    };
    let mut task = tokio::spawn(run(engine, job, io));
    // The session's end (the client closed the connection) ends the exec's streams.
    let gone = async { while incoming.recv().await.is_some() {} };
    tokio::pin!(gone);
    loop {
        tokio::select! {
            o = out_rx.recv() => {
                let Some(o) = o else { break };
                let (id, d) = match o {
                    Output::Stdout(d) => (out_id, d),
                    Output::Stderr(d) => (errout_id, d),
                };
                if let Some(id) = id {
                    if !writer.data(id, &d).await {
                        break;
                    }
                }
            }
            _ = &mut gone => {
                task.abort();
                return;
            }
        }
    }
    drop(out_rx);
    let status = tokio::select! {
        s = &mut task => s.unwrap_or_else(|_| agent::failure_status("the exec failed")),
        _ = &mut gone => {
            task.abort();
            return;
        }
    };
    writer.data(err_id, status.to_string().as_bytes()).await;
    for id in [Some(err_id), out_id, errout_id].into_iter().flatten() {
        writer.fin(id).await;
    }
    writer.close().await;
}
