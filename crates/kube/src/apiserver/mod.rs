//! The Kubernetes API server: HTTPS with client certificates from Berth's CA, discovery, and
//! the resource endpoints over the store.
//!
//! Served so far: core/v1 Namespaces (`default`, `kube-system`, `kube-public`,
//! `kube-node-lease` made at start; deleting one empties it), ConfigMaps and Secrets — create
//! (generateName, dryRun, fieldValidation), get, list (label and field selectors, limit and
//! continue, resourceVersion), watch (from a resourceVersion, bookmarks, 410 after compaction),
//! update, patch (merge, JSON, strategic for these kinds), delete (preconditions),
//! deletecollection, and Table responses for `kubectl get`.

pub mod auth;
pub mod eviction;
pub mod fields;
pub mod gc;
pub mod managed;
pub mod network;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod pods;
pub mod proto;
pub mod proto_tables;
pub mod quota;
pub mod rbac;
pub mod remote;
pub mod resources;
pub mod select;
pub mod spdy;
pub mod status;
pub mod storage;
pub mod table;
pub mod typed;
pub mod workloads;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::pki::Pki;
use crate::store::Store;
use resources::RESOURCES;
use status::ApiError;

/// The Kubernetes version whose API Berth serves (its types are k8s 1.33's).
pub const KUBE_MINOR: &str = "33";

/// The API server's state.
pub struct ApiServer {
    /// Where objects live.
    pub store: Arc<dyn Store>,
    /// The address clients are told to use.
    pub advertise: SocketAddr,
    /// The node agent's pods (logs), when this server runs one.
    pub pods: Option<Arc<crate::agent::pods::Pods>>,
    /// Signs and checks service-account tokens.
    pub issuer: Arc<auth::Issuer>,
    /// The CA certificate (PEM), published in every namespace as `kube-root-ca.crt`.
    pub ca_cert: String,
    /// The node's resource metrics (`metrics.k8s.io`), when it runs pods.
    pub metrics: Option<Arc<crate::agent::metrics::Metrics>>,
}

/// How to run the API server.
#[derive(Clone)]
pub struct Config {
    /// Where to listen (`127.0.0.1:6443`; port 0 takes a free one).
    pub listen: SocketAddr,
    /// Its state: the store, the certificates.
    pub dir: PathBuf,
    /// Where to write the admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// `etcd://HOST:PORT` to keep objects in etcd; none: the embedded store in `dir`.
    pub datastore: Option<String>,
    /// The node this daemon registers (its agent); none: no node agent.
    pub node: Option<crate::agent::NodeConfig>,
    /// The engine the node agent runs pods on (none: pods are scheduled but not run here).
    pub engine: Option<Arc<dyn engine::service::ContainerService>>,
    /// The network pods are on.
    pub pod_network: crate::agent::pods::PodNetwork,
    /// The Services' virtual IPs and node ports.
    pub services: network::ServiceRanges,
    /// The resolvers the cluster DNS forwards other names to (none: the host's).
    pub dns: Vec<SocketAddr>,
    /// Where the node's ingress proxy listens.
    pub ingress: crate::ingress::Config,
    /// How long a node's Lease may go unrenewed before it is unreachable (40 s).
    pub node_grace: std::time::Duration,
}

/// A running API server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The accept loop.
    pub task: tokio::task::JoinHandle<()>,
    /// The node agent.
    pub agent: Option<tokio::task::JoinHandle<()>>,
    /// The server itself, for in-process clients (the dashboard).
    pub server: Arc<ApiServer>,
}

/// Who is asking (from the TLS handshake).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The user and groups a client certificate signed by Berth's CA names (its subject's CN
    /// and Os), when one was shown.
    pub certificate: Option<(String, Vec<String>)>,
}

