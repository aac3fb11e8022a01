//! The daily report of one owner: what each key did yesterday, and anomaly
//! flags computed from it and the days before. Pure: the job feeds it the
//! owner's key records and usage days, and stores what it returns.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::plan_usage::OwnerPlanUsage;
use super::{Day, DayUsage};
use crate::leak::LeakPolicy;
use crate::limits::Period;
use crate::model::{KeyRecord, KeyStatus};

/// Most flags a stored report keeps (the rest are counted, and logged).
pub const MAX_FLAGS: usize = 500;

/// Most bytes the kept flags take, measured as their JSON text (which is
/// never shorter than DynamoDB's encoding of the same values: every name and
/// string carries quotes there, and numbers take a byte a digit). A report
/// is one item, and DynamoDB refuses an item over 400 KB (its "Item size"
/// limit): with at most this much in flags, the rest of a report (totals,
/// 11 deny reasons, counts by flag) keeps the item far under it whatever the
/// owner's keys did. Flags past either bound are still in `flag_counts`.
pub const MAX_FLAG_BYTES: usize = 200 * 1024;

/// When a flag is raised. Every threshold is configurable per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A day's requests above this many times the trailing 7-day mean ...
    pub spike_factor: f64,
    /// ... and at least this many requests.
    pub spike_floor: u64,
    /// Denied share of a day's requests at or above this ...
    pub deny_ratio: f64,
    /// ... with at least this many requests.
    pub deny_floor: u64,
    /// Share of a quota used at or above this.
    pub quota_warn: f64,
    /// No request for this many days (keys older than that).
    pub unused_days: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            spike_factor: 3.0,
            spike_floor: 100,
            deny_ratio: 0.5,
            deny_floor: 20,
            quota_warn: 0.8,
            unused_days: 30,
        }
    }
}

/// Days of history a report looks at: the spike's 7-day mean, the month of a
/// monthly quota, the addresses seen before, unused keys.
pub fn lookback(t: &Thresholds) -> i64 {
    31.max(i64::from(t.unused_days))
}

/// Days before the reported one whose addresses count as "seen before".
pub const SEEN_IP_DAYS: i64 = 30;
/// Days in the trailing mean of the spike flag.
pub const SPIKE_DAYS: i64 = 7;

/// One anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum Flag {
    TrafficSpike {
        key_id: String,
        requests: u64,
        trailing_mean: f64,
    },
    HighDenyRatio {
        key_id: String,
        denied: u64,
        requests: u64,
    },
    /// Requests from an address outside the key's allowlist were denied.
    IpNotAllowed { key_id: String, denied: u64 },
    /// Addresses the key was not used from in the previous 30 days.
    NewSourceIp { key_id: String, ips: Vec<String> },
    /// A quota's period is nearly spent: a key's own quota (with its
    /// rotated successors), or the owner's plan's daily or monthly quota
    /// (`scope: "plan"`, no `key_id`).
    NearQuota {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
        #[serde(default)]
        scope: QuotaScope,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan_id: Option<String>,
        used: u64,
        limit: u64,
        period: Period,
    },
    /// An active key with no request for `days` days: a revocation candidate.
    Unused {
        key_id: String,
        days: u32,
        last_used: Option<String>,
    },
    /// Reported leaked that day; `policy` is what the report did.
    Leaked {
        key_id: String,
        policy: LeakPolicy,
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_url: Option<String>,
    },
    /// The other key of its rotation lineage was reported leaked that day;
    /// this key still works.
    LineageLeaked {
        key_id: String,
        leaked_key_id: String,
    },
}

/// Whose quota a [`Flag::NearQuota`] is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaScope {
    /// A key's own quota (reports stored before plans say nothing: key).
    #[default]
    Key,
    /// The quota of the plan the owner is on, shared by all its keys.
    Plan,
}

