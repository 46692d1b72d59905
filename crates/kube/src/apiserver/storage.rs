//! Storage and capacity kinds as the API server keeps them: core/v1 PersistentVolume,
//! PersistentVolumeClaim, LimitRange and ResourceQuota, storage.k8s.io/v1 StorageClass,
//! policy/v1 PodDisruptionBudget, autoscaling/v2 HorizontalPodAutoscaler and
//! scheduling.k8s.io/v1 PriorityClass — defaulting, validation and `kubectl get` columns. The
//! provisioner, the autoscaler and quota enforcement are the next issue's.

use serde_json::{json, Value};

use super::resources::{cause, check_metadata, col, set_default, Resource, AGE};
use super::status::Cause;

const ACCESS_MODES: &[&str] = &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"];

fn access_modes(o: &Value, at: &str, causes: &mut Vec<Cause>) {
    let modes = o.pointer(&format!("/{}", at.replace('.', "/"))).and_then(Value::as_array);
    if modes.is_none_or(Vec::is_empty) {
        causes.push(cause(
            "FieldValueRequired",
            at,
            "Required value: at least 1 access mode is required",
        ));
    }
    for m in modes.into_iter().flatten() {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            causes.push(cause(
                "FieldValueNotSupported",
                at,
                format!("Unsupported value: \"{m}\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\""),
            ));
        }
    }
}

fn quantity(o: &Value, pointer: &str, at: &str, causes: &mut Vec<Cause>) {
    match o.pointer(pointer) {
        None | Some(Value::Null) => causes.push(cause("FieldValueRequired", at, "Required value")),
        Some(Value::String(q)) if crate::quantity::parse(q).is_none() => causes.push(cause(
            "FieldValueInvalid",
            at,
            format!("Invalid value: \"{q}\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
        )),
        _ => {}
    }
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "local",
    "nfs",
    "csi",
    "iscsi",
    "fc",
    "cephfs",
    "rbd",
    "glusterfs",
    "azureDisk",
    "azureFile",
    "awsElasticBlockStore",
    "gcePersistentDisk",
    "cinder",
    "flexVolume",
    "flocker",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

fn admit_pv(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    set_default(o, "/spec/persistentVolumeReclaimPolicy", json!("Retain"));
    set_default(o, "/spec/volumeMode", json!("Filesystem"));
    if old.is_none() {
        o["status"] = json!({"phase": "Pending"});
    }
    quantity(o, "/spec/capacity/storage", "spec.capacity", &mut causes);
    access_modes(o, "spec.accessModes", &mut causes);
    let sources: Vec<&&str> = VOLUME_SOURCES
        .iter()
        .filter(|s| o.pointer(&format!("/spec/{s}")).is_some_and(|v| !v.is_null()))
        .collect();
    match sources.len() {
        0 => causes.push(cause("FieldValueRequired", "spec", "Required value: must specify a volume type")),
        1 => {}
        _ => causes.push(cause(
            "FieldValueForbidden",
            format!("spec.{}", sources[1]),
            "Forbidden: may not specify more than 1 volume type",
        )),
    }
    if let Some(p) = o.pointer("/spec/hostPath/path").and_then(Value::as_str) {
        if p.split('/').any(|c| c == "..") {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.hostPath.path",
                format!("Invalid value: \"{p}\": must not contain '..'"),
            ));
        }
    }
    let policy = o
        .pointer("/spec/persistentVolumeReclaimPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !["Retain", "Delete", "Recycle"].contains(&policy) {
        causes.push(cause(
            "FieldValueNotSupported",
            "spec.persistentVolumeReclaimPolicy",
            format!("Unsupported value: \"{policy}\": supported values: \"Delete\", \"Recycle\", \"Retain\""),
        ));
    }
    causes
}

