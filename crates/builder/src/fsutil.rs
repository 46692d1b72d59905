//! Filesystem work of COPY and ADD: copying a source tree into a rootfs without ever leaving it
//! (every destination path is resolved with `openat2(RESOLVE_IN_ROOT)`), owners from the image's own
//! `/etc/passwd` and `/etc/group`, and fixing every time in a layer directory.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, mkdirat, utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::error::{Error, Result};

/// Owner and permission changes a COPY applies to what it writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attrs {
    /// `--chown`: uid, gid; `None` means root (0:0), as Docker does.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`: permission bits for files and directories.
    pub mode: Option<u32>,
}

impl Attrs {
    fn ids(&self) -> (u32, u32) {
        self.owner.unwrap_or((0, 0))
    }
}

fn sys(op: &str, path: &Path, e: Errno) -> Error {
    Error::Io {
        op: op.to_string(),
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    }
}

fn io<'a>(op: &str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    let op = op.to_string();
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Components of a path inside a root (`/a/b` → `a`, `b`); `..` cannot climb above the root since
/// resolution happens in it.
fn components(p: &str) -> Vec<&OsStr> {
    p.split('/').filter(|c| !c.is_empty() && *c != ".").map(OsStr::new).collect()
}

/// A directory inside the destination root, opened for writing entries into it.
pub struct DirFd {
    fd: OwnedFd,
    /// For messages: the path inside the root.
    pub path: PathBuf,
}

/// Open (creating missing directories) `dir` inside `root`. New directories get `attrs`' owner.
pub fn mkdir_in(root: &Path, dir: &str, attrs: Attrs) -> Result<DirFd> {
    let rootf = fs::File::open(root).map_err(io("open", root))?;
    let comps = components(dir);
    let shown = PathBuf::from(format!(
        "/{}",
        comps.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/")
    ));
    // Walk down creating what is missing, so the new directories can be given their owner.
    let mut fd = image::unpack::open_in_root(rootf.as_raw_fd(), &[]).map_err(|e| sys("open", root, e))?;
    for i in 0..comps.len() {
        match image::unpack::open_in_root(rootf.as_raw_fd(), &comps[..=i]) {
            Ok(next) => fd = next,
            Err(Errno::ENOENT) => {
                match mkdirat(Some(fd.as_raw_fd()), comps[i], Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(sys("mkdir", &shown, e)),
                }
                let next = image::unpack::open_in_root(rootf.as_raw_fd(), &comps[..=i]).map_err(|e| sys("open", &shown, e))?;
                let (u, g) = attrs.ids();
                if (u, g) != (0, 0) {
                    let _ = fchownat(
                        Some(next.as_raw_fd()),
                        "",
                        Some(Uid::from_raw(u)),
                        Some(Gid::from_raw(g)),
                        nix::fcntl::AtFlags::AT_EMPTY_PATH,
                    );
                }
                fd = next;
            }
            Err(Errno::ENOTDIR) => {
                return Err(Error::Copy(format!("{}: a path component is not a directory", shown.display())));
            }
            Err(e) => return Err(sys("open", &shown, e)),
        }
    }
    // O_PATH fds cannot be used as openat dirfds for creation on every kernel; reopen for real.
    let real = openat(
        Some(fd.as_raw_fd()),
        ".",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys("open", &shown, e))?;
    Ok(DirFd {
        fd: unsafe { OwnedFd::from_raw_fd(real) },
        path: shown,
    })
}

/// Is `path` inside `root` an existing directory (following symlinks inside the root)?
pub fn is_dir_in(root: &Path, path: &str) -> bool {
    let Ok(rootf) = fs::File::open(root) else { return false };
    image::unpack::open_in_root(rootf.as_raw_fd(), &components(path)).is_ok()
}

/// Open a file inside `root` for reading, resolving symlinks inside it.
pub fn open_file_in(root: &Path, path: &str) -> Option<fs::File> {
    use nix::fcntl::{openat2, OpenHow, ResolveFlag};
    let rootf = fs::File::open(root).ok()?;
    let rel = format!("./{}", path.trim_start_matches('/'));
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(rootf.as_raw_fd(), rel.as_str(), how).ok()?;
    Some(unsafe { fs::File::from_raw_fd(fd) })
}

/// Remove whatever non-directory is at `name`.
fn clear(dir: RawFd, name: &OsStr) {
    let _ = unlinkat(Some(dir), name, UnlinkatFlags::NoRemoveDir);
}

pub use crate::pattern::Visit;

