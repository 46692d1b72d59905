//! Probes and lifecycle handlers, as the kubelet runs them: `exec` in the container,
//! `httpGet` (2xx and 3xx succeed) and `tcpSocket` against the pod's address.

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
    Err("the probe names no handler Berth runs (exec, httpGet, tcpSocket)".into())
}
