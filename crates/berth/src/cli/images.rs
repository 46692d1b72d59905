//! Image commands: images, rmi, tag, history, save, load, import, commit, image prune.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use hyper::Method;
use serde_json::{json, Value};

use super::client::{empty, for_each_chunk, print_json_messages, query, reader_body, seg, Client};
use super::format::render;
use super::ps::filters_json;
use super::units::{ago, ellipsis, go_time, human_size_prec, short_id};

/// Flags of `berth images` / `berth image ls`.
#[derive(clap::Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided (dangling=true, reference=..., label=...)
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only images matching REPOSITORY[:TAG]
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Flags of `berth rmi` / `berth image rm`.
#[derive(clap::Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// Images
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Flags of `berth tag`.
#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// Source image
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// New reference
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// Flags of `berth history`.
#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print sizes and dates in human readable format
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "bool")]
    pub human: bool,
    /// Format output using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Image
    pub image: String,
}

/// Flags of `berth save`.
#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long, value_name = "string")]
    pub output: Option<PathBuf>,
    /// Images
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Flags of `berth load`.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long, value_name = "string")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Flags of `berth import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long, value_name = "string")]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Tar file (or "-" for STDIN, or a URL)
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    /// Name of the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Flags of `berth commit`.
#[derive(clap::Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long, value_name = "string")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long, value_name = "string")]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, value_name = "bool")]
    pub pause: bool,
    /// Container
    pub container: String,
    /// Name of the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Flags of `berth image prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
}

/// A reference the user typed, parsed (and normalized) as the daemon will: Docker's
/// `invalid reference format` when it is not one.
pub fn parse_ref(s: &str) -> Result<image::Reference> {
    image::Reference::parse(s).map_err(|e| anyhow!("{e}"))
}

/// A reference to create (`tag`, `commit`, `import`): a repository and maybe a tag, never a
/// digest (Docker's refusal).
fn new_tag(s: &str) -> Result<(String, Option<String>)> {
    let r = parse_ref(s)?;
    if r.digest.is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    Ok((r.repo, r.tag))
}

const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("ID", "IMAGE ID"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
];

/// One formatting context per (image, tag) like docker.
pub fn image_rows(img: &Value, trunc: bool) -> Vec<Value> {
    let id = img.get("Id").and_then(Value::as_str).unwrap_or("");
    let created = img.get("Created").and_then(Value::as_i64).unwrap_or(0);
    let size = img.get("Size").and_then(Value::as_f64).unwrap_or(0.0);
    let strs = |k: &str| -> Vec<String> {
        img.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default()
    };
    let tags: Vec<String> = strs("RepoTags").into_iter().filter(|t| t != "<none>:<none>").collect();
    let digests: Vec<String> = strs("RepoDigests").into_iter().filter(|d| d != "<none>@<none>").collect();
    let digest_of = |repo: &str| -> String {
        digests
            .iter()
            .filter_map(|d| image::Reference::parse(d).ok())
            .find(|r| r.repo == repo)
            .and_then(|r| r.digest)
            .unwrap_or_else(|| "<none>".into())
    };
    let row = |repo: &str, tag: &str, digest: String| {
        let shared = img.get("SharedSize").and_then(Value::as_f64).unwrap_or(-1.0);
        json!({
            "ID": if trunc { short_id(id) } else { id.to_string() },
            "Repository": repo,
            "Tag": tag,
            "Digest": digest,
            "CreatedSince": ago(created),
            "CreatedAt": go_time(created),
            "Size": human_size_prec(size, 3),
            "VirtualSize": human_size_prec(size, 3),
            "SharedSize": if shared < 0.0 { "N/A".to_string() } else { human_size_prec(shared, 3) },
            "UniqueSize": if shared < 0.0 { "N/A".to_string() } else { human_size_prec(size - shared, 3) },
            "Containers": img.get("Containers").and_then(Value::as_i64).filter(|c| *c >= 0).map_or("N/A".to_string(), |c| c.to_string()),
        })
    };
    if tags.is_empty() {
        if let Some(r) = digests.first().and_then(|d| image::Reference::parse(d).ok()) {
            return vec![row(&r.repo, "<none>", r.digest.unwrap_or_default())];
        }
        return vec![row("<none>", "<none>", "<none>".into())];
    }
    tags.iter()
        .map(|t| {
            let (repo, tag) = match image::Reference::parse(t) {
                Ok(r) => (r.repo, r.tag.unwrap_or_default()),
                Err(_) => (t.clone(), String::new()),
            };
            let d = digest_of(&repo);
            row(&repo, &tag, d)
        })
        .collect()
}

