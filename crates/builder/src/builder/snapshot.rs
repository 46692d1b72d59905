//! Layer snapshots and commits: overlay mounts of an image or of a stage's state (with a fresh
//! upper directory for COPY and ADD), a finished upper directory made a layer, and a state stored
//! as an image.

use std::fs;
use std::path::{Path, PathBuf};

use oci::spec::{Descriptor, MEDIA_OCI_LAYER};
use oci::Digest;

use super::{io_err, Builder, State};
use crate::error::{Error, Result};
use crate::fsutil;

impl Builder<'_> {
    /// Store the state as an image (if it is not one already) and return its ID.
    pub(super) fn commit(&mut self, st: &mut State) -> Result<Digest> {
        if let Some(id) = &st.id {
            return Ok(id.clone());
        }
        if st.config.created.is_none() {
            st.config.created = Some(self.now());
        }
        // Every step commits; one that gives an image already stored (a rebuild) writes nothing.
        let images = self.backend.images();
        let known = Digest::of(&serde_json::to_vec(&st.config).expect("config serializes"));
        let id = if images.manifest(&known).is_ok_and(|m| m.layers == st.layers) {
            known
        } else {
            images.add_image(&st.config, &st.layers, st.parent.clone())?
        };
        st.id = Some(id.clone());
        st.parent = Some(id.clone());
        Ok(id)
    }

    /// Add the directory `dir` (an overlay upper) as a new layer on `st`, record the image and cache it.
    /// `adopt`: the directory may become the layer's unpacked form (moved into the store); a kept
    /// step container's upper directory is not taken from it (the layer unpacks from its blob).
    pub(super) fn add_layer(&mut self, st: &mut State, dir: &Path, created_by: String, key: &Digest, adopt: bool) -> Result<Digest> {
        let images = self.backend.images();
        if let Some(t) = self.opts.timestamp {
            fsutil::set_times(dir, t).map_err(|e| Error::Io {
                op: "set times in".into(),
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let mut w = images.content().writer()?;
        image::diff::write_tar(
            dir,
            &mut w,
            image::diff::TarOptions {
                overlay_whiteouts: true,
                mtime_clamp: self.opts.timestamp.map(|t| t.max(0) as u64),
                prefix: None,
            },
        )
        .map_err(|e| Error::Io {
            op: "archive".into(),
            path: dir.to_path_buf(),
            source: e,
        })?;
        let (diff_id, size) = w.commit(None)?;
        let mut diff_ids = st.config.rootfs.diff_ids.clone();
        diff_ids.push(diff_id.clone());
        let chain = image::store::chain_ids(&diff_ids).pop().expect("one layer at least");
        if adopt {
            images.adopt_layer(&chain, dir);
        }
        st.config.rootfs.diff_ids = diff_ids;
        st.layers.push(Descriptor::new(MEDIA_OCI_LAYER, diff_id, size));
        self.history(st, created_by, false, Some(key));
        st.id = None;
        st.config.created = Some(self.now());
        let id = self.commit(st)?;
        self.cache.put(key, &id);
        Ok(id)
    }
}

/// A temporary overlay mount of an image (read-only, for `COPY --from`) or of a state with a fresh
/// upper directory (for COPY/ADD). Unmounted and removed on drop.
pub(super) struct Snapshot {
    dir: PathBuf,
    pub(super) root: PathBuf,
    mounted: bool,
}

/// The upper directory of a finished snapshot; removed on drop unless it was adopted as a layer.
pub(super) struct Upper {
    dir: PathBuf,
    pub(super) path: PathBuf,
}

impl Drop for Upper {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn tmp_dir(work: &Path) -> Result<PathBuf> {
    let n: u64 = rand_u64();
    let d = work.join(format!("tmp-build-{n:016x}"));
    fs::create_dir_all(&d).map_err(|e| Error::Io {
        op: "create".into(),
        path: d.clone(),
        source: e,
    })?;
    Ok(d)
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    oci::random::fill(&mut b).expect("getrandom");
    u64::from_le_bytes(b)
}

impl Snapshot {
    pub(super) fn read_only(images: &image::ImageStore, id: &Digest, work: &Path) -> Result<Snapshot> {
        let lowers = images.lower_dirs(id)?;
        let dir = tmp_dir(work)?;
        let mut s = Snapshot {
            root: dir.join("merged"),
            dir,
            mounted: false,
        };
        match lowers.len() {
            0 => {
                fs::create_dir_all(&s.root).map_err(|e| io_err("create", &s.root, e))?;
            }
            1 => s.root = lowers[0].clone(),
            _ => {
                fs::create_dir_all(&s.root).map_err(|e| io_err("create", &s.root, e))?;
                image::snapshot::mount_overlay_ro(&lowers, &s.root)?;
                s.mounted = true;
            }
        }
        Ok(s)
    }

    pub(super) fn writable(images: &image::ImageStore, st: &State, work: &Path) -> Result<Snapshot> {
        let dir = tmp_dir(work)?;
        let mut lowers = image_lowers(images, st)?;
        if lowers.is_empty() {
            let empty = dir.join("empty");
            fs::create_dir_all(&empty).map_err(|e| io_err("create", &empty, e))?;
            lowers.push(empty);
        }
        let root = dir.join("merged");
        for d in [dir.join("upper"), dir.join("work"), root.clone()] {
            fs::create_dir_all(&d).map_err(|e| io_err("create", &d, e))?;
        }
        image::snapshot::mount_overlay(&lowers, &dir.join("upper"), &dir.join("work"), &root)?;
        Ok(Snapshot { dir, root, mounted: true })
    }

    /// Unmount and hand over the upper directory.
    pub(super) fn finish(mut self) -> Result<Upper> {
        if self.mounted {
            nix::mount::umount2(&self.root, nix::mount::MntFlags::empty())
                .map_err(|e| Error::Backend(format!("unmounting the step's snapshot: {e}")))?;
            self.mounted = false;
        }
        let dir = std::mem::take(&mut self.dir);
        Ok(Upper {
            path: dir.join("upper"),
            dir,
        })
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.root, nix::mount::MntFlags::MNT_DETACH);
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Lower dirs (topmost first) of a state's layers, unpacking any that are not yet.
fn image_lowers(images: &image::ImageStore, st: &State) -> Result<Vec<PathBuf>> {
    if st.layers.is_empty() {
        return Ok(vec![]);
    }
    Ok(images.lower_dirs_of(
        &st.config.rootfs.diff_ids,
        &st.layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>(),
    )?)
}