/// Errors starting the API server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificates.
    #[error(transparent)]
    Pki(#[from] crate::pki::Error),
    /// The store.
    #[error("kube store: {0}")]
    Store(#[from] crate::store::Error),
    /// Binding or TLS setup.
    #[error("kube API server: {0}")]
    Io(String),
}

/// Open the store, make the certificates and kubeconfig, bind, and serve in the background.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    std::fs::create_dir_all(&cfg.dir).map_err(|e| StartError::Io(format!("{}: {e}", cfg.dir.display())))?;
    network::set_ranges(cfg.services.clone());
    let store: Arc<dyn Store> = match &cfg.datastore {
        Some(url) => Arc::new(crate::store::etcd::EtcdStore::connect(url).await?),
        None => Arc::new(crate::store::redb::RedbStore::open(&cfg.dir.join("store.redb"))?),
    };
    objects::ensure_namespaces(store.as_ref())
        .await
        .map_err(|e| StartError::Io(e.message))?;
    network::ensure_default_services(store.as_ref())
        .await
        .map_err(|e| StartError::Io(e.message))?;
    storage::ensure_default_class(store.as_ref())
        .await
        .map_err(|e| StartError::Io(e.message))?;
    pods::ensure_priority_classes(store.as_ref())
        .await
        .map_err(|e| StartError::Io(e.message))?;
    network::ensure_ingress_class(store.as_ref())
        .await
        .map_err(|e| StartError::Io(e.message))?;
    // The serving certificate names every address pods and clients reach the server at: the
    // listening one, the `kubernetes` Service's cluster IP and the pod network's gateway.
    let mut sans = vec![cfg.listen.ip(), std::net::IpAddr::V4(cfg.services.nth(1))];
    sans.extend(crate::dns::listen_addr(&cfg.pod_network.subnet).map(|a| a.ip()));
    let pki = Pki::load_or_create(&cfg.dir.join("pki"), &sans)?;
    let issuer = Arc::new(auth::Issuer::load_or_create(&cfg.dir.join("pki")).map_err(StartError::Io)?);
    auth::ensure_policy(store.as_ref()).await.map_err(|e| StartError::Io(e.message))?;
    objects::ensure_root_ca_everywhere(store.as_ref(), &pki.ca_cert)
        .await
        .map_err(|e| StartError::Io(e.message))?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| StartError::Io(format!("binding {}: {e}", cfg.listen)))?;
    let addr = listener.local_addr().map_err(|e| StartError::Io(e.to_string()))?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    write_private(&cfg.kubeconfig, &pki.kubeconfig(&format!("https://{host}:{}", addr.port())))?;
    let tls = tls_config(&pki)?;
    let agent = cfg.node.clone().map(|n| tokio::spawn(crate::agent::run_node(store.clone(), n)));
    let pods = match (&cfg.node, &cfg.engine) {
        (Some(n), Some(e)) => {
            let p = crate::agent::pods::Pods::new(
                store.clone(),
                e.clone(),
                n.name.clone(),
                cfg.dir.join("pods"),
                cfg.pod_network.clone(),
                issuer.clone(),
            );
            tokio::spawn(p.clone().run());
            Some(p)
        }
        _ => None,
    };
    let metrics = cfg.engine.as_ref().filter(|_| cfg.node.is_some()).map(|e| {
        let m = Arc::new(crate::agent::metrics::Metrics::default());
        tokio::spawn(m.clone().run(e.clone()));
        m
    });
    tokio::spawn(crate::scheduler::run(store.clone()));
    tokio::spawn(compact_periodically(store.clone()));
    let server = Arc::new(ApiServer {
        store,
        advertise: addr,
        pods,
        issuer,
        ca_cert: pki.ca_cert.clone(),
        metrics: metrics.clone(),
    });
    let router = router(server.clone());
    // The node's network services: its pods' network, the API also on its gateway (for pods;
    // TLS and authentication as on loopback), the Services' data path and the cluster DNS.
    let node_net = match (&cfg.node, &cfg.engine) {
        (Some(_), Some(e)) => match e.ensure_network(&cfg.pod_network.name, &cfg.pod_network.subnet, &cfg.pod_network.bridge) {
            Ok(()) => crate::dns::listen_addr(&cfg.pod_network.subnet),
            Err(e) => {
                tracing::warn!(error = %e, "the pod network: Services and cluster DNS not served");
                None
            }
        },
        _ => None,
    };
    let mut api_port = addr.port();
    if let Some(gw) = node_net {
        match TcpListener::bind((gw.ip(), addr.port())).await {
            Ok(l) => {
                tokio::spawn(accept_loop(l, tls.clone(), router.clone()));
            }
            Err(e) if !addr.ip().is_unspecified() => {
                tracing::warn!(error = %e, "the API on the pod network's gateway: pods cannot reach it");
                api_port = 0;
            }
            Err(_) => {}
        }
    }
    {
        let server = server.clone();
        let pod_bridge = cfg.pod_network.bridge.clone();
        let upstream = if cfg.dns.is_empty() {
            net::dns::upstreams_of(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        } else {
            cfg.dns.clone()
        };
        let service_cidr = {
            let (n, b) = cfg.services.net;
            format!("{n}/{b}")
        };
        let ingress = cfg.ingress.clone();
        let controllers_cfg = crate::controllers::Config {
            volumes: cfg.dir.join("volumes"),
            node: cfg.node.as_ref().map(|n| n.name.clone()),
            metrics: metrics.clone(),
            node_grace: cfg.node_grace,
        };
        tokio::spawn(async move {
            let informers = crate::controllers::run(server.clone(), controllers_cfg).await;
            let Some(gw) = node_net else { return };
            let std::net::IpAddr::V4(gw_ip) = gw.ip() else { return };
            tokio::spawn(crate::proxy::run(
                informers.clone(),
                crate::proxy::Config {
                    table: format!("berth-svc-{pod_bridge}"),
                    service_cidr,
                },
            ));
            tokio::spawn(crate::dns::run(informers.clone(), gw, upstream));
            tokio::spawn(crate::ingress::run(
                informers,
                crate::controllers::runtime::Client::new(server.clone(), "berth-ingress"),
                ingress,
            ));
            if api_port != 0 {
                crate::controllers::publish_node_endpoints(server, gw_ip, api_port).await;
            }
        });
    }
    let task = tokio::spawn(accept_loop(listener, tls, router));
    tracing::info!(%addr, kubeconfig = %cfg.kubeconfig.display(), "kube API server listening");
    Ok(Running { addr, task, agent, server })
}

