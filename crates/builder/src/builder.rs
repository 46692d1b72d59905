//! The builder: runs a parsed Dockerfile stage by stage. RUN steps execute in real containers
//! through the [`Backend`] (the engine); COPY and ADD are done here, on an overlay of the stage's
//! layers. Every step that changes the filesystem becomes one layer; the others change only the
//! config. Layers and configs are written deterministically, so the same inputs give the same image.
//!
//! This module runs the stages and their instructions; RUN is in `run`, COPY and ADD in `copy`, the
//! config changes of the metadata instructions in `metadata`, overlay snapshots and layer commits
//! in `snapshot`, cache lookups in `cached`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci::spec::{Descriptor, History, ImageConfig, RootFs};
use oci::Digest;
use serde_json::json;

use crate::cache::Cache;
use crate::dockerfile::{self, Command, Dockerfile, Instruction, Kind, Loc};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::pattern::{self, Ignore};

mod cached;
mod copy;
mod metadata;
mod run;
mod snapshot;
#[cfg(test)]
mod tests;

use cached::{cache_comment, CacheSource};
pub use copy::decompressed;
use metadata::{healthcheck, onbuild_trigger};

/// The time written into images when none is asked for: the Unix epoch, 1970-01-01T00:00:00Z.
pub const DEFAULT_EPOCH: i64 = 0;

