//! `berth create` and the container-creation flags shared with `berth run`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};

use super::client::{is_status, query, Client};
use super::units::{parse_cpus, parse_size};

/// Flags of `create` (and `run`), named as docker names them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CreateOpts {
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from this environment)
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "string")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Bind mount a volume (HOST:CONTAINER[:ro], NAME:CONTAINER[:ro], or CONTAINER for an anonymous volume)
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image ("" resets it)
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 64m, 1g; units b, k, m, g)
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes")]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 1.5)
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Runtime to use for this container: berth (built in), runc, crun, or one the daemon added
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,
    /// Mount a tmpfs directory (PATH[:OPTIONS], e.g. /run:rw,size=64m)
    #[arg(long, value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Add a host device (HOST[:CONTAINER[:PERMS]]), or a CDI device by name (vendor.com/class=name)
    #[arg(long = "device", value_name = "list")]
    pub device: Vec<String>,
    /// GPU devices to add, from the nvidia.com/gpu CDI specs ('all', a count, or 'device=ID[,ID...]')
    #[arg(long, value_name = "gpu-request")]
    pub gpus: Option<String>,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Security Options (e.g. no-new-privileges)
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
    /// Connect a container to a network (bridge, none, host, container:<name|id>, or a network's name)
    #[arg(long, alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// IPv4 address on the network given with --network (user-defined networks only)
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// Add a network-scoped alias (a name container DNS answers for this container)
    #[arg(long = "network-alias", alias = "net-alias", value_name = "list")]
    pub network_alias: Vec<String>,
    /// Container MAC address (e.g. 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", value_name = "string")]
    pub mac_address: Option<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip; "host-gateway" for the host's address)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Container NIS domain name
    #[arg(long, value_name = "string")]
    pub domainname: Option<String>,
    /// Restart policy to apply when a container exits (no, on-failure[:max-retries], always, unless-stopped)
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Set meta data on a container (KEY=VALUE)
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", value_name = "int")]
    pub stop_timeout: Option<i64>,
    /// Command to run to check health (run with the image's shell, /bin/sh -c by default)
    #[arg(long = "health-cmd", value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 30s)
    #[arg(long = "health-interval", value_name = "duration")]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy (default 3)
    #[arg(long = "health-retries", value_name = "int")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before failures count (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", value_name = "duration")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 5s)
    #[arg(long = "health-start-interval", value_name = "duration")]
    pub health_start_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 30s)
    #[arg(long = "health-timeout", value_name = "duration")]
    pub health_timeout: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Publish a container's port(s) to the host ([IP:]HOSTPORT:CONTAINERPORT[/PROTO])
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long, value_name = "list")]
    pub expose: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long, value_name = "list")]
    pub attach: Vec<String>,
    /// Automatically remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Image to create the container from
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Command and arguments (override the image's CMD)
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Which streams a client attaches to.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl CreateOpts {
    /// `Config.Healthcheck` from the --health-* flags, as the docker CLI builds it (none when no
    /// flag is given; durations in nanoseconds).
    fn healthcheck(&self) -> Result<Option<Value>> {
        let durations = [
            ("Interval", "--health-interval", &self.health_interval),
            ("Timeout", "--health-timeout", &self.health_timeout),
            ("StartPeriod", "--health-start-period", &self.health_start_period),
            ("StartInterval", "--health-start-interval", &self.health_start_interval),
        ];
        let any = self.health_cmd.is_some() || self.health_retries.is_some() || durations.iter().any(|d| d.2.is_some());
        if self.no_healthcheck {
            if any {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(json!({"Test": ["NONE"]})));
        }
        if !any {
            return Ok(None);
        }
        let mut h = Map::new();
        if let Some(c) = &self.health_cmd {
            h.insert("Test".into(), json!(["CMD-SHELL", c]));
        }
        for (field, flag, v) in durations {
            if let Some(v) = v {
                let secs = crate::cli::units::parse_go_duration(v).with_context(|| format!("invalid argument {v:?} for {flag}"))?;
                if secs < 0.0 {
                    bail!("{flag} cannot be negative");
                }
                h.insert(field.into(), json!((secs * 1e9).round() as i64));
            }
        }
        if let Some(r) = self.health_retries {
            if r < 0 {
                bail!("--health-retries cannot be negative");
            }
            h.insert("Retries".into(), json!(r));
        }
        Ok(Some(Value::Object(h)))
    }
    /// The image argument.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Streams to attach: none when detached, `-a` if given, else stdout+stderr (+stdin with `-i`).
    pub fn streams(&self, detach: bool) -> Result<Streams> {
        if detach {
            if !self.attach.is_empty() {
                bail!("Conflicting options: -a and -d");
            }
            return Ok(Streams::default());
        }
        if self.attach.is_empty() {
            return Ok(Streams {
                stdin: self.interactive,
                stdout: true,
                stderr: true,
            });
        }
        let mut s = Streams::default();
        for a in &self.attach {
            match a.to_ascii_lowercase().as_str() {
                "stdin" => s.stdin = true,
                "stdout" => s.stdout = true,
                "stderr" => s.stderr = true,
                other => bail!("invalid argument {other:?} for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"),
            }
        }
        Ok(s)
    }

    /// The `POST /containers/create` body (Config + HostConfig).
    pub fn body(&self, streams: Streams) -> Result<Value> {
        let mut cfg = self.config(streams)?;
        let mut host = Map::new();
        self.volumes(&mut cfg, &mut host)?;
        self.ports(&mut cfg, &mut host)?;
        self.resources(&mut host)?;
        self.host_options(&mut host)?;
        cfg.insert("HostConfig".into(), Value::Object(host));
        if let Some(ep) = self.endpoint()? {
            cfg.insert("NetworkingConfig".into(), ep);
        }
        Ok(Value::Object(cfg))
    }

    /// `--ip` and `--network-alias`: the endpoint settings on the `--network` network.
    fn endpoint(&self) -> Result<Option<Value>> {
        if self.ip.is_none() && self.network_alias.is_empty() {
            return Ok(None);
        }
        let Some(net) = &self.network else {
            bail!("--ip and --network-alias need a user-defined network (--network NAME)");
        };
        let mut ep = Map::new();
        if let Some(ip) = &self.ip {
            ep.insert("IPAMConfig".into(), json!({"IPv4Address": ip}));
        }
        if !self.network_alias.is_empty() {
            ep.insert("Aliases".into(), json!(self.network_alias));
        }
        Ok(Some(json!({"EndpointsConfig": {net.as_str(): Value::Object(ep)}})))
    }

    /// The body's Config fields for the process and its metadata: image, command, streams, env,
    /// user, labels, stop settings, healthcheck.
    fn config(&self, streams: Streams) -> Result<Map<String, Value>> {
        let mut cfg = Map::new();
        cfg.insert("Image".into(), json!(self.image()));
        if !self.command.is_empty() {
            cfg.insert("Cmd".into(), json!(self.command));
        }
        cfg.insert("AttachStdin".into(), json!(streams.stdin));
        cfg.insert("AttachStdout".into(), json!(streams.stdout));
        cfg.insert("AttachStderr".into(), json!(streams.stderr));
        cfg.insert("Tty".into(), json!(self.tty));
        cfg.insert("OpenStdin".into(), json!(self.interactive));
        cfg.insert("StdinOnce".into(), json!(self.interactive && streams.stdin));
        let env = self.env_list()?;
        if !env.is_empty() {
            cfg.insert("Env".into(), json!(env));
        }
        if let Some(w) = &self.workdir {
            cfg.insert("WorkingDir".into(), json!(w));
        }
        if let Some(u) = &self.user {
            cfg.insert("User".into(), json!(u));
        }
        if let Some(h) = &self.hostname {
            cfg.insert("Hostname".into(), json!(h));
        }
        if let Some(d) = &self.domainname {
            cfg.insert("Domainname".into(), json!(d));
        }
        if let Some(m) = &self.mac_address {
            cfg.insert("MacAddress".into(), json!(m));
        }
        if let Some(e) = &self.entrypoint {
            // Docker sends [""] for `--entrypoint ""`: "reset to none".
            cfg.insert("Entrypoint".into(), json!([e]));
        }
        if !self.label.is_empty() {
            cfg.insert("Labels".into(), json!(key_values(&self.label)));
        }
        if let Some(s) = &self.stop_signal {
            cfg.insert("StopSignal".into(), json!(s));
        }
        if let Some(t) = self.stop_timeout {
            cfg.insert("StopTimeout".into(), json!(t));
        }
        if let Some(h) = self.healthcheck()? {
            cfg.insert("Healthcheck".into(), h);
        }
        Ok(cfg)
    }

    /// `-v`: anonymous volumes go to Config.Volumes, binds and named volumes to HostConfig.Binds.
    fn volumes(&self, cfg: &mut Map<String, Value>, host: &mut Map<String, Value>) -> Result<()> {
        let mut binds = Vec::new();
        let mut anon = Map::new();
        for v in &self.volume {
            if v.is_empty() {
                bail!("invalid volume specification: ''");
            }
            let parts: Vec<&str> = v.split(':').collect();
            if parts.len() == 1 {
                if !v.starts_with('/') {
                    bail!("invalid volume specification: '{v}': the container path must be absolute");
                }
                anon.insert(v.clone(), json!({}));
            } else {
                if parts.len() > 3 || parts[0].is_empty() || !parts[1].starts_with('/') {
                    bail!("invalid volume specification: '{v}'");
                }
                binds.push(v.clone());
            }
        }
        if !anon.is_empty() {
            cfg.insert("Volumes".into(), Value::Object(anon));
        }
        if !binds.is_empty() {
            host.insert("Binds".into(), json!(binds));
        }
        Ok(())
    }

    /// `--expose` and `-p`: Config.ExposedPorts (published ports included) and
    /// HostConfig.PortBindings.
    fn ports(&self, cfg: &mut Map<String, Value>, host: &mut Map<String, Value>) -> Result<()> {
        let mut exposed = Map::new();
        for e in &self.expose {
            exposed.insert(port_key(e), json!({}));
        }
        let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in &self.publish {
            let (key, ip, host_port) = parse_publish(p)?;
            exposed.insert(key.clone(), json!({}));
            bindings.entry(key).or_default().push(json!({"HostIp": ip, "HostPort": host_port}));
        }
        if !exposed.is_empty() {
            cfg.insert("ExposedPorts".into(), Value::Object(exposed));
        }
        if !bindings.is_empty() {
            host.insert("PortBindings".into(), json!(bindings));
        }
        Ok(())
    }

    /// The resource limits: memory, swap, CPUs, CPU shares, pids.
    fn resources(&self, host: &mut Map<String, Value>) -> Result<()> {
        if let Some(m) = &self.memory {
            host.insert(
                "Memory".into(),
                json!(parse_size(m).context("invalid argument for \"-m, --memory\" flag")?),
            );
        }
        if let Some(m) = &self.memory_swap {
            host.insert(
                "MemorySwap".into(),
                json!(parse_size(m).context("invalid argument for \"--memory-swap\" flag")?),
            );
        }
        if let Some(c) = &self.cpus {
            host.insert("NanoCpus".into(), json!(parse_cpus(c)?));
        }
        if let Some(s) = self.cpu_shares {
            host.insert("CpuShares".into(), json!(s));
        }
        if let Some(p) = self.pids_limit {
            host.insert("PidsLimit".into(), json!(p));
        }
        Ok(())
    }

    /// The rest of HostConfig: root filesystem, runtime, tmpfs mounts, capabilities and security
    /// options, network, restart policy, init, privileges, auto-removal and the TTY's size.
    fn host_options(&self, host: &mut Map<String, Value>) -> Result<()> {
        if self.read_only {
            host.insert("ReadonlyRootfs".into(), json!(true));
        }
        if let Some(r) = &self.runtime {
            host.insert("Runtime".into(), json!(r));
        }
        if !self.tmpfs.is_empty() {
            let mut m = Map::new();
            for t in &self.tmpfs {
                let (path, opts) = t.split_once(':').unwrap_or((t, ""));
                if !path.starts_with('/') {
                    bail!("invalid tmpfs specification {t:?}: the path must be absolute");
                }
                m.insert(path.to_string(), json!(opts));
            }
            host.insert("Tmpfs".into(), Value::Object(m));
        }
        let mut requests = Vec::new();
        if let Some(g) = &self.gpus {
            requests.push(gpu_request(g)?);
        }
        let (cdi, nodes): (Vec<&String>, Vec<&String>) = self.device.iter().partition(|d| engine::cdi::is_qualified_name(d));
        if !cdi.is_empty() {
            requests.push(json!({"Driver": "cdi", "DeviceIDs": cdi}));
        }
        if !requests.is_empty() {
            host.insert("DeviceRequests".into(), Value::Array(requests));
        }
        if !nodes.is_empty() {
            host.insert(
                "Devices".into(),
                Value::Array(nodes.iter().map(|d| device_mapping(d)).collect::<Result<_>>()?),
            );
        }
        if !self.cap_add.is_empty() {
            host.insert("CapAdd".into(), json!(self.cap_add));
        }
        if !self.cap_drop.is_empty() {
            host.insert("CapDrop".into(), json!(self.cap_drop));
        }
        if !self.security_opt.is_empty() {
            host.insert("SecurityOpt".into(), json!(self.security_opt));
        }
        if let Some(n) = &self.network {
            host.insert("NetworkMode".into(), json!(n));
        }
        if self.publish_all {
            host.insert("PublishAllPorts".into(), json!(true));
        }
        for (key, list) in [
            ("Dns", &self.dns),
            ("DnsSearch", &self.dns_search),
            ("DnsOptions", &self.dns_option),
        ] {
            if !list.is_empty() {
                host.insert(key.into(), json!(list));
            }
        }
        if !self.add_host.is_empty() {
            let mut hosts = Vec::new();
            for h in &self.add_host {
                // The docker CLI sends host:ip; host=ip is accepted too.
                let (name, ip) = h
                    .split_once('=')
                    .or_else(|| h.split_once(':'))
                    .ok_or_else(|| anyhow::anyhow!("bad format for add-host: {h:?}"))?;
                hosts.push(format!("{name}:{}", ip.trim_start_matches('[').trim_end_matches(']')));
            }
            host.insert("ExtraHosts".into(), json!(hosts));
        }
        if let Some(r) = &self.restart {
            host.insert("RestartPolicy".into(), parse_restart(r)?);
        }
        if self.init {
            host.insert("Init".into(), json!(true));
        }
        if self.privileged {
            host.insert("Privileged".into(), json!(true));
        }
        if self.rm {
            if let Some(r) = &self.restart {
                if !matches!(r.as_str(), "" | "no") {
                    bail!("Conflicting options: --restart and --rm");
                }
            }
            host.insert("AutoRemove".into(), json!(true));
        }
        if self.tty {
            // The terminal's size from the first byte, as docker sends it; a resize follows the start.
            if let Some((h, w)) = super::stream::term_size() {
                host.insert("ConsoleSize".into(), json!([h, w]));
            }
        }
        Ok(())
    }

    fn env_list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for f in &self.env_file {
            let text = std::fs::read_to_string(f).with_context(|| format!("open {}", f.display()))?;
            for line in text.lines() {
                let l = line.trim_start();
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                push_env(&mut out, l);
            }
        }
        for e in &self.env {
            push_env(&mut out, e);
        }
        Ok(out)
    }
}

