//! Image archives: `docker save` / `docker load`.
//!
//! [`save()`] writes what Docker ≥ 25 writes: a docker-archive (`manifest.json`, `repositories`) that is
//! also an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`). Entries are written
//! deterministically (sorted, mtime 0, owner 0:0, fixed modes), so the same images give the same bytes.
//!
//! [`load()`] reads that format, the legacy docker-archive (`<hex>.json` configs, `<id>/layer.tar` layers,
//! shared layers as symlinks), and plain OCI image layouts (gzip layers, nested indexes). The archive is
//! first extracted with the safe layer unpacker into a temporary directory under the store root, every
//! path the archive's metadata names is checked to stay inside it, and nothing is recorded until every
//! layer has been imported and matched against its config's `rootfs.diff_ids`.

use oci::Digest;
use serde::{Deserialize, Serialize};

mod load;
mod save;
#[cfg(test)]
mod tests;

pub use load::load;
pub use save::save;

pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One entry of `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}
