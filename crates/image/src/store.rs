//! The image store: images (config + manifest in the content store), their names, and their layers
//! unpacked once per chain ID under `layers/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use oci::spec::{Descriptor, ImageConfig, Manifest, MEDIA_OCI_CONFIG, MEDIA_OCI_EMPTY, MEDIA_OCI_LAYER, MEDIA_OCI_MANIFEST};
use oci::{ContentStore, Digest};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::limits::{Limits, Meter, Subject};
use crate::reference::Reference;
use crate::unpack;

/// What the store knows of one image besides its content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// Digest of the manifest describing this image.
    pub manifest: Digest,
    /// Parent image (for `commit` and the builder), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    /// Digests this image is known by in registries (`repo@sha256:...`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
    /// Artifacts about this image (provenance, SBOM, signatures): OCI referrer manifests whose
    /// subject is its manifest, as the referrers API lists them (with `artifactType`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<Descriptor>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    /// `repo:tag` → image ID.
    tags: BTreeMap<String, Digest>,
    /// image ID hex → record.
    images: BTreeMap<String, ImageRecord>,
}

/// One layer as stored: its blob and its uncompressed digest.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    pub blob: Descriptor,
    pub diff_id: Digest,
}

/// A listed image.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub id: Digest,
    pub record: ImageRecord,
    pub tags: Vec<String>,
}

/// Name prefix of the temporary extraction directories under the store root.
pub(crate) const TMP_PREFIX: &str = "tmp-load-";

pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    index: Mutex<IndexFile>,
    unpack_lock: Mutex<()>,
    limits: Limits,
}

