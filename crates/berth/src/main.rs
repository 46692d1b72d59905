//! `berth`: the one binary. `berth daemon` runs the engine; `berth shim` is the per-container shim
//! (started by the daemon); every other command is a client of the daemon's Docker Engine API.

mod cli;
mod daemon;
mod dashboard;
mod registry_cmd;
mod server;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Berth: containers and orchestration in one binary",
    propagate_version = true
)]
struct Opts {
    /// Daemon socket to connect to, unix://PATH (DOCKER_HOST is left to the docker CLI, so the
    /// two can point at different daemons).
    #[arg(
        short = 'H',
        long,
        global = true,
        env = "BERTH_HOST",
        default_value = "unix:///run/berth/berth.sock"
    )]
    host: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the Berth daemon (Docker Engine API on a unix socket).
    Daemon(Box<daemon::DaemonArgs>),
    /// Print the admin kubeconfig of the daemon's Kubernetes API server (for kubectl and helm:
    /// `berth kubeconfig > ~/.kube/config`, or `KUBECONFIG=ROOT/kubeconfig`), or with --user
    /// one for another user, whose client certificate is signed now by the cluster's CA (what
    /// that user may do is what RBAC grants the user and its group)
    Kubeconfig {
        /// The daemon's data root
        #[arg(long, default_value = "/var/lib/berth")]
        root: std::path::PathBuf,
        /// The user the certificate names (its common name)
        #[arg(long)]
        user: Option<String>,
        /// A group the user is in (the certificate's organization)
        #[arg(long, requires = "user")]
        group: Option<String>,
    },
    /// Run a standalone OCI registry.
    Registry {
        #[command(subcommand)]
        cmd: registry_cmd::RegistryCmd,
    },
    #[command(flatten)]
    Client(cli::Command),
}

/// `berth shim`: the per-container shim the daemon starts (not for direct use). It is parsed on
/// its own, before the rest of the CLI is defined: one starts for every container, and building
/// the whole command tree would cost it a few hundred microseconds.
#[derive(Parser)]
#[command(name = "berth shim", hide = true)]
struct ShimOpts {
    #[arg(long)]
    id: String,
    #[arg(long)]
    bundle: std::path::PathBuf,
    #[arg(long)]
    state_dir: std::path::PathBuf,
    #[arg(long)]
    log: std::path::PathBuf,
    #[arg(long)]
    runtime_root: std::path::PathBuf,
    #[arg(long)]
    cgroup: String,
    #[arg(long)]
    tty: bool,
    #[arg(long)]
    stdin: bool,
    /// Initial TTY size as ROWSxCOLS.
    #[arg(long)]
    console_size: Option<String>,
    /// An external OCI runtime binary to use instead of libcontainer.
    #[arg(long)]
    runtime: Option<std::path::PathBuf>,
    /// Rotate the log past this many bytes (0: never).
    #[arg(long, default_value_t = 0)]
    log_max_size: u64,
    /// Log files kept when rotating, the current one included.
    #[arg(long, default_value_t = 1)]
    log_max_files: u32,
}

fn main() {
    match std::env::args_os().nth(1) {
        Some(a) if a == "shim" => shim(ShimOpts::parse_from(std::env::args_os().skip(1))),
        Some(a) if a == "shim-zygote" => {
            let z = ZygoteOpts::parse_from(std::env::args_os().skip(1));
            shim_logging();
            runtime::zygote::serve(&z.socket)
        }
        _ => {}
    }
    // Usage errors exit 125, as the docker CLI's do (help and version still exit 0).
    let opts = match Opts::try_parse() {
        Ok(o) => o,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            std::process::exit(125);
        }
        Err(e) => e.exit(),
    };
    match opts.cmd {
        Cmd::Daemon(a) => {
            if let Err(e) = daemon::run(*a) {
                eprintln!("berth daemon: {e:#}");
                std::process::exit(1);
            }
        }
        Cmd::Kubeconfig { root, user, group } => {
            let path = root.join("kubeconfig");
            let admin = std::fs::read_to_string(&path);
            match admin {
                Ok(k) if user.is_some() => {
                    let server = k.lines().find_map(|l| l.trim().strip_prefix("server:")).unwrap_or("").trim();
                    let groups: Vec<&str> = group.iter().map(String::as_str).collect();
                    let user = user.as_deref().unwrap_or_default();
                    match kube::pki::Pki::user_kubeconfig(&root.join("kube/pki"), server, user, &groups) {
                        Ok(k) => print!("{k}"),
                        Err(e) => {
                            eprintln!("berth kubeconfig: {e}");
                            std::process::exit(1);
                        }
                    }
                }
                Ok(k) => print!("{k}"),
                Err(e) => {
                    eprintln!(
                        "berth kubeconfig: {}: {e} (is `berth daemon --root {}` running with its Kubernetes API?)",
                        path.display(),
                        root.display()
                    );
                    std::process::exit(1);
                }
            }
        }
        Cmd::Registry { cmd } => {
            if let Err(e) = registry_cmd::run(cmd) {
                eprintln!("berth registry: {e:#}");
                std::process::exit(1);
            }
        }
        Cmd::Client(c) => {
            let code = cli::run(&opts.host, c);
            std::process::exit(code);
        }
    }
}

/// `berth shim-zygote`: forks shims for the daemon that started it (not for direct use).
#[derive(Parser)]
#[command(name = "berth shim-zygote", hide = true)]
struct ZygoteOpts {
    #[arg(long)]
    socket: std::path::PathBuf,
}

/// The shim's logging: to stderr, which is its log file in the container's state directory.
fn shim_logging() {
    let filter = std::env::var("BERTH_SHIM_LOG").unwrap_or_else(|_| "error".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

fn shim(s: ShimOpts) -> ! {
    shim_logging();
    runtime::shim::main(runtime::shim::ShimArgs {
        id: s.id,
        bundle: s.bundle,
        state_dir: s.state_dir,
        log_path: s.log,
        runtime_root: s.runtime_root,
        cgroup_path: s.cgroup,
        tty: s.tty,
        stdin: s.stdin,
        console_size: s.console_size.as_deref().and_then(|v| {
            let (h, w) = v.split_once('x')?;
            Some((h.parse().ok()?, w.parse().ok()?))
        }),
        runtime: s.runtime,
        log_rotation: runtime::shim::LogRotation {
            max_size: s.log_max_size,
            max_files: s.log_max_files,
        },
    })
}
