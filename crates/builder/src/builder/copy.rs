//! COPY and ADD: sources from the context, a stage, an image, a here-document or a URL, copied
//! (and for ADD, local archives extracted) onto an overlay of the stage's layers.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::snapshot::{tmp_dir, Snapshot};
use super::{env_get, io_err, Builder, Progress, State};
use crate::dockerfile::{self, Copy, Instruction, Loc};
use crate::error::{Error, Result};
use crate::fsutil::{self, Attrs};
use crate::pattern;

impl Builder<'_> {
    pub(super) fn copy_step(&mut self, st: &mut State, ins: &Instruction, c: &Copy, add: bool) -> Result<()> {
        let loc = ins.loc;
        let what = if add { "ADD" } else { "COPY" };
        let dest_raw = self.expand(st, loc, &c.dest)?;
        let workdir = st.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), dest_raw)
        };
        let dest_slash = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let mut attrs = Attrs::default();
        let chown = c
            .chown
            .as_ref()
            .map(|o| self.expand(st, loc, o))
            .transpose()?
            .filter(|s| !s.is_empty());
        if let Some(m) = &c.chmod {
            let m = self.expand(st, loc, m)?;
            attrs.mode = Some(
                u32::from_str_radix(&m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| Error::at(loc, format!("{what} --chmod={m}: expected an octal mode such as 755")))?,
            );
        }
        // Where the sources come from.
        let mut from_mount: Option<Snapshot> = None;
        let mut from_id = None;
        let src_root = match &c.from {
            None => self.context.clone(),
            Some(f) => {
                if add {
                    return Err(Error::at(loc, "ADD does not take --from"));
                }
                let f = self.expand(st, loc, f)?;
                let id = match self.find_stage(&f) {
                    Some(i) => {
                        // Committed once; later references reuse the ID.
                        let mut s = self.stages[i].state.clone();
                        let id = self.commit(&mut s)?;
                        self.stages[i].state = s;
                        id
                    }
                    None => self.base_image(&f)?,
                };
                let snap = Snapshot::read_only(self.backend.images(), &id, &self.work)?;
                let root = snap.root.clone();
                from_mount = Some(snap);
                from_id = Some(id);
                root
            }
        };
        let from_context = c.from.is_none();
        // Resolve the sources.
        let mut sources: Vec<Source> = Vec::new();
        let mut downloads = Cleanup::default();
        let mut wildcard = false;
        for raw in &c.sources {
            if let Some(name) = raw.strip_prefix("<<") {
                let h = c
                    .heredocs
                    .iter()
                    .find(|h| h.name == name.trim_start_matches('-').trim_matches(['"', '\'']))
                    .ok_or_else(|| Error::at(loc, format!("{what}: no here-document named {name}")))?;
                let content = if h.expand {
                    self.expand_heredoc(st, loc, &h.content)?
                } else {
                    h.content.clone()
                };
                sources.push(Source::Inline {
                    name: h.name.clone(),
                    content,
                });
                continue;
            }
            let s = self.expand(st, loc, raw)?;
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                // Fetched on every build (as Docker does); the content is the cache key.
                let dir = tmp_dir(&self.work)?;
                let path = dir.join("download");
                let mut f = fs::File::create(&path).map_err(|e| io_err("create", &path, e))?;
                let name = self
                    .backend
                    .fetch(&s, &mut f)
                    .map_err(|e| Error::at(loc, format!("ADD {s}: {e}")))?;
                drop(f);
                downloads.0.push(dir);
                let digest = file_digest(&path)?;
                if let Some(want) = &c.checksum {
                    let want = self.expand(st, loc, want)?;
                    let got = format!("sha256:{digest}");
                    if got != want {
                        return Err(Error::at(loc, format!("ADD {s}: checksum mismatch: expected {want}, got {got}")));
                    }
                }
                sources.push(Source::Url {
                    url: s.clone(),
                    name,
                    path,
                    digest,
                });
                continue;
            }
            if c.checksum.is_some() {
                return Err(Error::at(loc, "ADD --checksum is only for URL sources"));
            }
            if add && s.starts_with("git@") {
                return Err(Error::at(loc, format!("ADD {s}: git sources are not supported")));
            }
            let clean = pattern::clean(&s);
            if pattern::has_wildcards(&clean) {
                wildcard = true;
                let found = self.glob(&src_root, &clean, from_context);
                if found.is_empty() {
                    return Err(Error::at(
                        loc,
                        format!("{what} failed: no source files were specified (no match for {s:?})"),
                    ));
                }
                sources.extend(found.into_iter().map(|rel| Source::Path { rel }));
            } else {
                if from_context && !clean.is_empty() && self.ignore.excluded(&clean) {
                    return Err(Error::at(
                        loc,
                        format!(
                            "{what} failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"
                        ),
                    ));
                }
                if fsutil::open_file_in(&src_root, &clean).is_none() && !fsutil::is_dir_in(&src_root, &clean) {
                    let place = if from_context {
                        "build context".to_string()
                    } else {
                        format!("stage/image {:?}", c.from.as_deref().unwrap_or(""))
                    };
                    return Err(Error::at(
                        loc,
                        format!("{what} failed: file not found in {place}: stat {s}: file does not exist"),
                    ));
                }
                sources.push(Source::Path { rel: clean });
            }
        }
        let many = sources.len() > 1 || wildcard;
        if many && !dest_slash {
            return Err(Error::at(
                loc,
                format!("When using {what} with more than one source file, the destination must be a directory and end with a /"),
            ));
        }
        // The key: what is copied (by content), where, and how.
        let mut h = Sha256::new();
        for s in &sources {
            match s {
                Source::Inline { name, content } => {
                    h.update(b"inline\0");
                    h.update(name.as_bytes());
                    h.update(b"\0");
                    h.update(content.as_bytes());
                }
                Source::Url { url, name, digest, .. } => {
                    h.update(b"url\0");
                    h.update(url.as_bytes());
                    h.update(b"\0");
                    h.update(name.as_bytes());
                    h.update(b"\0");
                    h.update(digest.as_bytes());
                }
                Source::Path { rel } => {
                    h.update(b"path\0");
                    h.update(rel.as_bytes());
                    h.update(b"\0");
                    if from_context {
                        self.hash_tree(&mut h, &src_root, rel)?;
                    }
                }
            }
        }
        let content = hex::encode(h.finalize());
        let key = self.key(
            st,
            &json!({"copy": what, "content": content, "from": from_id, "dest": dest, "dest_slash": dest_slash,
                    "chown": chown, "chmod": attrs.mode}),
        );
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        // Do it on an overlay of the current layers.
        let snap = Snapshot::writable(self.backend.images(), st, &self.work)?;
        let res = (|| -> Result<()> {
            if let Some(o) = &chown {
                attrs.owner = Some(fsutil::lookup_owner(&snap.root, o).map_err(|e| Error::at(loc, e.to_string()))?);
            }
            let into_dir = dest_slash || many || fsutil::is_dir_in(&snap.root, &dest);
            for s in &sources {
                match s {
                    Source::Inline { name, content } => {
                        let (dir, fname) = if into_dir {
                            (dest.as_str(), name.as_str())
                        } else {
                            split_dest(&dest)
                        };
                        let d = fsutil::mkdir_in(&snap.root, dir, attrs)?;
                        fsutil::write_file(&d, OsStr::new(fname), &mut content.as_bytes(), attrs, 0o644)?;
                    }
                    Source::Url { name, path, url, .. } => {
                        if into_dir && name.is_empty() {
                            return Err(Error::at(
                                loc,
                                format!("ADD {url}: cannot determine a file name from the URL; give the destination as a file path"),
                            ));
                        }
                        // Downloads are never extracted; they get mode 0600 as in Docker.
                        let (dir, fname) = if into_dir {
                            (dest.as_str(), name.as_str())
                        } else {
                            split_dest(&dest)
                        };
                        let d = fsutil::mkdir_in(&snap.root, dir, attrs)?;
                        let mut f = fs::File::open(path).map_err(|e| io_err("open", path, e))?;
                        fsutil::write_file(&d, OsStr::new(fname), &mut f, attrs, 0o600)?;
                    }
                    Source::Path { rel } => {
                        self.copy_one(&src_root, rel, &snap.root, &dest, into_dir, attrs, add, from_context)
                            .map_err(|e| Error::at(loc, format!("{what} failed: {e}")))?;
                    }
                }
            }
            Ok(())
        })();
        let upper = snap.finish();
        drop(from_mount);
        let upper = upper?;
        res?;
        let created_by = format!("{} {}", what, ins.source.split_once(' ').map(|x| x.1).unwrap_or(""));
        let id = self.add_layer(st, &upper.path, created_by, &key, true)?;
        drop(upper);
        self.emit(Progress::Done { id: Some(&id) });
        Ok(())
    }

    /// Expand the variables in a heredoc body; quotes and backslashes stay as written (they are
    /// escaped before the shared word expansion, which would otherwise remove them).
    fn expand_heredoc(&self, st: &State, loc: Loc, content: &str) -> Result<String> {
        let mut literal = String::with_capacity(content.len());
        for c in content.chars() {
            if matches!(c, '\\' | '\'' | '"') {
                literal.push('\\');
            }
            literal.push(c);
        }
        let env = st.config.config.env.clone().unwrap_or_default();
        let lookup = |k: &str| env_get(&env, k).map(str::to_string).or_else(|| st.args.get(k).cloned());
        dockerfile::expand(&literal, '\\', &lookup).map_err(|e| Error::at(loc, e.to_string()))
    }

    /// Context-relative paths matching a wildcard pattern, sorted.
    fn glob(&self, root: &Path, pat: &str, from_context: bool) -> Vec<String> {
        let comps: Vec<&str> = pat.split('/').collect();
        let mut found = vec![String::new()];
        for c in comps {
            let mut next = Vec::new();
            for base in &found {
                if pattern::has_wildcards(c) {
                    let Ok(rd) = fs::read_dir(root.join(base)) else { continue };
                    let mut names: Vec<String> = rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                    names.sort();
                    for n in names {
                        if pattern::matches(c, &n) {
                            next.push(if base.is_empty() { n } else { format!("{base}/{n}") });
                        }
                    }
                } else {
                    let p = if base.is_empty() { c.to_string() } else { format!("{base}/{c}") };
                    if fs::symlink_metadata(root.join(&p)).is_ok() {
                        next.push(p);
                    }
                }
            }
            found = next;
        }
        found.retain(|p| !(from_context && self.ignore.excluded(p)));
        found
    }

    /// Hash a context path's tree: names, kinds, modes, link targets and file contents (not times).
    fn hash_tree(&self, h: &mut Sha256, root: &Path, rel: &str) -> Result<()> {
        let base = resolve_in(root, rel)?;
        let mut stack = vec![(base, rel.to_string())];
        while let Some((p, r)) = stack.pop() {
            let md = fs::symlink_metadata(&p).map_err(|e| Error::Io {
                op: "stat".into(),
                path: PathBuf::from(&r),
                source: e,
            })?;
            h.update(r.as_bytes());
            h.update(format!("\0{:o}\0", md.permissions().mode()).as_bytes());
            if md.is_dir() {
                let mut names: Vec<_> = fs::read_dir(&p)
                    .map_err(|e| Error::Io {
                        op: "read".into(),
                        path: PathBuf::from(&r),
                        source: e,
                    })?
                    .flatten()
                    .map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir())))
                    .collect();
                names.sort();
                names.reverse();
                for (n, is_dir) in names {
                    let child = if r.is_empty() {
                        n.to_string_lossy().into_owned()
                    } else {
                        format!("{r}/{}", n.to_string_lossy())
                    };
                    // The cache key covers exactly what a copy takes (the same decision).
                    if self.ignore.visit(&child, is_dir) == pattern::Visit::Skip {
                        continue;
                    }
                    stack.push((p.join(&n), child));
                }
            } else if md.file_type().is_symlink() {
                h.update(fs::read_link(&p).map(|t| fsutil::show(&t)).unwrap_or_default().as_bytes());
            } else if md.is_file() {
                h.update(self.cache.file_digest(&md, || file_digest(&p))?.as_bytes());
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_one(
        &self,
        src_root: &Path,
        rel: &str,
        dst_root: &Path,
        dest: &str,
        into_dir: bool,
        attrs: Attrs,
        add: bool,
        from_context: bool,
    ) -> Result<()> {
        let src = resolve_in(src_root, rel)?;
        let md = fs::metadata(&src).map_err(|e| Error::Io {
            op: "stat".into(),
            path: PathBuf::from(rel),
            source: e,
        })?;
        let ignore = &self.ignore;
        let mut filter = |r: &Path, is_dir: bool| {
            if !from_context {
                return fsutil::Visit::Copy;
            }
            let full = if rel.is_empty() {
                fsutil::show(r)
            } else {
                format!("{rel}/{}", fsutil::show(r))
            };
            ignore.visit(&full, is_dir)
        };
        if md.is_dir() {
            // A directory's contents go into the destination directory.
            let d = fsutil::mkdir_in(dst_root, dest, attrs)?;
            fsutil::copy_tree(&src, &d, OsStr::new(""), attrs, &mut filter)?;
            return Ok(());
        }
        if add {
            if let Some(reader) = archive_reader(&src)? {
                let d = fsutil::mkdir_in(dst_root, dest, attrs)?;
                let host = fsutil::host_path(&d)?;
                if !host.starts_with(dst_root) {
                    return Err(Error::Copy(format!("{dest} resolves outside the image")));
                }
                image::unpack::unpack_layer(reader, &host)?;
                return Ok(());
            }
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let (dir, name) = if into_dir { (dest, base) } else { split_dest(dest) };
        let d = fsutil::mkdir_in(dst_root, dir, attrs)?;
        fsutil::copy_tree(&src, &d, OsStr::new(name), attrs, &mut filter)?;
        Ok(())
    }
}

/// Parent directory and file name of a destination path.
pub(super) fn split_dest(dest: &str) -> (&str, &str) {
    let t = dest.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
        None => ("/", t),
    }
}

