//! `berth exec`: run a command in a running container.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use super::client::{seg, Client};
use super::stream::{monitor_size, pump, stdin_is_tty, RawTerminal};

/// Flags of `berth exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "string")]
    pub workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Command and its arguments
    #[arg(value_name = "COMMAND", required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `berth exec`.
pub async fn exec(client: &Client, a: ExecArgs) -> Result<i32> {
    let container = &a.container;
    let attach_stdin = a.interactive && !a.detach;
    if a.tty && attach_stdin && !stdin_is_tty() {
        bail!("the input device is not a TTY");
    }
    let mut env = Vec::new();
    for e in &a.env {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let mut body = json!({
        "AttachStdin": attach_stdin,
        "AttachStdout": !a.detach,
        "AttachStderr": !a.detach,
        "Tty": a.tty,
        "Cmd": a.command,
        "Detach": a.detach,
    });
    if !env.is_empty() {
        body["Env"] = json!(env);
    }
    let keys = super::stream::detach_keys(a.detach_keys.as_deref())?;
    if let Some(k) = &a.detach_keys {
        body["DetachKeys"] = json!(k);
    }
    if let Some(u) = &a.user {
        body["User"] = json!(u);
    }
    if let Some(w) = &a.workdir {
        body["WorkingDir"] = json!(w);
    }
    if a.privileged {
        body["Privileged"] = json!(true);
    }
    if a.tty {
        // The terminal's size from the first byte, as docker sends it; a resize follows the start.
        if let Some((h, w)) = super::stream::term_size() {
            body["ConsoleSize"] = json!([h, w]);
        }
    }
    let created = client.post(&format!("/containers/{}/exec", seg(container)), Some(&body)).await?;
    let exec_id = created
        .get("Id")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("daemon returned no exec ID"))?
        .to_string();
    let start_path = format!("/exec/{}/start", seg(&exec_id));
    if a.detach {
        client.post(&start_path, Some(&json!({"Detach": true, "Tty": a.tty}))).await?;
        return Ok(0);
    }
    let (rd, wr) = client.hijack(&start_path, Some(&json!({"Detach": false, "Tty": a.tty}))).await?;
    let raw = if a.tty && attach_stdin { RawTerminal::enable() } else { None };
    let resizer = if a.tty {
        monitor_size(client, format!("/exec/{}", seg(&exec_id))).await
    } else {
        None
    };
    let r = pump(rd, wr, a.tty, attach_stdin, Some(keys)).await;
    drop(raw);
    if let Some(h) = resizer {
        h.abort();
    }
    if r? == super::stream::Ended::Detached {
        // As the docker CLI: the exec goes on, the command fails with this message.
        bail!("read escape sequence");
    }
    let info = client.get(&format!("/exec/{}/json", seg(&exec_id))).await?;
    Ok(info.get("ExitCode").and_then(Value::as_i64).unwrap_or(0) as i32)
}
