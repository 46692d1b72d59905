//! `berth version` and `berth info`.

use anyhow::Result;
use serde_json::Value;

use super::client::Client;
use super::format::render;

/// Flags of `berth version` / `berth info`.
#[derive(clap::Args, Debug)]
pub struct SystemArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `berth version`.
pub async fn version(client: &Client, a: SystemArgs) -> Result<i32> {
    let client_info = serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": super::client::API_PREFIX.trim_start_matches("/v"),
        "Os": std::env::consts::OS,
        "Arch": std::env::consts::ARCH,
    });
    let server = client.get("/version").await;
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        let data = serde_json::json!({"Client": client_info, "Server": server.as_ref().ok()});
        print!("{}", render(f, &[data], &[])?);
        return server.map(|_| 0);
    }
    println!("Client:");
    println!(" Version:           {}", s(&client_info, "Version"));
    println!(" API version:       {}", s(&client_info, "ApiVersion"));
    println!(" OS/Arch:           {}/{}", s(&client_info, "Os"), s(&client_info, "Arch"));
    let server = server?;
    println!();
    println!("Server:");
    println!(" Engine:");
    println!("  Version:          {}", s(&server, "Version"));
    println!(
        "  API version:      {} (minimum version {})",
        s(&server, "ApiVersion"),
        s(&server, "MinAPIVersion")
    );
    if !s(&server, "GitCommit").is_empty() {
        println!("  Git commit:       {}", s(&server, "GitCommit"));
    }
    println!("  OS/Arch:          {}/{}", s(&server, "Os"), s(&server, "Arch"));
    if !s(&server, "KernelVersion").is_empty() {
        println!("  Kernel version:   {}", s(&server, "KernelVersion"));
    }
    Ok(0)
}

/// `berth info`.
pub async fn info(client: &Client, a: SystemArgs) -> Result<i32> {
    let v = client.get("/info").await?;
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        print!("{}", render(f, &[v], &[])?);
        return Ok(0);
    }
    let n = |k: &str| v.get(k).map(super::format::go_print).unwrap_or_default();
    println!("Server:");
    println!(" Containers: {}", n("Containers"));
    println!("  Running: {}", n("ContainersRunning"));
    println!("  Paused: {}", n("ContainersPaused"));
    println!("  Stopped: {}", n("ContainersStopped"));
    println!(" Images: {}", n("Images"));
    for (label, key) in [
        ("Server Version", "ServerVersion"),
        ("Storage Driver", "Driver"),
        ("Logging Driver", "LoggingDriver"),
        ("Cgroup Driver", "CgroupDriver"),
        ("Cgroup Version", "CgroupVersion"),
        ("Default Runtime", "DefaultRuntime"),
        ("Kernel Version", "KernelVersion"),
        ("Operating System", "OperatingSystem"),
        ("OSType", "OSType"),
        ("Architecture", "Architecture"),
        ("CPUs", "NCPU"),
        ("Name", "Name"),
        ("ID", "ID"),
        ("Docker Root Dir", "DockerRootDir"),
    ] {
        if let Some(x) = v.get(key) {
            let x = super::format::go_print(x);
            if !x.is_empty() {
                println!(" {label}: {x}");
            }
        }
    }
    if let Some(m) = v.get("MemTotal").and_then(Value::as_f64) {
        println!(" Total Memory: {}", super::units::bytes_size(m));
    }
    Ok(0)
}
