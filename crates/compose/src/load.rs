//! From files on disk to a [`Project`]: find the files, read `.env`, parse, interpolate, merge in
//! order, type, resolve paths and environment, check references, apply profiles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::interpolate::{interpolate_node, Lookup};
use crate::model::Project;
use crate::node::{Key, Kind, Node};

/// The file names compose looks for, in order.
pub const DEFAULT_FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"];
/// Override files read after the default file when no `-f` is given.
pub const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-f` files (empty: look for the default ones from `cwd` up).
    pub files: Vec<PathBuf>,
    /// `-p` or `COMPOSE_PROJECT_NAME`.
    pub project_name: Option<String>,
    /// `--project-directory` (default: the first file's directory).
    pub project_dir: Option<PathBuf>,
    /// `--env-file` (default: `<project dir>/.env`, if it exists).
    pub env_file: Option<PathBuf>,
    /// `--profile` and `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// Services named on the command line: enabled with their dependencies, whatever their
    /// profiles.
    pub targets: Vec<String>,
    /// The directory to search from.
    pub cwd: PathBuf,
    /// The process environment.
    pub environ: BTreeMap<String, String>,
}

/// A loaded project and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The typed project.
    pub project: Project,
    /// The project directory (relative paths were resolved against it).
    pub dir: PathBuf,
    /// The files, in merge order.
    pub files: Vec<PathBuf>,
    /// Every service of the files, also those of disabled profiles.
    pub all_services: BTreeSet<String>,
    /// The variables interpolation used (the process environment over `.env`).
    pub environment: BTreeMap<String, String>,
}

/// Find the files to use.
pub fn find_files(o: &Options) -> Result<Vec<PathBuf>> {
    if !o.files.is_empty() {
        return Ok(o
            .files
            .iter()
            .map(|f| if f.is_absolute() { f.clone() } else { o.cwd.join(f) })
            .collect());
    }
    let mut dir = Some(o.cwd.as_path());
    while let Some(d) = dir {
        if let Some(f) = DEFAULT_FILES.iter().map(|n| d.join(n)).find(|p| p.is_file()) {
            let mut files = vec![f];
            if let Some(o) = OVERRIDE_FILES.iter().map(|n| d.join(n)).find(|p| p.is_file()) {
                files.push(o);
            }
            return Ok(files);
        }
        dir = d.parent();
    }
    Err(Error::NotFound(DEFAULT_FILES.join(", "), o.cwd.display().to_string()))
}

/// Load a project.
pub fn load(o: &Options) -> Result<Loaded> {
    let files = find_files(o)?;
    let dir = match &o.project_dir {
        Some(d) if d.is_absolute() => d.clone(),
        Some(d) => o.cwd.join(d),
        None => files[0].parent().map(Path::to_path_buf).unwrap_or_else(|| o.cwd.clone()),
    };
    // The environment for interpolation: the process's, over the .env file's.
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let env_file = o.env_file.clone().or_else(|| Some(dir.join(".env")).filter(|p| p.is_file()));
    if let Some(f) = env_file {
        let f = if f.is_absolute() { f } else { o.cwd.join(f) };
        let outer = |n: &str| o.environ.get(n).cloned();
        vars.extend(crate::env::read_file(&f, &outer)?);
    }
    vars.extend(o.environ.clone());
    let lookup = |n: &str| vars.get(n).cloned();
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();

    let mut merged: Option<Node> = None;
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).map_err(|source| Error::Io { path: f.clone(), source })?;
        let mut node = Node::parse(&text, i, &names[i])?;
        if node.as_map().is_none() {
            return Err(Error::Invalid {
                file: names[i].clone(),
                line: node.pos.line,
                path: "(top level)".into(),
                message: "a compose file must be a mapping".into(),
            });
        }
        strip_extensions(&mut node);
        interpolate_node(&mut node, &lookup, &mut Vec::new()).map_err(|(path, line, message)| Error::Interpolation {
            file: names[i].clone(),
            line,
            path,
            message,
        })?;
        normalize(&mut node);
        match &mut merged {
            None => merged = Some(node),
            Some(base) => merge(base, node, &mut Vec::new()),
        }
    }
    let merged = merged.expect("at least one file");
    let mut project: Project = serde_path_to_error::deserialize(merged.to_json()).map_err(|e| typing_error(&e, &merged, &names))?;

    project.name = project_name(o, &project, &dir, &vars)?;
    let all_services = project.services.keys().cloned().collect();
    resolve(&mut project, &dir, &lookup)?;
    check(&project)?;
    let mut profiles = o.profiles.clone();
    if let Some(p) = vars.get("COMPOSE_PROFILES") {
        profiles.extend(p.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from));
    }
    apply_profiles(&mut project, &profiles, &o.targets)?;
    Ok(Loaded {
        project,
        dir,
        files,
        all_services,
        environment: vars,
    })
}

