//! Steps taken from the cache: a step's cache key, the local build cache and the `--cache-from`
//! images' history.

use oci::spec::{Descriptor, History, ImageConfig};
use oci::Digest;
use serde_json::{json, Value};

use super::{Builder, Progress, State};
use crate::error::Result;

impl Builder<'_> {
    /// The cache key of a step on state `st`: its input filesystem and config, and what it does.
    pub(super) fn key(&self, st: &State, what: &Value) -> Digest {
        let c = &st.config;
        let v = json!({
            "os": c.os, "arch": c.architecture, "diff_ids": c.rootfs.diff_ids, "config": c.config,
            "step": what, "time": self.opts.timestamp,
        });
        Digest::of(serde_json::to_string(&v).expect("json").as_bytes())
    }

    /// A cached result for `key` whose image (and its blobs) are all still there.
    fn cached(&self, key: &Digest) -> Option<(Digest, ImageConfig, Vec<Descriptor>)> {
        let id = self.cache.get(key)?;
        let images = self.backend.images();
        let config = images.config(&id).ok()?;
        let manifest = images.manifest(&id).ok()?;
        if !manifest.layers.iter().all(|l| images.content().contains(&l.digest)) {
            return None;
        }
        Some((id, config, manifest.layers))
    }

    /// The layer a `--cache-from` image has for the step with cache key `key` on `st`: its history
    /// entry and the layer (diff ID and blob), when the layers below it are `st`'s.
    fn cached_in_sources(&self, st: &State, key: &Digest) -> Option<(History, Digest, Descriptor)> {
        let mark = cache_comment(key);
        let below = &st.config.rootfs.diff_ids;
        let images = self.backend.images();
        for src in &self.sources {
            let diff_ids = &src.config.rootfs.diff_ids;
            let mut layer = 0;
            for h in &src.config.history {
                if h.empty_layer {
                    continue;
                }
                if h.comment.as_deref() == Some(mark.as_str())
                    && layer == below.len()
                    && layer < diff_ids.len()
                    && layer < src.layers.len()
                    && diff_ids[..layer] == below[..]
                    && images.content().contains(&src.layers[layer].digest)
                {
                    return Some((h.clone(), diff_ids[layer].clone(), src.layers[layer].clone()));
                }
                layer += 1;
            }
        }
        None
    }

    /// Take a cached result (or not); returns whether it was used. With `--cache-from`, only the
    /// images it names are cache sources, as in Docker's classic builder.
    pub(super) fn try_cache(&mut self, st: &mut State, key: &Digest) -> Result<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        if !self.opts.cache_from.is_empty() {
            let Some((h, diff_id, layer)) = self.cached_in_sources(st, key) else {
                return Ok(false);
            };
            self.emit(Progress::Cached);
            st.config.created = h.created.clone().or_else(|| Some(self.now()));
            st.config.history.push(h);
            st.config.rootfs.diff_ids.push(diff_id);
            st.layers.push(layer);
            st.id = None;
            let id = self.commit(st)?;
            self.cache.put(key, &id);
            self.emit(Progress::Done { id: Some(&id) });
            return Ok(true);
        }
        let Some((id, config, layers)) = self.cached(key) else {
            return Ok(false);
        };
        self.emit(Progress::Cached);
        st.config = config;
        st.layers = layers;
        st.id = Some(id.clone());
        st.parent = Some(id.clone());
        self.emit(Progress::Done { id: Some(&id) });
        Ok(true)
    }
}

/// An image named by `--cache-from`.
pub(super) struct CacheSource {
    pub(super) config: ImageConfig,
    pub(super) layers: Vec<Descriptor>,
}

/// What the history comment of a step's layer starts with; the step's cache key follows, so a
/// build elsewhere can take the layer for the same step (`--cache-from`).
const CACHE_MARK: &str = "berth.build cache=";

/// The history comment of a layer made by the step with cache key `key`.
pub(super) fn cache_comment(key: &Digest) -> String {
    format!("{CACHE_MARK}{}", &key.hex()[..32])
}
