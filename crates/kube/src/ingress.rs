//! The node's ingress controller: an HTTP (and HTTPS) reverse proxy on the host serving the
//! networking.k8s.io/v1 Ingresses of class `berth` (the IngressClass made at start, marked
//! default, so Ingresses without a class are served too):
//!
//! - rules by host (exact, or `*.example.com` for one label) and path (`Exact`, `Prefix` by
//!   path elements, `ImplementationSpecific` as Prefix; the longest match wins, Exact before
//!   Prefix), else the Ingress's `defaultBackend`, else 404;
//! - backends are Services: a ready endpoint of the named or numbered port, in turn;
//!   `X-Forwarded-For/-Host/-Proto` set as ingress controllers set them; no ready endpoint is a
//!   503;
//! - TLS: `spec.tls` hosts get the certificate of their `kubernetes.io/tls` Secret, chosen by
//!   SNI;
//! - plain HTTP for a TLS host is redirected (308) to HTTPS, unless the Ingress's
//!   `ingress.berth.dev/ssl-redirect` annotation is `"false"`;
//! - protocol upgrades (WebSockets) pass through: after the backend's 101, bytes are copied
//!   both ways;
//! - each served Ingress's status names the address it is served on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::controllers::runtime::{key_of, str_at, Client};
use crate::controllers::{on_change, Informers};

/// The IngressClass this controller serves.
pub const CLASS: &str = "berth";
/// Its controller name.
pub const CONTROLLER: &str = "berth.dev/ingress";

/// Where the proxy listens.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plain HTTP (`0.0.0.0:80`).
    pub http: Option<SocketAddr>,
    /// HTTPS (`0.0.0.0:443`).
    pub https: Option<SocketAddr>,
}

/// Whether this controller serves an Ingress.
fn ours(ing: &Value, default_is_ours: bool) -> bool {
    match ing.pointer("/spec/ingressClassName").and_then(Value::as_str).or(ing
        .pointer("/metadata/annotations/kubernetes.io~1ingress.class")
        .and_then(Value::as_str))
    {
        Some(c) => c == CLASS,
        None => default_is_ours,
    }
}

fn host_matches(rule: &str, host: &str) -> bool {
    if rule.is_empty() {
        return true;
    }
    match rule.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => rule.eq_ignore_ascii_case(host),
    }
}

/// How well a path rule matches (none: it does not); longer is better, Exact beats Prefix.
fn path_score(kind: &str, rule: &str, path: &str) -> Option<(usize, u8)> {
    match kind {
        "Exact" => (rule == path).then_some((rule.len(), 1)),
        _ => {
            let rule = rule.trim_end_matches('/');
            if rule.is_empty() {
                return Some((0, 0));
            }
            let ok = path == rule || path.strip_prefix(rule).is_some_and(|rest| rest.starts_with('/'));
            ok.then_some((rule.len(), 0))
        }
    }
}

/// The annotation that turns off an Ingress's redirect of plain HTTP to HTTPS for its TLS
/// hosts (`"false"`; on by default, as ingress-nginx does it).
pub const SSL_REDIRECT: &str = "ingress.berth.dev/ssl-redirect";

/// Where a request goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service.
    pub service: String,
    /// Its port (`number` or `name`).
    pub port: Value,
    /// Whether plain HTTP for this host is redirected to HTTPS (a TLS host of the Ingress).
    pub redirect: bool,
}

