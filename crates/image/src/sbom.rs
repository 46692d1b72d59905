//! What software an image holds, read from its package databases: Debian's dpkg status, Alpine's
//! apk database and Python's installed distributions (`*.dist-info`, `*.egg-info` under
//! `site-packages`/`dist-packages`); and the SPDX 2.3 document that lists them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::view::{Kind, Tree};

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    /// The package system: `deb`, `apk` or `pypi` (the purl type).
    pub ecosystem: String,
    pub name: String,
    pub version: String,
    /// The database or directory it was found in.
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Its package URL.
    pub purl: String,
}

/// The `ID=` of `/etc/os-release` (the purl namespace of OS packages).
fn os_id(t: &Tree) -> Option<String> {
    let text = t.read("/etc/os-release").or_else(|| t.read("/usr/lib/os-release"))?;
    String::from_utf8_lossy(&text).lines().find_map(|l| {
        l.strip_prefix("ID=")
            .map(|v| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    })
}

/// Paragraphs of a deb822 file (dpkg status), as field → value (continuation lines dropped).
fn paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if !line.starts_with([' ', '\t']) {
            if let Some((k, v)) = line.split_once(':') {
                cur.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn field<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(f, _)| f.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
}

fn dpkg(t: &Tree, distro: &str, out: &mut Vec<Package>) {
    let mut dbs: Vec<String> = vec!["/var/lib/dpkg/status".into()];
    // Distroless images keep one file per package.
    dbs.extend(
        t.children("/var/lib/dpkg/status.d")
            .filter(|(_, e)| e.kind == Kind::File)
            .map(|(p, _)| p.to_string()),
    );
    for db in dbs {
        let Some(text) = t.read(&db) else { continue };
        for p in paragraphs(&String::from_utf8_lossy(&text)) {
            let (Some(name), Some(version)) = (field(&p, "Package"), field(&p, "Version")) else {
                continue;
            };
            if field(&p, "Status").is_some_and(|s| !s.ends_with(" installed")) {
                continue;
            }
            let arch = field(&p, "Architecture").map(String::from);
            let purl = format!(
                "pkg:deb/{distro}/{}@{}{}",
                purl_part(name),
                purl_part(version),
                arch.as_deref().map(|a| format!("?arch={a}")).unwrap_or_default()
            );
            out.push(Package {
                ecosystem: "deb".into(),
                name: name.into(),
                version: version.into(),
                location: db.clone(),
                arch,
                license: None,
                purl,
            });
        }
    }
}

fn apk(t: &Tree, distro: &str, out: &mut Vec<Package>) {
    let db = "/lib/apk/db/installed";
    let Some(text) = t.read(db) else { return };
    let text = String::from_utf8_lossy(&text);
    for block in text.split("\n\n") {
        let get = |k: &str| block.lines().find_map(|l| l.strip_prefix(k)).map(str::to_string);
        let (Some(name), Some(version)) = (get("P:"), get("V:")) else {
            continue;
        };
        let arch = get("A:");
        let purl = format!(
            "pkg:apk/{distro}/{}@{}{}",
            purl_part(&name),
            purl_part(&version),
            arch.as_deref().map(|a| format!("?arch={a}")).unwrap_or_default()
        );
        out.push(Package {
            ecosystem: "apk".into(),
            name,
            version,
            location: db.into(),
            arch,
            license: get("L:"),
            purl,
        });
    }
}

/// A Python distribution name normalized as PEP 503 says (and purl's pypi type wants).
pub fn normalize_python(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = if matches!(c, '_' | '.' | '-') {
            '-'
        } else {
            c.to_ascii_lowercase()
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

fn python(t: &Tree, out: &mut Vec<Package>) {
    for (path, e) in &t.entries {
        if e.kind != Kind::Dir {
            continue;
        }
        let Some((parent, dir)) = path.rsplit_once('/') else { continue };
        if !(parent.ends_with("/site-packages") || parent.ends_with("/dist-packages")) {
            continue;
        }
        let meta = if dir.ends_with(".dist-info") {
            format!("{path}/METADATA")
        } else if dir.ends_with(".egg-info") {
            format!("{path}/PKG-INFO")
        } else {
            continue;
        };
        let Some(text) = t.read(&meta) else { continue };
        let text = String::from_utf8_lossy(&text);
        // The headers end at the first blank line (the description follows).
        let head = text.split("\n\n").next().unwrap_or("");
        let get = |k: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|v| v.strip_prefix(':')))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty() && v != "UNKNOWN")
        };
        let (Some(name), Some(version)) = (get("Name"), get("Version")) else {
            continue;
        };
        let license = get("License-Expression")
            .or_else(|| get("License"))
            .filter(|l| !l.contains('\n') && l.len() < 100);
        out.push(Package {
            ecosystem: "pypi".into(),
            purl: format!("pkg:pypi/{}@{}", normalize_python(&name), purl_part(&version)),
            name,
            version,
            location: parent.to_string(),
            arch: None,
            license,
        });
    }
}