/// Compact the store every 5 minutes to the revision it had 5 minutes before, as the real API
/// server compacts etcd: watches and lists may reach back that far, no further, and the
/// history of heartbeats and status writes does not grow without end. Events past their TTL
/// go at the same beat.
async fn compact_periodically(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    let mut previous: Option<i64> = None;
    loop {
        tick.tick().await;
        let gone = crate::agent::events::expire(store.as_ref()).await;
        if gone > 0 {
            tracing::debug!(events = gone, "expired events");
        }
        if let Some(rev) = previous {
            if let Err(e) = store.compact(rev).await {
                tracing::warn!(revision = rev, error = %e, "compacting the kube store");
            }
        }
        previous = store.revision().await.ok();
    }
}

fn write_private(path: &std::path::Path, data: &str) -> Result<(), StartError> {
    write_private_bytes(path, data.as_bytes()).map_err(|e| StartError::Io(format!("{}: {e}", path.display())))
}

/// Write a file only root may read (0600), atomically.
pub(crate) fn write_private_bytes(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(data).and_then(|_| f.sync_all())?;
    std::fs::rename(&tmp, path)
}

fn tls_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, StartError> {
    let bad = |e: String| StartError::Io(format!("TLS: {e}"));
    let certs: Vec<_> = rustls_pemfile::certs(&mut pki.server_cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut pki.server_key.as_bytes())
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("no serving key".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pki.ca_cert.as_bytes()) {
        roots.add(c.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // A client certificate is asked for, and checked against Berth's CA when given; requests
    // without one are refused at the HTTP layer (401), as the real server answers them.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| bad(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

async fn accept_loop(listener: TcpListener, tls: Arc<rustls::ServerConfig>, router: Router) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else { return };
            let peer = Peer {
                certificate: stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| crate::pki::subject(c)),
            };
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer.clone());
                let router = router.clone();
                async move {
                    use tower::ServiceExt;
                    router.oneshot(req.map(Body::new)).await
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

fn router(server: Arc<ApiServer>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/api", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/api/v1", get(core_resources))
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            axum::routing::post(access_review),
        )
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            axum::routing::post(subject_review),
        )
        .route("/apis/{group}", get(api_group))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/openapi/v3", get(|| async { Json(openapi::index()) }))
        .route("/openapi/v3/api/v1", get(|| async { Json(openapi::document("", "v1")) }))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3/apis/{group}/{version}", get(openapi_group))
        .fallback(resource)
        .layer(axum::middleware::from_fn_with_state(server.clone(), authenticate))
        .with_state(server)
}

