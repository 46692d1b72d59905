//! Hostile layer tars: whatever an archive contains, unpacking it never creates, changes or links
//! anything outside the layer directory, never panics, and a refused layer leaves nothing behind in the
//! image store.
//!
//! The tars are written with raw headers (names and link names set byte for byte), since the `tar`
//! crate's builder refuses to write most of these entries itself. Run as root: ownership, device
//! nodes and `trusted.*` xattrs need it.
//!
//! Every case checks the one outcome it must have: refused with its error (and nothing outside
//! touched), or unpacked with exactly the listed files in the layer (and nothing outside touched).

use std::ffi::CString;
use std::fs;
use std::io::Cursor;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use image::unpack::{unpack_layer, UnpackStats};
use image::{Error, ImageStore};
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

    /// The host path of the sentinel.
    fn sentinel(&self) -> String {
        self.outside.join("sentinel").to_str().unwrap().to_string()
    }

    /// The host path of `outside` as a path below the layer (`tmp/.tmpXXXX/outside`): where an
    /// entry naming that host path lands.
    fn outside_in_layer(&self) -> String {
        self.outside.strip_prefix("/").unwrap().to_str().unwrap().to_string()
    }

    /// The [`listing`] lines of the directories an entry below [`Self::outside_in_layer`] creates in
    /// the layer: each component of the host path of `outside`.
    fn outside_dirs_in_layer(&self) -> Vec<String> {
        let mut dirs = Vec::new();
        let mut p = PathBuf::new();
        for c in Path::new(&self.outside_in_layer()).components() {
            p.push(c);
            dirs.push(format!("{}/", p.display()));
        }
        dirs
    }

    /// The layer's contents, as [`listing`] gives them.
    fn listing(&self) -> Vec<String> {
        listing(&self.layer)
    }
}

/// Everything below `root`, sorted, one line each: `dir/`, `file = content`, `link -> target`,
/// `name: whiteout` (a 0:0 character device), `name: fifo` or `name: other`.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            out.push(if ft.is_symlink() {
                format!("{rel} -> {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                todo.push(p.clone());
                format!("{rel}/")
            } else if ft.is_file() {
                format!("{rel} = {}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
            } else if ft.is_char_device() && md.rdev() == 0 {
                format!("{rel}: whiteout")
            } else if ft.is_fifo() {
                format!("{rel}: fifo")
            } else {
                format!("{rel}: other")
            });
        }
    }
    out.sort();
    out
}

/// `lines` as owned strings, sorted (as [`listing`] gives them).
fn lines<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut v: Vec<String> = items.into_iter().map(|l| l.as_ref().to_string()).collect();
    v.sort();
    v
}

/// The unpack was refused as an unsafe or malformed entry: exactly `entry`, for exactly `reason`.
#[track_caller]
fn assert_bad_entry<T: std::fmt::Debug>(res: image::Result<T>, entry: &str, reason: &str) {
    match res {
        Err(Error::BadEntry { entry: e, reason: r }) => assert_eq!((e.as_str(), r.as_str()), (entry, reason)),
        other => panic!("expected entry {entry:?} to be refused ({reason}), got {other:?}"),
    }
}

/// The unpack was refused because the parent directory of `entry` could not be opened: it is
/// reached through a symlink that, resolved inside the layer, names a directory the layer lacks.
#[track_caller]
fn assert_missing_parent<T: std::fmt::Debug>(res: image::Result<T>, entry: &str) {
    match res {
        Err(Error::Io { op, path, source }) => {
            assert_eq!((op, path.as_path()), ("unpack", Path::new(entry)));
            assert_eq!(source.to_string(), "open: ENOENT: No such file or directory");
        }
        other => panic!("expected {entry:?} to be refused for its missing parent, got {other:?}"),
    }
}

