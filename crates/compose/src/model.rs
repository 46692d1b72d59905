//! The typed Compose Specification: what a project is after its files are loaded, interpolated
//! and merged. Short syntaxes (`"8080:80"`, `"data:/var/lib"`, a list of `KEY=VALUE`) are parsed
//! into their long form here, so the rest of Berth sees one shape. Keys Berth does not implement
//! are refused (`deny_unknown_fields`): a compose file never has a key accepted and ignored.
//! `x-*` extension keys are allowed anywhere and dropped before typing.

use std::collections::BTreeMap;

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::units::{parse_duration, parse_size};

/// A whole project.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// The project name (`name:`, `-p`, `COMPOSE_PROJECT_NAME`, or the directory's name).
    #[serde(default)]
    pub name: String,
    /// Obsolete; accepted and not used, as Docker Compose does (it warns).
    #[serde(default, skip_serializing)]
    pub version: Option<Value>,
    /// Services by name.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// Networks by their key in the file.
    #[serde(default, deserialize_with = "nullable_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Named volumes by their key in the file.
    #[serde(default, deserialize_with = "nullable_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// Configs by key.
    #[serde(default, deserialize_with = "nullable_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    /// Secrets by key.
    #[serde(default, deserialize_with = "nullable_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
}

/// One service.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Image to run (and the tag a `build` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How to build the image.
    #[serde(default, deserialize_with = "build", skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// Overrides the image's CMD (a string is split as a shell would).
    #[serde(default, deserialize_with = "command", skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Overrides the image's ENTRYPOINT.
    #[serde(default, deserialize_with = "command", skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment; `None` values were `KEY` alone and are resolved from the environment at load.
    #[serde(default, deserialize_with = "env_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    /// Files of `KEY=VALUE` lines (read at load; their values are under `environment`).
    #[serde(default, deserialize_with = "env_files", skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    /// Published ports.
    #[serde(default, deserialize_with = "ports", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Ports exposed to linked services only (`80`, `"8000-8010/udp"`).
    #[serde(default, deserialize_with = "scalar_list", skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// Mounts.
    #[serde(default, deserialize_with = "volumes", skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// tmpfs mounts (`/run:size=64m`).
    #[serde(default, deserialize_with = "scalar_list", skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Networks to join (none given: the project's `default`).
    #[serde(default, deserialize_with = "service_networks", skip_serializing_if = "Option::is_none")]
    pub networks: Option<BTreeMap<String, ServiceNetwork>>,
    /// `host`, `none`, `bridge`, `container:<id>`, `service:<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Services to start first, and what to wait for.
    #[serde(default, deserialize_with = "depends_on", skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    /// Health probe (overrides the image's HEALTHCHECK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `no`, `always`, `on-failure[:N]`, `unless-stopped`.
    #[serde(default, deserialize_with = "restart", skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// User (name or UID, optionally `:group`).
    #[serde(default, deserialize_with = "opt_scalar", skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Container hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Container domain name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// A fixed container name (then the service cannot scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Container labels.
    #[serde(default, deserialize_with = "label_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Replicas and resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// The service only runs when one of these profiles is enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// `/etc/hosts` entries (`host:ip`, `host=ip`, or a map); `host-gateway` allowed.
    #[serde(default, deserialize_with = "extra_hosts", skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// DNS servers.
    #[serde(default, deserialize_with = "scalar_list", skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// DNS search domains.
    #[serde(default, deserialize_with = "scalar_list", skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, deserialize_with = "scalar_list", skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// Capabilities to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Host devices (`HOST[:CONTAINER[:PERMS]]`) and CDI devices (`vendor.com/class=name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// GPUs: `all`, or device requests as `deploy.resources.reservations.devices` gives them.
    #[serde(default, deserialize_with = "gpus", skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceRequest>,
    /// Capabilities to drop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// `--security-opt` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Kernel parameters.
    #[serde(default, deserialize_with = "label_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Resource limits by name (`nofile: {soft, hard}` or `nproc: 65535`).
    #[serde(default, deserialize_with = "ulimits", skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Privileged container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Run an init as PID 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Allocate a TTY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Keep stdin open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    /// Read-only root filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Signal to stop the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Time to wait after the stop signal, before SIGKILL (seconds).
    #[serde(default, deserialize_with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<f64>,
    /// Size of /dev/shm in bytes.
    #[serde(default, deserialize_with = "opt_size", skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// Memory limit in bytes.
    #[serde(default, deserialize_with = "opt_size", skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<i64>,
    /// Memory plus swap limit in bytes.
    #[serde(default, deserialize_with = "opt_size", skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<i64>,
    /// CPUs (fractional).
    #[serde(default, deserialize_with = "opt_float", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Relative CPU weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// Process limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Number of containers (as `deploy.replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// `always`, `never`, `missing` (`if_not_present`), `build`.
    #[serde(default, deserialize_with = "pull_policy", skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    /// Secrets mounted under /run/secrets.
    #[serde(default, deserialize_with = "file_refs", skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileRef>,
    /// Configs mounted at /<name> (or their target).
    #[serde(default, deserialize_with = "file_refs", skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileRef>,
}

