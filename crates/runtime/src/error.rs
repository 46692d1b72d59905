use std::path::PathBuf;

/// What failed, as a kind the daemon can act on without reading the message. It is taken where the
/// failure happens (an errno, an `io::ErrorKind`, libcontainer's error variant, or the OCI runtime's
/// own report of a program it cannot run) and crosses the shim's socket with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Something named does not exist: a file, a process, the runtime's state.
    NotFound,
    /// The program to run (the container's or an exec's) is not on its `PATH`.
    ExecutableNotFound,
    /// The program to run exists but may not be executed.
    NotExecutable,
    /// The operation is not allowed (`EPERM`, `EACCES`).
    PermissionDenied,
    /// The request or the spec is malformed.
    InvalidArgument,
    /// The request does not fit the container's state: not running, no TTY, already there.
    Conflict,
    /// The shim could not be reached or gave no usable answer.
    Unavailable,
    /// Anything else. A reply without a kind (from a shim older than kinds) and a kind this
    /// version does not know read as this one.
    #[default]
    #[serde(other)]
    Other,
}

impl ErrorKind {
    /// The kind's name on the wire (`executable_not_found`), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::ExecutableNotFound => "executable_not_found",
            ErrorKind::NotExecutable => "not_executable",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Other => "other",
        }
    }

    /// The kind named `name` ([`ErrorKind::Other`] for a name this version does not know).
    pub fn from_name(name: &str) -> ErrorKind {
        serde_json::from_value(serde_json::Value::String(name.to_string())).unwrap_or_default()
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<std::io::ErrorKind> for ErrorKind {
    fn from(k: std::io::ErrorKind) -> Self {
        use std::io::ErrorKind as K;
        match k {
            K::NotFound => ErrorKind::NotFound,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::InvalidInput | K::InvalidData => ErrorKind::InvalidArgument,
            K::AlreadyExists => ErrorKind::Conflict,
            _ => ErrorKind::Other,
        }
    }
}

impl From<nix::errno::Errno> for ErrorKind {
    fn from(e: nix::errno::Errno) -> Self {
        use nix::errno::Errno;
        match e {
            Errno::ENOENT | Errno::ESRCH => ErrorKind::NotFound,
            Errno::EPERM | Errno::EACCES => ErrorKind::PermissionDenied,
            Errno::EINVAL => ErrorKind::InvalidArgument,
            Errno::EEXIST | Errno::EBUSY => ErrorKind::Conflict,
            _ => ErrorKind::Other,
        }
    }
}

/// The kind of an OCI runtime's failure from its report, the only form in which it reaches the
/// shim: libcontainer's init process sends its error as text over its channel, and runc and crun
/// write theirs to their log. A program not on `PATH`: libcontainer says "executable '/x' not found
/// in $PATH", runc `exec: "/x": executable file not found in $PATH`, crun "executable file `/x` not
/// found in $PATH". A program that may not run: libcontainer says "executable '/x' at path ... does
/// not have correct permissions", runc and crun `exec: "/x": permission denied`.
pub(crate) fn runtime_message_kind(message: &str) -> ErrorKind {
    if message.contains("not found in $PATH") {
        ErrorKind::ExecutableNotFound
    } else if message.contains("does not have correct permissions")
        || (message.contains("exec: \"") && message.contains("permission denied"))
    {
        ErrorKind::NotExecutable
    } else {
        ErrorKind::Other
    }
}

fn oci_kind(e: &oci::Error) -> ErrorKind {
    match e {
        oci::Error::BlobNotFound(_) => ErrorKind::NotFound,
        oci::Error::InvalidDigest(_) | oci::Error::DigestMismatch { .. } | oci::Error::Json { .. } => ErrorKind::InvalidArgument,
        oci::Error::Io { source, .. } => source.kind().into(),
    }
}

/// Errors of bundle generation, the shim and its client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The run options cannot make a valid runtime spec (unknown capability, no command, ...).
    #[error("{0}")]
    InvalidSpec(String),
    /// The OCI runtime (libcontainer, or an external one under the shim) failed, or the shim could
    /// not do what it was asked: the message and kind the shim reported.
    #[error("OCI runtime error: {message}")]
    Runtime { kind: ErrorKind, message: String },
    /// The shim gave no usable answer (no report, a closed connection, a bad ready message).
    #[error("shim: {0}")]
    Shim(String),
    /// The shim could not be reached: connecting, sending the request or reading the answer failed.
    #[error("shim: {context}: {source}")]
    ShimIo {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The shim's reply is not the protocol's JSON.
    #[error("shim: bad reply {reply:?}: {source}")]
    BadReply {
        reply: String,
        #[source]
        source: serde_json::Error,
    },
    /// A filesystem or socket operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A content-store error.
    #[error(transparent)]
    Oci(#[from] oci::Error),
}

impl Error {
    /// What failed, for callers that act on it (the API's status codes).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSpec(_) => ErrorKind::InvalidArgument,
            Error::Runtime { kind, .. } => *kind,
            Error::Shim(_) | Error::ShimIo { .. } | Error::BadReply { .. } => ErrorKind::Unavailable,
            Error::Io { source, .. } => source.kind().into(),
            Error::Oci(e) => oci_kind(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure in the shim: the message its reply (or ready line) carries, its kind, and the error
/// it came from, if any. The daemon reads it back as [`Error::Runtime`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// `message` of `kind`, caused by `source`.
    pub fn caused(kind: ErrorKind, message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Failure {
        Failure {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// An OCI runtime's failure: its report, and the kind read from it.
    pub fn runtime(message: String) -> Failure {
        Failure::new(runtime_message_kind(&message), message)
    }

    /// `e` after `context: `, of `e`'s kind.
    pub fn io(context: impl std::fmt::Display, e: std::io::Error) -> Failure {
        Failure::caused(e.kind().into(), format!("{context}: {e}"), e)
    }

    /// `e` after `context: `, of `e`'s kind.
    pub fn errno(context: impl std::fmt::Display, e: nix::errno::Errno) -> Failure {
        Failure::caused(e.into(), format!("{context}: {e}"), e)
    }

    /// The same failure, its message after `context: `.
    pub fn context(self, context: impl std::fmt::Display) -> Failure {
        Failure {
            message: format!("{context}: {}", self.message),
            ..self
        }
    }
}

/// The error's own text as the message.
impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::caused(e.kind().into(), e.to_string(), e)
    }
}

/// The errno's text (`EINVAL: Invalid argument`) as the message.
impl From<nix::errno::Errno> for Failure {
    fn from(e: nix::errno::Errno) -> Self {
        Failure::caused(e.into(), e.to_string(), e)
    }
}

impl From<oci::Error> for Failure {
    fn from(e: oci::Error) -> Self {
        Failure::caused(oci_kind(&e), e.to_string(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_serdes() {
        for k in [
            ErrorKind::NotFound,
            ErrorKind::ExecutableNotFound,
            ErrorKind::NotExecutable,
            ErrorKind::PermissionDenied,
            ErrorKind::InvalidArgument,
            ErrorKind::Conflict,
            ErrorKind::Unavailable,
            ErrorKind::Other,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::Value::String(k.as_str().into()));
            assert_eq!(ErrorKind::from_name(k.as_str()), k);
        }
        assert_eq!(ErrorKind::from_name("something_newer"), ErrorKind::Other);
    }

    #[test]
    fn runtime_reports() {
        let k = runtime_message_kind;
        assert_eq!(k("executable 'nope' not found in $PATH"), ErrorKind::ExecutableNotFound);
        assert_eq!(
            k("runc create failed (exit status 1): exec: \"nope\": executable file not found in $PATH"),
            ErrorKind::ExecutableNotFound
        );
        assert_eq!(
            k("executable '/etc/passwd' at path '\"/etc/passwd\"' does not have correct permissions"),
            ErrorKind::NotExecutable
        );
        assert_eq!(
            k("crun create failed: exec: \"/etc/passwd\": permission denied"),
            ErrorKind::NotExecutable
        );
        assert_eq!(k("open /x: permission denied"), ErrorKind::Other);
        assert_eq!(k("failed to create cgroup"), ErrorKind::Other);
    }

    #[test]
    fn kinds_of_errors() {
        let io = |k| std::io::Error::new(k, "x");
        let e = Error::Io {
            op: "create",
            path: "/x".into(),
            source: io(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(Error::InvalidSpec("no command specified".into()).kind(), ErrorKind::InvalidArgument);
        let e = Error::ShimIo {
            context: "connect /s".into(),
            source: io(std::io::ErrorKind::NotFound),
        };
        assert_eq!((e.kind(), e.to_string().as_str()), (ErrorKind::Unavailable, "shim: connect /s: x"));
        let f = Failure::from(nix::errno::Errno::ESRCH).context("kill");
        assert_eq!((f.kind, f.message.as_str()), (ErrorKind::NotFound, "kill: ESRCH: No such process"));
        assert!(std::error::Error::source(&f).is_some());
    }
}