/// Authenticate (a client certificate from Berth's CA, or a service-account token), apply
/// impersonation, and authorize the request by RBAC; the user goes on in the request.
async fn authenticate(State(s): State<Arc<ApiServer>>, mut req: Request<Body>, next: axum::middleware::Next) -> Response {
    let certificate = req.extensions().get::<Peer>().and_then(|p| p.certificate.clone());
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let user = if let Some((name, groups)) = certificate {
        auth::User::certified(name, groups)
    } else if let Some(t) = bearer {
        match auth::token_user(s.store.as_ref(), &s.issuer, &t).await {
            Some(u) => u,
            None => return ApiError::unauthorized().into_response(),
        }
    } else {
        return ApiError::unauthorized().into_response();
    };
    let user = match auth::impersonate(s.store.as_ref(), user, req.headers()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let attrs = auth::Attributes::of(req.method(), req.uri().path(), req.uri().query());
    if !auth::authorize(s.store.as_ref(), &user, &attrs).await.0 {
        return attrs.forbidden(&user).into_response();
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

/// `/openapi/v2` in JSON; a client that takes only the protobuf form (gnostic's) is told so
/// with 406, on which client-go falls back as it does with older servers.
async fn openapi_v2(headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or("*/*");
    let json_ok = accept.is_empty()
        || accept
            .split(',')
            .map(|m| m.split(';').next().unwrap_or("").trim())
            .any(|m| matches!(m, "application/json" | "*/*" | "application/*"));
    if !json_ok {
        return ApiError {
            code: 406,
            reason: "NotAcceptable",
            message: format!("only application/json is served for /openapi/v2 (asked for {accept})"),
            details: None,
        }
        .into_response();
    }
    Json(openapi::v2()).into_response()
}

async fn openapi_group(axum::extract::Path((g, v)): axum::extract::Path<(String, String)>) -> Response {
    match openapi::document(&g, &v) {
        Some(d) => Json(d).into_response(),
        None => ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("no OpenAPI document for {g}/{v}"),
            details: None,
        }
        .into_response(),
    }
}

/// `kubectl auth can-i`: the requester's own access, as RBAC decides it.
async fn access_review(
    State(s): State<Arc<ApiServer>>,
    axum::Extension(user): axum::Extension<auth::User>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut review = match objects::read_body(&headers, body).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let attrs = if let Some(r) = review.pointer("/spec/resourceAttributes") {
        let f = |k: &str| r[k].as_str().unwrap_or("").to_string();
        auth::Attributes {
            verb: f("verb"),
            resource_request: true,
            group: f("group"),
            resource: f("resource"),
            subresource: f("subresource"),
            namespace: f("namespace"),
            name: f("name"),
            path: String::new(),
        }
    } else if let Some(r) = review.pointer("/spec/nonResourceAttributes") {
        auth::Attributes {
            verb: r["verb"].as_str().unwrap_or("").to_string(),
            path: r["path"].as_str().unwrap_or("").to_string(),
            ..Default::default()
        }
    } else {
        return ApiError::bad_request("SelfSubjectAccessReview: spec.resourceAttributes or spec.nonResourceAttributes is required")
            .into_response();
    };
    let (allowed, reason) = auth::authorize(s.store.as_ref(), &user, &attrs).await;
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    review["status"] = if allowed {
        json!({"allowed": true, "reason": reason})
    } else {
        json!({"allowed": false})
    };
    (axum::http::StatusCode::CREATED, Json(review)).into_response()
}

/// `kubectl auth whoami`: the requester as the server authenticated it.
async fn subject_review(axum::Extension(user): axum::Extension<auth::User>, headers: HeaderMap, body: Body) -> Response {
    if let Err(e) = objects::read_body(&headers, body).await {
        return e.into_response();
    }
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    let review = json!({
        "kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": objects::now()},
        "status": {"userInfo": info},
    });
    (axum::http::StatusCode::CREATED, Json(review)).into_response()
}

async fn ok() -> &'static str {
    "ok"
}

async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0+berth-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "berth (rust)",
        "compiler": "rustc",
        "platform": "linux/amd64",
    }))
}

