//! From a pod's spec to what the engine runs: each container's environment (values,
//! ConfigMaps, Secrets, fieldRef, resourceFieldRef, `$(VAR)` expansion), its volumes on the
//! node (emptyDir, on tmpfs for `medium: Memory`; hostPath; configMap, secret — on tmpfs,
//! never on disk — downwardAPI and projected ones), and its create request: command and args,
//! limits as cgroup limits, security context, the pod sandbox's namespaces.
//! Anything Berth cannot do yet is an error that names it, shown in the pod's status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::quantity;
use crate::store::Store;

/// Why a container could not be made: `(reason, message)` for its waiting state.
pub type ConfigError = (&'static str, String);

fn config_error(msg: impl Into<String>) -> ConfigError {
    ("CreateContainerConfigError", msg.into())
}

async fn object(store: &dyn Store, plural: &str, ns: &str, name: &str) -> Option<Value> {
    let kv = store.get(&format!("/registry/core/{plural}/{ns}/{name}"), None).await.ok()??;
    serde_json::from_slice(&kv.value).ok()
}

/// A ConfigMap's or Secret's data as bytes.
async fn data_of(store: &dyn Store, kind: &str, ns: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let plural = if kind == "secret" { "secrets" } else { "configmaps" };
    let o = object(store, plural, ns, name).await?;
    let mut out = BTreeMap::new();
    for (k, v) in o.get("data").and_then(Value::as_object).into_iter().flatten() {
        let s = v.as_str().unwrap_or("");
        let bytes = if kind == "secret" {
            base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_default()
        } else {
            s.as_bytes().to_vec()
        };
        out.insert(k.clone(), bytes);
    }
    for (k, v) in o.get("binaryData").and_then(Value::as_object).into_iter().flatten() {
        out.insert(
            k.clone(),
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or(""))
                .unwrap_or_default(),
        );
    }
    Some(out)
}

