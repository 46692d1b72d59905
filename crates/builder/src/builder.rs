//! The builder: runs a parsed Dockerfile stage by stage. RUN steps execute in real containers
//! through the [`Backend`] (the engine); COPY and ADD are done here, on an overlay of the stage's
//! layers. Every step that changes the filesystem becomes one layer; the others change only the
//! config. Layers and configs are written deterministically, so the same inputs give the same image.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci::spec::{Descriptor, History, ImageConfig, RootFs, MEDIA_OCI_LAYER};
use oci::Digest;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::cache::Cache;
use crate::dockerfile::{self, Command, Copy, Dockerfile, Healthcheck, Instruction, Kind, Loc};
use crate::error::{Error, Result};
use crate::fsutil::{self, Attrs};
use crate::pattern::{self, Ignore};

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
    };
    b.run(&df)
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

/// An image named by `--cache-from`.
struct CacheSource {
    config: ImageConfig,
    layers: Vec<Descriptor>,
}

/// What the history comment of a step's layer starts with; the step's cache key follows, so a
/// build elsewhere can take the layer for the same step (`--cache-from`).
const CACHE_MARK: &str = "berth.build cache=";

/// The history comment of a layer made by the step with cache key `key`.
fn cache_comment(key: &Digest) -> String {
    format!("{CACHE_MARK}{}", &key.hex()[..32])
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
        Ok(BuildResult { id, tags })
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

    /// Store the state as an image (if it is not one already) and return its ID.
    fn commit(&mut self, st: &mut State) -> Result<Digest> {
        if let Some(id) = &st.id {
            return Ok(id.clone());
        }
        if st.config.created.is_none() {
            st.config.created = Some(self.now());
        }
        // Every step commits; one that gives an image already stored (a rebuild) writes nothing.
        let images = self.backend.images();
        let known = Digest::of(&serde_json::to_vec(&st.config).expect("config serializes"));
        let id = if images.manifest(&known).is_ok_and(|m| m.layers == st.layers) {
            known
        } else {
            images.add_image(&st.config, &st.layers, st.parent.clone())?
        };
        st.id = Some(id.clone());
        st.parent = Some(id.clone());
        Ok(id)
    }

    /// The cache key of a step on state `st`: its input filesystem and config, and what it does.
    fn key(&self, st: &State, what: &Value) -> Digest {
        let c = &st.config;
        let v = json!({
            "os": c.os, "arch": c.architecture, "diff_ids": c.rootfs.diff_ids, "config": c.config,
            "step": what, "time": self.opts.timestamp,
        });
        Digest::of(serde_json::to_string(&v).expect("json").as_bytes())
    }

    /// A cached result for `key` whose image (and its blobs) are all still there.
    fn cached(&self, key: &Digest) -> Option<(Digest, ImageConfig, Vec<Descriptor>)> {
        let id = self.cache.get(key)?;
        let images = self.backend.images();
        let config = images.config(&id).ok()?;
        let manifest = images.manifest(&id).ok()?;
        if !manifest.layers.iter().all(|l| images.content().contains(&l.digest)) {
            return None;
        }
        Some((id, config, manifest.layers))
    }

    /// The layer a `--cache-from` image has for the step with cache key `key` on `st`: its history
    /// entry and the layer (diff ID and blob), when the layers below it are `st`'s.
    fn cached_in_sources(&self, st: &State, key: &Digest) -> Option<(History, Digest, Descriptor)> {
        let mark = cache_comment(key);
        let below = &st.config.rootfs.diff_ids;
        let images = self.backend.images();
        for src in &self.sources {
            let diff_ids = &src.config.rootfs.diff_ids;
            let mut layer = 0;
            for h in &src.config.history {
                if h.empty_layer {
                    continue;
                }
                if h.comment.as_deref() == Some(mark.as_str())
                    && layer == below.len()
                    && layer < diff_ids.len()
                    && layer < src.layers.len()
                    && diff_ids[..layer] == below[..]
                    && images.content().contains(&src.layers[layer].digest)
                {
                    return Some((h.clone(), diff_ids[layer].clone(), src.layers[layer].clone()));
                }
                layer += 1;
            }
        }
        None
    }

    /// Take a cached result (or not); returns whether it was used. With `--cache-from`, only the
    /// images it names are cache sources, as in Docker's classic builder.
    fn try_cache(&mut self, st: &mut State, key: &Digest) -> Result<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        if !self.opts.cache_from.is_empty() {
            let Some((h, diff_id, layer)) = self.cached_in_sources(st, key) else {
                return Ok(false);
            };
            self.emit(Progress::Cached);
            st.config.created = h.created.clone().or_else(|| Some(self.now()));
            st.config.history.push(h);
            st.config.rootfs.diff_ids.push(diff_id);
            st.layers.push(layer);
            st.id = None;
            let id = self.commit(st)?;
            self.cache.put(key, &id);
            self.emit(Progress::Done { id: Some(&id) });
            return Ok(true);
        }
        let Some((id, config, layers)) = self.cached(key) else {
            return Ok(false);
        };
        self.emit(Progress::Cached);
        st.config = config;
        st.layers = layers;
        st.id = Some(id.clone());
        st.parent = Some(id.clone());
        self.emit(Progress::Done { id: Some(&id) });
        Ok(true)
    }

    /// Add the directory `dir` (an overlay upper) as a new layer on `st`, record the image and cache it.
    /// `adopt`: the directory may become the layer's unpacked form (moved into the store); a kept
    /// step container's upper directory is not taken from it (the layer unpacks from its blob).
    fn add_layer(&mut self, st: &mut State, dir: &Path, created_by: String, key: &Digest, adopt: bool) -> Result<Digest> {
        let images = self.backend.images();
        if let Some(t) = self.opts.timestamp {
            fsutil::set_times(dir, t).map_err(|e| Error::Io {
                op: "set times in".into(),
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let mut w = images.content().writer()?;
        image::diff::write_tar(
            dir,
            &mut w,
            image::diff::TarOptions {
                overlay_whiteouts: true,
                mtime_clamp: self.opts.timestamp.map(|t| t.max(0) as u64),
                prefix: None,
            },
        )
        .map_err(|e| Error::Io {
            op: "archive".into(),
            path: dir.to_path_buf(),
            source: e,
        })?;
        let (diff_id, size) = w.commit(None)?;
        let mut diff_ids = st.config.rootfs.diff_ids.clone();
        diff_ids.push(diff_id.clone());
        let chain = image::store::chain_ids(&diff_ids).pop().expect("one layer at least");
        if adopt {
            images.adopt_layer(&chain, dir);
        }
        st.config.rootfs.diff_ids = diff_ids;
        st.layers.push(Descriptor::new(MEDIA_OCI_LAYER, diff_id, size));
        self.history(st, created_by, false, Some(key));
        st.id = None;
        st.config.created = Some(self.now());
        let id = self.commit(st)?;
        self.cache.put(key, &id);
        Ok(id)
    }

    fn instruction(&mut self, st: &mut State, ins: &Instruction) -> Result<()> {
        self.begin(&ins.source);
        let loc = ins.loc;
        match &ins.kind {
            Kind::Run(run) => return self.run_step(st, ins, run),
            Kind::Copy(c) => return self.copy_step(st, ins, c, false),
            Kind::Add(c) => return self.copy_step(st, ins, c, true),
            Kind::From(_) => return Err(Error::at(loc, "FROM inside a stage")),
            Kind::Arg(defs) => {
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
                return self.done(st);
            }
            Kind::Env(pairs) => {
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
            }
            Kind::Label(pairs) => {
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
            }
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
            Kind::Expose(ports) => {
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
            }
            Kind::Volume(paths) => {
                let mut m = st.config.config.volumes.clone().unwrap_or_default();
                for p in paths {
                    let p = self.expand(st, loc, p)?;
                    if p.is_empty() {
                        return Err(Error::at(loc, "VOLUME specified can not be an empty string"));
                    }
                    m.insert(p, json!({}));
                }
                st.config.config.volumes = Some(m);
            }
            Kind::User(u) => {
                st.config.config.user = Some(self.expand(st, loc, u)?).filter(|s| !s.is_empty());
            }
            Kind::Workdir(w) => {
                let w = self.expand(st, loc, w)?;
                let base = st.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{}", base.trim_end_matches('/'), w)
                };
                st.config.config.working_dir = Some(format!("/{}", pattern::clean(&joined)));
            }
            Kind::Stopsignal(s) => {
                st.config.config.stop_signal = Some(self.expand(st, loc, s)?);
            }
            Kind::Maintainer(m) => {
                st.config.author = Some(m.clone());
            }
            Kind::Onbuild(inner) => {
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
                st.config.config.on_build.get_or_insert_with(Vec::new).push(trigger);
            }
            Kind::Healthcheck(h) => {
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
                st.config.config.healthcheck = Some(v);
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

    fn run_step(&mut self, st: &mut State, ins: &Instruction, run: &dockerfile::Run) -> Result<()> {
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

    fn copy_step(&mut self, st: &mut State, ins: &Instruction, c: &Copy, add: bool) -> Result<()> {
        let loc = ins.loc;
        let what = if add { "ADD" } else { "COPY" };
        let dest_raw = self.expand(st, loc, &c.dest)?;
        let workdir = st.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), dest_raw)
        };
        let dest_slash = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let mut attrs = Attrs::default();
        let chown = c
            .chown
            .as_ref()
            .map(|o| self.expand(st, loc, o))
            .transpose()?
            .filter(|s| !s.is_empty());
        if let Some(m) = &c.chmod {
            let m = self.expand(st, loc, m)?;
            attrs.mode = Some(
                u32::from_str_radix(&m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| Error::at(loc, format!("{what} --chmod={m}: expected an octal mode such as 755")))?,
            );
        }
        // Where the sources come from.
        let mut from_mount: Option<Snapshot> = None;
        let mut from_id = None;
        let src_root = match &c.from {
            None => self.context.clone(),
            Some(f) => {
                if add {
                    return Err(Error::at(loc, "ADD does not take --from"));
                }
                let f = self.expand(st, loc, f)?;
                let id = match self.find_stage(&f) {
                    Some(i) => {
                        // Committed once; later references reuse the ID.
                        let mut s = self.stages[i].state.clone();
                        let id = self.commit(&mut s)?;
                        self.stages[i].state = s;
                        id
                    }
                    None => self.base_image(&f)?,
                };
                let snap = Snapshot::read_only(self.backend.images(), &id, &self.work)?;
                let root = snap.root.clone();
                from_mount = Some(snap);
                from_id = Some(id);
                root
            }
        };
        let from_context = c.from.is_none();
        // Resolve the sources.
        let mut sources: Vec<Source> = Vec::new();
        let mut downloads = Cleanup::default();
        let mut wildcard = false;
        for raw in &c.sources {
            if let Some(name) = raw.strip_prefix("<<") {
                let h = c
                    .heredocs
                    .iter()
                    .find(|h| h.name == name.trim_start_matches('-').trim_matches(['"', '\'']))
                    .ok_or_else(|| Error::at(loc, format!("{what}: no here-document named {name}")))?;
                let content = if h.expand {
                    self.expand_heredoc(st, loc, &h.content)?
                } else {
                    h.content.clone()
                };
                sources.push(Source::Inline {
                    name: h.name.clone(),
                    content,
                });
                continue;
            }
            let s = self.expand(st, loc, raw)?;
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                // Fetched on every build (as Docker does); the content is the cache key.
                let dir = tmp_dir(&self.work)?;
                let path = dir.join("download");
                let mut f = fs::File::create(&path).map_err(|e| io_err("create", &path, e))?;
                let name = self
                    .backend
                    .fetch(&s, &mut f)
                    .map_err(|e| Error::at(loc, format!("ADD {s}: {e}")))?;
                drop(f);
                downloads.0.push(dir);
                let digest = file_digest(&path)?;
                if let Some(want) = &c.checksum {
                    let want = self.expand(st, loc, want)?;
                    let got = format!("sha256:{digest}");
                    if got != want {
                        return Err(Error::at(loc, format!("ADD {s}: checksum mismatch: expected {want}, got {got}")));
                    }
                }
                sources.push(Source::Url {
                    url: s.clone(),
                    name,
                    path,
                    digest,
                });
                continue;
            }
            if c.checksum.is_some() {
                return Err(Error::at(loc, "ADD --checksum is only for URL sources"));
            }
            if add && s.starts_with("git@") {
                return Err(Error::at(loc, format!("ADD {s}: git sources are not supported")));
            }
            let clean = pattern::clean(&s);
            if pattern::has_wildcards(&clean) {
                wildcard = true;
                let found = self.glob(&src_root, &clean, from_context);
                if found.is_empty() {
                    return Err(Error::at(
                        loc,
                        format!("{what} failed: no source files were specified (no match for {s:?})"),
                    ));
                }
                sources.extend(found.into_iter().map(|rel| Source::Path { rel }));
            } else {
                if from_context && !clean.is_empty() && self.ignore.excluded(&clean) {
                    return Err(Error::at(
                        loc,
                        format!(
                            "{what} failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"
                        ),
                    ));
                }
                if fsutil::open_file_in(&src_root, &clean).is_none() && !fsutil::is_dir_in(&src_root, &clean) {
                    let place = if from_context {
                        "build context".to_string()
                    } else {
                        format!("stage/image {:?}", c.from.as_deref().unwrap_or(""))
                    };
                    return Err(Error::at(
                        loc,
                        format!("{what} failed: file not found in {place}: stat {s}: file does not exist"),
                    ));
                }
                sources.push(Source::Path { rel: clean });
            }
        }
        let many = sources.len() > 1 || wildcard;
        if many && !dest_slash {
            return Err(Error::at(
                loc,
                format!("When using {what} with more than one source file, the destination must be a directory and end with a /"),
            ));
        }
        // The key: what is copied (by content), where, and how.
        let mut h = Sha256::new();
        for s in &sources {
            match s {
                Source::Inline { name, content } => {
                    h.update(b"inline\0");
                    h.update(name.as_bytes());
                    h.update(b"\0");
                    h.update(content.as_bytes());
                }
                Source::Url { url, name, digest, .. } => {
                    h.update(b"url\0");
                    h.update(url.as_bytes());
                    h.update(b"\0");
                    h.update(name.as_bytes());
                    h.update(b"\0");
                    h.update(digest.as_bytes());
                }
                Source::Path { rel } => {
                    h.update(b"path\0");
                    h.update(rel.as_bytes());
                    h.update(b"\0");
                    if from_context {
                        self.hash_tree(&mut h, &src_root, rel)?;
                    }
                }
            }
        }
        let content = hex::encode(h.finalize());
        let key = self.key(
            st,
            &json!({"copy": what, "content": content, "from": from_id, "dest": dest, "dest_slash": dest_slash,
                    "chown": chown, "chmod": attrs.mode}),
        );
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        // Do it on an overlay of the current layers.
        let snap = Snapshot::writable(self.backend.images(), st, &self.work)?;
        let res = (|| -> Result<()> {
            if let Some(o) = &chown {
                attrs.owner = Some(fsutil::lookup_owner(&snap.root, o).map_err(|e| Error::at(loc, e.to_string()))?);
            }
            let into_dir = dest_slash || many || fsutil::is_dir_in(&snap.root, &dest);
            for s in &sources {
                match s {
                    Source::Inline { name, content } => {
                        let (dir, fname) = if into_dir {
                            (dest.as_str(), name.as_str())
                        } else {
                            split_dest(&dest)
                        };
                        let d = fsutil::mkdir_in(&snap.root, dir, attrs)?;
                        fsutil::write_file(&d, OsStr::new(fname), &mut content.as_bytes(), attrs, 0o644)?;
                    }
                    Source::Url { name, path, url, .. } => {
                        if into_dir && name.is_empty() {
                            return Err(Error::at(
                                loc,
                                format!("ADD {url}: cannot determine a file name from the URL; give the destination as a file path"),
                            ));
                        }
                        // Downloads are never extracted; they get mode 0600 as in Docker.
                        let (dir, fname) = if into_dir {
                            (dest.as_str(), name.as_str())
                        } else {
                            split_dest(&dest)
                        };
                        let d = fsutil::mkdir_in(&snap.root, dir, attrs)?;
                        let mut f = fs::File::open(path).map_err(|e| io_err("open", path, e))?;
                        fsutil::write_file(&d, OsStr::new(fname), &mut f, attrs, 0o600)?;
                    }
                    Source::Path { rel } => {
                        self.copy_one(&src_root, rel, &snap.root, &dest, into_dir, attrs, add, from_context)
                            .map_err(|e| Error::at(loc, format!("{what} failed: {e}")))?;
                    }
                }
            }
            Ok(())
        })();
        let upper = snap.finish();
        drop(from_mount);
        let upper = upper?;
        res?;
        let created_by = format!("{} {}", what, ins.source.split_once(' ').map(|x| x.1).unwrap_or(""));
        let id = self.add_layer(st, &upper.path, created_by, &key, true)?;
        drop(upper);
        self.emit(Progress::Done { id: Some(&id) });
        Ok(())
    }

    /// Expand the variables in a heredoc body; quotes and backslashes stay as written (they are
    /// escaped before the shared word expansion, which would otherwise remove them).
    fn expand_heredoc(&self, st: &State, loc: Loc, content: &str) -> Result<String> {
        let mut literal = String::with_capacity(content.len());
        for c in content.chars() {
            if matches!(c, '\\' | '\'' | '"') {
                literal.push('\\');
            }
            literal.push(c);
        }
        let env = st.config.config.env.clone().unwrap_or_default();
        let lookup = |k: &str| env_get(&env, k).map(str::to_string).or_else(|| st.args.get(k).cloned());
        dockerfile::expand(&literal, '\\', &lookup).map_err(|e| Error::at(loc, e.to_string()))
    }

    /// Context-relative paths matching a wildcard pattern, sorted.
    fn glob(&self, root: &Path, pat: &str, from_context: bool) -> Vec<String> {
        let comps: Vec<&str> = pat.split('/').collect();
        let mut found = vec![String::new()];
        for c in comps {
            let mut next = Vec::new();
            for base in &found {
                if pattern::has_wildcards(c) {
                    let Ok(rd) = fs::read_dir(root.join(base)) else { continue };
                    let mut names: Vec<String> = rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                    names.sort();
                    for n in names {
                        if pattern::matches(c, &n) {
                            next.push(if base.is_empty() { n } else { format!("{base}/{n}") });
                        }
                    }
                } else {
                    let p = if base.is_empty() { c.to_string() } else { format!("{base}/{c}") };
                    if fs::symlink_metadata(root.join(&p)).is_ok() {
                        next.push(p);
                    }
                }
            }
            found = next;
        }
        found.retain(|p| !(from_context && self.ignore.excluded(p)));
        found
    }

    /// Hash a context path's tree: names, kinds, modes, link targets and file contents (not times).
    fn hash_tree(&self, h: &mut Sha256, root: &Path, rel: &str) -> Result<()> {
        let base = resolve_in(root, rel)?;
        let mut stack = vec![(base, rel.to_string())];
        while let Some((p, r)) = stack.pop() {
            let md = fs::symlink_metadata(&p).map_err(|e| Error::Io {
                op: "stat".into(),
                path: PathBuf::from(&r),
                source: e,
            })?;
            h.update(r.as_bytes());
            h.update(format!("\0{:o}\0", md.permissions().mode()).as_bytes());
            if md.is_dir() {
                let mut names: Vec<_> = fs::read_dir(&p)
                    .map_err(|e| Error::Io {
                        op: "read".into(),
                        path: PathBuf::from(&r),
                        source: e,
                    })?
                    .flatten()
                    .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
                    .collect();
                names.sort();
                names.reverse();
                for (n, is_dir) in names {
                    let child = if r.is_empty() {
                        n.to_string_lossy().into_owned()
                    } else {
                        format!("{r}/{}", n.to_string_lossy())
                    };
                    // The cache key covers exactly what a copy takes (the same decision).
                    if self.ignore.visit(&child, is_dir) == pattern::Visit::Skip {
                        continue;
                    }
                    stack.push((p.join(&n), child));
                }
            } else if md.file_type().is_symlink() {
                h.update(fs::read_link(&p).map(|t| fsutil::show(&t)).unwrap_or_default().as_bytes());
            } else if md.is_file() {
                h.update(self.cache.file_digest(&md, || file_digest(&p))?.as_bytes());
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_one(
        &self,
        src_root: &Path,
        rel: &str,
        dst_root: &Path,
        dest: &str,
        into_dir: bool,
        attrs: Attrs,
        add: bool,
        from_context: bool,
    ) -> Result<()> {
        let src = resolve_in(src_root, rel)?;
        let md = fs::metadata(&src).map_err(|e| Error::Io {
            op: "stat".into(),
            path: PathBuf::from(rel),
            source: e,
        })?;
        let ignore = &self.ignore;
        let mut filter = |r: &Path, is_dir: bool| {
            if !from_context {
                return fsutil::Visit::Copy;
            }
            let full = if rel.is_empty() {
                fsutil::show(r)
            } else {
                format!("{rel}/{}", fsutil::show(r))
            };
            ignore.visit(&full, is_dir)
        };
        if md.is_dir() {
            // A directory's contents go into the destination directory.
            let d = fsutil::mkdir_in(dst_root, dest, attrs)?;
            fsutil::copy_tree(&src, &d, OsStr::new(""), attrs, &mut filter)?;
            return Ok(());
        }
        if add {
            if let Some(reader) = archive_reader(&src)? {
                let d = fsutil::mkdir_in(dst_root, dest, attrs)?;
                let host = fsutil::host_path(&d)?;
                if !host.starts_with(dst_root) {
                    return Err(Error::Copy(format!("{dest} resolves outside the image")));
                }
                image::unpack::unpack_layer(reader, &host)?;
                return Ok(());
            }
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let (dir, name) = if into_dir { (dest, base) } else { split_dest(dest) };
        let d = fsutil::mkdir_in(dst_root, dir, attrs)?;
        fsutil::copy_tree(&src, &d, OsStr::new(name), attrs, &mut filter)?;
        Ok(())
    }
}

/// Parent directory and file name of a destination path.
fn split_dest(dest: &str) -> (&str, &str) {
    let t = dest.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
        None => ("/", t),
    }
}

/// A source's host path, resolved inside its root (symlinks cannot leave it).
fn resolve_in(root: &Path, rel: &str) -> Result<PathBuf> {
    if rel.is_empty() {
        return Ok(root.to_path_buf());
    }
    let f = fsutil::open_file_in(root, rel)
        .map(|f| fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f))))
        .or_else(|| {
            let d = fs::File::open(root).ok()?;
            let comps: Vec<&OsStr> = rel.split('/').filter(|c| !c.is_empty()).map(OsStr::new).collect();
            let fd = image::unpack::open_in_root(std::os::fd::AsRawFd::as_raw_fd(&d), &comps).ok()?;
            Some(fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))))
        });
    match f {
        Some(Ok(p)) if p.starts_with(root) => Ok(p),
        Some(Ok(_)) => Err(Error::Copy(format!("{rel}: resolves outside its root"))),
        _ => Err(Error::Copy(format!("{rel}: no such file or directory"))),
    }
}

