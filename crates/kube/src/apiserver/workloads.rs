//! Workload kinds as the API server keeps them: apps/v1 (Deployment, ReplicaSet, StatefulSet,
//! DaemonSet, ControllerRevision) and batch/v1 (Job, CronJob) — Kubernetes' defaulting
//! (`SetDefaults_*`, the pod template's too), their validation (the selector must select the
//! template, replicas may not be negative, a Job's pods may not restart Always, a CronJob's
//! schedule must parse), what may not change, and the columns `kubectl get` prints. The
//! controllers that act on them are the next issue's.

use serde_json::{json, Value};

use super::pods::{check_pod_spec, default_pod_spec};
use super::resources::{cause, check_metadata, col, set_default, Column, Resource, AGE};
use super::select::{selector_string, selects};
use super::status::Cause;

/// The kinds whose `metadata.generation` the server keeps (1 at creation, one more whenever
/// the spec changes).
pub const GENERATION_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
];

/// The pod template at `spec.template` (or `spec.jobTemplate.spec.template`): defaulted, and
/// validated with its labels selected by `selector` (when the kind has one).
fn template(o: &mut Value, at: &str, selector: Option<&Value>, restart: &[&str], causes: &mut Vec<Cause>) {
    let ptr = format!("/{}", at.replace('.', "/"));
    let Some(t) = o.pointer_mut(&ptr) else {
        causes.push(cause("FieldValueRequired", at, "Required value"));
        return;
    };
    if !t.is_object() {
        causes.push(cause("FieldValueRequired", at, "Required value"));
        return;
    }
    if !t["spec"].is_object() {
        causes.push(cause("FieldValueRequired", format!("{at}.spec.containers"), "Required value"));
        return;
    }
    default_pod_spec(&mut t["spec"]);
    check_pod_spec(&t["spec"], &format!("{at}.spec"), causes);
    let policy = t.pointer("/spec/restartPolicy").and_then(Value::as_str).unwrap_or("");
    if !restart.contains(&policy) {
        let quoted: Vec<String> = restart.iter().map(|r| format!("\"{r}\"")).collect();
        causes.push(cause(
            "FieldValueNotSupported",
            format!("{at}.spec.restartPolicy"),
            format!("Unsupported value: \"{policy}\": supported values: {}", quoted.join(", ")),
        ));
    }
    if let Some(sel) = selector {
        let labels = t.pointer("/metadata/labels");
        if labels.and_then(Value::as_object).is_none_or(|l| l.is_empty()) && !is_empty_selector(sel) {
            causes.push(cause("FieldValueRequired", format!("{at}.metadata.labels"), "Required value"));
        } else if !selects(sel, labels) {
            causes.push(cause(
                "FieldValueInvalid",
                format!("{at}.metadata.labels"),
                format!(
                    "Invalid value: {}: `selector` does not match template `labels`",
                    labels.map(Value::to_string).unwrap_or_else(|| "{}".into())
                ),
            ));
        }
    }
}

fn is_empty_selector(sel: &Value) -> bool {
    sel.get("matchLabels").and_then(Value::as_object).is_none_or(|m| m.is_empty())
        && sel.get("matchExpressions").and_then(Value::as_array).is_none_or(|m| m.is_empty())
}

/// spec.selector: required and not empty (apps/v1), immutable.
fn selector(o: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) -> Option<Value> {
    let sel = o.pointer("/spec/selector").filter(|s| s.is_object()).cloned();
    match &sel {
        None => causes.push(cause("FieldValueRequired", "spec.selector", "Required value")),
        Some(s) if is_empty_selector(s) => causes.push(cause(
            "FieldValueInvalid",
            "spec.selector",
            "Invalid value: \"null\": empty selector is invalid for deployment",
        )),
        Some(s) => {
            for (i, e) in s
                .get("matchExpressions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let op = e["operator"].as_str().unwrap_or("");
                if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&op) {
                    causes.push(cause(
                        "FieldValueNotSupported",
                        format!("spec.selector.matchExpressions[{i}].operator"),
                        format!("Unsupported value: \"{op}\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""),
                    ));
                }
            }
        }
    }
    if let (Some(old), Some(s)) = (old, &sel) {
        if old.pointer("/spec/selector") != Some(s) {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.selector",
                format!("Invalid value: {s}: field is immutable"),
            ));
        }
    }
    sel
}

