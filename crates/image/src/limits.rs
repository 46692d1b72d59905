//! Limits on what a layer may expand to, enforced while it streams (archive bombs).
//!
//! A gzip stream of zeros expands about a thousandfold, and a GNU sparse tar entry writes as many
//! zeros as its header claims from no data at all, so a small layer can fill the disk. Every layer
//! Berth takes in (`docker load`, `docker import`, a pull, the lazy unpack of a recorded image) is
//! read through a [`Meter`]: it counts the compressed bytes consumed, the decompressed tar stream,
//! the bytes the entries write and the entries, and fails the read or the write that crosses a
//! limit. The error ([`LimitExceeded`]) names the limit (as the daemon flag that sets it) and the
//! layer; nothing larger than the limit is ever written.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The limits; 0 in any of them means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest expanded size of one layer: its decompressed tar stream, and the bytes its files
    /// write (a sparse entry writes more than the stream holds). Default 16 GiB: the largest layers
    /// of real images (CUDA and PyTorch toolkits, a few-billion-parameter model baked in) are
    /// 5–10 GiB, while a bomb is unbounded.
    pub layer_size: u64,
    /// Largest sum of the expanded sizes of the layers one load or pull writes for one image
    /// (layers already unpacked cost nothing and are not counted). Default 64 GiB: the largest
    /// public images (ML toolkits) are 20–30 GiB.
    pub image_size: u64,
    /// Most tar entries in one layer (an inode bomb of empty files is cheap to compress). Default
    /// 1,000,000: a full TeX Live or a large Python/conda environment is 100,000–300,000 files.
    pub layer_entries: u64,
    /// Largest expansion ratio, expanded / compressed bytes consumed so far, checked once a layer
    /// has expanded past [`Self::ratio_floor`]. Default 100: real layers compress 2–10×, gzip
    /// of zeros about 1000× (the ratio a bomb needs); small layers of any ratio pass the floor.
    pub layer_ratio: u64,
    /// The expanded size below which [`Self::layer_ratio`] is not checked. Default 256 MiB.
    pub ratio_floor: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            layer_size: 16 * GIB,
            image_size: 64 * GIB,
            layer_entries: 1_000_000,
            layer_ratio: 100,
            ratio_floor: 256 * MIB,
        }
    }
}

impl Limits {
    /// No limits at all.
    pub const NONE: Limits = Limits {
        layer_size: 0,
        image_size: 0,
        layer_entries: 0,
        layer_ratio: 0,
        ratio_floor: 0,
    };
}

/// Which limit was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::layer_size`].
    LayerSize,
    /// [`Limits::image_size`].
    ImageSize,
    /// [`Limits::layer_entries`].
    LayerEntries,
    /// [`Limits::layer_ratio`].
    LayerRatio,
}

impl Limit {
    /// The `berth daemon` flag that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::LayerSize => "--max-layer-size",
            Limit::ImageSize => "--max-image-size",
            Limit::LayerEntries => "--max-layer-entries",
            Limit::LayerRatio => "--max-layer-ratio",
        }
    }
}

/// What was being expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A layer, by its digest or its path in an archive.
    Layer(String),
    /// A `docker load` archive itself (its tar, possibly gzipped), before its layers.
    Archive,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Layer(name) => write!(f, "layer {name}"),
            Subject::Archive => f.write_str("the image archive"),
        }
    }
}

/// A limit crossed while expanding `subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    pub limit: Limit,
    /// The limit's value (bytes, entries, or the ratio).
    pub max: u64,
    pub subject: Subject,
}

/// `64 MiB`, `16 GiB`, or bytes when not a whole number of either.
pub fn human_bytes(n: u64) -> String {
    if n >= GIB && n.is_multiple_of(GIB) {
        format!("{} GiB", n / GIB)
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, flag) = (&self.subject, self.limit.flag());
        match self.limit {
            Limit::LayerSize => write!(f, "{s} expands past the daemon's {flag} limit of {}", human_bytes(self.max)),
            Limit::ImageSize => write!(
                f,
                "the image's layers expand past the daemon's {flag} limit of {} at {s}",
                human_bytes(self.max)
            ),
            Limit::LayerEntries => write!(f, "{s} has more entries than the daemon's {flag} limit of {}", self.max),
            Limit::LayerRatio => write!(
                f,
                "{s} expands more than {} times its compressed size (the daemon's {flag} limit)",
                self.max
            ),
        }?;
        f.write_str("; refused as a possible archive bomb")
    }
}

impl std::error::Error for LimitExceeded {}

