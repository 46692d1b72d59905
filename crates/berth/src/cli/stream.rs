//! Attach/exec/logs streams: the multiplexed-stream demuxer, copying to stdout/stderr, stdin to the
//! container, raw terminal mode and terminal resizing.

use std::io::Write;
use std::os::fd::AsFd;

use anyhow::Result;
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::{query, BoxRead, BoxWrite, Client};

/// Splits docker's multiplexed stream (8-byte header `[stream, 0, 0, 0, size u32 BE]` + payload).
#[derive(Default)]
pub struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    /// Feed bytes; returns complete frames as (stream, payload). 0 stdin, 1 stdout, 2 stderr.
    pub fn feed(&mut self, data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 8 {
                break;
            }
            let size = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            if self.buf.len() < 8 + size {
                break;
            }
            let stream = self.buf[0];
            let payload = self.buf[8..8 + size].to_vec();
            self.buf.drain(..8 + size);
            out.push((stream, payload));
        }
        out
    }

    /// Bytes of an incomplete frame left at the end.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Writes a container's output to our stdout/stderr, demultiplexing unless it is a TTY stream.
pub struct Sink {
    demux: Option<Demux>,
}

impl Sink {
    /// `tty`: raw stream (no headers).
    pub fn new(tty: bool) -> Self {
        Sink {
            demux: if tty { None } else { Some(Demux::default()) },
        }
    }

    /// Write a chunk.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.demux {
            None => {
                let mut o = std::io::stdout().lock();
                o.write_all(data)?;
                o.flush()
            }
            Some(d) => {
                for (stream, payload) in d.feed(data) {
                    if stream == 2 {
                        let mut e = std::io::stderr().lock();
                        e.write_all(&payload)?;
                        e.flush()?;
                    } else {
                        let mut o = std::io::stdout().lock();
                        o.write_all(&payload)?;
                        o.flush()?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// How an attached stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container's (or exec's) output ended.
    Output,
    /// The user typed the detach sequence; the container goes on.
    Detached,
}

/// The detach sequence of `--detach-keys` (Docker's ctrl-p ctrl-q without it).
pub fn detach_keys(flag: Option<&str>) -> Result<Vec<u8>> {
    match flag.filter(|k| !k.is_empty()) {
        Some(k) => engine::streams::parse_detach_keys(k).map_err(|e| anyhow::anyhow!("{e}")),
        None => Ok(engine::streams::DEFAULT_DETACH_KEYS.to_vec()),
    }
}

/// Copy a hijacked stream to stdout/stderr, and (if `stdin`) our stdin to it, half-closing at EOF.
/// Returns when the container's output ends, or when `escape` (watched on a TTY's input, as the
/// docker CLI does) is typed.
pub async fn pump(mut rd: BoxRead, wr: Option<BoxWrite>, tty: bool, stdin: bool, escape: Option<Vec<u8>>) -> Result<Ended> {
    let (detached_tx, detached_rx) = tokio::sync::oneshot::channel::<()>();
    let input = match (stdin, wr) {
        (true, Some(mut w)) => Some(tokio::spawn(async move {
            let mut inp = stdin_stream();
            let esc = escape.filter(|_| tty).map(engine::streams::Escape::new);
            if engine::streams::copy_input(&mut inp, &mut w, esc).await {
                let _ = detached_tx.send(());
            }
        })),
        (_, w) => {
            // Keep the write half open (dropping it could close the connection) until output ends.
            let _keep = w;
            return copy_out(&mut rd, tty).await.map(|_| Ended::Output);
        }
    };
    let r = tokio::select! {
        r = copy_out(&mut rd, tty) => r.map(|_| Ended::Output),
        Ok(()) = detached_rx => Ok(Ended::Detached),
    };
    if let Some(t) = input {
        t.abort();
    }
    r
}

async fn copy_out(rd: &mut BoxRead, tty: bool) -> Result<()> {
    let mut sink = Sink::new(tty);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = sink.write(&buf[..n]) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e.into());
        }
    }
    Ok(())
}