fn redirects(ing: &Value, host: &str) -> bool {
    let off = ing
        .pointer(&format!("/metadata/annotations/{}", SSL_REDIRECT.replace('/', "~1")))
        .and_then(Value::as_str)
        == Some("false");
    !off && ing["spec"]["tls"].as_array().into_iter().flatten().any(|t| {
        t["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|h| host_matches(h, host))
    })
}

/// The backend for a request, if any rule or default takes it.
pub fn route(informers: &Informers, host: &str, path: &str) -> Option<Route> {
    let default_is_ours = informers.ingress_classes.get(CLASS).is_some_and(|c| {
        c.pointer("/metadata/annotations/ingressclass.kubernetes.io~1is-default-class")
            .and_then(Value::as_str)
            == Some("true")
    });
    let mut best: Option<((usize, u8), String, Value, bool)> = None;
    let mut fallback: Option<(String, Value)> = None;
    let mut ingresses = informers.ingresses.list("");
    ingresses.sort_by_key(|i| str_at(i, "/metadata/creationTimestamp").to_string());
    for ing in ingresses.iter().filter(|i| ours(i, default_is_ours)) {
        let ns = str_at(ing, "/metadata/namespace").to_string();
        for rule in ing["spec"]["rules"].as_array().into_iter().flatten() {
            if !host_matches(rule["host"].as_str().unwrap_or(""), host) {
                continue;
            }
            for p in rule.pointer("/http/paths").and_then(Value::as_array).into_iter().flatten() {
                let kind = p["pathType"].as_str().unwrap_or("Prefix");
                let Some(score) = path_score(kind, p["path"].as_str().unwrap_or("/"), path) else {
                    continue;
                };
                // A host rule beats a rule for any host at the same path.
                let score = (
                    score.0 * 2 + usize::from(rule["host"].as_str().is_some_and(|h| !h.is_empty())),
                    score.1,
                );
                if best.as_ref().is_none_or(|b| score > b.0) {
                    best = Some((score, ns.clone(), p["backend"].clone(), redirects(ing, host)));
                }
            }
        }
        if fallback.is_none() {
            if let Some(b) = ing.pointer("/spec/defaultBackend").filter(|b| !b.is_null()) {
                fallback = Some((ns.clone(), b.clone()));
            }
        }
    }
    let (namespace, backend, redirect) = best.map(|(_, ns, b, r)| (ns, b, r)).or(fallback.map(|(ns, b)| (ns, b, false)))?;
    let service = backend.pointer("/service/name").and_then(Value::as_str)?.to_string();
    Some(Route {
        namespace,
        service,
        port: backend["service"]["port"].clone(),
        redirect,
    })
}

/// The ready endpoints of a Service's port (by number or name).
fn endpoints(informers: &Informers, ns: &str, svc: &str, port: &Value) -> Vec<SocketAddr> {
    let Some(s) = informers.services.get(&format!("{ns}/{svc}")) else {
        return vec![];
    };
    let Some(sp) = s["spec"]["ports"].as_array().into_iter().flatten().find(|p| {
        (port
            .get("number")
            .and_then(Value::as_i64)
            .is_some_and(|n| p["port"].as_i64() == Some(n)))
            || (port
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| p["name"].as_str() == Some(n)))
    }) else {
        return vec![];
    };
    let name = sp["name"].as_str().unwrap_or("");
    let Some(ep) = informers.endpoints.get(&format!("{ns}/{svc}")) else {
        return vec![];
    };
    let mut out = Vec::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        let Some(p) = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or("") == name)
            .and_then(|p| p["port"].as_u64())
        else {
            continue;
        };
        for a in subset["addresses"].as_array().into_iter().flatten() {
            if let Ok(ip) = a["ip"].as_str().unwrap_or("").parse::<std::net::IpAddr>() {
                out.push(SocketAddr::new(ip, p as u16));
            }
        }
    }
    out.sort();
    out
}

