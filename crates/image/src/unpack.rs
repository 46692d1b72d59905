//! Safe layer extraction.
//!
//! Every path is resolved with `openat2(RESOLVE_IN_ROOT)` against the layer directory, so `..`,
//! absolute paths, symlinked parents and hardlink targets can never reach outside it: the kernel
//! treats the layer directory as `/` while resolving. Entries are created with `*at` calls relative
//! to their resolved parent, never by re-walking a path string. Whiteouts (`.wh.name`,
//! `.wh..wh..opq`) become overlayfs whiteouts (a 0:0 character device, the `trusted.overlay.opaque`
//! xattr), so unpacked layers stack directly as overlay lower directories.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmodat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use crate::error::{Error, Result};
use crate::limits::Meter;

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What an unpack did, for logging and tests.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UnpackStats {
    pub entries: u64,
    pub skipped_devices: u64,
}

fn bad(entry: &Path, reason: impl Into<String>) -> Error {
    Error::BadEntry {
        entry: entry.display().to_string(),
        reason: reason.into(),
    }
}

/// Normalize an entry name to components below the root. Leading `/` and `.` are dropped (as Docker
/// does); any `..` is refused.
pub fn clean_entry_path(p: &Path) -> Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => return Err(bad(p, "path contains '..'")),
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

fn sys(op: &str, path: &Path, e: Errno) -> Error {
    Error::Io {
        op: "unpack",
        path: path.to_path_buf(),
        source: io::Error::other(format!("{op}: {e}")),
    }
}

/// Open `rel` (components) as a directory (O_PATH), resolved inside `root` as if it were `/`.
pub fn open_in_root(root: RawFd, rel: &[&OsStr]) -> std::result::Result<OwnedFd, Errno> {
    let mut p = PathBuf::from(".");
    for c in rel {
        p.push(c);
    }
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root, &p, how)?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open (creating missing directories, mode 0755, owned by the caller) the directory `rel` inside
/// `root`; `entry` names the request in errors.
pub fn mkdir_all_in_root(root: RawFd, rel: &[&OsStr], entry: &Path) -> Result<OwnedFd> {
    match open_in_root(root, rel) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(Errno::ENOTDIR) => return Err(bad(entry, "a parent path component is not a directory")),
        Err(e) => return Err(sys("open parent", entry, e)),
    }
    let mut fd = open_in_root(root, &[]).map_err(|e| sys("open root", entry, e))?;
    for (i, c) in rel.iter().enumerate() {
        match open_in_root(root, &rel[..=i]) {
            Ok(next) => fd = next,
            Err(Errno::ENOENT) => {
                match mkdirat(Some(fd.as_raw_fd()), *c, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(sys("mkdir", entry, e)),
                }
                fd = open_in_root(root, &rel[..=i]).map_err(|e| sys("open", entry, e))?;
            }
            Err(Errno::ENOTDIR) => return Err(bad(entry, "a parent path component is not a directory")),
            Err(e) => return Err(sys("open", entry, e)),
        }
    }
    Ok(fd)
}

fn proc_path(dirfd: RawFd, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{dirfd}"));
    p.push(name);
    p
}