/// sha256 of a file's content.
fn file_digest(p: &Path) -> Result<String> {
    let mut f = fs::File::open(p).map_err(|e| Error::Io {
        op: "open".into(),
        path: p.to_path_buf(),
        source: e,
    })?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::Io {
        op: "read".into(),
        path: p.to_path_buf(),
        source: e,
    })?;
    Ok(hex::encode(h.finalize()))
}

/// If `p` is a tar archive (plain, gzip, bzip2 or xz), a reader of the plain tar.
fn archive_reader(p: &Path) -> Result<Option<Box<dyn Read>>> {
    let open = || {
        fs::File::open(p).map_err(|e| Error::Io {
            op: "open".into(),
            path: p.to_path_buf(),
            source: e,
        })
    };
    let mut head = [0u8; 512];
    let mut f = open()?;
    let n = read_full(&mut f, &mut head);
    if n == 512 && is_tar_header(&head) {
        return Ok(Some(Box::new(open()?)));
    }
    // The compressions the Dockerfile reference names: gzip, bzip2 and xz, told by their magic.
    type Decoder = fn(fs::File) -> Box<dyn Read>;
    let decoder: Decoder = if head[..n].starts_with(&[0x1f, 0x8b]) {
        |f| Box::new(flate2::read::GzDecoder::new(f))
    } else if head[..n].starts_with(b"BZh") {
        |f| Box::new(bzip2::read::BzDecoder::new(f))
    } else if head[..n].starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        |f| Box::new(lzma_rust2::XzReader::new(f, true))
    } else {
        return Ok(None);
    };
    // Compressed, but a tar only if what it holds starts with a tar header.
    let mut inner = [0u8; 512];
    let k = read_full(&mut decoder(open()?), &mut inner);
    if k == 512 && is_tar_header(&inner) {
        return Ok(Some(decoder(open()?)));
    }
    Ok(None)
}

