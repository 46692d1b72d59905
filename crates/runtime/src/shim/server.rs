//! The control socket: one request per connection (see [`crate::proto`]), answered from the shim's
//! state; `attach` and `exec` go on as streams.

use std::rc::Rc;

use nix::sys::signal::{kill, Signal};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::exec::exec;
use super::stdio::Client;
use super::Shim;
use crate::error::{ErrorKind, Failure};
use crate::proto::{Reply, Request};

pub(super) async fn reply(w: &mut (impl AsyncWriteExt + Unpin), r: &Reply) {
    let mut line = serde_json::to_vec(r).expect("json");
    line.push(b'\n');
    let _ = w.write_all(&line).await;
}

pub(super) fn err(e: impl Into<Failure>) -> Reply {
    Reply::failed(&e.into())
}

pub(super) async fn handle(shim: Rc<Shim>, conn: UnixStream) {
    let (rd, mut wr) = conn.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let req: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            return reply(
                &mut wr,
                &err(Failure::caused(ErrorKind::InvalidArgument, format!("bad request: {e}"), e)),
            )
            .await
        }
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
            let r = Signal::try_from(signal).and_then(|s| kill(shim.pid, s));
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
                None => reply(&mut wr, &err(Failure::new(ErrorKind::Conflict, "no TTY to resize"))).await,
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
                return reply(&mut wr, &err(Failure::new(ErrorKind::Conflict, "container is not running"))).await;
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
