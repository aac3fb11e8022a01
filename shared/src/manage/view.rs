//! What the management API shows of a key: never the key, never its hash.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::id::KeyId;
use crate::leak::{LeakPolicy, LineageLeak};
use crate::limits::Limits;
use crate::model::{KeyRecord, KeyStatus};
use crate::scope::Scope;
use crate::store::AuditEvent;

/// The public view of a key record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyView {
    pub key_id: KeyId,
    pub hint: String,
    pub owner: String,
    pub name: String,
    pub env: &'static str,
    pub scopes: Vec<Scope>,
    pub status: KeyStatus,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub rotated_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub grace_until: Option<Timestamp>,
    pub successor: Option<KeyId>,
    pub limits: Limits,
    pub allowed_cidrs: Vec<String>,
    pub rotation_days: u32,
    pub metadata: BTreeMap<String, String>,
    /// Set once the key was reported leaked.
    pub leak: Option<LeakView>,
    /// Set when the other key of its rotation lineage was reported leaked.
    pub lineage_leak: Option<LineageLeak>,
}

/// What a key's owner sees of a leak report (the reporter is in the audit
/// trail).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeakView {
    /// Unix seconds of the first report.
    pub at: Timestamp,
    /// What the report did to the key.
    pub policy: LeakPolicy,
    /// GitHub's token type, or `manual`.
    pub kind: String,
    /// Where the key was seen, if the report said.
    pub source_url: Option<String>,
}

impl From<&KeyRecord> for KeyView {
    fn from(r: &KeyRecord) -> Self {
        Self {
            key_id: r.key_id.clone(),
            hint: r.hint.clone(),
            owner: r.owner.clone(),
            name: r.name.clone(),
            env: r.env.as_str(),
            scopes: r.scopes.clone(),
            status: r.status,
            created_at: r.created_at,
            expires_at: r.expires_at,
            rotated_at: r.rotated_at,
            revoked_at: r.revoked_at,
            grace_until: r.grace_until,
            successor: r.successor.clone(),
            limits: r.limits,
            allowed_cidrs: r.allowed_cidrs.iter().map(ToString::to_string).collect(),
            rotation_days: r.rotation_days,
            metadata: r.metadata.clone(),
            leak: r.leak.as_ref().map(|m| LeakView {
                at: m.at,
                policy: m.policy,
                kind: m.kind.clone(),
                source_url: m.source_url.clone(),
            }),
            lineage_leak: r.lineage_leak.clone(),
        }
    }
}

/// A freshly issued (or rotated-in) key: the only response that carries
/// the plaintext.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedView {
    /// The key itself, shown this once.
    pub key: String,
    #[serde(flatten)]
    pub view: KeyView,
    /// Where the key was also delivered, if asked.
    pub secret_name: Option<String>,
}

/// One page of keys.
#[derive(Debug, Clone, Serialize)]
pub struct KeyPage {
    pub keys: Vec<KeyView>,
    pub next_cursor: Option<String>,
}

/// One page of audit events.
#[derive(Debug, Clone, Serialize)]
pub struct EventPage {
    pub events: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}
