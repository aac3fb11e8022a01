//! The audit trail: one immutable item per lifecycle event of a key,
//! written in the same transaction as the change it records.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::id::KeyId;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Issued,
    Updated,
    Revoked,
    Rotated,
    Expired,
    /// Reported leaked (GitHub secret scanning or a manual report).
    Leaked,
    /// The other key of this key's rotation lineage was reported leaked;
    /// this one was flagged, not changed.
    LineageLeaked,
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub key_id: KeyId,
    pub action: AuditAction,
    /// Key id of the caller, or `operator:<tool>` for the operator CLI,
    /// or `system:<function>` for scheduled work.
    pub actor: String,
    pub at: Timestamp,
    /// The key record's version after the change: orders events that share a second.
    pub version: u64,
    /// What changed, as field -> new value (JSON text).
    pub change: String,
    /// Orders events within one second and keeps ids unique.
    pub event_id: String,
}

impl AuditEvent {
    pub fn new(
        key_id: &KeyId,
        version: u64,
        action: AuditAction,
        actor: impl Into<String>,
        at: Timestamp,
        change: serde_json::Value,
    ) -> Self {
        Self {
            key_id: key_id.clone(),
            action,
            actor: actor.into(),
            at,
            version,
            change: change.to_string(),
            event_id: KeyId::generate().as_str()[KeyId::PREFIX.len()..].to_owned(),
        }
    }

    /// Sort key: time, then record version, so a query reads the trail in order.
    pub fn sort_key(&self) -> String {
        format!("{:012}#{:09}#{}", self.at, self.version, self.event_id)
    }
}