/// `metadata.name`, `metadata.labels['app']`, `spec.nodeName`, `status.podIP`, …
pub fn field_ref(pod: &Value, path: &str, pod_ip: &str, host_ip: &str) -> Result<String, String> {
    let s = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(rest) = path
        .strip_prefix("metadata.labels[")
        .or_else(|| path.strip_prefix("metadata.annotations["))
    {
        let key = rest.trim_end_matches(']').trim_matches(|c| c == '\'' || c == '"');
        let map = if path.starts_with("metadata.labels") {
            "labels"
        } else {
            "annotations"
        };
        return Ok(pod
            .pointer(&format!("/metadata/{map}"))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string());
    }
    let map_text = |m: &str| {
        let mut lines: Vec<String> = pod
            .pointer(&format!("/metadata/{m}"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
            .collect();
        lines.sort();
        lines.join("\n")
    };
    Ok(match path {
        "metadata.name" => s("/metadata/name"),
        "metadata.namespace" => s("/metadata/namespace"),
        "metadata.uid" => s("/metadata/uid"),
        "metadata.labels" => map_text("labels"),
        "metadata.annotations" => map_text("annotations"),
        "spec.nodeName" => s("/spec/nodeName"),
        "spec.serviceAccountName" => s("/spec/serviceAccountName"),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        other => return Err(format!("unsupported fieldRef fieldPath {other:?}")),
    })
}

/// `limits.cpu`, `requests.memory`, … of `container` (`divisor` applied), as the kubelet
/// gives them: a limit that is not set is the node's allocatable.
pub fn resource_ref(c: &Value, resource: &str, divisor: Option<&str>, node_cpu_milli: i64, node_mem: i64) -> Result<String, String> {
    let (kind, what) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resourceFieldRef resource {resource:?}"))?;
    let v = c.pointer(&format!("/resources/{kind}/{what}")).and_then(Value::as_str);
    let divisor = divisor.and_then(quantity::parse).filter(|d| *d > 0.0).unwrap_or(1.0);
    let value = match what {
        "cpu" => v
            .and_then(quantity::parse)
            .unwrap_or(if kind == "limits" { node_cpu_milli as f64 / 1000.0 } else { 0.0 }),
        "memory" | "ephemeral-storage" => v
            .and_then(quantity::parse)
            .unwrap_or(if kind == "limits" { node_mem as f64 } else { 0.0 }),
        _ => return Err(format!("unsupported resourceFieldRef resource {resource:?}")),
    };
    Ok(((value / divisor).ceil() as i64).to_string())
}

/// `$(VAR)` references expanded from `env` (unknown ones stay; `$$` escapes), as the kubelet
/// expands env values, command and args.
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(j) if env.contains_key(&inner[..j]) => {
                    out.push_str(&env[&inner[..j]]);
                    rest = &inner[j + 1..];
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Facts about the node a container's environment may need.
pub struct NodeFacts {
    pub pod_ip: String,
    pub host_ip: String,
    pub cpu_milli: i64,
    pub memory: i64,
}

/// The container's environment, in order.
pub async fn environment(store: &dyn Store, pod: &Value, c: &Value, facts: &NodeFacts) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    let set = |vars: &mut Vec<(String, String)>, map: &mut BTreeMap<String, String>, k: String, v: String| {
        vars.retain(|(x, _)| *x != k);
        map.insert(k.clone(), v.clone());
        vars.push((k, v));
    };
    for src in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
        let prefix = src["prefix"].as_str().unwrap_or("");
        let (kind, r) = if src["configMapRef"].is_object() {
            ("configmap", &src["configMapRef"])
        } else if src["secretRef"].is_object() {
            ("secret", &src["secretRef"])
        } else {
            continue;
        };
        let name = r["name"].as_str().unwrap_or("");
        match data_of(store, kind, ns, name).await {
            Some(d) => {
                for (k, v) in d {
                    set(
                        &mut vars,
                        &mut map,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if r["optional"] == true => {}
            None => return Err(config_error(format!("{kind} \"{name}\" not found"))),
        }
    }
    for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("").to_string();
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            expand(v, &map)
        } else if let Some(vf) = e.get("valueFrom").filter(|v| v.is_object()) {
            if let Some(r) = vf
                .get("configMapKeyRef")
                .or_else(|| vf.get("secretKeyRef"))
                .filter(|r| r.is_object())
            {
                let kind = if vf.get("secretKeyRef").is_some_and(|r| r.is_object()) {
                    "secret"
                } else {
                    "configmap"
                };
                let (rname, key) = (r["name"].as_str().unwrap_or(""), r["key"].as_str().unwrap_or(""));
                match data_of(store, kind, ns, rname).await {
                    Some(d) => match d.get(key) {
                        Some(v) => String::from_utf8_lossy(v).into_owned(),
                        None if r["optional"] == true => continue,
                        None => {
                            return Err(config_error(format!(
                                "couldn't find key {key} in {} {ns}/{rname}",
                                if kind == "secret" { "Secret" } else { "ConfigMap" }
                            )))
                        }
                    },
                    None if r["optional"] == true => continue,
                    None => return Err(config_error(format!("{kind} \"{rname}\" not found"))),
                }
            } else if let Some(f) = vf.get("fieldRef").filter(|r| r.is_object()) {
                field_ref(pod, f["fieldPath"].as_str().unwrap_or(""), &facts.pod_ip, &facts.host_ip).map_err(config_error)?
            } else if let Some(r) = vf.get("resourceFieldRef").filter(|r| r.is_object()) {
                resource_ref(
                    c,
                    r["resource"].as_str().unwrap_or(""),
                    r["divisor"].as_str(),
                    facts.cpu_milli,
                    facts.memory,
                )
                .map_err(config_error)?
            } else {
                return Err(config_error(format!("env {name}: valueFrom names no source")));
            }
        } else {
            String::new()
        };
        set(&mut vars, &mut map, name, value);
    }
    Ok(vars)
}

/// What a pod's volumes are on the node: the host path each is at.
pub struct Volumes {
    pub paths: BTreeMap<String, (PathBuf, bool)>,
}

fn mount_tmpfs(path: &Path, size: Option<i64>) -> Result<(), String> {
    if image::snapshot::is_mountpoint(path) {
        return Ok(());
    }
    let opts = match size {
        Some(s) => format!("mode=0777,size={s}"),
        None => "mode=0777".to_string(),
    };
    nix::mount::mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| format!("mounting a tmpfs on {}: {e}", path.display()))
}

/// Unmount what [`prepare_volumes`] mounted under a pod's directory.
pub fn unmount_all(dir: &Path) {
    let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<&str> = m
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Err(e) = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %p, error = %e, "unmounting a pod volume");
        }
    }
}

