//! What a leak report does to a key: the deployment's policy, and the
//! change it makes to one record, as a value (no I/O).

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::config::{one_of, ConfigError};
use crate::id::KeyId;
use crate::model::{KeyRecord, KeyStatus};

/// The deployment's answer to a leaked key (template parameter
/// `LeakPolicy`, setting `KEYGATE_LEAK_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeakPolicy {
    /// Revoke, exactly as `POST /v1/keys/{id}/revoke` does: denied
    /// `revoked` from the next request on.
    Revoke,
    /// Denied `leaked` until an admin revokes it.
    Quarantine,
    /// Flag only: the key keeps working.
    Notify,
}

impl LeakPolicy {
    /// `KEYGATE_LEAK_POLICY`: `revoke` (default), `quarantine` or `notify`.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        one_of(
            get,
            "KEYGATE_LEAK_POLICY",
            &[
                ("revoke", LeakPolicy::Revoke),
                ("quarantine", LeakPolicy::Quarantine),
                ("notify", LeakPolicy::Notify),
            ],
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LeakPolicy::Revoke => "revoke",
            LeakPolicy::Quarantine => "quarantine",
            LeakPolicy::Notify => "notify",
        }
    }
}

/// Where a leak was seen; stored on the record by the first report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakMark {
    pub at: Timestamp,
    /// What the report did: a key that had already stopped working is only
    /// flagged (`notify`), whatever the deployment's policy.
    pub policy: LeakPolicy,
    /// GitHub's token type, or `manual`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// Who reported it: `github` or the reporting key id / operator.
    pub reporter: String,
}

/// On a key of a rotation lineage (the keys sharing one allowance: a rotated
/// key and its successor) whose other key was reported leaked. The key is
/// a different secret and keeps working; the mark tells its owner to look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageLeak {
    /// The key of the lineage that was reported.
    pub key_id: KeyId,
    pub at: Timestamp,
}

/// A report before it is applied to a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub kind: String,
    pub source_url: Option<String>,
    pub reporter: String,
}

/// The record after a first leak report under `policy`, or `None` when an
/// earlier report already handled it (reports are idempotent).
pub fn apply(
    record: &KeyRecord,
    policy: LeakPolicy,
    sighting: &Sighting,
    now: Timestamp,
) -> Option<KeyRecord> {
    if record.leak.is_some() {
        return None;
    }
    let applied = if record.status.is_live() {
        policy
    } else {
        LeakPolicy::Notify
    };
    let mut next = record.clone();
    next.version += 1;
    match applied {
        LeakPolicy::Revoke => {
            next.status = KeyStatus::Revoked;
            next.revoked_at = Some(now);
        }
        LeakPolicy::Quarantine => next.status = KeyStatus::Quarantined,
        LeakPolicy::Notify => {}
    }
    next.leak = Some(LeakMark {
        at: now,
        policy: applied,
        kind: sighting.kind.clone(),
        source_url: sighting.source_url.clone(),
        reporter: sighting.reporter.clone(),
    });
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::{mint, KeySpec};
    use crate::key::{KeyEnv, KeyFormat};

    fn record() -> KeyRecord {
        let format = KeyFormat::new("ak", KeyEnv::Live).unwrap();
        mint(&format, KeySpec::new("acme", "n", vec![]), 100).1
    }

    fn seen() -> Sighting {
        Sighting {
            kind: "keygate_key".into(),
            source_url: Some("https://example.com/x".into()),
            reporter: "github".into(),
        }
    }

    #[test]
    fn each_policy_once() {
        let r = record();
        let revoked = apply(&r, LeakPolicy::Revoke, &seen(), 200).unwrap();
        assert_eq!(
            (revoked.status, revoked.version, revoked.revoked_at),
            (KeyStatus::Revoked, 2, Some(200))
        );
        let q = apply(&r, LeakPolicy::Quarantine, &seen(), 200).unwrap();
        assert_eq!(q.status, KeyStatus::Quarantined);
        let n = apply(&r, LeakPolicy::Notify, &seen(), 200).unwrap();
        assert_eq!(
            (n.status, n.leak.as_ref().unwrap().policy),
            (KeyStatus::Active, LeakPolicy::Notify)
        );
        // A second report changes nothing.
        assert_eq!(apply(&n, LeakPolicy::Revoke, &seen(), 300), None);
        assert_eq!(apply(&revoked, LeakPolicy::Revoke, &seen(), 300), None);
    }

    #[test]
    fn an_ended_key_is_only_flagged() {
        let mut r = record();
        r.status = KeyStatus::Retired;
        let next = apply(&r, LeakPolicy::Quarantine, &seen(), 200).unwrap();
        assert_eq!(next.status, KeyStatus::Retired);
        assert_eq!(next.leak.unwrap().policy, LeakPolicy::Notify);
    }

    #[test]
    fn policy_setting() {
        assert_eq!(
            LeakPolicy::from_lookup(&|_| None).unwrap(),
            LeakPolicy::Revoke
        );
        let q = |_: &str| Some("quarantine".to_owned());
        assert_eq!(LeakPolicy::from_lookup(&q).unwrap(), LeakPolicy::Quarantine);
        assert!(LeakPolicy::from_lookup(&|_| Some("delete".into())).is_err());
    }
}
