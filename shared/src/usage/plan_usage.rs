//! Usage per plan, for billing: what an owner's keys did under each plan
//! the owner was on, per UTC day, split at a plan change. Pure: no I/O.
//!
//! Where the counts live (the contract with the authorizer; attribute
//! names in [`crate::store::items`]):
//! - **live days**: flat counters `pu#<day>#<plan_id>#ok` (allowed) and
//!   `pu#<day>#<plan_id>#d#<reason>` (denied) on the owner's plan allowance
//!   `ALW#owner:<owner>`, summed over its shards when it is sharded, as a
//!   key allowance's `u#` counters are. The authorizer counts a decision
//!   under the plan the owner is stamped with at that moment, so a plan
//!   change inside a day splits that day at the change, and a change inside
//!   a month splits the month;
//! - **archived days**: the daily job copies every finished day into one
//!   history item per plan and day (partition `UOWN#<owner>`, sort
//!   `PLAN#<day>#<plan_id>`, beside the owner's key days) and removes its
//!   counters from the allowance, root and shards.
//!
//! Readers merge both; a day still live wins over its archived copy.
//!
//! The owner's quota counters (`pds`/`pdu`, `pms`/`pmu`) and the stamp's
//! limits (`pd`, `pm`) feed the daily report's plan `near_quota` flag
//! ([`PlanQuotas`]).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::service::Totals;
use super::{live_counters, Day, DayUsage, LiveUsage};
use crate::limits::Period;
use crate::store::items::{plan_counters, stamp, PLAN_USAGE_PREFIX};
use crate::store::shards::Counter;

/// What an owner's keys did under one plan on one UTC day: the shape of an
/// archived plan day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDay {
    pub plan_id: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    #[serde(flatten)]
    pub usage: DayUsage,
}

/// Usage per `(plan_id, day)`.
pub type PlanDays = BTreeMap<(String, String), DayUsage>;

/// Parse the per-plan counters of an owner's plan allowance (keyed by
/// `(plan_id, day)`). Other attributes are ignored.
pub fn live_plan_usage(item: &HashMap<String, AttributeValue>) -> LiveUsage {
    live_counters(item, PLAN_USAGE_PREFIX)
}

impl LiveUsage {
    /// The days as [`PlanDay`]s (for counters parsed by [`live_plan_usage`]).
    pub fn plan_days(&self) -> impl Iterator<Item = PlanDay> + '_ {
        self.days.iter().map(|((plan_id, day), usage)| PlanDay {
            plan_id: plan_id.clone(),
            day: day.clone(),
            usage: usage.clone(),
        })
    }
}

/// Merge live and archived plan days; a day both archived and live adds up
/// (see [`crate::usage::merge`]).
pub fn merge_plan_days(
    live: impl IntoIterator<Item = PlanDay>,
    archived: impl IntoIterator<Item = PlanDay>,
) -> PlanDays {
    let mut out = PlanDays::new();
    for d in archived.into_iter().chain(live) {
        out.entry((d.plan_id, d.day))
            .or_default()
            .absorb_same_day(&d.usage);
    }
    out
}

/// One day of a plan's period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanDayTotals {
    pub day: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// One plan in one calendar month of a range: the billing line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlanPeriod {
    pub plan_id: String,
    /// The month, `YYYY-MM` (UTC).
    pub period: String,
    /// The part of the month inside the range asked for.
    pub from: String,
    pub to: String,
    #[serde(flatten)]
    pub totals: Totals,
    /// The days with requests under this plan, oldest first.
    pub days: Vec<PlanDayTotals>,
}

/// Per-plan totals of the days in `from..=to`, one line per plan and
/// month, ordered by month, then plan id. Days without requests are left
/// out, and so are plans without any in a month.
pub fn periods(days: &PlanDays, from: Day, to: Day) -> Vec<PlanPeriod> {
    let mut grouped: BTreeMap<(String, String), Vec<(Day, &DayUsage)>> = BTreeMap::new();
    for ((plan_id, day), usage) in days {
        let Some(d) = Day::parse(day).filter(|d| from <= *d && *d <= to) else {
            continue;
        };
        if usage.requests() == 0 {
            continue;
        }
        grouped
            .entry((d.month(), plan_id.clone()))
            .or_default()
            .push((d, usage));
    }
    grouped
        .into_iter()
        .map(|((period, plan_id), mut in_month)| {
            in_month.sort_by_key(|(d, _)| *d);
            let first = in_month[0].0;
            let mut total = DayUsage::default();
            let days = in_month
                .iter()
                .map(|(d, u)| {
                    total.absorb(u);
                    PlanDayTotals {
                        day: d.to_string(),
                        totals: Totals::from(*u),
                    }
                })
                .collect();
            PlanPeriod {
                plan_id,
                period,
                from: from.max(first.month_start()).to_string(),
                to: to.min(first.month_end()).to_string(),
                totals: Totals::from(&total),
                days,
            }
        })
        .collect()
}

