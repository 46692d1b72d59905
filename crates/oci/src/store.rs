//! The content store: blobs addressed by their sha256 digest.
//!
//! A write streams into a temporary file under `ingest/`, is hashed on the way, verified against the
//! expected digest (when one is given), fsynced and atomically renamed into `sha256/<hex>`. A reader
//! therefore never sees a partial or unverified blob.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

/// A directory of blobs by digest.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl ContentStore {
    /// Open (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for d in [root.join("sha256"), root.join("ingest")] {
            fs::create_dir_all(&d).ctx("create", &d)?;
        }
        // Leftovers of interrupted writes are garbage: nothing refers to them.
        if let Ok(rd) = fs::read_dir(root.join("ingest")) {
            for e in rd.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(ContentStore { root })
    }

    /// The path a blob lives at (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("sha256").join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Size of a stored blob.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let p = self.path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::BlobNotFound(digest.to_string())),
            Err(e) => Err(Error::Io {
                op: "stat",
                path: p,
                source: e,
            }),
        }
    }

    /// Open a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        match File::open(&p) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::BlobNotFound(digest.to_string())),
            Err(e) => Err(Error::Io {
                op: "open",
                path: p,
                source: e,
            }),
        }
    }

    /// Read a whole (small) blob.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        let p = self.path(digest);
        self.open_blob(digest)?.read_to_end(&mut v).ctx("read", p)?;
        Ok(v)
    }

    /// Store bytes; returns their digest.
    pub fn put(&self, data: &[u8]) -> Result<Digest> {
        self.ingest(data, None).map(|(d, _)| d)
    }

    /// Stream `r` into the store. If `expected` is given and the content hashes differently, nothing is
    /// stored and `DigestMismatch` is returned.
    pub fn ingest(&self, r: impl Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.ingest_new(r, expected).map(|(d, n, _)| (d, n))
    }

    /// Like [`Self::ingest`], also saying whether the blob is new (was not in the store already).
    /// On any error the temporary file is removed.
    pub fn ingest_new(&self, mut r: impl Read, expected: Option<&Digest>) -> Result<(Digest, u64, bool)> {
        let mut w = self.writer()?;
        io::copy(&mut r, &mut w).ctx("write", &w.tmp)?;
        w.commit_new(expected)
    }

    /// A writer for a new blob; call [`BlobWriter::commit`] to store it. Dropping it discards it.
    pub fn writer(&self) -> Result<BlobWriter> {
        let n = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join("ingest").join(format!("{}-{}", std::process::id(), n));
        let f = File::create(&tmp).ctx("create", &tmp)?;
        Ok(BlobWriter {
            inner: Some(HashingWriter::new(io::BufWriter::with_capacity(256 * 1024, f))),
            tmp,
            store: self.clone(),
        })
    }

    /// Remove a blob (no error if absent).
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                op: "remove",
                path: p,
                source: e,
            }),
        }
    }

    /// Every blob digest in the store.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx("read dir", &dir)? {
            let e = e.ctx("read dir", &dir)?;
            if let Some(name) = e.file_name().to_str() {
                if let Ok(d) = Digest::parse(name) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

/// An in-progress blob write.
pub struct BlobWriter {
    inner: Option<HashingWriter<io::BufWriter<File>>>,
    tmp: PathBuf,
    store: ContentStore,
}

impl BlobWriter {
    /// Verify, fsync and atomically publish the blob.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.commit_new(expected).map(|(d, n, _)| (d, n))
    }

    /// Like [`Self::commit`], also saying whether the blob is new (`false`: it was already stored,
    /// and this copy is dropped).
    pub fn commit_new(mut self, expected: Option<&Digest>) -> Result<(Digest, u64, bool)> {
        let (digest, len, buf) = self.inner.take().expect("writer used after commit").finish();
        let file = buf.into_inner().map_err(|e| Error::Io {
            op: "flush",
            path: self.tmp.clone(),
            source: e.into_error(),
        })?;
        if let Some(exp) = expected {
            if *exp != digest {
                return Err(Error::DigestMismatch {
                    expected: exp.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let dest = self.store.path(&digest);
        if dest.exists() {
            return Ok((digest, len, false));
        }
        file.sync_all().ctx("fsync", &self.tmp)?;
        drop(file);
        fs::rename(&self.tmp, &dest).ctx("rename", &dest)?;
        sync_dir(dest.parent().unwrap_or(Path::new("/")));
        Ok((digest, len, true))
    }

    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.as_mut().expect("writer used after commit").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().expect("writer used after commit").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// fsync a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write a file atomically and durably: temp file, fsync, rename, fsync the directory. Readers
/// see the old content or the new, never a mix, and the new content survives a power loss once
/// this returns.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_via_rename(path, data, true)
}

/// Write a file atomically for readers (temp file, rename) without syncing it to disk: for state
/// that means nothing after a reboot or is written again before it is next read (the files under
/// the exec root, OCI bundles). Each fsync costs about 0.6 ms on a virtual disk, and there are
/// several on a container's start and exit.
pub fn write_volatile(path: &Path, data: &[u8]) -> Result<()> {
    write_via_rename(path, data, false)
}

fn write_via_rename(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).ctx("create", dir)?;
    let n = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("f"),
        std::process::id(),
        n
    ));
    let res = (|| {
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(data).ctx("write", &tmp)?;
        if durable {
            f.sync_all().ctx("fsync", &tmp)?;
        }
        fs::rename(&tmp, path).ctx("rename", path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    if durable {
        sync_dir(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_verify() {
        let t = tempfile::tempdir().unwrap();
        let s = ContentStore::open(t.path()).unwrap();
        let d = s.put(b"hello").unwrap();
        assert_eq!(s.read(&d).unwrap(), b"hello");
        let wrong = Digest::of(b"other");
        let err = s.ingest(&b"hello world"[..], Some(&wrong)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
        assert!(!s.contains(&Digest::of(b"hello world")));
        assert_eq!(fs::read_dir(t.path().join("ingest")).unwrap().count(), 0);
    }
}
