//! SPDY/3.1 framing, the server's side: what kubectl's port-forward (plain, or tunnelled in a
//! WebSocket) and older kubectl's exec/attach speak. Only what a stream multiplexer needs:
//! SYN_STREAM from the client, SYN_REPLY, data frames with FIN, RST_STREAM, PING (answered),
//! SETTINGS/WINDOW_UPDATE (read and let be: the Go client does no flow control), GOAWAY.
//! Header blocks are one zlib stream per direction with the SPDY/3 dictionary.

use std::collections::HashMap;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: the stream is refused.
pub const REFUSED_STREAM: u32 = 3;
/// The largest frame accepted (header blocks and data).
const MAX_FRAME: usize = 1 << 20;
/// Data is sent in frames of at most this much.
const CHUNK: usize = 32 * 1024;

/// The SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1): length-prefixed
/// header names and values, then a run of common text.
fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505\
        203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized\
        403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable\
        Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT\
        chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,\
        text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    let mut d = Vec::with_capacity(1423);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
}

/// Header names and values (a name given twice keeps both).
pub type Headers = Vec<(String, String)>;

/// The first value of header `name`.
pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A stream the client opened.
pub struct Stream {
    /// Its ID.
    pub id: u32,
    /// The headers of its SYN_STREAM.
    pub headers: Headers,
    /// What the client sends on it; ends at its FIN (or a reset, or the session's end).
    pub rx: mpsc::Receiver<Vec<u8>>,
}

enum Out {
    Reply(u32),
    Data(u32, Vec<u8>, bool),
    Reset(u32, u32),
    Ping(u32),
    Close,
}

/// Sends frames on a session; clones share it. The session's writer ends when every clone is
/// dropped (then the connection is shut down).
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Out>,
}

impl Writer {
    /// Accept a stream the client opened.
    pub async fn reply(&self, id: u32) {
        let _ = self.tx.send(Out::Reply(id)).await;
    }

    /// Send `data` on a stream (in frames of at most 32 KiB); false once the session is gone.
    pub async fn data(&self, id: u32, data: &[u8]) -> bool {
        for c in data.chunks(CHUNK) {
            if self.tx.send(Out::Data(id, c.to_vec(), false)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// End this side of a stream.
    pub async fn fin(&self, id: u32) {
        let _ = self.tx.send(Out::Data(id, Vec::new(), true)).await;
    }

    /// Refuse or abort a stream.
    pub async fn reset(&self, id: u32, status: u32) {
        let _ = self.tx.send(Out::Reset(id, status)).await;
    }

    /// End the session: a GOAWAY after what is queued, then the connection's write side shut.
    pub async fn close(&self) {
        let _ = self.tx.send(Out::Close).await;
    }
}

/// Run a server session on `io`: the client's new streams arrive on the receiver (which ends
/// with the connection), frames go out through the [`Writer`].
pub fn serve<S>(io: S) -> (Writer, mpsc::Receiver<Stream>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(64);
    let (streams_tx, streams_rx) = mpsc::channel(16);
    let writer = Writer { tx: out_tx };
    tokio::spawn(write_loop(w, out_rx));
    tokio::spawn(read_loop(r, writer.clone(), streams_tx));
    (writer, streams_rx)
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(payload);
    f
}

/// Encode a header block (no headers: the server's replies carry none) into the session's
/// compression stream.
fn deflate(z: &mut Compress, block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + 64);
    let mut pos = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(256);
        }
        let before = z.total_in();
        if z.compress_vec(&block[pos..], &mut out, FlushCompress::Sync).is_err() {
            break;
        }
        pos += (z.total_in() - before) as usize;
        if pos >= block.len() && out.capacity() > out.len() {
            break;
        }
    }
    out
}

async fn write_loop(mut w: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Out>) {
    let mut z = Compress::new(Compression::default(), true);
    let _ = z.set_dictionary(&dictionary());
    while let Some(out) = rx.recv().await {
        let frame = match out {
            Out::Reply(id) => {
                let mut p = id.to_be_bytes().to_vec();
                p.extend(deflate(&mut z, &0u32.to_be_bytes()));
                control(SYN_REPLY, 0, &p)
            }
            Out::Data(id, data, fin) => {
                let mut f = Vec::with_capacity(8 + data.len());
                f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                f.push(if fin { FLAG_FIN } else { 0 });
                f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                f.extend_from_slice(&data);
                f
            }
            Out::Reset(id, status) => {
                let mut p = id.to_be_bytes().to_vec();
                p.extend_from_slice(&status.to_be_bytes());
                control(RST_STREAM, 0, &p)
            }
            Out::Ping(id) => control(PING, 0, &id.to_be_bytes()),
            Out::Close => {
                let _ = w.write_all(&control(GOAWAY, 0, &[0; 8])).await;
                break;
            }
        };
        if w.write_all(&frame).await.is_err() {
            break;
        }
        // Flush when nothing else is queued.
        if rx.is_empty() && w.flush().await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

struct Inflater {
    z: Decompress,
    dict: Vec<u8>,
}

impl Inflater {
    fn new() -> Inflater {
        Inflater {
            z: Decompress::new(true),
            dict: dictionary(),
        }
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut pos = 0;
        for _ in 0..10_000 {
            if out.capacity() - out.len() < 256 {
                out.reserve(out.capacity().max(256));
            }
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            match self.z.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync) {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(&self.dict).map_err(|e| format!("header dictionary: {e}"))?;
                }
                Err(e) => return Err(format!("header block: {e}")),
            }
            pos += (self.z.total_in() - in0) as usize;
            if out.len() > MAX_FRAME {
                return Err("header block too large".into());
            }
            let idle = self.z.total_in() == in0 && self.z.total_out() == out0;
            if pos >= input.len() && (out.capacity() > out.len() || idle) {
                return Ok(out);
            }
        }
        Err("header block does not decompress".into())
    }
}