/// The media type of aggregated discovery (kubectl and client-go ask for it first).
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Does the client accept aggregated discovery (v2)?
fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|a| {
            let p: Vec<&str> = a.split(';').map(str::trim).collect();
            p.contains(&"g=apidiscovery.k8s.io") && p.contains(&"v=v2") && p.contains(&"as=APIGroupDiscoveryList")
        })
}

/// A subresource's group, version, kind and verbs, as discovery lists them.
fn subresource_info(r: &resources::Resource, sub: &str) -> (&'static str, &'static str, &'static str, &'static [&'static str]) {
    match sub {
        "status" => (r.group, r.version, r.kind, &["get", "patch", "update"]),
        "scale" => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
        "log" => (r.group, r.version, r.kind, &["get"]),
        "binding" => (r.group, r.version, "Binding", &["create"]),
        "exec" => (r.group, r.version, "PodExecOptions", &["create", "get"]),
        "attach" => (r.group, r.version, "PodAttachOptions", &["create", "get"]),
        "portforward" => (r.group, r.version, "PodPortForwardOptions", &["create", "get"]),
        "eviction" => ("policy", "v1", "Eviction", &["create"]),
        "token" => ("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
        _ => (r.group, r.version, r.kind, &["get"]),
    }
}

/// One group's entry in aggregated discovery: its versions (the preferred first), each with
/// every resource, its kind, scope and verbs.
fn discovery_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"version": v, "resources": discovery_resources(group, v), "freshness": "Current"}))
        .collect();
    json!({
        "metadata": {"name": group, "creationTimestamp": null},
        "versions": versions,
    })
}

fn discovery_resources(group: &str, version: &str) -> Vec<Value> {
    let list = resource_list(group, version).unwrap_or_default();
    let all = list["resources"].as_array().cloned().unwrap_or_default();
    let resources: Vec<Value> = all
        .iter()
        .filter(|r| !r["name"].as_str().unwrap_or("").contains('/'))
        .map(|r| {
            let prefix = format!("{}/", r["name"].as_str().unwrap_or(""));
            let subs: Vec<Value> = all
                .iter()
                .filter_map(|x| {
                    let sub = x["name"].as_str()?.strip_prefix(&prefix)?;
                    Some(json!({
                        "subresource": sub,
                        "responseKind": {"group": x.get("group").cloned().unwrap_or_else(|| json!(group)), "version": x.get("version").cloned().unwrap_or_else(|| json!(version)), "kind": x["kind"]},
                        "verbs": x["verbs"],
                    }))
                })
                .collect();
            json!({
                "subresources": subs,
                "resource": r["name"],
                "responseKind": {"group": group, "version": version, "kind": r["kind"]},
                "scope": if r["namespaced"] == json!(true) { "Namespaced" } else { "Cluster" },
                "singularResource": r["singularName"],
                "verbs": r["verbs"],
                "shortNames": r.get("shortNames").cloned().unwrap_or_else(|| json!([])),
                "categories": r.get("categories").cloned().unwrap_or_else(|| json!([])),
            })
        })
        .collect();
    resources
}

fn aggregated(items: Vec<Value>) -> Response {
    let body = json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items});
    ([("content-type", AGGREGATED)], body.to_string()).into_response()
}

async fn api_versions(State(s): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated(vec![discovery_group("", &["v1"])]);
    }
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": s.advertise.to_string()}],
    }))
    .into_response()
}

/// The review groups: answered, never stored (each with its one resource: name and kind).
const REVIEWS: [(&str, &str, &str, &str); 2] = [
    ("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview"),
    ("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
];

/// The API groups served (besides the core group), each with its versions, the preferred
/// (newest) first.
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut g: Vec<(&str, &str)> = RESOURCES
        .iter()
        .filter(|r| !r.group.is_empty())
        .map(|r| (r.group, r.version))
        .collect();
    g.extend(REVIEWS.iter().map(|r| (r.0, r.1)));
    g.push((METRICS_GROUP, METRICS_VERSION));
    g.sort_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(a.1)));
    g.dedup();
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for (group, version) in g {
        match out.last_mut() {
            Some((last, vs)) if *last == group => vs.push(version),
            _ => out.push((group, vec![version])),
        }
    }
    out
}

