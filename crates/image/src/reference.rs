//! Image references, normalized the way Docker shows them (`busybox` → `busybox:latest`,
//! `docker.io/library/busybox` → `busybox`).

use crate::error::{Error, Result};

/// A parsed `name[:tag][@digest]` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Repository in its familiar form (`busybox`, `localhost:5000/model`).
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    if c.is_empty() || !c.bytes().next().unwrap().is_ascii_alphanumeric() || !c.bytes().last().unwrap().is_ascii_alphanumeric() {
        return false;
    }
    c.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-')
        && !c.contains("..")
        && !c.contains("___")
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// `domain-component ('.' domain-component)* (':' port)?`, a component being alphanumerics with
/// inner dashes (Docker's reference grammar, without the bracketed IPv6 form).
fn valid_host(h: &str) -> bool {
    let (domain, port) = match h.split_once(':') {
        Some((d, p)) => (d, Some(p)),
        None => (h, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !domain.is_empty()
        && domain
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !c.starts_with('-') && !c.ends_with('-'))
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self> {
        let err = || Error::InvalidReference(s.to_string());
        if s.is_empty() || s.len() > 255 {
            return Err(err());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                oci::Digest::parse(d).map_err(|_| err())?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' after the last '/'.
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(err());
            }
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        // A first component with '.' or ':' or equal to localhost is a registry host.
        let host = if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
            Some(parts.remove(0))
        } else {
            None
        };
        if parts.is_empty() || !parts.iter().all(|c| valid_component(c)) {
            return Err(err());
        }
        if let Some(h) = host {
            if !valid_host(h) {
                return Err(err());
            }
        }
        let mut path = parts.join("/");
        let repo = match host {
            Some("docker.io") | Some("index.docker.io") | Some("registry-1.docker.io") => {
                if let Some(p) = path.strip_prefix("library/") {
                    path = p.to_string();
                }
                path
            }
            Some(h) => format!("{h}/{path}"),
            None => {
                if let Some(p) = path.strip_prefix("library/") {
                    if !p.contains('/') {
                        path = p.to_string();
                    }
                }
                path
            }
        };
        Ok(Reference { repo, tag, digest })
    }

    /// The tag, defaulting to `latest` when there is neither tag nor digest.
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// `repo:tag` (defaulting the tag to latest).
    pub fn tagged(&self) -> String {
        format!("{}:{}", self.repo, self.tag.as_deref().unwrap_or("latest"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.tagged(), "busybox:latest");
        assert_eq!(Reference::parse("docker.io/library/busybox:1.36").unwrap().tagged(), "busybox:1.36");
        assert_eq!(Reference::parse("localhost:5000/a/b:v1").unwrap().repo, "localhost:5000/a/b");
        assert!(Reference::parse("Busybox").is_err());
        assert!(Reference::parse("a:b:c").is_err());
        assert!(Reference::parse("../x").is_err());
        assert!(Reference::parse("").is_err());
    }
}
