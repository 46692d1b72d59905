//! `berth pull`, `push`, `login`, `logout`: registry operations through the daemon, with
//! credentials kept in `~/.berth/config.json` (Docker's `auths` format; `BERTH_CONFIG` moves it).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use hyper::Method;
use serde_json::{json, Value};

use super::client::{empty, for_each_chunk, json_body, query, read_json, Client};

/// Flags of `berth pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Image to pull: NAME[:TAG|@DIGEST]
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub image: String,
}

/// Flags of `berth push`.
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Push all tags of the image's repository (NAME without a tag)
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Image to push: NAME[:TAG]
    #[arg(value_name = "NAME[:TAG]")]
    pub image: String,
}

/// Flags of `berth login`.
#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry (default: Docker Hub)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// Flags of `berth logout`.
#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// Registry (default: Docker Hub)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

fn config_path() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_CONFIG") {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".berth").join("config.json")
}

fn load_config() -> Value {
    std::fs::read(config_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({"auths": {}}))
}

fn save_config(v: &Value) -> Result<()> {
    let p = config_path();
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let tmp = p.with_extension("json.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(v)?.as_bytes())?;
    }
    std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

/// A saved login as the AuthConfig the daemon reads.
fn auth_entry(registry: &str, saved: &Value) -> Value {
    let c = engine::distribution::auth_config(saved);
    json!({"username": c.username, "password": c.password, "serveraddress": registry})
}

/// The `X-Registry-Auth` value for a registry, from the saved logins.
fn auth_header(registry: &str) -> Option<(&'static str, String)> {
    let cfg = load_config();
    let v = auth_entry(registry, cfg.get("auths")?.get(registry)?);
    Some(("X-Registry-Auth", base64::engine::general_purpose::URL_SAFE.encode(v.to_string())))
}

/// `X-Registry-Config` with every saved login (registry → AuthConfig), if there is any.
pub fn registry_config_header() -> Option<(&'static str, String)> {
    let cfg = load_config();
    let all: serde_json::Map<String, Value> = cfg
        .get("auths")?
        .as_object()?
        .iter()
        .map(|(registry, saved)| (registry.clone(), auth_entry(registry, saved)))
        .collect();
    Some((
        "X-Registry-Config",
        base64::engine::general_purpose::URL_SAFE.encode(Value::Object(all).to_string()),
    ))
}

/// Renders Docker's JSON progress stream: one line per layer, redrawn in place on a terminal
/// (with bytes and rate), status changes only otherwise.
struct Progress {
    tty: bool,
    quiet: bool,
    /// Layer ID → (line index, start time of its transfer).
    lines: BTreeMap<String, (usize, Option<Instant>)>,
    count: usize,
    error: Option<String>,
    aux: Option<Value>,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        Progress {
            tty: std::io::stdout().is_terminal(),
            quiet,
            lines: BTreeMap::new(),
            count: 0,
            error: None,
            aux: None,
        }
    }

    fn rate(start: Option<Instant>, cur: u64) -> String {
        let Some(t) = start else { return String::new() };
        let secs = t.elapsed().as_secs_f64();
        if secs < 0.05 {
            return String::new();
        }
        format!(" {:.1}MB/s", cur as f64 / secs / 1e6)
    }

    fn handle(&mut self, v: &Value) {
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            self.error = Some(e.to_string());
            return;
        }
        if let Some(a) = v.get("aux") {
            self.aux = Some(a.clone());
            return;
        }
        let status = v.get("status").and_then(Value::as_str).unwrap_or("");
        if self.quiet {
            return;
        }
        let mut out = std::io::stdout();
        let Some(id) = v.get("id").and_then(Value::as_str).filter(|_| !status.starts_with("Pulling from")) else {
            let _ = writeln!(out, "{status}");
            return;
        };
        let transferring = status == "Downloading" || status == "Pushing";
        let (cur, total) = v
            .get("progressDetail")
            .map(|p| {
                (
                    p.get("current").and_then(Value::as_u64).unwrap_or(0),
                    p.get("total").and_then(Value::as_u64).unwrap_or(0),
                )
            })
            .unwrap_or((0, 0));
        let is_new = !self.lines.contains_key(id);
        if is_new {
            self.lines.insert(id.to_string(), (self.count, None));
            self.count += 1;
        }
        let entry = self.lines.get_mut(id).expect("inserted");
        if transferring && entry.1.is_none() {
            entry.1 = Some(Instant::now());
        }
        let (line, start) = *entry;
        let text = if transferring {
            let bar = v.get("progress").and_then(Value::as_str).unwrap_or("");
            format!("{id}: {status} {bar}{}", Self::rate(start, cur))
        } else {
            let _ = total;
            format!("{id}: {status}")
        };
        if self.tty {
            if is_new {
                let _ = writeln!(out, "{text}");
            } else {
                let up = self.count - line;
                let _ = write!(out, "\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r");
            }
        } else if !transferring {
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
    }
}

