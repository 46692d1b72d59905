//! Field sets and list semantics.
//!
//! A [`Fields`] is a set of field paths in Kubernetes' `FieldsV1` form, as server-side apply
//! records it in `metadata.managedFields`: `f:<name>` for a field, `k:<key fields as JSON>` for an
//! item of a keyed list, `v:<value as JSON>` for a member of a set, and `.` for a node owned as
//! well as what is under it. [`List`] is how a list merges — the `x-kubernetes-list-type` and
//! `patchMergeKey` of Kubernetes' own types for the kinds served — which apply and strategic
//! merge patches both follow.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum List {
    /// Replaced whole, owned as one field.
    Atomic,
    /// A set of scalars: merged by value.
    Set,
    /// Items identified by these fields (the first is the strategic merge patch's key).
    Keyed(&'static [&'static str]),
}

/// Lists that are not atomic, by the end of their path of field names (list items are not in
/// a path). The first match wins, so the longer suffixes come first.
const LISTS: &[(&[&str], List)] = &[
    (&["containers", "ports"], List::Keyed(&["containerPort", "protocol"])),
    (&["initContainers", "ports"], List::Keyed(&["containerPort", "protocol"])),
    (&["ephemeralContainers", "ports"], List::Keyed(&["containerPort", "protocol"])),
    (&["spec", "ports"], List::Keyed(&["port", "protocol"])),
    (&["containers"], List::Keyed(&["name"])),
    (&["initContainers"], List::Keyed(&["name"])),
    (&["ephemeralContainers"], List::Keyed(&["name"])),
    (&["env"], List::Keyed(&["name"])),
    (&["volumeMounts"], List::Keyed(&["mountPath"])),
    (&["volumeDevices"], List::Keyed(&["devicePath"])),
    (&["resizePolicy"], List::Keyed(&["resourceName"])),
    (&["volumes"], List::Keyed(&["name"])),
    (&["imagePullSecrets"], List::Keyed(&["name"])),
    (&["hostAliases"], List::Keyed(&["ip"])),
    (&["topologySpreadConstraints"], List::Keyed(&["topologyKey", "whenUnsatisfiable"])),
    (&["resourceClaims"], List::Keyed(&["name"])),
    (&["schedulingGates"], List::Keyed(&["name"])),
    (&["metadata", "ownerReferences"], List::Keyed(&["uid"])),
    (&["metadata", "finalizers"], List::Set),
    (&["status", "conditions"], List::Keyed(&["type"])),
    (&["status", "addresses"], List::Keyed(&["type"])),
];

fn ends_with(path: &[String], suffix: &[&str]) -> bool {
    path.len() >= suffix.len() && path[path.len() - suffix.len()..].iter().zip(suffix).all(|(a, b)| a == b)
}

/// How the list at `path` (field names from the object's root) merges.
pub fn list_type(path: &[String]) -> List {
    LISTS
        .iter()
        .find(|(suffix, _)| ends_with(path, suffix))
        .map_or(List::Atomic, |(_, t)| *t)
}

/// Maps and structs that are replaced whole (`x-kubernetes-map-type: atomic`): label selectors,
/// a Service's selector, a pod's nodeSelector.
pub fn atomic_map(path: &[String]) -> bool {
    ends_with(path, &["spec", "selector"]) || ends_with(path, &["nodeSelector"])
}

/// Key field `k` of a keyed-list item, defaulted as the API server defaults it (a port's
/// protocol is TCP).
fn key_value(item: &Value, k: &str) -> Value {
    match item.get(k) {
        Some(v) if !v.is_null() => v.clone(),
        _ if k == "protocol" => json!("TCP"),
        _ => Value::Null,
    }
}

/// The `k:` element naming `item` of a list keyed by `keys`.
pub fn item_key(item: &Value, keys: &[&str]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            let v = key_value(item, k);
            (!v.is_null()).then(|| format!("{}:{v}", json!(k)))
        })
        .collect();
    format!("k:{{{}}}", parts.join(","))
}

/// Whether `item` is the one a path element (`k:` or `v:`) names.
fn names(elem: &str, item: &Value) -> bool {
    if let Some(k) = elem.strip_prefix("k:") {
        let Ok(Value::Object(want)) = serde_json::from_str::<Value>(k) else {
            return false;
        };
        want.iter().all(|(k, v)| key_value(item, k) == *v)
    } else if let Some(v) = elem.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).is_ok_and(|v| v == *item)
    } else {
        false
    }
}

