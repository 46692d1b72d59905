//! `berth shim`: one small process per container.
//!
//! It forks once so that the process the daemon started can report "ready" (or the error) and exit,
//! leaving the shim detached in its own session; the daemon may then die and restart without touching
//! the container. The shim creates the container with libcontainer (it is single-threaded, as
//! libcontainer requires: its event loop is a current-thread tokio runtime), owns the container's
//! stdio (JSON-lines log file, attach clients), serves a control socket, reaps the init and exec
//! processes, writes the exit status to `exit.json` and deletes the runtime state when the container
//! exits.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, fork, pipe, setsid, ForkResult, Pid};
use serde_json::Value;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use crate::external::{External, Stdio3};
use crate::proto::{exec_exit_file, ExitInfo, Reply, Request, EXIT_FILE, PID_FILE, SHIM_SOCKET};

/// Runs the container's process as libcontainer's default executor does, after giving its TTY the
/// `consoleSize` of the spec. It runs inside the container just before exec, so the process never
/// sees a 0x0 terminal (libcontainer creates the pty there and does not size it).
#[derive(Clone)]
struct SizedTtyExecutor;

impl libcontainer::workload::Executor for SizedTtyExecutor {
    fn exec(&self, spec: &oci_spec::runtime::Spec) -> Result<(), libcontainer::workload::ExecutorError> {
        if let Some(p) = spec.process() {
            if let (Some(true), Some(b)) = (p.terminal(), p.console_size()) {
                let ws = libc::winsize {
                    ws_row: b.height() as u16,
                    ws_col: b.width() as u16,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                unsafe { libc::ioctl(0, libc::TIOCSWINSZ, &ws) };
            }
        }
        libcontainer::workload::default::DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &oci_spec::runtime::Spec) -> Result<(), libcontainer::workload::ExecutorValidationError> {
        libcontainer::workload::default::DefaultExecutor {}.validate(spec)
    }
}

/// Arguments of `berth shim`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ShimArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    pub runtime_root: PathBuf,
    pub cgroup_path: String,
    pub tty: bool,
    pub stdin: bool,
    /// Initial TTY size (rows, columns), set before the process starts.
    pub console_size: Option<(u16, u16)>,
    /// An external OCI runtime binary (runc, crun) to drive instead of libcontainer.
    pub runtime: Option<PathBuf>,
    /// json-file rotation (`--log-opt max-size/max-file`).
    #[serde(default)]
    pub log_rotation: LogRotation,
}

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

/// The container as the shim drives it: youki's libcontainer in-process, or an external runtime's
/// command line on the same bundle.
enum Ctr {
    Lib(Box<Container>),
    Ext(External),
}

impl Ctr {
    fn start(&mut self) -> Result<(), String> {
        match self {
            Ctr::Lib(c) => c.start().map_err(|e| e.to_string()),
            Ctr::Ext(x) => x.simple("start"),
        }
    }
    fn pause(&mut self) -> Result<(), String> {
        match self {
            Ctr::Lib(c) => c.pause().map_err(|e| e.to_string()),
            Ctr::Ext(x) => x.simple("pause"),
        }
    }
    fn resume(&mut self) -> Result<(), String> {
        match self {
            Ctr::Lib(c) => c.resume().map_err(|e| e.to_string()),
            Ctr::Ext(x) => x.simple("resume"),
        }
    }
    fn delete(&mut self) {
        let r = match self {
            Ctr::Lib(c) => c.delete(true).map_err(|e| e.to_string()),
            Ctr::Ext(x) => x.delete(),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "deleting the runtime state failed");
        }
    }
}

