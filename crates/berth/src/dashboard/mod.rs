//! The web dashboard the daemon serves on a loopback address (`--dashboard`, `none` turns it
//! off): containers, images, compose projects, pods, deployments and services; logs that
//! follow (server-sent events); live CPU and memory plots per container and pod; actions to
//! stop, start and restart containers and projects, and to scale and roll back deployments.
//!
//! It reads and acts through the same paths the real clients use: the Docker Engine API
//! router, called in-process, and the Kubernetes API server's in-process client (so admission,
//! events and field managers are those of any other request).
//!
//! Access: plain HTTP on loopback only, so its guard is a token — 32 random bytes, which the
//! socket's `GET /berth/dashboard` (and `berth dashboard`) hands to those who may use the socket
//! anyway. `/?token=…` sets an HttpOnly, SameSite=Strict cookie and redirects to drop the
//! token from the address bar; every request must carry the cookie, name the dashboard's own
//! loopback host (a page elsewhere cannot reach it by DNS rebinding), and actions must be POSTs
//! with the dashboard's own header (which a cross-site form cannot send).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::service::ContainerService;
use kube::apiserver::resources::{find, Resource};
use kube::controllers::runtime::Client;
use serde_json::{json, Value};
use tower::ServiceExt;

const INDEX: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");
const COOKIE: &str = "berth_dashboard";
/// The header every action carries (a cross-site form cannot set one).
const ACTION_HEADER: &str = "x-berth-dashboard";
/// How often containers are sampled, and how many samples a plot shows (3 minutes).
const PERIOD: Duration = Duration::from_secs(2);
const KEEP: usize = 90;
/// Sampling stops when no page has asked for metrics for this long.
const IDLE_SECS: u64 = 60;

/// One sample: unix time (s), CPU (% of one CPU), memory (bytes, working set).
#[derive(Debug, Clone, Copy)]
struct Point {
    t: f64,
    cpu: f64,
    mem: u64,
}

#[derive(Default)]
struct Series {
    /// The previous CPU reading of each running container (time, CPU ns).
    last: HashMap<String, (f64, u64)>,
    containers: HashMap<String, VecDeque<Point>>,
    /// By `namespace/name`: the sums over the pod's containers.
    pods: HashMap<String, VecDeque<Point>>,
}

pub struct Dashboard {
    engine: Arc<engine::Engine>,
    docker: engine::api::App,
    kube: Option<Client>,
    token: String,
    addr: SocketAddr,
    series: Mutex<Series>,
    /// When a page last asked for metrics (unix seconds).
    watched: AtomicU64,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whether `addr` may be served without TLS: loopback only.
pub fn check_addr(addr: &SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "the dashboard serves plain HTTP and only on a loopback address (127.0.0.1:PORT, [::1]:PORT), not {addr}"
        ))
    }
}

/// Bind the dashboard (failing the daemon's start if it cannot) and serve it in the background;
/// its URL, with the token, is recorded in the engine for `GET /berth/dashboard`.
pub async fn start(addr: SocketAddr, engine: Arc<engine::Engine>, kube: Option<Client>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    check_addr(&addr).map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the dashboard on {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let token = oci::random::hex(32);
    let url = format!("http://{addr}/?token={token}");
    engine.set_dashboard_url(url);
    let d = Arc::new(Dashboard {
        docker: engine::api::app(engine.clone()),
        engine,
        kube,
        token,
        addr,
        series: Mutex::new(Series::default()),
        watched: AtomicU64::new(0),
    });
    tokio::spawn(d.clone().sample());
    tracing::info!(%addr, "dashboard listening (the URL with its token: berth dashboard)");
    let app = router(d);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "dashboard stopped");
        }
    }))
}

fn router(d: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/api/state", get(state))
        .route("/api/metrics", get(metrics))
        .route("/api/logs/{id}", get(logs))
        .route("/api/containers/{id}/{action}", post(container_action))
        .route("/api/compose/{project}/{action}", post(compose_action))
        .route("/api/deployments/{ns}/{name}/scale", post(scale))
        .route("/api/deployments/{ns}/{name}/rollback", post(rollback))
        .layer(axum::middleware::from_fn_with_state(d.clone(), guard))
        .with_state(d)
}

