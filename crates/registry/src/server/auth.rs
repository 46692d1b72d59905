//! Access control.
//!
//! **Who**: a request is anonymous, a user proven by HTTP basic auth against an htpasswd file
//! (bcrypt hashes only, as `htpasswd -B` writes them), or the holder of a bearer token this server
//! issued at `GET /token`.
//!
//! **What**: actions are `pull`, `push` and `delete` on a repository, plus listing the catalog.
//! - Anonymous clients may do what [`Anonymous`] says: nothing, `pull`, or everything (`push`).
//! - A user may do what anonymous clients may, plus, without an [`AccessRules`] file, everything on
//!   every repository; with one, what its rules grant.
//! - A token carries the actions granted when it was issued (what the token request asked for,
//!   narrowed to what the user may do), signed with HMAC-SHA256, valid for [`TokenConfig::ttl`].
//! - The catalog is listed to users, token holders whose token grants `registry:catalog:*`, and
//!   anyone when anonymous access is not `None`; it only shows the repositories the caller may pull.
//!
//! **Challenges**: without [`TokenConfig`] a refused anonymous request gets
//! `401` + `WWW-Authenticate: Basic realm="..."`, and a user lacking the right gets `403 DENIED`.
//! With it, refusals are `401` + `WWW-Authenticate: Bearer realm="<realm>",service="<service>",
//! scope="repository:<name>:<actions>"`, the flow docker, containerd and skopeo follow; basic
//! credentials are still accepted on every endpoint.
//!
//! `GET /v2/` (the clients' probe) answers `200` without credentials only if anonymous clients may
//! push, or (basic mode) may pull and no users exist; otherwise it challenges, so clients learn how
//! to authenticate before they push. (Docker never sends basic credentials it was not challenged for,
//! and cannot pull anonymously from a basic challenge: for anonymous pull next to authenticated push,
//! use tokens.)

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::{ApiError, ApiResult, Code, Error, Result};
use super::names::RepoName;

/// What unauthenticated clients may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// Nothing: every request needs credentials.
    #[default]
    None,
    /// Pull from every repository (and list the catalog).
    Pull,
    /// Everything: pull, push and delete.
    Push,
}

impl FromStr for Anonymous {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Anonymous::None),
            "pull" => Ok(Anonymous::Pull),
            "push" => Ok(Anonymous::Push),
            _ => Err(format!("{s:?}: expected none, pull or push")),
        }
    }
}

impl fmt::Display for Anonymous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Anonymous::None => "none",
            Anonymous::Pull => "pull",
            Anonymous::Push => "push",
        })
    }
}

impl Anonymous {
    fn actions(self) -> Actions {
        match self {
            Anonymous::None => Actions::NONE,
            Anonymous::Pull => Actions::PULL,
            Anonymous::Push => Actions::ALL,
        }
    }
}

/// A set of repository actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(2);
    pub const DELETE: Actions = Actions(4);
    pub const ALL: Actions = Actions(7);

    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }
    pub fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The action names, in the order clients write them.
    pub fn names(self) -> Vec<&'static str> {
        [(Actions::PULL, "pull"), (Actions::PUSH, "push"), (Actions::DELETE, "delete")]
            .into_iter()
            .filter(|(a, _)| self.contains(*a))
            .map(|(_, n)| n)
            .collect()
    }

    /// Parse one action name (`*` is all of them).
    pub fn parse_one(s: &str) -> Option<Actions> {
        match s {
            "pull" => Some(Actions::PULL),
            "push" => Some(Actions::PUSH),
            "delete" => Some(Actions::DELETE),
            "*" => Some(Actions::ALL),
            _ => None,
        }
    }
}

/// Users and their bcrypt password hashes, read from an htpasswd file.
#[derive(Clone, Default)]
pub struct Htpasswd {
    users: BTreeMap<String, String>,
}

impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Htpasswd {
    /// Read an htpasswd file (`user:$2y$...` lines; `#` comments). Only bcrypt is accepted: the
    /// other formats htpasswd can write (MD5, SHA-1, crypt) are weak.
    pub fn load(path: &Path) -> Result<Htpasswd> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Htpasswd {
            path: path.to_path_buf(),
            line: 0,
            msg: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parse htpasswd text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Htpasswd> {
        let mut users = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |msg: &str| Error::Htpasswd {
                path: path.to_path_buf(),
                line: i + 1,
                msg: msg.to_string(),
            };
            let (user, hash) = line.split_once(':').ok_or_else(|| err("expected user:hash"))?;
            if user.is_empty() {
                return Err(err("empty user name"));
            }
            if !["$2y$", "$2a$", "$2b$", "$2x$"].iter().any(|p| hash.starts_with(p)) {
                return Err(err(
                    "unsupported password hash: only bcrypt is accepted (create it with `htpasswd -B`)",
                ));
            }
            // The first entry of a user wins, as with Apache.
            users.entry(user.to_string()).or_insert_with(|| hash.to_string());
        }
        Ok(Htpasswd { users })
    }

    /// Whether no user is defined.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Check a password (slow: bcrypt). Unknown users and malformed hashes fail.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            None => false,
        }
    }

    fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }
}

/// Which repositories a rule covers.
#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    /// `*`
    Any,
    /// `team/*`: every repository under `team/`.
    Under(String),
    /// An exact repository name.
    Exact(String),
}

impl Pattern {
    fn matches(&self, repo: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Under(p) => repo.len() > p.len() && repo.starts_with(p.as_str()) && repo.as_bytes()[p.len()] == b'/',
            Pattern::Exact(n) => repo == n,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    /// `None`: any authenticated user.
    user: Option<String>,
    repo: Pattern,
    actions: Actions,
}

/// Per-user permissions. A text file, one rule per line, `#` comments:
///
/// ```text
/// # user   repositories   actions
/// alice    *              pull,push,delete
/// bob      team/*         pull,push
/// *        public         pull
/// ```
///
/// `user` is a user name or `*` (any authenticated user); `repositories` is `*`, a name, or
/// `prefix/*` (every repository under `prefix/`); `actions` is a comma-separated list of `pull`,
/// `push`, `delete`, or `*`. A user may do the union of what its matching rules grant (and what
/// anonymous clients may).
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    rules: Vec<Rule>,
}

impl AccessRules {
    pub fn load(path: &Path) -> Result<AccessRules> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Rules {
            path: path.to_path_buf(),
            line: 0,
            msg: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parse rules text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<AccessRules> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let err = |msg: String| Error::Rules {
                path: path.to_path_buf(),
                line: i + 1,
                msg,
            };
            let f: Vec<&str> = line.split_whitespace().collect();
            let [user, repo, actions] = f[..] else {
                return Err(err("expected: USER REPOSITORIES ACTIONS".into()));
            };
            let user = if user == "*" { None } else { Some(user.to_string()) };
            let repo = if repo == "*" {
                Pattern::Any
            } else if let Some(prefix) = repo.strip_suffix("/*") {
                RepoName::parse(prefix).map_err(|_| err(format!("invalid repository prefix {prefix:?}")))?;
                Pattern::Under(prefix.to_string())
            } else {
                RepoName::parse(repo).map_err(|_| err(format!("invalid repository name {repo:?}")))?;
                Pattern::Exact(repo.to_string())
            };
            let mut set = Actions::NONE;
            for a in actions.split(',') {
                set = set.union(Actions::parse_one(a).ok_or_else(|| err(format!("unknown action {a:?} (pull, push, delete, *)")))?);
            }
            rules.push(Rule { user, repo, actions: set });
        }
        Ok(AccessRules { rules })
    }

    /// What the rules let `user` do on `repo`.
    pub fn allowed(&self, user: &str, repo: &str) -> Actions {
        self.rules
            .iter()
            .filter(|r| r.user.as_deref().is_none_or(|u| u == user) && r.repo.matches(repo))
            .fold(Actions::NONE, |acc, r| acc.union(r.actions))
    }
}

/// Where clients get tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Realm {
    /// A fixed URL (e.g. behind a proxy).
    Url(String),
    /// `http(s)://<Host header>/token`: this server, as the client reached it.
    FromHost { https: bool },
}

