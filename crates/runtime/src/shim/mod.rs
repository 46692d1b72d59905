//! `berth shim`: one small process per container.
//!
//! It forks once so that the process the daemon started can report "ready" (or the error) and exit,
//! leaving the shim detached in its own session; the daemon may then die and restart without touching
//! the container. The shim creates the container with libcontainer (it is single-threaded, as
//! libcontainer requires: its event loop is a current-thread tokio runtime), owns the container's
//! stdio (JSON-lines log file, attach clients), serves a control socket, reaps the init and exec
//! processes, writes the exit status to `exit.json` and deletes the runtime state when the container
//! exits.
//!
//! The parts: `container` creates the container (libcontainer or an external runtime), `stdio`
//! plumbs a process's stdio and writes the json-file log (with its rotation), `server` answers the
//! control socket and `exec` runs exec processes; this module holds the shim's state, its event
//! loop and the reaping of its children.

mod container;
mod exec;
mod server;
mod stdio;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, fork, setsid, ForkResult, Pid};
use tokio::net::UnixListener;
use tokio::sync::watch;

use crate::proto::{exec_exit_file, ready_error, ExitInfo, EXIT_FILE, SHIM_SOCKET};
use container::{create, Created, Ctr};
use exec::ExecState;
use stdio::{frame, Client, Fd, Io, LogWriter};
pub use stdio::{rotated_log, LogRotation};

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
            println!("{}", ready_error(e.into(), &format!("fork: {e}")));
            std::process::exit(1);
        }
    }
    drop(rd);
    run_detached(args, File::from(wr))
}

/// Become the container's shim: a new session, stdio on the shim's log, the container created
/// (`ok <pid>` or `error: ...` with the failure's kind written to `report`, then closed), then serve
/// until it is gone.
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
            let _ = writeln!(report, "{}", ready_error(e.kind, &e.message));
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The event loop.

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
                    tokio::task::spawn_local(server::handle(shim.clone(), conn));
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
