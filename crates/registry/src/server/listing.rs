//! Content discovery: `GET /v2/<name>/tags/list`, `GET /v2/_catalog` (both paginated with `n` and
//! `last`, and a `Link: <...>; rel="next"` header when more follow) and
//! `GET /v2/<name>/referrers/<digest>` (with the `artifactType` filter).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use oci::spec::MEDIA_OCI_INDEX;
use serde_json::json;

use super::auth::{Actions, Principal};
use super::error::{ApiError, ApiResult, Code};
use super::names::{encode_query_value, parse_digest, Query, RepoName};
use super::Registry;

/// One page of a sorted list, and the `Link` to the next one.
fn paginate(all: Vec<String>, q: &Query, path: &str) -> ApiResult<(Vec<String>, Option<String>)> {
    let n = match q.get("n") {
        None | Some("") => None,
        Some(s) => Some(s.parse::<usize>().map_err(|_| {
            ApiError::new(Code::Unsupported, format!("invalid n {s:?}: expected a number")).status(StatusCode::BAD_REQUEST)
        })?),
    };
    let last = q.get("last").filter(|l| !l.is_empty());
    let rest: Vec<String> = match last {
        Some(l) => all.into_iter().filter(|t| t.as_str() > l).collect(),
        None => all,
    };
    let Some(n) = n else {
        return Ok((rest, None));
    };
    if n == 0 {
        return Ok((Vec::new(), None));
    }
    let more = rest.len() > n;
    let page: Vec<String> = rest.into_iter().take(n).collect();
    let link = match page.last() {
        Some(l) if more => Some(format!("<{path}?n={n}&last={}>; rel=\"next\"", encode_query_value(l))),
        _ => None,
    };
    Ok((page, link))
}

fn json_response(v: serde_json::Value, content_type: &'static str, extra: Vec<(header::HeaderName, String)>) -> Response {
    let mut resp = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], v.to_string()).into_response();
    for (k, v) in extra {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// `GET /v2/<name>/tags/list`.
pub async fn tags(reg: &Registry, name: RepoName, q: &Query) -> ApiResult<Response> {
    let n = name.clone();
    let all = reg
        .blocking(move |inner| {
            if !inner.meta.repo_exists(&n) {
                return Err(ApiError::new(Code::NameUnknown, "repository name not known to registry").detail(json!({ "name": n.as_str() })));
            }
            Ok(inner.meta.tags(&n)?)
        })
        .await?;
    let (page, link) = paginate(all, q, &format!("/v2/{name}/tags/list"))?;
    let extra = link.map(|l| vec![(header::LINK, l)]).unwrap_or_default();
    Ok(json_response(
        json!({ "name": name.as_str(), "tags": page }),
        "application/json",
        extra,
    ))
}

/// `GET /v2/_catalog`: the repositories the caller may pull from.
pub async fn catalog(reg: &Registry, principal: &Principal, q: &Query) -> ApiResult<Response> {
    let mut all = reg.blocking(|inner| Ok(inner.meta.repositories()?)).await?;
    // A token lists what its user may pull, not just the repositories it was scoped to.
    let who = match principal {
        Principal::Token(c) if !c.sub.is_empty() => Principal::User(c.sub.clone()),
        Principal::Token(_) => Principal::Anonymous,
        p => p.clone(),
    };
    all.retain(|r| reg.inner.auth.allowed(&who, r).contains(Actions::PULL));
    let (page, link) = paginate(all, q, "/v2/_catalog")?;
    let extra = link.map(|l| vec![(header::LINK, l)]).unwrap_or_default();
    Ok(json_response(json!({ "repositories": page }), "application/json", extra))
}

/// `GET /v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is
/// `digest` (empty, never 404, when there are none).
pub async fn referrers(reg: &Registry, name: RepoName, digest: &str, q: &Query) -> ApiResult<Response> {
    let subject = parse_digest(digest)?;
    let mut list = reg.blocking(move |inner| Ok(inner.meta.referrers(&name, &subject)?)).await?;
    let mut extra = Vec::new();
    if let Some(at) = q.get("artifactType") {
        list.retain(|d| d.artifact_type.as_deref() == Some(at));
        extra.push((header::HeaderName::from_static("oci-filters-applied"), "artifactType".to_string()));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": list,
    });
    Ok(json_response(index, MEDIA_OCI_INDEX, extra))
}

#[cfg(test)]
mod tests {
    use crate::server::testutil::*;
    use oci::spec::{MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};
    use serde_json::{json, Value};

