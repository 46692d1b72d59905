//! What a request names: repository names, tags, digests, the route a `/v2/...` path is, and query
//! parameters. Everything is validated on the raw (still percent-encoded) path, so an encoded `..`
//! (`%2e%2e`) is as invalid as a plain one: neither matches the name grammar.

use std::fmt;

use oci::Digest;

use super::error::{ApiError, ApiResult, Code};

/// Longest repository name accepted (many clients cap `host/name` at 255 characters).
pub const MAX_NAME_LEN: usize = 255;

/// A repository name that matches the spec's grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName(String);

impl RepoName {
    /// Validate a repository name.
    pub fn parse(s: &str) -> ApiResult<RepoName> {
        if s.is_empty() || s.len() > MAX_NAME_LEN || !s.split('/').all(valid_component) {
            return Err(ApiError::new(Code::NameInvalid, "invalid repository name").detail(serde_json::json!({ "name": s })));
        }
        Ok(RepoName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One path component of a name: lowercase alphanumeric runs joined by `.`, `_`, `__` or dashes.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `s` is a valid tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// Parse a digest from a request. Only `sha256` is stored; any other well-formed algorithm is
/// refused as unsupported, anything else as malformed (both `DIGEST_INVALID`, status 400).
pub fn parse_digest(s: &str) -> ApiResult<Digest> {
    let Some((alg, enc)) = s.split_once(':') else {
        return Err(ApiError::new(
            Code::DigestInvalid,
            format!("invalid digest {s:?}: expected sha256:<hex>"),
        ));
    };
    if alg == "sha256" {
        return Digest::parse(s).map_err(|e| ApiError::new(Code::DigestInvalid, e.to_string()));
    }
    let alg_ok = !alg.is_empty()
        && alg
            .split(['+', '.', '_', '-'])
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    let enc_ok = !enc.is_empty() && enc.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    if alg_ok && enc_ok {
        Err(ApiError::new(
            Code::DigestInvalid,
            format!("unsupported digest algorithm {alg:?}: only sha256 is supported"),
        ))
    } else {
        Err(ApiError::new(Code::DigestInvalid, format!("invalid digest {s:?}")))
    }
}

/// The `<tag-or-digest>` of a manifest request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// A digest if the reference has a `:`, a tag otherwise. An invalid tag is `MANIFEST_INVALID`
    /// (400), an invalid digest `DIGEST_INVALID` (400).
    pub fn parse(s: &str) -> ApiResult<Reference> {
        if s.contains(':') {
            return parse_digest(s).map(Reference::Digest);
        }
        if valid_tag(s) {
            Ok(Reference::Tag(s.to_string()))
        } else {
            Err(ApiError::new(Code::ManifestInvalid, "invalid tag").detail(serde_json::json!({ "tag": s })))
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// What a `/v2/...` path addresses. Names are validated; references and digests are kept raw so
/// each handler reports them with its own error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: RepoName },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: RepoName, reference: String },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: RepoName, digest: String },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: RepoName },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: RepoName, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: RepoName, digest: String },
}

impl Route {
    /// The repository the route is about, if any.
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }

    /// Parse a raw request path. `Ok(None)` for a path outside the API (404); `Err` for a route
    /// whose repository name is invalid.
    pub fn parse(path: &str) -> ApiResult<Option<Route>> {
        let Some(rest) = path.strip_prefix("/v2") else {
            return Ok(None);
        };
        if rest.is_empty() || rest == "/" {
            return Ok(Some(Route::Base));
        }
        let Some(rest) = rest.strip_prefix('/') else {
            return Ok(None);
        };
        if rest == "_catalog" {
            return Ok(Some(Route::Catalog));
        }
        let segs: Vec<&str> = rest.split('/').collect();
        let n = segs.len();
        let name_of = |k: usize| -> ApiResult<RepoName> { RepoName::parse(&segs[..n - k].join("/")) };
        // Matched from the end: a repository name may itself contain "blobs" or "manifests".
        let route = if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
            Route::Tags { name: name_of(2)? }
        } else if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
            Route::UploadStart { name: name_of(2)? }
        } else if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
            if segs[n - 1].is_empty() {
                Route::UploadStart { name: name_of(3)? }
            } else {
                Route::Upload {
                    name: name_of(3)?,
                    id: segs[n - 1].to_string(),
                }
            }
        } else if n >= 3 && segs[n - 2] == "manifests" && !segs[n - 1].is_empty() {
            Route::Manifest {
                name: name_of(2)?,
                reference: segs[n - 1].to_string(),
            }
        } else if n >= 3 && segs[n - 2] == "blobs" && !segs[n - 1].is_empty() {
            Route::Blob {
                name: name_of(2)?,
                digest: segs[n - 1].to_string(),
            }
        } else if n >= 3 && segs[n - 2] == "referrers" && !segs[n - 1].is_empty() {
            Route::Referrers {
                name: name_of(2)?,
                digest: segs[n - 1].to_string(),
            }
        } else {
            return Ok(None);
        };
        Ok(Some(route))
    }
}

