//! The shim's control protocol: one JSON request line per connection, one JSON reply line, then (for
//! `attach` and `exec`) the raw stream: Docker's multiplexed frames when there is no TTY, raw bytes with
//! one; client bytes go to the process's stdin.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Start the created container's process.
    Start,
    /// Stream output (and accept input). `stdin_once` closes the process's stdin when this client's
    /// input ends.
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
        stdin_once: bool,
    },
    /// Send a signal to the init process.
    Kill {
        signal: i32,
    },
    /// Resize the TTY of the container (or of an exec).
    Resize {
        height: u16,
        width: u16,
        exec_id: Option<String>,
    },
    Pause,
    Resume,
    /// Reply once the container has exited, with its [`ExitInfo`].
    Wait,
    /// Run a process in the container and stream it; `process` is an OCI process object.
    Exec {
        exec_id: String,
        process: Value,
        stdin: bool,
    },
    /// Report pid and status.
    State,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
}

/// How a container (or exec) ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ExitInfo {
    pub exit_code: i32,
    #[serde(default)]
    pub oom_killed: bool,
    /// RFC 3339 time of exit.
    pub finished_at: String,
}

pub const SHIM_SOCKET: &str = "shim.sock";
pub const EXIT_FILE: &str = "exit.json";
pub const PID_FILE: &str = "pid";

pub fn exec_exit_file(exec_id: &str) -> String {
    format!("exec-{exec_id}.json")
}
