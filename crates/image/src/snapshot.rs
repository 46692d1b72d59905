//! Overlay snapshots: a container rootfs is an overlay of its image's unpacked layers plus an upper dir.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Error, Result};

/// Mount an overlay at `target` with `lowers` (topmost first), `upper` and `work`.
pub fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let lower = lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    let opts = format!("lowerdir={},upperdir={},workdir={}", lower, upper.display(), work.display());
    mount(Some("overlay"), target, Some("overlay"), MsFlags::empty(), Some(opts.as_str())).map_err(|e| Error::Sys {
        op: format!("mount overlay at {}", target.display()),
        source: e,
    })
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
    umount2(target, MntFlags::MNT_DETACH).map_err(|e| Error::Sys {
        op: format!("unmount {}", target.display()),
        source: e,
    })
}
