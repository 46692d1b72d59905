//! `berth run`, `berth start`, `berth attach`: attaching to a container's streams and waiting for it.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use hyper::Method;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::client::{empty, is_status, query, read_json, seg, Client};
use super::create::{create_container, CreateOpts, Streams};
use super::each;
use super::stream::{monitor_size, proxy_signals, pump, stdin_is_tty, RawTerminal};

/// Flags of `berth run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, value_name = "bool")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub create: CreateOpts,
}

/// Flags of `berth start`.
#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Containers to start
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Flags of `berth attach`.
#[derive(clap::Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, value_name = "bool")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container (default ctrl-p,ctrl-q)
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Container to attach to
    pub container: String,
}

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// Exit code docker uses for a failed start: 127 command not found, 126 not executable, else 125.
fn start_failure_code(msg: &str) -> i32 {
    let m = msg.to_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") || m.contains("not found in $path") {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        125
    }
}

/// `POST /containers/{id}/wait?condition=` in the background. The receiver fires once the daemon's
/// response headers arrive (the waiter is registered) or the request failed.
fn spawn_wait(client: &Client, id: &str, condition: &str) -> (JoinHandle<Result<i64>>, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    let c = client.clone();
    let q = if condition.is_empty() {
        String::new()
    } else {
        query(&[("condition", condition)])
    };
    let path = format!("/containers/{}/wait{q}", seg(id));
    let h = tokio::spawn(async move {
        let resp = c.send(Method::POST, &path, empty(), None, false).await?;
        let _ = tx.send(());
        let v = read_json(resp).await?;
        if let Some(msg) = v.pointer("/Error/Message").and_then(Value::as_str) {
            if !msg.is_empty() {
                bail!("{msg}");
            }
        }
        Ok(v.get("StatusCode").and_then(Value::as_i64).unwrap_or(0))
    });
    (h, rx)
}

/// Wait for the waiter; if it stays silent after the output ended, fall back to inspecting the
/// container's state (covers a daemon that registered the waiter after the container had exited).
async fn exit_code(client: &Client, id: &str, mut waiter: JoinHandle<Result<i64>>) -> Result<i32> {
    loop {
        tokio::select! {
            r = &mut waiter => {
                return match r {
                    Ok(Ok(c)) => Ok(c as i32),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(anyhow!("wait: {e}")),
                };
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                match client.get(&format!("/containers/{}/json", seg(id))).await {
                    Ok(v) => {
                        let running = v.pointer("/State/Running").and_then(Value::as_bool).unwrap_or(false);
                        let restarting = v.pointer("/State/Restarting").and_then(Value::as_bool).unwrap_or(false);
                        if !running && !restarting {
                            // Give the waiter a moment, it has the authoritative answer.
                            if let Ok(Ok(Ok(c))) = tokio::time::timeout(Duration::from_millis(500), &mut waiter).await {
                                return Ok(c as i32);
                            }
                            return Ok(v.pointer("/State/ExitCode").and_then(Value::as_i64).unwrap_or(0) as i32);
                        }
                    }
                    Err(e) if is_status(&e, 404) => {
                        return match tokio::time::timeout(Duration::from_secs(5), waiter).await {
                            Ok(Ok(Ok(c))) => Ok(c as i32),
                            Ok(Ok(Err(e))) => Err(e),
                            _ => Err(anyhow!("container {id} was removed before its exit code could be read")),
                        };
                    }
                    Err(_) => {}
                }
            }
        }
    }
}

/// What the user's side of an attached stream asked for.
struct UserSide<'a> {
    /// Forward our signals to the container (non-TTY).
    sig_proxy: bool,
    /// `--detach-keys`.
    detach_keys: Option<&'a str>,
}

/// Attach to `id` (hijacked), register a waiter, optionally start it, copy streams, return its exit code.
/// `Ok(Err(code))` carries a start failure already printed.
///
/// Typing the detach sequence `keys` (`--detach-keys`, checked already) leaves the container
/// running: `Ok(None)` then.
async fn attached(
    client: &Client,
    id: &str,
    streams: Streams,
    tty: bool,
    condition: &str,
    start: bool,
    user: UserSide<'_>,
) -> Result<Option<i32>> {
    let UserSide {
        sig_proxy,
        detach_keys: keys,
    } = user;
    let escape = super::stream::detach_keys(keys)?;
    let mut params = vec![
        ("stream", "1"),
        ("stdin", flag(streams.stdin)),
        ("stdout", flag(streams.stdout)),
        ("stderr", flag(streams.stderr)),
    ];
    if let Some(k) = keys {
        params.push(("detachKeys", k));
    }
    let q = query(&params);
    let (rd, wr) = client.hijack(&format!("/containers/{}/attach{q}", seg(id)), None).await?;
    let (waiter, registered) = spawn_wait(client, id, condition);
    let _ = tokio::time::timeout(Duration::from_millis(300), registered).await;
    if start {
        if let Err(e) = client.post(&format!("/containers/{}/start", seg(id)), None).await {
            waiter.abort();
            eprintln!("{e}");
            return Ok(Some(start_failure_code(&e.to_string())));
        }
    }
    let raw = if tty && streams.stdin { RawTerminal::enable() } else { None };
    let resizer = if tty {
        monitor_size(client, format!("/containers/{}", seg(id))).await
    } else {
        None
    };
    let signals = if !tty && sig_proxy { Some(proxy_signals(client, id)) } else { None };
    let r = pump(rd, wr, tty, streams.stdin, Some(escape)).await;
    drop(raw);
    if let Some(h) = resizer {
        h.abort();
    }
    let code = match r {
        Ok(super::stream::Ended::Output) => exit_code(client, id, waiter).await.map(Some),
        Ok(super::stream::Ended::Detached) => {
            waiter.abort();
            Ok(None)
        }
        Err(e) => Err(e),
    };
    if let Some(h) = signals {
        h.abort();
    }
    code
}