fn asset(kind: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], text).into_response()
}

/// Compare in time independent of where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

fn plain(status: StatusCode, msg: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{msg}\n")).into_response()
}

/// The dashboard's access rules (see the module's doc), and its security headers.
async fn guard(State(d): State<Arc<Dashboard>>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let port = d.addr.port();
    let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")];
    if !hosts.iter().any(|h| h == host) {
        return plain(
            StatusCode::FORBIDDEN,
            &format!("the dashboard answers only at {}", hosts.join(", ")),
        );
    }
    let query_token = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("token="))
        .map(String::from);
    if req.uri().path() == "/" {
        if let Some(t) = query_token {
            if !same(&t, &d.token) {
                return plain(StatusCode::UNAUTHORIZED, "wrong dashboard token (berth dashboard prints the URL)");
            }
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::SEE_OTHER;
            let h = r.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/"));
            let c = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", d.token);
            h.insert(header::SET_COOKIE, HeaderValue::from_str(&c).expect("ascii"));
            return r;
        }
    }
    if !cookie_token(req.headers()).is_some_and(|t| same(t, &d.token)) {
        return plain(
            StatusCode::UNAUTHORIZED,
            "open the dashboard through the URL `berth dashboard` prints (it carries the access token)",
        );
    }
    if req.method() == Method::POST && req.headers().get(ACTION_HEADER).is_none() {
        return plain(StatusCode::FORBIDDEN, "dashboard actions come from the dashboard's own page");
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

type ApiResult<T> = Result<T, (StatusCode, Json<Value>)>;

fn fail(status: StatusCode, msg: impl Into<String>) -> (StatusCode, Json<Value>) {
    (status, Json(json!({"message": msg.into()})))
}

impl Dashboard {
    /// A Docker Engine API call, in-process: its status and JSON body (null when empty).
    async fn docker(&self, method: Method, path: &str) -> ApiResult<Value> {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let resp = self.docker.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"message": String::from_utf8_lossy(&bytes)}))
        };
        if status.is_client_error() || status.is_server_error() {
            let msg = v["message"].as_str().unwrap_or("the engine refused").to_string();
            return Err(fail(status, msg));
        }
        Ok(v)
    }

    fn kube(&self) -> ApiResult<&Client> {
        self.kube
            .as_ref()
            .ok_or_else(|| fail(StatusCode::NOT_FOUND, "this daemon runs without the Kubernetes API (--no-kube)"))
    }

    /// Sample every running container's CPU and memory while a page watches.
    async fn sample(self: Arc<Self>) {
        let mut tick = tokio::time::interval(PERIOD);
        loop {
            tick.tick().await;
            let t = now();
            if (t as u64).saturating_sub(self.watched.load(Ordering::Relaxed)) > IDLE_SECS {
                let mut s = self.series.lock().unwrap();
                if !s.last.is_empty() || !s.containers.is_empty() {
                    *s = Series::default();
                }
                continue;
            }
            let usage: Vec<(engine::types::Container, engine::service::Usage)> = self
                .engine
                .containers()
                .into_iter()
                .filter(|c| c.state.running)
                .filter_map(|c| ContainerService::usage(&self.engine, &c.id).map(|u| (c, u)))
                .collect();
            let mut s = self.series.lock().unwrap();
            let mut seen = HashSet::new();
            let mut pods: HashMap<String, Point> = HashMap::new();
            for (c, u) in usage {
                seen.insert(c.id.clone());
                let prev = s.last.insert(c.id.clone(), (t, u.cpu_ns));
                let Some((t0, n0)) = prev.filter(|(t0, n0)| t > *t0 && u.cpu_ns >= *n0) else {
                    continue;
                };
                let p = Point {
                    t,
                    cpu: (u.cpu_ns - n0) as f64 / ((t - t0) * 1e9) * 100.0,
                    mem: u.memory_working_set,
                };
                push_capped(s.containers.entry(c.id.clone()).or_default(), p);
                let labels = &c.config.labels;
                if let (Some(ns), Some(name)) = (
                    labels.get(kube::agent::pods::POD_NAMESPACE),
                    labels.get(kube::agent::pods::POD_NAME),
                ) {
                    let e = pods.entry(format!("{ns}/{name}")).or_insert(Point { t, cpu: 0.0, mem: 0 });
                    e.cpu += p.cpu;
                    e.mem += p.mem;
                }
            }
            s.last.retain(|k, _| seen.contains(k));
            s.containers.retain(|k, _| seen.contains(k));
            s.pods.retain(|k, _| pods.contains_key(k));
            for (k, p) in pods {
                push_capped(s.pods.entry(k).or_default(), p);
            }
        }
    }
}

