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

/// Flags of `berth events`.
#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Show events created since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Stream events until this timestamp (without it, until interrupted)
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
    /// Filter output based on conditions provided (e.g. type=container, event=start, container=NAME)
    #[arg(short = 'f', long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template ('{{json .}}' for JSON lines)
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

/// One event as the docker CLI prints it:
/// `TIME TYPE ACTION ID (key=value, ...)`.
fn event_line(e: &Value) -> String {
    let nanos = e.get("timeNano").and_then(Value::as_i64).unwrap_or(0);
    let t = chrono::DateTime::from_timestamp(nanos.div_euclid(1_000_000_000), nanos.rem_euclid(1_000_000_000) as u32)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
        .unwrap_or_default();
    let actor = e.get("Actor").cloned().unwrap_or(Value::Null);
    let mut attrs: Vec<String> = actor
        .get("Attributes")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    attrs.sort();
    let attrs = if attrs.is_empty() {
        String::new()
    } else {
        format!(" ({})", attrs.join(", "))
    };
    format!("{t} {} {} {}{attrs}", s(e, "Type"), s(e, "Action"), s(&actor, "ID"))
}

/// `berth events`: the daemon's event stream, until --until or an interrupt.
pub async fn events(client: &Client, a: EventsArgs) -> Result<i32> {
    let now = chrono::Utc::now();
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(s) = &a.since {
        q.push(("since", super::units::parse_timestamp(s, now)?));
    }
    if let Some(u) = &a.until {
        q.push(("until", super::units::parse_timestamp(u, now)?));
    }
    if !a.filter.is_empty() {
        q.push(("filters", super::ps::filters_json(&a.filter)?));
    }
    let resp = client
        .send(
            hyper::Method::GET,
            &format!("/events{}", super::client::query(&q)),
            super::client::empty(),
            None,
            false,
        )
        .await?;
    let mut buf: Vec<u8> = Vec::new();
    let format = a.format.filter(|f| !f.is_empty());
    super::client::for_each_chunk(resp.into_body(), |d| {
        use std::io::Write;
        buf.extend_from_slice(d);
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let Ok(e) = serde_json::from_slice::<Value>(&line) else { continue };
            let text = match &format {
                Some(f) => render(f, &[e], &[])?,
                None => format!("{}\n", event_line(&e)),
            };
            let mut out = std::io::stdout();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    })
    .await?;
    Ok(0)
}

/// `berth system` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum SystemCmd {
    /// Show docker disk usage: images, containers, local volumes, build cache
    Df(DfArgs),
    /// Remove stopped containers, dangling images and the build cache (with --volumes, unused
    /// volumes too)
    Prune(PruneArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Display system-wide information
    Info(SystemArgs),
}

/// Flags of `berth system df`.
#[derive(clap::Args, Debug)]
pub struct DfArgs {
    /// Format output using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

/// Flags of `berth system prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Prune anonymous volumes that no container uses
    #[arg(long)]
    pub volumes: bool,
    /// Do not prompt for confirmation (berth never prompts; accepted for docker compatibility)
    #[arg(short = 'f', long)]
    pub force: bool,
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn size(n: u64) -> String {
    super::units::human_size_prec(n as f64, 4)
}

/// `berth system df`: the docker CLI's summary table.
pub async fn df(client: &Client, a: DfArgs) -> Result<i32> {
    let v = client.get("/system/df").await?;
    let arr = |k: &str| v.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    let (images, containers, volumes) = (arr("Images"), arr("Containers"), arr("Volumes"));
    let layers = u(&v, "LayersSize");
    let active_images = images.iter().filter(|i| u(i, "Containers") > 0).count();
    let image_reclaim: u64 = images
        .iter()
        .filter(|i| u(i, "Containers") == 0)
        .map(|i| u(i, "Size").saturating_sub(u(i, "SharedSize")))
        .sum();
    let ctr_size: u64 = containers.iter().map(|c| u(c, "SizeRw")).sum();
    let running = |c: &&Value| c.get("State").and_then(Value::as_str) == Some("running");
    let ctr_reclaim: u64 = containers.iter().filter(|c| !running(c)).map(|c| u(c, "SizeRw")).sum();
    let vsize = |x: &Value| x.get("UsageData").map(|d| u(d, "Size")).unwrap_or(0);
    let vrefs = |x: &Value| x.get("UsageData").map(|d| u(d, "RefCount")).unwrap_or(0);
    let vol_size: u64 = volumes.iter().map(vsize).sum();
    let vol_reclaim: u64 = volumes.iter().filter(|x| vrefs(x) == 0).map(vsize).sum();
    let pct = |r: u64, t: u64| (r * 100).checked_div(t).unwrap_or(0);
    let rows = [
        ("Images", images.len(), active_images, layers, image_reclaim),
        (
            "Containers",
            containers.len(),
            containers.iter().filter(running).count(),
            ctr_size,
            ctr_reclaim,
        ),
        (
            "Local Volumes",
            volumes.len(),
            volumes.iter().filter(|x| vrefs(x) > 0).count(),
            vol_size,
            vol_reclaim,
        ),
        ("Build Cache", 0, 0, 0, 0),
    ]
    .map(|(t, total, active, sz, reclaim)| {
        serde_json::json!({
            "Type": t, "TotalCount": total.to_string(), "Active": active.to_string(), "Size": size(sz),
            "Reclaimable": format!("{} ({}%)", size(reclaim), pct(reclaim, sz)),
        })
    });
    let f = a
        .format
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}".into());
    let headers = [
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ];
    print!("{}", render(&f, &rows, &headers)?);
    Ok(0)
}

