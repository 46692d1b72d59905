//! Pods as the API server keeps them: Kubernetes' defaulting (`SetDefaults_Pod` and the
//! admission plugins a real cluster runs by default: ServiceAccount's name, DefaultTolerationSeconds,
//! Priority), validation of what the node agent relies on, the spec's immutability, the status
//! a new pod starts with, and the columns `kubectl get pods` prints.

use serde_json::{json, Value};

use super::resources::{check_metadata, is_dns_label};
use super::status::{ApiError, ApiResult, Cause};

fn cause(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Cause {
    Cause {
        reason,
        field: field.into(),
        message: message.into(),
    }
}

/// The pull policy Kubernetes gives a container that names none: `Always` for `:latest` or no
/// tag, `IfNotPresent` otherwise (a digest counts as a tag).
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_probe(p: &mut Value) {
    for (k, v) in [
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        if p.get(k).is_none_or(Value::is_null) {
            p[k] = json!(v);
        }
    }
    if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
        if h.get("scheme").is_none_or(Value::is_null) {
            h["scheme"] = json!("HTTP");
        }
        if h.get("path").is_none_or(Value::is_null) {
            h["path"] = json!("/");
        }
    }
    if let Some(g) = p.get_mut("grpc").filter(|g| g.is_object()) {
        if g.get("service").is_none_or(Value::is_null) {
            g["service"] = json!("");
        }
    }
}

fn default_container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("").to_string();
    if c.get("imagePullPolicy").is_none_or(Value::is_null) {
        c["imagePullPolicy"] = json!(default_pull_policy(&image));
    }
    if c.get("terminationMessagePath").is_none_or(Value::is_null) {
        c["terminationMessagePath"] = json!("/dev/termination-log");
    }
    if c.get("terminationMessagePolicy").is_none_or(Value::is_null) {
        c["terminationMessagePolicy"] = json!("File");
    }
    if c.get("resources").is_none_or(Value::is_null) {
        c["resources"] = json!({});
    }
    // Requests default to the limits when only limits are given.
    if let Some(limits) = c.pointer("/resources/limits").and_then(Value::as_object).cloned() {
        for (k, v) in limits {
            // By key, not pointer: an extended resource's name has a `/`.
            if c.pointer("/resources/requests").and_then(|r| r.get(&k)).is_none() {
                if !c["resources"]["requests"].is_object() {
                    c["resources"]["requests"] = json!({});
                }
                c["resources"]["requests"][k] = v;
            }
        }
    }
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if p.get("protocol").is_none_or(Value::is_null) {
                p["protocol"] = json!("TCP");
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            default_probe(p);
        }
    }
}

/// Defaults of a new pod, as a real API server fills them: the pod spec's, the service
/// account's name, the not-ready/unreachable tolerations.
fn default_pod(o: &mut Value) {
    let spec = &mut o["spec"];
    default_pod_spec(spec);
    // The Priority admission plugin (no PriorityClass named: the default of 0).
    for (k, v) in [("priority", json!(0)), ("preemptionPolicy", json!("PreemptLowerPriority"))] {
        if spec.get(k).is_none_or(Value::is_null) {
            spec[k] = v;
        }
    }
    // The ServiceAccount admission plugin: the namespace's `default` when none is named.
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| spec.get("serviceAccount").and_then(Value::as_str).filter(|s| !s.is_empty()))
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = json!(sa);
    spec["serviceAccount"] = json!(sa);
    // DefaultTolerationSeconds: five minutes on a node that is not ready or unreachable.
    let mut tolerations = spec.get("tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        let has = tolerations
            .iter()
            .any(|t| t["key"] == key && (t["effect"] == "NoExecute" || t.get("effect").is_none_or(|e| e == "")));
        if !has {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = json!(tolerations);
}

/// `SetDefaults_PodSpec` and its containers' and volumes' defaults (what a pod template in a
/// workload gets too).
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("securityContext", json!({})),
        ("schedulerName", json!("default-scheduler")),
        ("enableServiceLinks", json!(true)),
    ] {
        if spec.get(k).is_none_or(Value::is_null) {
            spec[k] = v;
        }
    }
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols {
            for (src, mode) in [
                ("configMap", 0o644),
                ("secret", 0o644),
                ("downwardAPI", 0o644),
                ("projected", 0o644),
            ] {
                if let Some(s) = v.get_mut(src).filter(|s| s.is_object()) {
                    if s.get("defaultMode").is_none_or(Value::is_null) {
                        s["defaultMode"] = json!(mode);
                    }
                }
            }
            if let Some(h) = v.get_mut("hostPath").filter(|s| s.is_object()) {
                if h.get("type").is_none_or(Value::is_null) {
                    h["type"] = json!("");
                }
            }
        }
    }
}

