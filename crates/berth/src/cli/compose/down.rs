//! `berth compose down`, `start`, `stop`, `restart`, `rm`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use compose::plan::{self, labels};
use serde_json::{json, Value};

use super::super::client::{is_status, query, seg, Client};
use super::progress::Progress;
use super::up::remove;
use super::{containers, only, Global};

/// Flags of `berth compose down`.
#[derive(clap::Args, Debug)]
pub struct DownArgs {
    /// Remove named volumes declared in the volumes section and anonymous volumes of the containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove images used by services: "local" only those without a custom tag, "all" every one
    #[arg(long, value_name = "type")]
    pub rmi: Option<String>,
    /// Remove containers for services not defined in the compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Seconds to wait for each container to stop
    #[arg(short = 't', long, value_name = "int")]
    pub timeout: Option<i64>,
}

/// Services named on the command line (default: all).
#[derive(clap::Args, Debug)]
pub struct Services {
    /// Services
    pub services: Vec<String>,
}

/// Flags of `berth compose stop` / `restart`.
#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait for each container to stop
    #[arg(short = 't', long, value_name = "int")]
    pub timeout: Option<i64>,
    /// Services
    pub services: Vec<String>,
}

/// Flags of `berth compose rm`.
#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short = 's', long)]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Services
    pub services: Vec<String>,
}

