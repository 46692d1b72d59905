//! The Docker Engine API's container documents (Config, HostConfig, State), as stored and served.
//! Fields Berth does not model are kept (`extra`) so inspect shows what the client sent.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Accept `null`, a string (split like a shell would, as docker-py allows) or an array of strings.
fn str_or_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SV {
        S(String),
        V(Vec<String>),
    }
    Ok(match Option::<SV>::deserialize(d)? {
        None => None,
        Some(SV::V(v)) => Some(v),
        Some(SV::S(s)) => Some(s.split_whitespace().map(String::from).collect()),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_or_vec")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::health::HealthConfig>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: String,
    #[serde(deserialize_with = "str_or_vec")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    pub on_build: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `HostConfig.RestartPolicy`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: RestartMode,
    pub maximum_retry_count: i64,
}

/// A restart policy's name. `Unset` is the empty name older clients send; create records it as
/// `No`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartMode {
    #[default]
    Unset,
    No,
    Always,
    OnFailure,
    UnlessStopped,
}

impl RestartMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartMode::Unset => "",
            RestartMode::No => "no",
            RestartMode::Always => "always",
            RestartMode::OnFailure => "on-failure",
            RestartMode::UnlessStopped => "unless-stopped",
        }
    }
}

impl std::str::FromStr for RestartMode {
    type Err = String;
    /// Docker's names, and its wording for any other.
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "" => RestartMode::Unset,
            "no" => RestartMode::No,
            "always" => RestartMode::Always,
            "on-failure" => RestartMode::OnFailure,
            "unless-stopped" => RestartMode::UnlessStopped,
            other => {
                return Err(format!(
                    "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
                ))
            }
        })
    }
}

impl Serialize for RestartMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RestartMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl RestartPolicy {
    /// Docker's checks (moby's `ValidateRestartPolicy`), with its wording. An empty name (what
    /// older clients send by default) passes with any count.
    pub fn validate(&self) -> Result<(), String> {
        match self.name {
            RestartMode::Always | RestartMode::UnlessStopped | RestartMode::No if self.maximum_retry_count != 0 => {
                let mut m = "invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string();
                if self.maximum_retry_count < 0 {
                    m.push_str(" and cannot be negative");
                }
                Err(m)
            }
            RestartMode::OnFailure if self.maximum_retry_count < 0 => {
                Err("invalid restart policy: maximum retry count cannot be negative".into())
            }
            _ => Ok(()),
        }
    }

    /// Whether a container that exited with `code`, having restarted `restarts` times, is
    /// restarted (a manual stop aside).
    pub fn restarts_after(&self, code: i32, restarts: i64) -> bool {
        match self.name {
            RestartMode::Always | RestartMode::UnlessStopped => true,
            RestartMode::OnFailure => code != 0 && (self.maximum_retry_count == 0 || restarts < self.maximum_retry_count),
            RestartMode::No | RestartMode::Unset => false,
        }
    }
}

/// `HostConfig.NetworkMode`: Docker's names, another container's network, or a network by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// Unset or `default`: the default bridge (create records it as `Bridge`).
    #[default]
    Default,
    Bridge,
    Host,
    None,
    /// `container:<name|id>`: join that container's network namespace.
    Container(String),
    /// A user-defined network.
    Named(String),
}

impl NetworkMode {
    pub fn parse(s: &str) -> NetworkMode {
        match s {
            "" | "default" => NetworkMode::Default,
            "bridge" => NetworkMode::Bridge,
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            other => match other.strip_prefix("container:") {
                Some(c) => NetworkMode::Container(c.to_string()),
                None => NetworkMode::Named(other.to_string()),
            },
        }
    }

    /// Whether this mode is the default bridge (named or not).
    pub fn is_default_bridge(&self) -> bool {
        matches!(self, NetworkMode::Default | NetworkMode::Bridge)
    }
}

impl std::fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkMode::Default => f.write_str("default"),
            NetworkMode::Bridge => f.write_str("bridge"),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Container(c) => write!(f, "container:{c}"),
            NetworkMode::Named(n) => f.write_str(n),
        }
    }
}

