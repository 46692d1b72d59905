/// Errors of the engine; the API edge maps each to Docker's status code and `{"message": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such container, image, volume or exec instance (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed or asks for something unsupported (400).
    #[error("{0}")]
    BadRequest(String),
    /// The container is already in the requested state (304).
    #[error("{0}")]
    NotModified(String),
    /// Credentials are missing or refused (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Anything else (500).
    #[error("{0}")]
    Internal(String),
    /// A build's RUN step exited non-zero: Docker's message and the step's exit code, which a
    /// build stream's `errorDetail` carries (the docker CLI exits with it). 500 as a status.
    #[error("{message}")]
    StepFailed { message: String, code: i64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<image::Error> for Error {
    fn from(e: image::Error) -> Self {
        match e {
            image::Error::NotFound(s) => Error::NotFound(format!("No such image: {s}")),
            image::Error::InvalidReference(_)
            | image::Error::BadEntry { .. }
            | image::Error::Archive(_)
            | image::Error::InvalidArchive(_)
            // A layer past the daemon's limits: the message names the limit and the layer.
            | image::Error::LimitExceeded(_) => Error::BadRequest(e.to_string()),
            image::Error::Oci(oci::Error::DigestMismatch { .. }) => Error::BadRequest(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<runtime::Error> for Error {
    fn from(e: runtime::Error) -> Self {
        match e {
            runtime::Error::InvalidSpec(s) => Error::BadRequest(s),
            // Docker's wording, which clients map to exit codes 127/126.
            runtime::Error::Runtime {
                kind: runtime::ErrorKind::ExecutableNotFound,
                message: s,
            } => Error::BadRequest(format!(
                "failed to create task for container: exec: \"{}\": executable file not found in $PATH",
                exe_named(&s)
            )),
            runtime::Error::Runtime {
                kind: runtime::ErrorKind::NotExecutable,
                message: s,
            } => Error::BadRequest(format!(
                "failed to create task for container: OCI runtime create failed: exec: \"{}\": permission denied",
                exe_named(&s)
            )),
            other => Error::Internal(other.to_string()),
        }
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

impl From<oci::Error> for Error {
    fn from(e: oci::Error) -> Self {
        match e {
            oci::Error::BlobNotFound(_) => Error::NotFound(e.to_string()),
            oci::Error::DigestMismatch { .. } | oci::Error::InvalidDigest(_) | oci::Error::Json { .. } => Error::BadRequest(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}
