//! The Berth engine: images, containers, volumes, events; and the Docker Engine API over them.
#![recursion_limit = "256"]

pub mod api;
pub mod builder;
pub mod containers;
pub mod distribution;
pub mod engine;
pub mod error;
pub mod events;
pub mod fsops;
pub mod health;
pub mod images;
pub mod private;
pub mod streams;
pub mod types;
pub mod units;
pub mod volumes;

pub use engine::{Engine, EngineConfig, BUILTIN_RUNTIME};
pub use error::{Error, ErrorKind, Result};
