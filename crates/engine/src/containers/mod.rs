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
    /// A pod sandbox (see [`crate::types::Container::sandbox`]); never from the Engine API.
    #[serde(skip)]
    pub sandbox: bool,
}

/// A signal, by number, as the API names them (`9`, `KILL`, `SIGKILL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    pub const KILL: Signal = Signal(libc::SIGKILL);

    /// A signal from the API: Docker's names or numbers; an empty string is none.
    pub fn from_query(s: Option<&str>) -> Result<Option<Signal>> {
        s.filter(|s| !s.is_empty()).map(|s| parse_signal(s).map(Signal)).transpose()
    }
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitCondition {
    /// The container is not running (now, or when it next stops).
    #[default]
    NotRunning,
    /// The container's next exit, even if it is not running now.
    NextExit,
    /// The container is removed.
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::BadRequest(format!("invalid condition: {other:?}"))),
        }
    }
}

/// A signal's number from its name (`KILL`, `SIGKILL`) or number, as Docker parses them.
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
pub(crate) use spec::{parse_extra_host, resolv_conf};
pub use update::UpdateRequest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_as_docker_names_them() {
        for s in ["9", "KILL", "SIGKILL", "kill", " sigkill "] {
            assert_eq!(parse_signal(s).unwrap(), libc::SIGKILL, "{s}");
        }
        assert_eq!(parse_signal("HUP").unwrap(), libc::SIGHUP);
        for s in ["0", "65", "SIGNOPE", ""] {
            assert_eq!(parse_signal(s).unwrap_err().to_string(), format!("invalid signal: {s}"));
        }
        assert_eq!(Signal::from_query(Some("")).unwrap(), None);
        assert_eq!(Signal::from_query(Some("TERM")).unwrap(), Some(Signal(libc::SIGTERM)));
    }

    #[test]
    fn wait_conditions() {
        assert_eq!("".parse::<WaitCondition>().unwrap(), WaitCondition::NotRunning);
        assert_eq!("next-exit".parse::<WaitCondition>().unwrap(), WaitCondition::NextExit);
        assert_eq!("removed".parse::<WaitCondition>().unwrap(), WaitCondition::Removed);
        assert_eq!(
            "later".parse::<WaitCondition>().unwrap_err().to_string(),
            "invalid condition: \"later\""
        );
    }
}