/// The QoS class of a pod's spec: Guaranteed when every container has CPU and memory limits
/// equal to its requests, BestEffort when none has any, Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect();
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c.pointer(&format!("/resources/{k}"))
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = c.pointer(&format!("/resources/limits/{r}"));
            l.is_some() && l == c.pointer(&format!("/resources/requests/{r}"))
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Extended resources (`nvidia.com/gpu`) cannot be overcommitted: a whole number, the request
/// equal to the limit, as Kubernetes validates them.
fn check_extended_resources(c: &Value, at: &str, causes: &mut Vec<Cause>) {
    let limits = c.pointer("/resources/limits").and_then(Value::as_object);
    let requests = c.pointer("/resources/requests").and_then(Value::as_object);
    for (kind, map) in [("limits", limits), ("requests", requests)] {
        for (k, v) in map.into_iter().flatten().filter(|(k, _)| crate::scheduler::is_extended(k)) {
            let text = v.as_str().map(String::from).unwrap_or_else(|| v.to_string());
            if crate::quantity::parse(&text).is_none_or(|f| f.fract() != 0.0 || f < 0.0) {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("{at}.resources.{kind}[{k}]"),
                    format!("Invalid value: \"{text}\": must be an integer"),
                ));
            }
        }
    }
    for (k, v) in requests.into_iter().flatten().filter(|(k, _)| crate::scheduler::is_extended(k)) {
        match limits.and_then(|l| l.get(k)) {
            None => causes.push(cause(
                "FieldValueRequired",
                format!("{at}.resources.limits"),
                "Required value: Limit must be set for non overcommitable resources",
            )),
            Some(l) if crate::quantity::parse(l.as_str().unwrap_or("")) != crate::quantity::parse(v.as_str().unwrap_or("")) => {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("{at}.resources.requests"),
                    format!(
                        "Invalid value: \"{}\": must be equal to {k} limit of {}",
                        v.as_str().unwrap_or(""),
                        l.as_str().unwrap_or("")
                    ),
                ))
            }
            Some(_) => {}
        }
    }
}

/// Validation of a pod spec at `at` (`spec`, or `spec.template.spec` in a workload).
pub fn check_pod_spec(spec: &Value, at: &str, causes: &mut Vec<Cause>) {
    let volumes: Vec<&str> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    let mut names: Vec<&str> = Vec::new();
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(Vec::is_empty) {
        causes.push(cause("FieldValueRequired", format!("{at}.containers"), "Required value"));
    }
    for list in ["initContainers", "containers"] {
        for (i, c) in spec.get(list).and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("{at}.{list}[{i}]");
            let name = c["name"].as_str().unwrap_or("");
            if name.is_empty() {
                causes.push(cause("FieldValueRequired", format!("{at}.name"), "Required value"));
            } else if !is_dns_label(name) {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("{at}.name"),
                    format!("Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
                ));
            } else if names.contains(&name) {
                causes.push(cause(
                    "FieldValueDuplicate",
                    format!("{at}.name"),
                    format!("Duplicate value: \"{name}\""),
                ));
            }
            names.push(name);
            if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
                causes.push(cause("FieldValueRequired", format!("{at}.image"), "Required value"));
            }
            check_extended_resources(c, &at, causes);
            if let Some(p) = c["imagePullPolicy"].as_str() {
                if !["Always", "IfNotPresent", "Never"].contains(&p) {
                    causes.push(cause(
                        "FieldValueNotSupported",
                        format!("{at}.imagePullPolicy"),
                        format!("Unsupported value: \"{p}\": supported values: \"Always\", \"IfNotPresent\", \"Never\""),
                    ));
                }
            }
            for (j, m) in c.get("volumeMounts").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let v = m["name"].as_str().unwrap_or("");
                if !volumes.contains(&v) {
                    causes.push(cause(
                        "FieldValueNotFound",
                        format!("{at}.volumeMounts[{j}].name"),
                        format!("Not found: \"{v}\""),
                    ));
                }
                if m["mountPath"].as_str().is_none_or(str::is_empty) {
                    causes.push(cause(
                        "FieldValueRequired",
                        format!("{at}.volumeMounts[{j}].mountPath"),
                        "Required value",
                    ));
                }
            }
            for (j, p) in c.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let n = p["containerPort"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&n) {
                    causes.push(cause(
                        "FieldValueInvalid",
                        format!("{at}.ports[{j}].containerPort"),
                        format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                    ));
                }
            }
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, v) in spec.get("volumes").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let n = v["name"].as_str().unwrap_or("");
        if !is_dns_label(n) {
            causes.push(cause("FieldValueInvalid", format!("{at}.volumes[{i}].name"), format!("Invalid value: \"{n}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character")));
        } else if seen.contains(&n) {
            causes.push(cause(
                "FieldValueDuplicate",
                format!("{at}.volumes[{i}].name"),
                format!("Duplicate value: \"{n}\""),
            ));
        }
        seen.push(n);
    }
    if let Some(p) = spec["restartPolicy"].as_str() {
        if !["Always", "OnFailure", "Never"].contains(&p) {
            causes.push(cause(
                "FieldValueNotSupported",
                format!("{at}.restartPolicy"),
                format!("Unsupported value: \"{p}\": supported values: \"Always\", \"OnFailure\", \"Never\""),
            ));
        }
    }
}

