//! `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`.
//!
//! A blob is present in a repository when it is linked there, or when the content store has it and
//! it was not deleted from that repository: the store is shared with the engine, so what the engine
//! already holds never needs uploading again. Reading it through an existing repository links it
//! there. `DELETE` unlinks it from the repository and marks it deleted there (404 from then on);
//! the data stays in the content store, which the engine may be using.

use std::io::SeekFrom;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::{ApiError, ApiResult, Code};
use super::names::{parse_digest, RepoName};
use super::{digest_header, empty, Registry};

/// Buffer size for streaming blobs out.
const READ_CHUNK: usize = 256 * 1024;

fn blob_unknown(d: &impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::BlobUnknown, "blob unknown to registry").detail(serde_json::json!({ "digest": d.to_string() }))
}

/// A byte range to serve: `bytes=a-b`, `bytes=a-` or `bytes=-n`.
#[derive(Debug, PartialEq)]
enum RangeReq {
    /// No usable `Range` header: the whole blob.
    Full,
    /// Inclusive bounds within the blob.
    Part(u64, u64),
    /// Cannot be satisfied (416).
    Unsatisfiable,
}

/// Interpret a `Range` header against a blob of `size` bytes. Malformed and multi-range headers
/// are ignored (the whole blob is sent), as RFC 9110 allows; a range starting past the end, or
/// ending before its start, cannot be satisfied.
fn parse_range(h: Option<&HeaderValue>, size: u64) -> RangeReq {
    let Some(spec) = h.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            Some(0) => RangeReq::Unsatisfiable,
            Some(_) if size == 0 => RangeReq::Unsatisfiable,
            Some(n) => RangeReq::Part(size.saturating_sub(n), size - 1),
            None => RangeReq::Full,
        },
        (start, end) => {
            let Some(start) = num(start) else { return RangeReq::Full };
            let end = if end.is_empty() {
                None
            } else {
                match num(end) {
                    Some(e) => Some(e),
                    None => return RangeReq::Full,
                }
            };
            // RFC 9110 would ignore a reversed range; the OCI conformance suite wants 416.
            if end.is_some_and(|e| e < start) {
                return RangeReq::Unsatisfiable;
            }
            if start >= size {
                return RangeReq::Unsatisfiable;
            }
            RangeReq::Part(start, end.map_or(size - 1, |e| e.min(size - 1)))
        }
    }
}

/// `GET`/`HEAD` a blob, honouring `Range`.
pub async fn get(reg: &Registry, name: RepoName, digest: &str, headers: &HeaderMap, head: bool) -> ApiResult<Response> {
    let d = parse_digest(digest)?;
    let path = {
        let d = d.clone();
        reg.blocking(move |inner| {
            let Some(path) = inner.blob_in_repo(&name, &d) else {
                return Err(blob_unknown(&d));
            };
            if !inner.meta.blob_linked(&name, &d) && inner.meta.repo_exists(&name) {
                if let Err(e) = inner.meta.link_blob(&name, &d) {
                    tracing::warn!(repo = %name, blob = %d, error = %e, "cannot link blob");
                }
            }
            Ok(path)
        })
        .await?
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(blob_unknown(&d)),
        Err(e) => return Err(ApiError::internal(format!("open {}: {e}", path.display()))),
    };
    let size = file.metadata().await.map_err(ApiError::internal)?.len();
    let mut hdrs = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (digest_header(), d.to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::ETAG, format!("\"{d}\"")),
        (header::CACHE_CONTROL, "max-age=31536000".to_string()),
    ];
    let (status, start, len) = match parse_range(headers.get(header::RANGE), size) {
        RangeReq::Full => (StatusCode::OK, 0, size),
        RangeReq::Part(a, b) => {
            hdrs.push((header::CONTENT_RANGE, format!("bytes {a}-{b}/{size}")));
            (StatusCode::PARTIAL_CONTENT, a, b - a + 1)
        }
        RangeReq::Unsatisfiable => {
            return Err(ApiError::new(Code::BlobUnknown, "requested range not satisfiable")
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}")));
        }
    };
    hdrs.push((header::CONTENT_LENGTH, len.to_string()));
    if head {
        return Ok(empty(status, hdrs));
    }
    if start > 0 {
        file.seek(SeekFrom::Start(start)).await.map_err(ApiError::internal)?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), READ_CHUNK);
    let mut resp = empty(status, hdrs);
    *resp.body_mut() = Body::from_stream(stream);
    Ok(resp)
}

