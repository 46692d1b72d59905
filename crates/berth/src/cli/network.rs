//! `berth network ...` and `berth port`.

use anyhow::{bail, Result};
use serde_json::{json, Map, Value};

use super::client::{query, seg, Client};
use super::each;
use super::format::render;

/// `berth network` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network (a bridge with its own subnet)
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network (a running one too)
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

/// Flags of `berth network create`.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the network (bridge only)
    #[arg(short = 'd', long, value_name = "string", default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format (default: a free /24... from Docker's pools)
    #[arg(long, value_name = "strings")]
    pub subnet: Vec<String>,
    /// Gateway for the subnet
    #[arg(long, value_name = "strings")]
    pub gateway: Vec<String>,
    /// Allocate container addresses from a sub-range
    #[arg(long = "ip-range", value_name = "strings")]
    pub ip_range: Vec<String>,
    /// Auxiliary addresses the network must not hand out (name=ip)
    #[arg(long = "aux-address", value_name = "map")]
    pub aux_address: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Driver options (com.docker.network.bridge.name=..., com.docker.network.driver.mtu=...)
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// Set metadata on a network (KEY=VALUE)
    #[arg(long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Network name
    pub name: String,
}

/// Flags of `berth network ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Filter output based on conditions provided (name=, id=, driver=, label=, type=, dangling=)
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

/// Flags of `berth network inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

/// Flags of `berth network rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    #[arg(required = true)]
    pub networks: Vec<String>,
}

/// Flags of `berth network prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>", "label=<key>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
}

/// Flags of `berth network connect`.
#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// IPv4 address on the network
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// Add a network-scoped alias for the container
    #[arg(long = "alias", value_name = "strings")]
    pub alias: Vec<String>,
    /// Add a link to another container (container[:alias])
    #[arg(long = "link", value_name = "list")]
    pub link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip", value_name = "strings")]
    pub link_local_ip: Vec<String>,
    /// Driver options for the endpoint (key=value)
    #[arg(long = "driver-opt", value_name = "strings")]
    pub driver_opt: Vec<String>,
    pub network: String,
    pub container: String,
}

/// Flags of `berth network disconnect`.
#[derive(clap::Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

/// Flags of `berth port`.
#[derive(clap::Args, Debug)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

fn key_values(items: &[String], what: &str) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for i in items {
        let Some((k, v)) = i.split_once('=') else {
            bail!("invalid {what} {i:?}: use key=value");
        };
        m.insert(k.to_string(), json!(v));
    }
    Ok(m)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `berth network ...`.
pub async fn network(client: &Client, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create(a) => create(client, a).await,
        NetworkCmd::Ls(a) => ls(client, a).await,
        NetworkCmd::Inspect(a) => {
            let mut found = Vec::new();
            for n in &a.networks {
                found.push(client.get(&format!("/networks/{}", seg(n))).await?);
            }
            match a.format.filter(|f| !f.is_empty()) {
                Some(f) => print!("{}", render(&f, &found, &[])?),
                None => println!("{}", serde_json::to_string_pretty(&found)?),
            }
            Ok(0)
        }
        NetworkCmd::Rm(a) => Ok(each(&a.networks, async |n: &str| {
            client.delete(&format!("/networks/{}", seg(n))).await?;
            println!("{n}");
            Ok(())
        })
        .await),
        NetworkCmd::Prune(a) => {
            if !a.force {
                eprint!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
                let mut answer = String::new();
                let _ = std::io::stdin().read_line(&mut answer);
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(0);
                }
            }
            let filters = super::ps::filters_json(&a.filter)?;
            let q = if a.filter.is_empty() {
                String::new()
            } else {
                query(&[("filters", filters)])
            };
            let v = client.post(&format!("/networks/prune{q}"), None).await?;
            let gone: Vec<&str> = v["NetworksDeleted"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for n in gone {
                    println!("{n}");
                }
            }
            Ok(0)
        }
        NetworkCmd::Connect(a) => {
            let mut ep = Map::new();
            let mut ipam = Map::new();
            if let Some(ip) = &a.ip {
                ipam.insert("IPv4Address".into(), json!(ip));
            }
            if !a.link_local_ip.is_empty() {
                ipam.insert("LinkLocalIPs".into(), json!(a.link_local_ip));
            }
            if !ipam.is_empty() {
                ep.insert("IPAMConfig".into(), Value::Object(ipam));
            }
            if !a.alias.is_empty() {
                ep.insert("Aliases".into(), json!(a.alias));
            }
            if !a.link.is_empty() {
                ep.insert("Links".into(), json!(a.link));
            }
            if !a.driver_opt.is_empty() {
                ep.insert("DriverOpts".into(), Value::Object(key_values(&a.driver_opt, "driver option")?));
            }
            let body = json!({"Container": a.container, "EndpointConfig": ep});
            client.post(&format!("/networks/{}/connect", seg(&a.network)), Some(&body)).await?;
            Ok(0)
        }
        NetworkCmd::Disconnect(a) => {
            let body = json!({"Container": a.container, "Force": a.force});
            client
                .post(&format!("/networks/{}/disconnect", seg(&a.network)), Some(&body))
                .await?;
            Ok(0)
        }
    }
}