/// `build:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Context directory (relative to the project directory).
    #[serde(default = "dot")]
    pub context: String,
    /// Dockerfile, relative to the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Build arguments (`None`: from the environment).
    #[serde(default, deserialize_with = "env_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    /// Stage to build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Image labels.
    #[serde(default, deserialize_with = "label_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Images whose layers may serve as cache.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// Network for RUN steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Extra tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// /etc/hosts entries for RUN steps.
    #[serde(default, deserialize_with = "extra_hosts", skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// /dev/shm size for RUN steps.
    #[serde(default, deserialize_with = "opt_size", skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<i64>,
    /// Do not use the build cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cache: Option<bool>,
}

fn dot() -> String {
    ".".into()
}

/// One `env_file` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    /// The file (relative to the project directory).
    pub path: String,
    /// A missing file is an error unless this is false.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// One published port (a range is one entry with `target_end`/`published` ranges).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Container port (first of a range).
    pub target: u16,
    /// Last container port of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_end: Option<u16>,
    /// Host port or range (`8080`, `8080-8090`); none: a free port.
    #[serde(default, deserialize_with = "opt_scalar", skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// Host address to bind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// `tcp` or `udp`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// `host` or `ingress` (both publish on this host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Human name of the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn tcp() -> String {
    "tcp".into()
}

/// One mount (`volumes:` entry), in long form.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Volume key, host path, or nothing (anonymous volume, tmpfs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Path in the container.
    pub target: String,
    /// Mounted read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Bind options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// tmpfs options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
}

/// `bind:` options of a mount.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    /// Mount propagation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create the host path when missing (default true, as the short syntax does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_host_path: Option<bool>,
}

/// `volume:` options of a mount.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    /// Do not copy the image's content into a new volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
    /// Mount only this subdirectory of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// `tmpfs:` options of a mount.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    /// Size in bytes.
    #[serde(default, deserialize_with = "opt_size", skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// File mode (octal in YAML, e.g. 01777).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// A service's membership of one network.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    /// Extra DNS names on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Fixed IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// Fixed MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Order in which networks are connected (higher first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// What a dependency must reach before the dependent starts.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Started (running).
    #[default]
    ServiceStarted,
    /// Running and its healthcheck passed.
    ServiceHealthy,
    /// Ran to completion with exit code 0.
    ServiceCompletedSuccessfully,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// What to wait for.
    #[serde(default)]
    pub condition: Condition,
    /// Restart the dependent when this dependency is recreated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
    /// A missing dependency is an error unless this is false.
    #[serde(default = "yes")]
    pub required: bool,
}

