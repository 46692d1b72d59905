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
    /// The group that owns the API socket (mode 0660), as Docker's `--group`: its members can
    /// drive the daemon, so they are root-equivalent. Default: `docker` when that group exists,
    /// else root's group only.
    #[arg(short = 'G', long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Static init binary bind-mounted for `--init` (default: tini-static or docker-init if installed).
    #[arg(long)]
    pub init_path: Option<PathBuf>,
    /// A registry (host[:port]) to reach over plain HTTP or without verifying its TLS certificate
    /// (loopback registries always are); may be repeated.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// A directory of per-registry CA certificates: `DIR/HOST[:PORT]/*.crt` are trusted (with the
    /// system's roots) for that registry, and TLS to it is then verified even when it is on
    /// loopback or marked insecure. Docker's layout; may be repeated.
    #[arg(long = "certs-dir", value_name = "DIR", default_values = registry::client::DEFAULT_CERTS_DIRS)]
    pub certs_dirs: Vec<PathBuf>,
    /// Also serve an OCI registry on HOST:PORT (e.g. 127.0.0.1:5000). Its blobs are the engine's
    /// content store (ROOT/image/blobs), so images the engine holds are never uploaded twice; its
    /// repositories and tags are kept in ROOT/registry. Without --registry-htpasswd and
    /// --registry-anonymous, anyone may pull and push, and only a loopback address is accepted.
    #[arg(long, value_name = "HOST:PORT")]
    pub registry: Option<String>,
    /// Registry users: an htpasswd file of bcrypt hashes (`htpasswd -B`).
    #[arg(long, value_name = "FILE", requires = "registry")]
    pub registry_htpasswd: Option<PathBuf>,
    /// What registry clients without credentials may do: none, pull, or push (pull, push and
    /// delete). Default: none with --registry-htpasswd; push without it (loopback only).
    #[arg(long, value_name = "none|pull|push", requires = "registry")]
    pub registry_anonymous: Option<registry::server::Anonymous>,
    /// Registry: use the bearer token flow (tokens issued at /token on the registry's address).
    #[arg(long, requires = "registry")]
    pub registry_token: bool,
    /// Registry: per-user rules, lines of `USER REPOSITORIES ACTIONS` (see `berth registry serve --help`).
    #[arg(long, value_name = "FILE", requires = "registry_htpasswd")]
    pub registry_access_rules: Option<PathBuf>,
    /// Registry: serve HTTPS with this PEM certificate (chain); needs --registry-tls-key.
    #[arg(long, value_name = "PEM", requires_all = ["registry", "registry_tls_key"])]
    pub registry_tls_cert: Option<PathBuf>,
    /// Registry: the PEM private key of --registry-tls-cert.
    #[arg(long, value_name = "PEM", requires_all = ["registry", "registry_tls_cert"])]
    pub registry_tls_key: Option<PathBuf>,
    /// Remount a cgroup hierarchy with the kernel's `favordynmods` option at start (Linux 6.0+),
    /// unless one has it already. Without it every container start waits 10-20 ms for an RCU grace
    /// period when its first process is moved into its cgroup; with it fork and exit cost slightly
    /// more host-wide. Like Docker enabling IP forwarding, this changes a host setting, and it is
    /// left on when the daemon stops (Linux 6.18+ cannot turn it off). `false` leaves cgroups as
    /// they are.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub cgroup_favordynmods: bool,
    /// The OCI runtime of containers that do not ask for one (`docker run --runtime`): `berth`
    /// (youki's libcontainer inside the shim, the fastest), `runc`, `crun`, or one added with
    /// --add-runtime.
    #[arg(long, value_name = "NAME", default_value = engine::BUILTIN_RUNTIME)]
    pub default_runtime: String,
    /// Another OCI runtime, NAME=PATH (an executable with runc's command line); may be repeated.
    /// `runc` and `crun` are known without it, when installed.
    #[arg(long = "add-runtime", value_name = "NAME=PATH", value_parser = parse_runtime)]
    pub add_runtimes: Vec<(String, PathBuf)>,
    /// Largest size one image layer may expand to (its decompressed tar, and what its files write)
    /// at `docker load`, `import` and `pull`; a layer crossing it is refused while it streams, and
    /// the load or pull leaves nothing behind. Sizes as `512m`, `8g`; 0 for no limit.
    #[arg(long, value_name = "SIZE", default_value = "16g", value_parser = parse_limit_size)]
    pub max_layer_size: u64,
    /// Largest sum of the expanded sizes of the layers one load or pull writes for one image
    /// (layers already here are not counted); 0 for no limit.
    #[arg(long, value_name = "SIZE", default_value = "64g", value_parser = parse_limit_size)]
    pub max_image_size: u64,
    /// Most tar entries (files, directories, links) in one layer; 0 for no limit.
    #[arg(long, value_name = "N", default_value_t = image::Limits::default().layer_entries)]
    pub max_layer_entries: u64,
    /// Largest expansion ratio of a layer (expanded size / compressed bytes read so far), checked
    /// once it has expanded past 256 MiB so that small, highly compressible layers pass. Real
    /// layers compress 2-10x; a gzip bomb of zeros about 1000x. 0 for no limit.
    #[arg(long, value_name = "RATIO", default_value_t = image::Limits::default().layer_ratio)]
    pub max_layer_ratio: u64,
    /// Log filter (e.g. info, debug, engine=debug).
    /// The default bridge network's interface (Docker's `docker0`); `none` leaves containers of
    /// the default network with loopback only
    #[arg(short = 'b', long, value_name = "NAME|none", default_value = "berth0", value_parser = parse_bridge_name)]
    pub bridge: String,
    /// The default bridge's address and prefix (e.g. 172.17.0.1/16); a free default pool if unset
    #[arg(long, value_name = "CIDR", value_parser = parse_bip)]
    pub bip: Option<ipnet::Ipv4Net>,
    /// A resolver container DNS forwards unknown names to (repeatable; the host's
    /// /etc/resolv.conf servers when none): an IP, with `:PORT` if not 53
    #[arg(long = "dns", value_name = "IP[:PORT]", value_parser = parse_dns)]
    pub dns: Vec<std::net::SocketAddr>,
    /// Where the web dashboard listens (loopback only: it is plain HTTP behind a token; `berth
    /// dashboard` prints its URL), or `none`
    #[arg(long, value_name = "ADDR:PORT|none", default_value = "127.0.0.1:7070", value_parser = parse_dashboard)]
    pub dashboard: DashboardListen,
    /// Directories of CDI device specs (JSON or YAML), lowest priority first; devices are
    /// requested as vendor.com/class=name (--device) or, for nvidia.com/gpu, with --gpus
    #[arg(long = "cdi-spec-dir", value_name = "DIR", default_values = engine::cdi::DEFAULT_DIRS)]
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// The default bridge's MTU
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u32>,
    #[arg(long, default_value = "info", env = "BERTH_LOG")]
    pub log_level: String,
    /// Where the Kubernetes API server listens (HTTPS, client certificates from Berth's CA; the
    /// admin kubeconfig is written to ROOT/kubeconfig). Port 0 takes a free one
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:6443")]
    pub kube_listen: std::net::SocketAddr,
    /// Do not serve the Kubernetes API
    #[arg(long)]
    pub no_kube: bool,
    /// Keep the Kubernetes objects in etcd (`etcd://HOST:PORT`, plain HTTP to etcd's v3 API)
    /// instead of the embedded store (ROOT/kube/store.redb)
    #[arg(long, value_name = "etcd://HOST:PORT", conflicts_with = "no_kube")]
    pub datastore: Option<String>,
    /// The name of this machine's Node in the Kubernetes API (default: the host name)
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// The subnet pods get their addresses from (an engine network `berth-pods`, bridged)
    #[arg(long, value_name = "CIDR", default_value = "10.42.0.0/16")]
    pub pod_cidr: ipnet::Ipv4Net,
    /// The host interface bridging the pods' network
    #[arg(long, value_name = "NAME", default_value = "berth-cni0")]
    pub pod_bridge: String,
    /// The virtual IPs of Services (kube-apiserver's --service-cluster-ip-range); the first is
    /// the `kubernetes` Service's, the tenth the cluster DNS's
    #[arg(long, value_name = "CIDR", default_value = "10.43.0.0/16", value_parser = parse_service_cidr)]
    pub service_cidr: ipnet::Ipv4Net,
    /// Where the ingress proxy serves HTTP for Ingresses of class `berth` (`none`: not at all)
    #[arg(long, value_name = "ADDR:PORT|none", default_value = "0.0.0.0:80", value_parser = parse_listen)]
    pub ingress_http: Listen,
    /// Where the ingress proxy serves HTTPS (certificates from the Ingresses' TLS Secrets)
    #[arg(long, value_name = "ADDR:PORT|none", default_value = "0.0.0.0:443", value_parser = parse_listen)]
    pub ingress_https: Listen,
    /// Seconds a node's Lease may go unrenewed before the node is unreachable and its pods are
    /// evicted as their tolerations say (kube-controller-manager's --node-monitor-grace-period)
    #[arg(long, value_name = "SECONDS", default_value_t = 40, value_parser = parse_grace)]
    pub node_monitor_grace_period: u64,
    /// The ports NodePort Services are given (kube-apiserver's --service-node-port-range)
    #[arg(long, value_name = "FIRST-LAST", default_value = "30000-32767", value_parser = parse_port_range)]
    pub service_node_port_range: std::ops::RangeInclusive<i64>,
}

