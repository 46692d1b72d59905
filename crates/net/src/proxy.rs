//! The userland proxy of published ports: TCP connections and UDP datagrams to a host address
//! are relayed to the container's. It serves what the kernel's DNAT path cannot (the host's
//! loopback); DNAT carries the rest.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Mutex;

use crate::{Error, Result};

/// Bind a published port: `host` with port 0 takes a free one. A port in use is Docker's error.
pub fn bind_tcp(host: SocketAddr) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(host).map_err(|e| bind_error(host, e))?;
    l.set_nonblocking(true).map_err(|e| nonblocking_error(host, e))?;
    Ok(l)
}

/// A failed bind, in Docker's words when the port is taken.
fn bind_error(host: SocketAddr, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        Error::Other(format!("Bind for {host} failed: port is already allocated"))
    } else {
        Error::Io {
            op: "bind",
            target: host.to_string(),
            source: e,
        }
    }
}

fn nonblocking_error(host: SocketAddr, e: std::io::Error) -> Error {
    Error::Io {
        op: "set non-blocking",
        target: host.to_string(),
        source: e,
    }
}

/// Relay every connection `listener` accepts to `target`, both ways, until dropped (abort the
/// task to stop publishing).
pub async fn serve_tcp(listener: std::net::TcpListener, target: SocketAddr) {
    let Ok(listener) = TcpListener::from_std(listener) else { return };
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let _ = inbound.set_nodelay(true);
            match TcpStream::connect(target).await {
                Ok(mut outbound) => {
                    let _ = outbound.set_nodelay(true);
                    // 256 KiB a direction: tokio's 8 KiB default costs a syscall pair per 8 KiB
                    // on large responses.
                    let _ = tokio::io::copy_bidirectional_with_sizes(&mut inbound, &mut outbound, 256 << 10, 256 << 10).await;
                }
                Err(e) => tracing::debug!(%target, error = %e, "a published port could not reach its container"),
            }
        });
    }
}

/// Bind a published UDP port (port 0: a free one). A port in use is Docker's error.
pub fn bind_udp(host: SocketAddr) -> Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(host).map_err(|e| bind_error(host, e))?;
    s.set_nonblocking(true).map_err(|e| nonblocking_error(host, e))?;
    Ok(s)
}

/// How long a UDP client's flow lives without traffic (Docker's proxy uses 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);

/// Relay datagrams `socket` receives to `target`, one upstream socket per client so replies find
/// their way back, until dropped (abort the task to stop publishing).
pub async fn serve_udp(socket: std::net::UdpSocket, target: SocketAddr) {
    let Ok(socket) = UdpSocket::from_std(socket) else { return };
    let socket = Arc::new(socket);
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Arc::default();
    // The flows' relays die with this task (the set aborts them when dropped), so aborting it
    // frees the published port at once.
    let mut relays = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        while relays.try_join_next().is_some() {}
        let Ok((n, client)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let existing = flows.lock().await.get(&client).cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let Ok(u) = UdpSocket::bind("0.0.0.0:0").await else { continue };
                if u.connect(target).await.is_err() {
                    continue;
                }
                let u = Arc::new(u);
                flows.lock().await.insert(client, u.clone());
                let (back, up, flows) = (socket.clone(), u.clone(), flows.clone());
                relays.spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)).await {
                        if back.send_to(&buf[..n], client).await.is_err() {
                            break;
                        }
                    }
                    flows.lock().await.remove(&client);
                });
                u
            }
        };
        if let Err(e) = upstream.send(&buf[..n]).await {
            tracing::debug!(%target, error = %e, "a published UDP port could not reach its container");
        }
    }
}
