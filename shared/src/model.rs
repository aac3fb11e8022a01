//! The key record: everything stored about a key except the key itself.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::hash::KeyHash;
use crate::id::KeyId;
use crate::key::KeyEnv;
use crate::limits::Limits;
use crate::scope::Scope;

/// Days between scheduled rotations unless a key says otherwise.
pub const DEFAULT_ROTATION_DAYS: u32 = 90;
/// Longest rotation interval a key or a deployment may set (ten years).
pub const MAX_ROTATION_DAYS: u32 = 3650;

/// Lifecycle state of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Replaced by a successor; usable until its grace deadline.
    Rotating,
    /// Revoked by an operator: denied from the next request on.
    Revoked,
    /// Rotated and past its grace deadline: denied.
    Retired,
    /// Reported leaked under the `quarantine` policy: denied `leaked` until
    /// an admin revokes it (see [`crate::leak`]).
    Quarantined,
}

impl KeyStatus {
    /// Whether the key may still spend from its allowance.
    pub fn is_live(self) -> bool {
        matches!(self, KeyStatus::Active | KeyStatus::Rotating)
    }
}

/// A stored key. Holds the hash and a display hint, never the plaintext.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub key_id: KeyId,
    pub hash: KeyHash,
    pub hint: String,
    pub env: KeyEnv,
    /// The tenant that owns the key; management and reporting are scoped to it.
    pub owner: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub status: KeyStatus,
    /// Bumped by every change; the authorizer's write checks it, so a cached
    /// copy of an older version is never admitted.
    #[serde(default)]
    pub version: u64,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// While `Rotating`: the moment the key stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<KeyId>,
    /// The counters this key spends from; a key and its rotated successors share one.
    pub allowance_id: String,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub allowed_cidrs: Vec<IpNet>,
    /// Days between scheduled rotations; 0 means never.
    #[serde(default = "default_rotation_days")]
    pub rotation_days: u32,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The key's plaintext is staged in its Secrets Manager secret but not yet
    /// made current there: the rotation sweep finishes the delivery.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret_pending: bool,
    /// Set once, by the first leak report (see [`crate::leak`]): a second
    /// report of the same key changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leak: Option<crate::leak::LeakMark>,
    /// Set when the other key of this key's rotation lineage was reported
    /// leaked; this key keeps working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage_leak: Option<crate::leak::LineageLeak>,
}

fn default_rotation_days() -> u32 {
    DEFAULT_ROTATION_DAYS
}

impl KeyRecord {
    /// The moment this key stops working, if any: its expiry, or the end of
    /// its rotation grace, whichever comes first.
    pub fn usable_until(&self) -> Option<Timestamp> {
        match (self.expires_at, self.grace_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether other keys may share this key's allowance: it was rotated, or
    /// it is a successor (a first key's allowance id is its own key id). A
    /// key for which this is false has no rotation lineage to look up.
    pub fn in_lineage(&self) -> bool {
        self.successor.is_some() || self.allowance_id != self.key_id.as_str()
    }

    /// When scheduled rotation is due, if the key rotates at all.
    pub fn rotation_due(&self) -> Option<Timestamp> {
        (self.status == KeyStatus::Active && self.rotation_days > 0)
            .then(|| self.created_at + i64::from(self.rotation_days) * 86_400)
    }

    /// Whether a source address is inside the allowlist (an empty list allows all).
    pub fn ip_allowed(&self, ip: Option<std::net::IpAddr>) -> bool {
        if self.allowed_cidrs.is_empty() {
            return true;
        }
        ip.is_some_and(|ip| self.allowed_cidrs.iter().any(|net| net.contains(&ip)))
    }
}
