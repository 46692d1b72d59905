//! `create`: a container record from a request, its name, runtime and inherited mounts.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{random_id, Engine};
use crate::error::{internal, Error, Result};
use crate::types::{now, Container, HostConfig, NetworkMode, RestartMode, State};

use super::*;

use super::checks::{check_mounts, check_networking, create_warnings, valid_container_name};

/// Name generator: docker-like adjective_noun.
pub(crate) fn generate_name(engine: &Engine) -> String {
    const A: &[&str] = &[
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nifty", "proud", "quirky", "sharp",
        "tender", "vivid", "witty", "zealous",
    ];
    const N: &[&str] = &[
        "turing", "hopper", "lovelace", "curie", "noether", "euler", "gauss", "ritchie", "thompson", "torvalds", "knuth", "dijkstra",
        "shannon", "babbage", "hamilton", "liskov",
    ];
    loop {
        let id = random_id();
        let b = u64::from_str_radix(&id[..12], 16).unwrap_or(0);
        let name = format!("/{}_{}", A[(b % A.len() as u64) as usize], N[((b >> 16) % N.len() as u64) as usize]);
        let name = if engine.name_taken(&name).is_some() {
            format!("{name}{}", b % 100)
        } else {
            name
        };
        if engine.name_taken(&name).is_none() {
            return name;
        }
    }
}