/// `DELETE` a blob: unlink it from the repository.
pub async fn delete(reg: &Registry, name: RepoName, digest: &str) -> ApiResult<Response> {
    let d = parse_digest(digest)?;
    let found = {
        let d = d.clone();
        reg.blocking(move |inner| {
            if inner.blob_in_repo(&name, &d).is_none() && !inner.meta.blob_linked(&name, &d) {
                return Ok(false);
            }
            inner.meta.delete_blob(&name, &d)?;
            Ok(true)
        })
        .await?
    };
    if !found {
        return Err(blob_unknown(&d));
    }
    Ok(empty(StatusCode::ACCEPTED, vec![(digest_header(), d.to_string())]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::testutil::*;

    #[test]
    fn ranges() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert_eq!(parse_range(None, 10), RangeReq::Full);
        assert_eq!(parse_range(Some(&h("bytes=0-3")), 10), RangeReq::Part(0, 3));
        assert_eq!(parse_range(Some(&h("bytes=5-")), 10), RangeReq::Part(5, 9));
        assert_eq!(parse_range(Some(&h("bytes=5-100")), 10), RangeReq::Part(5, 9));
        assert_eq!(parse_range(Some(&h("bytes=-3")), 10), RangeReq::Part(7, 9));
        assert_eq!(parse_range(Some(&h("bytes=-30")), 10), RangeReq::Part(0, 9));
        assert_eq!(parse_range(Some(&h("bytes=10-")), 10), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(Some(&h("bytes=-0")), 10), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(Some(&h("bytes=3-1")), 10), RangeReq::Unsatisfiable);
        assert_eq!(parse_range(Some(&h("bytes=0-1,3-4")), 10), RangeReq::Full);
        assert_eq!(parse_range(Some(&h("items=0-1")), 10), RangeReq::Full);
        assert_eq!(parse_range(Some(&h("bytes=x-1")), 10), RangeReq::Full);
    }

    #[tokio::test]
    async fn get_head_range_delete() {
        let t = TestRegistry::open();
        let data = b"0123456789".to_vec();
        let d = t.push_blob("repo", &data).await;
        let (st, h, body) = t.call("GET", &format!("/v2/repo/blobs/{d}"), &[], Vec::new()).await;
        assert_eq!(st, 200);
        assert_eq!(body, data);
        assert_eq!(h["docker-content-digest"], d.to_string());
        let (st, h, body) = t.call("HEAD", &format!("/v2/repo/blobs/{d}"), &[], Vec::new()).await;
        assert_eq!((st, body.len()), (200, 0));
        assert_eq!(h["content-length"], "10");
        let (st, h, body) = t
            .call("GET", &format!("/v2/repo/blobs/{d}"), &[("range", "bytes=2-4")], Vec::new())
            .await;
        assert_eq!(st, 206);
        assert_eq!(body, b"234");
        assert_eq!(h["content-range"], "bytes 2-4/10");
        let (st, h, _) = t
            .call("GET", &format!("/v2/repo/blobs/{d}"), &[("range", "bytes=20-")], Vec::new())
            .await;
        assert_eq!(st, 416);
        assert_eq!(h["content-range"], "bytes */10");
        // Unknown and malformed digests.
        let other = oci::Digest::of(b"nope");
        let (st, _, body) = t.call("GET", &format!("/v2/repo/blobs/{other}"), &[], Vec::new()).await;
        assert_eq!(st, 404);
        assert_eq!(error_code(&body), "BLOB_UNKNOWN");
        let (st, _, body) = t.call("GET", "/v2/repo/blobs/sha256:1234", &[], Vec::new()).await;
        assert_eq!((st, error_code(&body).as_str()), (400, "DIGEST_INVALID"));
        // Present in the store: visible from any repository.
        let (st, _, _) = t.call("HEAD", &format!("/v2/elsewhere/blobs/{d}"), &[], Vec::new()).await;
        assert_eq!(st, 200);
        // DELETE: gone from the repository at once, still in the (shared) content store, and still
        // visible elsewhere.
        let (st, _, _) = t.call("DELETE", &format!("/v2/repo/blobs/{d}"), &[], Vec::new()).await;
        assert_eq!(st, 202);
        let (st, _, body) = t.call("HEAD", &format!("/v2/repo/blobs/{d}"), &[], Vec::new()).await;
        assert_eq!((st, body.len()), (404, 0));
        let (st, _, body) = t.call("DELETE", &format!("/v2/repo/blobs/{d}"), &[], Vec::new()).await;
        assert_eq!((st, error_code(&body).as_str()), (404, "BLOB_UNKNOWN"));
        assert!(t.reg.content_store().contains(&d));
        assert_eq!(t.call("HEAD", &format!("/v2/elsewhere/blobs/{d}"), &[], Vec::new()).await.0, 200);
        // A manifest cannot use it there until it is uploaded (or mounted) again.
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": oci::spec::MEDIA_OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 10},
            "layers": []
        })
        .to_string();
        let (st, _, body) = t.put_manifest("repo", "t", oci::spec::MEDIA_OCI_MANIFEST, m.as_bytes()).await;
        assert_eq!((st, error_code(&body).as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
        t.push_blob("repo", &data).await;
        assert_eq!(t.get_blob("repo", &d).await, data);
        let (st, _, _) = t.put_manifest("repo", "t", oci::spec::MEDIA_OCI_MANIFEST, m.as_bytes()).await;
        assert_eq!(st, 201);
        // Methods the route does not have.
        let (st, h, body) = t.call("POST", &format!("/v2/repo/blobs/{d}"), &[], Vec::new()).await;
        assert_eq!((st, error_code(&body).as_str()), (405, "UNSUPPORTED"));
        assert_eq!(h["allow"], "GET, HEAD, DELETE");
    }
}
