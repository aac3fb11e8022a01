//! Spending from an owner's plan allowance (issue 17): the conditional
//! write that admits one request against every limit of the owner's plan at
//! once (a rate window, a UTC day and a UTC month), what a refusal means,
//! and the write that gives a unit back when the key's own allowance then
//! refuses. Pure: the store sends the expressions.
//!
//! The plan allowance item is `ALW#owner:<owner>` ([`items::owner_allowance_id`]).
//! The store stamps the plan on it ([`items::stamp`]: `pid`, `pv`, and the
//! limits `pr`/`pw`, `pd`, `pm`); the authorizer keeps the counters beside
//! them, one pair per limit ([`counters`]), and the allowed requests per
//! plan and UTC day, `pu#<day>#<plan_id>#ok`. Every admission is
//! conditioned on the stamp version `pv` the container knows, so a plan
//! change, a move to another plan or an unsubscription takes effect on the
//! very next request: the refused write's old image carries the new stamp.
//!
//! **Past one partition.** A plan allowance may be sharded like a key's
//! (`allowance-design.md`): the root's `sh` = N > 1, and N shard items
//! `ALW#owner:<owner>#<i>` each carry a copy of the stamp (same `pv`, so a
//! stamp change is one transaction over the root and every shard) and a
//! slice of each limit (`prl`, `pdl`, `pml`) that sums over the shards to
//! the plan's limit. A spend then goes to one shard ([`Target::Shard`]) and
//! is still one conditional write; the root takes no spends.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::admission::{Expression, Step, Target};
use super::items::{self, alw, stamp};
use super::shards::share;
use crate::clock::Timestamp;
use crate::decision::DenyReason;
use crate::limits::{Period, Rate};

/// The counter attributes of the plan allowance, and the per-plan usage
/// counters `pu#<day>#<plan_id>#ok` / `...#d#<reason>` (the contract the
/// usage readers share, in [`items`]).
pub use super::items::plan_counters as counters;
pub use super::items::{plan_usage_attr as usage_attr, PLAN_USAGE_PREFIX as USAGE_PREFIX};

/// Seconds a container denies locally on a spent plan limit before it
/// writes again: a flood costs one write per container per second, and a
/// plan raised or changed reaches a container that was denying within it.
pub const PLAN_MARK_SECONDS: i64 = 1;

/// An owner's plan as stamped on its plan allowance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStamp {
    pub owner: String,
    pub plan_id: String,
    /// The stamp's version (`pv`): every change of the stamp bumps it.
    pub version: u64,
    pub rate: Option<Rate>,
    pub daily: Option<u64>,
    pub monthly: Option<u64>,
    /// The plan allowance's layout (`sh`): 1 is single (spends go to the
    /// root), N > 1 is N shards.
    pub shards: u32,
}

