//! Errors of the engine. Every error has a [`ErrorKind`] — what went wrong, as Docker's API
//! distinguishes it — and, where it came from a lower layer (image store, runtime, content store,
//! registry, the filesystem), the typed error of that layer as its [`source`](std::error::Error::source).
//! The API edge maps the kind to Docker's status code and the message to `{"message": ...}`.

use std::fmt;

/// What went wrong, as the Engine API tells its clients (each maps to one HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such container, image, volume, network, exec instance or file (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict,
    /// The request is malformed or asks for something unsupported (400).
    InvalidArgument,
    /// The object is already in the requested state (304).
    NotModified,
    /// Credentials are missing or refused (401).
    Unauthorized,
    /// Anything else: a failure of the daemon or the host (500).
    Internal,
}

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such container, image, volume or exec instance.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed or asks for something unsupported.
    #[error("{0}")]
    BadRequest(String),
    /// The container is already in the requested state.
    #[error("{0}")]
    NotModified(String),
    /// Credentials are missing or refused.
    #[error("{0}")]
    Unauthorized(String),
    /// A failure of the daemon itself that has no typed source.
    #[error("{0}")]
    Internal(String),
    /// A build's RUN step exited non-zero: Docker's message and the step's exit code, which a
    /// build stream's `errorDetail` carries (the docker CLI exits with it).
    #[error("{message}")]
    StepFailed { message: String, code: i64 },
    /// The image store failed.
    #[error("{}", image_message(.0))]
    Image(#[source] image::Error),
    /// The runtime (bundle, shim or OCI runtime) failed.
    #[error("{}", runtime_message(.0))]
    Runtime(#[source] runtime::Error),
    /// The content store failed.
    #[error("{0}")]
    Oci(#[source] oci::Error),
    /// A registry request failed.
    #[error("{0}")]
    Registry(#[source] registry::client::ClientError),
    /// A filesystem or socket operation failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What kind of failure this is; decides the API's status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::BadRequest(_) => ErrorKind::InvalidArgument,
            Error::NotModified(_) => ErrorKind::NotModified,
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::Internal(_) | Error::StepFailed { .. } | Error::Io(_) => ErrorKind::Internal,
            Error::Image(e) => image_kind(e),
            Error::Runtime(e) => runtime_kind(e),
            Error::Oci(e) => oci_kind(e),
            Error::Registry(e) => match e {
                registry::client::ClientError::NotFound(_) => ErrorKind::NotFound,
                registry::client::ClientError::Unauthorized { .. } => ErrorKind::Unauthorized,
                registry::client::ClientError::Invalid(_) => ErrorKind::InvalidArgument,
                registry::client::ClientError::Transport { .. } | registry::client::ClientError::Status { .. } => ErrorKind::Internal,
            },
        }
    }
}

fn image_kind(e: &image::Error) -> ErrorKind {
    match e {
        image::Error::NotFound(_) => ErrorKind::NotFound,
        image::Error::InvalidReference(_)
        | image::Error::BadEntry { .. }
        | image::Error::Archive(_)
        | image::Error::InvalidArchive(_)
        // A layer past the daemon's limits: the message names the limit and the layer.
        | image::Error::LimitExceeded(_) => ErrorKind::InvalidArgument,
        image::Error::Oci(o) => oci_kind(o),
        image::Error::Io { .. } | image::Error::Sys { .. } => ErrorKind::Internal,
    }
}

fn image_message(e: &image::Error) -> String {
    match e {
        image::Error::NotFound(s) => format!("No such image: {s}"),
        other => other.to_string(),
    }
}

fn oci_kind(e: &oci::Error) -> ErrorKind {
    match e {
        oci::Error::BlobNotFound(_) => ErrorKind::NotFound,
        oci::Error::DigestMismatch { .. } | oci::Error::InvalidDigest(_) | oci::Error::Json { .. } => ErrorKind::InvalidArgument,
        oci::Error::Io { .. } => ErrorKind::Internal,
    }
}

fn runtime_kind(e: &runtime::Error) -> ErrorKind {
    match (e, e.kind()) {
        (runtime::Error::InvalidSpec(_), _) => ErrorKind::InvalidArgument,
        // A container's program that cannot be run is the request's fault, as in Docker.
        (_, runtime::ErrorKind::ExecutableNotFound | runtime::ErrorKind::NotExecutable) => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    }
}

fn runtime_message(e: &runtime::Error) -> String {
    match e {
        runtime::Error::InvalidSpec(s) => s.clone(),
        // Docker's wording, which clients map to exit codes 127/126.
        runtime::Error::Runtime {
            kind: runtime::ErrorKind::ExecutableNotFound,
            message,
        } => format!(
            "failed to create task for container: exec: \"{}\": executable file not found in $PATH",
            exe_named(message)
        ),
        runtime::Error::Runtime {
            kind: runtime::ErrorKind::NotExecutable,
            message,
        } => format!(
            "failed to create task for container: OCI runtime create failed: exec: \"{}\": permission denied",
            exe_named(message)
        ),
        other => other.to_string(),
    }
}

/// The program a runtime's exec error names: libcontainer quotes it with '…', runc and crun with
/// exec: "…".
fn exe_named(s: &str) -> &str {
    s.split_once("exec: \"")
        .and_then(|(_, r)| r.split('"').next())
        .or_else(|| s.split('\'').nth(1))
        .unwrap_or("")
}

impl From<image::Error> for Error {
    fn from(e: image::Error) -> Self {
        Error::Image(e)
    }
}

impl From<runtime::Error> for Error {
    fn from(e: runtime::Error) -> Self {
        Error::Runtime(e)
    }
}

impl From<oci::Error> for Error {
    fn from(e: oci::Error) -> Self {
        Error::Oci(e)
    }
}

impl From<registry::client::ClientError> for Error {
    fn from(e: registry::client::ClientError) -> Self {
        Error::Registry(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

/// An internal error from anything that only has a message (a join error, a foreign crate's).
pub(crate) fn internal(e: impl fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_typed_source() {
        let e: Error = image::Error::NotFound("x:1".into()).into();
        assert_eq!((e.kind(), e.to_string()), (ErrorKind::NotFound, "No such image: x:1".to_string()));
        assert!(std::error::Error::source(&e).is_some());
        let e: Error = image::Error::InvalidReference("A".into()).into();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e: Error = oci::Error::BlobNotFound("sha256:x".into()).into();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e: Error = std::io::Error::other("disk").into();
        assert_eq!(e.kind(), ErrorKind::Internal);
        let e: Error = registry::client::ClientError::Unauthorized {
            registry: "r".into(),
            message: "no".into(),
        }
        .into();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        let e: Error = runtime::Error::Runtime {
            kind: runtime::ErrorKind::ExecutableNotFound,
            message: "exec: \"nope\": executable file not found in $PATH".into(),
        }
        .into();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "failed to create task for container: exec: \"nope\": executable file not found in $PATH"
        );
        let e: Error = runtime::Error::InvalidSpec("unknown capability".into()).into();
        assert_eq!(
            (e.kind(), e.to_string()),
            (ErrorKind::InvalidArgument, "unknown capability".to_string())
        );
    }
}
