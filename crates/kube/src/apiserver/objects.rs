//! The resource endpoints: `/api/v1/...` and `/apis/<group>/<version>/...` — create, get, list,
//! watch, update, patch, delete, deletecollection — for every kind in [`super::resources`],
//! objects stored as JSON in the [`Store`] with the store's revision as their resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

use super::resources::{find, Resource, RESOURCES};
use super::select::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult};
use super::table;
use super::{managed, ApiServer};
use crate::store::{Error as StoreError, EventKind, KeyValue, ListOptions, Store};

/// What a request path names.
#[derive(Debug)]
pub struct Target {
    /// The kind.
    pub res: &'static Resource,
    /// The namespace (namespaced kinds), if the path has one.
    pub namespace: Option<String>,
    /// The object's name (item paths).
    pub name: Option<String>,
    /// A subresource (`status`).
    pub sub: Option<String>,
}

/// Parse the segments after `/api/v1` or `/apis/<group>/<version>`.
pub fn target(group: &str, version: &str, segs: &[&str]) -> ApiResult<Target> {
    let not_found = || ApiError::no_such_path();
    let lookup = |p: &str| find(group, version, p).ok_or_else(not_found);
    let namespaced = |p: &str| find(group, version, p).is_some_and(|r| r.namespaced);
    let t = match segs {
        [p] => Target {
            res: lookup(p)?,
            namespace: None,
            name: None,
            sub: None,
        },
        ["namespaces", ns, p] if namespaced(p) => Target {
            res: lookup(p)?,
            namespace: Some(ns.to_string()),
            name: None,
            sub: None,
        },
        ["namespaces", ns, p, name] if namespaced(p) => Target {
            res: lookup(p)?,
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            sub: None,
        },
        ["namespaces", ns, p, name, sub] if namespaced(p) => Target {
            res: lookup(p)?,
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            sub: Some(sub.to_string()),
        },
        [p, name] => Target {
            res: lookup(p)?,
            namespace: None,
            name: Some(name.to_string()),
            sub: None,
        },
        [p, name, sub] => Target {
            res: lookup(p)?,
            namespace: None,
            name: Some(name.to_string()),
            sub: Some(sub.to_string()),
        },
        _ => return Err(not_found()),
    };
    if t.res.namespaced && t.name.is_some() && t.namespace.is_none() {
        return Err(not_found());
    }
    Ok(t)
}

/// Query parameters, decoded.
pub fn query_map(q: Option<&str>) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        m.insert(dec(k), dec(v));
    }
    m
}

pub type Query = std::collections::BTreeMap<String, String>;

/// Route one resource request.
pub async fn handle(s: Arc<ApiServer>, method: Method, t: Target, q: Query, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    match (t.sub.as_deref(), &method) {
        (Some("status"), &Method::GET) if t.res.has_status() => {
            let o = get(&s, &t).await?;
            return Ok(respond(StatusCode::OK, o));
        }
        (Some("status"), &Method::PUT) if t.res.has_status() => {
            let w = writer(&t, &q, &headers)?;
            let (new, warnings) = decode(t.res, read_body(&headers, body).await?, &q)?;
            let old = stored(&s, &t).await?;
            return replace(&s, &t, &q, new, &old, warnings, Some(&w)).await;
        }
        (Some("status"), &Method::PATCH) if t.res.has_status() => return patch(&s, &t, &q, &headers, body).await,
        (Some("binding"), &Method::POST) if t.res.kind == "Pod" => return bind(&s, &t, &headers, body).await,
        (Some("scale"), m) if t.res.subresources.contains(&"scale") && [Method::GET, Method::PUT, Method::PATCH].contains(m) => {
            return scale(&s, &t, &q, &headers, body, m).await
        }
        (Some("eviction"), &Method::POST) if t.res.kind == "Pod" => {
            return super::eviction::evict(&s, &t, &q, read_body(&headers, body).await?).await
        }
        (Some("token"), &Method::POST) if t.res.kind == "ServiceAccount" => {
            return token_request(&s, &t, &q, read_body(&headers, body).await?).await
        }
        (Some("log"), &Method::GET) if t.res.kind == "Pod" => {
            let pod = get(&s, &t).await?;
            return match &s.pods {
                Some(p) => crate::agent::logs::serve(p.clone(), pod, &q).await,
                None => Err(ApiError::bad_request(
                    "this API server runs no node agent: pod logs are not available".to_string(),
                )),
            };
        }
        _ => {}
    }
    if let Some(sub) = &t.sub {
        return Err(ApiError {
            code: 404,
            reason: "NotFound",
            message: format!(
                "the server could not find the requested resource ({} {}/{sub})",
                t.res.plural,
                t.name.as_deref().unwrap_or("")
            ),
            details: None,
        });
    }
    let table = table::wants_table(&headers);
    match (method, t.name.is_some()) {
        (Method::GET, true) => {
            let o = get(&s, &t).await?;
            Ok(respond(StatusCode::OK, if table { table::table(t.res, &[o], "") } else { o }))
        }
        (Method::GET, false) if q.get("watch").is_some_and(|w| w == "1" || w == "true") => {
            let accept = headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or("");
            let pb = !table && super::proto::preferred(accept) && super::proto::has_message(&t.res.api_version(), t.res.kind);
            watch(s, t, q, table, pb).await
        }
        (Method::GET, false) => list(&s, &t, &q, table).await,
        (Method::POST, false) => create(&s, &t, &q, &headers, body).await,
        (Method::PUT, true) => update(&s, &t, &q, &headers, body).await,
        (Method::PATCH, true) => patch(&s, &t, &q, &headers, body).await,
        (Method::DELETE, true) => delete(&s, &t, &q, &headers, body).await,
        (Method::DELETE, false) => delete_collection(&s, &t, &q).await,
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m})"
        ))),
    }
}

pub(crate) fn respond(code: StatusCode, v: Value) -> Response {
    (code, [("content-type", "application/json")], v.to_string()).into_response()
}