/// The counters of one layer (or archive) being expanded, shared by the readers and the unpacker.
#[derive(Debug)]
pub struct Meter {
    limits: Limits,
    subject: Subject,
    /// Expanded bytes of the same image counted before this layer.
    image_before: u64,
    compressed: AtomicU64,
    stream: AtomicU64,
    written: AtomicU64,
    entries: AtomicU64,
    tripped: Mutex<Option<LimitExceeded>>,
}

impl Meter {
    /// A meter for `subject`, the layers of its image before it having expanded to `image_before`.
    pub fn new(limits: Limits, subject: Subject, image_before: u64) -> Arc<Meter> {
        Arc::new(Meter {
            limits,
            subject,
            image_before,
            compressed: AtomicU64::new(0),
            stream: AtomicU64::new(0),
            written: AtomicU64::new(0),
            entries: AtomicU64::new(0),
            tripped: Mutex::new(None),
        })
    }

    /// The limit crossed, if one was: what every error of a metered operation is reported as.
    pub fn tripped(&self) -> Option<LimitExceeded> {
        self.tripped.lock().unwrap().clone()
    }

    /// What the layer expanded to: the larger of its tar stream and the bytes its files wrote.
    pub fn expanded(&self) -> u64 {
        self.stream.load(Ordering::Relaxed).max(self.written.load(Ordering::Relaxed))
    }

    fn trip(&self, limit: Limit, max: u64) -> LimitExceeded {
        let mut t = self.tripped.lock().unwrap();
        t.get_or_insert_with(|| LimitExceeded {
            limit,
            max,
            subject: self.subject.clone(),
        })
        .clone()
    }

    /// Check the sizes after a counter moved.
    fn check(&self) -> Result<(), LimitExceeded> {
        self.check_at(self.expanded())
    }

    /// Check the sizes as if the layer had expanded to `expanded`.
    fn check_at(&self, expanded: u64) -> Result<(), LimitExceeded> {
        if let Some(t) = self.tripped() {
            return Err(t);
        }
        let l = &self.limits;
        if l.layer_size != 0 && expanded > l.layer_size {
            return Err(self.trip(Limit::LayerSize, l.layer_size));
        }
        if l.image_size != 0 && self.image_before.saturating_add(expanded) > l.image_size {
            return Err(self.trip(Limit::ImageSize, l.image_size));
        }
        if l.layer_ratio != 0 && expanded > l.ratio_floor {
            let compressed = self.compressed.load(Ordering::Relaxed);
            if expanded > compressed.saturating_mul(l.layer_ratio) {
                return Err(self.trip(Limit::LayerRatio, l.layer_ratio));
            }
        }
        Ok(())
    }

    /// Count one tar entry.
    pub fn entry(&self) -> Result<(), LimitExceeded> {
        let n = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        if self.limits.layer_entries != 0 && n > self.limits.layer_entries {
            return Err(self.trip(Limit::LayerEntries, self.limits.layer_entries));
        }
        Ok(())
    }

    /// Count `n` bytes written to a file of the layer.
    pub fn wrote(&self, n: u64) -> Result<(), LimitExceeded> {
        self.written.fetch_add(n, Ordering::Relaxed);
        self.check()
    }

    /// Wrap the raw (compressed) input: its bytes are the ratio's denominator.
    pub fn input<R: Read>(self: &Arc<Self>, inner: R) -> Input<R> {
        Input {
            inner,
            meter: self.clone(),
        }
    }

    /// Wrap the decompressed tar stream: its bytes are counted and checked as they are read.
    pub fn output<R: Read>(self: &Arc<Self>, inner: R) -> Output<R> {
        Output {
            inner,
            meter: self.clone(),
        }
    }

    /// Wrap a file being written from the layer.
    pub fn writer<W: Write>(self: &Arc<Self>, inner: W) -> Writer<W> {
        Writer {
            inner,
            meter: self.clone(),
        }
    }
}

fn io_err(e: LimitExceeded) -> io::Error {
    io::Error::other(e)
}

/// The compressed side of a metered layer (see [`Meter::input`]).
pub struct Input<R> {
    inner: R,
    meter: Arc<Meter>,
}

impl<R: Read> Read for Input<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.compressed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The expanded side of a metered layer (see [`Meter::output`]).
pub struct Output<R> {
    inner: R,
    meter: Arc<Meter>,
}

impl<R: Read> Read for Output<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(t) = self.meter.tripped() {
            return Err(io_err(t));
        }
        let n = self.inner.read(buf)?;
        self.meter.stream.fetch_add(n as u64, Ordering::Relaxed);
        self.meter.check().map_err(io_err)?;
        Ok(n)
    }
}