fn lstat_at(dirfd: RawFd, name: &OsStr) -> Option<nix::sys::stat::FileStat> {
    nix::sys::stat::fstatat(Some(dirfd), name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
}

/// Remove whatever is at `name` in `dirfd` (recursively for a directory).
fn remove_at(dirfd: RawFd, name: &OsStr, entry: &Path) -> Result<()> {
    match lstat_at(dirfd, name) {
        None => Ok(()),
        Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => std::fs::remove_dir_all(proc_path(dirfd, name)).map_err(|e| Error::Io {
            op: "remove",
            path: entry.to_path_buf(),
            source: e,
        }),
        Some(_) => unlinkat(Some(dirfd), name, UnlinkatFlags::NoRemoveDir).map_err(|e| sys("unlink", entry, e)),
    }
}

fn set_xattr(dirfd: RawFd, name: &OsStr, key: &str, value: &[u8], entry: &Path) -> Result<()> {
    let p = CString::new(proc_path(dirfd, name).as_os_str().as_bytes()).map_err(|_| bad(entry, "NUL in name"))?;
    let k = CString::new(key).map_err(|_| bad(entry, "NUL in xattr name"))?;
    let r = unsafe { libc::lsetxattr(p.as_ptr(), k.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r != 0 {
        return Err(sys(&format!("setxattr {key}"), entry, Errno::last()));
    }
    Ok(())
}

struct DirTime {
    rel: Vec<std::ffi::OsString>,
    mtime: i64,
}

/// Extract a layer tar stream into `dest` (which must exist and should be empty).
pub fn unpack_layer(reader: impl Read, dest: &Path) -> Result<UnpackStats> {
    unpack_inner(reader, dest, None)
}

/// Like [`unpack_layer`], counting entries and the bytes files write against `meter`'s limits
/// (the caller wraps `reader` with [`Meter::output`] to count the stream too). When a limit is
/// crossed, that is the error, whatever the tar reader made of it.
pub fn unpack_layer_metered(reader: impl Read, dest: &Path, meter: &Arc<Meter>) -> Result<UnpackStats> {
    let res = unpack_inner(reader, dest, Some(meter));
    match meter.tripped() {
        Some(t) => Err(Error::LimitExceeded(t)),
        None => res,
    }
}

fn unpack_inner(reader: impl Read, dest: &Path, meter: Option<&Arc<Meter>>) -> Result<UnpackStats> {
    let root = File::open(dest).map_err(|e| Error::Io {
        op: "open",
        path: dest.to_path_buf(),
        source: e,
    })?;
    let mut archive = tar::Archive::new(reader);
    let mut u = Unpacker {
        rootfd: root.as_raw_fd(),
        meter,
        stats: UnpackStats::default(),
        dir_times: Vec::new(),
    };
    for entry in archive.entries().map_err(Error::Archive)? {
        let mut entry = entry.map_err(Error::Archive)?;
        if let Some(m) = meter {
            m.entry()?;
        }
        u.entry(&mut entry)?;
    }
    Ok(u.finish())
}

/// An unpack in progress: the layer directory, the limits, what was done so far.
struct Unpacker<'m> {
    rootfd: RawFd,
    meter: Option<&'m Arc<Meter>>,
    stats: UnpackStats,
    /// Directories made, whose times are set at the end.
    dir_times: Vec<DirTime>,
}

/// The header of an entry, and the fields of it that its creation and metadata use.
struct EntryMeta {
    hdr: tar::Header,
    kind: EntryType,
    mode: Mode,
    uid: u32,
    gid: u32,
    mtime: i64,
}

impl Unpacker<'_> {
    /// Unpack one entry: a whiteout, or a file, directory, link or node below its (created) parent,
    /// replacing what was there, with its metadata.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_path = entry.path().map_err(Error::Archive)?.into_owned();
        let comps = clean_entry_path(&raw_path)?;
        let Some((name, parent)) = comps.split_last() else {
            // The root itself ("./"): nothing to create.
            return Ok(());
        };
        let name: &OsStr = name;
        self.stats.entries += 1;
        let parent_fd = mkdir_all_in_root(self.rootfd, parent, &raw_path)?;
        let pfd = parent_fd.as_raw_fd();
        if whiteout(pfd, name, &raw_path)? {
            return Ok(());
        }

        let hdr = entry.header().clone();
        let meta = EntryMeta {
            kind: hdr.entry_type(),
            mode: Mode::from_bits_truncate(hdr.mode().map_err(Error::Archive)? & 0o7777),
            uid: hdr.uid().map_err(Error::Archive)? as u32,
            gid: hdr.gid().map_err(Error::Archive)? as u32,
            mtime: hdr.mtime().map_err(Error::Archive)? as i64,
            hdr,
        };

        // Replace whatever is there, except keep an existing directory when a directory is re-declared.
        let existing_is_dir = lstat_at(pfd, name)
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .unwrap_or(false);
        if !(meta.kind == EntryType::Directory && existing_is_dir) {
            remove_at(pfd, name, &raw_path)?;
        }

        if self.create(entry, &meta, pfd, &comps, existing_is_dir, &raw_path)? {
            set_metadata(entry, &meta, pfd, name, &raw_path)?;
        }
        Ok(())
    }

    /// Create the entry `comps` (its last component `name` in `pfd`); returns whether its
    /// metadata is to be set (not for hardlinks, device nodes and extension headers).
    fn create<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        meta: &EntryMeta,
        pfd: RawFd,
        comps: &[&OsStr],
        existing_is_dir: bool,
        raw_path: &Path,
    ) -> Result<bool> {
        let name = *comps.last().expect("the caller split off a name");
        let kind = meta.kind;
        match kind {
            EntryType::Directory => {
                if !existing_is_dir {
                    mkdirat(Some(pfd), name, Mode::from_bits_truncate(0o700)).map_err(|e| sys("mkdir", raw_path, e))?;
                }
                self.dir_times.push(DirTime {
                    rel: comps.iter().map(|c| c.to_os_string()).collect(),
                    mtime: meta.mtime,
                });
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = nix::fcntl::openat(
                    Some(pfd),
                    name,
                    OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| sys("create", raw_path, e))?;
                let mut f = unsafe { File::from_raw_fd(fd) };
                match self.meter {
                    Some(m) => io::copy(entry, &mut m.writer(&mut f)),
                    None => io::copy(entry, &mut f),
                }
                .map_err(Error::Archive)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(Error::Archive)?
                    .ok_or_else(|| bad(raw_path, "symlink without target"))?;
                symlinkat(target.as_ref(), Some(pfd), name).map_err(|e| sys("symlink", raw_path, e))?;
            }
            EntryType::Link => {
                self.hardlink(entry, pfd, name, raw_path)?;
                return Ok(false); // a hardlink shares the target's metadata
            }
            EntryType::Fifo => {
                mknodat(Some(pfd), name, SFlag::S_IFIFO, meta.mode, 0).map_err(|e| sys("mkfifo", raw_path, e))?;
            }
            EntryType::Char | EntryType::Block => {
                let major = meta.hdr.device_major().ok().flatten().unwrap_or(0);
                let minor = meta.hdr.device_minor().ok().flatten().unwrap_or(0);
                if kind == EntryType::Char && major == 0 && minor == 0 {
                    // An overlay-style whiteout stored as a device: keep its meaning.
                    mknodat(Some(pfd), name, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| sys("mknod", raw_path, e))?;
                } else {
                    // Device nodes in images are never needed (the runtime provides /dev) and are a hazard.
                    tracing::debug!(entry = %raw_path.display(), "skipping device node in layer");
                    self.stats.skipped_devices += 1;
                }
                return Ok(false);
            }
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => return Ok(false),
            other => return Err(bad(raw_path, format!("unsupported tar entry type {other:?}"))),
        }
        Ok(true)
    }

    /// A hardlink `name` in `pfd` to its target, which must be a non-directory already in the layer
    /// (resolved inside it).
    fn hardlink<R: Read>(&self, entry: &tar::Entry<'_, R>, pfd: RawFd, name: &OsStr, raw_path: &Path) -> Result<()> {
        let target = entry
            .link_name()
            .map_err(Error::Archive)?
            .ok_or_else(|| bad(raw_path, "hardlink without target"))?;
        let tcomps = clean_entry_path(&target)?;
        let Some((tname, tparent)) = tcomps.split_last() else {
            return Err(bad(raw_path, "hardlink to the layer root"));
        };
        let tfd = open_in_root(self.rootfd, tparent).map_err(|_| {
            bad(
                raw_path,
                format!("hardlink target {} does not exist in the layer", target.display()),
            )
        })?;
        match lstat_at(tfd.as_raw_fd(), tname) {
            None => {
                return Err(bad(
                    raw_path,
                    format!("hardlink target {} does not exist in the layer", target.display()),
                ))
            }
            Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => return Err(bad(raw_path, "hardlink to a directory")),
            Some(_) => {}
        }
        linkat(Some(tfd.as_raw_fd()), *tname, Some(pfd), name, AtFlags::empty()).map_err(|e| sys("link", raw_path, e))?;
        Ok(())
    }

    /// Set the directories' times, last and deepest first, since creating their children changed
    /// them; the unpack's stats.
    fn finish(mut self) -> UnpackStats {
        self.dir_times.sort_by_key(|d| std::cmp::Reverse(d.rel.len()));
        for d in self.dir_times {
            let refs: Vec<&OsStr> = d.rel.iter().map(|s| s.as_os_str()).collect();
            if let Ok(fd) = open_in_root(self.rootfd, &refs) {
                let t = TimeSpec::new(d.mtime, 0);
                let _ = utimensat(Some(fd.as_raw_fd()), ".", &t, &t, UtimensatFlags::NoFollowSymlink);
            }
        }
        self.stats
    }
}