fn non_negative(o: &Value, field: &str, causes: &mut Vec<Cause>) {
    let ptr = format!("/{}", field.replace('.', "/"));
    if let Some(n) = o.pointer(&ptr).and_then(Value::as_i64) {
        if n < 0 {
            causes.push(cause(
                "FieldValueInvalid",
                field,
                format!("Invalid value: {n}: must be greater than or equal to 0"),
            ));
        }
    }
}

/// An int-or-string percentage or count (`25%`, `1`): its value against `total`, rounding up
/// or down as Kubernetes does; an error for anything else.
pub fn int_or_percent(v: &Value, total: i64, round_up: bool) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
        Value::String(s) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%') (got {s:?})"))?;
            let x = p * total;
            Ok(if round_up { (x + 99) / 100 } else { x / 100 })
        }
        other => Err(format!("{other} is neither an integer nor a percentage")),
    }
}

fn rolling(o: &Value, at: &str, causes: &mut Vec<Cause>) {
    let ptr = format!("/{}", at.replace('.', "/"));
    let Some(r) = o.pointer(&ptr) else { return };
    let mut vals = Vec::new();
    for f in ["maxUnavailable", "maxSurge"] {
        if let Some(v) = r.get(f).filter(|v| !v.is_null()) {
            match int_or_percent(v, 100, true) {
                Ok(n) if n < 0 => causes.push(cause(
                    "FieldValueInvalid",
                    format!("{at}.{f}"),
                    format!("Invalid value: {v}: must be greater than or equal to 0"),
                )),
                Ok(n) => vals.push((f, n, v.clone())),
                Err(e) => causes.push(cause("FieldValueInvalid", format!("{at}.{f}"), format!("Invalid value: {v}: {e}"))),
            }
            if v.as_str()
                .is_some_and(|s| s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()).is_some_and(|p| p > 100))
                && f == "maxUnavailable"
            {
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("{at}.{f}"),
                    format!("Invalid value: {v}: must not be greater than 100%"),
                ));
            }
        }
    }
    let zero = |f: &str| vals.iter().any(|(n, v, _)| *n == f && *v == 0);
    if zero("maxUnavailable") && zero("maxSurge") {
        causes.push(cause(
            "FieldValueInvalid",
            format!("{at}.maxUnavailable"),
            "Invalid value: 0: may not be 0 when `maxSurge` is 0",
        ));
    }
}

