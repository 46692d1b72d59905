//! `berth ps`: list containers.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::client::{query, Client};
use super::format::render;
use super::units::{ago, ellipsis, go_time, human_size_prec};

/// Flags of `berth ps`.
#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (KEY=VALUE, repeatable: status, name, id, label, ancestor, exited...)
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a Go template ('table' prefix prints a header; '{{json .}}' prints JSON lines)
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long, value_name = "int", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
}

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// Column titles for `table` formats.
pub const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("Status", "STATUS"),
    ("State", "STATE"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// Parse repeated `--filter k=v` into the API's `filters` JSON (`{"k":["v",...]}`).
pub fn filters_json(filters: &[String]) -> Result<String> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        m.entry(k.trim().to_lowercase()).or_default().push(v.to_string());
    }
    Ok(serde_json::to_string(&m)?)
}

/// docker's port list: "0.0.0.0:8080->80/tcp, 443/tcp".
fn ports(v: &Value) -> String {
    let Some(a) = v.as_array() else {
        return String::new();
    };
    let mut out: Vec<String> = a
        .iter()
        .map(|p| {
            let private = p.get("PrivatePort").and_then(Value::as_u64).unwrap_or(0);
            let ty = p.get("Type").and_then(Value::as_str).unwrap_or("tcp");
            match p.get("PublicPort").and_then(Value::as_u64) {
                Some(public) if public != 0 => {
                    let ip = p.get("IP").and_then(Value::as_str).unwrap_or("");
                    let ip = if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() };
                    format!("{ip}:{public}->{private}/{ty}")
                }
                _ => format!("{private}/{ty}"),
            }
        })
        .collect();
    out.dedup();
    out.join(", ")
}

fn labels_str(v: &Value) -> String {
    match v.as_object() {
        Some(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
        None => String::new(),
    }
}

/// docker's formatting context for one container of `GET /containers/json`.
pub fn context(c: &Value, trunc: bool) -> Value {
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let id = s("Id");
    let names: Vec<String> = c
        .get("Names")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|n| n.trim_start_matches('/').to_string())
                .collect()
        })
        .unwrap_or_default();
    let names: Vec<String> = if trunc {
        names.into_iter().filter(|n| !n.contains('/')).collect()
    } else {
        names
    };
    let command = s("Command");
    let command = if trunc { ellipsis(&command, 20) } else { command };
    let mut image = s("Image");
    if trunc && image.starts_with("sha256:") {
        image = super::units::short_id(&image);
    }
    let created = c.get("Created").and_then(Value::as_i64).unwrap_or(0);
    let size = match (c.get("SizeRw").and_then(Value::as_f64), c.get("SizeRootFs").and_then(Value::as_f64)) {
        (Some(rw), Some(root)) => format!("{} (virtual {})", human_size_prec(rw, 3), human_size_prec(root, 3)),
        (Some(rw), None) => human_size_prec(rw, 3),
        _ => "0B".into(),
    };
    let mounts: Vec<String> = c
        .get("Mounts")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|m| {
                    let n = m.get("Name").and_then(Value::as_str).filter(|n| !n.is_empty());
                    let n = n.or_else(|| m.get("Source").and_then(Value::as_str)).unwrap_or("");
                    if trunc {
                        ellipsis(n, 15)
                    } else {
                        n.to_string()
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let networks: Vec<String> = c
        .pointer("/NetworkSettings/Networks")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let local_volumes = c
        .get("Mounts")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|m| m.get("Driver").and_then(Value::as_str) == Some("local"))
                .count()
        })
        .unwrap_or(0);
    json!({
        "ID": if trunc { super::units::short_id(&id) } else { id },
        "Image": image,
        "Command": format!("{command:?}"),
        "CreatedAt": go_time(created),
        "RunningFor": ago(created),
        "Ports": ports(c.get("Ports").unwrap_or(&Value::Null)),
        "Status": s("Status"),
        "State": s("State"),
        "Size": size,
        "Names": names.join(","),
        "Labels": labels_str(c.get("Labels").unwrap_or(&Value::Null)),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "LocalVolumes": local_volumes.to_string(),
    })
}

/// `berth ps`.
pub async fn ps(client: &Client, a: PsArgs) -> Result<i32> {
    let mut q: Vec<(&str, String)> = Vec::new();
    if a.all || a.latest || a.last > 0 {
        q.push(("all", "1".into()));
    }
    if a.latest {
        q.push(("limit", "1".into()));
    } else if a.last > 0 {
        q.push(("limit", a.last.to_string()));
    }
    if a.size {
        q.push(("size", "1".into()));
    }
    if !a.filter.is_empty() {
        q.push(("filters", filters_json(&a.filter)?));
    }
    let list = client.get(&format!("/containers/json{}", query(&q))).await?;
    let rows: Vec<Value> = list
        .as_array()
        .map(|l| l.iter().map(|c| context(c, !a.no_trunc)).collect())
        .unwrap_or_default();
    let format = match (&a.format, a.quiet) {
        (Some(f), _) if !f.is_empty() => f.clone(),
        (_, true) => "{{.ID}}".to_string(),
        _ if a.size => format!("{DEFAULT_FORMAT}\t{{{{.Size}}}}"),
        _ => DEFAULT_FORMAT.to_string(),
    };
    print!("{}", render(&format, &rows, HEADERS)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_context() {
        let c = json!({"Id": "0123456789abcdef0123", "Names": ["/web"], "Image": "busybox", "Command": "sh -c 'while true; do sleep 1; done'",
                       "Created": 0, "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"}],
                       "Labels": {"a": "b"}, "State": "running", "Status": "Up 5 seconds"});
        let v = context(&c, true);
        assert_eq!(v["ID"], "0123456789ab");
        assert_eq!(v["Command"], "\"sh -c 'while true; …\"");
        assert_eq!(v["Names"], "web");
        assert_eq!(v["Ports"], "0.0.0.0:8080->80/tcp");
        assert_eq!(v["Labels"], "a=b");
        let full = context(&c, false);
        assert_eq!(full["ID"], "0123456789abcdef0123");
    }

    #[test]
    fn filters() {
        let f = filters_json(&["status=exited".into(), "label=a=b".into(), "status=created".into()]).unwrap();
        assert_eq!(f, r#"{"label":["a=b"],"status":["exited","created"]}"#);
        assert!(filters_json(&["nope".into()]).is_err());
    }
}
