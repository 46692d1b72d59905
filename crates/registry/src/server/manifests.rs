//! `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>`.
//!
//! Accepted types: OCI image manifest and index, Docker schema 2 manifest and manifest list. A
//! `PUT` is refused unless the body is JSON of a supported type whose `mediaType` (if any) agrees
//! with `Content-Type`, and every blob it references (config and layers; for an index, its child
//! manifests in this repository) exists with the declared size. Manifests are stored byte for byte
//! in the content store; the repository records a revision (media type, size, subject) and the tag.
//! A manifest with a `subject` is listed by the referrers API and answered with `OCI-Subject`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use http_body_util::{BodyExt, Limited};
use oci::spec::{Descriptor, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};
use oci::Digest;
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiResult, Code, ErrorEntry};
use super::names::{valid_tag, Query, Reference, RepoName};
use super::storage::{ReferrerDescriptor, RevisionRecord};
use super::{digest_header, empty, Inner, Registry};

/// The fields of a manifest or index this server looks at.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    schema_version: Option<u32>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Image,
    Index,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => Some(Kind::Image),
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => Some(Kind::Index),
        _ => None,
    }
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(Code::ManifestInvalid, msg)
}

fn manifest_unknown(r: &impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::ManifestUnknown, "manifest unknown to registry").detail(json!({ "reference": r.to_string() }))
}

fn name_unknown(name: &RepoName) -> ApiError {
    ApiError::new(Code::NameUnknown, "repository name not known to registry").detail(json!({ "name": name.as_str() }))
}

/// The media type of a pushed manifest: `Content-Type` and the body's `mediaType` must agree; with
/// neither (or a generic `Content-Type`), the shape decides between OCI manifest and index.
fn media_type(headers: &HeaderMap, doc: &Doc) -> ApiResult<(String, Kind)> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty() && v != "application/json" && v != "application/octet-stream");
    let mt = match (ct, &doc.media_type) {
        (Some(ct), Some(body)) if &ct != body => {
            return Err(invalid(format!("mediaType {body:?} does not match Content-Type {ct:?}")));
        }
        (_, Some(body)) => body.clone(),
        (Some(ct), None) => ct,
        (None, None) if doc.manifests.is_some() => MEDIA_OCI_INDEX.to_string(),
        (None, None) if doc.config.is_some() => MEDIA_OCI_MANIFEST.to_string(),
        (None, None) => return Err(invalid("cannot tell the manifest's media type: set Content-Type")),
    };
    let kind = kind_of(&mt).ok_or_else(|| invalid(format!("unsupported manifest media type {mt:?}")).detail(json!({ "mediaType": mt })))?;
    Ok((mt, kind))
}

/// Structural checks of a manifest of `kind`.
fn check_shape(doc: &Doc, kind: Kind) -> ApiResult<()> {
    if doc.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    match kind {
        Kind::Image => {
            if doc.config.is_none() || doc.layers.is_none() {
                return Err(invalid("an image manifest needs config and layers"));
            }
            if doc.manifests.is_some() {
                return Err(invalid("an image manifest has no manifests field"));
            }
        }
        Kind::Index => {
            if doc.manifests.is_none() {
                return Err(invalid("an index needs manifests"));
            }
            if doc.config.is_some() || doc.layers.is_some() {
                return Err(invalid("an index has no config or layers"));
            }
        }
    }
    Ok(())
}

/// Whether a descriptor points outside the registry (a foreign layer with `urls`).
fn is_external(d: &Descriptor) -> bool {
    d.extra.get("urls").and_then(|u| u.as_array()).is_some_and(|u| !u.is_empty())
}