/// Percent-encode what a purl segment may not hold (Debian's `+` and epoch `:` included).
fn purl_part(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every package the image's databases list, sorted, duplicates dropped.
pub fn scan(t: &Tree) -> Vec<Package> {
    let distro = os_id(t).unwrap_or_else(|| "linux".into());
    let mut out = Vec::new();
    dpkg(t, &distro, &mut out);
    apk(t, &distro, &mut out);
    python(t, &mut out);
    let mut seen = BTreeSet::new();
    out.retain(|p| seen.insert((p.purl.clone(), p.location.clone())));
    out.sort();
    out
}

/// An SPDX element ID for `s`: only letters, digits, `.` and `-`.
fn spdx_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The SPDX 2.3 document (JSON) of an image: the image as the described package, its packages
/// contained in it. `name` names the image, `manifest` is its manifest digest, `created` the
/// document's time (the image's own, so the same image gives the same document).
pub fn spdx(name: &str, manifest: &oci::Digest, created: &str, tool: &str, packages: &[Package]) -> Value {
    let mut pkgs = vec![json!({
        "name": name,
        "SPDXID": "SPDXRef-Image",
        "versionInfo": manifest.to_string(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": manifest.hex()}],
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!("pkg:oci/{}@{}", purl_part(name.rsplit('/').next().unwrap_or(name).split(':').next().unwrap_or(name)), purl_part(&manifest.to_string())),
        }],
    })];
    let mut rels = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    for (i, p) in packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}-{}-{i}", p.ecosystem, spdx_id(&p.name));
        let mut v = json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("found in {}", p.location),
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": p.purl}],
        });
        if let Some(l) = &p.license {
            // A free-form license text is not an SPDX expression: kept as a comment.
            v["licenseComments"] = json!(format!("declared: {l}"));
        }
        pkgs.push(v);
        rels.push(json!({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("https://berth.dev/spdx/{}", manifest.hex()),
        "creationInfo": {"created": created, "creators": [format!("Tool: {tool}")]},
        "packages": pkgs,
        "relationships": rels,
    })
}

/// The packages an SPDX document (as [`spdx`] writes it) lists, back: for `image diff`.
pub fn packages_of_spdx(doc: &Value) -> Vec<Package> {
    let mut out = Vec::new();
    for p in doc["packages"].as_array().into_iter().flatten() {
        if p["SPDXID"] == "SPDXRef-Image" {
            continue;
        }
        let purl = p["externalRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["referenceType"] == "purl")
            .and_then(|r| r["referenceLocator"].as_str())
            .unwrap_or_default()
            .to_string();
        let ecosystem = purl
            .strip_prefix("pkg:")
            .and_then(|s| s.split('/').next())
            .unwrap_or("")
            .to_string();
        out.push(Package {
            ecosystem,
            name: p["name"].as_str().unwrap_or_default().into(),
            version: p["versionInfo"].as_str().unwrap_or_default().into(),
            location: p["sourceInfo"]
                .as_str()
                .and_then(|s| s.strip_prefix("found in "))
                .unwrap_or_default()
                .into(),
            arch: None,
            license: None,
            purl,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn packages_from_dpkg_apk_and_python() {
        let d = tempfile::tempdir().unwrap();
        let l = d.path().join("l");
        fs::create_dir_all(l.join("etc")).unwrap();
        fs::write(l.join("etc/os-release"), "NAME=\"Debian\"\nID=debian\n").unwrap();
        fs::create_dir_all(l.join("var/lib/dpkg")).unwrap();
        fs::write(
            l.join("var/lib/dpkg/status"),
            "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\nDescription: libc\n more text\n\n\
             Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
        )
        .unwrap();
        let sp = l.join("app/venv/lib/python3.11/site-packages/Flask-3.0.3.dist-info");
        fs::create_dir_all(&sp).unwrap();
        fs::write(
            sp.join("METADATA"),
            "Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.3\nLicense: BSD-3-Clause\n\nName: not-this\n",
        )
        .unwrap();
        fs::create_dir_all(l.join("lib/apk/db")).unwrap();
        fs::write(l.join("lib/apk/db/installed"), "C:Q1x\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\n").unwrap();
        let t = Tree::merge(&[l]).unwrap();
        let p = scan(&t);
        let purls: Vec<&str> = p.iter().map(|p| p.purl.as_str()).collect();
        assert_eq!(
            purls,
            [
                "pkg:apk/debian/musl@1.2.4-r2?arch=x86_64",
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64",
                "pkg:pypi/flask@3.0.3"
            ]
        );
        assert_eq!(p[2].location, "/app/venv/lib/python3.11/site-packages");
        assert_eq!(p[2].license.as_deref(), Some("BSD-3-Clause"));
        let m = oci::Digest::of(b"m");
        let doc = spdx("model:1", &m, "1970-01-01T00:00:00Z", "berth", &p);
        assert_eq!(doc["packages"].as_array().unwrap().len(), 4);
        let back = packages_of_spdx(&doc);
        assert_eq!(
            back.iter().map(|p| (&p.ecosystem, &p.name, &p.version)).collect::<Vec<_>>()[2],
            (&"pypi".to_string(), &"Flask".to_string(), &"3.0.3".to_string())
        );
        assert_eq!(normalize_python("Zope.Interface__x"), "zope-interface-x");
    }
}
