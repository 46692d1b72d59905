//! What an image says about itself: the provenance and SBOM every build attaches as OCI
//! referrers (pushed and pulled with the image), and the comparison of two images.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::engine::Engine;
use crate::error::{Error, Result};

/// The artifact type of an SPDX SBOM.
pub const MEDIA_SPDX: &str = "application/spdx+json";
/// The annotation naming an in-toto statement's predicate type.
pub const ANNOTATION_PREDICATE: &str = "in-toto.io/predicate-type";
/// Where Python builds record what pip resolved.
pub const PIP_FREEZE: &str = "/etc/berth/pip-freeze.txt";

/// Who builds: the SLSA builder ID.
fn builder_id() -> String {
    format!("https://berth.dev/berth@{}", env!("CARGO_PKG_VERSION"))
}

/// A URL's password replaced, so no credential given in a build arg (an index URL with a token)
/// lands in the provenance.
fn redact(v: &str) -> String {
    let Some(scheme_end) = v.find("://") else { return v.to_string() };
    let rest = &v[scheme_end + 3..];
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:xxxxx")
            } else {
                "xxxxx".to_string()
            };
            format!("{}{shown}{}", &v[..scheme_end + 3], &rest[at..])
        }
        None => v.to_string(),
    }
}

/// One attached artifact, as `GET /images/{name}/referrers` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attestation {
    pub digest: String,
    #[serde(rename = "artifactType")]
    pub artifact_type: String,
    pub annotations: BTreeMap<String, String>,
    /// The document (JSON).
    pub content: Value,
}

impl Engine {
    /// Attach to a built image its provenance (an in-toto SLSA v1 statement) and its SBOM (SPDX
    /// 2.3, from the package databases in the image), replacing those of an earlier build of the
    /// same image. Blocks.
    pub fn attest_build(&self, res: &build::BuildResult) -> Result<()> {
        let images = &self.images;
        let rec = images.record(&res.id)?;
        let tree = image::view::Tree::merge(&images.lower_dirs(&res.id)?)?;
        let python = tree
            .read(PIP_FREEZE)
            .map(|t| build::provenance::pip_freeze(&String::from_utf8_lossy(&t)))
            .unwrap_or_default();
        let bases: Vec<build::provenance::Base> = res
            .inputs
            .bases
            .iter()
            .filter_map(|(reference, id)| {
                let r = images.record(id).ok()?;
                Some(build::provenance::Base {
                    reference: reference.clone(),
                    repo_digest: r.repo_digests.first().cloned(),
                    manifest: r.manifest,
                })
            })
            .collect();
        let mut inputs = res.inputs.clone();
        for v in inputs.build_args.values_mut() {
            *v = redact(v);
        }
        let statement = build::provenance::statement(&inputs, &res.tags, &rec.manifest, &bases, &python, &builder_id());
        let created = res.inputs.created.clone().unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
        let mut ann = BTreeMap::new();
        ann.insert("org.opencontainers.image.created".to_string(), created.clone());
        let mut prov_ann = ann.clone();
        prov_ann.insert(ANNOTATION_PREDICATE.to_string(), build::provenance::PREDICATE_SLSA.to_string());
        let bytes = serde_json::to_vec(&statement).expect("statement serializes");
        images.attach(&res.id, build::provenance::MEDIA_IN_TOTO, &bytes, prov_ann)?;
        let name = res.tags.first().cloned().unwrap_or_else(|| res.id.to_string());
        let packages = image::sbom::scan(&tree);
        let doc = image::sbom::spdx(
            &name,
            &rec.manifest,
            &created,
            &format!("berth-{}", env!("CARGO_PKG_VERSION")),
            &packages,
        );
        images.attach(&res.id, MEDIA_SPDX, &serde_json::to_vec(&doc).expect("sbom serializes"), ann)?;
        tracing::debug!(image = %res.id, packages = packages.len(), python = python.len(), "provenance and SBOM attached");
        Ok(())
    }

    /// The artifacts attached to image `name` (optionally of one artifact type), with their
    /// documents.
    pub fn image_attestations(&self, name: &str, artifact_type: Option<&str>) -> Result<Vec<Attestation>> {
        let id = self.images.resolve(name)?;
        let mut out = Vec::new();
        for d in self.images.referrers(&id, artifact_type)? {
            let data = self.images.referrer_data(&d)?;
            let content = serde_json::from_slice(&data).unwrap_or_else(|_| json!(String::from_utf8_lossy(&data)));
            out.push(Attestation {
                digest: d.digest.to_string(),
                artifact_type: d.extra.get("artifactType").and_then(Value::as_str).unwrap_or_default().to_string(),
                annotations: d.annotations.clone().unwrap_or_default(),
                content,
            });
        }
        Ok(out)
    }

    /// What differs between images `a` and `b`: layers, files and packages. Blocks.
    pub fn image_compare(&self, a: &str, b: &str) -> Result<image::compare::Comparison> {
        let ia = self.images.resolve(a)?;
        let ib = self.images.resolve(b)?;
        image::compare::compare(&self.images, &ia, &ib).map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact("https://user:tok3n@pypi.example/simple"),
            "https://user:xxxxx@pypi.example/simple"
        );
        assert_eq!(redact("https://tok3n@pypi.example/simple"), "https://xxxxx@pypi.example/simple");
        assert_eq!(redact("http://127.0.0.1:8000/simple"), "http://127.0.0.1:8000/simple");
        assert_eq!(redact("plain"), "plain");
        assert_eq!(redact("http://h/p@x"), "http://h/p@x");
    }
}
