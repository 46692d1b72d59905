//! `berth stats --no-stream` and `berth top`.

use anyhow::Result;
use serde_json::{json, Value};

use super::client::{query, seg, Client};
use super::format::{render, tabwrite};
use super::units::{bytes_size, human_size_prec, short_id};

/// Flags of `berth stats`.
#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result (the only mode supported)
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Containers (default: all running)
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Flags of `berth top`.
#[derive(clap::Args, Debug)]
pub struct TopArgs {
    /// Container
    pub container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ps OPTIONS")]
    pub ps_args: Vec<String>,
}

const HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

fn f(v: &Value, p: &str) -> f64 {
    v.pointer(p).and_then(Value::as_f64).unwrap_or(0.0)
}

/// docker's stats row from one `GET /containers/{id}/stats?stream=false` answer.
pub fn stats_row(container: &str, s: &Value, trunc: bool) -> Value {
    let cpu_delta = f(s, "/cpu_stats/cpu_usage/total_usage") - f(s, "/precpu_stats/cpu_usage/total_usage");
    let sys_delta = f(s, "/cpu_stats/system_cpu_usage") - f(s, "/precpu_stats/system_cpu_usage");
    let mut cpus = f(s, "/cpu_stats/online_cpus");
    if cpus == 0.0 {
        cpus = s
            .pointer("/cpu_stats/cpu_usage/percpu_usage")
            .and_then(Value::as_array)
            .map_or(0, |a| a.len()) as f64;
    }
    let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    };
    let usage = f(s, "/memory_stats/usage");
    // docker subtracts the page cache: cgroup v2 inactive_file, v1 total_inactive_file.
    let cache = s
        .pointer("/memory_stats/stats/inactive_file")
        .or_else(|| s.pointer("/memory_stats/stats/total_inactive_file"))
        .and_then(Value::as_f64)
        .filter(|c| *c < usage)
        .unwrap_or(0.0);
    let mem = usage - cache;
    let limit = f(s, "/memory_stats/limit");
    let mem_perc = if limit > 0.0 { mem / limit * 100.0 } else { 0.0 };
    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(nets) = s.get("networks").and_then(Value::as_object) {
        for n in nets.values() {
            rx += f(n, "/rx_bytes");
            tx += f(n, "/tx_bytes");
        }
    }
    let (mut read, mut write) = (0.0, 0.0);
    for e in s
        .pointer("/blkio_stats/io_service_bytes_recursive")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match e.get("op").and_then(Value::as_str).map(str::to_lowercase).as_deref() {
            Some("read") => read += f(e, "/value"),
            Some("write") => write += f(e, "/value"),
            _ => {}
        }
    }
    let id = s.get("id").and_then(Value::as_str).unwrap_or(container);
    let name = s.get("name").and_then(Value::as_str).unwrap_or("").trim_start_matches('/');
    json!({
        "Container": container,
        "ID": if trunc { short_id(id) } else { id.to_string() },
        "Name": name,
        "CPUPerc": format!("{cpu:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(mem), bytes_size(limit)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", human_size_prec(rx, 3), human_size_prec(tx, 3)),
        "BlockIO": format!("{} / {}", human_size_prec(read, 3), human_size_prec(write, 3)),
        "PIDs": format!("{}", s.pointer("/pids_stats/current").and_then(Value::as_u64).unwrap_or(0)),
    })
}

/// `berth stats` (one snapshot; streaming is not implemented, so `--no-stream` is implied).
pub async fn stats(client: &Client, a: StatsArgs) -> Result<i32> {
    let mut names = a.containers.clone();
    if names.is_empty() {
        let q = if a.all { "?all=1" } else { "" };
        let list = client.get(&format!("/containers/json{q}")).await?;
        names = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("Id").and_then(Value::as_str).map(String::from))
            .collect();
    }
    let mut rows = Vec::new();
    let mut code = 0;
    for n in &names {
        match client
            .get(&format!("/containers/{}/stats{}", seg(n), query(&[("stream", "false")])))
            .await
        {
            Ok(s) => rows.push(stats_row(n, &s, !a.no_trunc)),
            Err(e) => {
                eprintln!("{e}");
                code = 1;
            }
        }
    }
    let format = match &a.format {
        Some(f) if !f.is_empty() => f.clone(),
        _ => "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}".into(),
    };
    print!("{}", render(&format, &rows, HEADERS)?);
    Ok(code)
}

/// `berth top`.
pub async fn top(client: &Client, a: TopArgs) -> Result<i32> {
    let q = if a.ps_args.is_empty() {
        String::new()
    } else {
        query(&[("ps_args", a.ps_args.join(" "))])
    };
    let v = client.get(&format!("/containers/{}/top{q}", seg(&a.container))).await?;
    let mut text = String::new();
    let titles: Vec<&str> = v
        .get("Titles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    text.push_str(&titles.join("\t"));
    text.push('\n');
    for p in v.get("Processes").and_then(Value::as_array).into_iter().flatten() {
        let cells: Vec<&str> = p.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    print!("{}", tabwrite(&text, 20, 3));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_math() {
        let s = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 200_000_000u64}, "system_cpu_usage": 2_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100_000_000u64}, "system_cpu_usage": 1_000_000_000u64},
            "memory_stats": {"usage": 10_485_760u64, "limit": 104_857_600u64, "stats": {"inactive_file": 2_621_440u64}},
            "pids_stats": {"current": 3}
        });
        let r = stats_row("web", &s, true);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["CPUPerc"], "20.00%");
        assert_eq!(r["MemUsage"], "7.5MiB / 100MiB");
        assert_eq!(r["MemPerc"], "7.50%");
        assert_eq!(r["PIDs"], "3");
        assert_eq!(r["NetIO"], "0B / 0B");
    }
}