/// A listening address, or none (`none`).
#[derive(Debug, Clone, Copy)]
pub struct Listen(pub Option<std::net::SocketAddr>);

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s == "none" {
        return Ok(Listen(None));
    }
    s.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{s}: {e} (an ADDR:PORT such as 0.0.0.0:80, or none)"))
}

fn parse_grace(s: &str) -> Result<u64, String> {
    let n: u64 = s.parse().map_err(|e| format!("{s}: {e}"))?;
    if n <= 10 {
        return Err(format!("{n}: must be longer than the node agents' 10 s heartbeat"));
    }
    Ok(n)
}

fn parse_service_cidr(s: &str) -> Result<ipnet::Ipv4Net, String> {
    let n: ipnet::Ipv4Net = s.parse().map_err(|e| format!("{s}: {e}"))?;
    if n.prefix_len() > 28 {
        return Err(format!("{s}: a service range needs at least 16 addresses (a /28 or larger)"));
    }
    Ok(n.trunc())
}

fn parse_port_range(s: &str) -> Result<std::ops::RangeInclusive<i64>, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s}: expected FIRST-LAST, e.g. 30000-32767"))?;
    let parse = |x: &str| x.trim().parse::<u16>().map_err(|e| format!("{s}: {x}: {e}"));
    let (a, b) = (parse(a)?, parse(b)?);
    if a == 0 || a > b {
        return Err(format!("{s}: the first port must be at least 1 and not above the last"));
    }
    Ok(i64::from(a)..=i64::from(b))
}

