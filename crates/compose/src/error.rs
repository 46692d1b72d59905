//! Errors of loading and planning a compose project.

use std::path::PathBuf;

/// A compose error; each names the file (and line, where there is one) at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No compose file was given or found.
    #[error("no configuration file provided: not found (looked for {0} in {1} and its parents)")]
    NotFound(String, String),
    /// The YAML itself is malformed.
    #[error("{file}: {message}")]
    Yaml {
        /// The file.
        file: String,
        /// The parser's message (with the line).
        message: String,
    },
    /// A value does not fit the Compose Specification (unknown key, wrong type, bad short syntax).
    #[error("{file}:{line}: {path}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// The key path, e.g. `services.web.ports[0]`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// `${VAR:?message}` with VAR unset, or a malformed `${...}`.
    #[error("{file}:{line}: {path}: {message}")]
    Interpolation {
        /// The file.
        file: String,
        /// 1-based line.
        line: u64,
        /// The key path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A `.env` or `env_file` line that cannot be read.
    #[error("{}:{line}: {message}", path.display())]
    EnvFile {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// `depends_on` (or `network_mode: service:`/`volumes_from`) goes round in a circle.
    #[error("dependency cycle between services: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// A reference to something the project does not define.
    #[error("{0}")]
    Reference(String),
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