/// Run the shim. Never returns: the first process exits once the container is created (status 0 and
/// `ok <pid>` on stdout, or status 1 and the error), the second when the container is gone.
pub fn main(args: ShimArgs) -> ! {
    // Close-on-exec: the container's processes are forked from the shim and must not keep it open.
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            drop(wr);
            let mut msg = String::new();
            // One line: the container's processes hold the write end until they exec, so no EOF.
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(File::from(rd)), &mut msg);
            let ok = msg.starts_with("ok ");
            if !ok {
                // The child failed before reporting; collect it so it is no zombie.
                let _ = waitpid(child, Some(WaitPidFlag::WNOHANG));
            }
            print!("{msg}");
            let _ = std::io::stdout().flush();
            std::process::exit(if ok { 0 } else { 1 });
        }
        Ok(ForkResult::Child) => {}
        Err(e) => {
            println!("error: fork: {e}");
            std::process::exit(1);
        }
    }
    drop(rd);
    run_detached(args, File::from(wr))
}

/// Become the container's shim: a new session, stdio on the shim's log, the container created
/// (`ok <pid>` or `error: ...` written to `report`, then closed), then serve until it is gone.
/// Reached after a fork, from [`main`] or from the zygote.
pub fn run_detached(args: ShimArgs, mut report: File) -> ! {
    let _ = setsid();
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let _ = fs::create_dir_all(&args.state_dir);
    // Our stdio is no longer the daemon's pipe: stdout/stderr go to the shim's own log.
    if let Ok(f) = OpenOptions::new().create(true).append(true).open(args.state_dir.join("shim.log")) {
        let _ = dup2(f.as_raw_fd(), 1);
        let _ = dup2(f.as_raw_fd(), 2);
    }
    if let Ok(f) = File::open("/dev/null") {
        let _ = dup2(f.as_raw_fd(), 0);
    }
    let _ = std::env::set_current_dir(&args.state_dir);
    match create(&args) {
        Ok(created) => {
            let _ = writeln!(report, "ok {}", created.pid);
            drop(report);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, serve(args, created));
            std::process::exit(0);
        }
        Err(e) => {
            let _ = writeln!(report, "error: {e}");
            std::process::exit(1);
        }
    }
}

struct Created {
    container: Ctr,
    pid: Pid,
    /// pty master, or (stdin writer, stdout reader, stderr reader).
    io: Io,
    listener: StdUnixListener,
}

enum Io {
    Tty(OwnedFd),
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

fn recv_fd(sock: RawFd) -> Result<OwnedFd, String> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty()).map_err(|e| format!("recvmsg: {e}"))?;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err("no pty master received on the console socket".into())
}

/// The stdio of a new process: the ends the process gets, and the ends the shim keeps.
struct StdioPlan {
    console: Option<(StdUnixListener, PathBuf)>,
    child: Option<(OwnedFd, OwnedFd, OwnedFd)>,
    ours: Option<(Option<OwnedFd>, OwnedFd, OwnedFd)>,
}

fn plan_stdio(tty: bool, stdin: bool, console_path: &Path) -> Result<StdioPlan, String> {
    if tty {
        let _ = fs::remove_file(console_path);
        let l = StdUnixListener::bind(console_path).map_err(|e| format!("console socket {}: {e}", console_path.display()))?;
        return Ok(StdioPlan {
            console: Some((l, console_path.to_path_buf())),
            child: None,
            ours: None,
        });
    }
    let (in_r, in_w) = if stdin {
        let (r, w) = pipe().map_err(|e| e.to_string())?;
        (r, Some(w))
    } else {
        (File::open("/dev/null").map_err(|e| e.to_string())?.into(), None)
    };
    let (out_r, out_w) = pipe().map_err(|e| e.to_string())?;
    let (err_r, err_w) = pipe().map_err(|e| e.to_string())?;
    Ok(StdioPlan {
        console: None,
        child: Some((in_r, out_w, err_w)),
        ours: Some((in_w, out_r, err_r)),
    })
}

fn apply_stdio(mut b: ContainerBuilder, plan: &mut StdioPlan) -> ContainerBuilder {
    if let Some((_, p)) = &plan.console {
        b = b.with_console_socket(Some(p.clone()));
    }
    if let Some((i, o, e)) = plan.child.take() {
        b = b.with_stdin(i).with_stdout(o).with_stderr(e);
    }
    b
}