fn plain(code: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{text}\n")));
    *r.status_mut() = code;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

struct Proxy {
    informers: Arc<Informers>,
    turn: AtomicUsize,
    /// The HTTPS port plain requests for TLS hosts are sent to (none: HTTPS not served).
    https_port: Option<u16>,
}

impl Proxy {
    async fn handle(&self, mut req: Request<Body>, peer: SocketAddr, https: bool) -> Response<Body> {
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(String::from)
            .or_else(|| req.uri().host().map(String::from))
            .unwrap_or_default();
        let bare = host
            .rsplit_once(':')
            .filter(|(_, p)| p.parse::<u16>().is_ok())
            .map_or(host.as_str(), |(h, _)| h)
            .to_string();
        let Some(Route {
            namespace: ns,
            service: svc,
            port,
            redirect,
        }) = route(&self.informers, &bare, req.uri().path())
        else {
            return plain(StatusCode::NOT_FOUND, "default backend - 404");
        };
        if let (false, true, Some(hp)) = (https, redirect, self.https_port) {
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let authority = if hp == 443 { bare.clone() } else { format!("{bare}:{hp}") };
            let mut r = plain(StatusCode::PERMANENT_REDIRECT, "308 Permanent Redirect");
            if let Ok(v) = HeaderValue::from_str(&format!("https://{authority}{pq}")) {
                r.headers_mut().insert("location", v);
            }
            return r;
        }
        let backends = endpoints(&self.informers, &ns, &svc, &port);
        if backends.is_empty() {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("no ready endpoints for service {ns}/{svc}"),
            );
        }
        let target = backends[self.turn.fetch_add(1, Ordering::Relaxed) % backends.len()];
        let Ok(Ok(stream)) = tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::TcpStream::connect(target)).await else {
            return plain(StatusCode::BAD_GATEWAY, &format!("cannot reach {target} ({ns}/{svc})"));
        };
        let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
            return plain(StatusCode::BAD_GATEWAY, &format!("no HTTP from {target} ({ns}/{svc})"));
        };
        tokio::spawn(conn.with_upgrades());
        // A protocol upgrade (WebSockets): once the backend switches, bytes flow both ways.
        let upgrading = req
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
        let client_side = upgrading.then(|| hyper::upgrade::on(&mut req));
        let h = req.headers_mut();
        let forwarded_for = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
            h.insert("x-forwarded-for", v);
        }
        if let Ok(v) = HeaderValue::from_str(&host) {
            h.insert("x-forwarded-host", v);
        }
        h.insert("x-forwarded-proto", HeaderValue::from_static(if https { "https" } else { "http" }));
        // Origin form towards the backend.
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        if let Ok(u) = pq.parse() {
            *req.uri_mut() = u;
        }
        match sender.send_request(req).await {
            Ok(mut resp) => {
                if let (Some(client_side), StatusCode::SWITCHING_PROTOCOLS) = (client_side, resp.status()) {
                    let backend_side = hyper::upgrade::on(&mut resp);
                    tokio::spawn(async move {
                        if let (Ok(c), Ok(b)) = (client_side.await, backend_side.await) {
                            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(c), &mut TokioIo::new(b)).await;
                        }
                    });
                }
                resp.map(Body::new)
            }
            Err(e) => plain(StatusCode::BAD_GATEWAY, &format!("{ns}/{svc}: {e}")),
        }
    }
}

/// The certificates of Ingresses' TLS hosts, chosen by SNI.
struct Certificates {
    informers: Arc<Informers>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Certificates (from the Ingresses' TLS Secrets)")
    }
}

impl Certificates {
    fn lookup(&self, host: &str) -> Option<Arc<rustls::sign::CertifiedKey>> {
        for ing in self.informers.ingresses.list("") {
            let ns = str_at(&ing, "/metadata/namespace");
            for t in ing["spec"]["tls"].as_array().into_iter().flatten() {
                let hosts: Vec<&str> = t["hosts"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                if !hosts.iter().any(|h| host_matches(h, host)) {
                    continue;
                }
                let secret = self
                    .informers
                    .secrets
                    .get(&format!("{ns}/{}", t["secretName"].as_str().unwrap_or("")))?;
                use base64::Engine;
                let field = |k: &str| {
                    secret["data"][k]
                        .as_str()
                        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                };
                let (crt, key) = (field("tls.crt")?, field("tls.key")?);
                let certs: Vec<_> = rustls_pemfile::certs(&mut crt.as_slice()).filter_map(Result::ok).collect();
                let key = rustls_pemfile::private_key(&mut key.as_slice()).ok()??;
                let signer = rustls::crypto::ring::sign::any_supported_type(&key).ok()?;
                return Some(Arc::new(rustls::sign::CertifiedKey::new(certs, signer)));
            }
        }
        None
    }
}

impl rustls::server::ResolvesServerCert for Certificates {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.lookup(hello.server_name()?)
    }
}