/// `berth compose down`.
pub async fn down(client: &Client, g: &Global<'_>, a: &DownArgs) -> Result<i32> {
    if let Some(r) = &a.rmi {
        if r != "local" && r != "all" {
            bail!("invalid --rmi {r:?}: use local or all");
        }
    }
    let l = g.load(&[])?;
    let p = &l.project;
    let mut pr = Progress::new(g.mode, "Running");
    let list = containers(client, &p.name, true, None).await?;
    let mut images: Vec<String> = Vec::new();
    // Dependents first, as Docker Compose stops them; the containers of one level in parallel.
    let depths = plan::depths(p);
    let rank = |svc: &str| depths.get(svc).map_or(usize::MAX, |d| d + 1);
    let mut levels: BTreeMap<std::cmp::Reverse<usize>, Vec<&super::Ctr>> = BTreeMap::new();
    for c in &list {
        let known = l.all_services.contains(&c.service);
        if !known && !a.remove_orphans && !c.oneoff {
            eprintln!(
                "WARN[0000] Found orphan container {} for this project; run down with --remove-orphans to remove it.",
                c.name
            );
            continue;
        }
        levels.entry(std::cmp::Reverse(rank(&c.service))).or_default().push(c);
    }
    for (_, level) in levels {
        let mut tasks = tokio::task::JoinSet::new();
        for c in level {
            pr.event(&format!("Container {}", c.name), "Stopping", false);
            let grace = a.timeout.or_else(|| {
                p.services
                    .get(&c.service)
                    .and_then(|s| s.stop_grace_period)
                    .map(|s| s.ceil() as i64)
            });
            let (client, id, name, volumes) = (client.clone(), c.id.clone(), c.name.clone(), a.volumes);
            tasks.spawn(async move { (name, remove(&client, &id, grace, volumes).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (name, r) = done?;
            r?;
            pr.event(&format!("Container {name}"), "Removed", true);
        }
    }
    // Networks of the project (labelled by it), never an external one.
    let filters = json!({"label": [format!("{}={}", labels::PROJECT, p.name)]}).to_string();
    let nets = client.get(&format!("/networks{}", query(&[("filters", filters.as_str())]))).await?;
    for n in nets.as_array().into_iter().flatten() {
        let name = n["Name"].as_str().unwrap_or("");
        let key = n
            .pointer(&format!("/Labels/{}", labels::NETWORK))
            .and_then(Value::as_str)
            .unwrap_or("");
        if p.networks.get(key).is_some_and(|d| d.external) {
            continue;
        }
        let r = format!("Network {name}");
        pr.event(&r, "Removing", false);
        match client.delete(&format!("/networks/{}", seg(name))).await {
            Ok(_) => pr.event(&r, "Removed", true),
            Err(e) if is_status(&e, 404) => pr.event(&r, "Removed", true),
            Err(e) => {
                pr.fail(&r, "Error");
                eprintln!("{e}");
            }
        }
    }
    if a.volumes {
        for (key, v) in &p.volumes {
            if v.external {
                continue;
            }
            let name = plan::volume_name(p, key);
            match client.delete(&format!("/volumes/{}", seg(&name))).await {
                Ok(_) => pr.event(&format!("Volume {name}"), "Removed", true),
                Err(e) if is_status(&e, 404) => {}
                Err(e) => {
                    pr.fail(&format!("Volume {name}"), "Error");
                    eprintln!("{e}");
                }
            }
        }
    }
    if let Some(kind) = &a.rmi {
        for (name, svc) in &p.services {
            // local: only images compose named itself (a build without `image:`).
            if kind == "local" && svc.image.is_some() {
                continue;
            }
            let image = plan::image_name(p, name);
            if !images.contains(&image) {
                images.push(image);
            }
        }
        for image in images {
            match client.delete(&format!("/images/{}", seg(&image))).await {
                Ok(_) => pr.event(&format!("Image {image}"), "Removed", true),
                Err(e) if is_status(&e, 404) => {}
                Err(e) => {
                    pr.fail(&format!("Image {image}"), "Error");
                    eprintln!("{e}");
                }
            }
        }
    }
    Ok(0)
}

async fn project_of(g: &Global<'_>) -> Result<(String, Option<compose::Loaded>)> {
    match g.project_name_only() {
        Some(p) => Ok((p, None)),
        None => {
            let l = g.load(&[])?;
            Ok((l.project.name.clone(), Some(l)))
        }
    }
}

/// `berth compose start`: start the existing containers, dependencies first.
pub async fn start(client: &Client, g: &Global<'_>, a: &Services) -> Result<i32> {
    let (project, l) = project_of(g).await?;
    let list = only(containers(client, &project, true, Some(false)).await?, &a.services);
    if list.is_empty() {
        bail!("service(s) {:?} have no container to start; run `berth compose up`", a.services);
    }
    let order = match &l {
        Some(l) => plan::order(&l.project, &l.project.services.keys().cloned().collect::<Vec<_>>())?,
        None => Vec::new(),
    };
    let rank = |s: &str| order.iter().position(|x| x == s).unwrap_or(usize::MAX);
    let mut list = list;
    list.sort_by_key(|c| (rank(&c.service), c.number));
    let mut pr = Progress::new(g.mode, "Running");
    for c in list {
        let r = format!("Container {}", c.name);
        pr.event(&r, "Starting", false);
        match client.post(&format!("/containers/{}/start", seg(&c.id)), None).await {
            Ok(_) => pr.event(&r, "Started", true),
            Err(e) if is_status(&e, 304) => pr.event(&r, "Started", true),
            Err(e) => {
                pr.fail(&r, "Error");
                return Err(e);
            }
        }
    }
    Ok(0)
}

/// `berth compose stop` / `restart`: dependents first.
pub async fn stop(client: &Client, g: &Global<'_>, a: &StopArgs, restart: bool) -> Result<i32> {
    let (project, l) = project_of(g).await?;
    let mut list = only(containers(client, &project, !restart, Some(false)).await?, &a.services);
    let order = match &l {
        Some(l) => plan::order(&l.project, &l.project.services.keys().cloned().collect::<Vec<_>>())?,
        None => Vec::new(),
    };
    let rank = |s: &str| order.iter().position(|x| x == s).unwrap_or(usize::MAX);
    list.sort_by_key(|c| (std::cmp::Reverse(rank(&c.service)), c.number));
    if restart {
        list.reverse();
    }
    let mut pr = Progress::new(g.mode, if restart { "Restarting" } else { "Stopping" });
    let q = a.timeout.map(|t| query(&[("t", t.to_string())])).unwrap_or_default();
    let op = if restart { "restart" } else { "stop" };
    for c in list {
        let r = format!("Container {}", c.name);
        pr.event(&r, if restart { "Restarting" } else { "Stopping" }, false);
        match client.post(&format!("/containers/{}/{op}{q}", seg(&c.id)), None).await {
            Ok(_) => {}
            Err(e) if is_status(&e, 304) => {}
            Err(e) => {
                pr.fail(&r, "Error");
                return Err(e);
            }
        }
        pr.event(&r, if restart { "Started" } else { "Stopped" }, true);
    }
    Ok(0)
}

/// `berth compose rm`: stopped containers (running ones with --stop).
pub async fn rm(client: &Client, g: &Global<'_>, a: &RmArgs) -> Result<i32> {
    let (project, _) = project_of(g).await?;
    let list = only(containers(client, &project, true, Some(false)).await?, &a.services);
    let list: Vec<_> = list.into_iter().filter(|c| a.stop || !c.running()).collect();
    if list.is_empty() {
        eprintln!("No stopped containers");
        return Ok(0);
    }
    if !a.force {
        let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
        eprint!("Going to remove {}\n? Are you sure? [yN] ", names.join(", "));
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let mut pr = Progress::new(g.mode, "Removing");
    for c in list {
        let r = format!("Container {}", c.name);
        pr.event(&r, "Removing", false);
        remove(client, &c.id, None, a.volumes).await?;
        pr.event(&r, "Removed", true);
    }
    Ok(0)
}
