//! The build cache: step key → the image that step produced. Keys are content hashes of the step's
//! input state (parent config and layers), the instruction after substitution, and for COPY/ADD
//! the content of the sources; entries whose image has gone are ignored.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;

use oci::Digest;

pub struct Cache {
    path: PathBuf,
    map: Mutex<BTreeMap<String, Digest>>,
    /// Content digests of context files by identity and change stamp, so an unchanged file is not
    /// read again by the next build of the same directory.
    files: Mutex<HashMap<FileStamp, String>>,
}

/// A file's identity and everything that changes when its content does (ctime cannot be set back).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Entries kept in the file digest memo before it starts over.
const MAX_FILES: usize = 200_000;

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
            files: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &Digest) -> Option<Digest> {
        self.map.lock().unwrap().get(key.hex()).cloned()
    }

    /// The images the cache points at.
    pub fn images(&self) -> Vec<Digest> {
        self.map.lock().unwrap().values().cloned().collect()
    }

    /// Forget every step (`docker builder prune`).
    pub fn clear(&self) {
        let mut m = self.map.lock().unwrap();
        m.clear();
        if let Err(e) = oci::store::write_atomic(&self.path, b"{}") {
            tracing::warn!(error = %e, "saving the build cache");
        }
    }

    pub fn put(&self, key: &Digest, image: &Digest) {
        let mut m = self.map.lock().unwrap();
        m.insert(key.hex().to_string(), image.clone());
        let data = serde_json::to_vec(&*m).expect("cache serializes");
        if let Err(e) = oci::store::write_atomic(&self.path, &data) {
            tracing::warn!(error = %e, "saving the build cache");
        }
    }

    /// The content digest of the file `md` describes, computed by `compute` unless known.
    pub fn file_digest(&self, md: &std::fs::Metadata, compute: impl FnOnce() -> crate::Result<String>) -> crate::Result<String> {
        let stamp = FileStamp {
            dev: md.dev(),
            ino: md.ino(),
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        };
        if let Some(d) = self.files.lock().unwrap().get(&stamp) {
            return Ok(d.clone());
        }
        let d = compute()?;
        let mut files = self.files.lock().unwrap();
        if files.len() >= MAX_FILES {
            files.clear();
        }
        files.insert(stamp, d.clone());
        Ok(d)
    }
}
