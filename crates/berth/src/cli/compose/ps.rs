//! `berth compose ps`, `ls` and `config`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use compose::plan::labels;
use serde_json::{json, Value};

use super::super::client::{query, Client};
use super::super::format::render;
use super::{containers, only, Global};

/// Flags of `berth compose ps`.
#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Show all stopped containers too
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Display services
    #[arg(long)]
    pub services: bool,
    /// Filter by status: paused, restarting, removing, running, dead, created, exited
    #[arg(long, value_name = "stringArray")]
    pub status: Vec<String>,
    /// Format: table, json, or a Go template
    #[arg(long, value_name = "string", default_value = "table")]
    pub format: String,
    /// Services
    #[arg(value_name = "SERVICE")]
    pub names: Vec<String>,
}

/// Flags of `berth compose ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display project names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Format: table or json
    #[arg(long, value_name = "string", default_value = "table")]
    pub format: String,
}

/// Flags of `berth compose config`.
#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    /// Format: yaml or json
    #[arg(long, value_name = "string", default_value = "yaml")]
    pub format: String,
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the profile names, one per line
    #[arg(long)]
    pub profiles: bool,
    /// Only validate the configuration, don't print anything
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `berth compose ps`.
pub async fn ps(client: &Client, g: &Global<'_>, a: &PsArgs) -> Result<i32> {
    let project = match g.project_name_only() {
        Some(p) => p,
        None => g.load(&[])?.project.name,
    };
    let all = a.all || !a.status.is_empty();
    let list = only(containers(client, &project, all, Some(false)).await?, &a.names);
    let list: Vec<_> = list
        .into_iter()
        .filter(|c| a.status.is_empty() || a.status.contains(&c.state))
        .collect();
    if a.services {
        let mut seen = Vec::new();
        for c in &list {
            if !seen.contains(&c.service) {
                println!("{}", c.service);
                seen.push(c.service.clone());
            }
        }
        return Ok(0);
    }
    if a.quiet {
        for c in &list {
            println!("{}", c.id);
        }
        return Ok(0);
    }
    let rows: Vec<Value> = list
        .iter()
        .map(|c| {
            let mut row = super::super::ps::context(&c.raw, true);
            row["Name"] = json!(c.name);
            row["Service"] = json!(c.service);
            row["Project"] = json!(project);
            row["Publishers"] = c.raw["Ports"].clone();
            row["ExitCode"] = json!(exit_code(&c.raw));
            row
        })
        .collect();
    match a.format.as_str() {
        "json" => {
            for r in &rows {
                println!("{r}");
            }
        }
        f => {
            let f = if f == "table" {
                "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"
            } else {
                f
            };
            let headers = [
                ("Name", "NAME"),
                ("Image", "IMAGE"),
                ("Command", "COMMAND"),
                ("Service", "SERVICE"),
                ("RunningFor", "CREATED"),
                ("Status", "STATUS"),
                ("Ports", "PORTS"),
                ("ID", "CONTAINER ID"),
                ("State", "STATE"),
                ("Project", "PROJECT"),
                ("ExitCode", "EXIT CODE"),
                ("Names", "NAMES"),
                ("Labels", "LABELS"),
                ("CreatedAt", "CREATED AT"),
                ("Networks", "NETWORKS"),
                ("Mounts", "MOUNTS"),
                ("Size", "SIZE"),
                ("LocalVolumes", "LOCAL VOLUMES"),
                ("Publishers", "PUBLISHERS"),
            ];
            print!("{}", render(f, &rows, &headers)?);
        }
    }
    Ok(0)
}

/// The exit code from a list entry's status ("Exited (3) 2 seconds ago").
fn exit_code(c: &Value) -> i64 {
    c["Status"]
        .as_str()
        .and_then(|s| s.strip_prefix("Exited ("))
        .and_then(|s| s.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `berth compose ls`: projects from the labels of all containers.
pub async fn ls(client: &Client, a: &LsArgs) -> Result<i32> {
    let filters = json!({"label": [labels::PROJECT]}).to_string();
    let list = client
        .get(&format!(
            "/containers/json{}",
            query(&[("all", "1"), ("filters", filters.as_str())])
        ))
        .await?;
    // project -> (state -> count, config files)
    let mut projects: BTreeMap<String, (BTreeMap<String, usize>, String)> = BTreeMap::new();
    for c in list.as_array().into_iter().flatten() {
        let label = |k: &str| c["Labels"][k].as_str().unwrap_or("").to_string();
        let e = projects.entry(label(labels::PROJECT)).or_default();
        *e.0.entry(c["State"].as_str().unwrap_or("").to_string()).or_default() += 1;
        if e.1.is_empty() {
            e.1 = label(labels::CONFIG_FILES);
        }
    }
    let rows: Vec<Value> = projects
        .into_iter()
        .filter(|(_, (states, _))| a.all || states.contains_key("running"))
        .map(|(name, (states, files))| {
            let status: Vec<String> = states.iter().map(|(s, n)| format!("{s}({n})")).collect();
            json!({"Name": name, "Status": status.join(", "), "ConfigFiles": files})
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["Name"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => println!("{}", Value::Array(rows)),
        "table" => {
            let headers = [("Name", "NAME"), ("Status", "STATUS"), ("ConfigFiles", "CONFIG FILES")];
            print!("{}", render("table {{.Name}}\t{{.Status}}\t{{.ConfigFiles}}", &rows, &headers)?);
        }
        f => bail!("unsupported --format {f:?}: use table or json"),
    }
    Ok(0)
}

/// `berth compose config`: the project after interpolation, merge and defaults.
pub fn config(g: &Global<'_>, a: &ConfigArgs) -> Result<i32> {
    let l = g.load(&[])?;
    let p = &l.project;
    if a.quiet {
        return Ok(0);
    }
    if a.services {
        for s in p.services.keys() {
            println!("{s}");
        }
        return Ok(0);
    }
    if a.volumes {
        for v in p.volumes.keys() {
            println!("{v}");
        }
        return Ok(0);
    }
    if a.profiles {
        let mut all: Vec<&String> = p.services.values().flat_map(|s| &s.profiles).collect();
        all.sort();
        all.dedup();
        for x in all {
            println!("{x}");
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(p)?),
        "yaml" => print!("{}", serde_saphyr::to_string(p)?),
        f => bail!("unsupported --format {f:?}: use yaml or json"),
    }
    Ok(0)
}
