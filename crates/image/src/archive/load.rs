//! `docker load`: docker-archives (current and legacy) and OCI image layouts, extracted safely into
//! a temporary directory, checked, and recorded only when every layer imported.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci::digest::HashingReader;
use oci::spec::{
    host_arch, Descriptor, ImageConfig, Index, Manifest, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_CONFIG, MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
};
use oci::Digest;

use super::{blob_name, ManifestItem, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::error::{Error, Result};
use crate::limits::{Limits, Meter, Subject};
use crate::reference::Reference;
use crate::store::{ImageStore, TMP_PREFIX};
use crate::unpack;

/// Largest JSON document (manifest.json, index.json, a config, a manifest) read from an archive.
const MAX_JSON: u64 = 64 << 20;

/// Deepest nesting of indexes followed in an OCI layout.
const MAX_INDEX_DEPTH: usize = 8;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArchive(msg.into())
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A possibly gzip-compressed stream as plain bytes.
fn maybe_gunzip<'a>(mut r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < head.len() {
        let k = r.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let chained = io::Cursor::new(head[..n].to_vec()).chain(r);
    Ok(match oci::spec::Compression::sniff(&head[..n]) {
        oci::spec::Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(chained)),
        _ => Box::new(chained),
    })
}

/// Resolve a file an archive's metadata (`what`) names; it must be a regular file inside `root`
/// (which is canonical), following symlinks only while they stay inside.
fn resolve(root: &Path, name: &str, what: &str) -> Result<PathBuf> {
    let p = Path::new(name);
    if name.is_empty() || p.is_absolute() {
        return Err(invalid(format!("{what} names an invalid path {name:?}")));
    }
    let real = match root.join(p).canonicalize() {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(invalid(format!("{what} names missing file {name}"))),
        Err(e) => return Err(invalid(format!("{what} names {name}: {e}"))),
    };
    if !real.starts_with(root) {
        return Err(invalid(format!("{what} names {name}, which leads outside the archive")));
    }
    if !real.is_file() {
        return Err(invalid(format!("{what} names {name}, which is not a regular file")));
    }
    Ok(real)
}

fn read_small(path: &Path, name: &str) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| invalid(format!("reading {name}: {e}")))?;
    let mut v = Vec::new();
    f.take(MAX_JSON + 1)
        .read_to_end(&mut v)
        .map_err(|e| invalid(format!("reading {name}: {e}")))?;
    if v.len() as u64 > MAX_JSON {
        return Err(invalid(format!("{name} is larger than {MAX_JSON} bytes")));
    }
    Ok(v)
}

fn hash_file(path: &Path, name: &str) -> Result<Digest> {
    let f = File::open(path).map_err(|e| invalid(format!("reading {name}: {e}")))?;
    let mut hr = HashingReader::new(f);
    io::copy(&mut hr, &mut io::sink()).map_err(|e| invalid(format!("reading {name}: {e}")))?;
    Ok(hr.finish().0)
}

/// A layer file of an image to load.
struct LayerFile {
    /// As the archive names it, for messages.
    name: String,
    path: PathBuf,
    /// The blob digest the archive claims for it (OCI layouts), verified before import.
    digest: Option<Digest>,
}

/// An image found in an archive, before anything is imported.
struct Planned {
    config_name: String,
    config: Vec<u8>,
    layers: Vec<LayerFile>,
    /// Normalized `repo:tag` names.
    tags: Vec<String>,
}

fn normalize_tag(t: &str, what: &str) -> Result<String> {
    match Reference::parse(t) {
        Ok(r) if r.digest.is_none() => Ok(r.tagged()),
        _ => Err(invalid(format!("{what} has an invalid image name {t:?}"))),
    }
}

