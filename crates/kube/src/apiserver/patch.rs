//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch
//! for the kinds served so far (their fields merge as maps; a directive Berth does not
//! implement yet is refused, never ignored).

use serde_json::{json, Value};

use super::fields::List;

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

/// A strategic merge patch: maps merge as in a merge patch; lists merge as Kubernetes' types say
/// ([`super::fields::list_type`]): keyed lists item by item on their merge key, sets of scalars
/// by value, others replaced. The directives: `$patch` (`merge`, `replace`, `delete`, on a map
/// or a list item, and `{"$patch": "replace"}` as a list's item), `$retainKeys`,
/// `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
pub fn strategic(target: &mut Value, patch: &Value) -> ApiResult<()> {
    if patch.get("$patch").and_then(Value::as_str) == Some("delete") {
        return Err(ApiError::bad_request("a strategic merge patch cannot delete the whole object"));
    }
    smp(target, patch, &mut Vec::new())
}

fn render(path: &[String]) -> String {
    if path.is_empty() {
        "the object".into()
    } else {
        path.join(".")
    }
}

fn smp(target: &mut Value, patch: &Value, path: &mut Vec<String>) -> ApiResult<()> {
    let Some(p) = patch.as_object() else {
        *target = super::fields::without_nulls(patch);
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        None | Some("merge") => {}
        Some("replace") => {
            let mut fresh = json!({});
            let mut rest = p.clone();
            rest.remove("$patch");
            smp(&mut fresh, &Value::Object(rest), path)?;
            *target = fresh;
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type {other:?} in $patch at {}",
                render(path)
            )))
        }
    }
    if !target.is_object() {
        *target = json!({});
    }
    let mut orders = Vec::new();
    let mut retain = None;
    for (k, v) in p {
        if k.starts_with('$') {
            if let Some(list) = k.strip_prefix("$setElementOrder/") {
                orders.push((list, v));
            } else if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/") {
                let gone = v
                    .as_array()
                    .ok_or_else(|| ApiError::bad_request(format!("{k} at {} must be a list", render(path))))?;
                if let Some(Value::Array(a)) = target.get_mut(list) {
                    a.retain(|x| !gone.contains(x));
                }
            } else if k == "$retainKeys" {
                let keys = v
                    .as_array()
                    .ok_or_else(|| ApiError::bad_request(format!("$retainKeys at {} must be a list", render(path))))?;
                retain = Some(keys.iter().filter_map(Value::as_str).map(String::from).collect::<Vec<_>>());
            } else if k != "$patch" {
                return Err(ApiError::bad_request(format!(
                    "unknown strategic merge patch directive {k} at {}",
                    render(path)
                )));
            }
            continue;
        }
        let t = target.as_object_mut().expect("made an object above");
        let deletes = v.get("$patch").and_then(Value::as_str) == Some("delete");
        if v.is_null() || deletes {
            t.remove(k);
            continue;
        }
        path.push(k.clone());
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match v {
            Value::Array(items) => {
                if !slot.is_array() {
                    *slot = json!([]);
                }
                merge_list(slot, items, path)?;
            }
            Value::Object(_) => smp(slot, v, path)?,
            _ => *slot = v.clone(),
        }
        path.pop();
    }
    for (list, order) in orders {
        let order = order
            .as_array()
            .ok_or_else(|| ApiError::bad_request(format!("$setElementOrder/{list} must be a list")))?;
        path.push(list.to_string());
        let ty = super::fields::list_type(path);
        path.pop();
        if let Some(Value::Array(a)) = target.get_mut(list) {
            let same = |want: &Value, x: &Value| match ty {
                List::Keyed(keys) => want.get(keys[0]).is_some() && want.get(keys[0]) == x.get(keys[0]),
                _ => want == x,
            };
            let mut sorted: Vec<Value> = Vec::with_capacity(a.len());
            for want in order {
                if let Some(i) = a.iter().position(|x| same(want, x)) {
                    sorted.push(a.remove(i));
                }
            }
            sorted.append(a);
            *a = sorted;
        }
    }
    if let (Some(keys), Some(t)) = (retain, target.as_object_mut()) {
        t.retain(|k, _| keys.contains(k));
    }
    Ok(())
}

fn merge_list(cur: &mut Value, items: &[Value], path: &mut Vec<String>) -> ApiResult<()> {
    let replace = items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    let ty = super::fields::list_type(path);
    if replace || ty == List::Atomic {
        // Replaced: the patch's items (their own directives applied to nothing).
        let mut fresh = Vec::new();
        for item in items.iter().filter(|i| i.get("$patch").is_none()) {
            let mut x = if item.is_object() { json!({}) } else { Value::Null };
            smp(&mut x, item, path)?;
            fresh.push(x);
        }
        *cur = Value::Array(fresh);
        return Ok(());
    }
    let list = cur.as_array_mut().expect("a list");
    for item in items {
        match ty {
            List::Keyed(keys) if item.is_object() => {
                let key = keys[0];
                let Some(want) = item.get(key).filter(|k| !k.is_null()) else {
                    return Err(ApiError::bad_request(format!(
                        "an item of {} lacks its merge key {key}",
                        render(path)
                    )));
                };
                let at = list.iter().position(|x| x.get(key) == Some(want));
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = at {
                        list.remove(i);
                    }
                    continue;
                }
                match at {
                    Some(i) => smp(&mut list[i], item, path)?,
                    None => {
                        let mut x = json!({});
                        smp(&mut x, item, path)?;
                        list.push(x);
                    }
                }
            }
            _ => {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
        }
    }
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
        assert!(strategic(&mut d, &json!({"metadata": {"$bogus": []}})).is_err());
    }

    #[test]
    fn strategic_merge_patches_follow_merge_keys_and_directives() {
        let mut pod = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {
            "containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}, {"name": "b", "image": "y"}],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        // What kubectl apply sends: changed items only, the order of all, deleted items marked.
        strategic(&mut pod, &json!({"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "x2", "env": [{"name": "F", "value": "2"}]}, {"name": "b", "$patch": "delete"}, {"name": "c", "image": "z"}],
            "volumes": [{"$patch": "replace"}, {"name": "w", "hostPath": {"path": "/tmp"}}],
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"}},
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}})).unwrap();
        assert_eq!(
            pod,
            json!({"metadata": {"finalizers": ["b", "c"]}, "spec": {
            "containers": [{"name": "c", "image": "z"}, {"name": "a", "image": "x2", "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]}],
            "volumes": [{"name": "w", "hostPath": {"path": "/tmp"}}],
            "strategy": {"type": "Recreate"}}})
        );
        // An atomic list (args) is replaced; a map marked for deletion goes.
        strategic(
            &mut pod,
            &json!({"spec": {"containers": [{"name": "a", "args": ["1"]}], "strategy": {"$patch": "delete"}}}),
        )
        .unwrap();
        assert_eq!(pod["spec"]["containers"][1]["args"], json!(["1"]));
        assert!(pod["spec"].get("strategy").is_none());
    }
}
