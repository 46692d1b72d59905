//! The docker-like client: every command talks to the daemon's Docker Engine API (v1.43) over its
//! unix socket. One module per command or command group; `client` is the HTTP plumbing, `format`
//! the Go-template/table output, `stream` the attach/exec streams, `units` the humanizers.

mod attest;
mod build;
mod client;
mod compose;
mod cp;
mod create;
mod deploy;
mod exec;
mod format;
mod images;
mod inspect;
mod lifecycle;
mod logs;
mod network;
mod notebook;
mod ps;
mod registry;
mod run;
mod stats;
mod stream;
mod system;
pub(crate) mod units;
mod volume;

use anyhow::Result;
use clap::Subcommand;

use client::Client;

/// Client commands (flattened into `berth`'s own subcommands).
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(Box<run::RunArgs>),
    /// Create a new container (prints its ID)
    #[command(disable_help_flag = true)]
    Create(Box<create::CreateOpts>),
    /// Start one or more stopped containers
    Start(run::StartArgs),
    /// List containers
    #[command(visible_alias = "container-ls")]
    Ps(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(run::AttachArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Stop one or more running containers
    Stop(lifecycle::StopArgs),
    /// Kill one or more running containers
    Kill(lifecycle::KillArgs),
    /// Restart one or more containers
    Restart(lifecycle::StopArgs),
    /// Pause all processes within one or more containers
    Pause(lifecycle::Containers),
    /// Unpause all processes within one or more containers
    Unpause(lifecycle::Containers),
    /// Remove one or more containers
    Rm(lifecycle::RmArgs),
    /// Return low-level information on containers, images or volumes
    Inspect(inspect::InspectArgs),
    /// Display the running processes of a container
    Top(stats::TopArgs),
    /// Display a snapshot of containers' resource usage statistics
    Stats(stats::StatsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(lifecycle::Containers),
    /// Rename a container
    Rename(lifecycle::RenameArgs),
    /// Update configuration (resources, restart policy) of one or more containers
    Update(lifecycle::UpdateArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(cp::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(cp::DiffArgs),
    /// Build an image from a Dockerfile
    ///
    /// Builds are reproducible by default: the image's created time, its history times and the time
    /// of every file written into a layer are SOURCE_DATE_EPOCH when it is set (in the environment
    /// or as --build-arg), and otherwise 0 (1970-01-01T00:00:00Z). Layer tars are written sorted,
    /// with numeric owners, without atime/ctime, uncompressed. The same Dockerfile and context (by
    /// content, whatever the files' own times) give the same image ID on any machine. Use
    /// --timestamp now for Docker's behaviour (the current time, real file times).
    ///
    /// Steps are cached by their input (the parent's config and layers, the instruction after
    /// substitution, and for COPY/ADD the content of the sources); --no-cache runs every step.
    Build(Box<build::BuildArgs>),
    /// Create a new image from a container's changes
    Commit(images::CommitArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCmd),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Remove one or more images
    Rmi(images::RmiArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(images::SaveArgs),
    /// Download an image from a registry
    Pull(registry::PullArgs),
    /// Upload an image to a registry
    Push(registry::PushArgs),
    /// Log in to a registry (credentials are kept in ~/.berth/config.json)
    Login(registry::LoginArgs),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCmd),
    /// Show the Berth version information
    Version(system::SystemArgs),
    /// Display system-wide information
    Info(system::SystemArgs),
    /// Get real time events from the server
    Events(system::EventsArgs),
    /// Manage Berth: disk usage, pruning, events
    #[command(subcommand)]
    System(system::SystemCmd),
    /// Manage networks: create, ls, inspect, rm, prune, connect, disconnect
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// List port mappings or a specific mapping for the container
    Port(network::PortArgs),
    /// Define and run multi-container applications (the Compose Specification)
    Compose(compose::ComposeArgs),
    /// Deploy an image, or a directory built first, on the daemon's Kubernetes API: a
    /// Deployment, a Service, an Ingress host NAME.localhost (and with --autoscale a
    /// HorizontalPodAutoscaler); waits until it is ready and prints its URL. Deploying again
    /// is a rolling update; --dry-run -o yaml prints the manifests instead
    Deploy(Box<deploy::DeployArgs>),
    /// Remove what `berth deploy` made for an app
    Undeploy(deploy::UndeployArgs),
    /// Run a Jupyter server in a container built from a project's Python environment, the
    /// project directory mounted (the work stays in it on the host); prints the token URL
    Notebook(notebook::NotebookArgs),
    /// Print the URL (with its access token) of the web dashboard the daemon serves on
    /// loopback: containers, images, compose projects, pods, deployments and services, their
    /// logs and live CPU/memory, with stop/restart/scale/roll-back actions
    Dashboard(system::DashboardArgs),
}

/// `berth image` subcommands.
#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images
    #[command(visible_alias = "list")]
    Ls(images::ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(images::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(images::TagArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Save one or more images to a tar archive
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(images::ImportArgs),
    /// Remove unused images
    Prune(images::PruneArgs),
    /// Show what went into an image Berth built: its provenance or its SBOM
    ///
    /// Every image Berth builds carries an in-toto SLSA v1 provenance statement (the Dockerfile,
    /// generated or not, and its text; the context's digest; the base images by digest; the build
    /// args; the Python packages pip resolved) and an SPDX 2.3 SBOM (the dpkg, apk and Python
    /// packages in the image). Both are stored beside the image as OCI referrers of its manifest,
    /// and go with it on push and pull.
    Provenance(attest::ProvenanceArgs),
    /// Show which layers, files and packages changed between two images
    Diff(attest::DiffArgs),
    /// Build an image from a Dockerfile
    ///
    /// Builds are reproducible by default: the image's created time, its history times and the time
    /// of every file written into a layer are SOURCE_DATE_EPOCH when it is set (in the environment
    /// or as --build-arg), and otherwise 0 (1970-01-01T00:00:00Z). Layer tars are written sorted,
    /// with numeric owners, without atime/ctime, uncompressed. The same Dockerfile and context (by
    /// content, whatever the files' own times) give the same image ID on any machine. Use
    /// --timestamp now for Docker's behaviour (the current time, real file times).
    ///
    /// Steps are cached by their input (the parent's config and layers, the instruction after
    /// substitution, and for COPY/ADD the content of the sources); --no-cache runs every step.
    Build(Box<build::BuildArgs>),
}

/// Flags of `image inspect`.
#[derive(clap::Args, Debug)]
pub struct ImageInspectArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    /// Images
    #[arg(required = true, value_name = "IMAGE")]
    pub names: Vec<String>,
}

/// Run a client command against the daemon at `host`; returns the process exit code.
pub fn run(host: &str, cmd: Command) -> i32 {
    // docker exits 125 when `run`/`create` themselves fail (not the container).
    let fail_code = match cmd {
        Command::Run(_) | Command::Create(_) => 125,
        _ => 1,
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let res = rt.block_on(async {
        let client = Client::new(host)?;
        dispatch(&client, cmd).await
    });
    // A blocking stdin read may still be pending; do not wait for it.
    rt.shutdown_background();
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e:#}");
            fail_code
        }
    }
}

async fn dispatch(c: &Client, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Run(a) => run::run(c, *a).await,
        Command::Create(a) => create::create(c, *a).await,
        Command::Start(a) => run::start(c, a).await,
        Command::Ps(a) => ps::ps(c, a).await,
        Command::Logs(a) => logs::logs(c, a).await,
        Command::Attach(a) => run::attach(c, a).await,
        Command::Exec(a) => exec::exec(c, a).await,
        Command::Stop(a) => lifecycle::stop(c, a).await,
        Command::Kill(a) => lifecycle::kill(c, a).await,
        Command::Restart(a) => lifecycle::restart(c, a).await,
        Command::Pause(a) => lifecycle::pause(c, a, "pause").await,
        Command::Unpause(a) => lifecycle::pause(c, a, "unpause").await,
        Command::Rm(a) => lifecycle::rm(c, a).await,
        Command::Inspect(a) => inspect::inspect(c, a, None).await,
        Command::Top(a) => stats::top(c, a).await,
        Command::Stats(a) => stats::stats(c, a).await,
        Command::Wait(a) => lifecycle::wait(c, a).await,
        Command::Rename(a) => lifecycle::rename(c, a).await,
        Command::Update(a) => lifecycle::update(c, a).await,
        Command::Cp(a) => cp::cp(c, a).await,
        Command::Export(a) => cp::export(c, a).await,
        Command::Diff(a) => cp::diff(c, a).await,
        Command::Build(a) => build::build(c, *a).await,
        Command::Deploy(a) => deploy::deploy(c, *a).await,
        Command::Undeploy(a) => deploy::undeploy(a).await,
        Command::Notebook(a) => notebook::notebook(c, a).await,
        Command::Dashboard(a) => system::dashboard(c, a).await,
        Command::Commit(a) => images::commit(c, a).await,
        Command::Images(a) => images::images(c, a).await,
        Command::Image(sub) => match sub {
            ImageCmd::Ls(a) => images::images(c, a).await,
            ImageCmd::Inspect(a) => {
                let args = inspect::InspectArgs {
                    format: a.format,
                    kind: None,
                    size: false,
                    names: a.names,
                };
                inspect::inspect(c, args, Some("image")).await
            }
            ImageCmd::Rm(a) => images::rmi(c, a).await,
            ImageCmd::Tag(a) => images::tag(c, a).await,
            ImageCmd::History(a) => images::history(c, a).await,
            ImageCmd::Save(a) => images::save(c, a).await,
            ImageCmd::Load(a) => images::load(c, a).await,
            ImageCmd::Import(a) => images::import(c, a).await,
            ImageCmd::Prune(a) => images::prune(c, a).await,
            ImageCmd::Provenance(a) => attest::provenance(c, a).await,
            ImageCmd::Diff(a) => attest::diff(c, a).await,
            ImageCmd::Build(a) => build::build(c, *a).await,
        },
        Command::Tag(a) => images::tag(c, a).await,
        Command::Rmi(a) => images::rmi(c, a).await,
        Command::History(a) => images::history(c, a).await,
        Command::Save(a) => images::save(c, a).await,
        Command::Pull(a) => registry::pull(c, a).await,
        Command::Push(a) => registry::push(c, a).await,
        Command::Login(a) => registry::login(c, a).await,
        Command::Logout(a) => registry::logout(c, a).await,
        Command::Load(a) => images::load(c, a).await,
        Command::Import(a) => images::import(c, a).await,
        Command::Volume(v) => volume::volume(c, v).await,
        Command::Version(a) => system::version(c, a).await,
        Command::Info(a) => system::info(c, a).await,
        Command::Events(a) => system::events(c, a).await,
        Command::System(cmd) => system::system(c, cmd).await,
        Command::Network(cmd) => network::network(c, cmd).await,
        Command::Port(a) => network::port(c, a).await,
        Command::Compose(a) => compose::compose(c, a).await,
    }
}

/// Apply `f` to each name; print each failure to stderr and return 1 if any failed (docker's habit
/// for multi-container commands).
pub(crate) async fn each(names: &[String], mut f: impl AsyncFnMut(&str) -> Result<()>) -> i32 {
    let mut code = 0;
    for n in names {
        if let Err(e) = f(n).await {
            eprintln!("{e:#}");
            code = 1;
        }
    }
    code
}
