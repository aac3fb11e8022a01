//! What a caller may give the keys it issues: the ceiling of the
//! no-escalation rule.
//!
//! A key's ceiling is the key itself (its scopes, limits, allowlist and
//! expiry). A developer-portal session has no key: its ceiling is the
//! `grants` the provider's backend named when it opened the session (never
//! more than the provider's key holds). Both are checked by [`Grants::check`],
//! so the API and the portal refuse escalation with the same codes
//! (`scope_escalation`, `limit_escalation`, 403).
//!
//! This module sits below both the management API (`manage`) and the store,
//! which keeps a portal session's grants.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::limits::{Limits, Period};
use crate::scope::Scope;

/// The loosest scopes and limits a holder may grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// Scopes a granted key may hold (each must be covered by one of these).
    pub scopes: Vec<Scope>,
    /// Limits a granted key must stay within: `None` quota or rate means
    /// unlimited.
    #[serde(default)]
    pub limits: Limits,
    /// Networks a granted key must stay inside (empty: any).
    #[serde(default)]
    pub allowed_cidrs: Vec<IpNet>,
    /// Latest expiry (seconds since the epoch) of a granted key; `None`: any.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

/// What a request wants to grant.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub scopes: &'a [Scope],
    pub limits: &'a Limits,
    pub cidrs: &'a [IpNet],
    pub expires_at: Option<Timestamp>,
}

/// A refused grant: the public code (`scope_escalation` or
/// `limit_escalation`) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub code: &'static str,
    pub message: String,
}

impl Grants {
    /// Check `wanted` against this ceiling. `holder` names the ceiling in
    /// the message ("the calling key", "this portal session").
    ///
    /// # Errors
    /// The first part of `wanted` that is looser than the ceiling.
    pub fn check(&self, holder: &str, wanted: Wanted<'_>) -> Result<(), Escalation> {
        for scope in wanted.scopes {
            if !self.scopes.iter().any(|held| held.covers(scope)) {
                return Err(Escalation {
                    code: "scope_escalation",
                    message: format!("cannot grant scope '{scope}': {holder} does not hold it"),
                });
            }
        }
        let looser = |what: &str| {
            Err(Escalation {
                code: "limit_escalation",
                message: format!("cannot grant {what} looser than {holder}'s own"),
            })
        };
        let (own, limits) = (&self.limits, wanted.limits);
        if let Some(own_q) = own.quota {
            let Some(q) = limits.quota else {
                return looser("a quota");
            };
            let ok = match (own_q.period, q.period) {
                (a, b) if a == b => q.limit <= own_q.limit,
                // A day quota allows up to 31 times its limit in a month.
                (Period::Month, Period::Day) => q.limit.saturating_mul(31) <= own_q.limit,
                // A month quota allows its whole limit on one day.
                _ => q.limit <= own_q.limit,
            };
            if !ok {
                return looser("a quota");
            }
        }
        if let Some(own_r) = own.rate {
            let Some(r) = limits.rate else {
                return looser("a rate limit");
            };
            // No larger burst, and no higher sustained rate.
            if !r.within(own_r) {
                return looser("a rate limit");
            }
        }
        if !self.allowed_cidrs.is_empty()
            && (wanted.cidrs.is_empty()
                || !wanted
                    .cidrs
                    .iter()
                    .all(|c| self.allowed_cidrs.iter().any(|o| o.contains(c))))
        {
            return looser("an IP allowlist");
        }
        if let Some(own_exp) = self.expires_at {
            if wanted.expires_at.is_none_or(|e| e > own_exp) {
                return looser("an expiry");
            }
        }
        Ok(())
    }
}
