//! `_ping`, `version`, `info`, `events`, volumes; query parsing and common headers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::query::Q;
use super::{bad, ApiError, ApiResult, API_VERSION, MIN_API_VERSION};
use crate::engine::Engine;
use crate::error::Error;

/// Headers Docker puts on every response.
pub async fn headers(req: Request<Body>, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::debug_span!("request", %method, %path);
    let _ = span.enter();
    let t0 = std::time::Instant::now();
    let mut resp = match req.extensions().get::<super::UnsupportedVersion>() {
        Some(super::UnsupportedVersion(msg)) => bad(msg.clone()).into_response(),
        None => next.run(req).await,
    };
    tracing::debug!(%method, %path, status = %resp.status(), elapsed = ?t0.elapsed(), "request");
    let h = resp.headers_mut();
    h.insert("API-Version", HeaderValue::from_static(API_VERSION));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("OSType", HeaderValue::from_static("linux"));
    resp
}

/// How much of a request body a handler left unread is still read (and dropped) after it answered.
const DRAIN_LIMIT: u64 = 256 << 20;

/// Keep reading a request's body after its handler stopped: a handler that answers an error
/// before reading the body (a bad build parameter, an unknown container for `cp`) would otherwise
/// close the connection under a client still writing it, and the client would report a broken
/// pipe instead of the error. Go's server does the same for Docker. The body reaches the handler
/// through a channel; whatever it leaves is read, up to [`DRAIN_LIMIT`], and dropped.
pub async fn drain_unread_body(req: Request<Body>, next: Next) -> Response {
    use futures_util::StreamExt;
    let has_body = req.headers().contains_key(axum::http::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if !has_body || req.headers().contains_key(axum::http::header::UPGRADE) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, axum::Error>>(8);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut drained = 0u64;
        let mut tx = Some(tx);
        while let Some(chunk) = stream.next().await {
            match &tx {
                Some(t) => {
                    if t.send(chunk).await.is_err() {
                        tx = None;
                    }
                }
                None => {
                    drained += chunk.map(|c| c.len() as u64).unwrap_or(0);
                    if drained > DRAIN_LIMIT {
                        break;
                    }
                }
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    }));
    next.run(Request::from_parts(parts, body)).await
}

pub async fn ping() -> Response {
    let mut r = (StatusCode::OK, "OK").into_response();
    r.headers_mut()
        .insert("Cache-Control", HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    r.headers_mut().insert("Builder-Version", HeaderValue::from_static("1"));
    r
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub async fn version() -> Json<Value> {
    let v = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": {"Name": "Berth"},
        "Components": [{"Name": "Engine", "Version": v, "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": oci::spec::host_arch(), "KernelVersion": kernel(), "Experimental": "false", "GitCommit": "", "GoVersion": "", "BuildTime": ""}}],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Experimental": false,
        "Os": "linux",
        "Arch": oci::spec::host_arch(),
        "KernelVersion": kernel(),
        "BuildTime": "",
    }))
}