impl PlanStamp {
    /// The stamp on an owner plan allowance item; `None` if the owner is on
    /// no plan (no item, or no `pid`).
    pub fn from_item(owner: &str, item: &HashMap<String, AttributeValue>) -> Option<Self> {
        let plan_id = item.get(stamp::PLAN_ID)?.as_s().ok()?.clone();
        let num = |name: &str| -> Option<u64> { item.get(name)?.as_n().ok()?.parse().ok() };
        Some(Self {
            owner: owner.to_owned(),
            plan_id,
            version: num(stamp::STAMP_VERSION).unwrap_or(0),
            rate: match (num(stamp::RATE_LIMIT), num(stamp::RATE_WINDOW)) {
                (Some(limit), Some(window)) => Some(Rate {
                    limit,
                    window: u32::try_from(window).unwrap_or(1).max(1),
                }),
                _ => None,
            },
            daily: num(stamp::DAILY),
            monthly: num(stamp::MONTHLY),
            shards: num(alw::SHARDS)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1)
                .max(1),
        })
    }

    /// The plan's limits, in [`PlanLimit::ALL`] order (`None`: unlimited).
    pub fn limits(&self) -> [(PlanLimit, Option<u64>); 3] {
        [
            (PlanLimit::Rate, self.rate.map(|r| r.limit)),
            (PlanLimit::Day, self.daily),
            (PlanLimit::Month, self.monthly),
        ]
    }

    /// How many of the shards have a share of every limit: the first
    /// `min(shards, every limit)` (shares decrease with the index, see
    /// [`share`]); spends go only to those.
    pub fn eligible(&self) -> u32 {
        self.limits()
            .iter()
            .filter_map(|(_, limit)| *limit)
            .fold(u64::from(self.shards.max(1)), u64::min)
            .max(1) as u32
    }

    /// Shard `index`'s even share of `which` in a new period or window.
    pub fn share(&self, which: PlanLimit, index: u32) -> Option<u64> {
        let limit = self.limits().into_iter().find(|(w, _)| *w == which)?.1?;
        Some(share(limit, self.eligible(), index))
    }

    /// The allowance id of the owner's plan allowance.
    pub fn allowance_id(&self) -> String {
        items::owner_allowance_id(&self.owner)
    }

    /// How long a container that saw the limit `which` spent may deny
    /// locally: until its window or period ends, and at most
    /// [`PLAN_MARK_SECONDS`] (a raised limit or a move must reach it
    /// quickly; the stamp is what changes, and only a write sees it).
    pub fn exhausted_until(&self, which: PlanLimit, now: Timestamp) -> Timestamp {
        let end = match which {
            PlanLimit::Rate => self.rate.map_or(now + 1, |r| r.window_at(now).end),
            PlanLimit::Day => Period::Day.window(now).end,
            PlanLimit::Month => Period::Month.window(now).end,
        };
        end.min(now + PLAN_MARK_SECONDS)
    }
}

/// One limit of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanLimit {
    Rate,
    Day,
    Month,
}

impl PlanLimit {
    pub const ALL: [PlanLimit; 3] = [PlanLimit::Rate, PlanLimit::Day, PlanLimit::Month];

    /// The deny reason a spent limit gives.
    pub fn reason(self) -> DenyReason {
        match self {
            PlanLimit::Rate => DenyReason::RateLimited,
            PlanLimit::Day | PlanLimit::Month => DenyReason::QuotaExceeded,
        }
    }

    /// The window's name as a deny context shows it: `day`, `month`, or
    /// the rate window's seconds (`1s`).
    pub fn window_name(self, stamp: &PlanStamp) -> String {
        match self {
            PlanLimit::Rate => format!("{}s", stamp.rate.map_or(1, |r| r.window)),
            PlanLimit::Day => "day".into(),
            PlanLimit::Month => "month".into(),
        }
    }

    /// (whole limit, period start, used, a shard's slice) attribute names.
    pub fn names(self) -> [&'static str; 4] {
        match self {
            PlanLimit::Rate => [
                stamp::RATE_LIMIT,
                counters::RATE_START,
                counters::RATE_USED,
                counters::RATE_SLICE,
            ],
            PlanLimit::Day => [
                stamp::DAILY,
                counters::DAY_START,
                counters::DAY_USED,
                counters::DAY_SLICE,
            ],
            PlanLimit::Month => [
                stamp::MONTHLY,
                counters::MONTH_START,
                counters::MONTH_USED,
                counters::MONTH_SLICE,
            ],
        }
    }

    /// The start of this limit's current window or period at `now`.
    pub fn current(self, stamp: &PlanStamp, now: Timestamp) -> Timestamp {
        current(stamp, self, now)
    }

    /// One letter naming the limit in expressions (`r`, `d`, `m`).
    pub fn tag(self) -> &'static str {
        match self {
            PlanLimit::Rate => "r",
            PlanLimit::Day => "d",
            PlanLimit::Month => "m",
        }
    }
}

/// Where this container last saw each plan counter (its period start), so
/// it knows whether its write continues a period or starts a new one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanHints {
    pub rate: Option<Timestamp>,
    pub day: Option<Timestamp>,
    pub month: Option<Timestamp>,
}

impl PlanHints {
    /// Best guess for an item not written yet by this container: the
    /// quotas probably already count this day and month, a short rate
    /// window probably not yet.
    pub fn guess(stamp: &PlanStamp, now: Timestamp) -> Self {
        Self {
            rate: None,
            day: stamp.daily.map(|_| current(stamp, PlanLimit::Day, now)),
            month: stamp.monthly.map(|_| current(stamp, PlanLimit::Month, now)),
        }
    }