fn group_json(name: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": gvs, "preferredVersion": gvs[0]})
}

async fn api_groups(headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated(groups().into_iter().map(|(g, v)| discovery_group(g, &v)).collect());
    }
    let groups: Vec<Value> = groups().into_iter().map(|(g, v)| group_json(g, &v)).collect();
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})).into_response()
}

async fn api_group(axum::extract::Path(g): axum::extract::Path<String>) -> Response {
    match groups().into_iter().find(|(name, _)| *name == g) {
        Some((name, v)) => {
            let mut j = group_json(name, &v);
            j["kind"] = json!("APIGroup");
            j["apiVersion"] = json!("v1");
            Json(j).into_response()
        }
        None => ApiError::no_such_path().into_response(),
    }
}

/// The kinds in the `all` category.
const ALL_CATEGORY: &[&str] = &[
    "pods",
    "replicationcontrollers",
    "services",
    "daemonsets",
    "deployments",
    "replicasets",
    "statefulsets",
    "horizontalpodautoscalers",
    "cronjobs",
    "jobs",
];

/// The APIResourceList of one group/version ("" group: core).
fn resource_list(group: &str, version: &str) -> Option<Value> {
    if (group, version) == (METRICS_GROUP, METRICS_VERSION) {
        return Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1", "resources": [
                {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
                {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
            ]}),
        );
    }
    if let Some((g, v, name, kind)) = REVIEWS.iter().find(|r| (r.0, r.1) == (group, version)) {
        return Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{g}/{v}"), "resources": [
                {"name": name, "singularName": name.trim_end_matches('s'), "namespaced": false, "kind": kind, "verbs": ["create"]},
            ]}),
        );
    }
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| {
            let mut verbs = vec!["create", "delete", "get", "list", "patch", "update", "watch"];
            if r.namespaced {
                verbs.insert(1, "deletecollection");
            }
            let mut out = vec![json!({
                "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
                "verbs": verbs, "shortNames": r.short_names,
            })];
            // The `all` category (`kubectl get all`), as the real server lists it.
            if ALL_CATEGORY.contains(&r.plural) {
                out[0]["categories"] = json!(["all"]);
            }
            for sub in r.subresources {
                let (g, v, kind, verbs) = subresource_info(r, sub);
                let mut e = json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs});
                if !g.is_empty() || v != r.version {
                    e["group"] = json!(g);
                    e["version"] = json!(v);
                }
                out.push(e);
            }
            out
        })
        .collect();
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

async fn core_resources() -> Json<Value> {
    Json(resource_list("", "v1").unwrap_or_default())
}

async fn group_resources(axum::extract::Path((g, v)): axum::extract::Path<(String, String)>) -> Response {
    match resource_list(&g, &v) {
        Some(l) => Json(l).into_response(),
        None => ApiError::no_such_path().into_response(),
    }
}

