//! `berth registry serve`: a standalone OCI registry; and the access options `berth daemon
//! --registry` shares with it.

use std::net::ToSocketAddrs;
use std::path::PathBuf;

use anyhow::{bail, Context};
use registry::server::{AccessRules, Anonymous, AuthConfig, Htpasswd, Registry, Server, TlsFiles, TokenConfig};

#[derive(clap::Subcommand)]
pub enum RegistryCmd {
    /// Serve an OCI registry (the OCI Distribution Spec v1.1, as docker, skopeo and containerd speak it).
    ///
    /// Blobs are kept in ROOT/blobs (a content store, every upload verified against its digest),
    /// repositories, tags and manifests in ROOT/registry.
    ///
    /// Access: with neither --htpasswd nor --anonymous, anonymous clients may pull and push, and only
    /// a loopback address is accepted. With --htpasswd, users log in with basic auth (or get tokens
    /// with --token) and anonymous clients may do nothing unless --anonymous says otherwise.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, HOST:PORT (e.g. 127.0.0.1:5000, [::1]:5000, 0.0.0.0:5000).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:5000")]
    pub addr: String,
    /// Directory for the registry's data (created if missing).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Users who may log in: an htpasswd file of bcrypt hashes, as `htpasswd -B` writes.
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// What clients without credentials may do: none, pull, or push (pull, push and delete).
    /// Default: none with --htpasswd; push without it (loopback addresses only).
    #[arg(long, value_name = "none|pull|push")]
    pub anonymous: Option<Anonymous>,
    /// Use the bearer token flow: challenge with `WWW-Authenticate: Bearer realm=<this server>/token`
    /// and issue HMAC-signed tokens there to users authenticated with basic auth (five-minute
    /// tokens; their key is made at start, so a restart makes clients log in again).
    #[arg(long)]
    pub token: bool,
    /// Limit what each user may do: lines of `USER REPOSITORIES ACTIONS`, e.g. `bob team/* pull,push`
    /// (USER may be `*` for any user, REPOSITORIES `*`, a name or `prefix/*`, ACTIONS a list of pull,
    /// push, delete or `*`). Without it, every user may pull, push and delete everywhere.
    #[arg(long, value_name = "FILE", requires = "htpasswd")]
    pub access_rules: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log filter (e.g. info, debug, registry=debug).
    #[arg(long, default_value = "info", env = "BERTH_LOG")]
    pub log_level: String,
}

/// The access options of a registry, from `berth registry serve` or `berth daemon --registry-*`.
pub struct AccessOptions {
    pub htpasswd: Option<PathBuf>,
    pub anonymous: Option<Anonymous>,
    pub token: bool,
    pub access_rules: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// Whether every address `addr` resolves to is a loopback address.
fn is_loopback(addr: &str) -> anyhow::Result<bool> {
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .with_context(|| format!("invalid address {addr:?}: expected HOST:PORT"))?
        .collect();
    Ok(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()))
}

/// Turn the options into the registry's access configuration, applying the safe defaults: no
/// credentials and no `--anonymous` means anonymous pull and push, which is only allowed on a
/// loopback address.
pub fn access_config(addr: &str, o: &AccessOptions, flag_prefix: &str) -> anyhow::Result<(AuthConfig, Option<TlsFiles>)> {
    let users = match &o.htpasswd {
        Some(p) => {
            let h = Htpasswd::load(p)?;
            if h.is_empty() {
                bail!("{}: no users", p.display());
            }
            Some(h)
        }
        None => None,
    };
    let rules = o.access_rules.as_deref().map(AccessRules::load).transpose()?;
    let anonymous = match (o.anonymous, &users) {
        (Some(a), _) => a,
        (None, Some(_)) => Anonymous::None,
        (None, None) => {
            if !is_loopback(addr)? {
                bail!(
                    "refusing to serve a registry on {addr} open to anyone: give --{flag_prefix}htpasswd FILE for users \
                     (and --{flag_prefix}anonymous pull for public reads), or --{flag_prefix}anonymous push to allow \
                     anonymous pushes anyway, or bind a loopback address"
                );
            }
            Anonymous::Push
        }
    };
    if anonymous == Anonymous::None && users.is_none() {
        bail!("--{flag_prefix}anonymous none without --{flag_prefix}htpasswd: nobody could use this registry");
    }
    if anonymous == Anonymous::Push && !is_loopback(addr)? {
        tracing::warn!(%addr, "anyone who can reach this registry may push to it and delete from it");
    }
    let tls = match (&o.tls_cert, &o.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None) => None,
        _ => bail!("--{flag_prefix}tls-cert and --{flag_prefix}tls-key go together"),
    };
    let auth = AuthConfig {
        anonymous,
        users,
        rules,
        token: o.token.then(|| TokenConfig::local(tls.is_some())),
        basic_realm: "Berth Registry".into(),
    };
    Ok((auth, tls))
}

pub fn run(cmd: RegistryCmd) -> anyhow::Result<()> {
    let RegistryCmd::Serve(a) = cmd;
    crate::server::runtime(&a.log_level)?.block_on(serve(a))
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let opts = AccessOptions {
        htpasswd: a.htpasswd,
        anonymous: a.anonymous,
        token: a.token,
        access_rules: a.access_rules,
        tls_cert: a.tls_cert,
        tls_key: a.tls_key,
    };
    let (auth, tls) = access_config(&a.addr, &opts, "")?;
    let anonymous = auth.anonymous;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    std::fs::create_dir_all(&a.root).with_context(|| format!("create {}", a.root.display()))?;
    // Blobs are served only through the API, with its access control: the directory is root's.
    engine::private::ensure_dir(&a.root, engine::private::DIR_MODE, 0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let reg = Registry::open_dir(&a.root, auth)?;
    let server = Server::bind(&a.addr, tls.as_ref()).await?;
    tracing::info!(addr = %server.local_addr()?, tls = server.is_tls(), %anonymous, token = opts.token, root = %a.root.display(), "registry listening");
    server
        .serve(registry::server::router(reg), crate::server::shutdown_signal())
        .await?;
    Ok(())
}
