//! `berth compose up`: networks and volumes, images (built or pulled), then each service's
//! containers in depends_on order — kept when current, recreated when their config hash changed,
//! scaled to the replicas asked — started once what they depend on is started, healthy or
//! completed; `--wait` waits for them to run (and be healthy), without `-d` their logs follow.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use compose::model::Condition;
use compose::plan::{self, Existing, Recreate, Step};
use compose::Loaded;
use hyper::Method;
use serde_json::{json, Value};

use super::super::client::{is_status, query, seg, Client};
use super::progress::Progress;
use super::{containers, Ctr, Global};

/// Flags of `berth compose up`.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// Detached mode: run containers in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Build images before starting containers
    #[arg(long)]
    pub build: bool,
    /// Do not build an image, even if it is missing
    #[arg(long = "no-build", conflicts_with = "build")]
    pub no_build: bool,
    /// Pull images before running: always, missing, never
    #[arg(long, value_name = "string")]
    pub pull: Option<String>,
    /// Wait for services to be running|healthy (implies detached mode)
    #[arg(long)]
    pub wait: bool,
    /// Maximum seconds to wait for the project to be running|healthy
    #[arg(long = "wait-timeout", value_name = "int")]
    pub wait_timeout: Option<u64>,
    /// Recreate containers even if their configuration and image have not changed
    #[arg(long = "force-recreate")]
    pub force_recreate: bool,
    /// If containers already exist, do not recreate them
    #[arg(long = "no-recreate", conflicts_with = "force_recreate")]
    pub no_recreate: bool,
    /// Do not start the services after creating them
    #[arg(long = "no-start")]
    pub no_start: bool,
    /// Do not start linked services
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// Remove containers for services not defined in the compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM instances (overrides `scale`/`deploy.replicas`)
    #[arg(long, value_name = "SERVICE=NUM")]
    pub scale: Vec<String>,
    /// Seconds to wait for a container to stop when it is recreated
    #[arg(short = 't', long, value_name = "int")]
    pub timeout: Option<i64>,
    /// Stop all containers if any container was stopped (attached mode)
    #[arg(long = "abort-on-container-exit")]
    pub abort_on_container_exit: bool,
    /// Services (default: all enabled ones)
    pub services: Vec<String>,
}

/// `berth compose up`.
pub async fn up(client: &Client, g: &Global<'_>, a: &UpArgs) -> Result<i32> {
    let mut l = g.load(&a.services)?;
    for s in &a.scale {
        let (svc, n) = s.split_once('=').ok_or_else(|| anyhow!("invalid --scale {s:?}: use SERVICE=NUM"))?;
        let n: u32 = n
            .parse()
            .map_err(|_| anyhow!("invalid --scale {s:?}: NUM must be a whole number"))?;
        let service = l.project.services.get_mut(svc).ok_or_else(|| anyhow!("no such service: {svc}"))?;
        if service.container_name.is_some() && n > 1 {
            bail!("service {svc:?}: container_name is set, so it cannot be scaled to {n} containers");
        }
        service.scale = Some(n);
    }
    let targets: Vec<String> = if a.services.is_empty() {
        l.project.services.keys().cloned().collect()
    } else {
        a.services.clone()
    };
    let order = if a.no_deps {
        targets.clone()
    } else {
        plan::order(&l.project, &targets)?
    };
    let mode = match (a.force_recreate, a.no_recreate) {
        (true, _) => Recreate::Always,
        (_, true) => Recreate::Never,
        _ => Recreate::Changed,
    };
    let images = ensure_images(client, g, &l, &order, ImagePolicy::from_up(a)?).await?;

    let mut pr = Progress::new(g.mode, "Running");
    let started = converge(client, &l, &order, &images, mode, a, &mut pr).await?;
    if a.wait {
        wait_ready(client, &started, a.wait_timeout.map(Duration::from_secs), &mut pr).await?;
    }
    if a.detach || a.wait || a.no_start {
        return Ok(0);
    }
    super::logs::attach_until_stopped(client, &l, &started, a.abort_on_container_exit).await
}

