//! Query strings as Docker's API server reads them.

use std::collections::HashMap;

use serde_json::Value;

use super::{bad, ApiError};

/// Parsed query string; repeated keys kept.
#[derive(Debug, Default)]
pub struct Q(pub Vec<(String, String)>);

impl Q {
    pub fn parse(raw: Option<String>) -> Q {
        let raw = raw.unwrap_or_default();
        Q(raw
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let dec = |s: &str| {
                    percent_encoding::percent_decode_str(&s.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (dec(k), dec(v))
            })
            .collect())
    }
    /// The first value of `k`, as Go's `FormValue` takes it (docker-py sends `dockerfile` twice
    /// for a Dockerfile outside the context: its name in the tar, then its content).
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect()
    }
    /// Docker's boolean query values (`httputils.BoolValue`): absent, empty, 0, no, false and none
    /// (any case, spaces trimmed) are false; anything else is true.
    pub fn bool(&self, k: &str) -> bool {
        self.get(k)
            .is_some_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "no" | "false" | "none"))
    }
    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        match self.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| bad(format!("invalid value for {k}: {v:?}"))),
        }
    }
    /// `filters` in either JSON form: `{"k":["v"]}` or `{"k":{"v":true}}`.
    pub fn filters(&self) -> Result<HashMap<String, Vec<String>>, ApiError> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(HashMap::new());
        };
        let v: Value = serde_json::from_str(raw).map_err(|e| bad(format!("invalid filters: {e}")))?;
        let obj = v.as_object().ok_or_else(|| bad("invalid filters: expected a JSON object"))?;
        let mut out = HashMap::new();
        for (k, vals) in obj {
            let list: Vec<String> = match vals {
                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
                Value::Object(m) => m
                    .iter()
                    .filter(|(_, b)| b.as_bool().unwrap_or(false))
                    .map(|(s, _)| s.clone())
                    .collect(),
                Value::String(s) => vec![s.clone()],
                _ => return Err(bad(format!("invalid filter {k:?}"))),
            };
            out.insert(k.clone(), list);
        }
        Ok(out)
    }
}

/// Whether a filter key's values match, as Docker reads them: any one value of a key matches,
/// except `label`, whose values must all match.
pub fn matches_filter(key: &str, vals: &[String], f: impl Fn(&String) -> bool) -> bool {
    if key == "label" {
        vals.iter().all(f)
    } else {
        vals.iter().any(f)
    }
}
