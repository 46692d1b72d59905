//! Pull, push and login: the engine's images against any OCI registry, reporting progress as the
//! JSON message stream the docker CLI renders (`{"status": ..., "id": ..., "progressDetail": ...}`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use oci::spec::{Descriptor, Index, Manifest};
use oci::Digest;
use registry::client::{Body, ClientError, Credentials, Repository};
use serde_json::{json, Value};
use tokio::sync::mpsc::Sender;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// Docker Hub's API endpoint and the names it goes by.
pub use image::reference::DOCKER_HUB;

/// Layers transferred at once.
const PARALLEL: usize = 3;

/// Where a reference lives: its registry and the repository's path there.
pub fn repository(r: &image::Reference) -> Repository {
    Repository {
        registry: r.registry().to_string(),
        name: r.remote_name(),
    }
}

/// The registry a login's `serveraddress` names (`https://index.docker.io/v1/` is Docker Hub).
pub fn registry_of_server(addr: &str) -> String {
    let a = addr.trim_start_matches("https://").trim_start_matches("http://");
    let a = a.split('/').next().unwrap_or("");
    match a {
        "" => DOCKER_HUB.into(),
        hub if image::reference::is_docker_hub(hub) => DOCKER_HUB.into(),
        other => other.to_string(),
    }
}

/// Decode an `X-Registry-Auth` header (base64url JSON of Docker's AuthConfig).
pub fn decode_registry_auth(h: &str) -> Credentials {
    auth_config(&decode_header_json(h))
}

/// The JSON in a registry header (`X-Registry-Auth`, `X-Registry-Config`): base64url as docker
/// sends it, padded or not, or standard base64; Null when it does not decode.
pub fn decode_header_json(h: &str) -> Value {
    use base64::Engine as _;
    let h = h.trim();
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(h)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
        .unwrap_or_default();
    serde_json::from_slice(&raw).unwrap_or(Value::Null)
}

/// Credentials from an AuthConfig object (`username`/`password`, or `auth` = base64 user:pass).
pub fn auth_config(v: &Value) -> Credentials {
    use base64::Engine as _;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut c = Credentials {
        username: s("username"),
        password: s("password"),
        identity_token: s("identitytoken"),
    };
    if c.username.is_empty() {
        if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(s("auth")) {
            if let Some((u, p)) = String::from_utf8_lossy(&b).split_once(':') {
                c.username = u.to_string();
                c.password = p.to_string();
            }
        }
    }
    c
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

/// Docker's textual progress bar.
fn bar(cur: u64, total: u64) -> String {
    let human = |n: u64| {
        let f = n as f64;
        if f >= 1e9 {
            format!("{:.3}GB", f / 1e9)
        } else if f >= 1e6 {
            format!("{:.2}MB", f / 1e6)
        } else if f >= 1e3 {
            format!("{:.1}kB", f / 1e3)
        } else {
            format!("{n}B")
        }
    };
    if total == 0 {
        return human(cur);
    }
    let width = 50usize;
    let filled = ((cur.min(total) as f64 / total as f64) * width as f64) as usize;
    let arrow = if filled < width { ">" } else { "" };
    format!(
        "[{}{}{}] {}/{}",
        "=".repeat(filled.saturating_sub(if arrow.is_empty() { 0 } else { 1 })),
        arrow,
        " ".repeat(width - filled.min(width)),
        human(cur),
        human(total)
    )
}

async fn say(out: &Sender<Value>, v: Value) {
    let _ = out.send(v).await;
}

async fn status(out: &Sender<Value>, id: &str, s: &str) {
    say(out, json!({"status": s, "progressDetail": {}, "id": id})).await;
}

/// Pick the manifest for `platform` (`os/arch[/variant]`) from an index.
fn select_platform(index: &Index, platform: &str) -> Result<Descriptor> {
    let mut parts = platform.split('/');
    let (os, arch, variant) = (parts.next().unwrap_or("linux"), parts.next().unwrap_or(""), parts.next());
    index
        .manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == os && p.architecture == arch && variant.is_none_or(|v| p.variant.as_deref() == Some(v)))
        })
        .cloned()
        .ok_or_else(|| {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref().map(|p| format!("{}/{}", p.os, p.architecture)))
                .collect();
            Error::NotFound(format!(
                "no matching manifest for {platform} in the manifest list entries (has: {})",
                have.join(", ")
            ))
        })
}