fn write_file(dir: &Path, rel: &str, data: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if rel.split('/').any(|s| s == ".." || s.is_empty()) || rel.starts_with('/') {
        return Err(format!("invalid path {rel:?} in a volume"));
    }
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(&p, data).map_err(|e| format!("{}: {e}", p.display()))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).map_err(|e| format!("{}: {e}", p.display()))
}

/// Files of a configMap or secret source (its `items`, or every key), into `dir`.
async fn project_data(store: &dyn Store, ns: &str, kind: &str, src: &Value, dir: &Path, default_mode: u32) -> Result<(), String> {
    let name = src["name"].as_str().or_else(|| src["secretName"].as_str()).unwrap_or("");
    let Some(data) = data_of(store, kind, ns, name).await else {
        if src["optional"] == true {
            return Ok(());
        }
        return Err(format!("{kind} \"{name}\" not found"));
    };
    match src.get("items").and_then(Value::as_array) {
        Some(items) => {
            for it in items {
                let key = it["key"].as_str().unwrap_or("");
                let path = it["path"].as_str().unwrap_or(key);
                let mode = it["mode"].as_u64().map(|m| m as u32).unwrap_or(default_mode);
                match data.get(key) {
                    Some(d) => write_file(dir, path, d, mode)?,
                    None if src["optional"] == true => {}
                    None => return Err(format!("configmap references non-existent config key: {key}")),
                }
            }
        }
        None => {
            for (k, d) in &data {
                write_file(dir, k, d, default_mode)?;
            }
        }
    }
    Ok(())
}

fn project_downward(pod: &Value, items: &Value, dir: &Path, default_mode: u32, facts: &NodeFacts) -> Result<(), String> {
    for it in items.as_array().into_iter().flatten() {
        let path = it["path"].as_str().unwrap_or("");
        let mode = it["mode"].as_u64().map(|m| m as u32).unwrap_or(default_mode);
        let text = if let Some(f) = it.get("fieldRef").filter(|f| f.is_object()) {
            field_ref(pod, f["fieldPath"].as_str().unwrap_or(""), &facts.pod_ip, &facts.host_ip)?
        } else if let Some(r) = it.get("resourceFieldRef").filter(|f| f.is_object()) {
            let cname = r["containerName"].as_str().unwrap_or("");
            let c = pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["name"] == cname))
                .ok_or_else(|| format!("resourceFieldRef: no container {cname:?}"))?;
            resource_ref(
                c,
                r["resource"].as_str().unwrap_or(""),
                r["divisor"].as_str(),
                facts.cpu_milli,
                facts.memory,
            )?
        } else {
            continue;
        };
        write_file(dir, path, text.as_bytes(), mode)?;
    }
    Ok(())
}

