//! Dockerfile builds: the parser ([`dockerfile`]) and the builder ([`builder`]), which runs RUN
//! steps through the engine (a [`Backend`]) and writes layers deterministically.

pub mod builder;
pub mod cache;
pub mod dockerfile;
pub mod error;
pub mod fsutil;
pub mod pattern;
pub mod provenance;
pub mod python;

pub use builder::{
    build, decompressed, Backend, BuildOptions, BuildResult, Inputs, Progress, RunEvent, RunOutcome, RunRequest, DEFAULT_EPOCH,
};
pub use cache::Cache;
pub use error::{Error, Result};
