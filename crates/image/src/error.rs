use std::path::PathBuf;

/// Errors of layer handling and the image index.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer tar entry is unsafe or malformed; names the entry.
    #[error("layer entry {entry:?}: {reason}")]
    BadEntry { entry: String, reason: String },
    /// The layer archive itself could not be read (truncated, corrupt, bad compression).
    #[error("reading layer archive: {0}")]
    Archive(#[source] std::io::Error),
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An image archive (`docker save` output, OCI layout) is malformed or inconsistent.
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    /// An image or reference is not known.
    #[error("no such image: {0}")]
    NotFound(String),
    /// A reference (name:tag) is malformed.
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    /// A content-store error.
    #[error(transparent)]
    Oci(#[from] oci::Error),
    /// Expanding a layer (or a `docker load` archive) crossed one of the daemon's limits; names
    /// the limit and the layer.
    #[error(transparent)]
    LimitExceeded(#[from] crate::limits::LimitExceeded),
    /// A mount or other syscall failed.
    #[error("{op}: {source}")]
    Sys {
        op: String,
        #[source]
        source: nix::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}
