//! The pull/push client: the distribution API as a client sees it, with the auth flows registries
//! use (anonymous, basic, and the Bearer token challenge), HTTPS by default and plain HTTP for
//! insecure registries (loopback and those configured).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use oci::Digest;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

/// Errors of registry requests.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The registry could not be reached (connection, TLS, protocol).
    #[error("{registry}: {message}")]
    Transport { registry: String, message: String },
    /// The registry wants credentials we do not have, or refused the ones we gave.
    #[error("{registry}: unauthorized: {message}")]
    Unauthorized { registry: String, message: String },
    /// The repository, manifest or blob does not exist (or is hidden from us).
    #[error("{0}")]
    NotFound(String),
    /// The registry answered with an error.
    #[error("{registry}: {status}: {message}")]
    Status { registry: String, status: u16, message: String },
    /// What the registry sent is not what it should be (bad digest, bad manifest).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Credentials for one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// An identity (refresh) token, used instead of the password when set.
    pub identity_token: String,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.username.is_empty() && self.password.is_empty() && self.identity_token.is_empty()
    }
}

/// Where a repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `registry-1.docker.io`, `localhost:5000`, ...
    pub registry: String,
    /// `library/busybox`, `team/model`.
    pub name: String,
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// The media types a client accepts for manifests, most specific first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Is `registry` (host[:port]) served over plain HTTP by default? Loopback, as Docker does.
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A client for any number of registries; cheap to clone.
#[derive(Clone)]
pub struct Client {
    secure: reqwest::Client,
    /// For insecure registries: TLS without verification.
    lax: reqwest::Client,
    insecure: Arc<Vec<String>>,
    /// Directories of per-registry certificates (`DIR/HOST[:PORT]/`, Docker's certs.d).
    certs_dirs: Arc<Vec<PathBuf>>,
    /// Registry → the certs.d files last read for it and the client trusting them (`None`: the
    /// registry has no certs.d entry).
    trusted: Arc<Mutex<HashMap<String, TrustedClient>>>,
    /// Registry → the scheme that worked.
    schemes: Arc<Mutex<HashMap<String, &'static str>>>,
    /// (registry, scope) → bearer token.
    tokens: Arc<Mutex<HashMap<(String, String), String>>>,
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Default, PartialEq)]
struct Challenge {
    scheme: String,
    params: HashMap<String, String>,
}

fn parse_challenge(h: &str) -> Challenge {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((k, r)) = rest.split_once('=') else { break };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let r = r.trim_start();
        let (v, r) = if let Some(r) = r.strip_prefix('"') {
            match r.find('"') {
                Some(e) => (&r[..e], &r[e + 1..]),
                None => (r, ""),
            }
        } else {
            match r.find(',') {
                Some(e) => (&r[..e], &r[e..]),
                None => (r, ""),
            }
        };
        params.insert(k, v.to_string());
        rest = r.trim_start_matches([',', ' ']);
    }
    Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    }
}

/// The registry's error message from a `{"errors":[...]}` body, or the body itself.
fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(errs) = v.get("errors").and_then(|e| e.as_array()) {
            let msgs: Vec<String> = errs
                .iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code}: {msg}").trim_matches([':', ' ']).to_string()
                })
                .collect();
            return msgs.join("; ");
        }
    }
    String::from_utf8_lossy(body).trim().chars().take(300).collect()
}

/// A request body that can be sent again (for retries after an auth challenge).
#[derive(Clone)]
pub enum Body {
    Empty,
    Bytes(Bytes),
    /// A file streamed from disk, counting the bytes sent into `sent` (for progress).
    Counted {
        path: std::path::PathBuf,
        len: u64,
        sent: Arc<std::sync::atomic::AtomicU64>,
    },
}

impl Body {
    async fn into_reqwest(self) -> Result<(reqwest::Body, Option<u64>), std::io::Error> {
        Ok(match self {
            Body::Empty => (reqwest::Body::from(Vec::new()), Some(0)),
            Body::Bytes(b) => {
                let n = b.len() as u64;
                (reqwest::Body::from(b), Some(n))
            }
            Body::Counted { path, len, sent } => {
                sent.store(0, std::sync::atomic::Ordering::Relaxed);
                let f = tokio::fs::File::open(&path).await?;
                (reqwest::Body::wrap_stream(file_stream(f, sent)), Some(len))
            }
        })
    }
}