/// The chain IDs of a list of diff IDs.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<Self> {
        let content = ContentStore::open(root.join("blobs"))?;
        let layers = root.join("layers");
        fs::create_dir_all(&layers).ctx("create", &layers)?;
        // Interrupted unpacks are never renamed into place; drop them.
        if let Ok(rd) = fs::read_dir(&layers) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("tmp-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        // Temporary extraction directories of interrupted `load`s.
        if let Ok(rd) = fs::read_dir(root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let idx_path = root.join("images.json");
        let index = match fs::read(&idx_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Io {
                op: "parse",
                path: idx_path.clone(),
                source: e.into(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IndexFile::default(),
            Err(e) => {
                return Err(Error::Io {
                    op: "read",
                    path: idx_path,
                    source: e,
                })
            }
        };
        Ok(ImageStore {
            root: root.to_path_buf(),
            content,
            index: Mutex::new(index),
            unpack_lock: Mutex::new(()),
            limits: Limits::default(),
        })
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn save(&self, idx: &IndexFile) -> Result<()> {
        let data = serde_json::to_vec_pretty(idx).expect("index serializes");
        oci::store::write_atomic(&self.root.join("images.json"), &data)?;
        Ok(())
    }

    /// The limits every layer taken in is expanded under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The store with other expansion limits (the default is [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Store an uncompressed layer tar from `r` (gzip is detected and decompressed), verify it is a
    /// well-formed tar by unpacking it, and return its description (`docker import`). Nothing is
    /// kept when it fails, or crosses a limit.
    pub fn import_layer(&self, r: impl Read) -> Result<LayerInfo> {
        let name = "of the import".to_string();
        let (info, _, created) = self.ingest_layer(r, &name, 0)?;
        // Unpacking proves the tar is complete and safe; a bad one is removed again.
        let mut made = Vec::new();
        let one = std::slice::from_ref(&info.diff_id);
        if let Err(e) = self.unpack_chain(one, one, std::slice::from_ref(&name), &mut made, &|_, e| e) {
            let fresh = if created { one } else { &[] };
            self.discard(fresh, &made);
            return Err(e);
        }
        Ok(info)
    }

    /// Decompress and store a layer tar from `r` as a blob (its digest is the layer's diff ID),
    /// counting it against the limits as it streams: `name` names the layer in a limit's error, and
    /// `image_before` is what the image's layers before it expanded to. Returns the layer, what it
    /// expanded to, and whether the blob is new. A refused layer leaves no temporary file.
    pub(crate) fn ingest_layer(&self, r: impl Read, name: &str, image_before: u64) -> Result<(LayerInfo, u64, bool)> {
        let meter = Meter::new(self.limits, Subject::Layer(name.to_string()), image_before);
        let plain = meter.output(unpack::decompress(meter.input(r)).map_err(Error::Archive)?);
        let res = self.content.ingest_new(plain, None);
        if let Some(t) = meter.tripped() {
            return Err(Error::LimitExceeded(t));
        }
        let (digest, size, created) = res.map_err(|e| match e {
            oci::Error::Io { source, .. } => Error::Archive(source),
            other => Error::Oci(other),
        })?;
        let info = LayerInfo {
            blob: Descriptor::new(MEDIA_OCI_LAYER, digest.clone(), size),
            diff_id: digest,
        };
        Ok((info, meter.expanded(), created))
    }

    /// Undo what a failed load, pull or import stored: remove the layer directories `chains` and
    /// the blobs `blobs` (both only what that operation itself created) unless a recorded image
    /// uses them.
    pub fn discard(&self, blobs: &[Digest], chains: &[Digest]) {
        let _g = self.unpack_lock.lock().unwrap();
        let (used_blobs, used_chains) = self.in_use(&self.index.lock().unwrap());
        for c in chains.iter().filter(|c| !used_chains.contains(*c)) {
            let _ = fs::remove_dir_all(self.layer_dir(c));
        }
        for b in blobs.iter().filter(|b| !used_blobs.contains(*b)) {
            let _ = self.content.remove(b);
        }
    }

    /// The blobs (manifests, configs, layers) and layer chain IDs the images of `idx` use.
    fn in_use(&self, idx: &IndexFile) -> (BTreeSet<Digest>, BTreeSet<Digest>) {
        let mut blobs = BTreeSet::new();
        let mut chains = BTreeSet::new();
        for r in idx.images.values() {
            blobs.insert(r.manifest.clone());
            for d in &r.referrers {
                blobs.insert(d.digest.clone());
                if let Ok(m) = self.content.read(&d.digest).and_then(|b| Manifest::parse(&b)) {
                    blobs.insert(m.config.digest.clone());
                    blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
                }
            }
            if let Ok(m) = self.content.read(&r.manifest).and_then(|b| Manifest::parse(&b)) {
                blobs.insert(m.config.digest.clone());
                blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
                if let Ok(c) = self.content.read(&m.config.digest).and_then(|b| ImageConfig::parse(&b)) {
                    chains.extend(chain_ids(&c.rootfs.diff_ids));
                }
            }
        }
        (blobs, chains)
    }

    /// Record a new image from its config and layers; returns the image ID (config digest).
    pub fn add_image(&self, config: &ImageConfig, layers: &[Descriptor], parent: Option<Digest>) -> Result<Digest> {
        let cfg = serde_json::to_vec(config).expect("config serializes");
        let cfg_digest = self.content.put(&cfg)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_MANIFEST.into()),
            config: Descriptor::new(MEDIA_OCI_CONFIG, cfg_digest.clone(), cfg.len() as u64),
            layers: layers.to_vec(),
            annotations: None,
            extra: BTreeMap::new(),
        };
        self.add_manifest(&manifest, parent)
    }

    /// Record an image from a manifest whose config and layers are already in the content store.
    pub fn add_manifest(&self, manifest: &Manifest, parent: Option<Digest>) -> Result<Digest> {
        let m = serde_json::to_vec(manifest).expect("manifest serializes");
        self.record_manifest(manifest, &m, parent)
    }

    /// Record the image of `manifest`, stored as `bytes` (its serialization, or the exact bytes a
    /// registry sent, so that the manifest keeps the digest it has there: pushed elsewhere, it is
    /// the same manifest, and signatures made on its digest still hold).
    fn record_manifest(&self, manifest: &Manifest, bytes: &[u8], parent: Option<Digest>) -> Result<Digest> {
        for l in &manifest.layers {
            if !self.content.contains(&l.digest) {
                return Err(Error::Oci(oci::Error::BlobNotFound(l.digest.to_string())));
            }
        }
        let mdigest = self.content.put(bytes)?;
        let id = manifest.config.digest.clone();
        let mut idx = self.index.lock().unwrap();
        let rec = idx.images.entry(id.hex().to_string()).or_insert_with(|| ImageRecord {
            manifest: mdigest.clone(),
            parent: None,
            repo_digests: vec![],
            referrers: vec![],
        });
        rec.manifest = mdigest;
        if parent.is_some() {
            rec.parent = parent;
        }
        self.save(&idx)?;
        Ok(id)
    }

    /// Unpack the layers of `manifest` (its config and layer blobs already stored) within the
    /// limits, and only then record the image, so one whose layers do not unpack is never
    /// recorded. On failure the layer directories this made, and the blobs of `fresh` (those the
    /// caller stored for this image) that no image uses, are removed. For pulls: `raw` is the
    /// manifest as the registry sent it, and is what is stored.
    pub fn add_manifest_unpacked(&self, manifest: &Manifest, raw: &[u8], fresh: &[Digest]) -> Result<Digest> {
        let mut made = Vec::new();
        let res = (|| {
            let cfg = self.config(&manifest.config.digest)?;
            let blobs: Vec<Digest> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
            let names: Vec<String> = blobs.iter().map(|b| b.to_string()).collect();
            self.unpack_chain(&cfg.rootfs.diff_ids, &blobs, &names, &mut made, &|_, e| e)?;
            debug_assert!(
                Manifest::parse(raw).ok().as_ref() == Some(manifest),
                "raw is the manifest's own bytes"
            );
            self.record_manifest(manifest, raw, None)
        })();
        if res.is_err() {
            self.discard(fresh, &made);
        }
        res
    }

    /// Point `reference` (normalized) at image `id`.
    pub fn tag(&self, id: &Digest, reference: &str) -> Result<String> {
        let r = Reference::parse(reference)?;
        if r.digest.is_some() {
            return Err(Error::InvalidReference(format!("{reference}: cannot tag with a digest")));
        }
        let key = r.tagged();
        let mut idx = self.index.lock().unwrap();
        if !idx.images.contains_key(id.hex()) {
            return Err(Error::NotFound(id.to_string()));
        }
        idx.tags.insert(key.clone(), id.clone());
        self.save(&idx)?;
        Ok(key)
    }

    /// Remove a tag; returns the image it pointed at.
    pub fn untag(&self, reference: &str) -> Result<Digest> {
        let r = Reference::parse(reference)?;
        let key = r.tagged();
        let mut idx = self.index.lock().unwrap();
        let id = idx.tags.remove(&key).ok_or_else(|| Error::NotFound(reference.to_string()))?;
        self.save(&idx)?;
        Ok(id)
    }

    /// Tags pointing at an image.
    pub fn tags_of(&self, id: &Digest) -> Vec<String> {
        let idx = self.index.lock().unwrap();
        idx.tags.iter().filter(|(_, v)| *v == id).map(|(k, _)| k.clone()).collect()
    }

    /// Resolve a name, `name:tag`, full ID or unique ID prefix to an image ID.
    pub fn resolve(&self, s: &str) -> Result<Digest> {
        let idx = self.index.lock().unwrap();
        let hexpart = s.strip_prefix("sha256:").unwrap_or(s);
        if hexpart.len() == 64 && idx.images.contains_key(hexpart) {
            return Ok(Digest::parse(hexpart)?);
        }
        if let Ok(r) = Reference::parse(s) {
            if r.digest.is_none() {
                if let Some(id) = idx.tags.get(&r.tagged()) {
                    return Ok(id.clone());
                }
            } else if let Some(d) = &r.digest {
                for (id, rec) in &idx.images {
                    if rec.repo_digests.iter().any(|rd| rd == &format!("{}@{}", r.repo, d)) || rec.manifest.to_string() == *d {
                        return Ok(Digest::parse(id)?);
                    }
                }
            }
        }
        if !hexpart.is_empty() && hexpart.len() < 64 && hexpart.bytes().all(|b| b.is_ascii_hexdigit()) {
            let m: Vec<_> = idx.images.keys().filter(|k| k.starts_with(hexpart)).collect();
            if m.len() == 1 {
                return Ok(Digest::parse(m[0])?);
            }
        }
        Err(Error::NotFound(s.to_string()))
    }

    pub fn record(&self, id: &Digest) -> Result<ImageRecord> {
        self.index
            .lock()
            .unwrap()
            .images
            .get(id.hex())
            .cloned()
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    pub fn set_repo_digest(&self, id: &Digest, repo_digest: String) -> Result<()> {
        let mut idx = self.index.lock().unwrap();
        if let Some(r) = idx.images.get_mut(id.hex()) {
            if !r.repo_digests.contains(&repo_digest) {
                r.repo_digests.push(repo_digest);
            }
        }
        self.save(&idx)
    }

    pub fn config(&self, id: &Digest) -> Result<ImageConfig> {
        Ok(ImageConfig::parse(&self.content.read(id)?)?)
    }

    pub fn manifest(&self, id: &Digest) -> Result<Manifest> {
        let rec = self.record(id)?;
        Ok(Manifest::parse(&self.content.read(&rec.manifest)?)?)
    }

    pub fn list(&self) -> Vec<ImageSummary> {
        let idx = self.index.lock().unwrap();
        idx.images
            .iter()
            .filter_map(|(hex, rec)| {
                let id = Digest::parse(hex).ok()?;
                let tags = idx.tags.iter().filter(|(_, v)| **v == id).map(|(k, _)| k.clone()).collect();
                Some(ImageSummary {
                    id,
                    record: rec.clone(),
                    tags,
                })
            })
            .collect()
    }

    /// Delete an image record and any blobs and layer directories no other image uses. Tags pointing
    /// at it are removed.
    pub fn delete(&self, id: &Digest) -> Result<()> {
        let mut idx = self.index.lock().unwrap();
        let Some(rec) = idx.images.remove(id.hex()) else {
            return Err(Error::NotFound(id.to_string()));
        };
        idx.tags.retain(|_, v| v != id);
        self.save(&idx)?;
        // Garbage: blobs and layers of this image not referenced by the others.
        let (keep_blobs, keep_chains) = self.in_use(&idx);
        drop(idx);
        if let Ok(m) = self.content.read(&rec.manifest).and_then(|b| Manifest::parse(&b)) {
            if let Ok(c) = self.content.read(&m.config.digest).and_then(|b| ImageConfig::parse(&b)) {
                for ch in chain_ids(&c.rootfs.diff_ids) {
                    if !keep_chains.contains(&ch) {
                        let _ = fs::remove_dir_all(self.layer_dir(&ch));
                    }
                }
            }
            for d in m.layers.iter().map(|l| &l.digest).chain([&m.config.digest]) {
                if !keep_blobs.contains(d) {
                    let _ = self.content.remove(d);
                }
            }
        }
        if !keep_blobs.contains(&rec.manifest) {
            let _ = self.content.remove(&rec.manifest);
        }
        self.remove_referrer_blobs(&rec.referrers, &keep_blobs);
        Ok(())
    }

    /// Remove the manifests and blobs of referrers `gone` that nothing in `keep` holds.
    fn remove_referrer_blobs(&self, gone: &[Descriptor], keep: &BTreeSet<Digest>) {
        for d in gone {
            if keep.contains(&d.digest) {
                continue;
            }
            if let Ok(m) = self.content.read(&d.digest).and_then(|b| Manifest::parse(&b)) {
                for b in m.layers.iter().map(|l| &l.digest).chain([&m.config.digest]) {
                    if !keep.contains(b) {
                        let _ = self.content.remove(b);
                    }
                }
            }
            let _ = self.content.remove(&d.digest);
        }
    }

    /// Attach `data` (of media type `artifact_type`) to image `id` as an OCI referrer: an
    /// artifact manifest whose `subject` is the image's manifest, its one layer the data, its
    /// config the empty descriptor, as OCI 1.1 defines artifacts. A referrer of the same artifact
    /// type attached before (by an earlier build of the same image) is replaced. Returns the
    /// referrer's descriptor (as the referrers API lists it).
    pub fn attach(&self, id: &Digest, artifact_type: &str, data: &[u8], annotations: BTreeMap<String, String>) -> Result<Descriptor> {
        let rec = self.record(id)?;
        let subject_bytes = self.content.read(&rec.manifest)?;
        let subject_type = Manifest::parse(&subject_bytes)?
            .media_type
            .unwrap_or_else(|| MEDIA_OCI_MANIFEST.into());
        let empty = self.content.put(b"{}")?;
        let blob = self.content.put(data)?;
        let mut extra = BTreeMap::new();
        extra.insert("artifactType".to_string(), serde_json::Value::String(artifact_type.into()));
        extra.insert(
            "subject".to_string(),
            serde_json::to_value(Descriptor::new(&subject_type, rec.manifest.clone(), subject_bytes.len() as u64)).expect("descriptor"),
        );
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_OCI_MANIFEST.into()),
            config: Descriptor::new(MEDIA_OCI_EMPTY, empty, 2),
            layers: vec![Descriptor::new(artifact_type, blob, data.len() as u64)],
            annotations: Some(annotations).filter(|a| !a.is_empty()),
            extra,
        };
        let bytes = serde_json::to_vec(&m).expect("manifest serializes");
        self.record_referrer(id, &bytes, &rec.manifest, true)
    }

    /// Record the referrer manifest `bytes` (its blobs already stored) of image `id`, as a pull
    /// brings it: its subject must be `subject`, the image's manifest (as the registry has it).
    /// With `replace`, referrers of the same artifact type go.
    pub fn record_referrer(&self, id: &Digest, bytes: &[u8], subject_digest: &Digest, replace: bool) -> Result<Descriptor> {
        let m = Manifest::parse(bytes)?;
        let artifact_type = m
            .extra
            .get("artifactType")
            .and_then(|v| v.as_str())
            .map(String::from)
            .unwrap_or_else(|| m.config.media_type.clone());
        let subject: Option<Descriptor> = m.extra.get("subject").and_then(|v| serde_json::from_value(v.clone()).ok());
        if subject.as_ref().map(|s| &s.digest) != Some(subject_digest) {
            return Err(Error::InvalidArchive(format!(
                "referrer manifest {}: its subject is not image {id}'s manifest",
                Digest::of(bytes)
            )));
        }
        for b in m.layers.iter().map(|l| &l.digest).chain([&m.config.digest]) {
            if !self.content.contains(b) {
                return Err(Error::Oci(oci::Error::BlobNotFound(b.to_string())));
            }
        }
        let digest = self.content.put(bytes)?;
        let mut d = Descriptor::new(MEDIA_OCI_MANIFEST, digest.clone(), bytes.len() as u64);
        d.annotations = m.annotations.clone();
        d.extra
            .insert("artifactType".into(), serde_json::Value::String(artifact_type.clone()));
        let mut idx = self.index.lock().unwrap();
        let Some(r) = idx.images.get_mut(id.hex()) else {
            return Err(Error::NotFound(id.to_string()));
        };
        let mut gone = Vec::new();
        r.referrers.retain(|x| {
            let same = x.digest == digest || (replace && x.extra.get("artifactType").and_then(|v| v.as_str()) == Some(&artifact_type));
            if same && x.digest != digest {
                gone.push(x.clone());
            }
            !same
        });
        r.referrers.push(d.clone());
        self.save(&idx)?;
        let (keep, _) = self.in_use(&idx);
        drop(idx);
        self.remove_referrer_blobs(&gone, &keep);
        Ok(d)
    }

    /// The referrers of image `id`, optionally only those of one artifact type.
    pub fn referrers(&self, id: &Digest, artifact_type: Option<&str>) -> Result<Vec<Descriptor>> {
        let rec = self.record(id)?;
        Ok(rec
            .referrers
            .into_iter()
            .filter(|d| artifact_type.is_none_or(|t| d.extra.get("artifactType").and_then(|v| v.as_str()) == Some(t)))
            .collect())
    }

    /// The data of a referrer attached by [`Self::attach`] (its first layer).
    pub fn referrer_data(&self, referrer: &Descriptor) -> Result<Vec<u8>> {
        let m = Manifest::parse(&self.content.read(&referrer.digest)?)?;
        let l = m
            .layers
            .first()
            .ok_or_else(|| Error::InvalidArchive(format!("referrer {} has no layer", referrer.digest)))?;
        Ok(self.content.read(&l.digest)?)
    }

    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join("layers").join(chain.hex())
    }

    /// Make sure every layer of an image is unpacked; return the overlay lower dirs, topmost first.
    pub fn lower_dirs(&self, id: &Digest) -> Result<Vec<PathBuf>> {
        let cfg = self.config(id)?;
        let manifest = self.manifest(id)?;
        let blobs: Vec<Digest> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
        self.lower_dirs_of(&cfg.rootfs.diff_ids, &blobs)
    }

    /// Like [`Self::lower_dirs`] for layers given directly (diff IDs and their blobs, bottom first).
    pub fn lower_dirs_of(&self, diff_ids: &[Digest], blobs: &[Digest]) -> Result<Vec<PathBuf>> {
        let names: Vec<String> = blobs.iter().map(|b| b.to_string()).collect();
        self.unpack_chain(diff_ids, blobs, &names, &mut Vec::new(), &|_, e| e)?;
        let mut dirs: Vec<PathBuf> = chain_ids(diff_ids).iter().map(|c| self.layer_dir(c)).collect();
        dirs.reverse();
        Ok(dirs)
    }

    /// Take `dir`, a directory already holding exactly the unpacked content of the layer with chain
    /// ID `chain` (a builder's overlay upper dir), as that layer's directory, saving an unpack. It is
    /// moved if the layer has no directory yet and `dir` is on the same filesystem; otherwise left
    /// alone (the layer is unpacked from its blob when first needed).
    pub fn adopt_layer(&self, chain: &Digest, dir: &Path) {
        let _g = self.unpack_lock.lock().unwrap();
        let target = self.layer_dir(chain);
        if !target.exists() {
            let _ = fs::rename(dir, &target);
        }
    }

    /// Unpack the layers `blobs` (with diff IDs `diff_ids`, bottom first) that have no directory
    /// yet into their chain directories, each within the limits (`names` name them in errors; the
    /// image limit counts the layers this call expands). The chain IDs of the directories made are
    /// pushed to `made`; a layer that fails leaves no directory. `wrap` rewrites an error that is
    /// not a limit's, given the layer's name.
    pub(crate) fn unpack_chain(
        &self,
        diff_ids: &[Digest],
        blobs: &[Digest],
        names: &[String],
        made: &mut Vec<Digest>,
        wrap: &dyn Fn(&str, Error) -> Error,
    ) -> Result<()> {
        if diff_ids.len() != blobs.len() || names.len() != blobs.len() {
            return Err(Error::BadEntry {
                entry: "manifest".into(),
                reason: "layer count differs from the config's diff_ids".into(),
            });
        }
        let _g = self.unpack_lock.lock().unwrap();
        let mut image_used = 0u64;
        for (chain, ((diff_id, blob), name)) in chain_ids(diff_ids).iter().zip(diff_ids.iter().zip(blobs).zip(names)) {
            let dir = self.layer_dir(chain);
            if dir.is_dir() {
                continue;
            }
            let tmp = self.root.join("layers").join(format!("tmp-{}", chain.hex()));
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp).ctx("create", &tmp)?;
            let meter = Meter::new(self.limits, Subject::Layer(name.clone()), image_used);
            let res = (|| {
                let f = self.content.open_blob(blob)?;
                let plain = meter.output(unpack::decompress(meter.input(f)).map_err(Error::Archive)?);
                let mut hr = oci::digest::HashingReader::new(plain);
                unpack::unpack_layer_metered(&mut hr, &tmp, &meter)?;
                // Drain the tar's trailing padding so the digest covers the whole stream.
                std::io::copy(&mut hr, &mut std::io::sink()).map_err(Error::Archive)?;
                let (got, _) = hr.finish();
                if got != *diff_id {
                    return Err(Error::Oci(oci::Error::DigestMismatch {
                        expected: diff_id.to_string(),
                        actual: got.to_string(),
                    }));
                }
                Ok(())
            })();
            let res = match (res, meter.tripped()) {
                (Err(_), Some(t)) | (Ok(()), Some(t)) => Err(Error::LimitExceeded(t)),
                (Err(e), None) => Err(wrap(name, e)),
                (Ok(()), None) => Ok(()),
            };
            if let Err(e) = res {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
            fs::rename(&tmp, &dir).ctx("rename", &dir)?;
            made.push(chain.clone());
            image_used = image_used.saturating_add(meter.expanded());
        }
        Ok(())
    }
}