/// A plot's samples: the newest `KEEP`.
fn push_capped(q: &mut VecDeque<Point>, p: Point) {
    q.push_back(p);
    while q.len() > KEEP {
        q.pop_front();
    }
}

fn res(group: &str, plural: &str) -> &'static Resource {
    find(group, "v1", plural).expect("a served resource")
}

fn kube_err(e: kube::apiserver::status::ApiError) -> (StatusCode, Json<Value>) {
    fail(StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_GATEWAY), e.message)
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// `GET /api/state`: what the dashboard lists.
async fn state(State(d): State<Arc<Dashboard>>) -> ApiResult<Json<Value>> {
    let containers = d.docker(Method::GET, "/containers/json?all=1").await?;
    let images = d.docker(Method::GET, "/images/json").await?;
    let list = containers.as_array().cloned().unwrap_or_default();
    // Compose projects, from the labels Compose writes (any compose client's projects).
    let mut projects: BTreeMap<String, Value> = BTreeMap::new();
    for c in &list {
        let Some(p) = c.pointer("/Labels/com.docker.compose.project").and_then(Value::as_str) else {
            continue;
        };
        let svc = s(c, "/Labels/com.docker.compose.service");
        let e = projects
            .entry(p.to_string())
            .or_insert_with(|| json!({"Project": p, "WorkingDir": s(c, "/Labels/com.docker.compose.project.working_dir"), "Services": {}}));
        let sv = &mut e["Services"][svc];
        if !sv.is_object() {
            *sv = json!({"Running": 0, "Total": 0});
        }
        sv["Total"] = json!(sv["Total"].as_i64().unwrap_or(0) + 1);
        if c["State"] == "running" {
            sv["Running"] = json!(sv["Running"].as_i64().unwrap_or(0) + 1);
        }
    }
    let mut out = json!({
        "containers": list,
        "images": images,
        "compose": projects.into_values().collect::<Vec<_>>(),
        "kube": d.kube.is_some(),
    });
    if let Some(k) = &d.kube {
        let (pods, deployments, services) = tokio::join!(
            k.list(res("", "pods"), ""),
            k.list(res("apps", "deployments"), ""),
            k.list(res("", "services"), "")
        );
        let (pods, deployments, services) = (pods.map_err(kube_err)?, deployments.map_err(kube_err)?, services.map_err(kube_err)?);
        out["pods"] = json!(pods.iter().map(|p| pod_row(p, &list)).collect::<Vec<_>>());
        out["deployments"] = json!(deployments.iter().map(deployment_row).collect::<Vec<_>>());
        out["services"] = json!(services.iter().map(service_row).collect::<Vec<_>>());
    }
    Ok(Json(out))
}

