//! The OCI Distribution Spec v1.1 server: an axum [`Router`] over a [`Registry`], and a [`Server`]
//! that serves it on a TCP address, with or without TLS.
//!
//! ```no_run
//! # async fn f() -> registry::server::Result<()> {
//! use registry::server::{AuthConfig, Registry, Server};
//! let reg = Registry::open_dir("/var/lib/berth-registry".as_ref(), AuthConfig::open())?;
//! let server = Server::bind("127.0.0.1:5000", None).await?;
//! server.serve(registry::server::router(reg), std::future::pending()).await
//! # }
//! ```
//!
//! Endpoints (`<name>` may contain `/`): `GET /v2/`; `GET|HEAD|DELETE /v2/<name>/blobs/<digest>`;
//! `POST /v2/<name>/blobs/uploads/` (`?digest=` monolithic, `?mount=&from=` cross-repository mount);
//! `GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<id>`; `GET|HEAD|PUT|DELETE
//! /v2/<name>/manifests/<reference>`; `GET /v2/<name>/tags/list`; `GET /v2/<name>/referrers/<digest>`;
//! `GET /v2/_catalog`; and `GET /token` when bearer tokens are enabled (see [`auth`]).
//!
//! Storage: blobs (and the manifests' bytes) in an [`oci::ContentStore`], which `berth daemon`
//! shares with the engine; the registry's own metadata under [`RegistryConfig::meta_root`]:
//!
//! ```text
//! pins/sha256/<hex>                                  hard links keeping the registry's blobs alive
//! repositories/<name>/_layers/sha256/<hex>           blob linked into the repository
//! repositories/<name>/_deleted/sha256/<hex>          blob deleted from the repository
//! repositories/<name>/_manifests/revisions/sha256/<hex>   manifest revision (media type, size, subject)
//! repositories/<name>/_manifests/tags/<tag>          the digest the tag points at
//! repositories/<name>/_referrers/sha256/<subject>/sha256/<hex>   referrer descriptor
//! ```
//!
//! Every metadata write is atomic (temp file, fsync, rename); every upload is verified against its
//! digest before it reaches the store. Access control is described in [`auth`].

pub mod auth;
mod blobs;
pub mod error;
mod listing;
mod manifests;
mod names;
mod storage;
pub mod tls;
mod uploads;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use oci::ContentStore;
use tracing::Instrument;

pub use auth::{AccessRules, Actions, Anonymous, AuthConfig, Htpasswd, Realm, TokenConfig};
pub use error::{ApiError, Code, Error, Result};
pub use tls::{Server, TlsFiles};

use auth::{Auth, Need};
use error::ApiResult;
use names::{Query, Route};
use storage::{Blobs, Meta};

/// Header every response carries, as clients probe for it.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// How a [`Registry`] is set up.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Directory of the registry's own metadata (repositories, tags, revisions, links, pins).
    pub meta_root: PathBuf,
    pub auth: AuthConfig,
    /// Upload sessions untouched this long are dropped (with their partial data).
    pub upload_idle_timeout: Duration,
    /// Largest manifest accepted (bigger ones get 413).
    pub max_manifest_size: usize,
}

impl RegistryConfig {
    /// Defaults: one hour idle uploads, 4 MiB manifests.
    pub fn new(meta_root: impl Into<PathBuf>, auth: AuthConfig) -> RegistryConfig {
        RegistryConfig {
            meta_root: meta_root.into(),
            auth,
            upload_idle_timeout: Duration::from_secs(3600),
            max_manifest_size: 4 << 20,
        }
    }
}

/// A registry: its storage, access control and upload sessions. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) blobs: Blobs,
    pub(crate) meta: Meta,
    pub(crate) auth: Auth,
    pub(crate) uploads: uploads::Uploads,
    pub(crate) max_manifest_size: usize,
    /// One lock per repository, held while its tags, revisions and referrers change.
    repo_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Inner {
    /// The file of a blob as `repo` sees it. With access control, only a blob linked there
    /// (uploaded, mounted, or referenced by a manifest pushed there): a digest is no key to another
    /// repository's blobs, nor to the engine's. An open registry (anyone may pull and push
    /// everything) also sees every blob of the content store not deleted from `repo`, so that the
    /// daemon's engine pushes its images to its own registry without copying a byte.
    pub(crate) fn blob_in_repo(&self, repo: &names::RepoName, d: &oci::Digest) -> Option<PathBuf> {
        if !self.meta.blob_linked(repo, d) && (!self.auth.is_open() || self.meta.blob_deleted(repo, d)) {
            return None;
        }
        self.blobs.locate(d)
    }

    /// The lock of one repository's metadata.
    pub(crate) fn repo_lock(&self, repo: &names::RepoName) -> Arc<Mutex<()>> {
        let mut m = self.repo_locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(repo.to_string()).or_default().clone()
    }
}

