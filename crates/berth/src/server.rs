//! What the binary's long-running servers (`berth daemon`, `berth registry serve`) share: their
//! logging and runtime, and how they are told to stop.

use anyhow::Context;

/// Logging to stderr with `log_level`'s filter, and the runtime a long-running server uses
/// (`berth daemon`, `berth registry serve`).
pub fn runtime(log_level: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(log_level).context("--log-level")?)
        .with_writer(std::io::stderr)
        .init();
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// Resolve on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