/// The unpack failed reading the tar stream itself (truncated, corrupt), with `message`.
#[track_caller]
fn assert_archive_error<T: std::fmt::Debug>(res: image::Result<T>, message: &str) {
    match res {
        Err(Error::Archive(e)) => assert_eq!(e.to_string(), message),
        other => panic!("expected the tar stream to be refused ({message}), got {other:?}"),
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
        assert_bad_entry(s.unpack(&tar().file(name, b"pwned").finish()), name, "path contains '..'");
        assert_eq!(s.listing(), Vec::<String>::new(), "{name}");
        s.assert_contained();
    }
}

#[test]
fn dotdot_in_a_gnu_long_name_is_refused() {
    let s = Sandbox::new();
    let name = format!("{}/../../../outside/sentinel", "d".repeat(120));
    assert_bad_entry(s.unpack(&tar().long_file(&name, b"pwned").finish()), &name, "path contains '..'");
    assert_eq!(s.listing(), Vec::<String>::new());
    s.assert_contained();
    // A harmless long name works.
    let dir = "d".repeat(120);
    let ok = format!("{dir}/file");
    s.unpack(&tar().long_file(&ok, b"fine").finish()).unwrap();
    assert_eq!(s.listing(), lines([format!("{dir}/"), format!("{ok} = fine")]));
    s.assert_contained();
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
    // The host path of the sentinel was recreated below the layer, not written to.
    let mut want = vec!["abs/".to_string(), "abs/path = inside".into()];
    want.extend(s.outside_dirs_in_layer());
    want.push(format!("{}/sentinel = pwned", s.outside_in_layer()));
    assert_eq!(s.listing(), lines(want));
    s.assert_contained();
}

#[test]
fn symlink_to_root_is_followed_only_inside() {
    let s = Sandbox::new();
    let host_rel = format!("{}/sentinel", s.outside_in_layer());
    let t = tar()
        .symlink("evil", "/")
        .file("evil/file", b"a")
        .file(&format!("evil/{host_rel}"), b"pwned")
        .finish();
    s.unpack(&t).unwrap();
    // `evil` is the layer root while unpacking: both files land below the layer. The symlink itself
    // is kept as written (it only means something inside the container).
    let mut want = vec!["evil -> /".to_string(), "file = a".into()];
    want.extend(s.outside_dirs_in_layer());
    want.push(format!("{host_rel} = pwned"));
    assert_eq!(s.listing(), lines(want));
    s.assert_contained();
}

#[test]
fn symlink_to_parent_dirs_is_followed_only_inside() {
    let t = |target: &str| {
        tar()
            .symlink("evil", target)
            .file("evil/file", b"pwned")
            .file("evil/sentinel", b"pwned")
            .dir("evil/newdir")
            .finish()
    };
    // Resolved inside the layer, `..` stops at its root: these name `/outside`, which the layer
    // lacks, so the first entry through the link is refused (and the host's `outside` untouched).
    for target in ["../../outside", "../outside"] {
        let s = Sandbox::new();
        assert_missing_parent(s.unpack(&t(target)), "evil/file");
        assert_eq!(s.listing(), lines([format!("evil -> {target}")]), "{target}");
        s.assert_contained();
    }
    // This one names the layer root itself: everything lands there.
    let target = "../../../../../../../../";
    let s = Sandbox::new();
    s.unpack(&t(target)).unwrap();
    assert_eq!(
        s.listing(),
        lines([
            format!("evil -> {target}"),
            "file = pwned".into(),
            "newdir/".into(),
            "sentinel = pwned".into()
        ])
    );
    s.assert_contained();
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
    s.unpack(&t).unwrap();
    // Both sentinels land on the layer's copy of the host path; `d` became a real directory.
    let mut want = vec!["a -> b".to_string(), "b -> /".into(), "d/".into(), "d/new = inside".into()];
    want.extend(s.outside_dirs_in_layer());
    want.push(format!("{}/sentinel = pwned", s.outside_in_layer()));
    assert_eq!(s.listing(), lines(want));
    s.assert_contained();
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
    assert_eq!(s.listing(), lines(["f = replaced", "g = replaced"]));
    s.assert_contained();
}

