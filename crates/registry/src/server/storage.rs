//! Where the registry keeps things.
//!
//! Blobs (layers, configs, and the manifests' own bytes) live in an [`oci::ContentStore`], which the
//! daemon shares with the engine. Everything else is small files under the registry's own
//! directory, each written atomically (temp file, fsync, rename):
//!
//! ```text
//! <meta>/pins/sha256/<hex>                                    hard link to every blob the registry uses
//! <meta>/repositories/<name>/_layers/sha256/<hex>             blob linked into the repository (empty)
//! <meta>/repositories/<name>/_deleted/sha256/<hex>            blob deleted from the repository (empty)
//! <meta>/repositories/<name>/_manifests/revisions/sha256/<hex> manifest revision (JSON RevisionRecord)
//! <meta>/repositories/<name>/_manifests/tags/<tag>            "sha256:<hex>" the tag points at
//! <meta>/repositories/<name>/_referrers/sha256/<subject>/sha256/<hex>
//!                                                             descriptor of a manifest whose subject
//!                                                             is <subject> (JSON)
//! ```
//!
//! A blob the content store holds is present in every repository (what the engine already has is
//! never uploaded again), except where it was deleted: `DELETE` unlinks it and leaves a `_deleted`
//! marker, so the repository answers 404 for it until it is uploaded, mounted or referenced again.
//!
//! The pins keep the registry's content alive when the engine deletes an image whose blobs it
//! shares: the engine removes its directory entry, the registry's hard link keeps the data, and
//! reads fall back to the pin. (They cost no space; a store on another filesystem is not pinned.)
//!
//! Repository names and tags are validated before they become paths: a name is lowercase
//! alphanumeric components joined by `/` (no `.`/`..` components are possible) and no component
//! starts with `_`, so `_layers`, `_manifests` and `_referrers` never collide with a nested
//! repository.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use oci::{ContentStore, Digest};
use serde::{Deserialize, Serialize};

use super::error::{Error, IoContext, Result};
use super::names::RepoName;

/// What the registry records about one manifest revision in a repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    /// Media type the manifest was pushed with (served as its `Content-Type`).
    pub media_type: String,
    /// Size of the manifest in bytes.
    pub size: u64,
    /// The manifest's `subject`, if it has one (it is then listed by the referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
}

/// A referrer as the referrers API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerDescriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Blob data: the shared content store, plus the registry's pins.
#[derive(Debug)]
pub struct Blobs {
    store: ContentStore,
    pins: PathBuf,
    pin_warned: AtomicBool,
}

impl Blobs {
    pub fn new(store: ContentStore, meta_root: &Path) -> Result<Blobs> {
        let pins = meta_root.join("pins").join("sha256");
        fs::create_dir_all(&pins).ctx("create", &pins)?;
        Ok(Blobs {
            store,
            pins,
            pin_warned: AtomicBool::new(false),
        })
    }

    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    fn pin_path(&self, d: &Digest) -> PathBuf {
        self.pins.join(d.hex())
    }

    /// The file holding a blob, if the registry or the content store has it.
    pub fn locate(&self, d: &Digest) -> Option<PathBuf> {
        [self.store.path(d), self.pin_path(d)].into_iter().find(|p| p.is_file())
    }

    /// Read a whole (small) blob.
    pub fn read(&self, d: &Digest) -> Result<Option<Vec<u8>>> {
        let Some(p) = self.locate(d) else { return Ok(None) };
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                op: "read",
                path: p,
                source: e,
            }),
        }
    }

    /// Keep a blob alive for the registry whatever the content store's other users do with it.
    pub fn pin(&self, d: &Digest) {
        let pin = self.pin_path(d);
        if pin.exists() {
            return;
        }
        let src = self.store.path(d);
        match fs::hard_link(&src, &pin) {
            Ok(()) => {}
            // Already pinned, or only the pin has it (the store's entry was removed).
            Err(e) if matches!(e.kind(), io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound) => {}
            Err(e) => {
                if !self.pin_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(blob = %d, error = %e, "cannot pin blobs (hard link); the registry's blobs depend on the content store alone");
                }
            }
        }
    }

    /// Store small content (a manifest) and pin it.
    pub fn put(&self, data: &[u8], digest: &Digest) -> Result<()> {
        if !self.store.contains(digest) {
            self.store.ingest(data, Some(digest))?;
        }
        self.pin(digest);
        Ok(())
    }
}

/// The registry's metadata directory.
#[derive(Debug)]
pub struct Meta {
    root: PathBuf,
}

/// Read a small file; `None` if it does not exist.
fn read_opt(p: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            op: "read",
            path: p.to_path_buf(),
            source: e,
        }),
    }
}