    fn json(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[tokio::test]
    async fn tags_pagination() {
        let t = TestRegistry::open();
        let (_, body) = t.push_image("app", "b").await;
        for tag in ["a", "c", "B", "d"] {
            t.put_manifest("app", tag, MEDIA_OCI_MANIFEST, &body).await;
        }
        let (st, _, b) = t.call("GET", "/v2/app/tags/list", &[], Vec::new()).await;
        assert_eq!(st, 200);
        assert_eq!(json(&b), json!({"name": "app", "tags": ["B", "a", "b", "c", "d"]}));
        let (_, h, b) = t.call("GET", "/v2/app/tags/list?n=2", &[], Vec::new()).await;
        assert_eq!(json(&b)["tags"], json!(["B", "a"]));
        assert_eq!(h["link"], "</v2/app/tags/list?n=2&last=a>; rel=\"next\"");
        let (_, h, b) = t.call("GET", "/v2/app/tags/list?n=2&last=a", &[], Vec::new()).await;
        assert_eq!(json(&b)["tags"], json!(["b", "c"]));
        assert!(h.contains_key("link"));
        let (_, h, b) = t.call("GET", "/v2/app/tags/list?n=2&last=c", &[], Vec::new()).await;
        assert_eq!(json(&b)["tags"], json!(["d"]));
        assert!(!h.contains_key("link"));
        let (_, h, b) = t.call("GET", "/v2/app/tags/list?last=b", &[], Vec::new()).await;
        assert_eq!(json(&b)["tags"], json!(["c", "d"]));
        assert!(!h.contains_key("link"));
        let (_, h, b) = t.call("GET", "/v2/app/tags/list?n=0", &[], Vec::new()).await;
        assert_eq!(json(&b)["tags"], json!([]));
        assert!(!h.contains_key("link"));
        let (st, _, _) = t.call("GET", "/v2/app/tags/list?n=x", &[], Vec::new()).await;
        assert_eq!(st, 400);
        let (st, _, b) = t.call("GET", "/v2/nope/tags/list", &[], Vec::new()).await;
        assert_eq!((st, error_code(&b).as_str()), (404, "NAME_UNKNOWN"));
    }

    #[tokio::test]
    async fn catalog() {
        let t = TestRegistry::open();
        for r in ["b", "a/x", "a", "c/d/e"] {
            t.push_image(r, "v1").await;
        }
        let (st, _, b) = t.call("GET", "/v2/_catalog", &[], Vec::new()).await;
        assert_eq!(st, 200);
        assert_eq!(json(&b), json!({"repositories": ["a", "a/x", "b", "c/d/e"]}));
        let (_, h, b) = t.call("GET", "/v2/_catalog?n=3", &[], Vec::new()).await;
        assert_eq!(json(&b)["repositories"], json!(["a", "a/x", "b"]));
        assert_eq!(h["link"], "</v2/_catalog?n=3&last=b>; rel=\"next\"");
        let (_, _, b) = t.call("GET", "/v2/_catalog?n=3&last=b", &[], Vec::new()).await;
        assert_eq!(json(&b)["repositories"], json!(["c/d/e"]));
    }

    #[tokio::test]
    async fn referrers() {
        let t = TestRegistry::open();
        let (subject, subject_body) = t.push_image("app", "v1").await;
        let empty = t.push_blob("app", b"{}").await;
        let sbom_layer = t.push_blob("app", b"sbom").await;
        let artifact = |artifact_type: Option<&str>, note: &str| {
            let mut m = json!({
                "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                "layers": [{"mediaType": "application/spdx+json", "digest": sbom_layer, "size": 4}],
                "subject": {"mediaType": MEDIA_OCI_MANIFEST, "digest": subject, "size": subject_body.len()},
                "annotations": {"note": note}
            });
            if let Some(a) = artifact_type {
                m["artifactType"] = a.into();
            }
            m.to_string()
        };
        // Nothing yet: an empty index, not 404.
        let (st, h, b) = t.call("GET", &format!("/v2/app/referrers/{subject}"), &[], Vec::new()).await;
        assert_eq!(st, 200);
        assert_eq!(h["content-type"], MEDIA_OCI_INDEX);
        assert_eq!(json(&b)["manifests"], json!([]));
        let sbom = artifact(Some("application/spdx+json"), "sbom");
        let sbom_digest = oci::Digest::of(sbom.as_bytes());
        let (st, h, _) = t
            .put_manifest("app", &sbom_digest.to_string(), MEDIA_OCI_MANIFEST, sbom.as_bytes())
            .await;
        assert_eq!(st, 201);
        assert_eq!(h["oci-subject"], subject.to_string());
        // Without artifactType, the config media type stands in.
        let sig = artifact(None, "sig");
        let sig_digest = oci::Digest::of(sig.as_bytes());
        t.put_manifest("app", &sig_digest.to_string(), MEDIA_OCI_MANIFEST, sig.as_bytes())
            .await;
        let (_, h, b) = t.call("GET", &format!("/v2/app/referrers/{subject}"), &[], Vec::new()).await;
        assert!(!h.contains_key("oci-filters-applied"));
        let list = json(&b)["manifests"].as_array().unwrap().clone();
        assert_eq!(list.len(), 2);
        let sbom_entry = list.iter().find(|m| m["digest"] == sbom_digest.to_string()).unwrap();
        assert_eq!(sbom_entry["artifactType"], "application/spdx+json");
        assert_eq!(sbom_entry["annotations"]["note"], "sbom");
        assert_eq!(sbom_entry["size"], sbom.len());
        let sig_entry = list.iter().find(|m| m["digest"] == sig_digest.to_string()).unwrap();
        assert_eq!(sig_entry["artifactType"], "application/vnd.oci.empty.v1+json");
        // Filtered.
        let (_, h, b) = t
            .call(
                "GET",
                &format!("/v2/app/referrers/{subject}?artifactType=application%2Fspdx%2Bjson"),
                &[],
                Vec::new(),
            )
            .await;
        assert_eq!(h["oci-filters-applied"], "artifactType");
        let list = json(&b)["manifests"].as_array().unwrap().clone();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["digest"], sbom_digest.to_string());
        // Deleting the referrer removes it from the list.
        t.call("DELETE", &format!("/v2/app/manifests/{sbom_digest}"), &[], Vec::new()).await;
        let (_, _, b) = t.call("GET", &format!("/v2/app/referrers/{subject}"), &[], Vec::new()).await;
        assert_eq!(json(&b)["manifests"].as_array().unwrap().len(), 1);
        let (st, _, _) = t.call("GET", "/v2/app/referrers/sha256:nothex", &[], Vec::new()).await;
        assert_eq!(st, 400);
    }
}
