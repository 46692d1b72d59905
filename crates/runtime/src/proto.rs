//! The shim's control protocol: one JSON request line per connection, one JSON reply line, then (for
//! `attach` and `exec`) the raw stream: Docker's multiplexed frames when there is no TTY, raw bytes with
//! one; client bytes go to the process's stdin. A failed request's reply carries the failure's
//! message and its [`ErrorKind`].
//!
//! Before that, the process that starts a shim reads one line from it, the shim's ready report
//! (see [`ready_error`] and [`parse_ready_error`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorKind, Failure};

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
    /// What kind of failure `error` is. A reply with an error and without a kind (from a shim
    /// older than kinds) reads as [`ErrorKind::Other`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
}

impl Reply {
    /// The reply to a request that failed.
    pub fn failed(f: &Failure) -> Reply {
        Reply {
            error: Some(f.message.clone()),
            kind: Some(f.kind),
            ..Default::default()
        }
    }
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

/// The shim's ready report when its container could not be created: `error: <message>`, with the
/// kind in brackets unless it is the generic one (`error[executable_not_found]: <message>`). Once
/// the container is created the report is `ok <pid>`.
pub fn ready_error(kind: ErrorKind, message: &str) -> String {
    match kind {
        ErrorKind::Other => format!("error: {message}"),
        k => format!("error[{k}]: {message}"),
    }
}

/// The kind and message of a ready report written by [`ready_error`]; `error: <message>` (as a
/// shim older than kinds writes every error) is of the generic kind. `None` for any other line.
pub fn parse_ready_error(line: &str) -> Option<(ErrorKind, &str)> {
    if let Some(m) = line.strip_prefix("error: ") {
        return Some((ErrorKind::Other, m));
    }
    let (name, m) = line.strip_prefix("error[")?.split_once("]: ")?;
    Some((ErrorKind::from_name(name), m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_kinds() {
        let r = Reply::failed(&Failure::new(ErrorKind::Conflict, "container is not running"));
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(line, r#"{"error":"container is not running","kind":"conflict"}"#);
        let back: Reply = serde_json::from_str(&line).unwrap();
        assert_eq!(back.kind, Some(ErrorKind::Conflict));
        // An older shim's reply, and a kind from a newer one.
        let old: Reply = serde_json::from_str(r#"{"error":"no TTY to resize"}"#).unwrap();
        assert_eq!(old.kind.unwrap_or_default(), ErrorKind::Other);
        let newer: Reply = serde_json::from_str(r#"{"error":"x","kind":"quota_exceeded"}"#).unwrap();
        assert_eq!(newer.kind, Some(ErrorKind::Other));
        // A success says nothing of kinds.
        assert_eq!(
            serde_json::to_string(&Reply {
                pid: Some(7),
                ..Default::default()
            })
            .unwrap(),
            r#"{"pid":7}"#
        );
    }

    #[test]
    fn ready_reports() {
        let msg = "executable 'nope' not found in $PATH";
        let line = ready_error(ErrorKind::ExecutableNotFound, msg);
        assert_eq!(line, format!("error[executable_not_found]: {msg}"));
        assert_eq!(parse_ready_error(&line), Some((ErrorKind::ExecutableNotFound, msg)));
        assert_eq!(ready_error(ErrorKind::Other, "fork: EAGAIN"), "error: fork: EAGAIN");
        assert_eq!(parse_ready_error("error: fork: EAGAIN"), Some((ErrorKind::Other, "fork: EAGAIN")));
        assert_eq!(parse_ready_error("error[newer]: m"), Some((ErrorKind::Other, "m")));
        assert_eq!(parse_ready_error("ok 42"), None);
        assert_eq!(parse_ready_error("error:"), None);
    }
}
