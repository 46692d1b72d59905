//! `/containers/...` and `/exec/...`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::io::{body_reader, body_writer, channel_body, hijack, json_body, MUX, RAW};
use super::query::Q;
use super::{bad, ApiError, ApiResult};
use crate::containers::{CreateRequest, Signal};
use crate::engine::{Engine, ExecConfig, PendingAttach};
use crate::error::Error;
use crate::types::{Container, ZERO_TIME};

fn ts(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// A container's `Status` text, as `docker ps` shows it.
fn status_string(c: &Container) -> String {
    use crate::units::human_duration;
    let now = chrono::Utc::now();
    let st = &c.state;
    if st.restarting {
        let ago = ts(&st.finished_at).map(|t| (now - t).num_seconds()).unwrap_or(0);
        return format!("Restarting ({}) {} ago", st.exit_code, human_duration(ago as f64));
    }
    if st.running {
        let up = ts(&st.started_at).map(|t| (now - t).num_seconds()).unwrap_or(0);
        let health = match st.health.as_ref().map(|h| h.status) {
            Some(crate::health::HealthStatus::Starting) => " (health: starting)",
            Some(crate::health::HealthStatus::Healthy) => " (healthy)",
            Some(crate::health::HealthStatus::Unhealthy) => " (unhealthy)",
            None => "",
        };
        return if st.paused {
            format!("Up {} (Paused)", human_duration(up as f64))
        } else {
            format!("Up {}{health}", human_duration(up as f64))
        };
    }
    if st.finished_at == ZERO_TIME || st.started_at == ZERO_TIME {
        return "Created".into();
    }
    let ago = ts(&st.finished_at).map(|t| (now - t).num_seconds()).unwrap_or(0);
    format!("Exited ({}) {} ago", st.exit_code, human_duration(ago as f64))
}

fn mounts_json(e: &Engine, c: &Container) -> Vec<Value> {
    let mut out = Vec::new();
    for b in c.host_config.binds.iter().flatten() {
        if let Ok((src, dst, ro)) = crate::containers::parse_bind(b) {
            if src.starts_with('/') {
                out.push(json!({"Type": "bind", "Source": src, "Destination": dst, "Mode": if ro {"ro"} else {""}, "RW": !ro, "Propagation": "rprivate"}));
            } else {
                out.push(json!({"Type": "volume", "Name": src, "Source": e.volume_data_path(&src), "Destination": dst, "Driver": "local", "Mode": if ro {"ro"} else {"z"}, "RW": !ro, "Propagation": ""}));
            }
        }
    }
    for m in c.host_config.mounts.iter().flatten().chain(&c.inherited_mounts) {
        let prop = m
            .extra
            .get("BindOptions")
            .and_then(|b| b["Propagation"].as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("rprivate");
        match m.kind.as_str() {
            "bind" => out.push(json!({"Type": "bind", "Source": m.source, "Destination": m.target, "Mode": "", "RW": !m.read_only, "Propagation": prop})),
            "volume" if !m.source.is_empty() => out.push(json!({"Type": "volume", "Name": m.source, "Source": e.volume_data_path(&m.source), "Destination": m.target, "Driver": "local", "Mode": "z", "RW": !m.read_only, "Propagation": ""})),
            // Anonymous ones are listed below, once made.
            "volume" => {}
            _ => out.push(json!({"Type": m.kind, "Source": "", "Destination": m.target, "Mode": "", "RW": !m.read_only, "Propagation": ""})),
        }
    }
    for v in &c.anon_volumes {
        if let Ok(vol) = e.volume(v) {
            let dst = vol.labels.get(crate::volumes::ANONYMOUS_LABEL).cloned().unwrap_or_default();
            out.push(json!({"Type": "volume", "Name": v, "Source": vol.mountpoint, "Destination": dst, "Driver": "local", "Mode": "", "RW": true, "Propagation": ""}));
        }
    }
    for (p, _) in c.host_config.tmpfs.iter().flatten() {
        out.push(json!({"Type": "tmpfs", "Source": "", "Destination": p, "Mode": "", "RW": true, "Propagation": ""}));
    }
    out
}

/// Every key of the 1.43 `HostConfig`, as Docker's inspect has it: what a container did not set
/// shows its zero value (clients index these keys without checking), and the masked and read-only
/// paths show the defaults the runtime applies.
fn host_config_defaults(hc: &mut Value, c: &Container) {
    let Some(m) = hc.as_object_mut() else { return };
    let privileged = c.host_config.privileged;
    let paths = |list: &[&str]| -> Value {
        if privileged {
            json!([])
        } else {
            json!(list)
        }
    };
    let cgroupns = if runtime::cgroup::is_v2() { "private" } else { "host" };
    let defaults = [
        ("ContainerIDFile", json!("")),
        ("VolumeDriver", json!("")),
        ("VolumesFrom", Value::Null),
        ("ConsoleSize", json!([0, 0])),
        ("CgroupnsMode", json!(cgroupns)),
        ("Cgroup", json!("")),
        ("Links", Value::Null),
        ("OomScoreAdj", json!(0)),
        ("PublishAllPorts", json!(false)),
        ("Runtime", json!(crate::engine::BUILTIN_RUNTIME)),
        ("Isolation", json!("")),
        ("CgroupParent", json!("")),
        ("BlkioWeight", json!(0)),
        ("BlkioWeightDevice", json!([])),
        ("BlkioDeviceReadBps", json!([])),
        ("BlkioDeviceWriteBps", json!([])),
        ("BlkioDeviceReadIOps", json!([])),
        ("BlkioDeviceWriteIOps", json!([])),
        ("CpuRealtimePeriod", json!(0)),
        ("CpuRealtimeRuntime", json!(0)),
        ("DeviceCgroupRules", Value::Null),
        ("DeviceRequests", Value::Null),
        ("MemorySwappiness", Value::Null),
        ("OomKillDisable", json!(false)),
        ("CpuCount", json!(0)),
        ("CpuPercent", json!(0)),
        ("IOMaximumIOps", json!(0)),
        ("IOMaximumBandwidth", json!(0)),
        ("MaskedPaths", paths(runtime::spec::MASKED_PATHS)),
        ("ReadonlyPaths", paths(runtime::spec::READONLY_PATHS)),
    ];
    for (k, v) in defaults {
        if m.get(k).is_none_or(Value::is_null) && !v.is_null() || !m.contains_key(k) {
            m.insert(k.to_string(), v);
        }
    }
    for k in ["Dns", "DnsOptions", "DnsSearch", "Devices"] {
        if m.get(k).is_none_or(Value::is_null) {
            m.insert(k.to_string(), json!([]));
        }
    }
}

fn inspect_json(e: &Engine, c: &Container) -> Value {
    let dir = e.container_dir(&c.id);
    let execs = e.exec_ids(&c.id);
    let mut hc = serde_json::to_value(&c.host_config).expect("json");
    if hc["LogConfig"]["Type"].as_str().is_none_or(str::is_empty) {
        hc["LogConfig"]["Type"] = json!("json-file");
    }
    host_config_defaults(&mut hc, c);
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": c.state,
        "Image": c.image,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": e.log_path(&c.id),
        "Name": c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": if execs.is_empty() { Value::Null } else { json!(execs) },
        "HostConfig": hc,
        "GraphDriver": {"Name": "overlay2", "Data": {"MergedDir": dir.join("rootfs"), "UpperDir": dir.join("diff"), "WorkDir": dir.join("work")}},
        "Mounts": mounts_json(e, c),
        "Config": c.config,
        "NetworkSettings": network_settings(e, c),
    })
}

