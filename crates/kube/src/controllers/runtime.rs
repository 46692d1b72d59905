//! The controllers' runtime, in the shape kube-runtime teaches:
//!
//! - [`Client`]: an in-process API client. Every write goes through the API server's own
//!   routing, admission, validation and managedFields (as a controller manager's writes do),
//!   without HTTP or TLS.
//! - [`Informer`]: a local cache of one kind, filled by a list of the store and kept by a watch
//!   from the list's revision; when the watch ends (compaction, a lagging reader) it lists again
//!   and reports what changed meanwhile. Every change is broadcast to the controllers.
//! - [`Queue`]: the keys (`namespace/name`) of objects to reconcile, each queued once however
//!   often it is added, with delayed adds for "look again in 5 s".
//! - [`Expectations`]: the pods a controller created or deleted and has not yet seen in its
//!   cache, so that it does not act twice on a stale view (kube-controller-manager's
//!   ControllerExpectations).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::apiserver::auth::{User, REQUESTER};
use crate::apiserver::objects;
use crate::apiserver::resources::Resource;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::ApiServer;
use crate::store::{Error as StoreError, EventKind, ListOptions};

/// An object's cache key: `namespace/name` (`name` for cluster-scoped kinds).
pub fn key_of(o: &Value) -> String {
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    match o.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// A key's namespace and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// A string field of an object (`""` when absent).
pub fn str_at<'a>(o: &'a Value, pointer: &str) -> &'a str {
    o.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// An integer field of an object, or `default`.
pub fn int_at(o: &Value, pointer: &str, default: i64) -> i64 {
    o.pointer(pointer).and_then(Value::as_i64).unwrap_or(default)
}

/// The controller reference of an object (its owner with `controller: true`).
pub fn controller_of(o: &Value) -> Option<&Value> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r["controller"] == json!(true))
}

/// The cache key (`namespace/name`) of the object's controller, when it is of `kind`.
pub fn owner_key(o: &Value, kind: &str) -> Option<String> {
    let r = controller_of(o).filter(|r| r["kind"] == kind)?;
    Some(format!("{}/{}", str_at(o, "/metadata/namespace"), r["name"].as_str().unwrap_or("")))
}

/// An owner reference to `owner` marking it the controller, as controllers write them.
pub fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"],
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// The API server, called in-process under a controller's identity.
#[derive(Clone)]
pub struct Client {
    server: Arc<ApiServer>,
    /// The field manager and user agent (`kube-controller-manager`).
    agent: &'static str,
}

impl Client {
    /// A client acting as `agent` (its field manager).
    pub fn new(server: Arc<ApiServer>, agent: &'static str) -> Client {
        Client { server, agent }
    }

    /// The store beneath the API server (for events).
    pub fn store(&self) -> &dyn crate::store::Store {
        self.server.store.as_ref()
    }

