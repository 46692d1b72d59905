//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`, which kubectl's generators —
//! `kubectl create configmap|secret|namespace` — send): the `k8s\0` envelope, a
//! `runtime.Unknown` with the type and the raw message, decoded into the JSON object the rest
//! of the server works on. Field numbers are Kubernetes' own (`generated.proto`); a field this
//! table does not know is an error, never dropped.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::status::{ApiError, ApiResult};

/// How a field is encoded.
#[derive(Debug)]
pub enum Kind {
    /// `string`.
    Str,
    /// `bytes` (base64 in JSON).
    Bytes,
    /// `bool`.
    Bool,
    /// `int64`/`int32`.
    Int,
    /// A nested message.
    Msg(&'static [Field]),
    /// `metav1.Time` (RFC 3339 in JSON).
    Time,
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>` (base64 values in JSON).
    MapBytes,
    /// `repeated string`.
    Strs,
    /// `repeated` message.
    Msgs(&'static [Field]),
}

/// One field: number, JSON name, encoding.
pub type Field = (u32, &'static str, Kind);

const OWNER_REF: &[Field] = &[
    (1, "kind", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
    (6, "controller", Kind::Bool),
    (7, "blockOwnerDeletion", Kind::Bool),
];
const OBJECT_META: &[Field] = &[
    (1, "name", Kind::Str),
    (2, "generateName", Kind::Str),
    (3, "namespace", Kind::Str),
    (4, "selfLink", Kind::Str),
    (5, "uid", Kind::Str),
    (6, "resourceVersion", Kind::Str),
    (7, "generation", Kind::Int),
    (8, "creationTimestamp", Kind::Time),
    (9, "deletionTimestamp", Kind::Time),
    (10, "deletionGracePeriodSeconds", Kind::Int),
    (11, "labels", Kind::MapStr),
    (12, "annotations", Kind::MapStr),
    (13, "ownerReferences", Kind::Msgs(OWNER_REF)),
    (14, "finalizers", Kind::Strs),
];
const CONFIGMAP: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::MapStr),
    (3, "binaryData", Kind::MapBytes),
    (4, "immutable", Kind::Bool),
];
const SECRET: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "data", Kind::MapBytes),
    (3, "type", Kind::Str),
    (4, "stringData", Kind::MapStr),
    (5, "immutable", Kind::Bool),
];
const NAMESPACE: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "spec", Kind::Msg(&[(1, "finalizers", Kind::Strs)])),
    (3, "status", Kind::Msg(&[(1, "phase", Kind::Str)])),
];
const OBJECT_REFERENCE: &[Field] = &[
    (1, "kind", Kind::Str),
    (2, "namespace", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
    (5, "apiVersion", Kind::Str),
    (6, "resourceVersion", Kind::Str),
    (7, "fieldPath", Kind::Str),
];
const SERVICE_ACCOUNT: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "secrets", Kind::Msgs(OBJECT_REFERENCE)),
    (3, "imagePullSecrets", Kind::Msgs(&[(1, "name", Kind::Str)])),
    (4, "automountServiceAccountToken", Kind::Bool),
];
const RESOURCE_ATTRIBUTES: &[Field] = &[
    (1, "namespace", Kind::Str),
    (2, "verb", Kind::Str),
    (3, "group", Kind::Str),
    (4, "version", Kind::Str),
    (5, "resource", Kind::Str),
    (6, "subresource", Kind::Str),
    (7, "name", Kind::Str),
];
const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (
        2,
        "spec",
        Kind::Msg(&[
            (1, "resourceAttributes", Kind::Msg(RESOURCE_ATTRIBUTES)),
            (
                2,
                "nonResourceAttributes",
                Kind::Msg(&[(1, "path", Kind::Str), (2, "verb", Kind::Str)]),
            ),
        ]),
    ),
    (
        3,
        "status",
        Kind::Msg(&[
            (1, "allowed", Kind::Bool),
            (2, "reason", Kind::Str),
            (3, "evaluationError", Kind::Str),
            (4, "denied", Kind::Bool),
        ]),
    ),
];
const DELETE_OPTIONS: &[Field] = &[
    (1, "gracePeriodSeconds", Kind::Int),
    (
        2,
        "preconditions",
        Kind::Msg(&[(1, "uid", Kind::Str), (2, "resourceVersion", Kind::Str)]),
    ),
    (3, "orphanDependents", Kind::Bool),
    (4, "propagationPolicy", Kind::Str),
    (5, "dryRun", Kind::Strs),
    (6, "ignoreStoreReadErrorWithClusterBreakingPotential", Kind::Bool),
];
const TYPE_META: &[Field] = &[(1, "apiVersion", Kind::Str), (2, "kind", Kind::Str)];

/// The message of a kind, if its protobuf form is known here.
const BOUND_OBJECT_REF: &[Field] = &[
    (1, "kind", Kind::Str),
    (2, "apiVersion", Kind::Str),
    (3, "name", Kind::Str),
    (4, "uid", Kind::Str),
];
const TOKEN_REQUEST_SPEC: &[Field] = &[
    (1, "audiences", Kind::Strs),
    (3, "boundObjectRef", Kind::Msg(BOUND_OBJECT_REF)),
    (4, "expirationSeconds", Kind::Int),
];
const TOKEN_REQUEST: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "spec", Kind::Msg(TOKEN_REQUEST_SPEC)),
    (
        3,
        "status",
        Kind::Msg(&[(1, "token", Kind::Str), (2, "expirationTimestamp", Kind::Time)]),
    ),
];

const POLICY_RULE: &[Field] = &[
    (1, "verbs", Kind::Strs),
    (2, "apiGroups", Kind::Strs),
    (3, "resources", Kind::Strs),
    (4, "resourceNames", Kind::Strs),
    (5, "nonResourceURLs", Kind::Strs),
];
const ROLE: &[Field] = &[(1, "metadata", Kind::Msg(OBJECT_META)), (2, "rules", Kind::Msgs(POLICY_RULE))];
const SUBJECT: &[Field] = &[
    (1, "kind", Kind::Str),
    (2, "apiGroup", Kind::Str),
    (3, "name", Kind::Str),
    (4, "namespace", Kind::Str),
];
const ROLE_REF: &[Field] = &[(1, "apiGroup", Kind::Str), (2, "kind", Kind::Str), (3, "name", Kind::Str)];
const ROLE_BINDING: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "subjects", Kind::Msgs(SUBJECT)),
    (3, "roleRef", Kind::Msg(ROLE_REF)),
];

const EVICTION: &[Field] = &[
    (1, "metadata", Kind::Msg(OBJECT_META)),
    (2, "deleteOptions", Kind::Msg(DELETE_OPTIONS)),
];

fn message_of(kind: &str) -> Option<&'static [Field]> {
    match kind {
        "ConfigMap" => Some(CONFIGMAP),
        "Secret" => Some(SECRET),
        "Namespace" => Some(NAMESPACE),
        "ServiceAccount" => Some(SERVICE_ACCOUNT),
        "DeleteOptions" => Some(DELETE_OPTIONS),
        "SelfSubjectAccessReview" => Some(SELF_SUBJECT_ACCESS_REVIEW),
        "TokenRequest" => Some(TOKEN_REQUEST),
        "Eviction" => Some(EVICTION),
        "Role" | "ClusterRole" => Some(ROLE),
        "RoleBinding" | "ClusterRoleBinding" => Some(ROLE_BINDING),
        _ => None,
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> ApiResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.i).ok_or_else(truncated)?;
            self.i += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ApiError::bad_request("protobuf: a varint is too long"))
    }

    fn bytes(&mut self) -> ApiResult<&'a [u8]> {
        let n = self.varint()? as usize;
        let s = self.b.get(self.i..self.i + n).ok_or_else(truncated)?;
        self.i += n;
        Ok(s)
    }

    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
}

fn truncated() -> ApiError {
    ApiError::bad_request("protobuf: the message is truncated")
}

fn utf8(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| ApiError::bad_request("protobuf: a string is not UTF-8"))
}

fn b64(b: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A map entry `{1: key, 2: value}`.
fn entry(b: &[u8], bytes_value: bool) -> ApiResult<(String, Value)> {
    let mut r = Reader { b, i: 0 };
    let (mut k, mut v) = (String::new(), if bytes_value { b64(&[]) } else { json!("") });
    while !r.done() {
        let key = r.varint()?;
        if key & 7 != 2 {
            return Err(ApiError::bad_request(
                "protobuf: a map entry has a field that is not length-delimited",
            ));
        }
        let data = r.bytes()?;
        match key >> 3 {
            1 => k = utf8(data)?,
            2 => v = if bytes_value { b64(data) } else { json!(utf8(data)?) },
            n => return Err(ApiError::bad_request(format!("protobuf: unknown field {n} in a map entry"))),
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> ApiResult<Value> {
    let mut r = Reader { b, i: 0 };
    let mut secs = 0i64;
    while !r.done() {
        let key = r.varint()?;
        let v = r.varint()?;
        if key >> 3 == 1 {
            secs = v as i64;
        }
    }
    let t = chrono::DateTime::from_timestamp(secs, 0).ok_or_else(|| ApiError::bad_request("protobuf: a time is out of range"))?;
    Ok(json!(t.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// Decode one message with `fields` into a JSON object.
fn message(b: &[u8], fields: &'static [Field], what: &str) -> ApiResult<Value> {
    let mut r = Reader { b, i: 0 };
    let mut out = Map::new();
    while !r.done() {
        let key = r.varint()?;
        let (num, wire) = ((key >> 3) as u32, key & 7);
        let Some((_, name, kind)) = fields.iter().find(|(n, _, _)| *n == num) else {
            return Err(ApiError::bad_request(format!(
                "protobuf: field {num} of {what} is not known to Berth"
            )));
        };
        let name = name.to_string();
        match (kind, wire) {
            (Kind::Bool, 0) => {
                out.insert(name, json!(r.varint()? != 0));
            }
            (Kind::Int, 0) => {
                out.insert(name, json!(r.varint()? as i64));
            }
            (_, 2) => {
                let data = r.bytes()?;
                match kind {
                    // Go writes every string field, empty or not; in JSON an empty one is
                    // left out (omitempty), and the rest of the server expects that.
                    Kind::Str if data.is_empty() => {}
                    Kind::Str => {
                        out.insert(name, json!(utf8(data)?));
                    }
                    Kind::Bytes => {
                        out.insert(name, b64(data));
                    }
                    Kind::Msg(f) => {
                        out.insert(name.clone(), message(data, f, &name)?);
                    }
                    Kind::Time => {
                        out.insert(name, time(data)?);
                    }
                    Kind::MapStr | Kind::MapBytes => {
                        let (k, v) = entry(data, matches!(kind, Kind::MapBytes))?;
                        let m = out.entry(name).or_insert_with(|| json!({}));
                        m[k] = v;
                    }
                    Kind::Strs => {
                        let s = utf8(data)?;
                        let a = out.entry(name).or_insert_with(|| json!([]));
                        if let Some(a) = a.as_array_mut() {
                            a.push(json!(s));
                        }
                    }
                    Kind::Msgs(f) => {
                        let m = message(data, f, &name)?;
                        let a = out.entry(name).or_insert_with(|| json!([]));
                        if let Some(a) = a.as_array_mut() {
                            a.push(m);
                        }
                    }
                    Kind::Bool | Kind::Int => {
                        return Err(ApiError::bad_request(format!(
                            "protobuf: field {num} of {what} has the wrong wire type"
                        )))
                    }
                }
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "protobuf: field {num} of {what} has the wrong wire type"
                )))
            }
        }
    }
    // ObjectMeta's generation is the server's to set; a client's zero means "unset".
    if std::ptr::eq(fields, OBJECT_META) && out.get("generation").is_some_and(|g| g == 0) {
        out.remove("generation");
    }
    Ok(Value::Object(out))
}

/// Decode a `k8s\0`-framed body into the object (with its apiVersion and kind).
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let rest = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| ApiError::bad_request("protobuf: the body does not start with the k8s\\0 magic"))?;
    let mut r = Reader { b: rest, i: 0 };
    let (mut type_meta, mut raw) = (Value::Null, None);
    while !r.done() {
        let key = r.varint()?;
        if key & 7 != 2 {
            let _ = r.varint()?;
            continue;
        }
        let data = r.bytes()?;
        match key >> 3 {
            1 => type_meta = message(data, TYPE_META, "TypeMeta")?,
            2 => raw = Some(data),
            _ => {}
        }
    }
    let kind = type_meta["kind"].as_str().unwrap_or("").to_string();
    let fields = message_of(&kind)
        .ok_or_else(|| ApiError::unsupported_media_type(&format!("application/vnd.kubernetes.protobuf (for {kind:?}; send JSON)")))?;
    let mut obj = message(raw.unwrap_or_default(), fields, &kind)?;
    obj["apiVersion"] = type_meta["apiVersion"].clone();
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u32, data: &[u8]) -> Vec<u8> {
        let mut v = vec![((num << 3) | 2) as u8, data.len() as u8];
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn a_configmap_in_its_envelope() {
        let meta = field(1, b"settings");
        let entry = [field(1, b"lr"), field(2, b"0.01")].concat();
        let cm = [field(1, &meta), field(2, &entry)].concat();
        let tm = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &tm), field(2, &cm)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"lr": "0.01"}})
        );
        let bad = [b"k8s\0".to_vec(), field(1, &tm), field(2, &field(9, b"x"))].concat();
        assert!(decode(&bad).unwrap_err().message.contains("field 9 of ConfigMap"));
        assert!(decode(b"nope").is_err());
    }
}