/// Make (or refresh) a pod's volumes under `dir` (`ROOT/kube/pods/<uid>/volumes`).
pub async fn prepare_volumes(
    store: &dyn Store,
    pod: &Value,
    dir: &Path,
    facts: &NodeFacts,
    issuer: &crate::apiserver::auth::Issuer,
) -> Result<Volumes, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let fs_group = pod.pointer("/spec/securityContext/fsGroup").and_then(Value::as_u64);
    let mut paths = BTreeMap::new();
    for v in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("");
        let at = dir.join(name);
        let mode = |src: &Value| src["defaultMode"].as_u64().map(|m| m as u32).unwrap_or(0o644);
        let mkdir = |p: &Path| {
            std::fs::create_dir_all(p).map_err(|e| config_error(format!("volume {name:?}: {}: {e}", p.display())))?;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| config_error(format!("volume {name:?}: {e}")))?;
            if let Some(g) = fs_group {
                let _ = std::os::unix::fs::chown(p, None, Some(g as u32));
            }
            Ok::<(), ConfigError>(())
        };
        let vol_err = |e: String| config_error(format!("volume {name:?}: {e}"));
        if let Some(e) = v.get("emptyDir").filter(|x| x.is_object()) {
            mkdir(&at)?;
            if e["medium"] == "Memory" {
                let size = e["sizeLimit"].as_str().and_then(quantity::bytes);
                mount_tmpfs(&at, size).map_err(vol_err)?;
            } else if e["medium"].as_str().is_some_and(|m| !m.is_empty()) {
                return Err(vol_err(format!("emptyDir medium {:?} is not supported", e["medium"])));
            }
            paths.insert(name.to_string(), (at, false));
        } else if let Some(h) = v.get("hostPath").filter(|x| x.is_object()) {
            let p = PathBuf::from(h["path"].as_str().unwrap_or(""));
            if !p.is_absolute() {
                return Err(vol_err(format!("hostPath {:?} is not absolute", p)));
            }
            let ty = h["type"].as_str().unwrap_or("");
            let ok = match ty {
                "" => true,
                "DirectoryOrCreate" => {
                    if !p.exists() {
                        std::fs::create_dir_all(&p).map_err(|e| vol_err(e.to_string()))?;
                        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
                    }
                    p.is_dir()
                }
                "Directory" => p.is_dir(),
                "FileOrCreate" => {
                    if !p.exists() {
                        std::fs::write(&p, b"").map_err(|e| vol_err(e.to_string()))?;
                    }
                    p.is_file()
                }
                "File" => p.is_file(),
                "Socket" => {
                    use std::os::unix::fs::FileTypeExt;
                    std::fs::metadata(&p).is_ok_and(|m| m.file_type().is_socket())
                }
                "CharDevice" | "BlockDevice" => {
                    use std::os::unix::fs::FileTypeExt;
                    std::fs::metadata(&p).is_ok_and(|m| {
                        if ty == "CharDevice" {
                            m.file_type().is_char_device()
                        } else {
                            m.file_type().is_block_device()
                        }
                    })
                }
                other => return Err(vol_err(format!("hostPath type {other:?} is not one Kubernetes knows"))),
            };
            if !ok {
                return Err((
                    "CreateContainerConfigError",
                    format!("hostPath type check failed: {} is not a {ty}", p.display()),
                ));
            }
            paths.insert(name.to_string(), (p, false));
        } else if let Some(src) = v.get("configMap").filter(|x| x.is_object()) {
            mkdir(&at)?;
            project_data(store, ns, "configmap", src, &at, mode(src)).await.map_err(vol_err)?;
            paths.insert(name.to_string(), (at, true));
        } else if let Some(src) = v.get("secret").filter(|x| x.is_object()) {
            mkdir(&at)?;
            mount_tmpfs(&at, None).map_err(vol_err)?;
            project_data(store, ns, "secret", src, &at, mode(src)).await.map_err(vol_err)?;
            paths.insert(name.to_string(), (at, true));
        } else if let Some(src) = v.get("downwardAPI").filter(|x| x.is_object()) {
            mkdir(&at)?;
            project_downward(pod, &src["items"], &at, mode(src), facts).map_err(vol_err)?;
            paths.insert(name.to_string(), (at, true));
        } else if let Some(src) = v.get("projected").filter(|x| x.is_object()) {
            mkdir(&at)?;
            mount_tmpfs(&at, None).map_err(vol_err)?;
            let m = mode(src);
            for s in src["sources"].as_array().into_iter().flatten() {
                if let Some(c) = s.get("configMap").filter(|x| x.is_object()) {
                    project_data(store, ns, "configmap", c, &at, m).await.map_err(vol_err)?;
                } else if let Some(c) = s.get("secret").filter(|x| x.is_object()) {
                    project_data(store, ns, "secret", c, &at, m).await.map_err(vol_err)?;
                } else if let Some(d) = s.get("downwardAPI").filter(|x| x.is_object()) {
                    project_downward(pod, &d["items"], &at, m, facts).map_err(vol_err)?;
                } else if let Some(t) = s.get("serviceAccountToken").filter(|x| x.is_object()) {
                    project_token(store, issuer, pod, t, &at, m).await.map_err(vol_err)?;
                } else {
                    let kind = s.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default();
                    return Err(vol_err(format!("projected {kind} sources are not supported by Berth yet")));
                }
            }
            paths.insert(name.to_string(), (at, true));
        } else if let Some(c) = v.get("persistentVolumeClaim").filter(|x| x.is_object()) {
            // The bound volume's directory (hostPath or local), mounted as the pod asks.
            let claim = c["claimName"].as_str().unwrap_or("");
            let pvc = object(store, "persistentvolumeclaims", ns, claim)
                .await
                .ok_or_else(|| config_error(format!("persistentvolumeclaim \"{claim}\" not found")))?;
            if pvc.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
                return Err(config_error(format!("persistentvolumeclaim \"{claim}\" is not bound")));
            }
            let vol = pvc.pointer("/spec/volumeName").and_then(Value::as_str).unwrap_or("");
            let kv = store
                .get(&format!("/registry/core/persistentvolumes/{vol}"), None)
                .await
                .ok()
                .flatten()
                .ok_or_else(|| config_error(format!("persistentvolume \"{vol}\" not found")))?;
            let pv: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
            let path = pv
                .pointer("/spec/hostPath/path")
                .or(pv.pointer("/spec/local/path"))
                .and_then(Value::as_str)
                .map(PathBuf::from)
                .ok_or_else(|| {
                    vol_err(format!(
                        "persistentvolume {vol:?} is neither hostPath nor local: not supported by Berth"
                    ))
                })?;
            if !path.is_dir() {
                if pv.pointer("/spec/hostPath/type").and_then(Value::as_str) == Some("DirectoryOrCreate") {
                    std::fs::create_dir_all(&path).map_err(|e| vol_err(e.to_string()))?;
                } else {
                    return Err(vol_err(format!("persistentvolume {vol:?}: {} is not a directory", path.display())));
                }
            }
            paths.insert(name.to_string(), (path, c["readOnly"].as_bool() == Some(true)));
        } else {
            let kind = v
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
                .unwrap_or_else(|| "(no source)".into());
            return Err(vol_err(format!("{kind} volumes are not supported by Berth yet")));
        }
    }
    Ok(Volumes { paths })
}