impl Serialize for NetworkMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NetworkMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(NetworkMode::parse(&Option::<String>::deserialize(d)?.unwrap_or_default()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    pub network_mode: NetworkMode,
    pub port_bindings: Option<crate::ports::PortMap>,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub mounts: Option<Vec<MountPoint>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub init: Option<bool>,
    pub shm_size: i64,
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub pids_limit: Option<i64>,
    pub pid_mode: String,
    pub ipc_mode: String,
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    pub userns_mode: String,
    pub devices: Option<Vec<Value>>,
    pub group_add: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub ulimits: Option<Vec<Ulimit>>,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub log_config: LogConfig,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `HostConfig.LogConfig`: the log driver (only `json-file`) and its options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(deserialize_with = "null_as_default")]
    pub config: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            kind: "json-file".into(),
            config: BTreeMap::new(),
        }
    }
}

pub(crate) fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    /// Only for a container with a healthcheck, as in Docker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
}

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl Default for State {
    fn default() -> Self {
        State {
            status: "created".into(),
            running: false,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            health: None,
        }
    }
}

/// A container as persisted in `containers/<id>/container.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Container {
    pub id: String,
    /// With Docker's leading slash.
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// Image ID (`sha256:...`).
    pub image: String,
    pub state: State,
    pub restart_count: i64,
    /// Set by an explicit stop/kill, so restart policies leave it alone.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Anonymous volumes created for this container (removed by `rm -v`).
    #[serde(default)]
    pub anon_volumes: Vec<String>,
    /// `HostConfig.VolumesFrom`, resolved at create as Docker does: the donors' binds and
    /// volumes, with the mode asked for. Kept so that a donor removed later changes nothing.
    #[serde(default)]
    pub inherited_mounts: Vec<MountPoint>,
    /// The networks the container is on while it runs, by network name.
    #[serde(default)]
    pub endpoints: BTreeMap<String, crate::networks::Endpoint>,
    /// The networks it joins when it starts, by name, with what it asks of each (empty: the
    /// default bridge, per its network mode).
    #[serde(default)]
    pub networks: BTreeMap<String, crate::networks::EndpointSettings>,
    /// The ports published while it runs, with the host ports they got.
    #[serde(default)]
    pub published: BTreeMap<String, Vec<crate::ports::PortBinding>>,
    /// A pod's sandbox (made by the node agent, never through the Engine API): its process only
    /// holds the namespaces the pod's containers join (`container:<id>`), as Kubernetes' pause
    /// container does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_modes_round_trip_and_unknown_ones_are_refused() {
        for name in ["", "no", "always", "on-failure", "unless-stopped"] {
            let p: RestartPolicy = serde_json::from_value(serde_json::json!({"Name": name})).unwrap();
            assert_eq!(serde_json::to_value(&p).unwrap()["Name"], name);
        }
        let e = serde_json::from_value::<RestartPolicy>(serde_json::json!({"Name": "sometimes"})).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid restart policy: unknown policy 'sometimes'"),
            "{e}"
        );
        let null: RestartPolicy = serde_json::from_value(serde_json::json!({"Name": null})).unwrap();
        assert_eq!(null.name, RestartMode::Unset);
    }

    #[test]
    fn restart_decisions_follow_docker() {
        let p = |name, max| RestartPolicy {
            name,
            maximum_retry_count: max,
        };
        assert!(p(RestartMode::Always, 0).restarts_after(0, 100));
        assert!(p(RestartMode::UnlessStopped, 0).restarts_after(1, 0));
        assert!(!p(RestartMode::No, 0).restarts_after(1, 0));
        assert!(!p(RestartMode::OnFailure, 0).restarts_after(0, 0));
        assert!(p(RestartMode::OnFailure, 0).restarts_after(1, 50));
        assert!(p(RestartMode::OnFailure, 3).restarts_after(1, 2));
        assert!(!p(RestartMode::OnFailure, 3).restarts_after(1, 3));
        assert!(p(RestartMode::OnFailure, -1).validate().unwrap_err().contains("cannot be negative"));
        assert!(p(RestartMode::No, -1).validate().unwrap_err().contains("and cannot be negative"));
        assert!(p(RestartMode::Unset, 5).validate().is_ok());
    }

    #[test]
    fn network_modes_parse_and_print_as_given() {
        for s in ["default", "bridge", "host", "none", "container:abc", "mynet"] {
            assert_eq!(NetworkMode::parse(s).to_string(), s);
        }
        assert_eq!(NetworkMode::parse(""), NetworkMode::Default);
        assert_eq!(NetworkMode::parse("container:db"), NetworkMode::Container("db".into()));
        let hc: HostConfig = serde_json::from_value(serde_json::json!({"NetworkMode": "host"})).unwrap();
        assert_eq!(hc.network_mode, NetworkMode::Host);
        assert_eq!(serde_json::to_value(&hc).unwrap()["NetworkMode"], "host");
    }
}
