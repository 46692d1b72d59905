//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (a session, a monolithic `?digest=` upload, or a
//! `?mount=&from=` cross-repository mount) and `GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<id>`.
//!
//! A session's data streams straight into a content store [`BlobWriter`] (a temp file in the
//! store's `ingest/`, hashed on the way), so closing it is a verified rename, never a copy. Chunks
//! must come in order (`Content-Range` starting at the current offset, else 416); a client that
//! disconnects mid-chunk keeps what arrived and can resume from the offset `GET` reports. The
//! closing `PUT` verifies the digest: on a mismatch the session and its data are gone, nothing is
//! stored. Sessions live in memory: idle ones expire, and a restart drops them all (the content
//! store clears its `ingest/` when opened).

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use oci::store::BlobWriter;
use oci::Digest;

use super::auth::random_bytes;
use super::error::{ApiError, ApiResult, Code};
use super::names::{parse_digest, Query, RepoName};
use super::{digest_header, empty, Inner, Registry};

/// Bytes gathered from a request body before they are written out.
const WRITE_CHUNK: usize = 1 << 20;

/// One upload session.
pub(crate) struct Session {
    repo: RepoName,
    state: tokio::sync::Mutex<State>,
    /// The offset, readable while a chunk is being written.
    offset: AtomicU64,
    touched: Mutex<Instant>,
}

struct State {
    /// `None` once the writer failed or was committed.
    writer: Option<BlobWriter>,
    offset: u64,
}

impl Session {
    fn touch(&self) {
        if let Ok(mut t) = self.touched.lock() {
            *t = Instant::now();
        }
    }
}

/// The open sessions.
pub(crate) struct Uploads {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    idle: Duration,
}

impl Uploads {
    pub fn new(idle: Duration) -> Uploads {
        Uploads {
            sessions: Mutex::new(HashMap::new()),
            idle,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a session; idle ones are dropped on the way.
    fn create(&self, repo: RepoName, writer: BlobWriter) -> ApiResult<(String, Arc<Session>)> {
        let mut raw = [0u8; 16];
        random_bytes(&mut raw)?;
        let id = hex::encode(raw);
        let s = Arc::new(Session {
            repo,
            state: tokio::sync::Mutex::new(State {
                writer: Some(writer),
                offset: 0,
            }),
            offset: AtomicU64::new(0),
            touched: Mutex::new(Instant::now()),
        });
        let mut m = self.map();
        let idle = self.idle;
        m.retain(|_, s| {
            let stale = s.touched.lock().map(|t| t.elapsed() > idle).unwrap_or(true);
            // A session with a request in flight is not idle.
            !(stale && s.state.try_lock().is_ok())
        });
        m.insert(id.clone(), s.clone());
        Ok((id, s))
    }

    fn get(&self, repo: &RepoName, id: &str) -> ApiResult<Arc<Session>> {
        self.map().get(id).filter(|s| &s.repo == repo).cloned().ok_or_else(|| {
            ApiError::new(Code::BlobUploadUnknown, "blob upload unknown to registry").detail(serde_json::json!({ "id": id }))
        })
    }

    fn remove(&self, id: &str) {
        self.map().remove(id);
    }

    /// Number of open sessions.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map().len()
    }
}

fn location(name: &RepoName, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// The `Range` of an upload: `0-<last byte>` (`0-0` when empty, as distribution answers).
fn range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// The headers describing a session.
fn session_headers(name: &RepoName, id: &str, offset: u64) -> Vec<(header::HeaderName, String)> {
    vec![
        (header::LOCATION, location(name, id)),
        (header::RANGE, range(offset)),
        (header::HeaderName::from_static("docker-upload-uuid"), id.to_string()),
    ]
}

/// The answer to a stored blob.
fn created(name: &RepoName, d: &Digest) -> Response {
    empty(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, format!("/v2/{name}/blobs/{d}")),
            (digest_header(), d.to_string()),
        ],
    )
}

