//! The filters of the prune routes (`docker container|image|volume|system prune --filter`), as
//! Docker reads them: `until` (only what was created before), `label`/`label!` (`KEY` or
//! `KEY=VALUE`; every `label` must match, no `label!` may), and the route's own keys.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};

fn bad(m: String) -> Error {
    Error::BadRequest(m)
}

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
    pub fn parse(filters: std::collections::HashMap<String, Vec<String>>, with_until: bool, own: &[&str]) -> Result<PruneFilter> {
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
    pub fn flag(&self, key: &str) -> Result<Option<bool>> {
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

    fn f(pairs: &[(&str, &str)]) -> Result<PruneFilter> {
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

/// What `prune_containers` removed.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerPruneReport {
    pub containers_deleted: Vec<String>,
    pub space_reclaimed: u64,
}

/// What `prune_images` removed: Docker's untag and delete entries.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImagePruneReport {
    pub images_deleted: Vec<crate::images::ImageDeleteItem>,
    pub space_reclaimed: u64,
}

/// What `prune_build_cache` removed.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildCachePruneReport {
    pub caches_deleted: Vec<String>,
    pub space_reclaimed: u64,
}

/// What `prune_volumes` removed.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumePruneReport {
    pub volumes_deleted: Vec<String>,
    pub space_reclaimed: u64,
}

impl crate::Engine {
    /// `POST /containers/prune`: remove stopped containers (a restarting one counts as running)
    /// that the `until`/`label` filters select; the space of their writable layers is reclaimed.
    pub async fn prune_containers(&self, f: &PruneFilter) -> ContainerPruneReport {
        let mut r = ContainerPruneReport::default();
        for s in self.containers() {
            let created = chrono::DateTime::parse_from_rfc3339(&s.created)
                .map(|t| t.timestamp() as f64)
                .unwrap_or(0.0);
            if s.state.running || s.state.restarting || !f.matches(&s.config.labels, created) {
                continue;
            }
            let (rw, _) = self.container_sizes(&s);
            if self.remove(&s.id, false, false).await.is_ok() {
                r.space_reclaimed += rw;
                r.containers_deleted.push(s.id);
            }
        }
        r
    }

    /// `POST /images/prune`: remove dangling images (untagged, unused, no child images); with
    /// `all`, every image no container uses.
    pub fn prune_images(&self, f: &PruneFilter, all: bool) -> ImagePruneReport {
        use crate::images::ImageDeleteItem;
        let mut r = ImagePruneReport::default();
        let imgs = self.images.list();
        // Intermediate images (untagged parents of other images) are not dangling.
        let intermediate = crate::images::intermediate_ids(&imgs);
        for s in imgs {
            if (!all && (!s.tags.is_empty() || intermediate.contains(&s.id))) || self.image_in_use(&s.id) {
                continue;
            }
            let cfg = self.images.config(&s.id).ok();
            let created = cfg
                .as_ref()
                .and_then(|c| c.created.as_deref())
                .and_then(crate::streams::parse_since)
                .unwrap_or(0.0);
            let labels = cfg.and_then(|c| c.config.labels).unwrap_or_default();
            if !f.matches(&labels.into_iter().collect(), created) {
                continue;
            }
            let size = self
                .images
                .manifest(&s.id)
                .map(|m| m.layers.iter().map(|l| l.size).sum::<u64>())
                .unwrap_or(0);
            for t in &s.tags {
                r.images_deleted.push(ImageDeleteItem::Untagged(t.clone()));
            }
            if self.images.delete(&s.id).is_ok() {
                r.space_reclaimed += size;
                r.images_deleted.push(ImageDeleteItem::Deleted(s.id.to_string()));
                self.events.emit("image", "delete", &s.id.to_string(), Default::default());
            }
        }
        r
    }

    /// `POST /build/prune`: forget the build cache and remove the images only it kept: untagged
    /// intermediate images and cached step results that no container uses. Images that are
    /// tagged, or in use, stay.
    pub fn prune_build_cache(&self) -> BuildCachePruneReport {
        let imgs = self.images.list();
        let intermediate = crate::images::intermediate_ids(&imgs);
        let cached: std::collections::BTreeSet<_> = self.build_cache.images().into_iter().collect();
        self.build_cache.clear();
        let doomed: Vec<_> = imgs
            .iter()
            .filter(|s| (intermediate.contains(&s.id) || (s.tags.is_empty() && cached.contains(&s.id))) && !self.image_in_use(&s.id))
            .collect();
        let layers_of = |id: &oci::Digest| -> Vec<(String, u64)> {
            self.images
                .manifest(id)
                .map(|m| m.layers.iter().map(|l| (l.digest.to_string(), l.size)).collect())
                .unwrap_or_default()
        };
        let kept: std::collections::BTreeSet<String> = imgs
            .iter()
            .filter(|s| !doomed.iter().any(|d| d.id == s.id))
            .flat_map(|s| layers_of(&s.id).into_iter().map(|(d, _)| d))
            .collect();
        let mut freed: BTreeMap<String, u64> = BTreeMap::new();
        let mut r = BuildCachePruneReport::default();
        for s in &doomed {
            let layers = layers_of(&s.id);
            if self.images.delete(&s.id).is_ok() {
                r.caches_deleted.push(s.id.to_string());
                for (d, size) in layers {
                    if !kept.contains(&d) {
                        freed.insert(d, size);
                    }
                }
            }
        }
        r.space_reclaimed = freed.values().sum();
        r
    }

    /// `POST /volumes/prune`: remove unused anonymous volumes, or with `all` every unused one,
    /// that the `label` filters select.
    pub fn prune_volumes(&self, f: &PruneFilter, all: bool) -> VolumePruneReport {
        let mut r = VolumePruneReport::default();
        for v in self.volumes.list() {
            // Docker prunes only anonymous volumes by default (API >= 1.42).
            let anonymous = v.labels.contains_key(crate::volumes::ANONYMOUS_LABEL);
            if (!all && !anonymous) || !f.matches(&v.labels, 0.0) || !self.volume_users(&v.name).is_empty() {
                continue;
            }
            let size = crate::fsops::dir_size(std::path::Path::new(&v.mountpoint));
            if self.remove_volume(&v.name, false).is_ok() {
                r.space_reclaimed += size;
                r.volumes_deleted.push(v.name);
            }
        }
        r
    }
}