/// `berth run`.
pub async fn run(client: &Client, args: RunArgs) -> Result<i32> {
    let o = &args.create;
    let streams = o.streams(args.detach)?;
    if o.tty && streams.stdin && !stdin_is_tty() {
        bail!("the input device is not a TTY");
    }
    let body = o.body(streams)?;
    let id = create_container(client, o, &body).await?;
    let how = Started {
        streams,
        tty: o.tty,
        rm: o.rm,
        detach: args.detach,
        sig_proxy: args.sig_proxy,
        detach_keys: args.detach_keys.as_deref(),
    };
    start_created(client, &id, how).await
}

/// How a created container is started by `run` (and `compose run`).
pub struct Started<'a> {
    /// The streams to attach.
    pub streams: Streams,
    /// The container has a TTY.
    pub tty: bool,
    /// The daemon removes it when it exits (AutoRemove).
    pub rm: bool,
    /// Print the ID and return at once.
    pub detach: bool,
    /// Forward our signals (non-TTY).
    pub sig_proxy: bool,
    /// `--detach-keys`.
    pub detach_keys: Option<&'a str>,
}

/// Start a created container as `docker run` does: detached (print its ID), or attached to the
/// streams asked for until it exits; returns its exit code (or docker's start-failure code).
pub async fn start_created(client: &Client, id: &str, how: Started<'_>) -> Result<i32> {
    let start_path = format!("/containers/{}/start", seg(id));
    if how.detach {
        if let Err(e) = client.post(&start_path, None).await {
            eprintln!("{e}");
            return Ok(start_failure_code(&e.to_string()));
        }
        println!("{id}");
        return Ok(0);
    }
    let condition = if how.rm { "removed" } else { "next-exit" };
    if how.streams == Streams::default() {
        let (waiter, registered) = spawn_wait(client, id, condition);
        let _ = tokio::time::timeout(Duration::from_millis(300), registered).await;
        if let Err(e) = client.post(&start_path, None).await {
            eprintln!("{e}");
            return Ok(start_failure_code(&e.to_string()));
        }
        return exit_code(client, id, waiter).await;
    }
    // Detached by the user: the container goes on, as `docker run` leaves it (exit 0).
    Ok(attached(
        client,
        id,
        how.streams,
        how.tty,
        condition,
        true,
        UserSide {
            sig_proxy: how.sig_proxy,
            detach_keys: how.detach_keys,
        },
    )
    .await?
    .unwrap_or(0))
}

/// `berth start`.
pub async fn start(client: &Client, args: StartArgs) -> Result<i32> {
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let name = &args.containers[0];
        let v = client.get(&format!("/containers/{}/json", seg(name))).await?;
        let id = v.get("Id").and_then(Value::as_str).unwrap_or(name).to_string();
        let tty = v.pointer("/Config/Tty").and_then(Value::as_bool).unwrap_or(false);
        let open_stdin = v.pointer("/Config/OpenStdin").and_then(Value::as_bool).unwrap_or(false);
        let auto_remove = v.pointer("/HostConfig/AutoRemove").and_then(Value::as_bool).unwrap_or(false);
        let streams = Streams {
            stdin: args.interactive && open_stdin,
            stdout: true,
            stderr: true,
        };
        if tty && streams.stdin && !stdin_is_tty() {
            bail!("the input device is not a TTY");
        }
        let cond = if auto_remove { "removed" } else { "next-exit" };
        return Ok(attached(
            client,
            &id,
            streams,
            tty,
            cond,
            true,
            UserSide {
                sig_proxy: true,
                detach_keys: args.detach_keys.as_deref(),
            },
        )
        .await?
        .unwrap_or(0));
    }
    Ok(each(&args.containers, async |c: &str| {
        client.post(&format!("/containers/{}/start", seg(c)), None).await?;
        println!("{c}");
        Ok(())
    })
    .await)
}

/// `berth attach`.
pub async fn attach(client: &Client, args: AttachArgs) -> Result<i32> {
    let v = client.get(&format!("/containers/{}/json", seg(&args.container))).await?;
    let id = v.get("Id").and_then(Value::as_str).unwrap_or(&args.container).to_string();
    if !v.pointer("/State/Running").and_then(Value::as_bool).unwrap_or(false) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    if v.pointer("/State/Paused").and_then(Value::as_bool).unwrap_or(false) {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    let tty = v.pointer("/Config/Tty").and_then(Value::as_bool).unwrap_or(false);
    let open_stdin = v.pointer("/Config/OpenStdin").and_then(Value::as_bool).unwrap_or(false);
    let streams = Streams {
        stdin: open_stdin && !args.no_stdin,
        stdout: true,
        stderr: true,
    };
    if tty && streams.stdin && !stdin_is_tty() {
        bail!("the input device is not a TTY");
    }
    match attached(
        client,
        &id,
        streams,
        tty,
        "",
        false,
        UserSide {
            sig_proxy: args.sig_proxy,
            detach_keys: args.detach_keys.as_deref(),
        },
    )
    .await?
    {
        Some(code) => Ok(code),
        // As the docker CLI says it.
        None => bail!("read escape sequence"),
    }
}
