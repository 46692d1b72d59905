//! Creating the container: with youki's libcontainer in the shim's own process, or with an external
//! runtime's command line on the same bundle; and the `Ctr` the shim then drives.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::error::LibcontainerError;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;

use super::stdio::{apply_stdio, ext_stdio, finish_stdio, plan_stdio, Io};
use super::ShimArgs;
use crate::error::{runtime_message_kind, ErrorKind, Failure};
use crate::external::External;
use crate::proto::{EXIT_FILE, PID_FILE, SHIM_SOCKET};

/// Runs the container's process as libcontainer's default executor does, after giving its TTY the
/// `consoleSize` of the spec. It runs inside the container just before exec, so the process never
/// sees a 0x0 terminal (libcontainer creates the pty there and does not size it).
#[derive(Clone)]
pub(super) struct SizedTtyExecutor;

/// Whether the spec is a sandbox's: its process pauses (see [`pause_forever`]).
fn is_pause(spec: &oci_spec::runtime::Spec) -> bool {
    spec.annotations()
        .as_ref()
        .is_some_and(|a| a.get(crate::spec::PAUSE_ANNOTATION).is_some_and(|v| v == "true"))
}

/// A sandbox's process, as Kubernetes' pause container: it holds the pod's namespaces, reaps the
/// orphans of a shared PID namespace (SIGCHLD ignored), and exits at SIGTERM or SIGINT (as PID 1
/// of its namespace it would ignore them otherwise).
fn pause_forever() -> ! {
    extern "C" fn quit(_: libc::c_int) {
        unsafe { libc::_exit(0) }
    }
    unsafe {
        libc::signal(libc::SIGTERM, quit as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, quit as *const () as libc::sighandler_t);
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        loop {
            libc::pause();
        }
    }
}

impl libcontainer::workload::Executor for SizedTtyExecutor {
    fn exec(&self, spec: &oci_spec::runtime::Spec) -> Result<(), libcontainer::workload::ExecutorError> {
        if is_pause(spec) {
            pause_forever();
        }
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
        if is_pause(spec) {
            return Ok(());
        }
        libcontainer::workload::default::DefaultExecutor {}.validate(spec)
    }
}

/// The container as the shim drives it: youki's libcontainer in-process, or an external runtime's
/// command line on the same bundle.
pub(super) enum Ctr {
    Lib(Box<Container>),
    Ext(External),
}

impl Ctr {
    pub(super) fn start(&mut self) -> Result<(), Failure> {
        match self {
            Ctr::Lib(c) => c.start().map_err(lib_failure),
            Ctr::Ext(x) => x.simple("start"),
        }
    }
    pub(super) fn pause(&mut self) -> Result<(), Failure> {
        match self {
            Ctr::Lib(c) => c.pause().map_err(lib_failure),
            Ctr::Ext(x) => x.simple("pause"),
        }
    }
    pub(super) fn resume(&mut self) -> Result<(), Failure> {
        match self {
            Ctr::Lib(c) => c.resume().map_err(lib_failure),
            Ctr::Ext(x) => x.simple("resume"),
        }
    }
    pub(super) fn delete(&mut self) {
        let r = match self {
            Ctr::Lib(c) => c.delete(true).map_err(lib_failure),
            Ctr::Ext(x) => x.delete(),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "deleting the runtime state failed");
        }
    }
}

/// A libcontainer error as the shim reports it: its text, and its kind. A program the init
/// process cannot run is known only from its report (the init sends its error over libcontainer's
/// channel as text); the rest from the error's variant.
pub(super) fn lib_failure(e: LibcontainerError) -> Failure {
    use LibcontainerError as E;
    let message = e.to_string();
    let kind = match runtime_message_kind(&message) {
        ErrorKind::Other => match &e {
            E::IncorrectStatus(_) | E::Exist => ErrorKind::Conflict,
            E::NoDirectory => ErrorKind::NotFound,
            E::InvalidInput(_) | E::InvalidID(_) | E::MissingSpec(_) | E::InvalidSpec(_) => ErrorKind::InvalidArgument,
            E::OtherIO(io) => io.kind().into(),
            E::OtherSyscall(errno) => (*errno).into(),
            _ => ErrorKind::Other,
        },
        k => k,
    };
    Failure::caused(kind, message, e)
}

pub(super) struct Created {
    pub(super) container: Ctr,
    pub(super) pid: Pid,
    /// pty master, or (stdin writer, stdout reader, stderr reader).
    pub(super) io: Io,
    pub(super) listener: StdUnixListener,
}

pub(super) fn external(args: &ShimArgs, bin: &Path) -> External {
    External {
        bin: bin.to_path_buf(),
        root: args.runtime_root.clone(),
        id: args.id.clone(),
        log: args.state_dir.join("runtime.log"),
    }
}

pub(super) fn create(args: &ShimArgs) -> Result<Created, Failure> {
    fs::create_dir_all(&args.runtime_root).map_err(|e| Failure::io(args.runtime_root.display(), e))?;
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
                .map_err(lib_failure)?;
            let b = apply_stdio(b, &mut plan).with_executor(SizedTtyExecutor);
            let container = b
                .validate_id()
                .map_err(lib_failure)?
                .as_init(&args.bundle)
                .with_systemd(false)
                .with_detach(true)
                .build()
                .map_err(lib_failure)?;
            let pid = container
                .pid()
                .ok_or_else(|| Failure::new(ErrorKind::Other, "container has no pid"))?;
            (Ctr::Lib(Box::new(container)), pid)
        }
    };
    let io = finish_stdio(plan)?;
    loopback_up(pid)?;
    let sock = args.state_dir.join(SHIM_SOCKET);
    let _ = fs::remove_file(&sock);
    let listener = StdUnixListener::bind(&sock).map_err(|e| Failure::io(sock.display(), e))?;
    listener.set_nonblocking(true)?;
    oci::store::write_volatile(&args.state_dir.join(PID_FILE), pid.to_string().as_bytes())?;
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
fn loopback_up(pid: Pid) -> Result<(), Failure> {
    use nix::sched::{setns, CloneFlags};
    let ns = format!("/proc/{pid}/ns/net");
    if fs::read_link(&ns).ok() == fs::read_link("/proc/self/ns/net").ok() {
        return Ok(());
    }
    let theirs = File::open(&ns).map_err(|e| Failure::io(&ns, e))?;
    let ours = File::open("/proc/self/ns/net").map_err(|e| Failure::io("/proc/self/ns/net", e))?;
    setns(&theirs, CloneFlags::CLONE_NEWNET).map_err(|e| Failure::errno("joining the container's network namespace", e))?;
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
    setns(&ours, CloneFlags::CLONE_NEWNET).map_err(|e| Failure::errno("leaving the container's network namespace", e))?;
    up.map_err(|e| Failure::io("bringing up loopback in the container", e))
}
