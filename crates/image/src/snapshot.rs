//! Overlay snapshots: a container rootfs is an overlay of its image's unpacked layers plus an upper dir.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Mount an overlay at `target` with `lowers` (topmost first), `upper` and `work`.
pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let rest = format!(",upperdir={},workdir={}", upper.display(), work.display());
    mount_lowers(lowers, &rest, MsFlags::empty(), target)
}

/// Mount a read-only overlay of `lowers` (topmost first, at least two) at `target`.
pub fn mount_overlay_ro(lowers: &[PathBuf], target: &Path) -> Result<()> {
    mount_lowers(lowers, "", MsFlags::MS_RDONLY, target)
}

/// The mount options must fit in a page. Long lower lists (many layers, long roots) are given as
/// `/proc/self/fd/N` of directories held open for the mount call, which the kernel resolves.
fn mount_lowers(lowers: &[PathBuf], rest: &str, flags: MsFlags, target: &Path) -> Result<()> {
    let plain = lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    let mut held = Vec::new();
    let lower = if plain.len() + rest.len() < 3800 {
        plain
    } else {
        let mut names = Vec::with_capacity(lowers.len());
        for l in lowers {
            let f = std::fs::File::open(l).map_err(|e| Error::Io {
                op: "open",
                path: l.clone(),
                source: e,
            })?;
            names.push(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f)));
            held.push(f);
        }
        names.join(":")
    };
    let opts = format!("lowerdir={lower}{rest}");
    let res = mount(Some("overlay"), target, Some("overlay"), flags, Some(opts.as_str())).map_err(|e| Error::Sys {
        op: format!("mount overlay at {} ({} layers)", target.display(), lowers.len()),
        source: e,
    });
    drop(held);
    res
}

/// Is something mounted exactly at `path`?
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(s) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    s.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Unmount `target` if mounted (lazily, so a busy mount does not fail a removal).
pub fn unmount(target: &Path) -> Result<()> {
    if !is_mountpoint(target) {
        return Ok(());
    }
    match umount2(target, MntFlags::MNT_DETACH) {
        // Unmounted by someone else since the check: the same outcome.
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::Sys {
            op: format!("unmount {}", target.display()),
            source: e,
        }),
    }
}
