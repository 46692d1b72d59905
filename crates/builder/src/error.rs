use std::path::PathBuf;

use crate::dockerfile::{Loc, ParseError};

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// An instruction is valid syntax but cannot be carried out as written (bad substitution,
    /// unknown stage, bad flag value); names the line.
    #[error("Dockerfile:{}:{}: {message}", loc.line, loc.col)]
    Instruction { loc: Loc, message: String },
    /// A source of COPY/ADD is missing or excluded, or a destination is unusable.
    #[error("{0}")]
    Copy(String),
    /// A RUN step exited non-zero.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed { command: String, code: i64 },
    /// The base image is not in the local store and could not be pulled.
    #[error("{image}: not in the local store, and the pull failed: {reason}")]
    NoBaseImage { image: String, reason: String },
    /// The requested options are invalid (unknown target, bad timestamp).
    #[error("{0}")]
    Invalid(String),
    /// The build context is unusable (missing Dockerfile, bad tar).
    #[error("{0}")]
    Context(String),
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The image store refused something.
    #[error(transparent)]
    Image(#[from] image::Error),
    /// The content store refused something.
    #[error(transparent)]
    Oci(#[from] oci::Error),
    /// The engine could not run a step's container.
    #[error("{0}")]
    Backend(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error about the instruction at `loc`.
    pub fn at(loc: Loc, message: impl Into<String>) -> Error {
        Error::Instruction {
            loc,
            message: message.into(),
        }
    }
}