/// Our stdin as an async reader (a thread does the blocking reads; EOF when stdin ends).
pub fn stdin_stream() -> tokio::io::DuplexStream {
    let (mut tx, rx) = tokio::io::duplex(64 * 1024);
    let (ctx, mut crx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = vec![0u8; 32 * 1024];
        let mut inp = std::io::stdin();
        loop {
            match inp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if ctx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    tokio::spawn(async move {
        while let Some(d) = crx.recv().await {
            if tx.write_all(&d).await.is_err() {
                break;
            }
        }
        let _ = tx.shutdown().await;
    });
    rx
}

/// Puts the terminal on stdin in raw mode; restores it when dropped.
pub struct RawTerminal {
    orig: Termios,
}

impl RawTerminal {
    /// `None` when stdin is not a terminal.
    pub fn enable() -> Option<RawTerminal> {
        if !stdin_is_tty() {
            return None;
        }
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        let orig = termios::tcgetattr(fd).ok()?;
        let mut raw = orig.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { orig })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.orig);
    }
}

/// Is stdin a terminal?
pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(libc::STDIN_FILENO).unwrap_or(false)
}

/// The terminal's (rows, columns), from stdout or stdin.
pub fn term_size() -> Option<(u16, u16)> {
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a `winsize` into the pointer we pass, which is valid.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// Send the terminal size to `{prefix}/resize` (prefix is `/containers/ID` or `/exec/ID`), now and on
/// every SIGWINCH until the returned task is aborted.
pub async fn monitor_size(client: &Client, prefix: String) -> Option<tokio::task::JoinHandle<()>> {
    term_size()?;
    resize(client, &prefix).await;
    let c = client.clone();
    Some(tokio::spawn(async move {
        let Ok(mut sig) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) else {
            return;
        };
        while sig.recv().await.is_some() {
            resize(&c, &prefix).await;
        }
    }))
}

async fn resize(client: &Client, prefix: &str) {
    if let Some((h, w)) = term_size() {
        let q = query(&[("h", h.to_string()), ("w", w.to_string())]);
        let _ = client.post(&format!("{prefix}/resize{q}"), None).await;
    }
}

/// Forward SIGINT/SIGTERM/SIGHUP/SIGQUIT to the container (docker's `--sig-proxy`) until aborted.
pub fn proxy_signals(client: &Client, id: &str) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let c = client.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup), Ok(mut quit)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::quit()),
        ) else {
            return;
        };
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
                _ = quit.recv() => "SIGQUIT",
            };
            let path = format!("/containers/{}/kill{}", super::client::seg(&id), query(&[("signal", name)]));
            let _ = c.post(&path, None).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![stream, 0, 0, 0];
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn demux_whole_frames() {
        let mut d = Demux::default();
        let mut input = frame(1, b"hello\n");
        input.extend(frame(2, b"oops\n"));
        input.extend(frame(1, b""));
        let out = d.feed(&input);
        assert_eq!(out, vec![(1, b"hello\n".to_vec()), (2, b"oops\n".to_vec()), (1, Vec::new())]);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn demux_split_anywhere() {
        let mut input = frame(1, b"abcdef");
        input.extend(frame(2, b"xyz"));
        for cut in 0..input.len() {
            let mut d = Demux::default();
            let mut out = d.feed(&input[..cut]);
            out.extend(d.feed(&input[cut..]));
            assert_eq!(out, vec![(1, b"abcdef".to_vec()), (2, b"xyz".to_vec())], "cut at {cut}");
        }
        let mut d = Demux::default();
        let mut out = Vec::new();
        for b in &input {
            out.extend(d.feed(std::slice::from_ref(b)));
        }
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn demux_large_frame() {
        let big = vec![7u8; 100_000];
        let mut d = Demux::default();
        let f = frame(1, &big);
        assert!(d.feed(&f[..50_000]).is_empty());
        assert_eq!(d.pending(), 50_000);
        let out = d.feed(&f[50_000..]);
        assert_eq!(out[0].1.len(), 100_000);
    }
}