/// What a pod update may change in the spec (the rest is immutable): images, the active
/// deadline, added tolerations, the grace period.
fn mutable_masked(spec: &Value) -> Value {
    // A null field is no field (an object stored before decoding dropped them may hold some).
    let mut s = super::fields::without_nulls(spec);
    for list in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                c["image"] = Value::Null;
            }
        }
    }
    for k in ["activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"] {
        if let Some(m) = s.as_object_mut() {
            m.remove(k);
        }
    }
    s
}

/// Defaulting and validation of a pod (`old` for an update).
pub fn admit(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    if !o["spec"].is_object() {
        causes.push(cause("FieldValueRequired", "spec.containers", "Required value"));
        return causes;
    }
    default_pod(o);
    check_pod_spec(&o["spec"], "spec", &mut causes);
    match old {
        None => {
            let qos = qos_class(&o["spec"]);
            o["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        Some(old) => {
            if mutable_masked(&o["spec"]) != mutable_masked(&old["spec"]) {
                causes.push(cause(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                ));
            }
        }
    }
    causes
}

fn restartable(c: &Value) -> bool {
    c["restartPolicy"] == "Always"
}

/// The cells after NAME, as the real server prints pods: READY, STATUS, RESTARTS, AGE, then
/// IP, NODE, NOMINATED NODE, READINESS GATES (`-o wide`).
pub fn cells(o: &Value) -> Vec<Value> {
    let spec = &o["spec"];
    let status = &o["status"];
    let total = spec["containers"].as_array().map_or(0, Vec::len);
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut last_restart: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    let mut note_restart = |cs: &Value| {
        if let Some(t) = cs
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            if last_restart.is_none_or(|l| t > l) {
                last_restart = Some(t);
            }
        }
    };
    let mut reason = status["reason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .or_else(|| status["phase"].as_str())
        .unwrap_or("")
        .to_string();
    let init_specs = spec["initContainers"].as_array().cloned().unwrap_or_default();
    let mut initializing = false;
    for (i, c) in status["initContainerStatuses"].as_array().into_iter().flatten().enumerate() {
        restarts += c["restartCount"].as_i64().unwrap_or(0);
        note_restart(c);
        let term = &c["state"]["terminated"];
        if term.is_object() && term["exitCode"].as_i64() == Some(0) {
            continue;
        }
        let sidecar = init_specs.iter().find(|s| s["name"] == c["name"]).is_some_and(restartable);
        if sidecar && c["started"] == true {
            continue;
        }
        reason = if term.is_object() {
            match term["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match term["signal"].as_i64().filter(|s| *s != 0) {
                    Some(s) => format!("Init:Signal:{s}"),
                    None => format!("Init:ExitCode:{}", term["exitCode"].as_i64().unwrap_or(0)),
                },
            }
        } else if let Some(w) = c
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            format!("Init:{w}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }
    if !initializing {
        restarts = 0;
        let mut has_running = false;
        let statuses = status["containerStatuses"].as_array().cloned().unwrap_or_default();
        for c in status["initContainerStatuses"].as_array().into_iter().flatten() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
        }
        for c in statuses.iter().rev() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            note_restart(c);
            let st = &c["state"];
            if let Some(w) = st.pointer("/waiting/reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                reason = w.to_string();
            } else if let Some(t) = st.pointer("/terminated/reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                reason = t.to_string();
            } else if st["terminated"].is_object() {
                reason = match st["terminated"]["signal"].as_i64().filter(|s| *s != 0) {
                    Some(s) => format!("Signal:{s}"),
                    None => format!("ExitCode:{}", st["terminated"]["exitCode"].as_i64().unwrap_or(0)),
                };
            } else if st["running"].is_object() && c["ready"] == true {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            reason = if pod_ready { "Running".into() } else { "NotReady".into() };
        }
    }
    if o.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null()) {
        reason = if status["reason"] == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            super::resources::human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        ),
        _ => restarts.to_string(),
    };
    let gates = spec["readinessGates"].as_array().map_or(0, Vec::len);
    let gates = if gates == 0 {
        "<none>".to_string()
    } else {
        let true_ = spec["readinessGates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| {
                status["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
            })
            .count();
        format!("{true_}/{gates}")
    };
    let or_none = |v: &Value| v.as_str().filter(|s| !s.is_empty()).unwrap_or("<none>").to_string();
    vec![
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        json!(super::table::age(o)),
        json!(or_none(&status["podIP"])),
        json!(or_none(&spec["nodeName"])),
        json!(or_none(&status["nominatedNodeName"])),
        json!(gates),
    ]
}

