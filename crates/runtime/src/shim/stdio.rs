//! The stdio of the container's processes (pipes, or a pty whose master comes over a console
//! socket), async reads and writes on their fds, and the json-file log with its rotation.

use std::fs::{self, File, OpenOptions};
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use libcontainer::container::builder::ContainerBuilder;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::unistd::pipe;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::error::{ErrorKind, Failure};
use crate::external::Stdio3;

/// When the json-file log rotates: past `max_size` bytes the file becomes `<log>.1` (older ones
/// `<log>.2` ...), keeping `max_files` files in all; with one file it is cut back to empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogRotation {
    /// 0: never rotate.
    pub max_size: u64,
    /// Files kept, the current one included (at least 1).
    pub max_files: u32,
}

/// The `n`th rotated file of the log at `path` (`n` = 0 is the current one).
pub fn rotated_log(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

pub(super) enum Io {
    Tty(OwnedFd),
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

fn recv_fd(sock: RawFd) -> Result<OwnedFd, Failure> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty()).map_err(|e| Failure::errno("recvmsg", e))?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Failure::new(ErrorKind::Other, "no pty master received on the console socket"))
}

/// The stdio of a new process: the ends the process gets, and the ends the shim keeps.
pub(super) struct StdioPlan {
    console: Option<(StdUnixListener, PathBuf)>,
    child: Option<(OwnedFd, OwnedFd, OwnedFd)>,
    ours: Option<(Option<OwnedFd>, OwnedFd, OwnedFd)>,
}

pub(super) fn plan_stdio(tty: bool, stdin: bool, console_path: &Path) -> Result<StdioPlan, Failure> {
    if tty {
        let _ = fs::remove_file(console_path);
        let l =
            StdUnixListener::bind(console_path).map_err(|e| Failure::io(format_args!("console socket {}", console_path.display()), e))?;
        return Ok(StdioPlan {
            console: Some((l, console_path.to_path_buf())),
            child: None,
            ours: None,
        });
    }
    let (in_r, in_w) = if stdin {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        (File::open("/dev/null")?.into(), None)
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok(StdioPlan {
        console: None,
        child: Some((in_r, out_w, err_w)),
        ours: Some((in_w, out_r, err_r)),
    })
}

pub(super) fn apply_stdio(mut b: ContainerBuilder, plan: &mut StdioPlan) -> ContainerBuilder {
    if let Some((_, p)) = &plan.console {
        b = b.with_console_socket(Some(p.clone()));
    }
    if let Some((i, o, e)) = plan.child.take() {
        b = b.with_stdin(i).with_stdout(o).with_stderr(e);
    }
    b
}

/// The process's ends of `plan` for an external runtime.
pub(super) fn ext_stdio(plan: &mut StdioPlan) -> Stdio3<'_> {
    match plan.child.take() {
        Some((i, o, e)) => Stdio3::Pipes(i, o, e),
        None => Stdio3::Console(&plan.console.as_ref().expect("a console socket without pipes").1),
    }
}

pub(super) fn finish_stdio(plan: StdioPlan) -> Result<Io, Failure> {
    if let Some((l, p)) = plan.console {
        l.set_nonblocking(false).ok();
        let (conn, _) = l.accept().map_err(|e| Failure::io("console socket accept", e))?;
        let fd = recv_fd(conn.as_raw_fd())?;
        let _ = fs::remove_file(p);
        return Ok(Io::Tty(fd));
    }
    let (i, o, e) = plan.ours.expect("pipes planned");
    Ok(Io::Pipes {
        stdin: i,
        stdout: o,
        stderr: e,
    })
}

fn set_nonblocking(fd: &OwnedFd) {
    if let Ok(fl) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK));
    }
}

/// Async read/write on a raw fd (pipe end or pty master).
pub(super) struct Fd(AsyncFd<OwnedFd>);

impl Fd {
    pub(super) fn new(fd: OwnedFd) -> std::io::Result<Rc<Fd>> {
        set_nonblocking(&fd);
        // SAFETY: the fd is owned by the AsyncFd for its whole registration.
        let afd = unsafe { AsyncFd::register(fd) }.map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Rc::new(Fd(afd)))
    }
    pub(super) async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut g = self.0.readable().await?;
            match g.try_io(|fd| nix::unistd::read(fd.as_raw_fd(), buf).map_err(std::io::Error::from)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0), // pty hung up
                Ok(r) => return r,
                Err(_) => continue,
            }
        }
    }
    pub(super) async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            let mut g = self.0.writable().await?;
            match g.try_io(|fd| nix::unistd::write(fd.get_ref().as_fd(), buf).map_err(std::io::Error::from)) {
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) => return Err(e),
                Err(_) => continue,
            }
        }
        Ok(())
    }
    pub(super) fn raw(&self) -> RawFd {
        self.0.get_ref().as_raw_fd()
    }
}

/// A consumer of output: already-framed bytes go to it.
pub(super) struct Client {
    pub(super) tx: mpsc::UnboundedSender<Vec<u8>>,
    pub(super) stdout: bool,
    pub(super) stderr: bool,
}

pub(super) struct LogWriter {
    file: Option<File>,
    path: PathBuf,
    rotation: LogRotation,
    /// Bytes in the current file.
    size: u64,
}

impl LogWriter {
    pub(super) fn open(path: &Path, rotation: LogRotation) -> LogWriter {
        let file = OpenOptions::new().create(true).append(true).open(path).ok();
        let size = file.as_ref().and_then(|f| f.metadata().ok()).map(|m| m.len()).unwrap_or(0);
        LogWriter {
            file,
            path: path.to_path_buf(),
            rotation,
            size,
        }
    }

    /// Start a new file: shift the rotated ones (dropping the oldest), or cut the only one.
    fn rotate(&mut self) {
        let keep = self.rotation.max_files.max(1);
        if keep > 1 {
            for n in (1..keep).rev() {
                let _ = fs::rename(rotated_log(&self.path, n - 1), rotated_log(&self.path, n));
            }
            self.file = OpenOptions::new().create(true).append(true).open(&self.path).ok();
        } else if let Some(f) = &self.file {
            let _ = f.set_len(0);
        }
        self.size = 0;
    }

    pub(super) fn write(&mut self, stream: &str, data: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let mut out = Vec::with_capacity(data.len() + 80);
        for line in data.split_inclusive(|b| *b == b'\n') {
            let start = out.len();
            let rec = serde_json::json!({"log": String::from_utf8_lossy(line), "stream": stream, "time": time});
            serde_json::to_writer(&mut out, &rec).ok();
            out.push(b'\n');
            // Rotate between records, as Docker does, so no file grows past max-size by more
            // than one record.
            // Something before this record (in the file or this write) and the record would not fit.
            let before = self.size + start as u64;
            if self.rotation.max_size > 0 && before > 0 && before + (out.len() - start) as u64 > self.rotation.max_size {
                let rec = out.split_off(start);
                self.append(&out);
                out = rec;
                self.rotate();
            }
        }
        self.append(&out);
    }

    fn append(&mut self, data: &[u8]) {
        let Some(f) = self.file.as_mut() else { return };
        if !data.is_empty() && f.write_all(data).is_ok() {
            self.size += data.len() as u64;
        }
    }
}

pub(super) fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 8);
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}