async fn create(client: &Client, a: CreateArgs) -> Result<i32> {
    if a.gateway.len() > a.subnet.len() || a.ip_range.len() > a.subnet.len() {
        bail!("every --gateway and --ip-range needs a --subnet");
    }
    let mut config = Vec::new();
    for (i, subnet) in a.subnet.iter().enumerate() {
        let mut pool = json!({"Subnet": subnet});
        if let Some(g) = a.gateway.get(i) {
            pool["Gateway"] = json!(g);
        }
        if let Some(r) = a.ip_range.get(i) {
            pool["IPRange"] = json!(r);
        }
        if i == 0 && !a.aux_address.is_empty() {
            pool["AuxiliaryAddresses"] = Value::Object(key_values(&a.aux_address, "aux-address")?);
        }
        config.push(pool);
    }
    if a.subnet.is_empty() && !a.aux_address.is_empty() {
        bail!("--aux-address needs a --subnet");
    }
    let body = json!({
        "Name": a.name,
        "Driver": a.driver,
        "Internal": a.internal,
        "Attachable": a.attachable,
        "IPAM": {"Driver": "default", "Config": config, "Options": {}},
        "Options": key_values(&a.opt, "option")?,
        "Labels": key_values(&a.label, "label")?,
        "CheckDuplicate": true,
    });
    let v = client.post("/networks/create", Some(&body)).await?;
    if let Some(w) = v.get("Warning").and_then(Value::as_str).filter(|w| !w.is_empty()) {
        eprintln!("WARNING: {w}");
    }
    println!("{}", s(&v, "Id"));
    Ok(0)
}

async fn ls(client: &Client, a: LsArgs) -> Result<i32> {
    let q = if a.filter.is_empty() {
        String::new()
    } else {
        query(&[("filters", super::ps::filters_json(&a.filter)?)])
    };
    let list = client.get(&format!("/networks{q}")).await?;
    let rows: Vec<Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let id = s(n, "Id");
            let id = if a.no_trunc { id } else { &id[..12.min(id.len())] };
            json!({"ID": id, "Name": s(n, "Name"), "Driver": s(n, "Driver"), "Scope": s(n, "Scope"),
                   "Internal": n["Internal"].as_bool().unwrap_or(false).to_string(), "CreatedAt": s(n, "Created")})
        })
        .collect();
    let f = match (a.format.filter(|f| !f.is_empty()), a.quiet) {
        (Some(f), _) => f,
        (None, true) => "{{.ID}}".into(),
        (None, false) => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".into(),
    };
    let headers = [
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("Internal", "INTERNAL"),
        ("CreatedAt", "CREATED"),
    ];
    print!("{}", render(&f, &rows, &headers)?);
    Ok(0)
}

/// `berth port`: a container's published ports, as `docker port` lists them.
pub async fn port(client: &Client, a: PortArgs) -> Result<i32> {
    let info = client.get(&format!("/containers/{}/json", seg(&a.container))).await?;
    let ports = info
        .pointer("/NetworkSettings/Ports")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let wanted = a
        .port
        .as_ref()
        .map(|p| if p.contains('/') { p.clone() } else { format!("{p}/tcp") });
    let mut found = false;
    for (k, bindings) in &ports {
        if wanted.as_ref().is_some_and(|w| w != k) {
            continue;
        }
        for b in bindings.as_array().into_iter().flatten() {
            found = true;
            let addr = format!("{}:{}", s(b, "HostIp"), s(b, "HostPort"));
            match &wanted {
                Some(_) => println!("{addr}"),
                None => println!("{k} -> {addr}"),
            }
        }
    }
    if let (Some(w), false) = (&wanted, found) {
        bail!("Error: No public port '{w}' published for {}", a.container);
    }
    Ok(0)
}
