//! Streaming helpers: hijacked connections, bodies as blocking readers/writers.

use std::future::Future;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

use crate::engine::BoxStream;

pub const RAW: &str = "application/vnd.docker.raw-stream";
pub const MUX: &str = "application/vnd.docker.multiplexed-stream";

/// Take over the connection (`Upgrade: tcp` → 101) and run `f` on it. Without an upgrade request,
/// stream the output as the response body instead (input is then not available).
pub fn hijack<F, Fut>(mut req: Request<Body>, content_type: &'static str, f: F) -> Response
where
    F: FnOnce(BoxStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let wants_upgrade = req.headers().get(header::UPGRADE).is_some();
    if wants_upgrade {
        let on_upgrade = hyper::upgrade::on(&mut req);
        let fd = req.extensions().get::<axum::extract::ConnectInfo<ConnFd>>().map(|c| c.0 .0);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(up) => {
                    client_read_headers(fd).await;
                    f(Box::new(TokioIo::new(up))).await
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::empty())
            .expect("response");
    }
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(f(Box::new(ours)));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(ReaderStream::new(theirs)))
        .expect("response")
}

/// The file descriptor of the connection a request came on (its connect info, recorded when
/// the daemon accepts it: `into_make_service_with_connect_info::<ConnFd>()`).
#[derive(Debug, Clone, Copy)]
pub struct ConnFd(pub std::os::fd::RawFd);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::UnixListener>> for ConnFd {
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        ConnFd(std::os::fd::AsRawFd::as_raw_fd(s.io()))
    }
}

/// docker-py parses a 101 answer with a buffered reader and then reads the bare socket: bytes
/// that arrived together with the headers are lost to it. So an upgraded stream's first bytes
/// wait until the client has read the answer (the socket's send queue is empty), 200 ms at most.
async fn client_read_headers(fd: Option<std::os::fd::RawFd>) {
    let Some(fd) = fd else { return };
    let t0 = std::time::Instant::now();
    while unsent(fd) > 0 && t0.elapsed() < std::time::Duration::from_millis(200) {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Bytes written to socket `fd` that its peer has not read yet (0 if it cannot be told).
fn unsent(fd: std::os::fd::RawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int; `fd` is the live connection being upgraded.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) } != 0 {
        return 0;
    }
    n
}

/// A request body as a blocking reader (use inside `spawn_blocking`).
pub fn body_reader(body: Body) -> SyncIoBridge<StreamReader<impl futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin, Bytes>> {
    let s = body.into_data_stream().map(|r| r.map_err(std::io::Error::other));
    SyncIoBridge::new(StreamReader::new(s))
}

/// A response body fed by a blocking writer running in `spawn_blocking`. The writer's error, if any,
/// is logged (the status is already sent by then).
pub fn body_writer<F>(content_type: &'static str, f: F) -> Response
where
    F: FnOnce(&mut dyn std::io::Write) -> crate::Result<()> + Send + 'static,
{
    let (w, r) = tokio::io::duplex(256 * 1024);
    tokio::task::spawn_blocking(move || {
        let mut bw = SyncIoBridge::new(w);
        if let Err(e) = f(&mut bw) {
            tracing::warn!(error = %e, "streaming response failed");
        }
        let _ = std::io::Write::flush(&mut bw);
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(ReaderStream::new(r)))
        .expect("response")
}

/// A response body of lines from a channel.
pub fn channel_body(content_type: &'static str, rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> Response {
    let s = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(Bytes::from(b)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(s))
        .expect("response")
}

/// Read a JSON body; empty means default. A malformed body is a 400 naming the problem.
pub async fn json_body<T: serde::de::DeserializeOwned + Default>(body: Body) -> Result<T, super::ApiError> {
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .map_err(|e| super::bad(format!("reading body: {e}")))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
        // A field whose value is refused (an unknown restart policy, say) says so as Docker does.
        serde_json::error::Category::Data => super::bad(without_position(&e)),
        _ => super::bad(format!("invalid JSON body: {e}")),
    })
}

/// A serde_json error's message without the " at line L column C" it ends with.
fn without_position(e: &serde_json::Error) -> String {
    let m = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    m.strip_suffix(&suffix).map(String::from).unwrap_or(m)
}