fn typing_error(e: &serde_path_to_error::Error<serde_json::Error>, merged: &Node, names: &[String]) -> Error {
    let mut path = e.path().to_string();
    let mut message = e.inner().to_string();
    // `[i]: ...` from a list's own parser: the entry at fault.
    if let Some((idx, rest)) = message.strip_prefix('[').and_then(|m| m.split_once("]: ")) {
        if idx.parse::<usize>().is_ok() {
            path = format!("{path}[{idx}]");
            message = rest.to_string();
        }
    }
    let pos = merged.locate(&path);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        message = format!("unknown key {key:?} (not a Compose Specification key, or one Berth does not support)");
    }
    Error::Invalid {
        file: names.get(pos.file).cloned().unwrap_or_default(),
        line: pos.line,
        path,
        message,
    }
}

/// Drop `x-*` keys at the top level and in each service, network, volume, config and secret.
fn strip_extensions(root: &mut Node) {
    let strip = |n: &mut Node| {
        if let Some(m) = n.as_map_mut() {
            m.retain(|(k, _)| !k.name.starts_with("x-"));
        }
    };
    strip(root);
    for section in ["services", "networks", "volumes", "configs", "secrets"] {
        if let Some(m) = root.get_mut(section).and_then(Node::as_map_mut) {
            for (_, v) in m.iter_mut() {
                strip(v);
            }
        }
    }
}

/// Turn the list forms that merge as mappings (environment, labels, networks, depends_on, ...)
/// into mappings, so a later file's entry replaces an earlier one's by key.
fn normalize(root: &mut Node) {
    let Some(services) = root.get_mut("services").and_then(Node::as_map_mut) else {
        return;
    };
    for (_, svc) in services.iter_mut() {
        for key in ["environment", "labels", "sysctls"] {
            if let Some(n) = svc.get_mut(key) {
                list_to_map(n, true);
            }
        }
        for key in ["networks", "depends_on"] {
            if let Some(n) = svc.get_mut(key) {
                list_to_map(n, false);
                if key == "depends_on" {
                    if let Some(m) = n.as_map_mut() {
                        for (_, v) in m.iter_mut() {
                            if matches!(v.kind, Kind::Null) {
                                v.kind = Kind::Map(Vec::new());
                            }
                        }
                    }
                }
            }
        }
        if let Some(args) = svc.get_mut("build").and_then(|b| b.get_mut("args")) {
            list_to_map(args, true);
        }
    }
}

/// `[A=1, B]` → `{A: "1", B: null}` (`split`), or `[a, b]` → `{a: null, b: null}`.
fn list_to_map(n: &mut Node, split: bool) {
    let Kind::Seq(items) = &n.kind else { return };
    let mut m: Vec<(Key, Node)> = Vec::new();
    for item in items {
        let Some(s) = item.scalar_text() else { return };
        let (k, v) = match s.split_once('=').filter(|_| split) {
            Some((k, v)) => (
                k.to_string(),
                Node {
                    kind: Kind::Str(v.into()),
                    pos: item.pos,
                },
            ),
            None => (
                s,
                Node {
                    kind: Kind::Null,
                    pos: item.pos,
                },
            ),
        };
        m.retain(|(old, _)| old.name != k);
        m.push((Key { name: k, pos: item.pos }, v));
    }
    n.kind = Kind::Map(m);
}

/// Merge `over` into `base` by the Compose Specification's rules: mappings merge by key, most
/// lists append (without duplicates), `command`/`entrypoint`/`healthcheck.test` are replaced, a
/// service's `volumes` merge by target, scalars are replaced.
pub fn merge(base: &mut Node, over: Node, path: &mut Vec<String>) {
    match (&mut base.kind, over.kind) {
        (Kind::Map(b), Kind::Map(o)) => {
            for (k, v) in o {
                match b.iter_mut().find(|(bk, _)| bk.name == k.name) {
                    Some((_, bv)) => {
                        path.push(k.name.clone());
                        merge(bv, v, path);
                        path.pop();
                    }
                    None => b.push((k, v)),
                }
            }
        }
        (Kind::Seq(b), Kind::Seq(o)) => {
            let last = path.last().map(String::as_str);
            let in_service = path.len() == 3 && path[0] == "services";
            match last {
                Some("command" | "entrypoint" | "test") => *b = o,
                Some("volumes") if in_service => {
                    for v in o {
                        let t = mount_target(&v);
                        match b.iter_mut().find(|x| t.is_some() && mount_target(x) == t) {
                            Some(x) => *x = v,
                            None => b.push(v),
                        }
                    }
                }
                _ => {
                    for v in o {
                        if !b.iter().any(|x| x.to_json() == v.to_json()) {
                            b.push(v);
                        }
                    }
                }
            }
        }
        (_, kind) => {
            base.kind = kind;
            base.pos = over.pos;
        }
    }
}

