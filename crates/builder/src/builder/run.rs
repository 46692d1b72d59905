//! RUN: the step's command runs in a container of the engine (the [`Backend`](super::Backend)); its
//! upper directory becomes the step's layer.

use serde_json::json;

use super::{env_get, Builder, Progress, RunEvent, RunRequest, State};
use crate::dockerfile::{self, Command, Instruction};
use crate::error::{Error, Result};

impl Builder<'_> {
    pub(super) fn run_step(&mut self, st: &mut State, ins: &Instruction, run: &dockerfile::Run) -> Result<()> {
        let loc = ins.loc;
        let argv = match &run.command {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let script = if run.heredocs.len() == 1 && s.trim() == format!("<<{}", run.heredocs[0].name).as_str() {
                    // `RUN <<EOF`: the body is the script.
                    run.heredocs[0].content.clone()
                } else if run.heredocs.is_empty() {
                    s.clone()
                } else {
                    // The shell reads the heredocs itself, as in a script file.
                    let mut full = s.clone();
                    full.push('\n');
                    for h in &run.heredocs {
                        full.push_str(&h.content);
                        full.push_str(&h.name);
                        full.push('\n');
                    }
                    full
                };
                let mut v = Self::shell(st);
                v.push(script);
                v
            }
        };
        if argv.is_empty() {
            return Err(Error::at(loc, "RUN needs a command"));
        }
        let network = match &run.network {
            Some(n) => match self.expand(st, loc, n)?.as_str() {
                "default" | "" => self.opts.network.clone(),
                n @ ("none" | "host") => n.to_string(),
                other => return Err(Error::at(loc, format!("RUN --network={other}: expected default, none or host"))),
            },
            None => self.opts.network.clone(),
        };
        // Build args in scope reach the command as environment (not the image).
        let mut env = st.config.config.env.clone().unwrap_or_default();
        for (k, v) in &st.args {
            if env_get(&env, k).is_none() {
                env.push(format!("{k}={v}"));
            }
        }
        let user = st.config.config.user.clone().unwrap_or_default();
        let workdir = st.config.config.working_dir.clone().unwrap_or_default();
        let key = self.key(st, &json!({"run": argv, "env": env, "network": network}));
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        let parent = self.commit(st)?;
        let req = RunRequest {
            image: parent,
            argv: argv.clone(),
            env,
            user,
            workdir,
            network,
        };
        let progress = &mut self.progress;
        let outcome = self.backend.run(&req, &mut |ev| match ev {
            RunEvent::Started(id) => progress(Progress::Running(id)),
            RunEvent::Output { data, stderr } => progress(Progress::Output { data, stderr }),
        })?;
        // The container goes as in Docker's classic builder: after a step that succeeded unless
        // `rm=0`, after one that failed only with `forcerm` (else it is left for inspection).
        let (force_rm, keep) = (self.opts.force_rm, self.opts.keep_containers);
        let remove_if = move |ok: bool| force_rm || (ok && !keep);
        let res = if outcome.exit_code != 0 {
            // Docker's message: the command as the container ran it, words joined by spaces.
            Err(Error::RunFailed {
                command: argv.join(" "),
                code: outcome.exit_code,
            })
        } else {
            let created_by = format!("RUN {}", argv.join(" "));
            let adopt = remove_if(true);
            self.add_layer(st, &outcome.upper, created_by, &key, adopt)
        };
        if remove_if(res.is_ok()) {
            self.backend.remove_container(&outcome.container);
            self.emit(Progress::Removed(&outcome.container));
        }
        let id = res?;
        self.emit(Progress::Done { id: Some(&id) });
        Ok(())
    }
}