/// A filter's view of an entry: its path relative to the copy's source, and whether it is a directory.
pub type Filter<'a> = dyn FnMut(&Path, bool) -> Visit + 'a;

/// Copy the file, directory or symlink at host path `src` to `name` in `dir`. `filter` is asked
/// for every entry below a directory source (relative to `src`).
pub fn copy_tree(src: &Path, dir: &DirFd, name: &OsStr, attrs: Attrs, filter: &mut Filter) -> Result<u64> {
    copy_entry(src, Path::new(""), dir, name, attrs, false, filter)
}

fn copy_entry(src: &Path, rel: &Path, dir: &DirFd, name: &OsStr, attrs: Attrs, descend_only: bool, filter: &mut Filter) -> Result<u64> {
    let md = fs::symlink_metadata(src).map_err(io("stat", src))?;
    let ft = md.file_type();
    let dpath = dir.path.join(name);
    let (uid, gid) = attrs.ids();
    let dfd = dir.fd.as_raw_fd();
    if ft.is_dir() {
        let existed = !name.is_empty() && nix::sys::stat::fstatat(Some(dfd), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok();
        let sub = make_dir(dir, name, md.permissions().mode(), attrs)?;
        // Names with their kinds, from the directory listing itself (no stat per entry).
        let mut entries: Vec<(OsString, bool)> = fs::read_dir(src)
            .map_err(io("read directory", src))?
            .map(|e| e.and_then(|e| Ok((e.file_name(), e.file_type()?.is_dir()))))
            .collect::<std::io::Result<_>>()
            .map_err(io("read directory", src))?;
        entries.sort();
        let mut n = 0;
        for (e, is_dir) in entries {
            let r = rel.join(&e);
            let child = src.join(&e);
            let visit = filter(&r, is_dir);
            if visit == Visit::Skip || (visit == Visit::Descend && !is_dir) {
                continue;
            }
            n += copy_entry(&child, &r, &sub, &e, attrs, visit == Visit::Descend, filter)?;
        }
        if descend_only && n == 0 && !existed {
            // Nothing below was re-included: the excluded directory is not part of the copy.
            drop(sub);
            let _ = unlinkat(Some(dfd), name, UnlinkatFlags::RemoveDir);
        }
        Ok(n)
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(io("readlink", src))?;
        clear(dfd, name);
        symlinkat(target.as_path(), Some(dfd), name).map_err(|e| sys("symlink", &dpath, e))?;
        let _ = fchownat(
            Some(dfd),
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        Ok(1)
    } else if ft.is_file() {
        let mut input = fs::File::open(src).map_err(io("open", src))?;
        let out = create_file(dir, name)?;
        let mut out = fs::File::from(out);
        std::io::copy(&mut input, &mut out).map_err(io("copy to", &dpath))?;
        fchown(out.as_raw_fd(), Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))).map_err(|e| sys("chown", &dpath, e))?;
        let mode = attrs.mode.unwrap_or(md.permissions().mode() & 0o7777);
        fchmod(out.as_raw_fd(), Mode::from_bits_truncate(mode)).map_err(|e| sys("chmod", &dpath, e))?;
        Ok(1)
    } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() || ft.is_socket() {
        // Special files in a context are not copied (Docker's classic builder skips them as well).
        Ok(0)
    } else {
        Ok(0)
    }
}