pub async fn info(State(e): State<Arc<Engine>>) -> Json<Value> {
    let mut runtimes = serde_json::Map::new();
    runtimes.insert(
        crate::engine::BUILTIN_RUNTIME.into(),
        json!({"path": "libcontainer (in berth shim)"}),
    );
    for (name, path) in &e.config().runtimes {
        runtimes.insert(name.clone(), json!({"path": path.display().to_string()}));
    }
    let list = e.containers();
    let running = list.iter().filter(|c| c.state.running && !c.state.paused).count();
    let paused = list.iter().filter(|c| c.state.paused).count();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0)
        * 1024;
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let os_release = read("/etc/os-release");
    let os_field = |k: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let threads = read("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().parse::<u64>().unwrap_or(0)))
        .unwrap_or(0);
    let nfd = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let swap_limit = if runtime::cgroup::is_v2() {
        read("/sys/fs/cgroup/cgroup.controllers").split_whitespace().any(|c| c == "memory")
    } else {
        std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    };
    let insecure: Vec<String> = e.config().insecure_registries.clone();
    let mut index_configs = serde_json::Map::new();
    index_configs.insert(
        "docker.io".into(),
        json!({"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}),
    );
    for r in &insecure {
        index_configs.insert(r.clone(), json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}));
    }
    let proxy = |k: &str| std::env::var(k).or_else(|_| std::env::var(k.to_lowercase())).unwrap_or_default();
    Json(json!({
        "ID": engine_id(&e),
        "Containers": list.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": list.len() - running - paused,
        "Images": e.image_list().len(),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Using metacopy", "false"], ["Native Overlay Diff", "true"], ["userxattr", "false"]],
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"], "Authorization": null, "Log": ["json-file"]},
        "MemoryLimit": true, "SwapLimit": swap_limit, "KernelMemoryTCP": false, "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true,
        "PidsLimit": true, "OomKillDisable": false,
        "IPv4Forwarding": read("/proc/sys/net/ipv4/ip_forward") == "1",
        "BridgeNfIptables": read("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
        "BridgeNfIp6tables": read("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1",
        "Debug": tracing::enabled!(tracing::Level::DEBUG), "NFd": nfd, "NGoroutines": threads,
        "SystemTime": crate::types::now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": if runtime::cgroup::is_v2() { "2" } else { "1" },
        "NEventsListener": e.event_listeners(),
        "KernelVersion": kernel(),
        "OperatingSystem": os_field("PRETTY_NAME"),
        "OSVersion": os_field("VERSION_ID"),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": null, "AllowNondistributableArtifactsHostnames": null,
            "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
            "IndexConfigs": index_configs,
            "Mirrors": null,
        },
        "GenericResources": null,
        "HttpProxy": proxy("HTTP_PROXY"),
        "HttpsProxy": proxy("HTTPS_PROXY"),
        "NoProxy": proxy("NO_PROXY"),
        "DockerRootDir": e.config().root.display().to_string(),
        "Name": nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": runtimes,
        "DefaultRuntime": e.config().default_runtime,
        "CDISpecDirs": e.config().cdi_spec_dirs,
        // No swarm: clients (compose among them) read this as "swarm off".
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        // Containers outlive the daemon (their shims keep them).
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": e.config().init_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "ProductLicense": "",
        "DefaultAddressPools": [],
        "Warnings": [],
    }))
}

/// The engine's ID, made once per data root (as Docker's `engine-id`).
fn engine_id(e: &Engine) -> String {
    let path = e.config().root.join("engine-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return id.trim().to_string();
        }
    }
    let r = crate::engine::random_id();
    let id = format!("{}-{}-{}-{}-{}", &r[0..8], &r[8..12], &r[12..16], &r[16..20], &r[20..32]);
    let _ = oci::store::write_atomic(&path, id.as_bytes());
    id
}