const INDEX_TYPES: [&str; 2] = [oci::spec::MEDIA_OCI_INDEX, oci::spec::MEDIA_DOCKER_LIST];

impl Engine {
    /// `docker pull`: fetch `reference` (tag or digest) for `platform` (default `linux/<host arch>`),
    /// skipping blobs already here, layers in parallel. Returns the image ID.
    pub async fn pull(
        self: &Arc<Self>,
        reference: &str,
        platform: Option<&str>,
        creds: &Credentials,
        out: &Sender<Value>,
    ) -> Result<Digest> {
        let r = image::Reference::parse(reference)?;
        let repo = repository(&r);
        let want = r.digest.clone().or_else(|| r.tag.clone()).unwrap_or_else(|| "latest".into());
        let platform = platform
            .filter(|p| !p.is_empty())
            .map(String::from)
            .unwrap_or_else(|| format!("linux/{}", oci::spec::host_arch()));
        if r.digest.is_none() {
            status(out, &want, &format!("Pulling from {}", repo.name)).await;
        }
        let (mut data, mut media_type, top_digest) = self.registry.get_manifest(&repo, &want, creds).await?;
        if INDEX_TYPES.contains(&media_type.as_str()) {
            let index = Index::parse(&data)?;
            let d = select_platform(&index, &platform)?;
            let (d2, mt2, _) = self.registry.get_manifest(&repo, &d.digest.to_string(), creds).await?;
            data = d2;
            media_type = mt2;
        }
        if media_type != oci::spec::MEDIA_OCI_MANIFEST && media_type != oci::spec::MEDIA_DOCKER_MANIFEST {
            return Err(Error::BadRequest(format!("{reference}: unsupported manifest type {media_type:?}")));
        }
        let manifest = Manifest::parse(&data)?;
        for l in &manifest.layers {
            if oci::spec::Compression::of_media_type(&l.media_type).is_none() {
                return Err(Error::BadRequest(format!(
                    "{reference}: layer {} has unsupported media type {:?}",
                    l.digest, l.media_type
                )));
            }
        }
        let existed = self.images.resolve(&r.tagged()).ok();
        // What this pull stores is removed again if it fails (unless an image uses it), so a
        // refused pull leaves nothing behind.
        let mut fresh: Vec<Digest> = Vec::new();
        let id = match self.fetch_and_record(reference, &repo, &data, creds, out, &mut fresh).await {
            Ok(id) => id,
            Err(e) => {
                self.images.discard(&fresh, &[]);
                return Err(e);
            }
        };
        for l in &manifest.layers {
            status(out, &short(&l.digest), "Pull complete").await;
        }
        if r.digest.is_none() {
            self.images.tag(&id, &r.tagged())?;
        }
        self.images.set_repo_digest(&id, format!("{}@{top_digest}", r.repo))?;
        // The artifacts about it (provenance, SBOM) come along; a pull never fails for them.
        match self.pull_referrers(&repo, &Digest::of(&data), &id, creds).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(image = %id, referrers = n, "pulled the image's artifacts"),
            Err(e) => tracing::warn!(image = %id, error = %e, "pulling the image's artifacts"),
        }
        say(out, json!({"status": format!("Digest: {top_digest}")})).await;
        let name = if r.digest.is_some() {
            format!("{}@{top_digest}", r.repo)
        } else {
            r.tagged()
        };
        let s = if existed.as_ref() == Some(&id) {
            format!("Status: Image is up to date for {name}")
        } else {
            format!("Status: Downloaded newer image for {name}")
        };
        say(out, json!({"status": s})).await;
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("name".to_string(), name);
        self.events.emit("image", "pull", &id.to_string(), attrs);
        Ok(id)
    }

    /// Fetch the config and layers of the manifest (`raw`, as the registry sent it, which is what
    /// is stored) that are not here yet, unpack the layers (within the daemon's limits) and only
    /// then record the image. The blobs it stores are pushed to `fresh`.
    async fn fetch_and_record(
        self: &Arc<Self>,
        reference: &str,
        repo: &Repository,
        raw: &[u8],
        creds: &Credentials,
        out: &Sender<Value>,
        fresh: &mut Vec<Digest>,
    ) -> Result<Digest> {
        let manifest = &Manifest::parse(raw)?;
        let content = self.images.content();
        // The config.
        if !content.contains(&manifest.config.digest) {
            let (mut s, _) = self.registry.get_blob(repo, &manifest.config.digest, creds).await?;
            let mut buf = Vec::new();
            while let Some(chunk) = s.next().await {
                buf.extend_from_slice(&chunk?);
                if buf.len() > 64 << 20 {
                    return Err(Error::BadRequest("the image config is larger than 64 MiB".into()));
                }
            }
            if Digest::of(&buf) != manifest.config.digest {
                return Err(Error::BadRequest(format!(
                    "config {}: the registry sent other content",
                    manifest.config.digest
                )));
            }
            let (d, _, created) = content.ingest_new(buf.as_slice(), Some(&manifest.config.digest))?;
            if created {
                fresh.push(d);
            }
        }
        let config = self.images.config(&manifest.config.digest)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(Error::BadRequest(format!(
                "{reference}: the config lists {} layers, the manifest {}",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        // The layers, a few at a time.
        let jobs = manifest.layers.iter().cloned().map(|l| {
            let me = self.clone();
            let repo = repo.clone();
            let creds = creds.clone();
            let out = out.clone();
            async move {
                let r = me.pull_layer(&repo, &l, &creds, &out).await;
                (l.digest, r)
            }
        });
        let results: Vec<(Digest, Result<bool>)> = futures_util::stream::iter(jobs).buffer_unordered(PARALLEL).collect().await;
        let mut failed = None;
        for (digest, r) in results {
            match r {
                Ok(true) => fresh.push(digest),
                Ok(false) => {}
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // Unpack, then record (so the first run does not pay for the unpack, and an image whose
        // layers do not unpack within the limits is never recorded).
        let me = self.clone();
        let m2 = manifest.clone();
        let raw = raw.to_vec();
        let fresh2 = fresh.clone();
        tokio::task::spawn_blocking(move || me.images.add_manifest_unpacked(&m2, &raw, &fresh2))
            .await
            .map_err(crate::error::internal)?
            .map_err(Into::into)
    }

    /// Download one layer blob unless it is here; whether it was stored by this call.
    async fn pull_layer(&self, repo: &Repository, l: &Descriptor, creds: &Credentials, out: &Sender<Value>) -> Result<bool> {
        let id = short(&l.digest);
        let content = self.images.content();
        if content.contains(&l.digest) {
            status(out, &id, "Already exists").await;
            return Ok(false);
        }
        status(out, &id, "Pulling fs layer").await;
        let (mut stream, len) = self.registry.get_blob(repo, &l.digest, creds).await?;
        let total = len.unwrap_or(l.size);
        // The blob is written by a blocking thread fed through a channel.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
        let writer = content.writer()?;
        let expected = l.digest.clone();
        let write = tokio::task::spawn_blocking(move || -> Result<bool> {
            use std::io::Write;
            let mut w = writer;
            while let Some(b) = rx.blocking_recv() {
                w.write_all(&b).map_err(crate::error::internal)?;
            }
            Ok(w.commit_new(Some(&expected))?.2)
        });
        let mut done = 0u64;
        let mut last = Instant::now() - Duration::from_secs(1);
        let mut failed: Option<Error> = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => {
                    done += b.len() as u64;
                    // The manifest says how large the blob is; a registry sending more is not
                    // believed (the digest would fail at the end, after storing it all).
                    if done > l.size {
                        failed = Some(Error::BadRequest(format!(
                            "layer {}: the registry sent more than the {} bytes the manifest gives",
                            l.digest, l.size
                        )));
                        break;
                    }
                    if tx.send(b).await.is_err() {
                        break;
                    }
                    if last.elapsed() > Duration::from_millis(100) {
                        last = Instant::now();
                        say(
                            out,
                            json!({"status": "Downloading", "progressDetail": {"current": done, "total": total}, "progress": bar(done, total), "id": id}),
                        )
                        .await;
                    }
                }
                Err(e) => {
                    failed = Some(e.into());
                    break;
                }
            }
        }
        drop(tx);
        let res = write.await.map_err(crate::error::internal)?;
        if let Some(e) = failed {
            return Err(e);
        }
        let created = res.map_err(|e| match e {
            Error::BadRequest(m) => Error::BadRequest(format!("layer {}: {m}", l.digest)),
            other => other,
        })?;
        status(out, &id, "Verifying Checksum").await;
        status(out, &id, "Download complete").await;
        Ok(created)
    }

    /// `docker push`: send image `name` (with `tag`) to its registry, skipping blobs it has.
    pub async fn push(self: &Arc<Self>, name: &str, tag: Option<&str>, creds: &Credentials, out: &Sender<Value>) -> Result<Digest> {
        if let Some(t) = tag.filter(|t| !t.is_empty()) {
            return self.push_one(&format!("{name}:{t}"), creds, out).await;
        }
        let r = image::Reference::parse(name)?;
        if r.tag.is_some() || r.digest.is_some() {
            return self.push_one(name, creds, out).await;
        }
        // No tag (`docker push --all-tags`): every local tag of the repository, as the Engine API
        // says, in a stable order.
        let mut tags: Vec<String> = self
            .images
            .list()
            .into_iter()
            .flat_map(|s| s.tags)
            .filter(|t| image::Reference::parse(t).is_ok_and(|x| x.repo == r.repo && x.tag.is_some()))
            .collect();
        tags.sort();
        tags.dedup();
        if tags.is_empty() {
            return Err(Error::NotFound(format!("An image does not exist locally with the tag: {}", r.repo)));
        }
        let mut last = None;
        for t in tags {
            last = Some(self.push_one(&t, creds, out).await?);
        }
        Ok(last.expect("at least one tag was pushed"))
    }

    async fn push_one(self: &Arc<Self>, full: &str, creds: &Credentials, out: &Sender<Value>) -> Result<Digest> {
        let r = image::Reference::parse(full)?;
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        let id = self
            .images
            .resolve(&r.tagged())
            .map_err(|_| Error::NotFound(format!("An image does not exist locally with the tag: {}", r.repo)))?;
        let repo = repository(&r);
        say(out, json!({"status": format!("The push refers to repository [{}]", r.repo)})).await;
        let manifest = self.images.manifest(&id)?;
        let record = self.images.record(&id)?;
        let content = self.images.content();
        let mut blobs: Vec<Descriptor> = manifest.layers.clone();
        blobs.reverse();
        for l in &blobs {
            status(out, &short(&l.digest), "Preparing").await;
        }
        let jobs = blobs.iter().cloned().map(|l| {
            let me = self.clone();
            let repo = repo.clone();
            let creds = creds.clone();
            let out = out.clone();
            async move { me.push_blob(&repo, &l, &creds, &out, true).await }
        });
        let results: Vec<Result<()>> = futures_util::stream::iter(jobs).buffer_unordered(PARALLEL).collect().await;
        for r in results {
            r?;
        }
        self.push_blob(&repo, &manifest.config, creds, out, false).await?;
        // The manifest exactly as stored, so its digest is the one recorded here.
        let data = content.read(&record.manifest)?;
        let media_type = manifest.media_type.clone().unwrap_or_else(|| oci::spec::MEDIA_OCI_MANIFEST.into());
        let size = data.len();
        let digest = self.registry.put_manifest(&repo, &tag, &media_type, data.into(), creds).await?;
        self.images.set_repo_digest(&id, format!("{}@{digest}", r.repo))?;
        // Its provenance, SBOM and other artifacts go with it, as referrers of its manifest.
        for d in self.images.referrers(&id, None)? {
            if let Err(e) = self.push_referrer(&repo, &d, creds, out).await {
                say(out, json!({"status": format!("{tag}: the registry did not take artifact {} ({}): {e}", d.digest, d.extra.get("artifactType").and_then(Value::as_str).unwrap_or("?"))})).await;
            }
        }
        say(
            out,
            json!({"status": format!("{tag}: digest: {digest} size: {size}"), "progressDetail": {}}),
        )
        .await;
        say(
            out,
            json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest.to_string(), "Size": size}}),
        )
        .await;
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("name".to_string(), format!("{}:{tag}", r.repo));
        self.events.emit("image", "push", &id.to_string(), attrs);
        Ok(digest)
    }

    /// Push one referrer (an artifact manifest about an image): its blobs, then itself by digest.
    async fn push_referrer(&self, repo: &Repository, d: &Descriptor, creds: &Credentials, out: &Sender<Value>) -> Result<()> {
        let bytes = self.images.content().read(&d.digest)?;
        let m = Manifest::parse(&bytes)?;
        for b in m.layers.iter().chain([&m.config]) {
            self.push_blob(repo, b, creds, out, false).await?;
        }
        self.registry
            .put_manifest(repo, &d.digest.to_string(), oci::spec::MEDIA_OCI_MANIFEST, bytes.into(), creds)
            .await?;
        Ok(())
    }

    /// Fetch the referrers of `subject` (the image manifest just pulled as image `id`) that are not
    /// here: artifacts about it, such as its provenance and SBOM. Each is small (at most 16 MiB a
    /// blob). A registry without referrers has none to give.
    async fn pull_referrers(&self, repo: &Repository, subject: &Digest, id: &Digest, creds: &Credentials) -> Result<usize> {
        const MAX: u64 = 16 << 20;
        let have: Vec<Digest> = self.images.referrers(id, None)?.into_iter().map(|d| d.digest).collect();
        let mut n = 0;
        for d in self.registry.referrers(repo, subject, creds).await? {
            if have.contains(&d.digest) || d.size > MAX {
                continue;
            }
            let (bytes, _, _) = self.registry.get_manifest(repo, &d.digest.to_string(), creds).await?;
            let m = Manifest::parse(&bytes)?;
            let content = self.images.content();
            for b in m.layers.iter().chain([&m.config]) {
                if content.contains(&b.digest) {
                    continue;
                }
                if b.size > MAX {
                    return Err(Error::BadRequest(format!(
                        "artifact {}: blob {} is larger than 16 MiB",
                        d.digest, b.digest
                    )));
                }
                let (mut s, _) = self.registry.get_blob(repo, &b.digest, creds).await?;
                let mut buf = Vec::new();
                while let Some(chunk) = s.next().await {
                    buf.extend_from_slice(&chunk?);
                    if buf.len() as u64 > b.size {
                        return Err(Error::BadRequest(format!(
                            "artifact blob {}: the registry sent more than its size",
                            b.digest
                        )));
                    }
                }
                content.ingest_new(buf.as_slice(), Some(&b.digest))?;
            }
            self.images.record_referrer(id, &bytes, subject, false)?;
            n += 1;
        }
        Ok(n)
    }

    /// Repositories of `repo`'s registry known (from local images' repo digests) to hold `digest`.
    fn mount_candidates(&self, repo: &Repository, digest: &Digest) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for img in self.images.list() {
            let Ok(m) = self.images.manifest(&img.id) else { continue };
            if m.config.digest != *digest && !m.layers.iter().any(|l| l.digest == *digest) {
                continue;
            }
            for rd in &img.record.repo_digests {
                let Ok(other) = image::Reference::parse(rd).map(|r| repository(&r)) else {
                    continue;
                };
                if other.registry == repo.registry && other.name != repo.name && !out.contains(&other.name) {
                    out.push(other.name);
                }
            }
        }
        out
    }

    async fn push_blob(&self, repo: &Repository, d: &Descriptor, creds: &Credentials, out: &Sender<Value>, report: bool) -> Result<()> {
        let id = short(&d.digest);
        if self.registry.blob_exists(repo, &d.digest, creds).await? {
            if report {
                status(out, &id, "Layer already exists").await;
            }
            return Ok(());
        }
        // Another repository of the same registry that we pushed it to may lend it (a mount).
        for from in self.mount_candidates(repo, &d.digest) {
            if self.registry.mount_blob(repo, &from, &d.digest, creds).await.unwrap_or(false) {
                if report {
                    status(out, &id, &format!("Mounted from {from}")).await;
                }
                return Ok(());
            }
        }
        let path = self.images.content().path(&d.digest);
        let len = std::fs::metadata(&path).map_err(crate::error::internal)?.len();
        // Progress from a counter the upload advances.
        let sent = Arc::new(AtomicU64::new(0));
        let body = Body::Counted {
            path,
            len,
            sent: sent.clone(),
        };
        let upload = self.registry.push_blob(repo, &d.digest, body, creds);
        tokio::pin!(upload);
        let res = loop {
            tokio::select! {
                r = &mut upload => break r,
                _ = tokio::time::sleep(Duration::from_millis(100)), if report => {
                    let cur = sent.load(Ordering::Relaxed);
                    say(out, json!({"status": "Pushing", "progressDetail": {"current": cur, "total": len}, "progress": bar(cur, len), "id": id})).await;
                }
            }
        };
        res?;
        if report {
            status(out, &id, "Pushed").await;
        }
        Ok(())
    }

    /// `docker login`: check `creds` against the registry at `server`.
    pub async fn login(&self, server: &str, creds: &Credentials) -> Result<()> {
        let registry = registry_of_server(server);
        self.registry.login(&registry, creds).await.map_err(|e| match e {
            ClientError::Unauthorized { .. } => Error::Unauthorized(format!("login attempt to {server} failed: {e}")),
            other => other.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names() {
        assert_eq!(
            repository(&image::Reference::parse("busybox").unwrap()),
            Repository {
                registry: DOCKER_HUB.into(),
                name: "library/busybox".into()
            }
        );
        assert_eq!(registry_of_server("https://index.docker.io/v1/"), DOCKER_HUB);
        assert_eq!(registry_of_server("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn registry_auth_header() {
        use base64::Engine as _;
        let h = base64::engine::general_purpose::URL_SAFE.encode(r#"{"username":"u","password":"p","serveraddress":"localhost:5000"}"#);
        let c = decode_registry_auth(&h);
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert!(decode_registry_auth("").is_empty());
    }

    #[test]
    fn progress_bar() {
        let half = bar(50, 100);
        assert!(
            half.starts_with(&format!("[{}>{}]", "=".repeat(24), " ".repeat(25))) && half.ends_with("] 50B/100B"),
            "{half}"
        );
        assert!(bar(100, 100).starts_with(&format!("[{}]", "=".repeat(50))));
        assert_eq!(bar(1500, 0), "1.5kB");
    }
}
