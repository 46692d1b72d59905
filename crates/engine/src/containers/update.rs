//! `update`: resource limits and restart policy changed on a live container.

use crate::engine::Engine;
use crate::error::{Error, Result};

use super::*;

impl Engine {
    /// `POST /containers/{id}/update`.
    pub fn update(&self, key: &str, u: &serde_json::Value) -> Result<()> {
        let entry = self.get(key)?;
        let mut r = entry.rec.lock().unwrap();
        let get = |k: &str| u.get(k).and_then(|v| v.as_i64()).filter(|v| *v != 0);
        // Changes go to a copy, recorded only when every one was valid and applied.
        let mut hc = r.host_config.clone();
        let mut up = runtime::cgroup::Update::default();
        if let Some(m) = get("Memory") {
            if m < 6 * 1024 * 1024 {
                return Err(Error::BadRequest("Minimum memory limit allowed is 6MB".into()));
            }
            hc.memory = m;
            up.memory = Some(m);
        }
        if let Some(n) = get("NanoCpus") {
            hc.nano_cpus = n;
            up.nano_cpus = Some(n);
        }
        if let Some(s) = get("CpuShares") {
            hc.cpu_shares = s;
            up.cpu_shares = Some(s as u64);
        }
        if let Some(p) = get("PidsLimit") {
            hc.pids_limit = Some(p);
            up.pids_limit = Some(p);
        }
        if let (Some(m), None) = (up.memory, get("MemorySwap")) {
            if hc.memory_swap > 0 && m > hc.memory_swap {
                return Err(Error::BadRequest(
                    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
                ));
            }
        }
        if let Some(s) = get("MemorySwap") {
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
        if let Some(m) = get("MemoryReservation") {
            hc.memory_reservation = m;
            up.memory_reservation = Some(m);
        }
        if get("NanoCpus").is_some() && (hc.cpu_quota > 0 || hc.cpu_period > 0) && get("CpuQuota").is_none() {
            return Err(Error::BadRequest(
                "Conflicting options: Nano CPUs cannot be updated as CPU Period/Quota has already been set".into(),
            ));
        }
        for (k, what) in [("CpuQuota", "CPU Quota"), ("CpuPeriod", "CPU Period")] {
            if get(k).is_some() && hc.nano_cpus > 0 && up.nano_cpus.is_none() {
                return Err(Error::BadRequest(format!(
                    "Conflicting options: {what} cannot be updated as NanoCPUs has already been set"
                )));
            }
        }
        if let Some(q) = get("CpuQuota") {
            hc.cpu_quota = q;
            up.cpu_quota = Some(q);
        }
        if let Some(p) = get("CpuPeriod") {
            hc.cpu_period = p;
            up.cpu_period = Some(p);
            up.cpu_quota.get_or_insert(hc.cpu_quota);
        }
        let text = |k: &str| u.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(String::from);
        if let Some(c) = text("CpusetCpus") {
            hc.cpuset_cpus = c.clone();
            up.cpuset_cpus = Some(c);
        }
        if let Some(m) = text("CpusetMems") {
            hc.cpuset_mems = m.clone();
            up.cpuset_mems = Some(m);
        }
        // Limits Berth does not apply are refused, never recorded and ignored.
        for k in [
            "BlkioWeight",
            "KernelMemory",
            "KernelMemoryTCP",
            "CpuRealtimePeriod",
            "CpuRealtimeRuntime",
            "MemorySwappiness",
            "CpuCount",
            "CpuPercent",
            "IOMaximumIOps",
            "IOMaximumBandwidth",
        ] {
            if get(k).is_some_and(|v| v > 0) {
                return Err(Error::BadRequest(format!("updating {k} is not supported")));
            }
        }
        if u.get("OomKillDisable").and_then(|v| v.as_bool()) == Some(true) {
            return Err(Error::BadRequest("updating OomKillDisable is not supported".into()));
        }
        if u.get("CgroupParent").and_then(|v| v.as_str()).is_some_and(|v| !v.is_empty()) {
            return Err(Error::BadRequest("updating CgroupParent is not supported".into()));
        }
        if u.get("Init").and_then(|v| v.as_bool()).is_some() {
            return Err(Error::BadRequest("updating Init is not supported (it is set at create)".into()));
        }
        for k in [
            "BlkioWeightDevice",
            "BlkioDeviceReadBps",
            "BlkioDeviceWriteBps",
            "BlkioDeviceReadIOps",
            "BlkioDeviceWriteIOps",
            "Devices",
            "DeviceCgroupRules",
            "DeviceRequests",
            "Ulimits",
        ] {
            if u.get(k).and_then(|v| v.as_array()).is_some_and(|a| !a.is_empty()) {
                return Err(Error::BadRequest(format!("updating {k} is not supported")));
            }
        }
        if let Some(rp) = u.get("RestartPolicy").filter(|v| !v.is_null()) {
            let rp: crate::types::RestartPolicy = serde_json::from_value(rp.clone()).map_err(|e| Error::BadRequest(e.to_string()))?;
            rp.validate().map_err(Error::BadRequest)?;
            if !rp.name.is_empty() {
                if hc.auto_remove && rp.name != "no" {
                    return Err(Error::BadRequest(
                        "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                    ));
                }
                hc.restart_policy = rp;
            }
        }
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
