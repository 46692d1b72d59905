//! `berth cp`, `berth export`, `berth diff`: container filesystems.
//!
//! Archives are made and unpacked by the system `tar` (GNU tar), streamed through the API's
//! `GET/PUT /containers/{id}/archive`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use hyper::Method;
use serde_json::Value;

use super::client::{empty, for_each_chunk, is_status, query, reader_body, seg, Client};
use super::images::download;

/// Flags of `berth cp`.
#[derive(clap::Args, Debug)]
pub struct CpArgs {
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, a host path, or - (a tar stream on stdin)
    #[arg(value_name = "SRC")]
    pub src: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar stream on stdout)
    #[arg(value_name = "DEST")]
    pub dest: String,
}

/// Flags of `berth export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long, value_name = "string")]
    pub output: Option<PathBuf>,
    /// Container
    pub container: String,
}

/// Flags of `berth diff`.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// Container
    pub container: String,
}

/// `CONTAINER:PATH` → Some((container, path)); host paths (containing no `:` before a `/`) → None.
fn split_container_path(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    if c.is_empty() || c.contains('/') {
        return None;
    }
    Some((c, p))
}

fn base_name(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    Path::new(t)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| t.to_string())
}

/// `berth cp`.
pub async fn cp(client: &Client, a: CpArgs) -> Result<i32> {
    match (split_container_path(&a.src), split_container_path(&a.dest)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((c, p)), None) => copy_from(client, c, p, &a.dest, a.follow_link).await?,
        (None, Some((c, p))) => copy_to(client, &a.src, c, p, a.follow_link).await?,
    }
    Ok(0)
}

