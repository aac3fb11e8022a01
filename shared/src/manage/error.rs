//! Errors of the management API, each with its HTTP status and public code.
//!
//! Every client mistake is a 4xx with a JSON body
//! `{"error": {"code", "message", "field"?}}`; only the store failing is a
//! 5xx (503, retryable). Another owner's key and a missing key answer the
//! same 404, so a caller cannot learn which keys exist.

use serde_json::{json, Value};

use crate::store::StoreError;

/// A management request that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// No authorizer context: the route is not behind the authorizer.
    #[error("request is not authenticated")]
    Unauthenticated,
    /// The caller lacks a permission, or asked for more than it holds.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("no such key")]
    NotFound,
    /// Something named that does not exist, with its own code
    /// (`plan_not_found`).
    #[error("{message}")]
    NoSuch { code: &'static str, message: String },
    /// A change refused by the stored state, with its own code
    /// (`plan_exists`, `version_conflict`).
    #[error("{message}")]
    Clash { code: &'static str, message: String },
    #[error("no such route")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body or a parameter is invalid.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The key changed under the request (a concurrent update or rotation).
    #[error("{0}")]
    Conflict(String),
    #[error("storage is unavailable, retry")]
    Unavailable(#[source] StoreError),
    #[error("secret delivery failed, retry")]
    SecretUnavailable(#[source] crate::secrets::SecretError),
}

impl ManageError {
    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ManageError::Invalid {
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ManageError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ManageError::Unauthenticated => 401,
            ManageError::Forbidden { .. } => 403,
            ManageError::NotFound | ManageError::NoRoute | ManageError::NoSuch { .. } => 404,
            ManageError::Clash { .. } => 409,
            ManageError::MethodNotAllowed => 405,
            ManageError::Invalid { .. } => 400,
            ManageError::UnsupportedMediaType => 415,
            ManageError::TooLarge(_) => 413,
            ManageError::Conflict(_) => 409,
            ManageError::Unavailable(_) | ManageError::SecretUnavailable(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ManageError::Unauthenticated => "unauthenticated",
            ManageError::Forbidden { code, .. }
            | ManageError::Invalid { code, .. }
            | ManageError::NoSuch { code, .. }
            | ManageError::Clash { code, .. } => code,
            ManageError::NotFound => "not_found",
            ManageError::NoRoute => "no_route",
            ManageError::MethodNotAllowed => "method_not_allowed",
            ManageError::UnsupportedMediaType => "unsupported_media_type",
            ManageError::TooLarge(_) => "payload_too_large",
            ManageError::Conflict(_) => "conflict",
            ManageError::Unavailable(_) | ManageError::SecretUnavailable(_) => "unavailable",
        }
    }

    /// The public JSON body.
    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let ManageError::Invalid { field: Some(f), .. } = self {
            error["field"] = json!(f);
        }
        json!({ "error": error })
    }
}

impl From<crate::rotation::RotationError> for ManageError {
    fn from(err: crate::rotation::RotationError) -> Self {
        match err {
            crate::rotation::RotationError::Store(e) => e.into(),
            crate::rotation::RotationError::Secret(e) => ManageError::SecretUnavailable(e),
            crate::rotation::RotationError::Lost(_) => ManageError::Unavailable(
                StoreError::Corrupt("a staged key is missing from its secret"),
            ),
        }
    }
}

impl From<StoreError> for ManageError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ManageError::NotFound,
            StoreError::Conflict => {
                ManageError::Conflict("the key changed meanwhile; read it and retry".into())
            }
            other => ManageError::Unavailable(other),
        }
    }
}