/// A `Content-Range: <start>-<end>` header (a `bytes ` or `bytes=` prefix is tolerated).
fn content_range(h: &HeaderMap) -> ApiResult<Option<(u64, u64)>> {
    let Some(v) = h.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(Code::BlobUploadInvalid, "invalid Content-Range: expected <start>-<end>").status(StatusCode::RANGE_NOT_SATISFIABLE)
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s.strip_prefix("bytes").map(|r| r.trim_start_matches([' ', '='])).unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Why a body could not be appended.
enum AppendError {
    /// The client's body failed (disconnect, truncation): what arrived is kept.
    Body(String),
    /// Writing failed: the session is unusable.
    Write(ApiError),
}

/// Write a buffer out (off the async threads); returns the emptied buffer.
async fn write_buf(st: &mut State, buf: Vec<u8>) -> Result<Vec<u8>, AppendError> {
    let Some(mut w) = st.writer.take() else {
        return Err(AppendError::Write(ApiError::new(
            Code::BlobUploadInvalid,
            "upload session is broken",
        )));
    };
    let n = buf.len() as u64;
    let joined = tokio::task::spawn_blocking(move || {
        let r = w.write_all(&buf);
        (w, buf, r)
    })
    .await;
    match joined {
        Ok((w, mut buf, Ok(()))) => {
            st.writer = Some(w);
            st.offset += n;
            buf.clear();
            Ok(buf)
        }
        Ok((_, _, Err(e))) => Err(AppendError::Write(ApiError::internal(format!("write upload: {e}")))),
        Err(e) => Err(AppendError::Write(ApiError::internal(e))),
    }
}

/// Stream a request body into the session's writer; returns the bytes appended.
async fn append(st: &mut State, mut body: Body, progress: Option<&AtomicU64>) -> Result<u64, AppendError> {
    let start = st.offset;
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
    loop {
        let (done, failed) = match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    buf.extend_from_slice(data);
                }
                (false, None)
            }
            Some(Err(e)) => (true, Some(e.to_string())),
            None => (true, None),
        };
        if !buf.is_empty() && (done || buf.len() >= WRITE_CHUNK) {
            buf = write_buf(st, buf).await?;
            if let Some(p) = progress {
                p.store(st.offset, Ordering::Relaxed);
            }
        }
        if let Some(e) = failed {
            return Err(AppendError::Body(e));
        }
        if done {
            return Ok(st.offset - start);
        }
    }
}

/// Commit a writer against the expected digest, then pin and link the blob.
async fn commit(reg: &Registry, name: &RepoName, w: BlobWriter, d: &Digest) -> ApiResult<()> {
    let (name, d) = (name.clone(), d.clone());
    reg.blocking(move |inner: &Inner| {
        match w.commit(Some(&d)) {
            Ok(_) => {}
            Err(oci::Error::DigestMismatch { expected, actual }) => {
                return Err(ApiError::new(Code::DigestInvalid, "provided digest did not match uploaded content")
                    .detail(serde_json::json!({ "expected": expected, "actual": actual })))
            }
            Err(e) => return Err(e.into()),
        }
        inner.blobs.pin(&d);
        inner.meta.link_blob(&name, &d)?;
        Ok(())
    })
    .await
}

/// `POST /v2/<name>/blobs/uploads/`. `from_ok`: whether the caller may pull from `?from=`.
pub async fn start(reg: &Registry, name: RepoName, q: &Query, from_ok: bool, h: &HeaderMap, body: Body) -> ApiResult<Response> {
    if let Some(alg) = q.get("digest-algorithm") {
        if alg != "sha256" {
            return Err(ApiError::new(
                Code::DigestInvalid,
                format!("unsupported digest algorithm {alg:?}: only sha256 is supported"),
            ));
        }
    }
    if let Some(m) = q.get("mount") {
        let d = parse_digest(m)?;
        let from = q.get("from").map(RepoName::parse).transpose()?;
        // A mount takes a blob of the `from` repository (which the caller may pull from), never
        // one it could only name by digest.
        if let (Some(from), true) = (from, from_ok) {
            let (n, dd) = (name.clone(), d.clone());
            let mounted = reg
                .blocking(move |inner| {
                    if inner.blob_in_repo(&from, &dd).is_none() {
                        return Ok(false);
                    }
                    inner.blobs.pin(&dd);
                    inner.meta.link_blob(&n, &dd)?;
                    Ok(true)
                })
                .await?;
            if mounted {
                tracing::debug!(repo = %name, blob = %d, "mounted");
                return Ok(created(&name, &d));
            }
        }
        // Not mountable: an ordinary session follows (202).
    }
    let monolithic = q.get("digest").map(parse_digest).transpose()?;
    if monolithic.is_none() && content_length(h).unwrap_or(0) > 0 {
        return Err(ApiError::new(Code::BlobUploadInvalid, "a POST with a body needs ?digest="));
    }
    let store = reg.content_store().clone();
    let writer = reg.blocking(move |_| Ok(store.writer()?)).await?;
    if let Some(d) = monolithic {
        // Monolithic upload in one POST.
        let mut st = State {
            writer: Some(writer),
            offset: 0,
        };
        match append(&mut st, body, None).await {
            Ok(_) => {}
            Err(AppendError::Body(e)) => return Err(ApiError::new(Code::BlobUploadInvalid, format!("upload interrupted: {e}"))),
            Err(AppendError::Write(e)) => return Err(e),
        }
        if let Some(cl) = content_length(h) {
            if cl != st.offset {
                return Err(ApiError::new(Code::SizeInvalid, "provided length did not match content length"));
            }
        }
        let w = st.writer.take().ok_or_else(|| ApiError::internal("upload writer missing"))?;
        commit(reg, &name, w, &d).await?;
        return Ok(created(&name, &d));
    }
    let (id, _) = reg.inner.uploads.create(name.clone(), writer)?;
    tracing::debug!(repo = %name, upload = %id, "upload started");
    Ok(empty(StatusCode::ACCEPTED, session_headers(&name, &id, 0)))
}

