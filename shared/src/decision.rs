//! Decisions are values: checking a key ends in [`Decision::Allow`] or
//! [`Decision::Deny`], never in an error. Errors are for the system failing.

use std::fmt;

use serde::Serialize;

use crate::id::KeyId;
use crate::scope::Scope;

/// Why a request was denied. The wire names (snake case) appear in logs,
/// usage counters and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    /// No key was presented.
    Missing,
    /// The presented key is not one of ours: wrong length, prefix, alphabet or checksum.
    Malformed,
    /// A key was presented in the query string, where keys leak into logs.
    KeyInQuery,
    /// `Authorization: Bearer` and `X-API-Key` carried two different keys:
    /// one request, one credential.
    ConflictingKeys,
    /// Well-formed but unknown.
    NotFound,
    Revoked,
    Expired,
    QuotaExceeded,
    RateLimited,
    ScopeDenied,
    IpDenied,
    /// Reported leaked and quarantined (policy `quarantine`).
    Leaked,
}

impl DenyReason {
    pub const ALL: [DenyReason; 12] = [
        DenyReason::Missing,
        DenyReason::Malformed,
        DenyReason::KeyInQuery,
        DenyReason::ConflictingKeys,
        DenyReason::NotFound,
        DenyReason::Revoked,
        DenyReason::Expired,
        DenyReason::QuotaExceeded,
        DenyReason::RateLimited,
        DenyReason::ScopeDenied,
        DenyReason::IpDenied,
        DenyReason::Leaked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::Missing => "missing",
            DenyReason::Malformed => "malformed",
            DenyReason::KeyInQuery => "key_in_query",
            DenyReason::ConflictingKeys => "conflicting_keys",
            DenyReason::NotFound => "not_found",
            DenyReason::Revoked => "revoked",
            DenyReason::Expired => "expired",
            DenyReason::QuotaExceeded => "quota_exceeded",
            DenyReason::RateLimited => "rate_limited",
            DenyReason::ScopeDenied => "scope_denied",
            DenyReason::IpDenied => "ip_denied",
            DenyReason::Leaked => "leaked",
        }
    }

    /// Whether the caller is authenticated but not permitted (403) rather
    /// than not authenticated at all (401). Unknown, revoked and expired keys
    /// answer alike, so the answer never tells whether a key ever existed.
    pub fn is_forbidden(self) -> bool {
        matches!(
            self,
            DenyReason::QuotaExceeded
                | DenyReason::RateLimited
                | DenyReason::ScopeDenied
                | DenyReason::IpDenied
        )
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an allowed request carries on to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowContext {
    pub key_id: KeyId,
    pub owner: String,
    pub scopes: Vec<Scope>,
    /// Requests left in the current quota period, if the key has a quota.
    pub quota_remaining: Option<u64>,
    /// Requests left in the current rate window, if the key has a rate limit.
    pub rate_remaining: Option<u64>,
    /// The owner's plan and what is left of its limits, if it is on one.
    pub plan: Option<PlanRemaining>,
}

/// Which limit a `quota_exceeded` or `rate_limited` deny hit: the key's
/// own or its owner's plan, and the window (`day`, `month`, or the rate
/// window as `<seconds>s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHit {
    /// `key` or `plan`.
    pub scope: &'static str,
    pub window: String,
    /// The plan's id, for a plan limit.
    pub plan_id: Option<String>,
}

/// What is left of each limit of the owner's plan after an allowed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRemaining {
    pub plan_id: String,
    pub rate_remaining: Option<u64>,
    pub daily_remaining: Option<u64>,
    pub monthly_remaining: Option<u64>,
}

/// The outcome of checking a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(AllowContext),
    Deny(DenyReason),
}

impl Decision {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    pub fn deny_reason(&self) -> Option<DenyReason> {
        match self {
            Decision::Deny(r) => Some(*r),
            Decision::Allow(_) => None,
        }
    }
}
