//! The filters of the prune routes (`docker container|image|volume|system prune --filter`), as
//! Docker reads them: `until` (only what was created before), `label`/`label!` (`KEY` or
//! `KEY=VALUE`; every `label` must match, no `label!` may), and the route's own keys.

use std::collections::BTreeMap;

use super::{bad, ApiError};

#[derive(Debug, Default)]
pub struct PruneFilter {
    /// Unix seconds: only what was created before.
    pub until: Option<f64>,
    labels: Vec<(String, Option<String>)>,
    not_labels: Vec<(String, Option<String>)>,
    /// The route's own keys (`dangling`, `all`), as given.
    pub other: BTreeMap<String, Vec<String>>,
}

fn label(v: &str) -> (String, Option<String>) {
    match v.split_once('=') {
        Some((k, val)) => (k.to_string(), Some(val.to_string())),
        None => (v.to_string(), None),
    }
}

impl PruneFilter {
    /// Parse `filters`, allowing `until` when `with_until`, the labels, and `own` keys.
    pub fn parse(filters: std::collections::HashMap<String, Vec<String>>, with_until: bool, own: &[&str]) -> Result<PruneFilter, ApiError> {
        let mut f = PruneFilter::default();
        for (k, vals) in filters {
            match k.as_str() {
                "until" if with_until => {
                    for v in &vals {
                        let t = crate::streams::parse_since(v)
                            .ok_or_else(|| bad(format!("invalid filter 'until={v}': not a time or a duration")))?;
                        f.until = Some(f.until.map_or(t, |u: f64| u.min(t)));
                    }
                }
                "label" => f.labels.extend(vals.iter().map(|v| label(v))),
                "label!" => f.not_labels.extend(vals.iter().map(|v| label(v))),
                k if own.contains(&k) => {
                    f.other.insert(k.to_string(), vals);
                }
                _ => return Err(bad(format!("invalid filter '{k}'"))),
            }
        }
        Ok(f)
    }

    fn has(labels: &BTreeMap<String, String>, (k, v): &(String, Option<String>)) -> bool {
        match v {
            Some(v) => labels.get(k) == Some(v),
            None => labels.contains_key(k),
        }
    }

    /// Whether an object with these labels, created at `created` (unix seconds), is pruned.
    pub fn matches(&self, labels: &BTreeMap<String, String>, created: f64) -> bool {
        self.until.is_none_or(|u| created < u)
            && self.labels.iter().all(|l| Self::has(labels, l))
            && !self.not_labels.iter().any(|l| Self::has(labels, l))
    }

    /// A boolean key of the route (`dangling`, `all`): `None` when absent.
    pub fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.other.get(key).and_then(|v| v.first()) {
            None => Ok(None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(Some(true)),
                "0" | "false" => Ok(Some(false)),
                _ => Err(bad(format!("invalid filter '{key}={v}'"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Result<PruneFilter, ApiError> {
        let mut m = std::collections::HashMap::<String, Vec<String>>::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        PruneFilter::parse(m, true, &["dangling"])
    }

    #[test]
    fn labels_until_and_refusals() {
        let labels = BTreeMap::from([("team".to_string(), "ml".to_string()), ("keep".to_string(), "no".to_string())]);
        assert!(f(&[("label", "team")]).unwrap().matches(&labels, 0.0));
        assert!(f(&[("label", "team=ml"), ("label", "keep")]).unwrap().matches(&labels, 0.0));
        assert!(!f(&[("label", "team=web")]).unwrap().matches(&labels, 0.0));
        assert!(!f(&[("label!", "keep")]).unwrap().matches(&labels, 0.0));
        assert!(f(&[("label!", "keep=yes")]).unwrap().matches(&labels, 0.0));
        let until = f(&[("until", "100")]).unwrap();
        assert!(until.matches(&labels, 99.0) && !until.matches(&labels, 101.0));
        assert!(f(&[("bogus", "1")]).is_err());
        assert!(f(&[("until", "yesterday")]).is_err());
        assert_eq!(f(&[("dangling", "false")]).unwrap().flag("dangling").unwrap(), Some(false));
        assert!(f(&[("dangling", "maybe")]).unwrap().flag("dangling").is_err());
    }
}
