//! Deterministic tar writing: a layer from an overlay upper directory (whiteouts translated back to
//! `.wh.` entries), or a whole tree (export, `cp`).
//!
//! Entries are sorted by name, owners numeric, user/group names empty, no atime/ctime; with
//! `mtime_clamp` set, every time is clamped to it, so the same tree gives the same bytes.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::unpack::{OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX};

/// How to write a tree as tar.
#[derive(Debug, Clone, Default)]
pub struct TarOptions {
    /// Translate overlay whiteouts (0:0 char devices, opaque xattr) into `.wh.` entries.
    pub overlay_whiteouts: bool,
    /// Clamp every mtime to at most this (e.g. SOURCE_DATE_EPOCH); `None` keeps real mtimes.
    pub mtime_clamp: Option<u64>,
    /// Name prefix for every entry (e.g. "etc" when archiving /etc as `cp` does).
    pub prefix: Option<PathBuf>,
}

pub(crate) fn getxattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let k = std::ffi::CString::new(key).ok()?;
    let mut buf = vec![0u8; 256];
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

struct Writer<W: Write> {
    tar: tar::Builder<W>,
    opts: TarOptions,
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> Writer<W> {
    fn header(&self, md: &fs::Metadata) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(md.uid() as u64);
        h.set_gid(md.gid() as u64);
        let mut mtime = md.mtime().max(0) as u64;
        if let Some(c) = self.opts.mtime_clamp {
            mtime = mtime.min(c);
        }
        h.set_mtime(mtime);
        h.set_size(0);
        h
    }

    fn name(&self, rel: &Path) -> PathBuf {
        match &self.opts.prefix {
            Some(p) if rel.as_os_str().is_empty() => p.clone(),
            Some(p) => p.join(rel),
            None => rel.to_path_buf(),
        }
    }

    fn xattrs(&mut self, path: &Path) -> io::Result<()> {
        if let Some(cap) = getxattr(path, "security.capability") {
            self.tar
                .append_pax_extensions([("SCHILY.xattr.security.capability", cap.as_slice())])?;
        }
        Ok(())
    }

    fn walk(&mut self, abs: &Path, rel: &Path) -> io::Result<()> {
        let mut names: Vec<_> = fs::read_dir(abs)?
            .collect::<io::Result<Vec<_>>>()?
            .into_iter()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let a = abs.join(&n);
            let r = rel.join(&n);
            self.entry(&a, &r)?;
        }
        Ok(())
    }

    fn entry(&mut self, a: &Path, r: &Path) -> io::Result<()> {
        let md = fs::symlink_metadata(a)?;
        let ft = md.file_type();
        let name = self.name(r);
        if self.opts.overlay_whiteouts && ft.is_char_device() && md.rdev() == 0 {
            let mut h = self.header(&md);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            let wh = name.parent().unwrap_or(Path::new("")).join(format!(
                "{WHITEOUT_PREFIX}{}",
                name.file_name().unwrap_or_default().to_string_lossy()
            ));
            return self.tar.append_data(&mut h, wh, io::empty());
        }
        if ft.is_dir() {
            let mut h = self.header(&md);
            h.set_entry_type(tar::EntryType::Directory);
            if !name.as_os_str().is_empty() {
                self.xattrs(a)?;
                self.tar.append_data(&mut h, &name, io::empty())?;
            }
            if self.opts.overlay_whiteouts && getxattr(a, OPAQUE_XATTR).as_deref() == Some(b"y") {
                let mut h = self.header(&md);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o600);
                self.tar.append_data(&mut h, name.join(OPAQUE_MARKER), io::empty())?;
            }
            return self.walk(a, r);
        }
        if md.nlink() > 1 && !ft.is_dir() {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = self.header(&md);
                h.set_entry_type(tar::EntryType::Link);
                return self.tar.append_link(&mut h, &name, first);
            }
            self.links.insert(key, name.clone());
        }
        let mut h = self.header(&md);
        if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = fs::read_link(a)?;
            self.tar.append_link(&mut h, &name, target)
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(md.len());
            self.xattrs(a)?;
            let f = fs::File::open(a)?;
            self.tar.append_data(&mut h, &name, f)
        } else if ft.is_fifo() {
            h.set_entry_type(tar::EntryType::Fifo);
            self.tar.append_data(&mut h, &name, io::empty())
        } else if ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            let dev = md.rdev();
            h.set_device_major(libc::major(dev))?;
            h.set_device_minor(libc::minor(dev))?;
            self.tar.append_data(&mut h, &name, io::empty())
        } else {
            Ok(()) // sockets are not archived
        }
    }
}

/// Write the tree at `dir` as a tar stream to `out`. If `dir` is a file or symlink, that one entry is
/// written (named by its file name, or the prefix).
pub fn write_tar<W: Write>(dir: &Path, out: W, opts: TarOptions) -> io::Result<W> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Complete);
    tar.follow_symlinks(false);
    let mut w = Writer {
        tar,
        opts,
        links: HashMap::new(),
    };
    let md = fs::symlink_metadata(dir)?;
    if md.is_dir() {
        if w.opts.prefix.is_some() {
            w.entry(dir, Path::new(""))?;
        } else {
            w.walk(dir, Path::new(""))?;
        }
    } else {
        let rel = PathBuf::from(dir.file_name().unwrap_or_default());
        if w.opts.prefix.is_some() {
            w.entry(dir, Path::new(""))?;
        } else {
            w.entry(dir, &rel)?;
        }
    }
    w.tar.into_inner()
}

/// A change in a container's filesystem, as `docker diff` reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: String,
    /// 0 modified, 1 added, 2 deleted (Docker's numbering).
    pub kind: u8,
}

/// Changes recorded in an overlay upper dir, relative to the lower layers at `lowers` (top first).
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<Change>> {
    fn exists_below(lowers: &[PathBuf], rel: &Path) -> bool {
        lowers.iter().any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
    }
    fn walk(upper: &Path, rel: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) -> io::Result<()> {
        let dir = upper.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)?
            .collect::<io::Result<Vec<_>>>()?
            .into_iter()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let a = upper.join(&r);
            let md = fs::symlink_metadata(&a)?;
            let path = format!("/{}", r.display());
            if md.file_type().is_char_device() && md.rdev() == 0 {
                out.push(Change { path, kind: 2 });
                continue;
            }
            let kind = if exists_below(lowers, &r) { 0 } else { 1 };
            out.push(Change { path, kind });
            if md.is_dir() {
                walk(upper, &r, lowers, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(upper, Path::new(""), lowers, &mut out)?;
    Ok(out)
}
