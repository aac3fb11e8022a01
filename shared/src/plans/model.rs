//! What a plan is, what an owner's subscription keeps, and the stamp the
//! store writes on an owner's plan allowance: pure values and rules, no I/O.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::limits::{Limits, Period, Rate};

/// Changes of plan an owner's subscription remembers (newest kept): enough
/// to split about eight years of monthly moves at their change, while the
/// subscription item stays small (each entry is under 100 bytes: under
/// 10 KB for the whole list, one write unit per started KB).
pub const MAX_HISTORY: usize = 100;

/// Longest plan id.
pub const MAX_PLAN_ID: usize = 64;

/// The limits of a plan, shared by every key of every owner subscribed to
/// it; `None` means unlimited in that dimension. At least one is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanLimits {
    /// At most `limit` requests per fixed window of `window` seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// At most this many requests per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<u64>,
    /// At most this many requests per UTC calendar month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<u64>,
}

impl PlanLimits {
    /// Whether a key's own `limits` are no wider than this plan, dimension
    /// by dimension. Enforcement applies both (the stricter wins), so a
    /// wider key limit would only mislead; it is refused at issuance.
    ///
    /// - A limit in a dimension the plan leaves unlimited is always fine,
    ///   and so is a key without a limit where the plan has one (the plan
    ///   bounds it).
    /// - A day quota is compared with `daily`, and also with `monthly`: one
    ///   day can never spend more than the whole month allows.
    /// - A month quota is compared with `monthly` only (a daily plan quota
    ///   bounds a month at up to 31 days of it, which no month quota
    ///   exceeds meaningfully).
    /// - A rate is compared with the plan's rate by [`Rate::within`]: no
    ///   larger burst in one window, and no higher sustained rate, so
    ///   `10/2s` under a `5/1s` plan is refused (it could spend 10 in one
    ///   second) while `1/10s` is fine.
    pub fn narrows(&self, key: &Limits) -> bool {
        let quota_ok = key.quota.is_none_or(|q| match q.period {
            Period::Day => {
                self.daily.is_none_or(|d| q.limit <= d) && self.monthly.is_none_or(|m| q.limit <= m)
            }
            Period::Month => self.monthly.is_none_or(|m| q.limit <= m),
        });
        let rate_ok = match (key.rate, self.rate) {
            (Some(k), Some(p)) => k.within(p),
            _ => true,
        };
        quota_ok && rate_ok
    }

    /// Whether any dimension is limited.
    pub fn is_limited(&self) -> bool {
        self.rate.is_some() || self.daily.is_some() || self.monthly.is_some()
    }
}

/// A named, versioned set of limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Chosen by the caller: 1-64 of `[a-z0-9-]` (`free`, `pro`).
    pub plan_id: String,
    pub name: String,
    pub limits: PlanLimits,
    /// 1 at creation, bumped by every change.
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One change of an owner's plan: from `from` on, the owner was on
/// `plan_id` (`None`: on no plan). Usage is split at these instants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChange {
    pub plan_id: Option<String>,
    pub from: Timestamp,
}

/// An owner's subscription: its current plan and the changes before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub owner: String,
    /// The current plan; `None` once unsubscribed (the history stays).
    pub plan_id: Option<String>,
    /// When the current plan (or no plan) began.
    pub since: Timestamp,
    /// Bumped by every change: subscription writes are conditional on it.
    pub version: u64,
    /// Oldest first, the last [`MAX_HISTORY`] changes, the current one last.
    pub history: Vec<PlanChange>,
}

impl Subscription {
    /// The subscription after moving to `plan_id` at `now` (a first
    /// subscription when `previous` is `None`), history bounded.
    pub fn moved(
        owner: &str,
        previous: Option<&Subscription>,
        plan_id: Option<&str>,
        now: Timestamp,
    ) -> Subscription {
        let mut history = previous.map(|p| p.history.clone()).unwrap_or_default();
        history.push(PlanChange {
            plan_id: plan_id.map(str::to_owned),
            from: now,
        });
        let excess = history.len().saturating_sub(MAX_HISTORY);
        history.drain(..excess);
        Subscription {
            owner: owner.to_owned(),
            plan_id: plan_id.map(str::to_owned),
            since: now,
            version: previous.map_or(1, |p| p.version + 1),
            history,
        }
    }
}

/// What the store stamps on an owner's plan allowance item: the plan, its
/// version and its limits (see `store::items` for the attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanStamp<'a> {
    pub plan_id: &'a str,
    pub plan_version: u64,
    pub limits: PlanLimits,
}

impl<'a> PlanStamp<'a> {
    pub fn of(plan: &'a Plan) -> Self {
        Self {
            plan_id: &plan.plan_id,
            plan_version: plan.version,
            limits: plan.limits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Quota;

    fn plan(rate: Option<(u64, u32)>, daily: Option<u64>, monthly: Option<u64>) -> PlanLimits {
        PlanLimits {
            rate: rate.map(|(limit, window)| Rate { limit, window }),
            daily,
            monthly,
        }
    }

    fn key(quota: Option<(u64, Period)>, rate: Option<(u64, u32)>) -> Limits {
        Limits {
            quota: quota.map(|(limit, period)| Quota { limit, period }),
            rate: rate.map(|(limit, window)| Rate { limit, window }),
        }
    }

    #[test]
    fn a_key_narrows_its_plan_dimension_by_dimension() {
        let free = plan(Some((5, 1)), Some(1_000), None);
        assert!(free.narrows(&key(None, None)));
        assert!(free.narrows(&key(Some((1_000, Period::Day)), Some((5, 1)))));
        assert!(!free.narrows(&key(Some((1_001, Period::Day)), None)));
        // No monthly limit in the plan: any month quota is fine.
        assert!(free.narrows(&key(Some((u64::MAX, Period::Month)), None)));
        // Rate: burst and sustained rate.
        assert!(free.narrows(&key(None, Some((1, 10)))));
        assert!(!free.narrows(&key(None, Some((6, 1)))));
        assert!(!free.narrows(&key(None, Some((10, 2)))));
        assert!(!free.narrows(&key(None, Some((5, 0)))));
        let pro = plan(None, None, Some(1_000_000));
        assert!(pro.narrows(&key(None, Some((1_000, 1)))));
        assert!(pro.narrows(&key(Some((1_000_000, Period::Month)), None)));
        assert!(!pro.narrows(&key(Some((1_000_001, Period::Month)), None)));
        // One day over the whole month's quota is wider than the plan.
        assert!(!pro.narrows(&key(Some((1_000_001, Period::Day)), None)));
    }

    #[test]
    fn history_keeps_the_last_changes() {
        let mut sub = Subscription::moved("acme", None, Some("free"), 10);
        assert_eq!((sub.version, sub.history.len()), (1, 1));
        for i in 0..(MAX_HISTORY as i64 + 5) {
            let to = if i % 2 == 0 { Some("pro") } else { None };
            sub = Subscription::moved("acme", Some(&sub), to, 11 + i);
        }
        assert_eq!(sub.history.len(), MAX_HISTORY);
        assert_eq!(sub.history.last().unwrap().from, sub.since);
        assert_eq!(sub.version, MAX_HISTORY as u64 + 6);
        assert!(sub.history.windows(2).all(|w| w[0].from < w[1].from));
    }
}