fn mount_target(n: &Node) -> Option<String> {
    match &n.kind {
        Kind::Str(s) => crate::model::parse_volume(s).ok().map(|m| m.target),
        Kind::Map(_) => n.get("target").and_then(Node::scalar_text),
        _ => None,
    }
}

fn project_name(o: &Options, p: &Project, dir: &Path, vars: &BTreeMap<String, String>) -> Result<String> {
    let explicit = o
        .project_name
        .clone()
        .or_else(|| vars.get("COMPOSE_PROJECT_NAME").cloned())
        .or_else(|| Some(p.name.clone()).filter(|n| !n.is_empty()));
    match explicit {
        Some(n) => {
            let ok = !n.is_empty()
                && n.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !ok {
                return Err(Error::Reference(format!(
                    "invalid project name {n:?}: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or a digit"
                )));
            }
            Ok(n)
        }
        None => {
            // The directory's name, made valid as Docker Compose makes it.
            let base = dir.file_name().map(|s| s.to_string_lossy().to_lowercase()).unwrap_or_default();
            let n: String = base
                .chars()
                .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
                .collect();
            let n = n.trim_start_matches(['-', '_']).to_string();
            if n.is_empty() {
                return Err(Error::Reference(format!(
                    "cannot make a project name from the directory {}: give one with -p",
                    dir.display()
                )));
            }
            Ok(n)
        }
    }
}

fn abs(dir: &Path, p: &str, home: Option<&str>) -> String {
    if let (Some(rest), Some(h)) = (p.strip_prefix('~'), home) {
        return format!("{h}{rest}");
    }
    let path = Path::new(p);
    if path.is_absolute() {
        return p.to_string();
    }
    let joined = dir.join(path);
    // Lexically drop `.` and resolve `..` so labels and errors show a clean path.
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.display().to_string()
}

/// Resolve relative paths, env files and `KEY`-only variables.
fn resolve(p: &mut Project, dir: &Path, env: &dyn Lookup) -> Result<()> {
    let home = env.get("HOME");
    for svc in p.services.values_mut() {
        if let Some(b) = &mut svc.build {
            b.context = abs(dir, &b.context, home.as_deref());
            // KEY alone: from the environment; unset stays unset (the Dockerfile's default).
            let keys: Vec<String> = b.args.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.clone()).collect();
            for k in keys {
                match env.get(&k) {
                    Some(v) => {
                        b.args.insert(k, Some(v));
                    }
                    None => {
                        b.args.remove(&k);
                    }
                }
            }
        }
        for m in &mut svc.volumes {
            if m.kind == "bind" {
                if let Some(s) = &m.source {
                    m.source = Some(abs(dir, s, home.as_deref()));
                }
            }
        }
        // env_file values first, then `environment` over them.
        let mut env_vals: BTreeMap<String, Option<String>> = BTreeMap::new();
        for f in &mut svc.env_file {
            f.path = abs(dir, &f.path, home.as_deref());
            let path = PathBuf::from(&f.path);
            if !path.exists() && !f.required {
                continue;
            }
            for (k, v) in crate::env::read_file(&path, env)? {
                env_vals.insert(k, Some(v));
            }
        }
        for (k, v) in std::mem::take(&mut svc.environment) {
            env_vals.insert(k, v);
        }
        for (k, v) in env_vals {
            if let Some(v) = v.or_else(|| env.get(&k)) {
                svc.environment.insert(k, Some(v));
            }
        }
    }
    for obj in p.configs.values_mut().chain(p.secrets.values_mut()) {
        if let Some(f) = &obj.file {
            obj.file = Some(abs(dir, f, home.as_deref()));
        }
    }
    Ok(())
}

