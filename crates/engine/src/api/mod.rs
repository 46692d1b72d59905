//! The Docker Engine API (v1.43 wire format) as an axum `Router` over the [`Engine`].

mod build;
mod containers;
mod images;
mod io;
mod query;
pub use io::ConnFd;
mod system;

use std::sync::Arc;

use axum::http::{Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind};

pub const API_VERSION: &str = "1.43";
pub const MIN_API_VERSION: &str = "1.24";

/// An error at the API edge: Docker's status code and `{"message": ...}`.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<image::Error> for ApiError {
    fn from(e: image::Error) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::NotModified => return StatusCode::NOT_MODIFIED.into_response(),
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        tracing::debug!(status = %status, error = %self.0, "request failed");
        (status, Json(json!({"message": self.0.to_string()}))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(Error::BadRequest(msg.into()))
}

/// Strip a `/v1.NN` prefix, refusing versions this server does not speak.
fn strip_version<B>(mut req: Request<B>) -> Request<B> {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(idx) = rest.find('/') {
            let ver = &rest[..idx];
            if ver.split('.').count() == 2 && ver.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
                if let Some(msg) = unsupported_version(ver) {
                    req.extensions_mut().insert(UnsupportedVersion(msg));
                }
                let new_path = rest[idx..].to_string();
                let pq = match req.uri().query() {
                    Some(q) => format!("{new_path}?{q}"),
                    None => new_path,
                };
                if let Ok(u) = pq.parse::<Uri>() {
                    *req.uri_mut() = u;
                }
            }
        }
    }
    req
}

/// A request for an API version outside [`MIN_API_VERSION`]..=[`API_VERSION`]: answered with 400
/// and this message by `system::headers`, as Docker does.
#[derive(Clone)]
pub struct UnsupportedVersion(pub String);

fn unsupported_version(ver: &str) -> Option<String> {
    let num = |v: &str| -> (u32, u32) {
        let (a, b) = v.split_once('.').unwrap_or((v, "0"));
        (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
    };
    let v = num(ver);
    if v < num(MIN_API_VERSION) {
        Some(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ))
    } else if v > num(API_VERSION) {
        Some(format!(
            "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
        ))
    } else {
        None
    }
}

/// Swarm endpoints: Berth is never part of a swarm (its orchestrator is the Kubernetes API), so
/// it answers as a Docker engine outside a swarm does (503), and refuses to init or join one.
async fn not_in_swarm(uri: Uri) -> Response {
    let msg = match uri.path() {
        "/swarm/leave" => "This node is not part of a swarm",
        "/swarm/init" | "/swarm/join" => "swarm mode is not supported by Berth: it orchestrates through the Kubernetes API instead",
        _ => "This node is not a swarm manager. Berth does not support swarm mode; it orchestrates through the Kubernetes API instead.",
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"message": msg}))).into_response()
}

async fn fallback(uri: Uri) -> ApiError {
    ApiError(Error::NotFound(format!("page not found: {}", uri.path())))
}

/// The router, without version-prefix handling (see `service`).
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/berth/dashboard", get(system::dashboard))
        .route("/events", get(system::events))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}", axum::routing::delete(containers::remove))
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/exec", post(containers::exec_create))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/update", post(containers::update))
        .route(
            "/containers/{id}/archive",
            get(containers::archive_get)
                .head(containers::archive_head)
                .put(containers::archive_put),
        )
        .route("/containers/{id}/export", get(containers::export))
        .route("/containers/{id}/changes", get(containers::changes))
        .route("/exec/{id}/start", post(containers::exec_start))
        .route("/exec/{id}/resize", post(containers::exec_resize))
        .route("/exec/{id}/json", get(containers::exec_inspect))
        .route("/build", post(build::build))
        .route("/build/prune", post(images::build_prune))
        .route("/auth", post(system::auth))
        .route("/commit", post(images::commit))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::get_many))
        .route("/images/prune", post(images::prune))
        .route(
            "/images/{*rest}",
            get(images::get_one).post(images::post_one).delete(images::delete),
        )
        .route("/system/df", get(system::system_df))
        .route("/networks", get(system::network_list))
        .route("/networks/prune", post(system::network_prune))
        .route("/networks/create", post(system::network_create))
        .route("/networks/{id}", get(system::network_inspect).delete(system::network_remove))
        .route("/networks/{id}/connect", post(system::network_connect))
        .route("/networks/{id}/disconnect", post(system::network_disconnect))
        .route("/volumes", get(system::volume_list))
        .route("/volumes/create", post(system::volume_create))
        .route("/volumes/prune", post(system::volume_prune))
        .route("/volumes/{name}", get(system::volume_inspect).delete(system::volume_remove))
        .route("/swarm", get(not_in_swarm))
        .route("/swarm/{*rest}", get(not_in_swarm).post(not_in_swarm))
        .route("/services", get(not_in_swarm))
        .route("/services/{*rest}", get(not_in_swarm).post(not_in_swarm).delete(not_in_swarm))
        .route("/nodes", get(not_in_swarm))
        .route("/nodes/{*rest}", get(not_in_swarm).post(not_in_swarm).delete(not_in_swarm))
        .route("/tasks", get(not_in_swarm))
        .route("/tasks/{*rest}", get(not_in_swarm))
        .route("/secrets", get(not_in_swarm))
        .route("/secrets/{*rest}", get(not_in_swarm).post(not_in_swarm).delete(not_in_swarm))
        .route("/configs", get(not_in_swarm))
        .route("/configs/{*rest}", get(not_in_swarm).post(not_in_swarm).delete(not_in_swarm))
        .fallback(fallback)
        .layer(axum::middleware::from_fn(system::drain_unread_body))
        .layer(axum::middleware::from_fn(system::headers))
        .with_state(engine)
}

/// The full HTTP service: version prefixes stripped, then routed.
pub type App = tower::util::MapRequest<Router, fn(Request<axum::body::Body>) -> Request<axum::body::Body>>;

pub fn app(engine: Arc<Engine>) -> App {
    tower::util::MapRequest::new(router(engine), strip_version::<axum::body::Body> as fn(_) -> _)
}