/// The bearer token flow.
#[derive(Clone)]
pub struct TokenConfig {
    pub realm: Realm,
    /// The `service` clients name in token requests and tokens are issued for.
    pub service: String,
    /// HMAC key; a random one is made at start if `None` (tokens then die with the process).
    pub secret: Option<Vec<u8>>,
    /// Token lifetime.
    pub ttl: Duration,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("realm", &self.realm)
            .field("service", &self.service)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenConfig {
    /// Tokens from this server at `/token`, for service `berth-registry`, valid five minutes.
    pub fn local(https: bool) -> TokenConfig {
        TokenConfig {
            realm: Realm::FromHost { https },
            service: "berth-registry".into(),
            secret: None,
            ttl: Duration::from_secs(300),
        }
    }
}

/// The access configuration.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub anonymous: Anonymous,
    /// Users who may authenticate (none if `None`).
    pub users: Option<Htpasswd>,
    /// Per-user permissions (without: every user may do everything).
    pub rules: Option<AccessRules>,
    /// Issue and require bearer tokens (else basic auth challenges).
    pub token: Option<TokenConfig>,
    /// The realm named in basic challenges.
    pub basic_realm: String,
}

impl AuthConfig {
    /// No authentication: anyone may pull and push. Only for registries bound to loopback.
    pub fn open() -> AuthConfig {
        AuthConfig {
            anonymous: Anonymous::Push,
            users: None,
            rules: None,
            token: None,
            basic_realm: "Berth Registry".into(),
        }
    }

    /// Whether anyone can authenticate.
    fn has_users(&self) -> bool {
        self.users.as_ref().is_some_and(|u| !u.is_empty())
    }
}

/// The claims of a token (a JWT signed with HS256).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    /// The user, empty for an anonymous token.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub access: Vec<AccessEntry>,
}

/// One granted scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// Who is making a request.
#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    User(String),
    Token(Box<Claims>),
}

/// What a request needs.
#[derive(Debug, Clone)]
pub enum Need {
    /// `GET /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    /// Actions on one repository.
    Repo(RepoName, Actions),
}

const TOKEN_ISSUER: &str = "berth-registry";
/// How long a verified password stays verified (bcrypt costs milliseconds per check).
const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(300);
const PASSWORD_CACHE_MAX: usize = 4096;

/// Fill `buf` with secure random bytes (the workspace's one source, `oci::random`).
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    oci::random::fill(buf).map_err(|e| Error::Config(e.to_string()))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// The access checker a running registry uses.
pub struct Auth {
    cfg: AuthConfig,
    secret: Vec<u8>,
    /// sha256(user, password, hash) of recently verified passwords → when the entry expires.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Auth {
    /// Whether anyone may do anything (anonymous push): there is no repository to keep apart.
    pub fn is_open(&self) -> bool {
        matches!(self.cfg.anonymous, Anonymous::Push)
    }