/// The owner's plan as its plan allowance says: the stamp's plan and quota
/// limits, and the authorizer's quota counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanQuotas {
    pub plan_id: String,
    /// `pd`, `pm`: `None` is unlimited.
    pub daily: Option<u64>,
    pub monthly: Option<u64>,
    /// `pds`/`pdu` and `pms`/`pmu`: each quota's period start and use.
    pub day: Counter,
    pub month: Counter,
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn count(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    number(item, name).and_then(|v| u64::try_from(v).ok())
}

impl PlanQuotas {
    /// Read off an owner's plan allowance; `None` when the owner is on no
    /// plan (no `pid`).
    pub fn of(item: &HashMap<String, AttributeValue>) -> Option<Self> {
        let plan_id = item.get(stamp::PLAN_ID)?.as_s().ok()?.clone();
        let live = |start, used| Counter {
            start: number(item, start),
            used: count(item, used).unwrap_or(0),
        };
        Some(Self {
            plan_id,
            daily: count(item, stamp::DAILY),
            monthly: count(item, stamp::MONTHLY),
            day: live(plan_counters::DAY_START, plan_counters::DAY_USED),
            month: live(plan_counters::MONTH_START, plan_counters::MONTH_USED),
        })
    }

    /// The limit of `period`, if the plan has one.
    pub fn limit(&self, period: Period) -> Option<u64> {
        match period {
            Period::Day => self.daily,
            Period::Month => self.monthly,
        }
    }

    /// What the owner used of its quota of `period` from the period's start
    /// through `day`: the authorizer's counter while it still counts that
    /// period, or the allowed requests counted per plan in it (every plan:
    /// the owner's quota counters carry across a plan change), whichever is
    /// more. The counter is exact while it lasts; the per-plan counts cover
    /// the report of a period the counter has already left (the report of
    /// the last day of a month runs after midnight) and a sharded
    /// allowance, whose root counts only its slice.
    pub fn used(&self, period: Period, day: Day, days: &PlanDays) -> u64 {
        let (first, live) = match period {
            Period::Day => (day, self.day),
            Period::Month => (day.month_start(), self.month),
        };
        let counted: u64 = days
            .iter()
            .filter(|((_, d), _)| Day::parse(d).is_some_and(|d| first <= d && d <= day))
            .map(|(_, u)| u.allowed)
            .sum();
        live.used_in(first.start()).max(counted)
    }
}