    fn get(&self, which: PlanLimit) -> Option<Timestamp> {
        match which {
            PlanLimit::Rate => self.rate,
            PlanLimit::Day => self.day,
            PlanLimit::Month => self.month,
        }
    }

    fn set(&mut self, which: PlanLimit, start: Timestamp) {
        match which {
            PlanLimit::Rate => self.rate = Some(start),
            PlanLimit::Day => self.day = Some(start),
            PlanLimit::Month => self.month = Some(start),
        }
    }
}

/// One planned spend from a plan allowance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpend {
    pub stamp: PlanStamp,
    /// The item written: the root of a single plan allowance, or a shard.
    pub target: Target,
    /// The UTC day of the decision (`YYYY-MM-DD`), for the usage counter.
    pub day: String,
    /// Set (to the decision's clock reading) when this spend decides alone,
    /// for a key without limits of its own: then it also requires no
    /// key-change fence ([`items::KEY_FENCE`]) at that time.
    pub alone: Option<Timestamp>,
    /// Per limit the plan has: its limit and the step the write takes.
    steps: Vec<(PlanLimit, u64, Step)>,
}

/// What is left of each plan limit after an admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanGranted {
    pub rate_remaining: Option<u64>,
    pub daily_remaining: Option<u64>,
    pub monthly_remaining: Option<u64>,
    pub hints: PlanHints,
}