/// `healthcheck:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]`, `["NONE"]`; a string is `CMD-SHELL`.
    #[serde(default, deserialize_with = "health_test", skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Seconds between probes.
    #[serde(default, deserialize_with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
    /// Seconds a probe may take.
    #[serde(default, deserialize_with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Failures in a row that make the container unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Seconds during which failures do not count.
    #[serde(default, deserialize_with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub start_period: Option<f64>,
    /// Seconds between probes during the start period.
    #[serde(default, deserialize_with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<f64>,
    /// Turn the image's healthcheck off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

/// `deploy:` (the parts that apply to one engine).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Number of containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Limits and reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Restart policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Hard limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Reservations (memory becomes the soft limit; CPUs are not reserved on one engine and are
    /// refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Reservations>,
}

/// `deploy.resources.limits`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPUs (fractional).
    #[serde(default, deserialize_with = "opt_float", skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory in bytes.
    #[serde(default, deserialize_with = "opt_size", skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Process limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

/// `deploy.resources.reservations`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reservations {
    /// Memory soft limit in bytes.
    #[serde(default, deserialize_with = "opt_size", skip_serializing_if = "Option::is_none")]
    pub memory: Option<i64>,
    /// Devices (GPUs) the container gets, through the engine's CDI specs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRequest>,
}

/// A device request (`deploy.resources.reservations.devices[]`, `gpus`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// The device driver (`nvidia`, `cdi`); chosen by capabilities when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// How many devices: a number, or `all` (-1).
    #[serde(default, deserialize_with = "device_count", skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// Which devices, by ID (exclusive with `count`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// What the devices must be able to do (`gpu`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `deploy.restart_policy`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// `none`, `on-failure` or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Attempts for on-failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// One ulimit.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// A top-level network.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The engine's name for it (default `<project>_<key>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only `bridge` on this engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options (`com.docker.network.bridge.name`, MTU...).
    #[serde(default, deserialize_with = "label_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Address management.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    /// Made outside compose: looked up, never created or removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// No outside connectivity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Other containers may join.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attachable: bool,
    /// IPv6 (refused: Berth's networks are IPv4).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_ipv6: bool,
    /// Labels.
    #[serde(default, deserialize_with = "label_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `ipam:` of a network.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    /// Only `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
}

/// One IPAM pool.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpamPool {
    /// CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Sub-range containers get addresses from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Addresses never handed out.
    #[serde(default, deserialize_with = "label_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A top-level volume.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// The engine's name for it (default `<project>_<key>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default, deserialize_with = "label_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Made outside compose.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Labels.
    #[serde(default, deserialize_with = "label_map", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A top-level config or secret: where its content comes from.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileObject {
    /// Name (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A file (relative to the project directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// An environment variable holding the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The content itself (configs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// External (a swarm object; refused on one engine).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
}

/// A service's use of a config or secret.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Key of the top-level config/secret.
    pub source: String,
    /// Path in the container (default `/run/secrets/<source>`, `/<source>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner UID.
    #[serde(default, deserialize_with = "opt_scalar", skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Owner GID.
    #[serde(default, deserialize_with = "opt_scalar", skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// File mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

impl Service {
    /// How many containers `up` keeps (scale, deploy.replicas, else 1).
    pub fn replicas(&self) -> u32 {
        self.scale.or(self.deploy.as_ref().and_then(|d| d.replicas)).unwrap_or(1)
    }

    /// The services this one needs started first: depends_on, plus `service:` network modes.
    pub fn dependencies(&self) -> Vec<String> {
        let mut d: Vec<String> = self.depends_on.keys().cloned().collect();
        if let Some(s) = self.network_mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
            if !d.iter().any(|x| x == s) {
                d.push(s.to_string());
            }
        }
        d
    }
}

