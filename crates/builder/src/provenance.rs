//! The provenance of a build: an in-toto statement with a SLSA v1 provenance predicate naming
//! everything that went in — the Dockerfile (generated or not) and its text, the context's digest,
//! the base images by digest, the build args, and the Python packages pip resolved.

use oci::Digest;
use serde_json::{json, Map, Value};

use crate::builder::Inputs;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance predicate type.
pub const PREDICATE_SLSA: &str = "https://slsa.dev/provenance/v1";
/// What kind of build Berth's provenance describes.
pub const BUILD_TYPE: &str = "https://berth.dev/build/dockerfile/v1";
/// The media type (and artifact type) of an in-toto statement.
pub const MEDIA_IN_TOTO: &str = "application/vnd.in-toto+json";

/// A base image as the build found it.
#[derive(Debug, Clone)]
pub struct Base {
    /// As the Dockerfile names it (`python:3.11-slim`).
    pub reference: String,
    /// Where it came from, by digest (`docker.io/library/python@sha256:...`), when it was pulled.
    pub repo_digest: Option<String>,
    /// Its manifest's digest.
    pub manifest: Digest,
}

/// `name==version` lines of `pip freeze` output, as (name, version); other lines (`pkg @ url`,
/// editable installs) keep their whole text as the name and no version.
pub fn pip_freeze(text: &str) -> Vec<(String, Option<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once("==") {
            Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
            None => (l.to_string(), None),
        })
        .collect()
}

fn sha(d: &Digest) -> Value {
    json!({ "sha256": d.hex() })
}

/// The statement for image manifest `manifest` (known by `names`), built from `inputs`.
pub fn statement(
    inputs: &Inputs,
    names: &[String],
    manifest: &Digest,
    bases: &[Base],
    python: &[(String, Option<String>)],
    builder: &str,
) -> Value {
    let subject: Vec<Value> = if names.is_empty() {
        vec![json!({"name": manifest.to_string(), "digest": sha(manifest)})]
    } else {
        names.iter().map(|n| json!({"name": n, "digest": sha(manifest)})).collect()
    };
    let mut deps: Vec<Value> = bases
        .iter()
        .map(|b| {
            let uri = match &b.repo_digest {
                Some(rd) => format!("pkg:docker/{rd}"),
                None => format!("pkg:docker/{}", b.reference),
            };
            json!({"uri": uri, "name": b.reference, "digest": sha(&b.manifest), "annotations": {"role": "base-image"}})
        })
        .collect();
    for (name, version) in python {
        deps.push(match version {
            Some(v) => json!({
                "uri": format!("pkg:pypi/{}@{v}", image::sbom::normalize_python(name)),
                "name": name,
                "annotations": {"role": "python-package", "version": v},
            }),
            None => json!({"name": name, "annotations": {"role": "python-package"}}),
        });
    }
    let mut external = Map::new();
    external.insert(
        "dockerfile".into(),
        json!({
            "path": inputs.dockerfile_path,
            "digest": sha(&Digest::of(inputs.dockerfile.as_bytes())),
            "content": inputs.dockerfile,
        }),
    );
    if let Some(c) = &inputs.context {
        external.insert("context".into(), json!({"digest": sha(c)}));
    }
    external.insert("buildArgs".into(), json!(inputs.build_args));
    if let Some(t) = &inputs.target {
        external.insert("target".into(), json!(t));
    }
    let mut metadata = Map::new();
    if let Some(c) = &inputs.created {
        metadata.insert("finishedOn".into(), json!(c));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_SLSA,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"platform": format!("linux/{}", oci::spec::host_arch())},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": builder},
                "metadata": metadata,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_names_the_inputs() {
        let inputs = Inputs {
            dockerfile_path: "Dockerfile".into(),
            dockerfile: "FROM base\nCOPY . /app\n".into(),
            context: Some(Digest::of(b"ctx")),
            bases: vec![],
            build_args: [("V".to_string(), "1".to_string())].into(),
            target: None,
            created: Some("1970-01-01T00:00:00Z".into()),
        };
        let m = Digest::of(b"manifest");
        let bases = [Base {
            reference: "base".into(),
            repo_digest: Some(format!("localhost:5000/base@{}", Digest::of(b"b"))),
            manifest: Digest::of(b"b"),
        }];
        let py = pip_freeze("Flask==3.0.3\n# comment\ntinylib @ file:///w/tinylib\n");
        let s = statement(&inputs, &["model:1".into()], &m, &bases, &py, "https://berth.dev/berth@0.1.0");
        assert_eq!(s["subject"][0]["digest"]["sha256"], m.hex());
        let p = &s["predicate"]["buildDefinition"];
        assert_eq!(p["externalParameters"]["dockerfile"]["content"], "FROM base\nCOPY . /app\n");
        assert_eq!(p["externalParameters"]["context"]["digest"]["sha256"], Digest::of(b"ctx").hex());
        assert_eq!(p["externalParameters"]["buildArgs"]["V"], "1");
        let deps = p["resolvedDependencies"].as_array().unwrap();
        assert_eq!(deps[0]["uri"], format!("pkg:docker/localhost:5000/base@{}", Digest::of(b"b")));
        assert_eq!(deps[1]["uri"], "pkg:pypi/flask@3.0.3");
        assert_eq!(deps[2]["name"], "tinylib @ file:///w/tinylib");
    }
}
