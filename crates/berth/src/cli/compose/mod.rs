//! `berth compose`: Docker Compose on Berth. The project model, its merge and its plan are the
//! `compose` crate's; this module sends the plan to the daemon over the Engine API and shows
//! progress as Docker Compose shows it. The containers' `com.docker.compose.*` labels are the
//! only state, so `docker compose`/`docker-compose` see the same project.

mod build;
mod down;
mod exec;
mod logs;
mod progress;
mod ps;
mod up;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use compose::plan::labels;
use compose::Loaded;
use serde_json::Value;

use super::client::{query, Client};
use progress::Mode;

/// Flags of `berth compose` (before the subcommand).
#[derive(clap::Args, Debug)]
pub struct ComposeArgs {
    /// Compose configuration files (default: compose.yaml, compose.yml, docker-compose.yml or
    /// docker-compose.yaml in this directory or a parent, plus its override file)
    #[arg(short = 'f', long = "file", value_name = "stringArray")]
    pub files: Vec<PathBuf>,
    /// Project name (default: COMPOSE_PROJECT_NAME, the top-level `name:`, or the directory's name)
    #[arg(short = 'p', long = "project-name", value_name = "string")]
    pub project_name: Option<String>,
    /// Alternate working directory (default: the directory of the first compose file)
    #[arg(long = "project-directory", value_name = "string")]
    pub project_directory: Option<PathBuf>,
    /// An alternate environment file (default: .env in the project directory)
    #[arg(long = "env-file", value_name = "stringArray")]
    pub env_file: Option<PathBuf>,
    /// Enable services of a profile (also COMPOSE_PROFILES, comma separated; "*" for all)
    #[arg(long = "profile", value_name = "stringArray")]
    pub profiles: Vec<String>,
    /// Progress output: auto, tty, plain, quiet
    #[arg(long, value_name = "string", default_value = "auto")]
    pub progress: String,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// `berth compose` subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create and start containers (networks, volumes and images first, services in depends_on order)
    Up(up::UpArgs),
    /// Stop and remove containers and networks (-v: volumes too, --rmi: images)
    Down(down::DownArgs),
    /// List the project's containers
    Ps(ps::PsArgs),
    /// List running compose projects
    Ls(ps::LsArgs),
    /// View output from containers
    Logs(logs::LogsArgs),
    /// Build or rebuild services' images
    Build(build::BuildArgs),
    /// Pull services' images
    Pull(build::PullArgs),
    /// Push services' images
    Push(build::PushArgs),
    /// Execute a command in a running service container
    Exec(exec::ExecArgs),
    /// Run a one-off command on a service
    Run(Box<exec::RunArgs>),
    /// Start existing containers
    Start(down::Services),
    /// Stop running containers without removing them
    Stop(down::StopArgs),
    /// Restart service containers
    Restart(down::StopArgs),
    /// Remove stopped service containers
    Rm(down::RmArgs),
    /// Parse, resolve and render the compose file in canonical form
    Config(ps::ConfigArgs),
}

/// `berth compose ...`; returns the exit code.
pub async fn compose(client: &Client, a: ComposeArgs) -> Result<i32> {
    let mode = Mode::parse(&a.progress)?;
    let g = Global { args: &a, mode };
    match &a.cmd {
        Cmd::Up(u) => up::up(client, &g, u).await,
        Cmd::Down(d) => down::down(client, &g, d).await,
        Cmd::Ps(p) => ps::ps(client, &g, p).await,
        Cmd::Ls(l) => ps::ls(client, l).await,
        Cmd::Logs(l) => logs::logs(client, &g, l).await,
        Cmd::Build(b) => build::build(client, &g, b).await,
        Cmd::Pull(p) => build::pull(client, &g, p).await,
        Cmd::Push(p) => build::push(client, &g, p).await,
        Cmd::Exec(e) => exec::exec(client, &g, e).await,
        Cmd::Run(r) => exec::run(client, &g, r).await,
        Cmd::Start(s) => down::start(client, &g, s).await,
        Cmd::Stop(s) => down::stop(client, &g, s, false).await,
        Cmd::Restart(s) => down::stop(client, &g, s, true).await,
        Cmd::Rm(r) => down::rm(client, &g, r).await,
        Cmd::Config(c) => ps::config(&g, c),
    }
}

/// The global flags and the progress mode.
pub struct Global<'a> {
    args: &'a ComposeArgs,
    mode: Mode,
}

impl Global<'_> {
    /// Load the project; `targets` are services named on the command line (they and their
    /// dependencies are enabled whatever their profiles).
    fn load(&self, targets: &[String]) -> Result<Loaded> {
        let a = self.args;
        let environ: BTreeMap<String, String> = std::env::vars().collect();
        let opts = compose::Options {
            files: a.files.clone(),
            project_name: a.project_name.clone(),
            project_dir: a.project_directory.clone(),
            env_file: a.env_file.clone(),
            profiles: a.profiles.clone(),
            targets: targets.to_vec(),
            cwd: std::env::current_dir()?,
            environ,
        };
        Ok(compose::load(&opts)?)
    }

    /// The project name without loading the files when `-p` is given (down/ps/logs work on a
    /// project whose files are gone, as Docker Compose's do).
    fn project_name_only(&self) -> Option<String> {
        self.args.project_name.clone().filter(|_| self.args.files.is_empty())
    }
}

/// A container of the project as `GET /containers/json` shows it.
#[derive(Debug, Clone)]
pub struct Ctr {
    id: String,
    name: String,
    service: String,
    number: u32,
    oneoff: bool,
    hash: String,
    state: String,
    raw: Value,
}

impl Ctr {
    fn running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "restarting" | "paused")
    }
}

/// The project's containers (`all`: stopped ones too), sorted by service and number.
async fn containers(client: &Client, project: &str, all: bool, oneoff: Option<bool>) -> Result<Vec<Ctr>> {
    let mut label = vec![format!("{}={project}", labels::PROJECT)];
    if let Some(o) = oneoff {
        label.push(format!("{}={}", labels::ONEOFF, if o { "True" } else { "False" }));
    }
    let filters = serde_json::json!({ "label": label });
    let q = query(&[("all", if all { "1" } else { "0" }), ("filters", &filters.to_string())]);
    let list = client.get(&format!("/containers/json{q}")).await?;
    let mut out: Vec<Ctr> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let label = |k: &str| {
                c.pointer(&format!("/Labels/{}", k.replace('/', "~1")))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            Ctr {
                id: c["Id"].as_str().unwrap_or("").to_string(),
                name: c["Names"][0].as_str().unwrap_or("").trim_start_matches('/').to_string(),
                service: label(labels::SERVICE),
                number: label(labels::NUMBER).parse().unwrap_or(0),
                oneoff: label(labels::ONEOFF) == "True",
                hash: label(labels::CONFIG_HASH),
                state: c["State"].as_str().unwrap_or("").to_string(),
                raw: c.clone(),
            }
        })
        .collect();
    out.sort_by(|a, b| (a.service.as_str(), a.number, a.name.as_str()).cmp(&(b.service.as_str(), b.number, b.name.as_str())));
    Ok(out)
}

/// Keep the containers of `services` (all when empty).
fn only(list: Vec<Ctr>, services: &[String]) -> Vec<Ctr> {
    list.into_iter()
        .filter(|c| services.is_empty() || services.contains(&c.service))
        .collect()
}