/// The process's ends of `plan` for an external runtime.
fn ext_stdio(plan: &mut StdioPlan) -> Stdio3<'_> {
    match plan.child.take() {
        Some((i, o, e)) => Stdio3::Pipes(i, o, e),
        None => Stdio3::Console(&plan.console.as_ref().expect("a console socket without pipes").1),
    }
}

fn external(args: &ShimArgs, bin: &Path) -> External {
    External {
        bin: bin.to_path_buf(),
        root: args.runtime_root.clone(),
        id: args.id.clone(),
        log: args.state_dir.join("runtime.log"),
    }
}

fn finish_stdio(plan: StdioPlan) -> Result<Io, String> {
    if let Some((l, p)) = plan.console {
        l.set_nonblocking(false).ok();
        let (conn, _) = l.accept().map_err(|e| format!("console socket accept: {e}"))?;
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

fn create(args: &ShimArgs) -> Result<Created, String> {
    fs::create_dir_all(&args.runtime_root).map_err(|e| format!("{}: {e}", args.runtime_root.display()))?;
    let _ = fs::remove_file(args.state_dir.join(EXIT_FILE));
    let mut plan = plan_stdio(args.tty, args.stdin, &args.state_dir.join("console.sock"))?;
    let (container, pid) = match &args.runtime {
        Some(bin) => {
            let x = external(args, bin);
            let pid = x.create(&args.bundle, &args.state_dir.join("init.pid"), ext_stdio(&mut plan))?;
            (Ctr::Ext(x), pid)
        }
        None => {
            let b = ContainerBuilder::new(args.id.clone(), SyscallType::default())
                .with_root_path(&args.runtime_root)
                .map_err(|e| e.to_string())?;
            let b = apply_stdio(b, &mut plan).with_executor(SizedTtyExecutor);
            let container = b
                .validate_id()
                .map_err(|e| e.to_string())?
                .as_init(&args.bundle)
                .with_systemd(false)
                .with_detach(true)
                .build()
                .map_err(|e| format!("{e}"))?;
            let pid = container.pid().ok_or("container has no pid")?;
            (Ctr::Lib(Box::new(container)), pid)
        }
    };
    let io = finish_stdio(plan)?;
    loopback_up(pid)?;
    let sock = args.state_dir.join(SHIM_SOCKET);
    let _ = fs::remove_file(&sock);
    let listener = StdUnixListener::bind(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    oci::store::write_volatile(&args.state_dir.join(PID_FILE), pid.to_string().as_bytes()).map_err(|e| e.to_string())?;
    Ok(Created {
        container,
        pid,
        io,
        listener,
    })
}

/// Bring `lo` up in the container's network namespace (a fresh namespace has it down). The shim is
/// single-threaded here, so it joins the namespace itself (a network namespace is per thread) and
/// returns to its own: cheaper than forking a child to do it. A no-op when the container shares the
/// host's namespace.
fn loopback_up(pid: Pid) -> Result<(), String> {
    use nix::sched::{setns, CloneFlags};
    let ns = format!("/proc/{pid}/ns/net");
    if fs::read_link(&ns).ok() == fs::read_link("/proc/self/ns/net").ok() {
        return Ok(());
    }
    let theirs = File::open(&ns).map_err(|e| format!("{ns}: {e}"))?;
    let ours = File::open("/proc/self/ns/net").map_err(|e| format!("/proc/self/ns/net: {e}"))?;
    setns(&theirs, CloneFlags::CLONE_NEWNET).map_err(|e| format!("joining the container's network namespace: {e}"))?;
    let up = (|| -> std::io::Result<()> {
        let s = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        // SAFETY: ifreq is plain data; the ioctls read and write only it.
        unsafe {
            let mut req: libc::ifreq = std::mem::zeroed();
            for (i, b) in b"lo\0".iter().enumerate() {
                req.ifr_name[i] = *b as libc::c_char;
            }
            if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    })();
    // Back to the shim's own namespace whatever happened; staying in the container's would be wrong.
    setns(&ours, CloneFlags::CLONE_NEWNET).map_err(|e| format!("leaving the container's network namespace: {e}"))?;
    up.map_err(|e| format!("bringing up loopback in the container: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The event loop.

fn set_nonblocking(fd: &OwnedFd) {
    if let Ok(fl) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK));
    }
}

/// Async read/write on a raw fd (pipe end or pty master).
struct Fd(AsyncFd<OwnedFd>);

impl Fd {
    fn new(fd: OwnedFd) -> std::io::Result<Rc<Fd>> {
        set_nonblocking(&fd);
        // SAFETY: the fd is owned by the AsyncFd for its whole registration.
        let afd = unsafe { AsyncFd::register(fd) }.map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Rc::new(Fd(afd)))
    }
    async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut g = self.0.readable().await?;
            match g.try_io(|fd| nix::unistd::read(fd.as_raw_fd(), buf).map_err(std::io::Error::from)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0), // pty hung up
                Ok(r) => return r,
                Err(_) => continue,
            }
        }
    }
    async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
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
    fn raw(&self) -> RawFd {
        self.0.get_ref().as_raw_fd()
    }
}