/// What to build and how.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Path of the Dockerfile inside the context (default `Dockerfile`).
    pub dockerfile: String,
    /// Names to tag the result with.
    pub tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--label`s added to the final image.
    pub labels: BTreeMap<String, String>,
    /// Stage to stop at (by name); the last stage when `None`.
    pub target: Option<String>,
    /// Do not use the cache.
    pub no_cache: bool,
    /// The time for the config and every file in new layers: `Some(secs)` (SOURCE_DATE_EPOCH, or
    /// [`DEFAULT_EPOCH`]), or `None` for the current time and real file times (not reproducible).
    pub timestamp: Option<i64>,
    /// Network mode of RUN containers (`default`, `none`, `host`).
    pub network: String,
    /// `rm=0`: keep every RUN step's container (Docker's classic builder removes them after each
    /// successful step by default). Only RUN steps have containers: COPY, ADD and the metadata
    /// instructions are carried out by the builder itself, with nothing to keep.
    pub keep_containers: bool,
    /// `forcerm`: remove a step's container also when the step failed (by default a failed step's
    /// container is left for inspection, as Docker leaves it).
    pub force_rm: bool,
    /// `--cache-from`: images whose layers may stand for steps of this build. A step is taken from
    /// one when the image's history records the step's cache key on the same layers below it.
    /// With any given, the local build cache is not consulted (as Docker's classic builder does).
    pub cache_from: Vec<String>,
    /// `--pull`: pull every base image (FROM, COPY --from) even when a local one exists. Without
    /// it, only images the local store lacks are pulled.
    pub pull: bool,
}

/// What a build reports as it goes.
#[derive(Debug)]
pub enum Progress<'a> {
    /// `Step n/total : INSTRUCTION ...`
    Step { n: usize, total: usize, text: &'a str },
    /// The base image of a FROM has this many ONBUILD triggers; they run next, without steps.
    Triggers(usize),
    /// The step's result came from the cache.
    Cached,
    /// A RUN step's container started.
    Running(&'a str),
    /// Output of a RUN step, on its stdout or its stderr.
    Output { data: &'a [u8], stderr: bool },
    /// A step's container was removed.
    Removed(&'a str),
    /// The step finished with this image (`None` only for `FROM scratch`, which has none).
    Done { id: Option<&'a Digest> },
    /// A stage finished with this image.
    Stage(&'a Digest),
    /// Something the user should know (unused build args, ...).
    Warning(String),
    /// A line of a base image's pull (`latest: Pulling from library/x`, `Pull complete`, ...).
    Pulling(&'a str),
}

/// A RUN step to execute.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The image to run on (the state before the step).
    pub image: Digest,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub network: String,
}

/// What happens while a RUN step's container runs.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// The container (this ID) started.
    Started(&'a str),
    /// It wrote this, on its stdout or its stderr.
    Output { data: &'a [u8], stderr: bool },
}

/// A finished RUN step's container.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub container: String,
    pub exit_code: i64,
    /// The container's overlay upper directory (unmounted): the step's changes.
    pub upper: PathBuf,
}

/// What the builder needs from the engine.
pub trait Backend {
    fn images(&self) -> &image::ImageStore;
    /// Run `req` in a new container and wait for it; `events` hears of its start and output.
    fn run(&self, req: &RunRequest, events: &mut dyn FnMut(RunEvent)) -> Result<RunOutcome>;
    /// Remove a container `run` created.
    fn remove_container(&self, id: &str);
    /// Download `url` (ADD) into `out`; returns the file name it should get (from the URL's path;
    /// empty if it has none).
    fn fetch(&self, url: &str, out: &mut fs::File) -> Result<String>;
    /// Pull `reference` from its registry into the image store; `events` hears of its progress.
    fn pull(&self, reference: &str, events: &mut dyn FnMut(&str)) -> Result<()>;
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub id: Digest,
    pub tags: Vec<String>,
    /// What went into it, for its provenance.
    pub inputs: Inputs,
}

/// The inputs of a build, as its provenance records them.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The Dockerfile's path in the context, and its text.
    pub dockerfile_path: String,
    pub dockerfile: String,
    /// The digest of the context as the build saw it (names, kinds, modes, link targets and file
    /// contents of everything `.dockerignore` lets through; not times).
    pub context: Option<Digest>,
    /// The images the build started from (FROM, COPY --from), as named and as found.
    pub bases: Vec<(String, Digest)>,
    /// The build args given, and the stage built.
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// The time written into the image (its config's `created`).
    pub created: Option<String>,
}

/// Build the Dockerfile in directory `context`.
pub fn build(
    backend: &dyn Backend,
    cache: &Cache,
    context: &Path,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<BuildResult> {
    let df_name = if opts.dockerfile.is_empty() {
        "Dockerfile"
    } else {
        opts.dockerfile.as_str()
    };
    let df_rel = pattern::clean(df_name);
    let text = fsutil::open_file_in(context, &df_rel)
        .and_then(|mut f| {
            let mut s = String::new();
            f.read_to_string(&mut s).ok().map(|_| s)
        })
        .ok_or_else(|| Error::Context(format!("Cannot locate specified Dockerfile: {df_name}")))?;
    let df = dockerfile::parse(&text)?;
    let ignore = fsutil::open_file_in(context, ".dockerignore")
        .and_then(|mut f| {
            let mut s = String::new();
            f.read_to_string(&mut s).ok().map(|_| s)
        })
        .map(|s| Ignore::parse(&s))
        .unwrap_or_default();
    // The images `--cache-from` names; those not here are skipped, as Docker skips them.
    let mut sources = Vec::new();
    if !opts.no_cache {
        let images = backend.images();
        for r in &opts.cache_from {
            let found = images.resolve(r).and_then(|id| {
                Ok(CacheSource {
                    config: images.config(&id)?,
                    layers: images.manifest(&id)?.layers,
                })
            });
            match found {
                Ok(src) => sources.push(src),
                Err(e) => tracing::warn!(image = %r, error = %e, "cache-from image skipped"),
            }
        }
    }
    let mut b = Builder {
        backend,
        cache,
        context: context.to_path_buf(),
        ignore,
        opts,
        progress,
        escape: df.escape,
        used_args: BTreeSet::new(),
        meta_args: BTreeMap::new(),
        stages: Vec::new(),
        step: 0,
        total: 0,
        work: backend.images().root().join("layers"),
        sources,
        in_trigger: false,
        bases: Vec::new(),
    };
    let mut res = b.run(&df)?;
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    b.hash_tree(&mut h, context, "")?;
    res.inputs = Inputs {
        dockerfile_path: df_rel,
        dockerfile: text,
        context: Digest::parse(&hex::encode(sha2::Digest::finalize(h))).ok(),
        bases: std::mem::take(&mut b.bases),
        build_args: opts.build_args.clone(),
        target: opts.target.clone(),
        created: backend.images().config(&res.id).ok().and_then(|c| c.created),
    };
    Ok(res)
}

/// The state of a stage between steps.
#[derive(Clone)]
struct State {
    /// The image holding this state, once committed to the store.
    id: Option<Digest>,
    /// Last committed ancestor (the parent of the next committed image).
    parent: Option<Digest>,
    config: ImageConfig,
    layers: Vec<Descriptor>,
    /// ARGs declared in this stage and their values.
    args: BTreeMap<String, String>,
    /// CMD was set in this stage (an ENTRYPOINT then keeps it).
    cmd_set: bool,
}

struct Stage {
    name: Option<String>,
    state: State,
}

struct Builder<'a> {
    backend: &'a dyn Backend,
    cache: &'a Cache,
    context: PathBuf,
    ignore: Ignore,
    opts: &'a BuildOptions,
    progress: &'a mut dyn FnMut(Progress),
    escape: char,
    used_args: BTreeSet<String>,
    /// ARGs declared before the first FROM, with their values: an `ARG NAME` without a default
    /// inside a stage takes its value from here.
    meta_args: BTreeMap<String, String>,
    stages: Vec<Stage>,
    step: usize,
    total: usize,
    /// Where temporary snapshots go (the image store's layer directory, so a finished upper dir
    /// can be renamed into place).
    work: PathBuf,
    /// The `--cache-from` images found.
    sources: Vec<CacheSource>,
    /// ONBUILD triggers are running: they have no step lines of their own.
    in_trigger: bool,
    /// The base images used, as named and found.
    bases: Vec<(String, Digest)>,
}

/// Build args that need no ARG declaration (Docker's predefined proxy args).
const PREDEFINED_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The automatic platform ARGs, for this machine (build and target are the same).
fn platform_args() -> BTreeMap<String, String> {
    let (os, arch) = ("linux", oci::spec::host_arch());
    let mut m = BTreeMap::new();
    for side in ["TARGET", "BUILD"] {
        m.insert(format!("{side}PLATFORM"), format!("{os}/{arch}"));
        m.insert(format!("{side}OS"), os.to_string());
        m.insert(format!("{side}ARCH"), arch.to_string());
        m.insert(format!("{side}VARIANT"), String::new());
    }
    m
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn env_get<'e>(env: &'e [String], key: &str) -> Option<&'e str> {
    env.iter()
        .find_map(|e| e.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

fn env_set(env: &mut Vec<String>, key: &str, value: &str) {
    let item = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map(|(k, _)| k) == Some(key) || e.as_str() == key)
    {
        Some(e) => *e = item,
        None => env.push(item),
    }
}

impl Builder<'_> {
    fn emit(&mut self, p: Progress) {
        // ONBUILD triggers report no image per trigger: their FROM step reports the result.
        if self.in_trigger && matches!(p, Progress::Done { .. }) {
            return;
        }
        (self.progress)(p)
    }

    fn now(&self) -> String {
        match self.opts.timestamp {
            Some(t) => rfc3339(t),
            None => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        }
    }

    fn run(&mut self, df: &Dockerfile) -> Result<BuildResult> {
        if df.stages.is_empty() {
            return Err(Error::Invalid("the Dockerfile has no FROM instruction".into()));
        }
        // Which stage ends the build.
        let last = match &self.opts.target {
            None => df.stages.len() - 1,
            Some(t) => df
                .stages
                .iter()
                .position(|s| s.from().name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
                .ok_or_else(|| Error::Invalid(format!("target stage {t:?} could not be found")))?,
        };
        // Steps as Docker's classic builder counts them: each ARG before the first FROM, each FROM
        // and instruction, and one LABEL per `--label` (added to the last stage, sorted by key).
        // ONBUILD triggers run within their FROM step.
        self.total =
            df.meta_args.len() + df.stages[..=last].iter().map(|s| 1 + s.instructions.len()).sum::<usize>() + self.opts.labels.len();
        // ARGs before FROM: their values are usable in FROM lines only. The platform ARGs BuildKit
        // defines (TARGETARCH, BUILDPLATFORM, ...) are there from the start: the builder builds
        // for the machine it runs on.
        let mut meta: BTreeMap<String, String> = platform_args();
        for ins in &df.meta_args {
            self.begin(&ins.source);
            if let Kind::Arg(defs) = &ins.kind {
                for d in defs {
                    let v = match self.opts.build_args.get(&d.name) {
                        Some(v) => {
                            self.used_args.insert(d.name.clone());
                            Some(v.clone())
                        }
                        None => match &d.default {
                            Some(raw) => Some(self.expand_with(ins.loc, raw, &[], &meta)?),
                            None => None,
                        },
                    };
                    meta.insert(d.name.clone(), v.unwrap_or_default());
                }
            }
        }
        self.meta_args = meta;
        for (i, stage) in df.stages[..=last].iter().enumerate() {
            let mut st = self.stage(stage)?;
            if i == last {
                for (k, v) in &self.opts.labels {
                    self.begin(&format!("LABEL {k}={v}"));
                    st.config
                        .config
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k.clone(), v.clone());
                    self.metadata_done(&mut st, format!("LABEL {k}={v}"))?;
                }
            }
            let id = self.commit(&mut st)?;
            self.emit(Progress::Stage(&id));
            self.stages.push(Stage {
                name: stage.from().name.clone(),
                state: st,
            });
        }
        let st = self.stages.pop().expect("a stage was built").state;
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()) && k.as_str() != "SOURCE_DATE_EPOCH")
            .collect();
        if !unused.is_empty() {
            let list = unused.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
            self.emit(Progress::Warning(format!(
                "[Warning] One or more build-args [{list}] were not consumed"
            )));
        }
        let id = st.id.clone().expect("the last stage was committed");
        let mut tags = Vec::new();
        for t in &self.opts.tags {
            tags.push(self.backend.images().tag(&id, t)?);
        }
        Ok(BuildResult {
            id,
            tags,
            inputs: Inputs::default(),
        })
    }

    /// Expand a raw word with `env` (the config's) and `args`; ENV wins over ARG.
    fn expand_with(&self, loc: Loc, raw: &str, env: &[String], args: &BTreeMap<String, String>) -> Result<String> {
        let lookup = |k: &str| env_get(env, k).map(str::to_string).or_else(|| args.get(k).cloned());
        dockerfile::expand(raw, self.escape, &lookup).map_err(|e| Error::at(loc, e.to_string()))
    }

    fn expand(&self, st: &State, loc: Loc, raw: &str) -> Result<String> {
        self.expand_with(loc, raw, st.config.config.env.as_deref().unwrap_or(&[]), &st.args)
    }

    /// Announce the next step (ONBUILD triggers have no step of their own).
    fn begin(&mut self, text: &str) {
        if self.in_trigger {
            return;
        }
        self.step += 1;
        let (n, total) = (self.step, self.total);
        self.emit(Progress::Step { n, total, text });
    }

    /// A step finished with the state `st`, which is committed (as every step of Docker's classic
    /// builder leaves an image) unless it is empty (`FROM scratch`).
    fn done(&mut self, st: &mut State) -> Result<()> {
        let id = if st.id.is_none() && st.layers.is_empty() && st.config.history.is_empty() {
            None
        } else {
            Some(self.commit(st)?)
        };
        if !self.in_trigger {
            self.emit(Progress::Done { id: id.as_ref() });
        }
        Ok(())
    }

    /// A step that changed only the config: record it in the history and commit.
    fn metadata_done(&mut self, st: &mut State, created_by: String) -> Result<()> {
        self.history(st, created_by, true, None);
        st.config.created = Some(self.now());
        st.id = None;
        self.done(st)
    }

    fn stage(&mut self, stage: &dockerfile::Stage) -> Result<State> {
        self.begin(&stage.from.source);
        let from = stage.from();
        let loc = stage.from.loc;
        let base = self.expand_with(loc, &from.image, &[], &self.meta_args)?;
        if let Some(p) = &from.platform {
            let p = self.expand_with(loc, p, &[], &self.meta_args)?;
            let want = format!("linux/{}", oci::spec::host_arch());
            if !p.is_empty() && p != want && p != "$BUILDPLATFORM" && p != "$TARGETPLATFORM" {
                return Err(Error::at(
                    loc,
                    format!("platform {p:?} is not supported: this builder builds {want} only"),
                ));
            }
        }
        let mut st = if base.eq_ignore_ascii_case("scratch") {
            State {
                id: None,
                parent: None,
                config: ImageConfig {
                    architecture: oci::spec::host_arch().into(),
                    os: "linux".into(),
                    config: oci::spec::RunConfig {
                        env: Some(vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()]),
                        ..Default::default()
                    },
                    rootfs: RootFs {
                        kind: "layers".into(),
                        diff_ids: vec![],
                    },
                    ..Default::default()
                },
                layers: vec![],
                args: BTreeMap::new(),
                cmd_set: false,
            }
        } else if let Some(i) = self.find_stage(&base) {
            let mut st = self.stages[i].state.clone();
            st.args.clear();
            st.cmd_set = false;
            st
        } else {
            let id = self.base_image(&base)?;
            let images = self.backend.images();
            let config = images.config(&id)?;
            let layers = images.manifest(&id)?.layers;
            State {
                id: Some(id.clone()),
                parent: Some(id),
                config,
                layers,
                args: BTreeMap::new(),
                cmd_set: false,
            }
        };
        // ONBUILD triggers of the base run first, within the FROM step (as Docker runs them);
        // they are not inherited further.
        let triggers = st.config.config.on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            st.id = None;
            self.emit(Progress::Triggers(triggers.len()));
            self.in_trigger = true;
            let res = (|| -> Result<()> {
                for trig in triggers {
                    let parsed = dockerfile::parse(&format!("FROM scratch\n{trig}\n"))
                        .map_err(|e| Error::at(loc, format!("ONBUILD trigger {trig:?} of the base image: {}", e.message)))?;
                    for ins in parsed.stages.into_iter().flat_map(|s| s.instructions) {
                        self.instruction(&mut st, &ins)?;
                    }
                }
                Ok(())
            })();
            self.in_trigger = false;
            res?;
        }
        self.done(&mut st)?;
        for ins in &stage.instructions {
            self.instruction(&mut st, ins)?;
        }
        Ok(st)
    }

    /// A base image (of FROM or COPY --from) by reference: the local one, pulled first when the
    /// store lacks it or `--pull` asks for a fresh copy.
    fn base_image(&mut self, reference: &str) -> Result<Digest> {
        let id = self.find_base_image(reference)?;
        if !self.bases.iter().any(|(r, d)| r == reference && *d == id) {
            self.bases.push((reference.to_string(), id.clone()));
        }
        Ok(id)
    }

    fn find_base_image(&mut self, reference: &str) -> Result<Digest> {
        let local = self.backend.images().resolve(reference).ok();
        if let Some(id) = local.as_ref().filter(|_| !self.opts.pull) {
            return Ok(id.clone());
        }
        let mut lines = Vec::new();
        let pulled = self.backend.pull(reference, &mut |l| lines.push(l.to_string()));
        for l in &lines {
            self.emit(Progress::Pulling(l));
        }
        match pulled {
            Ok(()) => self.backend.images().resolve(reference).map_err(|_| Error::NoBaseImage {
                image: reference.to_string(),
                reason: "the pull stored no such image".into(),
            }),
            Err(e) => Err(Error::NoBaseImage {
                image: reference.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// The index of an earlier stage named `name` (or numbered so).
    fn find_stage(&self, name: &str) -> Option<usize> {
        if let Ok(i) = name.parse::<usize>() {
            return (i < self.stages.len()).then_some(i);
        }
        self.stages
            .iter()
            .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
    }

    /// Record a step in the history; a step that made a layer notes its cache key.
    fn history(&self, st: &mut State, created_by: String, empty_layer: bool, key: Option<&Digest>) {
        st.config.history.push(History {
            created: Some(self.now()),
            created_by: Some(created_by),
            author: None,
            comment: Some(key.map(cache_comment).unwrap_or_else(|| "berth.build".into())),
            empty_layer,
        });
    }

    fn instruction(&mut self, st: &mut State, ins: &Instruction) -> Result<()> {
        self.begin(&ins.source);
        let loc = ins.loc;
        match &ins.kind {
            Kind::Run(run) => return self.run_step(st, ins, run),
            Kind::Copy(c) => return self.copy_step(st, ins, c, false),
            Kind::Add(c) => return self.copy_step(st, ins, c, true),
            Kind::From(_) => return Err(Error::at(loc, "FROM inside a stage")),
            Kind::Arg(defs) => return self.arg_step(st, loc, defs),
            Kind::Env(pairs) => self.env(st, loc, pairs)?,
            Kind::Label(pairs) => self.label(st, loc, pairs)?,
            Kind::Cmd(c) => {
                st.config.config.cmd = Some(self.command(st, c));
                st.cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                st.config.config.entrypoint = Some(self.command(st, c));
                if !st.cmd_set {
                    st.config.config.cmd = None;
                }
            }
            Kind::Shell(v) => {
                st.config.config.extra.insert("Shell".into(), json!(v));
            }
            Kind::Expose(ports) => self.expose(st, loc, ports)?,
            Kind::Volume(paths) => self.volume(st, loc, paths)?,
            Kind::User(u) => {
                st.config.config.user = Some(self.expand(st, loc, u)?).filter(|s| !s.is_empty());
            }
            Kind::Workdir(w) => self.workdir(st, loc, w)?,
            Kind::Stopsignal(s) => {
                st.config.config.stop_signal = Some(self.expand(st, loc, s)?);
            }
            Kind::Maintainer(m) => {
                st.config.author = Some(m.clone());
            }
            Kind::Onbuild(inner) => {
                st.config.config.on_build.get_or_insert_with(Vec::new).push(onbuild_trigger(inner));
            }
            Kind::Healthcheck(h) => {
                st.config.config.healthcheck = Some(healthcheck(loc, h)?);
            }
        }
        // Metadata only: a new config, no layer.
        self.metadata_done(st, ins.source.clone())
    }

    fn shell(st: &State) -> Vec<String> {
        st.config
            .config
            .extra
            .get("Shell")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn command(&self, st: &State, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = Self::shell(st);
                v.push(s.clone());
                v
            }
        }
    }
}

fn io_err(op: &str, p: &Path, e: std::io::Error) -> Error {
    Error::Io {
        op: op.into(),
        path: p.to_path_buf(),
        source: e,
    }
}