fn pv_cells(o: &Value) -> Vec<Value> {
    let modes = short_modes(o.pointer("/spec/accessModes"));
    let claim = o
        .pointer("/spec/claimRef")
        .filter(|c| c.is_object())
        .map(|c| format!("{}/{}", c["namespace"].as_str().unwrap_or(""), c["name"].as_str().unwrap_or("")))
        .unwrap_or_default();
    vec![
        json!(o.pointer("/spec/capacity/storage").and_then(Value::as_str).unwrap_or("")),
        json!(modes),
        json!(o
            .pointer("/spec/persistentVolumeReclaimPolicy")
            .and_then(Value::as_str)
            .unwrap_or("")),
        json!(o.pointer("/status/phase").and_then(Value::as_str).unwrap_or("")),
        json!(claim),
        json!(o.pointer("/spec/storageClassName").and_then(Value::as_str).unwrap_or("")),
        json!(o
            .pointer("/spec/volumeAttributesClassName")
            .and_then(Value::as_str)
            .unwrap_or("<unset>")),
        json!(o.pointer("/status/reason").and_then(Value::as_str).unwrap_or("")),
        json!(super::table::age(o)),
        json!(o.pointer("/spec/volumeMode").and_then(Value::as_str).unwrap_or("")),
    ]
}

