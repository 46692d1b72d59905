//! The userland proxy of published TCP ports: connections to a host address are relayed to the
//! container's. (The kernel's DNAT path, which does not serve the host's loopback, comes next.)

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

use crate::{Error, Result};

/// Bind a published port: `host` with port 0 takes a free one. A port in use is Docker's error.
pub fn bind_tcp(host: SocketAddr) -> Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(host).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            Error::Other(format!("Bind for {host} failed: port is already allocated"))
        } else {
            Error::Io {
                op: "bind",
                target: host.to_string(),
                source: e,
            }
        }
    })?;
    l.set_nonblocking(true).map_err(|e| Error::Io {
        op: "set non-blocking",
        target: host.to_string(),
        source: e,
    })?;
    Ok(l)
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
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                Err(e) => tracing::debug!(%target, error = %e, "a published port could not reach its container"),
            }
        });
    }
}
