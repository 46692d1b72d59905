//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`, which kubectl's generators —
//! `kubectl create configmap|secret|namespace` — send): the `k8s\0` envelope, a
//! `runtime.Unknown` with the type and the raw message, decoded into the JSON object the rest
//! of the server works on. The field tables are generated from Kubernetes' own `generated.proto`
//! ([`super::proto_tables`]); a field they do not know is an error, never dropped.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::proto_tables as t;
use super::status::{ApiError, ApiResult};

/// How a field is encoded (Kubernetes' gogo-protobuf conventions).
#[derive(Debug)]
pub enum Kind {
    /// `string` from a Go pointer (`""` is a value).
    Str,
    /// `string` from a Go value (`""` is unset, left out of JSON).
    Str0,
    /// `bytes` (base64 in JSON).
    Bytes,
    /// `repeated bytes`.
    Byteses,
    /// `bool` from a pointer or without omitempty.
    Bool,
    /// `bool` from an omitempty value (`false` is unset).
    Bool0,
    /// `int32`/`int64` from a pointer or without omitempty.
    Int,
    /// `int32`/`int64` from an omitempty value (0 is unset).
    Int0,
    /// `double`.
    Float,
    /// `repeated int32/int64`.
    Ints,
    /// A nested message.
    Msg(&'static [Field]),
    /// A nested message whose fields JSON writes in the parent (`json:",inline"`).
    Inline(&'static [Field]),
    /// `repeated` message.
    Msgs(&'static [Field]),
    /// `metav1.Time` (RFC 3339 in JSON; the zero time is null).
    Time,
    /// `metav1.MicroTime` (RFC 3339 with microseconds).
    MicroTime,
    /// `metav1.Duration` (Go's duration string).
    Duration,
    /// `resource.Quantity` (its string).
    Quantity,
    /// `intstr.IntOrString` (a number or a string).
    IntOrString,
    /// `runtime.RawExtension`, `metav1.FieldsV1` (the JSON they hold).
    Raw,
    /// `repeated RawExtension`.
    Raws,
    /// A message of one `repeated string` that JSON writes as the list (`ExtraValue`).
    StrList,
    /// `repeated string`.
    Strs,
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>` (base64 values in JSON).
    MapBytes,
    /// `map<string, Quantity>`.
    MapQuantity,
    /// `map<string, ExtraValue>`.
    MapStrList,
    /// `map<string, Time>`.
    MapTime,
    /// `map<string, message>`.
    MapMsg(&'static [Field]),
}

/// One field: number, JSON name, encoding.
pub type Field = (u32, &'static str, Kind);

const TYPE_META: &[Field] = &[(1, "apiVersion", Kind::Str0), (2, "kind", Kind::Str0)];

/// The message of a kind (`apiVersion` and `kind` from the envelope), if it is served.
fn message_of(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = match group {
        "" => "core",
        "meta.k8s.io" => "",
        g => g.split('.').next().unwrap_or(g),
    };
    let full = if package.is_empty() {
        format!("k8s.io.apimachinery.pkg.apis.meta.{version}.{kind}")
    } else {
        format!("k8s.io.api.{package}.{version}.{kind}")
    };
    t::by_name(&full).or_else(|| t::by_name(&format!("k8s.io.apimachinery.pkg.apis.meta.v1.{kind}")))
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

fn wrong_wire(num: u32, what: &str) -> ApiError {
    ApiError::bad_request(format!("protobuf: field {num} of {what} has the wrong wire type"))
}

/// The scalar fields of a small message, by number (varints as integers, length-delimited as
/// bytes).
fn small(b: &[u8]) -> ApiResult<Vec<(u32, u64, &[u8])>> {
    let mut r = Reader { b, i: 0 };
    let mut out = Vec::new();
    while !r.done() {
        let key = r.varint()?;
        match key & 7 {
            0 => out.push(((key >> 3) as u32, r.varint()?, &[][..])),
            2 => out.push(((key >> 3) as u32, 0, r.bytes()?)),
            _ => return Err(ApiError::bad_request("protobuf: an unexpected wire type")),
        }
    }
    Ok(out)
}

fn time(b: &[u8], micro: bool) -> ApiResult<Value> {
    let (mut secs, mut nanos) = (0i64, 0u32);
    for (n, v, _) in small(b)? {
        match n {
            1 => secs = v as i64,
            2 => nanos = v as u32,
            _ => {}
        }
    }
    if secs == 0 && nanos == 0 {
        return Ok(Value::Null);
    }
    let t = chrono::DateTime::from_timestamp(secs, nanos).ok_or_else(|| ApiError::bad_request("protobuf: a time is out of range"))?;
    let f = if micro { "%Y-%m-%dT%H:%M:%S%.6fZ" } else { "%Y-%m-%dT%H:%M:%SZ" };
    Ok(json!(t.format(f).to_string()))
}

/// Go's `time.Duration.String()` of `ns` nanoseconds (`1h0m0s`, `1.5s`, `300ms`).
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    let s = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000))
    } else {
        let secs = u / 1_000_000_000;
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        let s = frac(u % 60_000_000_000, 1_000_000_000);
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    };
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

/// The encoding of a map kind's values.
fn map_value(kind: &Kind) -> Kind {
    match kind {
        Kind::MapBytes => Kind::Bytes,
        Kind::MapQuantity => Kind::Quantity,
        Kind::MapStrList => Kind::StrList,
        Kind::MapTime => Kind::Time,
        Kind::MapMsg(f) => Kind::Msg(f),
        _ => Kind::Str,
    }
}

/// The JSON value of one length-delimited field of `kind` (a message, string, map entry...),
/// or `None` when it is the unset value.
fn delimited(data: &[u8], kind: &Kind, num: u32, what: &str) -> ApiResult<Option<Value>> {
    Ok(Some(match kind {
        Kind::Str0 if data.is_empty() => return Ok(None),
        Kind::Str | Kind::Str0 | Kind::Strs => json!(utf8(data)?),
        Kind::Bytes | Kind::Byteses => b64(data),
        Kind::Msg(f) | Kind::Msgs(f) | Kind::Inline(f) => message(data, f, what)?,
        Kind::Time => return time(data, false).map(|v| (!v.is_null()).then_some(v)),
        Kind::MicroTime => return time(data, true).map(|v| (!v.is_null()).then_some(v)),
        Kind::Duration => {
            let ns = small(data)?.iter().find(|(n, _, _)| *n == 1).map_or(0, |(_, v, _)| *v as i64);
            json!(go_duration(ns))
        }
        Kind::Quantity => {
            let s = small(data)?.iter().find(|(n, _, _)| *n == 1).map(|(_, _, b)| utf8(b)).transpose()?;
            json!(s.unwrap_or_default())
        }
        Kind::IntOrString => {
            let f = small(data)?;
            let get = |n: u32| f.iter().find(|(x, _, _)| *x == n);
            if get(1).is_some_and(|(_, v, _)| *v == 1) {
                json!(get(3).map(|(_, _, b)| utf8(b)).transpose()?.unwrap_or_default())
            } else {
                json!(get(2).map_or(0, |(_, v, _)| *v as i64))
            }
        }
        Kind::Raw | Kind::Raws => {
            let raw = small(data)?
                .iter()
                .find(|(n, _, _)| *n == 1)
                .map(|(_, _, b)| b.to_vec())
                .unwrap_or_default();
            if raw.is_empty() {
                return Ok(None);
            }
            serde_json::from_slice(&raw)
                .map_err(|e| ApiError::bad_request(format!("protobuf: field {num} of {what} does not hold JSON: {e}")))?
        }
        Kind::StrList => {
            let items: ApiResult<Vec<Value>> = small(data)?.iter().map(|(_, _, b)| utf8(b).map(Value::from)).collect();
            Value::Array(items?)
        }
        Kind::MapStr | Kind::MapBytes | Kind::MapQuantity | Kind::MapStrList | Kind::MapTime | Kind::MapMsg(_) => {
            let value_kind = &map_value(kind);
            let mut r = Reader { b: data, i: 0 };
            let (mut k, mut v) = (String::new(), None);
            while !r.done() {
                let key = r.varint()?;
                if key & 7 != 2 {
                    return Err(ApiError::bad_request(format!(
                        "protobuf: an entry of field {num} of {what} is not length-delimited"
                    )));
                }
                let b = r.bytes()?;
                match key >> 3 {
                    1 => k = utf8(b)?,
                    2 => v = delimited(b, value_kind, num, what)?,
                    n => return Err(ApiError::bad_request(format!("protobuf: unknown field {n} in an entry of {what}"))),
                }
            }
            let empty = match value_kind {
                Kind::Bytes => b64(&[]),
                Kind::StrList => json!([]),
                Kind::Msg(_) => json!({}),
                _ => json!(""),
            };
            json!({k: v.unwrap_or(empty)})
        }
        Kind::Ints => {
            // Packed.
            let mut r = Reader { b: data, i: 0 };
            let mut a = Vec::new();
            while !r.done() {
                a.push(json!(r.varint()? as i64));
            }
            Value::Array(a)
        }
        Kind::Bool | Kind::Bool0 | Kind::Int | Kind::Int0 | Kind::Float => return Err(wrong_wire(num, what)),
    }))
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
        let value = match (kind, wire) {
            (Kind::Bool, 0) => Some(json!(r.varint()? != 0)),
            (Kind::Bool0, 0) => Some(r.varint()? != 0).filter(|b| *b).map(Value::from),
            (Kind::Int, 0) => Some(json!(r.varint()? as i64)),
            (Kind::Int0, 0) => Some(r.varint()? as i64).filter(|n| *n != 0).map(Value::from),
            (Kind::Ints, 0) => {
                let v = json!(r.varint()? as i64);
                if let Some(a) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(v);
                }
                continue;
            }
            (Kind::Float, 1) => {
                let b = r.b.get(r.i..r.i + 8).ok_or_else(truncated)?;
                r.i += 8;
                Some(json!(f64::from_le_bytes(b.try_into().expect("8 bytes"))))
            }
            (_, 2) => {
                let data = r.bytes()?;
                let v = delimited(data, kind, num, &name)?;
                match kind {
                    Kind::Inline(_) => {
                        if let Some(Value::Object(m)) = v {
                            out.extend(m);
                        }
                        continue;
                    }
                    Kind::Strs | Kind::Msgs(_) | Kind::Byteses | Kind::Raws | Kind::Ints => {
                        let a = out.entry(name).or_insert_with(|| json!([]));
                        match (a.as_array_mut(), v) {
                            (Some(a), Some(Value::Array(items))) if matches!(kind, Kind::Ints) => a.extend(items),
                            (Some(a), Some(v)) => a.push(v),
                            _ => {}
                        }
                        continue;
                    }
                    Kind::MapStr | Kind::MapBytes | Kind::MapQuantity | Kind::MapStrList | Kind::MapTime | Kind::MapMsg(_) => {
                        let m = out.entry(name).or_insert_with(|| json!({}));
                        if let (Some(m), Some(Value::Object(e))) = (m.as_object_mut(), v) {
                            m.extend(e);
                        }
                        continue;
                    }
                    _ => v,
                }
            }
            _ => return Err(wrong_wire(num, what)),
        };
        if let Some(v) = value {
            out.insert(name, v);
        }
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
    let api_version = type_meta["apiVersion"].as_str().unwrap_or("").to_string();
    let fields = message_of(&api_version, &kind)
        .ok_or_else(|| ApiError::unsupported_media_type(&format!("application/vnd.kubernetes.protobuf (for {kind:?}; send JSON)")))?;
    let mut obj = message(raw.unwrap_or_default(), fields, &kind)?;
    obj["apiVersion"] = type_meta["apiVersion"].clone();
    obj["kind"] = json!(kind);
    Ok(obj)
}

/// A message field's key.
fn key(out: &mut Vec<u8>, num: u32, wire: u8) {
    varint(out, (u64::from(num) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn delimited_field(out: &mut Vec<u8>, num: u32, data: &[u8]) {
    key(out, num, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn bad_value(what: &str, name: &str, v: &Value) -> ApiError {
    ApiError::internal(format!("protobuf: {what}.{name} cannot be encoded from {v}"))
}

/// Go's duration string (`1h0m0s`, `1.5s`, `300ms`) in nanoseconds.
fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(n);
        let num: f64 = num.parse().ok()?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += num * scale;
        rest = tail;
    }
    Some(if neg { -(total as i64) } else { total as i64 })
}

fn time_message(v: &Value, micro: bool) -> Option<Vec<u8>> {
    let t = chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
    let mut m = Vec::new();
    key(&mut m, 1, 0);
    varint(&mut m, t.timestamp() as u64);
    let nanos = if micro { t.timestamp_subsec_micros() * 1000 } else { 0 };
    if nanos != 0 {
        key(&mut m, 2, 0);
        varint(&mut m, u64::from(nanos));
    }
    Some(m)
}

/// One value of `kind` as the bytes of a length-delimited field (messages, strings, entries).
fn encode_delimited(v: &Value, kind: &Kind, what: &str, name: &str) -> ApiResult<Vec<u8>> {
    let bad = || bad_value(what, name, v);
    Ok(match kind {
        Kind::Str | Kind::Str0 | Kind::Strs => v.as_str().ok_or_else(bad)?.as_bytes().to_vec(),
        Kind::Bytes | Kind::Byteses => base64::engine::general_purpose::STANDARD
            .decode(v.as_str().ok_or_else(bad)?)
            .map_err(|_| bad())?,
        Kind::Msg(f) | Kind::Msgs(f) | Kind::Inline(f) => encode_message(v, f, name)?,
        Kind::Time => time_message(v, false).ok_or_else(bad)?,
        Kind::MicroTime => time_message(v, true).ok_or_else(bad)?,
        Kind::Duration => {
            let ns = parse_go_duration(v.as_str().ok_or_else(bad)?).ok_or_else(bad)?;
            let mut m = Vec::new();
            key(&mut m, 1, 0);
            varint(&mut m, ns as u64);
            m
        }
        Kind::Quantity => {
            let mut m = Vec::new();
            let q = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(bad()),
            };
            delimited_field(&mut m, 1, q.as_bytes());
            m
        }
        Kind::IntOrString => {
            let mut m = Vec::new();
            match v {
                Value::Number(n) => {
                    key(&mut m, 1, 0);
                    varint(&mut m, 0);
                    key(&mut m, 2, 0);
                    varint(&mut m, n.as_i64().ok_or_else(bad)? as u64);
                }
                Value::String(s) => {
                    key(&mut m, 1, 0);
                    varint(&mut m, 1);
                    delimited_field(&mut m, 3, s.as_bytes());
                }
                _ => return Err(bad()),
            }
            m
        }
        Kind::Raw | Kind::Raws => {
            let mut m = Vec::new();
            delimited_field(&mut m, 1, v.to_string().as_bytes());
            m
        }
        Kind::StrList => {
            let mut m = Vec::new();
            for s in v.as_array().ok_or_else(bad)? {
                delimited_field(&mut m, 1, s.as_str().ok_or_else(bad)?.as_bytes());
            }
            m
        }
        _ => return Err(bad()),
    })
}

/// A JSON object as the message `fields` describe (the inverse of [`message`]); a field the
/// table lacks is an error, never dropped.
fn encode_message(v: &Value, fields: &'static [Field], what: &str) -> ApiResult<Vec<u8>> {
    let obj = v.as_object().ok_or_else(|| bad_value(what, "", v))?;
    let inline_names = |f: &'static [Field]| f.iter().map(|(_, n, _)| *n).collect::<Vec<_>>();
    for k in obj.keys() {
        let known = fields
            .iter()
            .any(|(_, n, kind)| *n == k.as_str() || matches!(kind, Kind::Inline(f) if inline_names(f).contains(&k.as_str())));
        // TypeMeta is the envelope's (an object's own, a list item's), never a message field.
        if !known && k != "apiVersion" && k != "kind" {
            return Err(ApiError::internal(format!("protobuf: {what} has no field {k:?}")));
        }
    }
    let mut out = Vec::new();
    for (num, name, kind) in fields {
        if let Kind::Inline(f) = kind {
            let sub: serde_json::Map<String, Value> = obj
                .iter()
                .filter(|(k, _)| inline_names(f).contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !sub.is_empty() {
                delimited_field(&mut out, *num, &encode_message(&Value::Object(sub), f, name)?);
            }
            continue;
        }
        let Some(v) = obj.get(*name).filter(|v| !v.is_null()) else {
            continue;
        };
        let bad = || bad_value(what, name, v);
        match kind {
            Kind::Bool | Kind::Bool0 => {
                key(&mut out, *num, 0);
                varint(&mut out, u64::from(v.as_bool().ok_or_else(bad)?));
            }
            Kind::Int | Kind::Int0 => {
                key(&mut out, *num, 0);
                varint(&mut out, v.as_i64().ok_or_else(bad)? as u64);
            }
            Kind::Float => {
                key(&mut out, *num, 1);
                out.extend_from_slice(&v.as_f64().ok_or_else(bad)?.to_le_bytes());
            }
            Kind::Ints => {
                for n in v.as_array().ok_or_else(bad)? {
                    key(&mut out, *num, 0);
                    varint(&mut out, n.as_i64().ok_or_else(bad)? as u64);
                }
            }
            Kind::Strs | Kind::Msgs(_) | Kind::Byteses | Kind::Raws => {
                for item in v.as_array().ok_or_else(bad)? {
                    delimited_field(&mut out, *num, &encode_delimited(item, kind, what, name)?);
                }
            }
            Kind::MapStr | Kind::MapBytes | Kind::MapQuantity | Kind::MapStrList | Kind::MapTime | Kind::MapMsg(_) => {
                let value_kind = &map_value(kind);
                for (k, x) in v.as_object().ok_or_else(bad)? {
                    let mut entry = Vec::new();
                    delimited_field(&mut entry, 1, k.as_bytes());
                    delimited_field(&mut entry, 2, &encode_delimited(x, value_kind, what, name)?);
                    delimited_field(&mut out, *num, &entry);
                }
            }
            _ => delimited_field(&mut out, *num, &encode_delimited(v, kind, what, name)?),
        }
    }
    Ok(out)
}

/// An object (with its apiVersion and kind, a list's `<Kind>List` too) in the `k8s\0`
/// protobuf envelope, as the real server answers clients that ask for
/// `application/vnd.kubernetes.protobuf`.
pub fn encode(obj: &Value) -> ApiResult<Vec<u8>> {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    let fields =
        message_of(api_version, kind).ok_or_else(|| ApiError::internal(format!("protobuf: no message for {api_version} {kind}")))?;
    let raw = encode_message(obj, fields, "")?;
    let mut tm = Vec::new();
    delimited_field(&mut tm, 1, api_version.as_bytes());
    delimited_field(&mut tm, 2, kind.as_bytes());
    let mut out = b"k8s\0".to_vec();
    delimited_field(&mut out, 1, &tm);
    delimited_field(&mut out, 2, &raw);
    Ok(out)
}

/// Whether a request's first accepted media type is Kubernetes' protobuf (client-go's protobuf
/// clients send `application/vnd.kubernetes.protobuf, application/json`).
pub fn preferred(accept: &str) -> bool {
    let first = accept.split(',').map(str::trim).find(|m| !m.is_empty()).unwrap_or("");
    first.split(';').next().unwrap_or("").trim() == "application/vnd.kubernetes.protobuf"
}

/// Whether objects of this apiVersion and kind have a protobuf form.
pub fn has_message(api_version: &str, kind: &str) -> bool {
    message_of(api_version, kind).is_some()
}

/// One event of a protobuf watch stream (`application/vnd.kubernetes.protobuf;stream=watch`):
/// a `meta.v1.WatchEvent` without the envelope (the stream's serializer is the raw one), its
/// object an enveloped protobuf object, the whole frame prefixed by its length as a 32-bit
/// big-endian integer (apimachinery's length-delimited framer).
pub fn watch_frame(kind: &str, obj: &Value) -> ApiResult<Vec<u8>> {
    let mut raw = Vec::new();
    delimited_field(&mut raw, 1, &encode(obj)?);
    let mut event = Vec::new();
    delimited_field(&mut event, 1, kind.as_bytes());
    delimited_field(&mut event, 2, &raw);
    let len = u32::try_from(event.len()).map_err(|_| ApiError::internal("protobuf: a watch event over 4 GiB"))?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&event);
    Ok(out)
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

    #[test]
    fn objects_round_trip_through_the_generated_tables() {
        let deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "creationTimestamp": "2026-01-02T03:04:05Z", "generation": 2},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                    "containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "500m"}},
                        "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 3}}],
                    "volumes": [{"name": "v", "emptyDir": {}}]}}}});
        let back = decode(&encode(&deploy).unwrap()).unwrap();
        assert_eq!(back, deploy);
        assert_eq!(go_duration(90 * 60 * 1_000_000_000), "1h30m0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(parse_go_duration("1h30m0s"), Some(90 * 60 * 1_000_000_000));
        assert!(encode(&json!({"apiVersion": "v1", "kind": "ConfigMap", "bogus": 1})).is_err());
    }

    #[test]
    fn a_watch_event_is_framed_as_client_go_reads_it() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}});
        let frame = watch_frame("ADDED", &cm).unwrap();
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        let inner = encode(&cm).unwrap();
        let raw = field(1, &inner);
        assert_eq!(&frame[4..], [field(1, b"ADDED"), field(2, &raw)].concat().as_slice());
        assert!(preferred("application/vnd.kubernetes.protobuf, application/json"));
        assert!(!preferred("application/json, application/vnd.kubernetes.protobuf"));
    }
}