/// RWO, ROX, RWX, RWOP, as kubectl abbreviates access modes.
fn short_modes(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn admit_pvc(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    set_default(o, "/spec/volumeMode", json!("Filesystem"));
    access_modes(o, "spec.accessModes", &mut causes);
    quantity(o, "/spec/resources/requests/storage", "spec.resources[storage]", &mut causes);
    match old {
        None => o["status"] = json!({"phase": "Pending"}),
        Some(old) => {
            // Once made, only the requested size (to grow it) and the attributes class change.
            let masked = |v: &Value| {
                let mut s = super::fields::without_nulls(&v["spec"]);
                if let Some(m) = s.as_object_mut() {
                    m.remove("resources");
                    m.remove("volumeAttributesClassName");
                    if old.pointer("/spec/volumeName").is_none_or(|n| n == "") {
                        m.remove("volumeName");
                    }
                    // A claim made without a class may be given one once (the default).
                    if old.pointer("/spec/storageClassName").is_none_or(Value::is_null) {
                        m.remove("storageClassName");
                    }
                }
                s
            };
            if masked(o) != masked(old) {
                causes.push(cause(
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
        }
    }
    causes
}

fn pvc_cells(o: &Value) -> Vec<Value> {
    vec![
        json!(o.pointer("/status/phase").and_then(Value::as_str).unwrap_or("")),
        json!(o.pointer("/spec/volumeName").and_then(Value::as_str).unwrap_or("")),
        json!(o.pointer("/status/capacity/storage").and_then(Value::as_str).unwrap_or("")),
        json!(short_modes(o.pointer("/status/accessModes"))),
        json!(o.pointer("/spec/storageClassName").and_then(Value::as_str).unwrap_or("")),
        json!(o
            .pointer("/spec/volumeAttributesClassName")
            .and_then(Value::as_str)
            .unwrap_or("<unset>")),
        json!(super::table::age(o)),
        json!(o.pointer("/spec/volumeMode").and_then(Value::as_str).unwrap_or("")),
    ]
}

fn admit_storage_class(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    if o.get("reclaimPolicy").is_none_or(Value::is_null) {
        o["reclaimPolicy"] = json!("Delete");
    }
    if o.get("volumeBindingMode").is_none_or(Value::is_null) {
        o["volumeBindingMode"] = json!("Immediate");
    }
    if o["provisioner"].as_str().is_none_or(str::is_empty) {
        causes.push(cause("FieldValueRequired", "provisioner", "Required value"));
    }
    let mode = o["volumeBindingMode"].as_str().unwrap_or("");
    if !["Immediate", "WaitForFirstConsumer"].contains(&mode) {
        causes.push(cause(
            "FieldValueNotSupported",
            "volumeBindingMode",
            format!("Unsupported value: \"{mode}\": supported values: \"Immediate\", \"WaitForFirstConsumer\""),
        ));
    }
    let policy = o["reclaimPolicy"].as_str().unwrap_or("");
    if !["Delete", "Retain"].contains(&policy) {
        causes.push(cause(
            "FieldValueNotSupported",
            "reclaimPolicy",
            format!("Unsupported value: \"{policy}\": supported values: \"Delete\", \"Retain\""),
        ));
    }
    if let Some(old) = old {
        for f in ["provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"] {
            if old.get(f) != o.get(f) {
                causes.push(cause("FieldValueForbidden", f, format!("Forbidden: updates to {f} are forbidden.")));
            }
        }
    }
    causes
}

/// The default StorageClass's annotation (`kubectl get sc` shows the class as `(default)`).
pub const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

/// The `local-path` StorageClass every cluster here has, marked default: volumes made on the
/// node by its provisioner (`controllers::volumes`), deleted with their claims.
pub async fn ensure_default_class(store: &dyn crate::store::Store) -> super::status::ApiResult<()> {
    let Some(res) = super::resources::find("storage.k8s.io", "v1", "storageclasses") else {
        return Ok(());
    };
    let o = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-path", "annotations": {DEFAULT_CLASS: "true"}},
        "provisioner": crate::controllers::volumes::PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
    });
    super::objects::ensure_object(store, res, None, o).await
}

fn admit_pdb(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    let min = o.pointer("/spec/minAvailable").filter(|v| !v.is_null()).cloned();
    let max = o.pointer("/spec/maxUnavailable").filter(|v| !v.is_null()).cloned();
    if min.is_some() && max.is_some() {
        causes.push(cause(
            "FieldValueInvalid",
            "spec",
            "Invalid value: policy.PodDisruptionBudgetSpec{...}: minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (f, v) in [("minAvailable", &min), ("maxUnavailable", &max)] {
        if let Some(v) = v {
            match super::workloads::int_or_percent(v, 100, true) {
                Ok(n) if n < 0 => causes.push(cause(
                    "FieldValueInvalid",
                    format!("spec.{f}"),
                    format!("Invalid value: {v}: must be greater than or equal to 0"),
                )),
                Ok(_) => {}
                Err(e) => causes.push(cause("FieldValueInvalid", format!("spec.{f}"), format!("Invalid value: {v}: {e}"))),
            }
        }
    }
    let policy = o.pointer("/spec/unhealthyPodEvictionPolicy").and_then(Value::as_str);
    if let Some(p) = policy.filter(|p| !["IfHealthyBudget", "AlwaysAllow"].contains(p)) {
        causes.push(cause(
            "FieldValueNotSupported",
            "spec.unhealthyPodEvictionPolicy",
            format!("Unsupported value: \"{p}\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""),
        ));
    }
    causes
}

fn pdb_cells(o: &Value) -> Vec<Value> {
    let show = |p: &str| match o.pointer(p) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    };
    vec![
        json!(show("/spec/minAvailable")),
        json!(show("/spec/maxUnavailable")),
        json!(o.pointer("/status/disruptionsAllowed").and_then(Value::as_i64).unwrap_or(0)),
        json!(super::table::age(o)),
    ]
}

fn scaling_rules(up: bool) -> Value {
    if up {
        json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]})
    } else {
        json!({"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]})
    }
}

/// An autoscaler's replica bounds and target (both versions).
fn check_scale_bounds(o: &Value, causes: &mut Vec<Cause>) {
    let min = o.pointer("/spec/minReplicas").and_then(Value::as_i64).unwrap_or(1);
    let max = o.pointer("/spec/maxReplicas").and_then(Value::as_i64).unwrap_or(0);
    if min < 1 {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.minReplicas",
            format!("Invalid value: {min}: must be greater than or equal to 1"),
        ));
    }
    if max < 1 {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.maxReplicas",
            format!("Invalid value: {max}: must be greater than 0"),
        ));
    } else if max < min {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.maxReplicas",
            format!("Invalid value: {max}: must be greater than or equal to `minReplicas`"),
        ));
    }
    for f in ["kind", "name"] {
        if o.pointer(&format!("/spec/scaleTargetRef/{f}"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(cause("FieldValueRequired", format!("spec.scaleTargetRef.{f}"), "Required value"));
        }
    }
}