/// A file written from a metered layer (see [`Meter::writer`]).
pub struct Writer<W> {
    inner: W,
    meter: Arc<Meter>,
}

impl<W: Write> Write for Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Checked before the write, so no file grows past a limit.
        let m = &self.meter;
        let would = m.written.load(Ordering::Relaxed).saturating_add(buf.len() as u64);
        m.check_at(would.max(m.stream.load(Ordering::Relaxed))).map_err(io_err)?;
        let n = self.inner.write(buf)?;
        self.meter.wrote(n as u64).map_err(io_err)?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            layer_size: 1000,
            image_size: 1500,
            layer_entries: 3,
            layer_ratio: 10,
            ratio_floor: 100,
        }
    }

    fn read_all(m: &Arc<Meter>, compressed: &[u8], expanded: &[u8]) -> io::Result<u64> {
        // The "decompressor" consumes all of `compressed`, then yields `expanded`.
        let mut input = m.input(compressed);
        io::copy(&mut input, &mut io::sink())?;
        io::copy(&mut m.output(expanded), &mut io::sink())
    }

    #[test]
    fn layer_size() {
        let m = Meter::new(small(), Subject::Layer("l".into()), 0);
        assert!(read_all(&m, &[0; 999], &[0; 999]).is_ok());
        let m = Meter::new(small(), Subject::Layer("l".into()), 0);
        let e = read_all(&m, &[0; 1001], &[0; 1001]).unwrap_err();
        assert!(e.get_ref().unwrap().is::<LimitExceeded>());
        let t = m.tripped().unwrap();
        assert_eq!((t.limit, t.max), (Limit::LayerSize, 1000));
        assert_eq!(
            t.to_string(),
            "layer l expands past the daemon's --max-layer-size limit of 1000 bytes; refused as a possible archive bomb"
        );
    }

    #[test]
    fn image_size_counts_the_layers_before() {
        let m = Meter::new(small(), Subject::Layer("l2".into()), 900);
        read_all(&m, &[0; 600], &[0; 600]).unwrap();
        let m = Meter::new(small(), Subject::Layer("l2".into()), 900);
        read_all(&m, &[0; 601], &[0; 601]).unwrap_err();
        assert_eq!(m.tripped().unwrap().limit, Limit::ImageSize);
    }

    #[test]
    fn ratio_only_past_the_floor() {
        // 90 bytes from 1: far over the ratio, but under the floor.
        let m = Meter::new(small(), Subject::Layer("l".into()), 0);
        read_all(&m, &[0; 1], &[0; 90]).unwrap();
        // 500 from 50 is exactly 10×: allowed; from 49 it is not.
        let m = Meter::new(small(), Subject::Layer("l".into()), 0);
        read_all(&m, &[0; 50], &[0; 500]).unwrap();
        let m = Meter::new(small(), Subject::Layer("l".into()), 0);
        read_all(&m, &[0; 49], &[0; 500]).unwrap_err();
        let t = m.tripped().unwrap();
        assert_eq!(t.limit, Limit::LayerRatio);
        assert!(t.to_string().contains("more than 10 times") && t.to_string().contains("--max-layer-ratio"));
    }

    #[test]
    fn entries_and_writes() {
        let m = Meter::new(small(), Subject::Archive, 0);
        for _ in 0..3 {
            m.entry().unwrap();
        }
        assert_eq!(m.entry().unwrap_err().limit, Limit::LayerEntries);
        assert!(m.tripped().unwrap().to_string().starts_with("the image archive has more entries"));

        // A write that would cross the limit is refused before it happens.
        let no_ratio = Limits { layer_ratio: 0, ..small() };
        let m = Meter::new(no_ratio, Subject::Layer("l".into()), 0);
        let mut out = Vec::new();
        let mut w = m.writer(&mut out);
        w.write_all(&[1; 600]).unwrap();
        assert!(w.write_all(&[1; 600]).is_err());
        assert_eq!(out.len(), 600);
        assert_eq!(m.tripped().unwrap().limit, Limit::LayerSize);
    }

    #[test]
    fn zero_means_none() {
        let m = Meter::new(Limits::NONE, Subject::Layer("l".into()), u64::MAX - 10);
        read_all(&m, &[0; 1], &[0; 100_000]).unwrap();
        for _ in 0..10 {
            m.entry().unwrap();
        }
        assert!(m.tripped().is_none());
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(16 << 30), "16 GiB");
        assert_eq!(human_bytes(3 << 10), "3 KiB");
        assert_eq!(human_bytes(1536), "1536 bytes");
    }
}