fn parse_headers(block: &[u8]) -> Result<Headers, String> {
    let bad = || "malformed header block".to_string();
    let mut p = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let s = block.get(p..p + n).ok_or_else(bad)?;
        p += n;
        Ok(s)
    };
    let u32_at = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = u32_at(take(4)?);
    let mut h = Vec::new();
    for _ in 0..count.min(1024) {
        let n = u32_at(take(4)?);
        let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
        let n = u32_at(take(4)?);
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        for v in value.split('\0') {
            h.push((name.clone(), v.to_string()));
        }
    }
    Ok(h)
}

async fn read_loop(mut r: impl AsyncRead + Unpin, writer: Writer, streams: mpsc::Sender<Stream>) {
    let mut inflater = Inflater::new();
    let mut open: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut hdr = [0u8; 8];
    loop {
        if r.read_exact(&mut hdr).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, hdr[5], hdr[6], hdr[7]]) as usize;
        let flags = hdr[4];
        if len > MAX_FRAME {
            tracing::debug!(len, "SPDY frame too large; closing the session");
            break;
        }
        let mut payload = vec![0u8; len];
        if r.read_exact(&mut payload).await.is_err() {
            break;
        }
        if hdr[0] & 0x80 == 0 {
            // A data frame.
            let id = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) & 0x7fff_ffff;
            if let Some(tx) = open.get(&id) {
                if !payload.is_empty() {
                    let _ = tx.send(payload).await;
                }
            }
            if flags & FLAG_FIN != 0 {
                open.remove(&id);
            }
            continue;
        }
        let kind = u16::from_be_bytes([hdr[2], hdr[3]]);
        let id_of = |p: &[u8]| p.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff);
        match kind {
            SYN_STREAM if len >= 10 => {
                let id = id_of(&payload).unwrap_or(0);
                let headers = match inflater.inflate(&payload[10..]).and_then(|b| parse_headers(&b)) {
                    Ok(h) => h,
                    Err(e) => {
                        // The compression context is lost with it: the session cannot go on.
                        tracing::debug!(error = %e, "SPDY SYN_STREAM");
                        break;
                    }
                };
                let (tx, rx) = mpsc::channel(64);
                if flags & FLAG_FIN == 0 {
                    open.insert(id, tx);
                }
                if streams.send(Stream { id, headers, rx }).await.is_err() {
                    writer.reset(id, REFUSED_STREAM).await;
                }
            }
            RST_STREAM => {
                if let Some(id) = id_of(&payload) {
                    open.remove(&id);
                }
            }
            PING => {
                if let Some(id) = id_of(&payload) {
                    writer.tx.send(Out::Ping(id)).await.ok();
                }
            }
            GOAWAY => break,
            // SETTINGS, WINDOW_UPDATE, HEADERS, ...: nothing to do.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_specs() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // Its Adler-32, the DICTID a SPDY/3 peer writes in its zlib header.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in &d {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_through_one_compression_stream() {
        let mut z = Compress::new(Compression::default(), true);
        z.set_dictionary(&dictionary()).unwrap();
        let mut inf = Inflater::new();
        for (name, value) in [("streamtype", "data"), ("port", "8080"), ("requestid", "0")] {
            let mut block = 1u32.to_be_bytes().to_vec();
            for s in [name, value] {
                block.extend_from_slice(&(s.len() as u32).to_be_bytes());
                block.extend_from_slice(s.as_bytes());
            }
            let wire = deflate(&mut z, &block);
            let h = parse_headers(&inf.inflate(&wire).unwrap()).unwrap();
            assert_eq!(h, vec![(name.to_string(), value.to_string())]);
        }
        // Not a zlib stream; a block whose lengths overrun it.
        assert!(Inflater::new().inflate(&[0xff; 4]).is_err());
        assert!(parse_headers(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
    }
}
