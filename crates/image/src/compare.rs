//! `image diff A B`: which layers, files and packages changed between two images.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;

use oci::Digest;
use serde::Serialize;

use crate::error::Result;
use crate::sbom::{self, Package};
use crate::store::{chain_ids, ImageStore};
use crate::view::{Entry, Kind, Tree};

/// One layer of either image.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Layer {
    /// `shared` (the same layer, on the same layers below), `removed` (only in A), `added` (only
    /// in B).
    pub status: &'static str,
    pub diff_id: Digest,
    /// Its compressed size as stored.
    pub size: u64,
    /// The history step that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// A path that differs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct File {
    pub path: String,
    /// `added`, `deleted` or `modified`.
    pub status: &'static str,
    /// For a modified path, what differs (`content`, `size 10 -> 12`, `mode 0644 -> 0755`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// A package whose version differs, or that only one image holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PackageChange {
    pub ecosystem: String,
    pub name: String,
    /// `added`, `removed` or `changed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// Everything that differs between two images.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: Digest,
    pub b: Digest,
    pub layers: Vec<Layer>,
    pub files: Vec<File>,
    pub packages: Vec<PackageChange>,
}

/// The `created_by` of each layer-making history step, bottom first.
fn layer_steps(store: &ImageStore, id: &Digest) -> Result<Vec<Option<String>>> {
    let cfg = store.config(id)?;
    let mut steps: Vec<Option<String>> = cfg
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.clone())
        .collect();
    steps.resize(cfg.rootfs.diff_ids.len(), None);
    Ok(steps)
}

fn same_content(a: &Entry, b: &Entry) -> bool {
    if a.host == b.host {
        return true;
    }
    let (Ok(mut fa), Ok(mut fb)) = (fs::File::open(&a.host), fs::File::open(&b.host)) else {
        return false;
    };
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let (Ok(na), Ok(nb)) = (read_full(&mut fa, &mut ba), read_full(&mut fb, &mut bb)) else {
            return false;
        };
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What differs in two entries of the same path; empty if nothing.
fn entry_changes(a: &Entry, b: &Entry, shared_layers: usize) -> Vec<String> {
    // Both from the same layer, on the same layers below: identical by construction.
    if a.layer == b.layer && a.layer < shared_layers {
        return vec![];
    }
    let mut out = Vec::new();
    if a.kind != b.kind {
        out.push(format!("type {:?} -> {:?}", a.kind, b.kind).to_lowercase());
        return out;
    }
    if a.mode != b.mode {
        out.push(format!("mode {:04o} -> {:04o}", a.mode, b.mode));
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        out.push(format!("owner {}:{} -> {}:{}", a.uid, a.gid, b.uid, b.gid));
    }
    if a.link != b.link {
        out.push(format!(
            "link {} -> {}",
            a.link.as_deref().unwrap_or(""),
            b.link.as_deref().unwrap_or("")
        ));
    }
    if a.kind == Kind::File {
        if a.size != b.size {
            out.push(format!("size {} -> {}", a.size, b.size));
        } else if !same_content(a, b) {
            out.push("content".into());
        }
    }
    out
}

fn package_changes(a: &[Package], b: &[Package]) -> Vec<PackageChange> {
    fn by_name(p: &[Package]) -> BTreeMap<(String, String), BTreeSet<String>> {
        let mut m: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for x in p {
            let name = if x.ecosystem == "pypi" {
                sbom::normalize_python(&x.name)
            } else {
                x.name.clone()
            };
            m.entry((x.ecosystem.clone(), name)).or_default().insert(x.version.clone());
        }
        m
    }
    let (ma, mb) = (by_name(a), by_name(b));
    let keys: BTreeSet<&(String, String)> = ma.keys().chain(mb.keys()).collect();
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
    let mut out = Vec::new();
    for k in keys {
        let (va, vb) = (ma.get(k), mb.get(k));
        let status = match (va, vb) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(_), Some(_)) => "changed",
            (Some(_), None) => "removed",
            _ => "added",
        };
        out.push(PackageChange {
            ecosystem: k.0.clone(),
            name: k.1.clone(),
            status,
            from: va.map(join),
            to: vb.map(join),
        });
    }
    out
}

/// Compare images `a` and `b` of `store`.
pub fn compare(store: &ImageStore, a: &Digest, b: &Digest) -> Result<Comparison> {
    let (ca, cb) = (store.config(a)?, store.config(b)?);
    let (ma, mb) = (store.manifest(a)?, store.manifest(b)?);
    let (chain_a, chain_b) = (chain_ids(&ca.rootfs.diff_ids), chain_ids(&cb.rootfs.diff_ids));
    let shared = chain_a.iter().zip(&chain_b).take_while(|(x, y)| x == y).count();
    let (sa, sb) = (layer_steps(store, a)?, layer_steps(store, b)?);
    let mut layers = Vec::new();
    for i in 0..ca.rootfs.diff_ids.len().max(cb.rootfs.diff_ids.len()) {
        let mut push = |status, diff_id: &Digest, size, step: &Option<String>| {
            layers.push(Layer {
                status,
                diff_id: diff_id.clone(),
                size,
                created_by: step.clone(),
            })
        };
        if i < shared {
            push("shared", &ca.rootfs.diff_ids[i], ma.layers[i].size, &sb[i]);
            continue;
        }
        if let Some(d) = ca.rootfs.diff_ids.get(i) {
            push("removed", d, ma.layers.get(i).map_or(0, |l| l.size), &sa[i]);
        }
        if let Some(d) = cb.rootfs.diff_ids.get(i) {
            push("added", d, mb.layers.get(i).map_or(0, |l| l.size), &sb[i]);
        }
    }
    let (ta, tb) = (Tree::merge(&store.lower_dirs(a)?)?, Tree::merge(&store.lower_dirs(b)?)?);
    let mut files = Vec::new();
    let paths: BTreeSet<&String> = ta.entries.keys().chain(tb.entries.keys()).collect();
    // A path added or deleted with everything below it is reported once, at its top.
    let mut tops: BTreeSet<&str> = BTreeSet::new();
    for p in paths {
        let mut up = p.as_str();
        let mut below_top = false;
        while let Some((parent, _)) = up.rsplit_once('/') {
            if tops.contains(parent) {
                below_top = true;
                break;
            }
            up = parent;
        }
        if below_top {
            continue;
        }
        match (ta.entries.get(p), tb.entries.get(p)) {
            (Some(x), Some(y)) => {
                let changes = entry_changes(x, y, shared);
                if !changes.is_empty() {
                    files.push(File {
                        path: p.clone(),
                        status: "modified",
                        changes,
                    });
                }
            }
            (x, _) => {
                let status = if x.is_some() { "deleted" } else { "added" };
                files.push(File {
                    path: p.clone(),
                    status,
                    changes: vec![],
                });
                tops.insert(p);
            }
        }
    }
    let packages = package_changes(&sbom::scan(&ta), &sbom::scan(&tb));
    Ok(Comparison {
        a: a.clone(),
        b: b.clone(),
        layers,
        files,
        packages,
    })
}