/// References between parts of the project, and what this engine cannot do.
fn check(p: &Project) -> Result<()> {
    let bad = |m: String| Err(Error::Reference(m));
    for (name, svc) in &p.services {
        if svc.image.is_none() && svc.build.is_none() {
            return bad(format!("service {name:?} has neither an image nor a build context specified"));
        }
        if svc.container_name.is_some() && svc.replicas() > 1 {
            return bad(format!(
                "service {name:?}: container_name is set, so it cannot be scaled to {} containers",
                svc.replicas()
            ));
        }
        for (dep, d) in &svc.depends_on {
            if d.required && !p.services.contains_key(dep) {
                return bad(format!("service {name:?} depends on undefined service {dep:?}"));
            }
        }
        if let Some(mode) = &svc.network_mode {
            if let Some(s) = mode.strip_prefix("service:") {
                if !p.services.contains_key(s) {
                    return bad(format!("service {name:?}: network_mode refers to undefined service {s:?}"));
                }
            } else if !(matches!(mode.as_str(), "host" | "none" | "bridge") || mode.starts_with("container:")) {
                return bad(format!(
                    "service {name:?}: unsupported network_mode {mode:?} (use host, none, bridge, container:<name> or service:<name>)"
                ));
            }
            if svc.networks.is_some() {
                return bad(format!("service {name:?} declares networks and network_mode; use one of them"));
            }
        }
        for n in svc.networks.iter().flat_map(|m| m.keys()) {
            if n != "default" && !p.networks.contains_key(n) {
                return bad(format!("service {name:?} refers to undefined network {n:?}"));
            }
        }
        for m in &svc.volumes {
            if m.kind == "volume" {
                if let Some(s) = &m.source {
                    if !p.volumes.contains_key(s) {
                        return bad(format!(
                            "service {name:?} refers to undefined volume {s:?} (declare it under the top-level volumes)"
                        ));
                    }
                }
            }
        }
        for (kind, refs, defs) in [("secret", &svc.secrets, &p.secrets), ("config", &svc.configs, &p.configs)] {
            for r in refs {
                if !defs.contains_key(&r.source) {
                    return bad(format!("service {name:?} refers to undefined {kind} {:?}", r.source));
                }
            }
        }
        if let Some(r) = svc.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
            if let Some(c) = &r.condition {
                if !matches!(c.as_str(), "none" | "on-failure" | "any") {
                    return bad(format!(
                        "service {name:?}: invalid deploy.restart_policy.condition {c:?} (none, on-failure, any)"
                    ));
                }
            }
        }
    }
    for (k, n) in &p.networks {
        if let Some(d) = n.driver.as_deref().filter(|d| *d != "bridge") {
            return bad(format!("network {k:?}: driver {d:?} is not supported (only bridge)"));
        }
        if n.enable_ipv6 {
            return bad(format!("network {k:?}: enable_ipv6 is not supported (Berth's networks are IPv4)"));
        }
        if let Some(d) = n.ipam.as_ref().and_then(|i| i.driver.as_deref()).filter(|d| *d != "default") {
            return bad(format!("network {k:?}: IPAM driver {d:?} is not supported (only default)"));
        }
    }
    for (k, v) in &p.volumes {
        if let Some(d) = v.driver.as_deref().filter(|d| *d != "local") {
            return bad(format!("volume {k:?}: driver {d:?} is not supported (only local)"));
        }
    }
    for (kind, defs) in [("secret", &p.secrets), ("config", &p.configs)] {
        for (k, d) in defs {
            if d.external {
                return bad(format!(
                    "{kind} {k:?}: external {kind}s are swarm objects, not supported on one engine"
                ));
            }
            let sources = [d.file.is_some(), d.environment.is_some(), d.content.is_some()];
            if sources.iter().filter(|s| **s).count() != 1 {
                return bad(format!("{kind} {k:?}: give exactly one of file, environment or content"));
            }
            if kind == "secret" && d.content.is_some() {
                return bad(format!("secret {k:?}: content is for configs; use file or environment"));
            }
        }
    }
    crate::plan::order(p, &p.services.keys().cloned().collect::<Vec<_>>()).map(|_| ())
}

/// Keep the services of the enabled profiles (services without profiles are always enabled),
/// plus `targets` (named on the command line) and what they depend on.
pub fn apply_profiles(p: &mut Project, profiles: &[String], targets: &[String]) -> Result<()> {
    let all = profiles.iter().any(|x| x == "*");
    let enabled = |name: &str, svc: &crate::model::Service| {
        svc.profiles.is_empty() || all || svc.profiles.iter().any(|x| profiles.contains(x)) || targets.iter().any(|t| t == name)
    };
    let mut keep: BTreeSet<String> = p.services.iter().filter(|(n, s)| enabled(n, s)).map(|(n, _)| n.clone()).collect();
    // Targets pull in their dependencies, whatever their profiles.
    let mut todo: Vec<String> = targets.to_vec();
    while let Some(t) = todo.pop() {
        let Some(svc) = p.services.get(&t) else {
            return Err(Error::Reference(format!("no such service: {t}")));
        };
        for d in svc.dependencies() {
            if p.services.contains_key(&d) && keep.insert(d.clone()) {
                todo.push(d);
            }
        }
        keep.insert(t);
    }
    for (name, svc) in &p.services {
        if !keep.contains(name) {
            continue;
        }
        for (d, dep) in &svc.depends_on {
            if dep.required && !keep.contains(d) {
                return Err(Error::Reference(format!(
                    "service {name:?} depends on {d:?}, which is in a profile that is not enabled"
                )));
            }
        }
    }
    p.services.retain(|n, _| keep.contains(n));
    Ok(())
}