// ---- short syntaxes and list-or-map forms -------------------------------------------------

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn must_text<E: serde::de::Error>(v: &Value, what: &str) -> Result<String, E> {
    text(v).ok_or_else(|| E::custom(format!("{what} must be a string or a number, not {}", kind_of(v))))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn nullable_map<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let m: BTreeMap<String, Value> = BTreeMap::deserialize(d)?;
    m.into_iter()
        .map(|(k, v)| {
            let t = if v.is_null() {
                T::default()
            } else {
                serde_json::from_value(v).map_err(|e| D::Error::custom(format!("{k}: {e}")))?
            };
            Ok((k, t))
        })
        .collect()
}

fn opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    must_text(&v, "value").map(Some)
}

fn scalar_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a.iter().map(|v| must_text(v, "each entry")).collect(),
        v => Ok(vec![must_text(&v, "the value")?]),
    }
}

/// A list of `KEY=VALUE` (or `KEY`) or a mapping (values scalars or null).
fn env_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Option<String>>, D::Error> {
    let mut out = BTreeMap::new();
    match Value::deserialize(d)? {
        Value::Null => {}
        Value::Array(a) => {
            for v in &a {
                let s = must_text::<D::Error>(v, "each entry")?;
                match s.split_once('=') {
                    Some((k, v)) => out.insert(k.to_string(), Some(v.to_string())),
                    None => out.insert(s, None),
                };
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                let v = if v.is_null() { None } else { Some(must_text::<D::Error>(&v, &k)?) };
                out.insert(k, v);
            }
        }
        v => return Err(D::Error::custom(format!("must be a list or a mapping, not {}", kind_of(&v)))),
    }
    Ok(out)
}

/// Like [`env_map`], but every key needs a value (`KEY` alone is an empty value, as compose has it).
fn label_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(env_map(d)?.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
}

/// Split a command string into words as a compose file's `command: "a 'b c'"` is split.
pub fn split_words(s: &str) -> Option<Vec<String>> {
    shlex::split(s)
}

fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => shlex::split(&s)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("cannot split {s:?} into words (unbalanced quotes?)"))),
        Value::Array(a) => a.iter().map(|v| must_text(v, "each word")).collect::<Result<_, _>>().map(Some),
        v => Err(D::Error::custom(format!("must be a string or a list, not {}", kind_of(&v)))),
    }
}

fn health_test<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(vec!["CMD-SHELL".into(), s])),
        Value::Array(a) => {
            let v: Vec<String> = a.iter().map(|v| must_text(v, "each word")).collect::<Result<_, _>>()?;
            match v.first().map(String::as_str) {
                Some("CMD" | "CMD-SHELL" | "NONE") => Ok(Some(v)),
                other => Err(D::Error::custom(format!(
                    "a list test must start with CMD, CMD-SHELL or NONE, not {other:?}"
                ))),
            }
        }
        v => Err(D::Error::custom(format!("must be a string or a list, not {}", kind_of(&v)))),
    }
}

fn build<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Build>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Build {
            context: s,
            ..Build::default()
        })),
        v @ Value::Object(_) => serde_json::from_value(v).map(Some).map_err(D::Error::custom),
        v => Err(D::Error::custom(format!("must be a path or a mapping, not {}", kind_of(&v)))),
    }
}

fn env_files<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<EnvFile>, D::Error> {
    let one = |v: Value| -> Result<EnvFile, D::Error> {
        match v {
            Value::String(path) => Ok(EnvFile { path, required: true }),
            v @ Value::Object(_) => serde_json::from_value(v).map_err(D::Error::custom),
            v => Err(D::Error::custom(format!(
                "each entry must be a path or a mapping, not {}",
                kind_of(&v)
            ))),
        }
    };
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(a) => a.into_iter().map(one).collect(),
        v => Ok(vec![one(v)?]),
    }
}