impl Flag {
    pub fn name(&self) -> &'static str {
        match self {
            Flag::TrafficSpike { .. } => "traffic_spike",
            Flag::HighDenyRatio { .. } => "high_deny_ratio",
            Flag::IpNotAllowed { .. } => "ip_not_allowed",
            Flag::NewSourceIp { .. } => "new_source_ip",
            Flag::NearQuota { .. } => "near_quota",
            Flag::Unused { .. } => "unused",
            Flag::Leaked { .. } => "leaked",
            Flag::LineageLeaked { .. } => "lineage_leaked",
        }
    }

    /// The key flagged; `None` for a flag about the owner's plan.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Flag::TrafficSpike { key_id, .. }
            | Flag::HighDenyRatio { key_id, .. }
            | Flag::IpNotAllowed { key_id, .. }
            | Flag::NewSourceIp { key_id, .. }
            | Flag::Unused { key_id, .. }
            | Flag::Leaked { key_id, .. }
            | Flag::LineageLeaked { key_id, .. } => Some(key_id),
            Flag::NearQuota { key_id, .. } => key_id.as_deref(),
        }
    }
}

/// One owner's report for one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnerReport {
    pub owner: String,
    pub day: String,
    /// Keys the owner has (any status).
    pub keys: u64,
    /// Keys with at least one request that day.
    pub active_keys: u64,
    pub allowed: u64,
    pub denied: u64,
    pub denied_by_reason: BTreeMap<String, u64>,
    /// Flag counts by name, including any left out of `flags`.
    pub flag_counts: BTreeMap<String, u64>,
    /// At most [`MAX_FLAGS`].
    pub flags: Vec<Flag>,
    pub generated_at: i64,
}

type Days = BTreeMap<String, DayUsage>;

fn on(days: Option<&Days>, day: Day) -> Option<&DayUsage> {
    days?.get(&day.to_string())
}

fn requests_on(days: Option<&Days>, day: Day) -> u64 {
    on(days, day).map_or(0, DayUsage::requests)
}

/// Build the report of `day` for `owner` from its keys and their usage
/// (`usage[key_id][day]`, covering at least [`lookback`] days before), and
/// its plan (quotas and per-plan days over the same days).
pub fn build(
    owner: &str,
    day: Day,
    keys: &[KeyRecord],
    usage: &BTreeMap<String, Days>,
    plan: &OwnerPlanUsage,
    t: &Thresholds,
    generated_at: i64,
) -> OwnerReport {
    // Leak flags first: the ones a stored report must never drop; then the
    // owner's plan (at most two flags).
    let mut flags: Vec<Flag> = keys.iter().flat_map(|k| leaks(k, day)).collect();
    flags.extend(plan_near_quota(plan, day, t));
    let mut total = DayUsage::default();
    let mut active = 0;
    for key in keys {
        let kid = key.key_id.as_str();
        let days = usage.get(kid);
        let today = on(days, day).cloned().unwrap_or_default();
        if today.requests() > 0 {
            active += 1;
        }
        total.absorb(&DayUsage {
            ips: BTreeSet::new(),
            routes: BTreeMap::new(),
            ..today.clone()
        });
        let created = Day::of(key.created_at);
        flags.extend(spike(kid, day, created, days, &today, t));
        let denied = today.denied_total();
        if today.requests() >= t.deny_floor
            && today.requests() > 0
            && denied as f64 >= t.deny_ratio * today.requests() as f64
        {
            flags.push(Flag::HighDenyRatio {
                key_id: kid.to_owned(),
                denied,
                requests: today.requests(),
            });
        }
        if let Some(&n) = today.denied.get("ip_denied").filter(|n| **n > 0) {
            flags.push(Flag::IpNotAllowed {
                key_id: kid.to_owned(),
                denied: n,
            });
        }
        flags.extend(new_ips(kid, day, days, &today));
        flags.extend(near_quota(key, keys, day, usage, t));
        flags.extend(unused(key, day, created, days, t));
    }
    let mut flag_counts = BTreeMap::new();
    for f in &flags {
        *flag_counts.entry(f.name().to_owned()).or_default() += 1;
    }
    let flags = bounded(flags);
    OwnerReport {
        owner: owner.to_owned(),
        day: day.to_string(),
        keys: keys.len() as u64,
        active_keys: active,
        allowed: total.allowed,
        denied: total.denied_total(),
        denied_by_reason: total.denied,
        flag_counts,
        flags,
        generated_at,
    }
}