/// A pod's row: status as `kubectl get pods` shows it, and its containers' engine IDs (the
/// newest instance of each) for their logs.
fn pod_row(p: &Value, engine_containers: &[Value]) -> Value {
    let statuses = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = statuses.iter().filter(|c| c["ready"] == json!(true)).count();
    let total = p.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
    let restarts: i64 = statuses.iter().filter_map(|c| c["restartCount"].as_i64()).sum();
    let uid = s(p, "/metadata/uid");
    let mut containers = Vec::new();
    for c in p.pointer("/spec/containers").and_then(Value::as_array).into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("");
        let newest = engine_containers
            .iter()
            .filter(|e| {
                e.pointer("/Labels/io.kubernetes.pod.uid").and_then(Value::as_str) == Some(uid)
                    && e.pointer("/Labels/io.kubernetes.container.name").and_then(Value::as_str) == Some(name)
            })
            .max_by_key(|e| e["Created"].as_i64().unwrap_or(0));
        containers.push(json!({"Name": name, "Id": newest.map(|e| e["Id"].clone()).unwrap_or(Value::Null)}));
    }
    let waiting = statuses
        .iter()
        .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str));
    // Why it is not running, when it says: the scheduler's word, else a waiting container's.
    let unscheduled = p
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
        .and_then(|c| c["message"].as_str());
    let message = unscheduled
        .or_else(|| {
            statuses
                .iter()
                .find_map(|c| c.pointer("/state/waiting/message").and_then(Value::as_str))
        })
        .unwrap_or("");
    let phase = if p.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        "Terminating"
    } else {
        waiting.unwrap_or(s(p, "/status/phase"))
    };
    json!({
        "Namespace": s(p, "/metadata/namespace"),
        "Name": s(p, "/metadata/name"),
        "Status": phase,
        "Message": message,
        "Ready": format!("{ready}/{total}"),
        "Restarts": restarts,
        "Node": s(p, "/spec/nodeName"),
        "IP": s(p, "/status/podIP"),
        "Created": s(p, "/metadata/creationTimestamp"),
        "Containers": containers,
    })
}

fn deployment_row(d: &Value) -> Value {
    let n = |p: &str| d.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let images: Vec<&str> = d
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str())
        .collect();
    json!({
        "Namespace": s(d, "/metadata/namespace"),
        "Name": s(d, "/metadata/name"),
        "Replicas": d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
        "Ready": n("/status/readyReplicas"),
        "Updated": n("/status/updatedReplicas"),
        "Available": n("/status/availableReplicas"),
        "Revision": d.pointer("/metadata/annotations/deployment.kubernetes.io~1revision").and_then(Value::as_str).unwrap_or(""),
        "Images": images,
    })
}

fn service_row(v: &Value) -> Value {
    let ports: Vec<String> = v
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p["port"].as_i64().unwrap_or(0);
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    json!({
        "Namespace": s(v, "/metadata/namespace"),
        "Name": s(v, "/metadata/name"),
        "Type": s(v, "/spec/type"),
        "ClusterIP": s(v, "/spec/clusterIP"),
        "Ports": ports.join(","),
        "Selector": v.pointer("/spec/selector").cloned().unwrap_or(Value::Null),
    })
}

/// `GET /api/metrics`: each running container's and pod's samples, `[time, cpu %, memory]`.
async fn metrics(State(d): State<Arc<Dashboard>>) -> Json<Value> {
    d.watched.store(now() as u64, Ordering::Relaxed);
    let s = d.series.lock().unwrap();
    let pts = |q: &VecDeque<Point>| -> Value {
        q.iter()
            .map(|p| json!([(p.t * 10.0).round() / 10.0, (p.cpu * 10.0).round() / 10.0, p.mem]))
            .collect()
    };
    let containers: serde_json::Map<String, Value> = s.containers.iter().map(|(k, q)| (k.clone(), pts(q))).collect();
    let pods: serde_json::Map<String, Value> = s.pods.iter().map(|(k, q)| (k.clone(), pts(q))).collect();
    Json(json!({"period": PERIOD.as_secs(), "containers": containers, "pods": pods}))
}

