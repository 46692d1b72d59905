//! Unit tests of save and load.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use oci::spec::{
    host_arch, Descriptor, ImageConfig, Index, Manifest, Platform, RootFs, MEDIA_OCI_CONFIG, MEDIA_OCI_INDEX, MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_MANIFEST,
};

use super::*;
use crate::error::Error;
use crate::limits::{Limit, Limits, Subject};
use crate::store::{ImageStore, TMP_PREFIX};

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
    let raw = serde_json::to_vec(&manifest).unwrap();
    let err = s.add_manifest_unpacked(&manifest, &raw, &[layer.clone(), cfg_digest]).unwrap_err();
    assert!(
        matches!(&err, Error::LimitExceeded(e) if e.limit == Limit::LayerSize && e.subject == Subject::Layer(layer.to_string())),
        "{err:?}"
    );
    assert!(err.to_string().contains(&layer.to_string()), "{err}");
    assert_pristine(t.path(), &s);
}