/// A consumer of output: already-framed bytes go to it.
struct Client {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    stdout: bool,
    stderr: bool,
}

struct LogWriter {
    file: Option<File>,
    path: PathBuf,
    rotation: LogRotation,
    /// Bytes in the current file.
    size: u64,
}

impl LogWriter {
    fn open(path: &Path, rotation: LogRotation) -> LogWriter {
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

    fn write(&mut self, stream: &str, data: &[u8]) {
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

fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 8);
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

struct ExecState {
    id: String,
    done: watch::Sender<Option<i32>>,
}

struct Shim {
    args: ShimArgs,
    container: RefCell<Ctr>,
    pid: Pid,
    tty: bool,
    /// Where client input goes (pty master or stdin pipe); `None` once closed.
    stdin: RefCell<Option<Rc<Fd>>>,
    pty: Option<Rc<Fd>>,
    clients: RefCell<Vec<Client>>,
    log: RefCell<LogWriter>,
    exit: watch::Sender<Option<ExitInfo>>,
    execs: RefCell<HashMap<i32, ExecState>>,
    exec_ptys: RefCell<HashMap<String, Rc<Fd>>>,
}

impl Shim {
    fn broadcast(&self, stream: u8, data: &[u8]) {
        self.log.borrow_mut().write(if stream == 2 { "stderr" } else { "stdout" }, data);
        let framed = if self.tty { data.to_vec() } else { frame(stream, data) };
        self.clients.borrow_mut().retain(|c| {
            if (stream == 1 && !c.stdout) || (stream == 2 && !c.stderr) {
                return !c.tx.is_closed();
            }
            c.tx.send(framed.clone()).is_ok()
        });
    }
}

async fn pump_output(shim: Rc<Shim>, fd: Rc<Fd>, stream: u8) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match fd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => shim.broadcast(stream, &buf[..n]),
        }
    }
}