/// A set of field paths (see the module's doc).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    own: bool,
    kids: BTreeMap<String, Fields>,
}

impl Fields {
    fn leaf() -> Fields {
        Fields {
            own: true,
            kids: BTreeMap::new(),
        }
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        !self.own && self.kids.is_empty()
    }

    /// From `FieldsV1` JSON.
    pub fn from_json(v: &Value) -> Fields {
        let mut f = Fields::default();
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, c) in m {
                    if k == "." {
                        f.own = true;
                    } else {
                        f.kids.insert(k.clone(), Fields::from_json(c));
                    }
                }
            }
            _ => f.own = true,
        }
        f
    }

    /// As `FieldsV1` JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.own && !self.kids.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &self.kids {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }

    /// Every path of `o` added to this set.
    pub fn union(&mut self, o: &Fields) {
        self.own |= o.own;
        for (k, c) in &o.kids {
            self.kids.entry(k.clone()).or_default().union(c);
        }
    }

    /// Every path of `o` taken out of this set.
    pub fn minus(&mut self, o: &Fields) {
        if o.own {
            self.own = false;
        }
        for (k, c) in &o.kids {
            if let Some(x) = self.kids.get_mut(k) {
                x.minus(c);
                if x.is_empty() {
                    self.kids.remove(k);
                }
            }
        }
    }

    /// The paths in both sets.
    pub fn common(&self, o: &Fields) -> Fields {
        let mut r = Fields {
            own: self.own && o.own,
            kids: BTreeMap::new(),
        };
        for (k, c) in &self.kids {
            if let Some(x) = o.kids.get(k) {
                let i = c.common(x);
                if !i.is_empty() {
                    r.kids.insert(k.clone(), i);
                }
            }
        }
        r
    }

    /// Every path in the set, parents before their children.
    pub fn paths(&self) -> Vec<Vec<String>> {
        fn walk(f: &Fields, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            if f.own && !at.is_empty() {
                out.push(at.clone());
            }
            for (k, c) in &f.kids {
                at.push(k.clone());
                walk(c, at, out);
                at.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// Whether the set holds `path` or anything under it.
    pub fn holds_under(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => !self.is_empty(),
            Some((first, rest)) => self.kids.get(first).is_some_and(|c| c.holds_under(rest)),
        }
    }

    /// Only the paths that name something in `obj` (a field an unknown-field check dropped
    /// is owned by nobody).
    pub fn retain_present(&mut self, obj: &Value) {
        self.kids.retain(|k, c| match child(obj, k) {
            Some(v) => {
                c.retain_present(v);
                true
            }
            None => false,
        });
    }

    /// Without what no manager owns: type fields, the server's own metadata, and the status
    /// (of a kind with a status subresource, for a write of the object) or everything but
    /// the status (for a write of `/status`).
    pub fn scoped(mut self, has_status: bool, status_write: bool) -> Fields {
        self.kids.remove("f:apiVersion");
        self.kids.remove("f:kind");
        if let Some(m) = self.kids.get_mut("f:metadata") {
            m.own = false;
            for k in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "managedFields",
            ] {
                m.kids.remove(&format!("f:{k}"));
            }
            if m.is_empty() {
                self.kids.remove("f:metadata");
            }
        }
        if status_write {
            self.kids.retain(|k, _| k == "f:status");
        } else if has_status {
            self.kids.remove("f:status");
        }
        self.own = false;
        self
    }
}

/// The child of `v` a path element names.
fn child<'a>(v: &'a Value, elem: &str) -> Option<&'a Value> {
    match elem.strip_prefix("f:") {
        Some(f) => v.get(f).filter(|x| !x.is_null()),
        None => v.as_array()?.iter().find(|x| names(elem, x)),
    }
}

fn child_mut<'a>(v: &'a mut Value, elem: &str) -> Option<&'a mut Value> {
    match elem.strip_prefix("f:") {
        Some(f) => v.get_mut(f),
        None => v.as_array_mut()?.iter_mut().find(|x| names(elem, x)),
    }
}

/// Take the field or item at `path` out of `obj`, if it is there.
pub fn remove(obj: &mut Value, path: &[String]) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for e in init {
        match child_mut(cur, e) {
            Some(c) => cur = c,
            None => return,
        }
    }
    match last.strip_prefix("f:") {
        Some(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        None => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|x| !names(last, x));
            }
        }
    }
}