/// `NetworkSettings` as Docker's inspect has it: the default bridge's endpoint at the top level
/// (the legacy fields), and one entry per network; a stopped container keeps its networks with
/// empty addresses.
fn network_settings(e: &Engine, c: &Container) -> Value {
    let short_id = &c.id[..12.min(c.id.len())];
    let endpoint_json = |ep: Option<&crate::networks::Endpoint>, network_id: &str, name: &str| {
        let settings = c.networks.get(name).cloned().unwrap_or_default();
        // API 1.43 lists the configured aliases and, on a user-defined network, the short ID.
        let builtin = matches!(name, crate::networks::DEFAULT_NETWORK | "default" | "host" | "none") || name.starts_with("container:");
        let aliases = if builtin {
            Value::Null
        } else {
            let mut a = settings.aliases.clone();
            if !a.iter().any(|x| x == short_id) {
                a.push(short_id.to_string());
            }
            json!(a)
        };
        let ipam = match (settings.ipv4_address, settings.link_local_ips.is_empty()) {
            (None, true) => Value::Null,
            (ip, _) => {
                let mut m = serde_json::Map::new();
                if let Some(ip) = ip {
                    m.insert("IPv4Address".into(), json!(ip.to_string()));
                }
                if !settings.link_local_ips.is_empty() {
                    m.insert("LinkLocalIPs".into(), json!(settings.link_local_ips));
                }
                Value::Object(m)
            }
        };
        let driver_opts = if settings.driver_opts.is_empty() {
            Value::Null
        } else {
            json!(settings.driver_opts)
        };
        let links = if settings.links.is_empty() {
            Value::Null
        } else {
            json!(settings.links)
        };
        json!({
            "IPAMConfig": ipam, "Links": links, "Aliases": aliases, "NetworkID": network_id,
            "EndpointID": ep.map_or(String::new(), |x| x.endpoint_id.clone()),
            "Gateway": ep.map_or(String::new(), |x| x.gateway.to_string()),
            "IPAddress": ep.map_or(String::new(), |x| x.ip_address.to_string()),
            "IPPrefixLen": ep.map_or(0, |x| x.ip_prefix_len),
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": ep.map_or(settings.mac_address.clone().unwrap_or_default(), |x| x.mac_address.clone()),
            "DriverOpts": driver_opts,
        })
    };
    let mode = c.host_config.network_mode.to_string();
    let mut networks = serde_json::Map::new();
    if c.endpoints.is_empty() && c.networks.is_empty() {
        let id = e.network_id(&mode).unwrap_or_default();
        networks.insert(mode.clone(), endpoint_json(None, &id, &mode));
    } else if c.endpoints.is_empty() {
        // Not running: the networks it will join, with what was asked of them.
        for name in c.networks.keys() {
            let id = e.network_id(name).unwrap_or_default();
            networks.insert(name.clone(), endpoint_json(None, &id, name));
        }
    }
    for (name, ep) in &c.endpoints {
        networks.insert(name.clone(), endpoint_json(Some(ep), &ep.network_id, name));
    }
    let legacy = c.endpoints.get(crate::networks::DEFAULT_NETWORK);
    json!({
        "Bridge": "", "SandboxID": "", "HairpinMode": false, "Ports": crate::ports::settings_ports(c),
        "SandboxKey": if c.endpoints.is_empty() { String::new() } else { e.netns_path(&c.id).display().to_string() },
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": legacy.map_or(String::new(), |x| x.endpoint_id.clone()),
        "Gateway": legacy.map_or(String::new(), |x| x.gateway.to_string()),
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": legacy.map_or(String::new(), |x| x.ip_address.to_string()),
        "IPPrefixLen": legacy.map_or(0, |x| x.ip_prefix_len),
        "IPv6Gateway": "",
        "MacAddress": legacy.map_or(String::new(), |x| x.mac_address.clone()),
        "Networks": networks,
    })
}

