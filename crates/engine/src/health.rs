//! Healthchecks, as Docker runs them: while a container runs, a probe (an exec in the container)
//! every interval; its results in `State.Health` (status, failing streak, the last five results),
//! a `health_status: <status>` event whenever the status changes.
//!
//! The check comes from the image (`HEALTHCHECK`) merged with the container's `Config.Healthcheck`
//! at create time, field by field, as Docker merges them; `Test: ["NONE"]` turns it off.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::engine::{Engine, Entry, ExecConfig};
use crate::error::{Error, Result};

/// Docker's defaults for a check that does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRIES: i64 = 3;
/// How many results `State.Health.Log` keeps, and how much of a probe's output each keeps.
pub const MAX_LOG_ENTRIES: usize = 5;
pub const MAX_OUTPUT: usize = 4096;
/// The shell of `CMD-SHELL` checks when the image sets none.
const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn null_as_zero<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `Config.Healthcheck` (durations in nanoseconds, 0 meaning "inherit, else the default").
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` off, `["CMD", argv...]` or `["CMD-SHELL", command]`.
    #[serde(deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(deserialize_with = "null_as_zero", skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn duration_or(ns: i64, default: Duration) -> Duration {
    if ns > 0 {
        Duration::from_nanos(ns as u64)
    } else {
        default
    }
}

impl HealthConfig {
    /// Refuse what Docker refuses at create, with its wording.
    pub fn validate(&self) -> Result<()> {
        const MS: i64 = 1_000_000;
        for (name, v) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval),
        ] {
            if v != 0 && v < MS {
                return Err(Error::BadRequest(format!("{name} in Healthcheck cannot be less than 1ms")));
            }
        }
        if self.retries < 0 {
            return Err(Error::BadRequest("Retries in Healthcheck cannot be negative".into()));
        }
        match self.test.first().map(String::as_str) {
            None | Some("NONE") => Ok(()),
            Some("CMD") | Some("CMD-SHELL") if self.test.len() < 2 => {
                Err(Error::BadRequest(format!("Healthcheck {} needs a command", self.test[0])))
            }
            Some("CMD") => Ok(()),
            Some("CMD-SHELL") if self.test.len() == 2 => Ok(()),
            Some("CMD-SHELL") => Err(Error::BadRequest("Healthcheck CMD-SHELL takes one command string".into())),
            Some(other) => Err(Error::BadRequest(format!(
                "unknown Healthcheck type {other:?} (expected NONE, CMD or CMD-SHELL)"
            ))),
        }
    }

    /// Fill what the container's check leaves unset from the image's, as Docker merges them.
    pub fn inherit(&mut self, image: &HealthConfig) {
        if self.test.is_empty() {
            self.test = image.test.clone();
        }
        for (mine, theirs) in [
            (&mut self.interval, image.interval),
            (&mut self.timeout, image.timeout),
            (&mut self.start_period, image.start_period),
            (&mut self.start_interval, image.start_interval),
            (&mut self.retries, image.retries),
        ] {
            if *mine == 0 {
                *mine = theirs;
            }
        }
    }

    /// The probe's argv, or `None` when the check is off.
    pub fn probe(&self, shell: Option<&[String]>) -> Option<Vec<String>> {
        match self.test.first().map(String::as_str) {
            Some("CMD") if self.test.len() > 1 => Some(self.test[1..].to_vec()),
            Some("CMD-SHELL") if self.test.len() > 1 => {
                let mut argv: Vec<String> = match shell {
                    Some(s) if !s.is_empty() => s.to_vec(),
                    _ => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
                };
                argv.push(self.test[1..].join(" "));
                Some(argv)
            }
            _ => None,
        }
    }

    pub fn interval(&self) -> Duration {
        duration_or(self.interval, DEFAULT_INTERVAL)
    }
    pub fn timeout(&self) -> Duration {
        duration_or(self.timeout, DEFAULT_TIMEOUT)
    }
    pub fn start_period(&self) -> Duration {
        duration_or(self.start_period, Duration::ZERO)
    }
    pub fn start_interval(&self) -> Duration {
        duration_or(self.start_interval, DEFAULT_START_INTERVAL)
    }
    pub fn retries(&self) -> i64 {
        if self.retries > 0 {
            self.retries
        } else {
            DEFAULT_RETRIES
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// One probe's result, as `State.Health.Log` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: i64,
    pub log: Vec<HealthResult>,
}

impl Health {
    /// Record a probe's result; returns the new status when it changed. A failure while the
    /// container has never been healthy and is still in its start period does not count.
    pub fn record(&mut self, r: HealthResult, in_start_period: bool, retries: i64) -> Option<HealthStatus> {
        let before = self.status;
        if r.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else if !(self.status == HealthStatus::Starting && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = HealthStatus::Unhealthy;
            }
        }
        self.log.push(r);
        if self.log.len() > MAX_LOG_ENTRIES {
            let extra = self.log.len() - MAX_LOG_ENTRIES;
            self.log.drain(..extra);
        }
        (self.status != before).then_some(self.status)
    }
}

/// Go's `time.Duration` text for a timeout message ("1s", "500ms", "1m30s").
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (m, s, rest) = (d.as_secs() / 60, d.as_secs() % 60, d.subsec_millis());
    let secs = if rest == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{rest:03}").trim_end_matches('0'))
    };
    if m == 0 {
        secs
    } else {
        format!("{m}m{secs}")
    }
}

impl Engine {
    /// Run the container's healthcheck while this run of it lasts (until its next exit, or its
    /// removal). Called when the container starts and when a running one is re-adopted.
    pub(crate) fn spawn_health_monitor(self: &Arc<Self>, entry: &Arc<Entry>, adopted: bool) {
        let c = entry.snapshot();
        let Some(check) = c.config.healthcheck.clone() else {
            return;
        };
        let shell = c
            .config
            .extra
            .get("Shell")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok());
        let Some(argv) = check.probe(shell.as_deref()) else {
            return;
        };
        let exits = entry.progress.borrow().exits;
        // A fresh run starts over (a re-adopted one goes on where it was).
        if !adopted || c.state.health.is_none() {
            let mut r = entry.rec.lock().unwrap();
            let h = r.state.health.get_or_insert(Health {
                status: HealthStatus::Starting,
                failing_streak: 0,
                log: Vec::new(),
            });
            h.status = HealthStatus::Starting;
            h.failing_streak = 0;
            let _ = self.save(&r);
        }
        let me = self.clone();
        let entry = entry.clone();
        tokio::spawn(async move {
            let started = chrono::DateTime::parse_from_rfc3339(&c.state.started_at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|_| chrono::Utc::now());
            let in_start_period = || (chrono::Utc::now() - started).to_std().unwrap_or_default() < check.start_period();
            let mut progress = entry.progress.subscribe();
            loop {
                let starting = entry.snapshot().state.health.as_ref().map(|h| h.status) == Some(HealthStatus::Starting);
                let wait = if starting && in_start_period() {
                    check.start_interval()
                } else {
                    check.interval()
                };
                let ended = async {
                    loop {
                        {
                            let p = progress.borrow_and_update();
                            if p.exits != exits || p.removed || !p.running {
                                return;
                            }
                        }
                        if progress.changed().await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    _ = ended => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                if entry.snapshot().state.paused {
                    continue;
                }
                let start = crate::types::now();
                let in_start = in_start_period();
                let (exit_code, output) = me.probe(&entry.id, &argv, check.timeout()).await;
                let result = HealthResult {
                    start,
                    end: crate::types::now(),
                    exit_code,
                    output,
                };
                // The run may have ended while the probe ran: its result belongs to no run.
                {
                    let p = entry.progress.borrow();
                    if p.exits != exits || p.removed {
                        return;
                    }
                }
                let (changed, snap) = {
                    let mut r = entry.rec.lock().unwrap();
                    let Some(h) = r.state.health.as_mut() else { return };
                    let changed = h.record(result, in_start, check.retries());
                    let _ = me.save(&r);
                    (changed, r.clone())
                };
                if let Some(s) = changed {
                    tracing::debug!(container = %entry.id, status = s.as_str(), "health status changed");
                    me.emit(&snap, &format!("health_status: {}", s.as_str()));
                }
            }
        });
    }

    /// Run one probe in the container: its exit code and (the first [`MAX_OUTPUT`] bytes of) its
    /// output, or -1 and why when it could not run or outlived `timeout` (it is then killed).
    pub(crate) async fn probe(&self, id: &str, argv: &[String], timeout: Duration) -> (i64, String) {
        let cfg = ExecConfig {
            cmd: argv.to_vec(),
            attach_stdout: true,
            attach_stderr: true,
            ..Default::default()
        };
        let process = match self.exec_process_for(id, &cfg) {
            Ok(p) => p,
            Err(e) => return (-1, e.to_string()),
        };
        let exec_id = format!("health-{}", crate::engine::random_id());
        let shim = self.shim(id);
        let (reply, mut conn) = match shim
            .open(&runtime::proto::Request::Exec {
                exec_id: exec_id.clone(),
                process,
                stdin: false,
            })
            .await
        {
            Ok(x) => x,
            Err(e) => return (-1, format!("OCI runtime exec failed: {e}")),
        };
        let mut out = Vec::new();
        let read = crate::streams::unframe(&mut conn, &mut out, Some(MAX_OUTPUT));
        let timed_out = tokio::time::timeout(timeout, read).await.is_err();
        if timed_out {
            if let Some(pid) = reply.pid.filter(|p| *p > 0) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), tokio::io::copy(&mut conn, &mut tokio::io::sink())).await;
        }
        // The shim closes the stream once the exit is recorded.
        let mut code = None;
        for _ in 0..50 {
            if let Some(i) = shim.take_exec_exit(&exec_id) {
                code = Some(i.exit_code as i64);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if timed_out {
            return (-1, format!("Health check exceeded timeout ({})", go_duration(timeout)));
        }
        (code.unwrap_or(-1), String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64) -> HealthResult {
        HealthResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn goes_healthy_then_unhealthy_after_retries() {
        let mut h = Health {
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: vec![],
        };
        assert_eq!(h.record(result(0), false, 3), Some(HealthStatus::Healthy));
        assert_eq!(h.record(result(1), false, 3), None);
        assert_eq!(h.record(result(1), false, 3), None);
        assert_eq!(h.failing_streak, 2);
        assert_eq!(h.record(result(1), false, 3), Some(HealthStatus::Unhealthy));
        assert_eq!(h.record(result(1), false, 3), None);
        assert_eq!(h.log.len(), MAX_LOG_ENTRIES);
        assert_eq!(h.record(result(0), false, 3), Some(HealthStatus::Healthy));
        assert_eq!(h.failing_streak, 0);
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_until_first_healthy() {
        let mut h = Health {
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: vec![],
        };
        for _ in 0..5 {
            assert_eq!(h.record(result(1), true, 1), None);
        }
        assert_eq!(h.failing_streak, 0);
        h.record(result(0), true, 1);
        // Once healthy, a failure counts even inside the start period.
        assert_eq!(h.record(result(1), true, 1), Some(HealthStatus::Unhealthy));
    }

    #[test]
    fn merges_validates_and_builds_the_probe() {
        let image = HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /ok".into()],
            interval: 5_000_000_000,
            retries: 2,
            ..Default::default()
        };
        let mut mine = HealthConfig {
            interval: 1_000_000_000,
            ..Default::default()
        };
        mine.inherit(&image);
        assert_eq!(mine.test, image.test);
        assert_eq!(mine.interval(), Duration::from_secs(1));
        assert_eq!(mine.retries(), 2);
        assert_eq!(mine.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(mine.probe(None).unwrap(), ["/bin/sh", "-c", "test -f /ok"]);
        let off = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(off.probe(None), None);
        let bad = HealthConfig {
            interval: 10,
            ..Default::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        let bad = HealthConfig {
            test: vec!["CURL".into(), "x".into()],
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
    }

    #[test]
    fn serializes_as_docker_does() {
        let v: HealthConfig = serde_json::from_str(r#"{"Test":null,"Interval":0,"Timeout":null,"Retries":3}"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"Retries":3}"#);
    }
}