/// The gid of the API socket's group: `--group` (which must exist), else `docker` if it exists,
/// else root's.
fn socket_group(asked: Option<&str>) -> anyhow::Result<u32> {
    let name = asked.unwrap_or("docker");
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ if asked.is_none() => Ok(0),
        Ok(None) => anyhow::bail!("--group {name}: no such group"),
        Err(e) => anyhow::bail!("--group {name}: {e}"),
    }
}

/// A size limit: `512m`, `8g`, a byte count; 0 for none.
fn parse_limit_size(s: &str) -> Result<u64, String> {
    match crate::cli::units::parse_size(s) {
        Ok(n) if n >= 0 => Ok(n as u64),
        Ok(_) => Err(format!("invalid size {s:?}: 0 means no limit; a limit cannot be negative")),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_runtime(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s.split_once('=').ok_or("expected NAME=PATH")?;
    if name.is_empty() || name == engine::BUILTIN_RUNTIME || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(format!("invalid runtime name {name:?}"));
    }
    if path.is_empty() {
        return Err("a runtime needs a path".into());
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

pub fn run(a: DaemonArgs) -> anyhow::Result<()> {
    crate::server::runtime(&a.log_level)?.block_on(serve(a))
}

async fn serve(a: DaemonArgs) -> anyhow::Result<()> {
    let mut runtimes = engine::EngineConfig::standard_runtimes();
    runtimes.extend(a.add_runtimes.iter().cloned());
    if a.default_runtime != engine::BUILTIN_RUNTIME && !runtimes.contains_key(&a.default_runtime) {
        anyhow::bail!(
            "--default-runtime {}: no such runtime (add it with --add-runtime NAME=PATH)",
            a.default_runtime
        );
    }
    // Everything the daemon creates is at most 0755/0644 whatever the caller's umask; what must
    // be private is made so by the directories above it (engine::private).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let socket_gid = socket_group(a.group.as_deref())?;
    let socket = a.socket.clone().unwrap_or_else(|| a.exec_root.join("berth.sock"));
    std::fs::create_dir_all(&a.root).with_context(|| format!("create {}", a.root.display()))?;
    std::fs::create_dir_all(&a.exec_root).with_context(|| format!("create {}", a.exec_root.display()))?;
    let root = std::fs::canonicalize(&a.root)?;
    let exec_root = std::fs::canonicalize(&a.exec_root)?;
    engine::private::secure_roots(&root, &exec_root, socket_gid).map_err(|e| anyhow::anyhow!("{e}"))?;
    let init_path = a.init_path.clone().or_else(|| {
        ["/usr/bin/tini-static", "/usr/libexec/docker/docker-init", "/usr/bin/docker-init"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    });
    let exe = std::env::current_exe().context("locating the berth binary")?;
    if a.cgroup_favordynmods {
        match runtime::cgroup::favor_dynmods() {
            Ok(runtime::cgroup::FavorDynmods::Enabled(m)) => {
                tracing::info!(mount = %m.display(), "remounted with favordynmods: cgroup moves no longer wait for an RCU grace period")
            }
            Ok(runtime::cgroup::FavorDynmods::AlreadyOn(m)) => tracing::debug!(mount = %m.display(), "favordynmods already on"),
            Err(e) => tracing::warn!(
                error = %e,
                "could not enable cgroup favordynmods (Linux 6.0+ and CAP_SYS_ADMIN needed); container starts will wait for RCU"
            ),
        }
    }
    let cfg = engine::EngineConfig {
        root,
        exec_root,
        exe,
        init_path,
        insecure_registries: a.insecure_registries.clone(),
        certs_dirs: a.certs_dirs.clone(),
        runtimes,
        default_runtime: a.default_runtime.clone(),
        image_limits: image::Limits {
            layer_size: a.max_layer_size,
            image_size: a.max_image_size,
            layer_entries: a.max_layer_entries,
            layer_ratio: a.max_layer_ratio,
            ..image::Limits::default()
        },
        bridge: (a.bridge != "none").then(|| engine::networks::BridgeConfig {
            name: a.bridge.clone(),
            bip: a.bip,
            mtu: a.mtu,
        }),
        dns: a.dns.clone(),
        cdi_spec_dirs: a.cdi_spec_dirs.clone(),
    };
    let kube_root = cfg.root.clone();
    let engine = engine::Engine::open(cfg).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let kube = if a.no_kube {
        None
    } else {
        let kcfg = kube::apiserver::Config {
            listen: a.kube_listen,
            dir: kube_root.join("kube"),
            kubeconfig: kube_root.join("kubeconfig"),
            datastore: a.datastore.clone(),
            node: Some(kube::agent::NodeConfig {
                name: a.node_name.clone().unwrap_or_else(kube::agent::hostname),
                kubelet_version: format!("v1.{}.0+berth-{}", kube::apiserver::KUBE_MINOR, env!("CARGO_PKG_VERSION")),
                runtime_version: format!("berth://{}", env!("CARGO_PKG_VERSION")),
                root: kube_root.clone(),
                cdi_spec_dirs: a.cdi_spec_dirs.clone(),
            }),
            engine: Some(std::sync::Arc::new(engine.clone()) as std::sync::Arc<dyn engine::service::ContainerService>),
            pod_network: kube::agent::pods::PodNetwork {
                subnet: a.pod_cidr.trunc().to_string(),
                bridge: a.pod_bridge.clone(),
                ..Default::default()
            },
            dns: a.dns.clone(),
            node_grace: std::time::Duration::from_secs(a.node_monitor_grace_period),
            ingress: kube::ingress::Config {
                http: a.ingress_http.0,
                https: a.ingress_https.0,
            },
            services: kube::apiserver::network::ServiceRanges {
                net: (a.service_cidr.network(), a.service_cidr.prefix_len()),
                node_ports: a.service_node_port_range.clone(),
            },
        };
        Some(kube::apiserver::start(kcfg).await.map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    let dashboard = match a.dashboard.0 {
        Some(addr) => {
            let kube_client = kube
                .as_ref()
                .map(|k| kube::controllers::runtime::Client::new(k.server.clone(), "berth-dashboard"));
            Some(crate::dashboard::start(addr, engine.clone(), kube_client).await?)
        }
        None => None,
    };
    let registry = match &a.registry {
        Some(addr) => Some(start_registry(&a, addr, &engine).await?),
        None => None,
    };
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
    std::os::unix::fs::chown(&socket, Some(0), Some(socket_gid)).with_context(|| format!("chown {}", socket.display()))?;
    tracing::info!(socket = %socket.display(), "berth daemon listening");
    let app = engine::api::app(engine);
    let shutdown = crate::server::shutdown_signal();
    use axum::ServiceExt;
    axum::serve(listener, app.into_make_service_with_connect_info::<engine::api::ConnFd>())
        .with_graceful_shutdown(shutdown)
        .await?;
    let _ = std::fs::remove_file(&socket);
    if let Some(d) = dashboard {
        d.abort();
    }
    if let Some(k) = kube {
        k.task.abort();
        if let Some(a) = k.agent {
            a.abort();
        }
    }
    if let Some((stop, task)) = registry {
        let _ = stop.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    // Containers keep running under their shims (live restore).
    Ok(())
}

/// Bind the registry (failing the daemon's start if it cannot) and serve it in the background;
/// send `true` on the returned channel to stop it.
async fn start_registry(
    a: &DaemonArgs,
    addr: &str,
    engine: &engine::Engine,
) -> anyhow::Result<(tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>)> {
    let opts = crate::registry_cmd::AccessOptions {
        htpasswd: a.registry_htpasswd.clone(),
        anonymous: a.registry_anonymous,
        token: a.registry_token,
        access_rules: a.registry_access_rules.clone(),
        tls_cert: a.registry_tls_cert.clone(),
        tls_key: a.registry_tls_key.clone(),
    };
    let (auth, tls) = crate::registry_cmd::access_config(addr, &opts, "registry-").context("--registry")?;
    let anonymous = auth.anonymous;
    let root = std::fs::canonicalize(&a.root)?;
    let cfg = registry::server::RegistryConfig::new(root.join("registry"), auth);
    let reg = registry::server::Registry::open(engine.content_store().clone(), cfg)?;
    let server = registry::server::Server::bind(addr, tls.as_ref()).await?;
    tracing::info!(addr = %server.local_addr()?, tls = server.is_tls(), %anonymous, "registry listening");
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        if let Err(e) = server.serve(registry::server::router(reg), shutdown).await {
            tracing::error!(error = %e, "registry stopped");
        }
    });
    Ok((stop, task))
}

/// An interface name the kernel takes: 1 to 15 bytes, no `/`, whitespace or `:`.
fn parse_bridge_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 15 || s.contains(['/', ':']) || s.chars().any(char::is_whitespace) {
        return Err(format!(
            "{s:?} is not an interface name (1 to 15 characters, no '/', ':' or spaces)"
        ));
    }
    Ok(s.to_string())
}

/// `--bip`: an address with its prefix, the bridge's own (not the network's: 172.17.0.1/16).
fn parse_bip(s: &str) -> Result<ipnet::Ipv4Net, String> {
    let n: ipnet::Ipv4Net = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address with a prefix (like 172.17.0.1/16)"))?;
    if n.addr() == n.network() || n.addr() == n.broadcast() || n.prefix_len() > 30 {
        return Err(format!("{s}: the bridge needs a host address of its subnet (like 172.17.0.1/16)"));
    }
    Ok(n)
}

/// `--dashboard`: a loopback address, or none.
#[derive(Debug, Clone)]
pub struct DashboardListen(pub Option<std::net::SocketAddr>);

fn parse_dashboard(s: &str) -> Result<DashboardListen, String> {
    if s == "none" {
        return Ok(DashboardListen(None));
    }
    let addr: std::net::SocketAddr = s.parse().map_err(|_| format!("{s:?} is not ADDR:PORT (or none)"))?;
    crate::dashboard::check_addr(&addr)?;
    Ok(DashboardListen(Some(addr)))
}

/// `--dns`: `IP` (port 53) or `IP:PORT`.
fn parse_dns(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not an IP address (with an optional :PORT)"))
}