pub(crate) fn summary_json(e: &Engine, c: &Container) -> Value {
    let created = ts(&c.created).map(|t| t.timestamp()).unwrap_or(0);
    let mut cmd = c.path.clone();
    for a in &c.args {
        cmd.push(' ');
        cmd.push_str(a);
    }
    json!({
        "Id": c.id,
        "Names": [c.name],
        "Image": c.config.image,
        "ImageID": c.image,
        "Command": cmd,
        "Created": created,
        "Ports": crate::ports::summary_ports(c),
        "Labels": c.config.labels,
        "State": c.state.status,
        "Status": status_string(c),
        "HostConfig": {"NetworkMode": c.host_config.network_mode},
        "NetworkSettings": {"Networks": network_settings(e, c)["Networks"]},
        "Mounts": mounts_json(e, c),
    })
}

pub async fn list(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Json<Vec<Value>>> {
    let q = Q::parse(q);
    let all = q.bool("all");
    let size = q.bool("size");
    let f = q.filters()?;
    for k in f.keys() {
        if ![
            "id", "name", "status", "label", "exited", "ancestor", "before", "since", "volume", "network", "health", "is-task", "publish",
            "expose",
        ]
        .contains(&k.as_str())
        {
            return Err(bad(format!("invalid filter '{k}'")));
        }
    }
    let mut cs: Vec<Container> = e.containers();
    cs.sort_by(|a, b| b.created.cmp(&a.created));
    // Values Docker checks before it lists anything.
    for v in f.get("status").into_iter().flatten() {
        if !["created", "restarting", "running", "removing", "paused", "exited", "dead"].contains(&v.as_str()) {
            return Err(bad(format!("invalid filter 'status={v}'")));
        }
    }
    for v in f.get("health").into_iter().flatten() {
        if !["starting", "healthy", "unhealthy", "none"].contains(&v.as_str()) {
            return Err(bad(format!("Unrecognised filter value for health: {v}")));
        }
    }
    for v in f.get("is-task").into_iter().flatten() {
        if v != "true" && v != "false" {
            return Err(bad(format!("Invalid filter 'is-task={v}'")));
        }
    }
    // `before` and `since` name a container; the list is the ones created before or after it.
    let created_of = |key: &str| -> ApiResult<String> {
        let c = e.container(key)?;
        Ok(c.created)
    };
    let before = f.get("before").and_then(|v| v.first()).map(|v| created_of(v)).transpose()?;
    let since = f.get("since").and_then(|v| v.first()).map(|v| created_of(v)).transpose()?;
    let image_ids: Vec<String> = f
        .get("ancestor")
        .map(|a| a.iter().filter_map(|n| e.resolve_image(n).ok().map(|d| d.to_string())).collect())
        .unwrap_or_default();
    // A limit, `before` or `since` lists stopped containers too, as Docker does.
    let limit = q.int("limit")?.filter(|l| *l > 0).map(|l| l as usize);
    let all = all || limit.is_some() || before.is_some() || since.is_some();
    let out: Vec<Value> = cs
        .iter()
        .filter(|c| all || c.state.running || f.contains_key("status") || f.contains_key("exited"))
        .filter(|c| before.as_ref().is_none_or(|t| c.created < *t) && since.as_ref().is_none_or(|t| c.created > *t))
        .filter(|c| {
            f.iter().all(|(k, vals)| {
                vals.is_empty()
                    || super::query::matches_filter(k, vals, |v| match k.as_str() {
                        "id" => c.id.starts_with(v.as_str()),
                        "name" => c.name.trim_start_matches('/').contains(v.trim_start_matches('/')),
                        "status" => c.state.status == *v,
                        "exited" => !c.state.running && c.state.started_at != ZERO_TIME && v.parse::<i64>().ok() == Some(c.state.exit_code),
                        "label" => match v.split_once('=') {
                            Some((lk, lv)) => c.config.labels.get(lk).map(|x| x.as_str()) == Some(lv),
                            None => c.config.labels.contains_key(v.as_str()),
                        },
                        "ancestor" => image_ids.contains(&c.image) || c.config.image == *v,
                        "volume" => c
                            .host_config
                            .binds
                            .iter()
                            .flatten()
                            .any(|b| b.split(':').next() == Some(v.as_str()) || b.split(':').nth(1) == Some(v.as_str())),
                        "network" => c.host_config.network_mode.to_string() == *v,
                        "health" => match c.state.health.as_ref() {
                            Some(h) => h.status.as_str() == v,
                            None => v == "none",
                        },
                        // No swarm: no container is a task.
                        "is-task" => v == "false",
                        "publish" => {
                            let want = if v.contains('/') { v.clone() } else { format!("{v}/tcp") };
                            c.published.contains_key(&want)
                        }
                        "expose" => {
                            let want = if v.contains('/') { v.clone() } else { format!("{v}/tcp") };
                            c.config.exposed_ports.as_ref().is_some_and(|p| p.contains_key(&want))
                        }
                        // before/since are applied above.
                        _ => true,
                    })
            })
        })
        .map(|c| {
            let mut v = summary_json(&e, c);
            if size {
                let (rw, rootfs) = e.container_sizes(c);
                v["SizeRw"] = json!(rw);
                v["SizeRootFs"] = json!(rootfs);
            }
            v
        })
        .collect();
    Ok(Json(out.into_iter().take(limit.unwrap_or(usize::MAX)).collect()))
}

pub async fn create(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery, body: Body) -> ApiResult<Response> {
    let q = Q::parse(q);
    let req: CreateRequest = json_body(body).await?;
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        if !p.starts_with("linux") {
            return Err(bad(format!("platform {p:?} is not supported")));
        }
    }
    let (id, warnings) = e.create(q.get("name"), req).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Warnings": warnings}))).into_response())
}

