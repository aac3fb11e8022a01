//! Minting a key: the one code path every issuer (API, rotation, operator
//! CLI) goes through, so a key is always built the same way.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::clock::Timestamp;
use crate::hash::KeyHash;
use crate::id::KeyId;
use crate::key::{ApiKey, KeyFormat};
use crate::limits::Limits;
use crate::model::{KeyRecord, KeyStatus, DEFAULT_ROTATION_DAYS};
use crate::scope::Scope;

/// What the issuer asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    pub owner: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub limits: Limits,
    pub allowed_cidrs: Vec<IpNet>,
    pub expires_at: Option<Timestamp>,
    pub rotation_days: u32,
    pub metadata: BTreeMap<String, String>,
}

impl KeySpec {
    /// A key for `owner` with the given scopes and defaults for the rest.
    pub fn new(owner: impl Into<String>, name: impl Into<String>, scopes: Vec<Scope>) -> Self {
        Self {
            owner: owner.into(),
            name: name.into(),
            scopes,
            limits: Limits::default(),
            allowed_cidrs: Vec::new(),
            expires_at: None,
            rotation_days: DEFAULT_ROTATION_DAYS,
            metadata: BTreeMap::new(),
        }
    }
}

/// A fresh key and its record. The plaintext is returned to be shown once;
/// the record holds only its hash and hint.
pub fn mint(format: &KeyFormat, spec: KeySpec, now: Timestamp) -> (ApiKey, KeyRecord) {
    let key = format.generate();
    let key_id = KeyId::generate();
    let record = KeyRecord {
        allowance_id: key_id.as_str().to_owned(),
        key_id,
        hash: KeyHash::of(&key),
        hint: key.hint(),
        env: format.env(),
        owner: spec.owner,
        name: spec.name,
        scopes: spec.scopes,
        status: KeyStatus::Active,
        version: 1,
        created_at: now,
        expires_at: spec.expires_at,
        rotated_at: None,
        revoked_at: None,
        grace_until: None,
        successor: None,
        limits: spec.limits,
        allowed_cidrs: spec.allowed_cidrs,
        rotation_days: spec.rotation_days,
        metadata: spec.metadata,
        secret_pending: false,
        leak: None,
        lineage_leak: None,
    };
    (key, record)
}

/// A successor for `old`: a new key and id with the same owner, scopes,
/// limits, allowlist and policy, spending from the *same* allowance, so a
/// rotation never doubles what the owner may use.
pub fn successor(format: &KeyFormat, old: &KeyRecord, now: Timestamp) -> (ApiKey, KeyRecord) {
    let spec = KeySpec {
        owner: old.owner.clone(),
        name: old.name.clone(),
        scopes: old.scopes.clone(),
        limits: old.limits,
        allowed_cidrs: old.allowed_cidrs.clone(),
        expires_at: old.expires_at,
        rotation_days: old.rotation_days,
        metadata: old.metadata.clone(),
    };
    let (key, mut record) = mint(format, spec, now);
    record.allowance_id = old.allowance_id.clone();
    (key, record)
}
