//! Strict decoding through Kubernetes' own types (`k8s-openapi`): a body is decoded into the
//! kind's struct, as the real server decodes it, which finds wrong types (with their field
//! path); encoding it back and comparing finds the fields the type does not have (unknown
//! fields, which `fieldValidation` makes an error, a warning, or drops).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// What decoding found: the canonical object and its unknown fields; or a type error.
pub type Decoded = Result<(Value, Vec<String>), String>;

/// The schema of `T` (a reference to it in the generator's definitions), as Kubernetes
/// publishes it: k8s-openapi carries the real server's OpenAPI schemas with their descriptions.
pub fn schema<T: k8s_openapi::schemars::JsonSchema>(g: &mut k8s_openapi::schemars::SchemaGenerator) -> k8s_openapi::schemars::Schema {
    g.subschema_for::<T>()
}

/// Decode `v` as `T`.
pub fn decode<T: DeserializeOwned + Serialize>(v: &Value) -> Decoded {
    let typed: T = serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let inner = inner.split(" at line ").next().unwrap_or(&inner).to_string();
        if path == "." || path.is_empty() {
            inner
        } else {
            format!("json: cannot unmarshal into field {path}: {inner}")
        }
    })?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    diff(v, &back, "", &mut unknown);
    Ok((back, unknown))
}

/// The paths of `input` that `typed` (the same object after a round trip) lacks.
fn diff(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, x) in a {
                let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get(k) {
                    Some(y) => diff(x, y, &here, out),
                    None if x.is_null() => {}
                    // An empty value the type does not write back (an unset optional).
                    None if is_empty(x) => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    #[test]
    fn unknown_fields_and_type_errors() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labelz": {"a": "b"}}, "data": {"a": "1"}, "spec": {"x": 1}});
        let (back, unknown) = decode::<ConfigMap>(&v).unwrap();
        assert_eq!(unknown, ["metadata.labelz", "spec"]);
        assert_eq!(back["data"]["a"], "1");
        let e = decode::<ConfigMap>(&json!({"data": {"a": 1}})).unwrap_err();
        assert!(e.contains("data.a"), "{e}");
    }
}
