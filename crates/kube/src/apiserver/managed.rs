//! `metadata.managedFields`: which manager owns which fields of an object, kept on every write as
//! kube-apiserver keeps it, and server-side apply (`application/apply-patch+yaml`) built on it —
//! a configuration merged into the live object, the fields its manager applied before and no
//! longer does taken out (unless another manager owns them), and a conflict when it would change
//! a field another manager owns (unless `force`, which takes the field over).

use serde_json::{json, Value};

use super::fields::{self, Fields};
use super::status::{ApiError, ApiResult, Cause};

/// Who writes, and through which endpoint.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The field manager (`fieldManager`, or the client's User-Agent up to its first `/`).
    pub manager: String,
    /// `status` for a write of `/status`, else empty.
    pub subresource: String,
    /// The kind's `group/version` (the entries' apiVersion).
    pub api_version: String,
    /// Whether the kind has a status subresource (its status is then no write's of the object).
    pub has_status: bool,
}

impl Writer {
    fn scope(&self, f: Fields) -> Fields {
        f.scoped(self.has_status, self.subresource == "status")
    }
}

/// The manager a request writes as: `fieldManager` if given (at most 128 characters), else the
/// User-Agent's product (`kubectl`, `Helm`), as the real server derives it.
pub fn manager_of(field_manager: Option<&str>, user_agent: Option<&str>) -> ApiResult<String> {
    if let Some(m) = field_manager {
        if m.len() > 128 {
            return Err(ApiError::bad_request(format!(
                "fieldManager: Too long: may not be more than 128 bytes (got {})",
                m.len()
            )));
        }
        if m.chars().any(|c| c.is_control()) {
            return Err(ApiError::bad_request(
                "fieldManager: Invalid value: may not contain control characters",
            ));
        }
        return Ok(m.to_string());
    }
    let ua = user_agent.unwrap_or("unknown");
    let product = ua.split('/').next().unwrap_or(ua);
    Ok(product.chars().filter(|c| !c.is_control()).take(128).collect())
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: String,
    fields: Fields,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// As conflicts name a manager: `"kubectl-edit" using v1 at 2025-01-01T00:00:00Z`.
    fn described(&self) -> String {
        let mut s = json!(self.manager).to_string();
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
            if let Some(t) = &self.time {
                s.push_str(&format!(" at {t}"));
            }
        }
        s
    }
}

/// The entries of `obj`'s managedFields; `None` when it has none (or none that can be read).
fn entries(obj: &Value) -> Option<Vec<Entry>> {
    let list = obj.pointer("/metadata/managedFields")?.as_array()?;
    let mut out = Vec::new();
    for e in list {
        if e.get("fieldsType").and_then(Value::as_str) != Some("FieldsV1") {
            return None;
        }
        out.push(Entry {
            manager: e.get("manager")?.as_str()?.to_string(),
            operation: e.get("operation")?.as_str()?.to_string(),
            api_version: e.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string(),
            time: e.get("time").and_then(Value::as_str).map(String::from),
            subresource: e.get("subresource").and_then(Value::as_str).unwrap_or("").to_string(),
            fields: Fields::from_json(e.get("fieldsV1").unwrap_or(&json!({}))),
        });
    }
    (!out.is_empty()).then_some(out)
}

/// Write `list` (the empty entries dropped, sorted as the real server sorts them: Apply before
/// Update, then by time and manager) into `obj`.
fn store(obj: &mut Value, mut list: Vec<Entry>) {
    list.retain(|e| !e.fields.is_empty());
    list.sort_by(|a, b| {
        (a.operation.as_str(), a.time.as_deref().unwrap_or(""), a.manager.as_str()).cmp(&(
            b.operation.as_str(),
            b.time.as_deref().unwrap_or(""),
            b.manager.as_str(),
        ))
    });
    let v: Vec<Value> = list
        .iter()
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.to_json(),
            });
            if let Some(t) = &e.time {
                v["time"] = json!(t);
            }
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(m) = obj["metadata"].as_object_mut() {
        if v.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(v));
        }
    }
}

fn bare(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    o
}