async fn resource(State(s): State<Arc<ApiServer>>, req: Request<Body>) -> Response {
    let uri = req
        .extensions()
        .get::<OriginalUri>()
        .map(|o| o.0.clone())
        .unwrap_or_else(|| req.uri().clone());
    let path = uri.path().trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|x| !x.is_empty()).collect();
    if let ["apis", METRICS_GROUP, METRICS_VERSION, rest @ ..] = segs.as_slice() {
        let rest: Vec<String> = rest.iter().map(|x| x.to_string()).collect();
        return resource_metrics(&s, &rest, uri.query())
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    let parsed = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => objects::target("", "v1", rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => objects::target(g, v, rest),
        _ => Err(ApiError::no_such_path()),
    };
    let t = match parsed {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let streaming = match t.sub.as_deref() {
        Some("exec") => Some(remote::Kind::Exec),
        Some("attach") => Some(remote::Kind::Attach),
        Some("portforward") => Some(remote::Kind::PortForward),
        _ => None,
    };
    if let (Some(kind), "Pod", &Method::GET | &Method::POST) = (streaming, t.res.kind, req.method()) {
        let r = async {
            let pod = objects::get(&s, &t).await?;
            remote::serve(&s, kind, pod, req).await
        };
        return r.await.unwrap_or_else(IntoResponse::into_response);
    }
    let (parts, body) = req.into_parts();
    let user = parts.extensions.get::<auth::User>().cloned().unwrap_or_else(|| auth::User {
        name: "system:anonymous".into(),
        uid: String::new(),
        groups: vec!["system:unauthenticated".into()],
    });
    let accept = parts.headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let q = objects::query_map(uri.query());
    let whole = !q.get("watch").is_some_and(|w| w == "1" || w == "true") && t.sub.as_deref() != Some("log");
    let work = objects::handle(s, parts.method, t, q, parts.headers, body);
    let resp = auth::REQUESTER.scope(user, work).await.unwrap_or_else(IntoResponse::into_response);
    if whole {
        negotiate(&accept, resp).await
    } else {
        resp
    }
}

const METRICS_GROUP: &str = "metrics.k8s.io";
const METRICS_VERSION: &str = "v1beta1";

/// `metrics.k8s.io/v1beta1` (what metrics-server serves): PodMetrics and NodeMetrics from the
/// node's samples, filtered by label selector.
async fn resource_metrics(s: &ApiServer, rest: &[String], query: Option<&str>) -> Result<Response, ApiError> {
    let Some(m) = &s.metrics else {
        return Err(ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request (no node runs pods here)".to_string(),
        ));
    };
    let q = objects::query_map(query);
    let labels = select::LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let list = |kind: &str, items: Vec<Value>| {
        let items: Vec<Value> = items.into_iter().filter(|i| labels.matches(i)).collect();
        Json(json!({"kind": kind, "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": items})).into_response()
    };
    let not_found = |what: &str, name: &str| ApiError::new(404, "NotFound", format!("{what}.metrics.k8s.io \"{name}\" not found"));
    match rest.as_slice() {
        ["nodes"] | ["nodes", _] => {
            let page = s.store.list("/registry/core/nodes/", Default::default()).await?;
            let nodes: Vec<Value> = page.items.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect();
            let all: Vec<Value> = nodes.iter().filter_map(|n| m.node_metrics(n)).collect();
            match rest.get(1) {
                None => Ok(list("NodeMetricsList", all)),
                Some(name) => all
                    .into_iter()
                    .find(|n| n["metadata"]["name"] == *name)
                    .map(|n| Json(n).into_response())
                    .ok_or_else(|| not_found("nodes", name)),
            }
        }
        ["pods"] | ["namespaces", _, "pods"] | ["namespaces", _, "pods", _] => {
            let ns = (rest.len() > 1).then(|| rest[1]);
            let prefix = match ns {
                Some(ns) => format!("/registry/core/pods/{ns}/"),
                None => "/registry/core/pods/".to_string(),
            };
            let page = s.store.list(&prefix, Default::default()).await?;
            let pods: Vec<Value> = page.items.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect();
            let all = m.pod_metrics(ns, &pods);
            match rest.get(3) {
                None => Ok(list("PodMetricsList", all)),
                Some(name) => all
                    .into_iter()
                    .find(|p| p["metadata"]["name"] == *name)
                    .map(|p| Json(p).into_response())
                    .ok_or_else(|| not_found("pods", name)),
            }
        }
        _ => Err(ApiError::no_such_path()),
    }
}

/// A JSON answer in protobuf when the client prefers `application/vnd.kubernetes.protobuf`
/// (the first type it accepts), as the real server answers client-go's protobuf clients.
/// Watches choose their own framing (`objects::watch`).
async fn negotiate(accept: &str, resp: Response) -> Response {
    let wants = proto::preferred(accept);
    let is_json = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !wants || !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, 256 << 20).await {
        Ok(b) => b,
        Err(e) => return ApiError::internal(format!("reading the answer: {e}")).into_response(),
    };
    let encoded = serde_json::from_slice::<Value>(&bytes)
        .map_err(|e| ApiError::internal(e.to_string()))
        .and_then(|v| proto::encode(&v));
    match encoded {
        Ok(pb) => {
            parts.headers.insert(
                "content-type",
                axum::http::HeaderValue::from_static("application/vnd.kubernetes.protobuf"),
            );
            parts.headers.remove("content-length");
            Response::from_parts(parts, Body::from(pb))
        }
        Err(e) => {
            tracing::warn!(error = %e.message, "an answer has no protobuf form; sent as JSON");
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}