/// `KEY=VALUE` as is; `KEY` takes its value from this environment (skipped if unset), like docker.
fn push_env(out: &mut Vec<String>, e: &str) {
    if e.contains('=') {
        out.push(e.to_string());
    } else if let Ok(v) = std::env::var(e) {
        out.push(format!("{e}={v}"));
    }
}

/// `k=v` list → map (a bare `k` maps to "").
pub fn key_values(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

fn port_key(p: &str) -> String {
    if p.contains('/') {
        p.to_string()
    } else {
        format!("{p}/tcp")
    }
}

/// `[ip:][hostPort:]containerPort[/proto]` → ("80/tcp", ip, hostPort).
fn parse_publish(p: &str) -> Result<(String, String, String)> {
    let (spec, proto) = p.rsplit_once('/').unwrap_or((p, "tcp"));
    let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [c, h] => ("", *h, *c),
        [c, h, ip] => (ip.trim_matches(['[', ']']), *h, *c),
        _ => bail!("invalid port specification: {p:?}"),
    };
    if ctr.is_empty() || !ctr.chars().all(|c| c.is_ascii_digit() || c == '-') {
        bail!("invalid containerPort: {ctr}");
    }
    Ok((format!("{ctr}/{proto}"), ip.to_string(), host.to_string()))
}

