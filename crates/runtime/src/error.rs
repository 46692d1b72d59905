use std::path::PathBuf;

/// Errors of bundle generation, the shim and its client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The run options cannot make a valid runtime spec (unknown capability, no command, ...).
    #[error("{0}")]
    InvalidSpec(String),
    /// The OCI runtime (libcontainer) failed.
    #[error("OCI runtime error: {0}")]
    Runtime(String),
    /// The shim reported an error or could not be reached.
    #[error("shim: {0}")]
    Shim(String),
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

pub type Result<T, E = Error> = std::result::Result<T, E>;
