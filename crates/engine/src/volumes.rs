//! Named volumes: directories under `root/volumes/<name>/_data`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{internal, Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    pub driver: String,
    pub mountpoint: String,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub scope: String,
    pub options: BTreeMap<String, String>,
}

pub struct Volumes {
    dir: PathBuf,
}

pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphanumeric() && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

impl Volumes {
    pub fn open(root: &Path) -> Result<Self> {
        let dir = root.join("volumes");
        fs::create_dir_all(&dir).map_err(internal)?;
        Ok(Volumes { dir })
    }

    fn meta(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("volume.json")
    }

    pub fn data_path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Create (or return the existing) volume. Returns the volume and whether it is new.
    pub fn create(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        driver: &str,
        options: BTreeMap<String, String>,
    ) -> Result<(Volume, bool)> {
        if !valid_name(name) {
            return Err(Error::BadRequest(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
            )));
        }
        if !driver.is_empty() && driver != "local" {
            return Err(Error::BadRequest(format!(
                "volume driver {driver:?} is not supported (only \"local\")"
            )));
        }
        if !options.is_empty() {
            return Err(Error::BadRequest("volume driver options are not supported".into()));
        }
        if let Ok(v) = self.get(name) {
            return Ok((v, false));
        }
        let data = self.data_path(name);
        fs::create_dir_all(&data).map_err(internal)?;
        let v = Volume {
            name: name.into(),
            driver: "local".into(),
            mountpoint: data.display().to_string(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels,
            scope: "local".into(),
            options,
        };
        oci::store::write_atomic(&self.meta(name), &serde_json::to_vec_pretty(&v).expect("json"))?;
        Ok((v, true))
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(Error::NotFound(format!("get {name}: no such volume")));
        }
        let b = fs::read(self.meta(name)).map_err(|_| Error::NotFound(format!("get {name}: no such volume")))?;
        serde_json::from_slice(&b).map_err(internal)
    }

    pub fn list(&self) -> Vec<Volume> {
        let mut out: Vec<Volume> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| self.get(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        fs::remove_dir_all(self.dir.join(name)).map_err(internal)
    }
}

/// The label of an anonymous volume: the path it was made for.
pub const ANONYMOUS_LABEL: &str = "berth.anonymous.target";

impl crate::Engine {
    /// Create a volume (or return the one of that name), with a `create` event when it is new; a
    /// random name when none is given. Returns the volume and whether it is new.
    pub fn create_volume(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        driver: &str,
        options: BTreeMap<String, String>,
    ) -> Result<(Volume, bool)> {
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => crate::engine::random_id(),
        };
        let (v, new) = self.volumes.create(&name, labels, driver, options)?;
        if new {
            self.events
                .emit("volume", "create", &v.name, BTreeMap::from([("driver".into(), "local".into())]));
        }
        Ok((v, new))
    }

    /// A volume by name.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        self.volumes.get(name)
    }

    /// Every volume.
    pub fn volume_list(&self) -> Vec<Volume> {
        self.volumes.list()
    }

    /// Where a volume's data is on the host.
    pub fn volume_data_path(&self, name: &str) -> PathBuf {
        self.volumes.data_path(name)
    }

    /// The IDs of the containers that mount a volume (binds, Mounts, anonymous and inherited).
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.containers()
            .into_iter()
            .filter(|c| {
                c.anon_volumes.iter().any(|v| v == name)
                    || c.host_config.binds.iter().flatten().any(|b| b.split(':').next() == Some(name))
                    || c.host_config
                        .mounts
                        .iter()
                        .flatten()
                        .chain(&c.inherited_mounts)
                        .any(|m| m.kind == "volume" && m.source == name)
            })
            .map(|c| c.id)
            .collect()
    }

    /// Remove a volume: refused while a container uses it unless `force`; a `destroy` event.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        self.volumes.get(name)?;
        let users = self.volume_users(name);
        if !users.is_empty() && !force {
            return Err(Error::Conflict(format!("remove {name}: volume is in use - [{}]", users.join(", "))));
        }
        self.volumes.remove(name)?;
        self.events
            .emit("volume", "destroy", name, BTreeMap::from([("driver".into(), "local".into())]));
        Ok(())
    }
}
