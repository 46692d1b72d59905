//! `POST /build`: the classic builder's endpoint (a tar context in, a JSON message stream out), as
//! the docker CLI with `DOCKER_BUILDKIT=0` and docker-py's `images.build` use it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::json;

use super::io::{body_reader, channel_body};
use super::query::Q;
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

/// A JSON array of strings (`cachefrom`); empty, `null` and `[]` are none.
fn string_list(q: &Q, key: &str, what: &str) -> ApiResult<Vec<String>> {
    let Some(raw) = q.get(key).filter(|s| !s.is_empty() && *s != "null") else {
        return Ok(Vec::new());
    };
    let v: Vec<String> = serde_json::from_str(raw).map_err(|e| bad(format!("error reading {what}: {e}")))?;
    Ok(v.into_iter().filter(|s| !s.is_empty()).collect())
}

/// The query of `POST /build` as build options, parameter by parameter as Docker's classic
/// builder takes them (moby's `newImageBuildOptions`). A parameter Berth cannot honour is refused
/// with a 400 naming it, never accepted and ignored.
pub fn parse_request(q: &Q) -> ApiResult<BuildRequest> {
    // Docker refuses any `securityopt`, even an empty one, on Linux.
    if q.0.iter().any(|(k, _)| k == "securityopt") {
        return Err(bad("security options are not supported on linux"));
    }
    match q.get("version").unwrap_or("") {
        "" | "1" => {}
        "2" => {
            return Err(bad(
                "BuildKit sessions (version=2) are not supported by Berth; use the classic builder (DOCKER_BUILDKIT=0) or `berth build`",
            ))
        }
        v => return Err(bad(format!("invalid version {v:?}"))),
    }
    if let Some(r) = q.get("remote").filter(|s| !s.is_empty()) {
        return Err(bad(format!(
            "remote={r:?}: building from a remote context is not supported; send the context as the body"
        )));
    }
    // Only the default isolation exists on Linux.
    if let Some(i) = q.get("isolation").filter(|s| !s.is_empty()) {
        if !i.eq_ignore_ascii_case("default") {
            return Err(bad(format!("unsupported isolation: {i:?}")));
        }
    }
    for (k, why) in [
        (
            "cgroupparent",
            "a cgroup parent for build steps is not supported by Berth (nor by its containers)",
        ),
        ("outputs", "build outputs are BuildKit's; the classic builder stores the image"),
        ("session", "BuildKit sessions are not supported by Berth's classic builder"),
        (
            "buildid",
            "build IDs (for POST /build/cancel) are BuildKit's; not supported by Berth",
        ),
    ] {
        if let Some(v) = q.get(k).filter(|v| !v.is_empty()) {
            return Err(bad(format!("{k}={v:?}: {why}")));
        }
    }
    if q.bool("squash") {
        return Err(bad("squash is only supported with experimental mode, which Berth does not have"));
    }
    if let Some(p) = q.get("platform").filter(|s| !s.is_empty()) {
        let want = format!("linux/{}", oci::spec::host_arch());
        if !p.eq_ignore_ascii_case(&want) {
            return Err(bad(format!("platform {p:?} is not supported: this builder builds {want} only")));
        }
    }
    // Berth has no bridge network yet: RUN steps get the host's network by default (and for
    // `bridge`, Docker's default, which reaches out through NAT), so that package installs reach
    // their mirrors, as BuildKit's own daemon does without CNI. `none` isolates.
    let network = match q.get("networkmode").unwrap_or("") {
        "" | "default" | "bridge" | "host" => "host".to_string(),
        "none" => "none".to_string(),
        other if other.starts_with("container:") => {
            return Err(bad(format!(
                "networkmode={other:?}: sharing another container's network is not supported by Berth"
            )))
        }
        other => return Err(bad(format!("networkmode={other:?}: expected default, host or none"))),
    };
    // The host config of RUN steps' containers, as Docker's `hostConfigFromOptions` makes it.
    let int = |k: &str| q.int(k).map(|v| v.unwrap_or(0));
    let shm_size = int("shmsize")?;
    if shm_size < 0 {
        return Err(bad("SHM size can not be less than 0"));
    }
    let ulimits: Vec<crate::types::Ulimit> = match q.get("ulimits").filter(|s| !s.is_empty() && *s != "null") {
        None => Vec::new(),
        Some(raw) => serde_json::from_str(raw).map_err(|e| bad(format!("error reading ulimit settings: {e}")))?,
    };
    let extra_hosts: Vec<String> = q.all("extrahosts").into_iter().filter(|h| !h.is_empty()).collect();
    let host_config = crate::types::HostConfig {
        network_mode: crate::types::NetworkMode::parse(&network),
        memory: int("memory")?,
        memory_swap: int("memswap")?,
        cpu_shares: int("cpushares")?,
        cpu_period: int("cpuperiod")?,
        cpu_quota: int("cpuquota")?,
        cpuset_cpus: q.get("cpusetcpus").unwrap_or("").to_string(),
        cpuset_mems: q.get("cpusetmems").unwrap_or("").to_string(),
        shm_size,
        ulimits: Some(ulimits).filter(|u| !u.is_empty()),
        extra_hosts: Some(extra_hosts).filter(|h| !h.is_empty()),
        ..Default::default()
    };
    // What a container would refuse (a bad extra host or ulimit, a memory limit under 6 MB) is
    // refused now, before the context is read.
    crate::containers::check_supported(&host_config).map_err(super::ApiError)?;
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
    // `rm` defaults to true; `forcerm` implies it (moby's rule).
    let force_rm = q.bool("forcerm");
    let remove = force_rm || q.get("rm").is_none_or(str::is_empty) || q.bool("rm");
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
            keep_containers: !remove,
            force_rm,
            cache_from: string_list(q, "cachefrom", "cache-from")?,
            pull: q.bool("pull"),
        },
        quiet: q.bool("q"),
        local_context,
        auth: BTreeMap::new(),
        host_config,
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

