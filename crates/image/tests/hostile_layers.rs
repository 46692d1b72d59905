//! Hostile layer tars: whatever an archive contains, unpacking it never creates, changes or links
//! anything outside the layer directory, never panics, and a refused layer leaves nothing behind in the
//! image store.
//!
//! The tars are written with raw headers (names and link names set byte for byte), since the `tar`
//! crate's builder refuses to write most of these entries itself. Run as root: ownership, device
//! nodes and `trusted.*` xattrs need it.

use std::ffi::CString;
use std::fs;
use std::io::Cursor;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use image::unpack::{unpack_layer, UnpackStats};
use image::ImageStore;
use tar::{EntryType, Header};

const SENTINEL: &[u8] = b"untouched";

/// A layer directory with a sibling `outside` directory holding a sentinel file.
struct Sandbox {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    layer: PathBuf,
    outside: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let layer = base.join("layer");
        let outside = base.join("outside");
        fs::create_dir(&layer).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("sentinel"), SENTINEL).unwrap();
        Sandbox {
            _tmp: tmp,
            base,
            layer,
            outside,
        }
    }

    fn unpack(&self, tar: &[u8]) -> image::Result<UnpackStats> {
        unpack_layer(Cursor::new(tar), &self.layer)
    }

    /// Nothing appeared next to the layer dir, and `outside` holds just the unchanged sentinel.
    fn assert_contained(&self) {
        let mut names: Vec<_> = fs::read_dir(&self.base).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["layer", "outside"], "something was created next to the layer");
        let inside: Vec<_> = fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(inside, ["sentinel"], "something was created in the outside directory");
        let md = fs::symlink_metadata(self.outside.join("sentinel")).unwrap();
        assert!(md.is_file());
        assert_eq!(md.nlink(), 1, "the sentinel was hardlinked");
        assert_eq!(md.mode() & 0o7777, 0o644);
        assert_eq!(fs::read(self.outside.join("sentinel")).unwrap(), SENTINEL);
    }
}

/// A tar written entry by entry with raw GNU headers.
#[derive(Default)]
struct RawTar {
    out: Vec<u8>,
}

fn set_bytes(field: &mut [u8], value: &[u8]) {
    assert!(value.len() <= field.len(), "name too long for a raw header field");
    field.fill(0);
    field[..value.len()].copy_from_slice(value);
}

impl RawTar {
    fn header(name: &[u8], kind: EntryType, size: u64, link: &[u8]) -> Header {
        let mut h = Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            set_bytes(&mut g.name, name);
            set_bytes(&mut g.linkname, link);
        }
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    fn push(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend_from_slice(&vec![0u8; pad]);
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.push(Self::header(name.as_bytes(), EntryType::Regular, data.len() as u64, b""), data)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.push(Self::header(name.as_bytes(), EntryType::Directory, 0, b""), b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.push(Self::header(name.as_bytes(), EntryType::Symlink, 0, target.as_bytes()), b"")
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.push(Self::header(name.as_bytes(), EntryType::Link, 0, target.as_bytes()), b"")
    }

    fn device(&mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), kind, 0, b"");
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, b"")
    }

    /// A GNU long-name record followed by a regular file, for names over 100 bytes.
    fn long_file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut long = name.as_bytes().to_vec();
        long.push(0);
        self.push(
            Self::header(b"././@LongLink", EntryType::GNULongName, long.len() as u64, b""),
            &long,
        );
        self.push(Self::header(b"placeholder", EntryType::Regular, data.len() as u64, b""), data)
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }
}

fn tar() -> RawTar {
    RawTar::default()
}

fn getxattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = CString::new(key).unwrap();
    let mut buf = vec![0u8; 64];
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

#[test]
fn dotdot_entries_are_refused() {
    for name in ["../escape", "a/../../escape", "./../outside/sentinel", "a/b/../../../outside/new"] {
        let s = Sandbox::new();
        let err = s.unpack(&tar().file(name, b"pwned").finish()).unwrap_err();
        assert!(err.to_string().contains(".."), "{name}: {err}");
        s.assert_contained();
    }
}

#[test]
fn dotdot_in_a_gnu_long_name_is_refused() {
    let s = Sandbox::new();
    let name = format!("{}/../../../outside/sentinel", "d".repeat(120));
    assert!(s.unpack(&tar().long_file(&name, b"pwned").finish()).is_err());
    s.assert_contained();
    // A harmless long name works.
    let ok = format!("{}/file", "d".repeat(120));
    s.unpack(&tar().long_file(&ok, b"fine").finish()).unwrap();
    assert_eq!(fs::read(s.layer.join(&ok)).unwrap(), b"fine");
}

#[test]
fn absolute_paths_land_inside() {
    let s = Sandbox::new();
    let host_path = s.outside.join("sentinel");
    let t = tar()
        .file("/abs/path", b"inside")
        .file(host_path.to_str().unwrap(), b"pwned")
        .finish();
    s.unpack(&t).unwrap();
    assert_eq!(fs::read(s.layer.join("abs/path")).unwrap(), b"inside");
    // The host path of the sentinel was recreated below the layer, not written to.
    assert_eq!(fs::read(s.layer.join(host_path.strip_prefix("/").unwrap())).unwrap(), b"pwned");
    s.assert_contained();
}