/// Why a spend was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanExplained {
    /// A limit of the plan is spent for its current window or period.
    Deny(PlanLimit),
    /// The stamp changed (plan changed, owner moved or unsubscribed:
    /// `None`): decide again with it.
    Restamp(Option<PlanStamp>),
    /// A counter is in another period than this container thought: try
    /// again with these hints.
    Retry(PlanHints),
    /// A spend deciding alone met a key-change fence (until this time): a
    /// key record of the owner changed, so the key's own allowance decides
    /// too until then.
    Fenced(Timestamp),
    /// The shard written does not exist though the stamp says it should:
    /// a growth's second step (making the shards) is not made yet.
    Missing,
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn num(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// The start of the current window or period of `which` at `now`.
fn current(stamp: &PlanStamp, which: PlanLimit, now: Timestamp) -> Timestamp {
    match which {
        PlanLimit::Rate => stamp.rate.map_or(now, |r| r.window_at(now).start),
        PlanLimit::Day => Period::Day.window(now).start,
        PlanLimit::Month => Period::Month.window(now).start,
    }
}

impl PlanSpend {
    /// Plan a spend of one request at `now` from what the container last
    /// saw of the counters.
    pub fn new(stamp: &PlanStamp, target: Target, hints: &PlanHints, now: Timestamp) -> Self {
        let steps = stamp
            .limits()
            .into_iter()
            .filter_map(|(which, limit)| {
                let limit = limit?;
                let start = current(stamp, which, now);
                let step = match hints.get(which) {
                    Some(seen) => Step::from_seen(seen, start),
                    None => Step::Reset(start),
                };
                Some((which, limit, step))
            })
            .collect();
        Self {
            stamp: stamp.clone(),
            target,
            day: crate::limits::day_string(now),
            alone: None,
            steps,
        }
    }

    /// The same spend deciding alone at `now` (see [`PlanSpend::alone`]).
    pub fn alone(self, now: Timestamp) -> Self {
        Self {
            alone: Some(now),
            ..self
        }
    }

    /// The same spend on another item (to explain what a survey read of
    /// that item shows).
    pub fn on(&self, target: Target) -> Self {
        Self {
            target,
            ..self.clone()
        }
    }

    /// The attribute a counter is bounded by on the item written: the
    /// plan's limit on the root, the shard's slice on a shard.
    fn bound(&self, which: PlanLimit) -> &'static str {
        let [limit, _, _, slice] = which.names();
        match self.target {
            Target::Single => limit,
            Target::Shard { .. } => slice,
        }
    }

    /// The conditional update: the stamp unchanged, and every limit of the
    /// plan with room in its current window or period.
    pub fn expression(&self) -> Expression {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut cond = vec!["#pv = :pv".to_owned(), "#pid = :pid".to_owned()];
        let mut set = Vec::new();
        let mut add = vec!["#pu :one".to_owned()];
        names.insert("#sh".into(), alw::SHARDS.into());
        match self.target {
            Target::Single => cond.push("attribute_not_exists(#sh)".into()),
            Target::Shard { count, .. } => {
                values.insert(":sh".into(), n(count));
                cond.push("#sh = :sh".into());
            }
        }
        names.insert("#pv".into(), stamp::STAMP_VERSION.into());
        names.insert("#pid".into(), stamp::PLAN_ID.into());
        names.insert(
            "#pu".into(),
            usage_attr(&self.day, &self.stamp.plan_id, "ok"),
        );
        values.insert(":pv".into(), n(self.stamp.version));
        values.insert(":pid".into(), AttributeValue::S(self.stamp.plan_id.clone()));
        values.insert(":one".into(), n(1));
        if let Some(at) = self.alone {
            names.insert("#kx".into(), items::KEY_FENCE.into());
            values.insert(":kx".into(), n(at));
            cond.push("(attribute_not_exists(#kx) OR #kx < :kx)".into());
        }
        for (which, _, step) in &self.steps {
            let [limit, start, used, _] = which.names();
            let t = which.tag();
            names.insert(format!("#{t}s"), start.into());
            names.insert(format!("#{t}u"), used.into());
            values.insert(format!(":{t}s"), n(step.start()));
            match step {
                Step::Continue(_) => {
                    names.insert(format!("#{t}b"), self.bound(*which).into());
                    cond.push(format!("#{t}s = :{t}s AND #{t}u < #{t}b"));
                    add.push(format!("#{t}u :one"));
                }
                Step::Reset(_) => {
                    names.insert(format!("#{t}l"), limit.into());
                    cond.push(format!(
                        "(attribute_not_exists(#{t}s) OR #{t}s < :{t}s) AND #{t}l >= :one"
                    ));
                    set.push(format!("#{t}s = :{t}s, #{t}u = :one"));
                    // A shard's new period starts with its even share.
                    if let Target::Shard { index, .. } = self.target {
                        let slice = self.stamp.share(*which, index).unwrap_or(0);
                        names.insert(format!("#{t}b"), self.bound(*which).into());
                        values.insert(format!(":{t}b"), n(slice));
                        set.push(format!("#{t}b = :{t}b"));
                    }
                }
            }
        }
        Expression::assemble(&set, &add, &cond, names, values)
    }

    /// The update that gives this spend's unit back (the key's own
    /// allowance refused the request after the plan admitted it): the day's
    /// and month's counters one less, only while they still count the
    /// period this spend counted in (a counter a new period reset owes
    /// nothing), and the allowed count of the day one less.
    pub fn refund(&self) -> Expression {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut cond = vec!["#pid = :pid".to_owned()];
        let mut add = vec!["#pu :minus".to_owned()];
        names.insert("#pid".into(), stamp::PLAN_ID.into());
        names.insert(
            "#pu".into(),
            usage_attr(&self.day, &self.stamp.plan_id, "ok"),
        );
        values.insert(":pid".into(), AttributeValue::S(self.stamp.plan_id.clone()));
        values.insert(":minus".into(), n(-1));
        // Not the rate window's unit: a window is short, often over by the
        // time the key refused, and one condition failing would keep the
        // day's and month's units too (a unit of a window lost is a
        // bounded under-admission).
        for (which, _, step) in self.steps.iter().filter(|(w, ..)| *w != PlanLimit::Rate) {
            let [_, start, used, _] = which.names();
            let t = which.tag();
            names.insert(format!("#{t}s"), start.into());
            names.insert(format!("#{t}u"), used.into());
            values.insert(format!(":{t}s"), n(step.start()));
            // Only with a day or month counter: a value no expression uses
            // is refused (a rate-only plan's refund has none).
            values.insert(":zero".into(), n(0));
            cond.push(format!("#{t}s = :{t}s AND #{t}u > :zero"));
            add.push(format!("#{t}u :minus"));
        }
        Expression {
            update: format!("ADD {}", add.join(", ")),
            condition: cond.join(" AND "),
            names,
            values,
        }
    }

    /// What is left of each limit, from the attributes the update returned
    /// (`UPDATED_NEW`).
    pub fn granted(&self, new: &HashMap<String, AttributeValue>) -> PlanGranted {
        let mut out = PlanGranted::default();
        for (which, limit, step) in &self.steps {
            let [_, start, used, _] = which.names();
            // A reset writes 1; a value set to what it was may be left out.
            let used = num(new, used).unwrap_or(match step {
                Step::Reset(_) => 1,
                Step::Continue(_) => i64::try_from(*limit).unwrap_or(i64::MAX),
            });
            let used = u64::try_from(used).unwrap_or(0);
            // On a shard: what is left of its even share, times the shards
            // with a share: an estimate of the whole (readers sum exactly).
            let left = Some(match self.target {
                Target::Single => limit.saturating_sub(used),
                Target::Shard { index, .. } => {
                    let slice = self.stamp.share(*which, index).unwrap_or(0);
                    (*limit).min(
                        slice
                            .saturating_sub(used)
                            .saturating_mul(u64::from(self.stamp.eligible())),
                    )
                }
            });
            match which {
                PlanLimit::Rate => out.rate_remaining = left,
                PlanLimit::Day => out.daily_remaining = left,
                PlanLimit::Month => out.monthly_remaining = left,
            }
            out.hints
                .set(*which, num(new, start).unwrap_or(step.start()));
        }
        out
    }

    /// Explain a refused spend from the item as it was (`None`: no item, so
    /// no plan).
    pub fn explain(
        &self,
        old: Option<&HashMap<String, AttributeValue>>,
        now: Timestamp,
    ) -> PlanExplained {
        let Some(old) = old else {
            return match self.target {
                Target::Single => PlanExplained::Restamp(None),
                Target::Shard { .. } => PlanExplained::Missing,
            };
        };
        let found = PlanStamp::from_item(&self.stamp.owner, old);
        if found.as_ref() != Some(&self.stamp) {
            return PlanExplained::Restamp(found);
        }
        let mut hints = PlanHints::default();
        for (which, limit, _) in &self.steps {
            let [_, start, used, _] = which.names();
            let current = current(&self.stamp, *which, now);
            let seen = num(old, start);
            let used = num(old, used).unwrap_or(0);
            // A shard's slice of the period as written (absent before the
            // shard's first write of it: its even share).
            let bound = match self.target {
                Target::Single => i64::try_from(*limit).unwrap_or(i64::MAX),
                Target::Shard { .. } => num(old, self.bound(*which)).unwrap_or(0),
            };
            if seen.is_some_and(|s| s >= current) && used >= bound {
                return PlanExplained::Deny(*which);
            }
            if let Some(s) = seen {
                hints.set(*which, s);
            }
        }
        if let (Some(at), Some(until)) = (self.alone, num(old, items::KEY_FENCE)) {
            if until >= at {
                return PlanExplained::Fenced(until);
            }
        }
        PlanExplained::Retry(hints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: Timestamp = 1_796_040_000; // 2026-11-30 12:00:00 UTC

    fn stamp() -> PlanStamp {
        PlanStamp {
            owner: "acme".into(),
            plan_id: "pro".into(),
            version: 3,
            rate: Some(Rate {
                limit: 5,
                window: 1,
            }),
            daily: Some(100),
            monthly: None,
            shards: 1,
        }
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn stamped(extra: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        let mut i = item(&[
            ("pid", AttributeValue::S("pro".into())),
            ("pv", n(3)),
            ("pr", n(5)),
            ("pw", n(1)),
            ("pd", n(100)),
        ]);
        i.extend(item(extra));
        i
    }

    #[test]
    fn the_stamp_is_read_from_the_item() {
        assert_eq!(PlanStamp::from_item("acme", &stamped(&[])), Some(stamp()));
        assert_eq!(PlanStamp::from_item("acme", &item(&[("pv", n(4))])), None);
    }

    #[test]
    fn a_spend_conditions_every_limit_of_the_plan() {
        let day = Period::Day.window(NOON).start;
        let fresh = PlanSpend::new(&stamp(), Target::Single, &PlanHints::default(), NOON);
        let e = fresh.expression();
        assert!(e.condition.starts_with("#pv = :pv AND #pid = :pid"));
        assert!(e
            .condition
            .contains("attribute_not_exists(#rs) OR #rs < :rs"));
        assert!(e
            .condition
            .contains("attribute_not_exists(#ds) OR #ds < :ds"));
        assert!(!e.names.contains_key("#ms"), "no monthly quota, no counter");
        assert_eq!(e.names["#pu"], "pu#2026-11-30#pro#ok");
        let warm = PlanSpend::new(
            &stamp(),
            Target::Single,
            &PlanHints {
                rate: Some(NOON),
                day: Some(day),
                month: None,
            },
            NOON,
        );
        let e = warm.expression();
        assert!(e.condition.contains("#rs = :rs AND #ru < #rb"));
        assert!(e.condition.contains("#ds = :ds AND #du < #db"));
        assert_eq!(
            (e.names["#db"].as_str(), e.names["#rb"].as_str()),
            ("pd", "pr")
        );
        assert!(e.condition.contains("attribute_not_exists(#sh)"));
        assert!(e.update.contains("#ru :one") && e.update.contains("#du :one"));
        let r = warm.refund();
        assert!(r.update.contains("#du :minus") && r.update.contains("#pu :minus"));
        assert!(r.condition.contains("#ds = :ds AND #du > :zero"));
        assert!(!r.update.contains("#ru"), "a rate unit is not given back");
    }

    #[test]
    fn a_refusal_says_which_limit_or_what_changed() {
        let day = Period::Day.window(NOON).start;
        let spend = PlanSpend::new(&stamp(), Target::Single, &PlanHints::default(), NOON);
        let spent = stamped(&[
            ("pds", n(day)),
            ("pdu", n(100)),
            ("prs", n(NOON)),
            ("pru", n(2)),
        ]);
        assert_eq!(
            spend.explain(Some(&spent), NOON),
            PlanExplained::Deny(PlanLimit::Day)
        );
        let rated = stamped(&[
            ("pds", n(day)),
            ("pdu", n(10)),
            ("prs", n(NOON)),
            ("pru", n(5)),
        ]);
        assert_eq!(
            spend.explain(Some(&rated), NOON),
            PlanExplained::Deny(PlanLimit::Rate)
        );
        let yesterday = stamped(&[("pds", n(day - 86_400)), ("pdu", n(100))]);
        assert_eq!(
            spend.explain(Some(&yesterday), NOON),
            PlanExplained::Retry(PlanHints {
                rate: None,
                day: Some(day - 86_400),
                month: None
            })
        );
        let mut upgraded = stamped(&[]);
        upgraded.insert("pv".into(), n(4));
        upgraded.insert("pd".into(), n(1_000));
        let PlanExplained::Restamp(Some(new)) = spend.explain(Some(&upgraded), NOON) else {
            panic!("expected a new stamp")
        };
        assert_eq!((new.version, new.daily), (4, Some(1_000)));
        assert_eq!(spend.explain(None, NOON), PlanExplained::Restamp(None));
    }

    #[test]
    fn what_is_left_is_read_from_the_update() {
        let spend = PlanSpend::new(&stamp(), Target::Single, &PlanHints::default(), NOON);
        let g = spend.granted(&item(&[("pru", n(1)), ("pdu", n(40))]));
        assert_eq!(
            (g.rate_remaining, g.daily_remaining, g.monthly_remaining),
            (Some(4), Some(60), None)
        );
        assert_eq!(g.hints.rate, Some(NOON));
    }

    #[test]
    fn a_rate_only_plans_refund_uses_every_value_it_defines() {
        let rate_only = PlanStamp {
            daily: None,
            ..stamp()
        };
        let r = PlanSpend::new(&rate_only, Target::Single, &PlanHints::default(), NOON).refund();
        let text = format!("{} {}", r.update, r.condition);
        for name in r.values.keys() {
            assert!(text.contains(name.as_str()), "{name} unused: {text}");
        }
        for name in r.names.keys() {
            assert!(text.contains(name.as_str()), "{name} unused: {text}");
        }
    }

    #[test]
    fn a_spend_on_a_shard_is_bounded_by_its_slice() {
        let day = Period::Day.window(NOON).start;
        // 100/day and 5/s over 16 shards: 5 have a share of both.
        let sharded = PlanStamp {
            shards: 16,
            ..stamp()
        };
        assert_eq!(sharded.eligible(), 5);
        assert_eq!(sharded.share(PlanLimit::Day, 1), Some(20));
        assert_eq!(sharded.share(PlanLimit::Rate, 5), Some(1));
        let target = Target::Shard {
            index: 2,
            count: 16,
        };
        let fresh = PlanSpend::new(&sharded, target, &PlanHints::default(), NOON);
        let e = fresh.expression();
        assert!(e.condition.contains("#sh = :sh"));
        assert_eq!(e.values[":sh"], n(16));
        assert!(e.update.contains("#db = :db") && e.update.contains("#rb = :rb"));
        assert_eq!(
            (e.names["#db"].as_str(), e.values[":db"].clone()),
            ("pdl", n(20))
        );
        let warm = PlanSpend::new(
            &sharded,
            target,
            &PlanHints {
                rate: Some(NOON),
                day: Some(day),
                month: None,
            },
            NOON,
        );
        assert!(warm.expression().condition.contains("#du < #db"));
        // The shard's slice, not the plan's limit, is what it denies on.
        let mut spent = stamped(&[
            ("sh", n(16)),
            ("pds", n(day)),
            ("pdu", n(20)),
            ("pdl", n(20)),
        ]);
        assert_eq!(
            warm.explain(Some(&spent), NOON),
            PlanExplained::Deny(PlanLimit::Day)
        );
        spent.insert("pdl".into(), n(21));
        assert!(matches!(
            warm.explain(Some(&spent), NOON),
            PlanExplained::Retry(_)
        ));
        assert_eq!(warm.explain(None, NOON), PlanExplained::Missing);
        // A stamp grown since (another layout) is a new stamp.
        let grown = stamped(&[("sh", n(64)), ("pv", n(4))]);
        let PlanExplained::Restamp(Some(new)) = warm.explain(Some(&grown), NOON) else {
            panic!("expected a new stamp")
        };
        assert_eq!(new.shards, 64);
        let g = warm.granted(&item(&[("pdu", n(5)), ("pru", n(1))]));
        assert_eq!(g.daily_remaining, Some(75), "(20 - 5) x 5 eligible shards");
    }

    #[test]
    fn a_spend_deciding_alone_requires_no_key_change_fence() {
        let day = Period::Day.window(NOON).start;
        let hints = PlanHints {
            rate: Some(NOON),
            day: Some(day),
            month: None,
        };
        let both = PlanSpend::new(&stamp(), Target::Single, &hints, NOON);
        assert!(!both.expression().condition.contains("#kx"));
        let alone = both.clone().alone(NOON);
        let e = alone.expression();
        assert!(e
            .condition
            .contains("(attribute_not_exists(#kx) OR #kx < :kx)"));
        assert_eq!(e.values[":kx"], n(NOON));
        let fenced = stamped(&[
            ("kx", n(NOON + 60)),
            ("pds", n(day)),
            ("pdu", n(3)),
            ("prs", n(NOON)),
            ("pru", n(1)),
        ]);
        assert_eq!(
            alone.explain(Some(&fenced), NOON),
            PlanExplained::Fenced(NOON + 60)
        );
        // A spent limit still says so; a fence past is no fence.
        let mut spent = fenced.clone();
        spent.insert("pdu".into(), n(100));
        assert_eq!(
            alone.explain(Some(&spent), NOON),
            PlanExplained::Deny(PlanLimit::Day)
        );
        let mut old = fenced;
        old.insert("kx".into(), n(NOON - 1));
        assert!(matches!(
            alone.explain(Some(&old), NOON),
            PlanExplained::Retry(_)
        ));
    }
}