/// Check a chunk's `Content-Range` against the session offset (416 if out of order) and its
/// `Content-Length`; the expected chunk length, if declared.
fn check_chunk(name: &RepoName, id: &str, offset: u64, h: &HeaderMap) -> ApiResult<Option<u64>> {
    let out_of_order = |msg: &str| {
        let mut e = ApiError::new(Code::BlobUploadInvalid, msg.to_string()).status(StatusCode::RANGE_NOT_SATISFIABLE);
        for (k, v) in session_headers(name, id, offset) {
            e = e.header(k, v);
        }
        e
    };
    let Some((a, b)) = content_range(h).map_err(|_| out_of_order("invalid Content-Range: expected <start>-<end>"))? else {
        return Ok(None);
    };
    if a != offset {
        return Err(out_of_order(&format!("chunk starts at {a}, the upload is at {offset}")));
    }
    let len = b - a + 1;
    if content_length(h).is_some_and(|cl| cl != len) {
        return Err(ApiError::new(Code::SizeInvalid, "Content-Length does not match Content-Range"));
    }
    Ok(Some(len))
}

/// Append a request body to a locked session; on a failed write the session is dropped.
async fn append_chunk(
    reg: &Registry,
    s: &Session,
    st: &mut State,
    name: &RepoName,
    id: &str,
    body: Body,
    expect: Option<u64>,
) -> ApiResult<()> {
    let res = append(st, body, Some(&s.offset)).await;
    s.touch();
    let got = match res {
        Ok(n) => n,
        Err(AppendError::Body(e)) => {
            tracing::debug!(upload = %id, error = %e, offset = st.offset, "chunk interrupted");
            let mut err = ApiError::new(Code::BlobUploadInvalid, format!("upload interrupted: {e}"));
            for (k, v) in session_headers(name, id, st.offset) {
                err = err.header(k, v);
            }
            return Err(err);
        }
        Err(AppendError::Write(e)) => {
            reg.inner.uploads.remove(id);
            st.writer = None;
            return Err(e);
        }
    };
    if let Some(n) = expect {
        if got != n {
            let mut err = ApiError::new(Code::SizeInvalid, format!("chunk declared {n} bytes, {got} arrived"));
            for (k, v) in session_headers(name, id, st.offset) {
                err = err.header(k, v);
            }
            return Err(err);
        }
    }
    Ok(())
}

/// `PATCH`: append a chunk.
pub async fn patch(reg: &Registry, name: RepoName, id: &str, h: &HeaderMap, body: Body) -> ApiResult<Response> {
    let s = reg.inner.uploads.get(&name, id)?;
    let mut st = s.state.lock().await;
    if st.writer.is_none() {
        return Err(ApiError::new(Code::BlobUploadUnknown, "blob upload unknown to registry"));
    }
    let expect = check_chunk(&name, id, st.offset, h)?;
    append_chunk(reg, &s, &mut st, &name, id, body, expect).await?;
    Ok(empty(StatusCode::ACCEPTED, session_headers(&name, id, st.offset)))
}