impl Engine {
    /// The runtime a container asks for by name (`""`: the daemon's default), or Docker's error
    /// for one the daemon does not know.
    pub fn runtime_name(&self, asked: &str) -> Result<String> {
        let name = match asked {
            "" => self.cfg.default_runtime.as_str(),
            // What Docker calls its runc shim.
            "io.containerd.runc.v2" => "runc",
            n => n,
        };
        if name == crate::engine::BUILTIN_RUNTIME || self.cfg.runtimes.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(Error::BadRequest(format!("unknown or invalid runtime name: {asked}")))
        }
    }

    /// The binary of runtime `name`; `None` for the built-in one.
    pub fn runtime_binary(&self, name: &str) -> Result<Option<PathBuf>> {
        if name == crate::engine::BUILTIN_RUNTIME {
            return Ok(None);
        }
        let p = self
            .cfg
            .runtimes
            .get(name)
            .ok_or_else(|| Error::BadRequest(format!("unknown or invalid runtime name: {name}")))?;
        runtime::external::resolve(p)
            .map(Some)
            .ok_or_else(|| Error::BadRequest(format!("runtime {name}: {} is not installed (not found on PATH)", p.display())))
    }

    /// The runtime recorded for a container at create (the default one for older records).
    pub(crate) fn container_runtime(&self, c: &Container) -> Result<Option<PathBuf>> {
        let asked = c.host_config.extra.get("Runtime").and_then(|v| v.as_str()).unwrap_or("");
        self.runtime_binary(&self.runtime_name(asked)?)
    }

    /// `POST /containers/create`.
    pub async fn create(self: &Arc<Self>, name: Option<&str>, mut req: CreateRequest) -> Result<(String, Vec<String>)> {
        check_supported(&req.host_config)?;
        self.cdi_edits(&req.host_config)?;
        check_networking(&req)?;
        let networks = self.networks_at_create(&req)?;
        // Kept in Config.MacAddress, where 1.43's inspect shows it, whichever way it came.
        if let Some(mac) = super::checks::requested_mac(&req)? {
            if self.cfg.bridge.is_none() {
                return Err(Error::BadRequest(
                    "conflicting options: mac-address and the network mode (this daemon has no default bridge: --bridge none)".into(),
                ));
            }
            req.config
                .extra
                .insert("MacAddress".into(), serde_json::Value::String(net::link::mac_string(&mac)));
        }
        let mut warnings = create_warnings(&mut req.host_config);
        let rt = self.runtime_name(req.host_config.extra.get("Runtime").and_then(|v| v.as_str()).unwrap_or(""))?;
        self.runtime_binary(&rt)?;
        req.host_config.extra.insert("Runtime".into(), serde_json::Value::String(rt));
        if req.config.image.is_empty() {
            return Err(Error::BadRequest("config.Image must be set".into()));
        }
        let image_id = self
            .images
            .resolve(&req.config.image)
            .map_err(|_| Error::NotFound(format!("No such image: {}", req.config.image)))?;
        let img = self.images.config(&image_id)?;
        let name = self.claim_name(name)?;
        merge_image_config(&mut req.config, &img.config)?;
        log_rotation(&req.host_config.log_config)?;
        if req.host_config.log_config.kind.is_empty() {
            req.host_config.log_config.kind = "json-file".into();
        }
        if let NetworkMode::Container(key) = &req.host_config.network_mode {
            // Kept by ID, so a rename of the donor changes nothing.
            let donor = self.get(key)?.snapshot();
            req.host_config.network_mode = NetworkMode::Container(donor.id);
        }
        let cfg = &mut req.config;
        let mut args: Vec<String> = cfg.entrypoint.clone().unwrap_or_default();
        args.extend(cfg.cmd.clone().unwrap_or_default());
        if req.sandbox {
            // What the pause process shows as; it runs nothing from the image.
            args = vec!["/pause".into()];
            if req.host_config.extra.get("Runtime").and_then(|v| v.as_str()) != Some(crate::engine::BUILTIN_RUNTIME) {
                return Err(Error::BadRequest("a pod sandbox runs on the built-in runtime only".into()));
            }
        }
        if args.is_empty() {
            return Err(Error::BadRequest("no command specified".into()));
        }
        if req.host_config.network_mode == NetworkMode::Default {
            req.host_config.network_mode = NetworkMode::Bridge;
        }
        if req.host_config.restart_policy.name == RestartMode::Unset {
            req.host_config.restart_policy.name = RestartMode::No;
        }
        if req.host_config.ipc_mode.is_empty() {
            req.host_config.ipc_mode = "private".into();
        }
        if req.host_config.uts_mode == "host" && !cfg.hostname.is_empty() {
            return Err(Error::BadRequest("conflicting options: hostname and the UTS mode".into()));
        }
        let id = random_id();
        if cfg.hostname.is_empty() {
            cfg.hostname = if req.host_config.network_mode == NetworkMode::Host || req.host_config.uts_mode == "host" {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                id[..12].to_string()
            };
        }
        check_mounts(&req.host_config)?;
        let inherited_mounts = self.volumes_from(&req.host_config)?;
        // Binds must parse now so a bad one fails create, not start.
        for b in req.host_config.binds.iter().flatten() {
            parse_bind(b)?;
        }
        let c = Container {
            id: id.clone(),
            name,
            created: now(),
            path: args[0].clone(),
            args: args[1..].to_vec(),
            config: req.config,
            host_config: req.host_config,
            image: image_id.to_string(),
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            anon_volumes: vec![],
            inherited_mounts,
            endpoints: Default::default(),
            published: Default::default(),
            networks,
            sandbox: req.sandbox,
        };
        warnings.extend(crate::ports::check(&c, self.cfg.bridge.is_some())?);
        let dir = self.container_dir(&id);
        for d in ["diff", "work", "rootfs"] {
            std::fs::create_dir_all(dir.join(d)).map_err(internal)?;
        }
        let mut c = c;
        if let Err(e) = self.make_volumes(&mut c) {
            // Nothing of a refused create stays: its anonymous volumes and its directory go.
            for v in &c.anon_volumes {
                let _ = self.remove_volume(v, true);
            }
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.save(&c)?;
        self.emit(&c, "create");
        self.insert(c);
        Ok((id, warnings))
    }

    /// The name a new container gets: the one asked for (checked, and free), or a generated one.
    fn claim_name(&self, name: Option<&str>) -> Result<String> {
        Ok(match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.trim_start_matches('/');
                if !valid_container_name(n) {
                    return Err(Error::BadRequest(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                let full = format!("/{n}");
                if let Some(other) = self.name_taken(&full) {
                    return Err(Error::Conflict(format!(
                        "Conflict. The container name \"{full}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                full
            }
            None => generate_name(self),
        })
    }

    /// The mounts `VolumesFrom` (`CONTAINER[:ro|rw]`) takes from each donor: its binds, named
    /// and anonymous volumes and what it inherited itself (tmpfs mounts are its own), read-only
    /// when asked, else as the donor has them.
    pub(crate) fn volumes_from(&self, hc: &HostConfig) -> Result<Vec<crate::types::MountPoint>> {
        let mut out: Vec<crate::types::MountPoint> = Vec::new();
        let specs: Vec<String> = match hc.extra.get("VolumesFrom") {
            None | Some(serde_json::Value::Null) => return Ok(out),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error::BadRequest(format!("HostConfig.VolumesFrom: {e}")))?,
        };
        for spec in specs {
            let (name, mode) = match spec.split_once(':') {
                Some((n, m)) => (n, m),
                None => (spec.as_str(), ""),
            };
            let force_ro = match mode {
                "" | "rw" => None,
                "ro" => Some(true),
                m => return Err(Error::BadRequest(format!("invalid mode for volumes-from: {m}"))),
            };
            let donor = self.get(name)?.snapshot();
            let mut add = |kind: &str, source: String, target: String, ro: bool| {
                out.retain(|m| m.target != target);
                out.push(crate::types::MountPoint {
                    kind: kind.into(),
                    source,
                    target,
                    read_only: match (force_ro, mode) {
                        (Some(r), _) => r,
                        (None, "rw") => false,
                        _ => ro,
                    },
                    ..Default::default()
                });
            };
            for b in donor.host_config.binds.iter().flatten() {
                let (src, dst, ro) = parse_bind(b)?;
                add(if src.starts_with('/') { "bind" } else { "volume" }, src, dst, ro);
            }
            for v in &donor.anon_volumes {
                if let Ok(vol) = self.volumes.get(v) {
                    if let Some(t) = vol.labels.get(crate::volumes::ANONYMOUS_LABEL) {
                        add("volume", v.clone(), t.clone(), false);
                    }
                }
            }
            for m in donor.host_config.mounts.iter().flatten().chain(&donor.inherited_mounts) {
                if m.kind == "bind" || (m.kind == "volume" && !m.source.is_empty()) {
                    add(&m.kind, m.source.clone(), m.target.clone(), m.read_only);
                }
            }
        }
        Ok(out)
    }
}

/// Merge the image's defaults into a container's config, as Docker does at create time.
fn merge_image_config(cfg: &mut ContainerConfig, ic: &oci::spec::RunConfig) -> Result<()> {
    let mut env: Vec<String> = ic.env.clone().unwrap_or_default();
    // `-e NAME` (unset on the client's side) is kept as Docker keeps it: it hides the image's
    // NAME, and the process gets no NAME at all (see `process_env`).
    for kv in cfg.env.clone().unwrap_or_default() {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(&key));
        env.push(kv);
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    cfg.env = Some(env);
    let entry_overridden = cfg.entrypoint.is_some();
    if cfg.entrypoint.is_none() {
        cfg.entrypoint = ic.entrypoint.clone();
    }
    if cfg.entrypoint.as_ref().is_some_and(|e| e.len() == 1 && e[0].is_empty()) {
        cfg.entrypoint = None;
    }
    if cfg.cmd.is_none() && !entry_overridden {
        cfg.cmd = ic.cmd.clone();
    }
    if cfg.working_dir.is_empty() {
        cfg.working_dir = ic.working_dir.clone().unwrap_or_default();
    }
    if !cfg.working_dir.is_empty() && !cfg.working_dir.starts_with('/') {
        return Err(Error::BadRequest(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            cfg.working_dir
        )));
    }
    if cfg.user.is_empty() {
        cfg.user = ic.user.clone().unwrap_or_default();
    }
    if cfg.stop_signal.is_none() {
        cfg.stop_signal = ic.stop_signal.clone();
    }
    if let Some(s) = &cfg.stop_signal {
        parse_signal(s)?;
    }
    let image_check = match &ic.healthcheck {
        Some(v) => Some(
            serde_json::from_value::<crate::health::HealthConfig>(v.clone())
                .map_err(|e| Error::BadRequest(format!("the image's healthcheck: {e}")))?,
        ),
        None => None,
    };
    match (&mut cfg.healthcheck, image_check) {
        (None, img) => cfg.healthcheck = img,
        (Some(mine), Some(img)) => mine.inherit(&img),
        (Some(_), None) => {}
    }
    if let Some(h) = &cfg.healthcheck {
        h.validate()?;
    }
    for (k, v) in ic.labels.clone().unwrap_or_default() {
        cfg.labels.entry(k).or_insert(v);
    }
    if let Some(v) = &ic.volumes {
        let mut vols = cfg.volumes.clone().unwrap_or_default();
        for k in v.keys() {
            vols.entry(k.clone()).or_insert(serde_json::json!({}));
        }
        cfg.volumes = Some(vols);
    }
    if cfg.exposed_ports.is_none() {
        cfg.exposed_ports = ic.exposed_ports.clone();
    }
    Ok(())
}

impl Engine {
    /// The network a container created with `--network NAME` joins, with its endpoint settings
    /// (`--ip`); the network must exist, as in Docker.
    fn networks_at_create(&self, req: &CreateRequest) -> Result<std::collections::BTreeMap<String, crate::networks::EndpointSettings>> {
        let eps = req
            .networking_config
            .as_ref()
            .and_then(|v| v.get("EndpointsConfig"))
            .and_then(|v| v.as_object());
        let NetworkMode::Named(key) = &req.host_config.network_mode else {
            // The default bridge: endpoint settings given for it (driver options) are kept.
            if req.host_config.network_mode.is_default_bridge() && self.cfg.bridge.is_some() {
                let ep = eps.and_then(|m| m.get(crate::networks::DEFAULT_NETWORK).or_else(|| m.get("default")));
                if let Some(ep) = ep.filter(|e| !e.is_null()) {
                    let settings = crate::networks::EndpointSettings::from_config(ep)?;
                    if settings != Default::default() {
                        return Ok([(crate::networks::DEFAULT_NETWORK.to_string(), settings)].into_iter().collect());
                    }
                }
            }
            return Ok(Default::default());
        };
        let n = self
            .networks
            .find(key)
            .ok_or_else(|| Error::NotFound(format!("network {key} not found")))?;
        let ep = eps.and_then(|m| m.get(key).or_else(|| m.get(&n.name)).or_else(|| m.get(&n.id)));
        let settings = crate::networks::EndpointSettings::from_config(ep.unwrap_or(&serde_json::Value::Null))?;
        Ok([(n.name.clone(), settings)].into_iter().collect())
    }
}
