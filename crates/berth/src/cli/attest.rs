//! `berth image provenance` and `berth image diff`: what went into an image, and what changed
//! between two.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde_json::Value;

use super::client::{query, seg, Client};
use super::units::human_size_prec;

/// Flags of `image provenance`.
#[derive(clap::Args, Debug)]
pub struct ProvenanceArgs {
    /// Print the SBOM (SPDX 2.3 JSON) instead of the provenance
    #[arg(long)]
    pub sbom: bool,
    /// Output: "summary" (readable), or "json" (the in-toto statement, or with --sbom the SPDX
    /// document, exactly as attached)
    #[arg(long, value_name = "string", default_value = "summary", value_parser = ["summary", "json"])]
    pub format: String,
    /// Image
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// Flags of `image diff`.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// Output: "summary" (readable) or "json"
    #[arg(long, value_name = "string", default_value = "summary", value_parser = ["summary", "json"])]
    pub format: String,
    /// Show every changed file (the summary shows the first 50)
    #[arg(long)]
    pub all: bool,
    /// The older image
    #[arg(value_name = "A")]
    pub a: String,
    /// The newer image
    #[arg(value_name = "B")]
    pub b: String,
}

const SPDX: &str = "application/spdx+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

pub async fn provenance(client: &Client, a: ProvenanceArgs) -> Result<i32> {
    let want = if a.sbom { SPDX } else { IN_TOTO };
    let list = client
        .get(&format!("/images/{}/referrers{}", seg(&a.image), query(&[("artifactType", want)])))
        .await?;
    let Some(doc) = list.as_array().and_then(|l| l.last()).map(|x| x["content"].clone()) else {
        bail!(
            "image {} carries no {}: only images built by Berth (or pulled with theirs) have one",
            a.image,
            if a.sbom { "SBOM" } else { "provenance" }
        );
    };
    if a.format == "json" {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    if a.sbom {
        print_sbom(&doc);
        return Ok(0);
    }
    let p = &doc["predicate"];
    let def = &p["buildDefinition"];
    let ext = &def["externalParameters"];
    let subjects: Vec<&str> = doc["subject"].as_array().into_iter().flatten().map(|s| text(&s["name"])).collect();
    let digest = text(&doc["subject"][0]["digest"]["sha256"]);
    println!("Image:         {} (manifest sha256:{digest})", subjects.join(", "));
    println!("Builder:       {}", text(&p["runDetails"]["builder"]["id"]));
    if let Some(t) = p["runDetails"]["metadata"]["finishedOn"].as_str() {
        println!("Created:       {t}");
    }
    println!(
        "Dockerfile:    {} (sha256:{})",
        text(&ext["dockerfile"]["path"]),
        text(&ext["dockerfile"]["digest"]["sha256"])
    );
    if let Some(c) = ext["context"]["digest"]["sha256"].as_str() {
        println!("Context:       sha256:{c}");
    }
    let deps: Vec<&Value> = def["resolvedDependencies"].as_array().into_iter().flatten().collect();
    let bases: Vec<&&Value> = deps.iter().filter(|d| d["annotations"]["role"] == "base-image").collect();
    if bases.is_empty() {
        println!("Base images:   none (FROM scratch)");
    }
    for (i, b) in bases.iter().enumerate() {
        println!(
            "{}{} -> {} (sha256:{})",
            if i == 0 { "Base images:   " } else { "               " },
            text(&b["name"]),
            text(&b["uri"]),
            text(&b["digest"]["sha256"])
        );
    }
    let args: BTreeMap<String, Value> = ext["buildArgs"]
        .as_object()
        .map(|o| o.clone().into_iter().collect())
        .unwrap_or_default();
    if !args.is_empty() {
        let shown: Vec<String> = args.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
        println!("Build args:    {}", shown.join(" "));
    }
    if let Some(t) = ext["target"].as_str() {
        println!("Target:        {t}");
    }
    let py: Vec<String> = deps
        .iter()
        .filter(|d| d["annotations"]["role"] == "python-package")
        .map(|d| match d["annotations"]["version"].as_str() {
            Some(v) => format!("{}=={v}", text(&d["name"])),
            None => text(&d["name"]).to_string(),
        })
        .collect();
    if !py.is_empty() {
        println!("Python packages ({}, as pip resolved them):", py.len());
        for p in py {
            println!("  {p}");
        }
    }
    println!("Dockerfile text:");
    for l in text(&ext["dockerfile"]["content"]).lines() {
        println!("  | {l}");
    }
    Ok(0)
}

fn print_sbom(doc: &Value) {
    let pkgs: Vec<&Value> = doc["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["SPDXID"] != "SPDXRef-Image")
        .collect();
    println!(
        "SBOM of {} ({}, {} packages)",
        text(&doc["name"]),
        text(&doc["spdxVersion"]),
        pkgs.len()
    );
    let rows: Vec<[String; 3]> = pkgs
        .iter()
        .map(|p| {
            let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap_or("");
            let kind = purl.strip_prefix("pkg:").and_then(|s| s.split('/').next()).unwrap_or("");
            [kind.to_string(), text(&p["name"]).to_string(), text(&p["versionInfo"]).to_string()]
        })
        .collect();
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(4);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(4);
    println!("{:w0$}  {:w1$}  VERSION", "TYPE", "NAME");
    for r in rows {
        println!("{:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
    }
}

pub async fn diff(client: &Client, a: DiffArgs) -> Result<i32> {
    let v = client
        .get(&format!("/images/{}/diff{}", seg(&a.a), query(&[("with", a.b.as_str())])))
        .await?;
    if a.format == "json" {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let layers: Vec<&Value> = v["layers"].as_array().into_iter().flatten().collect();
    let count = |s: &str| layers.iter().filter(|l| l["status"] == s).count();
    println!(
        "Layers: {} shared, {} only in {}, {} only in {}",
        count("shared"),
        count("removed"),
        a.a,
        count("added"),
        a.b
    );
    for l in &layers {
        let mark = match text(&l["status"]) {
            "removed" => "-",
            "added" => "+",
            _ => " ",
        };
        let id = text(&l["diff_id"]);
        let short = id.strip_prefix("sha256:").unwrap_or(id);
        println!(
            "  {mark} {:12}  {:>9}  {}",
            &short[..12.min(short.len())],
            human_size_prec(l["size"].as_f64().unwrap_or(0.0), 3),
            text(&l["created_by"])
        );
    }
    let files: Vec<&Value> = v["files"].as_array().into_iter().flatten().collect();
    let fc = |s: &str| files.iter().filter(|f| f["status"] == s).count();
    println!(
        "Files: {} modified, {} added, {} deleted",
        fc("modified"),
        fc("added"),
        fc("deleted")
    );
    let shown = if a.all { files.len() } else { files.len().min(50) };
    for f in &files[..shown] {
        let mark = match text(&f["status"]) {
            "added" => "A",
            "deleted" => "D",
            _ => "M",
        };
        let changes: Vec<&str> = f["changes"].as_array().into_iter().flatten().map(text).collect();
        if changes.is_empty() {
            println!("  {mark} {}", text(&f["path"]));
        } else {
            println!("  {mark} {}  ({})", text(&f["path"]), changes.join(", "));
        }
    }
    if shown < files.len() {
        println!("  ... and {} more (--all shows them)", files.len() - shown);
    }
    let pkgs: Vec<&Value> = v["packages"].as_array().into_iter().flatten().collect();
    println!("Packages: {} changed", pkgs.len());
    for p in pkgs {
        let (eco, name) = (text(&p["ecosystem"]), text(&p["name"]));
        match text(&p["status"]) {
            "added" => println!("  + {eco} {name} {}", text(&p["to"])),
            "removed" => println!("  - {eco} {name} {}", text(&p["from"])),
            _ => println!("  ~ {eco} {name} {} -> {}", text(&p["from"]), text(&p["to"])),
        }
    }
    Ok(0)
}
