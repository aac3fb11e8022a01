//! Errors of the developer portal, each with its status and public code.
//!
//! The JSON body is the API's own `{"error": {"code", "message"}}`; the
//! management failures (403 `scope_escalation`, 404 `not_found`, 503
//! `unavailable`, ...) pass through unchanged, so the portal and the API
//! answer alike.

use serde_json::{json, Value};

use crate::manage::ManageError;
use crate::store::StoreError;

/// A portal request that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The link's token is malformed, was never issued, or was used.
    #[error("this portal link is not valid or was already used; ask for a new one")]
    LinkInvalid,
    /// The link's token was issued but its minutes passed.
    #[error("this portal link has expired; ask for a new one")]
    LinkExpired,
    /// No session cookie, or one that names no session (signed out, revoked).
    #[error("no portal session; open a new portal link")]
    NoSession,
    /// The session's time is up.
    #[error("the portal session has expired; open a new portal link")]
    SessionExpired,
    /// A state-changing call without this session's CSRF token.
    #[error("missing or wrong X-CSRF-Token header")]
    Csrf,
    /// A state-changing call from another origin.
    #[error("request origin is not this portal")]
    Origin,
    #[error(transparent)]
    Manage(#[from] ManageError),
}

impl From<StoreError> for PortalError {
    fn from(err: StoreError) -> Self {
        PortalError::Manage(ManageError::Unavailable(err))
    }
}

impl PortalError {
    pub fn status(&self) -> u16 {
        match self {
            PortalError::LinkInvalid
            | PortalError::LinkExpired
            | PortalError::NoSession
            | PortalError::SessionExpired => 401,
            PortalError::Csrf | PortalError::Origin => 403,
            PortalError::Manage(e) => e.status(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            PortalError::LinkInvalid => "link_invalid",
            PortalError::LinkExpired => "link_expired",
            PortalError::NoSession => "session_required",
            PortalError::SessionExpired => "session_expired",
            PortalError::Csrf => "csrf_failed",
            PortalError::Origin => "origin_refused",
            PortalError::Manage(e) => e.code(),
        }
    }

    /// The public JSON body.
    pub fn body(&self) -> Value {
        match self {
            PortalError::Manage(e) => e.body(),
            other => json!({"error": {"code": other.code(), "message": other.to_string()}}),
        }
    }
}
