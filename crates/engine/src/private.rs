//! Berth's state is private to root, as Docker keeps its data root: an unpacked layer, a
//! container's root filesystem or a volume may hold a setuid-root binary, and a host user who can
//! reach one has a root shell. Only root (and the API socket's group, which may traverse the
//! exec-root to reach the socket and nothing else) gets in.
//!
//! The modes are set on every daemon start, so an install made by an older Berth (or a directory
//! an administrator opened up) is closed again.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// The mode of the data root and the exec-root: owner everything, group traverse, others nothing.
pub const ROOT_MODE: u32 = 0o710;
/// The mode of every directory directly below them.
pub const DIR_MODE: u32 = 0o700;

/// The directories directly under the data root that Berth creates.
pub const ROOT_DIRS: &[&str] = &["image", "containers", "volumes", "networks", "tmp", "registry"];
/// The directories directly under the exec-root that Berth creates.
pub const EXEC_ROOT_DIRS: &[&str] = &["c", "runtime", "netns"];

/// Create `dir` (and its parents) if missing and give it `mode`, owned by root and group `gid`.
/// A directory that is a symlink, or owned by another user, is refused: a host user could have
/// planted it to watch or change what the daemon writes.
pub fn ensure_dir(dir: &Path, mode: u32, gid: u32) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, "create", e))?;
    let md = std::fs::symlink_metadata(dir).map_err(|e| io(dir, "stat", e))?;
    if !md.is_dir() {
        return Err(Error::Internal(format!(
            "{}: not a directory (a symlink is not accepted)",
            dir.display()
        )));
    }
    if md.uid() != 0 && md.uid() != nix::unistd::geteuid().as_raw() {
        return Err(Error::Internal(format!(
            "{}: owned by uid {}, not by the daemon's user: refusing to keep state there",
            dir.display(),
            md.uid()
        )));
    }
    if md.gid() != gid {
        std::os::unix::fs::chown(dir, None, Some(gid)).map_err(|e| io(dir, "chown", e))?;
    }
    if md.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(|e| io(dir, "chmod", e))?;
    }
    Ok(())
}

/// Make the data root and the exec-root private (creating them when missing): each root
/// [`ROOT_MODE`] with group `socket_gid` on the exec-root (so the API socket's group can reach
/// the socket), and each directory Berth keeps under them [`DIR_MODE`].
pub fn secure_roots(root: &Path, exec_root: &Path, socket_gid: u32) -> Result<()> {
    ensure_dir(root, ROOT_MODE, 0)?;
    for d in ROOT_DIRS {
        ensure_dir(&root.join(d), DIR_MODE, 0)?;
    }
    ensure_dir(exec_root, ROOT_MODE, socket_gid)?;
    for d in EXEC_ROOT_DIRS {
        ensure_dir(&exec_root.join(d), DIR_MODE, 0)?;
    }
    Ok(())
}

fn io(p: &Path, op: &str, e: std::io::Error) -> Error {
    Error::Internal(format!("{op} {}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_nothing_to_others_and_fixes_existing_modes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let run = t.path().join("run");
        std::fs::create_dir_all(root.join("image")).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(root.join("image"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let gid = nix::unistd::getegid().as_raw();
        secure_roots(&root, &run, gid).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&root), 0o710);
        assert_eq!(mode(&run), 0o710);
        for d in ROOT_DIRS {
            assert_eq!(mode(&root.join(d)), 0o700, "{d}");
        }
        for d in EXEC_ROOT_DIRS {
            assert_eq!(mode(&run.join(d)), 0o700, "{d}");
        }
    }

    #[test]
    fn refuses_a_symlinked_root() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(t.path().join("real"), t.path().join("link")).unwrap();
        let e = ensure_dir(&t.path().join("link"), 0o700, 0).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