/// Check that everything the manifest references exists (linking blobs into the repository).
fn check_references(inner: &Inner, name: &RepoName, doc: &Doc, kind: Kind) -> ApiResult<()> {
    let mut missing = Vec::new();
    let unknown = |d: &Descriptor| ErrorEntry {
        code: Code::ManifestBlobUnknown,
        message: "manifest references a manifest or blob unknown to registry".into(),
        detail: Some(json!({ "digest": d.digest.to_string() })),
    };
    match kind {
        Kind::Image => {
            let blobs = doc.config.iter().chain(doc.layers.iter().flatten()).filter(|d| !is_external(d));
            for d in blobs {
                let size = inner
                    .blob_in_repo(name, &d.digest)
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len());
                match size {
                    None => missing.push(unknown(d)),
                    Some(size) if size != d.size => {
                        return Err(invalid(format!("blob {} has {size} bytes, the manifest says {}", d.digest, d.size)));
                    }
                    Some(_) => {
                        if !inner.meta.blob_linked(name, &d.digest) {
                            inner.blobs.pin(&d.digest);
                            inner.meta.link_blob(name, &d.digest)?;
                        }
                    }
                }
            }
        }
        Kind::Index => {
            for d in doc.manifests.iter().flatten() {
                let present = inner.meta.revision(name, &d.digest)?.is_some() && inner.blobs.locate(&d.digest).is_some();
                if !present {
                    missing.push(unknown(d));
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::many(StatusCode::BAD_REQUEST, missing))
    }
}

/// Read a body of at most `max` bytes (413 beyond).
async fn read_limited(body: Body, headers: &HeaderMap, max: usize) -> ApiResult<Vec<u8>> {
    let too_big = || invalid(format!("manifest larger than {max} bytes")).status(StatusCode::PAYLOAD_TOO_LARGE);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes().to_vec()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_big()),
        Err(e) => Err(invalid(format!("reading the manifest: {e}"))),
    }
}

