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
        let host = if parts.len() > 1 && is_host(parts[0]) {
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
            Some(h) if is_docker_hub(h) => {
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

    /// The registry that serves this repository: its host (`localhost:5000`), or Docker Hub's
    /// API endpoint for a name without one.
    pub fn registry(&self) -> &str {
        match split_domain(&self.repo) {
            (Some(host), _) => host,
            (None, _) => DOCKER_HUB,
        }
    }

    /// The repository's path on its registry (`busybox` → `library/busybox` on Docker Hub).
    pub fn remote_name(&self) -> String {
        match split_domain(&self.repo) {
            (Some(_), path) => path.to_string(),
            (None, path) if !path.contains('/') => format!("library/{path}"),
            (None, path) => path.to_string(),
        }
    }

    /// The fully qualified name (`docker.io/library/busybox:latest`), as OCI layouts annotate
    /// images and containerd names them.
    pub fn full_name(&self) -> String {
        let repo = match split_domain(&self.repo) {
            (Some(_), _) => self.repo.clone(),
            (None, _) => format!("docker.io/{}", self.remote_name()),
        };
        format!("{repo}:{}", self.tag.as_deref().unwrap_or("latest"))
    }

    /// The tag or digest a registry is asked for: the digest if there is one, else the tag,
    /// else `latest` (what the Engine API's `tag` parameter carries).
    pub fn tag_or_digest(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

/// Docker Hub's API endpoint, the registry of every name without a host.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// The names Docker Hub goes by in references and logins.
pub fn is_docker_hub(host: &str) -> bool {
    matches!(host, "docker.io" | "index.docker.io" | "registry-1.docker.io")
}

/// A normalized repository's host, if it names one, and the rest.
fn split_domain(repo: &str) -> (Option<&str>, &str) {
    match repo.split_once('/') {
        Some((first, rest)) if is_host(first) => (Some(first), rest),
        _ => (None, repo),
    }
}

/// Docker's rule: a first component with a `.` or `:`, or `localhost`, is a registry host.
fn is_host(c: &str) -> bool {
    c.contains('.') || c.contains(':') || c == "localhost"
}

/// `repo[:tag][@digest]`, as Docker shows a familiar reference.
impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
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

    #[test]
    fn registry_and_remote_name() {
        let r = |s: &str| Reference::parse(s).unwrap();
        assert_eq!(
            (r("busybox").registry(), r("busybox").remote_name().as_str()),
            (DOCKER_HUB, "library/busybox")
        );
        assert_eq!(r("docker.io/library/busybox").remote_name(), "library/busybox");
        assert_eq!(
            (r("team/model").registry(), r("team/model").remote_name().as_str()),
            (DOCKER_HUB, "team/model")
        );
        let local = r("localhost:5000/team/model:v1");
        assert_eq!((local.registry(), local.remote_name().as_str()), ("localhost:5000", "team/model"));
        assert_eq!(r("ghcr.io/x/y").registry(), "ghcr.io");
        assert_eq!(r("localhost/x").registry(), "localhost");
        assert_eq!(r("busybox").full_name(), "docker.io/library/busybox:latest");
        assert_eq!(r("team/model:1").full_name(), "docker.io/team/model:1");
        assert_eq!(r("localhost:5000/m:v1").full_name(), "localhost:5000/m:v1");
    }

    #[test]
    fn displays_as_familiar_and_asks_for_tag_or_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("docker.io/library/busybox@{d}")).unwrap();
        assert_eq!(r.to_string(), format!("busybox@{d}"));
        assert_eq!(r.tag_or_digest(), d);
        assert_eq!(Reference::parse("x:1").unwrap().to_string(), "x:1");
        assert_eq!(Reference::parse("x").unwrap().to_string(), "x");
        assert_eq!(Reference::parse("x").unwrap().tag_or_digest(), "latest");
    }
}