impl Registry {
    /// Open a registry whose blobs live in `store` (possibly shared with the engine).
    pub fn open(store: ContentStore, cfg: RegistryConfig) -> Result<Registry> {
        let meta = Meta::open(&cfg.meta_root)?;
        let blobs = Blobs::new(store, &cfg.meta_root)?;
        Ok(Registry {
            inner: Arc::new(Inner {
                blobs,
                meta,
                auth: Auth::new(cfg.auth)?,
                uploads: uploads::Uploads::new(cfg.upload_idle_timeout),
                max_manifest_size: cfg.max_manifest_size,
                repo_locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A standalone registry under `root`: its content store in `root/blobs`, its metadata in
    /// `root/registry`.
    pub fn open_dir(root: &Path, auth: AuthConfig) -> Result<Registry> {
        let store = ContentStore::open(root.join("blobs"))?;
        Self::open(store, RegistryConfig::new(root.join("registry"), auth))
    }

    /// The content store blobs are kept in.
    pub fn content_store(&self) -> &ContentStore {
        self.inner.blobs.store()
    }

    /// Run storage work off the async threads.
    pub(crate) async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(ApiError::internal)?
    }
}

/// The registry's HTTP API.
pub fn router(registry: Registry) -> Router {
    Router::new().route("/token", get(token)).fallback(dispatch).with_state(registry)
}

/// Bind `addr` (`HOST:PORT`, with TLS if `tls` is given) and serve `registry` until `shutdown`.
pub async fn serve(
    addr: &str,
    registry: Registry,
    tls: Option<&TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let server = Server::bind(addr, tls).await?;
    tracing::info!(addr = %server.local_addr()?, tls = server.is_tls(), "registry listening");
    server.serve(router(registry), shutdown).await
}

/// `GET /token`: the bearer token endpoint.
async fn token(State(reg): State<Registry>, req: Request) -> Response {
    let query = Query::parse(req.uri().query());
    let resp = match reg.inner.auth.token_endpoint(req.headers(), &query).await {
        Ok(v) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
        Err(e) => e.into_response(),
    };
    with_api_version(resp)
}

fn with_api_version(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    resp
}

/// Every `/v2/...` request: route, authenticate, authorize, handle.
async fn dispatch(State(reg): State<Registry>, req: Request) -> Response {
    let span = tracing::info_span!("registry", method = %req.method(), path = %req.uri().path());
    async move {
        let resp = match handle(&reg, req).await {
            Ok(r) => {
                tracing::debug!(status = %r.status(), "answered");
                r
            }
            Err(e) => {
                tracing::debug!(status = %e.status, code = e.code().as_str(), "refused");
                e.into_response()
            }
        };
        with_api_version(resp)
    }
    .instrument(span)
    .await
}

fn unsupported(allow: &str) -> ApiError {
    ApiError::new(Code::Unsupported, "the operation is unsupported").header(header::ALLOW, allow)
}

/// What a route and method need, or 405.
fn need_for(route: &Route, method: &Method) -> ApiResult<Need> {
    let repo = |actions: Actions| route.repo().map(|r| Need::Repo(r.clone(), actions)).unwrap_or(Need::Base);
    let read = *method == Method::GET || *method == Method::HEAD;
    Ok(match route {
        Route::Base if read => Need::Base,
        Route::Base => return Err(unsupported("GET, HEAD")),
        Route::Catalog if read => Need::Catalog,
        Route::Catalog | Route::Tags { .. } | Route::Referrers { .. } if !read => return Err(unsupported("GET, HEAD")),
        Route::Tags { .. } | Route::Referrers { .. } => repo(Actions::PULL),
        Route::Manifest { .. } | Route::Blob { .. } if read => repo(Actions::PULL),
        Route::Manifest { .. } if *method == Method::PUT => repo(Actions::PUSH),
        Route::Manifest { .. } | Route::Blob { .. } if *method == Method::DELETE => repo(Actions::DELETE),
        Route::Manifest { .. } => return Err(unsupported("GET, HEAD, PUT, DELETE")),
        Route::Blob { .. } => return Err(unsupported("GET, HEAD, DELETE")),
        Route::UploadStart { .. } if *method == Method::POST => repo(Actions::PUSH),
        Route::UploadStart { .. } => return Err(unsupported("POST")),
        Route::Upload { .. } if [Method::GET, Method::PATCH, Method::PUT, Method::DELETE].contains(method) => repo(Actions::PUSH),
        Route::Upload { .. } => return Err(unsupported("GET, PATCH, PUT, DELETE")),
        Route::Catalog => return Err(unsupported("GET, HEAD")),
    })
}

async fn handle(reg: &Registry, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let Some(route) = Route::parse(parts.uri.path())? else {
        return Ok((StatusCode::NOT_FOUND, "404 page not found\n").into_response());
    };
    let method = parts.method.clone();
    let need = need_for(&route, &method)?;
    let auth = &reg.inner.auth;
    let principal = auth.identify(&parts.headers).await?;
    auth.authorize(&principal, &need, &parts.headers)?;
    let query = Query::parse(parts.uri.query());
    let head = method == Method::HEAD;
    let h = &parts.headers;
    match route {
        Route::Base => Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{}").into_response()),
        Route::Catalog => listing::catalog(reg, &principal, &query).await,
        Route::Tags { name } => listing::tags(reg, name, &query).await,
        Route::Referrers { name, digest } => listing::referrers(reg, name, &digest, &query).await,
        Route::Blob { name, digest } if method == Method::DELETE => blobs::delete(reg, name, &digest).await,
        Route::Blob { name, digest } => blobs::get(reg, name, &digest, h, head).await,
        Route::Manifest { name, reference } => match method {
            Method::PUT => manifests::put(reg, name, &reference, &query, h, body).await,
            Method::DELETE => manifests::delete(reg, name, &reference).await,
            _ => manifests::get(reg, name, &reference, head).await,
        },
        Route::UploadStart { name } => {
            // A mount from another repository needs pull there too.
            let from_ok = match query.get("from").map(names::RepoName::parse) {
                Some(Ok(from)) => auth.allowed(&principal, from.as_str()).contains(Actions::PULL),
                _ => true,
            };
            uploads::start(reg, name, &query, from_ok, h, body).await
        }
        Route::Upload { name, id } => match method {
            Method::GET => uploads::status(reg, name, &id).await,
            Method::PATCH => uploads::patch(reg, name, &id, h, body).await,
            Method::PUT => uploads::finish(reg, name, &id, &query, h, body).await,
            _ => uploads::cancel(reg, name, &id).await,
        },
    }
}

/// An empty response with headers (`Content-Length: 0` unless one is given).
pub(crate) fn empty(status: StatusCode, headers: Vec<(header::HeaderName, String)>) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(k, v);
        }
    }
    if !h.contains_key(header::CONTENT_LENGTH) {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    resp
}

/// The `Docker-Content-Digest` header name.
pub(crate) fn digest_header() -> header::HeaderName {
    header::HeaderName::from_static("docker-content-digest")
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use base64::Engine as _;

    use super::testutil::*;
    use super::*;

    fn basic(u: &str, p: &str) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
    }

    fn with_users(anonymous: Anonymous, token: bool) -> TestRegistry {
        let users = format!(
            "alice:{}\nbob:{}\n",
            bcrypt::hash("secret", 4).unwrap(),
            bcrypt::hash("pw", 4).unwrap()
        );
        TestRegistry::open_with(|c| {
            c.auth = AuthConfig {
                anonymous,
                users: Some(Htpasswd::parse(&users, Path::new("htpasswd")).unwrap()),
                rules: Some(AccessRules::parse("alice * *\nbob shared pull\n", Path::new("rules")).unwrap()),
                token: token.then(|| TokenConfig::local(false)),
                basic_realm: "Berth Registry".into(),
            }
        })
    }

    #[tokio::test]
    async fn base_and_unknown_paths() {
        let t = TestRegistry::open();
        let (st, _, _) = t.call("GET", "/v2/", &[], Vec::new()).await;
        assert_eq!(st, 200);
        let (st, _, _) = t.call("GET", "/v2/x/unknown", &[], Vec::new()).await;
        assert_eq!(st, 404);
        let (st, _, _) = t.call("POST", "/v2/", &[], Vec::new()).await;
        assert_eq!(st, 405);
        let (st, _, b) = t.call("GET", "/v2/_catalog?n=1", &[], Vec::new()).await;
        assert_eq!((st, b.as_slice()), (200, br#"{"repositories":[]}"#.as_slice()));
    }

    #[tokio::test]
    async fn traversal_is_name_invalid() {
        let t = TestRegistry::open();
        let d = oci::Digest::of(b"x");
        for path in [
            format!("/v2/%2e%2e/blobs/{d}"),
            format!("/v2/a/%2E%2E/%2e%2e/blobs/uploads/?digest={d}"),
            "/v2/a/..%2f..%2fetc/manifests/latest".to_string(),
            "/v2/a/../../etc/tags/list".to_string(),
            "/v2/a%2fb/tags/list".to_string(),
            "/v2/UPPER/manifests/latest".to_string(),
        ] {
            let method = if path.contains("uploads") { "POST" } else { "GET" };
            let (st, _, b) = t.call(method, &path, &[], b"x".to_vec()).await;
            assert_eq!((st, error_code(&b).as_str()), (400, "NAME_INVALID"), "{path}");
        }
        assert!(!t.dir.path().join("etc").exists());
        assert_eq!(std::fs::read_dir(t.dir.path().join("registry/repositories")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn basic_auth() {
        let t = with_users(Anonymous::None, false);
        let (st, h, b) = t.call("GET", "/v2/", &[], Vec::new()).await;
        assert_eq!((st, error_code(&b).as_str()), (401, "UNAUTHORIZED"));
        assert_eq!(h["www-authenticate"], "Basic realm=\"Berth Registry\"");
        let (st, _, _) = t.call("GET", "/v2/_catalog", &[], Vec::new()).await;
        assert_eq!(st, 401);
        let alice = basic("alice", "secret");
        assert_eq!(t.call("GET", "/v2/", &[("authorization", &alice)], Vec::new()).await.0, 200);
        let d = oci::Digest::of(b"blob");
        let push = format!("/v2/shared/blobs/uploads/?digest={d}");
        let (st, _, _) = t.call("POST", &push, &[], b"blob".to_vec()).await;
        assert_eq!(st, 401);
        let (st, _, _) = t
            .call("POST", &push, &[("authorization", &basic("alice", "wrong"))], b"blob".to_vec())
            .await;
        assert_eq!(st, 401);
        let (st, _, _) = t.call("POST", &push, &[("authorization", &alice)], b"blob".to_vec()).await;
        assert_eq!(st, 201);
        // bob may pull "shared" but not push to it, nor see anything else.
        let bob = basic("bob", "pw");
        let (st, _, b) = t.call("POST", &push, &[("authorization", &bob)], b"blob".to_vec()).await;
        assert_eq!((st, error_code(&b).as_str()), (403, "DENIED"));
        assert_eq!(
            t.call("GET", &format!("/v2/shared/blobs/{d}"), &[("authorization", &bob)], Vec::new())
                .await
                .0,
            200
        );
        t.call(
            "POST",
            &format!("/v2/private/blobs/uploads/?digest={d}"),
            &[("authorization", &alice)],
            b"blob".to_vec(),
        )
        .await;
        let (_, _, b) = t.call("GET", "/v2/_catalog", &[("authorization", &bob)], Vec::new()).await;
        assert_eq!(b, br#"{"repositories":["shared"]}"#);
        let (_, _, b) = t.call("GET", "/v2/_catalog", &[("authorization", &alice)], Vec::new()).await;
        assert_eq!(b, br#"{"repositories":["private","shared"]}"#);
    }

    /// With access control a repository serves only its own blobs: knowing a digest of another
    /// repository's (or the engine's) blob does not give its bytes, by GET, by mount or by a
    /// manifest that names it.
    #[tokio::test]
    async fn blobs_stay_in_their_repository() {
        let t = with_users(Anonymous::None, false);
        let (alice, bob) = (basic("alice", "secret"), basic("bob", "pw"));
        let secret = b"private bytes".to_vec();
        let d = oci::Digest::of(&secret);
        let up = |repo: &str| format!("/v2/{repo}/blobs/uploads/?digest={d}");
        assert_eq!(
            t.call("POST", &up("private"), &[("authorization", &alice)], secret.clone()).await.0,
            201
        );
        // bob may pull "shared"; the blob is not there, whatever the store holds.
        let get = format!("/v2/shared/blobs/{d}");
        let (st, _, b) = t.call("GET", &get, &[("authorization", &bob)], Vec::new()).await;
        assert_eq!((st, error_code(&b).as_str()), (404, "BLOB_UNKNOWN"));
        assert_eq!(t.call("HEAD", &get, &[("authorization", &alice)], Vec::new()).await.0, 404);
        // A mount needs the blob in `from`, and pull there: otherwise an ordinary upload (202).
        for q in [format!("mount={d}"), format!("mount={d}&from=nothere")] {
            let (st, _, _) = t
                .call(
                    "POST",
                    &format!("/v2/shared/blobs/uploads/?{q}"),
                    &[("authorization", &alice)],
                    Vec::new(),
                )
                .await;
            assert_eq!(st, 202, "{q}");
        }
        assert_eq!(t.call("GET", &get, &[("authorization", &alice)], Vec::new()).await.0, 404);
        // A manifest in "shared" naming it is refused.
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": oci::spec::MEDIA_OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": secret.len()},
            "layers": []
        })
        .to_string();
        let (st, _, b) = t
            .call(
                "PUT",
                "/v2/shared/manifests/t",
                &[("authorization", &alice), ("content-type", oci::spec::MEDIA_OCI_MANIFEST)],
                m.into_bytes(),
            )
            .await;
        assert_eq!((st, error_code(&b).as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
        // A mount from where it is, by someone who may pull there, works.
        let (st, _, _) = t
            .call(
                "POST",
                &format!("/v2/shared/blobs/uploads/?mount={d}&from=private"),
                &[("authorization", &alice)],
                Vec::new(),
            )
            .await;
        assert_eq!(st, 201);
        let (st, _, b) = t.call("GET", &get, &[("authorization", &bob)], Vec::new()).await;
        assert_eq!((st, b), (200, secret));
    }

    #[tokio::test]
    async fn anonymous_pull_with_users() {
        let t = with_users(Anonymous::Pull, false);
        let d = oci::Digest::of(b"blob");
        let alice = basic("alice", "secret");
        t.call(
            "POST",
            &format!("/v2/r/blobs/uploads/?digest={d}"),
            &[("authorization", &alice)],
            b"blob".to_vec(),
        )
        .await;
        assert_eq!(t.call("GET", &format!("/v2/r/blobs/{d}"), &[], Vec::new()).await.0, 200);
        assert_eq!(t.call("GET", "/v2/_catalog", &[], Vec::new()).await.0, 200);
        assert_eq!(t.call("POST", "/v2/r/blobs/uploads/", &[], Vec::new()).await.0, 401);
        assert_eq!(t.call("DELETE", &format!("/v2/r/blobs/{d}"), &[], Vec::new()).await.0, 401);
        // Probing /v2/ challenges, so that clients with credentials learn to send them.
        assert_eq!(t.call("GET", "/v2/", &[], Vec::new()).await.0, 401);
    }

    #[tokio::test]
    async fn bearer_token_flow() {
        let t = with_users(Anonymous::None, true);
        let d = oci::Digest::of(b"blob");
        let push = format!("/v2/team/app/blobs/uploads/?digest={d}");
        let (st, h, _) = t.call("POST", &push, &[("host", "reg.local:5000")], b"blob".to_vec()).await;
        assert_eq!(st, 401);
        assert_eq!(
            h["www-authenticate"],
            "Bearer realm=\"http://reg.local:5000/token\",service=\"berth-registry\",scope=\"repository:team/app:pull,push\""
        );
        let (st, h, _) = t.call("GET", "/v2/", &[], Vec::new()).await;
        assert_eq!(st, 401);
        assert_eq!(
            h["www-authenticate"],
            "Bearer realm=\"http://localhost/token\",service=\"berth-registry\""
        );
        // The token endpoint authenticates with basic auth.
        let scope = "/token?service=berth-registry&scope=repository%3Ateam%2Fapp%3Apull%2Cpush";
        let (st, h, _) = t.call("GET", scope, &[("authorization", &basic("alice", "bad"))], Vec::new()).await;
        assert_eq!(st, 401);
        assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic "));
        let (st, _, b) = t
            .call("GET", scope, &[("authorization", &basic("alice", "secret"))], Vec::new())
            .await;
        assert_eq!(st, 200);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let bearer = format!("Bearer {}", v["token"].as_str().unwrap());
        assert!(v["issued_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(t.call("GET", "/v2/", &[("authorization", &bearer)], Vec::new()).await.0, 200);
        assert_eq!(t.call("POST", &push, &[("authorization", &bearer)], b"blob".to_vec()).await.0, 201);
        // The token is for team/app only.
        let (st, h, _) = t
            .call(
                "POST",
                &format!("/v2/other/blobs/uploads/?digest={d}"),
                &[("authorization", &bearer)],
                b"blob".to_vec(),
            )
            .await;
        assert_eq!(st, 401);
        assert!(h["www-authenticate"].to_str().unwrap().contains("error=\"insufficient_scope\""));
        // bob's token for the same scope carries nothing (the rules give him only "shared").
        let (_, _, b) = t.call("GET", scope, &[("authorization", &basic("bob", "pw"))], Vec::new()).await;
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let bob = format!("Bearer {}", v["token"].as_str().unwrap());
        assert_eq!(
            t.call("GET", &format!("/v2/team/app/blobs/{d}"), &[("authorization", &bob)], Vec::new())
                .await
                .0,
            401
        );
        // A garbage token is refused.
        assert_eq!(t.call("GET", "/v2/", &[("authorization", "Bearer x.y.z")], Vec::new()).await.0, 401);
        // Catalog through a token with registry:catalog:*.
        let (_, _, b) = t
            .call(
                "GET",
                "/token?scope=registry:catalog:*",
                &[("authorization", &basic("alice", "secret"))],
                Vec::new(),
            )
            .await;
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let cat = format!("Bearer {}", v["token"].as_str().unwrap());
        let (st, _, b) = t.call("GET", "/v2/_catalog", &[("authorization", &cat)], Vec::new()).await;
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
        assert_eq!(b, br#"{"repositories":["team/app"]}"#);
        assert_eq!(
            t.call("GET", "/v2/_catalog", &[("authorization", &bearer)], Vec::new()).await.0,
            401
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_pushes() {
        let t = std::sync::Arc::new(TestRegistry::open());
        let (_, manifest) = t.push_image("app", "base").await;
        let shared = b"the same layer, pushed by many".to_vec();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (t, shared, manifest) = (t.clone(), shared.clone(), manifest.clone());
            tasks.push(tokio::spawn(async move {
                // The same blob through a session, and a tag each, all at once.
                let (st, h, _) = t.call("POST", "/v2/app/blobs/uploads/", &[], Vec::new()).await;
                assert_eq!(st, 202);
                let loc = h["location"].to_str().unwrap().to_string();
                let (st, _, _) = t.call("PATCH", &loc, &[], shared.clone()).await;
                assert_eq!(st, 202);
                let (st, _, _) = t
                    .call("PUT", &format!("{loc}?digest={}", oci::Digest::of(&shared)), &[], Vec::new())
                    .await;
                assert_eq!(st, 201);
                let (st, _, _) = t
                    .put_manifest("app", &format!("t{i}"), oci::spec::MEDIA_OCI_MANIFEST, &manifest)
                    .await;
                assert_eq!(st, 201);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let (_, _, b) = t.call("GET", "/v2/app/tags/list", &[], Vec::new()).await;
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["tags"].as_array().unwrap().len(), 9);
        assert_eq!(t.get_blob("app", &oci::Digest::of(&shared)).await, shared);
        assert_eq!(std::fs::read_dir(t.dir.path().join("blobs/ingest")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn token_endpoint_absent_without_tokens() {
        let t = TestRegistry::open();
        assert_eq!(t.call("GET", "/token", &[], Vec::new()).await.0, 404);
    }
}
