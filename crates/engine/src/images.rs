//! Image operations of the engine: import, commit, remove, and the API's JSON views.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use oci::spec::{History, ImageConfig, RootFs};
use oci::Digest;
use serde_json::{json, Value};

use crate::engine::{Engine, Entry};
use crate::error::{internal, Error, Result};

/// One entry of an image removal's report: a tag removed, or an image deleted (Docker's
/// `{"Untagged": ...}` and `{"Deleted": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ImageDeleteItem {
    Untagged(String),
    Deleted(String),
}

impl Engine {
    /// An image's ID from a name, tag, digest or ID prefix.
    pub fn resolve_image(&self, name: &str) -> Result<Digest> {
        Ok(self.images.resolve(name)?)
    }

    /// `POST /images/{name}/tag`: name the image `repo[:tag]`, with a `tag` event.
    pub fn tag_image(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let id = self.images.resolve(source)?;
        let full = match tag.filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_string(),
        };
        let key = self.images.tag(&id, &full)?;
        self.events
            .emit("image", "tag", &id.to_string(), BTreeMap::from([("name".to_string(), key)]));
        Ok(())
    }

    /// `POST /images/load`: the images of a `docker save` or OCI archive, with a `load` event
    /// each; returns what was loaded (`Loaded image: x:1`, `Loaded image ID: sha256:…`).
    pub fn load_images(&self, r: impl Read) -> Result<Vec<String>> {
        let loaded = image::archive::load(&self.images, r)?;
        for l in &loaded {
            self.events.emit("image", "load", l, Default::default());
        }
        Ok(loaded)
    }

    /// Every image in the store.
    pub fn image_list(&self) -> Vec<image::ImageSummary> {
        self.images.list()
    }

    /// An image's config (`docker inspect`'s `Config` comes from it).
    pub fn image_config(&self, id: &Digest) -> Result<ImageConfig> {
        Ok(self.images.config(id)?)
    }

    /// An image's layers: each blob's digest and compressed size.
    pub fn image_layers(&self, id: &Digest) -> Result<Vec<(Digest, u64)>> {
        Ok(self
            .images
            .manifest(id)?
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.size))
            .collect())
    }

    /// `GET /images/get`: write `imgs` as a `docker save` archive.
    pub fn save_images(&self, imgs: &[(Digest, Vec<String>)], w: &mut dyn std::io::Write) -> Result<()> {
        Ok(image::archive::save(&self.images, imgs, w)?)
    }

    /// The images that `save` writes for `names`: each image once, with the tags it was asked by.
    pub fn images_for_save(&self, names: &[String]) -> Result<Vec<(Digest, Vec<String>)>> {
        let mut out: Vec<(Digest, Vec<String>)> = Vec::new();
        for n in names {
            let id = self.images.resolve(n)?;
            let tags = match image::Reference::parse(n) {
                Ok(r) if !id.hex().starts_with(n.trim_start_matches("sha256:")) => vec![r.tagged()],
                _ => vec![],
            };
            match out.iter_mut().find(|(i, _)| *i == id) {
                Some((_, t)) => t.extend(tags),
                None => out.push((id, tags)),
            }
        }
        Ok(out)
    }
}