#[test]
fn symlink_to_root_is_followed_only_inside() {
    let s = Sandbox::new();
    let host_rel = s.outside.join("sentinel");
    let host_rel = host_rel.strip_prefix("/").unwrap().to_str().unwrap();
    let t = tar()
        .symlink("evil", "/")
        .file("evil/file", b"a")
        .file(&format!("evil/{host_rel}"), b"pwned")
        .finish();
    match s.unpack(&t) {
        Ok(_) => {
            assert_eq!(fs::read(s.layer.join("file")).unwrap(), b"a");
            assert_eq!(fs::read(s.layer.join(host_rel)).unwrap(), b"pwned");
        }
        Err(e) => eprintln!("refused: {e}"),
    }
    // The symlink itself is kept as written (it only means something inside the container).
    assert_eq!(fs::read_link(s.layer.join("evil")).unwrap(), Path::new("/"));
    s.assert_contained();
}

#[test]
fn symlink_to_parent_dirs_is_followed_only_inside() {
    for target in ["../../outside", "../outside", "../../../../../../../../"] {
        let s = Sandbox::new();
        let t = tar()
            .symlink("evil", target)
            .file("evil/file", b"pwned")
            .file("evil/sentinel", b"pwned")
            .dir("evil/newdir")
            .finish();
        if s.unpack(&t).is_ok() {
            // Whatever got created is below the layer.
            assert!(!s.outside.join("file").exists());
        }
        s.assert_contained();
    }
}

#[test]
fn symlinked_parent_directories_stay_inside() {
    // A chain: a -> b, b -> /  and a file through both; a dir symlink replaced by a real dir.
    let s = Sandbox::new();
    let outside = s.outside.to_str().unwrap().to_string();
    let t = tar()
        .symlink("b", "/")
        .symlink("a", "b")
        .file(&format!("a/{}/sentinel", outside.trim_start_matches('/')), b"pwned")
        .symlink("d", &outside)
        .file("d/sentinel", b"pwned")
        .dir("d")
        .file("d/new", b"inside")
        .finish();
    let _ = s.unpack(&t);
    s.assert_contained();
    if s.layer.join("d").is_dir() && !s.layer.join("d").is_symlink() {
        assert_eq!(fs::read(s.layer.join("d/new")).unwrap(), b"inside");
    }
}

#[test]
fn final_component_symlinks_are_replaced_not_followed() {
    let s = Sandbox::new();
    let sentinel = s.outside.join("sentinel");
    let t = tar()
        .symlink("f", sentinel.to_str().unwrap())
        .file("f", b"replaced")
        .symlink("g", "../outside/sentinel")
        .file("g", b"replaced")
        .finish();
    s.unpack(&t).unwrap();
    assert!(fs::symlink_metadata(s.layer.join("f")).unwrap().is_file());
    assert_eq!(fs::read(s.layer.join("g")).unwrap(), b"replaced");
    s.assert_contained();
}

#[test]
fn hardlinks_out_of_the_layer_are_refused() {
    let s = Sandbox::new();
    let sentinel = s.outside.join("sentinel");
    for target in ["/etc/passwd", "../outside/sentinel", sentinel.to_str().unwrap(), "missing"] {
        let r = s.unpack(&tar().hardlink("h", target).finish());
        match r {
            Err(_) => assert!(fs::symlink_metadata(s.layer.join("h")).is_err(), "{target}: a link was left behind"),
            // A link resolved inside the layer: only possible if the target exists there.
            Ok(_) => panic!("hardlink to {target} succeeded without a target in the layer"),
        }
        s.assert_contained();
    }
    // Through a symlinked parent: resolved inside, where there is no such file.
    let t = tar().symlink("up", "../outside").hardlink("h", "up/sentinel").finish();
    assert!(s.unpack(&t).is_err());
    s.assert_contained();
    // A hardlink to a symlink pointing out links the symlink, not its target.
    let t = tar().symlink("s", sentinel.to_str().unwrap()).hardlink("h2", "s").finish();
    s.unpack(&t).unwrap();
    assert!(fs::symlink_metadata(s.layer.join("h2")).unwrap().file_type().is_symlink());
    s.assert_contained();
    // A hardlink to a file inside works.
    let t = tar().file("etc/passwd", b"root:x:0:0").hardlink("h3", "/etc/passwd").finish();
    s.unpack(&t).unwrap();
    assert_eq!(
        fs::symlink_metadata(s.layer.join("h3")).unwrap().ino(),
        fs::symlink_metadata(s.layer.join("etc/passwd")).unwrap().ino()
    );
    s.assert_contained();
}

