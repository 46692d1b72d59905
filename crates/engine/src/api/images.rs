//! `/images/...` and `/commit`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::io::{body_reader, body_writer, json_body};
use super::query::Q;
use super::{bad, ApiError, ApiResult};
use crate::engine::Engine;
use crate::error::Error;

fn join_err(e: tokio::task::JoinError) -> ApiError {
    ApiError(Error::Internal(e.to_string()))
}

pub async fn list(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Json<Vec<Value>>> {
    let q = Q::parse(q);
    let f = q.filters()?;
    for k in f.keys() {
        if !["dangling", "label", "reference", "before", "since", "until"].contains(&k.as_str()) {
            return Err(bad(format!("invalid filter '{k}'")));
        }
    }
    let mut imgs = e.image_list();
    // Untagged images that are parents of others (the builder's intermediate steps, its cache) are
    // listed with `all` only, as Docker does.
    if !q.bool("all") {
        let intermediate = crate::images::intermediate_ids(&imgs);
        imgs.retain(|s| !intermediate.contains(&s.id));
    }
    for v in f.get("dangling").into_iter().flatten() {
        if !["true", "false", "1", "0"].contains(&v.as_str()) {
            return Err(bad(format!("Invalid filter 'dangling={v}'")));
        }
    }
    // When an image was created, in unix seconds (0 when it does not say): read once per image,
    // for the order (newest first) and the time filters.
    let created = |id: &oci::Digest| -> f64 {
        e.images
            .config(id)
            .ok()
            .and_then(|c| c.created)
            .and_then(|t| crate::streams::parse_since(&t))
            .unwrap_or(0.0)
    };
    let mut imgs: Vec<(image::ImageSummary, f64)> = imgs
        .into_iter()
        .map(|s| {
            let t = created(&s.id);
            (s, t)
        })
        .collect();
    imgs.sort_by(|a, b| b.1.total_cmp(&a.1));
    // `before`/`since` name an image; `until` is a time (unix seconds, RFC 3339 or a duration ago).
    let image_time = |name: &str| -> ApiResult<f64> {
        let id = e
            .images
            .resolve(name)
            .map_err(|_| ApiError(Error::NotFound(format!("No such image: {name}"))))?;
        Ok(created(&id))
    };
    let before = f.get("before").and_then(|v| v.first()).map(|v| image_time(v)).transpose()?;
    let since = f.get("since").and_then(|v| v.first()).map(|v| image_time(v)).transpose()?;
    let until = match f.get("until").and_then(|v| v.first()) {
        Some(u) => {
            Some(crate::streams::parse_since(u).ok_or_else(|| bad(format!("invalid filter 'until={u}': not a time or a duration")))?)
        }
        None => None,
    };
    let out = imgs
        .iter()
        .filter(|(_, t)| before.is_none_or(|b| *t < b) && since.is_none_or(|x| *t > x) && until.is_none_or(|u| *t <= u))
        .map(|(s, _)| s)
        .filter(|s| {
            f.iter().all(|(k, vals)| {
                vals.is_empty()
                    || super::query::matches_filter(k, vals, |v| match k.as_str() {
                        "dangling" => (v == "true" || v == "1") == s.tags.is_empty(),
                        "reference" => s
                            .tags
                            .iter()
                            .any(|t| glob(v, t) || image::Reference::parse(t).is_ok_and(|r| glob(v, &r.repo))),
                        "label" => {
                            let labels = e.image_config(&s.id).ok().and_then(|c| c.config.labels).unwrap_or_default();
                            match v.split_once('=') {
                                Some((lk, lv)) => labels.get(lk).map(|x| x.as_str()) == Some(lv),
                                None => labels.contains_key(v.as_str()),
                            }
                        }
                        _ => true,
                    })
            })
        })
        .map(|s| e.image_summary(s))
        .collect();
    Ok(Json(out))
}

/// A tiny glob for `reference` filters (`*` within a path segment).
fn glob(pat: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pat.as_bytes(), s.as_bytes())
}

/// Credentials from the `X-Registry-Auth` header (none if absent or unreadable).
fn registry_auth(headers: &axum::http::HeaderMap) -> registry::client::Credentials {
    headers
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .map(crate::distribution::decode_registry_auth)
        .unwrap_or_default()
}