/// `no | always | unless-stopped | on-failure[:N]` → RestartPolicy.
pub fn parse_restart(r: &str) -> Result<Value> {
    let (name, count) = r.split_once(':').unwrap_or((r, ""));
    match name {
        "no" | "" | "always" | "unless-stopped" if count.is_empty() => Ok(json!({"Name": name, "MaximumRetryCount": 0})),
        "on-failure" => {
            let n: i64 = if count.is_empty() {
                0
            } else {
                count
                    .parse()
                    .map_err(|_| anyhow!("invalid restart policy format: maximum retry count must be an integer"))?
            };
            Ok(json!({"Name": name, "MaximumRetryCount": n}))
        }
        "no" | "always" | "unless-stopped" => {
            bail!("invalid restart policy format: maximum retry count can only be used with 'on-failure'")
        }
        _ => bail!("invalid restart policy format: unknown policy {name:?}"),
    }
}

/// docker's display of an image reference: `busybox` → `busybox:latest` (as typed when it
/// does not parse; the daemon then says why).
pub fn full_ref(image: &str) -> String {
    match image::Reference::parse(image) {
        Ok(r) if r.tag.is_none() && r.digest.is_none() => r.tagged(),
        _ => image.to_string(),
    }
}

/// Create a container; prints daemon warnings. A missing image prints docker's
/// "Unable to find image" (there is no pull yet) and fails.
pub async fn create_container(client: &Client, opts: &CreateOpts, body: &Value) -> Result<String> {
    let q = match &opts.name {
        Some(n) => query(&[("name", n.as_str())]),
        None => String::new(),
    };
    let resp = match client.post(&format!("/containers/create{q}"), Some(body)).await {
        Ok(r) => r,
        Err(e) if is_status(&e, 404) && e.to_string().to_lowercase().contains("image") => {
            eprintln!("Unable to find image '{}' locally", full_ref(opts.image()));
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if let Some(w) = resp.get("Warnings").and_then(Value::as_array) {
        for w in w.iter().filter_map(Value::as_str) {
            eprintln!("WARNING: {w}");
        }
    }
    resp.get("Id")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| anyhow!("daemon returned no container ID"))
}

/// `berth create`.
pub async fn create(client: &Client, opts: CreateOpts) -> Result<i32> {
    let streams = opts.streams(false)?;
    let body = opts.body(streams)?;
    let id = create_container(client, &opts, &body).await?;
    println!("{id}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        o: CreateOpts,
    }

    fn parse(args: &[&str]) -> CreateOpts {
        let mut v = vec!["create"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().o
    }

    #[test]
    fn body_mapping() {
        let o = parse(&[
            "-e",
            "A=1",
            "-w",
            "/w",
            "-u",
            "1000",
            "-v",
            "/h:/c:ro",
            "-v",
            "vol:/data",
            "--name",
            "x",
            "-h",
            "host",
            "--entrypoint",
            "",
            "-m",
            "64m",
            "--cpus",
            "1.5",
            "--pids-limit",
            "10",
            "--read-only",
            "--tmpfs",
            "/run:size=1m",
            "--cap-add",
            "NET_ADMIN",
            "--security-opt",
            "no-new-privileges",
            "--network",
            "none",
            "--restart",
            "on-failure:3",
            "--init",
            "-l",
            "k=v",
            "--stop-signal",
            "SIGINT",
            "-p",
            "8080:80",
            "busybox",
            "sh",
            "-c",
            "echo -n hi",
        ]);
        let b = o.body(o.streams(false).unwrap()).unwrap();
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["sh", "-c", "echo -n hi"]));
        assert_eq!(b["Entrypoint"], json!([""]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Labels"], json!({"k": "v"}));
        let h = &b["HostConfig"];
        assert_eq!(h["Binds"], json!(["/h:/c:ro", "vol:/data"]));
        assert_eq!(h["Memory"], 64 * 1024 * 1024);
        assert_eq!(h["NanoCpus"], 1_500_000_000i64);
        assert_eq!(h["PidsLimit"], 10);
        assert_eq!(h["Tmpfs"], json!({"/run": "size=1m"}));
        assert_eq!(h["RestartPolicy"], json!({"Name": "on-failure", "MaximumRetryCount": 3}));
        assert_eq!(h["PortBindings"], json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}));
        assert_eq!(h["Init"], true);
        assert_eq!(b["AttachStdout"], true);
        assert_eq!(b["AttachStdin"], false);
    }

    #[test]
    fn trailing_args_keep_flags() {
        let o = parse(&["-i", "busybox", "ls", "-l", "-e"]);
        assert!(o.interactive);
        assert_eq!(
            (o.image.as_str(), o.command.clone()),
            ("busybox", vec!["ls".to_string(), "-l".into(), "-e".into()])
        );
        // Unlike docker, flags right after IMAGE are still ours; after COMMAND they are the command's.
        let o = parse(&["busybox", "sh", "-it"]);
        assert!(!o.interactive);
        assert_eq!(o.command, vec!["sh", "-it"]);
        let mut v = vec!["create", "--bogus", "busybox"];
        assert!(T::try_parse_from(v.drain(..)).is_err());
    }

    #[test]
    fn restart_policies() {
        assert!(parse_restart("always").is_ok());
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("bogus").is_err());
        assert_eq!(parse_restart("on-failure").unwrap()["MaximumRetryCount"], 0);
    }

    #[test]
    fn refs() {
        assert_eq!(full_ref("busybox"), "busybox:latest");
        assert_eq!(full_ref("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(full_ref("x:1"), "x:1");
    }
}

/// `--gpus`, as Docker reads it: `all`, a count, or `key=value` fields (`count=`, `device=ID,…`,
/// `driver=`, `capabilities=`); a device request for the `gpu` capability.
pub fn gpu_request(text: &str) -> Result<Value> {
    let mut req = json!({"Driver": "", "Count": 0, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}});
    let text = text.trim_matches('"');
    if text == "all" {
        req["Count"] = json!(-1);
        return Ok(req);
    }
    if let Ok(n) = text.parse::<i64>() {
        if n <= 0 {
            bail!("invalid --gpus {text:?}: the count must be positive (or 'all')");
        }
        req["Count"] = json!(n);
        return Ok(req);
    }
    // `device=0,1` keeps its commas: a field is a new key only where `key=` starts.
    let mut fields: Vec<String> = Vec::new();
    for part in text.split(',') {
        match (part.split_once('='), fields.last_mut()) {
            (None, Some(last)) => {
                last.push(',');
                last.push_str(part);
            }
            _ => fields.push(part.to_string()),
        }
    }
    for f in fields {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("invalid --gpus {text:?}: expected all, a count, or key=value fields"))?;
        match k {
            "count" => {
                req["Count"] = json!(if v == "all" {
                    -1
                } else {
                    v.parse::<i64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| anyhow!("invalid --gpus count {v:?}"))?
                })
            }
            "device" => req["DeviceIDs"] = json!(v.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>()),
            "driver" => req["Driver"] = json!(v),
            "capabilities" => {
                let mut caps: Vec<&str> = v.split(',').filter(|s| !s.is_empty()).collect();
                if !caps.contains(&"gpu") {
                    caps.push("gpu");
                }
                req["Capabilities"] = json!([caps]);
            }
            other => bail!("invalid --gpus field {other:?}: count, device, driver or capabilities"),
        }
    }
    Ok(req)
}

