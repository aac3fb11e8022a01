//! Developer-portal sign-in links and sessions, as the store keeps them.
//!
//! Both are stored under the SHA-256 of their secret only (the secret
//! itself is never written), with a TTL attribute so DynamoDB deletes them
//! once they expire. TTL deletion is lazy (it can take days), so readers
//! check [`PortalGrant::expires_at`] themselves.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::clock::Timestamp;
use crate::grants::Grants;

/// What a link or a session lets its bearer do, for whom, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalGrant {
    /// The owner whose keys the portal user manages.
    pub owner: String,
    /// The ceiling of what the portal user may grant their keys.
    pub grants: Grants,
    /// Where the portal's "back" link leads (the provider's app), if given.
    pub return_url: Option<String>,
    /// Who opened it: the provider key's id, or `operator:<tool>`.
    pub created_by: String,
    /// Seconds since the epoch.
    pub created_at: Timestamp,
    /// Seconds since the epoch; invalid from then on.
    pub expires_at: Timestamp,
}

/// Links and sessions: `PutItem`, `DeleteItem` (conditional, returning the
/// old item), `GetItem` (consistent), `Query` on the owner index.
#[async_trait]
pub trait PortalStore: Send + Sync {
    /// Store a sign-in link under its token's hash. Fails with
    /// [`StoreError::Conflict`] if that hash exists.
    async fn put_link(&self, hash: &str, link: &PortalGrant) -> Result<(), StoreError>;

    /// Remove a link and return it, in one conditional delete: of two
    /// concurrent exchanges of one link exactly one gets it. `None` when no
    /// such link exists (never stored, or already used).
    async fn take_link(&self, hash: &str) -> Result<Option<PortalGrant>, StoreError>;

    /// Store a session under its id's hash (its owner index entry lets
    /// [`PortalStore::revoke_owner`] find it).
    async fn put_session(&self, hash: &str, session: &PortalGrant) -> Result<(), StoreError>;

    /// A session by its id's hash (strongly consistent), expired or not.
    async fn session(&self, hash: &str) -> Result<Option<PortalGrant>, StoreError>;

    /// Delete a session (sign-out). Deleting a missing session succeeds.
    async fn delete_session(&self, hash: &str) -> Result<(), StoreError>;

    /// Delete every session of `owner`; returns how many there were.
    async fn revoke_owner(&self, owner: &str) -> Result<u64, StoreError>;
}
