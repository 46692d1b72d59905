//! Label and field selectors, as list and watch take them.

use serde_json::Value;

use super::status::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Req>);

/// Split at commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl LabelSelector {
    /// Parse `app=web,tier!=db,env in (a,b),!legacy,release`.
    pub fn parse(s: &str) -> ApiResult<LabelSelector> {
        let bad = |r: &str| ApiError::bad_request(format!("unable to parse requirement: {r:?}: found unexpected syntax"));
        let mut reqs = Vec::new();
        for r in split_top(s).into_iter().map(str::trim).filter(|r| !r.is_empty()) {
            let set = |rest: &str| -> Option<Vec<String>> {
                let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
                Some(inner.split(',').map(|v| v.trim().to_string()).collect())
            };
            let req = if let Some(k) = r.strip_prefix('!') {
                Req::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = r.split_once("!=") {
                Req::NotIn(k.trim().to_string(), vec![v.trim().to_string()])
            } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
                Req::In(k.trim().to_string(), vec![v.trim().to_string()])
            } else if let Some((k, rest)) = r.split_once(" notin ") {
                Req::NotIn(k.trim().to_string(), set(rest).ok_or_else(|| bad(r))?)
            } else if let Some((k, rest)) = r.split_once(" in ") {
                Req::In(k.trim().to_string(), set(rest).ok_or_else(|| bad(r))?)
            } else if r.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                Req::Exists(r.to_string())
            } else {
                return Err(bad(r));
            };
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// Does the object's `metadata.labels` satisfy it?
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Req::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
        })
    }
}

/// A parsed field selector: `metadata.name` and `metadata.namespace`, `=`/`==`/`!=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parse `metadata.name=web,metadata.namespace!=kube-system`; `extra` are the other fields
    /// the kind can be selected by.
    pub fn parse(s: &str, extra: &[&str]) -> ApiResult<FieldSelector> {
        let mut out = Vec::new();
        for r in s.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = r.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{r}'; can't understand '{r}'")));
            };
            if !matches!(k, "metadata.name" | "metadata.namespace") && !extra.contains(&k) {
                return Err(ApiError::bad_request(format!("field label not supported: {k}")));
            }
            out.push((k.to_string(), eq, v.to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// Does the object satisfy it?
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, eq, v)| {
            let got = obj.pointer(&format!("/{}", k.replace('.', "/")));
            let got = match got {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (got == *v) == *eq
        })
    }
}

/// Whether a `metav1.LabelSelector` (matchLabels and matchExpressions) selects `labels`. An
/// empty selector selects everything, as Kubernetes has it.
pub fn selects(selector: &Value, labels: Option<&Value>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    let by_labels = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .all(|(k, v)| get(k) == v.as_str());
    by_labels
        && selector
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .all(|e| {
                let key = e["key"].as_str().unwrap_or("");
                let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                match e["operator"].as_str().unwrap_or("") {
                    "In" => get(key).is_some_and(|v| values.contains(&v)),
                    "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                    "Exists" => get(key).is_some(),
                    "DoesNotExist" => get(key).is_none(),
                    _ => false,
                }
            })
}

/// A map of strings as kubectl shows selectors (`app=web,tier=db`), `<none>` when empty.
pub fn map_string(m: Option<&Value>) -> String {
    m.and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| "<none>".into())
}

/// A `metav1.LabelSelector` in the string form (`app=web,tier in (a,b)`), as a Scale's
/// status.selector and kubectl's SELECTOR column write it.
pub fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<String> = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    for e in selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}}});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=web") && m("app==web") && m("app") && m("!legacy") && m("tier in (front, back)"));
        assert!(m("app=web,tier notin (db)") && m(""));
        assert!(!m("app!=web") && !m("tier in (db)") && !m("missing") && !m("!app"));
        assert!(LabelSelector::parse("a in b").is_err());
        let f = FieldSelector::parse("metadata.name=a", &[]).unwrap();
        assert!(f.matches(&o));
        assert!(FieldSelector::parse("spec.nodeName=x", &[]).is_err());
        let e = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "web"}});
        assert!(FieldSelector::parse(
            "involvedObject.kind=Pod,involvedObject.name=web",
            &["involvedObject.kind", "involvedObject.name"]
        )
        .unwrap()
        .matches(&e));
    }
}
