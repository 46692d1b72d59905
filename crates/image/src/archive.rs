//! Image archives: `docker save` / `docker load`.
//!
//! [`save`] writes what Docker ≥ 25 writes: a docker-archive (`manifest.json`, `repositories`) that is
//! also an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/<hex>`). Entries are written
//! deterministically (sorted, mtime 0, owner 0:0, fixed modes), so the same images give the same bytes.
//!
//! [`load`] reads that format, the legacy docker-archive (`<hex>.json` configs, `<id>/layer.tar` layers,
//! shared layers as symlinks), and plain OCI image layouts (gzip layers, nested indexes). The archive is
//! first extracted with the safe layer unpacker into a temporary directory under the store root, every
//! path the archive's metadata names is checked to stay inside it, and nothing is recorded until every
//! layer has been imported and matched against its config's `rootfs.diff_ids`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci::digest::HashingReader;
use oci::spec::{
    host_arch, Descriptor, ImageConfig, Index, Manifest, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_CONFIG, MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
};
use oci::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::{Limits, Meter, Subject};
use crate::reference::Reference;
use crate::store::{ImageStore, TMP_PREFIX};
use crate::unpack;

pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Largest JSON document (manifest.json, index.json, a config, a manifest) read from an archive.
const MAX_JSON: u64 = 64 << 20;
/// Deepest nesting of indexes followed in an OCI layout.
const MAX_INDEX_DEPTH: usize = 8;

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArchive(msg.into())
}

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

/// `docker.io/library/busybox:latest` for `busybox:latest`.
fn full_name(r: &Reference) -> String {
    let first = r.repo.split('/').next().unwrap_or_default();
    let has_host = r.repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = if has_host {
        r.repo.clone()
    } else if r.repo.contains('/') {
        format!("docker.io/{}", r.repo)
    } else {
        format!("docker.io/library/{}", r.repo)
    };
    format!("{repo}:{}", r.tag.as_deref().unwrap_or("latest"))
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

fn write_err(entry: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        op: "write archive entry",
        path: PathBuf::from(entry),
        source,
    }
}

