//! `berth notebook [DIR]`: a Jupyter server in a container built from DIR's Python
//! environment (as `berth build` reads a project), with DIR itself mounted over the image's
//! copy of it, so that what is written in the notebooks lands on the host and outlives the
//! container. The server runs in the foreground as DIR's owner; its token URL is printed;
//! stopping it (Ctrl-C, or `berth stop` on the container) removes the container and keeps the
//! files.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

use super::client::Client;

/// Flags of `berth notebook`.
#[derive(clap::Args, Debug)]
pub struct NotebookArgs {
    /// The project directory (its requirements.txt, pyproject.toml or environment.yml say
    /// what the environment holds)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The host port of the server, on 127.0.0.1 (default: a free one)
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// The base image of the environment (as `berth build --base`)
    #[arg(long, value_name = "image")]
    pub base: Option<String>,
    /// Build-time variables (KEY=VALUE)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// The container's name (default: notebook-<dir>)
    #[arg(long)]
    pub name: Option<String>,
}

fn token() -> Result<String> {
    let mut b = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .context("reading /dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

pub async fn notebook(client: &Client, a: NotebookArgs) -> Result<i32> {
    let dir = a.dir.canonicalize().map_err(|e| anyhow!("{}: {e}", a.dir.display()))?;
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let base_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_else(|| "root".into());
    // A reference path component and a container name: [a-z0-9]+ joined by single '-'.
    let slug = base_name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let slug = if slug.is_empty() { "project".to_string() } else { slug };
    let name = a.name.clone().unwrap_or_else(|| format!("notebook-{slug}"));
    // The project's environment, started as a notebook server.
    let mut project = build::python::detect(&dir).map_err(|e| anyhow!(e))?;
    project.start = build::python::Start::Notebook;
    let dockerfile = tempfile_in_tmp(&project.dockerfile(a.base.as_deref()))?;
    let tag = format!("berth-notebook/{slug}:latest");
    #[derive(clap::Parser)]
    struct BuildWrap {
        #[command(flatten)]
        b: super::build::BuildArgs,
    }
    let mut args: Vec<String> = vec!["build".into(), "-q".into(), "-t".into(), tag.clone(), "-f".into()];
    args.push(dockerfile.path.display().to_string());
    for b in &a.build_args {
        args.extend(["--build-arg".into(), b.clone()]);
    }
    args.push(dir.display().to_string());
    let w = <BuildWrap as clap::Parser>::try_parse_from(args).map_err(|e| anyhow!("{e}"))?;
    eprintln!("Building the environment of {} ...", dir.display());
    super::build::build_image(client, w.b).await?;
    drop(dockerfile);
    let port = match a.port {
        Some(p) => p,
        None => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
    };
    let token = token()?;
    // The server runs as the directory's owner, so that what it writes is theirs.
    let md = std::fs::metadata(&dir)?;
    let (uid, gid) = (md.uid(), md.gid());
    let mut run: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--name".into(),
        name.clone(),
        "-p".into(),
        format!("127.0.0.1:{port}:8888"),
        "-v".into(),
        format!("{}:/app", dir.display()),
        "-w".into(),
        "/app".into(),
        "-u".into(),
        format!("{uid}:{gid}"),
        "-e".into(),
        format!("JUPYTER_TOKEN={token}"),
        "-e".into(),
        "HOME=/tmp".into(),
        tag,
        "python".into(),
        "-m".into(),
        "notebook".into(),
        "--ip=0.0.0.0".into(),
        "--port=8888".into(),
        "--no-browser".into(),
    ];
    if uid == 0 {
        run.push("--allow-root".into());
    }
    #[derive(clap::Parser)]
    #[command(disable_help_flag = true)]
    struct RunWrap {
        #[command(flatten)]
        r: super::run::RunArgs,
    }
    let r = <RunWrap as clap::Parser>::try_parse_from(run).map_err(|e| anyhow!("{e}"))?;
    println!(
        "Jupyter for {} (files stay there): http://127.0.0.1:{port}/?token={token}",
        dir.display()
    );
    super::run::run(client, r.r).await
}

/// A file holding `text`, removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn tempfile_in_tmp(text: &str) -> Result<TempFile> {
    let path = std::env::temp_dir().join(format!("berth-notebook-{}.Dockerfile", std::process::id()));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(TempFile { path })
}
