//! `POST /build`: the classic builder's endpoint (a tar context in, a JSON message stream out), as
//! the docker CLI with `DOCKER_BUILDKIT=0` and docker-py's `images.build` use it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::json;

use super::io::{body_reader, channel_body};
use super::system::Q;
use super::{bad, ApiResult};
use crate::builder::BuildRequest;
use crate::engine::Engine;

/// Parse a JSON object of strings (`buildargs`, `labels`); `null` values (unset build args) are dropped.
fn string_map(q: &Q, key: &str) -> ApiResult<BTreeMap<String, String>> {
    let Some(raw) = q.get(key).filter(|s| !s.is_empty() && *s != "null") else {
        return Ok(BTreeMap::new());
    };
    let v: BTreeMap<String, Option<String>> =
        serde_json::from_str(raw).map_err(|e| bad(format!("invalid {key}: expected a JSON object of strings: {e}")))?;
    Ok(v.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
}

/// The query of `POST /build` as build options. Parameters that would change the result and are not
/// supported are refused; resource limits and cache hints with their default values are accepted.
pub fn parse_request(q: &Q) -> ApiResult<BuildRequest> {
    if q.get("version") == Some("2") {
        return Err(bad(
            "BuildKit sessions (version=2) are not supported by Berth; use the classic builder (DOCKER_BUILDKIT=0) or `berth build`",
        ));
    }
    if let Some(r) = q.get("remote").filter(|s| !s.is_empty()) {
        return Err(bad(format!(
            "remote={r:?}: building from a remote context is not supported; send the context as the body"
        )));
    }
    for k in ["memory", "memswap", "cpushares", "cpuperiod", "cpuquota", "shmsize"] {
        if q.int(k)?.is_some_and(|v| v != 0 && !(k == "memswap" && v == -1)) {
            return Err(bad(format!("{k}: resource limits for build steps are not supported")));
        }
    }
    for k in ["cpusetcpus", "cpusetmems", "cgroupparent", "extrahosts", "isolation", "outputs"] {
        if q.get(k).is_some_and(|v| !v.is_empty()) {
            return Err(bad(format!("{k}: not supported by Berth's builder")));
        }
    }
    if q.bool("squash") {
        return Err(bad("squash: not supported by Berth's builder"));
    }
    if let Some(p) = q.get("platform").filter(|s| !s.is_empty()) {
        let want = format!("linux/{}", oci::spec::host_arch());
        if p != want {
            return Err(bad(format!("platform {p:?} is not supported: this builder builds {want} only")));
        }
    }
    // Berth has no bridge network yet: RUN steps get the host's network by default, so that package
    // installs reach their mirrors, as BuildKit's own daemon does without CNI. `none` isolates.
    let network = match q.get("networkmode").unwrap_or("") {
        "" | "default" | "bridge" | "host" => "host".to_string(),
        "none" => "none".to_string(),
        other => return Err(bad(format!("networkmode={other:?}: expected default, host or none"))),
    };
    let build_args = string_map(q, "buildargs")?;
    let timestamp = match q.get("timestamp").filter(|s| !s.is_empty()) {
        Some("now") => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| bad(format!("timestamp={t:?}: expected \"now\" or seconds since the epoch")))?,
        ),
        None => match build_args.get("SOURCE_DATE_EPOCH").filter(|s| !s.is_empty()) {
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| bad(format!("SOURCE_DATE_EPOCH={t:?}: expected seconds since the epoch")))?,
            ),
            None => Some(build::DEFAULT_EPOCH),
        },
    };
    let local_context = match q.get("localcontext").filter(|s| !s.is_empty()) {
        None => None,
        Some(p) => {
            let p = std::path::PathBuf::from(p);
            if !p.is_absolute() || !p.is_dir() {
                return Err(bad(format!(
                    "localcontext={}: not a directory on the daemon's machine",
                    p.display()
                )));
            }
            Some(p)
        }
    };
    let mut tags = Vec::new();
    for t in q.all("t").into_iter().filter(|t| !t.is_empty()) {
        image::Reference::parse(&t).map_err(|e| bad(format!("invalid tag {t:?}: {e}")))?;
        tags.push(t);
    }
    Ok(BuildRequest {
        options: build::BuildOptions {
            dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
            tags,
            build_args,
            labels: string_map(q, "labels")?,
            target: q.get("target").filter(|s| !s.is_empty()).map(String::from),
            no_cache: q.bool("nocache"),
            timestamp,
            network,
            force_rm: q.bool("forcerm"),
            pull: q.bool("pull"),
        },
        quiet: q.bool("q"),
        local_context,
        auth: BTreeMap::new(),
    })
}

/// `X-Registry-Config`: base64url JSON of {registry: AuthConfig}, as the docker CLI sends it with
/// every build (credentials for pulling base images). Keys become registry names.
pub fn registry_config(headers: &axum::http::HeaderMap) -> BTreeMap<String, registry::client::Credentials> {
    let Some(h) = headers.get("X-Registry-Config").and_then(|v| v.to_str().ok()) else {
        return BTreeMap::new();
    };
    crate::distribution::decode_header_json(h)
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(server, cfg)| {
                    (
                        crate::distribution::registry_of_server(server),
                        crate::distribution::auth_config(cfg),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn build(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery, headers: axum::http::HeaderMap, body: Body) -> ApiResult<Response> {
    let mut req = parse_request(&Q::parse(q))?;
    req.auth = registry_config(&headers);
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
    let r = body_reader(body);
    tokio::task::spawn_blocking(move || {
        let send = |v: serde_json::Value| {
            let mut line = v.to_string().into_bytes();
            line.extend_from_slice(b"\r\n");
            let _ = tx.blocking_send(line);
        };
        let mut out = |v: serde_json::Value| send(v);
        let res = match &req.local_context {
            Some(dir) => e.build_dir(dir, &req, &mut out),
            None => e.build(r, &req, &mut out),
        };
        if let Err(err) = res {
            let msg = err.to_string();
            send(json!({"errorDetail": {"message": msg}, "error": msg}));
        }
    });
    Ok(channel_body("application/json", rx))
}
