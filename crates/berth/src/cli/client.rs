//! HTTP/1.1 client for the daemon's Docker Engine API over its unix socket.
//!
//! One connection per request (hyper's client `conn` API over `tokio::net::UnixStream`); hijacked
//! (`101 Switching Protocols`) connections for attach and exec.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;

/// API version prefix sent on every request (the docker CLI does the same).
pub const API_PREFIX: &str = "/v1.43";

/// A request body: in memory or streamed from a reader.
pub type Body = UnsyncBoxBody<Bytes, io::Error>;
/// Read half of an attach/exec stream.
pub type BoxRead = Box<dyn AsyncRead + Unpin + Send>;
/// Write half of an attach/exec stream.
pub type BoxWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// An error answer from the daemon (`{"message": ...}` with a 4xx/5xx status).
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The daemon's message.
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error response from daemon: {}", self.message)
    }
}

impl std::error::Error for ApiError {}

/// Is `e` a daemon answer with this status?
pub fn is_status(e: &anyhow::Error, status: u16) -> bool {
    e.downcast_ref::<ApiError>().is_some_and(|a| a.status == status)
}

/// Characters escaped in a path segment (names and IDs; `/` too, so `repo/name:tag` stays one segment).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'+')
    .add(b'\\');

/// Characters escaped in a query value (all but RFC 3986 unreserved ones).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encode one path segment.
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Build a query string (`?a=1&b=x`) from pairs; values are percent-encoded. Empty pairs list gives "".
pub fn query<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(k.as_ref());
        out.push('=');
        out.push_str(&utf8_percent_encode(v.as_ref(), QUERY).to_string());
    }
    out
}

/// An empty body.
pub fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|n| match n {}).boxed_unsync()
}

/// A JSON body.
pub fn json_body(v: &Value) -> Body {
    Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
        .map_err(|n| match n {})
        .boxed_unsync()
}

/// A body streamed (chunked) from a reader, e.g. a tar file or stdin.
pub fn reader_body<R: AsyncRead + Unpin + Send + 'static>(r: R) -> Body {
    ReaderBody {
        r,
        buf: vec![0; 64 * 1024],
    }
    .boxed_unsync()
}

struct ReaderBody<R> {
    r: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> hyper::body::Body for ReaderBody<R> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let mut rb = ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.r).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(rb.filled()))))),
        }
    }
}

/// A client of one daemon socket.
#[derive(Clone)]
pub struct Client {
    host: String,
    socket: PathBuf,
}

impl Client {
    /// `host` is `unix:///path/to/sock` (or a bare absolute path).
    pub fn new(host: &str) -> Result<Self> {
        let path = if let Some(p) = host.strip_prefix("unix://") {
            p
        } else if host.starts_with('/') {
            host
        } else {
            bail!("unsupported host {host:?}: only unix:///path sockets are supported")
        };
        if path.is_empty() {
            bail!("invalid host {host:?}: empty socket path");
        }
        Ok(Client {
            host: host.to_string(),
            socket: PathBuf::from(path),
        })
    }