    pub fn new(cfg: AuthConfig) -> Result<Auth> {
        let secret = match cfg.token.as_ref().and_then(|t| t.secret.clone()) {
            Some(s) if s.len() >= 16 => s,
            Some(_) => return Err(Error::Config("the token secret must be at least 16 bytes".into())),
            None => {
                let mut s = vec![0u8; 32];
                random_bytes(&mut s)?;
                s
            }
        };
        Ok(Auth {
            cfg,
            secret,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.cfg
    }

    /// Check a user's password, remembering successes for a while.
    async fn check_password(&self, user: &str, password: &str) -> bool {
        let Some(users) = &self.cfg.users else { return false };
        let Some(hash) = users.hash_of(user) else { return false };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if let Ok(m) = self.verified.lock() {
            if m.get(&key).is_some_and(|exp| *exp > Instant::now()) {
                return true;
            }
        }
        let (pw, h) = (password.to_string(), hash.to_string());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(pw, &h).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok {
            if let Ok(mut m) = self.verified.lock() {
                if m.len() >= PASSWORD_CACHE_MAX {
                    m.clear();
                }
                m.insert(key, Instant::now() + PASSWORD_CACHE_TTL);
            }
        }
        ok
    }

    /// Basic credentials in the `Authorization` header: `Ok(None)` if there are none (or the user
    /// name is empty, which some clients send when they have no credentials), `Err` if malformed.
    fn basic_credentials(headers: &HeaderMap) -> std::result::Result<Option<(String, String)>, ()> {
        let Some(v) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let v = v.to_str().map_err(|_| ())?;
        let Some((scheme, rest)) = v.trim().split_once(' ') else {
            return Err(());
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(());
        }
        let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).map_err(|_| ())?;
        let s = String::from_utf8(raw).map_err(|_| ())?;
        let (u, p) = s.split_once(':').ok_or(())?;
        if u.is_empty() {
            return Ok(None);
        }
        Ok(Some((u.to_string(), p.to_string())))
    }

    /// Who is calling. Bad credentials are refused with a challenge.
    pub async fn identify(&self, headers: &HeaderMap) -> ApiResult<Principal> {
        let Some(v) = headers.get(header::AUTHORIZATION) else {
            return Ok(Principal::Anonymous);
        };
        let v = v.to_str().unwrap_or("").trim();
        if let Some((scheme, tok)) = v.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return match self.verify_token(tok.trim()) {
                    Some(c) => Ok(Principal::Token(Box::new(c))),
                    None => Err(self.challenge(headers, None, Some("invalid_token"), "invalid or expired token")),
                };
            }
        }
        match Self::basic_credentials(headers) {
            Ok(None) => Ok(Principal::Anonymous),
            Ok(Some((u, p))) if self.check_password(&u, &p).await => Ok(Principal::User(u)),
            _ => Err(self.challenge(headers, None, None, "invalid credentials")),
        }
    }

    /// What `p` may do on `repo`.
    pub fn allowed(&self, p: &Principal, repo: &str) -> Actions {
        let anon = self.cfg.anonymous.actions();
        match p {
            Principal::Anonymous => anon,
            Principal::User(u) => anon.union(self.cfg.rules.as_ref().map_or(Actions::ALL, |r| r.allowed(u, repo))),
            Principal::Token(c) => c
                .access
                .iter()
                .filter(|e| e.kind == "repository" && e.name == repo)
                .flat_map(|e| e.actions.iter().filter_map(|a| Actions::parse_one(a)))
                .fold(anon, Actions::union),
        }
    }

    /// Whether `p` may list the catalog.
    pub fn catalog_allowed(&self, p: &Principal) -> bool {
        self.cfg.anonymous != Anonymous::None
            || match p {
                Principal::Anonymous => false,
                Principal::User(_) => true,
                Principal::Token(c) => c.access.iter().any(|e| e.kind == "registry" && e.name == "catalog"),
            }
    }

    /// Allow the request or refuse it with the right status and challenge.
    pub fn authorize(&self, p: &Principal, need: &Need, headers: &HeaderMap) -> ApiResult<()> {
        let ok = match need {
            Need::Base => match p {
                Principal::Anonymous => {
                    self.cfg.anonymous == Anonymous::Push
                        || (self.cfg.token.is_none() && self.cfg.anonymous == Anonymous::Pull && !self.cfg.has_users())
                }
                _ => true,
            },
            Need::Catalog => self.catalog_allowed(p),
            Need::Repo(name, actions) => self.allowed(p, name.as_str()).contains(*actions),
        };
        if ok {
            return Ok(());
        }
        match p {
            Principal::User(_) if self.cfg.token.is_none() => {
                Err(ApiError::new(Code::Denied, "requested access to the resource is denied"))
            }
            Principal::Token(_) => Err(self.challenge(headers, Some(need), Some("insufficient_scope"), "insufficient scope")),
            _ => Err(self.challenge(headers, Some(need), None, "authentication required")),
        }
    }

    /// The token realm for a request.
    fn realm(&self, headers: &HeaderMap) -> String {
        match self.cfg.token.as_ref().map(|t| &t.realm) {
            Some(Realm::Url(u)) => u.clone(),
            Some(Realm::FromHost { https }) => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| !h.is_empty() && !h.contains(['"', ' ', '/', '\\']))
                    .unwrap_or("localhost");
                format!("{}://{host}/token", if *https { "https" } else { "http" })
            }
            None => String::new(),
        }
    }

    /// A 401 with the challenge for this server's scheme.
    pub fn challenge(&self, headers: &HeaderMap, need: Option<&Need>, error: Option<&str>, msg: &str) -> ApiError {
        let value = match &self.cfg.token {
            None => format!("Basic realm=\"{}\"", self.cfg.basic_realm.replace('"', "")),
            Some(t) => {
                let mut v = format!("Bearer realm=\"{}\",service=\"{}\"", self.realm(headers), t.service);
                match need {
                    Some(Need::Repo(name, actions)) => {
                        // A push needs pull too (clients ask for both); name them as clients do.
                        let mut a = *actions;
                        if a.contains(Actions::PUSH) {
                            a = a.union(Actions::PULL);
                        }
                        v.push_str(&format!(",scope=\"repository:{name}:{}\"", a.names().join(",")));
                    }
                    Some(Need::Catalog) => v.push_str(",scope=\"registry:catalog:*\""),
                    _ => {}
                }
                if let Some(e) = error {
                    v.push_str(&format!(",error=\"{e}\""));
                }
                v
            }
        };
        ApiError::new(Code::Unauthorized, msg).header(header::WWW_AUTHENTICATE, value)
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    /// Mint a token.
    pub fn mint(&self, claims: &Claims) -> String {
        let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = b64url(&serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let sig = b64url(&self.sign(signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    /// The claims of a valid, unexpired token for this service.
    pub fn verify_token(&self, token: &str) -> Option<Claims> {
        let service = &self.cfg.token.as_ref()?.service;
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).ok()?;
        mac.update(format!("{h}.{p}").as_bytes());
        mac.verify_slice(&sig).ok()?;
        let header: serde_json::Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
        let now = now_secs();
        (claims.iss == TOKEN_ISSUER && &claims.aud == service && claims.exp > now && claims.nbf <= now + 60).then_some(claims)
    }

    /// `GET /token?service=...&scope=...`: authenticate with basic credentials (or none, for an
    /// anonymous token) and grant each requested scope narrowed to what the caller may do.
    pub async fn token_endpoint(&self, headers: &HeaderMap, query: &super::names::Query) -> ApiResult<serde_json::Value> {
        let Some(tc) = &self.cfg.token else {
            return Err(ApiError::new(Code::Unsupported, "this registry does not issue tokens").status(StatusCode::NOT_FOUND));
        };
        if let Some(s) = query.get("service") {
            if s != tc.service {
                return Err(ApiError::new(Code::Denied, format!("unknown service {s:?}")).status(StatusCode::BAD_REQUEST));
            }
        }
        let principal = match Self::basic_credentials(headers) {
            Ok(None) => Principal::Anonymous,
            Ok(Some((u, p))) if self.check_password(&u, &p).await => Principal::User(u),
            _ => {
                return Err(ApiError::new(Code::Unauthorized, "invalid credentials").header(
                    header::WWW_AUTHENTICATE,
                    format!("Basic realm=\"{}\"", self.cfg.basic_realm.replace('"', "")),
                ))
            }
        };
        let mut access: Vec<AccessEntry> = Vec::new();
        for scope in query.all("scope").flat_map(|s| s.split(' ')).filter(|s| !s.is_empty()) {
            let bad = || ApiError::new(Code::Denied, format!("invalid scope {scope:?}")).status(StatusCode::BAD_REQUEST);
            let (kind, rest) = scope.split_once(':').ok_or_else(bad)?;
            let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
            let requested = actions
                .split(',')
                .filter_map(Actions::parse_one)
                .fold(Actions::NONE, Actions::union);
            // "repository(plugin)" is a repository of a resource class.
            let granted_entry = if kind == "repository" || kind.starts_with("repository(") {
                let repo = RepoName::parse(name).map_err(|_| bad())?;
                let granted = requested.intersect(self.allowed(&principal, repo.as_str()));
                (!granted.is_empty()).then(|| AccessEntry {
                    kind: "repository".into(),
                    name: repo.to_string(),
                    actions: granted.names().into_iter().map(String::from).collect(),
                })
            } else if kind == "registry" && name == "catalog" && self.catalog_allowed(&principal) {
                Some(AccessEntry {
                    kind: "registry".into(),
                    name: "catalog".into(),
                    actions: vec!["*".into()],
                })
            } else {
                None
            };
            if let Some(e) = granted_entry {
                match access.iter_mut().find(|a| a.kind == e.kind && a.name == e.name) {
                    Some(a) => {
                        for x in e.actions {
                            if !a.actions.contains(&x) {
                                a.actions.push(x);
                            }
                        }
                    }
                    None => access.push(e),
                }
            }
        }
        let now = now_secs();
        let mut jti = [0u8; 16];
        random_bytes(&mut jti)?;
        let claims = Claims {
            iss: TOKEN_ISSUER.into(),
            sub: match &principal {
                Principal::User(u) => u.clone(),
                _ => String::new(),
            },
            aud: tc.service.clone(),
            exp: now + tc.ttl.as_secs().max(1),
            nbf: now.saturating_sub(1),
            iat: now,
            jti: hex::encode(jti),
            access,
        };
        let token = self.mint(&claims);
        let issued_at =
            chrono::DateTime::<chrono::Utc>::from(UNIX_EPOCH + Duration::from_secs(now)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        tracing::debug!(user = %claims.sub, access = ?claims.access, "token issued");
        Ok(serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": tc.ttl.as_secs().max(1),
            "issued_at": issued_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<String>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "reg.test:5000".parse().unwrap());
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    fn basic(u: &str, p: &str) -> Option<String> {
        Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        ))
    }

    fn users() -> Htpasswd {
        let text = format!(
            "# users\nalice:{}\nbob:{}\n",
            bcrypt::hash("secret", 4).unwrap(),
            bcrypt::hash("pw", 4).unwrap()
        );
        Htpasswd::parse(&text, Path::new("h")).unwrap()
    }

    #[test]
    fn htpasswd_only_bcrypt() {
        let e = Htpasswd::parse("u:$apr1$abc$def\n", Path::new("h")).unwrap_err();
        assert!(e.to_string().contains("only bcrypt"), "{e}");
        assert!(Htpasswd::parse("nocolon\n", Path::new("h")).is_err());
        let h = users();
        assert!(h.verify("alice", "secret") && !h.verify("alice", "wrong") && !h.verify("carol", "secret"));
    }

    #[test]
    fn rules() {
        let r = AccessRules::parse(
            "alice * pull,push,delete\nbob team/* pull,push # team\n* public pull\n",
            Path::new("r"),
        )
        .unwrap();
        assert_eq!(r.allowed("alice", "x/y"), Actions::ALL);
        assert_eq!(r.allowed("bob", "team/a"), Actions::PULL.union(Actions::PUSH));
        assert_eq!(r.allowed("bob", "team"), Actions::NONE);
        assert_eq!(r.allowed("bob", "teamx/a"), Actions::NONE);
        assert_eq!(r.allowed("bob", "public"), Actions::PULL);
        assert_eq!(r.allowed("carol", "public"), Actions::PULL);
        assert!(AccessRules::parse("a b\n", Path::new("r")).is_err());
        assert!(AccessRules::parse("a b fly\n", Path::new("r")).is_err());
        assert!(AccessRules::parse("a ../x pull\n", Path::new("r")).is_err());
    }

    #[tokio::test]
    async fn basic_mode() {
        let auth = Auth::new(AuthConfig {
            anonymous: Anonymous::Pull,
            users: Some(users()),
            rules: Some(AccessRules::parse("bob public pull\n", Path::new("r")).unwrap()),
            token: None,
            basic_realm: "R".into(),
        })
        .unwrap();
        let repo = RepoName::parse("private").unwrap();
        let push = Need::Repo(repo.clone(), Actions::PUSH);
        // Anonymous: may pull, is challenged for push and for the probe.
        let anon = auth.identify(&headers(None)).await.unwrap();
        assert!(auth
            .authorize(&anon, &Need::Repo(repo.clone(), Actions::PULL), &headers(None))
            .is_ok());
        let e = auth.authorize(&anon, &push, &headers(None)).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(e.headers[0].1, "Basic realm=\"R\"");
        assert!(auth.authorize(&anon, &Need::Base, &headers(None)).is_err());
        // Empty basic credentials are anonymous.
        assert!(matches!(
            auth.identify(&headers(basic("", ""))).await.unwrap(),
            Principal::Anonymous
        ));
        // Bad password: 401.
        let e = auth.identify(&headers(basic("alice", "nope"))).await.unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        // bob may not push: 403 DENIED. alice isn't in the rules either.
        let bob = auth.identify(&headers(basic("bob", "pw"))).await.unwrap();
        assert_eq!(auth.authorize(&bob, &push, &headers(None)).unwrap_err().code(), Code::Denied);
        assert!(auth.authorize(&bob, &Need::Base, &headers(None)).is_ok());
        assert!(auth.authorize(&bob, &Need::Catalog, &headers(None)).is_ok());
    }

    #[tokio::test]
    async fn tokens() {
        let auth = Auth::new(AuthConfig {
            anonymous: Anonymous::None,
            users: Some(users()),
            rules: Some(AccessRules::parse("alice * *\nbob team/* pull\n", Path::new("r")).unwrap()),
            token: Some(TokenConfig::local(false)),
            basic_realm: "R".into(),
        })
        .unwrap();
        let repo = RepoName::parse("team/app").unwrap();
        let push = Need::Repo(repo.clone(), Actions::PUSH);
        let e = auth.authorize(&Principal::Anonymous, &push, &headers(None)).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            e.headers[0].1,
            "Bearer realm=\"http://reg.test:5000/token\",service=\"berth-registry\",scope=\"repository:team/app:pull,push\""
        );
        // bob asks for pull+push and gets pull only.
        let q = super::super::names::Query::parse(Some(
            "service=berth-registry&scope=repository:team/app:pull,push&scope=registry:catalog:*",
        ));
        let resp = auth.token_endpoint(&headers(basic("bob", "pw")), &q).await.unwrap();
        let tok = resp["token"].as_str().unwrap().to_string();
        assert_eq!(resp["access_token"], resp["token"]);
        assert_eq!(resp["expires_in"], 300);
        let p = auth.identify(&headers(Some(format!("Bearer {tok}")))).await.unwrap();
        assert!(auth.authorize(&p, &Need::Repo(repo.clone(), Actions::PULL), &headers(None)).is_ok());
        let e = auth.authorize(&p, &push, &headers(None)).unwrap_err();
        assert!(e.headers[0].1.to_str().unwrap().contains("error=\"insufficient_scope\""));
        assert!(auth
            .authorize(&p, &Need::Repo(RepoName::parse("other").unwrap(), Actions::PULL), &headers(None))
            .is_err());
        assert!(auth.authorize(&p, &Need::Catalog, &headers(None)).is_ok());
        // alice gets both.
        let resp = auth.token_endpoint(&headers(basic("alice", "secret")), &q).await.unwrap();
        let p = auth
            .identify(&headers(Some(format!("Bearer {}", resp["token"].as_str().unwrap()))))
            .await
            .unwrap();
        assert!(auth.authorize(&p, &push, &headers(None)).is_ok());
        // Anonymous tokens grant nothing here; bad passwords get no token.
        let resp = auth.token_endpoint(&headers(None), &q).await.unwrap();
        let p = auth
            .identify(&headers(Some(format!("Bearer {}", resp["token"].as_str().unwrap()))))
            .await
            .unwrap();
        assert!(auth
            .authorize(&p, &Need::Repo(repo.clone(), Actions::PULL), &headers(None))
            .is_err());
        assert!(auth.token_endpoint(&headers(basic("alice", "x")), &q).await.is_err());
        // Tampered, foreign or expired tokens are refused.
        let mut bad = tok.clone();
        bad.pop();
        bad.push(if tok.ends_with('A') { 'B' } else { 'A' });
        assert!(auth.identify(&headers(Some(format!("Bearer {bad}")))).await.is_err());
        let other = Auth::new(auth.config().clone()).unwrap();
        assert!(other.verify_token(&tok).is_none());
        let mut c = auth.verify_token(&tok).unwrap();
        c.exp = now_secs() - 1;
        assert!(auth.verify_token(&auth.mint(&c)).is_none());
        let mut c = auth.verify_token(&tok).unwrap();
        c.aud = "other".into();
        assert!(auth.verify_token(&auth.mint(&c)).is_none());
    }
}