/// `PUT`: validate and store a manifest, tagging it if the reference is a tag (and with every
/// `?tag=` given).
pub async fn put(reg: &Registry, name: RepoName, reference: &str, q: &Query, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let reference = Reference::parse(reference)?;
    let mut tags: Vec<String> = Vec::new();
    if let Reference::Tag(t) = &reference {
        tags.push(t.clone());
    }
    for t in q.all("tag") {
        if !valid_tag(t) {
            return Err(invalid("invalid tag").detail(json!({ "tag": t })));
        }
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    let data = read_limited(body, headers, reg.inner.max_manifest_size).await?;
    let digest = Digest::of(&data);
    if let Reference::Digest(d) = &reference {
        if *d != digest {
            return Err(ApiError::new(Code::DigestInvalid, "provided digest did not match uploaded content")
                .detail(json!({ "expected": d.to_string(), "actual": digest.to_string() })));
        }
    }
    let doc: Doc = serde_json::from_slice(&data).map_err(|e| invalid(format!("invalid manifest JSON: {e}")))?;
    let (mt, kind) = media_type(headers, &doc)?;
    check_shape(&doc, kind)?;
    let subject = doc.subject.as_ref().map(|s| s.digest.clone());
    let referrer = subject.as_ref().map(|_| ReferrerDescriptor {
        media_type: mt.clone(),
        digest: digest.clone(),
        size: data.len() as u64,
        artifact_type: doc.artifact_type.clone().filter(|a| !a.is_empty()).or_else(|| {
            if kind == Kind::Image {
                doc.config.as_ref().map(|c| c.media_type.clone())
            } else {
                None
            }
        }),
        annotations: doc.annotations.clone(),
    });
    let record = RevisionRecord {
        media_type: mt,
        size: data.len() as u64,
        subject: subject.clone(),
    };
    {
        let (name, digest, tags) = (name.clone(), digest.clone(), tags.clone());
        reg.blocking(move |inner| {
            check_references(inner, &name, &doc, kind)?;
            inner.blobs.put(&data, &digest)?;
            let lock = inner.repo_lock(&name);
            let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
            inner.meta.put_revision(&name, &digest, &record)?;
            if let (Some(s), Some(r)) = (&record.subject, &referrer) {
                inner.meta.add_referrer(&name, s, r)?;
            }
            for t in &tags {
                inner.meta.set_tag(&name, t, &digest)?;
            }
            Ok(())
        })
        .await?;
    }
    tracing::debug!(repo = %name, manifest = %digest, tags = ?tags, "manifest stored");
    let mut h = vec![
        (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
        (digest_header(), digest.to_string()),
    ];
    if let Some(s) = subject {
        h.push((header::HeaderName::from_static("oci-subject"), s.to_string()));
    }
    if !q.all("tag").collect::<Vec<_>>().is_empty() {
        h.push((header::HeaderName::from_static("oci-tag"), tags.join(", ")));
    }
    Ok(empty(StatusCode::CREATED, h))
}

/// `GET`/`HEAD`: the manifest as pushed, with its media type.
pub async fn get(reg: &Registry, name: RepoName, reference: &str, head: bool) -> ApiResult<Response> {
    let reference = Reference::parse(reference)?;
    let (digest, rec, data) = reg
        .blocking(move |inner| {
            let digest = match &reference {
                Reference::Digest(d) => d.clone(),
                Reference::Tag(t) => match inner.meta.tag(&name, t)? {
                    Some(d) => d,
                    None if !inner.meta.repo_exists(&name) => return Err(name_unknown(&name)),
                    None => return Err(manifest_unknown(&reference)),
                },
            };
            let Some(rec) = inner.meta.revision(&name, &digest)? else {
                if !inner.meta.repo_exists(&name) {
                    return Err(name_unknown(&name));
                }
                return Err(manifest_unknown(&reference));
            };
            let data = if head {
                inner.blobs.locate(&digest).map(|_| Vec::new())
            } else {
                inner.blobs.read(&digest)?
            };
            let Some(data) = data else {
                tracing::warn!(repo = %name, manifest = %digest, "manifest revision without content");
                return Err(manifest_unknown(&reference));
            };
            Ok((digest, rec, data))
        })
        .await?;
    let h = vec![
        (header::CONTENT_TYPE, rec.media_type.clone()),
        (header::CONTENT_LENGTH, rec.size.to_string()),
        (digest_header(), digest.to_string()),
        (header::ETAG, format!("\"{digest}\"")),
    ];
    let mut resp = empty(StatusCode::OK, h);
    if !head {
        *resp.body_mut() = Body::from(data);
    }
    Ok(resp)
}

/// `DELETE`: by tag, remove the tag; by digest, remove the revision and every tag pointing at it.
pub async fn delete(reg: &Registry, name: RepoName, reference: &str) -> ApiResult<Response> {
    let reference = Reference::parse(reference)?;
    reg.blocking(move |inner| {
        let lock = inner.repo_lock(&name);
        let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
        let found = match &reference {
            Reference::Tag(t) => inner.meta.delete_tag(&name, t)?,
            Reference::Digest(d) => inner.meta.delete_revision(&name, d)?,
        };
        if found {
            tracing::debug!(repo = %name, reference = %reference, "manifest deleted");
            Ok(empty(StatusCode::ACCEPTED, vec![]))
        } else if !inner.meta.repo_exists(&name) {
            Err(name_unknown(&name))
        } else {
            Err(manifest_unknown(&reference))
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use crate::server::testutil::*;
    use oci::spec::{MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};
    use serde_json::json;

    #[tokio::test]
    async fn push_pull_by_tag_and_digest() {
        let t = TestRegistry::open();
        let (d, body) = t.push_image("lib/app", "v1").await;
        for r in ["v1".to_string(), d.to_string()] {
            let (st, h, got) = t.call("GET", &format!("/v2/lib/app/manifests/{r}"), &[], Vec::new()).await;
            assert_eq!(st, 200);
            assert_eq!(got, body);
            assert_eq!(h["content-type"], MEDIA_OCI_MANIFEST);
            assert_eq!(h["docker-content-digest"], d.to_string());
            let (st, h, got) = t.call("HEAD", &format!("/v2/lib/app/manifests/{r}"), &[], Vec::new()).await;
            assert_eq!((st, got.len()), (200, 0));
            assert_eq!(h["content-length"], body.len().to_string());
        }
        let (st, _, b) = t.call("GET", "/v2/lib/app/manifests/v2", &[], Vec::new()).await;
        assert_eq!((st, error_code(&b).as_str()), (404, "MANIFEST_UNKNOWN"));
        let (st, _, b) = t.call("GET", "/v2/lib/none/manifests/v1", &[], Vec::new()).await;
        assert_eq!((st, error_code(&b).as_str()), (404, "NAME_UNKNOWN"));
        let (st, _, b) = t.call("GET", "/v2/lib/app/manifests/-bad", &[], Vec::new()).await;
        assert_eq!((st, error_code(&b).as_str()), (400, "MANIFEST_INVALID"));
        // PUT by digest with the wrong digest.
        let other = oci::Digest::of(b"x");
        let (st, _, b) = t.put_manifest("lib/app", &other.to_string(), MEDIA_OCI_MANIFEST, &body).await;
        assert_eq!((st, error_code(&b).as_str()), (400, "DIGEST_INVALID"));
        // PUT by digest with extra tags.
        let (st, h, _) = t
            .call(
                "PUT",
                &format!("/v2/lib/app/manifests/{d}?tag=a&tag=b"),
                &[("content-type", MEDIA_OCI_MANIFEST)],
                body.clone(),
            )
            .await;
        assert_eq!(st, 201);
        assert_eq!(h["oci-tag"], "a, b");
        assert_eq!(t.call("GET", "/v2/lib/app/manifests/b", &[], Vec::new()).await.0, 200);
    }

    #[tokio::test]
    async fn refuses_missing_blobs_and_bad_documents() {
        let t = TestRegistry::open();
        let config = t.push_blob("r", b"{}").await;
        let missing = oci::Digest::of(b"missing layer");
        let m = json!({
            "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 13}]
        })
        .to_string();
        let (st, _, b) = t.put_manifest("r", "t", MEDIA_OCI_MANIFEST, m.as_bytes()).await;
        assert_eq!((st, error_code(&b).as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["errors"][0]["detail"]["digest"], missing.to_string());
        // Nothing was stored.
        assert_eq!(t.call("GET", "/v2/r/manifests/t", &[], Vec::new()).await.0, 404);
        // Wrong declared size.
        let m = json!({
            "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 3},
            "layers": []
        })
        .to_string();
        let (st, _, b) = t.put_manifest("r", "t", MEDIA_OCI_MANIFEST, m.as_bytes()).await;
        assert_eq!((st, error_code(&b).as_str()), (400, "MANIFEST_INVALID"));
        // Unknown media type, mismatching Content-Type, not JSON, wrong schema.
        let ok = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": []
        });
        for (ct, body) in [
            ("application/vnd.docker.distribution.manifest.v1+prettyjws", ok.to_string()),
            (MEDIA_DOCKER_MANIFEST, {
                let mut m = ok.clone();
                m["mediaType"] = MEDIA_OCI_MANIFEST.into();
                m.to_string()
            }),
            (MEDIA_OCI_MANIFEST, "{not json".to_string()),
            (MEDIA_OCI_MANIFEST, {
                let mut m = ok.clone();
                m["schemaVersion"] = 1.into();
                m.to_string()
            }),
            (MEDIA_OCI_INDEX, ok.to_string()),
        ] {
            let (st, _, b) = t.put_manifest("r", "t", ct, body.as_bytes()).await;
            assert_eq!((st, error_code(&b).as_str()), (400, "MANIFEST_INVALID"), "{ct} {body}");
        }
        // Without Content-Type or mediaType, the shape says OCI manifest.
        let (st, _, _) = t.call("PUT", "/v2/r/manifests/t", &[], ok.to_string().into_bytes()).await;
        assert_eq!(st, 201);
        let (_, h, _) = t.call("GET", "/v2/r/manifests/t", &[], Vec::new()).await;
        assert_eq!(h["content-type"], MEDIA_OCI_MANIFEST);
        // Too big: 413.
        let big = vec![b' '; (4 << 20) + 1];
        let (st, _, _) = t.put_manifest("r", "big", MEDIA_OCI_MANIFEST, &big).await;
        assert_eq!(st, 413);
    }

    #[tokio::test]
    async fn index_needs_its_manifests() {
        let t = TestRegistry::open();
        let (child, body) = t.push_image("multi", "amd64").await;
        let ghost = oci::Digest::of(b"ghost");
        let index = |children: Vec<(oci::Digest, usize)>| {
            json!({
                "schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
                "manifests": children.iter().map(|(d, n)| json!({
                    "mediaType": MEDIA_OCI_MANIFEST, "digest": d, "size": n,
                    "platform": {"architecture": "amd64", "os": "linux"}
                })).collect::<Vec<_>>()
            })
            .to_string()
        };
        let bad = index(vec![(child.clone(), body.len()), (ghost, 10)]);
        let (st, _, b) = t.put_manifest("multi", "latest", MEDIA_OCI_INDEX, bad.as_bytes()).await;
        assert_eq!((st, error_code(&b).as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
        // The child exists in another repository only: still unknown here.
        let good = index(vec![(child.clone(), body.len())]);
        let (st, _, _) = t.put_manifest("elsewhere", "latest", MEDIA_OCI_INDEX, good.as_bytes()).await;
        assert_eq!(st, 400);
        let (st, _, _) = t.put_manifest("multi", "latest", MEDIA_OCI_INDEX, good.as_bytes()).await;
        assert_eq!(st, 201);
        let (_, h, got) = t.call("GET", "/v2/multi/manifests/latest", &[], Vec::new()).await;
        assert_eq!(h["content-type"], MEDIA_OCI_INDEX);
        assert_eq!(got, good.as_bytes());
        // Docker schema 2 list is accepted too.
        let list = good.replace(MEDIA_OCI_INDEX, oci::spec::MEDIA_DOCKER_LIST);
        let (st, _, _) = t.put_manifest("multi", "list", oci::spec::MEDIA_DOCKER_LIST, list.as_bytes()).await;
        assert_eq!(st, 201);
    }

    #[tokio::test]
    async fn delete_by_tag_and_digest() {
        let t = TestRegistry::open();
        let (d, body) = t.push_image("app", "v1").await;
        t.put_manifest("app", "v2", MEDIA_OCI_MANIFEST, &body).await;
        t.put_manifest("app", "keep", MEDIA_OCI_MANIFEST, &body).await;
        assert_eq!(t.call("DELETE", "/v2/app/manifests/v2", &[], Vec::new()).await.0, 202);
        assert_eq!(t.call("GET", "/v2/app/manifests/v2", &[], Vec::new()).await.0, 404);
        assert_eq!(t.call("GET", "/v2/app/manifests/v1", &[], Vec::new()).await.0, 200);
        assert_eq!(t.call("DELETE", "/v2/app/manifests/v2", &[], Vec::new()).await.0, 404);
        assert_eq!(t.call("DELETE", &format!("/v2/app/manifests/{d}"), &[], Vec::new()).await.0, 202);
        for r in ["v1".to_string(), "keep".to_string(), d.to_string()] {
            assert_eq!(
                t.call("GET", &format!("/v2/app/manifests/{r}"), &[], Vec::new()).await.0,
                404,
                "{r}"
            );
        }
        let (_, _, b) = t.call("GET", "/v2/app/tags/list", &[], Vec::new()).await;
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&b).unwrap()["tags"], json!([]));
        let (st, _, b) = t.call("DELETE", "/v2/nope/manifests/v1", &[], Vec::new()).await;
        assert_eq!((st, error_code(&b).as_str()), (404, "NAME_UNKNOWN"));
    }
}