fn admit_deployment(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    set_default(o, "/spec/replicas", json!(1));
    set_default(o, "/spec/revisionHistoryLimit", json!(10));
    set_default(o, "/spec/progressDeadlineSeconds", json!(600));
    set_default(o, "/spec/strategy/type", json!("RollingUpdate"));
    match o.pointer("/spec/strategy/type").and_then(Value::as_str).unwrap_or("") {
        "RollingUpdate" => {
            set_default(o, "/spec/strategy/rollingUpdate/maxUnavailable", json!("25%"));
            set_default(o, "/spec/strategy/rollingUpdate/maxSurge", json!("25%"));
            rolling(o, "spec.strategy.rollingUpdate", &mut causes);
        }
        "Recreate" => {
            if o.pointer("/spec/strategy/rollingUpdate").is_some_and(|r| !r.is_null()) {
                causes.push(cause(
                    "FieldValueForbidden",
                    "spec.strategy.rollingUpdate",
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        other => causes.push(cause(
            "FieldValueNotSupported",
            "spec.strategy.type",
            format!("Unsupported value: \"{other}\": supported values: \"Recreate\", \"RollingUpdate\""),
        )),
    }
    for f in [
        "spec.replicas",
        "spec.revisionHistoryLimit",
        "spec.minReadySeconds",
        "spec.progressDeadlineSeconds",
    ] {
        non_negative(o, f, &mut causes);
    }
    let pd = o.pointer("/spec/progressDeadlineSeconds").and_then(Value::as_i64).unwrap_or(600);
    let mr = o.pointer("/spec/minReadySeconds").and_then(Value::as_i64).unwrap_or(0);
    if pd <= mr {
        causes.push(cause(
            "FieldValueInvalid",
            "spec.progressDeadlineSeconds",
            format!("Invalid value: {pd}: must be greater than minReadySeconds"),
        ));
    }
    let sel = selector(o, old, &mut causes);
    template(o, "spec.template", sel.as_ref(), &["Always"], &mut causes);
    causes
}

fn admit_replica_set(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    set_default(o, "/spec/replicas", json!(1));
    for f in ["spec.replicas", "spec.minReadySeconds"] {
        non_negative(o, f, &mut causes);
    }
    let sel = selector(o, old, &mut causes);
    template(o, "spec.template", sel.as_ref(), &["Always"], &mut causes);
    causes
}

fn admit_stateful_set(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    set_default(o, "/spec/replicas", json!(1));
    set_default(o, "/spec/podManagementPolicy", json!("OrderedReady"));
    set_default(o, "/spec/revisionHistoryLimit", json!(10));
    set_default(o, "/spec/updateStrategy/type", json!("RollingUpdate"));
    if o.pointer("/spec/updateStrategy/type").and_then(Value::as_str) == Some("RollingUpdate") {
        set_default(o, "/spec/updateStrategy/rollingUpdate/partition", json!(0));
    }
    set_default(o, "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted", json!("Retain"));
    set_default(o, "/spec/persistentVolumeClaimRetentionPolicy/whenScaled", json!("Retain"));
    for f in [
        "spec.replicas",
        "spec.minReadySeconds",
        "spec.updateStrategy.rollingUpdate.partition",
    ] {
        non_negative(o, f, &mut causes);
    }
    let policy = o.pointer("/spec/podManagementPolicy").and_then(Value::as_str).unwrap_or("");
    if !["OrderedReady", "Parallel"].contains(&policy) {
        causes.push(cause(
            "FieldValueNotSupported",
            "spec.podManagementPolicy",
            format!("Unsupported value: \"{policy}\": supported values: \"OrderedReady\", \"Parallel\""),
        ));
    }
    let strategy = o.pointer("/spec/updateStrategy/type").and_then(Value::as_str).unwrap_or("");
    if !["RollingUpdate", "OnDelete"].contains(&strategy) {
        causes.push(cause(
            "FieldValueNotSupported",
            "spec.updateStrategy.type",
            format!("Unsupported value: \"{strategy}\": supported values: \"OnDelete\", \"RollingUpdate\""),
        ));
    }
    let sel = selector(o, old, &mut causes);
    if let Some(old) = old {
        // What a StatefulSet update may change: replicas, ordinals, template, update
        // strategy, persistentVolumeClaimRetentionPolicy, minReadySeconds, revisionHistoryLimit.
        let masked = |v: &Value| {
            let mut s = super::fields::without_nulls(&v["spec"]);
            if let Some(m) = s.as_object_mut() {
                for k in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                    "revisionHistoryLimit",
                    "selector",
                ] {
                    m.remove(k);
                }
            }
            s
        };
        if masked(o) != masked(old) {
            causes.push(cause(
                "FieldValueForbidden",
                "spec",
                "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
    // The claim templates are volumes of every pod: mounts may name them.
    let claims: Vec<String> = o
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str).map(String::from))
        .collect();
    let added: Vec<String> = match o.pointer_mut("/spec/template/spec").and_then(Value::as_object_mut) {
        Some(spec) => {
            let vols = spec.entry("volumes").or_insert_with(|| json!([]));
            let have: Vec<String> = vols
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["name"].as_str().map(String::from))
                .collect();
            let added: Vec<String> = claims.iter().filter(|c| !have.contains(c)).cloned().collect();
            if let Some(a) = vols.as_array_mut() {
                a.extend(added.iter().map(|n| json!({"name": n, "persistentVolumeClaim": {"claimName": n}})));
            }
            added
        }
        None => Vec::new(),
    };
    template(o, "spec.template", sel.as_ref(), &["Always"], &mut causes);
    if let Some(vols) = o.pointer_mut("/spec/template/spec/volumes").and_then(Value::as_array_mut) {
        vols.retain(|v| !v["name"].as_str().is_some_and(|n| added.iter().any(|a| a == n)));
        if vols.is_empty() {
            if let Some(spec) = o.pointer_mut("/spec/template/spec").and_then(Value::as_object_mut) {
                spec.remove("volumes");
            }
        }
    }
    causes
}

fn admit_daemon_set(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    set_default(o, "/spec/revisionHistoryLimit", json!(10));
    set_default(o, "/spec/updateStrategy/type", json!("RollingUpdate"));
    match o.pointer("/spec/updateStrategy/type").and_then(Value::as_str).unwrap_or("") {
        "RollingUpdate" => {
            set_default(o, "/spec/updateStrategy/rollingUpdate/maxUnavailable", json!(1));
            set_default(o, "/spec/updateStrategy/rollingUpdate/maxSurge", json!(0));
            rolling(o, "spec.updateStrategy.rollingUpdate", &mut causes);
        }
        "OnDelete" => {}
        other => causes.push(cause(
            "FieldValueNotSupported",
            "spec.updateStrategy.type",
            format!("Unsupported value: \"{other}\": supported values: \"OnDelete\", \"RollingUpdate\""),
        )),
    }
    non_negative(o, "spec.minReadySeconds", &mut causes);
    let sel = selector(o, old, &mut causes);
    template(o, "spec.template", sel.as_ref(), &["Always"], &mut causes);
    causes
}

fn admit_controller_revision(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    non_negative(o, "revision", &mut causes);
    if let Some(old) = old {
        if old.get("data") != o.get("data") {
            causes.push(cause("FieldValueInvalid", "data", "Invalid value: field is immutable"));
        }
    }
    causes
}

/// The labels the Job controller's pods carry, and its generated selector (unless
/// `manualSelector`).
fn admit_job(o: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    job_spec(o, "spec", old.map(|o| &o["spec"]), &mut causes);
    causes
}

fn job_spec(o: &mut Value, at: &str, old_spec: Option<&Value>, causes: &mut Vec<Cause>) {
    let ptr = format!("/{}", at.replace('.', "/"));
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
    let uid = o.pointer("/metadata/uid").and_then(Value::as_str).map(String::from);
    let Some(spec) = o.pointer_mut(&ptr).filter(|s| s.is_object()) else {
        causes.push(cause("FieldValueRequired", format!("{at}.template"), "Required value"));
        return;
    };
    if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null) {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set_default(spec, "/parallelism", json!(1));
    set_default(spec, "/backoffLimit", json!(6));
    set_default(spec, "/completionMode", json!("NonIndexed"));
    set_default(spec, "/suspend", json!(false));
    if spec.get("podFailurePolicy").is_none_or(Value::is_null) {
        set_default(spec, "/podReplacementPolicy", json!("TerminatingOrFailed"));
    } else {
        set_default(spec, "/podReplacementPolicy", json!("Failed"));
    }
    // Refused out loud rather than taken and not honoured: Berth's Job controller has no
    // per-index back-off and no success policy yet.
    for f in ["backoffLimitPerIndex", "maxFailedIndexes", "successPolicy"] {
        if spec.get(f).is_some_and(|v| !v.is_null()) {
            causes.push(cause(
                "FieldValueForbidden",
                format!("{at}.{f}"),
                "Forbidden: not supported by this server (Berth's Job controller does not implement it)",
            ));
        }
    }
    let mode = spec["completionMode"].as_str().unwrap_or("").to_string();
    if !["NonIndexed", "Indexed"].contains(&mode.as_str()) {
        causes.push(cause(
            "FieldValueNotSupported",
            format!("{at}.completionMode"),
            format!("Unsupported value: \"{mode}\": supported values: \"NonIndexed\", \"Indexed\""),
        ));
    }
    if mode == "Indexed" && spec.get("completions").is_none_or(Value::is_null) {
        causes.push(cause(
            "FieldValueRequired",
            format!("{at}.completions"),
            "Required value: when completion mode is Indexed",
        ));
    }
    for f in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(n) = spec.get(f).and_then(Value::as_i64) {
            let bad = if f == "activeDeadlineSeconds" { n <= 0 } else { n < 0 };
            if bad {
                let rule = if f == "activeDeadlineSeconds" {
                    "must be greater than 0"
                } else {
                    "must be greater than or equal to 0"
                };
                causes.push(cause(
                    "FieldValueInvalid",
                    format!("{at}.{f}"),
                    format!("Invalid value: {n}: {rule}"),
                ));
            }
        }
    }
    // The selector and the pods' labels (batch.kubernetes.io/controller-uid), generated from
    // the Job's uid unless the user manages the selector — once the uid exists (a Job
    // template in a CronJob has none).
    let manual = spec.get("manualSelector") == Some(&json!(true));
    if manual {
        if spec.get("selector").is_none_or(Value::is_null) {
            causes.push(cause(
                "FieldValueRequired",
                format!("{at}.selector"),
                "Required value: when manualSelector is true",
            ));
        }
    } else if let (Some(uid), true) = (&uid, at == "spec") {
        if let Some(m) = spec.as_object_mut() {
            m.remove("manualSelector");
        }
        let generated = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        match old_spec.and_then(|s| s.get("selector")) {
            Some(s) if !s.is_null() => spec["selector"] = s.clone(),
            _ if spec.get("selector").is_some_and(|s| !s.is_null() && *s != generated) => causes.push(cause(
                "FieldValueInvalid",
                format!("{at}.selector"),
                "Invalid value: `selector` will be auto-generated",
            )),
            _ => spec["selector"] = generated,
        }
        let labels = &mut spec["template"]["metadata"]["labels"];
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid.as_str()),
            ("job-name", name.as_str()),
        ] {
            labels[k] = json!(v);
        }
    } else if let Some(m) = spec.as_object_mut() {
        m.remove("manualSelector");
    }
    let sel = spec.get("selector").filter(|s| !s.is_null()).cloned();
    if let Some(old) = old_spec {
        for f in ["selector", "completionMode", "podFailurePolicy"] {
            let (a, b) = (old.get(f).filter(|v| !v.is_null()), spec.get(f).filter(|v| !v.is_null()));
            if a != b && !(f == "selector" && a.is_none()) {
                causes.push(cause("FieldValueInvalid", format!("{at}.{f}"), "Invalid value: field is immutable"));
            }
        }
        let t = |s: &Value| super::fields::without_nulls(&s["template"]);
        let unsuspended = old.get("suspend") == Some(&json!(true));
        if t(old) != t(spec) && !unsuspended {
            causes.push(cause(
                "FieldValueInvalid",
                format!("{at}.template"),
                "Invalid value: field is immutable",
            ));
        }
    }
    template(o, &format!("{at}.template"), sel.as_ref(), &["OnFailure", "Never"], causes);
}

/// A CronJob's schedule: five fields (minute hour day-of-month month day-of-week) of numbers,
/// ranges, lists, steps, names and `*`/`?`, or a macro (`@hourly`, ...), with an optional
/// `CRON_TZ=`/`TZ=` prefix (refused, as the real server refuses it: timeZone is the field).
pub fn check_schedule(s: &str) -> Result<(), String> {
    crate::cron::Schedule::parse(s).map(|_| ())
}

fn admit_cron_job(o: &mut Value, _old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    check_metadata(o, false, &mut causes);
    let name = o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    // The Jobs it makes are named <name>-<time>: 52 characters at most.
    if name.len() > 52 {
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be no more than 52 characters"),
        ));
    }
    set_default(o, "/spec/concurrencyPolicy", json!("Allow"));
    set_default(o, "/spec/suspend", json!(false));
    set_default(o, "/spec/successfulJobsHistoryLimit", json!(3));
    set_default(o, "/spec/failedJobsHistoryLimit", json!(1));
    match o.pointer("/spec/schedule").and_then(Value::as_str) {
        None | Some("") => causes.push(cause("FieldValueRequired", "spec.schedule", "Required value")),
        Some(s) => {
            if let Err(e) = check_schedule(s) {
                causes.push(cause("FieldValueInvalid", "spec.schedule", format!("Invalid value: \"{s}\": {e}")));
            }
        }
    }
    if let Some(tz) = o.pointer("/spec/timeZone").and_then(Value::as_str) {
        let ok = !tz.contains("..") && !tz.starts_with('/') && crate::cron::zone(Some(tz)).is_ok();
        if !ok {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.timeZone",
                format!("Invalid value: \"{tz}\": unknown time zone {tz}"),
            ));
        }
    }
    let policy = o.pointer("/spec/concurrencyPolicy").and_then(Value::as_str).unwrap_or("");
    if !["Allow", "Forbid", "Replace"].contains(&policy) {
        causes.push(cause(
            "FieldValueNotSupported",
            "spec.concurrencyPolicy",
            format!("Unsupported value: \"{policy}\": supported values: \"Allow\", \"Forbid\", \"Replace\""),
        ));
    }
    for f in [
        "spec.startingDeadlineSeconds",
        "spec.successfulJobsHistoryLimit",
        "spec.failedJobsHistoryLimit",
    ] {
        non_negative(o, f, &mut causes);
    }
    if o.pointer("/spec/jobTemplate/spec").is_none_or(|s| !s.is_object()) {
        causes.push(cause("FieldValueRequired", "spec.jobTemplate.spec.template", "Required value"));
    } else {
        job_spec(o, "spec.jobTemplate.spec", None, &mut causes);
    }
    causes
}