pub async fn events(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Q::parse(q);
    let since = q.get("since").and_then(crate::streams::parse_since);
    let until = q.get("until").and_then(crate::streams::parse_since);
    let filters = q.filters()?;
    for k in filters.keys() {
        if ![
            "type",
            "event",
            "action",
            "container",
            "image",
            "volume",
            "network",
            "label",
            "daemon",
            "scope",
            "plugin",
            "node",
            "service",
            "secret",
            "config",
        ]
        .contains(&k.as_str())
        {
            return Err(bad(format!("invalid filter '{k}'")));
        }
    }
    for (k, raw) in [("since", q.get("since")), ("until", q.get("until"))] {
        if let Some(v) = raw.filter(|v| !v.is_empty()) {
            if crate::streams::parse_since(v).is_none() {
                return Err(bad(format!("invalid {k} value {v:?}: not a time or a duration")));
            }
        }
    }
    let (recent, mut rx) = e.subscribe_events();
    let (tx, out) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
    let matches = move |ev: &crate::events::Event| -> bool {
        for (k, vals) in &filters {
            if vals.is_empty() {
                continue;
            }
            let ok = match k.as_str() {
                "type" => vals.contains(&ev.kind),
                "event" | "action" => vals.iter().any(|v| *v == ev.action || ev.action.starts_with(&format!("{v}:"))),
                "container" => {
                    ev.kind == "container"
                        && vals
                            .iter()
                            .any(|v| ev.actor.id.starts_with(v.as_str()) || ev.actor.attributes.get("name") == Some(v))
                }
                "image" => vals
                    .iter()
                    .any(|v| ev.actor.attributes.get("image") == Some(v) || ev.actor.id == *v),
                "volume" => ev.kind == "volume" && vals.contains(&ev.actor.id),
                "network" => ev.kind == "network" && vals.contains(&ev.actor.id),
                "scope" => vals.iter().any(|v| v == "local"),
                "daemon" => ev.kind == "daemon",
                // Swarm and plugin objects do not exist here: nothing matches them.
                "plugin" | "node" | "service" | "secret" | "config" => false,
                "label" => vals.iter().all(|v| match v.split_once('=') {
                    Some((lk, lv)) => ev.actor.attributes.get(lk).map(|x| x.as_str()) == Some(lv),
                    None => ev.actor.attributes.contains_key(v),
                }),
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        true
    };
    tokio::spawn(async move {
        let in_range = |ev: &crate::events::Event| {
            let t = ev.time_nano as f64 / 1e9;
            since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u)
        };
        if since.is_some() {
            for ev in recent.iter().filter(|ev| in_range(ev) && matches(ev)) {
                let mut line = serde_json::to_vec(ev).expect("json");
                line.push(b'\n');
                if tx.send(line).await.is_err() {
                    return;
                }
            }
        }
        let deadline = until.map(|u| {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            tokio::time::Instant::now() + std::time::Duration::from_secs_f64((u - now).max(0.0))
        });
        loop {
            let ev = match deadline {
                Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => tokio::select! {
                    r = rx.recv() => r,
                    _ = tx.closed() => return,
                },
            };
            match ev {
                Ok(ev) if matches(&ev) && in_range(&ev) => {
                    let mut line = serde_json::to_vec(&ev).expect("json");
                    line.push(b'\n');
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    Ok(super::io::channel_body("application/json", out))
}

// ---- volumes ----

fn volume_json(v: &crate::volumes::Volume) -> Value {
    serde_json::to_value(v).expect("json")
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeCreate {
    name: String,
    driver: String,
    driver_opts: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

pub async fn volume_create(State(e): State<Arc<Engine>>, body: Body) -> ApiResult<Response> {
    let req: VolumeCreate = super::io::json_body(body).await?;
    let (v, _) = e.create_volume(Some(&req.name), req.labels, &req.driver, req.driver_opts)?;
    Ok((StatusCode::CREATED, Json(volume_json(&v))).into_response())
}

pub async fn volume_list(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let q = Q::parse(q);
    let f = q.filters()?;
    for k in f.keys() {
        if !["name", "dangling", "label", "driver"].contains(&k.as_str()) {
            return Err(bad(format!("invalid filter '{k}'")));
        }
    }
    for v in f.get("dangling").into_iter().flatten() {
        if !["true", "false", "1", "0"].contains(&v.as_str()) {
            return Err(bad(format!("invalid filter 'dangling={v}'")));
        }
    }
    let vols: Vec<Value> = e
        .volume_list()
        .iter()
        .filter(|v| {
            f.get("name")
                .is_none_or(|n| n.is_empty() || n.iter().any(|x| v.name.contains(x.as_str())))
        })
        .filter(|v| {
            f.get("dangling")
                .is_none_or(|d| d.is_empty() || (d[0] == "true" || d[0] == "1") == e.volume_users(&v.name).is_empty())
        })
        // Every volume uses the built-in `local` driver.
        .filter(|_| f.get("driver").is_none_or(|d| d.is_empty() || d.iter().any(|x| x == "local")))
        .filter(|v| {
            f.get("label").is_none_or(|ls| {
                ls.iter().all(|l| match l.split_once('=') {
                    Some((k, val)) => v.labels.get(k).map(|x| x.as_str()) == Some(val),
                    None => v.labels.contains_key(l),
                })
            })
        })
        .map(volume_json)
        .collect();
    Ok(Json(json!({"Volumes": vols, "Warnings": []})))
}

pub async fn volume_inspect(State(e): State<Arc<Engine>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(volume_json(&e.volume(&name)?)))
}

pub async fn volume_remove(State(e): State<Arc<Engine>>, Path(name): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Q::parse(q);
    e.remove_volume(&name, q.bool("force"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`: unused anonymous volumes, or with `all=true` every unused one, those
/// the `label` filters select (Docker takes no `until` here).
pub async fn volume_prune(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Json<crate::prune::VolumePruneReport>> {
    let f = crate::prune::PruneFilter::parse(Q::parse(q).filters()?, false, &["all"])?;
    let all = f.flag("all")?.unwrap_or(false);
    Ok(Json(e.prune_volumes(&f, all)))
}

/// `POST /auth` (`docker login`): check the credentials against the registry.
pub async fn auth(State(e): State<Arc<Engine>>, body: axum::body::Body) -> Result<Json<Value>, ApiError> {
    let v: Value = super::io::json_body(body).await?;
    let creds = crate::distribution::auth_config(&v);
    let server = v.get("serveraddress").and_then(Value::as_str).unwrap_or("").to_string();
    e.login(&server, &creds).await?;
    Ok(Json(json!({"Status": "Login Succeeded", "IdentityToken": ""})))
}

/// `GET /system/df` (`docker system df`): images with the size their layers share with other
/// images, containers with the size of their writable layer, volumes with theirs and their users.
/// Berth's build cache is its intermediate images, counted with the images.
pub async fn system_df(State(e): State<Arc<Engine>>) -> ApiResult<Json<Value>> {
    let e2 = e.clone();
    let v = tokio::task::spawn_blocking(move || disk_usage(&e2))
        .await
        .map_err(|err| Error::Internal(err.to_string()))?;
    Ok(Json(v))
}

fn disk_usage(e: &Engine) -> Value {
    let imgs = e.image_list();
    // Each image's layer blobs (once each), and how many images use each blob.
    let image_layers: HashMap<String, BTreeMap<String, u64>> = imgs
        .iter()
        .filter_map(|s| {
            let layers = e.image_layers(&s.id).ok()?;
            Some((
                s.id.to_string(),
                layers.into_iter().map(|(d, size)| (d.to_string(), size)).collect(),
            ))
        })
        .collect();
    let mut users: HashMap<&str, usize> = HashMap::new();
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    for (d, size) in image_layers.values().flatten() {
        *users.entry(d).or_default() += 1;
        sizes.insert(d, *size);
    }
    let layers_size: u64 = sizes.values().sum();
    let intermediate = crate::images::intermediate_ids(&imgs);
    let images: Vec<Value> = imgs
        .iter()
        .filter(|s| !intermediate.contains(&s.id))
        .map(|s| {
            let mut v = e.image_summary(s);
            let shared: u64 = image_layers
                .get(&s.id.to_string())
                .into_iter()
                .flatten()
                .filter(|(d, _)| users.get(d.as_str()).copied().unwrap_or(0) > 1)
                .map(|(_, size)| size)
                .sum();
            v["SharedSize"] = json!(shared);
            v
        })
        .collect();
    let containers: Vec<Value> = e
        .list()
        .iter()
        .map(|entry| {
            let c = entry.snapshot();
            let mut v = super::containers::summary_json(e, &c);
            let (rw, rootfs) = e.container_sizes(&c);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(rootfs);
            v
        })
        .collect();
    let volumes: Vec<Value> = e
        .volume_list()
        .iter()
        .map(|vol| {
            let mut v = volume_json(vol);
            v["UsageData"] = json!({
                "Size": crate::fsops::dir_size(std::path::Path::new(&vol.mountpoint)),
                "RefCount": e.volume_users(&vol.name).len(),
            });
            v
        })
        .collect();
    json!({
        "LayersSize": layers_size,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    })
}

/// The networks every container can join: Berth has no bridge or user-defined networks yet.
/// One IPAM pool as inspect shows it (IPRange and AuxiliaryAddresses when set).
fn ipam_config(p: &net::ipam::Pool) -> Value {
    let mut c = json!({"Subnet": p.subnet.to_string(), "Gateway": p.gateway.to_string()});
    if let Some(r) = p.range {
        c["IPRange"] = json!(r.to_string());
    }
    if !p.reserved.is_empty() {
        c["AuxiliaryAddresses"] = json!(p
            .reserved
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect::<BTreeMap<_, _>>());
    }
    c
}

/// A bridge network as `docker network inspect` shows it, with the containers on it.
fn bridge_json(e: &Engine, n: &crate::networks::Network) -> Value {
    let mut containers = serde_json::Map::new();
    for c in e.containers() {
        if let Some(ep) = c.endpoints.get(&n.name) {
            containers.insert(
                c.id.clone(),
                json!({
                    "Name": c.name.trim_start_matches('/'),
                    "EndpointID": ep.endpoint_id,
                    "MacAddress": ep.mac_address,
                    "IPv4Address": format!("{}/{}", ep.ip_address, ep.ip_prefix_len),
                    "IPv6Address": "",
                }),
            );
        }
    }
    let default = n.name == crate::networks::DEFAULT_NETWORK;
    let mut options = serde_json::Map::new();
    if default {
        options.insert("com.docker.network.bridge.default_bridge".into(), json!("true"));
    }
    if default {
        options.insert("com.docker.network.bridge.enable_icc".into(), json!("true"));
        options.insert("com.docker.network.bridge.enable_ip_masquerade".into(), json!("true"));
        options.insert("com.docker.network.bridge.name".into(), json!(n.bridge));
        options.insert("com.docker.network.driver.mtu".into(), json!(n.mtu.unwrap_or(1500).to_string()));
    }
    // A user-defined network shows the options it was created with, as Docker's does.
    for (k, v) in &n.options {
        options.insert(k.clone(), json!(v));
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": if default || !n.ipam_options { Value::Null } else { json!({}) }, "Config": [ipam_config(&n.pool)]},
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

fn all_networks(e: &Engine) -> Vec<Value> {
    let mut out: Vec<Value> = e.network_list().iter().map(|n| bridge_json(e, n)).collect();
    out.extend(builtin_networks());
    out
}

fn builtin_networks() -> Vec<Value> {
    [("host", "host"), ("none", "null")]
        .iter()
        .map(|(name, driver)| {
            json!({
                "Name": name,
                "Id": name,
                "Created": "0001-01-01T00:00:00Z",
                "Scope": "local",
                "Driver": driver,
                "EnableIPv6": false,
                "IPAM": {"Driver": "default", "Options": null, "Config": []},
                "Internal": false,
                "Attachable": false,
                "Ingress": false,
                "ConfigFrom": {"Network": ""},
                "ConfigOnly": false,
                "Containers": {},
                "Options": {},
                "Labels": {},
            })
        })
        .collect()
}

/// `GET /networks`.
pub async fn network_list(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let f = Q::parse(q).filters()?;
    for k in f.keys() {
        if !["name", "id", "driver", "label", "type", "scope", "dangling"].contains(&k.as_str()) {
            return Err(bad(format!("invalid filter '{k}'")));
        }
    }
    for v in f.get("type").into_iter().flatten() {
        if v != "custom" && v != "builtin" {
            return Err(bad(format!("invalid filter: 'type'='{v}'")));
        }
    }
    let containers = e.containers();
    let nets = all_networks(&e)
        .into_iter()
        .filter(|n| {
            let name = n["Name"].as_str().unwrap_or("");
            let builtin = matches!(name, "bridge" | "host" | "none");
            f.iter().all(|(k, vals)| {
                vals.is_empty()
                    || super::query::matches_filter(k, vals, |v| match k.as_str() {
                        "name" => name.contains(v.as_str()),
                        "id" => n["Id"].as_str().is_some_and(|id| id.starts_with(v.as_str())),
                        "driver" => n["Driver"] == v.as_str(),
                        "scope" => v == "local",
                        "type" => (v == "builtin") == builtin,
                        "label" => match v.split_once('=') {
                            Some((lk, lv)) => n["Labels"][lk] == lv,
                            None => n["Labels"].get(v.as_str()).is_some(),
                        },
                        "dangling" => {
                            let used = builtin
                                || containers
                                    .iter()
                                    .any(|c| c.endpoints.contains_key(name) || c.networks.contains_key(name));
                            (v == "true" || v == "1") != used
                        }
                        _ => true,
                    })
            })
        })
        .collect();
    Ok(Json(Value::Array(nets)))
}

/// `GET /networks/{id}`.
pub async fn network_inspect(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    all_networks(&e)
        .into_iter()
        .find(|n| n["Name"] == id.as_str() || n["Id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| Error::NotFound(format!("network {id} not found")).into())
}

/// `POST /networks/prune`: user-defined networks nothing uses (`until`, `label` filters).
pub async fn network_prune(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let f = crate::prune::PruneFilter::parse(Q::parse(q).filters()?, true, &[])?;
    Ok(Json(json!({"NetworksDeleted": e.prune_networks(&f)})))
}

/// `POST /networks/create`.
pub async fn network_create(State(e): State<Arc<Engine>>, body: Body) -> ApiResult<Response> {
    let req: crate::networks::NetworkCreate = super::io::json_body(body).await?;
    let n = e.create_network(req)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": n.id, "Warning": ""}))).into_response())
}

/// `DELETE /networks/{id}`.
pub async fn network_remove(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    e.remove_network(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkConnect {
    container: String,
    endpoint_config: Option<Value>,
    force: bool,
}

/// `POST /networks/{id}/connect`.
pub async fn network_connect(State(e): State<Arc<Engine>>, Path(id): Path<String>, body: Body) -> ApiResult<StatusCode> {
    let req: NetworkConnect = super::io::json_body(body).await?;
    let ep = req.endpoint_config.unwrap_or(Value::Null);
    let settings = crate::networks::EndpointSettings::from_config(&ep)?;
    e.connect_container(&id, &req.container, settings).await?;
    Ok(StatusCode::OK)
}

/// `POST /networks/{id}/disconnect`.
pub async fn network_disconnect(State(e): State<Arc<Engine>>, Path(id): Path<String>, body: Body) -> ApiResult<StatusCode> {
    let req: NetworkConnect = super::io::json_body(body).await?;
    let _ = req.force;
    e.disconnect_container(&id, &req.container).await?;
    Ok(StatusCode::OK)
}

/// `GET /berth/dashboard` (Berth's own): the dashboard's URL with its access token.
pub async fn dashboard(State(e): State<Arc<Engine>>) -> ApiResult<Json<Value>> {
    match e.dashboard_url() {
        Some(u) => Ok(Json(json!({"URL": u}))),
        None => Err(ApiError(Error::NotFound(
            "the dashboard is not served (the daemon runs with --dashboard none)".into(),
        ))),
    }
}