async fn serve(listener: tokio::net::TcpListener, proxy: Arc<Proxy>, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (proxy, tls) = (proxy.clone(), tls.clone());
        tokio::spawn(async move {
            let https = tls.is_some();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let proxy = proxy.clone();
                async move { Ok::<_, std::convert::Infallible>(proxy.handle(req.map(Body::new), peer, https).await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match tls {
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(tcp).await {
                        let _ = builder.serve_connection(TokioIo::new(s), svc).with_upgrades().await;
                    }
                }
                None => {
                    let _ = builder.serve_connection(TokioIo::new(tcp), svc).with_upgrades().await;
                }
            }
        });
    }
}

/// Serve the Ingresses until the daemon stops; keep their status.
pub async fn run(informers: Arc<Informers>, client: Client, cfg: Config) {
    let proxy = Arc::new(Proxy {
        informers: informers.clone(),
        turn: AtomicUsize::new(0),
        https_port: cfg.https.map(|a| a.port()),
    });
    let mut address = None;
    if let Some(addr) = cfg.http {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                address = Some(addr);
                tracing::info!(%addr, "ingress (HTTP) listening");
                tokio::spawn(serve(l, proxy.clone(), None));
            }
            Err(e) => tracing::warn!(%addr, error = %e, "ingress (HTTP) not served"),
        }
    }
    if let Some(addr) = cfg.https {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| {
                b.with_no_client_auth().with_cert_resolver(Arc::new(Certificates {
                    informers: informers.clone(),
                }))
            });
        match (tls, tokio::net::TcpListener::bind(addr).await) {
            (Ok(mut tls), Ok(l)) => {
                tls.alpn_protocols = vec![b"http/1.1".to_vec()];
                tracing::info!(%addr, "ingress (HTTPS) listening");
                address = address.or(Some(addr));
                tokio::spawn(serve(l, proxy.clone(), Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))));
            }
            (Err(e), _) => tracing::warn!(error = %e, "ingress (HTTPS) not served"),
            (_, Err(e)) => tracing::warn!(%addr, error = %e, "ingress (HTTPS) not served"),
        }
    }
    let Some(addr) = address else { return };
    let ip = if addr.ip().is_unspecified() {
        crate::agent::internal_ip().unwrap_or_else(|| "127.0.0.1".into())
    } else {
        addr.ip().to_string()
    };
    // Status: the address each served Ingress is reached at.
    let wake = Arc::new(tokio::sync::Notify::new());
    for i in [&informers.ingresses, &informers.ingress_classes] {
        let (w1, w2) = (wake.clone(), wake.clone());
        on_change(i, move |_| w1.notify_one(), move || w2.notify_one());
    }
    let res = crate::apiserver::resources::find("networking.k8s.io", "v1", "ingresses").expect("ingresses are served");
    loop {
        let default_is_ours = informers.ingress_classes.get(CLASS).is_some_and(|c| {
            c.pointer("/metadata/annotations/ingressclass.kubernetes.io~1is-default-class")
                .and_then(Value::as_str)
                == Some("true")
        });
        for ing in informers.ingresses.list("") {
            let want = if ours(&ing, default_is_ours) {
                json!({"loadBalancer": {"ingress": [{"ip": ip, "ports": [{"port": addr.port(), "protocol": "TCP"}]}]}})
            } else {
                json!({"loadBalancer": {}})
            };
            if ing["status"] != want {
                let mut o = (*ing).clone();
                o["status"] = want;
                if let Err(e) = client.update_status(res, &o).await {
                    if e.code != 409 && e.code != 404 {
                        tracing::warn!(ingress = %key_of(&ing), error = %e.message, "ingress status");
                    }
                }
            }
        }
        wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_paths_match_as_the_ingress_spec_says() {
        assert!(host_matches("foo.example.com", "FOO.example.com"));
        assert!(host_matches("*.example.com", "bar.example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert_eq!(path_score("Prefix", "/foo", "/foo/bar"), Some((4, 0)));
        assert_eq!(path_score("Prefix", "/foo/", "/foo"), Some((4, 0)));
        assert_eq!(path_score("Prefix", "/foo", "/foobar"), None);
        assert_eq!(path_score("Exact", "/foo", "/foo"), Some((4, 1)));
        assert_eq!(path_score("Exact", "/foo", "/foo/"), None);
        assert_eq!(path_score("Prefix", "/", "/anything"), Some((0, 0)));
    }
}