#[test]
fn hardlinks_out_of_the_layer_are_refused() {
    let s = Sandbox::new();
    let sentinel = s.sentinel();
    for target in ["/etc/passwd", sentinel.as_str(), "missing"] {
        let reason = format!("hardlink target {target} does not exist in the layer");
        assert_bad_entry(s.unpack(&tar().hardlink("h", target).finish()), "h", &reason);
        assert_eq!(s.listing(), Vec::<String>::new(), "{target}: a link was left behind");
        s.assert_contained();
    }
    // A target with `..` is refused as such (the error names the target, not the link).
    let target = "../outside/sentinel";
    assert_bad_entry(s.unpack(&tar().hardlink("h", target).finish()), target, "path contains '..'");
    assert_eq!(s.listing(), Vec::<String>::new());
    s.assert_contained();
    // Through a symlinked parent: resolved inside, where there is no such file.
    let s = Sandbox::new();
    let t = tar().symlink("up", "../outside").hardlink("h", "up/sentinel").finish();
    assert_bad_entry(s.unpack(&t), "h", "hardlink target up/sentinel does not exist in the layer");
    assert_eq!(s.listing(), lines(["up -> ../outside"]));
    s.assert_contained();
    // A hardlink to a symlink pointing out links the symlink, not its target.
    let s = Sandbox::new();
    let out = &s.sentinel();
    let t = tar().symlink("s", out).hardlink("h2", "s").finish();
    s.unpack(&t).unwrap();
    assert_eq!(s.listing(), lines([format!("h2 -> {out}"), format!("s -> {out}")]));
    assert_eq!(
        fs::symlink_metadata(s.layer.join("h2")).unwrap().ino(),
        fs::symlink_metadata(s.layer.join("s")).unwrap().ino()
    );
    s.assert_contained();
    // A hardlink to a file inside works.
    let s = Sandbox::new();
    let t = tar().file("etc/passwd", b"root:x:0:0").hardlink("h3", "/etc/passwd").finish();
    s.unpack(&t).unwrap();
    assert_eq!(s.listing(), lines(["etc/", "etc/passwd = root:x:0:0", "h3 = root:x:0:0"]));
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
    // Only their parent directory is made.
    assert_eq!(s.listing(), lines(["dev/"]));
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
    assert_eq!(s.listing(), lines(["d/", "d/gone: whiteout", "d/old = x", "foo: whiteout"]));
    let md = fs::symlink_metadata(s.layer.join("foo")).unwrap();
    assert_eq!((md.rdev(), md.uid(), md.gid()), (0, 0, 0));
    assert_eq!(getxattr(&s.layer.join("d"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert!(getxattr(&s.layer, "trusted.overlay.opaque").is_none());
    s.assert_contained();
}

#[test]
fn hostile_whiteouts_stay_inside() {
    // A whiteout through a symlinked parent: the link names `/outside` inside the layer, which is
    // not there, so it is refused and removes nothing.
    let s = Sandbox::new();
    let t = tar().symlink("o", "../outside").file("o/.wh.sentinel", b"").finish();
    assert_missing_parent(s.unpack(&t), "o/.wh.sentinel");
    assert_eq!(s.listing(), lines(["o -> ../outside"]));
    s.assert_contained();
    // An opaque marker through a symlink to / marks the layer's copy of the path, never the host's.
    let s = Sandbox::new();
    let t = tar()
        .symlink("r", "/")
        .file(&format!("r/{}/.wh..wh..opq", s.outside.to_str().unwrap()), b"")
        .finish();
    s.unpack(&t).unwrap();
    let mut want = vec!["r -> /".to_string()];
    want.extend(s.outside_dirs_in_layer());
    assert_eq!(s.listing(), lines(want));
    let marked = s.layer.join(s.outside_in_layer());
    assert_eq!(getxattr(&marked, "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert!(getxattr(&s.outside, "trusted.overlay.opaque").is_none());
    s.assert_contained();
    for (name, made) in [(".wh..", vec![]), (".wh.", vec![]), ("a/.wh..", vec!["a/"])] {
        let s = Sandbox::new();
        assert_bad_entry(s.unpack(&tar().file(name, b"").finish()), name, "malformed whiteout name");
        assert_eq!(s.listing(), lines(made), "{name}");
        s.assert_contained();
    }
}

#[test]
fn truncated_and_garbage_tars_error_without_panicking() {
    // "a" is a header and 3000 bytes of data (padded to 3584 in all), then "b".
    let full = tar().file("a", &[7u8; 3000]).file("b", b"bbb").finish();
    for (cut, message) in [
        (100, "failed to read entire block"),
        (512, "unexpected EOF during skip"),
        (700, "unexpected EOF during skip"),
        (1536, "unexpected EOF during skip"),
        (2000, "unexpected EOF during skip"),
        (3584 + 100, "failed to read entire block"),
    ] {
        let s = Sandbox::new();
        assert_archive_error(s.unpack(&full[..cut]), message);
        assert!(!s.layer.join("b").exists(), "cut at {cut}: an entry after the cut was made");
        s.assert_contained();
    }
    // A header with a broken checksum.
    let mut bad = full.clone();
    bad[0] ^= 0xff;
    let s = Sandbox::new();
    assert_archive_error(s.unpack(&bad), "archive header checksum mismatch");
    assert_eq!(s.listing(), Vec::<String>::new());
    // Random garbage.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let s = Sandbox::new();
    match s.unpack(&garbage) {
        Err(Error::Archive(e)) => assert!(e.to_string().starts_with("numeric field did not have utf-8 text"), "{e}"),
        other => panic!("expected garbage to be refused as a tar stream, got {other:?}"),
    }
    assert_eq!(s.listing(), Vec::<String>::new());
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
    /// How a case is refused.
    enum Refusal {
        BadEntry(&'static str, &'static str),
        Archive(&'static str),
    }
    let check = |res: image::Result<image::LayerInfo>, want: &Refusal| match want {
        Refusal::BadEntry(entry, reason) => assert_bad_entry(res, entry, reason),
        Refusal::Archive(message) => assert_archive_error(res, message),
    };
    let cases: Vec<(&str, Vec<u8>, Refusal)> = vec![
        (
            "dotdot",
            tar().file("ok", b"1").file("../../escape", b"x").finish(),
            Refusal::BadEntry("../../escape", "path contains '..'"),
        ),
        (
            "hardlink out",
            tar().file("ok", b"1").hardlink("h", "/etc/passwd").finish(),
            Refusal::BadEntry("h", "hardlink target /etc/passwd does not exist in the layer"),
        ),
        (
            "bad whiteout",
            tar().file(".wh..", b"").finish(),
            Refusal::BadEntry(".wh..", "malformed whiteout name"),
        ),
        ("truncated", full[..2000].to_vec(), Refusal::Archive("unexpected EOF during skip")),
        (
            "truncated at end",
            full[..3584 + 100].to_vec(),
            Refusal::Archive("failed to read entire block"),
        ),
    ];
    for (_, data, want) in &cases {
        check(store.import_layer(Cursor::new(data.clone())), want);
        assert_store_empty(&root, &store);
        // Gzipped, too.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, data).unwrap();
        check(store.import_layer(Cursor::new(gz.finish().unwrap())), want);
        assert_store_empty(&root, &store);
    }
    // A truncated gzip stream.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &full).unwrap();
    let gz = gz.finish().unwrap();
    assert_archive_error(
        store.import_layer(Cursor::new(gz[..gz.len() / 2].to_vec())),
        "incomplete deflate stream",
    );
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