/// A path as the API server writes it in conflicts: `.spec.containers[name="app"].image`.
pub fn render(path: &[String]) -> String {
    let mut s = String::new();
    for e in path {
        if let Some(f) = e.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = e.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                _ => vec![k.to_string()],
            };
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = e.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = e.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// The fields of `v` (at `path`): every leaf, every item of a keyed list or set, an atomic list
/// or map as one field. Nulls are no fields.
pub fn of(v: &Value, path: &mut Vec<String>) -> Fields {
    match v {
        Value::Object(m) if !m.is_empty() && !atomic_map(path) => {
            let mut f = Fields::default();
            for (k, c) in m.iter().filter(|(_, c)| !c.is_null()) {
                path.push(k.clone());
                f.kids.insert(format!("f:{k}"), of(c, path));
                path.pop();
            }
            f
        }
        Value::Array(a) if !a.is_empty() => match list_type(path) {
            List::Atomic => Fields::leaf(),
            List::Set => Fields {
                own: false,
                kids: a.iter().map(|x| (format!("v:{x}"), Fields::leaf())).collect(),
            },
            List::Keyed(keys) => Fields {
                own: false,
                kids: a
                    .iter()
                    .map(|x| {
                        let mut f = of(x, path);
                        f.own = true;
                        (item_key(x, keys), f)
                    })
                    .collect(),
            },
        },
        _ => Fields::leaf(),
    }
}

/// What changed from `old` to `new`: the fields added or modified (a new map or item is owned
/// itself too), and the fields removed.
pub fn diff(old: &Value, new: &Value) -> (Fields, Fields) {
    diff_at(Some(old), Some(new), &mut Vec::new())
}

/// Fields whose Kubernetes type is a map (not a struct): added, the map itself is owned too.
const MAPS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "binaryData",
    "stringData",
    "matchLabels",
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "nodeSelector",
    "selector",
    "parameters",
    "hard",
    "used",
];

/// The fields of `v`, added at `path`: as [`of`], and every map in it owned itself.
fn added(v: &Value, path: &mut Vec<String>) -> Fields {
    fn mark(f: &mut Fields, v: &Value, path: &mut Vec<String>) {
        if v.is_object() && path.last().is_some_and(|l| MAPS.contains(&l.as_str())) {
            f.own = true;
        }
        if let Value::Object(m) = v {
            for (k, c) in m {
                if let Some(cf) = f.kids.get_mut(&format!("f:{k}")) {
                    path.push(k.clone());
                    mark(cf, c, path);
                    path.pop();
                }
            }
        } else if let Value::Array(a) = v {
            for item in a {
                for (k, cf) in f.kids.iter_mut() {
                    if names(k, item) {
                        mark(cf, item, path);
                    }
                }
            }
        }
    }
    let mut f = of(v, path);
    mark(&mut f, v, path);
    f
}

fn diff_at(old: Option<&Value>, new: Option<&Value>, path: &mut Vec<String>) -> (Fields, Fields) {
    match (old.filter(|v| !v.is_null()), new.filter(|v| !v.is_null())) {
        (None, None) => Default::default(),
        (None, Some(n)) => (added(n, path), Fields::default()),
        (Some(o), None) => {
            let mut f = of(o, path);
            f.own = true;
            (Fields::default(), f)
        }
        (Some(Value::Object(a)), Some(Value::Object(b))) if !atomic_map(path) => {
            let (mut changed, mut removed) = (Fields::default(), Fields::default());
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                path.push(k.clone());
                let (c, r) = diff_at(a.get(k), b.get(k), path);
                path.pop();
                if !c.is_empty() {
                    changed.kids.insert(format!("f:{k}"), c);
                }
                if !r.is_empty() {
                    removed.kids.insert(format!("f:{k}"), r);
                }
            }
            (changed, removed)
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if list_type(path) != List::Atomic => {
            let elem = |x: &Value| match list_type(path) {
                List::Keyed(keys) => item_key(x, keys),
                _ => format!("v:{x}"),
            };
            let (mut changed, mut removed) = (Fields::default(), Fields::default());
            let olds: BTreeMap<String, &Value> = a.iter().map(|x| (elem(x), x)).collect();
            let news: BTreeMap<String, &Value> = b.iter().map(|x| (elem(x), x)).collect();
            for k in olds.keys().chain(news.keys().filter(|k| !olds.contains_key(*k))) {
                let (c, r) = diff_at(olds.get(k).copied(), news.get(k).copied(), path);
                if !c.is_empty() {
                    changed.kids.insert(k.clone(), c);
                }
                if !r.is_empty() {
                    removed.kids.insert(k.clone(), r);
                }
            }
            (changed, removed)
        }
        (Some(o), Some(n)) if o != n => (Fields::leaf(), Fields::default()),
        _ => Default::default(),
    }
}