/// The object stored in `kv`, with its resourceVersion and type.
pub fn from_kv(res: &Resource, kv: &KeyValue) -> ApiResult<Value> {
    let mut o: Value = serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(format!("stored object {}: {e}", kv.key)))?;
    if super::resources::is_view(res) {
        o = super::storage::hpa_v1_from_v2(o);
    }
    o["apiVersion"] = json!(res.api_version());
    o["kind"] = json!(res.kind);
    o["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
    Ok(o)
}

fn name_of(t: &Target) -> &str {
    t.name.as_deref().unwrap_or("")
}

pub async fn get(s: &ApiServer, t: &Target) -> ApiResult<Value> {
    let kv = s.store.get(&t.res.key(t.namespace.as_deref(), name_of(t)), None).await?;
    let kv = kv.ok_or_else(|| ApiError::not_found(t.res.group, t.res.plural, name_of(t)))?;
    from_kv(t.res, &kv)
}

/// `limit`/`continue` state: the revision read at and the last key sent.
fn continue_token(revision: i64, key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"rv": revision, "start": key}).to_string())
}

fn parse_continue(tok: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tok).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok((v["rv"].as_i64().ok_or_else(bad)?, v["start"].as_str().ok_or_else(bad)?.to_string()))
}

fn selectors(res: &Resource, q: &Query) -> ApiResult<(LabelSelector, FieldSelector)> {
    Ok((
        LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str), res.field_selectors)?,
    ))
}

async fn list(s: &ApiServer, t: &Target, q: &Query, table: bool) -> ApiResult<Response> {
    let (labels, fields) = selectors(t.res, q)?;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let (mut revision, mut start) = (None, None);
    if let Some(tok) = q.get("continue").filter(|c| !c.is_empty()) {
        let (rv, key) = parse_continue(tok)?;
        revision = Some(rv);
        start = Some(key);
    } else if let Some(rv) = q.get("resourceVersion").filter(|r| !r.is_empty() && *r != "0") {
        let rv: i64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?;
        if q.get("resourceVersionMatch").map(String::as_str) == Some("Exact") {
            revision = Some(rv);
        } else if rv > s.store.revision().await? {
            return Err(ApiError::from(StoreError::FutureRevision {
                requested: rv,
                current: s.store.revision().await?,
            }));
        }
    }
    let prefix = t.res.prefix(t.namespace.as_deref());
    let mut items: Vec<Value> = Vec::new();
    let mut next = None;
    let mut read_at: i64;
    'pages: loop {
        let page = s
            .store
            .list(&prefix, ListOptions { revision, start_after: start.clone(), limit: if limit == 0 { 0 } else { limit.max(100) } })
            .await
            .map_err(|e| match e {
                StoreError::Compacted { .. } => ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."),
                other => other.into(),
            })?;
        revision = Some(page.revision);
        read_at = page.revision;
        for (i, kv) in page.items.iter().enumerate() {
            let o = from_kv(t.res, kv)?;
            if labels.matches(&o) && fields.matches(&o) {
                items.push(o);
                if limit > 0 && items.len() == limit {
                    // More may follow: the rest of this page, or the store's next one.
                    if i + 1 < page.items.len() || page.more {
                        next = Some(kv.key.clone());
                    }
                    break 'pages;
                }
            }
        }
        if !page.more {
            break;
        }
        start = page.items.last().map(|kv| kv.key.clone());
    }
    let mut meta = json!({"resourceVersion": read_at.to_string()});
    if let Some(k) = &next {
        meta["continue"] = json!(continue_token(read_at, k));
    }
    if table {
        let mut tbl = table::table(t.res, &items, &read_at.to_string());
        if let Some(c) = meta.get("continue") {
            tbl["metadata"]["continue"] = c.clone();
        }
        return Ok(respond(StatusCode::OK, tbl));
    }
    for o in &mut items {
        if let Some(m) = o.as_object_mut() {
            m.remove("apiVersion");
            m.remove("kind");
        }
    }
    Ok(respond(
        StatusCode::OK,
        json!({"kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(), "metadata": meta, "items": items}),
    ))
}

/// The media type of a request's body (`default` when it names none), without parameters.
fn mime(headers: &HeaderMap, default: &str) -> String {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or(default);
    ct.split(';').next().unwrap_or("").trim().to_string()
}

/// Read a request body as JSON (JSON or YAML on the wire).
pub async fn read_body(headers: &HeaderMap, body: Body) -> ApiResult<Value> {
    let bytes = axum::body::to_bytes(body, 3 << 20).await.map_err(|e| ApiError {
        code: 413,
        reason: "RequestEntityTooLarge",
        message: format!("the request body is too large or unreadable: {e}"),
        details: None,
    })?;
    let v = match mime(headers, "application/json").as_str() {
        ""
        | "application/json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json"
        | "*/*" => serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("error decoding the body: {e}")))?,
        "application/vnd.kubernetes.protobuf" => super::proto::decode(&bytes)?,
        "application/yaml" | "application/apply-patch+yaml" => {
            let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::bad_request("the YAML body is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(v)
}

/// Strict decoding as `fieldValidation` asks (Strict, Warn — the default — or Ignore): unknown
/// fields are an error, a warning, or dropped; a wrong type is always an error.
fn decode(res: &Resource, mut v: Value, q: &Query) -> ApiResult<(Value, Vec<String>)> {
    let mode = q.get("fieldValidation").map_or("Warn", String::as_str);
    if !matches!(mode, "Strict" | "Warn" | "Ignore") {
        return Err(ApiError::bad_request(format!(
            "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", not {mode:?}"
        )));
    }
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let handled = |m: String| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {m}",
            res.kind, res.version, res.kind
        ))
    };
    // Through the kind's own type, as the real server decodes it: a wrong type is an error,
    // unknown fields are what fieldValidation says, and the object is the type's (without them).
    let (canonical, unknown) = (res.decode)(&v).map_err(handled)?;
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect();
        match mode {
            "Strict" => return Err(handled(format!("strict decoding error: {}", list.join(", ")))),
            "Warn" => warnings = list,
            _ => {}
        }
    }
    v = canonical;
    Ok((v, warnings))
}

fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        if let Ok(h) = axum::http::HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            r.headers_mut().append("warning", h);
        }
    }
    r
}

/// Now, as metadata timestamps are written.
pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random (v4) UID.
pub(crate) fn uuid() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut b = [0u8; 5];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect()
}

pub(crate) fn dry_run(q: &Query) -> ApiResult<bool> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!("unsupported dry run mode {other:?} (only \"All\")"))),
    }
}

/// Check the type fields and the namespace of a body against the request.
fn check_identity(t: &Target, o: &mut Value) -> ApiResult<()> {
    let av = t.res.api_version();
    if let Some(v) = o.get("apiVersion").and_then(Value::as_str).filter(|v| !v.is_empty()) {
        if v != av {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({av})"
            )));
        }
    }
    if let Some(k) = o.get("kind").and_then(Value::as_str).filter(|k| !k.is_empty()) {
        if k != t.res.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                t.res.kind
            )));
        }
    }
    if !o.get("metadata").is_some_and(Value::is_object) {
        o["metadata"] = json!({});
    }
    // The type fields are the request's (the store keeps neither; a converted kind needs them).
    o["apiVersion"] = json!(av);
    o["kind"] = json!(t.res.kind);
    if t.res.namespaced {
        let ns = t.namespace.clone().unwrap_or_default();
        match o.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => o["metadata"]["namespace"] = json!(ns),
        }
    } else if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    Ok(())
}

/// The namespace of a namespaced request must exist.
async fn namespace_exists(s: &ApiServer, t: &Target) -> ApiResult<()> {
    if let (true, Some(ns)) = (t.res.namespaced, &t.namespace) {
        let nsres = &RESOURCES[0];
        if s.store.get(&nsres.key(None, ns), None).await?.is_none() {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
    }
    Ok(())
}

/// An object as the store keeps it: without its type fields and resourceVersion (the server
/// adds them back on read, the revision being the store's).
pub(crate) fn stored_bytes(o: &Value) -> Vec<u8> {
    let mut o = super::resources::stored_form(o).unwrap_or_else(|| o.clone());
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("selfLink");
    }
    serde_json::to_vec(&o).unwrap_or_default()
}

/// A failed write of object `name` as the API says it: a stale revision is a conflict, a
/// missing key not found.
pub(crate) fn write_error(res: &'static Resource, name: &str) -> impl Fn(StoreError) -> ApiError {
    let name = name.to_string();
    move |e| match e {
        StoreError::Conflict { .. } => ApiError::conflict(res.group, res.plural, &name),
        StoreError::NotFound(_) => ApiError::not_found(res.group, res.plural, &name),
        other => other.into(),
    }
}

/// Who a write is by: its field manager, the endpoint, the kind (see [`managed::Writer`]).
fn writer(t: &Target, q: &Query, headers: &HeaderMap) -> ApiResult<managed::Writer> {
    let ua = headers.get("user-agent").and_then(|v| v.to_str().ok());
    Ok(managed::Writer {
        manager: managed::manager_of(q.get("fieldManager").map(String::as_str), ua)?,
        subresource: t.sub.clone().unwrap_or_default(),
        api_version: t.res.api_version(),
        has_status: t.res.has_status(),
    })
}

async fn create(s: &ApiServer, t: &Target, q: &Query, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let w = writer(t, q, headers)?;
    let (o, warnings) = decode(t.res, read_body(headers, body).await?, q)?;
    insert(s, t, q, o, warnings, Some(&w)).await
}

/// Create `o` (decoded): identity checked, named, admitted, stored. `track` is who writes it
/// (`None`: its managedFields are already set, by an apply).
async fn insert(
    s: &ApiServer,
    t: &Target,
    q: &Query,
    mut o: Value,
    warnings: Vec<String>,
    track: Option<&managed::Writer>,
) -> ApiResult<Response> {
    check_identity(t, &mut o)?;
    namespace_exists(s, t).await?;
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    if name.is_empty() {
        if let Some(g) = o
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .filter(|g| !g.is_empty())
        {
            o["metadata"]["name"] = json!(format!("{g}{}", random_suffix()));
        }
    }
    if t.res.kind == "Pod" {
        let ns = t.namespace.clone().unwrap_or_default();
        super::pods::admit_service_account(s.store.as_ref(), &mut o, &ns).await?;
        super::pods::admit_priority(s.store.as_ref(), &mut o).await?;
        super::quota::admit_pod(s.store.as_ref(), &mut o, &ns).await?;
    }
    let service = t.res.kind == "Service" && t.res.group.is_empty();
    // The system's fields first (a Job's generated selector names its uid).
    let m = o["metadata"].as_object_mut().expect("metadata is an object");
    m.insert("uid".into(), json!(uuid()));
    m.insert("creationTimestamp".into(), json!(now()));
    for k in ["resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        m.remove(k);
    }
    if t.res.namespaced && t.res.kind != "Pod" {
        let ns = t.namespace.clone().unwrap_or_default();
        super::quota::admit(s.store.as_ref(), t.res, &o, &ns).await?;
    }
    if t.res.kind == "PodDisruptionBudget" {
        // Its status is the disruption controller's, which eviction trusts: never a writer's.
        o.as_object_mut().map(|m| m.remove("status"));
    }
    let causes = (t.res.admit)(&mut o, None);
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    if !causes.is_empty() {
        return Err(ApiError::invalid(t.res.group, t.res.kind, &name, causes));
    }
    if service {
        super::network::allocate(s.store.as_ref(), &mut o, None).await?;
    }
    if t.res.group == "rbac.authorization.k8s.io" {
        super::auth::check_escalation(s.store.as_ref(), t.res.kind, t.namespace.as_deref().unwrap_or(""), &o).await?;
    }
    if t.res.kind == "PriorityClass" {
        super::pods::admit_default_priority_class(s.store.as_ref(), &o).await?;
    }
    if let Some(w) = track {
        managed::update(&Value::Null, &mut o, w);
    }
    if super::workloads::GENERATION_KINDS.contains(&t.res.kind) {
        o["metadata"]["generation"] = json!(1);
    }
    let key = t.res.key(t.namespace.as_deref(), &name);
    if dry_run(q)? {
        if s.store.get(&key, None).await?.is_some() {
            return Err(ApiError::already_exists(t.res.group, t.res.plural, &name));
        }
        return Ok(with_warnings(respond(StatusCode::CREATED, o), &warnings));
    }
    let kv = s.store.create(&key, stored_bytes(&o)).await.map_err(|e| match e {
        StoreError::AlreadyExists(_) => ApiError::already_exists(t.res.group, t.res.plural, &name),
        other => other.into(),
    })?;
    if t.res.kind == "Namespace" {
        default_service_account(s.store.as_ref(), &name).await?;
        ensure_root_ca(s.store.as_ref(), &name, &s.ca_cert).await?;
    }
    Ok(with_warnings(respond(StatusCode::CREATED, from_kv(t.res, &kv)?), &warnings))
}