/// The plain stream of `r`, told by its first bytes: gzip, bzip2 and xz (the compressions the
/// Engine API takes for a build context) are decompressed, anything else is read as it is. `None`
/// for zstd, which is not taken.
pub fn decompressed<'a, R: std::io::BufRead + 'a>(mut r: R) -> std::io::Result<Option<Box<dyn Read + 'a>>> {
    let head = r.fill_buf()?;
    Ok(Some(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(r))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::BzDecoder::new(r))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(lzma_rust2::XzReader::new(r, true))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(None);
    } else {
        Box::new(r)
    }))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// A ustar/gnu header with a valid checksum.
fn is_tar_header(h: &[u8; 512]) -> bool {
    let magic = &h[257..263];
    if magic != b"ustar\0" && magic != b"ustar " {
        return false;
    }
    let field = String::from_utf8_lossy(&h[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8) else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as u32 })
        .sum();
    sum == want
}

/// Directories removed when dropped.
#[derive(Default)]
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// A COPY source.
enum Source {
    Path {
        rel: String,
    },
    Inline {
        name: String,
        content: String,
    },
    /// A downloaded URL: the file name it gives, where it was saved, and its content digest.
    Url {
        url: String,
        name: String,
        path: PathBuf,
        digest: String,
    },
}

/// A temporary overlay mount of an image (read-only, for `COPY --from`) or of a state with a fresh
/// upper directory (for COPY/ADD). Unmounted and removed on drop.
struct Snapshot {
    dir: PathBuf,
    root: PathBuf,
    mounted: bool,
}