/// `GET /api/logs/{id}`: the container's last 200 lines, then each new one, as server-sent
/// events (one `data:` per line), until the container stops and its log is read.
async fn logs(State(d): State<Arc<Dashboard>>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = d.engine.container(&id).map_err(|e| fail(StatusCode::NOT_FOUND, e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let opts = engine::streams::LogOptions {
        stdout: true,
        stderr: true,
        follow: true,
        timestamps: false,
        tail: Some(200),
        since: None,
        until: None,
        raw: true,
    };
    let engine = d.engine.clone();
    let cid = c.id.clone();
    tokio::spawn(async move {
        if let Err(e) = ContainerService::logs(&engine, &cid, opts, tx).await {
            tracing::debug!(container = %cid, error = %e, "dashboard log stream");
        }
    });
    // Bytes become `data:` lines (a partial line waits for its end); an `end` event closes.
    let first = futures_util::stream::once(async { Ok(bytes::Bytes::from_static(b": connected\n\n")) });
    let lines = futures_util::stream::unfold(Some((rx, Vec::new())), |state| async move {
        let (mut rx, mut pending) = state?;
        loop {
            let Some(chunk) = rx.recv().await else {
                let mut last = String::new();
                if !pending.is_empty() {
                    last = sse_data(&pending);
                }
                last.push_str("event: end\ndata: \n\n");
                return Some((Ok::<_, std::io::Error>(bytes::Bytes::from(last)), None));
            };
            pending.extend_from_slice(&chunk);
            let mut events = String::new();
            while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                events.push_str(&sse_data(&line[..line.len() - 1]));
            }
            if !events.is_empty() {
                return Some((Ok(bytes::Bytes::from(events)), Some((rx, pending))));
            }
        }
    });
    let stream = futures_util::StreamExt::chain(first, lines);
    Ok((
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-store")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// One log line as a server-sent event.
fn sse_data(line: &[u8]) -> String {
    format!("data: {}\n\n", String::from_utf8_lossy(line).replace('\r', ""))
}

fn valid_action(action: &str) -> ApiResult<()> {
    if matches!(action, "stop" | "start" | "restart") {
        Ok(())
    } else {
        Err(fail(
            StatusCode::NOT_FOUND,
            format!("unknown action {action:?} (stop, start or restart)"),
        ))
    }
}

/// `POST /api/containers/{id}/{stop|start|restart}`, through the Engine API.
async fn container_action(State(d): State<Arc<Dashboard>>, Path((id, action)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    valid_action(&action)?;
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        return Err(fail(StatusCode::BAD_REQUEST, format!("invalid container name {id:?}")));
    }
    d.docker(Method::POST, &format!("/containers/{id}/{action}")).await?;
    Ok(Json(json!({"ok": true})))
}

/// `POST /api/compose/{project}/{stop|start|restart}`: every container of the project.
async fn compose_action(State(d): State<Arc<Dashboard>>, Path((project, action)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    valid_action(&action)?;
    let filter = json!({"label": [format!("com.docker.compose.project={project}")]}).to_string();
    let q: String = percent_encoding::utf8_percent_encode(&filter, percent_encoding::NON_ALPHANUMERIC).to_string();
    let list = d.docker(Method::GET, &format!("/containers/json?all=1&filters={q}")).await?;
    let ids: Vec<String> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Id"].as_str().map(String::from))
        .collect();
    if ids.is_empty() {
        return Err(fail(StatusCode::NOT_FOUND, format!("no containers of compose project {project:?}")));
    }
    for id in &ids {
        d.docker(Method::POST, &format!("/containers/{id}/{action}")).await?;
    }
    Ok(Json(json!({"ok": true, "containers": ids.len()})))
}

/// `POST /api/deployments/{ns}/{name}/scale` with `{"replicas": N}`.
async fn scale(
    State(d): State<Arc<Dashboard>>,
    Path((ns, name)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Json<Value>> {
    let n = body["replicas"]
        .as_i64()
        .filter(|n| (0..=10_000).contains(n))
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "replicas: a whole number from 0 to 10000"))?;
    let k = d.kube()?;
    k.patch(res("apps", "deployments"), &ns, &name, json!({"spec": {"replicas": n}}))
        .await
        .map_err(kube_err)?;
    Ok(Json(json!({"ok": true, "replicas": n})))
}

/// `POST /api/deployments/{ns}/{name}/rollback`: back to the previous revision's template.
async fn rollback(State(d): State<Arc<Dashboard>>, Path((ns, name)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let k = d.kube()?;
    let rev = kube::controllers::deployment::rollback(k, &ns, &name).await.map_err(kube_err)?;
    Ok(Json(json!({"ok": true, "revision": rev})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_and_cookie_tokens() {
        assert!(check_addr(&"127.0.0.1:7070".parse().unwrap()).is_ok());
        assert!(check_addr(&"[::1]:7070".parse().unwrap()).is_ok());
        assert!(check_addr(&"0.0.0.0:7070".parse().unwrap()).unwrap_err().contains("loopback"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; berth_dashboard=tok; c=d"));
        assert_eq!(cookie_token(&h), Some("tok"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