/// The first flags that fit [`MAX_FLAGS`] and [`MAX_FLAG_BYTES`]: what a
/// stored report keeps.
pub fn bounded(flags: Vec<Flag>) -> Vec<Flag> {
    let mut bytes = 0usize;
    flags
        .into_iter()
        .take(MAX_FLAGS)
        .take_while(|f| {
            bytes += serde_json::to_string(f).map_or(MAX_FLAG_BYTES + 1, |t| t.len());
            bytes <= MAX_FLAG_BYTES
        })
        .collect()
}

fn spike(
    kid: &str,
    day: Day,
    created: Day,
    days: Option<&Days>,
    today: &DayUsage,
    t: &Thresholds,
) -> Option<Flag> {
    // A key younger than the trailing window has no baseline yet.
    if created > day.plus(-SPIKE_DAYS) || today.requests() < t.spike_floor {
        return None;
    }
    let sum: u64 = (1..=SPIKE_DAYS)
        .map(|i| requests_on(days, day.plus(-i)))
        .sum();
    let mean = sum as f64 / SPIKE_DAYS as f64;
    (today.requests() as f64 > t.spike_factor * mean).then(|| Flag::TrafficSpike {
        key_id: kid.to_owned(),
        requests: today.requests(),
        trailing_mean: mean,
    })
}

fn new_ips(kid: &str, day: Day, days: Option<&Days>, today: &DayUsage) -> Option<Flag> {
    let seen: BTreeSet<&String> = (1..=SEEN_IP_DAYS)
        .filter_map(|i| on(days, day.plus(-i)))
        .flat_map(|u| u.ips.iter())
        .collect();
    // Without a baseline every address is new: nothing to compare with.
    if seen.is_empty() {
        return None;
    }
    let new: Vec<String> = today
        .ips
        .iter()
        .filter(|ip| !seen.contains(ip))
        .cloned()
        .collect();
    (!new.is_empty()).then(|| Flag::NewSourceIp {
        key_id: kid.to_owned(),
        ips: new,
    })
}

/// The leak flags of one key on `day`: its own report, and its lineage's.
fn leaks(key: &KeyRecord, day: Day) -> Vec<Flag> {
    let kid = key.key_id.as_str();
    let mut flags = Vec::new();
    if let Some(mark) = key.leak.as_ref().filter(|m| Day::of(m.at) == day) {
        flags.push(Flag::Leaked {
            key_id: kid.to_owned(),
            policy: mark.policy,
            kind: mark.kind.clone(),
            source_url: mark.source_url.clone(),
        });
    }
    if let Some(mark) = key.lineage_leak.as_ref().filter(|m| Day::of(m.at) == day) {
        flags.push(Flag::LineageLeaked {
            key_id: kid.to_owned(),
            leaked_key_id: mark.key_id.as_str().to_owned(),
        });
    }
    flags
}

/// Quota use in the period containing `day`, up to `day`, over every key
/// that spends from the same allowance (a rotated key and its successor).
fn near_quota(
    key: &KeyRecord,
    keys: &[KeyRecord],
    day: Day,
    usage: &BTreeMap<String, Days>,
    t: &Thresholds,
) -> Option<Flag> {
    let quota = key.limits.quota?;
    if !matches!(key.status, KeyStatus::Active | KeyStatus::Rotating) || quota.limit == 0 {
        return None;
    }
    let first = match quota.period {
        Period::Day => day,
        Period::Month => day.month_start(),
    };
    let used: u64 = keys
        .iter()
        .filter(|k| k.allowance_id == key.allowance_id)
        .map(|k| {
            first
                .through(day)
                .filter_map(|d| on(usage.get(k.key_id.as_str()), d))
                .map(|u| u.allowed)
                .sum::<u64>()
        })
        .sum();
    (used as f64 >= t.quota_warn * quota.limit as f64).then(|| Flag::NearQuota {
        key_id: Some(key.key_id.as_str().to_owned()),
        scope: QuotaScope::Key,
        plan_id: None,
        used,
        limit: quota.limit,
        period: quota.period,
    })
}

