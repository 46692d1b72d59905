//! The container runtime: OCI bundles from run options, the per-container shim (`berth shim`) that
//! creates and runs containers with youki's libcontainer, and the daemon-side shim client.

pub mod cgroup;
pub mod client;
pub mod error;
pub mod external;
pub mod proto;
pub mod shim;
pub mod spec;
pub mod zygote;

pub use error::{Error, ErrorKind, Result};
pub use spec::{MountSpec, NetMode, RunSpec};
