//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch
//! for the kinds served so far (their fields merge as maps; a directive Berth does not
//! implement yet is refused, never ignored).

use serde_json::Value;

use super::status::{ApiError, ApiResult};

/// RFC 7386: objects merge, `null` removes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = strip_nulls(patch),
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A strategic merge patch: as a merge patch for maps and for lists without a merge key (they
/// are replaced, as in Kubernetes); `$`-directives are refused until the kinds that need them
/// are served.
pub fn strategic(target: &mut Value, patch: &Value) -> ApiResult<()> {
    fn directives(v: &Value, path: &str) -> ApiResult<()> {
        if let Value::Object(m) = v {
            for (k, x) in m {
                if k.starts_with('$') {
                    return Err(ApiError::bad_request(format!(
                        "strategic merge patch directive {k} (at {path}) is not supported by Berth yet"
                    )));
                }
                directives(x, &format!("{path}.{k}"))?;
            }
        }
        Ok(())
    }
    directives(patch, "")?;
    merge(target, patch);
    Ok(())
}

fn pointer_parts(p: &str) -> ApiResult<Vec<String>> {
    if p.is_empty() {
        return Ok(vec![]);
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer {p:?}")))?;
    Ok(rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect())
}

fn parent<'a>(doc: &'a mut Value, parts: &[String]) -> ApiResult<&'a mut Value> {
    let mut cur = doc;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get_mut(p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| ApiError::bad_request(format!("doc is missing path: /{}", parts.join("/"))))?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &str, value: Value) -> ApiResult<()> {
    let parts = pointer_parts(path)?;
    let Some((last, init)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent(doc, init)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid index in {path}")))?
            };
            if i > a.len() {
                return Err(ApiError::bad_request(format!("index out of range in {path}")));
            }
            a.insert(i, value);
        }
        _ => return Err(ApiError::bad_request(format!("cannot add at {path}"))),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> ApiResult<Value> {
    let parts = pointer_parts(path)?;
    let (last, init) = parts
        .split_last()
        .ok_or_else(|| ApiError::bad_request("cannot remove the whole document"))?;
    let missing = || ApiError::bad_request(format!("doc is missing key: {path}"));
    match parent(doc, init)? {
        Value::Object(m) => m.remove(last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i >= a.len() {
                return Err(missing());
            }
            Ok(a.remove(i))
        }
        _ => Err(missing()),
    }
}

/// RFC 6902: add, remove, replace, move, copy, test.
pub fn json_patch(doc: &mut Value, patch: &Value) -> ApiResult<()> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch is a list of operations"))?;
    for op in ops {
        let path = op["path"]
            .as_str()
            .ok_or_else(|| ApiError::bad_request("a JSON patch operation needs a path"))?;
        match op["op"].as_str().unwrap_or("") {
            "add" => add(doc, path, op["value"].clone())?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                remove(doc, path)?;
                add(doc, path, op["value"].clone())?;
            }
            "move" => {
                let from = op["from"].as_str().ok_or_else(|| ApiError::bad_request("move needs from"))?;
                let v = remove(doc, from)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or_else(|| ApiError::bad_request("copy needs from"))?;
                let v = doc
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| ApiError::bad_request(format!("doc is missing path: {from}")))?;
                add(doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(ApiError::bad_request(format!("testing value {path} failed")));
                }
            }
            other => return Err(ApiError::bad_request(format!("unexpected kind of JSON patch operation {other:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_json_patches() {
        let mut d = json!({"data": {"a": "1", "b": "2"}, "metadata": {"labels": {"x": "y"}}});
        merge(&mut d, &json!({"data": {"a": null, "c": "3"}, "metadata": {"labels": {"z": "w"}}}));
        assert_eq!(
            d,
            json!({"data": {"b": "2", "c": "3"}, "metadata": {"labels": {"x": "y", "z": "w"}}})
        );
        json_patch(&mut d, &json!([{"op": "replace", "path": "/data/b", "value": "9"}, {"op": "add", "path": "/data/d", "value": "4"}, {"op": "remove", "path": "/data/c"}, {"op": "test", "path": "/data/d", "value": "4"}])).unwrap();
        assert_eq!(d["data"], json!({"b": "9", "d": "4"}));
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/data/nope"}])).is_err());
        assert!(strategic(&mut d, &json!({"metadata": {"$setElementOrder/finalizers": []}})).is_err());
    }
}
