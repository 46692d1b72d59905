//! `docker save`: a docker-archive that is also an OCI image layout, written deterministically.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::PathBuf;

use oci::digest::HashingReader;
use oci::spec::{Descriptor, Index, Manifest, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST};
use oci::Digest;

use super::{blob_name, tar_header, ManifestItem, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, OCI_LAYOUT};
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::store::ImageStore;

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
                (ANNOTATION_IMAGE_NAME.to_string(), r.full_name()),
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