/// Create (or truncate) a regular file `name` in `dir`, replacing a symlink or other file there.
pub fn create_file(dir: &DirFd, name: &OsStr) -> Result<OwnedFd> {
    let dfd = dir.fd.as_raw_fd();
    let dpath = dir.path.join(name);
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = match openat(Some(dfd), name, flags, Mode::from_bits_truncate(0o644)) {
        Ok(fd) => fd,
        Err(Errno::ELOOP) | Err(Errno::ETXTBSY) => {
            clear(dfd, name);
            openat(Some(dfd), name, flags, Mode::from_bits_truncate(0o644)).map_err(|e| sys("create", &dpath, e))?
        }
        Err(Errno::EISDIR) => {
            return Err(Error::Copy(format!("cannot copy a file over the directory {}", dpath.display())));
        }
        Err(e) => return Err(sys("create", &dpath, e)),
    };
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Make (or reuse) directory `name` in `dir`; a new one gets `mode` (or `--chmod`) and the owner.
fn make_dir(dir: &DirFd, name: &OsStr, mode: u32, attrs: Attrs) -> Result<DirFd> {
    let dfd = dir.fd.as_raw_fd();
    let dpath = dir.path.join(name);
    if name.is_empty() {
        // Copying a directory's contents into `dir` itself.
        let fd = openat(
            Some(dfd),
            ".",
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| sys("open", &dpath, e))?;
        return Ok(DirFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: dir.path.clone(),
        });
    }
    let created = match mkdirat(Some(dfd), name, Mode::from_bits_truncate(0o700)) {
        Ok(()) => true,
        Err(Errno::EEXIST) => false,
        Err(e) => return Err(sys("mkdir", &dpath, e)),
    };
    let fd = match openat(
        Some(dfd),
        name,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => {
            // A file or symlink where a directory goes: replace it.
            clear(dfd, name);
            mkdirat(Some(dfd), name, Mode::from_bits_truncate(0o700)).map_err(|e| sys("mkdir", &dpath, e))?;
            return make_dir(dir, name, mode, attrs).inspect(|d| set_dir_attrs(d, mode, attrs));
        }
        Err(e) => return Err(sys("open", &dpath, e)),
    };
    let d = DirFd {
        fd: unsafe { OwnedFd::from_raw_fd(fd) },
        path: dpath,
    };
    if created {
        set_dir_attrs(&d, mode, attrs);
    }
    Ok(d)
}

fn set_dir_attrs(d: &DirFd, mode: u32, attrs: Attrs) {
    let (u, g) = attrs.ids();
    let _ = fchown(d.fd.as_raw_fd(), Some(Uid::from_raw(u)), Some(Gid::from_raw(g)));
    let _ = fchmod(d.fd.as_raw_fd(), Mode::from_bits_truncate(attrs.mode.unwrap_or(mode & 0o7777)));
}

/// Write `data` as file `name` in `dir` (heredoc COPY, ADD of a URL).
pub fn write_file(dir: &DirFd, name: &OsStr, data: &mut dyn Read, attrs: Attrs, default_mode: u32) -> Result<()> {
    let dpath = dir.path.join(name);
    let mut out = fs::File::from(create_file(dir, name)?);
    std::io::copy(data, &mut out).map_err(io("write", &dpath))?;
    let (u, g) = attrs.ids();
    fchown(out.as_raw_fd(), Some(Uid::from_raw(u)), Some(Gid::from_raw(g))).map_err(|e| sys("chown", &dpath, e))?;
    fchmod(out.as_raw_fd(), Mode::from_bits_truncate(attrs.mode.unwrap_or(default_mode))).map_err(|e| sys("chmod", &dpath, e))?;
    Ok(())
}

/// The host path of a directory opened inside a root (for handing to code that takes paths).
pub fn host_path(dir: &DirFd) -> Result<PathBuf> {
    fs::read_link(format!("/proc/self/fd/{}", dir.fd.as_raw_fd())).map_err(io("resolve", &dir.path))
}

/// Resolve `--chown=user[:group]` against the rootfs's `/etc/passwd` and `/etc/group`. A user alone
/// gives the same numeric group as the user, as Docker does.
pub fn lookup_owner(root: &Path, spec: &str) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let find = |file: &str, name: &str| -> Option<u32> {
        let mut s = String::new();
        open_file_in(root, file)?.read_to_string(&mut s).ok()?;
        s.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[0] == name).then(|| f[2].parse().ok()).flatten()
        })
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => find("/etc/passwd", user).ok_or_else(|| Error::Copy(format!("--chown: unknown user {user:?} in /etc/passwd")))?,
    };
    let gid = match group {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find("/etc/group", g).ok_or_else(|| Error::Copy(format!("--chown: unknown group {g:?} in /etc/group")))?,
        },
    };
    Ok((uid, gid))
}

/// Set the access and modification time of everything under `dir` (the directory included, symlinks
/// themselves) to `epoch`.
pub fn set_times(dir: &Path, epoch: i64) -> std::io::Result<()> {
    let t = TimeSpec::new(epoch, 0);
    fn walk(p: &Path, t: &TimeSpec) -> std::io::Result<()> {
        let md = fs::symlink_metadata(p)?;
        if md.is_dir() {
            for e in fs::read_dir(p)? {
                walk(&e?.path(), t)?;
            }
        }
        utimensat(None, p, t, t, UtimensatFlags::NoFollowSymlink).map_err(std::io::Error::from)
    }
    walk(dir, &t)
}

/// A `/`-joined display of a path's bytes.
pub fn show(p: &Path) -> String {
    String::from_utf8_lossy(p.as_os_str().as_bytes()).into_owned()
}
