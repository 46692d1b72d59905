//! COPY and ADD: sources from the context, a stage, an image, a here-document or a URL, copied
//! (and for ADD, local archives extracted) onto an overlay of the stage's layers.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci::Digest;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::snapshot::{tmp_dir, Snapshot, Upper};
use super::{env_get, io_err, Builder, Progress, State};
use crate::dockerfile::{self, Copy, Instruction, Loc};
use crate::error::{Error, Result};
use crate::fsutil::{self, Attrs};
use crate::pattern;

impl Builder<'_> {
    pub(super) fn copy_step(&mut self, st: &mut State, ins: &Instruction, c: &Copy, add: bool) -> Result<()> {
        let loc = ins.loc;
        let what = if add { "ADD" } else { "COPY" };
        let (dest, dest_slash) = self.copy_dest(st, loc, c)?;
        let (attrs, chown) = self.copy_attrs(st, loc, c, what)?;
        let from = self.source_root(st, loc, c, add)?;
        let mut downloads = Cleanup::default();
        let (sources, wildcard) = self.copy_sources(st, loc, c, add, &from, &mut downloads)?;
        let many = sources.len() > 1 || wildcard;
        if many && !dest_slash {
            return Err(Error::at(
                loc,
                format!("When using {what} with more than one source file, the destination must be a directory and end with a /"),
            ));
        }
        let step = CopyStep {
            loc,
            what,
            add,
            dest,
            dest_slash,
            attrs,
            chown,
            from,
            sources,
            many,
        };
        let key = self.copy_key(st, &step)?;
        if self.try_cache(st, &key)? {
            return Ok(());
        }
        let upper = self.copy_on_snapshot(st, step)?;
        let created_by = format!("{} {}", what, ins.source.split_once(' ').map(|x| x.1).unwrap_or(""));
        let id = self.add_layer(st, &upper.path, created_by, &key, true)?;
        drop(upper);
        self.emit(Progress::Done { id: Some(&id) });
        Ok(())
    }

    /// A step's destination, absolute (a relative one is below the working directory), and whether
    /// it was written as a directory (a trailing `/`, or `.`).
    fn copy_dest(&self, st: &State, loc: Loc, c: &Copy) -> Result<(String, bool)> {
        let dest_raw = self.expand(st, loc, &c.dest)?;
        let workdir = st.config.config.working_dir.clone().unwrap_or_else(|| "/".into());
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), dest_raw)
        };
        let dest_slash = dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        Ok((dest, dest_slash))
    }

    /// A step's `--chmod` (as attributes) and `--chown` (expanded; it is looked up in the image
    /// when the step runs).
    fn copy_attrs(&self, st: &State, loc: Loc, c: &Copy, what: &str) -> Result<(Attrs, Option<String>)> {
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
        Ok((attrs, chown))
    }

    /// Where a step's sources come from: the context, or (`--from`) a stage or an image, mounted.
    fn source_root(&mut self, st: &State, loc: Loc, c: &Copy, add: bool) -> Result<SourceRoot> {
        let Some(f) = &c.from else {
            return Ok(SourceRoot {
                path: self.context.clone(),
                _mount: None,
                image: None,
            });
        };
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
        Ok(SourceRoot {
            path: snap.root.clone(),
            _mount: Some(snap),
            image: Some(id),
        })
    }

    /// Resolve a step's sources: here-documents, downloads (into `downloads`) and paths in `from`
    /// (expanded, globbed, checked to exist). Also says whether a source was a wildcard.
    fn copy_sources(
        &self,
        st: &State,
        loc: Loc,
        c: &Copy,
        add: bool,
        from: &SourceRoot,
        downloads: &mut Cleanup,
    ) -> Result<(Vec<Source>, bool)> {
        let what = if add { "ADD" } else { "COPY" };
        let mut sources: Vec<Source> = Vec::new();
        let mut wildcard = false;
        for raw in &c.sources {
            if let Some(name) = raw.strip_prefix("<<") {
                sources.push(self.heredoc_source(st, loc, c, what, name)?);
                continue;
            }
            let s = self.expand(st, loc, raw)?;
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                sources.push(self.url_source(st, loc, c, &s, downloads)?);
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
                let found = self.glob(&from.path, &clean, from.is_context());
                if found.is_empty() {
                    return Err(Error::at(
                        loc,
                        format!("{what} failed: no source files were specified (no match for {s:?})"),
                    ));
                }
                sources.extend(found.into_iter().map(|rel| Source::Path { rel }));
            } else {
                self.check_source(loc, c, what, from, &s, &clean)?;
                sources.push(Source::Path { rel: clean });
            }
        }
        Ok((sources, wildcard))
    }

    /// The here-document source `<<name` of a step, its variables expanded unless its name was
    /// quoted.
    fn heredoc_source(&self, st: &State, loc: Loc, c: &Copy, what: &str, name: &str) -> Result<Source> {
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
        Ok(Source::Inline {
            name: h.name.clone(),
            content,
        })
    }

    /// Download the URL source `url` of an ADD into a new directory of `downloads`, checking it
    /// against `--checksum`.
    fn url_source(&self, st: &State, loc: Loc, c: &Copy, url: &str, downloads: &mut Cleanup) -> Result<Source> {
        // Fetched on every build (as Docker does); the content is the cache key.
        let dir = tmp_dir(&self.work)?;
        let path = dir.join("download");
        let mut f = fs::File::create(&path).map_err(|e| io_err("create", &path, e))?;
        let name = self
            .backend
            .fetch(url, &mut f)
            .map_err(|e| Error::at(loc, format!("ADD {url}: {e}")))?;
        drop(f);
        downloads.0.push(dir);
        let digest = file_digest(&path)?;
        if let Some(want) = &c.checksum {
            let want = self.expand(st, loc, want)?;
            let got = format!("sha256:{digest}");
            if got != want {
                return Err(Error::at(loc, format!("ADD {url}: checksum mismatch: expected {want}, got {got}")));
            }
        }
        Ok(Source::Url {
            url: url.to_string(),
            name,
            path,
            digest,
        })
    }

    /// A source path without wildcards (`s` as written, `clean` cleaned) must be in its root, and
    /// not excluded by `.dockerignore` when the root is the context.
    fn check_source(&self, loc: Loc, c: &Copy, what: &str, from: &SourceRoot, s: &str, clean: &str) -> Result<()> {
        let from_context = from.is_context();
        if from_context && !clean.is_empty() && self.ignore.excluded(clean) {
            return Err(Error::at(
                loc,
                format!("{what} failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"),
            ));
        }
        if fsutil::open_file_in(&from.path, clean).is_none() && !fsutil::is_dir_in(&from.path, clean) {
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
        Ok(())
    }

    /// The cache key of a COPY or ADD: what is copied (by content), where, and how.
    fn copy_key(&self, st: &State, step: &CopyStep) -> Result<Digest> {
        let mut h = Sha256::new();
        for s in &step.sources {
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
                    if step.from.is_context() {
                        self.hash_tree(&mut h, &step.from.path, rel)?;
                    }
                }
            }
        }
        let content = hex::encode(h.finalize());
        Ok(self.key(
            st,
            &json!({"copy": step.what, "content": content, "from": step.from.image, "dest": step.dest, "dest_slash": step.dest_slash,
                    "chown": step.chown, "chmod": step.attrs.mode}),
        ))
    }

    /// Carry out the step on an overlay of the current layers; returns the overlay's upper
    /// directory (the step's changes). A `--from` mount is gone when this returns.
    fn copy_on_snapshot(&self, st: &State, step: CopyStep) -> Result<Upper> {
        let snap = Snapshot::writable(self.backend.images(), st, &self.work)?;
        let res = self.copy_into(&snap.root, &step);
        let upper = snap.finish();
        drop(step.from);
        let upper = upper?;
        res?;
        Ok(upper)
    }

    /// Write the step's sources below `root` (the mounted overlay).
    fn copy_into(&self, root: &Path, step: &CopyStep) -> Result<()> {
        let (loc, what, dest) = (step.loc, step.what, &step.dest);
        let mut attrs = step.attrs;
        if let Some(o) = &step.chown {
            attrs.owner = Some(fsutil::lookup_owner(root, o).map_err(|e| Error::at(loc, e.to_string()))?);
        }
        let into_dir = step.dest_slash || step.many || fsutil::is_dir_in(root, dest);
        for s in &step.sources {
            match s {
                Source::Inline { name, content } => {
                    let (dir, fname) = if into_dir {
                        (dest.as_str(), name.as_str())
                    } else {
                        split_dest(dest)
                    };
                    let d = fsutil::mkdir_in(root, dir, attrs)?;
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
                        split_dest(dest)
                    };
                    let d = fsutil::mkdir_in(root, dir, attrs)?;
                    let mut f = fs::File::open(path).map_err(|e| io_err("open", path, e))?;
                    fsutil::write_file(&d, OsStr::new(fname), &mut f, attrs, 0o600)?;
                }
                Source::Path { rel } => {
                    self.copy_one(&step.from.path, rel, root, dest, into_dir, attrs, step.add, step.from.is_context())
                        .map_err(|e| Error::at(loc, format!("{what} failed: {e}")))?;
                }
            }
        }
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
    pub(super) fn hash_tree(&self, h: &mut Sha256, root: &Path, rel: &str) -> Result<()> {
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

/// A COPY or ADD step worked out: what it copies, from where, to where and how.
struct CopyStep {
    loc: Loc,
    /// `COPY` or `ADD`.
    what: &'static str,
    add: bool,
    /// The destination, absolute.
    dest: String,
    /// The destination was written as a directory.
    dest_slash: bool,
    /// `--chmod`; the owner is filled in from `chown` when the step runs.
    attrs: Attrs,
    /// `--chown`, expanded.
    chown: Option<String>,
    from: SourceRoot,
    sources: Vec<Source>,
    /// More than one source, or a wildcard: the destination is a directory.
    many: bool,
}

/// Where a step's sources are: the build context, or a stage or image mounted read-only.
struct SourceRoot {
    path: PathBuf,
    /// The mount of the stage or image (`--from`), held until the copy is done: unmounted when
    /// dropped.
    _mount: Option<Snapshot>,
    /// The stage's or image's ID (`--from`), part of the cache key.
    image: Option<Digest>,
}

impl SourceRoot {
    /// The sources are in the build context (their content is hashed into the cache key and
    /// `.dockerignore` applies).
    fn is_context(&self) -> bool {
        self.image.is_none()
    }
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