fn admit_hpa(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    set_default(o, "/spec/minReplicas", json!(1));
    if o.pointer("/spec/metrics").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        o["spec"]["metrics"] =
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    // A behavior given is completed with the defaults (SetDefaults_HorizontalPodAutoscalerBehavior).
    if o.pointer("/spec/behavior").is_some_and(Value::is_object) {
        for (dir, up) in [("scaleUp", true), ("scaleDown", false)] {
            let d = scaling_rules(up);
            let b = &mut o["spec"]["behavior"][dir];
            if !b.is_object() {
                *b = d;
            } else {
                for k in ["stabilizationWindowSeconds", "selectPolicy", "policies"] {
                    if b.get(k).is_none_or(Value::is_null) {
                        b[k] = d[k].clone();
                    }
                }
            }
        }
    }
    check_scale_bounds(o, &mut causes);
    for (i, m) in o
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ty = m["type"].as_str().unwrap_or("");
        let field = match ty {
            "Resource" => "resource",
            "ContainerResource" => "containerResource",
            "Pods" => "pods",
            "Object" => "object",
            "External" => "external",
            other => {
                causes.push(cause(
                    "FieldValueNotSupported",
                    format!("spec.metrics[{i}].type"),
                    format!("Unsupported value: \"{other}\": supported values: \"ContainerResource\", \"External\", \"Object\", \"Pods\", \"Resource\""),
                ));
                continue;
            }
        };
        if m.get(field).is_none_or(Value::is_null) {
            causes.push(cause(
                "FieldValueRequired",
                format!("spec.metrics[{i}].{field}"),
                format!("Required value: must populate information for the given metric source (type {ty})"),
            ));
        }
    }
    causes
}

fn hpa_cells(o: &Value) -> Vec<Value> {
    let r = &o["spec"]["scaleTargetRef"];
    let reference = format!("{}/{}", r["kind"].as_str().unwrap_or(""), r["name"].as_str().unwrap_or(""));
    let current = o
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let targets: Vec<String> = o
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| {
            let name = m.pointer("/resource/name").and_then(Value::as_str).unwrap_or("");
            let t = m.pointer("/resource/target").cloned().unwrap_or(Value::Null);
            let now = current.get(i).and_then(|c| c.pointer("/resource/current"));
            match t["type"].as_str() {
                Some("Utilization") => format!(
                    "{name}: {}/{}%",
                    now.and_then(|c| c["averageUtilization"].as_i64())
                        .map_or("<unknown>".into(), |u| format!("{u}%")),
                    t["averageUtilization"]
                ),
                Some("AverageValue") => format!(
                    "{name}: {}/{}",
                    now.and_then(|c| c["averageValue"].as_str()).unwrap_or("<unknown>"),
                    t["averageValue"].as_str().unwrap_or("")
                ),
                _ => format!("{name}: <unknown>"),
            }
        })
        .collect();
    vec![
        json!(reference),
        json!(if targets.is_empty() {
            "<none>".to_string()
        } else {
            targets.join(", ")
        }),
        json!(o.pointer("/spec/minReplicas").and_then(Value::as_i64).unwrap_or(1)),
        json!(o.pointer("/spec/maxReplicas").and_then(Value::as_i64).unwrap_or(0)),
        json!(o.pointer("/status/currentReplicas").and_then(Value::as_i64).unwrap_or(0)),
        json!(super::table::age(o)),
    ]
}

fn admit_limit_range(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    for (i, l) in o
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ty = l["type"].as_str().unwrap_or("");
        if !["Container", "Pod", "PersistentVolumeClaim"].contains(&ty) {
            causes.push(cause(
                "FieldValueNotSupported",
                format!("spec.limits[{i}].type"),
                format!("Unsupported value: \"{ty}\": supported values: \"Container\", \"PersistentVolumeClaim\", \"Pod\""),
            ));
        }
    }
    causes
}

fn admit_resource_quota(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    causes.extend(super::quota::validate(o));
    causes
}