/// Run a pull or push, streaming its JSON progress. A failure before the first message is a plain
/// HTTP error (the docker CLI prints "Error response from daemon: ..."); a later one ends the
/// stream with an `error` message, as Docker does.
async fn progress_stream<F, Fut>(f: F) -> ApiResult<Response>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Value>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = crate::Result<()>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(64);
    let mut task = tokio::spawn(f(tx));
    // What was said comes first; only a failure before any message is an HTTP error. Credentials
    // refused are reported in the stream even then: a 401 makes the docker CLI prompt for a login.
    let mut early: Option<Error> = None;
    let first = tokio::select! {
        biased;
        m = rx.recv() => m,
        r = &mut task => {
            match r.map_err(join_err)? {
                Ok(()) => {}
                Err(e @ Error::Unauthorized(_)) => early = Some(e),
                Err(e) => return Err(ApiError(e)),
            }
            rx.recv().await
        }
    };
    let (btx, brx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        if let Some(err) = early {
            let msg = err.to_string();
            let mut l = json!({"errorDetail": {"message": msg}, "error": msg}).to_string().into_bytes();
            l.extend_from_slice(b"\r\n");
            let _ = btx.send(l).await;
            return;
        }
        let line = |v: &Value| {
            let mut l = v.to_string().into_bytes();
            l.extend_from_slice(b"\r\n");
            l
        };
        if let Some(m) = first {
            let _ = btx.send(line(&m)).await;
        }
        while let Some(m) = rx.recv().await {
            if btx.send(line(&m)).await.is_err() {
                return;
            }
        }
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                let msg = err.to_string();
                let _ = btx.send(line(&json!({"errorDetail": {"message": msg}, "error": msg}))).await;
            }
            Err(err) => {
                let msg = err.to_string();
                let _ = btx.send(line(&json!({"errorDetail": {"message": msg}, "error": msg}))).await;
            }
        }
    });
    Ok(super::io::channel_body("application/json", brx))
}

/// `POST /images/create`: `fromImage` pulls from a registry; `fromSrc` imports a tarball.
pub async fn create(
    State(e): State<Arc<Engine>>,
    RawQuery(q): RawQuery,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let q = Q::parse(q);
    if let Some(img) = q.get("fromImage").filter(|s| !s.is_empty()) {
        let tag = q.get("tag").unwrap_or("");
        let reference = if tag.is_empty() {
            img.to_string()
        } else if tag.starts_with("sha256:") {
            format!("{img}@{tag}")
        } else {
            format!("{img}:{tag}")
        };
        let platform = q.get("platform").map(String::from);
        let creds = registry_auth(&headers);
        return progress_stream(move |out| async move { e.pull(&reference, platform.as_deref(), &creds, &out).await.map(|_| ()) }).await;
    }
    let src = q.get("fromSrc").ok_or_else(|| bad("fromSrc or fromImage is required"))?;
    if src != "-" {
        return Err(bad(format!("fromSrc={src:?}: only \"-\" (the request body) is supported")));
    }
    let repo = q.get("repo").unwrap_or("").to_string();
    let tag = q.get("tag").unwrap_or("").to_string();
    let repo_tag = if repo.is_empty() {
        None
    } else if tag.is_empty() {
        Some(repo.clone())
    } else {
        Some(format!("{repo}:{tag}"))
    };
    if let Some(rt) = &repo_tag {
        image::Reference::parse(rt).map_err(|x| ApiError(x.into()))?;
    }
    let message = q.get("message").unwrap_or("").to_string();
    let changes = q.all("changes");
    let r = body_reader(body);
    let res = tokio::task::spawn_blocking(move || e.import(r, repo_tag.as_deref(), &message, &changes))
        .await
        .map_err(join_err)?;
    // Docker streams JSON progress; errors after the header are reported in the stream.
    let body = match res {
        Ok(id) => json!({"status": id.to_string()}),
        Err(err) => {
            // Errors before anything was sent are still proper HTTP errors.
            return Err(ApiError(err));
        }
    };
    Ok((StatusCode::OK, [("Content-Type", "application/json")], format!("{body}\r\n")).into_response())
}

pub async fn load(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery, body: Body) -> ApiResult<Response> {
    let q = Q::parse(q);
    let _quiet = q.bool("quiet");
    let r = body_reader(body);
    let e2 = e.clone();
    let loaded = tokio::task::spawn_blocking(move || e2.load_images(r)).await.map_err(join_err)?;
    // As Docker: the answer is 200 and a failure is the stream's error message, where the docker
    // CLI and docker-py (ImageLoadError) look for it.
    let loaded = match loaded {
        Ok(l) => l,
        Err(err) => {
            let m = printable(&err.to_string());
            let body = format!("{}\r\n", json!({"errorDetail": {"message": m}, "error": m}));
            return Ok((StatusCode::OK, [("Content-Type", "application/json")], body).into_response());
        }
    };
    let mut out = String::new();
    for l in &loaded {
        // `quiet` only suppresses progress, which this endpoint does not send; the result is always reported.
        out.push_str(&json!({"stream": format!("{l}\n")}).to_string());
        out.push_str("\r\n");
    }
    Ok((StatusCode::OK, [("Content-Type", "application/json")], out).into_response())
}

