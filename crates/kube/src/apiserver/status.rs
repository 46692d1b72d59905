//! Errors as the Kubernetes API server writes them: a `Status` object with its reason, details
//! and code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One cause of an `Invalid` error (a field and what is wrong with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// The field path (`metadata.name`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// An API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub code: u16,
    /// The `Status` reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    /// The message.
    pub message: String,
    /// `details.name`, `details.group`, `details.kind`, `details.causes`.
    pub details: Option<Box<Details>>,
}

/// A `Status`'s details.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// The object's name.
    pub name: String,
    /// Its API group.
    pub group: String,
    /// Its resource (the plural, as the real server fills `kind`).
    pub kind: String,
    /// The causes.
    pub causes: Vec<Cause>,
    /// `retryAfterSeconds` (0: none).
    pub retry_after: u32,
}

impl Details {
    /// Details naming an object.
    pub fn of(name: impl Into<String>, group: impl Into<String>, kind: impl Into<String>) -> Box<Details> {
        Box::new(Details {
            name: name.into(),
            group: group.into(),
            kind: kind.into(),
            ..Details::default()
        })
    }
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with(mut self, name: &str, group: &str, kind: &str, causes: Vec<Cause>) -> Self {
        let mut d = Details::of(name, group, kind);
        d.causes = causes;
        self.details = Some(d);
        self
    }

    /// `<resource> "<name>" is forbidden: <why>` (an admission's refusal): `shown` is the
    /// resource as the message names it (`pods`, `deployments.apps`).
    pub fn forbidden(shown: &str, group: &str, plural: &str, name: &str, why: impl std::fmt::Display) -> Self {
        ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!("{shown} \"{name}\" is forbidden: {why}"),
            details: Some(Details::of(name, group, plural)),
        }
    }

    /// `<plural> "<name>" not found`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let what = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        Self::new(404, "NotFound", format!("{what} \"{name}\" not found")).with(name, group, plural, vec![])
    }

    /// `<plural> "<name>" already exists`.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let what = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        Self::new(409, "AlreadyExists", format!("{what} \"{name}\" already exists")).with(name, group, plural, vec![])
    }

    /// A stale resourceVersion.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        let what = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        )
        .with(name, group, plural, vec![])
    }

    /// Validation failed: `<Kind> "<name>" is invalid: <field>: <message>, ...`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
        // The kind qualified by its group, as the real server names it (`Deployment.apps`).
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let msg = match list.len() {
            1 => format!("{what} \"{name}\" is invalid: {}", list[0]),
            _ => format!("{what} \"{name}\" is invalid: [{}]", list.join(", ")),
        };
        Self::new(422, "Invalid", msg).with(name, group, kind, causes)
    }

    /// A server-side apply that would change fields other managers own (409, the causes
    /// naming each field).
    pub fn apply_conflict(message: String, causes: Vec<Cause>) -> Self {
        Self::new(409, "Conflict", message).with("", "", "", causes)
    }

    /// The path names nothing served: `the server could not find the requested resource`.
    pub fn no_such_path() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type})"))
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 410 Gone (a watch or list from a compacted revision).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            let Details {
                name,
                group,
                kind,
                causes,
                retry_after,
            } = &**d;
            let mut d = json!({});
            if !name.is_empty() {
                d["name"] = json!(name);
            }
            if !group.is_empty() {
                d["group"] = json!(group);
            }
            if !kind.is_empty() {
                d["kind"] = json!(kind);
            }
            if !causes.is_empty() {
                d["causes"] = causes
                    .iter()
                    .map(|c| {
                        let mut o = json!({"reason": c.reason, "message": c.message});
                        if !c.field.is_empty() {
                            o["field"] = json!(c.field);
                        }
                        o
                    })
                    .collect();
            }
            if *retry_after > 0 {
                d["retryAfterSeconds"] = json!(retry_after);
            }
            v["details"] = d;
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, [("content-type", "application/json")], self.status().to_string()).into_response()
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        match e {
            crate::store::Error::Compacted { requested, .. } => {
                ApiError::gone(format!("The resourceVersion for the provided watch is too old. ({requested})"))
            }
            crate::store::Error::FutureRevision { requested, current } => ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {requested}, current: {current}"),
            ),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