/// The owner's plan quotas, daily and monthly, in the periods containing
/// `day`: flagged at the same share as a key's quota.
fn plan_near_quota(plan: &OwnerPlanUsage, day: Day, t: &Thresholds) -> Vec<Flag> {
    let Some(quotas) = &plan.quotas else {
        return Vec::new();
    };
    [Period::Day, Period::Month]
        .into_iter()
        .filter_map(|period| {
            let limit = quotas.limit(period).filter(|l| *l > 0)?;
            let used = quotas.used(period, day, &plan.days);
            (used as f64 >= t.quota_warn * limit as f64).then(|| Flag::NearQuota {
                key_id: None,
                scope: QuotaScope::Plan,
                plan_id: Some(quotas.plan_id.clone()),
                used,
                limit,
                period,
            })
        })
        .collect()
}

fn unused(
    key: &KeyRecord,
    day: Day,
    created: Day,
    days: Option<&Days>,
    t: &Thresholds,
) -> Option<Flag> {
    let n = i64::from(t.unused_days);
    if key.status != KeyStatus::Active || n == 0 || created > day.plus(-n) {
        return None;
    }
    let used_in_window = (0..n).any(|i| requests_on(days, day.plus(-i)) > 0);
    if used_in_window {
        return None;
    }
    let last_used = days.and_then(|d| {
        d.iter()
            .rev()
            .find(|(when, u)| u.requests() > 0 && Day::parse(when).is_some_and(|w| w <= day))
            .map(|(when, _)| when.clone())
    });
    Some(Flag::Unused {
        key_id: key.key_id.as_str().to_owned(),
        days: t.unused_days,
        last_used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shards::Counter;
    use crate::usage::plan_usage::{PlanDays, PlanQuotas};

    fn plan(
        daily: Option<u64>,
        monthly: Option<u64>,
        day_used: u64,
        days: PlanDays,
    ) -> OwnerPlanUsage {
        let day = Day::parse("2026-11-29").unwrap();
        OwnerPlanUsage {
            quotas: Some(PlanQuotas {
                plan_id: "pro".into(),
                daily,
                monthly,
                day: Counter {
                    start: Some(day.start()),
                    used: day_used,
                },
                month: Counter::default(),
            }),
            days,
        }
    }

    fn allowed(n: u64) -> DayUsage {
        DayUsage {
            allowed: n,
            ..Default::default()
        }
    }

    #[test]
    fn plan_quotas_are_flagged_at_the_key_threshold() {
        let day = Day::parse("2026-11-29").unwrap();
        let t = Thresholds::default();
        let month = PlanDays::from([
            (("free".into(), "2026-11-01".into()), allowed(74)),
            (("pro".into(), "2026-11-29".into()), allowed(6)),
        ]);
        // 8 of 10 today and 80 of 100 this month: both at 0.8.
        let flags = plan_near_quota(&plan(Some(10), Some(100), 8, month.clone()), day, &t);
        let got: Vec<(Period, u64, u64)> = flags
            .iter()
            .map(|f| match f {
                Flag::NearQuota {
                    key_id: None,
                    scope: QuotaScope::Plan,
                    plan_id: Some(p),
                    used,
                    limit,
                    period,
                } if p == "pro" => (*period, *used, *limit),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, vec![(Period::Day, 8, 10), (Period::Month, 80, 100)]);
        // Just under, unlimited, or on no plan: nothing.
        assert!(plan_near_quota(&plan(Some(11), Some(101), 8, month.clone()), day, &t).is_empty());
        assert!(plan_near_quota(&plan(None, None, 8, month), day, &t).is_empty());
        assert!(plan_near_quota(&OwnerPlanUsage::default(), day, &t).is_empty());
    }

    #[test]
    fn a_stored_key_flag_from_before_plans_reads_as_a_key_flag() {
        let old = r#"{"flag":"near_quota","key_id":"key_a","used":8,"limit":10,"period":"day"}"#;
        let flag: Flag = serde_json::from_str(old).unwrap();
        assert_eq!(flag.key_id(), Some("key_a"));
        assert!(matches!(
            flag,
            Flag::NearQuota {
                scope: QuotaScope::Key,
                plan_id: None,
                ..
            }
        ));
        let text = serde_json::to_value(&flag).unwrap();
        assert_eq!(text["scope"], "key");
        assert!(text.get("plan_id").is_none());
    }
}