/// Where the service-account volume is mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The ServiceAccount admission plugin: the pod's service account must exist, and unless
/// automounting is off (on the pod, else on the account) every container gets the projected
/// `kube-api-access-<random>` volume — a bound token, the cluster's CA, the namespace — at
/// [`SERVICE_ACCOUNT_DIR`].
pub async fn admit_service_account(store: &dyn crate::store::Store, pod: &mut Value, namespace: &str) -> ApiResult<()> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let sa_name = match pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(s) => s.to_string(),
        None => pod
            .pointer("/spec/serviceAccount")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string(),
    };
    let sa = match super::auth::stored(store, "ServiceAccount", Some(namespace), &sa_name).await {
        Some(sa) => sa,
        None => {
            return Err(ApiError::forbidden(
                "pods",
                "",
                "pods",
                &name,
                format!("error looking up service account {namespace}/{sa_name}: serviceaccount \"{sa_name}\" not found"),
            ))
        }
    };
    let automount = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| sa["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    let lists = ["initContainers", "containers", "ephemeralContainers"];
    let mounted = lists.iter().any(|l| {
        pod.pointer(&format!("/spec/{l}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| c["volumeMounts"].as_array().cloned().unwrap_or_default())
            .any(|m| m["mountPath"] == SERVICE_ACCOUNT_DIR)
    });
    if mounted {
        return Ok(());
    }
    let volume = format!("kube-api-access-{}", super::objects::random_suffix());
    let spec = &mut pod["spec"];
    if !spec["volumes"].is_array() {
        spec["volumes"] = json!([]);
    }
    if let Some(v) = spec["volumes"].as_array_mut() {
        v.push(json!({
            "name": volume,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        }));
    }
    for l in lists {
        for c in spec.get_mut(l).and_then(Value::as_array_mut).into_iter().flatten() {
            if !c["volumeMounts"].is_array() {
                c["volumeMounts"] = json!([]);
            }
            if let Some(m) = c["volumeMounts"].as_array_mut() {
                m.push(json!({"name": volume, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": true}));
            }
        }
    }
    Ok(())
}

/// The built-in PriorityClasses every cluster has.
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

fn priority_classes() -> &'static super::resources::Resource {
    super::resources::find("scheduling.k8s.io", "v1", "priorityclasses").expect("priority classes are served")
}

/// Make sure the built-in PriorityClasses exist.
pub async fn ensure_priority_classes(store: &dyn crate::store::Store) -> ApiResult<()> {
    for (name, value, description) in SYSTEM_PRIORITY_CLASSES {
        let o = json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description,
            "globalDefault": false, "preemptionPolicy": "PreemptLowerPriority",
        });
        super::objects::ensure_object(store, priority_classes(), None, o).await?;
    }
    Ok(())
}

async fn list_priority_classes(store: &dyn crate::store::Store) -> ApiResult<Vec<Value>> {
    let page = store.list(&priority_classes().prefix(None), Default::default()).await?;
    Ok(page.items.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
}

/// The Priority admission plugin on a new pod: `spec.priority` and `spec.preemptionPolicy`
/// from its `priorityClassName` (or the class marked `globalDefault`, named into the pod; no
/// class: priority 0). A class that does not exist, or a priority or policy the pod sets
/// that differs from its class's, is refused.
pub async fn admit_priority(store: &dyn crate::store::Store, pod: &mut Value) -> ApiResult<()> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let forbidden = |msg: String| ApiError::forbidden("pods", "", "pods", &name, msg);
    if !pod["spec"].is_object() {
        return Ok(());
    }
    let classes = list_priority_classes(store).await?;
    let named = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let class = match &named {
        Some(n) => Some(
            classes
                .iter()
                .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(n))
                .ok_or_else(|| forbidden(format!("no PriorityClass with name {n} was found")))?,
        ),
        None => classes.iter().find(|c| c["globalDefault"] == json!(true)),
    };
    let (priority, policy) = match class {
        Some(c) => (
            c["value"].as_i64().unwrap_or(0),
            c["preemptionPolicy"].as_str().unwrap_or("PreemptLowerPriority").to_string(),
        ),
        None => (0, "PreemptLowerPriority".to_string()),
    };
    if let Some(p) = pod.pointer("/spec/priority").and_then(Value::as_i64) {
        if p != priority {
            return Err(forbidden(format!(
                "the integer value of priority ({p}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            )));
        }
    }
    if let Some(p) = pod.pointer("/spec/preemptionPolicy").and_then(Value::as_str) {
        if class.is_some() && p != policy {
            return Err(forbidden(format!(
                "the string value of PreemptionPolicy ({p}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            )));
        }
    }
    if let (None, Some(c)) = (&named, class) {
        pod["spec"]["priorityClassName"] = c["metadata"]["name"].clone();
    }
    pod["spec"]["priority"] = json!(priority);
    if pod.pointer("/spec/preemptionPolicy").is_none_or(Value::is_null) {
        pod["spec"]["preemptionPolicy"] = json!(policy);
    }
    Ok(())
}

/// A new or changed PriorityClass marked `globalDefault` when another one is.
pub async fn admit_default_priority_class(store: &dyn crate::store::Store, class: &Value) -> ApiResult<()> {
    if class["globalDefault"] != json!(true) {
        return Ok(());
    }
    let name = class.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    for other in list_priority_classes(store).await? {
        let other_name = other.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        if other["globalDefault"] == json!(true) && other_name != name {
            return Err(ApiError::forbidden(
                "priorityclasses.scheduling.k8s.io",
                "scheduling.k8s.io",
                "priorityclasses",
                name,
                format!("PriorityClass {other_name} is already marked as default. Only one default can exist"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/busybox:1.36"), "IfNotPresent");
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn defaults_validation_and_immutability() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "img:1", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}]}});
        assert!(admit(&mut p, None).is_empty());
        assert_eq!(p["spec"]["restartPolicy"], "Always");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(p["spec"]["containers"][0]["resources"]["requests"]["memory"], "64Mi");
        assert_eq!(p["status"], json!({"phase": "Pending", "qosClass": "Guaranteed"}));
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
        let mut again = p.clone();
        assert!(admit(&mut again, None).is_empty());
        assert_eq!(
            again["spec"]["tolerations"].as_array().unwrap().len(),
            2,
            "defaulting is idempotent"
        );
        let mut img = p.clone();
        img["spec"]["containers"][0]["image"] = json!("img:2");
        assert!(admit(&mut img, Some(&p)).is_empty());
        let mut cmd = p.clone();
        cmd["spec"]["containers"][0]["command"] = json!(["sh"]);
        let c = admit(&mut cmd, Some(&p));
        assert_eq!(c[0].field, "spec");
        let mut bad = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "C"}, {"name": "d", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}]}});
        let fields: Vec<String> = admit(&mut bad, None).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "spec.containers[0].name",
                "spec.containers[0].image",
                "spec.containers[1].volumeMounts[0].name"
            ]
        );
    }

    #[test]
    fn status_column_as_kubectl_prints_it() {
        let mut p = json!({"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let c = cells(&p);
        assert_eq!(c[0], "1/2");
        assert_eq!(c[1], "CrashLoopBackOff");
        assert_eq!(c[2], "3");
        assert_eq!(c[4], "<none>");
        p["spec"]["initContainers"] = json!([{"name": "i"}]);
        p["status"]["initContainerStatuses"] = json!([{"name": "i", "restartCount": 0, "state": {"running": {}}}]);
        assert_eq!(cells(&p)[1], "Init:0/1");
        p["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(cells(&p)[1], "Terminating");
    }
}