fn int(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn containers_and_images(o: &Value, spec: &str) -> (String, String) {
    let cs: Vec<&Value> = o
        .pointer(&format!("{spec}/containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn selector_cell(o: &Value) -> String {
    o.pointer("/spec/selector")
        .map(selector_string)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into())
}

const CONTAINERS: Column = col("Containers", "string", "Names of each container in the template.", 1);
const IMAGES: Column = col("Images", "string", "Images referenced by each container in the template.", 1);
const SELECTOR: Column = col("Selector", "string", "Label selector for pods.", 1);

fn deployment_cells(o: &Value) -> Vec<Value> {
    let (c, i) = containers_and_images(o, "/spec/template/spec");
    vec![
        json!(format!("{}/{}", int(o, "/status/readyReplicas"), int(o, "/spec/replicas"))),
        json!(int(o, "/status/updatedReplicas")),
        json!(int(o, "/status/availableReplicas")),
        json!(super::table::age(o)),
        json!(c),
        json!(i),
        json!(selector_cell(o)),
    ]
}

fn replica_set_cells(o: &Value) -> Vec<Value> {
    let (c, i) = containers_and_images(o, "/spec/template/spec");
    vec![
        json!(int(o, "/spec/replicas")),
        json!(int(o, "/status/replicas")),
        json!(int(o, "/status/readyReplicas")),
        json!(super::table::age(o)),
        json!(c),
        json!(i),
        json!(selector_cell(o)),
    ]
}

fn stateful_set_cells(o: &Value) -> Vec<Value> {
    let (c, i) = containers_and_images(o, "/spec/template/spec");
    vec![
        json!(format!("{}/{}", int(o, "/status/readyReplicas"), int(o, "/spec/replicas"))),
        json!(super::table::age(o)),
        json!(c),
        json!(i),
    ]
}

fn daemon_set_cells(o: &Value) -> Vec<Value> {
    let (c, i) = containers_and_images(o, "/spec/template/spec");
    let ns = super::select::map_string(o.pointer("/spec/template/spec/nodeSelector"));
    vec![
        json!(int(o, "/status/desiredNumberScheduled")),
        json!(int(o, "/status/currentNumberScheduled")),
        json!(int(o, "/status/numberReady")),
        json!(int(o, "/status/updatedNumberScheduled")),
        json!(int(o, "/status/numberAvailable")),
        json!(ns),
        json!(super::table::age(o)),
        json!(c),
        json!(i),
        json!(selector_cell(o)),
    ]
}

fn job_cells(o: &Value) -> Vec<Value> {
    let conds: Vec<&Value> = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let has = |t: &str| conds.iter().any(|c| c["type"] == t && c["status"] == "True");
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if o.pointer("/spec/suspend") == Some(&json!(true)) {
        "Suspended"
    } else {
        "Running"
    };
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{}/{c}", int(o, "/status/succeeded")),
        None => {
            let p = o.pointer("/spec/parallelism").and_then(Value::as_i64).unwrap_or(1);
            if p > 1 {
                format!("{}/1 of {p}", int(o, "/status/succeeded"))
            } else {
                format!("{}/1", int(o, "/status/succeeded"))
            }
        }
    };
    let time = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let duration = match (time("/status/startTime"), time("/status/completionTime")) {
        (Some(s), Some(c)) => super::resources::human_duration((c - s).num_seconds()),
        (Some(s), None) => super::resources::human_duration((chrono::Utc::now() - s).num_seconds()),
        _ => String::new(),
    };
    let (c, i) = containers_and_images(o, "/spec/template/spec");
    vec![
        json!(status),
        json!(completions),
        json!(duration),
        json!(super::table::age(o)),
        json!(c),
        json!(i),
        json!(selector_cell(o)),
    ]
}

fn cron_job_cells(o: &Value) -> Vec<Value> {
    let last = o
        .pointer("/status/lastScheduleTime")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| super::resources::human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()))
        .unwrap_or_else(|| "<none>".into());
    let (c, i) = containers_and_images(o, "/spec/jobTemplate/spec/template/spec");
    vec![
        json!(o.pointer("/spec/schedule").and_then(Value::as_str).unwrap_or("")),
        json!(o.pointer("/spec/timeZone").and_then(Value::as_str).unwrap_or("<none>")),
        json!(if o.pointer("/spec/suspend") == Some(&json!(true)) {
            "True"
        } else {
            "False"
        }),
        json!(o.pointer("/status/active").and_then(Value::as_array).map_or(0, Vec::len)),
        json!(last),
        json!(super::table::age(o)),
        json!(c),
        json!(i),
        json!(selector_cell(o)),
    ]
}

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;