/// How `up`, `run` and `pull` get images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ImagePolicy {
    /// Build services with a build section; pull the others when missing.
    Default,
    /// `--build`: build every service that has a build section.
    Build,
    /// `--no-build`.
    NoBuild,
}

impl ImagePolicy {
    fn from_up(a: &UpArgs) -> Result<(ImagePolicy, Option<String>)> {
        if let Some(p) = &a.pull {
            if !matches!(p.as_str(), "always" | "missing" | "never") {
                bail!("invalid --pull {p:?}: use always, missing or never");
            }
        }
        let b = if a.build {
            ImagePolicy::Build
        } else if a.no_build {
            ImagePolicy::NoBuild
        } else {
            ImagePolicy::Default
        };
        Ok((b, a.pull.clone()))
    }
}

/// The image ID of each service in `order`, building or pulling what is needed.
pub(super) async fn ensure_images(
    client: &Client,
    g: &Global<'_>,
    l: &Loaded,
    order: &[String],
    (policy, pull): (ImagePolicy, Option<String>),
) -> Result<BTreeMap<String, String>> {
    let p = &l.project;
    let mut ids = BTreeMap::new();
    for name in order {
        let svc = &p.services[name];
        let image = plan::image_name(p, name);
        let local = image_id(client, &image).await?;
        let svc_pull = pull.clone().or_else(|| svc.pull_policy.clone()).unwrap_or_else(|| "missing".into());
        let build = svc.build.is_some()
            && match policy {
                ImagePolicy::Build => true,
                ImagePolicy::NoBuild => false,
                ImagePolicy::Default => local.is_none() || svc_pull == "build",
            };
        let fresh = if build {
            super::build::build_service(client, g, l, name).await?;
            true
        } else if svc_pull == "always" || (local.is_none() && svc.build.is_none()) {
            if svc_pull == "never" {
                bail!("service {name:?}: image {image} is not present and pull_policy is never");
            }
            super::build::pull_image(client, g, &image)
                .await
                .with_context(|| format!("service {name:?}"))?;
            true
        } else if local.is_none() {
            bail!("service {name:?}: image {image} is not present and --no-build was given");
        } else {
            false
        };
        // Ask again only when it was just built or pulled.
        let id = match (fresh, local) {
            (false, Some(id)) => id,
            _ => image_id(client, &image)
                .await?
                .ok_or_else(|| anyhow!("service {name:?}: image {image} not found"))?,
        };
        ids.insert(name.clone(), id);
    }
    Ok(ids)
}

