//! `berth compose logs` and the attached mode of `up`: every container's output, one line at a
//! time, prefixed with its service and number (`web-1  | ...`), coloured on a terminal.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use anyhow::Result;
use compose::Loaded;
use hyper::Method;
use serde_json::Value;
use tokio::sync::mpsc;

use super::super::client::{empty, for_each_chunk, query, seg, Client};
use super::super::stream::Demux;
use super::{containers, only, Global};

/// Flags of `berth compose logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs for each container ("all" for everything)
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Produce monochrome output
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long = "no-log-prefix")]
    pub no_log_prefix: bool,
    /// Show logs since timestamp or relative duration (e.g. 42m)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth compose logs`.
pub async fn logs(client: &Client, g: &Global<'_>, a: &LogsArgs) -> Result<i32> {
    let project = match g.project_name_only() {
        Some(p) => p,
        None => g.load(&[])?.project.name,
    };
    let list = only(containers(client, &project, true, None).await?, &a.services);
    let mut q: Vec<(&str, String)> = vec![
        ("stdout", "1".into()),
        ("stderr", "1".into()),
        ("follow", if a.follow { "1" } else { "0" }.into()),
        ("tail", a.tail.clone()),
        ("timestamps", if a.timestamps { "1" } else { "0" }.into()),
    ];
    if let Some(s) = &a.since {
        q.push(("since", super::super::units::parse_timestamp(s, chrono::Utc::now())?));
    }
    let targets: Vec<(String, String)> = list.iter().map(|c| (c.id.clone(), prefix_of(&project, &c.name))).collect();
    let color = !a.no_color && std::io::stdout().is_terminal();
    stream(client, &targets, &query(&q), color, !a.no_log_prefix, false).await?;
    Ok(0)
}

/// `web-1` for `proj-web-1` (the container name without the project), as compose prefixes.
fn prefix_of(project: &str, name: &str) -> String {
    name.strip_prefix(&format!("{project}-")).unwrap_or(name).to_string()
}

const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// Print the logs of `targets` (id, prefix) until every stream ends, or until the first ends
/// when `first_ends`; returns the index of the first stream that ended.
async fn stream(
    client: &Client,
    targets: &[(String, String)],
    q: &str,
    color: bool,
    prefix: bool,
    first_ends: bool,
) -> Result<Option<usize>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Option<Vec<u8>>)>();
    let width = targets.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
    for (i, (id, _)) in targets.iter().enumerate() {
        let c = client.clone();
        let tx = tx.clone();
        let path = format!("/containers/{}/logs{q}", seg(id));
        let info_path = format!("/containers/{}/json", seg(id));
        tokio::spawn(async move {
            let tty = c
                .get(&info_path)
                .await
                .ok()
                .and_then(|v| v.pointer("/Config/Tty").and_then(Value::as_bool))
                .unwrap_or(false);
            if let Ok(resp) = c.send(Method::GET, &path, empty(), None, false).await {
                let mut demux = Demux::default();
                let mut line: Vec<u8> = Vec::new();
                let _ = for_each_chunk(resp.into_body(), |d| {
                    let payloads: Vec<Vec<u8>> = if tty {
                        vec![d.to_vec()]
                    } else {
                        demux.feed(d).into_iter().map(|(_, p)| p).collect()
                    };
                    for p in payloads {
                        for b in p {
                            line.push(b);
                            if b == b'\n' {
                                let _ = tx.send((i, Some(std::mem::take(&mut line))));
                            }
                        }
                    }
                    Ok(())
                })
                .await;
                if !line.is_empty() {
                    line.push(b'\n');
                    let _ = tx.send((i, Some(line)));
                }
            }
            let _ = tx.send((i, None));
        });
    }
    drop(tx);
    let mut open = targets.len();
    let mut first = None;
    let mut out = std::io::stdout();
    while open > 0 {
        let Some((i, msg)) = rx.recv().await else { break };
        match msg {
            Some(line) => {
                if prefix {
                    let p = &targets[i].1;
                    let pre = if color {
                        format!("\x1b[{}m{p:width$}  |\x1b[0m ", COLORS[i % COLORS.len()])
                    } else {
                        format!("{p:width$}  | ")
                    };
                    let _ = out.write_all(pre.as_bytes());
                }
                if out.write_all(&line).is_err() {
                    return Ok(first);
                }
                let _ = out.flush();
            }
            None => {
                open -= 1;
                first.get_or_insert(i);
                if first_ends {
                    return Ok(first);
                }
            }
        }
    }
    Ok(first)
}

/// `up` without `-d`: follow every container's output until all have stopped; Ctrl-C (or, with
/// `abort`, the first container to stop) stops them all, as Docker Compose does.
pub async fn attach_until_stopped(client: &Client, l: &Loaded, started: &BTreeMap<String, Vec<String>>, abort: bool) -> Result<i32> {
    let mut targets = Vec::new();
    for ids in started.values() {
        for id in ids {
            let info = client.get(&format!("/containers/{}/json", seg(id))).await?;
            let name = info["Name"].as_str().unwrap_or(id).trim_start_matches('/').to_string();
            targets.push((id.clone(), prefix_of(&l.project.name, &name)));
        }
    }
    let color = std::io::stdout().is_terminal();
    let q = query(&[("stdout", "1"), ("stderr", "1"), ("follow", "1"), ("tail", "all")]);
    eprintln!(
        "Attaching to {}",
        targets.iter().map(|t| t.1.as_str()).collect::<Vec<_>>().join(", ")
    );
    let mut code = 0;
    tokio::select! {
        r = stream(client, &targets, &q, color, true, abort) => {
            if let Some(i) = r? {
                if abort {
                    eprintln!("{} exited", targets[i].1);
                }
            }
        }
        _ = tokio::signal::ctrl_c() => {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            code = 130;
        }
    }
    if code != 0 || abort {
        let mut tasks = tokio::task::JoinSet::new();
        for (id, p) in targets {
            let c = client.clone();
            tasks.spawn(async move {
                let _ = c.post(&format!("/containers/{}/stop", seg(&id)), None).await;
                eprintln!(" Container {p}  Stopped");
            });
        }
        while tasks.join_next().await.is_some() {}
    }
    Ok(code)
}
