//! Compose for Berth: one typed model of the Compose Specification and the plan that turns a
//! project into Engine API requests.
//!
//! ```text
//! files ─► node (YAML with positions) ─► interpolate ─► merge ─► model::Project ─► plan
//! ```
//!
//! Loading ([`load::load`]) finds the files, reads `.env`, interpolates `${VAR:-default}`, merges
//! several files in order, types the result (a wrong key or type is reported with its file, line
//! and key path), resolves paths, env files and profiles, and checks references and cycles.
//! Planning ([`plan`]) orders services by `depends_on`, hashes each service's configuration, and
//! builds the network, volume and container bodies labelled `com.docker.compose.*` exactly as
//! Docker Compose labels them: those labels are the only state, so any compose client sees the
//! same project. Sending the requests is the CLI's job (`berth compose`); this crate does no I/O
//! beyond reading the compose and env files.

pub mod env;
pub mod error;
pub mod interpolate;
pub mod load;
pub mod model;
pub mod node;
pub mod plan;
pub mod units;

pub use error::{Error, Result};
pub use load::{load, Loaded, Options};
pub use model::Project;
