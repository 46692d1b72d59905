//! `berth compose exec` (a command in a service's running container) and `berth compose run`
//! (a one-off container of a service, its dependencies started first).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use compose::plan;
use serde_json::{json, Value};

use super::super::client::Client;
use super::super::create::Streams;
use super::super::stream::stdin_is_tty;
use super::up::{create_with, ensure_images, ImagePolicy};
use super::{containers, Global};

/// Flags of `berth compose exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "stringArray")]
    pub env: Vec<String>,
    /// Index of the container if the service has several replicas
    #[arg(long, value_name = "int", default_value_t = 1)]
    pub index: u32,
    /// Disable pseudo-TTY allocation (by default one is allocated when stdin is a terminal)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Give extended privileges to the process
    #[arg(long)]
    pub privileged: bool,
    /// Run the command as this user
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// Service
    pub service: String,
    /// Command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Flags of `berth compose run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Run the container in the background and print its ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "stringArray")]
    pub env: Vec<String>,
    /// Add or override a label
    #[arg(short = 'l', long = "label", value_name = "stringArray")]
    pub labels: Vec<String>,
    /// Override the entrypoint of the image
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Assign a name to the container
    #[arg(long, value_name = "string")]
    pub name: Option<String>,
    /// Disable pseudo-TTY allocation (by default one is allocated when stdin is a terminal)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Don't start linked services
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "stringArray")]
    pub publish: Vec<String>,
    /// Run with the service's ports published
    #[arg(long = "service-ports")]
    pub service_ports: bool,
    /// Run as this user
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, value_name = "string")]
    pub workdir: Option<String>,
    /// Build the image before starting the container
    #[arg(long)]
    pub build: bool,
    /// Service
    pub service: String,
    /// Command and its arguments (default: the service's command)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `berth compose exec`.
pub async fn exec(client: &Client, g: &Global<'_>, a: &ExecArgs) -> Result<i32> {
    let project = match g.project_name_only() {
        Some(p) => p,
        None => g.load(&[])?.project.name,
    };
    let list = containers(client, &project, false, Some(false)).await?;
    let c = list
        .iter()
        .find(|c| c.service == a.service && c.number == a.index)
        .ok_or_else(|| anyhow!("service {:?} is not running container #{}", a.service, a.index))?;
    let tty = !a.no_tty && stdin_is_tty();
    let args = super::super::exec::ExecArgs {
        detach: a.detach,
        env: a.env.clone(),
        interactive: !a.detach && stdin_is_tty(),
        tty,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        privileged: a.privileged,
        detach_keys: None,
        container: c.id.clone(),
        command: a.command.clone(),
    };
    super::super::exec::exec(client, args).await
}

/// `berth compose run`.
pub async fn run(client: &Client, g: &Global<'_>, a: &RunArgs) -> Result<i32> {
    let l = g.load(std::slice::from_ref(&a.service))?;
    let p = &l.project;
    if !p.services.contains_key(&a.service) {
        bail!("no such service: {}", a.service);
    }
    if a.detach && a.rm {
        bail!("--rm and -d cannot be combined");
    }
    // Dependencies first, as `up -d` of them would.
    let deps: Vec<String> = plan::order(p, std::slice::from_ref(&a.service))?
        .into_iter()
        .filter(|s| s != &a.service)
        .collect();
    if !a.no_deps && !deps.is_empty() {
        let up = super::up::UpArgs {
            detach: true,
            build: false,
            no_build: false,
            pull: None,
            wait: false,
            wait_timeout: None,
            force_recreate: false,
            no_recreate: true,
            no_start: false,
            no_deps: false,
            remove_orphans: false,
            scale: Vec::new(),
            timeout: None,
            abort_on_container_exit: false,
            services: deps,
        };
        super::up::up(client, g, &up).await?;
    }
    let policy = if a.build { ImagePolicy::Build } else { ImagePolicy::Default };
    let images = ensure_images(client, g, &l, std::slice::from_ref(&a.service), (policy, None)).await?;
    let svc = &p.services[&a.service];
    let hash = plan::config_hash(svc, &images[&a.service]);
    let slug = oci::random::hex(32);
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}-run-{}", p.name, a.service, &slug[..12]));
    let mut labels = plan::container_labels(&l, &a.service, 1, true, &hash, &images[&a.service]);
    labels.insert(plan::labels::SLUG.into(), json!(slug));
    for kv in &a.labels {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        labels.insert(k.into(), json!(v));
    }
    let tty = !a.no_tty && stdin_is_tty() && !a.detach;
    let interactive = !a.detach;
    let mut env_extra = Vec::new();
    for e in &a.env {
        match e.split_once('=') {
            Some(_) => env_extra.push(e.clone()),
            None => {
                if let Ok(v) = std::env::var(e) {
                    env_extra.push(format!("{e}={v}"));
                }
            }
        }
    }
    let mut publish: Vec<(String, String, String)> = Vec::new();
    for spec in &a.publish {
        let port = compose::model::parse_port(spec).map_err(|e| anyhow!("--publish: {e}"))?;
        publish.push((
            format!("{}/{}", port.target, port.protocol),
            port.host_ip.unwrap_or_default(),
            port.published.unwrap_or_default(),
        ));
    }
    let entrypoint = match &a.entrypoint {
        Some(e) => Some(shlex_split(e)?),
        None => None,
    };
    let adjust = |body: &mut Value| {
        if !a.command.is_empty() {
            body["Cmd"] = json!(a.command);
        }
        if let Some(e) = &entrypoint {
            body["Entrypoint"] = json!(e);
            if a.command.is_empty() {
                body["Cmd"] = Value::Null;
            }
        }
        if !a.service_ports {
            body["HostConfig"]["PortBindings"] = json!({});
        }
        for (key, ip, port) in &publish {
            body["ExposedPorts"][key] = json!({});
            let entry = json!({"HostIp": ip, "HostPort": port});
            match body["HostConfig"]["PortBindings"][key].as_array_mut() {
                Some(list) => list.push(entry),
                None => body["HostConfig"]["PortBindings"][key] = json!([entry]),
            }
        }
        if !env_extra.is_empty() {
            let mut env: Vec<Value> = body["Env"].as_array().cloned().unwrap_or_default();
            env.extend(env_extra.iter().map(|e| json!(e)));
            body["Env"] = json!(env);
        }
        if let Some(u) = &a.user {
            body["User"] = json!(u);
        }
        if let Some(w) = &a.workdir {
            body["WorkingDir"] = json!(w);
        }
        // A one-off container never restarts, and is not in the service's DNS round robin.
        body["HostConfig"]["RestartPolicy"] = json!({"Name": "no"});
        body["HostConfig"]["AutoRemove"] = json!(a.rm);
        body["Tty"] = json!(tty);
        body["OpenStdin"] = json!(interactive);
        body["StdinOnce"] = json!(interactive);
        body["AttachStdin"] = json!(interactive);
        body["AttachStdout"] = json!(!a.detach);
        body["AttachStderr"] = json!(!a.detach);
    };
    let id = create_with(client, &l, &a.service, &name, labels, &BTreeMap::new(), adjust).await?;
    let how = super::super::run::Started {
        streams: Streams {
            stdin: interactive,
            stdout: !a.detach,
            stderr: !a.detach,
        },
        tty,
        rm: a.rm,
        detach: a.detach,
        sig_proxy: true,
        detach_keys: None,
    };
    super::super::run::start_created(client, &id, how).await
}

fn shlex_split(s: &str) -> Result<Vec<String>> {
    compose::model::split_words(s).ok_or_else(|| anyhow!("--entrypoint {s:?}: unbalanced quotes"))
}