async fn copy_from(client: &Client, container: &str, src: &str, dest: &str, follow: bool) -> Result<()> {
    if src.is_empty() {
        bail!("filesystem path cannot be empty");
    }
    let path = format!("/containers/{}/archive{}", seg(container), query(&[("path", src)]));
    if dest == "-" {
        if std::io::stdout().is_terminal() {
            bail!("cowardly refusing to write a tar archive to a terminal");
        }
        return download(client, &path, None).await;
    }
    let resp = client.send(Method::GET, &path, empty(), None, false).await?;
    let name = resp
        .headers()
        .get("X-Docker-Container-Path-Stat")
        .and_then(|h| h.to_str().ok())
        .and_then(decode_stat)
        .and_then(|v| v.get("name").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| base_name(src));
    let _ = follow;
    let dest_path = PathBuf::from(dest);
    let (dir, rename_to) = if dest_path.is_dir() {
        (dest_path.clone(), None)
    } else {
        if dest.ends_with('/') {
            bail!("destination directory {dest:?} does not exist");
        }
        let parent = dest_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            bail!("destination directory {:?} does not exist", parent.display().to_string());
        }
        let tmp = parent.join(format!(".berth-cp-{}", std::process::id()));
        std::fs::create_dir(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        (tmp, Some(dest_path.clone()))
    };
    let mut child = Command::new("tar")
        .arg("-x")
        .arg("--no-same-owner")
        .arg("-C")
        .arg(&dir)
        .arg("-f")
        .arg("-")
        .stdin(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("tar stdin"))?;
    let r = for_each_chunk(resp.into_body(), |d| Ok(stdin.write_all(d)?)).await;
    drop(stdin);
    let status = child.wait()?;
    let result = (|| -> Result<()> {
        r?;
        if !status.success() {
            bail!("tar failed to extract the archive");
        }
        if let Some(target) = &rename_to {
            std::fs::rename(dir.join(&name), target).with_context(|| format!("rename to {}", target.display()))?;
        }
        Ok(())
    })();
    if rename_to.is_some() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn decode_stat(b64: &str) -> Option<Value> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in b64.bytes() {
        if c == b'=' {
            break;
        }
        let v = T.iter().position(|&t| t == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    serde_json::from_slice(&out).ok()
}

async fn copy_to(client: &Client, src: &str, container: &str, dest: &str, follow: bool) -> Result<()> {
    if dest.is_empty() {
        bail!("filesystem path cannot be empty");
    }
    let put = |path: &str| format!("/containers/{}/archive{}", seg(container), query(&[("path", path)]));
    if src == "-" {
        let body = reader_body(super::stream::stdin_stream());
        client.send(Method::PUT, &put(dest), body, Some("application/x-tar"), false).await?;
        return Ok(());
    }
    let src_path = Path::new(src);
    if std::fs::symlink_metadata(src_path).is_err() {
        bail!("could not find the file {src} in the host");
    }
    // Is the destination an existing directory in the container?
    let dest_is_dir = if dest.ends_with('/') {
        true
    } else {
        match client.send(Method::HEAD, &put(dest), empty(), None, false).await {
            Ok(resp) => resp
                .headers()
                .get("X-Docker-Container-Path-Stat")
                .and_then(|h| h.to_str().ok())
                .and_then(decode_stat)
                .and_then(|v| v.get("mode").and_then(Value::as_u64))
                .is_none_or(|m| m & (1 << 31) != 0),
            Err(e) if is_status(&e, 404) => false,
            Err(e) => return Err(e),
        }
    };
    let canon = if follow {
        std::fs::canonicalize(src_path)?
    } else {
        src_path.to_path_buf()
    };
    let parent = canon
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let base = base_name(&canon.to_string_lossy());
    let (target_dir, new_name) = if dest_is_dir {
        (dest.to_string(), None)
    } else {
        let d = Path::new(dest);
        let dir = d
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or("/".into());
        (dir, Some(base_name(dest)))
    };
    let mut cmd = Command::new("tar");
    cmd.arg("-c").arg("-f").arg("-").arg("-C").arg(&parent);
    if let Some(n) = &new_name {
        if n != &base {
            let esc = |s: &str| s.replace('\\', "\\\\").replace('|', "\\|");
            let re: String = base
                .chars()
                .map(|c| {
                    if c.is_alphanumeric() || c == '_' || c == '-' {
                        c.to_string()
                    } else {
                        format!("\\{c}")
                    }
                })
                .collect();
            cmd.arg(format!("--transform=s|^{}|{}|", re, esc(n)));
        }
    }
    cmd.arg("--").arg(&base);
    let mut child = cmd.stdout(Stdio::piped()).spawn().context("running tar")?;
    let out = child.stdout.take().ok_or_else(|| anyhow!("tar stdout"))?;
    let out = tokio::process::ChildStdout::from_std(out)?;
    let r = client
        .send(Method::PUT, &put(&target_dir), reader_body(out), Some("application/x-tar"), false)
        .await;
    let status = child.wait()?;
    r?;
    if !status.success() {
        bail!("tar failed to archive {src}");
    }
    Ok(())
}

/// `berth export`.
pub async fn export(client: &Client, a: ExportArgs) -> Result<i32> {
    download(client, &format!("/containers/{}/export", seg(&a.container)), a.output.as_ref()).await?;
    Ok(0)
}

/// `berth diff`.
pub async fn diff(client: &Client, a: DiffArgs) -> Result<i32> {
    let v = client.get(&format!("/containers/{}/changes", seg(&a.container))).await?;
    for ch in v.as_array().into_iter().flatten() {
        let kind = match ch.get("Kind").and_then(Value::as_i64) {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            _ => "?",
        };
        println!("{kind} {}", ch.get("Path").and_then(Value::as_str).unwrap_or(""));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths() {
        assert_eq!(split_container_path("web:/etc/hosts"), Some(("web", "/etc/hosts")));
        assert_eq!(split_container_path("./a:b"), None);
        assert_eq!(split_container_path("/tmp/x"), None);
        assert_eq!(split_container_path("file"), None);
        assert_eq!(base_name("/etc/hosts"), "hosts");
        assert_eq!(base_name("/etc/"), "etc");
    }

    #[test]
    fn stat_header() {
        // {"name":"hosts","mode":420}
        let v = decode_stat("eyJuYW1lIjoiaG9zdHMiLCJtb2RlIjo0MjB9").unwrap();
        assert_eq!(v["name"], "hosts");
        assert_eq!(v["mode"], 420);
    }
}