/// A source's host path, resolved inside its root (symlinks cannot leave it).
fn resolve_in(root: &Path, rel: &str) -> Result<PathBuf> {
    if rel.is_empty() {
        return Ok(root.to_path_buf());
    }
    let f = fsutil::open_file_in(root, rel)
        .map(|f| fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f))))
        .or_else(|| {
            let d = fs::File::open(root).ok()?;
            let comps: Vec<&OsStr> = rel.split('/').filter(|c| !c.is_empty()).map(OsStr::new).collect();
            let fd = image::unpack::open_in_root(std::os::fd::AsRawFd::as_raw_fd(&d), &comps).ok()?;
            Some(fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))))
        });
    match f {
        Some(Ok(p)) if p.starts_with(root) => Ok(p),
        Some(Ok(_)) => Err(Error::Copy(format!("{rel}: resolves outside its root"))),
        _ => Err(Error::Copy(format!("{rel}: no such file or directory"))),
    }
}

/// sha256 of a file's content.
fn file_digest(p: &Path) -> Result<String> {
    let mut f = fs::File::open(p).map_err(|e| Error::Io {
        op: "open".into(),
        path: p.to_path_buf(),
        source: e,
    })?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::Io {
        op: "read".into(),
        path: p.to_path_buf(),
        source: e,
    })?;
    Ok(hex::encode(h.finalize()))
}