/// Merge an apply configuration into the live object: maps field by field, keyed lists item by
/// item, sets by value, anything else replaced; a null takes the field out.
pub fn merge(live: &mut Value, config: &Value, path: &mut Vec<String>) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !atomic_map(path) => {
            for (k, v) in c {
                if v.is_null() {
                    l.remove(k);
                    continue;
                }
                path.push(k.clone());
                match l.get_mut(k) {
                    Some(x) => merge(x, v, path),
                    None => {
                        l.insert(k.clone(), without_nulls(v));
                    }
                }
                path.pop();
            }
        }
        (Value::Array(l), Value::Array(c)) if list_type(path) != List::Atomic => match list_type(path) {
            List::Keyed(keys) => {
                for item in c {
                    let key = item_key(item, keys);
                    match l.iter_mut().find(|x| item_key(x, keys) == key) {
                        Some(x) => merge(x, item, path),
                        None => l.push(without_nulls(item)),
                    }
                }
            }
            _ => {
                for item in c {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
        },
        (l, c) => *l = without_nulls(c),
    }
}

/// `v` without its null fields.
pub fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: Value) -> Fields {
        of(&v, &mut Vec::new())
    }

    #[test]
    fn field_sets_are_written_as_kubernetes_writes_them() {
        let pod = json!({
            "metadata": {"labels": {"app": "x"}, "finalizers": ["a/b"]},
            "spec": {"containers": [{"name": "app", "image": "busybox", "ports": [{"containerPort": 80}], "args": ["x", "y"]}],
                     "nodeSelector": {"disk": "ssd"}}
        });
        let f = set(pod);
        assert_eq!(
            f.to_json(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a/b\"": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                    ".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                }}, "f:nodeSelector": {}}
            })
        );
        assert_eq!(Fields::from_json(&f.to_json()), f);
        let paths = f.paths();
        assert!(paths.iter().any(|p| render(p) == ".spec.containers[name=\"app\"].image"));
        assert!(paths.iter().any(|p| render(p) == ".metadata.finalizers[=\"a/b\"]"));
    }

    #[test]
    fn diffs_merges_and_removals_follow_list_semantics() {
        let old = json!({"data": {"a": "1", "b": "2"}, "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let new = json!({"data": {"a": "1", "b": "3", "c": "4"}, "spec": {"containers": [{"name": "b", "image": "z"}]}, "extra": {"k": "v"}, "metadata": {"labels": {"x": "y"}}});
        let (changed, removed) = diff(&old, &new);
        assert_eq!(
            changed.to_json(),
            json!({"f:data": {"f:b": {}, "f:c": {}}, "f:extra": {"f:k": {}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"b\"}": {"f:image": {}}}},
                   "f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
        );
        assert_eq!(
            removed.to_json(),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:name": {}, "f:image": {}}}}})
        );
        let mut live = old.clone();
        merge(
            &mut live,
            &json!({"data": {"a": null, "d": "5"}, "spec": {"containers": [{"name": "b", "image": "q"}, {"name": "c", "image": "w"}]}}),
            &mut Vec::new(),
        );
        assert_eq!(
            live,
            json!({"data": {"b": "2", "d": "5"}, "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "q"}, {"name": "c", "image": "w"}]}})
        );
        remove(&mut live, &["f:spec".into(), "f:containers".into(), "k:{\"name\":\"a\"}".into()]);
        remove(&mut live, &["f:data".into(), "f:b".into()]);
        assert_eq!(
            live,
            json!({"data": {"d": "5"}, "spec": {"containers": [{"name": "b", "image": "q"}, {"name": "c", "image": "w"}]}})
        );
        let mut s = set(live.clone());
        s.minus(&set(json!({"data": {"d": "5"}})));
        assert!(!s.holds_under(&["f:data".into()]));
        assert!(s.holds_under(&["f:spec".into()]));
    }
}