fn restart<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(s) = opt_scalar(d)? else { return Ok(None) };
    let ok = match s.split_once(':') {
        Some(("on-failure", n)) => n.parse::<u32>().is_ok(),
        None => matches!(s.as_str(), "no" | "always" | "on-failure" | "unless-stopped"),
        _ => false,
    };
    if s == "false" {
        // YAML 1.1's `no` reaches here as a boolean's text.
        return Ok(Some("no".into()));
    }
    if !ok {
        return Err(D::Error::custom(format!(
            "invalid restart policy {s:?}: use no, always, on-failure[:max-retries] or unless-stopped"
        )));
    }
    Ok(Some(s))
}

fn pull_policy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(s) = opt_scalar(d)? else { return Ok(None) };
    match s.as_str() {
        "always" | "never" | "missing" | "build" => Ok(Some(s)),
        "if_not_present" => Ok(Some("missing".into())),
        _ => Err(D::Error::custom(format!(
            "invalid pull_policy {s:?}: use always, never, missing (if_not_present) or build"
        ))),
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => parse_duration(&s).map(Some).map_err(D::Error::custom),
        v => Err(D::Error::custom(format!(
            "a duration is a string such as \"30s\" or \"1m30s\", not {}",
            kind_of(&v)
        ))),
    }
}

fn device_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s == "all" => Ok(Some(-1)),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("count {s:?}: a positive number or \"all\""))),
        Value::Number(n) => n
            .as_i64()
            .filter(|n| *n > 0 || *n == -1)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("count {n}: a positive number or \"all\""))),
        v => Err(D::Error::custom(format!("count: a number or \"all\", not {}", kind_of(&v)))),
    }
}

/// `gpus: all`, or a list of device requests (their capability `gpu`).
fn gpus<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DeviceRequest>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(vec![]),
        Value::String(s) if s == "all" => Ok(vec![DeviceRequest {
            count: Some(-1),
            capabilities: vec!["gpu".into()],
            ..Default::default()
        }]),
        Value::Array(a) => a
            .into_iter()
            .map(|v| {
                let mut r: DeviceRequest = serde_json::from_value(v).map_err(D::Error::custom)?;
                if r.capabilities.is_empty() {
                    r.capabilities.push("gpu".into());
                }
                Ok(r)
            })
            .collect(),
        v => Err(D::Error::custom(format!(
            "gpus: \"all\" or a list of device requests, not {}",
            kind_of(&v)
        ))),
    }
}

fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom("a size must be a whole number of bytes")),
        Value::String(s) => parse_size(&s).map(Some).map_err(D::Error::custom),
        v => Err(D::Error::custom(format!(
            "a size is a number or a string such as \"512m\", not {}",
            kind_of(&v)
        ))),
    }
}

fn opt_float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{s:?} is not a number"))),
        v => Err(D::Error::custom(format!("must be a number, not {}", kind_of(&v)))),
    }
}

fn ulimits<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Ulimit>, D::Error> {
    let m: BTreeMap<String, Value> = BTreeMap::deserialize(d)?;
    m.into_iter()
        .map(|(k, v)| {
            let u = match v {
                Value::Number(n) => {
                    let n = n.as_i64().ok_or_else(|| D::Error::custom(format!("{k}: must be a whole number")))?;
                    Ulimit { soft: n, hard: n }
                }
                v => serde_json::from_value(v).map_err(|e| D::Error::custom(format!("{k}: {e}")))?,
            };
            Ok((k, u))
        })
        .collect()
}

fn extra_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| Ok(format!("{k}:{}", must_text::<D::Error>(&v, &k)?)))
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|v| {
                let s = must_text::<D::Error>(v, "each entry")?;
                // `host=ip` and `host:ip` (an IPv6 address has colons, so split at the first).
                let (h, ip) = s
                    .split_once('=')
                    .or_else(|| s.split_once(':'))
                    .ok_or_else(|| D::Error::custom(format!("invalid extra host {s:?}: use host:ip")))?;
                Ok(format!("{h}:{}", ip.trim_start_matches('[').trim_end_matches(']')))
            })
            .collect(),
        v => Err(D::Error::custom(format!("must be a list or a mapping, not {}", kind_of(&v)))),
    }
}