/// Write `images` (image ID, tags) as a docker-archive / OCI layout tar to `out`.
pub fn save(store: &ImageStore, images: &[(Digest, Vec<String>)], out: impl Write) -> Result<()> {
    // One entry per image, in the order given, with its tags merged and normalized.
    let mut wanted: Vec<(Digest, Vec<Reference>)> = Vec::new();
    for (id, tags) in images {
        let mut refs = Vec::new();
        for t in tags {
            let r = Reference::parse(t)?;
            if r.digest.is_some() {
                return Err(Error::InvalidReference(format!("{t}: cannot save a digest reference as a tag")));
            }
            refs.push(r);
        }
        let slot = match wanted.iter().position(|(d, _)| d == id) {
            Some(i) => &mut wanted[i].1,
            None => {
                wanted.push((id.clone(), Vec::new()));
                &mut wanted.last_mut().expect("just pushed").1
            }
        };
        for r in refs {
            if !slot.iter().any(|x| x.tagged() == r.tagged()) {
                slot.push(r);
            }
        }
    }

    let mut blobs: BTreeSet<Digest> = BTreeSet::new();
    let mut index_manifests = Vec::new();
    let mut items = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (id, refs) in &wanted {
        let rec = store.record(id)?;
        let mbytes = store.content().read(&rec.manifest)?;
        let manifest = Manifest::parse(&mbytes)?;
        blobs.insert(rec.manifest.clone());
        blobs.insert(manifest.config.digest.clone());
        blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));

        let mdesc = Descriptor::new(
            manifest.media_type.as_deref().unwrap_or(MEDIA_OCI_MANIFEST),
            rec.manifest.clone(),
            mbytes.len() as u64,
        );
        if refs.is_empty() {
            index_manifests.push(mdesc.clone());
        }
        for r in refs {
            let mut d = mdesc.clone();
            let tag = r.tag.as_deref().unwrap_or("latest");
            d.annotations = Some(BTreeMap::from([
                (ANNOTATION_IMAGE_NAME.to_string(), full_name(r)),
                (ANNOTATION_REF_NAME.to_string(), tag.to_string()),
            ]));
            index_manifests.push(d);
            repositories
                .entry(r.repo.clone())
                .or_default()
                .insert(tag.to_string(), manifest.config.digest.hex().to_string());
        }
        items.push(ManifestItem {
            config: blob_name(&manifest.config.digest),
            repo_tags: if refs.is_empty() {
                None
            } else {
                Some(refs.iter().map(|r| r.tagged()).collect())
            },
            layers: manifest.layers.iter().map(|l| blob_name(&l.digest)).collect(),
        });
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_INDEX.into()),
        manifests: index_manifests,
        annotations: None,
        extra: BTreeMap::new(),
    };

    let mut tar = tar::Builder::new(out);
    for dir in ["blobs/", "blobs/sha256/"] {
        tar.append_data(&mut tar_header(tar::EntryType::Directory, 0o755, 0), dir, io::empty())
            .map_err(write_err(dir))?;
    }
    for d in &blobs {
        let name = blob_name(d);
        let f = store.content().open_blob(d)?;
        let len = f
            .metadata()
            .map_err(|source| Error::Io {
                op: "stat",
                path: store.content().path(d),
                source,
            })?
            .len();
        // Streamed, and verified on the way: a corrupt blob is not passed on.
        let mut hr = HashingReader::new(f.take(len));
        tar.append_data(&mut tar_header(tar::EntryType::Regular, 0o644, len), &name, &mut hr)
            .map_err(write_err(&name))?;
        let (got, n) = hr.finish();
        if got != *d || n != len {
            return Err(Error::Oci(oci::Error::DigestMismatch {
                expected: d.to_string(),
                actual: got.to_string(),
            }));
        }
    }
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("index.json", serde_json::to_vec(&index).expect("index serializes")),
        ("manifest.json", serde_json::to_vec(&items).expect("manifest serializes")),
        ("oci-layout", OCI_LAYOUT.as_bytes().to_vec()),
    ];
    if !repositories.is_empty() {
        files.push(("repositories", serde_json::to_vec(&repositories).expect("repositories serialize")));
    }
    for (name, data) in files {
        tar.append_data(
            &mut tar_header(tar::EntryType::Regular, 0o644, data.len() as u64),
            name,
            data.as_slice(),
        )
        .map_err(write_err(name))?;
    }
    let mut out = tar.into_inner().map_err(write_err("end of archive"))?;
    out.flush().map_err(write_err("end of archive"))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limit;
    use flate2::write::GzEncoder;
    use oci::spec::{Platform, RootFs, MEDIA_OCI_LAYER_GZIP};

    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar_header(tar::EntryType::Regular, 0o644, data.len() as u64);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn config_for(diff_ids: &[Digest]) -> ImageConfig {
        ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: diff_ids.to_vec(),
            },
            ..Default::default()
        }
    }

    fn store() -> (tempfile::TempDir, ImageStore) {
        let t = tempfile::tempdir().unwrap();
        let s = ImageStore::open(t.path()).unwrap();
        (t, s)
    }

    /// An image with two layers in `s`.
    fn make_image(s: &ImageStore, marker: &[u8]) -> Digest {
        let l1 = s.import_layer(io::Cursor::new(layer_tar(&[("bin/sh", b"shell")]))).unwrap();
        let l2 = s.import_layer(io::Cursor::new(layer_tar(&[("etc/marker", marker)]))).unwrap();
        s.add_image(&config_for(&[l1.diff_id.clone(), l2.diff_id.clone()]), &[l1.blob, l2.blob], None)
            .unwrap()
    }

    fn entries(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut a = tar::Archive::new(archive);
        let mut out = BTreeMap::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            out.insert(e.path().unwrap().to_string_lossy().into_owned(), v);
        }
        out
    }

    /// The store holds nothing at all: no images, blobs, layers or temporary directories.
    fn assert_pristine(t: &Path, s: &ImageStore) {
        assert!(s.list().is_empty());
        assert_eq!(s.content().list().unwrap(), vec![]);
        assert_eq!(fs::read_dir(t.join("layers")).unwrap().count(), 0);
        let leftovers: Vec<_> = fs::read_dir(t)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(TMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn save_load_roundtrip() {
        let (_t1, s1) = store();
        let id = make_image(&s1, b"one");
        s1.tag(&id, "busybox:latest").unwrap();
        s1.tag(&id, "example.com/team/app:v1").unwrap();
        let other = make_image(&s1, b"two");

        let mut out = Vec::new();
        save(
            &s1,
            &[
                (id.clone(), vec!["busybox".into(), "example.com/team/app:v1".into()]),
                (other.clone(), vec![]),
            ],
            &mut out,
        )
        .unwrap();

        let files = entries(&out);
        assert_eq!(files["oci-layout"], OCI_LAYOUT.as_bytes());
        let items: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(items[0]["Config"], format!("blobs/sha256/{}", id.hex()));
        assert_eq!(
            items[0]["RepoTags"],
            serde_json::json!(["busybox:latest", "example.com/team/app:v1"])
        );
        assert_eq!(items[0]["Layers"].as_array().unwrap().len(), 2);
        assert!(items[1]["RepoTags"].is_null());
        let repos: serde_json::Value = serde_json::from_slice(&files["repositories"]).unwrap();
        assert_eq!(repos["busybox"]["latest"], id.hex());
        let index = Index::parse(&files["index.json"]).unwrap();
        assert_eq!(index.manifests.len(), 3);
        let a = index.manifests[0].annotations.as_ref().unwrap();
        assert_eq!(a[ANNOTATION_IMAGE_NAME], "docker.io/library/busybox:latest");
        assert_eq!(a[ANNOTATION_REF_NAME], "latest");
        assert_eq!(
            index.manifests[1].annotations.as_ref().unwrap()[ANNOTATION_IMAGE_NAME],
            "example.com/team/app:v1"
        );
        assert!(index.manifests[2].annotations.is_none());
        // Shared base layer once: 2 manifests + 2 configs + 3 layers, plus the two directories.
        assert_eq!(files.keys().filter(|k| k.starts_with("blobs/sha256/") && k.len() > 13).count(), 7);

        let (_t2, s2) = store();
        let loaded = load(&s2, &out[..]).unwrap();
        assert_eq!(
            loaded,
            vec![
                "Loaded image: busybox:latest".to_string(),
                "Loaded image: example.com/team/app:v1".into(),
                format!("Loaded image ID: {other}")
            ]
        );
        assert_eq!(s2.resolve("busybox").unwrap(), id);
        assert_eq!(s2.resolve("example.com/team/app:v1").unwrap(), id);
        assert_eq!(s2.config(&id).unwrap(), s1.config(&id).unwrap());
        assert_eq!(s2.list().len(), 2);
        let lowers = s2.lower_dirs(&id).unwrap();
        assert_eq!(fs::read(lowers[0].join("etc/marker")).unwrap(), b"one");

        // Deterministic: saving again, from either store, gives the same bytes.
        let mut again = Vec::new();
        save(
            &s2,
            &[
                (id.clone(), vec!["busybox:latest".into(), "example.com/team/app:v1".into()]),
                (other, vec![]),
            ],
            &mut again,
        )
        .unwrap();
        assert_eq!(again, out);

        // Loading into a store that has the images already is fine too.
        assert_eq!(load(&s2, &out[..]).unwrap().len(), 3);
        assert_eq!(s2.list().len(), 2);
    }

    #[test]
    fn loads_gzipped_archive() {
        let (_t1, s1) = store();
        let id = make_image(&s1, b"gz");
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        save(&s1, &[(id.clone(), vec!["gz:1".into()])], &mut gz).unwrap();
        let data = gz.finish().unwrap();
        let (_t2, s2) = store();
        assert_eq!(load(&s2, &data[..]).unwrap(), vec!["Loaded image: gz:1".to_string()]);
        assert_eq!(s2.resolve("gz:1").unwrap(), id);
    }

    fn add_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        b.append_data(&mut tar_header(tar::EntryType::Regular, 0o644, data.len() as u64), name, data)
            .unwrap();
    }

    fn add_symlink(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &str) {
        let mut h = tar_header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, name, target).unwrap();
    }

    /// A legacy (Docker < 25) archive of two images sharing a base layer through a symlink.
    fn legacy_archive(tamper: impl Fn(&mut serde_json::Value)) -> (Vec<u8>, Digest, Digest) {
        let base = layer_tar(&[("bin/sh", b"shell")]);
        let top = layer_tar(&[("app", b"app")]);
        let (bd, td) = (Digest::of(&base), Digest::of(&top));
        let cfg_a = serde_json::to_vec(&config_for(std::slice::from_ref(&bd))).unwrap();
        // Key order and spacing differ from what this code would write: the ID must stay the hash of
        // these exact bytes.
        let cfg_b = format!(r#"{{"os": "linux", "architecture": "amd64", "rootfs": {{"type": "layers", "diff_ids": ["{bd}", "{td}"]}}, "docker_version": "24.0.7"}}"#).into_bytes();
        let (ida, idb) = (Digest::of(&cfg_a), Digest::of(&cfg_b));
        let (l1, l2, l3) = ("1111".repeat(16), "2222".repeat(16), "3333".repeat(16));
        let mut manifest = serde_json::json!([
            {"Config": format!("{}.json", ida.hex()), "RepoTags": ["base:1"], "Layers": [format!("{l1}/layer.tar")]},
            {"Config": format!("{}.json", idb.hex()), "RepoTags": null, "Layers": [format!("{l2}/layer.tar"), format!("{l3}/layer.tar")]},
        ]);
        tamper(&mut manifest);
        let mut b = tar::Builder::new(Vec::new());
        for (dir, layer) in [(&l1, Some(&base)), (&l2, None), (&l3, Some(&top))] {
            b.append_data(&mut tar_header(tar::EntryType::Directory, 0o755, 0), format!("{dir}/"), io::empty())
                .unwrap();
            add_file(&mut b, &format!("{dir}/VERSION"), b"1.0");
            add_file(&mut b, &format!("{dir}/json"), b"{}");
            match layer {
                Some(data) => add_file(&mut b, &format!("{dir}/layer.tar"), data),
                None => add_symlink(&mut b, &format!("{dir}/layer.tar"), &format!("../{l1}/layer.tar")),
            }
        }
        add_file(&mut b, &format!("{}.json", ida.hex()), &cfg_a);
        add_file(&mut b, &format!("{}.json", idb.hex()), &cfg_b);
        add_file(&mut b, "manifest.json", &serde_json::to_vec(&manifest).unwrap());
        add_file(&mut b, "repositories", format!(r#"{{"base":{{"1":"{l1}"}}}}"#).as_bytes());
        (b.into_inner().unwrap(), ida, idb)
    }

    #[test]
    fn loads_legacy_archive_with_symlinked_layers() {
        let (archive, ida, idb) = legacy_archive(|_| {});
        let (_t, s) = store();
        let loaded = load(&s, &archive[..]).unwrap();
        assert_eq!(loaded, vec!["Loaded image: base:1".to_string(), format!("Loaded image ID: {idb}")]);
        assert_eq!(s.resolve("base:1").unwrap(), ida);
        // The config is stored byte for byte.
        assert_eq!(Digest::of(&s.content().read(&idb).unwrap()), idb);
        assert_eq!(s.config(&idb).unwrap().extra["docker_version"], "24.0.7");
        let lowers = s.lower_dirs(&idb).unwrap();
        assert_eq!(fs::read(lowers[0].join("app")).unwrap(), b"app");
        assert_eq!(fs::read(lowers[1].join("bin/sh")).unwrap(), b"shell");
    }

    #[test]
    fn loads_oci_layout_with_nested_index_and_gzip() {
        let layer = layer_tar(&[("hello", b"world")]);
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer).unwrap();
        let gz = gz.finish().unwrap();
        let cfg = serde_json::to_vec(&config_for(&[Digest::of(&layer)])).unwrap();
        let id = Digest::of(&cfg);
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_MANIFEST.into()),
            config: Descriptor::new(MEDIA_OCI_CONFIG, id.clone(), cfg.len() as u64),
            layers: vec![Descriptor::new(MEDIA_OCI_LAYER_GZIP, Digest::of(&gz), gz.len() as u64)],
            annotations: None,
            extra: BTreeMap::new(),
        };
        let mbytes = serde_json::to_vec(&manifest).unwrap();
        // A decoy for another platform whose blobs are absent: picking it would fail.
        let arm = Descriptor {
            platform: Some(Platform {
                architecture: "s390x".into(),
                os: "linux".into(),
                ..Default::default()
            }),
            ..Descriptor::new(MEDIA_OCI_MANIFEST, Digest::of(b"absent"), 6)
        };
        let mine = Descriptor {
            platform: Some(Platform {
                architecture: host_arch().into(),
                os: "linux".into(),
                ..Default::default()
            }),
            ..Descriptor::new(MEDIA_OCI_MANIFEST, Digest::of(&mbytes), mbytes.len() as u64)
        };
        let nested = Index {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_INDEX.into()),
            manifests: vec![arm, mine],
            annotations: None,
            extra: BTreeMap::new(),
        };
        let nbytes = serde_json::to_vec(&nested).unwrap();
        let top = Index {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_INDEX.into()),
            manifests: vec![Descriptor {
                annotations: Some(BTreeMap::from([(
                    ANNOTATION_REF_NAME.to_string(),
                    "docker.io/library/hello:v2".to_string(),
                )])),
                ..Descriptor::new(MEDIA_OCI_INDEX, Digest::of(&nbytes), nbytes.len() as u64)
            }],
            annotations: None,
            extra: BTreeMap::new(),
        };
        let mut b = tar::Builder::new(Vec::new());
        add_file(&mut b, "oci-layout", OCI_LAYOUT.as_bytes());
        add_file(&mut b, "index.json", &serde_json::to_vec(&top).unwrap());
        for blob in [&gz, &cfg, &mbytes, &nbytes] {
            add_file(&mut b, &blob_name(&Digest::of(blob)), blob);
        }
        let archive = b.into_inner().unwrap();
        let (_t, s) = store();
        assert_eq!(load(&s, &archive[..]).unwrap(), vec!["Loaded image: hello:v2".to_string()]);
        assert_eq!(s.resolve("hello:v2").unwrap(), id);
        // Stored uncompressed: the layer blob is the diff_id.
        assert_eq!(s.manifest(&id).unwrap().layers[0].digest, Digest::of(&layer));
    }

    fn load_err(archive: &[u8]) -> String {
        let (t, s) = store();
        let err = load(&s, archive).unwrap_err();
        assert!(matches!(err, Error::InvalidArchive(_)), "{err:?}");
        assert_pristine(t.path(), &s);
        err.to_string()
    }

    #[test]
    fn corrupt_archives_are_refused_and_leave_nothing() {
        let (_t1, s1) = store();
        let id = make_image(&s1, b"x");
        let mut out = Vec::new();
        save(&s1, &[(id, vec!["x:1".into()])], &mut out).unwrap();
        // Truncated anywhere: in a blob, at a header, before the metadata.
        for cut in [out.len() / 3, out.len() / 2, 1024, out.len() - 1500] {
            let msg = load_err(&out[..cut]);
            assert!(
                msg.contains("truncated") || msg.contains("neither manifest.json nor index.json"),
                "{msg}"
            );
        }

        let msg = load_err(&legacy_archive(|m| m[1]["Layers"][1] = "4444/layer.tar".into()).0);
        assert!(msg.contains("manifest.json names missing file 4444/layer.tar"), "{msg}");
        let msg = load_err(&legacy_archive(|m| m[1]["Layers"].as_array_mut().unwrap().swap(0, 1)).0);
        assert!(msg.contains("has diff_id") && msg.contains("but the config expects"), "{msg}");
        let msg = load_err(&legacy_archive(|m| m[0]["Config"] = "../blobs".into()).0);
        assert!(msg.contains("outside the archive"), "{msg}");
        let msg = load_err(&legacy_archive(|m| m[0]["Config"] = "/etc/passwd".into()).0);
        assert!(msg.contains("invalid path"), "{msg}");
        let msg = load_err(&legacy_archive(|m| m[0]["RepoTags"] = serde_json::json!(["Not A Name"])).0);
        assert!(msg.contains("invalid image name"), "{msg}");

        // A layer symlinked to a file outside the archive.
        let mut b = tar::Builder::new(Vec::new());
        let cfg = serde_json::to_vec(&config_for(&[Digest::of(b"")])).unwrap();
        add_file(&mut b, "c.json", &cfg);
        add_symlink(&mut b, "l/layer.tar", "/etc/passwd");
        add_file(
            &mut b,
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}]"#,
        );
        let msg = load_err(&b.into_inner().unwrap());
        assert!(msg.contains("outside the archive"), "{msg}");

        // manifest.json itself a symlink out of the archive (or to a device).
        for target in ["/etc/passwd", "/dev/zero", "../../images.json"] {
            let mut b = tar::Builder::new(Vec::new());
            add_symlink(&mut b, "manifest.json", target);
            let msg = load_err(&b.into_inner().unwrap());
            assert!(msg.contains("outside the archive") || msg.contains("missing file"), "{msg}");
        }

        let msg = load_err(&layer_tar(&[("README", b"hi")]));
        assert!(msg.contains("neither manifest.json nor index.json found"), "{msg}");
    }

    #[test]
    fn failed_load_keeps_layers_other_images_use() {
        let (_t, s) = store();
        let (good, ..) = legacy_archive(|_| {});
        load(&s, &good[..]).unwrap();
        let blobs = s.content().list().unwrap().len();
        // Same layers, but the second image is broken: its shared layers must survive the cleanup.
        let (bad, ..) = legacy_archive(|m| m[1]["Layers"].as_array_mut().unwrap().swap(0, 1));
        load(&s, &bad[..]).unwrap_err();
        assert_eq!(s.content().list().unwrap().len(), blobs);
        assert_eq!(s.list().len(), 2);
        for img in s.list() {
            s.lower_dirs(&img.id).unwrap();
        }
    }

    /// Small limits for the tests: 1 MiB a layer, 1.5 MiB an image, 100 entries, no ratio.
    const SMALL: Limits = Limits {
        layer_size: 1 << 20,
        image_size: 3 << 19,
        layer_entries: 100,
        layer_ratio: 0,
        ratio_floor: 0,
    };

    /// [`SMALL`] with a ratio of 20 past 256 KiB.
    const RATIO: Limits = Limits {
        layer_ratio: 20,
        ratio_floor: 256 << 10,
        ..SMALL
    };

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A layer tar of files (name, size) of zeros.
    fn zeros_tar(files: &[(&str, usize)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, n) in files {
            let mut h = tar_header(tar::EntryType::Regular, 0o644, *n as u64);
            b.append_data(&mut h, name, io::repeat(0).take(*n as u64)).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A layer tar holding a GNU sparse file that claims `size` bytes from one byte of data.
    fn sparse_tar(size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_mode(0o644);
        h.set_size(1);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_path("sparse").unwrap();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.set_real_size(size);
        gnu.sparse[0].set_offset(size - 1);
        gnu.sparse[0].set_length(1);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).unwrap();
        b.into_inner().unwrap()
    }

    /// A docker-archive of one image `bomb:1` with `layers` (each as stored in the archive, plain
    /// or gzipped, with its plain tar's digest), at `l<i>/layer.tar`.
    fn archive_of(layers: &[(Vec<u8>, Digest)]) -> Vec<u8> {
        let diff_ids: Vec<Digest> = layers.iter().map(|(_, d)| d.clone()).collect();
        let cfg = serde_json::to_vec(&config_for(&diff_ids)).unwrap();
        let names: Vec<String> = (0..layers.len()).map(|i| format!("l{i}/layer.tar")).collect();
        let mut b = tar::Builder::new(Vec::new());
        for (name, (data, _)) in names.iter().zip(layers) {
            add_file(&mut b, name, data);
        }
        add_file(&mut b, "config.json", &cfg);
        let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": ["bomb:1"], "Layers": names}]);
        add_file(&mut b, "manifest.json", &serde_json::to_vec(&manifest).unwrap());
        b.into_inner().unwrap()
    }

    fn plain(tar: Vec<u8>) -> (Vec<u8>, Digest) {
        let d = Digest::of(&tar);
        (tar, d)
    }

    fn gzipped(tar: Vec<u8>) -> (Vec<u8>, Digest) {
        let d = Digest::of(&tar);
        (gzip(&tar), d)
    }

    fn ingest_files(t: &Path) -> usize {
        fs::read_dir(t.join("blobs/ingest")).unwrap().count()
    }

    /// `load` fails with `limit` on `subject`, and the error says which flag.
    fn refused(s: &ImageStore, archive: &[u8], limit: Limit, subject: Subject) -> String {
        let err = load(s, archive).unwrap_err();
        let Error::LimitExceeded(e) = &err else {
            panic!("expected a limit error, got {err:?}");
        };
        assert_eq!((e.limit, &e.subject), (limit, &subject), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(limit.flag()), "{msg}");
        msg
    }

    #[test]
    fn load_refuses_bombs_past_each_limit_and_keeps_nothing() {
        let t = tempfile::tempdir().unwrap();
        let s = ImageStore::open(t.path()).unwrap().with_limits(SMALL);
        let layer0 = || Subject::Layer("l0/layer.tar".into());

        // A gzip bomb: 8 MiB of zeros in about 8 KiB. Refused at 1 MiB, gzipped or not.
        let bomb = zeros_tar(&[("zeros", 8 << 20)]);
        let msg = refused(&s, &archive_of(&[gzipped(bomb.clone())]), Limit::LayerSize, layer0());
        assert!(msg.contains("l0/layer.tar") && msg.contains("limit of 1 MiB"), "{msg}");
        assert_pristine(t.path(), &s);
        assert_eq!(ingest_files(t.path()), 0);
        refused(&s, &archive_of(&[plain(bomb.clone())]), Limit::LayerSize, layer0());
        assert_pristine(t.path(), &s);

        // With a ratio: 600 KiB of zeros is under the size limits but expands ~1000× past the
        // 256 KiB floor; and the 8 MiB bomb is now refused for its ratio first.
        let tr = tempfile::tempdir().unwrap();
        let sr = ImageStore::open(tr.path()).unwrap().with_limits(RATIO);
        let msg = refused(
            &sr,
            &archive_of(&[gzipped(zeros_tar(&[("z", 600 << 10)]))]),
            Limit::LayerRatio,
            layer0(),
        );
        assert!(msg.contains("more than 20 times its compressed size"), "{msg}");
        assert_pristine(tr.path(), &sr);
        refused(&sr, &archive_of(&[gzipped(bomb.clone())]), Limit::LayerRatio, layer0());
        assert_pristine(tr.path(), &sr);
        // The archive itself gzipped: it expands past the ratio before any layer is looked at.
        let inner = archive_of(&[plain(zeros_tar(&[("z", 900 << 10)]))]);
        refused(&sr, &gzip(&inner), Limit::LayerRatio, Subject::Archive);
        assert_pristine(tr.path(), &sr);

        // Two layers each under 1 MiB, over 1.5 MiB together: the second is refused, the first
        // (already stored as a blob) removed again.
        let two = archive_of(&[plain(zeros_tar(&[("a", 800 << 10)])), plain(zeros_tar(&[("b", 800 << 10)]))]);
        let msg = refused(&s, &two, Limit::ImageSize, Subject::Layer("l1/layer.tar".into()));
        assert!(msg.contains("--max-image-size limit of 1536 KiB at layer l1/layer.tar"), "{msg}");
        assert_pristine(t.path(), &s);

        // Many empty files.
        let names: Vec<String> = (0..150).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 0)).collect();
        let msg = refused(&s, &archive_of(&[plain(zeros_tar(&files))]), Limit::LayerEntries, layer0());
        assert!(
            msg.contains("more entries than the daemon's --max-layer-entries limit of 100"),
            "{msg}"
        );
        assert_pristine(t.path(), &s);

        // A sparse entry writes 8 MiB from a 2 KiB tar: caught as it writes, when unpacked.
        refused(&s, &archive_of(&[plain(sparse_tar(8 << 20))]), Limit::LayerSize, layer0());
        assert_pristine(t.path(), &s);

        // What is within the limits still loads; a refused image keeps the layers others use.
        let (good, ..) = legacy_archive(|_| {});
        load(&s, &good[..]).unwrap();
        let blobs = s.content().list().unwrap();
        let layers = fs::read_dir(t.path().join("layers")).unwrap().count();
        let base = layer_tar(&[("bin/sh", b"shell")]);
        let bomb = zeros_tar(&[("zeros", 8 << 20)]);
        let mixed = archive_of(&[plain(base), gzipped(bomb)]);
        refused(&s, &mixed, Limit::LayerSize, Subject::Layer("l1/layer.tar".into()));
        assert_eq!(s.content().list().unwrap(), blobs);
        assert_eq!(fs::read_dir(t.path().join("layers")).unwrap().count(), layers);
        assert_eq!(s.list().len(), 2);
        assert!(s.resolve("bomb:1").is_err());
        for img in s.list() {
            s.lower_dirs(&img.id).unwrap();
        }
    }

    #[test]
    fn the_default_limits_pass_ordinary_layers_and_none_means_none() {
        // Under the defaults a small, highly compressible layer passes the ratio (it is under the
        // floor), and so does everything with no limits at all.
        for limits in [Limits::default(), Limits::NONE] {
            let t = tempfile::tempdir().unwrap();
            let s = ImageStore::open(t.path()).unwrap().with_limits(limits);
            let names: Vec<String> = (0..150).map(|i| format!("f{i}")).collect();
            let mut files: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 0)).collect();
            files.push(("zeros", 8 << 20));
            let out = load(&s, &archive_of(&[gzipped(zeros_tar(&files))])[..]).unwrap();
            assert_eq!(out, vec!["Loaded image: bomb:1".to_string()]);
        }
    }

    #[test]
    fn import_and_pull_refuse_bombs_and_keep_nothing() {
        let t = tempfile::tempdir().unwrap();
        let s = ImageStore::open(t.path()).unwrap().with_limits(SMALL);
        // docker import: refused while it streams into the content store, or when unpacked.
        for tar in [gzip(&zeros_tar(&[("z", 8 << 20)])), sparse_tar(8 << 20)] {
            let err = s.import_layer(io::Cursor::new(tar)).unwrap_err();
            assert!(
                matches!(&err, Error::LimitExceeded(e) if e.limit == Limit::LayerSize && e.subject == Subject::Layer("of the import".into())),
                "{err:?}"
            );
            assert_pristine(t.path(), &s);
            assert_eq!(ingest_files(t.path()), 0);
        }

        // A pull: the compressed layer and the config are stored first (as the engine downloads
        // them), then unpacked; the image is recorded only if that succeeds.
        let bomb = zeros_tar(&[("zeros", 8 << 20)]);
        let gz = gzip(&bomb);
        let (layer, _, new_layer) = s.content().ingest_new(&gz[..], None).unwrap();
        let cfg = serde_json::to_vec(&config_for(&[Digest::of(&bomb)])).unwrap();
        let (cfg_digest, _, new_cfg) = s.content().ingest_new(&cfg[..], None).unwrap();
        assert!(new_layer && new_cfg);
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_MANIFEST.into()),
            config: Descriptor::new(MEDIA_OCI_CONFIG, cfg_digest.clone(), cfg.len() as u64),
            layers: vec![Descriptor::new(MEDIA_OCI_LAYER_GZIP, layer.clone(), gz.len() as u64)],
            annotations: None,
            extra: BTreeMap::new(),
        };
        let err = s.add_manifest_unpacked(&manifest, &[layer.clone(), cfg_digest]).unwrap_err();
        assert!(
            matches!(&err, Error::LimitExceeded(e) if e.limit == Limit::LayerSize && e.subject == Subject::Layer(layer.to_string())),
            "{err:?}"
        );
        assert!(err.to_string().contains(&layer.to_string()), "{err}");
        assert_pristine(t.path(), &s);
    }
}
