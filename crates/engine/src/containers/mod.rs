//! Container lifecycle: create, start, stop, kill, restart, pause, remove, rename, update, wait.

mod checks;
mod create;
mod lifecycle;
mod spec;
mod update;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::types::{ContainerConfig, HostConfig};

/// The body of `POST /containers/create`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    #[serde(flatten)]
    pub config: ContainerConfig,
    #[serde(default)]
    pub host_config: HostConfig,
    #[serde(default)]
    pub networking_config: Option<serde_json::Value>,
}

pub fn parse_signal(s: &str) -> Result<i32> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::BadRequest(format!("invalid signal: {s}")));
    }
    let up = t.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::BadRequest(format!("invalid signal: {s}")))
}

/// A process's environment from `Config.Env`: entries without `=` (`-e NAME` with NAME unset on
/// the client) only hide a variable, as in Docker; they are not passed on.
pub(crate) fn process_env(env: &[String]) -> Vec<String> {
    env.iter().filter(|e| e.contains('=')).cloned().collect()
}

pub fn cgroup_path(id: &str) -> String {
    format!("/berth/{id}")
}

pub use crate::engine::{purge_trash, TRASH_PREFIX};
pub(crate) use checks::check_supported;
pub use checks::{log_rotation, parse_bind};
pub(crate) use spec::parse_extra_host;