    async fn call(&self, method: Method, path: &[&str], res: &'static Resource, body: Option<(&str, Value)>) -> ApiResult<Value> {
        let t = objects::target(res.group, res.version, path)?;
        let mut headers = HeaderMap::new();
        headers.insert("user-agent", HeaderValue::from_static(self.agent));
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let body = match body {
            Some((content_type, v)) => {
                headers.insert(
                    "content-type",
                    HeaderValue::from_str(content_type).map_err(|e| ApiError::internal(e.to_string()))?,
                );
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let user = User {
            name: format!("system:{}", self.agent),
            uid: String::new(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        };
        let work = objects::handle(self.server.clone(), method, t, BTreeMap::new(), headers, body);
        let resp = REQUESTER.scope(user, work).await?;
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(format!("an answer that is not JSON: {e}")))
    }

    fn path<'a>(res: &'a Resource, ns: &'a str, name: Option<&'a str>, sub: Option<&'a str>) -> Vec<&'a str> {
        let mut p = Vec::new();
        if res.namespaced {
            p.extend(["namespaces", ns]);
        }
        p.push(res.plural);
        p.extend(name);
        p.extend(sub);
        p
    }

    /// Get an object.
    pub async fn get(&self, res: &'static Resource, ns: &str, name: &str) -> ApiResult<Value> {
        self.call(Method::GET, &Self::path(res, ns, Some(name), None), res, None).await
    }

    /// List the objects of a kind in `ns` (every namespace when `ns` is empty).
    pub async fn list(&self, res: &'static Resource, ns: &str) -> ApiResult<Vec<Value>> {
        let mut p = Vec::new();
        if res.namespaced && !ns.is_empty() {
            p.extend(["namespaces", ns]);
        }
        p.push(res.plural);
        let v = self.call(Method::GET, &p, res, None).await?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// Create `obj` in `ns`.
    pub async fn create(&self, res: &'static Resource, ns: &str, obj: Value) -> ApiResult<Value> {
        self.call(Method::POST, &Self::path(res, ns, None, None), res, Some(("application/json", obj)))
            .await
    }

    /// Replace `obj` (409 when it changed since it was read).
    pub async fn update(&self, res: &'static Resource, obj: &Value) -> ApiResult<Value> {
        let (ns, name) = (str_at(obj, "/metadata/namespace"), str_at(obj, "/metadata/name"));
        self.call(
            Method::PUT,
            &Self::path(res, ns, Some(name), None),
            res,
            Some(("application/json", obj.clone())),
        )
        .await
    }

    /// Replace `obj`'s status.
    pub async fn update_status(&self, res: &'static Resource, obj: &Value) -> ApiResult<Value> {
        let (ns, name) = (str_at(obj, "/metadata/namespace"), str_at(obj, "/metadata/name"));
        self.call(
            Method::PUT,
            &Self::path(res, ns, Some(name), Some("status")),
            res,
            Some(("application/json", obj.clone())),
        )
        .await
    }

    /// Merge-patch an object.
    pub async fn patch(&self, res: &'static Resource, ns: &str, name: &str, patch: Value) -> ApiResult<Value> {
        self.call(
            Method::PATCH,
            &Self::path(res, ns, Some(name), None),
            res,
            Some(("application/merge-patch+json", patch)),
        )
        .await
    }

    /// Delete an object (gracefully, as its kind deletes), preconditioned on its UID.
    pub async fn delete(&self, res: &'static Resource, ns: &str, name: &str, uid: &str) -> ApiResult<()> {
        self.delete_opts(
            res,
            ns,
            name,
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}),
        )
        .await
    }

    /// Delete an object and its dependents as `propagation` says (Background, Foreground).
    pub async fn delete_with(&self, res: &'static Resource, ns: &str, name: &str, uid: &str, propagation: &str) -> ApiResult<()> {
        let opts = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}, "propagationPolicy": propagation});
        self.delete_opts(res, ns, name, opts).await
    }

    async fn delete_opts(&self, res: &'static Resource, ns: &str, name: &str, opts: Value) -> ApiResult<()> {
        match self
            .call(
                Method::DELETE,
                &Self::path(res, ns, Some(name), None),
                res,
                Some(("application/json", opts)),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// One change an informer saw.
#[derive(Debug, Clone)]
pub struct Change {
    /// The object before (none: it is new).
    pub old: Option<Arc<Value>>,
    /// The object now (none: it is gone).
    pub new: Option<Arc<Value>>,
}

impl Change {
    /// The object the change is about (the new one, or the last one seen).
    pub fn object(&self) -> &Value {
        self.new.as_deref().or(self.old.as_deref()).unwrap_or(&Value::Null)
    }
}

/// A local cache of one kind, kept by a watch of the store.
pub struct Informer {
    res: &'static Resource,
    items: RwLock<BTreeMap<String, Arc<Value>>>,
    changes: broadcast::Sender<Change>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl Informer {
    /// An informer of `res` (start it with [`Informer::run`]).
    pub fn new(res: &'static Resource) -> Arc<Informer> {
        Arc::new(Informer {
            res,
            items: RwLock::new(BTreeMap::new()),
            changes: broadcast::channel(4096).0,
            synced: tokio::sync::watch::channel(false).0,
        })
    }

    /// The kind it caches.
    pub fn resource(&self) -> &'static Resource {
        self.res
    }

    /// The changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Wait until the first list is in the cache.
    pub async fn synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// One object.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.items.read().expect("informer lock").get(key).cloned()
    }

    /// The objects of a namespace (all of them for `""`).
    pub fn list(&self, ns: &str) -> Vec<Arc<Value>> {
        let items = self.items.read().expect("informer lock");
        if ns.is_empty() {
            return items.values().cloned().collect();
        }
        let from = format!("{ns}/");
        items
            .range(from.clone()..)
            .take_while(|(k, _)| k.starts_with(&from))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Every key.
    pub fn keys(&self) -> Vec<String> {
        self.items.read().expect("informer lock").keys().cloned().collect()
    }

    fn apply(&self, key: String, new: Option<Value>) {
        let new = new.map(Arc::new);
        let old = {
            let mut items = self.items.write().expect("informer lock");
            match &new {
                Some(v) => items.insert(key, v.clone()),
                None => items.remove(&key),
            }
        };
        if old.is_some() || new.is_some() {
            let _ = self.changes.send(Change { old, new });
        }
    }

    /// List, then watch, for ever; list again whenever the watch ends.
    pub async fn run(self: Arc<Self>, store: Arc<dyn crate::store::Store>) {
        let prefix = self.res.prefix(None);
        loop {
            let page = match store.list(&prefix, ListOptions::default()).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(kind = self.res.kind, error = %e, "informer list");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut fresh = BTreeMap::new();
            for kv in &page.items {
                if let Ok(o) = objects::from_kv(self.res, kv) {
                    fresh.insert(key_of(&o), o);
                }
            }
            for gone in self.keys().into_iter().filter(|k| !fresh.contains_key(k)) {
                self.apply(gone, None);
            }
            for (k, o) in fresh {
                let same = self
                    .get(&k)
                    .is_some_and(|old| old["metadata"]["resourceVersion"] == o["metadata"]["resourceVersion"]);
                if !same {
                    self.apply(k, Some(o));
                }
            }
            self.synced.send_replace(true);
            let mut w = match store.watch(&prefix, page.revision).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(kind = self.res.kind, error = %e, "informer watch");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(ev) = w.recv().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(StoreError::Compacted { .. }) => break,
                    Err(e) => {
                        tracing::warn!(kind = self.res.kind, error = %e, "informer watch");
                        break;
                    }
                };
                let Ok(o) = objects::from_kv(self.res, &ev.kv) else { continue };
                let key = key_of(&o);
                match ev.kind {
                    EventKind::Put => self.apply(key, Some(o)),
                    EventKind::Delete => self.apply(key, None),
                }
            }
        }
    }
}

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes.
    Done,
    /// Look again after a while (a deadline, minReadySeconds, a back-off).
    After(Duration),
}

