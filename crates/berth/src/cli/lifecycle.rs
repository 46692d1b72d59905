//! Container lifecycle commands: stop, kill, restart, pause, unpause, rm, wait, rename, update.

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::client::{query, seg, Client};
use super::create::parse_restart;
use super::each;
use super::units::{parse_cpus, parse_size};

/// Flags of `berth stop` / `berth restart`.
#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", value_name = "int", allow_hyphen_values = true)]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string")]
    pub signal: Option<String>,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Flags of `berth kill`.
#[derive(clap::Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, value_name = "string", default_value = "KILL")]
    pub signal: String,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// One or more containers.
#[derive(clap::Args, Debug)]
pub struct Containers {
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Flags of `berth rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    pub link: bool,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Flags of `berth rename`.
#[derive(clap::Args, Debug)]
pub struct RenameArgs {
    /// Container to rename
    pub container: String,
    /// New name
    pub new_name: String,
}

/// Flags of `berth update`.
#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit (e.g. 64m)
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    /// Containers
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

fn stop_query(a: &StopArgs) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(t) = a.time {
        q.push(("t", t.to_string()));
    }
    if let Some(s) = &a.signal {
        q.push(("signal", s.clone()));
    }
    query(&q)
}

/// `berth stop`.
pub async fn stop(client: &Client, a: StopArgs) -> Result<i32> {
    let q = stop_query(&a);
    Ok(each(&a.containers, async |c: &str| {
        client.post(&format!("/containers/{}/stop{q}", seg(c)), None).await?;
        println!("{c}");
        Ok(())
    })
    .await)
}

/// `berth restart`.
pub async fn restart(client: &Client, a: StopArgs) -> Result<i32> {
    let q = stop_query(&a);
    Ok(each(&a.containers, async |c: &str| {
        client.post(&format!("/containers/{}/restart{q}", seg(c)), None).await?;
        println!("{c}");
        Ok(())
    })
    .await)
}

/// `berth kill`.
pub async fn kill(client: &Client, a: KillArgs) -> Result<i32> {
    let q = query(&[("signal", a.signal.as_str())]);
    Ok(each(&a.containers, async |c: &str| {
        client.post(&format!("/containers/{}/kill{q}", seg(c)), None).await?;
        println!("{c}");
        Ok(())
    })
    .await)
}

/// `berth pause` / `berth unpause` (`op` is "pause" or "unpause").
pub async fn pause(client: &Client, a: Containers, op: &str) -> Result<i32> {
    Ok(each(&a.containers, async |c: &str| {
        client.post(&format!("/containers/{}/{op}", seg(c)), None).await?;
        println!("{c}");
        Ok(())
    })
    .await)
}

/// `berth rm`.
pub async fn rm(client: &Client, a: RmArgs) -> Result<i32> {
    let q = query(&[("force", if a.force { "1" } else { "0" }), ("v", if a.volumes { "1" } else { "0" })]);
    Ok(each(&a.containers, async |c: &str| {
        client.delete(&format!("/containers/{}{q}", seg(c))).await?;
        println!("{c}");
        Ok(())
    })
    .await)
}

/// `berth wait`: print each container's exit code.
pub async fn wait(client: &Client, a: Containers) -> Result<i32> {
    Ok(each(&a.containers, async |c: &str| {
        let v = client.post(&format!("/containers/{}/wait", seg(c)), None).await?;
        if let Some(msg) = v.pointer("/Error/Message").and_then(Value::as_str) {
            if !msg.is_empty() {
                bail!("{msg}");
            }
        }
        println!("{}", v.get("StatusCode").and_then(Value::as_i64).unwrap_or(0));
        Ok(())
    })
    .await)
}

/// `berth rename`.
pub async fn rename(client: &Client, a: RenameArgs) -> Result<i32> {
    let name = a.new_name.trim();
    if name.is_empty() {
        bail!("Error: Neither old nor new names may be empty");
    }
    client
        .post(
            &format!("/containers/{}/rename{}", seg(&a.container), query(&[("name", name)])),
            None,
        )
        .await?;
    Ok(0)
}

/// `berth update`.
pub async fn update(client: &Client, a: UpdateArgs) -> Result<i32> {
    let mut body = Map::new();
    if let Some(m) = &a.memory {
        body.insert("Memory".into(), json!(parse_size(m)?));
    }
    if let Some(m) = &a.memory_swap {
        body.insert("MemorySwap".into(), json!(parse_size(m)?));
    }
    if let Some(c) = &a.cpus {
        body.insert("NanoCpus".into(), json!(parse_cpus(c)?));
    }
    if let Some(s) = a.cpu_shares {
        body.insert("CpuShares".into(), json!(s));
    }
    if let Some(p) = a.pids_limit {
        body.insert("PidsLimit".into(), json!(p));
    }
    if let Some(r) = &a.restart {
        body.insert("RestartPolicy".into(), parse_restart(r)?);
    }
    if body.is_empty() {
        bail!("you must provide one or more flags when using this command");
    }
    let body = Value::Object(body);
    Ok(each(&a.containers, async |c: &str| {
        let v = client.post(&format!("/containers/{}/update", seg(c)), Some(&body)).await?;
        if let Some(w) = v.get("Warnings").and_then(Value::as_array) {
            for w in w.iter().filter_map(Value::as_str) {
                eprintln!("WARNING: {w}");
            }
        }
        println!("{c}");
        Ok(())
    })
    .await)
}
