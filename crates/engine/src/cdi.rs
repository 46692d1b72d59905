//! The Container Device Interface (CDI), as Podman and containerd implement it: vendors describe
//! devices in spec files (JSON or YAML in `/etc/cdi` and `/var/run/cdi`, the later directory
//! winning), each device a set of container edits — device nodes, environment, mounts, hooks,
//! extra groups — applied to the runtime spec of a container that names the device
//! `vendor.com/class=name`. Docker's `--gpus` is served by the [`GPU_KIND`] devices; the node
//! agent offers every kind as an extended resource. `HostConfig.Devices` (`--device PATH`)
//! becomes device nodes the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use runtime::spec::{DeviceNode, Hook, MountSpec, RunSpec, HOOK_PHASES};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// The kind Docker's `--gpus` and `nvidia.com/gpu` resource requests take their devices from.
pub const GPU_KIND: &str = "nvidia.com/gpu";

/// The spec directories when none are configured, lowest priority first.
pub const DEFAULT_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// The capabilities of Docker's GPU device driver that Berth serves through CDI.
const GPU_CAPS: &[&str] = &["gpu"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecFile {
    cdi_version: String,
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    devices: Vec<DeviceDef>,
    #[serde(default)]
    container_edits: Edits,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeviceDef {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    container_edits: Edits,
}

/// The edits a spec or one of its devices makes to a container.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Edits {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub device_nodes: Vec<NodeDef>,
    #[serde(default)]
    pub mounts: Vec<MountDef>,
    #[serde(default)]
    pub hooks: Vec<HookDef>,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    /// Refused when present: Berth does not manage Intel RDT.
    #[serde(default)]
    intel_rdt: Option<Value>,
    /// Refused when present: Berth does not move host network devices into containers.
    #[serde(default)]
    net_devices: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeDef {
    pub path: String,
    #[serde(default)]
    pub host_path: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub major: Option<i64>,
    #[serde(default)]
    pub minor: Option<i64>,
    #[serde(default)]
    pub file_mode: Option<u32>,
    #[serde(default)]
    pub permissions: Option<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountDef {
    pub host_path: String,
    pub container_path: String,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HookDef {
    pub hook_name: String,
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub timeout: Option<i64>,
}

impl Edits {
    fn append(&mut self, other: &Edits) {
        self.env.extend(other.env.iter().cloned());
        self.device_nodes.extend(other.device_nodes.iter().cloned());
        self.mounts.extend(other.mounts.iter().cloned());
        self.hooks.extend(other.hooks.iter().cloned());
        self.additional_gids.extend(other.additional_gids.iter().copied());
    }

    /// What is wrong with these edits, if anything.
    fn check(&self) -> std::result::Result<(), String> {
        if self.intel_rdt.is_some() {
            return Err("intelRdt edits are not supported by Berth".into());
        }
        if self.net_devices.is_some() {
            return Err("netDevices edits are not supported by Berth".into());
        }
        for e in &self.env {
            if !e.contains('=') || e.starts_with('=') {
                return Err(format!("env {e:?} is not NAME=VALUE"));
            }
        }
        for n in &self.device_nodes {
            if !n.path.starts_with('/') {
                return Err(format!("device node path {:?} is not absolute", n.path));
            }
            if let Some(h) = n.host_path.as_ref().filter(|h| !h.starts_with('/')) {
                return Err(format!("device node hostPath {h:?} is not absolute"));
            }
            if let Some(k) = n.kind.as_deref().filter(|k| !matches!(*k, "c" | "b" | "u" | "p")) {
                return Err(format!("device node {}: invalid type {k:?} (c, b, u or p)", n.path));
            }
            if let Some(p) = n
                .permissions
                .as_deref()
                .filter(|p| p.is_empty() || !p.chars().all(|c| "rwm".contains(c)))
            {
                return Err(format!("device node {}: invalid permissions {p:?} (some of r, w, m)", n.path));
            }
        }
        for m in &self.mounts {
            if !m.container_path.starts_with('/') {
                return Err(format!("mount containerPath {:?} is not absolute", m.container_path));
            }
            if m.host_path.is_empty() {
                return Err(format!("mount {} has no hostPath", m.container_path));
            }
        }
        for h in &self.hooks {
            if !HOOK_PHASES.contains(&h.hook_name.as_str()) {
                return Err(format!(
                    "hook {:?}: unknown hookName {:?} (one of {})",
                    h.path,
                    h.hook_name,
                    HOOK_PHASES.join(", ")
                ));
            }
            if !h.path.starts_with('/') {
                return Err(format!("hook path {:?} is not absolute", h.path));
            }
            if h.timeout.is_some_and(|t| t <= 0) {
                return Err(format!("hook {:?}: timeout must be greater than zero", h.path));
            }
        }
        Ok(())
    }
}

/// One loaded spec file.
#[derive(Debug)]
struct Spec {
    file: PathBuf,
    kind: String,
    edits: Edits,
    devices: BTreeMap<String, Edits>,
}

/// The devices of every readable spec file, and what was wrong with the others.
#[derive(Debug, Default)]
pub struct Catalog {
    specs: Vec<Spec>,
    /// `kind=name` → the index of the spec that defines it.
    devices: BTreeMap<String, usize>,
    /// `FILE: problem`, for files that were skipped and devices that conflict.
    pub errors: Vec<String>,
}

/// Whether `s` starts and ends with a letter or digit.
fn alnum_edges(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Whether `kind` is `vendor/class` as CDI spells it: a DNS-like vendor, a class of letters,
/// digits, `-`, `_` and `.`, starting and ending alphanumeric.
pub fn valid_kind(kind: &str) -> bool {
    let Some((vendor, class)) = kind.split_once('/') else {
        return false;
    };
    alnum_edges(vendor)
        && vendor.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && alnum_edges(class)
        && class.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Whether `name` is a valid device name: letters, digits, `-`, `_`, `.` and `:`, starting and
/// ending alphanumeric.
pub fn valid_device_name(name: &str) -> bool {
    alnum_edges(name) && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// Whether `s` is a qualified device name `vendor.com/class=name` (Docker's CLI sends those given
/// to `--device` as a CDI device request).
pub fn is_qualified_name(s: &str) -> bool {
    s.split_once('=').is_some_and(|(k, n)| valid_kind(k) && valid_device_name(n))
}

fn parse_spec(file: &Path) -> std::result::Result<Spec, String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let raw: SpecFile = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())?
    };
    let version_ok = {
        let parts: Vec<&str> = raw.cdi_version.split('.').collect();
        parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    if !version_ok {
        return Err(format!("cdiVersion {:?} is not a version (such as 0.6.0)", raw.cdi_version));
    }
    if !valid_kind(&raw.kind) {
        return Err(format!("kind {:?} is not vendor.com/class", raw.kind));
    }
    if raw.devices.is_empty() {
        return Err("the spec defines no devices".into());
    }
    raw.container_edits.check()?;
    let mut devices = BTreeMap::new();
    for d in raw.devices {
        if !valid_device_name(&d.name) {
            return Err(format!("device name {:?} is invalid (letters, digits, -, _, . and :)", d.name));
        }
        d.container_edits.check().map_err(|e| format!("device {:?}: {e}", d.name))?;
        if devices.insert(d.name.clone(), d.container_edits).is_some() {
            return Err(format!("device {:?} is defined twice", d.name));
        }
    }
    Ok(Spec {
        file: file.to_path_buf(),
        kind: raw.kind,
        edits: raw.container_edits,
        devices,
    })
}

impl Catalog {
    /// Read the spec files (`*.json`, `*.yaml`, `*.yml`) of `dirs`, lowest priority first: a device
    /// a later directory defines replaces the earlier one; two files of one directory defining
    /// the same device make it unusable (a conflict, reported in [`Catalog::errors`]).
    pub fn load(dirs: &[PathBuf]) -> Catalog {
        let mut cat = Catalog::default();
        for dir in dirs {
            let Ok(rd) = std::fs::read_dir(dir) else { continue };
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json" || e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            let mut this_dir: BTreeMap<String, usize> = BTreeMap::new();
            let mut conflicts: BTreeSet<String> = BTreeSet::new();
            for f in files {
                let spec = match parse_spec(&f) {
                    Ok(s) => s,
                    Err(e) => {
                        cat.errors.push(format!("{}: {e}", f.display()));
                        continue;
                    }
                };
                let idx = cat.specs.len();
                for name in spec.devices.keys() {
                    let q = format!("{}={name}", spec.kind);
                    if let Some(other) = this_dir.insert(q.clone(), idx) {
                        cat.errors.push(format!(
                            "{}: device {q} conflicts with {}",
                            f.display(),
                            cat.specs[other].file.display()
                        ));
                        conflicts.insert(q);
                    }
                }
                cat.specs.push(spec);
            }
            for (q, idx) in this_dir {
                if conflicts.contains(&q) {
                    cat.devices.remove(&q);
                } else {
                    cat.devices.insert(q, idx);
                }
            }
        }
        cat
    }

    /// The device names of each kind, in order (the `all` a vendor may define left out: it is not
    /// a device to count).
    pub fn kinds(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for q in self.devices.keys() {
            let (kind, name) = q.split_once('=').expect("qualified");
            if name != "all" {
                out.entry(kind.to_string()).or_default().push(name.to_string());
            }
        }
        for names in out.values_mut() {
            // Numeric names in numeric order (0, 1, …, 10).
            names.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => a.cmp(b),
            });
        }
        out
    }

    fn unresolvable(&self, names: &[&str]) -> Error {
        let mut msg = format!("CDI device injection failed: unresolvable CDI devices {}", names.join(", "));
        if !self.errors.is_empty() {
            msg.push_str(&format!(" (spec errors: {})", self.errors.join("; ")));
        }
        Error::BadRequest(msg)
    }

    /// That every named device (`vendor.com/class=name`) is defined.
    fn ensure_known(&self, names: &[String]) -> Result<()> {
        let missing: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !self.devices.contains_key(*n))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(self.unresolvable(&missing))
        }
    }

    /// The edits of the named devices (`vendor.com/class=name`), each spec's own edits once.
    pub fn edits(&self, names: &[String]) -> Result<Edits> {
        self.ensure_known(names)?;
        let mut out = Edits::default();
        let mut specs_done = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for q in names {
            if !seen.insert(q) {
                continue;
            }
            let idx = self.devices[q];
            let spec = &self.specs[idx];
            if specs_done.insert(idx) {
                out.append(&spec.edits);
            }
            let (_, name) = q.split_once('=').expect("qualified");
            out.append(&spec.devices[name]);
        }
        Ok(out)
    }

    /// The devices Docker's GPU request asks for (`--gpus all|N|device=ID,…`): all of the
    /// [`GPU_KIND`] devices (its `all` device when the vendor defines one), the first `count`, or
    /// those named.
    fn gpu_devices(&self, count: i64, ids: &[String]) -> Result<Vec<String>> {
        let gpu = |name: &str| format!("{GPU_KIND}={name}");
        let have = self.kinds().remove(GPU_KIND).unwrap_or_default();
        let no_driver = || Error::BadRequest("could not select device driver \"\" with capabilities: [[gpu]]".into());
        if have.is_empty() {
            return Err(no_driver());
        }
        if !ids.is_empty() {
            if count != 0 {
                return Err(Error::BadRequest("cannot set both Count and DeviceIDs on device request".into()));
            }
            let names: Vec<String> = ids.iter().map(|i| gpu(i)).collect();
            self.ensure_known(&names)?;
            return Ok(names);
        }
        match count {
            -1 if self.devices.contains_key(&gpu("all")) => Ok(vec![gpu("all")]),
            -1 => Ok(have.iter().map(|n| gpu(n)).collect()),
            n if n > 0 && n as usize <= have.len() => Ok(have.iter().take(n as usize).map(|n| gpu(n)).collect()),
            n if n > 0 => Err(Error::BadRequest(format!(
                "requested {n} GPUs but {} has only {} ({})",
                GPU_KIND,
                have.len(),
                have.join(", ")
            ))),
            n => Err(Error::BadRequest(format!("invalid GPU count {n}: all (-1) or a positive number"))),
        }
    }

    /// The CDI devices `HostConfig.DeviceRequests` asks for: `Driver: "cdi"` names them;
    /// the GPU driver (`Driver` empty or `nvidia`, capability `gpu`) takes them from
    /// [`GPU_KIND`]. Anything else is refused with Docker's message.
    pub fn requested(&self, requests: &Value) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let Some(list) = requests.as_array() else {
            return if requests.is_null() {
                Ok(out)
            } else {
                Err(Error::BadRequest("HostConfig.DeviceRequests must be a list".into()))
            };
        };
        for r in list {
            let driver = r.get("Driver").and_then(Value::as_str).unwrap_or("");
            let count = r.get("Count").and_then(Value::as_i64).unwrap_or(0);
            let ids: Vec<String> = r
                .get("DeviceIDs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            let caps: Vec<Vec<String>> = r
                .get("Capabilities")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            if r.get("Options").and_then(Value::as_object).is_some_and(|o| !o.is_empty()) {
                return Err(Error::BadRequest(format!(
                    "device request options are not supported by Berth (driver {driver:?})"
                )));
            }
            let caps_text = format!(
                "[{}]",
                caps.iter().map(|s| format!("[{}]", s.join(" "))).collect::<Vec<_>>().join(" ")
            );
            match driver {
                "cdi" => {
                    if count != 0 {
                        return Err(Error::BadRequest(
                            "a CDI device request names its devices: Count must not be set".into(),
                        ));
                    }
                    for id in &ids {
                        if !is_qualified_name(id) {
                            return Err(Error::BadRequest(format!(
                                "CDI device {id:?} is not a qualified name (vendor.com/class=name)"
                            )));
                        }
                    }
                    self.ensure_known(&ids)?;
                    out.extend(ids);
                }
                "" | "nvidia" => {
                    // Docker picks the driver one of whose capability sets covers one of the
                    // request's (an empty request means the driver named).
                    let fits = caps
                        .iter()
                        .any(|set| !set.is_empty() && set.iter().all(|c| GPU_CAPS.contains(&c.as_str())))
                        || (caps.is_empty() && driver == "nvidia");
                    if !fits {
                        return Err(Error::BadRequest(format!(
                            "could not select device driver {driver:?} with capabilities: {caps_text}"
                        )));
                    }
                    out.extend(self.gpu_devices(count, &ids)?);
                }
                other => {
                    return Err(Error::BadRequest(format!(
                        "could not select device driver {other:?} with capabilities: {caps_text}"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// The device node a CDI entry or a `--device` describes, its missing type, numbers and mode
/// taken from the host's node.
fn node(def: &NodeDef) -> Result<DeviceNode> {
    let host = def.host_path.clone().unwrap_or_else(|| def.path.clone());
    let given = match (def.kind.as_deref(), def.major) {
        (Some("p"), _) => true,
        (Some(_), Some(m)) => m != 0 || def.minor.is_some(),
        _ => false,
    };
    let (mut kind, mut major, mut minor, mut mode) = (
        def.kind.as_deref().and_then(|k| k.chars().next()).unwrap_or('c'),
        def.major.unwrap_or(0),
        def.minor.unwrap_or(0),
        def.file_mode,
    );
    if !given {
        let md = std::fs::metadata(&host).map_err(|e| Error::BadRequest(format!("device {host}: {e}")))?;
        let ft = md.file_type();
        let found = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_fifo() {
            'p'
        } else {
            return Err(Error::BadRequest(format!("device {host} is not a device node")));
        };
        if def.kind.as_deref().is_some_and(|k| k != "u" && !k.starts_with(found)) {
            return Err(Error::BadRequest(format!(
                "device {host}: type {} does not match the host's {found}",
                def.kind.as_deref().unwrap_or("")
            )));
        }
        if def.kind.is_none() {
            kind = found;
        }
        let rdev = md.rdev();
        major = nix::sys::stat::major(rdev) as i64;
        minor = nix::sys::stat::minor(rdev) as i64;
        mode = mode.or(Some(md.mode() & 0o7777));
    }
    Ok(DeviceNode {
        path: def.path.clone(),
        kind,
        major,
        minor,
        file_mode: mode,
        uid: def.uid,
        gid: def.gid,
        permissions: def.permissions.clone().unwrap_or_else(|| "rwm".into()),
    })
}

/// `HostConfig.Devices` (`--device HOST[:CONTAINER[:PERMS]]`): the host's device node, or every
/// node under a host directory, at the container path.
pub fn host_devices(devices: &[Value]) -> Result<Vec<DeviceNode>> {
    let mut out = Vec::new();
    for d in devices {
        let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let host = s("PathOnHost");
        let inside = Some(s("PathInContainer")).filter(|p| !p.is_empty()).unwrap_or_else(|| host.clone());
        let perms = Some(s("CgroupPermissions"))
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rwm".into());
        if !host.starts_with('/') || !inside.starts_with('/') {
            return Err(Error::BadRequest(format!("invalid device {host:?}: paths must be absolute")));
        }
        if !perms.chars().all(|c| "rwm".contains(c)) {
            return Err(Error::BadRequest(format!("invalid device mode: {perms}")));
        }
        let gather = |h: &str, c: &str| {
            node(&NodeDef {
                path: c.to_string(),
                host_path: Some(h.to_string()),
                permissions: Some(perms.clone()),
                ..Default::default()
            })
            .map_err(|e| {
                Error::BadRequest(format!(
                    "error gathering device information while adding custom device {host:?}: {e}"
                ))
            })
        };
        if Path::new(&host).is_dir() {
            let mut stack = vec![PathBuf::from(&host)];
            while let Some(dir) = stack.pop() {
                let rd = std::fs::read_dir(&dir).map_err(|e| Error::BadRequest(format!("device directory {}: {e}", dir.display())))?;
                for e in rd.flatten() {
                    let p = e.path();
                    let ft = e.file_type().map_err(|e| Error::BadRequest(e.to_string()))?;
                    if ft.is_dir() {
                        stack.push(p);
                    } else if ft.is_char_device() || ft.is_block_device() {
                        let rel = p.strip_prefix(&host).expect("under host");
                        let c = Path::new(&inside).join(rel);
                        out.push(gather(&p.display().to_string(), &c.display().to_string())?);
                    }
                }
            }
        } else {
            let n = gather(&host, &inside)?;
            if n.kind == 'p' {
                return Err(Error::BadRequest(format!(
                    "error gathering device information while adding custom device {host:?}: not a device node"
                )));
            }
            out.push(n);
        }
    }
    Ok(out)
}

/// Apply CDI edits to a container's run spec: environment (a name set again replaces the
/// image's or the user's value, as CDI does), device nodes, mounts (bind by default), hooks
/// and supplementary groups.
pub fn apply(spec: &mut RunSpec, edits: &Edits) -> Result<()> {
    for e in &edits.env {
        let name = e.split('=').next().unwrap_or("");
        spec.env.retain(|x| x.split('=').next() != Some(name));
        spec.env.push(e.clone());
    }
    for d in &edits.device_nodes {
        let n = node(d)?;
        spec.devices.retain(|x| x.path != n.path);
        spec.devices.push(n);
    }
    for m in &edits.mounts {
        spec.mounts.retain(|x| x.destination != m.container_path);
        spec.mounts.push(MountSpec {
            source: m.host_path.clone(),
            destination: m.container_path.clone(),
            kind: m.kind.clone().unwrap_or_else(|| "bind".into()),
            options: m.options.clone(),
        });
    }
    for h in &edits.hooks {
        spec.hooks.entry(h.hook_name.clone()).or_default().push(Hook {
            path: h.path.clone(),
            args: h.args.clone(),
            env: h.env.clone(),
            timeout: h.timeout,
        });
    }
    for g in &edits.additional_gids {
        if !spec.additional_gids.contains(g) {
            spec.additional_gids.push(*g);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    const GPUS: &str = r#"{"cdiVersion": "0.6.0", "kind": "nvidia.com/gpu",
        "containerEdits": {"env": ["NVIDIA_CDI=1"]},
        "devices": [
          {"name": "0", "containerEdits": {"env": ["GPU0=1"], "deviceNodes": [{"path": "/dev/gpu0", "hostPath": "/dev/zero"}]}},
          {"name": "1", "containerEdits": {"deviceNodes": [{"path": "/dev/gpu1", "hostPath": "/dev/full", "permissions": "rw"}]}}
        ]}"#;

    #[test]
    fn loads_resolves_and_maps_docker_gpu_requests() {
        let t = tempfile::tempdir().unwrap();
        let (etc, run) = (t.path().join("etc"), t.path().join("run"));
        write(&etc, "gpu.json", GPUS);
        write(
            &run,
            "fpga.yaml",
            "cdiVersion: 0.5.0\nkind: example.com/fpga\ndevices:\n  - name: a\n    containerEdits:\n      mounts:\n        - {hostPath: /tmp, containerPath: /opt/fpga, options: [ro]}\n",
        );
        write(
            &run,
            "broken.json",
            "{\"cdiVersion\": \"0.6.0\", \"kind\": \"nope\", \"devices\": []}",
        );
        let cat = Catalog::load(&[etc, run]);
        assert_eq!(cat.kinds()[GPU_KIND], vec!["0", "1"]);
        assert_eq!(cat.errors.len(), 1, "{:?}", cat.errors);
        assert!(cat.errors[0].contains("broken.json") && cat.errors[0].contains("kind"));

        let all = cat
            .requested(&json!([{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]))
            .unwrap();
        assert_eq!(all, vec!["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
        let one = cat.requested(&json!([{"Count": 1, "Capabilities": [["gpu"]]}])).unwrap();
        assert_eq!(one, vec!["nvidia.com/gpu=0"]);
        let named = cat.requested(&json!([{"DeviceIDs": ["1"], "Capabilities": [["gpu"]]}])).unwrap();
        assert_eq!(named, vec!["nvidia.com/gpu=1"]);
        let too_many = cat.requested(&json!([{"Count": 3, "Capabilities": [["gpu"]]}])).unwrap_err();
        assert!(too_many.to_string().contains("only 2"), "{too_many}");
        let cdi = cat
            .requested(&json!([{"Driver": "cdi", "DeviceIDs": ["example.com/fpga=a"]}]))
            .unwrap();
        assert_eq!(cdi, vec!["example.com/fpga=a"]);
        let unknown = cat
            .requested(&json!([{"Driver": "cdi", "DeviceIDs": ["example.com/fpga=z"]}]))
            .unwrap_err();
        assert!(
            unknown.to_string().contains("unresolvable CDI devices example.com/fpga=z"),
            "{unknown}"
        );
        let bad_cap = cat.requested(&json!([{"Capabilities": [["tpu"]]}])).unwrap_err();
        assert_eq!(
            bad_cap.to_string(),
            "could not select device driver \"\" with capabilities: [[tpu]]"
        );

        let edits = cat.edits(&all).unwrap();
        assert_eq!(
            edits.env,
            vec!["NVIDIA_CDI=1", "GPU0=1"],
            "the spec's edits once, then each device's"
        );
        assert_eq!(edits.device_nodes.len(), 2);
        let n = node(&edits.device_nodes[1]).unwrap();
        assert_eq!((n.kind, n.major, n.minor, n.permissions.as_str()), ('c', 1, 7, "rw"));
    }

    #[test]
    fn no_gpu_specs_gives_dockers_error_and_conflicts_are_reported() {
        let t = tempfile::tempdir().unwrap();
        let cat = Catalog::load(&[t.path().to_path_buf()]);
        let e = cat.requested(&json!([{"Count": -1, "Capabilities": [["gpu"]]}])).unwrap_err();
        assert_eq!(e.to_string(), "could not select device driver \"\" with capabilities: [[gpu]]");
        write(t.path(), "a.json", GPUS);
        write(t.path(), "b.json", GPUS);
        let cat = Catalog::load(&[t.path().to_path_buf()]);
        assert!(cat.kinds().is_empty());
        assert!(cat.errors.iter().any(|e| e.contains("conflicts with")), "{:?}", cat.errors);
    }

    #[test]
    fn names_and_edits_are_validated() {
        assert!(is_qualified_name("nvidia.com/gpu=0"));
        assert!(is_qualified_name("vendor.com/class=GPU-1a:2"));
        assert!(!is_qualified_name("/dev/null"));
        assert!(!is_qualified_name("vendor/class/x=0"));
        let bad = Edits {
            hooks: vec![HookDef {
                hook_name: "prestart".into(),
                path: "/bin/true".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(bad.check().unwrap_err().contains("unknown hookName"));
    }

    #[test]
    fn host_devices_take_the_hosts_numbers() {
        let d = host_devices(&[json!({"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"})]).unwrap();
        assert_eq!((d[0].path.as_str(), d[0].kind, d[0].major, d[0].minor), ("/dev/mynull", 'c', 1, 3));
        let e = host_devices(&[json!({"PathOnHost": "/dev/berth-no-such"})]).unwrap_err();
        assert!(e.to_string().contains("error gathering device information"), "{e}");
    }
}