/// If `name` (in `pfd`) is a whiteout, make it the overlay's: the opaque xattr on the directory
/// for `.wh..wh..opq`, a 0:0 character device in place of the hidden name for `.wh.<name>`.
/// Returns whether it was one.
fn whiteout(pfd: RawFd, name: &OsStr, raw_path: &Path) -> Result<bool> {
    let name_bytes = name.as_bytes();
    if name_bytes == OPAQUE_MARKER.as_bytes() {
        set_xattr(pfd, OsStr::new("."), OPAQUE_XATTR, b"y", raw_path)?;
        return Ok(true);
    }
    if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
            return Err(bad(raw_path, "malformed whiteout name"));
        }
        let hidden = OsStr::from_bytes(hidden);
        remove_at(pfd, hidden, raw_path)?;
        mknodat(Some(pfd), hidden, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| sys("mknod whiteout", raw_path, e))?;
        return Ok(true);
    }
    Ok(false)
}

/// Metadata: owner, mode, xattrs, mtime; never following a symlink at the final component.
fn set_metadata<R: Read>(entry: &mut tar::Entry<'_, R>, meta: &EntryMeta, pfd: RawFd, name: &OsStr, raw_path: &Path) -> Result<()> {
    fchownat(
        Some(pfd),
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys("chown", raw_path, e))?;
    if meta.kind != EntryType::Symlink {
        fchmodat(Some(pfd), name, meta.mode, FchmodatFlags::FollowSymlink).map_err(|e| sys("chmod", raw_path, e))?;
    }
    if let Ok(Some(exts)) = entry.pax_extensions() {
        for ext in exts.flatten() {
            if let (Ok(key), value) = (ext.key(), ext.value_bytes()) {
                if let Some(x) = key.strip_prefix("SCHILY.xattr.") {
                    if x.starts_with("user.") || x.starts_with("security.") || x.starts_with("trusted.") {
                        // Best effort: some filesystems refuse some namespaces.
                        let _ = set_xattr(pfd, name, x, value, raw_path);
                    }
                }
            }
        }
    }
    if meta.kind != EntryType::Directory {
        let t = TimeSpec::new(meta.mtime, 0);
        let _ = utimensat(Some(pfd), name, &t, &t, UtimensatFlags::NoFollowSymlink);
    }
    Ok(())
}

/// Open a possibly compressed layer blob for reading as a plain tar stream.
pub fn decompress<'a>(mut r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        let k = r.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let chained = io::Cursor::new(head[..n].to_vec()).chain(r);
    Ok(match oci::spec::Compression::sniff(&head[..n]) {
        oci::spec::Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(chained)),
        oci::spec::Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(chained)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}")))?,
        ),
        oci::spec::Compression::None => Box::new(chained),
    })
}