async fn run_stream(resp: hyper::Response<hyper::body::Incoming>, quiet: bool) -> Result<Progress> {
    let mut p = Progress::new(quiet);
    let mut buf: Vec<u8> = Vec::new();
    for_each_chunk(resp.into_body(), |d| {
        buf.extend_from_slice(d);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                p.handle(&v);
            }
        }
        Ok(())
    })
    .await?;
    if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
        p.handle(&v);
    }
    if let Some(e) = p.error.take() {
        bail!("{e}");
    }
    Ok(p)
}

pub async fn pull(client: &Client, a: PullArgs) -> Result<i32> {
    let r = super::images::parse_ref(&a.image)?;
    let registry = r.registry().to_string();
    let mut q = vec![("fromImage", r.repo.clone()), ("tag", r.tag_or_digest().to_string())];
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let headers: Vec<(&str, String)> = auth_header(&registry).into_iter().collect();
    let resp = client
        .send_with(
            Method::POST,
            &format!("/images/create{}", query(&q)),
            empty(),
            None,
            false,
            &headers,
        )
        .await?;
    run_stream(resp, a.quiet).await?;
    if a.quiet {
        let shown = if r.tag.is_none() && r.digest.is_none() {
            r.tagged()
        } else {
            a.image.clone()
        };
        println!("{shown}");
    }
    Ok(0)
}

pub async fn push(client: &Client, a: PushArgs) -> Result<i32> {
    let r = super::images::parse_ref(&a.image)?;
    let name = r.repo.clone();
    if r.digest.is_some() {
        bail!("push by digest is not possible: push {name}:TAG");
    }
    let registry = r.registry().to_string();
    let headers: Vec<(&str, String)> = vec![auth_header(&registry).unwrap_or(("X-Registry-Auth", "e30=".into()))];
    if a.all_tags && r.tag.is_some() {
        bail!("tag can't be used with --all-tags/-a");
    }
    // An empty tag asks the daemon for every local tag of the repository.
    let tag = if a.all_tags { String::new() } else { r.tag_or_digest().to_string() };
    let q = query(&[("tag", tag)]);
    let path = format!("/images/{}/push{q}", super::client::seg(&name));
    let resp = client.send_with(Method::POST, &path, empty(), None, false, &headers).await?;
    let p = run_stream(resp, a.quiet).await?;
    if a.quiet {
        if let Some(d) = p.aux.as_ref().and_then(|x| x.get("Digest")).and_then(Value::as_str) {
            println!("{d}");
        }
    }
    Ok(0)
}

pub async fn login(client: &Client, a: LoginArgs) -> Result<i32> {
    let server = a.server.clone().unwrap_or_else(|| "https://index.docker.io/v1/".into());
    let registry = engine::distribution::registry_of_server(&server);
    let username = match a.username {
        Some(u) => u,
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("Error: Cannot perform an interactive login from a non TTY device (use -u and --password-stdin)");
            }
            eprint!("Username: ");
            let mut u = String::new();
            std::io::stdin().read_line(&mut u)?;
            u.trim().to_string()
        }
    };
    let password = if a.password_stdin {
        if a.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut p = String::new();
        std::io::stdin().read_to_string(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else {
        bail!("a password is needed: use --password-stdin (or -p)");
    };
    if username.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    let body = json!({"username": username, "password": password, "serveraddress": server});
    let resp = client
        .send(Method::POST, "/auth", json_body(&body), Some("application/json"), false)
        .await
        .map_err(|e| anyhow!("{e:#}"))?;
    let v = read_json(resp).await?;
    let mut cfg = load_config();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    cfg["auths"][registry.as_str()] = json!({ "auth": auth });
    save_config(&cfg)?;
    println!("{}", v.get("Status").and_then(Value::as_str).unwrap_or("Login Succeeded"));
    Ok(0)
}

pub async fn logout(_client: &Client, a: LogoutArgs) -> Result<i32> {
    let server = a.server.unwrap_or_else(|| "https://index.docker.io/v1/".into());
    let registry = engine::distribution::registry_of_server(&server);
    let mut cfg = load_config();
    let removed = cfg
        .get_mut("auths")
        .and_then(|m| m.as_object_mut())
        .and_then(|m| m.remove(&registry))
        .is_some();
    if removed {
        save_config(&cfg)?;
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}