/// apps/v1 Deployment.
pub const DEPLOYMENT: Resource = Resource {
    short_names: &["deploy"],
    columns: &[
        col("Ready", "string", "Number of the pod with ready state", 0),
        col(
            "Up-to-date",
            "string",
            "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            0,
        ),
        col(
            "Available",
            "string",
            "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            0,
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: deployment_cells,
    subresources: &["status", "scale"],
    ..Resource::new(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        true,
        super::typed::schema::<apps::Deployment>,
        super::typed::decode::<apps::Deployment>,
        admit_deployment,
    )
};

/// apps/v1 ReplicaSet.
pub const REPLICA_SET: Resource = Resource {
    short_names: &["rs"],
    columns: &[
        col("Desired", "integer", "Number of desired pods", 0),
        col("Current", "integer", "Number of actual running pods", 0),
        col("Ready", "integer", "Number of ready pods", 0),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: replica_set_cells,
    subresources: &["status", "scale"],
    ..Resource::new(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        super::typed::schema::<apps::ReplicaSet>,
        super::typed::decode::<apps::ReplicaSet>,
        admit_replica_set,
    )
};

/// apps/v1 StatefulSet.
pub const STATEFUL_SET: Resource = Resource {
    short_names: &["sts"],
    columns: &[
        col("Ready", "string", "Number of the pod with ready state", 0),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    cells: stateful_set_cells,
    subresources: &["status", "scale"],
    ..Resource::new(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        super::typed::schema::<apps::StatefulSet>,
        super::typed::decode::<apps::StatefulSet>,
        admit_stateful_set,
    )
};

/// apps/v1 DaemonSet.
pub const DAEMON_SET: Resource = Resource {
    short_names: &["ds"],
    columns: &[
        col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).", 0),
        col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.", 0),
        col("Ready", "integer", "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.", 0),
        col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod", 0),
        col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)", 0),
        col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node.", 0),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: daemon_set_cells,
    subresources: &["status"],
    ..Resource::new(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        super::typed::schema::<apps::DaemonSet>,
        super::typed::decode::<apps::DaemonSet>,
        admit_daemon_set,
    )
};

/// apps/v1 ControllerRevision.
pub const CONTROLLER_REVISION: Resource = Resource {
    columns: &[
        col("Controller", "string", "Controller of the object", 0),
        col(
            "Revision",
            "integer",
            "Revision indicates the revision of the state represented by Data.",
            0,
        ),
        AGE,
    ],
    cells: |o| {
        let owner = o
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|r| r["controller"] == true))
            .map(|r| {
                let group = r["apiVersion"].as_str().unwrap_or("").split('/').next().unwrap_or("").to_string();
                format!(
                    "{}.{group}/{}",
                    r["kind"].as_str().unwrap_or("").to_lowercase(),
                    r["name"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_else(|| "<none>".into());
        vec![json!(owner), json!(int(o, "/revision")), json!(super::table::age(o))]
    },
    ..Resource::new(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        true,
        super::typed::schema::<apps::ControllerRevision>,
        super::typed::decode::<apps::ControllerRevision>,
        admit_controller_revision,
    )
};

/// batch/v1 Job.
pub const JOB: Resource = Resource {
    columns: &[
        col("Status", "string", "Status of the job.", 0),
        col(
            "Completions",
            "string",
            "The desired number of successfully finished pods the job should be run with.",
            0,
        ),
        col("Duration", "string", "Time required to complete the job.", 0),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: job_cells,
    field_selectors: &["status.successful"],
    subresources: &["status"],
    ..Resource::new(
        "batch",
        "v1",
        "Job",
        "jobs",
        "job",
        true,
        super::typed::schema::<batch::Job>,
        super::typed::decode::<batch::Job>,
        admit_job,
    )
};

/// batch/v1 CronJob.
pub const CRON_JOB: Resource = Resource {
    short_names: &["cj"],
    columns: &[
        col(
            "Schedule",
            "string",
            "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
            0,
        ),
        col(
            "Timezone",
            "string",
            "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.",
            0,
        ),
        col(
            "Suspend",
            "boolean",
            "This flag tells the controller to suspend subsequent executions.",
            0,
        ),
        col("Active", "integer", "A list of pointers to currently running jobs.", 0),
        col(
            "Last Schedule",
            "date",
            "Information when was the last time the job was successfully scheduled.",
            0,
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ],
    cells: cron_job_cells,
    subresources: &["status"],
    ..Resource::new(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        super::typed::schema::<batch::CronJob>,
        super::typed::decode::<batch::CronJob>,
        admit_cron_job,
    )
};

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    }

    #[test]
    fn deployments_are_defaulted_and_validated_as_kubernetes_does() {
        let mut d = deployment();
        assert!(admit_deployment(&mut d, None).is_empty());
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert!(d["spec"]["template"]["spec"].get("serviceAccountName").is_none());

        let mut bad = deployment();
        bad["spec"]["template"]["metadata"]["labels"]["app"] = json!("other");
        bad["spec"]["replicas"] = json!(-1);
        bad["spec"]["strategy"] = json!({"type": "Sideways"});
        let fields: Vec<String> = admit_deployment(&mut bad, None).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["spec.strategy.type", "spec.replicas", "spec.template.metadata.labels"]);

        let old = d.clone();
        let mut moved = d.clone();
        moved["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
        moved["spec"]["template"]["metadata"]["labels"] = json!({"app": "x"});
        let c = admit_deployment(&mut moved, Some(&old));
        assert_eq!(c[0].field, "spec.selector");
        assert!(c[0].message.ends_with("field is immutable"));
    }

    #[test]
    fn jobs_get_their_selector_and_cron_schedules_are_checked() {
        let mut j = json!({"metadata": {"name": "train", "uid": "u-1"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
        assert!(admit_job(&mut j, None).is_empty());
        assert_eq!(
            j["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(j["spec"]["template"]["metadata"]["labels"]["job-name"], "train");
        assert_eq!(
            (j["spec"]["completions"].clone(), j["spec"]["backoffLimit"].clone()),
            (json!(1), json!(6))
        );
        let mut always = j.clone();
        always["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        let c = admit_job(&mut always, Some(&j));
        assert!(c.iter().any(|c| c.field == "spec.template.spec.restartPolicy"), "{c:?}");
        for ok in ["*/5 * * * *", "0 3 * * mon-fri", "@hourly", "15,45 1-3 1 jan *"] {
            assert_eq!(check_schedule(ok), Ok(()), "{ok}");
        }
        for bad in ["61 * * * *", "* * *", "@often", "TZ=UTC * * * * *", "*/0 * * * *"] {
            assert!(check_schedule(bad).is_err(), "{bad}");
        }
        assert_eq!(int_or_percent(&json!("25%"), 10, true), Ok(3));
        assert_eq!(int_or_percent(&json!("25%"), 10, false), Ok(2));
    }
}