/// `berth images`.
pub async fn images(client: &Client, a: ImagesArgs) -> Result<i32> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let mut q: Vec<(&str, String)> = Vec::new();
    if a.all {
        q.push(("all", "1".into()));
    }
    if !filters.is_empty() {
        q.push(("filters", filters_json(&filters)?));
    }
    if a.digests {
        q.push(("digests", "1".into()));
    }
    let list = client.get(&format!("/images/json{}", query(&q))).await?;
    let mut rows: Vec<Value> = Vec::new();
    for img in list.as_array().into_iter().flatten() {
        rows.extend(image_rows(img, !a.no_trunc));
    }
    if a.quiet && a.format.as_deref().unwrap_or("").is_empty() {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or("");
            if seen.insert(id.to_string()) {
                println!("{id}");
            }
        }
        return Ok(0);
    }
    let format = match &a.format {
        Some(f) if !f.is_empty() => f.clone(),
        _ if a.digests => "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into(),
        _ => "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into(),
    };
    print!("{}", render(&format, &rows, IMAGE_HEADERS)?);
    Ok(0)
}

/// `berth rmi`.
pub async fn rmi(client: &Client, a: RmiArgs) -> Result<i32> {
    let q = query(&[
        ("force", if a.force { "1" } else { "0" }),
        ("noprune", if a.no_prune { "1" } else { "0" }),
    ]);
    Ok(super::each(&a.images, async |img: &str| {
        let v = client.delete(&format!("/images/{}{q}", seg(img))).await?;
        for item in v.as_array().into_iter().flatten() {
            if let Some(u) = item.get("Untagged").and_then(Value::as_str) {
                println!("Untagged: {u}");
            }
            if let Some(d) = item.get("Deleted").and_then(Value::as_str) {
                println!("Deleted: {d}");
            }
        }
        Ok(())
    })
    .await)
}

/// `berth tag`.
pub async fn tag(client: &Client, a: TagArgs) -> Result<i32> {
    let (repo, tag) = new_tag(&a.target)?;
    let tag = tag.unwrap_or_else(|| "latest".into());
    client
        .post(
            &format!("/images/{}/tag{}", seg(&a.source), query(&[("repo", repo), ("tag", tag)])),
            None,
        )
        .await?;
    Ok(0)
}

/// `berth history`.
pub async fn history(client: &Client, a: HistoryArgs) -> Result<i32> {
    let v = client.get(&format!("/images/{}/history", seg(&a.image))).await?;
    let trunc = !a.no_trunc;
    let rows: Vec<Value> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let id = h.get("Id").and_then(Value::as_str).unwrap_or("<missing>");
            let id = if id.is_empty() || id == "<missing>" {
                "<missing>".to_string()
            } else if trunc {
                short_id(id)
            } else {
                id.to_string()
            };
            let created = h.get("Created").and_then(Value::as_i64).unwrap_or(0);
            let by = h.get("CreatedBy").and_then(Value::as_str).unwrap_or("").replace('\t', " ");
            let size = h.get("Size").and_then(Value::as_f64).unwrap_or(0.0);
            json!({
                "ID": id,
                "CreatedSince": if a.human { ago(created) } else { go_time(created) },
                "CreatedAt": go_time(created),
                "CreatedBy": if trunc { ellipsis(&by, 45) } else { by },
                "Size": if a.human { human_size_prec(size, 3) } else { (size as i64).to_string() },
                "Comment": h.get("Comment").and_then(Value::as_str).unwrap_or(""),
            })
        })
        .collect();
    let format = match (&a.format, a.quiet) {
        (Some(f), _) if !f.is_empty() => f.clone(),
        (_, true) => "{{.ID}}".into(),
        _ => "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into(),
    };
    let headers = &[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];
    print!("{}", render(&format, &rows, headers)?);
    Ok(0)
}

/// Stream a GET body to a file (`-o`) or stdout (refusing a terminal, like docker).
pub async fn download(client: &Client, path: &str, output: Option<&PathBuf>) -> Result<()> {
    let mut out: Box<dyn Write> = match output {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(std::fs::File::create(p).with_context(|| format!("failed to save to {}", p.display()))?)
        }
        _ => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            Box::new(std::io::stdout().lock())
        }
    };
    let resp = client.send(Method::GET, path, empty(), None, false).await?;
    for_each_chunk(resp.into_body(), |d| Ok(out.write_all(d)?)).await?;
    out.flush()?;
    Ok(())
}

/// `berth save`.
pub async fn save(client: &Client, a: SaveArgs) -> Result<i32> {
    let q: Vec<(&str, &str)> = a.images.iter().map(|i| ("names", i.as_str())).collect();
    download(client, &format!("/images/get{}", query(&q)), a.output.as_ref()).await?;
    Ok(0)
}