/// If `p` is a tar archive (plain, gzip, bzip2 or xz), a reader of the plain tar.
fn archive_reader(p: &Path) -> Result<Option<Box<dyn Read>>> {
    let open = || {
        fs::File::open(p).map_err(|e| Error::Io {
            op: "open".into(),
            path: p.to_path_buf(),
            source: e,
        })
    };
    let mut head = [0u8; 512];
    let mut f = open()?;
    let n = read_full(&mut f, &mut head);
    if n == 512 && is_tar_header(&head) {
        return Ok(Some(Box::new(open()?)));
    }
    // The compressions the Dockerfile reference names: gzip, bzip2 and xz, told by their magic.
    type Decoder = fn(fs::File) -> Box<dyn Read>;
    let decoder: Decoder = if head[..n].starts_with(&[0x1f, 0x8b]) {
        |f| Box::new(flate2::read::GzDecoder::new(f))
    } else if head[..n].starts_with(b"BZh") {
        |f| Box::new(bzip2::read::BzDecoder::new(f))
    } else if head[..n].starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        |f| Box::new(lzma_rust2::XzReader::new(f, true))
    } else {
        return Ok(None);
    };
    // Compressed, but a tar only if what it holds starts with a tar header.
    let mut inner = [0u8; 512];
    let k = read_full(&mut decoder(open()?), &mut inner);
    if k == 512 && is_tar_header(&inner) {
        return Ok(Some(decoder(open()?)));
    }
    Ok(None)
}

