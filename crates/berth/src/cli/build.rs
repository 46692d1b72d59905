//! `berth build`: send a context to the daemon's `POST /build` and show the build as it runs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use hyper::Method;
use serde_json::Value;

use super::client::{for_each_chunk, query, reader_body, Client};

/// Flags of `berth build` (the command's help text is on its variant in `cli::Command`).
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag (name:tag); may be repeated
    #[arg(short = 't', long = "tag", value_name = "name:tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: PATH/Dockerfile)
    #[arg(short = 'f', long = "file", value_name = "string")]
    pub file: Option<PathBuf>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "list")]
    pub build_args: Vec<String>,
    /// Set metadata for the image (KEY=VALUE)
    #[arg(long = "label", value_name = "list")]
    pub labels: Vec<String>,
    /// Set the target build stage to build
    #[arg(long, value_name = "string")]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Suppress the build output and print the image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Networking mode for the RUN instructions: default (the host's network, as there is no
    /// bridge network yet; package installs work), host, or none (no network at all)
    #[arg(long, value_name = "string")]
    pub network: Option<String>,
    /// Times written into the image: "now" (not reproducible) or seconds since the epoch
    /// (default: SOURCE_DATE_EPOCH, else 0)
    #[arg(long, value_name = "now|SECONDS")]
    pub timestamp: Option<String>,
    /// Always remove intermediate containers, also a failed step's (which is otherwise left for
    /// inspection, as Docker leaves it)
    #[arg(long)]
    pub force_rm: bool,
    /// Remove intermediate containers after a successful build (--rm=false keeps every RUN
    /// step's container)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "bool")]
    pub rm: bool,
    /// Images to consider as cache sources (their history records the steps they can stand
    /// for); with any given, the local build cache is not used
    #[arg(long = "cache-from", value_name = "strings")]
    pub cache_from: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip) to RUN steps' /etc/hosts
    #[arg(long = "add-host", value_name = "list")]
    pub add_hosts: Vec<String>,
    /// Size of /dev/shm in RUN steps (e.g. 64m)
    #[arg(long = "shm-size", value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Ulimit options for RUN steps (name=soft[:hard], e.g. nofile=1024:2048)
    #[arg(long = "ulimit", value_name = "ulimit")]
    pub ulimits: Vec<String>,
    /// Memory limit of RUN steps (e.g. 64m, 1g)
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit of RUN steps equal to memory plus swap: -1 for unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes")]
    pub memory_swap: Option<String>,
    /// CPU shares (relative weight) of RUN steps
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// CPU CFS period of RUN steps (microseconds)
    #[arg(long = "cpu-period", value_name = "int")]
    pub cpu_period: Option<i64>,
    /// CPU CFS quota of RUN steps (microseconds)
    #[arg(long = "cpu-quota", value_name = "int")]
    pub cpu_quota: Option<i64>,
    /// CPUs in which RUN steps may run (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes in which RUN steps may run (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Always pull base images (FROM, COPY --from), even when a local copy exists; without it,
    /// only base images missing locally are pulled (credentials from `berth login`)
    #[arg(long)]
    pub pull: bool,
    /// Write the image ID to the file
    #[arg(long, value_name = "string")]
    pub iidfile: Option<PathBuf>,
    /// Build the directory as a Python project, by the files it holds (requirements.txt,
    /// pyproject.toml with uv.lock/poetry.lock, environment.yml; runtime.txt or
    /// .python-version, apt.txt, Procfile, postBuild), even when it has a Dockerfile; a
    /// directory without a Dockerfile is built this way anyway
    #[arg(long)]
    pub python: bool,
    /// Base image of a Python project's build (default: python:<version>-slim, the version
    /// from the project)
    #[arg(long, value_name = "image")]
    pub base: Option<String>,
    /// Print the Dockerfile a Python project is built with (to keep and edit), and build
    /// nothing
    #[arg(long)]
    pub print_dockerfile: bool,
    /// Build context: a directory, or - to read a tar archive from stdin
    #[arg(value_name = "PATH")]
    pub context: String,
}

/// `--ulimit name=soft[:hard]` as the API's `{"Name", "Soft", "Hard"}` (hard = soft if not given).
fn parse_ulimit(u: &str) -> Result<Value> {
    let bad = || anyhow!("invalid ulimit argument: {u:?}: expected name=soft[:hard]");
    let (name, limits) = u.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    Ok(serde_json::json!({"Name": name, "Soft": soft, "Hard": hard}))
}

