//! Errors of the registry server: [`Error`] for setup and storage, and [`ApiError`], the
//! distribution spec's `{"errors":[{"code","message","detail"}]}` answer that [`Error`]s and refusals
//! become at the HTTP edge.

use std::path::PathBuf;

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Errors of the registry server outside a request: configuration, storage, TLS, binding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The content store failed (I/O, a digest mismatch on ingest, a missing blob).
    #[error(transparent)]
    Oci(#[from] oci::Error),
    /// A filesystem operation on the registry's metadata failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A metadata file holds something this server did not write.
    #[error("corrupt registry metadata {path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    /// The htpasswd file cannot be used.
    #[error("htpasswd file {path}, line {line}: {msg}")]
    Htpasswd { path: PathBuf, line: usize, msg: String },
    /// The access rules file cannot be used.
    #[error("access rules {path}, line {line}: {msg}")]
    Rules { path: PathBuf, line: usize, msg: String },
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The listening socket could not be set up.
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is invalid or unsafe.
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    /// Name the operation and path of an I/O error.
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

/// The error codes of the distribution spec (plus `UNKNOWN` for server faults, as distribution
/// answers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// Not a spec code: an internal failure (status 500).
    Unknown,
}

impl Code {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// The status a request failing with this code gets unless said otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown | Code::BlobUploadUnknown | Code::ManifestUnknown | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One entry of the `errors` array.
#[derive(Debug, Clone)]
pub struct ErrorEntry {
    pub code: Code,
    pub message: String,
    pub detail: Option<Value>,
}

/// A refused or failed request: a status, one or more spec errors, and extra headers (a
/// `WWW-Authenticate` challenge, the `Range` of an upload after a 416).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<ErrorEntry>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with the code's usual status.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            status: code.status(),
            errors: vec![ErrorEntry {
                code,
                message: message.into(),
                detail: None,
            }],
            headers: Vec::new(),
        }
    }

    /// Attach `detail` to the (first) error.
    pub fn detail(mut self, detail: Value) -> Self {
        if let Some(e) = self.errors.first_mut() {
            e.detail = Some(detail);
        }
        self
    }

    /// Answer with another status than the code's usual one.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Add a response header (values that are not valid header text are dropped).
    pub fn header(mut self, name: HeaderName, value: impl AsRef<str>) -> Self {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.push((name, v));
        }
        self
    }

    /// Several errors of one status (e.g. every blob a manifest references that is missing).
    pub fn many(status: StatusCode, errors: Vec<ErrorEntry>) -> Self {
        ApiError {
            status,
            errors,
            headers: Vec::new(),
        }
    }

    /// An internal failure; the cause is logged, the client sees a generic message.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "registry request failed");
        ApiError::new(Code::Unknown, "internal server error")
    }

    /// The first error's code.
    pub fn code(&self) -> Code {
        self.errors.first().map(|e| e.code).unwrap_or(Code::Unknown)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<oci::Error> for ApiError {
    fn from(e: oci::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| {
                let mut o = json!({"code": e.code.as_str(), "message": e.message});
                if let Some(d) = &e.detail {
                    o["detail"] = d.clone();
                }
                o
            })
            .collect();
        let body = json!({ "errors": errors }).to_string();
        let mut resp = (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;