fn unix(t: &Option<String>) -> i64 {
    t.as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// The untagged images that are parents of others: the builder's intermediate steps (and its
/// cache), listed by `images -a` only and not dangling.
pub(crate) fn intermediate_ids(imgs: &[image::ImageSummary]) -> std::collections::BTreeSet<Digest> {
    let parents: std::collections::BTreeSet<&Digest> = imgs.iter().filter_map(|s| s.record.parent.as_ref()).collect();
    imgs.iter()
        .filter(|s| s.tags.is_empty() && parents.contains(&s.id))
        .map(|s| s.id.clone())
        .collect()
}

impl Engine {
    /// Import a rootfs tar as a one-layer image (`docker import`).
    pub fn import(&self, r: impl Read + 'static, repo_tag: Option<&str>, message: &str, changes: &[String]) -> Result<Digest> {
        let layer = self.images.import_layer(r)?;
        let now = crate::types::now();
        let mut cfg = ImageConfig {
            created: Some(now.clone()),
            architecture: oci::spec::host_arch().into(),
            os: "linux".into(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![layer.diff_id.clone()],
            },
            history: vec![History {
                created: Some(now),
                created_by: None,
                comment: Some(if message.is_empty() {
                    "Imported from -".into()
                } else {
                    message.into()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        apply_changes(&mut cfg, changes)?;
        let id = self.images.add_image(&cfg, &[layer.blob], None)?;
        if let Some(t) = repo_tag {
            self.images.tag(&id, t)?;
        }
        self.events.emit("image", "import", &id.to_string(), BTreeMap::new());
        Ok(id)
    }

    /// Is any container using the image?
    pub fn image_in_use(&self, id: &Digest) -> bool {
        !self.users_of(id).is_empty()
    }

    /// Containers using an image.
    fn users_of(&self, id: &Digest) -> Vec<Arc<Entry>> {
        let s = id.to_string();
        self.list().into_iter().filter(|e| e.rec.lock().unwrap().image == s).collect()
    }

    /// `DELETE /images/{name}`: untag, and delete when no tags remain. Returns docker's report.
    pub fn remove_image(&self, name: &str, force: bool) -> Result<Vec<ImageDeleteItem>> {
        let id = self.images.resolve(name)?;
        let by_id = name.trim_start_matches("sha256:").len() <= 64 && id.hex().starts_with(name.trim_start_matches("sha256:"));
        let tags = self.images.tags_of(&id);
        let users = self.users_of(&id);
        let mut out = Vec::new();
        if !by_id && tags.len() > 1 {
            let t = self.images.untag(name)?;
            let _ = t;
            out.push(ImageDeleteItem::Untagged(image::Reference::parse(name)?.tagged()));
            self.events.emit("image", "untag", &id.to_string(), BTreeMap::new());
            return Ok(out);
        }
        if by_id && tags.len() > 1 && !force {
            return Err(Error::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                id.short()
            )));
        }
        if let Some(u) = users.first() {
            let c = u.snapshot();
            if !force || c.state.running {
                let what = if c.state.running { "running" } else { "stopped" };
                if !force || c.state.running {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to {} {} (cannot be forced) - image is being used by {what} container {}",
                        if by_id { "delete" } else { "remove repository reference" },
                        if by_id { id.short().to_string() } else { format!("\"{name}\"") },
                        &c.id[..12]
                    )));
                }
            }
            // Forced with only stopped users: untag, keep the image (Docker's behaviour).
            for t in &tags {
                let _ = self.images.untag(t);
                out.push(ImageDeleteItem::Untagged(t.clone()));
            }
            return Ok(out);
        }
        for t in &tags {
            out.push(ImageDeleteItem::Untagged(t.clone()));
        }
        self.images.delete(&id)?;
        out.push(ImageDeleteItem::Deleted(id.to_string()));
        self.events.emit("image", "delete", &id.to_string(), BTreeMap::new());
        Ok(out)
    }

    fn image_size(&self, id: &Digest) -> u64 {
        self.images.manifest(id).map(|m| m.layers.iter().map(|l| l.size).sum()).unwrap_or(0)
    }

    /// One entry of `GET /images/json`.
    pub fn image_summary(&self, s: &image::ImageSummary) -> Value {
        let cfg = self.images.config(&s.id).unwrap_or_default();
        let size = self.image_size(&s.id);
        json!({
            "Id": s.id.to_string(),
            "ParentId": s.record.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            "RepoTags": s.tags,
            "RepoDigests": s.record.repo_digests,
            "Created": unix(&cfg.created),
            "Size": size,
            "SharedSize": -1,
            "VirtualSize": size,
            "Labels": cfg.config.labels.clone().unwrap_or_default(),
            "Containers": self.users_of(&s.id).len() as i64,
        })
    }

    /// `GET /images/{name}/json`.
    pub fn image_inspect(&self, name: &str) -> Result<Value> {
        let id = self.images.resolve(name)?;
        let rec = self.images.record(&id)?;
        let cfg = self.images.config(&id)?;
        let size = self.image_size(&id);
        let lower = self.images.lower_dirs(&id).unwrap_or_default();
        let mut v = json!({
            "Id": id.to_string(),
            "RepoTags": self.images.tags_of(&id),
            "RepoDigests": rec.repo_digests,
            "Parent": rec.parent.map(|p| p.to_string()).unwrap_or_default(),
            "Comment": cfg.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
            "Created": cfg.created.clone().unwrap_or_default(),
            "DockerVersion": "",
            "Author": cfg.author.clone().unwrap_or_default(),
            "Config": cfg.config,
            "Architecture": cfg.architecture,
            "Os": cfg.os,
            "Size": size,
            "VirtualSize": size,
            "GraphDriver": {"Name": "overlay2", "Data": {"LowerDir": lower.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")}},
            "RootFS": {"Type": "layers", "Layers": cfg.rootfs.diff_ids},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
            // The 1.43 schema's fields of images committed from a container (Berth's record no
            // container; Docker leaves them empty for built and pulled images too).
            "Container": "",
            "ContainerConfig": {
                "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
                "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": null,
                "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
                "OnBuild": null, "Labels": null,
            },
        });
        // Omitted when empty, as Docker does.
        if let Some(variant) = cfg.variant.as_ref().filter(|s| !s.is_empty()) {
            v["Variant"] = json!(variant);
        }
        if let Some(osv) = cfg.extra.get("os.version").and_then(|s| s.as_str()).filter(|s| !s.is_empty()) {
            v["OsVersion"] = json!(osv);
        }
        Ok(v)
    }

    /// `GET /images/{name}/history`.
    pub fn image_history(&self, name: &str) -> Result<Vec<Value>> {
        let id = self.images.resolve(name)?;
        let cfg = self.images.config(&id)?;
        let m = self.images.manifest(&id)?;
        let mut layer_sizes = m.layers.iter().map(|l| l.size);
        let mut out = Vec::new();
        let n = cfg.history.len();
        for (i, h) in cfg.history.iter().enumerate() {
            let size = if h.empty_layer { 0 } else { layer_sizes.next().unwrap_or(0) };
            out.push(json!({
                "Id": if i + 1 == n { id.to_string() } else { "<missing>".to_string() },
                "Created": unix(&h.created),
                "CreatedBy": h.created_by.clone().unwrap_or_default(),
                "Tags": if i + 1 == n { Value::from(self.images.tags_of(&id)) } else { Value::Null },
                "Size": size,
                "Comment": h.comment.clone().unwrap_or_default(),
            }));
        }
        out.reverse();
        if out.is_empty() {
            out.push(json!({"Id": id.to_string(), "Created": unix(&cfg.created), "CreatedBy": "", "Tags": self.images.tags_of(&id), "Size": self.image_size(&id), "Comment": ""}));
        }
        Ok(out)
    }

    /// `POST /commit`: the container's filesystem changes become a new layer on its image.
    pub fn commit(
        &self,
        key: &str,
        repo_tag: Option<&str>,
        comment: &str,
        author: &str,
        changes: &[String],
        overrides: Option<Value>,
    ) -> Result<Digest> {
        let entry = self.get(key)?;
        let c = entry.snapshot();
        let parent = Digest::parse(&c.image)?;
        let mut cfg = self.images.config(&parent)?;
        let manifest = self.images.manifest(&parent)?;
        let upper = self.container_dir(&c.id).join("diff");
        let mut w = self.images.content().writer()?;
        image::diff::write_tar(
            &upper,
            &mut w,
            image::diff::TarOptions {
                overlay_whiteouts: true,
                ..Default::default()
            },
        )
        .map_err(internal)?;
        let (digest, size) = w.commit(None)?;
        let now = crate::types::now();
        // The container's runtime config becomes the image's.
        let rc = &mut cfg.config;
        rc.env = c.config.env.clone();
        rc.cmd = c.config.cmd.clone();
        rc.entrypoint = c.config.entrypoint.clone();
        rc.working_dir = Some(c.config.working_dir.clone()).filter(|s| !s.is_empty());
        rc.user = Some(c.config.user.clone()).filter(|s| !s.is_empty());
        rc.labels = Some(c.config.labels.clone()).filter(|l| !l.is_empty());
        rc.exposed_ports = c.config.exposed_ports.clone();
        rc.volumes = c.config.volumes.clone();
        rc.stop_signal = c.config.stop_signal.clone();
        rc.healthcheck = c.config.healthcheck.as_ref().and_then(|h| serde_json::to_value(h).ok());
        if let Some(o) = overrides.filter(|v| v.is_object()) {
            let merged: crate::types::ContainerConfig =
                serde_json::from_value(o).map_err(|e| Error::BadRequest(format!("invalid config: {e}")))?;
            if merged.cmd.is_some() {
                rc.cmd = merged.cmd;
            }
            if merged.entrypoint.is_some() {
                rc.entrypoint = merged.entrypoint;
            }
            if merged.env.is_some() {
                rc.env = merged.env;
            }
            if !merged.labels.is_empty() {
                rc.labels = Some(merged.labels);
            }
        }
        apply_changes(&mut cfg, changes)?;
        cfg.created = Some(now.clone());
        if !author.is_empty() {
            cfg.author = Some(author.into());
        }
        cfg.rootfs.diff_ids.push(digest.clone());
        cfg.history.push(History {
            created: Some(now),
            created_by: Some(format!("{} {}", c.path, c.args.join(" "))),
            author: Some(author.to_string()).filter(|s| !s.is_empty()),
            comment: Some(comment.to_string()).filter(|s| !s.is_empty()),
            empty_layer: false,
        });
        let mut layers = manifest.layers.clone();
        layers.push(oci::spec::Descriptor::new(oci::spec::MEDIA_OCI_LAYER, digest, size));
        let id = self.images.add_image(&cfg, &layers, Some(parent))?;
        if let Some(t) = repo_tag.filter(|t| !t.is_empty()) {
            self.images.tag(&id, t)?;
        }
        let mut attrs = BTreeMap::new();
        attrs.insert("comment".into(), comment.to_string());
        self.events.emit("container", "commit", &c.id, attrs);
        Ok(id)
    }
}

/// Apply Dockerfile-style `changes` (`CMD`, `ENTRYPOINT`, `ENV`, `LABEL`, `WORKDIR`, `USER`, `EXPOSE`,
/// `VOLUME`, `STOPSIGNAL`) to an image config, as `import -c` and `commit -c` do.
pub fn apply_changes(cfg: &mut ImageConfig, changes: &[String]) -> Result<()> {
    fn list(arg: &str) -> Vec<String> {
        if arg.trim_start().starts_with('[') {
            if let Ok(v) = serde_json::from_str::<Vec<String>>(arg.trim()) {
                return v;
            }
        }
        vec!["/bin/sh".into(), "-c".into(), arg.to_string()]
    }
    for ch in changes {
        let ch = ch.trim();
        if ch.is_empty() {
            continue;
        }
        let (ins, arg) = ch.split_once(char::is_whitespace).unwrap_or((ch, ""));
        let arg = arg.trim();
        let rc = &mut cfg.config;
        match ins.to_ascii_uppercase().as_str() {
            "CMD" => rc.cmd = Some(list(arg)),
            "ENTRYPOINT" => rc.entrypoint = Some(list(arg)),
            "WORKDIR" => rc.working_dir = Some(arg.into()),
            "USER" => rc.user = Some(arg.into()),
            "STOPSIGNAL" => rc.stop_signal = Some(arg.into()),
            "ENV" => {
                let (k, v) = arg
                    .split_once('=')
                    .or_else(|| arg.split_once(' '))
                    .ok_or_else(|| Error::BadRequest(format!("invalid change {ch:?}: ENV needs NAME=VALUE")))?;
                let env = rc.env.get_or_insert_with(Vec::new);
                env.retain(|e| e.split('=').next() != Some(k));
                env.push(format!("{k}={}", v.trim()));
            }
            "LABEL" => {
                let (k, v) = arg
                    .split_once('=')
                    .ok_or_else(|| Error::BadRequest(format!("invalid change {ch:?}: LABEL needs KEY=VALUE")))?;
                rc.labels
                    .get_or_insert_with(Default::default)
                    .insert(k.trim_matches('"').into(), v.trim_matches('"').into());
            }
            "EXPOSE" => {
                for p in arg.split_whitespace() {
                    let p = if p.contains('/') { p.to_string() } else { format!("{p}/tcp") };
                    rc.exposed_ports.get_or_insert_with(Default::default).insert(p, json!({}));
                }
            }
            "VOLUME" => {
                for v in list_or_words(arg) {
                    rc.volumes.get_or_insert_with(Default::default).insert(v, json!({}));
                }
            }
            other => {
                return Err(Error::BadRequest(format!(
                    "invalid change {ch:?}: {other} is not a valid change command"
                )))
            }
        }
    }
    Ok(())
}

fn list_or_words(arg: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(arg).unwrap_or_else(|_| arg.split_whitespace().map(String::from).collect())
}
