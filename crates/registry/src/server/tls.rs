//! Serving: a TCP listener, plain HTTP/1.1 or TLS (rustls with the `ring` provider, HTTP/1.1 over
//! ALPN), with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::error::{Error, Result};

/// PEM files of a server certificate (chain) and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Build a rustls server configuration from PEM files.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::Tls(format!("read {}: {e}", p.display())));
    let cert_pem = read(&files.cert)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{}: no certificate found", files.cert.display())));
    }
    let key_pem = read(&files.key)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| Error::Tls(format!("{}: {e}", files.key.display())))?
        .ok_or_else(|| Error::Tls(format!("{}: no private key found", files.key.display())))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("{} / {}: {e}", files.cert.display(), files.key.display())))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A bound listener, ready to serve a router.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Server {
    /// Bind `addr` (`HOST:PORT`); with `tls`, load the certificate and key now so that a bad file
    /// fails here rather than at the first connection.
    pub async fn bind(addr: &str, tls: Option<&TlsFiles>) -> Result<Server> {
        let tls = tls.map(server_config).transpose()?.map(|c| TlsAcceptor::from(Arc::new(c)));
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
        Ok(Server { listener, tls })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|source| Error::Bind {
            addr: "listener".into(),
            source,
        })
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serve `app` until `shutdown` completes. With plain HTTP, in-flight requests finish first;
    /// with TLS, accepting stops and open connections finish on their own.
    pub async fn serve(self, app: Router, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Some(acceptor) = self.tls else {
            return axum::serve(self.listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|source| Error::Bind {
                    addr: "listener".into(),
                    source,
                });
        };
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = self.listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades()
                    .await
                {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_reported() {
        let t = tempfile::tempdir().unwrap();
        let cert = t.path().join("c.pem");
        let key = t.path().join("k.pem");
        std::fs::write(&cert, "not pem").unwrap();
        std::fs::write(&key, "not pem").unwrap();
        let e = server_config(&TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })
        .unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let e = server_config(&TlsFiles {
            cert: t.path().join("missing"),
            key,
        })
        .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