/// Keys to reconcile: each queued once however often added.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::UnboundedSender<String>,
    pending: Arc<Mutex<HashSet<String>>>,
}

impl Queue {
    /// A queue and its receiving end.
    pub fn new() -> (Queue, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Queue {
                tx,
                pending: Arc::new(Mutex::new(HashSet::new())),
            },
            rx,
        )
    }

    /// Queue `key` (again).
    pub fn add(&self, key: String) {
        if self.pending.lock().expect("queue lock").insert(key.clone()) {
            let _ = self.tx.send(key);
        }
    }

    /// Queue `key` after `d`.
    pub fn add_after(&self, key: String, d: Duration) {
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            q.add(key);
        });
    }

    /// Take `key` off the pending set (it is being reconciled: adds from now on queue it again).
    pub fn taken(&self, key: &str) {
        self.pending.lock().expect("queue lock").remove(key);
    }
}

/// Serve a queue: reconcile each key as it comes, requeueing as the reconcile asks, and with
/// a growing back-off (5 ms doubling to 1000 s, as client-go's rate limiter) after errors.
pub async fn work<F, Fut>(name: &'static str, queue: Queue, mut rx: mpsc::UnboundedReceiver<String>, reconcile: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ApiResult<Action>>,
{
    let mut failures: HashMap<String, u32> = HashMap::new();
    while let Some(key) = rx.recv().await {
        queue.taken(&key);
        match reconcile(key.clone()).await {
            Ok(action) => {
                failures.remove(&key);
                if let Action::After(d) = action {
                    queue.add_after(key, d);
                }
            }
            Err(e) => {
                let n = failures.entry(key.clone()).or_insert(0);
                *n += 1;
                let delay = Duration::from_millis(5u64.saturating_mul(1 << (*n).min(18))).min(Duration::from_secs(1000));
                if e.code == 409 {
                    tracing::debug!(controller = name, %key, "conflict; again");
                } else {
                    tracing::warn!(controller = name, %key, error = %e.message, "reconcile failed; again in {delay:?}");
                }
                queue.add_after(key, delay);
            }
        }
    }
}

/// Pods a controller has created or deleted and not yet seen so in its cache.
#[derive(Default)]
pub struct Expectations {
    map: Mutex<HashMap<String, Expected>>,
}

struct Expected {
    adds: HashSet<String>,
    deletes: HashSet<String>,
    at: Instant,
}

impl Expectations {
    /// After this long, expectations are dropped (a create the cache never saw).
    const TTL: Duration = Duration::from_secs(60);

    /// Whether `owner`'s cache view can be acted on: nothing it wrote is still unseen.
    pub fn satisfied(&self, owner: &str) -> bool {
        let mut m = self.map.lock().expect("expectations lock");
        match m.get(owner) {
            None => true,
            Some(e) if (e.adds.is_empty() && e.deletes.is_empty()) || e.at.elapsed() > Self::TTL => {
                m.remove(owner);
                true
            }
            Some(_) => false,
        }
    }

    fn expect(&self, owner: &str, name: &str, delete: bool) {
        let mut m = self.map.lock().expect("expectations lock");
        let e = m.entry(owner.to_string()).or_insert_with(|| Expected {
            adds: HashSet::new(),
            deletes: HashSet::new(),
            at: Instant::now(),
        });
        if delete { &mut e.deletes } else { &mut e.adds }.insert(name.to_string());
        e.at = Instant::now();
    }

    /// `owner` created (or is about to) the pod `name`.
    pub fn expect_add(&self, owner: &str, name: &str) {
        self.expect(owner, name, false);
    }

    /// `owner` deletes the pod `name`.
    pub fn expect_delete(&self, owner: &str, name: &str) {
        self.expect(owner, name, true);
    }

    /// A create that failed (it will not be seen).
    pub fn forget_add(&self, owner: &str, name: &str) {
        if let Some(e) = self.map.lock().expect("expectations lock").get_mut(owner) {
            e.adds.remove(name);
        }
    }

    /// The cache saw the pod `name` of `owner` (present, or gone/terminating when `gone`).
    pub fn observed(&self, owner: &str, name: &str, gone: bool) {
        if let Some(e) = self.map.lock().expect("expectations lock").get_mut(owner) {
            e.adds.remove(name);
            if gone {
                e.deletes.remove(name);
            }
        }
    }

    /// Drop everything about `owner` (it is gone).
    pub fn forget(&self, owner: &str) {
        self.map.lock().expect("expectations lock").remove(owner);
    }
}

/// The time now, as Kubernetes writes it.
pub fn now() -> String {
    objects::now()
}

/// Seconds since an RFC 3339 time (none when it does not parse).
pub fn seconds_since(t: &str) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(t).ok()?;
    Some((chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_milliseconds() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_hold_until_seen() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect_add("ns/rs", "a");
        e.expect_delete("ns/rs", "b");
        assert!(!e.satisfied("ns/rs"));
        e.observed("ns/rs", "a", false);
        assert!(!e.satisfied("ns/rs"));
        e.observed("ns/rs", "b", true);
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn keys_and_owners() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "ownerReferences": [
            {"kind": "X", "name": "x", "uid": "1"}, {"kind": "ReplicaSet", "name": "rs", "uid": "2", "controller": true}]}});
        assert_eq!(key_of(&pod), "ns/p");
        assert_eq!(split_key("ns/p"), ("ns", "p"));
        assert_eq!(controller_of(&pod).unwrap()["name"], "rs");
        assert_eq!(key_of(&json!({"metadata": {"name": "node"}})), "node");
    }
}