/// Open a file or stdin (`-`/none) as a request body.
async fn input_body(path: Option<&PathBuf>) -> Result<super::client::Body> {
    Ok(match path {
        Some(p) if p.as_os_str() != "-" => {
            let f = tokio::fs::File::open(p).await.with_context(|| format!("open {}", p.display()))?;
            reader_body(f)
        }
        _ => reader_body(super::stream::stdin_stream()),
    })
}

/// `berth load`.
pub async fn load(client: &Client, a: LoadArgs) -> Result<i32> {
    if a.input.is_none() && std::io::stdin().is_terminal() {
        bail!("requested load from stdin, but stdin is empty");
    }
    let body = input_body(a.input.as_ref()).await?;
    let q = query(&[("quiet", if a.quiet { "1" } else { "0" })]);
    let resp = client
        .send(Method::POST, &format!("/images/load{q}"), body, Some("application/x-tar"), false)
        .await?;
    let is_json = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    if is_json {
        print_json_messages(resp.into_body(), a.quiet).await?;
    } else {
        for_each_chunk(resp.into_body(), |d| Ok(std::io::stdout().write_all(d)?)).await?;
    }
    Ok(0)
}

/// `berth import`.
pub async fn import(client: &Client, a: ImportArgs) -> Result<i32> {
    let mut q: Vec<(&str, String)> = Vec::new();
    let is_url = a.source.starts_with("http://") || a.source.starts_with("https://");
    q.push(("fromSrc", if is_url { a.source.clone() } else { "-".into() }));
    if let Some(r) = &a.reference {
        let (repo, tag) = new_tag(r)?;
        q.push(("repo", repo));
        if let Some(tag) = tag {
            q.push(("tag", tag));
        }
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    for c in &a.change {
        q.push(("changes", c.clone()));
    }
    let body = if is_url {
        empty()
    } else {
        input_body(Some(&PathBuf::from(&a.source))).await?
    };
    let resp = client
        .send(
            Method::POST,
            &format!("/images/create{}", query(&q)),
            body,
            Some("application/x-tar"),
            false,
        )
        .await?;
    print_json_messages(resp.into_body(), false).await?;
    Ok(0)
}

/// `berth commit`.
pub async fn commit(client: &Client, a: CommitArgs) -> Result<i32> {
    let mut q: Vec<(&str, String)> = vec![("container", a.container.clone())];
    if let Some(r) = &a.reference {
        let (repo, tag) = new_tag(r)?;
        q.push(("repo", repo));
        if let Some(tag) = tag {
            q.push(("tag", tag));
        }
    }
    if let Some(m) = &a.message {
        q.push(("comment", m.clone()));
    }
    if let Some(au) = &a.author {
        q.push(("author", au.clone()));
    }
    q.push(("pause", if a.pause { "1" } else { "0" }.into()));
    for c in &a.change {
        q.push(("changes", c.clone()));
    }
    let v = client.post(&format!("/commit{}", query(&q)), Some(&json!({}))).await?;
    let id = v
        .get("Id")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("daemon returned no image ID"))?;
    println!("{id}");
    Ok(0)
}

/// Ask for confirmation on stdin (docker's prompt); `true` to continue.
pub fn confirm(warning: &str) -> bool {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

/// `berth image prune`.
pub async fn prune(client: &Client, a: PruneArgs) -> Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(warning) {
        return Ok(0);
    }
    let mut filters = a.filter.clone();
    filters.push(format!("dangling={}", !a.all));
    let v = client
        .post(&format!("/images/prune{}", query(&[("filters", filters_json(&filters)?)])), None)
        .await?;
    let deleted = v.get("ImagesDeleted").and_then(Value::as_array).cloned().unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Images:");
        for item in &deleted {
            if let Some(u) = item.get("Untagged").and_then(Value::as_str) {
                println!("untagged: {u}");
            }
            if let Some(d) = item.get("Deleted").and_then(Value::as_str) {
                println!("deleted: {d}");
            }
        }
        println!();
    }
    let space = v.get("SpaceReclaimed").and_then(Value::as_f64).unwrap_or(0.0);
    println!("Total reclaimed space: {}", human_size_prec(space, 3));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let img = json!({"Id": "sha256:0123456789abcdef", "Created": 0, "Size": 4_261_234,
                         "RepoTags": ["busybox:latest", "bb:1"], "RepoDigests": []});
        let r = image_rows(&img, true);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["Repository"], "busybox");
        assert_eq!(r[0]["Tag"], "latest");
        assert_eq!(r[0]["ID"], "0123456789ab");
        assert_eq!(r[0]["Size"], "4.26MB");
        let none = json!({"Id": "sha256:ab", "RepoTags": ["<none>:<none>"]});
        assert_eq!(image_rows(&none, false)[0]["Repository"], "<none>");
    }
}