/// Write `new` over the stored `old` (PUT and PATCH): identity kept, resourceVersion compared.
/// `track` is who writes (`None`: managedFields already set, by an apply).
async fn replace(
    s: &ApiServer,
    t: &Target,
    q: &Query,
    mut new: Value,
    old: &KeyValue,
    warnings: Vec<String>,
    track: Option<&managed::Writer>,
) -> ApiResult<Response> {
    let name = name_of(t);
    check_identity(t, &mut new)?;
    let body_name = new.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    new["metadata"]["name"] = json!(name);
    let expected = match new
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        Some(rv) => {
            let rv: i64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?;
            if rv != old.mod_revision {
                return Err(ApiError::conflict(t.res.group, t.res.plural, name));
            }
            rv
        }
        None => old.mod_revision,
    };
    let old_obj = from_kv(t.res, old)?;
    if t.res.has_status() {
        if t.sub.as_deref() == Some("status") {
            // A status write changes the status only.
            let status = new.get("status").cloned().unwrap_or(Value::Null);
            let rv = new["metadata"]["resourceVersion"].clone();
            new = old_obj.clone();
            new["metadata"]["resourceVersion"] = rv;
            new["status"] = status;
        } else {
            // A write of the object keeps its status.
            new["status"] = old_obj.get("status").cloned().unwrap_or(Value::Null);
        }
    }
    for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        match old_obj["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    let deleting = old_obj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null());
    if deleting {
        let was: Vec<&Value> = old_obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let added = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|f| !was.contains(&f)));
        if added {
            return Err(ApiError::invalid(
                t.res.group,
                t.res.kind,
                name,
                vec![super::status::Cause {
                    reason: "FieldValueForbidden",
                    field: "metadata.finalizers".into(),
                    message: "Forbidden: no new finalizers can be added if the object is being deleted".into(),
                }],
            ));
        }
    }
    let causes = (t.res.admit)(&mut new, Some(&old_obj));
    if !causes.is_empty() {
        return Err(ApiError::invalid(t.res.group, t.res.kind, name, causes));
    }
    if t.res.kind == "Service" && t.res.group.is_empty() && t.sub.is_none() {
        super::network::allocate(s.store.as_ref(), &mut new, Some(&old_obj)).await?;
    }
    if t.res.group == "rbac.authorization.k8s.io" {
        super::auth::check_escalation(s.store.as_ref(), t.res.kind, t.namespace.as_deref().unwrap_or(""), &new).await?;
    }
    if t.res.kind == "PriorityClass" {
        super::pods::admit_default_priority_class(s.store.as_ref(), &new).await?;
    }
    if super::workloads::GENERATION_KINDS.contains(&t.res.kind) {
        // One more whenever the spec changes, as the real server counts.
        let was = old_obj.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        let spec = |o: &Value| super::fields::without_nulls(o.get("spec").unwrap_or(&Value::Null));
        let now = if spec(&new) != spec(&old_obj) { was + 1 } else { was };
        new["metadata"]["generation"] = json!(now);
    }
    if let Some(w) = track {
        managed::update(&old_obj, &mut new, w);
    }
    if dry_run(q)? {
        return Ok(with_warnings(respond(StatusCode::OK, new), &warnings));
    }
    let key = t.res.key(t.namespace.as_deref(), name);
    // Nothing changed: no new revision, as the real server does.
    let mut cmp = old_obj.clone();
    cmp["metadata"]["resourceVersion"] = json!(null);
    let mut newcmp = new.clone();
    newcmp["metadata"]["resourceVersion"] = json!(null);
    if stored_bytes(&cmp) == stored_bytes(&newcmp) {
        return Ok(with_warnings(respond(StatusCode::OK, old_obj), &warnings));
    }
    let kv = s
        .store
        .update(&key, stored_bytes(&new), expected)
        .await
        .map_err(write_error(t.res, name))?;
    let updated = from_kv(t.res, &kv)?;
    // Being deleted and its last finalizer gone: it goes now (its dependents after it).
    let no_finalizers = updated
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if deleting && no_finalizers {
        let rev = kv.mod_revision;
        super::gc::remove(&s.store, t.res, kv, rev, super::gc::Propagation::Background).await?;
    }
    Ok(with_warnings(respond(StatusCode::OK, updated), &warnings))
}

async fn stored(s: &ApiServer, t: &Target) -> ApiResult<KeyValue> {
    s.store
        .get(&t.res.key(t.namespace.as_deref(), name_of(t)), None)
        .await?
        .ok_or_else(|| ApiError::not_found(t.res.group, t.res.plural, name_of(t)))
}

async fn update(s: &ApiServer, t: &Target, q: &Query, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let w = writer(t, q, headers)?;
    let (new, warnings) = decode(t.res, read_body(headers, body).await?, q)?;
    let old = stored(s, t).await?;
    replace(s, t, q, new, &old, warnings, Some(&w)).await
}

