//! `berth daemon`: the engine behind the Docker Engine API on a unix socket.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// Directory for persistent state (images, containers, volumes).
    #[arg(long, default_value = "/var/lib/berth")]
    pub root: PathBuf,
    /// Directory for runtime state (shim sockets, OCI runtime state).
    #[arg(long, default_value = "/run/berth")]
    pub exec_root: PathBuf,
    /// Unix socket for the Docker Engine API (default: EXEC_ROOT/berth.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Static init binary bind-mounted for `--init` (default: tini-static or docker-init if installed).
    #[arg(long)]
    pub init_path: Option<PathBuf>,
    /// A registry (host[:port]) to reach over plain HTTP or without verifying its TLS certificate
    /// (loopback registries always are); may be repeated.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Log filter (e.g. info, debug, engine=debug).
    #[arg(long, default_value = "info", env = "BERTH_LOG")]
    pub log_level: String,
}

pub fn run(a: DaemonArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&a.log_level).context("--log-level")?)
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(serve(a))
}

async fn serve(a: DaemonArgs) -> anyhow::Result<()> {
    let socket = a.socket.clone().unwrap_or_else(|| a.exec_root.join("berth.sock"));
    std::fs::create_dir_all(&a.root).with_context(|| format!("create {}", a.root.display()))?;
    std::fs::create_dir_all(&a.exec_root).with_context(|| format!("create {}", a.exec_root.display()))?;
    let root = std::fs::canonicalize(&a.root)?;
    let exec_root = std::fs::canonicalize(&a.exec_root)?;
    let init_path = a.init_path.clone().or_else(|| {
        ["/usr/bin/tini-static", "/usr/libexec/docker/docker-init", "/usr/bin/docker-init"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    });
    let exe = std::env::current_exe().context("locating the berth binary")?;
    let cfg = engine::EngineConfig {
        root,
        exec_root,
        exe,
        init_path,
        insecure_registries: a.insecure_registries.clone(),
    };
    let engine = engine::Engine::open(cfg).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket file left by a previous daemon is stale if nothing answers on it.
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            anyhow::bail!("another daemon is already listening on {}", socket.display());
        }
        std::fs::remove_file(&socket)?;
    }
    let listener = tokio::net::UnixListener::bind(&socket).with_context(|| format!("bind {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660))?;
    tracing::info!(socket = %socket.display(), "berth daemon listening");
    let app = engine::api::app(engine);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    use axum::ServiceExt;
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown)
        .await?;
    let _ = std::fs::remove_file(&socket);
    // Containers keep running under their shims (live restore).
    Ok(())
}