/// A message with the bytes of a corrupt input it quotes made visible (`\u{fffd}`, `\x01`) rather
/// than sent to a terminal as they are.
fn printable(m: &str) -> String {
    m.chars()
        .map(|c| {
            if c.is_control() || c == '\u{fffd}' {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub async fn get_many(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let names = Q::parse(q).all("names");
    if names.is_empty() {
        return Err(bad("names is required"));
    }
    let imgs = e.images_for_save(&names)?;
    Ok(body_writer("application/x-tar", move |w| e.save_images(&imgs, w)))
}

/// `GET /images/{name}/json|history|get` (names may contain slashes).
pub async fn get_one(State(e): State<Arc<Engine>>, Path(rest): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Q::parse(q);
    let (name, op) = rest
        .rsplit_once('/')
        .ok_or_else(|| ApiError(Error::NotFound(format!("page not found: /images/{rest}"))))?;
    match op {
        "json" => Ok(Json(e.image_inspect(name)?).into_response()),
        // Berth's own: the artifacts attached to an image (provenance, SBOM), with their documents.
        "referrers" => Ok(Json(e.image_attestations(name, q.get("artifactType"))?).into_response()),
        // Berth's own: what changed from this image to `with`.
        "diff" => {
            let other = q
                .get("with")
                .filter(|w| !w.is_empty())
                .ok_or_else(|| bad("with is required"))?
                .to_string();
            let name = name.to_string();
            let cmp = tokio::task::spawn_blocking(move || e.image_compare(&name, &other))
                .await
                .map_err(|err| ApiError(crate::error::internal(err)))??;
            Ok(Json(cmp).into_response())
        }
        "history" => Ok(Json(e.image_history(name)?).into_response()),
        "get" => {
            let imgs = e.images_for_save(&[name.to_string()])?;
            Ok(body_writer("application/x-tar", move |w| e.save_images(&imgs, w)))
        }
        _ => Err(ApiError(Error::NotFound(format!("page not found: /images/{rest}")))),
    }
}

/// `POST /images/{name}/tag|push`.
pub async fn post_one(
    State(e): State<Arc<Engine>>,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let q = Q::parse(q);
    let (name, op) = rest
        .rsplit_once('/')
        .ok_or_else(|| ApiError(Error::NotFound(format!("page not found: /images/{rest}"))))?;
    match op {
        "tag" => {
            let repo = q.get("repo").filter(|r| !r.is_empty()).ok_or_else(|| bad("repo is required"))?;
            e.tag_image(name, repo, q.get("tag"))?;
            Ok(StatusCode::CREATED.into_response())
        }
        "push" => {
            let creds = registry_auth(&headers);
            let name = name.to_string();
            let tag = q.get("tag").map(String::from);
            progress_stream(move |out| async move { e.push(&name, tag.as_deref(), &creds, &out).await.map(|_| ()) }).await
        }
        _ => Err(ApiError(Error::NotFound(format!("page not found: /images/{rest}")))),
    }
}

pub async fn delete(
    State(e): State<Arc<Engine>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Vec<crate::images::ImageDeleteItem>>> {
    let q = Q::parse(q);
    Ok(Json(e.remove_image(&name, q.bool("force"))?))
}

pub async fn commit(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery, body: Body) -> ApiResult<Response> {
    let q = Q::parse(q);
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("container is required"))?
        .to_string();
    let overrides: Value = json_body(body).await?;
    let repo = q.get("repo").unwrap_or("");
    let repo_tag = match (repo, q.get("tag").unwrap_or("")) {
        ("", _) => None,
        (r, "") => Some(r.to_string()),
        (r, t) => Some(format!("{r}:{t}")),
    };
    let comment = q.get("comment").unwrap_or("").to_string();
    let author = q.get("author").unwrap_or("").to_string();
    let changes = q.all("changes");
    let pause = q.get("pause").is_none_or(|p| p != "0" && p != "false");
    let entry = e.container(&container)?;
    let paused_here = pause && entry.state.running && !entry.state.paused && e.pause(&container, true).await.is_ok();
    let res = {
        let e = e.clone();
        tokio::task::spawn_blocking(move || e.commit(&container, repo_tag.as_deref(), &comment, &author, &changes, Some(overrides)))
            .await
            .map_err(join_err)?
    };
    if paused_here {
        let _ = e.pause(&entry.id, false).await;
    }
    let id = res?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id.to_string()}))).into_response())
}

/// `POST /images/prune`: dangling images, or with `dangling=false` every unused one.
pub async fn prune(State(e): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Json<crate::prune::ImagePruneReport>> {
    let f = crate::prune::PruneFilter::parse(Q::parse(q).filters()?, true, &["dangling"])?;
    let all = f.flag("dangling")? == Some(false);
    Ok(Json(e.prune_images(&f, all)))
}

/// `POST /build/prune` (`docker builder prune`, `docker system prune`).
pub async fn build_prune(State(e): State<Arc<Engine>>) -> ApiResult<Json<crate::prune::BuildCachePruneReport>> {
    Ok(Json(e.prune_build_cache()))
}