/// The upper directory of a finished snapshot; removed on drop unless it was adopted as a layer.
struct Upper {
    dir: PathBuf,
    path: PathBuf,
}

impl Drop for Upper {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn tmp_dir(work: &Path) -> Result<PathBuf> {
    let n: u64 = rand_u64();
    let d = work.join(format!("tmp-build-{n:016x}"));
    fs::create_dir_all(&d).map_err(|e| Error::Io {
        op: "create".into(),
        path: d.clone(),
        source: e,
    })?;
    Ok(d)
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    oci::random::fill(&mut b).expect("getrandom");
    u64::from_le_bytes(b)
}

impl Snapshot {
    fn read_only(images: &image::ImageStore, id: &Digest, work: &Path) -> Result<Snapshot> {
        let lowers = images.lower_dirs(id)?;
        let dir = tmp_dir(work)?;
        let mut s = Snapshot {
            root: dir.join("merged"),
            dir,
            mounted: false,
        };
        match lowers.len() {
            0 => {
                fs::create_dir_all(&s.root).map_err(|e| io_err("create", &s.root, e))?;
            }
            1 => s.root = lowers[0].clone(),
            _ => {
                fs::create_dir_all(&s.root).map_err(|e| io_err("create", &s.root, e))?;
                image::snapshot::mount_overlay_ro(&lowers, &s.root)?;
                s.mounted = true;
            }
        }
        Ok(s)
    }