async fn image_id(client: &Client, image: &str) -> Result<Option<String>> {
    match client.get(&format!("/images/{}/json", seg(image))).await {
        Ok(v) => Ok(v["Id"].as_str().map(String::from)),
        Err(e) if is_status(&e, 404) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Make networks and volumes exist; create, recreate, scale and start each service's containers.
/// Returns the containers that are the project's now, by service.
async fn converge(
    client: &Client,
    l: &Loaded,
    order: &[String],
    images: &BTreeMap<String, String>,
    mode: Recreate,
    a: &UpArgs,
    pr: &mut Progress,
) -> Result<BTreeMap<String, Vec<String>>> {
    ensure_networks(client, l, order, pr).await?;
    ensure_volumes(client, l, order, pr).await?;
    let existing = containers(client, &l.project.name, true, Some(false)).await?;
    orphans(client, l, &existing, a.remove_orphans, pr).await?;
    let mut current: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Services whose containers this run replaced: a dependent with `restart: true` on one of
    // them is restarted too, as Docker Compose does.
    let mut replaced: Vec<String> = Vec::new();
    for name in order {
        let svc = &l.project.services[name];
        let restart_with_deps = svc.depends_on.iter().any(|(d, dep)| dep.restart && replaced.contains(d));
        let hash = plan::config_hash(svc, &images[name]);
        let mine: Vec<&Ctr> = existing.iter().filter(|c| &c.service == name).collect();
        let found: Vec<Existing> = mine
            .iter()
            .map(|c| Existing {
                id: c.id.clone(),
                number: c.number,
                hash: c.hash.clone(),
                running: c.running(),
            })
            .collect();
        let steps = plan::plan_service(svc.replicas(), &hash, &found, mode);
        let label = |id: &str| {
            let n = mine
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| id.to_string());
            format!("Container {n}")
        };
        let mut to_start = Vec::new();
        let mut ids = Vec::new();
        for step in steps {
            match step {
                Step::Remove(id) => {
                    let r = label(&id);
                    pr.event(&r, "Stopping", false);
                    remove(client, &id, a.timeout.or(svc.stop_grace_period.map(|s| s.ceil() as i64)), true).await?;
                    pr.event(&r, "Removed", true);
                }
                Step::Keep(id) if restart_with_deps => {
                    let r = label(&id);
                    pr.event(&r, "Restarting", false);
                    client.post(&format!("/containers/{}/restart", seg(&id)), None).await?;
                    pr.event(&r, "Restarted", true);
                    ids.push(id);
                }
                Step::Keep(id) => {
                    pr.event(&label(&id), "Running", true);
                    ids.push(id);
                }
                Step::Start(id) => {
                    pr.event(&label(&id), "Created", true);
                    to_start.push(id.clone());
                    ids.push(id);
                }
                Step::Recreate(old, n) => {
                    let r = format!("Container {}", plan::container_name(&l.project, name, n));
                    pr.event(&r, "Recreate", false);
                    let anon = anonymous_volumes(client, &old).await?;
                    remove(client, &old, a.timeout.or(svc.stop_grace_period.map(|s| s.ceil() as i64)), false).await?;
                    let id = create(client, l, name, n, &images[name], &hash, &anon).await.inspect_err(|_| {
                        pr.fail(&r, "Error");
                    })?;
                    pr.event(&r, "Recreated", true);
                    if !replaced.contains(name) {
                        replaced.push(name.clone());
                    }
                    to_start.push(id.clone());
                    ids.push(id);
                }
                Step::Create(n) => {
                    let r = format!("Container {}", plan::container_name(&l.project, name, n));
                    pr.event(&r, "Creating", false);
                    let id = create(client, l, name, n, &images[name], &hash, &BTreeMap::new())
                        .await
                        .inspect_err(|_| {
                            pr.fail(&r, "Error");
                        })?;
                    pr.event(&r, "Created", true);
                    to_start.push(id.clone());
                    ids.push(id);
                }
            }
        }
        if !a.no_start {
            wait_dependencies(client, l, name, &current, pr).await?;
            for id in &to_start {
                let info = client.get(&format!("/containers/{}/json", seg(id))).await?;
                let r = format!("Container {}", info["Name"].as_str().unwrap_or(id).trim_start_matches('/'));
                pr.event(&r, "Starting", false);
                if let Err(e) = client.post(&format!("/containers/{}/start", seg(id)), None).await {
                    pr.fail(&r, "Error");
                    return Err(e.context(format!("starting {}", r.trim_start_matches("Container "))));
                }
                pr.event(&r, "Started", true);
            }
        }
        current.insert(name.clone(), ids);
    }
    Ok(current)
}

/// Create the project's networks the services use (an external one must exist).
async fn ensure_networks(client: &Client, l: &Loaded, order: &[String], pr: &mut Progress) -> Result<()> {
    let p = &l.project;
    let mut keys: Vec<String> = Vec::new();
    for s in order {
        for (k, _) in plan::service_networks(&p.services[s]) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    for key in keys {
        let name = plan::network_name(p, &key);
        let external = p.networks.get(&key).is_some_and(|n| n.external);
        match client.get(&format!("/networks/{}", seg(&name))).await {
            Ok(_) => continue,
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(e),
        }
        if external {
            bail!("network {name} declared as external, but could not be found");
        }
        let r = format!("Network {name}");
        pr.event(&r, "Creating", false);
        if let Err(e) = client.post("/networks/create", Some(&plan::network_body(l, &key))).await {
            pr.fail(&r, "Error");
            return Err(e.context(format!("creating network {name}")));
        }
        pr.event(&r, "Created", true);
    }
    Ok(())
}

/// Create the named volumes the services mount (an external one must exist).
async fn ensure_volumes(client: &Client, l: &Loaded, order: &[String], pr: &mut Progress) -> Result<()> {
    let p = &l.project;
    let mut keys: Vec<String> = Vec::new();
    for s in order {
        for m in &p.services[s].volumes {
            if let (true, Some(k)) = (m.kind == "volume", &m.source) {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    for key in keys {
        let name = plan::volume_name(p, &key);
        match client.get(&format!("/volumes/{}", seg(&name))).await {
            Ok(_) => continue,
            Err(e) if is_status(&e, 404) => {}
            Err(e) => return Err(e),
        }
        if p.volumes.get(&key).is_some_and(|v| v.external) {
            bail!("external volume \"{name}\" not found");
        }
        let r = format!("Volume \"{name}\"");
        pr.event(&r, "Creating", false);
        client.post("/volumes/create", Some(&plan::volume_body(p, &key))).await?;
        pr.event(&r, "Created", true);
    }
    Ok(())
}

/// Containers of services that are no longer in the files: warn, or remove with --remove-orphans.
async fn orphans(client: &Client, l: &Loaded, existing: &[Ctr], remove_them: bool, pr: &mut Progress) -> Result<()> {
    let orphans: Vec<&Ctr> = existing.iter().filter(|c| !l.all_services.contains(&c.service)).collect();
    if orphans.is_empty() {
        return Ok(());
    }
    if !remove_them {
        let names: Vec<&str> = orphans.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "WARN[0000] Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
            names.join(" ")
        );
        return Ok(());
    }
    for c in orphans {
        let r = format!("Container {}", c.name);
        pr.event(&r, "Removing", false);
        remove(client, &c.id, None, true).await?;
        pr.event(&r, "Removed", true);
    }
    Ok(())
}

/// Stop (with the grace period) and remove a container; `volumes`: its anonymous volumes too,
/// also those it inherited from the container it replaced (the engine's `v=1` removes only the
/// ones it made for this container).
pub(super) async fn remove(client: &Client, id: &str, timeout: Option<i64>, volumes: bool) -> Result<()> {
    let anon = if volumes {
        anonymous_volumes(client, id).await.unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    let q = timeout.map(|t| query(&[("t", t.to_string())])).unwrap_or_default();
    match client.post(&format!("/containers/{}/stop{q}", seg(id)), None).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 304) || is_status(&e, 404) => {}
        Err(e) => return Err(e),
    }
    let q = query(&[("force", "1"), ("v", if volumes { "1" } else { "0" })]);
    match client.delete(&format!("/containers/{}{q}", seg(id))).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) => return Err(e),
    }
    for name in anon.values() {
        match client.delete(&format!("/volumes/{}", seg(name))).await {
            Ok(_) => {}
            // Gone with the container, or still used by another one: both are fine here.
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The anonymous volumes of a container, by target, so its replacement keeps their data.
async fn anonymous_volumes(client: &Client, id: &str) -> Result<BTreeMap<String, String>> {
    let info = match client.get(&format!("/containers/{}/json", seg(id))).await {
        Ok(v) => v,
        Err(e) if is_status(&e, 404) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = BTreeMap::new();
    for m in info["Mounts"].as_array().into_iter().flatten() {
        let name = m["Name"].as_str().unwrap_or("");
        let anonymous = m["Type"] == "volume" && name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit());
        if anonymous {
            out.insert(m["Destination"].as_str().unwrap_or("").to_string(), name.to_string());
        }
    }
    Ok(out)
}

/// Create replica `number` of `service` (not started): the container, its other networks, its
/// injected configs and secrets. `anon` gives anonymous volumes to reuse, by target.
pub(super) async fn create(
    client: &Client,
    l: &Loaded,
    service: &str,
    number: u32,
    image_id: &str,
    hash: &str,
    anon: &BTreeMap<String, String>,
) -> Result<String> {
    let labels = plan::container_labels(l, service, number, false, hash, image_id);
    let name = plan::container_name(&l.project, service, number);
    create_with(client, l, service, &name, labels, anon, |_| {}).await
}

/// Create a container of `service` named `name` with these labels; `adjust` edits the body
/// (`run` overrides the command, ports, ...).
pub(super) async fn create_with(
    client: &Client,
    l: &Loaded,
    service: &str,
    name: &str,
    labels: serde_json::Map<String, Value>,
    anon: &BTreeMap<String, String>,
    adjust: impl FnOnce(&mut Value),
) -> Result<String> {
    let p = &l.project;
    let svc = &p.services[service];
    let network_mode = match svc.network_mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
        Some(other) => {
            let list = containers(client, &p.name, false, Some(false)).await?;
            let c = list
                .iter()
                .find(|c| c.service == other)
                .ok_or_else(|| anyhow!("service {service:?} uses the network of {other:?}, which has no running container"))?;
            Some(format!("container:{}", c.id))
        }
        None => None,
    };
    let env = |n: &str| l.environment.get(n).cloned();
    let (mut body, inject) = plan::container_body(l, service, labels, network_mode, &env)?;
    if let Some(mounts) = body.pointer_mut("/HostConfig/Mounts").and_then(Value::as_array_mut) {
        for m in mounts.iter_mut() {
            if m["Type"] == "volume" && m["Source"] == "" {
                if let Some(v) = m["Target"].as_str().and_then(|t| anon.get(t)) {
                    m["Source"] = json!(v);
                }
            }
        }
    }
    adjust(&mut body);
    let v = client
        .post(&format!("/containers/create{}", query(&[("name", name)])), Some(&body))
        .await?;
    let id = v["Id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon did not return a container ID"))?
        .to_string();
    let undo = async |e: anyhow::Error| -> anyhow::Error {
        let _ = remove(client, &id, Some(0), true).await;
        e
    };
    for (key, n) in plan::service_networks(svc).iter().skip(1) {
        let net = plan::network_name(p, key);
        let body = json!({"Container": id, "EndpointConfig": plan::endpoint(service, n)});
        if let Err(e) = client.post(&format!("/networks/{}/connect", seg(&net)), Some(&body)).await {
            return Err(undo(e.context(format!("connecting {name} to {net}"))).await);
        }
    }
    if !inject.is_empty() {
        let tar = inject_tar(&inject)?;
        let path = format!("/containers/{}/archive{}", seg(&id), query(&[("path", "/")]));
        let body = http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(
            http_body_util::Full::new(bytes::Bytes::from(tar)),
            |n| match n {},
        ));
        if let Err(e) = client.send(Method::PUT, &path, body, Some("application/x-tar"), false).await {
            return Err(undo(e.context(format!("copying configs and secrets into {name}"))).await);
        }
    }
    Ok(id)
}

/// A tar of the injected files (with their parent directories), to extract at `/`.
fn inject_tar(files: &[plan::Inject]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let rel = f.target.trim_start_matches('/');
        let mut acc = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for d in &parts[..parts.len().saturating_sub(1)] {
            acc = if acc.is_empty() { d.to_string() } else { format!("{acc}/{d}") };
            if !dirs.contains(&acc) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
                h.set_size(0);
                b.append_data(&mut h, format!("{acc}/"), std::io::empty())?;
                dirs.push(acc.clone());
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_mode(f.mode);
        h.set_uid(f.uid);
        h.set_gid(f.gid);
        h.set_mtime(0);
        h.set_size(f.content.len() as u64);
        b.append_data(&mut h, rel, f.content.as_slice())?;
    }
    Ok(b.into_inner()?)
}

/// Wait for each dependency of `service` to reach its condition.
async fn wait_dependencies(
    client: &Client,
    l: &Loaded,
    service: &str,
    current: &BTreeMap<String, Vec<String>>,
    pr: &mut Progress,
) -> Result<()> {
    for (dep, cond) in plan::waits(&l.project.services[service]) {
        let Some(ids) = current.get(&dep) else { continue };
        for id in ids {
            wait_condition(client, id, cond, None, pr)
                .await
                .map_err(|e| anyhow!("dependency failed to start: {e:#}"))?;
        }
    }
    Ok(())
}

/// Wait for one container to be started, healthy or completed successfully.
async fn wait_condition(client: &Client, id: &str, cond: Condition, deadline: Option<Instant>, pr: &mut Progress) -> Result<()> {
    let mut shown = false;
    loop {
        let info = client.get(&format!("/containers/{}/json", seg(id))).await?;
        let name = info["Name"].as_str().unwrap_or(id).trim_start_matches('/').to_string();
        let r = format!("Container {name}");
        let st = &info["State"];
        let status = st["Status"].as_str().unwrap_or("");
        let code = st["ExitCode"].as_i64().unwrap_or(0);
        let health = st.pointer("/Health/Status").and_then(Value::as_str);
        match cond {
            Condition::ServiceStarted => {
                if status != "created" {
                    return Ok(());
                }
            }
            Condition::ServiceHealthy => {
                if health.is_none() {
                    bail!("container {name} has no healthcheck configured");
                }
                if health == Some("healthy") {
                    pr.event(&r, "Healthy", true);
                    return Ok(());
                }
                if health == Some("unhealthy") {
                    pr.fail(&r, "Unhealthy");
                    bail!("container {name} is unhealthy");
                }
                if status == "exited" || status == "dead" {
                    pr.fail(&r, "Exited");
                    bail!("container {name} exited ({code})");
                }
                if !shown {
                    pr.event(&r, "Waiting", false);
                    shown = true;
                }
            }
            Condition::ServiceCompletedSuccessfully => {
                if status == "exited" || status == "dead" {
                    if code == 0 {
                        pr.event(&r, "Exited", true);
                        return Ok(());
                    }
                    pr.fail(&r, "Exited");
                    bail!("service {name} didn't complete successfully: exit {code}");
                }
                if !shown {
                    pr.event(&r, "Waiting", false);
                    shown = true;
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            bail!("timeout waiting for container {name}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--wait`: every container runs, and is healthy if it has a healthcheck.
async fn wait_ready(client: &Client, started: &BTreeMap<String, Vec<String>>, timeout: Option<Duration>, pr: &mut Progress) -> Result<()> {
    let deadline = timeout.map(|t| Instant::now() + t);
    for (svc, ids) in started {
        for id in ids {
            let info = client.get(&format!("/containers/{}/json", seg(id))).await?;
            let has_health = info.pointer("/State/Health/Status").is_some();
            let cond = if has_health {
                Condition::ServiceHealthy
            } else {
                Condition::ServiceStarted
            };
            wait_condition(client, id, cond, deadline, pr)
                .await
                .with_context(|| format!("service {svc:?}"))?;
            let info = client.get(&format!("/containers/{}/json", seg(id))).await?;
            let st = &info["State"];
            if st["Status"] == "exited" && st["ExitCode"].as_i64().unwrap_or(0) != 0 {
                bail!(
                    "container {} exited ({})",
                    info["Name"].as_str().unwrap_or(id).trim_start_matches('/'),
                    st["ExitCode"]
                );
            }
            if !has_health {
                let r = format!("Container {}", info["Name"].as_str().unwrap_or(id).trim_start_matches('/'));
                pr.event(&r, if st["Status"] == "running" { "Running" } else { "Exited" }, true);
            }
        }
    }
    Ok(())
}