/// A write that is not an apply (create, PUT, a JSON, merge or strategic patch): the writer owns
/// what it added or changed from `old` (`Value::Null` for a create) to `new`, and nobody else
/// does any more; what it removed nobody owns. managedFields the writer sent are the base (a
/// list of one empty entry clears them), else the old object's are.
pub fn update(old: &Value, new: &mut Value, w: &Writer) {
    if new.pointer("/metadata/managedFields") == Some(&json!([{}])) {
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        return;
    }
    let mut list = entries(new).or_else(|| entries(old)).unwrap_or_default();
    let (changed, removed) = fields::diff(&bare(old), &bare(new));
    let (changed, removed) = (w.scope(changed), w.scope(removed));
    for e in list.iter_mut() {
        if !e.is(&w.manager, "Update", &w.subresource) {
            e.fields.minus(&changed);
            e.fields.minus(&removed);
        }
    }
    let now = super::objects::now();
    match list.iter_mut().find(|e| e.is(&w.manager, "Update", &w.subresource)) {
        Some(e) => {
            e.fields.minus(&removed);
            e.fields.union(&changed);
            if !changed.is_empty() {
                e.time = Some(now);
                e.api_version.clone_from(&w.api_version);
            }
        }
        None => list.push(Entry {
            manager: w.manager.clone(),
            operation: "Update".into(),
            api_version: w.api_version.clone(),
            time: Some(now),
            subresource: w.subresource.clone(),
            fields: changed,
        }),
    }
    store(new, list);
}

/// The live object merged with an apply configuration (before decoding and defaulting).
pub fn merged(live: &Value, config: &Value) -> Value {
    let mut out = bare(live);
    fields::merge(&mut out, config, &mut Vec::new());
    out
}

/// Server-side apply's bookkeeping on `merged` (see [`merged`], decoded): the writer now owns
/// the configuration's fields; fields it applied before and no longer does leave the object
/// unless another manager owns them; a change to a field another manager owns is a conflict,
/// unless `force` (the field is then the writer's alone). `live` is `Value::Null` for a create.
pub fn apply(live: &Value, merged: &mut Value, config: &Value, w: &Writer, force: bool) -> ApiResult<()> {
    let mut list = match entries(live) {
        Some(l) => l,
        // An object no manager owns yet: what it holds belongs to "before-first-apply", so
        // that the first apply cannot change it unnoticed.
        None if !live.is_null() => vec![Entry {
            manager: "before-first-apply".into(),
            operation: "Update".into(),
            api_version: w.api_version.clone(),
            time: None,
            subresource: String::new(),
            fields: w.scope(fields::of(&bare(live), &mut Vec::new())),
        }],
        None => Vec::new(),
    };
    let mut set = w.scope(fields::of(config, &mut Vec::new()));
    set.retain_present(merged);
    let mine = |e: &Entry| e.is(&w.manager, "Apply", &w.subresource);
    // What the writer applied before and leaves out now goes, unless someone else owns it.
    if let Some(prev) = list.iter().find(|e| mine(e)) {
        let mut stale = prev.fields.clone();
        stale.minus(&set);
        let mut others = Fields::default();
        for e in list.iter().filter(|e| !mine(e)) {
            others.union(&e.fields);
        }
        for p in stale.paths() {
            // A map or item the configuration still has fields under stays.
            if !others.holds_under(&p) && !set.holds_under(&p) {
                fields::remove(merged, &p);
            }
        }
    }
    let (changed, removed) = fields::diff(&bare(live), &bare(merged));
    let (changed, removed) = (w.scope(changed), w.scope(removed));
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for e in list.iter_mut().filter(|e| !mine(e)) {
        let hit = e.fields.common(&changed);
        if !hit.is_empty() {
            if force {
                e.fields.minus(&hit);
            } else {
                conflicts.extend(hit.paths().iter().map(|p| (e.described(), fields::render(p))));
            }
        }
        e.fields.minus(&removed);
    }
    if !conflicts.is_empty() {
        return Err(conflict_error(conflicts));
    }
    let now = super::objects::now();
    match list.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            if e.fields != set {
                e.time = Some(now);
            }
            e.fields = set;
            e.api_version.clone_from(&w.api_version);
        }
        None => list.push(Entry {
            manager: w.manager.clone(),
            operation: "Apply".into(),
            api_version: w.api_version.clone(),
            time: Some(now),
            subresource: w.subresource.clone(),
            fields: set,
        }),
    }
    store(merged, list);
    Ok(())
}