#[test]
fn device_nodes_are_skipped() {
    let s = Sandbox::new();
    let t = tar()
        .device("dev/null", EntryType::Char, 1, 3)
        .device("dev/sda", EntryType::Block, 8, 0)
        .device("dev/mem", EntryType::Char, 1, 1)
        .finish();
    let stats = s.unpack(&t).unwrap();
    assert_eq!(stats.skipped_devices, 3);
    for n in ["dev/null", "dev/sda", "dev/mem"] {
        assert!(fs::symlink_metadata(s.layer.join(n)).is_err(), "{n} was created");
    }
    s.assert_contained();
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let s = Sandbox::new();
    let t = tar()
        .file("foo", b"lower")
        .dir("d")
        .file("d/old", b"x")
        .file(".wh.foo", b"")
        .file("d/.wh..wh..opq", b"")
        .file("d/.wh.gone", b"")
        .finish();
    s.unpack(&t).unwrap();
    let md = fs::symlink_metadata(s.layer.join("foo")).unwrap();
    assert!(md.file_type().is_char_device(), "foo is not a whiteout device");
    assert_eq!((md.rdev(), md.uid(), md.gid()), (0, 0, 0));
    let md = fs::symlink_metadata(s.layer.join("d/gone")).unwrap();
    assert!(md.file_type().is_char_device() && md.rdev() == 0);
    assert!(!s.layer.join(".wh.foo").exists() && !s.layer.join("d/.wh..wh..opq").exists());
    assert_eq!(getxattr(&s.layer.join("d"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert!(getxattr(&s.layer, "trusted.overlay.opaque").is_none());
    s.assert_contained();
}

#[test]
fn hostile_whiteouts_stay_inside() {
    let s = Sandbox::new();
    // A whiteout through a symlinked parent removes nothing outside.
    let t = tar().symlink("o", "../outside").file("o/.wh.sentinel", b"").finish();
    let _ = s.unpack(&t);
    s.assert_contained();
    // An opaque marker through a symlink to / marks a directory inside (or is refused), never outside.
    let t = tar()
        .symlink("r", "/")
        .file(&format!("r/{}/.wh..wh..opq", s.outside.to_str().unwrap()), b"")
        .finish();
    let _ = s.unpack(&t);
    assert!(getxattr(&s.outside, "trusted.overlay.opaque").is_none());
    s.assert_contained();
    for name in [".wh..", ".wh.", "a/.wh.."] {
        let s = Sandbox::new();
        assert!(s.unpack(&tar().file(name, b"").finish()).is_err(), "{name}");
        s.assert_contained();
    }
}

#[test]
fn truncated_and_garbage_tars_error_without_panicking() {
    let full = tar().file("a", &[7u8; 3000]).file("b", b"bbb").finish();
    for cut in [100, 512, 700, 1536, 2000, 3584 + 100] {
        let s = Sandbox::new();
        assert!(s.unpack(&full[..cut]).is_err(), "cut at {cut}");
        s.assert_contained();
    }
    // A header with a broken checksum.
    let mut bad = full.clone();
    bad[0] ^= 0xff;
    assert!(Sandbox::new().unpack(&bad).is_err());
    // Random garbage.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    assert!(Sandbox::new().unpack(&garbage).is_err());
}

fn assert_store_empty(root: &Path, store: &ImageStore) {
    assert_eq!(store.content().list().unwrap(), vec![], "a blob was left behind");
    assert_eq!(
        fs::read_dir(root.join("layers")).unwrap().count(),
        0,
        "a layer directory was left behind"
    );
    assert_eq!(
        fs::read_dir(root.join("blobs/ingest")).unwrap().count(),
        0,
        "an ingest file was left behind"
    );
}

#[test]
fn import_layer_of_a_bad_tar_leaves_nothing_behind() {
    let s = Sandbox::new();
    let root = s.base.join("store");
    let store = ImageStore::open(&root).unwrap();
    let full = tar().file("a", &[7u8; 3000]).file("b", b"bbb").finish();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", tar().file("ok", b"1").file("../../escape", b"x").finish()),
        ("hardlink out", tar().file("ok", b"1").hardlink("h", "/etc/passwd").finish()),
        ("bad whiteout", tar().file(".wh..", b"").finish()),
        ("truncated", full[..2000].to_vec()),
        ("truncated at end", full[..3584 + 100].to_vec()),
    ];
    for (what, data) in cases {
        assert!(store.import_layer(Cursor::new(data.clone())).is_err(), "{what}");
        assert_store_empty(&root, &store);
        // Gzipped, too.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &data).unwrap();
        assert!(store.import_layer(Cursor::new(gz.finish().unwrap())).is_err(), "{what} (gzip)");
        assert_store_empty(&root, &store);
    }
    // A truncated gzip stream.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &full).unwrap();
    let gz = gz.finish().unwrap();
    assert!(store.import_layer(Cursor::new(gz[..gz.len() / 2].to_vec())).is_err());
    assert_store_empty(&root, &store);

    // Nothing escaped the store's layer directories either.
    let mut names: Vec<_> = fs::read_dir(&s.base).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["layer", "outside", "store"]);
    s.assert_contained_except_store();
}

impl Sandbox {
    fn assert_contained_except_store(&self) {
        let inside: Vec<_> = fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(inside, ["sentinel"]);
        assert_eq!(fs::read(self.outside.join("sentinel")).unwrap(), SENTINEL);
    }
}