fn service_networks<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, ServiceNetwork>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Array(a) => a
            .iter()
            .map(|v| Ok((must_text::<D::Error>(v, "each network")?, ServiceNetwork::default())))
            .collect::<Result<_, _>>()
            .map(Some),
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                let n = if v.is_null() {
                    ServiceNetwork::default()
                } else {
                    serde_json::from_value(v).map_err(|e| D::Error::custom(format!("{k}: {e}")))?
                };
                Ok((k, n))
            })
            .collect::<Result<_, _>>()
            .map(Some),
        v => Err(D::Error::custom(format!("must be a list or a mapping, not {}", kind_of(&v)))),
    }
}

fn depends_on<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Dependency>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(BTreeMap::new()),
        Value::Array(a) => a
            .iter()
            .map(|v| {
                Ok((
                    must_text::<D::Error>(v, "each service")?,
                    Dependency {
                        required: true,
                        ..Dependency::default()
                    },
                ))
            })
            .collect(),
        Value::Object(m) => m
            .into_iter()
            .map(|(k, v)| {
                let dep = serde_json::from_value(v).map_err(|e| D::Error::custom(format!("{k}: {e}")))?;
                Ok((k, dep))
            })
            .collect(),
        v => Err(D::Error::custom(format!("must be a list or a mapping, not {}", kind_of(&v)))),
    }
}

fn file_refs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FileRef>, D::Error> {
    let a: Vec<Value> = Vec::deserialize(d)?;
    a.into_iter()
        .map(|v| match v {
            Value::String(source) => Ok(FileRef {
                source,
                ..FileRef::default()
            }),
            v => serde_json::from_value(v).map_err(D::Error::custom),
        })
        .collect()
}

fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Port>, D::Error> {
    let a: Vec<Value> = Vec::deserialize(d)?;
    a.into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(_) => serde_json::from_value(v).map_err(|e| at(i, e)),
            v => parse_port(&must_text::<D::Error>(&v, "a port")?).map_err(|e| at(i, e)),
        })
        .collect()
}

/// An error about entry `i` of a list; the loader moves the index into the key path.
fn at<E: serde::de::Error>(i: usize, e: impl std::fmt::Display) -> E {
    E::custom(format!("[{i}]: {e}"))
}

fn port_range(s: &str) -> Result<(u16, Option<u16>), String> {
    let one = |p: &str| p.parse::<u16>().map_err(|_| format!("invalid port {p:?}"));
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return Err(format!("invalid port range {s:?}: the end is before the start"));
            }
            Ok((a, Some(b)))
        }
        None => Ok((one(s)?, None)),
    }
}

/// `[host_ip:][published[-end]:]target[-end][/protocol]`.
pub fn parse_port(spec: &str) -> Result<Port, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_string()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid protocol {protocol:?} in port {spec:?}"));
    }
    // A bracketed IPv6 host address first.
    let (host_ip, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (ip, after) = r.split_once("]:").ok_or_else(|| format!("invalid port {spec:?}"))?;
            (Some(ip.to_string()), after)
        }
        None => (None, rest),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, published, target) = match (host_ip, parts.as_slice()) {
        (None, [t]) => (None, None, *t),
        (None, [p, t]) => (None, Some(*p), *t),
        (None, [ip, p, t]) => (Some(ip.to_string()), Some(*p), *t),
        (Some(ip), [p, t]) => (Some(ip), Some(*p), *t),
        _ => return Err(format!("invalid port {spec:?}: use [ip:][host:]container[/protocol]")),
    };
    let (target, target_end) = port_range(target).map_err(|e| format!("{e} in {spec:?}"))?;
    let published = match published.filter(|p| !p.is_empty()) {
        Some(p) => {
            let (a, b) = port_range(p).map_err(|e| format!("{e} in {spec:?}"))?;
            let (n, m) = (b.unwrap_or(a) - a, target_end.unwrap_or(target) - target);
            if b.is_some() && n != m && m != 0 {
                return Err(format!("invalid port {spec:?}: the host and container ranges differ in size"));
            }
            Some(p.to_string())
        }
        None => None,
    };
    Ok(Port {
        target,
        target_end,
        published,
        host_ip: host_ip.filter(|h| !h.is_empty()),
        protocol,
        mode: None,
        name: None,
    })
}