    async fn sender(&self) -> Result<hyper::client::conn::http1::SendRequest<Body>> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                anyhow!(
                    "permission denied while trying to connect to the Berth daemon socket at {}: {e}",
                    self.host
                )
            } else {
                anyhow!("Cannot connect to the Berth daemon at {}: Is the daemon running?", self.host)
            }
        })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Send a request; a 4xx/5xx answer becomes an [`ApiError`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
        content_type: Option<&str>,
        upgrade: bool,
    ) -> Result<Response<Incoming>> {
        self.send_with(method, path, body, content_type, upgrade, &[]).await
    }

    /// [`Self::send`] with extra headers (e.g. `X-Registry-Auth`).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Body,
        content_type: Option<&str>,
        upgrade: bool,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let mut sender = self.sender().await?;
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{API_PREFIX}{path}"))
            .header(hyper::header::HOST, "berth")
            .header(hyper::header::USER_AGENT, concat!("Berth-Client/", env!("CARGO_PKG_VERSION")));
        if let Some(ct) = content_type {
            b = b.header(hyper::header::CONTENT_TYPE, ct);
        }
        if upgrade {
            b = b.header(hyper::header::CONNECTION, "Upgrade").header(hyper::header::UPGRADE, "tcp");
        }
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        let resp = sender.send_request(b.body(body)?).await?;
        check(resp).await
    }

    /// GET, parse JSON.
    pub async fn get(&self, path: &str) -> Result<Value> {
        read_json(self.send(Method::GET, path, empty(), None, false).await?).await
    }

    /// POST with an optional JSON body; parse a JSON answer (Null when empty).
    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value> {
        let resp = match body {
            Some(v) => self.send(Method::POST, path, json_body(v), Some("application/json"), false).await?,
            None => self.send(Method::POST, path, empty(), None, false).await?,
        };
        read_json(resp).await
    }

    /// DELETE; parse a JSON answer (Null when empty).
    pub async fn delete(&self, path: &str) -> Result<Value> {
        read_json(self.send(Method::DELETE, path, empty(), None, false).await?).await
    }

    /// POST a request that hijacks the connection (attach, exec start). Returns the raw stream halves;
    /// the write half is `None` if the daemon answered with a plain body instead of `101`.
    pub async fn hijack(&self, path: &str, body: Option<&Value>) -> Result<(BoxRead, Option<BoxWrite>)> {
        let resp = match body {
            Some(v) => self.send(Method::POST, path, json_body(v), Some("application/json"), true).await?,
            None => self.send(Method::POST, path, empty(), None, true).await?,
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let up = hyper::upgrade::on(resp).await?;
            let (r, w) = tokio::io::split(TokioIo::new(up));
            return Ok((Box::new(r), Some(Box::new(w))));
        }
        // Fallback: the stream is the response body (read only).
        let (mut tx, rx) = tokio::io::duplex(64 * 1024);
        let mut body = resp.into_body();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(d) = frame.into_data() {
                    if tx.write_all(&d).await.is_err() {
                        break;
                    }
                }
            }
        });
        Ok((Box::new(rx), None))
    }
}

async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if !status.is_client_error() && !status.is_server_error() {
        return Ok(resp);
    }
    let bytes = resp.into_body().collect().await?.to_bytes();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| {
            let t = String::from_utf8_lossy(&bytes).trim().to_string();
            if t.is_empty() {
                status.to_string()
            } else {
                t
            }
        });
    Err(ApiError {
        status: status.as_u16(),
        message,
    }
    .into())
}

/// Read a whole JSON answer (Null when the body is empty).
pub async fn read_json(resp: Response<Incoming>) -> Result<Value> {
    let bytes = resp.into_body().collect().await?.to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// Feed a streamed body to `f` chunk by chunk.
pub async fn for_each_chunk(body: Incoming, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let mut body = body;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame?.into_data() {
            f(&d)?;
        }
    }
    Ok(())
}

/// Read a stream of JSON messages (pull/load/import progress) and print them like docker does.
/// Returns an error for an `error`/`errorDetail` message.
pub async fn print_json_messages(body: Incoming, quiet: bool) -> Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut err: Option<String> = None;
    let handle = |line: &[u8], err: &mut Option<String>| {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        if let Some(e) = v.get("errorDetail").and_then(|d| d.get("message")).and_then(Value::as_str) {
            *err = Some(e.to_string());
        } else if let Some(e) = v.get("error").and_then(Value::as_str) {
            *err = Some(e.to_string());
        } else if quiet {
        } else if let Some(s) = v.get("stream").and_then(Value::as_str) {
            print!("{s}");
        } else if let Some(s) = v.get("status").and_then(Value::as_str) {
            match v.get("id").and_then(Value::as_str) {
                Some(id) => println!("{id}: {s}"),
                None => println!("{s}"),
            }
        }
    };
    for_each_chunk(body, |d| {
        buf.extend_from_slice(d);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            handle(&line, &mut err);
        }
        Ok(())
    })
    .await?;
    if !buf.is_empty() {
        let line = std::mem::take(&mut buf);
        handle(&line, &mut err);
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    match err {
        Some(e) => Err(anyhow!("{e}")),
        None => Ok(()),
    }
}