fn quota_cells(o: &Value) -> Vec<Value> {
    let (mut req, mut lim) = (Vec::new(), Vec::new());
    for (k, v) in o.pointer("/spec/hard").and_then(Value::as_object).into_iter().flatten() {
        let used = o
            .pointer(&format!("/status/used/{}", k.replace('/', "~1")))
            .and_then(Value::as_str)
            .unwrap_or("0");
        let cell = format!("{k}: {used}/{}", v.as_str().unwrap_or(""));
        if k.starts_with("limits.") {
            lim.push(cell);
        } else {
            req.push(cell);
        }
    }
    vec![json!(super::table::age(o)), json!(req.join(", ")), json!(lim.join(", "))]
}

fn admit_priority_class(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    if o.get("preemptionPolicy").is_none_or(Value::is_null) {
        o["preemptionPolicy"] = json!("PreemptLowerPriority");
    }
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    if name.starts_with("system-") && !["system-cluster-critical", "system-node-critical"].contains(&name) {
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": priority class names with 'system-' prefix are reserved"),
        ));
    }
    match o["value"].as_i64() {
        None => causes.push(cause("FieldValueRequired", "value", "Required value")),
        Some(v) if v > 1_000_000_000 && !name.starts_with("system-") => causes.push(cause(
            "FieldValueForbidden",
            "value",
            format!("Forbidden: maximum allowed value of a user defined priority is 1000000000 (got {v})"),
        )),
        _ => {}
    }
    if let Some(old) = old {
        if old["value"] != o["value"] {
            causes.push(cause("FieldValueForbidden", "value", "Forbidden: may not be changed in an update."));
        }
    }
    causes
}

use k8s_openapi::api::autoscaling::v2 as autoscaling;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1 as policy;
use k8s_openapi::api::scheduling::v1 as scheduling;
use k8s_openapi::api::storage::v1 as storage;

/// core/v1 PersistentVolume.
pub const PERSISTENT_VOLUME: Resource = Resource {
    short_names: &["pv"],
    columns: &[
        col("Capacity", "string", "Capacity of the volume.", 0),
        col("Access Modes", "string", "Access modes of the volume.", 0),
        col(
            "Reclaim Policy",
            "string",
            "What happens to the volume when its claim is released.",
            0,
        ),
        col("Status", "string", "Phase of the volume.", 0),
        col("Claim", "string", "The claim bound to the volume.", 0),
        col("StorageClass", "string", "The storage class of the volume.", 0),
        col("VolumeAttributesClass", "string", "The volume attributes class of the volume.", 0),
        col("Reason", "string", "Why the volume is in its phase.", 0),
        AGE,
        col("VolumeMode", "string", "Filesystem or Block.", 1),
    ],
    cells: pv_cells,
    subresources: &["status"],
    ..Resource::new(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
        super::typed::schema::<core::PersistentVolume>,
        super::typed::decode::<core::PersistentVolume>,
        admit_pv,
    )
};

/// core/v1 PersistentVolumeClaim.
pub const PERSISTENT_VOLUME_CLAIM: Resource = Resource {
    short_names: &["pvc"],
    columns: &[
        col("Status", "string", "Phase of the claim.", 0),
        col("Volume", "string", "The volume bound to the claim.", 0),
        col("Capacity", "string", "Capacity of the bound volume.", 0),
        col("Access Modes", "string", "Access modes of the bound volume.", 0),
        col("StorageClass", "string", "The storage class of the claim.", 0),
        col("VolumeAttributesClass", "string", "The volume attributes class of the claim.", 0),
        AGE,
        col("VolumeMode", "string", "Filesystem or Block.", 1),
    ],
    cells: pvc_cells,
    subresources: &["status"],
    ..Resource::new(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        super::typed::schema::<core::PersistentVolumeClaim>,
        super::typed::decode::<core::PersistentVolumeClaim>,
        admit_pvc,
    )
};