/// `GET`: where the upload is.
pub async fn status(reg: &Registry, name: RepoName, id: &str) -> ApiResult<Response> {
    let s = reg.inner.uploads.get(&name, id)?;
    s.touch();
    let offset = s.offset.load(Ordering::Relaxed);
    Ok(empty(StatusCode::NO_CONTENT, session_headers(&name, id, offset)))
}

/// `PUT ?digest=`: append the final chunk (if any), verify and store the blob.
pub async fn finish(reg: &Registry, name: RepoName, id: &str, q: &Query, h: &HeaderMap, body: Body) -> ApiResult<Response> {
    let s = reg.inner.uploads.get(&name, id)?;
    let Some(ds) = q.get("digest") else {
        return Err(ApiError::new(Code::DigestInvalid, "the digest query parameter is required"));
    };
    let d = parse_digest(ds)?;
    let mut st = s.state.lock().await;
    if st.writer.is_none() {
        return Err(ApiError::new(Code::BlobUploadUnknown, "blob upload unknown to registry"));
    }
    let expect = check_chunk(&name, id, st.offset, h)?;
    append_chunk(reg, &s, &mut st, &name, id, body, expect).await?;
    // From here the session ends, whatever the outcome.
    reg.inner.uploads.remove(id);
    let w = st.writer.take().ok_or_else(|| ApiError::internal("upload writer missing"))?;
    drop(st);
    commit(reg, &name, w, &d).await?;
    tracing::debug!(repo = %name, upload = %id, blob = %d, "upload complete");
    Ok(created(&name, &d))
}