async fn serve(args: ShimArgs, created: Created) {
    let Created {
        container,
        pid,
        io,
        listener,
    } = created;
    let (exit_tx, _) = watch::channel(None);
    let mut pumps = Vec::new();
    let (stdin, pty, outs) = match io {
        Io::Tty(m) => {
            if let Some((rows, cols)) = args.console_size {
                let ws = libc::winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            }
            let fd = Fd::new(m).expect("pty fd");
            (Some(fd.clone()), Some(fd.clone()), vec![(fd, 1u8)])
        }
        Io::Pipes { stdin, stdout, stderr } => {
            let i = stdin.map(|f| Fd::new(f).expect("stdin fd"));
            (
                i,
                None,
                vec![
                    (Fd::new(stdout).expect("stdout fd"), 1u8),
                    (Fd::new(stderr).expect("stderr fd"), 2u8),
                ],
            )
        }
    };
    let log = LogWriter::open(&args.log_path, args.log_rotation);
    let shim = Rc::new(Shim {
        tty: args.tty,
        args,
        container: RefCell::new(container),
        pid,
        stdin: RefCell::new(stdin),
        pty,
        clients: RefCell::new(Vec::new()),
        log: RefCell::new(log),
        exit: exit_tx,
        execs: RefCell::new(HashMap::new()),
        exec_ptys: RefCell::new(HashMap::new()),
    });
    for (fd, stream) in outs {
        pumps.push(tokio::task::spawn_local(pump_output(shim.clone(), fd, stream)));
    }
    let listener = UnixListener::from_std(listener).expect("listener");
    {
        let shim = shim.clone();
        tokio::task::spawn_local(async move {
            loop {
                if let Ok((conn, _)) = listener.accept().await {
                    tokio::task::spawn_local(handle(shim.clone(), conn));
                }
            }
        });
    }
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).expect("SIGCHLD");
    // The init may have exited before we installed the handler: reap once right away.
    let status = loop {
        if let Some(code) = reap(&shim) {
            break code;
        }
        sigchld.recv().await;
    };
    // Output: the pipes close once every process holding them is gone (the kernel kills the whole
    // pid namespace with its init). Do not wait forever on an escaped holder.
    tracing::debug!(container = %shim.args.id, status, "init exited");
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    tracing::debug!(container = %shim.args.id, "output drained");
    // As Docker reports it: any process of the container killed for memory, not only its init
    // (a worker the OOM killer took while the init went on and exited 0 counts too).
    let oom = crate::cgroup::oom_kills(&shim.args.cgroup_path) > 0;
    let info = ExitInfo {
        exit_code: status,
        oom_killed: oom,
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    };
    let _ = oci::store::write_volatile(&shim.args.state_dir.join(EXIT_FILE), &serde_json::to_vec(&info).expect("json"));
    // Close attach streams (queued output still drains) and tell waiters.
    shim.clients.borrow_mut().clear();
    shim.stdin.borrow_mut().take();
    tracing::debug!(container = %shim.args.id, "exit recorded");
    let _ = shim.exit.send(Some(info));
    // Let the waiters write their replies before the (slower) runtime cleanup.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    // The socket goes first: once the runtime state is gone the daemon may start the container
    // again, and a new shim binds this same path.
    let _ = fs::remove_file(shim.args.state_dir.join(SHIM_SOCKET));
    shim.container.borrow_mut().delete();
    // Give clients a moment to read what is queued for them.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn exit_code(ws: WaitStatus) -> Option<(i32, i32)> {
    match ws {
        WaitStatus::Exited(p, c) => Some((p.as_raw(), c)),
        WaitStatus::Signaled(p, s, _) => Some((p.as_raw(), 128 + s as i32)),
        _ => None,
    }
}

/// Reap every exited child; return the init's exit code if it was among them.
fn reap(shim: &Rc<Shim>) -> Option<i32> {
    let mut init = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(ws) => {
                if let Some((pid, code)) = exit_code(ws) {
                    if pid == shim.pid.as_raw() {
                        init = Some(code);
                    } else if let Some(ex) = shim.execs.borrow_mut().remove(&pid) {
                        let _ = oci::store::write_volatile(
                            &shim.args.state_dir.join(exec_exit_file(&ex.id)),
                            &serde_json::to_vec(&ExitInfo {
                                exit_code: code,
                                oom_killed: false,
                                finished_at: chrono::Utc::now().to_rfc3339(),
                            })
                            .expect("json"),
                        );
                        let _ = ex.done.send(Some(code));
                    }
                }
            }
        }
    }
    init
}

async fn reply(w: &mut (impl AsyncWriteExt + Unpin), r: &Reply) {
    let mut line = serde_json::to_vec(r).expect("json");
    line.push(b'\n');
    let _ = w.write_all(&line).await;
}

fn err(e: impl std::fmt::Display) -> Reply {
    Reply {
        error: Some(e.to_string()),
        ..Default::default()
    }
}