/// storage.k8s.io/v1 StorageClass.
pub const STORAGE_CLASS: Resource = Resource {
    short_names: &["sc"],
    columns: &[
        col("Provisioner", "string", "Provisioner of the class.", 0),
        col(
            "ReclaimPolicy",
            "string",
            "What happens to a dynamically provisioned volume when its claim goes.",
            0,
        ),
        col("VolumeBindingMode", "string", "When volumes are bound and provisioned.", 0),
        col("AllowVolumeExpansion", "string", "Whether volumes of the class can grow.", 0),
        AGE,
    ],
    cells: |o| {
        vec![
            json!(o["provisioner"].as_str().unwrap_or("")),
            json!(o["reclaimPolicy"].as_str().unwrap_or("Delete")),
            json!(o["volumeBindingMode"].as_str().unwrap_or("Immediate")),
            json!(o["allowVolumeExpansion"].as_bool().unwrap_or(false).to_string()),
            json!(super::table::age(o)),
        ]
    },
    ..Resource::new(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        "storageclass",
        false,
        super::typed::schema::<storage::StorageClass>,
        super::typed::decode::<storage::StorageClass>,
        admit_storage_class,
    )
};

/// policy/v1 PodDisruptionBudget.
pub const POD_DISRUPTION_BUDGET: Resource = Resource {
    short_names: &["pdb"],
    columns: &[
        col("Min Available", "string", "The minimum number of pods that must be available.", 0),
        col(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
            0,
        ),
        col(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
            0,
        ),
        AGE,
    ],
    cells: pdb_cells,
    subresources: &["status"],
    ..Resource::new(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        super::typed::schema::<policy::PodDisruptionBudget>,
        super::typed::decode::<policy::PodDisruptionBudget>,
        admit_pdb,
    )
};

/// autoscaling/v2 HorizontalPodAutoscaler.
pub const HORIZONTAL_POD_AUTOSCALER: Resource = Resource {
    short_names: &["hpa"],
    columns: &[
        col("Reference", "string", "The scale target.", 0),
        col("Targets", "string", "Current and target metrics.", 0),
        col("MinPods", "string", "The lower limit of replicas.", 0),
        col("MaxPods", "string", "The upper limit of replicas.", 0),
        col("Replicas", "string", "The current number of replicas.", 0),
        AGE,
    ],
    cells: hpa_cells,
    subresources: &["status"],
    ..Resource::new(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        super::typed::schema::<autoscaling::HorizontalPodAutoscaler>,
        super::typed::decode::<autoscaling::HorizontalPodAutoscaler>,
        admit_hpa,
    )
};

/// core/v1 LimitRange.
pub const LIMIT_RANGE: Resource = Resource {
    short_names: &["limits"],
    columns: &[col("Created At", "date", "Time the limit range was created.", 0)],
    cells: |o| {
        vec![json!(o
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or(""))]
    },
    ..Resource::new(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        "limitrange",
        true,
        super::typed::schema::<core::LimitRange>,
        super::typed::decode::<core::LimitRange>,
        admit_limit_range,
    )
};

/// core/v1 ResourceQuota.
pub const RESOURCE_QUOTA: Resource = Resource {
    short_names: &["quota"],
    columns: &[
        AGE,
        col("Request", "string", "Requests and their use.", 0),
        col("Limit", "string", "Limits and their use.", 0),
    ],
    cells: quota_cells,
    subresources: &["status"],
    ..Resource::new(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        "resourcequota",
        true,
        super::typed::schema::<core::ResourceQuota>,
        super::typed::decode::<core::ResourceQuota>,
        admit_resource_quota,
    )
};

/// scheduling.k8s.io/v1 PriorityClass.
pub const PRIORITY_CLASS: Resource = Resource {
    short_names: &["pc"],
    columns: &[
        col("Value", "integer", "The priority of pods of the class.", 0),
        col("Global-Default", "boolean", "Whether pods without a class get this one.", 0),
        AGE,
        col("PreemptionPolicy", "string", "Whether pods of the class preempt lower ones.", 0),
    ],
    cells: |o| {
        vec![
            json!(o["value"].as_i64().unwrap_or(0)),
            json!(o["globalDefault"].as_bool().unwrap_or(false)),
            json!(super::table::age(o)),
            json!(o["preemptionPolicy"].as_str().unwrap_or("")),
        ]
    },
    ..Resource::new(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        false,
        super::typed::schema::<scheduling::PriorityClass>,
        super::typed::decode::<scheduling::PriorityClass>,
        admit_priority_class,
    )
};