/// `POST /containers/prune`.
pub async fn prune(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Json<crate::prune::ContainerPruneReport>> {
    let f = crate::prune::PruneFilter::parse(Q::parse(q).filters()?, true, &[])?;
    Ok(Json(e.prune_containers(&f).await))
}

pub async fn inspect(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let c = e.container(&id)?;
    let mut v = inspect_json(&e, &c);
    if Q::parse(q).bool("size") {
        let (rw, rootfs) = e.container_sizes(&c);
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(rootfs);
    }
    Ok(Json(v))
}

pub async fn start(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    e.start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stop(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Q::parse(q);
    e.stop(&id, q.int("t")?, Signal::from_query(q.get("signal"))?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn restart(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Q::parse(q);
    e.restart(&id, q.int("t")?, Signal::from_query(q.get("signal"))?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kill(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Q::parse(q);
    e.kill(&id, Signal::from_query(q.get("signal"))?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn pause(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    e.pause(&id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unpause(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    e.pause(&id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Docker sends the status line as soon as the wait is registered and the JSON body when it ends, so
/// a client can start the container after this returns headers.
pub async fn wait(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Q::parse(q);
    // The wait is registered before the headers go out; the body follows at the exit.
    let fut = e.wait(&id, q.get("condition").unwrap_or("").parse()?)?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut b = serde_json::to_vec(&json!({"StatusCode": fut.await, "Error": null})).expect("json");
        b.push(b'\n');
        let _ = tx.send(b).await;
    });
    Ok(channel_body("application/json", rx))
}

pub async fn remove(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Q::parse(q);
    if q.bool("link") {
        return Err(bad("links are not supported"));
    }
    e.remove(&id, q.bool("force"), q.bool("v")).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn attach(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    req: Request<Body>,
) -> ApiResult<Response> {
    let q = Q::parse(q);
    let c = e.container(&id)?;
    let detach_keys = match q.get("detachKeys").filter(|k| !k.is_empty()) {
        Some(k) => Some(crate::streams::parse_detach_keys(k)?),
        None => None,
    };
    let (stdin, stdout, stderr) = (q.bool("stdin"), q.bool("stdout"), q.bool("stderr"));
    let ct = if c.config.tty { RAW } else { MUX };
    let stream = q.bool("stream");
    let logs = q.bool("logs");
    // Attached to no stream there is nothing to wait for: Docker answers at once.
    let stream = stream && (stdin || stdout || stderr);
    let running_or_created = c.state.running || c.state.status == "created" || c.state.restarting;
    e.emit(&c, "attach");
    Ok(hijack(req, ct, move |mut s| async move {
        if logs {
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            let e2 = e.clone();
            let id2 = id.clone();
            tokio::spawn(async move {
                let _ = e2
                    .logs(
                        &id2,
                        crate::streams::LogOptions {
                            stdout,
                            stderr,
                            ..Default::default()
                        },
                        tx,
                    )
                    .await;
            });
            while let Some(b) = rx.recv().await {
                if tokio::io::AsyncWriteExt::write_all(&mut s, &b).await.is_err() {
                    return;
                }
            }
        }
        if stream && running_or_created {
            let _ = e
                .attach(
                    &id,
                    PendingAttach {
                        stream: s,
                        stdin,
                        stdout,
                        stderr,
                        detach_keys,
                    },
                )
                .await;
        } else {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut s).await;
        }
    }))
}

fn hw(q: &Q) -> Result<(u16, u16), ApiError> {
    let h = q.int("h")?.unwrap_or(0);
    let w = q.int("w")?.unwrap_or(0);
    if !(0..=65535).contains(&h) || !(0..=65535).contains(&w) {
        return Err(bad("invalid TTY size"));
    }
    Ok((h as u16, w as u16))
}

pub async fn resize(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let (h, w) = hw(&Q::parse(q))?;
    e.resize(&id, h, w).await?;
    Ok(StatusCode::OK)
}

pub async fn logs(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Q::parse(q);
    let c = e.container(&id)?;
    let (stdout, stderr) = (q.bool("stdout"), q.bool("stderr"));
    if !stdout && !stderr {
        return Err(bad("You must choose at least one stream"));
    }
    let tail = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        t => Some(t.parse::<i64>().map_err(|_| bad(format!("invalid value for tail: {t:?}")))?)
            .filter(|n| *n >= 0)
            .map(|n| n as usize),
    };
    let since = match q.get("since").filter(|s| !s.is_empty() && *s != "0") {
        Some(s) => Some(crate::streams::parse_since(s).ok_or_else(|| bad(format!("invalid value for since: {s:?}")))?),
        None => None,
    };
    let until = match q.get("until").filter(|s| !s.is_empty() && *s != "0") {
        Some(s) => Some(crate::streams::parse_since(s).ok_or_else(|| bad(format!("invalid value for until: {s:?}")))?),
        None => None,
    };
    let opts = crate::streams::LogOptions {
        stdout,
        stderr,
        follow: q.bool("follow"),
        timestamps: q.bool("timestamps"),
        tail,
        since,
        until,
        raw: false,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let _ = e.logs(&id, opts, tx).await;
    });
    Ok(channel_body(if c.config.tty { RAW } else { MUX }, rx))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecCreate {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    user: String,
    working_dir: String,
    privileged: bool,
    detach_keys: String,
    console_size: Option<[u16; 2]>,
}

pub async fn exec_create(State(e): State<Arc<Engine>>, Path(id): Path<String>, body: Body) -> ApiResult<Response> {
    let r: ExecCreate = json_body(body).await?;
    let detach_keys = match r.detach_keys.as_str() {
        "" => None,
        k => Some(crate::streams::parse_detach_keys(k)?),
    };
    let cfg = ExecConfig {
        detach_keys,
        cmd: r.cmd.unwrap_or_default(),
        env: r.env.unwrap_or_default(),
        user: r.user,
        working_dir: r.working_dir,
        tty: r.tty,
        attach_stdin: r.attach_stdin,
        attach_stdout: r.attach_stdout,
        attach_stderr: r.attach_stderr,
        privileged: r.privileged,
        console_size: r.console_size.map(|[h, w]| (h, w)).filter(|(h, w)| *h > 0 && *w > 0),
    };
    let id = e.exec_create(&id, cfg)?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))).into_response())
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStart {
    detach: bool,
    tty: Option<bool>,
    console_size: Option<[u16; 2]>,
}

pub async fn exec_start(State(e): State<Arc<Engine>>, Path(id): Path<String>, req: Request<Body>) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let r: ExecStart = json_body(body).await?;
    let ex = e.exec_get(&id)?;
    let opts = crate::streams::ExecStartOptions {
        tty: r.tty,
        console_size: r.console_size.map(|[h, w]| (h, w)).filter(|(h, w)| *h > 0 && *w > 0),
    };
    if r.detach {
        let fut = e.exec_start(&id, None, opts).await?;
        tokio::spawn(fut);
        return Ok(StatusCode::OK.into_response());
    }
    // Refuse what can be refused with a status code; then answer 101 and only start the process
    // once the connection is ours (as Docker does): output sent together with the 101 headers can
    // be swallowed by a client's HTTP parser (docker-py reads the raw socket after the headers).
    if ex.state.lock().unwrap().started {
        return Err(ApiError(Error::Conflict(format!("Error: Exec command {id} has already run"))));
    }
    if !e.container(&ex.container)?.state.running {
        return Err(ApiError(Error::Conflict(format!("Container {} is not running", ex.container))));
    }
    let req = Request::from_parts(parts, Body::empty());
    let ct = if opts.tty.unwrap_or(ex.config.tty) { RAW } else { MUX };
    Ok(hijack(req, ct, move |s| async move {
        match e.exec_start(&id, Some(s), opts).await {
            Ok(run) => run.await,
            // The stream is closed; the exec records exit code 126, as for a failed start.
            Err(err) => tracing::warn!(exec = %id, error = %err, "exec start failed after upgrade"),
        }
    }))
}

pub async fn exec_resize(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let (h, w) = hw(&Q::parse(q))?;
    e.exec_resize(&id, h, w).await?;
    Ok(StatusCode::CREATED)
}

pub async fn exec_inspect(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let ex = e.exec_get(&id)?;
    let st = ex.state.lock().unwrap().clone();
    Ok(Json(json!({
        "ID": ex.id,
        "Running": st.running,
        "ExitCode": st.exit_code,
        "ProcessConfig": {"tty": ex.config.tty, "entrypoint": ex.config.cmd.first(), "arguments": ex.config.cmd.get(1..).unwrap_or(&[]), "privileged": ex.config.privileged, "user": ex.config.user},
        "OpenStdin": ex.config.attach_stdin,
        "OpenStderr": ex.config.attach_stderr,
        "OpenStdout": ex.config.attach_stdout,
        "CanRemove": false,
        "ContainerID": ex.container,
        "DetachKeys": "",
        "Pid": st.pid,
    })))
}

pub async fn top(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let q = Q::parse(q);
    if let Some(a) = q.get("ps_args").filter(|a| !a.is_empty() && *a != "-ef") {
        return Ok(Json(e.top_ps(&id, a).await?));
    }
    Ok(Json(e.top(&id)?))
}

pub async fn stats(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Q::parse(q);
    e.container(&id)?;
    let stream = q.get("stream").is_none_or(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let one_shot = q.bool("one-shot");
    if !stream {
        let first = e.stats_sample(&id, None)?;
        if one_shot {
            return Ok(Json(first).into_response());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        return Ok(Json(e.stats_sample(&id, Some(&first))?).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut pre: Option<Value> = None;
        loop {
            let Ok(s) = e.stats_sample(&id, pre.as_ref()) else { return };
            let mut b = serde_json::to_vec(&s).expect("json");
            b.push(b'\n');
            if tx.send(b).await.is_err() {
                return;
            }
            pre = Some(s);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    Ok(channel_body("application/json", rx))
}

pub async fn rename(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Q::parse(q);
    let name = q.get("name").filter(|n| !n.is_empty()).ok_or_else(|| bad("name is required"))?;
    e.rename(&id, name)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn update(State(e): State<Arc<Engine>>, Path(id): Path<String>, body: Body) -> ApiResult<Json<Value>> {
    let u: crate::containers::UpdateRequest = json_body(body).await?;
    e.update(&id, &u)?;
    Ok(Json(json!({"Warnings": []})))
}

fn path_q(q: &Q) -> Result<String, ApiError> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .map(String::from)
        .ok_or_else(|| bad("path is required"))
}

fn stat_header(stat: &Value) -> HeaderValue {
    use base64_lite::encode;
    HeaderValue::from_str(&encode(serde_json::to_string(stat).expect("json").as_bytes())).expect("base64 is a valid header")
}

mod base64_lite {
    /// Standard base64 (for the path-stat header); small enough not to need a crate.
    pub fn encode(data: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            out.push(T[(n >> 18) as usize & 63] as char);
            out.push(T[(n >> 12) as usize & 63] as char);
            out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
            out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
        }
        out
    }
}

pub async fn archive_head(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let path = path_q(&Q::parse(q))?;
    let stat = tokio::task::spawn_blocking(move || e.path_stat(&id, &path))
        .await
        .map_err(|x| ApiError(Error::Internal(x.to_string())))??;
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().insert("X-Docker-Container-Path-Stat", stat_header(&stat));
    Ok(r)
}

pub async fn archive_get(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let path = path_q(&Q::parse(q))?;
    let stat = {
        let (e, id, path) = (e.clone(), id.clone(), path.clone());
        tokio::task::spawn_blocking(move || e.path_stat(&id, &path))
            .await
            .map_err(|x| ApiError(Error::Internal(x.to_string())))??
    };
    let mut r = body_writer("application/x-tar", move |w| e.archive_get(&id, &path, w));
    r.headers_mut().insert("X-Docker-Container-Path-Stat", stat_header(&stat));
    Ok(r)
}

pub async fn archive_put(State(e): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery, body: Body) -> ApiResult<StatusCode> {
    let path = path_q(&Q::parse(q))?;
    let r = body_reader(body);
    tokio::task::spawn_blocking(move || e.archive_put(&id, &path, r))
        .await
        .map_err(|x| ApiError(Error::Internal(x.to_string())))??;
    Ok(StatusCode::OK)
}

pub async fn export(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Response> {
    e.container(&id)?;
    Ok(body_writer("application/x-tar", move |w| e.export(&id, w)))
}

pub async fn changes(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(e.changes(&id)?))
}
