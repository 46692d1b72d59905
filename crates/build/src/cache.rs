//! The build cache: step key → the image that step produced. Keys are content hashes of the step's
//! input state (parent config and layers), the instruction after substitution, and for COPY/ADD
//! the content of the sources; entries whose image has gone are ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use oci::Digest;

pub struct Cache {
    path: PathBuf,
    map: Mutex<BTreeMap<String, Digest>>,
}

impl Cache {
    /// Open (or start) the cache file at `path`. A damaged file starts an empty cache.
    pub fn open(path: PathBuf) -> Cache {
        let map = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Cache {
            path,
            map: Mutex::new(map),
        }
    }

    pub fn get(&self, key: &Digest) -> Option<Digest> {
        self.map.lock().unwrap().get(key.hex()).cloned()
    }

    pub fn put(&self, key: &Digest, image: &Digest) {
        let mut m = self.map.lock().unwrap();
        m.insert(key.hex().to_string(), image.clone());
        let data = serde_json::to_vec(&*m).expect("cache serializes");
        if let Err(e) = oci::store::write_atomic(&self.path, &data) {
            tracing::warn!(error = %e, "saving the build cache");
        }
    }

    /// Forget entries whose image `exists` says is gone.
    pub fn prune(&self, exists: impl Fn(&Digest) -> bool) {
        let mut m = self.map.lock().unwrap();
        let before = m.len();
        m.retain(|_, v| exists(v));
        if m.len() != before {
            let data = serde_json::to_vec(&*m).expect("cache serializes");
            let _ = oci::store::write_atomic(&self.path, &data);
        }
    }
}