/// A build stream's closing error, as Docker formats it: a failed RUN step's exit code goes in
/// `errorDetail.code` (the docker CLI exits with it).
fn error_message(err: &crate::Error) -> serde_json::Value {
    let msg = err.to_string();
    match err {
        crate::Error::StepFailed { code, .. } => json!({"errorDetail": {"code": code, "message": msg}, "error": msg}),
        _ => json!({"errorDetail": {"message": msg}, "error": msg}),
    }
}

/// `POST /build`. As in Docker, a failure before the build has said anything (an unreadable
/// context, a missing or unparsable Dockerfile) is a plain HTTP error; once it has spoken, the
/// stream ends with an `errorDetail` message.
pub async fn build(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery, headers: axum::http::HeaderMap, body: Body) -> ApiResult<Response> {
    let mut req = parse_request(&Q::parse(q))?;
    req.auth = registry_config(&headers);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<serde_json::Value>(256);
    let r = body_reader(body);
    let mut task = tokio::task::spawn_blocking(move || {
        let mut out = |v: serde_json::Value| {
            let _ = tx.blocking_send(v);
        };
        match &req.local_context {
            Some(dir) => e.build_dir(dir, &req, &mut out).map(drop),
            None => e.build(r, &req, &mut out).map(drop),
        }
    });
    let join = |r: Result<crate::Result<()>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| Err(crate::Error::Internal(format!("build task failed: {e}"))))
    };
    // The task's result when it ended before the first message was read.
    let mut ended: Option<crate::Result<()>> = None;
    let first = tokio::select! {
        biased;
        m = rx.recv() => m,
        r = &mut task => {
            ended = Some(join(r));
            rx.recv().await
        }
    };
    if first.is_none() {
        // Nothing was said: the task has ended (its sender is gone), and an error is the answer.
        let res = match ended.take() {
            Some(r) => r,
            None => join((&mut task).await),
        };
        res.map_err(super::ApiError)?;
        return Ok(channel_body("application/json", tokio::sync::mpsc::channel(1).1));
    }
    let (btx, brx) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
    tokio::spawn(async move {
        let line = |v: &serde_json::Value| {
            let mut l = v.to_string().into_bytes();
            l.extend_from_slice(b"\r\n");
            l
        };
        let mut next = first;
        while let Some(m) = next {
            if btx.send(line(&m)).await.is_err() {
                return;
            }
            next = rx.recv().await;
        }
        let res = match ended {
            Some(r) => r,
            None => join(task.await),
        };
        if let Err(err) = res {
            let _ = btx.send(line(&error_message(&err))).await;
        }
    });
    Ok(channel_body("application/json", brx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<BuildRequest, crate::Error> {
        parse_request(&Q::parse(Some(q.to_string()))).map_err(|e| e.0)
    }

    fn refused(q: &str) -> String {
        match parse(q) {
            Ok(_) => panic!("{q} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_as_docker() {
        let r = parse("").unwrap();
        assert!(!r.options.keep_containers && !r.options.force_rm);
        assert!(r.options.cache_from.is_empty());
        assert_eq!(r.host_config.network_mode, crate::types::NetworkMode::Host);
        // docker-py sends rm=False by default, the docker CLI rm=0 for --rm=false.
        for q in ["rm=False", "rm=0", "rm=false", "rm=no"] {
            assert!(parse(q).unwrap().options.keep_containers, "{q}");
        }
        // forcerm implies rm.
        let r = parse("rm=0&forcerm=1").unwrap();
        assert!(!r.options.keep_containers && r.options.force_rm);
        for q in [
            "cachefrom=",
            "cachefrom=null",
            "cachefrom=%5B%5D",
            "version=1",
            "isolation=default",
            "isolation=Default",
            "ulimits=null",
            "outputs=",
            "session=",
        ] {
            parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn step_container_settings() {
        let r = parse(
            "shmsize=67108864&memory=33554432&memswap=-1&cpushares=512&cpuperiod=100000&cpuquota=50000&cpusetcpus=0&cpusetmems=0\
             &extrahosts=a.example:10.1.2.3&extrahosts=b:%3A%3A1&ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Soft%22%3A100%2C%22Hard%22%3A200%7D%5D\
             &cachefrom=%5B%22x%3A1%22%2C%22y%22%5D&networkmode=none",
        )
        .unwrap();
        let h = &r.host_config;
        assert_eq!((h.shm_size, h.memory, h.memory_swap), (64 << 20, 32 << 20, -1));
        assert_eq!((h.cpu_shares, h.cpu_period, h.cpu_quota), (512, 100000, 50000));
        assert_eq!((h.cpuset_cpus.as_str(), h.cpuset_mems.as_str()), ("0", "0"));
        assert_eq!(h.extra_hosts.as_deref().unwrap(), ["a.example:10.1.2.3", "b:::1"]);
        let u = &h.ulimits.as_ref().unwrap()[0];
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 100, 200));
        assert_eq!(r.options.cache_from, ["x:1", "y"]);
        assert_eq!(r.options.network, "none");
    }

    #[test]
    fn refusals_name_the_parameter() {
        assert_eq!(refused("securityopt="), "security options are not supported on linux");
        assert_eq!(
            refused("securityopt=seccomp%3Dunconfined"),
            "security options are not supported on linux"
        );
        assert_eq!(refused("version=3"), "invalid version \"3\"");
        assert!(refused("version=2").contains("BuildKit"));
        assert_eq!(refused("isolation=hyperv"), "unsupported isolation: \"hyperv\"");
        assert!(refused("cachefrom=x").contains("error reading cache-from"));
        assert!(refused("ulimits=x").contains("error reading ulimit settings"));
        assert!(refused("ulimits=%5B%7B%22Name%22%3A%22bogus%22%2C%22Soft%22%3A1%2C%22Hard%22%3A1%7D%5D").contains("bogus"));
        assert!(refused("extrahosts=nocolon").contains("nocolon"));
        assert!(refused("shmsize=abc").contains("shmsize"));
        assert_eq!(refused("shmsize=-1"), "SHM size can not be less than 0");
        assert!(refused("memory=1000").contains("Minimum memory limit"));
        assert!(refused("cgroupparent=x").starts_with("cgroupparent="));
        assert!(refused("networkmode=container%3Aabc").contains("container"));
        assert!(refused("networkmode=mynet").contains("networkmode=\"mynet\""));
        assert!(refused("squash=1").contains("squash"));
        assert!(refused("outputs=%5B%5D").starts_with("outputs="));
        assert!(refused("session=abc").starts_with("session="));
        assert!(refused("buildid=abc").starts_with("buildid="));
        assert!(refused("remote=https%3A%2F%2Fx").starts_with("remote="));
        assert!(refused("platform=linux%2Fs390x").contains("s390x"));
    }
}
