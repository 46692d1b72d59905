//! `berth inspect`: low-level JSON of containers, images and volumes.

use anyhow::{bail, Result};
use hyper::Method;
use serde_json::Value;

use super::client::{empty, is_status, seg, Client};
use super::format::{indent_json, prepare, Template};

/// Flags of `berth inspect` (and `container/image/volume inspect`).
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template (e.g. '{{.State.ExitCode}}', '{{json .Config}}')
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    /// Return JSON for specified type (container, image, volume)
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Names or IDs
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

fn path_for(kind: &str, name: &str, size: bool) -> String {
    match kind {
        "container" => format!("/containers/{}/json{}", seg(name), if size { "?size=1" } else { "" }),
        "image" => format!("/images/{}/json", seg(name)),
        _ => format!("/volumes/{}", seg(name)),
    }
}

async fn fetch_raw(client: &Client, kind: &str, name: &str, size: bool) -> Result<String> {
    let resp = client.send(Method::GET, &path_for(kind, name, size), empty(), None, false).await?;
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Inspect `name` as `kinds` in order; 404s fall through to the next kind.
async fn find(client: &Client, kinds: &[&str], name: &str, size: bool) -> Result<Option<String>> {
    for k in kinds {
        match fetch_raw(client, k, name, size).await {
            Ok(raw) => return Ok(Some(raw)),
            Err(e) if is_status(&e, 404) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// `berth inspect`; `kind` fixes the type for `container inspect` etc.
pub async fn inspect(client: &Client, a: InspectArgs, kind: Option<&str>) -> Result<i32> {
    let kind = kind.map(String::from).or(a.kind.clone());
    let kinds: Vec<&str> = match kind.as_deref() {
        None | Some("") => vec!["container", "image", "volume"],
        Some(k @ ("container" | "image" | "volume")) => vec![k],
        Some(k) => bail!("{k:?} is not a valid value for --type"),
    };
    let tmpl = match &a.format {
        Some(f) if !f.is_empty() => Some(Template::parse(&prepare(f).1)?),
        _ => None,
    };
    let mut raws = Vec::new();
    let mut code = 0;
    for name in &a.names {
        match find(client, &kinds, name, a.size).await {
            Ok(Some(raw)) => raws.push(raw),
            Ok(None) => {
                code = 1;
                match kinds.as_slice() {
                    [one] => eprintln!("Error: No such {one}: {name}"),
                    _ => eprintln!("Error: No such object: {name}"),
                }
            }
            Err(e) => {
                code = 1;
                eprintln!("{e}");
            }
        }
    }
    match tmpl {
        Some(t) => {
            for raw in &raws {
                let v: Value = serde_json::from_str(raw)?;
                match t.execute(&v) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("{e}");
                        code = 1;
                    }
                }
            }
        }
        None => {
            let body: Vec<&str> = raws.iter().map(|r| r.trim()).collect();
            println!("{}", indent_json(&format!("[{}]", body.join(","))));
        }
    }
    Ok(code)
}