/// The plain stream of `r`, told by its first bytes: gzip, bzip2 and xz (the compressions the
/// Engine API takes for a build context) are decompressed, anything else is read as it is. `None`
/// for zstd, which is not taken.
pub fn decompressed<'a, R: std::io::BufRead + 'a>(mut r: R) -> std::io::Result<Option<Box<dyn Read + 'a>>> {
    let head = r.fill_buf()?;
    Ok(Some(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(r))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::BzDecoder::new(r))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(lzma_rust2::XzReader::new(r, true))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(None);
    } else {
        Box::new(r)
    }))
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}

/// A ustar/gnu header with a valid checksum.
fn is_tar_header(h: &[u8; 512]) -> bool {
    let magic = &h[257..263];
    if magic != b"ustar\0" && magic != b"ustar " {
        return false;
    }
    let field = String::from_utf8_lossy(&h[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8) else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as u32 })
        .sum();
    sum == want
}

/// Directories removed when dropped.
#[derive(Default)]
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// A COPY source.
enum Source {
    Path {
        rel: String,
    },
    Inline {
        name: String,
        content: String,
    },
    /// A downloaded URL: the file name it gives, where it was saved, and its content digest.
    Url {
        url: String,
        name: String,
        path: PathBuf,
        digest: String,
    },
}