/// What the daily report reads of an owner's plan: its quotas (`None`: on
/// no plan now) and its per-plan days over the report's lookback.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnerPlanUsage {
    pub quotas: Option<PlanQuotas>,
    pub days: PlanDays,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    fn usage(allowed: u64, denied: &[(&str, u64)]) -> DayUsage {
        DayUsage {
            allowed,
            denied: denied.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ..Default::default()
        }
    }

    fn day(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    #[test]
    fn parses_plan_counters_and_ignores_key_counters() {
        let item = HashMap::from([
            ("pid".to_owned(), AttributeValue::S("pro".into())),
            ("pu#2026-11-29#free#ok".to_owned(), n(3)),
            ("pu#2026-11-29#pro#ok".to_owned(), n(7)),
            ("pu#2026-11-29#pro#d#rate_limited".to_owned(), n(1)),
            ("pu#2026-11-28#free#d#quota_exceeded".to_owned(), n(2)),
            ("u#2026-11-29#key_a#ok".to_owned(), n(9)),
            ("pu#broken".to_owned(), n(1)),
        ]);
        let live = live_plan_usage(&item);
        assert_eq!(live.days.len(), 3);
        let pro = &live.days[&("pro".to_owned(), "2026-11-29".to_owned())];
        assert_eq!((pro.allowed, pro.denied["rate_limited"]), (7, 1));
        assert_eq!(live.attrs["2026-11-28"].len(), 1);
        assert_eq!(live.attrs["2026-11-29"].len(), 3);
        let days: Vec<PlanDay> = live.plan_days().collect();
        assert_eq!(days[0].plan_id, "free");
        assert_eq!(days[0].day, "2026-11-28");
    }

    #[test]
    fn live_days_add_to_their_archive() {
        let pd = |plan: &str, d: &str, allowed| PlanDay {
            plan_id: plan.into(),
            day: d.into(),
            usage: usage(allowed, &[]),
        };
        let merged = merge_plan_days(
            [pd("pro", "2026-11-29", 5)],
            [pd("pro", "2026-11-29", 4), pd("free", "2026-11-29", 1)],
        );
        assert_eq!(merged[&("pro".into(), "2026-11-29".into())].allowed, 9);
        assert_eq!(merged[&("free".into(), "2026-11-29".into())].allowed, 1);
    }

    #[test]
    fn periods_split_by_plan_and_month_within_the_range() {
        let days = PlanDays::from([
            (("free".into(), "2026-10-31".into()), usage(4, &[])),
            (
                ("free".into(), "2026-11-28".into()),
                usage(5, &[("quota_exceeded", 2)]),
            ),
            (("free".into(), "2026-11-29".into()), usage(3, &[])),
            (
                ("pro".into(), "2026-11-29".into()),
                usage(7, &[("rate_limited", 1)]),
            ),
            (("pro".into(), "2026-11-30".into()), usage(0, &[])),
            // Outside the range.
            (("pro".into(), "2026-10-01".into()), usage(50, &[])),
        ]);
        let out = periods(&days, day("2026-10-15"), day("2026-11-30"));
        let lines: Vec<(&str, &str, &str, &str, u64, u64)> = out
            .iter()
            .map(|p| {
                (
                    p.plan_id.as_str(),
                    p.period.as_str(),
                    p.from.as_str(),
                    p.to.as_str(),
                    p.totals.allowed,
                    p.totals.denied,
                )
            })
            .collect();
        assert_eq!(
            lines,
            vec![
                ("free", "2026-10", "2026-10-15", "2026-10-31", 4, 0),
                ("free", "2026-11", "2026-11-01", "2026-11-30", 8, 2),
                ("pro", "2026-11", "2026-11-01", "2026-11-30", 7, 1),
            ]
        );
        let free = &out[1];
        assert_eq!(free.totals.denied_by_reason["quota_exceeded"], 2);
        assert_eq!(free.totals.requests, 10);
        let free_days: Vec<&str> = free.days.iter().map(|d| d.day.as_str()).collect();
        assert_eq!(free_days, vec!["2026-11-28", "2026-11-29"]);
        assert_eq!(free.days[0].totals.requests, 7);
        // A day without requests is not a line.
        assert_eq!(out[2].days.len(), 1);
        assert!(periods(&PlanDays::new(), day("2026-11-01"), day("2026-11-30")).is_empty());
    }

    #[test]
    fn quota_use_is_the_live_counter_or_the_counted_requests() {
        let today = day("2026-11-29");
        let item = HashMap::from([
            ("pid".to_owned(), AttributeValue::S("pro".into())),
            ("pd".to_owned(), n(10)),
            ("pm".to_owned(), n(100)),
            ("pds".to_owned(), n(today.start() as u64)),
            ("pdu".to_owned(), n(9)),
            ("pms".to_owned(), n(today.month_start().start() as u64)),
            ("pmu".to_owned(), n(20)),
        ]);
        let q = PlanQuotas::of(&item).unwrap();
        assert_eq!(
            (q.daily, q.monthly, q.limit(Period::Day)),
            (Some(10), Some(100), Some(10))
        );
        let days = PlanDays::from([
            (("free".into(), "2026-11-02".into()), usage(30, &[])),
            (
                ("pro".into(), "2026-11-29".into()),
                usage(4, &[("quota_exceeded", 5)]),
            ),
            (("pro".into(), "2026-10-31".into()), usage(500, &[])),
        ]);
        // The live day counter counts today: it wins over the 4 counted.
        assert_eq!(q.used(Period::Day, today, &days), 9);
        // The month counted across both plans (34) is more than the live 20.
        assert_eq!(q.used(Period::Month, today, &days), 34);
        // Yesterday's day: the counter has moved on, the counts remain.
        assert_eq!(q.used(Period::Day, today.plus(-1), &days), 0);
        assert_eq!(q.used(Period::Day, day("2026-11-02"), &days), 30);
        // On no plan: nothing to compare with.
        assert!(PlanQuotas::of(&HashMap::new()).is_none());
    }
}