/// `berth system prune`: containers, then images, the build cache (and volumes), as docker's does.
pub async fn prune(client: &Client, a: PruneArgs) -> Result<i32> {
    let mut reclaimed = 0u64;
    let c = client.post("/containers/prune", None).await?;
    for id in c.get("ContainersDeleted").and_then(Value::as_array).into_iter().flatten() {
        println!("Deleted Container: {}", id.as_str().unwrap_or(""));
    }
    reclaimed += u(&c, "SpaceReclaimed");
    if a.volumes {
        let v = client.post("/volumes/prune", None).await?;
        for n in v.get("VolumesDeleted").and_then(Value::as_array).into_iter().flatten() {
            println!("Deleted Volume: {}", n.as_str().unwrap_or(""));
        }
        reclaimed += u(&v, "SpaceReclaimed");
    }
    let filters = if a.all {
        r#"{"dangling":["false"]}"#
    } else {
        r#"{"dangling":["true"]}"#
    };
    let i = client
        .post(&format!("/images/prune{}", super::client::query(&[("filters", filters)])), None)
        .await?;
    for d in i.get("ImagesDeleted").and_then(Value::as_array).into_iter().flatten() {
        for (k, label) in [("Untagged", "untagged"), ("Deleted", "deleted")] {
            if let Some(x) = d.get(k).and_then(Value::as_str) {
                println!("{label}: {x}");
            }
        }
    }
    reclaimed += u(&i, "SpaceReclaimed");
    let b = client.post("/build/prune", None).await?;
    for id in b.get("CachesDeleted").and_then(Value::as_array).into_iter().flatten() {
        println!("Deleted build cache: {}", id.as_str().unwrap_or(""));
    }
    reclaimed += u(&b, "SpaceReclaimed");
    println!("Total reclaimed space: {}", size(reclaimed));
    Ok(0)
}

/// `berth system ...`.
pub async fn system(client: &Client, cmd: SystemCmd) -> Result<i32> {
    match cmd {
        SystemCmd::Df(a) => df(client, a).await,
        SystemCmd::Prune(a) => prune(client, a).await,
        SystemCmd::Events(a) => events(client, a).await,
        SystemCmd::Info(a) => info(client, a).await,
    }
}

/// `berth dashboard`.
#[derive(clap::Args, Debug)]
pub struct DashboardArgs {
    /// Print the address without the access token
    #[arg(long)]
    pub no_token: bool,
}

/// `berth dashboard`: the dashboard's URL, from the daemon (`GET /berth/dashboard`).
pub async fn dashboard(client: &Client, a: DashboardArgs) -> Result<i32> {
    let v = client.get("/berth/dashboard").await?;
    let url = v["URL"].as_str().unwrap_or("");
    if a.no_token {
        println!("{}", url.split('?').next().unwrap_or(url));
    } else {
        println!("{url}");
    }
    Ok(0)
}
