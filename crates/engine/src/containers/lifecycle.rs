//! Running containers: start, kill, stop, restart, pause, remove, rename, wait.

use std::sync::Arc;
use std::time::Duration;

use runtime::proto::Request;

use crate::engine::{Engine, Entry, PendingAttach};
use crate::error::{internal, Error, Result};
use crate::types::{now, Container};

use super::*;

use super::checks::valid_container_name;
use super::spec::{console_size, make_workdir};

impl Engine {
    /// `POST /containers/{id}/start`.
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<()> {
        let entry = self.get(key)?;
        let _op = entry.op.lock().await;
        let mut c = entry.snapshot();
        if c.state.running {
            if c.state.paused {
                return Err(Error::Conflict("cannot start a paused container, try unpause instead".into()));
            }
            return Err(Error::NotModified("container already started".into()));
        }
        let res = self.start_locked(&entry, &mut c).await;
        if let Err(e) = &res {
            {
                let mut r = entry.rec.lock().unwrap();
                r.state.error = e.to_string();
                if r.state.status == "created" || r.state.status == "restarting" {
                    r.state.restarting = false;
                    if r.state.started_at != crate::types::ZERO_TIME {
                        r.state.status = "exited".into();
                    }
                }
                if r.state.exit_code == 0 {
                    r.state.exit_code = 128;
                }
                let _ = self.save(&r);
            }
            // Pending attach clients get their streams closed.
            entry.pending.lock().unwrap().clear();
            let _ = image::snapshot::unmount(&self.rootfs(&entry.id));
            let _ = image::snapshot::unmount(&self.shm_dir(&entry.id));
            // `run --rm` waits for removal: a container that cannot start is removed, as Docker does.
            if entry.snapshot().host_config.auto_remove {
                drop(_op);
                let _ = self.remove(&entry.id, true, true).await;
            }
        }
        res
    }

    pub(crate) async fn start_locked(self: &Arc<Self>, entry: &Arc<Entry>, c: &mut Container) -> Result<()> {
        let runtime = self.container_runtime(c)?;
        self.mount_rootfs(c)?;
        for (net, settings) in self.networks_of(c) {
            if let Err(e) = self.connect(c, &net, &settings) {
                self.disconnect_all(c);
                return Err(e);
            }
        }
        if let Err(e) = self.register_dns(c) {
            self.disconnect_all(c);
            return Err(e);
        }
        let started = match self.publish(c) {
            Ok(()) => self.start_connected(entry, c, runtime).await,
            Err(e) => Err(e),
        };
        if started.is_err() {
            self.disconnect_all(c);
        }
        started
    }