async fn handle(shim: Rc<Shim>, conn: UnixStream) {
    let (rd, mut wr) = conn.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => return reply(&mut wr, &err(format!("bad request: {e}"))).await,
    };
    match req {
        Request::Start => {
            let r = shim.container.borrow_mut().start();
            match r {
                Ok(()) => {
                    tracing::debug!(container = %shim.args.id, "started");
                    reply(
                        &mut wr,
                        &Reply {
                            pid: Some(shim.pid.as_raw()),
                            ..Default::default()
                        },
                    )
                    .await
                }
                Err(e) => reply(&mut wr, &err(e)).await,
            }
        }
        Request::State => {
            reply(
                &mut wr,
                &Reply {
                    pid: Some(shim.pid.as_raw()),
                    exit: shim.exit.borrow().clone(),
                    ..Default::default()
                },
            )
            .await
        }
        Request::Kill { signal } => {
            let r = Signal::try_from(signal)
                .map_err(|e| e.to_string())
                .and_then(|s| kill(shim.pid, s).map_err(|e| e.to_string()));
            reply(&mut wr, &r.map(|_| Reply::default()).unwrap_or_else(err)).await
        }
        Request::Pause => {
            let r = shim.container.borrow_mut().pause();
            reply(&mut wr, &r.map(|_| Reply::default()).unwrap_or_else(err)).await
        }
        Request::Resume => {
            let r = shim.container.borrow_mut().resume();
            reply(&mut wr, &r.map(|_| Reply::default()).unwrap_or_else(err)).await
        }
        Request::Resize { height, width, exec_id } => {
            let fd = match exec_id {
                Some(id) => shim.exec_ptys.borrow().get(&id).cloned(),
                None => shim.pty.clone(),
            };
            match fd {
                Some(fd) => {
                    let ws = libc::winsize {
                        ws_row: height,
                        ws_col: width,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let r = unsafe { libc::ioctl(fd.raw(), libc::TIOCSWINSZ, &ws) };
                    if r == 0 {
                        reply(&mut wr, &Reply::default()).await
                    } else {
                        reply(&mut wr, &err(std::io::Error::last_os_error())).await
                    }
                }
                None => reply(&mut wr, &err("no TTY to resize")).await,
            }
        }
        Request::Wait => {
            let mut rx = shim.exit.subscribe();
            let info = loop {
                if let Some(i) = rx.borrow().clone() {
                    break i;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            };
            reply(
                &mut wr,
                &Reply {
                    exit: Some(info),
                    ..Default::default()
                },
            )
            .await
        }
        Request::Attach {
            stdin,
            stdout,
            stderr,
            stdin_once,
        } => {
            if shim.exit.borrow().is_some() {
                return reply(&mut wr, &err("container is not running")).await;
            }
            let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
            shim.clients.borrow_mut().push(Client { tx, stdout, stderr });
            reply(&mut wr, &Reply::default()).await;
            if stdin {
                let shim2 = shim.clone();
                tokio::task::spawn_local(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        let n = rd.read(&mut buf).await.unwrap_or(0);
                        let target = shim2.stdin.borrow().clone();
                        let Some(t) = target else { break };
                        if n == 0 {
                            if stdin_once && !shim2.tty {
                                shim2.stdin.borrow_mut().take();
                            }
                            break;
                        }
                        if t.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
            while let Some(chunk) = rx.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        }
        Request::Exec { exec_id, process, stdin } => exec(shim, exec_id, process, stdin, rd, wr).await,
    }
}

fn spawn_exec(shim: &Shim, exec_id: &str, process: &Value, stdin: bool) -> Result<(Pid, Io), String> {
    let tty = process.get("terminal").and_then(|v| v.as_bool()).unwrap_or(false);
    let pfile = shim.args.state_dir.join(format!("exec-{exec_id}-process.json"));
    oci::store::write_volatile(&pfile, &serde_json::to_vec(process).expect("json")).map_err(|e| e.to_string())?;
    let mut plan = plan_stdio(
        tty,
        stdin,
        &shim.args.state_dir.join(format!("exec-{}.sock", &exec_id[..12.min(exec_id.len())])),
    )?;
    let pid = match &shim.args.runtime {
        Some(bin) => {
            let pid_file = shim.args.state_dir.join(format!("exec-{exec_id}.pid"));
            external(&shim.args, bin).exec(&pfile, &pid_file, ext_stdio(&mut plan))
        }
        None => {
            let b = ContainerBuilder::new(shim.args.id.clone(), SyscallType::default())
                .with_root_path(&shim.args.runtime_root)
                .map_err(|e| e.to_string())?;
            let b = apply_stdio(b, &mut plan).with_executor(SizedTtyExecutor);
            b.as_tenant()
                .with_process(Some(&pfile))
                .with_detach(true)
                .build()
                .map_err(|e| e.to_string())
        }
    };
    let _ = fs::remove_file(&pfile);
    let pid = pid?;
    Ok((pid, finish_stdio(plan)?))
}

async fn exec(
    shim: Rc<Shim>,
    exec_id: String,
    process: Value,
    stdin: bool,
    mut rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut wr: tokio::net::unix::OwnedWriteHalf,
) {
    let (done_tx, mut done_rx) = watch::channel(None);
    let (pid, io) = match spawn_exec(&shim, &exec_id, &process, stdin) {
        Ok(x) => x,
        Err(e) => return reply(&mut wr, &err(format!("exec failed: {e}"))).await,
    };
    // Registered before any await, so the reaper cannot miss it.
    shim.execs.borrow_mut().insert(
        pid.as_raw(),
        ExecState {
            id: exec_id.clone(),
            done: done_tx,
        },
    );
    // It may already have been reaped as an unknown child? No: reaping happens only in the main task,
    // which cannot run until we yield.
    reply(
        &mut wr,
        &Reply {
            pid: Some(pid.as_raw()),
            ..Default::default()
        },
    )
    .await;
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut pumps = Vec::new();
    let (input, tty) = match io {
        Io::Tty(m) => {
            let size = &process["consoleSize"];
            if let (Some(h), Some(w)) = (size["height"].as_u64(), size["width"].as_u64()) {
                let ws = libc::winsize {
                    ws_row: h as u16,
                    ws_col: w as u16,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            }
            let fd = Fd::new(m).expect("pty");
            shim.exec_ptys.borrow_mut().insert(exec_id.clone(), fd.clone());
            let tx = tx.clone();
            let f2 = fd.clone();
            pumps.push(tokio::task::spawn_local(async move {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = f2.read(&mut buf).await {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }));
            (Some(fd), true)
        }
        Io::Pipes { stdin, stdout, stderr } => {
            for (fd, stream) in [(stdout, 1u8), (stderr, 2u8)] {
                let fd = Fd::new(fd).expect("pipe");
                let tx = tx.clone();
                pumps.push(tokio::task::spawn_local(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = fd.read(&mut buf).await {
                        if n == 0 || tx.send(frame(stream, &buf[..n])).is_err() {
                            break;
                        }
                    }
                }));
            }
            (stdin.map(|f| Fd::new(f).expect("stdin")), false)
        }
    };
    drop(tx);
    if let Some(input) = input {
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 32 * 1024];
            let mut input = Some(input);
            loop {
                let n = rd.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    if !tty {
                        input.take();
                    }
                    break;
                }
                match &input {
                    Some(i) if i.write_all(&buf[..n]).await.is_ok() => {}
                    _ => break,
                }
            }
        });
    }
    let writer = tokio::task::spawn_local(async move {
        while let Some(chunk) = rx.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    // Wait for exit, then for the output to drain (bounded), then close the stream.
    while done_rx.borrow().is_none() {
        if done_rx.changed().await.is_err() {
            break;
        }
    }
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(1), p).await;
    }
    shim.exec_ptys.borrow_mut().remove(&exec_id);
    let _ = writer.await;
}
