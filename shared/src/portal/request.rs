//! Request bodies of the portal routes: strict (unknown fields refused),
//! parsed by the management API's own parser so errors read alike.

use serde::Deserialize;

use crate::clock::Timestamp;
use crate::limits::Limits;
use crate::manage::request::RotateRequest;

/// `POST /v1/portal/sessions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// The owner whose keys the portal user manages.
    pub owner: String,
    /// The provider's page the portal links back to (`https://`).
    #[serde(default)]
    pub return_url: Option<String>,
    /// What the portal user may give their keys; default: the calling
    /// key's own scopes (less `admin` and `portal:*`) and limits.
    #[serde(default)]
    pub grants: Option<GrantsRequest>,
}

/// The `grants` of a session, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsRequest {
    pub scopes: Vec<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// `POST /portal/api/session`: the link's token, posted once by the page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    pub token: String,
}

/// `POST /portal/api/keys/{key_id}/rotate`: the old key's grace.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalRotateRequest {
    #[serde(default)]
    pub grace_seconds: Option<u64>,
}

impl From<PortalRotateRequest> for RotateRequest {
    fn from(r: PortalRotateRequest) -> Self {
        RotateRequest {
            grace_seconds: r.grace_seconds,
            deliver_to_secret: false,
        }
    }
}