/// Images described by a docker-archive `manifest.json` (current or legacy layout).
fn plan_docker(root: &Path, manifest_json: &Path) -> Result<Vec<Planned>> {
    let data = read_small(manifest_json, "manifest.json")?;
    let items: Vec<ManifestItem> = serde_json::from_slice(&data).map_err(|e| invalid(format!("manifest.json: {e}")))?;
    if items.is_empty() {
        return Err(invalid("manifest.json lists no images"));
    }
    let mut out = Vec::new();
    for item in items {
        let cpath = resolve(root, &item.config, "manifest.json")?;
        let config = read_small(&cpath, &item.config)?;
        let layers = item
            .layers
            .iter()
            .map(|l| {
                Ok(LayerFile {
                    name: l.clone(),
                    path: resolve(root, l, "manifest.json")?,
                    digest: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let tags = item
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| normalize_tag(t, "manifest.json"))
            .collect::<Result<Vec<_>>>()?;
        out.push(Planned {
            config_name: item.config,
            config,
            layers,
            tags,
        });
    }
    Ok(out)
}

/// Read a blob of an OCI layout, verifying its digest.
fn read_blob(root: &Path, d: &Descriptor) -> Result<Vec<u8>> {
    let name = blob_name(&d.digest);
    let data = read_small(&resolve(root, &name, "index.json")?, &name)?;
    if Digest::of(&data) != d.digest {
        return Err(invalid(format!("{name} does not match its digest")));
    }
    Ok(data)
}

fn is_index(media_type: &str, doc: &serde_json::Value) -> bool {
    media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST || (media_type.is_empty() && doc.get("manifests").is_some())
}

/// Follow `desc` through nested indexes to one image manifest: this platform's (linux/amd64 on x86-64),
/// or the only one.
fn pick_manifest(root: &Path, desc: &Descriptor, depth: usize) -> Result<(Digest, Manifest)> {
    if depth > MAX_INDEX_DEPTH {
        return Err(invalid("index.json: indexes nested too deeply"));
    }
    let data = read_blob(root, desc)?;
    let doc: serde_json::Value = serde_json::from_slice(&data).map_err(|e| invalid(format!("{}: {e}", blob_name(&desc.digest))))?;
    let mt = doc
        .get("mediaType")
        .and_then(|v| v.as_str())
        .unwrap_or(&desc.media_type)
        .to_string();
    if is_index(&mt, &doc) {
        let idx = Index::parse(&data).map_err(|e| invalid(format!("{}: {e}", blob_name(&desc.digest))))?;
        let child = choose_platform(&idx.manifests)
            .ok_or_else(|| invalid(format!("{}: no manifest for linux/{}", blob_name(&desc.digest), host_arch())))?;
        return pick_manifest(root, child, depth + 1);
    }
    if !(mt == MEDIA_OCI_MANIFEST || mt == MEDIA_DOCKER_MANIFEST || mt.is_empty()) {
        return Err(invalid(format!(
            "{}: unsupported manifest media type {mt:?}",
            blob_name(&desc.digest)
        )));
    }
    let m = Manifest::parse(&data).map_err(|e| invalid(format!("{}: {e}", blob_name(&desc.digest))))?;
    Ok((desc.digest.clone(), m))
}

/// The manifest of an index for this platform, or the only image manifest in it.
fn choose_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            let attestation = d
                .annotations
                .as_ref()
                .and_then(|a| a.get("vnd.docker.reference.type"))
                .is_some_and(|t| t == "attestation-manifest");
            let unknown = d.platform.as_ref().is_some_and(|p| p.os == "unknown");
            !attestation && !unknown
        })
        .collect();
    candidates
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
        })
        .copied()
        .or(if candidates.len() == 1 { Some(candidates[0]) } else { None })
}

/// The image name an index entry carries, if any.
fn annotated_name(d: &Descriptor) -> Result<Option<String>> {
    let Some(a) = &d.annotations else {
        return Ok(None);
    };
    if let Some(n) = a.get(ANNOTATION_IMAGE_NAME) {
        return normalize_tag(n, "index.json").map(Some);
    }
    // ref.name is often just a tag ("latest"), which names no repository.
    match a.get(ANNOTATION_REF_NAME) {
        Some(n) if n.contains('/') || n.contains(':') => normalize_tag(n, "index.json").map(Some),
        _ => Ok(None),
    }
}