/// Annotations that carry what autoscaling/v1 has no field for, as the real server keeps them
/// (so a v1 client's read-modify-write keeps a v2 object whole).
const V1_METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const V1_BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const V1_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const V1_CURRENT: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m.pointer("/resource/name") == Some(&json!("cpu"))
        && m.pointer("/resource/target/type") == Some(&json!("Utilization"))
}

/// A stored (autoscaling/v2) HorizontalPodAutoscaler as autoscaling/v1 shows it: the CPU
/// utilization target as `targetCPUUtilizationPercentage`, the rest in annotations.
pub fn hpa_v1_from_v2(mut o: Value) -> Value {
    let spec = o["spec"].take();
    let status = o["status"].take();
    let metrics: Vec<Value> = spec["metrics"].as_array().cloned().unwrap_or_default();
    let (cpu, other): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    let mut annotations: Vec<(&str, Value)> = Vec::new();
    if !other.is_empty() {
        annotations.push((V1_METRICS, json!(other)));
    }
    if spec.get("behavior").is_some_and(|b| !b.is_null()) {
        annotations.push((V1_BEHAVIOR, spec["behavior"].clone()));
    }
    if status.get("conditions").is_some_and(|c| !c.is_null()) {
        annotations.push((V1_CONDITIONS, status["conditions"].clone()));
    }
    let current: Vec<Value> = status["currentMetrics"].as_array().cloned().unwrap_or_default();
    let cpu_now = current
        .iter()
        .find(|m| m["type"] == "Resource" && m.pointer("/resource/name") == Some(&json!("cpu")))
        .and_then(|m| m.pointer("/resource/current/averageUtilization").cloned());
    if !current.is_empty() {
        annotations.push((V1_CURRENT, json!(current)));
    }
    for (k, v) in annotations {
        if !o["metadata"]["annotations"].is_object() {
            o["metadata"]["annotations"] = json!({});
        }
        o["metadata"]["annotations"][k] = json!(v.to_string());
    }
    let mut s1 = json!({"scaleTargetRef": spec["scaleTargetRef"], "maxReplicas": spec["maxReplicas"]});
    if !spec["minReplicas"].is_null() {
        s1["minReplicas"] = spec["minReplicas"].clone();
    }
    if let Some(u) = cpu.first().and_then(|m| m.pointer("/resource/target/averageUtilization")) {
        s1["targetCPUUtilizationPercentage"] = u.clone();
    }
    o["spec"] = s1;
    let mut st = json!({});
    for k in ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"] {
        if let Some(v) = status.get(k).filter(|v| !v.is_null()) {
            st[k] = v.clone();
        }
    }
    if let Some(u) = cpu_now {
        st["currentCPUUtilizationPercentage"] = u;
    }
    if st.get("desiredReplicas").is_none() && status.is_object() {
        st["desiredReplicas"] = json!(0);
    }
    if st.get("currentReplicas").is_none() && status.is_object() {
        st["currentReplicas"] = json!(0);
    }
    o["status"] = st;
    o
}