fn volumes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Mount>, D::Error> {
    let a: Vec<Value> = Vec::deserialize(d)?;
    a.into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(_) => {
                let m: Mount = serde_json::from_value(v).map_err(|e| at(i, e))?;
                if !matches!(m.kind.as_str(), "volume" | "bind" | "tmpfs") {
                    return Err(at(i, format!("unsupported mount type {:?}: use volume, bind or tmpfs", m.kind)));
                }
                if m.kind == "bind" && m.source.is_none() {
                    return Err(at(i, "a bind mount needs a source"));
                }
                Ok(m)
            }
            v => parse_volume(&must_text::<D::Error>(&v, "a volume")?).map_err(|e| at(i, e)),
        })
        .collect()
}

/// Is this short-syntax source a host path (not a volume name)?
pub fn is_path(source: &str) -> bool {
    source.starts_with(['.', '/', '~'])
}

/// `[source:]target[:mode]` (mode: `ro`, `rw`, `z`, `Z`, propagation, `nocopy`, comma separated).
pub fn parse_volume(spec: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [s, t] => (Some(*s), *t, ""),
        [s, t, m] => (Some(*s), *t, *m),
        _ => return Err(format!("invalid volume {spec:?}: use [source:]target[:mode]")),
    };
    if !target.starts_with('/') {
        return Err(format!("invalid volume {spec:?}: the target {target:?} must be an absolute path"));
    }
    let mut m = Mount {
        kind: match source {
            Some(s) if is_path(s) => "bind".into(),
            _ => "volume".into(),
        },
        source: source.map(String::from),
        target: target.to_string(),
        ..Mount::default()
    };
    for opt in mode.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => m.read_only = true,
            "rw" => {}
            "nocopy" if m.kind == "volume" => {
                m.volume = Some(VolumeOptions {
                    nocopy: true,
                    subpath: None,
                })
            }
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" if m.kind == "bind" => {
                m.bind = Some(BindOptions {
                    propagation: Some(opt.into()),
                    create_host_path: Some(true),
                })
            }
            _ => return Err(format!("invalid mode {opt:?} in volume {spec:?}")),
        }
    }
    if m.kind == "bind" && m.bind.is_none() {
        m.bind = Some(BindOptions {
            propagation: None,
            create_host_path: Some(true),
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_short_syntax() {
        let p = parse_port("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(
            (p.host_ip.as_deref(), p.published.as_deref(), p.target, p.protocol.as_str()),
            (Some("127.0.0.1"), Some("8080"), 80, "udp")
        );
        let p = parse_port("8080-8090:80-90").unwrap();
        assert_eq!((p.published.as_deref(), p.target, p.target_end), (Some("8080-8090"), 80, Some(90)));
        let p = parse_port("80").unwrap();
        assert_eq!((p.published, p.target), (None, 80));
        let p = parse_port("[::1]:53:53/udp").unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("::1"));
        assert!(parse_port("8080:80/icmp").is_err());
        assert!(parse_port("80000").is_err());
        assert!(parse_port("8080-8085:80-90").is_err());
    }

    #[test]
    fn volume_short_syntax() {
        let m = parse_volume("data:/var/lib/x:ro").unwrap();
        assert_eq!((m.kind.as_str(), m.source.as_deref(), m.read_only), ("volume", Some("data"), true));
        let m = parse_volume("./src:/app").unwrap();
        assert_eq!(m.kind, "bind");
        let m = parse_volume("/cache").unwrap();
        assert_eq!((m.kind.as_str(), m.source), ("volume", None));
        assert!(parse_volume("data:rel").is_err());
        assert!(parse_volume("data:/x:bogus").is_err());
    }
}