    /// The rest of a start, once the container's rootfs and networks are there.
    async fn start_connected(self: &Arc<Self>, entry: &Arc<Entry>, c: &mut Container, runtime: Option<std::path::PathBuf>) -> Result<()> {
        let t0 = std::time::Instant::now();
        let t_mount = t0.elapsed();
        let spec = self.build_run_spec(c)?;
        make_workdir(&self.rootfs(&c.id), &spec.cwd)?;
        let bundle = self.container_dir(&c.id);
        runtime::spec::write_bundle(&bundle, &spec)?;
        let t_bundle = t0.elapsed();
        // A previous run's shim deletes its OCI runtime state just after reporting the exit; a fast
        // restart must not race it ("container already exists").
        let old_state = self.runtime_root().join(&c.id);
        let t_wait = std::time::Instant::now();
        while old_state.exists() && t_wait.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if old_state.exists() && !self.shim(&c.id).alive().await {
            tracing::warn!(container = %c.id, "removing runtime state left by a dead shim");
            let _ = std::fs::remove_dir_all(&old_state);
        }
        let state_dir = self.state_dir(&c.id);
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).map_err(internal)?;
        let args = runtime::shim::ShimArgs {
            id: c.id.clone(),
            bundle,
            state_dir,
            log_path: self.log_path(&c.id),
            runtime_root: self.runtime_root(),
            cgroup_path: cgroup_path(&c.id),
            tty: c.config.tty,
            stdin: c.config.open_stdin,
            console_size: console_size(&c.host_config),
            runtime,
            log_rotation: log_rotation(&c.host_config.log_config)?,
        };
        let launcher = self.launcher.clone();
        let pid = tokio::task::spawn_blocking(move || launcher.spawn(&args))
            .await
            .map_err(internal)??;
        let t_shim = t0.elapsed();
        // Attach clients that were waiting for the start.
        let pending: Vec<PendingAttach> = std::mem::take(&mut *entry.pending.lock().unwrap());
        for p in pending {
            self.connect_attach(entry, p, c.config.stdin_once).await;
        }
        let shim = self.shim(&c.id);
        // Register the exit watch before the process can exit.
        let wait = shim.send(&Request::Wait).await?;
        shim.call(&Request::Start).await?;
        tracing::debug!(container = %c.id, mount = ?t_mount, bundle = ?t_bundle, shim = ?t_shim, started = ?t0.elapsed(), "container started");
        {
            let mut r = entry.rec.lock().unwrap();
            r.anon_volumes = c.anon_volumes.clone();
            r.endpoints = c.endpoints.clone();
            r.published = c.published.clone();
            r.state.status = "running".into();
            r.state.running = true;
            r.state.paused = false;
            r.state.restarting = false;
            r.state.oom_killed = false;
            r.state.dead = false;
            r.state.pid = pid as i64;
            r.state.exit_code = 0;
            r.state.error = String::new();
            r.state.started_at = now();
            r.state.finished_at = crate::types::ZERO_TIME.into();
            r.manually_stopped = false;
            self.save(&r)?;
            *c = r.clone();
        }
        entry.progress.send_modify(|p| p.running = true);
        self.emit(c, "start");
        self.spawn_health_monitor(entry, false);
        self.clone().spawn_monitor(entry.clone(), Some(wait));
        Ok(())
    }

    /// Send a signal; `Conflict` if the container is not running.
    pub async fn kill(&self, key: &str, signal: Option<Signal>) -> Result<()> {
        let entry = self.get(key)?;
        let c = entry.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!(
                "Cannot kill container: {}: Container {} is not running",
                key, c.id
            )));
        }
        let sig = signal.unwrap_or(Signal::KILL).0;
        if sig == libc::SIGKILL || sig == libc::SIGTERM || sig == libc::SIGINT {
            let mut r = entry.rec.lock().unwrap();
            r.manually_stopped = true;
            let _ = self.save(&r);
        }
        let exits = entry.progress.borrow().exits;
        self.shim(&c.id).call(&Request::Kill { signal: sig }).await?;
        let mut attrs = Self::attrs(&c);
        attrs.insert("signal".into(), sig.to_string());
        self.events.emit("container", "kill", &c.id, attrs);
        if sig == libc::SIGKILL {
            // A frozen process dies only once thawed; Docker resumes it.
            if entry.snapshot().state.paused {
                let _ = self.shim(&c.id).call(&Request::Resume).await;
            }
            // As Docker, a SIGKILL returns once the container is gone (up to 10 s), so an
            // inspect or rm that follows sees it exited (137).
            let gone = self.wait_progress(&entry, |p| p.exits != exits || !p.running || p.removed);
            if tokio::time::timeout(Duration::from_secs(10), gone).await.is_err() {
                return Err(Error::Internal(format!("container {} did not exit within 10 s of SIGKILL", c.id)));
            }
        }
        Ok(())
    }

    /// Stop: the stop signal, then SIGKILL after `timeout` seconds.
    pub async fn stop(&self, key: &str, timeout: Option<i64>, signal: Option<Signal>) -> Result<()> {
        let entry = self.get(key)?;
        let _op = entry.op.lock().await;
        self.stop_locked(&entry, timeout, signal).await
    }

    pub(crate) async fn stop_locked(&self, entry: &Entry, timeout: Option<i64>, signal: Option<Signal>) -> Result<()> {
        let c = entry.snapshot();
        {
            let mut r = entry.rec.lock().unwrap();
            r.manually_stopped = true;
            let _ = self.save(&r);
        }
        if !c.state.running {
            if c.state.restarting {
                let mut r = entry.rec.lock().unwrap();
                r.state.restarting = false;
                r.state.status = "exited".into();
                let _ = self.save(&r);
                return Ok(());
            }
            return Err(Error::NotModified("container already stopped".into()));
        }
        let sig = match signal {
            Some(s) => s.0,
            None => parse_signal(c.config.stop_signal.as_deref().unwrap_or("SIGTERM"))?,
        };
        let timeout = timeout.or(c.config.stop_timeout).unwrap_or(10);
        let exits = entry.progress.borrow().exits;
        let shim = self.shim(&c.id);
        if c.state.paused {
            let _ = shim.call(&Request::Resume).await;
        }
        let _ = shim.call(&Request::Kill { signal: sig }).await;
        let waited = if timeout < 0 {
            self.wait_progress(entry, |p| p.exits > exits).await;
            true
        } else {
            tokio::time::timeout(Duration::from_secs(timeout as u64), self.wait_progress(entry, |p| p.exits > exits))
                .await
                .is_ok()
        };
        if !waited {
            let _ = shim.call(&Request::Kill { signal: libc::SIGKILL }).await;
            if tokio::time::timeout(Duration::from_secs(10), self.wait_progress(entry, |p| p.exits > exits))
                .await
                .is_err()
            {
                return Err(Error::Internal(format!("container {} did not exit after SIGKILL", c.id)));
            }
        }
        self.emit(&entry.snapshot(), "stop");
        Ok(())
    }

    pub async fn restart(self: &Arc<Self>, key: &str, timeout: Option<i64>, signal: Option<Signal>) -> Result<()> {
        let entry = self.get(key)?;
        {
            let _op = entry.op.lock().await;
            match self.stop_locked(&entry, timeout, signal).await {
                Ok(()) | Err(Error::NotModified(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.start(&entry.id).await?;
        self.emit(&entry.snapshot(), "restart");
        Ok(())
    }

    pub async fn pause(&self, key: &str, pause: bool) -> Result<()> {
        let entry = self.get(key)?;
        let _op = entry.op.lock().await;
        let c = entry.snapshot();
        if !c.state.running {
            return Err(Error::Conflict(format!("Container {} is not running", c.id)));
        }
        if pause && c.state.paused {
            return Err(Error::Conflict(format!("Container {} is already paused", c.id)));
        }
        if !pause && !c.state.paused {
            return Err(Error::Conflict(format!("Container {} is not paused", c.id)));
        }
        self.shim(&c.id)
            .call(if pause { &Request::Pause } else { &Request::Resume })
            .await?;
        let mut r = entry.rec.lock().unwrap();
        r.state.paused = pause;
        r.state.status = if pause { "paused".into() } else { "running".into() };
        self.save(&r)?;
        let snap = r.clone();
        drop(r);
        self.emit(&snap, if pause { "pause" } else { "unpause" });
        Ok(())
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let entry = self.get(key)?;
        let _op = entry.op.lock().await;
        let c = entry.snapshot();
        if c.state.running {
            if !force {
                let what = if c.state.paused { "paused" } else { "running" };
                return Err(Error::Conflict(format!(
                    "cannot remove container \"{}\": container is {what}: stop the container before removing or force remove",
                    c.name
                )));
            }
            let exits = entry.progress.borrow().exits;
            {
                let mut r = entry.rec.lock().unwrap();
                r.manually_stopped = true;
            }
            let shim = self.shim(&c.id);
            if c.state.paused {
                let _ = shim.call(&Request::Resume).await;
            }
            let _ = shim.call(&Request::Kill { signal: libc::SIGKILL }).await;
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                self.wait_progress(&entry, |p| p.exits > exits || !p.running),
            )
            .await;
        }
        // Move the container's directory aside atomically (a crash after this never brings it back),
        // answer, and unmount and delete in the background: unmounting waits for an RCU grace
        // period, which is most of a short container's removal time.
        let trash = self.cfg.root.join("containers").join(format!("{TRASH_PREFIX}{}", c.id));
        std::fs::rename(self.container_dir(&c.id), &trash).map_err(internal)?;
        self.containers.lock().unwrap().remove(&c.id);
        let _ = std::fs::remove_dir_all(self.state_dir(&c.id));
        tokio::task::spawn_blocking(move || purge_trash(&trash));
        if volumes {
            for v in &c.anon_volumes {
                let _ = self.volumes.remove(v);
            }
        }
        self.execs.lock().unwrap().retain(|_, e| e.container != c.id);
        self.emit(&c, "destroy");
        tracing::debug!(container = %c.id, "removed");
        entry.progress.send_modify(|p| p.removed = true);
        Ok(())
    }

    pub fn rename(&self, key: &str, new: &str) -> Result<()> {
        let entry = self.get(key)?;
        let n = new.trim_start_matches('/');
        if !valid_container_name(n) {
            return Err(Error::BadRequest(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let full = format!("/{n}");
        if let Some(other) = self.name_taken(&full) {
            if other != entry.id {
                return Err(Error::Conflict(format!("Conflict. The container name \"{full}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name.")));
            }
        }
        let mut r = entry.rec.lock().unwrap();
        let old = r.name.clone();
        r.name = full;
        self.save(&r)?;
        let mut attrs = Self::attrs(&r);
        attrs.insert("oldName".into(), old);
        self.events.emit("container", "rename", &r.id, attrs);
        Ok(())
    }

    /// `POST /containers/{id}/wait`. The condition is judged against the state at the time of the
    /// call, so an exit right after it is not missed; the returned future gives the exit code.
    pub fn wait(self: &Arc<Self>, key: &str, condition: WaitCondition) -> Result<impl std::future::Future<Output = i64> + Send + 'static> {
        let entry = self.get(key)?;
        let snap = entry.snapshot();
        let start = entry.progress.borrow().clone();
        let until_removed = condition == WaitCondition::Removed;
        let done = condition == WaitCondition::NotRunning && !snap.state.running && !snap.state.restarting;
        let me = self.clone();
        Ok(async move {
            if done {
                return snap.state.exit_code;
            }
            let p = me
                .wait_progress(&entry, |p| p.removed || (!until_removed && p.exits > start.exits))
                .await;
            if p.exits > start.exits {
                p.last_exit
            } else {
                entry.snapshot().state.exit_code
            }
        })
    }
}
