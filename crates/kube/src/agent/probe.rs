//! Probes and lifecycle handlers, as the kubelet runs them: `exec` in the container,
//! `httpGet` (2xx and 3xx succeed), `tcpSocket` and `grpc` (the standard health service,
//! `grpc.health.v1.Health/Check` over plaintext HTTP/2) against the pod's address.

use std::sync::Arc;
use std::time::Duration;

use engine::service::ContainerService;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A port given by number or by the name of one of the container's ports.
fn port(c: &Value, p: &Value) -> Result<u16, String> {
    if let Some(n) = p.as_u64() {
        return u16::try_from(n).map_err(|_| format!("invalid port {n}"));
    }
    let name = p.as_str().unwrap_or("");
    if let Ok(n) = name.parse::<u16>() {
        return Ok(n);
    }
    c.get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|x| x["name"] == name)
        .and_then(|x| x["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| format!("couldn't find port {name:?} in the container's ports"))
}

async fn http_get(h: &Value, c: &Value, pod_ip: &str, timeout: Duration) -> Result<String, String> {
    let host = h["host"].as_str().filter(|s| !s.is_empty()).unwrap_or(pod_ip).to_string();
    let port = port(c, &h["port"])?;
    let path = h["path"].as_str().filter(|s| !s.is_empty()).unwrap_or("/");
    if h["scheme"] == "HTTPS" {
        return Err("HTTPS probes are not supported by Berth yet".into());
    }
    let mut req =
        format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n");
    for hd in h["httpHeaders"].as_array().into_iter().flatten() {
        req.push_str(&format!(
            "{}: {}\r\n",
            hd["name"].as_str().unwrap_or(""),
            hd["value"].as_str().unwrap_or("")
        ));
    }
    req.push_str("\r\n");
    let run = async {
        let mut s = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("Get \"http://{host}:{port}{path}\": {e}"))?;
        s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 1024];
        let mut got = 0;
        while got < buf.len() {
            let n = s.read(&mut buf[got..]).await.map_err(|e| e.to_string())?;
            if n == 0 || buf[..got + n].windows(2).any(|w| w == b"\r\n") {
                got += n;
                break;
            }
            got += n;
        }
        let line = String::from_utf8_lossy(&buf[..got]).lines().next().unwrap_or("").to_string();
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("malformed HTTP response {line:?}"))?;
        if (200..400).contains(&code) {
            Ok(String::new())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "Get \"http://{host}:{port}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus` names.
fn serving_status(n: u64) -> &'static str {
    match n {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// gRPC status code names (for errors as the kubelet words them).
fn grpc_code(n: u32) -> &'static str {
    [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ]
    .get(n as usize)
    .copied()
    .unwrap_or("Unknown")
}

/// One `grpc.health.v1.Health/Check` call of `service` at `addr`: the serving status's number.
async fn health_check(addr: (&str, u16), service: &str) -> Result<u64, String> {
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let (client, conn) = h2::client::handshake(tcp).await.map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.map_err(|e| format!("connect: {e}"))?;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}:{}/grpc.health.v1.Health/Check", addr.0, addr.1))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kube-probe/1.33")
        .body(())
        .map_err(|e| e.to_string())?;
    // HealthCheckRequest { string service = 1; }, length-prefixed as gRPC frames messages.
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let (response, mut stream) = client.send_request(req, false).map_err(|e| format!("rpc: {e}"))?;
    stream.send_data(bytes::Bytes::from(frame), true).map_err(|e| format!("rpc: {e}"))?;
    let response = response.await.map_err(|e| format!("rpc: {e}"))?;
    let status_of = |h: &http::HeaderMap| -> Option<(u32, String)> {
        let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
        let msg = h
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .map(|m| percent_encoding::percent_decode_str(m).decode_utf8_lossy().into_owned())
            .unwrap_or_default();
        Some((code, msg))
    };
    let failed = |(code, msg): (u32, String)| -> String {
        if code == 12 {
            format!("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {msg}")
        } else {
            format!("error: health rpc probe failed: rpc error: code = {} desc = {msg}", grpc_code(code))
        }
    };
    // A trailers-only response carries its status in the headers.
    if let Some(s) = status_of(response.headers()).filter(|(c, _)| *c != 0) {
        return Err(failed(s));
    }
    let mut body = response.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| format!("rpc: {e}"))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.map_err(|e| format!("rpc: {e}"))?.unwrap_or_default();
    if let Some(s) = status_of(&trailers).filter(|(c, _)| *c != 0) {
        return Err(failed(s));
    }
    // HealthCheckResponse { ServingStatus status = 1; } after the 5-byte frame header.
    let msg = data.get(5..).unwrap_or(&[]);
    let mut status = 0;
    let mut i = 0;
    while i < msg.len() {
        let key = msg[i];
        i += 1;
        let mut v = 0u64;
        let mut shift = 0;
        while i < msg.len() {
            let b = msg[i];
            i += 1;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        if key == 0x08 {
            status = v;
        }
    }
    Ok(status)
}

/// A `grpc` probe: the pod's `port`, the health service's `service` (empty: the server as a
/// whole); success is SERVING.
async fn grpc(g: &Value, pod_ip: &str, timeout: Duration) -> Result<String, String> {
    let port = g["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("invalid gRPC port {}", g["port"]))?;
    let service = g["service"].as_str().unwrap_or("");
    match tokio::time::timeout(timeout, health_check((pod_ip, port), service)).await {
        Err(_) => Err(format!("timeout: health rpc did not complete within {}s", timeout.as_secs())),
        Ok(Err(e)) if e.starts_with("connect") => Err(format!(
            "timeout: failed to connect service \"{pod_ip}:{port}\" within {}s: {e}",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok(1)) => Ok(String::new()),
        Ok(Ok(s)) => Err(format!("service unhealthy (responded with \"{}\")", serving_status(s))),
    }
}

/// Run a probe or handler once: `Ok` on success, else why it failed.
pub async fn run(engine: &Arc<dyn ContainerService>, id: &str, c: &Value, p: &Value, pod_ip: &str) -> Result<String, String> {
    let timeout = Duration::from_secs(p["timeoutSeconds"].as_u64().unwrap_or(1).max(1));
    if let Some(e) = p.get("exec").filter(|e| e.is_object()) {
        let argv: Vec<String> = e["command"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect();
        let (code, out) = engine.exec(id, &argv, timeout).await;
        return if code == 0 {
            Ok(out)
        } else if code < 0 {
            Err(out)
        } else {
            Err(format!("command {argv:?} exited with {code}: {out}"))
        };
    }
    if let Some(h) = p.get("httpGet").filter(|e| e.is_object()) {
        return http_get(h, c, pod_ip, timeout).await;
    }
    if let Some(g) = p.get("grpc").filter(|e| e.is_object()) {
        return grpc(g, pod_ip, timeout).await;
    }
    if let Some(t) = p.get("tcpSocket").filter(|e| e.is_object()) {
        let host = t["host"].as_str().filter(|s| !s.is_empty()).unwrap_or(pod_ip).to_string();
        let port = port(c, &t["port"])?;
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host.as_str(), port))).await {
            Ok(Ok(_)) => Ok(String::new()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if p.get("sleep").is_some_and(Value::is_object) {
        let s = p.pointer("/sleep/seconds").and_then(Value::as_u64).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(s)).await;
        return Ok(String::new());
    }
    Err("the probe names no handler Berth runs (exec, httpGet, tcpSocket, grpc, sleep)".into())
}