/// Remove a file; whether it existed.
fn remove_opt(p: &Path) -> Result<bool> {
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io {
            op: "remove",
            path: p.to_path_buf(),
            source: e,
        }),
    }
}

/// Names of the entries of a directory (none if it does not exist).
fn list_dir(p: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(p) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Io {
                op: "read dir",
                path: p.to_path_buf(),
                source: e,
            })
        }
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.ctx("read dir", p)?;
        if let Some(n) = e.file_name().to_str() {
            // Temp files of atomic writes start with '.'.
            if !n.starts_with('.') {
                out.push(n.to_string());
            }
        }
    }
    Ok(out)
}

fn parse_json<T: for<'de> Deserialize<'de>>(p: &Path, b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| Error::Corrupt {
        path: p.to_path_buf(),
        msg: e.to_string(),
    })
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // The records are plain structs of strings and numbers: serializing cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

impl Meta {
    pub fn open(root: &Path) -> Result<Meta> {
        let repos = root.join("repositories");
        fs::create_dir_all(&repos).ctx("create", &repos)?;
        Ok(Meta { root: root.to_path_buf() })
    }

    fn repo_dir(&self, repo: &RepoName) -> PathBuf {
        self.root.join("repositories").join(repo.as_str())
    }

    fn layer_link(&self, repo: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_layers").join("sha256").join(d.hex())
    }

    fn revision_path(&self, repo: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_manifests")
            .join("revisions")
            .join("sha256")
            .join(d.hex())
    }

    fn tags_dir(&self, repo: &RepoName) -> PathBuf {
        self.repo_dir(repo).join("_manifests").join("tags")
    }

    fn referrers_dir(&self, repo: &RepoName, subject: &Digest) -> PathBuf {
        self.repo_dir(repo)
            .join("_referrers")
            .join("sha256")
            .join(subject.hex())
            .join("sha256")
    }

    /// Whether the repository exists (has a blob or a manifest).
    pub fn repo_exists(&self, repo: &RepoName) -> bool {
        let d = self.repo_dir(repo);
        d.join("_layers").is_dir() || d.join("_manifests").is_dir()
    }

    fn deleted_marker(&self, repo: &RepoName, d: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_deleted").join("sha256").join(d.hex())
    }

    /// Whether the blob is linked into the repository.
    pub fn blob_linked(&self, repo: &RepoName, d: &Digest) -> bool {
        self.layer_link(repo, d).is_file()
    }

    /// Whether the blob was deleted from the repository (and not linked again since).
    pub fn blob_deleted(&self, repo: &RepoName, d: &Digest) -> bool {
        self.deleted_marker(repo, d).is_file()
    }

    /// Link a blob into a repository (creating the repository, undoing a delete).
    pub fn link_blob(&self, repo: &RepoName, d: &Digest) -> Result<()> {
        let p = self.layer_link(repo, d);
        if !p.is_file() {
            oci::store::write_atomic(&p, b"")?;
        }
        remove_opt(&self.deleted_marker(repo, d))?;
        Ok(())
    }

    /// Delete a blob from a repository: unlink it and mark it deleted there.
    pub fn delete_blob(&self, repo: &RepoName, d: &Digest) -> Result<()> {
        oci::store::write_atomic(&self.deleted_marker(repo, d), b"")?;
        remove_opt(&self.layer_link(repo, d))?;
        Ok(())
    }

    /// A manifest revision of the repository.
    pub fn revision(&self, repo: &RepoName, d: &Digest) -> Result<Option<RevisionRecord>> {
        let p = self.revision_path(repo, d);
        match read_opt(&p)? {
            Some(b) => parse_json(&p, &b).map(Some),
            None => Ok(None),
        }
    }

    pub fn put_revision(&self, repo: &RepoName, d: &Digest, rec: &RevisionRecord) -> Result<()> {
        oci::store::write_atomic(&self.revision_path(repo, d), &to_json(rec))?;
        Ok(())
    }

    /// The digest a tag points at.
    pub fn tag(&self, repo: &RepoName, tag: &str) -> Result<Option<Digest>> {
        let p = self.tags_dir(repo).join(tag);
        match read_opt(&p)? {
            Some(b) => {
                let s = String::from_utf8_lossy(&b);
                Digest::parse(s.trim()).map(Some).map_err(|e| Error::Corrupt {
                    path: p,
                    msg: e.to_string(),
                })
            }
            None => Ok(None),
        }
    }

    pub fn set_tag(&self, repo: &RepoName, tag: &str, d: &Digest) -> Result<()> {
        oci::store::write_atomic(&self.tags_dir(repo).join(tag), d.to_string().as_bytes())?;
        Ok(())
    }

    /// Remove a tag; whether it existed.
    pub fn delete_tag(&self, repo: &RepoName, tag: &str) -> Result<bool> {
        remove_opt(&self.tags_dir(repo).join(tag))
    }