/// `DELETE`: cancel the upload and drop its data.
pub async fn cancel(reg: &Registry, name: RepoName, id: &str) -> ApiResult<Response> {
    let s = reg.inner.uploads.get(&name, id)?;
    reg.inner.uploads.remove(id);
    // Wait for a request still writing to it, then drop the data.
    let mut st = s.state.lock().await;
    st.writer = None;
    Ok(empty(StatusCode::NO_CONTENT, vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::testutil::*;

    fn ingest_files(t: &TestRegistry) -> usize {
        std::fs::read_dir(t.dir.path().join("blobs/ingest")).unwrap().count()
    }

    #[tokio::test]
    async fn monolithic_post_and_post_put() {
        let t = TestRegistry::open();
        let data = b"hello blob".to_vec();
        let d = oci::Digest::of(&data);
        let (st, h, _) = t.call("POST", &format!("/v2/a/blobs/uploads/?digest={d}"), &[], data.clone()).await;
        assert_eq!(st, 201);
        assert_eq!(h["location"], format!("/v2/a/blobs/{d}"));
        assert_eq!(h["docker-content-digest"], d.to_string());
        assert!(t.reg.content_store().contains(&d));
        // POST then PUT with the whole blob.
        let data2 = b"second".to_vec();
        let d2 = oci::Digest::of(&data2);
        let (st, h, _) = t.call("POST", "/v2/a/blobs/uploads/", &[], Vec::new()).await;
        assert_eq!(st, 202);
        assert_eq!(h["range"], "0-0");
        let loc = h["location"].to_str().unwrap().to_string();
        assert!(loc.starts_with("/v2/a/blobs/uploads/"));
        assert_eq!(h["docker-upload-uuid"], loc.rsplit('/').next().unwrap());
        let (st, _, _) = t.call("PUT", &format!("{loc}?digest={d2}"), &[], data2.clone()).await;
        assert_eq!(st, 201);
        assert_eq!(t.get_blob("a", &d2).await, data2);
        // The session is gone.
        let (st, _, body) = t.call("GET", &loc, &[], Vec::new()).await;
        assert_eq!((st, error_code(&body).as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
        assert_eq!(ingest_files(&t), 0);
    }

    #[tokio::test]
    async fn chunked_with_status_and_out_of_order() {
        let t = TestRegistry::open();
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let d = oci::Digest::of(&data);
        let (_, h, _) = t.call("POST", "/v2/x/y/blobs/uploads/", &[], Vec::new()).await;
        let loc = h["location"].to_str().unwrap().to_string();
        let (st, h, _) = t.call("PATCH", &loc, &[("content-range", "0-999")], data[..1000].to_vec()).await;
        assert_eq!(st, 202);
        assert_eq!(h["range"], "0-999");
        assert_eq!(h["location"], loc.as_str());
        // A chunk that does not start at the offset: 416, and the Range says where we are.
        let (st, h, body) = t
            .call("PATCH", &loc, &[("content-range", "1500-1999")], data[1500..2000].to_vec())
            .await;
        assert_eq!(st, 416, "{}", String::from_utf8_lossy(&body));
        assert_eq!(h["range"], "0-999");
        // Content-Length disagreeing with Content-Range.
        let (st, _, body) = t
            .call("PATCH", &loc, &[("content-range", "1000-1009")], data[1000..1005].to_vec())
            .await;
        assert_eq!((st, error_code(&body).as_str()), (400, "SIZE_INVALID"));
        let (st, h, _) = t.call("GET", &loc, &[], Vec::new()).await;
        assert_eq!(st, 204);
        assert_eq!(h["range"], "0-999");
        // A streamed chunk without Content-Range, then the last one with the PUT.
        let (st, h, _) = t.call("PATCH", &loc, &[], data[1000..2500].to_vec()).await;
        assert_eq!(st, 202);
        assert_eq!(h["range"], "0-2499");
        let (st, h, _) = t
            .call(
                "PUT",
                &format!("{loc}?digest={d}"),
                &[("content-range", "2500-2999")],
                data[2500..].to_vec(),
            )
            .await;
        assert_eq!(st, 201);
        assert_eq!(h["location"], format!("/v2/x/y/blobs/{d}"));
        assert_eq!(t.get_blob("x/y", &d).await, data);
        assert_eq!(t.reg.inner.uploads.len(), 0);
    }

    #[tokio::test]
    async fn bad_digest_leaves_nothing() {
        let t = TestRegistry::open();
        let wrong = oci::Digest::of(b"something else");
        let (st, _, body) = t
            .call("POST", &format!("/v2/a/blobs/uploads/?digest={wrong}"), &[], b"data".to_vec())
            .await;
        assert_eq!((st, error_code(&body).as_str()), (400, "DIGEST_INVALID"));
        let (_, h, _) = t.call("POST", "/v2/a/blobs/uploads/", &[], Vec::new()).await;
        let loc = h["location"].to_str().unwrap().to_string();
        t.call("PATCH", &loc, &[], b"data".to_vec()).await;
        let (st, _, body) = t.call("PUT", &format!("{loc}?digest={wrong}"), &[], Vec::new()).await;
        assert_eq!((st, error_code(&body).as_str()), (400, "DIGEST_INVALID"));
        let (st, _, _) = t.call("GET", &loc, &[], Vec::new()).await;
        assert_eq!(st, 404);
        assert!(!t.reg.content_store().contains(&oci::Digest::of(b"data")));
        assert_eq!(ingest_files(&t), 0);
        // Malformed and unsupported digests.
        let (st, _, body) = t
            .call("POST", "/v2/a/blobs/uploads/?digest=sha256:xyz", &[], b"data".to_vec())
            .await;
        assert_eq!((st, error_code(&body).as_str()), (400, "DIGEST_INVALID"));
        let (st, _, _) = t
            .call("POST", "/v2/a/blobs/uploads/?digest-algorithm=sha512", &[], Vec::new())
            .await;
        assert_eq!(st, 400);
        // PUT without a digest keeps the session.
        let (_, h, _) = t.call("POST", "/v2/a/blobs/uploads/", &[], Vec::new()).await;
        let loc = h["location"].to_str().unwrap().to_string();
        let (st, _, body) = t.call("PUT", &loc, &[], Vec::new()).await;
        assert_eq!((st, error_code(&body).as_str()), (400, "DIGEST_INVALID"));
        assert_eq!(t.call("GET", &loc, &[], Vec::new()).await.0, 204);
    }

    #[tokio::test]
    async fn interrupted_chunk_is_resumable() {
        let t = TestRegistry::open();
        let data = vec![7u8; 5000];
        let d = oci::Digest::of(&data);
        let (_, h, _) = t.call("POST", "/v2/a/blobs/uploads/", &[], Vec::new()).await;
        let loc = h["location"].to_str().unwrap().to_string();
        // A body that fails after 3000 bytes, as a client disconnecting does.
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from(data[..3000].to_vec())),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "gone")),
        ];
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let (st, _, _) = t.call_body("PATCH", &loc, &[], body).await;
        assert_eq!(st, 400);
        let (st, h, _) = t.call("GET", &loc, &[], Vec::new()).await;
        assert_eq!(st, 204);
        assert_eq!(h["range"], "0-2999");
        let (st, _, _) = t
            .call(
                "PUT",
                &format!("{loc}?digest={d}"),
                &[("content-range", "3000-4999")],
                data[3000..].to_vec(),
            )
            .await;
        assert_eq!(st, 201);
        assert_eq!(t.get_blob("a", &d).await, data);
    }

    #[tokio::test]
    async fn truncated_monolithic_upload_leaves_nothing() {
        let t = TestRegistry::open();
        let data = vec![1u8; 4096];
        let d = oci::Digest::of(&data);
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from(data[..1000].to_vec())),
            Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated")),
        ];
        let (st, _, body) = t
            .call_body(
                "POST",
                &format!("/v2/a/blobs/uploads/?digest={d}"),
                &[],
                Body::from_stream(futures_util::stream::iter(chunks)),
            )
            .await;
        assert_eq!((st, error_code(&body).as_str()), (400, "BLOB_UPLOAD_INVALID"));
        assert!(!t.reg.content_store().contains(&d));
        assert_eq!(ingest_files(&t), 0);
        assert_eq!(t.call("HEAD", &format!("/v2/a/blobs/{d}"), &[], Vec::new()).await.0, 404);
    }

    #[tokio::test]
    async fn cancel_and_foreign_repo() {
        let t = TestRegistry::open();
        let (_, h, _) = t.call("POST", "/v2/a/blobs/uploads/", &[], Vec::new()).await;
        let loc = h["location"].to_str().unwrap().to_string();
        let id = loc.rsplit('/').next().unwrap().to_string();
        t.call("PATCH", &loc, &[], b"partial".to_vec()).await;
        assert_eq!(ingest_files(&t), 1);
        // The session belongs to repository a.
        let (st, _, _) = t.call("GET", &format!("/v2/b/blobs/uploads/{id}"), &[], Vec::new()).await;
        assert_eq!(st, 404);
        let (st, _, _) = t.call("DELETE", &loc, &[], Vec::new()).await;
        assert_eq!(st, 204);
        assert_eq!(ingest_files(&t), 0);
        let (st, _, body) = t.call("DELETE", &loc, &[], Vec::new()).await;
        assert_eq!((st, error_code(&body).as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
        let (st, _, _) = t.call("PATCH", &loc, &[], b"x".to_vec()).await;
        assert_eq!(st, 404);
        // A body on a plain POST is refused.
        let (st, _, _) = t.call("POST", "/v2/a/blobs/uploads/", &[], b"x".to_vec()).await;
        assert_eq!(st, 400);
    }

    #[tokio::test]
    async fn idle_sessions_expire() {
        let t = TestRegistry::open_with(|c| c.upload_idle_timeout = Duration::from_millis(1));
        let (_, h, _) = t.call("POST", "/v2/a/blobs/uploads/", &[], Vec::new()).await;
        let loc = h["location"].to_str().unwrap().to_string();
        t.call("PATCH", &loc, &[], b"partial".to_vec()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        t.call("POST", "/v2/a/blobs/uploads/", &[], Vec::new()).await;
        assert_eq!(t.call("GET", &loc, &[], Vec::new()).await.0, 404);
        assert_eq!(t.reg.inner.uploads.len(), 1);
    }

    #[tokio::test]
    async fn mount() {
        let t = TestRegistry::open();
        let d = t.push_blob("src", b"layer").await;
        let (st, h, _) = t
            .call("POST", &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"), &[], Vec::new())
            .await;
        assert_eq!(st, 201);
        assert_eq!(h["location"], format!("/v2/dst/blobs/{d}"));
        assert!(t.reg.inner.meta.blob_linked(&RepoName::parse("dst").unwrap(), &d));
        // Unknown blob: a new session instead.
        let other = oci::Digest::of(b"other");
        let (st, h, _) = t
            .call("POST", &format!("/v2/dst/blobs/uploads/?mount={other}&from=src"), &[], Vec::new())
            .await;
        assert_eq!(st, 202);
        assert!(h.contains_key("location"));
        let (st, _, body) = t
            .call(
                "POST",
                &format!("/v2/dst/blobs/uploads/?mount={other}&from=..%2Fx"),
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!((st, error_code(&body).as_str()), (400, "NAME_INVALID"));
    }
}