fn kv_json(items: &[String], from_env: bool) -> Result<String> {
    let mut m = serde_json::Map::new();
    for it in items {
        match it.split_once('=') {
            Some((k, v)) => {
                m.insert(k.to_string(), Value::String(v.to_string()));
            }
            None if from_env => {
                if let Ok(v) = std::env::var(it) {
                    m.insert(it.clone(), Value::String(v));
                }
            }
            None => {
                m.insert(it.clone(), Value::String(String::new()));
            }
        }
    }
    Ok(Value::Object(m).to_string())
}

/// Write the context directory as a tar, leaving out what `.dockerignore` excludes (the Dockerfile
/// and `.dockerignore` themselves are always sent). `extra` adds a Dockerfile from outside (or
/// generated) under a private name, which the sent `.dockerignore` then lists so that no COPY
/// takes it — as the docker CLI does.
fn write_context(dir: &Path, extra: Option<(&str, &[u8])>, out: impl Write) -> Result<()> {
    let ignore_text = std::fs::read_to_string(dir.join(".dockerignore")).unwrap_or_default();
    let ignore = build::pattern::Ignore::parse(&ignore_text);
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Complete);
    fn walk(tar: &mut tar::Builder<impl Write>, ignore: &build::pattern::Ignore, root: &Path, rel: &str, own_ignore: bool) -> Result<()> {
        let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() {
                n.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", n.to_string_lossy())
            };
            let p = root.join(&r);
            let md = std::fs::symlink_metadata(&p)?;
            if own_ignore && r == ".dockerignore" {
                // Sent rewritten, after the walk.
                continue;
            }
            let excluded = ignore.excluded(&r) && r != ".dockerignore";
            if md.is_dir() {
                if !excluded {
                    tar.append_path_with_name(&p, &r)?;
                }
                if !excluded || ignore.may_include_below(&r) {
                    walk(tar, ignore, root, &r, own_ignore)?;
                }
            } else if !excluded && (md.is_file() || md.file_type().is_symlink()) {
                tar.append_path_with_name(&p, &r)
                    .with_context(|| format!("adding {r} to the context"))?;
            }
        }
        Ok(())
    }
    walk(&mut tar, &ignore, dir, "", extra.is_some())?;
    if let Some((name, content)) = extra {
        let mut add = |name: &str, data: &[u8]| -> Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            tar.append_data(&mut h, name, data)?;
            Ok(())
        };
        add(name, content)?;
        let listed = format!(
            "{}{}{name}\n.dockerignore\n",
            ignore_text,
            if ignore_text.ends_with('\n') || ignore_text.is_empty() {
                ""
            } else {
                "\n"
            }
        );
        add(".dockerignore", listed.as_bytes())?;
    }
    tar.into_inner()?.flush()?;
    Ok(())
}

/// `POST /build`, with a tar context as the body (or none, with `localcontext`). Every saved login
/// goes along, as docker's X-Registry-Config, for pulls of base images.
async fn post_build(
    client: &Client,
    q: &[(&str, String)],
    body: super::client::Body,
    content_type: Option<&str>,
) -> Result<hyper::Response<hyper::body::Incoming>> {
    let headers: Vec<(&str, String)> = super::registry::registry_config_header().into_iter().collect();
    client
        .send_with(Method::POST, &format!("/build{}", query(q)), body, content_type, false, &headers)
        .await
}

/// The name a generated Dockerfile is sent under.
const GENERATED_DOCKERFILE: &str = ".berth-python.Dockerfile";

/// The Dockerfile of a Python project build (none: the context has its own Dockerfile).
pub fn python_dockerfile(a: &BuildArgs) -> Result<Option<String>> {
    let dir = Path::new(&a.context);
    let python = a.python || (a.context != "-" && a.file.is_none() && dir.is_dir() && !dir.join("Dockerfile").exists());
    if !python {
        if a.base.is_some() || a.print_dockerfile {
            bail!(
                "--base and --print-dockerfile are for Python project builds, and {} has a Dockerfile (add --python to build it as a Python project)",
                a.context
            );
        }
        return Ok(None);
    }
    if a.context == "-" {
        bail!("a Python project is built from a directory, not a tar on stdin");
    }
    if a.file.is_some() {
        bail!("--python writes its own Dockerfile: -f/--file cannot go with it");
    }
    if !dir.is_dir() {
        bail!("unable to prepare context: {:?} is not a directory", a.context);
    }
    Ok(Some(
        build::python::detect(dir).map_err(|e| anyhow!(e))?.dockerfile(a.base.as_deref()),
    ))
}

pub async fn build(client: &Client, a: BuildArgs) -> Result<i32> {
    if a.print_dockerfile {
        if let Some(d) = python_dockerfile(&a)? {
            print!("{d}");
        }
        return Ok(0);
    }
    let (quiet, iidfile) = (a.quiet, a.iidfile.clone());
    let started = Instant::now();
    let id = build_image(client, a).await?;
    if let Some(f) = &iidfile {
        std::fs::write(f, &id).with_context(|| format!("writing {}", f.display()))?;
    }
    if quiet {
        println!("{id}");
    } else {
        println!("Built {id} in {:.2}s", started.elapsed().as_secs_f64());
    }
    Ok(0)
}