    /// Every tag of the repository, sorted (bytewise, as Go's `sort.Strings`).
    pub fn tags(&self, repo: &RepoName) -> Result<Vec<String>> {
        let mut tags: Vec<String> = list_dir(&self.tags_dir(repo))?
            .into_iter()
            .filter(|t| super::names::valid_tag(t))
            .collect();
        tags.sort();
        Ok(tags)
    }

    /// Remove a manifest revision with the tags pointing at it and its referrer entry; whether it
    /// existed.
    pub fn delete_revision(&self, repo: &RepoName, d: &Digest) -> Result<bool> {
        let Some(rec) = self.revision(repo, d)? else {
            return Ok(false);
        };
        for t in self.tags(repo)? {
            if self.tag(repo, &t).ok().flatten().as_ref() == Some(d) {
                self.delete_tag(repo, &t)?;
            }
        }
        if let Some(subject) = &rec.subject {
            remove_opt(&self.referrers_dir(repo, subject).join(d.hex()))?;
        }
        remove_opt(&self.revision_path(repo, d))?;
        Ok(true)
    }

    /// Record that manifest `desc.digest` refers to `subject`.
    pub fn add_referrer(&self, repo: &RepoName, subject: &Digest, desc: &ReferrerDescriptor) -> Result<()> {
        oci::store::write_atomic(&self.referrers_dir(repo, subject).join(desc.digest.hex()), &to_json(desc))?;
        Ok(())
    }

    /// The manifests of the repository whose subject is `subject`, sorted by digest.
    pub fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<ReferrerDescriptor>> {
        let dir = self.referrers_dir(repo, subject);
        let mut out = Vec::new();
        for n in list_dir(&dir)? {
            let p = dir.join(&n);
            let Some(b) = read_opt(&p)? else { continue };
            let desc: ReferrerDescriptor = parse_json(&p, &b)?;
            // A revision deleted concurrently with its listing is not listed.
            if self.revision_path(repo, &desc.digest).is_file() {
                out.push(desc);
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Every repository, sorted.
    pub fn repositories(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let base = self.root.join("repositories");
        let mut stack = vec![(base, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let entries = list_dir(&dir)?;
            if !prefix.is_empty() && entries.iter().any(|e| e == "_layers" || e == "_manifests") {
                out.push(prefix.clone());
            }
            for e in entries {
                if e.starts_with('_') {
                    continue;
                }
                let p = dir.join(&e);
                if p.is_dir() {
                    let name = if prefix.is_empty() { e } else { format!("{prefix}/{e}") };
                    stack.push((p, name));
                }
            }
        }
        out.retain(|n| RepoName::parse(n).is_ok());
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_roundtrip() {
        let t = tempfile::tempdir().unwrap();
        let m = Meta::open(t.path()).unwrap();
        let repo = RepoName::parse("a/b").unwrap();
        let nested = RepoName::parse("a/b/c").unwrap();
        let d = Digest::of(b"m");
        assert!(!m.repo_exists(&repo));
        m.link_blob(&repo, &d).unwrap();
        assert!(m.repo_exists(&repo) && m.blob_linked(&repo, &d));
        m.put_revision(
            &nested,
            &d,
            &RevisionRecord {
                media_type: "x".into(),
                size: 1,
                subject: None,
            },
        )
        .unwrap();
        m.set_tag(&nested, "v1", &d).unwrap();
        m.set_tag(&nested, "V0", &d).unwrap();
        assert_eq!(m.tags(&nested).unwrap(), ["V0", "v1"]);
        assert_eq!(m.repositories().unwrap(), ["a/b", "a/b/c"]);
        assert!(m.delete_revision(&nested, &d).unwrap());
        assert!(m.tags(&nested).unwrap().is_empty());
        assert!(!m.delete_revision(&nested, &d).unwrap());
        m.delete_blob(&repo, &d).unwrap();
        assert!(!m.blob_linked(&repo, &d) && m.blob_deleted(&repo, &d));
        m.link_blob(&repo, &d).unwrap();
        assert!(m.blob_linked(&repo, &d) && !m.blob_deleted(&repo, &d));
    }

    #[test]
    fn pins_outlive_the_store_entry() {
        let t = tempfile::tempdir().unwrap();
        let store = ContentStore::open(t.path().join("blobs")).unwrap();
        let b = Blobs::new(store.clone(), &t.path().join("meta")).unwrap();
        let d = Digest::of(b"data");
        b.put(b"data", &d).unwrap();
        store.remove(&d).unwrap();
        assert_eq!(b.read(&d).unwrap().unwrap(), b"data");
        assert!(b.locate(&d).is_some_and(|p| p.starts_with(t.path().join("meta"))));
    }
}