/// PatchOptions' errors, as the real server words them.
fn patch_options_invalid(field: &str, reason: &'static str, message: &str) -> ApiError {
    ApiError::invalid(
        "meta.k8s.io",
        "PatchOptions",
        "",
        vec![super::status::Cause {
            reason,
            field: field.into(),
            message: message.into(),
        }],
    )
}

/// Server-side apply (`application/apply-patch+yaml`): the configuration merged into the live
/// object, or the object created from it; see [`managed::apply`].
async fn apply(s: &ApiServer, t: &Target, q: &Query, headers: &HeaderMap, config: Value, force: bool) -> ApiResult<Response> {
    if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
        return Err(patch_options_invalid(
            "fieldManager",
            "FieldValueRequired",
            "Required value: is required for apply patch",
        ));
    }
    let w = writer(t, q, headers)?;
    if !config.is_object() {
        return Err(ApiError::bad_request("the apply configuration must be an object"));
    }
    if config.pointer("/metadata/managedFields").is_some() {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
    for f in ["apiVersion", "kind"] {
        if config.get(f).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(format!(
                "the apply configuration must set {f} ({} for {})",
                if f == "kind" { t.res.kind.to_string() } else { t.res.api_version() },
                t.res.plural
            )));
        }
    }
    let name = name_of(t);
    let key = t.res.key(t.namespace.as_deref(), name);
    for _ in 0..5 {
        let Some(old) = s.store.get(&key, None).await? else {
            if t.sub.is_some() {
                return Err(ApiError::not_found(t.res.group, t.res.plural, name));
            }
            let mut o = super::fields::without_nulls(&config);
            check_identity(t, &mut o)?;
            let given = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(name);
            if given != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({given}) does not match the name on the URL ({name})"
                )));
            }
            o["metadata"]["name"] = json!(name);
            let (mut o, warnings) = decode(t.res, o, q)?;
            managed::apply(&Value::Null, &mut o, &config, &w, force)?;
            match insert(s, t, q, o, warnings, None).await {
                Err(e) if e.reason == "AlreadyExists" => continue,
                r => return r,
            }
        };
        let live = from_kv(t.res, &old)?;
        let (mut merged, warnings) = decode(t.res, managed::merged(&live, &config), q)?;
        managed::apply(&live, &mut merged, &config, &w, force)?;
        match replace(s, t, q, merged, &old, warnings, None).await {
            Err(e) if e.reason == "Conflict" && config.pointer("/metadata/resourceVersion").is_none() => continue,
            r => return r,
        }
    }
    Err(ApiError::conflict(t.res.group, t.res.plural, name))
}

async fn patch(s: &ApiServer, t: &Target, q: &Query, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let ct = mime(headers, "");
    let p = read_body(headers, body).await?;
    let force = match q.get("force").map(String::as_str) {
        None => false,
        Some("true") => true,
        Some("false") => false,
        Some(other) => return Err(ApiError::bad_request(format!("force must be true or false, not {other:?}"))),
    };
    if ct == "application/apply-patch+yaml" {
        return apply(s, t, q, headers, p, force).await;
    }
    if q.contains_key("force") {
        return Err(patch_options_invalid(
            "force",
            "FieldValueForbidden",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    let w = writer(t, q, headers)?;
    // A conflict between our read and our write is retried, as the real server retries patches.
    for _ in 0..5 {
        let old = stored(s, t).await?;
        let mut cur = from_kv(t.res, &old)?;
        match ct.as_str() {
            "application/merge-patch+json" => super::patch::merge(&mut cur, &p),
            "application/strategic-merge-patch+json" => super::patch::strategic(&mut cur, &p)?,
            "application/json-patch+json" => super::patch::json_patch(&mut cur, &p)?,
            other => return Err(ApiError::unsupported_media_type(other)),
        }
        // The patch may not move the object's resourceVersion unless it names it.
        if p.pointer("/metadata/resourceVersion").is_none() {
            cur["metadata"]["resourceVersion"] = json!(old.mod_revision.to_string());
        }
        let (new, warnings) = decode(t.res, cur, q)?;
        match replace(s, t, q, new, &old, warnings, Some(&w)).await {
            Err(e) if e.reason == "Conflict" && p.pointer("/metadata/resourceVersion").is_none() => continue,
            r => return r,
        }
    }
    Err(ApiError::conflict(t.res.group, t.res.plural, name_of(t)))
}

/// The autoscaling/v1 Scale of a scalable object (its replicas and its pods' selector).
fn to_scale(o: &Value) -> Value {
    let m = &o["metadata"];
    let mut meta = json!({});
    for k in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = m.get(k).filter(|v| !v.is_null()) {
            meta[k] = v.clone();
        }
    }
    let selector = o.pointer("/spec/selector").map(super::select::selector_string).unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": o.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": o.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector,
        },
    })
}

