//! An image's root filesystem as its layers merge, read from the unpacked layer directories
//! without mounting anything: what `image diff` compares and the SBOM scan reads.
//!
//! Layers are applied bottom first, as overlayfs stacks them: a whiteout (a 0:0 character device)
//! hides the path and everything below it, an opaque directory hides what the layers beneath it
//! hold there.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::unpack::OPAQUE_XATTR;

/// What kind of entry a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Device,
    Fifo,
    Socket,
}

/// One path of the merged tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size in bytes (regular files).
    pub size: u64,
    /// The target of a symlink.
    pub link: Option<String>,
    /// Index of the layer the entry comes from (0 = bottom).
    pub layer: usize,
    /// Where its content is on the host.
    pub host: PathBuf,
}

/// The merged tree: image path (`/etc/os-release`) → entry.
#[derive(Debug, Default)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
}

fn is_opaque(p: &Path) -> bool {
    crate::diff::getxattr(p, OPAQUE_XATTR).as_deref() == Some(b"y")
}

impl Tree {
    /// Merge the layer directories `lowers`, topmost first (as [`crate::ImageStore::lower_dirs`]
    /// returns them).
    pub fn merge(lowers: &[PathBuf]) -> Result<Tree> {
        let mut t = Tree::default();
        for (i, dir) in lowers.iter().rev().enumerate() {
            t.apply(dir, i).ctx("read layer", dir)?;
        }
        Ok(t)
    }

    /// Remove `path` and everything below it.
    fn remove_subtree(&mut self, path: &str) {
        self.entries.remove(path);
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let below: Vec<String> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            self.entries.remove(&k);
        }
    }

    fn apply(&mut self, root: &Path, layer: usize) -> io::Result<()> {
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            for e in fs::read_dir(&dir)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                let path = format!("{rel}/{name}");
                let host = e.path();
                let md = fs::symlink_metadata(&host)?;
                let ft = md.file_type();
                if ft.is_char_device() && md.rdev() == 0 {
                    self.remove_subtree(&path);
                    continue;
                }
                let kind = if ft.is_dir() {
                    Kind::Dir
                } else if ft.is_symlink() {
                    Kind::Symlink
                } else if ft.is_file() {
                    Kind::File
                } else if ft.is_fifo() {
                    Kind::Fifo
                } else if ft.is_socket() {
                    Kind::Socket
                } else {
                    Kind::Device
                };
                // A directory over a non-directory, or the reverse, replaces what was there.
                if kind != Kind::Dir || self.entries.get(&path).is_some_and(|x| x.kind != Kind::Dir) || is_opaque(&host) {
                    self.remove_subtree(&path);
                }
                let link =
                    (kind == Kind::Symlink).then(|| fs::read_link(&host).map(|l| l.to_string_lossy().into_owned()).unwrap_or_default());
                self.entries.insert(
                    path.clone(),
                    Entry {
                        kind,
                        mode: md.mode() & 0o7777,
                        uid: md.uid(),
                        gid: md.gid(),
                        size: if kind == Kind::File { md.size() } else { 0 },
                        link,
                        layer,
                        host: host.clone(),
                    },
                );
                if kind == Kind::Dir {
                    stack.push((host, path));
                }
            }
        }
        Ok(())
    }

    /// The content of the regular file at `path`, following no links; `None` if there is none.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let e = self.entries.get(path).filter(|e| e.kind == Kind::File)?;
        fs::read(&e.host).ok()
    }

    /// The entries directly below directory `dir`.
    pub fn children<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let n = prefix.len();
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(move |(k, _)| !k[n..].contains('/'))
            .map(|(k, v)| (k.as_str(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::{mknod, Mode, SFlag};

    #[test]
    fn layers_merge_with_whiteouts_and_opaque_dirs() {
        let d = tempfile::tempdir().unwrap();
        let (l0, l1) = (d.path().join("l0"), d.path().join("l1"));
        fs::create_dir_all(l0.join("etc/conf.d")).unwrap();
        fs::write(l0.join("etc/a"), "a0").unwrap();
        fs::write(l0.join("etc/b"), "b0").unwrap();
        fs::write(l0.join("etc/conf.d/x"), "x").unwrap();
        fs::create_dir_all(l0.join("opt/old")).unwrap();
        fs::write(l0.join("opt/old/f"), "f").unwrap();
        fs::create_dir_all(l1.join("etc")).unwrap();
        fs::write(l1.join("etc/a"), "a1-longer").unwrap();
        mknod(&l1.join("etc/b"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        mknod(&l1.join("etc/conf.d"), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        fs::create_dir_all(l1.join("opt")).unwrap();
        let opaque = std::ffi::CString::new(l1.join("opt").to_str().unwrap()).unwrap();
        let k = std::ffi::CString::new(OPAQUE_XATTR).unwrap();
        let set = unsafe { libc::lsetxattr(opaque.as_ptr(), k.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
        assert_eq!(set, 0, "setting the opaque xattr needs root");
        fs::write(l1.join("opt/new"), "n").unwrap();
        let t = Tree::merge(&[l1.clone(), l0.clone()]).unwrap();
        let paths: Vec<&str> = t.entries.keys().map(String::as_str).collect();
        assert_eq!(paths, ["/etc", "/etc/a", "/opt", "/opt/new"]);
        assert_eq!(t.read("/etc/a").unwrap(), b"a1-longer");
        assert_eq!(t.entries["/etc/a"].layer, 1);
        assert_eq!(t.entries["/etc/a"].size, 9);
        assert_eq!(t.children("/etc").map(|(p, _)| p).collect::<Vec<_>>(), ["/etc/a"]);
    }
}
