//! `update`: resource limits and restart policy changed on a live container.

use crate::engine::Engine;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::types::{HostConfig, RestartMode, RestartPolicy};

use super::*;

impl Engine {
    /// `POST /containers/{id}/update`.
    pub fn update(&self, key: &str, u: &UpdateRequest) -> Result<()> {
        let entry = self.get(key)?;
        let mut r = entry.rec.lock().unwrap();
        let (hc, up) = u.apply(&r.host_config)?;
        if r.state.running {
            runtime::cgroup::update(&cgroup_path(&r.id), &up)
                .map_err(|e| Error::Internal(format!("Cannot update container {}: {e}", r.id)))?;
        }
        r.host_config = hc;
        self.save(&r)?;
        self.emit(&r, "update");
        Ok(())
    }
}

/// The body of `POST /containers/{id}/update`: Docker's `Resources` and `RestartPolicy`. A zero
/// or empty value leaves a setting as it is, as in Docker.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateRequest {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    pub pids_limit: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub restart_policy: Option<RestartPolicy>,
    // Limits Berth does not apply: refused when set, never recorded and ignored.
    pub blkio_weight: Option<i64>,
    pub kernel_memory: Option<i64>,
    #[serde(rename = "KernelMemoryTCP")]
    pub kernel_memory_tcp: Option<i64>,
    pub cpu_realtime_period: Option<i64>,
    pub cpu_realtime_runtime: Option<i64>,
    pub memory_swappiness: Option<i64>,
    pub cpu_count: Option<i64>,
    pub cpu_percent: Option<i64>,
    #[serde(rename = "IOMaximumIOps")]
    pub io_maximum_iops: Option<i64>,
    #[serde(rename = "IOMaximumBandwidth")]
    pub io_maximum_bandwidth: Option<i64>,
    pub oom_kill_disable: Option<bool>,
    pub cgroup_parent: Option<String>,
    pub init: Option<bool>,
    pub blkio_weight_device: Option<Vec<Value>>,
    pub blkio_device_read_bps: Option<Vec<Value>>,
    pub blkio_device_write_bps: Option<Vec<Value>>,
    #[serde(rename = "BlkioDeviceReadIOps")]
    pub blkio_device_read_iops: Option<Vec<Value>>,
    #[serde(rename = "BlkioDeviceWriteIOps")]
    pub blkio_device_write_iops: Option<Vec<Value>>,
    pub devices: Option<Vec<Value>>,
    pub device_cgroup_rules: Option<Vec<Value>>,
    pub device_requests: Option<Vec<Value>>,
    pub ulimits: Option<Vec<Value>>,
}

fn set(v: Option<i64>) -> Option<i64> {
    v.filter(|v| *v != 0)
}

fn text(v: &Option<String>) -> Option<String> {
    v.clone().filter(|v| !v.is_empty())
}

