//! Helpers for the server's unit tests: a registry on a temporary directory, called through its
//! `Router` with `oneshot`.

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::Router;
use http_body_util::BodyExt;
use oci::spec::{MEDIA_OCI_CONFIG, MEDIA_OCI_LAYER, MEDIA_OCI_MANIFEST};
use oci::Digest;
use tower::ServiceExt;

use super::{router, AuthConfig, Registry, RegistryConfig};

pub struct TestRegistry {
    pub dir: tempfile::TempDir,
    pub reg: Registry,
    pub app: Router,
}

impl TestRegistry {
    /// Anonymous pull and push.
    pub fn open() -> TestRegistry {
        Self::open_with(|_| {})
    }

    pub fn open_with(f: impl FnOnce(&mut RegistryConfig)) -> TestRegistry {
        let dir = tempfile::tempdir().unwrap();
        let store = oci::ContentStore::open(dir.path().join("blobs")).unwrap();
        let mut cfg = RegistryConfig::new(dir.path().join("registry"), AuthConfig::open());
        f(&mut cfg);
        let reg = Registry::open(store, cfg).unwrap();
        let app = router(reg.clone());
        TestRegistry { dir, reg, app }
    }

    pub async fn call_body(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: Body) -> (u16, HeaderMap, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");
        let body = resp.into_body().collect().await.map(|c| c.to_bytes().to_vec()).unwrap_or_default();
        (status, headers, body)
    }

    /// One request; status, headers, body.
    pub async fn call(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, HeaderMap, Vec<u8>) {
        let mut hs: Vec<(&str, &str)> = headers.to_vec();
        let len = body.len().to_string();
        if !body.is_empty() && !hs.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length")) {
            hs.push(("content-length", &len));
        }
        self.call_body(method, uri, &hs, Body::from(body)).await
    }

    /// Upload a blob monolithically.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = Digest::of(data);
        let (st, _, b) = self
            .call("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"), &[], data.to_vec())
            .await;
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&b));
        d
    }

    pub async fn get_blob(&self, repo: &str, d: &Digest) -> Vec<u8> {
        let (st, _, b) = self.call("GET", &format!("/v2/{repo}/blobs/{d}"), &[], Vec::new()).await;
        assert_eq!(st, 200);
        b
    }

    pub async fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> (u16, HeaderMap, Vec<u8>) {
        self.call(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", media_type)],
            body.to_vec(),
        )
        .await
    }

    /// Push a one-layer image; its manifest digest and bytes.
    pub async fn push_image(&self, repo: &str, tag: &str) -> (Digest, Vec<u8>) {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = format!("layer of {repo}").into_bytes();
        let cd = self.push_blob(repo, config).await;
        let ld = self.push_blob(repo, &layer).await;
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": cd, "size": config.len()},
            "layers": [{"mediaType": MEDIA_OCI_LAYER, "digest": ld, "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        let (st, h, b) = self.put_manifest(repo, tag, MEDIA_OCI_MANIFEST, &m).await;
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&b));
        let d = Digest::of(&m);
        assert_eq!(h["docker-content-digest"], d.to_string());
        (d, m)
    }
}

/// The first error code of a spec error body.
pub fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}
