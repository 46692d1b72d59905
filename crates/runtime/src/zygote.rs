//! The shim zygote: a small single-threaded process the daemon starts once (`berth shim-zygote`)
//! and that forks a shim for each container it is asked to start. Exec'ing the berth binary for
//! every container (loading, relocating, parsing a command line) costs a few milliseconds of a
//! `run` that takes about 25; a fork of this idle process costs a fraction of one. The shims it
//! forks are the same as exec'd ones ([`crate::shim::run_detached`]): in their own session, owning
//! their container, surviving the daemon and the zygote. The daemon falls back to exec'ing
//! `berth shim` whenever the zygote does not answer ([`crate::client::Launcher`]).
//!
//! Protocol, one connection per shim: the daemon sends [`ShimArgs`] as one JSON line and reads one
//! line back, `ok <pid>` or `error: <message>` (see [`crate::proto::ready_error`]), written by
//! the shim itself once its container is created. The zygote exits when its stdin, a pipe from the daemon, reaches end of file: when the
//! daemon is gone, however it went.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::unistd::{fork, ForkResult};

use crate::error::ErrorKind;
use crate::proto::ready_error;
use crate::shim::{run_detached, ShimArgs};

/// Serve on `socket` until stdin closes.
pub fn serve(socket: &Path) -> ! {
    let _ = std::fs::remove_file(socket);
    let listener = match UnixListener::bind(socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth shim-zygote: bind {}: {e}", socket.display());
            std::process::exit(1);
        }
    };
    // Whoever connects has the zygote fork a root shim with the arguments it sends: root only.
    if let Err(e) = std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o600)) {
        eprintln!("berth shim-zygote: chmod {}: {e}", socket.display());
        std::process::exit(1);
    }
    // The kernel reaps the zygote's children (shims whose first job is done) by itself; each child
    // puts the default back before it has children of its own to wait for.
    // SAFETY: no handler function is installed, only a disposition.
    unsafe {
        let _ = signal(Signal::SIGCHLD, SigHandler::SigIgn);
    }
    // libpathrs caches one private, detached procfs mount per process, and the cgroup manager and
    // the mount code ask for it a dozen times per container. Made here once, it is inherited by
    // every shim and by libcontainer's processes forked from them (close-on-exec, so never by a
    // container's program), instead of each of those mounting a procfs of its own.
    let _procfs = pathrs::procfs::ProcfsHandle::new();
    let stdin = std::io::stdin();
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        // The daemon's end of stdin: anything but silence means it is gone (EOF reads as POLLIN).
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            break;
        }
        if fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            if let Ok((conn, _)) = listener.accept() {
                start_one(&listener, conn);
            }
        }
    }
    let _ = std::fs::remove_file(socket);
    std::process::exit(0)
}

/// Read one request from `conn` and fork a shim for it; the shim answers on `conn`.
fn start_one(listener: &UnixListener, conn: std::os::unix::net::UnixStream) {
    // The daemon sends its line at once; nothing may hold the zygote up for long.
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut conn = File::from(OwnedFd::from(conn));
    let mut line = String::new();
    let read = conn
        .try_clone()
        .map(|c| BufReader::new(c).read_line(&mut line))
        .and_then(|r| r)
        .map_err(|e| (ErrorKind::from(e.kind()), e.to_string()));
    let parsed = read.and_then(|_| serde_json::from_str(&line).map_err(|e| (ErrorKind::InvalidArgument, format!("bad request: {e}"))));
    let args: ShimArgs = match parsed {
        Ok(a) => a,
        Err((kind, e)) => {
            let _ = writeln!(conn, "{}", ready_error(kind, &e));
            return;
        }
    };
    // SAFETY: the zygote is single-threaded, so the child may do anything after the fork.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: as above; the default disposition, so the shim can wait for its children.
            unsafe {
                let _ = signal(Signal::SIGCHLD, SigHandler::SigDfl);
            }
            // The listener is the zygote's; the shim's stdin becomes /dev/null in run_detached.
            let _ = nix::unistd::close(std::os::fd::AsRawFd::as_raw_fd(listener));
            rename_process();
            run_detached(args, conn)
        }
        Ok(ForkResult::Parent { .. }) => {}
        Err(e) => {
            let _ = writeln!(conn, "{}", ready_error(e.into(), &format!("fork: {e}")));
        }
    }
}

/// Name the forked shim `berth-shim` (in `top`, `ps -o comm`, /proc/PID/comm); its command line
/// stays the zygote's, `berth shim-zygote`, as changing it needs CAP_SYS_RESOURCE.
fn rename_process() {
    let _ = nix::sys::prctl::set_name(c"berth-shim");
}