    fn writable(images: &image::ImageStore, st: &State, work: &Path) -> Result<Snapshot> {
        let dir = tmp_dir(work)?;
        let mut lowers = image_lowers(images, st)?;
        if lowers.is_empty() {
            let empty = dir.join("empty");
            fs::create_dir_all(&empty).map_err(|e| io_err("create", &empty, e))?;
            lowers.push(empty);
        }
        let root = dir.join("merged");
        for d in [dir.join("upper"), dir.join("work"), root.clone()] {
            fs::create_dir_all(&d).map_err(|e| io_err("create", &d, e))?;
        }
        image::snapshot::mount_overlay(&lowers, &dir.join("upper"), &dir.join("work"), &root)?;
        Ok(Snapshot { dir, root, mounted: true })
    }

    /// Unmount and hand over the upper directory.
    fn finish(mut self) -> Result<Upper> {
        if self.mounted {
            nix::mount::umount2(&self.root, nix::mount::MntFlags::empty())
                .map_err(|e| Error::Backend(format!("unmounting the step's snapshot: {e}")))?;
            self.mounted = false;
        }
        let dir = std::mem::take(&mut self.dir);
        Ok(Upper {
            path: dir.join("upper"),
            dir,
        })
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.root, nix::mount::MntFlags::MNT_DETACH);
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
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

/// Lower dirs (topmost first) of a state's layers, unpacking any that are not yet.
fn image_lowers(images: &image::ImageStore, st: &State) -> Result<Vec<PathBuf>> {
    if st.layers.is_empty() {
        return Ok(vec![]);
    }
    Ok(images.lower_dirs_of(
        &st.config.rootfs.diff_ids,
        &st.layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_split() {
        assert_eq!(split_dest("/a/b"), ("/a", "b"));
        assert_eq!(split_dest("/b"), ("/", "b"));
    }

    #[test]
    fn epoch_format() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1700000000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn env_updates() {
        let mut e = vec!["A=1".to_string(), "B=2".to_string()];
        env_set(&mut e, "A", "3");
        env_set(&mut e, "C", "4");
        assert_eq!(e, ["A=3", "B=2", "C=4"]);
        assert_eq!(env_get(&e, "B"), Some("2"));
    }
}