/// The real server's conflict: `Apply failed with 1 conflict: conflict with "m" using v1: .data.a`.
fn conflict_error(conflicts: Vec<(String, String)>) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|(m, p)| Cause {
            reason: "FieldManagerConflict",
            field: p.clone(),
            message: format!("conflict with {m}"),
        })
        .collect();
    let message = if let [(m, p)] = conflicts.as_slice() {
        format!("Apply failed with 1 conflict: conflict with {m}: {p}")
    } else {
        let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(conflicts.iter().filter(|(x, _)| x == m).map(|(_, p)| format!("- {p}")));
        }
        format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
    };
    ApiError::apply_conflict(message, causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(m: &str) -> Writer {
        Writer {
            manager: m.into(),
            subresource: String::new(),
            api_version: "v1".into(),
            has_status: false,
        }
    }

    fn owners(o: &Value) -> Vec<(String, String, Value)> {
        o["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap().to_string(),
                    e["operation"].as_str().unwrap().to_string(),
                    e["fieldsV1"].clone(),
                )
            })
            .collect()
    }

    #[test]
    fn applies_share_take_over_and_prune_fields() {
        // Created by kubectl create: it owns everything it wrote.
        let mut cm = json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}});
        update(&Value::Null, &mut cm, &writer("kubectl-create"));
        assert_eq!(
            owners(&cm),
            vec![(
                "kubectl-create".into(),
                "Update".into(),
                json!({"f:data": {".": {}, "f:x": {}, "f:y": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
            )]
        );
        // An apply that changes x conflicts with it; the same value does not.
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "9", "z": "3"}});
        let mut m = merged(&cm, &config);
        let e = apply(&cm, &mut m, &config, &writer("me"), false).unwrap_err();
        assert_eq!(e.code, 409);
        assert!(
            e.message
                .starts_with("Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1 at "),
            "{}",
            e.message
        );
        assert!(e.message.ends_with(": .data.x"), "{}", e.message);
        let config = json!({"metadata": {"name": "c"}, "data": {"x": "1", "z": "3"}});
        let mut m = merged(&cm, &config);
        apply(&cm, &mut m, &config, &writer("me"), false).unwrap();
        assert_eq!(m["data"], json!({"x": "1", "y": "2", "z": "3"}));
        let o = owners(&m);
        assert_eq!(o[0], ("me".into(), "Apply".into(), json!({"f:data": {"f:x": {}, "f:z": {}}})));
        // Forced, x is the applier's alone; left out later, x and z go (nobody else owns them)
        // while y, which kubectl-create owns too, stays.
        let config = json!({"metadata": {"name": "c"}, "data": {"x": "5", "z": "3"}});
        let mut m2 = merged(&m, &config);
        apply(&m, &mut m2, &config, &writer("me"), true).unwrap();
        assert_eq!(m2["data"]["x"], "5");
        let o = owners(&m2);
        assert_eq!(
            o[1].2,
            json!({"f:data": {".": {}, "f:y": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
        );
        let config = json!({"metadata": {"name": "c"}, "data": {"y": "2"}});
        let mut m3 = merged(&m2, &config);
        apply(&m2, &mut m3, &config, &writer("me"), false).unwrap();
        assert_eq!(m3["data"], json!({"y": "2"}));
        // Owning a map itself (an update that made it) and applying only its keys later keeps
        // the map.
        let mut pv = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
        update(&Value::Null, &mut pv, &writer("me"));
        let mut list = pv["metadata"]["managedFields"].clone();
        list[0]["operation"] = json!("Apply");
        pv["metadata"]["managedFields"] = list;
        let config = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
        let mut m5 = merged(&pv, &config);
        apply(&pv, &mut m5, &config, &writer("me"), false).unwrap();
        assert_eq!(m5["metadata"]["labels"], json!({"a": "1"}));
        // A later update by someone else takes the field it changes from the applier.
        let mut m4 = m3.clone();
        m4["data"]["y"] = json!("7");
        update(&m3, &mut m4, &writer("kubectl-edit"));
        let o = owners(&m4);
        assert!(
            o.iter().all(|(m, _, f)| m == "kubectl-edit" || f.pointer("/f:data/f:y").is_none()),
            "{o:?}"
        );
    }

    #[test]
    fn an_object_without_managed_fields_belongs_to_before_first_apply() {
        let live = json!({"metadata": {"name": "c"}, "data": {"x": "1"}});
        let config = json!({"metadata": {"name": "c"}, "data": {"x": "2"}});
        let mut m = merged(&live, &config);
        let e = apply(&live, &mut m, &config, &writer("me"), false).unwrap_err();
        assert!(e.message.contains("\"before-first-apply\" using v1: .data.x"), "{}", e.message);
        assert_eq!(
            manager_of(None, Some("kubectl/v1.33.1 (linux/amd64) kubernetes/abc")).unwrap(),
            "kubectl"
        );
        assert!(manager_of(Some(&"x".repeat(129)), None).is_err());
    }
}