/// `--device HOST[:CONTAINER[:PERMS]]` as Docker's device mapping.
fn device_mapping(d: &str) -> Result<Value> {
    let (host, inside, perms) = compose::units::device_mapping(d).map_err(|e| anyhow!(e))?;
    Ok(json!({"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms}))
}

#[cfg(test)]
mod device_tests {
    use super::*;

    #[test]
    fn gpus_and_devices_parse_as_docker_does() {
        assert_eq!(gpu_request("all").unwrap()["Count"], -1);
        assert_eq!(gpu_request("2").unwrap()["Count"], 2);
        let ids = gpu_request("\"device=0,1\"").unwrap();
        assert_eq!(ids["DeviceIDs"], json!(["0", "1"]));
        assert_eq!(ids["Count"], 0);
        assert!(gpu_request("0").is_err());
        assert!(gpu_request("colour=red").is_err());
        assert_eq!(
            device_mapping("/dev/zero:/dev/z:r").unwrap(),
            json!({"PathOnHost": "/dev/zero", "PathInContainer": "/dev/z", "CgroupPermissions": "r"})
        );
        assert_eq!(device_mapping("/dev/zero:rw").unwrap()["PathInContainer"], "/dev/zero");
        assert!(device_mapping("zero").is_err());
    }
}