/// An autoscaling/v1 HorizontalPodAutoscaler as it is stored (autoscaling/v2): the inverse of
/// [`hpa_v1_from_v2`], the annotations taken back into fields.
pub fn hpa_v2_from_v1(mut o: Value) -> Value {
    let mut take = |k: &str| -> Option<Value> {
        let a = o.pointer_mut("/metadata/annotations")?.as_object_mut()?;
        let v = a.remove(k)?;
        if a.is_empty() {
            o["metadata"].as_object_mut()?.remove("annotations");
        }
        serde_json::from_str(v.as_str()?).ok()
    };
    let other = take(V1_METRICS);
    let behavior = take(V1_BEHAVIOR);
    let conditions = take(V1_CONDITIONS);
    let current = take(V1_CURRENT);
    let spec = o["spec"].take();
    let status = o["status"].take();
    let mut metrics = Vec::new();
    if let Some(u) = spec.get("targetCPUUtilizationPercentage").filter(|u| !u.is_null()) {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": u}}}));
    }
    metrics.extend(other.and_then(|m| m.as_array().cloned()).unwrap_or_default());
    if metrics.is_empty() {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}));
    }
    let mut s2 = json!({"scaleTargetRef": spec["scaleTargetRef"], "maxReplicas": spec["maxReplicas"], "metrics": metrics});
    if !spec["minReplicas"].is_null() {
        s2["minReplicas"] = spec["minReplicas"].clone();
    }
    if let Some(b) = behavior {
        s2["behavior"] = b;
    }
    o["spec"] = s2;
    let mut st = json!({});
    for k in ["observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"] {
        if let Some(v) = status.get(k).filter(|v| !v.is_null()) {
            st[k] = v.clone();
        }
    }
    if let Some(c) = conditions {
        st["conditions"] = c;
    }
    if let Some(c) = current {
        st["currentMetrics"] = c;
    } else if let Some(u) = status.get("currentCPUUtilizationPercentage").filter(|u| !u.is_null()) {
        st["currentMetrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}]);
    }
    o["status"] = st;
    o
}

fn admit_hpa_v1(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    set_default(o, "/spec/minReplicas", json!(1));
    check_scale_bounds(o, &mut causes);
    if let Some(u) = o.pointer("/spec/targetCPUUtilizationPercentage").and_then(Value::as_i64) {
        if u < 1 {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.targetCPUUtilizationPercentage",
                format!("Invalid value: {u}: must be greater than 0"),
            ));
        }
    }
    causes
}

/// autoscaling/v1 HorizontalPodAutoscaler: the same objects as v2, converted on the way in
/// and out ([`hpa_v1_from_v2`]).
pub const HORIZONTAL_POD_AUTOSCALER_V1: Resource = Resource {
    short_names: &["hpa"],
    columns: HORIZONTAL_POD_AUTOSCALER.columns,
    cells: |o| hpa_cells(&hpa_v2_from_v1(o.clone())),
    subresources: &["status"],
    ..Resource::new(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        super::typed::schema::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>,
        super::typed::decode::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>,
        admit_hpa_v1,
    )
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_classes_and_autoscalers_are_defaulted_and_validated() {
        let mut pvc = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        assert!(admit_pvc(&mut pvc, None).is_empty());
        assert_eq!(
            (pvc["spec"]["volumeMode"].clone(), pvc["status"]["phase"].clone()),
            (json!("Filesystem"), json!("Pending"))
        );
        let mut bad = json!({"metadata": {"name": "data"}, "spec": {"accessModes": ["Sometimes"]}});
        let fields: Vec<String> = admit_pvc(&mut bad, None).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.accessModes", "spec.resources[storage]"]);
        let mut sc = json!({"metadata": {"name": "local-path"}, "provisioner": "berth.dev/local-path"});
        assert!(admit_storage_class(&mut sc, None).is_empty());
        assert_eq!(sc["reclaimPolicy"], "Delete");
        let mut hpa = json!({"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        assert!(admit_hpa(&mut hpa, None).is_empty());
        assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 80);
        assert_eq!(hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["value"], 4);
        assert_eq!(hpa_cells(&hpa)[1], "cpu: <unknown>/80%");

        // Served as autoscaling/v1 and written back, a v2 object loses nothing.
        hpa["spec"]["metrics"] = json!([
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}]);
        hpa["status"] = json!({"currentReplicas": 2, "desiredReplicas": 3, "conditions": [{"type": "AbleToScale", "status": "True"}]});
        let v1 = hpa_v1_from_v2(hpa.clone());
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
        assert_eq!(v1["status"]["desiredReplicas"], 3);
        assert!(v1["metadata"]["annotations"][V1_METRICS].as_str().unwrap().contains("memory"));
        assert_eq!(hpa_v2_from_v1(v1), hpa);
    }
}