/// Build as the flags say (its output shown unless quiet); the image's ID.
pub async fn build_image(client: &Client, a: BuildArgs) -> Result<String> {
    let python = python_dockerfile(&a)?.is_some();
    let q = build_query(&a)?;
    let resp = send_build(client, &a, q).await?;
    let mut errors = Vec::new();
    match read_build_output(resp, a.quiet, &mut errors).await {
        Ok(id) => Ok(id),
        Err(e) if python => match build::python::explain(Path::new(&a.context), &errors) {
            Some(why) => bail!("{e}\n{why}"),
            None => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The `POST /build` query from the flags (without the Dockerfile's name, which depends on the
/// context).
fn build_query(a: &BuildArgs) -> Result<Vec<(&'static str, String)>> {
    let mut build_args = a.build_args.clone();
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        if !build_args.iter().any(|b| b.starts_with("SOURCE_DATE_EPOCH")) {
            build_args.push(format!("SOURCE_DATE_EPOCH={epoch}"));
        }
    }
    let mut q: Vec<(&str, String)> = Vec::new();
    for t in &a.tags {
        q.push(("t", t.clone()));
    }
    q.push(("buildargs", kv_json(&build_args, true)?));
    q.push(("labels", kv_json(&a.labels, false)?));
    if let Some(t) = &a.target {
        q.push(("target", t.clone()));
    }
    if a.no_cache {
        q.push(("nocache", "1".into()));
    }
    if a.quiet {
        q.push(("q", "1".into()));
    }
    if !a.rm {
        q.push(("rm", "0".into()));
    }
    if a.force_rm {
        q.push(("forcerm", "1".into()));
    }
    if !a.cache_from.is_empty() {
        q.push(("cachefrom", serde_json::to_string(&a.cache_from)?));
    }
    for h in &a.add_hosts {
        // As the docker CLI sends it: name:ip (name=ip and [v6] are accepted here).
        let (k, v) = h
            .split_once('=')
            .or_else(|| h.split_once(':'))
            .ok_or_else(|| anyhow!("bad format for add-host: {h:?}"))?;
        let v = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(v);
        q.push(("extrahosts", format!("{k}:{v}")));
    }
    if let Some(s) = &a.shm_size {
        q.push(("shmsize", super::units::parse_size(s)?.to_string()));
    }
    if !a.ulimits.is_empty() {
        let mut list = Vec::new();
        for u in &a.ulimits {
            list.push(parse_ulimit(u)?);
        }
        q.push(("ulimits", Value::Array(list).to_string()));
    }
    if let Some(m) = &a.memory {
        q.push(("memory", super::units::parse_size(m)?.to_string()));
    }
    if let Some(m) = &a.memory_swap {
        q.push(("memswap", super::units::parse_size(m)?.to_string()));
    }
    for (k, v) in [("cpushares", a.cpu_shares), ("cpuperiod", a.cpu_period), ("cpuquota", a.cpu_quota)] {
        if let Some(v) = v {
            q.push((k, v.to_string()));
        }
    }
    if let Some(c) = &a.cpuset_cpus {
        q.push(("cpusetcpus", c.clone()));
    }
    if let Some(c) = &a.cpuset_mems {
        q.push(("cpusetmems", c.clone()));
    }
    if a.pull {
        q.push(("pull", "1".into()));
    }
    if let Some(n) = &a.network {
        q.push(("networkmode", n.clone()));
    }
    if let Some(t) = &a.timestamp {
        if t != "now" && t.parse::<i64>().is_err() {
            bail!("--timestamp {t:?}: expected \"now\" or seconds since the epoch");
        }
        q.push(("timestamp", t.clone()));
    }
    Ok(q)
}

/// Start the build with query `q`: the context is a tar read from stdin (`-`), or a directory,
/// which a daemon on this machine reads itself and any other gets as a tar.
async fn send_build(client: &Client, a: &BuildArgs, mut q: Vec<(&'static str, String)>) -> Result<hyper::Response<hyper::body::Incoming>> {
    Ok(if a.context == "-" {
        if std::io::stdin().is_terminal() {
            bail!("the context is - but stdin is a terminal: pipe a tar archive in");
        }
        if let Some(f) = &a.file {
            q.push(("dockerfile", f.display().to_string()));
        }
        post_build(client, &q, reader_body(super::stream::stdin_stream()), Some("application/x-tar")).await?
    } else {
        let dir = PathBuf::from(&a.context);
        let dir = dir
            .canonicalize()
            .map_err(|e| anyhow!("unable to prepare context: path {:?} not found: {e}", a.context))?;
        if !dir.is_dir() {
            bail!("unable to prepare context: {:?} is not a directory", a.context);
        }
        // A Dockerfile outside the context is sent along under a private name, as docker does;
        // so is a Python project's generated one.
        let mut extra: Option<(String, Vec<u8>)> = None;
        if let Some(d) = python_dockerfile(a)? {
            q.push(("dockerfile", GENERATED_DOCKERFILE.into()));
            extra = Some((GENERATED_DOCKERFILE.into(), d.into_bytes()));
        } else if let Some(f) = &a.file {
            let f = f
                .canonicalize()
                .map_err(|e| anyhow!("unable to read Dockerfile {}: {e}", f.display()))?;
            match f.strip_prefix(&dir) {
                Ok(rel) => q.push(("dockerfile", rel.display().to_string())),
                Err(_) => {
                    let name = format!(".berth-dockerfile-{}", std::process::id());
                    q.push(("dockerfile", name.clone()));
                    let content = std::fs::read(&f).map_err(|e| anyhow!("unable to read Dockerfile {}: {e}", f.display()))?;
                    extra = Some((name, content));
                }
            }
        } else if !dir.join("Dockerfile").exists() {
            bail!("unable to prepare context: no Dockerfile in {}", dir.display());
        }
        // A daemon on this machine reads the directory itself (nothing to send, unchanged files not
        // read again); one that cannot see it gets the context as a tar, as docker sends it.
        let local = if extra.is_none() && std::env::var_os("BERTH_BUILD_SEND_CONTEXT").is_none() {
            let mut lq = q.clone();
            lq.push(("localcontext", dir.display().to_string()));
            match post_build(client, &lq, super::client::empty(), None).await {
                Ok(r) => Some(r),
                Err(e) if super::client::is_status(&e, 400) && format!("{e:#}").contains("localcontext") => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        match local {
            Some(r) => r,
            None => {
                let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
                std::thread::spawn(move || {
                    let extra = extra.as_ref().map(|(n, c)| (n.as_str(), c.as_slice()));
                    if let Err(e) = write_context(&dir, extra, &ours) {
                        eprintln!("error sending the build context: {e:#}");
                    }
                    let _ = ours.shutdown(std::net::Shutdown::Write);
                });
                theirs.set_nonblocking(true)?;
                post_build(
                    client,
                    &q,
                    reader_body(tokio::net::UnixStream::from_std(theirs)?),
                    Some("application/x-tar"),
                )
                .await?
            }
        }
    })
}

/// Show the build's JSON stream as it comes (a quiet build's only on failure); the built image's
/// ID, or the build's error.
async fn read_build_output(resp: hyper::Response<hyper::body::Incoming>, quiet: bool, errors: &mut Vec<String>) -> Result<String> {
    let mut buf: Vec<u8> = Vec::new();
    let mut err: Option<String> = None;
    let mut id: Option<String> = None;
    // A quiet build's daemon says only the ID (`sha256:...`), or on failure everything it held
    // back, which goes to stderr as the docker CLI shows it.
    let mut held = String::new();
    let mut handle = |line: &[u8]| {
        let Ok(v) = serde_json::from_slice::<Value>(line) else { return };
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            err = Some(e.to_string());
        } else if let Some(i) = v.get("aux").and_then(|x| x.get("ID")).and_then(Value::as_str) {
            id = Some(i.to_string());
        } else if let Some(s) = v.get("stream").and_then(Value::as_str) {
            // Error lines (a step's stderr comes coloured), for explaining a failure after.
            for l in s.lines() {
                let l = l.trim_start_matches("\u{1b}[91m").trim_start_matches("\u{1b}[0m");
                if l.starts_with("ERROR:") {
                    errors.push(l.to_string());
                }
            }
            if !quiet {
                print!("{s}");
                let _ = std::io::stdout().flush();
            } else if let Some(i) = s.trim_end().strip_prefix("sha256:").filter(|h| h.len() == 64) {
                id = Some(format!("sha256:{i}"));
            } else {
                held.push_str(s);
            }
        }
    };
    for_each_chunk(resp.into_body(), |d| {
        buf.extend_from_slice(d);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            handle(&line);
        }
        Ok(())
    })
    .await?;
    if !buf.is_empty() {
        handle(&std::mem::take(&mut buf));
    }
    if let Some(e) = err {
        if quiet {
            eprint!("{held}");
        }
        bail!("{e}");
    }
    id.ok_or_else(|| anyhow!("the daemon did not report the built image"))
}
