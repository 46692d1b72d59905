//! `berth volume create|ls|inspect|rm|prune`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{query, seg, Client};
use super::create::key_values;
use super::format::render;
use super::images::confirm;
use super::inspect::InspectArgs;
use super::ps::filters_json;
use super::units::human_size_prec;

/// `berth volume` subcommands.
#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(VolumeLsArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove unused local volumes
    Prune(VolumePruneArgs),
}

/// Flags of `volume create`.
#[derive(clap::Args, Debug)]
pub struct VolumeCreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local", value_name = "string")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// Volume name (generated if omitted)
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

/// Flags of `volume ls`.
#[derive(clap::Args, Debug)]
pub struct VolumeLsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

/// Flags of `volume inspect`.
#[derive(clap::Args, Debug)]
pub struct VolumeInspectArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    /// Volumes
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

/// Flags of `volume rm`.
#[derive(clap::Args, Debug)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Volumes
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

/// Flags of `volume prune`.
#[derive(clap::Args, Debug)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
}

const HEADERS: &[(&str, &str)] = &[
    ("Driver", "DRIVER"),
    ("Name", "VOLUME NAME"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Scope", "SCOPE"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("CreatedAt", "CREATED AT"),
];

fn context(v: &Value) -> Value {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let labels = v
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let usage = v.get("UsageData");
    json!({
        "Name": s("Name"),
        "Driver": s("Driver"),
        "Mountpoint": s("Mountpoint"),
        "Scope": s("Scope"),
        "CreatedAt": s("CreatedAt"),
        "Labels": labels,
        "Links": usage.and_then(|u| u.get("RefCount")).and_then(Value::as_i64).map_or("N/A".into(), |n| n.to_string()),
        "Size": usage.and_then(|u| u.get("Size")).and_then(Value::as_f64).filter(|s| *s >= 0.0).map_or("N/A".into(), |s| human_size_prec(s, 3)),
    })
}

/// `berth volume ...`.
pub async fn volume(client: &Client, cmd: VolumeCmd) -> Result<i32> {
    match cmd {
        VolumeCmd::Create(a) => {
            let body = json!({
                "Name": a.name.unwrap_or_default(),
                "Driver": a.driver,
                "Labels": key_values(&a.label),
                "DriverOpts": key_values(&a.opt),
            });
            let v = client.post("/volumes/create", Some(&body)).await?;
            println!("{}", v.get("Name").and_then(Value::as_str).unwrap_or(""));
            Ok(0)
        }
        VolumeCmd::Ls(a) => {
            let q = if a.filter.is_empty() {
                String::new()
            } else {
                query(&[("filters", filters_json(&a.filter)?)])
            };
            let v = client.get(&format!("/volumes{q}")).await?;
            for w in v
                .get("Warnings")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                eprintln!("WARNING: {w}");
            }
            let mut rows: Vec<Value> = v
                .get("Volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(context)
                .collect();
            rows.sort_by(|a, b| a["Name"].as_str().cmp(&b["Name"].as_str()));
            let format = match (&a.format, a.quiet) {
                (Some(f), _) if !f.is_empty() => f.clone(),
                (_, true) => "{{.Name}}".into(),
                _ => "table {{.Driver}}\t{{.Name}}".into(),
            };
            print!("{}", render(&format, &rows, HEADERS)?);
            Ok(0)
        }
        VolumeCmd::Inspect(a) => {
            let args = InspectArgs {
                format: a.format,
                kind: None,
                size: false,
                names: a.names,
            };
            super::inspect::inspect(client, args, Some("volume")).await
        }
        VolumeCmd::Rm(a) => {
            let q = query(&[("force", if a.force { "1" } else { "0" })]);
            Ok(super::each(&a.names, async |n: &str| {
                client.delete(&format!("/volumes/{}{q}", seg(n))).await?;
                println!("{n}");
                Ok(())
            })
            .await)
        }
        VolumeCmd::Prune(a) => {
            if !a.force && !confirm("WARNING! This will remove anonymous local volumes not used by at least one container.") {
                return Ok(0);
            }
            let mut filters = a.filter.clone();
            if a.all {
                filters.push("all=true".into());
            }
            let q = if filters.is_empty() {
                String::new()
            } else {
                query(&[("filters", filters_json(&filters)?)])
            };
            let v = client.post(&format!("/volumes/prune{q}"), None).await?;
            let deleted: Vec<&str> = v
                .get("VolumesDeleted")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !deleted.is_empty() {
                println!("Deleted Volumes:");
                for d in deleted {
                    println!("{d}");
                }
                println!();
            }
            let space = v.get("SpaceReclaimed").and_then(Value::as_f64).unwrap_or(0.0);
            println!("Total reclaimed space: {}", human_size_prec(space, 3));
            Ok(0)
        }
    }
}
