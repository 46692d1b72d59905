//! The metadata instructions' changes to the config: ARG, ENV, LABEL, EXPOSE, VOLUME, WORKDIR,
//! ONBUILD and HEALTHCHECK (the one-line ones are in the builder's instruction match).

use serde_json::{json, Value};

use super::{env_set, Builder, State};
use crate::dockerfile::{self, ArgDef, Command, Healthcheck, Instruction, Kind, Loc};
use crate::error::{Error, Result};
use crate::pattern;

impl Builder<'_> {
    /// ARG: the values of the stage's build args (a `--build-arg`, the default, or the value of
    /// the ARG of the same name before the first FROM).
    pub(super) fn arg_step(&mut self, st: &mut State, loc: Loc, defs: &[ArgDef]) -> Result<()> {
        for d in defs {
            let v = match self.opts.build_args.get(&d.name) {
                Some(v) => {
                    self.used_args.insert(d.name.clone());
                    v.clone()
                }
                None => match &d.default {
                    Some(raw) => self.expand(st, loc, raw)?,
                    None => self.meta_args.get(&d.name).cloned().unwrap_or_default(),
                },
            };
            st.args.insert(d.name.clone(), v);
        }
        // ARGs change nothing in the image but the steps after them (their key).
        self.done(st)
    }

    /// ENV: set the pairs in the config's environment.
    pub(super) fn env(&self, st: &mut State, loc: Loc, pairs: &[(String, String)]) -> Result<()> {
        let mut env = st.config.config.env.clone().unwrap_or_default();
        for (k, v) in pairs {
            let k = self.expand(st, loc, k)?;
            // Later pairs see earlier ones of the same line.
            let lookup_env = env.clone();
            let v = self.expand_with(loc, v, &lookup_env, &st.args)?;
            if k.is_empty() {
                return Err(Error::at(loc, "ENV names must not be empty"));
            }
            env_set(&mut env, &k, &v);
        }
        st.config.config.env = Some(env);
        Ok(())
    }

    /// LABEL: set the config's labels.
    pub(super) fn label(&self, st: &mut State, loc: Loc, pairs: &[(String, String)]) -> Result<()> {
        let mut labels = st.config.config.labels.clone().unwrap_or_default();
        for (k, v) in pairs {
            let k = self.expand(st, loc, k)?;
            let v = self.expand(st, loc, v)?;
            if k.is_empty() {
                return Err(Error::at(loc, "LABEL names must not be empty"));
            }
            labels.insert(k, v);
        }
        st.config.config.labels = Some(labels);
        Ok(())
    }

    /// EXPOSE: add the ports (`80/tcp` when no protocol is given) to the config.
    pub(super) fn expose(&self, st: &mut State, loc: Loc, ports: &[String]) -> Result<()> {
        let mut m = st.config.config.exposed_ports.clone().unwrap_or_default();
        for p in ports {
            for p in self.expand(st, loc, p)?.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_ascii_lowercase()
                } else {
                    format!("{p}/tcp")
                };
                let (num, proto) = p.split_once('/').expect("has a slash");
                let ok_num = num.split('-').all(|n| n.parse::<u16>().is_ok());
                if !ok_num || !["tcp", "udp", "sctp"].contains(&proto) {
                    return Err(Error::at(loc, format!("invalid port {p:?} in EXPOSE")));
                }
                m.insert(p, json!({}));
            }
        }
        st.config.config.exposed_ports = Some(m);
        Ok(())
    }

    /// VOLUME: add the paths to the config.
    pub(super) fn volume(&self, st: &mut State, loc: Loc, paths: &[String]) -> Result<()> {
        let mut m = st.config.config.volumes.clone().unwrap_or_default();
        for p in paths {
            let p = self.expand(st, loc, p)?;
            if p.is_empty() {
                return Err(Error::at(loc, "VOLUME specified can not be an empty string"));
            }
            m.insert(p, json!({}));
        }
        st.config.config.volumes = Some(m);
        Ok(())
    }

    /// WORKDIR: the working directory, a relative path joined to the current one.
    pub(super) fn workdir(&self, st: &mut State, loc: Loc, w: &str) -> Result<()> {
        let w = self.expand(st, loc, w)?;
        let base = st.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let joined = if w.starts_with('/') {
            w
        } else {
            format!("{}/{}", base.trim_end_matches('/'), w)
        };
        st.config.config.working_dir = Some(format!("/{}", pattern::clean(&joined)));
        Ok(())
    }
}

/// ONBUILD: the text of the trigger instruction, as the config keeps it.
pub(super) fn onbuild_trigger(inner: &Instruction) -> String {
    // The trigger as it will be parsed again: heredoc bodies follow their line.
    let heredocs: &[dockerfile::Heredoc] = match &inner.kind {
        Kind::Run(r) => &r.heredocs,
        Kind::Copy(c) | Kind::Add(c) => &c.heredocs,
        _ => &[],
    };
    let mut trigger = inner.source.clone();
    for h in heredocs {
        trigger.push('\n');
        trigger.push_str(&h.content);
        trigger.push_str(&h.name);
    }
    trigger
}

/// HEALTHCHECK: the config's `Healthcheck` value (durations in nanoseconds).
pub(super) fn healthcheck(loc: Loc, h: &Healthcheck) -> Result<Value> {
    let v = match h {
        Healthcheck::None => json!({"Test": ["NONE"]}),
        Healthcheck::Check {
            command,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => {
            let test = match command {
                Command::Shell(s) => json!(["CMD-SHELL", s]),
                Command::Exec(v) => {
                    let mut t = vec!["CMD".to_string()];
                    t.extend(v.iter().cloned());
                    json!(t)
                }
            };
            let mut o = serde_json::Map::new();
            o.insert("Test".into(), test);
            for (name, d) in [
                ("Interval", interval),
                ("Timeout", timeout),
                ("StartPeriod", start_period),
                ("StartInterval", start_interval),
            ] {
                if let Some(d) = d {
                    let ns = dockerfile::parse_duration(d)
                        .ok()
                        .map(|d| d.as_nanos() as i64)
                        .ok_or_else(|| Error::at(loc, format!("HEALTHCHECK: invalid duration {d:?} for {name}")))?;
                    o.insert(name.into(), json!(ns));
                }
            }
            if let Some(r) = retries {
                o.insert("Retries".into(), json!(r));
            }
            Value::Object(o)
        }
    };
    Ok(v)
}