/// Decoded query parameters in order (a key may repeat, as `tag` and `scope` do).
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parse `a=1&b=x%20y`; `+` is a space, as in forms.
    pub fn parse(q: Option<&str>) -> Query {
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Query(
            q.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (dec(k), dec(v)),
                    None => (dec(p), String::new()),
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Percent-encode a query value.
pub fn encode_query_value(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "library/busybox", "a.b_c__d---e/f0", "x/y/z", "0"] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "..",
            "a/../b",
            "%2e%2e",
            "a/%2e%2e/b",
            "a._b",
            "a___b",
            "-a",
            "a-",
            "a b",
            "a:b",
        ] {
            let e = RepoName::parse(bad).unwrap_err();
            assert_eq!(e.code(), Code::NameInvalid, "{bad}");
        }
        assert!(RepoName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags_and_digests() {
        assert!(valid_tag("latest") && valid_tag("_x") && valid_tag("v1.2-rc_3") && valid_tag(&"a".repeat(128)));
        assert!(!valid_tag("") && !valid_tag(".x") && !valid_tag("-x") && !valid_tag("a/b") && !valid_tag(&"a".repeat(129)));
        let d = Digest::of(b"x");
        assert_eq!(parse_digest(&d.to_string()).unwrap(), d);
        // The bare hex form Digest::parse also accepts is not a digest on the wire.
        assert!(parse_digest(d.hex()).is_err());
        let e = parse_digest("sha512:abcd").unwrap_err();
        assert!(e.errors[0].message.contains("unsupported"), "{e:?}");
        assert!(parse_digest("sha256:../../x").is_err());
        assert_eq!(Reference::parse("v1").unwrap(), Reference::Tag("v1".into()));
        assert_eq!(Reference::parse(".v1").unwrap_err().code(), Code::ManifestInvalid);
        assert!(Reference::parse("sha256:zz").is_err());
    }

    #[test]
    fn routes() {
        let name = |s: &str| RepoName::parse(s).unwrap();
        assert_eq!(Route::parse("/v2/").unwrap(), Some(Route::Base));
        assert_eq!(Route::parse("/v2").unwrap(), Some(Route::Base));
        assert_eq!(Route::parse("/v2/_catalog").unwrap(), Some(Route::Catalog));
        assert_eq!(Route::parse("/v2/a/b/tags/list").unwrap(), Some(Route::Tags { name: name("a/b") }));
        assert_eq!(
            Route::parse("/v2/blobs/manifests/blobs/x").unwrap(),
            Some(Route::Blob {
                name: name("blobs/manifests"),
                digest: "x".into()
            })
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/").unwrap(),
            Some(Route::UploadStart { name: name("a") })
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads").unwrap(),
            Some(Route::UploadStart { name: name("a") })
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/abc").unwrap(),
            Some(Route::Upload {
                name: name("a"),
                id: "abc".into()
            })
        );
        assert_eq!(
            Route::parse("/v2/a/manifests/latest").unwrap(),
            Some(Route::Manifest {
                name: name("a"),
                reference: "latest".into()
            })
        );
        assert_eq!(
            Route::parse("/v2/a/referrers/sha256:x").unwrap(),
            Some(Route::Referrers {
                name: name("a"),
                digest: "sha256:x".into()
            })
        );
        assert_eq!(Route::parse("/v2/a/other").unwrap(), None);
        assert_eq!(Route::parse("/v3/").unwrap(), None);
        assert_eq!(Route::parse("/v2x").unwrap(), None);
        for bad in [
            "/v2/../manifests/x",
            "/v2/%2e%2e/blobs/x",
            "/v2/a/%2E%2E/tags/list",
            "/v2//tags/list",
            "/v2/A/manifests/x",
        ] {
            assert_eq!(Route::parse(bad).unwrap_err().code(), Code::NameInvalid, "{bad}");
        }
    }

    #[test]
    fn query() {
        let q = Query::parse(Some("scope=repository%3Aa%3Apull&scope=b+c&n=3&flag"));
        assert_eq!(q.all("scope").collect::<Vec<_>>(), ["repository:a:pull", "b c"]);
        assert_eq!(q.get("n"), Some("3"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("x"), None);
        assert_eq!(encode_query_value("a/b:c"), "a%2Fb%3Ac");
    }
}