impl UpdateRequest {
    /// Docker's checks on an update against the current host config; the new host config and
    /// the cgroup changes to make. Nothing is changed when any check fails.
    pub fn apply(&self, current: &HostConfig) -> Result<(HostConfig, runtime::cgroup::Update)> {
        self.refuse_unsupported()?;
        let mut hc = current.clone();
        let mut up = runtime::cgroup::Update::default();
        if let Some(m) = set(self.memory) {
            if m < 6 * 1024 * 1024 {
                return Err(Error::BadRequest("Minimum memory limit allowed is 6MB".into()));
            }
            hc.memory = m;
            up.memory = Some(m);
        }
        if let Some(n) = set(self.nano_cpus) {
            hc.nano_cpus = n;
            up.nano_cpus = Some(n);
        }
        if let Some(s) = set(self.cpu_shares) {
            hc.cpu_shares = s;
            up.cpu_shares = Some(s as u64);
        }
        if let Some(p) = set(self.pids_limit) {
            hc.pids_limit = Some(p);
            up.pids_limit = Some(p);
        }
        if let (Some(m), None) = (up.memory, set(self.memory_swap)) {
            if hc.memory_swap > 0 && m > hc.memory_swap {
                return Err(Error::BadRequest(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
                ));
            }
        }
        if let Some(s) = set(self.memory_swap) {
            let mem = up.memory.unwrap_or(hc.memory);
            if s > 0 && (mem <= 0 || s < mem) {
                return Err(Error::BadRequest(
                    "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
                ));
            }
            hc.memory_swap = s;
            up.memory_swap = Some(s);
            up.memory.get_or_insert(mem);
        }
        if let Some(m) = set(self.memory_reservation) {
            hc.memory_reservation = m;
            up.memory_reservation = Some(m);
        }
        if set(self.nano_cpus).is_some() && (hc.cpu_quota > 0 || hc.cpu_period > 0) && set(self.cpu_quota).is_none() {
            return Err(Error::BadRequest(
                "Conflicting options: Nano CPUs cannot be updated as CPU Period/Quota has already been set".into(),
            ));
        }
        for (v, what) in [(self.cpu_quota, "CPU Quota"), (self.cpu_period, "CPU Period")] {
            if set(v).is_some() && hc.nano_cpus > 0 && up.nano_cpus.is_none() {
                return Err(Error::BadRequest(format!(
                    "Conflicting options: {what} cannot be updated as NanoCPUs has already been set"
                )));
            }
        }
        if let Some(q) = set(self.cpu_quota) {
            hc.cpu_quota = q;
            up.cpu_quota = Some(q);
        }
        if let Some(p) = set(self.cpu_period) {
            hc.cpu_period = p;
            up.cpu_period = Some(p);
            up.cpu_quota.get_or_insert(hc.cpu_quota);
        }
        if let Some(c) = text(&self.cpuset_cpus) {
            hc.cpuset_cpus = c.clone();
            up.cpuset_cpus = Some(c);
        }
        if let Some(m) = text(&self.cpuset_mems) {
            hc.cpuset_mems = m.clone();
            up.cpuset_mems = Some(m);
        }
        if let Some(rp) = &self.restart_policy {
            rp.validate().map_err(Error::BadRequest)?;
            if rp.name != RestartMode::Unset {
                if hc.auto_remove && rp.name != RestartMode::No {
                    return Err(Error::BadRequest(
                        "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                    ));
                }
                hc.restart_policy = rp.clone();
            }
        }
        Ok((hc, up))
    }

    /// Limits Berth does not apply are refused by name, never recorded and ignored.
    fn refuse_unsupported(&self) -> Result<()> {
        let numbers = [
            (self.blkio_weight, "BlkioWeight"),
            (self.kernel_memory, "KernelMemory"),
            (self.kernel_memory_tcp, "KernelMemoryTCP"),
            (self.cpu_realtime_period, "CpuRealtimePeriod"),
            (self.cpu_realtime_runtime, "CpuRealtimeRuntime"),
            (self.memory_swappiness, "MemorySwappiness"),
            (self.cpu_count, "CpuCount"),
            (self.cpu_percent, "CpuPercent"),
            (self.io_maximum_iops, "IOMaximumIOps"),
            (self.io_maximum_bandwidth, "IOMaximumBandwidth"),
        ];
        if let Some((_, k)) = numbers.iter().find(|(v, _)| v.is_some_and(|v| v > 0)) {
            return Err(Error::BadRequest(format!("updating {k} is not supported")));
        }
        if self.oom_kill_disable == Some(true) {
            return Err(Error::BadRequest("updating OomKillDisable is not supported".into()));
        }
        if text(&self.cgroup_parent).is_some() {
            return Err(Error::BadRequest("updating CgroupParent is not supported".into()));
        }
        if self.init.is_some() {
            return Err(Error::BadRequest("updating Init is not supported (it is set at create)".into()));
        }
        let lists = [
            (&self.blkio_weight_device, "BlkioWeightDevice"),
            (&self.blkio_device_read_bps, "BlkioDeviceReadBps"),
            (&self.blkio_device_write_bps, "BlkioDeviceWriteBps"),
            (&self.blkio_device_read_iops, "BlkioDeviceReadIOps"),
            (&self.blkio_device_write_iops, "BlkioDeviceWriteIOps"),
            (&self.devices, "Devices"),
            (&self.device_cgroup_rules, "DeviceCgroupRules"),
            (&self.device_requests, "DeviceRequests"),
            (&self.ulimits, "Ulimits"),
        ];
        if let Some((_, k)) = lists.iter().find(|(v, _)| v.as_ref().is_some_and(|a| !a.is_empty())) {
            return Err(Error::BadRequest(format!("updating {k} is not supported")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: serde_json::Value) -> UpdateRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn limits_change_on_a_copy_and_become_cgroup_updates() {
        let hc = HostConfig::default();
        let (new, up) = req(serde_json::json!({"Memory": 64 << 20, "CpuShares": 512, "PidsLimit": 10, "CpusetCpus": "0"}))
            .apply(&hc)
            .unwrap();
        assert_eq!((new.memory, new.cpu_shares, new.pids_limit), (64 << 20, 512, Some(10)));
        assert_eq!((up.memory, up.cpu_shares, up.pids_limit), (Some(64 << 20), Some(512), Some(10)));
        assert_eq!(up.cpuset_cpus.as_deref(), Some("0"));
        // Zero and null leave a setting as it is.
        let (same, up) = req(serde_json::json!({"Memory": 0, "NanoCpus": null})).apply(&new).unwrap();
        assert_eq!(same, new);
        assert_eq!(up.memory, None);
    }

    #[test]
    fn docker_checks_are_kept() {
        let err = |v: serde_json::Value, hc: &HostConfig| req(v).apply(hc).unwrap_err().to_string();
        let hc = HostConfig::default();
        assert_eq!(err(serde_json::json!({"Memory": 1024}), &hc), "Minimum memory limit allowed is 6MB");
        let swapped = HostConfig {
            memory: 64 << 20,
            memory_swap: 128 << 20,
            ..Default::default()
        };
        assert!(err(serde_json::json!({"Memory": 256 << 20}), &swapped).starts_with("Memory limit should be smaller"));
        assert!(err(serde_json::json!({"MemorySwap": 32 << 20}), &swapped).starts_with("Minimum memoryswap limit"));
        let nano = HostConfig {
            nano_cpus: 1_000_000_000,
            ..Default::default()
        };
        assert!(err(serde_json::json!({"CpuQuota": 50000}), &nano).contains("CPU Quota cannot be updated as NanoCPUs"));
        let quota = HostConfig {
            cpu_quota: 50000,
            ..Default::default()
        };
        assert!(err(serde_json::json!({"NanoCpus": 1}), &quota).contains("Nano CPUs cannot be updated"));
        assert_eq!(
            err(serde_json::json!({"BlkioWeight": 300}), &hc),
            "updating BlkioWeight is not supported"
        );
        assert_eq!(err(serde_json::json!({"Ulimits": [{}]}), &hc), "updating Ulimits is not supported");
        let rm = HostConfig {
            auto_remove: true,
            ..Default::default()
        };
        assert!(err(serde_json::json!({"RestartPolicy": {"Name": "always"}}), &rm).contains("AutoRemove is enabled"));
        assert!(err(
            serde_json::json!({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}),
            &hc
        )
        .contains("maximum retry count can only be used with 'on-failure'"));
    }

    #[test]
    fn restart_policy_is_replaced_only_when_named() {
        let hc = HostConfig::default();
        let (new, _) = req(serde_json::json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}))
            .apply(&hc)
            .unwrap();
        assert_eq!(new.restart_policy.name, RestartMode::OnFailure);
        let (kept, _) = req(serde_json::json!({"RestartPolicy": {"Name": ""}})).apply(&new).unwrap();
        assert_eq!(kept.restart_policy, new.restart_policy);
    }
}