/// `GET|PUT|PATCH <kind>/<name>/scale` (what `kubectl scale` and autoscalers use): the object's
/// replicas as an autoscaling/v1 Scale; a write changes `spec.replicas` only.
async fn scale(s: &ApiServer, t: &Target, q: &Query, headers: &HeaderMap, body: Body, m: &Method) -> ApiResult<Response> {
    if *m == Method::GET {
        return Ok(respond(StatusCode::OK, to_scale(&get(s, t).await?)));
    }
    let w = writer(t, q, headers)?;
    let ct = mime(headers, "application/json");
    if ct == "application/apply-patch+yaml" {
        return Err(ApiError::unsupported_media_type(
            "application/apply-patch+yaml (server-side apply of /scale is not served; apply the object itself)",
        ));
    }
    let p = read_body(headers, body).await?;
    for _ in 0..5 {
        let old = stored(s, t).await?;
        let obj = from_kv(t.res, &old)?;
        let mut sc = to_scale(&obj);
        match (m.clone(), ct.as_str()) {
            (Method::PUT, _) => sc = p.clone(),
            (_, "application/merge-patch+json") => super::patch::merge(&mut sc, &p),
            (_, "application/strategic-merge-patch+json") => super::patch::strategic(&mut sc, &p)?,
            (_, "application/json-patch+json") => super::patch::json_patch(&mut sc, &p)?,
            (_, other) => return Err(ApiError::unsupported_media_type(other)),
        }
        let replicas = match sc.pointer("/spec/replicas") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Scale in version \"v1\" cannot be handled as a Scale: spec.replicas: {v} is not an integer"
                ))
            })?,
        };
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name_of(t),
                vec![super::status::Cause {
                    reason: "FieldValueInvalid",
                    field: "spec.replicas".into(),
                    message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                }],
            ));
        }
        let mut new = obj.clone();
        new["spec"]["replicas"] = json!(replicas);
        // A Scale naming a resourceVersion is a precondition on the object's.
        if let Some(rv) = sc
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            new["metadata"]["resourceVersion"] = json!(rv);
        }
        let (new, warnings) = decode(t.res, new, q)?;
        let stale_ok = sc.pointer("/metadata/resourceVersion").is_none() || *m == Method::PATCH;
        match replace(s, t, q, new, &old, warnings, Some(&w)).await {
            Err(e) if e.reason == "Conflict" && stale_ok => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(respond(StatusCode::OK, to_scale(&get(s, t).await?))),
        }
    }
    Err(ApiError::conflict(t.res.group, t.res.plural, name_of(t)))
}

fn success(t: &Target, uid: &Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": name_of(t), "group": t.res.group, "kind": t.res.plural, "uid": uid},
    })
}