/// A projected service-account token: the pod's service account, bound to the pod, for the
/// source's audience, valid its `expirationSeconds` (the admission-made `kube-api-access`
/// volume's 3607 s are extended to a year, as the real server's
/// `--service-account-extend-token-expiration` does, so the file needs no refresh here).
async fn project_token(
    store: &dyn Store,
    issuer: &crate::apiserver::auth::Issuer,
    pod: &Value,
    src: &Value,
    at: &Path,
    mode: u32,
) -> Result<(), String> {
    let ns = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let sa_name = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default");
    let sa = crate::apiserver::auth::stored(store, "ServiceAccount", Some(ns), sa_name)
        .await
        .ok_or_else(|| format!("serviceaccount \"{sa_name}\" not found"))?;
    let path = src["path"].as_str().unwrap_or("");
    let mut seconds = src["expirationSeconds"].as_i64().unwrap_or(3600);
    if seconds == 3607 {
        seconds = 365 * 24 * 3600;
    }
    let audiences: Vec<String> = src["audience"]
        .as_str()
        .filter(|a| !a.is_empty())
        .map(String::from)
        .into_iter()
        .collect();
    let (token, _) = issuer.service_account_token(&sa, &audiences, seconds, Some(pod));
    write_file(at, path, token.as_bytes(), mode)
}

/// The binds (`src:dst[:ro]`) of a container's volumeMounts.
pub fn binds(c: &Value, vols: &Volumes) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for m in c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or("");
        let (path, forced_ro) = vols
            .paths
            .get(name)
            .ok_or_else(|| config_error(format!("volume {name:?} not found")))?;
        let mut src = path.clone();
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            if sub.starts_with('/') || sub.split('/').any(|s| s == "..") {
                return Err(config_error(format!("subPath {sub:?} must be a relative path without '..'")));
            }
            src = src.join(sub);
            if !src.exists() {
                std::fs::create_dir_all(&src).map_err(|e| config_error(format!("subPath {sub:?}: {e}")))?;
            }
        }
        if m["subPathExpr"].as_str().is_some_and(|s| !s.is_empty()) {
            return Err(config_error("subPathExpr is not supported by Berth yet"));
        }
        if m.get("mountPropagation").and_then(Value::as_str).is_some_and(|p| p != "None") {
            return Err(config_error("mountPropagation other than None is not supported by Berth yet"));
        }
        let ro = *forced_ro || m["readOnly"] == true;
        let dst = m["mountPath"].as_str().unwrap_or("");
        out.push(format!("{}:{dst}{}", src.display(), if ro { ":ro" } else { "" }));
    }
    Ok(out)
}

