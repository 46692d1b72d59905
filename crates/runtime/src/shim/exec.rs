//! Exec processes: spawned into the running container (libcontainer's tenant builder or the external
//! runtime's `exec --detach`), streamed on their request's connection, reaped by the event loop.

use std::fs;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use super::container::{external, lib_failure, SizedTtyExecutor};
use super::server::{err, reply};
use super::stdio::{apply_stdio, ext_stdio, finish_stdio, frame, plan_stdio, Fd, Io};
use super::Shim;
use crate::error::Failure;
use crate::proto::Reply;

pub(super) struct ExecState {
    pub(super) id: String,
    pub(super) done: watch::Sender<Option<i32>>,
}

fn spawn_exec(shim: &Shim, exec_id: &str, process: &Value, stdin: bool) -> Result<(Pid, Io), Failure> {
    let tty = process.get("terminal").and_then(|v| v.as_bool()).unwrap_or(false);
    let pfile = shim.args.state_dir.join(format!("exec-{exec_id}-process.json"));
    oci::store::write_volatile(&pfile, &serde_json::to_vec(process).expect("json"))?;
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
                .map_err(lib_failure)?;
            let b = apply_stdio(b, &mut plan).with_executor(SizedTtyExecutor);
            b.as_tenant()
                .with_process(Some(&pfile))
                .with_detach(true)
                .build()
                .map_err(lib_failure)
        }
    };
    let _ = fs::remove_file(&pfile);
    let pid = pid?;
    Ok((pid, finish_stdio(plan)?))
}

pub(super) async fn exec(
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
        Err(e) => return reply(&mut wr, &err(e.context("exec failed"))).await,
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