/// Images of a plain OCI image layout.
fn plan_oci(root: &Path, index_json: &Path) -> Result<Vec<Planned>> {
    let data = read_small(index_json, "index.json")?;
    let index = Index::parse(&data).map_err(|e| invalid(format!("index.json: {e}")))?;
    // Entries naming the same manifest are one image with several names.
    let mut found: Vec<(Digest, Manifest, Vec<String>)> = Vec::new();
    for desc in &index.manifests {
        let name = annotated_name(desc)?;
        let (digest, manifest) = pick_manifest(root, desc, 0)?;
        let slot = match found.iter().position(|(d, _, _)| *d == digest) {
            Some(i) => &mut found[i].2,
            None => {
                found.push((digest, manifest, Vec::new()));
                &mut found.last_mut().expect("just pushed").2
            }
        };
        if let Some(n) = name {
            if !slot.contains(&n) {
                slot.push(n);
            }
        }
    }
    if found.is_empty() {
        return Err(invalid("index.json lists no images"));
    }
    let mut out = Vec::new();
    for (_, manifest, tags) in found {
        let config = read_blob(root, &manifest.config)?;
        let layers = manifest
            .layers
            .iter()
            .map(|l| {
                let name = blob_name(&l.digest);
                Ok(LayerFile {
                    path: resolve(root, &name, "index.json")?,
                    name,
                    digest: Some(l.digest.clone()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(Planned {
            config_name: blob_name(&manifest.config.digest),
            config,
            layers,
            tags,
        });
    }
    Ok(out)
}

/// Load the images of a `docker save` archive or OCI image layout tar (optionally gzipped) from
/// `input`; returns what was loaded, as docker prints it.
pub fn load(store: &ImageStore, input: impl Read) -> Result<Vec<String>> {
    let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = TempDir(store.root().join(format!("{TMP_PREFIX}{}-{n}", std::process::id())));
    fs::create_dir(&tmp.0).map_err(|source| Error::Io {
        op: "create",
        path: tmp.0.clone(),
        source,
    })?;
    // The archive itself is counted too: a gzipped archive may be a bomb before any layer is.
    // Its layer files are checked against the layer and image limits when imported below.
    let archive_limits = Limits {
        layer_size: 0,
        image_size: 0,
        ..store.limits()
    };
    let meter = Meter::new(archive_limits, Subject::Archive, 0);
    let plain = meter.output(maybe_gunzip(meter.input(input)).map_err(|e| invalid(format!("reading archive: {e}")))?);
    unpack::unpack_layer_metered(plain, &tmp.0, &meter).map_err(|e| match e {
        Error::LimitExceeded(_) => e,
        Error::Archive(io) => invalid(format!("corrupt or truncated tar stream: {io}")),
        other => invalid(format!("extracting: {other}")),
    })?;
    let root = tmp.0.canonicalize().map_err(|source| Error::Io {
        op: "resolve",
        path: tmp.0.clone(),
        source,
    })?;

    // Present at all (even as a symlink): then it must resolve inside the archive.
    let present = |name: &str| fs::symlink_metadata(root.join(name)).is_ok();
    let plan = if present("manifest.json") {
        plan_docker(&root, &resolve(&root, "manifest.json", "the archive")?)?
    } else if present("index.json") {
        plan_oci(&root, &resolve(&root, "index.json", "the archive")?)?
    } else {
        return Err(invalid("neither manifest.json nor index.json found"));
    };

    // Nothing is recorded unless every layer of every image imports, matches its config and
    // unpacks within the limits; whatever this load stored is removed again when one does not.
    let mut fresh: Vec<Digest> = Vec::new();
    let mut made: Vec<Digest> = Vec::new();
    let res = import_all(store, &plan, &mut fresh, &mut made);
    if res.is_err() {
        store.discard(&fresh, &made);
    }
    res
}

/// Import the layers of every planned image (checking them against the configs' diff_ids), unpack
/// them, then record the images. The blobs stored that were not in the store before are pushed
/// to `fresh`, the layer directories made to `made`, for the cleanup of a failure.
fn import_all(store: &ImageStore, plan: &[Planned], fresh: &mut Vec<Digest>, made: &mut Vec<Digest>) -> Result<Vec<String>> {
    let mut layer_sets = Vec::new();
    for img in plan {
        let cfg = ImageConfig::parse(&img.config).map_err(|e| invalid(format!("{}: {e}", img.config_name)))?;
        let diff_ids = &cfg.rootfs.diff_ids;
        if diff_ids.len() != img.layers.len() {
            return Err(invalid(format!(
                "{}: the config lists {} layers (rootfs.diff_ids) but the archive has {}",
                img.config_name,
                diff_ids.len(),
                img.layers.len()
            )));
        }
        let mut descs = Vec::new();
        let mut image_used = 0u64;
        for (l, expected) in img.layers.iter().zip(diff_ids) {
            if let Some(d) = &l.digest {
                if hash_file(&l.path, &l.name)? != *d {
                    return Err(invalid(format!("layer {} does not match its digest", l.name)));
                }
            }
            let f = File::open(&l.path).map_err(|e| invalid(format!("reading layer {}: {e}", l.name)))?;
            let (info, expanded, created) = store.ingest_layer(f, &l.name, image_used).map_err(|e| match e {
                Error::LimitExceeded(_) => e,
                other => invalid(format!("layer {}: {other}", l.name)),
            })?;
            if created {
                fresh.push(info.diff_id.clone());
            }
            image_used = image_used.saturating_add(expanded);
            if info.diff_id != *expected {
                return Err(invalid(format!(
                    "layer {} has diff_id {}, but the config expects {expected}",
                    l.name, info.diff_id
                )));
            }
            descs.push(info.blob);
        }
        // Unpacking proves every layer is a complete, safe tar within the limits.
        let names: Vec<String> = img.layers.iter().map(|l| l.name.clone()).collect();
        store.unpack_chain(diff_ids, diff_ids, &names, made, &|name, e| invalid(format!("layer {name}: {e}")))?;
        layer_sets.push(descs);
    }

    let mut loaded = Vec::new();
    for (img, layers) in plan.iter().zip(layer_sets) {
        let (cfg_digest, _, created) = store.content().ingest_new(img.config.as_slice(), None)?;
        if created {
            fresh.push(cfg_digest.clone());
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_MANIFEST.into()),
            config: Descriptor::new(MEDIA_OCI_CONFIG, cfg_digest, img.config.len() as u64),
            layers,
            annotations: None,
            extra: BTreeMap::new(),
        };
        let id = store.add_manifest(&manifest, None)?;
        if img.tags.is_empty() {
            loaded.push(format!("Loaded image ID: {id}"));
        }
        for t in &img.tags {
            let key = store.tag(&id, t)?;
            loaded.push(format!("Loaded image: {key}"));
        }
    }
    Ok(loaded)
}
