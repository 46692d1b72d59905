//! Network namespaces that outlive any process: a namespace bound onto a file (as `ip netns`
//! keeps them), made before a container starts so its interfaces can be set up first, and
//! joined by the container through the file.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::{Error, Result};

fn sys<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> Error + 'a {
    move |e| Error::Sys {
        op,
        target: path.display().to_string(),
        source: e,
    }
}

/// Make a new network namespace bound at `path` (a file created for it). Fails if `path` exists.
pub fn create(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::Io {
            op: "create",
            target: path.display().to_string(),
            source: e,
        })?;
    let p: PathBuf = path.to_path_buf();
    // unshare affects only the calling thread; a thread of its own keeps the caller's namespace.
    let made = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare(CLONE_NEWNET)", &p))?;
        mount(Some("/proc/thread-self/ns/net"), &p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(sys("bind the namespace onto", &p))
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Other("the namespace thread panicked".into())));
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Release a namespace made by [`create`]: unbind and remove its file (the namespace goes when
/// nothing else holds it). A missing file is not an error.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(sys("unmount", path)(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            op: "remove",
            target: path.display().to_string(),
            source: e,
        }),
    }
}

/// Whether `path` holds a bound namespace.
pub fn exists(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Run `f` with a netlink handle in the namespace at `path` (the caller's own when `None`), on
/// a thread of its own: joining a namespace is per thread, so no other work ever runs in it.
pub fn run_in<T, F, Fut>(path: Option<&Path>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(rtnetlink::Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
{
    let ns = match path {
        Some(p) => Some((
            File::open(p).map_err(|e| Error::Io {
                op: "open",
                target: p.display().to_string(),
                source: e,
            })?,
            p.to_path_buf(),
        )),
        None => None,
    };
    std::thread::spawn(move || -> Result<T> {
        if let Some((f, p)) = &ns {
            setns(f.as_fd(), CloneFlags::CLONE_NEWNET).map_err(sys("join the network namespace", p))?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("a runtime for netlink: {e}")))?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::Io {
                op: "open",
                target: "a netlink socket".into(),
                source: e,
            })?;
            tokio::spawn(conn);
            f(handle).await
        })
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Other("the netlink thread panicked".into())))
}