/// A file as a stream of chunks, counting what was read into `sent`.
fn file_stream(f: tokio::fs::File, sent: Arc<std::sync::atomic::AtomicU64>) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold((f, sent), |(mut f, sent)| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                sent.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                Some((Ok(Bytes::from(buf)), (f, sent)))
            }
            Err(e) => Some((Err(e), (f, sent))),
        }
    })
}

/// The CA files found for one registry: (path, length, modification time).
type CertsFingerprint = Vec<(PathBuf, u64, Option<std::time::SystemTime>)>;

/// A registry's certs.d files as last read, and the client built from them (`None`: no entry).
type TrustedClient = (CertsFingerprint, Option<(reqwest::Client, bool)>);

/// Where Berth looks for per-registry CA certificates when not told otherwise: its own directory,
/// then Docker's, so a machine set up for Docker works unchanged.
pub const DEFAULT_CERTS_DIRS: [&str; 2] = ["/etc/berth/certs.d", "/etc/docker/certs.d"];

impl Client {
    /// A client; `insecure` registries (host[:port]) may use plain HTTP or unverified TLS, as may
    /// loopback addresses — unless `certs_dirs` hold CA certificates for them (`DIR/HOST[:PORT]/
    /// *.crt`), which are then trusted besides the system's roots, and required. A client
    /// certificate there (`NAME.cert` with its `NAME.key`) is presented to the registry.
    pub fn new(insecure: Vec<String>, certs_dirs: Vec<PathBuf>) -> Result<Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |lax: bool| {
            Self::builder(lax).build().map_err(|e| ClientError::Transport {
                registry: String::new(),
                message: format!("cannot create the HTTP client: {e}"),
            })
        };
        Ok(Client {
            secure: build(false)?,
            lax: build(true)?,
            insecure: Arc::new(insecure),
            certs_dirs: Arc::new(certs_dirs),
            trusted: Arc::default(),
            schemes: Arc::default(),
            tokens: Arc::default(),
        })
    }

    /// The files under the certs directories for `registry`: CA certificates (`*.crt`) and client
    /// certificate pairs (`NAME.cert` with `NAME.key`), Docker's convention.
    fn certs_files(&self, registry: &str) -> CertsFingerprint {
        // A registry name is host[:port]; never let one walk out of the directory.
        if registry.is_empty() || registry.contains('/') || registry.starts_with('.') {
            return Vec::new();
        }
        let mut out = Vec::new();
        for dir in self.certs_dirs.iter() {
            let Ok(rd) = std::fs::read_dir(dir.join(registry)) else { continue };
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "crt" || x == "cert" || x == "key"))
                .collect();
            files.sort();
            for p in files {
                if let Ok(m) = std::fs::metadata(&p) {
                    out.push((p, m.len(), m.modified().ok()));
                }
            }
        }
        out
    }

    /// A client for `registry` built from its certs.d files, if it has any (see [`Client::new`]);
    /// built again when the files change. The flag: whether TLS goes unverified (no CA given for
    /// a loopback or insecure registry), which also allows falling back to plain HTTP.
    fn certs_client(&self, registry: &str) -> Result<Option<(reqwest::Client, bool)>> {
        let files = self.certs_files(registry);
        if let Some((seen, c)) = self.trusted.lock().unwrap().get(registry) {
            if *seen == files {
                return Ok(c.clone());
            }
        }
        let client = if files.is_empty() {
            None
        } else {
            Some(self.build_certs_client(registry, &files)?)
        };
        self.trusted.lock().unwrap().insert(registry.to_string(), (files, client.clone()));
        Ok(client)
    }

    fn build_certs_client(&self, registry: &str, files: &CertsFingerprint) -> Result<(reqwest::Client, bool)> {
        let bad = |p: &std::path::Path, m: String| ClientError::Transport {
            registry: registry.to_string(),
            message: format!("{}: {m}", p.display()),
        };
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| bad(p, e.to_string()));
        let has = |p: &std::path::Path| files.iter().any(|(f, _, _)| f == p);
        let mut roots = Vec::new();
        let mut identity = None;
        for (p, _, _) in files {
            match p.extension().and_then(|x| x.to_str()) {
                Some("crt") => {
                    let certs = reqwest::Certificate::from_pem_bundle(&read(p)?).map_err(|e| bad(p, error_chain(&e)))?;
                    if certs.is_empty() {
                        return Err(bad(p, "no PEM certificate in this CA file".into()));
                    }
                    roots.extend(certs);
                }
                Some("cert") => {
                    let key = p.with_extension("key");
                    if !has(&key) {
                        return Err(bad(
                            p,
                            format!(
                                "client certificate without its key {} (CA certificates take the extension .crt)",
                                key.display()
                            ),
                        ));
                    }
                    if identity.is_some() {
                        tracing::warn!(%registry, file = %p.display(), "more than one client certificate; using the first");
                        continue;
                    }
                    let mut pem = read(&key)?;
                    pem.push(b'\n');
                    pem.extend(read(p)?);
                    identity = Some(reqwest::Identity::from_pem(&pem).map_err(|e| bad(p, error_chain(&e)))?);
                }
                _ => {
                    let cert = p.with_extension("cert");
                    if !has(&cert) {
                        return Err(bad(p, format!("key without its client certificate {}", cert.display())));
                    }
                }
            }
        }
        let lax = roots.is_empty() && (is_loopback(registry) || self.insecure.iter().any(|r| r == registry));
        let mut b = Self::builder(lax);
        for c in roots {
            b = b.add_root_certificate(c);
        }
        if let Some(id) = identity {
            b = b.identity(id);
        }
        tracing::debug!(%registry, files = files.len(), "using certs.d");
        let c = b.build().map_err(|e| ClientError::Transport {
            registry: registry.to_string(),
            message: format!("cannot create the HTTP client: {}", error_chain(&e)),
        })?;
        Ok((c, lax))
    }

    /// The HTTP client for `registry`, and whether it may fall back to plain HTTP: one built from
    /// its certs.d files, the unverifying one for loopback and insecure registries, else the one
    /// trusting the system's roots.
    fn http_for(&self, registry: &str) -> Result<(reqwest::Client, bool)> {
        if let Some(c) = self.certs_client(registry)? {
            return Ok(c);
        }
        if is_loopback(registry) || self.insecure.iter().any(|r| r == registry) {
            return Ok((self.lax.clone(), true));
        }
        Ok((self.secure.clone(), false))
    }

    fn builder(lax: bool) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .user_agent(concat!("Berth/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(10))
            .danger_accept_invalid_certs(lax)
            .connect_timeout(std::time::Duration::from_secs(30))
    }

    fn base(&self, registry: &str, scheme: &str) -> String {
        format!("{scheme}://{registry}")
    }

    /// Send a request to `registry` at `path` (or an absolute URL), answering auth challenges with
    /// `creds`. `scope` is the token scope the request needs (`repository:x:pull`).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        registry: &str,
        method: Method,
        path_or_url: &str,
        headers: HeaderMap,
        body: Body,
        creds: &Credentials,
        scope: &str,
    ) -> Result<reqwest::Response> {
        let known = self.schemes.lock().unwrap().get(registry).copied();
        let schemes: Vec<&'static str> = match known {
            Some(s) => vec![s],
            None if self.http_for(registry)?.1 => vec![self.probe_scheme(registry).await],
            None => vec!["https"],
        };
        let mut last_err = None;
        for scheme in schemes {
            match self
                .send_scheme(registry, scheme, method.clone(), path_or_url, &headers, body.clone(), creds, scope)
                .await
            {
                Ok(r) => {
                    self.schemes.lock().unwrap().insert(registry.to_string(), scheme);
                    return Ok(r);
                }
                Err(e @ ClientError::Transport { .. }) => last_err = Some(e),
                Err(e) => {
                    self.schemes.lock().unwrap().insert(registry.to_string(), scheme);
                    return Err(e);
                }
            }
        }
        Err(last_err.expect("one scheme tried"))
    }

    /// Which scheme an insecure registry speaks: HTTPS if `GET /v2/` over it gets any HTTP answer
    /// within a few seconds (a plain-HTTP server may never answer a TLS hello), else HTTP.
    async fn probe_scheme(&self, registry: &str) -> &'static str {
        let probe = self
            .lax
            .get(format!("https://{registry}/v2/"))
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await;
        let scheme = if probe.is_ok() { "https" } else { "http" };
        self.schemes.lock().unwrap().insert(registry.to_string(), scheme);
        scheme
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_scheme(
        &self,
        registry: &str,
        scheme: &'static str,
        method: Method,
        path_or_url: &str,
        headers: &HeaderMap,
        body: Body,
        creds: &Credentials,
        scope: &str,
    ) -> Result<reqwest::Response> {
        let (http, _) = self.http_for(registry)?;
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base(registry, scheme), path_or_url)
        };
        let transport = |e: reqwest::Error| ClientError::Transport {
            registry: registry.to_string(),
            message: format!("{} {url}: {}", method, error_chain(&e)),
        };
        let token_key = (registry.to_string(), scope.to_string());
        let mut auth: Option<HeaderValue> = self
            .tokens
            .lock()
            .unwrap()
            .get(&token_key)
            .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok());
        for attempt in 0..2 {
            let (b, len) = body.clone().into_reqwest().await.map_err(|e| ClientError::Transport {
                registry: registry.to_string(),
                message: format!("reading the upload: {e}"),
            })?;
            let mut req = http.request(method.clone(), &url).headers(headers.clone()).body(b);
            if let Some(n) = len {
                req = req.header(CONTENT_LENGTH, n);
            }
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a.clone());
            }
            let resp = req.send().await.map_err(transport)?;
            if resp.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                if resp.status() == StatusCode::UNAUTHORIZED {
                    let msg = error_message(&resp.bytes().await.unwrap_or_default());
                    return Err(ClientError::Unauthorized {
                        registry: registry.to_string(),
                        message: if creds.is_empty() {
                            format!("{msg} (no credentials: log in first)")
                        } else {
                            msg
                        },
                    });
                }
                return Ok(resp);
            }
            // Answer the challenge.
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(parse_challenge)
                .unwrap_or_default();
            auth = Some(match challenge.scheme.as_str() {
                "bearer" => {
                    let token = self.fetch_token(&http, registry, &challenge, creds, scope).await?;
                    self.tokens.lock().unwrap().insert(token_key.clone(), token.clone());
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ClientError::Invalid("bad token".into()))?
                }
                "basic" if !creds.is_empty() => basic(creds)?,
                _ => {
                    return Err(ClientError::Unauthorized {
                        registry: registry.to_string(),
                        message: "authentication required (log in first)".into(),
                    })
                }
            });
        }
        unreachable!("the loop returns")
    }

    /// Get a token from the challenge's realm for `scope`.
    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        registry: &str,
        ch: &Challenge,
        creds: &Credentials,
        scope: &str,
    ) -> Result<String> {
        let realm = ch.params.get("realm").ok_or_else(|| ClientError::Unauthorized {
            registry: registry.to_string(),
            message: "Bearer challenge without a realm".into(),
        })?;
        let mut req = http.get(realm);
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = ch.params.get("service") {
            q.push(("service", s));
        }
        let scope = ch
            .params
            .get("scope")
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(scope);
        if !scope.is_empty() {
            q.push(("scope", scope));
        }
        if !creds.identity_token.is_empty() {
            // OAuth2 refresh-token grant.
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", creds.identity_token.as_str()),
                ("service", ch.params.get("service").map(String::as_str).unwrap_or("")),
                ("scope", scope),
                ("client_id", "berth"),
            ];
            req = http.post(realm).form(&form);
        } else {
            req = req.query(&q);
            if !creds.is_empty() {
                req = req.basic_auth(&creds.username, Some(&creds.password));
            }
        }
        let resp = req.send().await.map_err(|e| ClientError::Transport {
            registry: registry.to_string(),
            message: format!("token request to {realm}: {}", error_chain(&e)),
        })?;
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ClientError::Unauthorized {
                registry: registry.to_string(),
                message: format!("token server {realm} said {status}: {}", error_message(&body)),
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ClientError::Invalid(format!("token response from {realm}: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(String::from)
            .ok_or_else(|| ClientError::Invalid(format!("token response from {realm} has no token")))
    }

    async fn check(registry: &str, resp: reqwest::Response, what: &str) -> Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.bytes().await.unwrap_or_default();
        let message = error_message(&body);
        if status == StatusCode::NOT_FOUND {
            return Err(ClientError::NotFound(format!("{what}: not found: {message}")));
        }
        Err(ClientError::Status {
            registry: registry.to_string(),
            status: status.as_u16(),
            message: format!("{what}: {message}"),
        })
    }

    /// GET any http(s) URL into `out` (a Dockerfile's `ADD <url>`), following redirects; returns the
    /// file name the final URL's path gives (empty if none). Plain HTTP and unverified TLS only for
    /// loopback and insecure hosts, as for registries.
    pub async fn download(&self, url: &str, out: &mut tokio::fs::File) -> Result<String> {
        use tokio::io::AsyncWriteExt;
        let parsed = reqwest::Url::parse(url).map_err(|e| ClientError::Invalid(format!("invalid URL {url:?}: {e}")))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(ClientError::Invalid(format!("{url}: no host"))),
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::Invalid(format!("{url}: only http and https URLs can be fetched")));
        }
        let (http, _) = self.http_for(&host)?;
        let transport = |e: reqwest::Error| ClientError::Transport {
            registry: host.clone(),
            message: format!("GET {url}: {}", error_chain(&e)),
        };
        let resp = http.get(parsed.clone()).send().await.map_err(transport)?;
        let resp = Self::check(&host, resp, &format!("GET {url}")).await?;
        let name = resp
            .url()
            .path_segments()
            .and_then(|mut s| s.next_back().map(String::from))
            .map(|n| percent_encoding::percent_decode_str(&n).decode_utf8_lossy().into_owned())
            .filter(|n| n != "." && n != "..")
            .unwrap_or_default();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(transport)?;
            out.write_all(&chunk)
                .await
                .map_err(|e| ClientError::Invalid(format!("saving {url}: {e}")))?;
        }
        out.flush().await.map_err(|e| ClientError::Invalid(format!("saving {url}: {e}")))?;
        Ok(name)
    }

    /// Check that the registry answers and accepts `creds` (`docker login`).
    pub async fn login(&self, registry: &str, creds: &Credentials) -> Result<()> {
        let resp = self
            .send(registry, Method::GET, "/v2/", HeaderMap::new(), Body::Empty, creds, "")
            .await?;
        Self::check(registry, resp, "/v2/").await.map(|_| ())
    }

    /// Fetch a manifest (or index) by tag or digest: its bytes, media type and digest.
    pub async fn get_manifest(&self, repo: &Repository, reference: &str, creds: &Credentials) -> Result<(Bytes, String, Digest)> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let path = format!("/v2/{}/manifests/{reference}", repo.name);
        let scope = format!("repository:{}:pull", repo.name);
        let resp = self.send(&repo.registry, Method::GET, &path, h, Body::Empty, creds, &scope).await?;
        let resp = Self::check(&repo.registry, resp, &format!("manifest for {repo}:{reference}")).await?;
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let body = resp.bytes().await.map_err(|e| ClientError::Transport {
            registry: repo.registry.clone(),
            message: format!("reading the manifest: {e}"),
        })?;
        let digest = Digest::of(&body);
        if let Ok(want) = Digest::parse(reference) {
            if want != digest {
                return Err(ClientError::Invalid(format!(
                    "manifest {reference}: the registry sent content with digest {digest}"
                )));
            }
        }
        // The media type from the document when the header is vague.
        let media_type = if media_type.is_empty() || media_type == "application/json" || media_type == "text/plain" {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(String::from))
                .unwrap_or(media_type)
        } else {
            media_type
        };
        Ok((body, media_type, digest))
    }

    /// The referrers of manifest `digest` (OCI 1.1): the descriptors the referrers API lists, or,
    /// from a registry without that API, those of the fallback tag `sha256-<hex>`. Empty when
    /// there are none.
    pub async fn referrers(&self, repo: &Repository, digest: &Digest, creds: &Credentials) -> Result<Vec<oci::spec::Descriptor>> {
        let path = format!("/v2/{}/referrers/{digest}", repo.name);
        let scope = format!("repository:{}:pull", repo.name);
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(oci::spec::MEDIA_OCI_INDEX));
        let resp = self.send(&repo.registry, Method::GET, &path, h, Body::Empty, creds, &scope).await?;
        let body = if resp.status() == StatusCode::NOT_FOUND {
            match self.get_manifest(repo, &format!("sha256-{}", digest.hex()), creds).await {
                Ok((b, _, _)) => b,
                Err(ClientError::NotFound(_)) => return Ok(vec![]),
                Err(e) => return Err(e),
            }
        } else {
            let resp = Self::check(&repo.registry, resp, &format!("referrers of {repo}@{digest}")).await?;
            resp.bytes().await.map_err(|e| ClientError::Transport {
                registry: repo.registry.clone(),
                message: format!("reading the referrers: {e}"),
            })?
        };
        let index = oci::spec::Index::parse(&body).map_err(|e| ClientError::Invalid(format!("referrers of {repo}@{digest}: {e}")))?;
        Ok(index.manifests)
    }

    /// Stream a blob: the response (its body yields the bytes) and its length if known.
    pub async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        creds: &Credentials,
    ) -> Result<(impl Stream<Item = Result<Bytes>>, Option<u64>)> {
        let path = format!("/v2/{}/blobs/{digest}", repo.name);
        let scope = format!("repository:{}:pull", repo.name);
        let resp = self
            .send(&repo.registry, Method::GET, &path, HeaderMap::new(), Body::Empty, creds, &scope)
            .await?;
        let resp = Self::check(&repo.registry, resp, &format!("blob {digest}")).await?;
        let len = resp.content_length();
        let registry = repo.registry.clone();
        let s = resp.bytes_stream().map(move |r| {
            r.map_err(|e| ClientError::Transport {
                registry: registry.clone(),
                message: format!("downloading: {}", error_chain(&e)),
            })
        });
        Ok((s, len))
    }

    /// Does the repository have this blob?
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest, creds: &Credentials) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{digest}", repo.name);
        let scope = format!("repository:{}:pull,push", repo.name);
        let resp = self
            .send(&repo.registry, Method::HEAD, &path, HeaderMap::new(), Body::Empty, creds, &scope)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(ClientError::Status {
                registry: repo.registry.clone(),
                status: s.as_u16(),
                message: format!("checking blob {digest}"),
            }),
        }
    }

    /// Upload a blob (one POST to open the session, one PUT with the content).
    pub async fn push_blob(&self, repo: &Repository, digest: &Digest, body: Body, creds: &Credentials) -> Result<()> {
        let scope = format!("repository:{}:pull,push", repo.name);
        let path = format!("/v2/{}/blobs/uploads/", repo.name);
        let resp = self
            .send(&repo.registry, Method::POST, &path, HeaderMap::new(), Body::Empty, creds, &scope)
            .await?;
        let resp = Self::check(&repo.registry, resp, &format!("starting the upload of {digest}")).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(());
        }
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Invalid(format!("{}: upload session without a Location", repo.registry)))?
            .to_string();
        let sep = if loc.contains('?') { '&' } else { '?' };
        let url = format!("{loc}{sep}digest={digest}");
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        let resp = self.send(&repo.registry, Method::PUT, &url, h, body, creds, &scope).await?;
        Self::check(&repo.registry, resp, &format!("uploading {digest}")).await?;
        Ok(())
    }

    /// Mount a blob from another repository of the same registry; false if the registry did not.
    pub async fn mount_blob(&self, repo: &Repository, from: &str, digest: &Digest, creds: &Credentials) -> Result<bool> {
        let scope = format!("repository:{}:pull,push repository:{from}:pull", repo.name);
        let path = format!("/v2/{}/blobs/uploads/?mount={digest}&from={from}", repo.name);
        let resp = self
            .send(&repo.registry, Method::POST, &path, HeaderMap::new(), Body::Empty, creds, &scope)
            .await?;
        Ok(resp.status() == StatusCode::CREATED)
    }

    /// Store a manifest under a tag or digest; returns the digest the registry reports.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        data: Bytes,
        creds: &Credentials,
    ) -> Result<Digest> {
        let scope = format!("repository:{}:pull,push", repo.name);
        let path = format!("/v2/{}/manifests/{reference}", repo.name);
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| ClientError::Invalid("bad media type".into()))?,
        );
        let digest = Digest::of(&data);
        let resp = self
            .send(&repo.registry, Method::PUT, &path, h, Body::Bytes(data), creds, &scope)
            .await?;
        Self::check(&repo.registry, resp, &format!("putting manifest {repo}:{reference}")).await?;
        Ok(digest)
    }
}

fn basic(c: &Credentials) -> Result<HeaderValue> {
    use base64::Engine as _;
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password));
    HeaderValue::from_str(&format!("Basic {v}")).map_err(|_| ClientError::Invalid("credentials are not valid header text".into()))
}

/// An error and its sources, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(b.scheme, "basic");
        assert_eq!(b.params["realm"], "Registry Realm");
    }

    #[test]
    fn loopback_is_insecure() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry-1.docker.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn error_bodies() {
        let b = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(error_message(b), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(error_message(b"plain text"), "plain text");
    }
}