pub(crate) async fn delete(s: &ApiServer, t: &Target, q: &Query, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    // DeleteOptions: none, JSON, or protobuf (client-go's typed clients send that).
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading DeleteOptions: {e}")))?;
    let opts: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        read_body(headers, Body::from(bytes)).await?
    };
    let old = stored(s, t).await?;
    let obj = from_kv(t.res, &old)?;
    if let Some(uid) = opts.pointer("/preconditions/uid").and_then(Value::as_str) {
        if Some(uid) != obj.pointer("/metadata/uid").and_then(Value::as_str) {
            return Err(ApiError::conflict(t.res.group, t.res.plural, name_of(t)));
        }
    }
    let expected = match opts.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
        Some(rv) => rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        None => old.mod_revision,
    };
    let dry = dry_run(q)?
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    if dry {
        return Ok(respond(StatusCode::OK, success(t, &obj["metadata"]["uid"])));
    }
    if t.res.kind == "Namespace" {
        // Empty it first: every namespaced object in it goes, then the namespace.
        for r in RESOURCES.iter().filter(|r| r.namespaced) {
            let page = s.store.list(&r.prefix(Some(name_of(t))), ListOptions::default()).await?;
            for kv in page.items {
                match s.store.delete(&kv.key, 0).await {
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    if t.res.kind == "Namespace" {
        let gone = s
            .store
            .delete(&t.res.key(None, name_of(t)), expected)
            .await
            .map_err(write_error(t.res, name_of(t)))?;
        let mut o = from_kv(t.res, &gone)?;
        o["status"]["phase"] = json!("Terminating");
        return Ok(respond(StatusCode::OK, o));
    }
    if t.res.kind == "Pod" {
        if let Some(marked) = graceful_pod_delete(s, &old, &obj, &opts).await? {
            return Ok(respond(StatusCode::OK, marked));
        }
    }
    let policy = super::gc::propagation(&opts)?;
    match super::gc::remove(&s.store, t.res, old, expected, policy).await? {
        // Finalizers remain: the object is returned, marked for deletion.
        super::gc::Outcome::Marked(o) => Ok(respond(StatusCode::OK, o)),
        super::gc::Outcome::Deleted(_) => Ok(respond(StatusCode::OK, success(t, &obj["metadata"]["uid"]))),
    }
}

/// A pod running on a node is deleted gracefully, as the real server does it: it is marked
/// (`deletionTimestamp` = now + the grace period, `deletionGracePeriodSeconds`) and its node's
/// agent stops its containers, then removes it. A grace period of 0, an unscheduled pod and a
/// finished one go at once. The marked object, or none when it is to go now.
async fn graceful_pod_delete(s: &ApiServer, old: &KeyValue, obj: &Value, opts: &Value) -> ApiResult<Option<Value>> {
    let bound = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
    let finished = matches!(obj.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
    let grace = opts
        .get("gracePeriodSeconds")
        .and_then(Value::as_i64)
        .or_else(|| obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
        .unwrap_or(30)
        .max(0);
    if !bound || finished || grace == 0 {
        return Ok(None);
    }
    let mut o = obj.clone();
    let marked_grace = o.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
    if marked_grace.is_some_and(|g| g <= grace) {
        // Already being deleted, no sooner than asked.
        return Ok(Some(o));
    }
    let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
    o["metadata"]["deletionTimestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    o["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    o["metadata"]["resourceVersion"] = Value::Null;
    let res = super::resources::find("", "v1", "pods").expect("pods are served");
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let kv = s
        .store
        .update(&old.key, stored_bytes(&o), old.mod_revision)
        .await
        .map_err(write_error(res, &name))?;
    Ok(Some(from_kv(res, &kv)?))
}

/// `POST serviceaccounts/<name>/token`: a token for the service account (`kubectl create
/// token`), for the audiences asked (the API server's by default), valid `expirationSeconds`
/// (an hour by default, ten minutes at least), bound to a pod when `boundObjectRef` names one.
async fn token_request(s: &ApiServer, t: &Target, q: &Query, mut req: Value) -> ApiResult<Response> {
    let sa = get(s, t).await?;
    let name = name_of(t);
    let ns = t.namespace.clone().unwrap_or_default();
    if !req.is_object() || req.get("kind").is_some_and(|k| k != "TokenRequest") {
        return Err(ApiError::bad_request("the body must be an authentication.k8s.io/v1 TokenRequest"));
    }
    let invalid = |field: &str, msg: String| {
        ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![super::resources::cause("FieldValueInvalid", field, msg)],
        )
    };
    let seconds = req.pointer("/spec/expirationSeconds").and_then(Value::as_i64).unwrap_or(3600);
    if seconds < 600 {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        ));
    }
    if seconds > 1 << 32 {
        return Err(invalid(
            "spec.expirationSeconds",
            format!("Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"),
        ));
    }
    let audiences: Vec<String> = req
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let pod = match req.pointer("/spec/boundObjectRef") {
        Some(r) if !r.is_null() => {
            if r["kind"] != "Pod" {
                return Err(invalid(
                    "spec.boundObjectRef.kind",
                    format!(
                        "Unsupported value: {:?}: Berth binds tokens to pods only",
                        r["kind"].as_str().unwrap_or("")
                    ),
                ));
            }
            let pods = RESOURCES
                .iter()
                .find(|r| r.kind == "Pod")
                .ok_or_else(|| ApiError::internal("no pods"))?;
            let pt = Target {
                res: pods,
                namespace: Some(ns.clone()),
                name: r["name"].as_str().map(String::from),
                sub: None,
            };
            let p = get(s, &pt).await?;
            if r["uid"]
                .as_str()
                .is_some_and(|u| !u.is_empty() && Some(u) != p.pointer("/metadata/uid").and_then(Value::as_str))
            {
                return Err(ApiError {
                    code: 409,
                    reason: "Conflict",
                    message: format!("the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated", r["uid"].as_str().unwrap_or("")),
                    details: None,
                });
            }
            Some(p)
        }
        _ => None,
    };
    let (token, exp) = if dry_run(q)? {
        (String::new(), String::new())
    } else {
        s.issuer.service_account_token(&sa, &audiences, seconds, pod.as_ref())
    };
    let auds = if audiences.is_empty() {
        vec![super::auth::ISSUER.to_string()]
    } else {
        audiences
    };
    req["apiVersion"] = json!("authentication.k8s.io/v1");
    req["kind"] = json!("TokenRequest");
    req["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": now()});
    req["spec"]["audiences"] = json!(auds);
    req["spec"]["expirationSeconds"] = json!(seconds);
    req["status"] = json!({"token": token, "expirationTimestamp": exp});
    Ok(respond(StatusCode::CREATED, req))
}

/// `POST pods/<name>/binding`: assign an unscheduled pod to a node, as a scheduler does.
async fn bind(s: &ApiServer, t: &Target, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let b = read_body(headers, body).await?;
    let node = b.pointer("/target/name").and_then(Value::as_str).unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::invalid(
            "",
            "Binding",
            name_of(t),
            vec![super::status::Cause {
                reason: "FieldValueRequired",
                field: "target.name".into(),
                message: "Required value".into(),
            }],
        ));
    }
    let old = stored(s, t).await?;
    let mut o = from_kv(t.res, &old)?;
    if let Some(n) = o.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        return Err(ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on pods/binding \"{}\": pod {} is already assigned to node \"{n}\"",
                name_of(t),
                name_of(t)
            ),
            details: None,
        });
    }
    o["spec"]["nodeName"] = json!(node);
    set_condition(&mut o, "PodScheduled", "True", "", "");
    s.store
        .update(&old.key, stored_bytes(&o), old.mod_revision)
        .await
        .map_err(write_error(t.res, name_of(t)))?;
    Ok(respond(
        StatusCode::CREATED,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// Set a pod condition (its transition time moves only when its status changes).
pub fn set_condition(o: &mut Value, ty: &str, status: &str, reason: &str, message: &str) {
    if !o["status"].is_object() {
        o["status"] = json!({});
    }
    if !o["status"]["conditions"].is_array() {
        o["status"]["conditions"] = json!([]);
    }
    let conds = o["status"]["conditions"].as_array_mut().expect("an array");
    let mut c = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": now()});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    match conds.iter_mut().find(|x| x["type"] == ty) {
        Some(x) => {
            if x["status"] == status {
                c["lastTransitionTime"] = x["lastTransitionTime"].clone();
            }
            *x = c;
        }
        None => conds.push(c),
    }
}

async fn delete_collection(s: &ApiServer, t: &Target, q: &Query) -> ApiResult<Response> {
    if t.res.kind == "Namespace" {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource (deletecollection namespaces)",
        ));
    }
    let (labels, fields) = selectors(t.res, q)?;
    let page = s.store.list(&t.res.prefix(t.namespace.as_deref()), ListOptions::default()).await?;
    let mut items = Vec::new();
    for kv in page.items {
        let o = from_kv(t.res, &kv)?;
        if labels.matches(&o) && fields.matches(&o) {
            if !dry_run(q)? {
                match s.store.delete(&kv.key, kv.mod_revision).await {
                    Ok(_) | Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            items.push(o);
        }
    }
    Ok(respond(
        StatusCode::OK,
        json!({"kind": format!("{}List", t.res.kind), "apiVersion": t.res.api_version(), "metadata": {"resourceVersion": page.revision.to_string()}, "items": items}),
    ))
}

/// A watch: JSON lines, Table rows (`table`), or length-framed protobuf `WatchEvent`s (`pb`, for
/// clients whose first accepted type is protobuf), as the real server streams them.
async fn watch(s: Arc<ApiServer>, t: Target, q: Query, table: bool, pb: bool) -> ApiResult<Response> {
    let (labels, fields) = selectors(t.res, &q)?;
    let timeout = q.get("timeoutSeconds").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1800);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true" || v == "1");
    let prefix = t.res.prefix(t.namespace.as_deref());
    let rv = q.get("resourceVersion").filter(|r| !r.is_empty()).cloned();
    let res = t.res;
    // No resourceVersion (or "0"): the current objects first, as ADDED events.
    let (initial, from) = match rv.as_deref() {
        None | Some("0") => {
            let page = s.store.list(&prefix, ListOptions::default()).await?;
            (page.items, page.revision)
        }
        Some(r) => (
            Vec::new(),
            r.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {r}")))?,
        ),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(64);
    let frame = move |kind: &str, o: Value| -> bytes::Bytes {
        let object = if table && kind != "BOOKMARK" && kind != "ERROR" {
            super::table::table(res, &[o], "")
        } else {
            o
        };
        if pb {
            let framed = super::proto::watch_frame(kind, &object).or_else(|e| {
                tracing::warn!(error = %e.message, "a watch event has no protobuf form");
                super::proto::watch_frame("ERROR", &e.status())
            });
            return bytes::Bytes::from(framed.unwrap_or_default());
        }
        let mut line = json!({"type": kind, "object": object}).to_string();
        line.push('\n');
        bytes::Bytes::from(line)
    };
    let store = s.store.clone();
    let stream = match store.watch(&prefix, from).await {
        Ok(w) => Some(w),
        Err(StoreError::Compacted { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    tokio::spawn(async move {
        let Some(mut w) = stream else {
            let gone = ApiError::gone(format!("too old resource version: {} ", from));
            let _ = tx.send(Ok(frame("ERROR", gone.status()))).await;
            return;
        };
        for kv in initial {
            if let Ok(o) = from_kv(res, &kv) {
                if labels.matches(&o) && fields.matches(&o) && tx.send(Ok(frame("ADDED", o))).await.is_err() {
                    return;
                }
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut last = from;
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            let ev = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    let b = json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": last.to_string()}});
                    if tx.send(Ok(frame("BOOKMARK", b))).await.is_err() { return; }
                    continue;
                }
                ev = w.recv() => ev,
            };
            let Some(ev) = ev else { return };
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    let _ = tx.send(Ok(frame("ERROR", ApiError::from(e).status()))).await;
                    return;
                }
            };
            last = ev.kv.mod_revision;
            let Ok(o) = from_kv(res, &ev.kv) else { continue };
            let now_match = labels.matches(&o) && fields.matches(&o);
            let was = ev
                .prev
                .as_ref()
                .and_then(|p| from_kv(res, p).ok())
                .is_some_and(|p| labels.matches(&p) && fields.matches(&p));
            let kind = match (ev.kind, was, now_match) {
                (EventKind::Delete, true, _) => "DELETED",
                (EventKind::Delete, false, _) => continue,
                (EventKind::Put, _, false) if was => "DELETED",
                (EventKind::Put, _, false) => continue,
                (EventKind::Put, false, true) => "ADDED",
                (EventKind::Put, true, true) => "MODIFIED",
            };
            if tx.send(Ok(frame(kind, o))).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }));
    let content_type = if pb {
        "application/vnd.kubernetes.protobuf;stream=watch"
    } else {
        "application/json"
    };
    Ok(([("content-type", content_type), ("transfer-encoding", "chunked")], body).into_response())
}

/// The `default` ServiceAccount every namespace has (the real server's controller makes it).
async fn default_service_account(store: &dyn Store, namespace: &str) -> ApiResult<()> {
    let Some(sa) = RESOURCES.iter().find(|r| r.kind == "ServiceAccount") else {
        return Ok(());
    };
    let key = sa.key(Some(namespace), "default");
    let o = json!({"metadata": {"name": "default", "namespace": namespace, "uid": uuid(), "creationTimestamp": now()}});
    match store.create(&key, stored_bytes(&o)).await {
        Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The `kube-root-ca.crt` ConfigMap of a namespace (the CA clients in pods trust), as the
/// root-CA publisher keeps it: made when missing, its data put right when changed.
async fn ensure_root_ca(store: &dyn Store, namespace: &str, ca: &str) -> ApiResult<()> {
    let Some(cm) = RESOURCES.iter().find(|r| r.kind == "ConfigMap") else {
        return Ok(());
    };
    let key = cm.key(Some(namespace), "kube-root-ca.crt");
    let data = json!({"ca.crt": ca});
    match store.get(&key, None).await? {
        Some(kv) => {
            let mut o: Value = serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))?;
            if o["data"] != data {
                o["data"] = data;
                let _ = store.update(&key, stored_bytes(&o), kv.mod_revision).await;
            }
            Ok(())
        }
        None => {
            let o = json!({
                "metadata": {"name": "kube-root-ca.crt", "namespace": namespace, "uid": uuid(), "creationTimestamp": now(),
                    "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                "data": data,
            });
            match store.create(&key, stored_bytes(&o)).await {
                Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// `kube-root-ca.crt` in every namespace.
pub async fn ensure_root_ca_everywhere(store: &dyn Store, ca: &str) -> ApiResult<()> {
    let page = store.list(&RESOURCES[0].prefix(None), Default::default()).await?;
    for kv in page.items {
        let o: Value = serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))?;
        if let Some(ns) = o.pointer("/metadata/name").and_then(Value::as_str) {
            if o.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null) {
                ensure_root_ca(store, ns, ca).await?;
            }
        }
    }
    Ok(())
}

/// Make sure the namespaces every cluster has exist.
/// Make an object the cluster always has (admitted as a create would admit it), unless it
/// exists already.
pub(crate) async fn ensure_object(store: &dyn Store, res: &'static Resource, namespace: Option<&str>, mut o: Value) -> ApiResult<()> {
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let key = res.key(namespace, &name);
    if store.get(&key, None).await?.is_some() {
        return Ok(());
    }
    o["metadata"]["uid"] = json!(uuid());
    o["metadata"]["creationTimestamp"] = json!(now());
    (res.admit)(&mut o, None);
    if res.kind == "Service" && res.group.is_empty() {
        super::network::allocate(store, &mut o, None).await?;
    }
    match store.create(&key, stored_bytes(&o)).await {
        Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub async fn ensure_namespaces(store: &dyn Store) -> ApiResult<()> {
    let res = &RESOURCES[0];
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let key = res.key(None, ns);
        if store.get(&key, None).await?.is_some() {
            continue;
        }
        let mut o = json!({"metadata": {"name": ns, "uid": uuid(), "creationTimestamp": now()}});
        (res.admit)(&mut o, None);
        match store.create(&key, stored_bytes(&o)).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        default_service_account(store, ns).await?;
    }
    Ok(())
}