/// A container's create request: the pod sandbox's network and IPC, its process, limits and
/// security context.
pub fn create_request(
    pod: &Value,
    c: &Value,
    image: &str,
    sandbox: &str,
    env: &[(String, String)],
    binds: Vec<String>,
    labels: BTreeMap<String, String>,
) -> Result<engine::containers::CreateRequest, ConfigError> {
    use engine::types::NetworkMode;
    let mut req = engine::containers::CreateRequest::default();
    let map: BTreeMap<String, String> = env.iter().cloned().collect();
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()
            .map(|a| a.iter().map(|s| expand(s.as_str().unwrap_or(""), &map)).collect())
    };
    if let Some(cmd) = strings(&c["command"]) {
        req.config.entrypoint = Some(cmd);
        req.config.cmd = Some(strings(&c["args"]).unwrap_or_default());
    } else if let Some(args) = strings(&c["args"]) {
        req.config.cmd = Some(args);
    }
    req.config.image = image.to_string();
    req.config.env = Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect());
    req.config.working_dir = c["workingDir"].as_str().unwrap_or("").to_string();
    req.config.tty = c["tty"] == true;
    req.config.open_stdin = c["stdin"] == true;
    req.config.stdin_once = c["stdinOnce"] == true;
    req.config.labels = labels;
    for p in c.get("ports").and_then(Value::as_array).into_iter().flatten() {
        if p["hostPort"].as_i64().is_some_and(|h| h != 0) {
            return Err(config_error(
                "hostPort is not supported by Berth yet (use a Service once they are served)",
            ));
        }
    }
    let hc = &mut req.host_config;
    hc.network_mode = NetworkMode::Container(sandbox.to_string());
    hc.ipc_mode = if pod.pointer("/spec/hostIPC") == Some(&Value::Bool(true)) {
        "host".into()
    } else {
        format!("container:{sandbox}")
    };
    if pod.pointer("/spec/hostPID") == Some(&Value::Bool(true)) {
        hc.pid_mode = "host".into();
    } else if pod.pointer("/spec/shareProcessNamespace") == Some(&Value::Bool(true)) {
        hc.pid_mode = format!("container:{sandbox}");
    }
    hc.binds = Some(binds);
    let limit = |k: &str| c.pointer(&format!("/resources/limits/{k}")).and_then(Value::as_str);
    let request = |k: &str| c.pointer(&format!("/resources/requests/{k}")).and_then(Value::as_str);
    if let Some(m) = limit("memory").and_then(quantity::bytes) {
        hc.memory = m;
        hc.memory_swap = m;
    }
    if let Some(cpu) = limit("cpu").and_then(quantity::milli_cpu) {
        hc.nano_cpus = cpu * 1_000_000;
    }
    if let Some(cpu) = request("cpu").and_then(quantity::milli_cpu) {
        hc.cpu_shares = (cpu * 1024 / 1000).max(2);
    }
    for (k, _) in c.pointer("/resources/limits").and_then(Value::as_object).into_iter().flatten() {
        // Extended resources (`nvidia.com/gpu`) are the node's CDI devices, given by the agent.
        if !["cpu", "memory", "ephemeral-storage"].contains(&k.as_str())
            && !k.starts_with("hugepages-")
            && !crate::scheduler::is_extended(k)
        {
            return Err(config_error(format!("resource {k:?} is not supported by Berth yet")));
        }
    }
    // The security context: the container's over the pod's.
    let sc = |k: &str| {
        c.pointer(&format!("/securityContext/{k}"))
            .filter(|v| !v.is_null())
            .or_else(|| pod.pointer(&format!("/spec/securityContext/{k}")).filter(|v| !v.is_null()))
    };
    let user = sc("runAsUser").and_then(Value::as_i64);
    let group = sc("runAsGroup").and_then(Value::as_i64);
    match (user, group) {
        (Some(u), Some(g)) => req.config.user = format!("{u}:{g}"),
        (Some(u), None) => req.config.user = u.to_string(),
        (None, Some(_)) => return Err(config_error("runAsGroup without runAsUser is not supported by Berth yet")),
        (None, None) => {}
    }
    if sc("runAsNonRoot") == Some(&Value::Bool(true)) {
        match user {
            Some(0) => return Err(config_error("container's runAsUser breaks non-root policy")),
            Some(_) => {}
            None => {
                return Err(config_error(
                    "runAsNonRoot without runAsUser is not supported by Berth yet (set runAsUser)",
                ))
            }
        }
    }
    let mut groups: Vec<String> = pod
        .pointer("/spec/securityContext/supplementalGroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .map(|g| g.to_string())
        .collect();
    if let Some(g) = pod.pointer("/spec/securityContext/fsGroup").and_then(Value::as_i64) {
        groups.push(g.to_string());
    }
    if !groups.is_empty() {
        hc.group_add = Some(groups);
    }
    hc.privileged = c.pointer("/securityContext/privileged") == Some(&Value::Bool(true));
    hc.readonly_rootfs = c.pointer("/securityContext/readOnlyRootFilesystem") == Some(&Value::Bool(true));
    let caps = |k: &str| -> Option<Vec<String>> {
        c.pointer(&format!("/securityContext/capabilities/{k}"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
    };
    hc.cap_add = caps("add");
    hc.cap_drop = caps("drop");
    let mut sec = Vec::new();
    if c.pointer("/securityContext/allowPrivilegeEscalation") == Some(&Value::Bool(false)) {
        sec.push("no-new-privileges".to_string());
    }
    match sc("seccompProfile").and_then(|p| p["type"].as_str()) {
        None | Some("RuntimeDefault") => {}
        Some("Unconfined") => sec.push("seccomp=unconfined".into()),
        Some(other) => return Err(config_error(format!("seccompProfile type {other:?} is not supported by Berth yet"))),
    }
    if !sec.is_empty() {
        hc.security_opt = Some(sec);
    }
    if pod
        .pointer("/spec/securityContext/sysctls")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(config_error("sysctls are not supported by Berth yet"));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expands_references_as_the_kubelet_does() {
        let env: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$(B)", &env), "$(B)");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("cost $5", &env), "cost $5");
    }

    #[test]
    fn field_and_resource_references() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web", "tier": "x"}}, "spec": {"nodeName": "n1"}});
        assert_eq!(field_ref(&pod, "metadata.labels['app']", "", "").unwrap(), "web");
        assert_eq!(field_ref(&pod, "metadata.labels", "", "").unwrap(), "app=\"web\"\ntier=\"x\"");
        assert_eq!(field_ref(&pod, "status.podIP", "10.42.0.5", "").unwrap(), "10.42.0.5");
        assert!(field_ref(&pod, "spec.nope", "", "").is_err());
        let c = json!({"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}});
        assert_eq!(resource_ref(&c, "limits.memory", Some("1Mi"), 2000, 1 << 30).unwrap(), "64");
        assert_eq!(resource_ref(&c, "limits.cpu", Some("1m"), 2000, 0).unwrap(), "250");
        assert_eq!(resource_ref(&json!({}), "limits.cpu", None, 2000, 0).unwrap(), "2");
    }

    #[test]
    fn command_args_limits_and_security_context() {
        let pod = json!({"spec": {"securityContext": {"runAsUser": 1000}}});
        let c = json!({"command": ["sh", "-c"], "args": ["echo $(X)"], "resources": {"limits": {"memory": "32Mi", "cpu": "500m"}, "requests": {"cpu": "100m"}},
            "securityContext": {"allowPrivilegeEscalation": false}});
        let r = create_request(&pod, &c, "img", "sb", &[("X".into(), "hi".into())], vec![], Default::default()).unwrap();
        assert_eq!(r.config.entrypoint.unwrap(), ["sh", "-c"]);
        assert_eq!(r.config.cmd.unwrap(), ["echo hi"]);
        assert_eq!(r.host_config.memory, 32 << 20);
        assert_eq!(r.host_config.nano_cpus, 500_000_000);
        assert_eq!(r.host_config.cpu_shares, 102);
        assert_eq!(r.config.user, "1000");
        assert_eq!(r.host_config.security_opt.unwrap(), ["no-new-privileges"]);
        assert_eq!(r.host_config.network_mode, engine::types::NetworkMode::Container("sb".into()));
        let hp = json!({"ports": [{"containerPort": 80, "hostPort": 8080}]});
        assert!(create_request(&pod, &hp, "img", "sb", &[], vec![], Default::default()).is_err());
    }
}
