//! The authorizer's one conditional write, as pure data.
//!
//! [`AdmitPlan::expression`] builds the `UpdateItem` that, in one request,
//! re-checks the key's record version (so a revoked or changed key is never
//! admitted from a stale cache), spends one unit of quota and one of rate,
//! and counts the request in today's usage. If the condition fails, DynamoDB
//! returns the item as it was (`ALL_OLD`) and [`explain`] turns it into a
//! deny reason, a request to re-read the key, or corrected counter positions
//! for one more try. Nothing is read before the write: the failed condition
//! *is* the deny.
//!
//! Counters are identified by the start of their period. A plan either
//! *continues* the stored period (`qs = :start AND qu < ql`, then `ADD`) or
//! *resets* into a newer one (`qs < :start`, then `SET qu = 1`). Which one is
//! predicted from what the container saw last ([`CounterHints`]); a wrong
//! guess costs one retry, at most once per period and container.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::clock::Timestamp;
use crate::decision::DenyReason;
use crate::id::KeyId;
use crate::limits::{Limits, Period};
use crate::store::items::{self, alw};
use crate::store::shards::share;

/// Where a counter stands, as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaPos {
    pub period: Period,
    pub start: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePos {
    pub window: u32,
    pub start: Timestamp,
}

/// The counters of one allowance as last seen by this container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterHints {
    pub quota: Option<QuotaPos>,
    pub rate: Option<RatePos>,
    /// The allowance's shard count as last seen (0 or 1: single).
    pub shards: u32,
}

/// The item a plan writes: the root of a single allowance, or one shard of
/// a sharded one (see `allowance-design.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Single,
    /// Shard `index` (1-based) of `count`.
    Shard {
        index: u32,
        count: u32,
    },
}

impl Target {
    /// How many of `count` shards have a share of every limit: the first
    /// `min(count, quota, rate)` (shares decrease with the index).
    pub fn eligible(limits: &Limits, count: u32) -> u32 {
        let mut n = u64::from(count);
        if let Some(q) = limits.quota {
            n = n.min(q.limit);
        }
        if let Some(r) = limits.rate {
            n = n.min(r.limit);
        }
        n.max(1) as u32
    }
}

impl CounterHints {
    /// Best guess with nothing seen yet: quotas are probably already running
    /// this period, short rate windows probably are not.
    pub fn guess(limits: &Limits, now: Timestamp) -> Self {
        Self {
            shards: 1,
            quota: limits.quota.map(|q| QuotaPos {
                period: q.period,
                start: q.period.window(now).start,
            }),
            rate: limits.rate.map(|r| RatePos {
                window: r.window,
                start: r.window_at(now).start - i64::from(r.window.max(1)),
            }),
        }
    }
}

/// A counter's part of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The stored period is current: add one if under the limit.
    Continue(Timestamp),
    /// The stored period is older: start this one at 1.
    Reset(Timestamp),
}

impl Step {
    pub(crate) fn from_seen(seen_start: Timestamp, current_start: Timestamp) -> Self {
        if seen_start >= current_start {
            Step::Continue(seen_start)
        } else {
            Step::Reset(current_start)
        }
    }

    pub fn start(self) -> Timestamp {
        match self {
            Step::Continue(s) | Step::Reset(s) => s,
        }
    }
}

/// What to count in today's usage besides the allowed request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageMark {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// The route label (route key, resource template or matched scope).
    pub route: Option<String>,
    /// The caller's address, kept if its slot for the day is still free.
    pub source_ip: Option<String>,
    /// Set (to the oldest day to keep, `YYYY-MM-DD`) to have the write return
    /// the whole item, so usage counters of older days can be pruned.
    pub keep_from: Option<String>,
}

/// One planned admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmitPlan {
    pub allowance_id: String,
    /// The item written.
    pub target: Target,
    pub key_id: KeyId,
    /// The record version the decision was made on.
    pub version: u64,
    pub quota: Option<(Period, Step)>,
    pub rate: Option<(u32, Step)>,
    pub usage: UsageMark,
    quota_limit: Option<u64>,
    rate_limit: Option<u64>,
}

/// A successful admission: what is left, and where the counters now stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub quota_remaining: Option<u64>,
    pub rate_remaining: Option<u64>,
    pub hints: CounterHints,
    /// Usage attributes to prune (only when asked, with `keep_from`): those
    /// older than `keep_from`, or, when the item is over
    /// [`items::ALLOWANCE_PRUNE_BYTES`], all but its newest
    /// [`items::LIVE_USAGE_DAYS`] days.
    pub stale: StaleUsage,
    /// Admissions the written item has taken, ever (its `wc`).
    pub writes: Option<u64>,
}

/// Usage attributes of an item to prune, from [`stale_usage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaleUsage {
    /// Attribute names, any order.
    pub names: Vec<String>,
    /// Whether `names` holds days within retention, pruned for size
    /// (possibly never archived).
    pub for_size: bool,
}

impl StaleUsage {
    /// From the whole `item`, keeping days from `keep_from` (`YYYY-MM-DD`).
    pub fn of(item: &HashMap<String, AttributeValue>, keep_from: &str) -> Self {
        let (names, for_size) = stale_usage(item, keep_from);
        Self { names, for_size }
    }
}

/// The result of one admission attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AdmitOutcome {
    Admitted(Granted),
    /// The condition failed; the item as it was, if it exists.
    Rejected(Option<HashMap<String, AttributeValue>>),
}

/// Why an attempt was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Explained {
    Deny(DenyReason),
    /// The key's record changed (or was revoked): re-read it and decide again.
    Stale,
    /// Counters moved to another period: try again from here.
    Retry(CounterHints),
    /// The allowance has another layout (this many shards; 1: single, or
    /// unknown: ask the root): plan again.
    Reshard(u32),
    /// The shard planned on does not exist: the allowance is being grown
    /// (its root has its shard count, its shards are not made yet).
    Incomplete,
}

/// An `UpdateItem` request body, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expression {
    /// `SET <set...> ADD <add...>` (the `SET` part only if any), conditions
    /// joined by `AND`.
    pub fn assemble(
        set: &[String],
        add: &[String],
        cond: &[String],
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    ) -> Self {
        let mut update = String::new();
        if !set.is_empty() {
            update.push_str("SET ");
            update.push_str(&set.join(", "));
            update.push(' ');
        }
        update.push_str("ADD ");
        update.push_str(&add.join(", "));
        Self {
            update,
            condition: cond.join(" AND "),
            names,
            values,
        }
    }
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Month => "month",
    }
}

/// The address slot an address lands in (see [`items::IP_SLOTS`]).
pub fn ip_slot(ip: &str) -> u64 {
    u64::from(crc32fast::hash(ip.as_bytes())) % items::IP_SLOTS
}

/// Cut a route label to a bounded length on a character boundary.
pub fn route_label(route: &str) -> String {
    let mut end = route.len().min(items::MAX_ROUTE_LABEL);
    while !route.is_char_boundary(end) {
        end -= 1;
    }
    route[..end].to_owned()
}

impl AdmitPlan {
    /// Plan an admission from what the container last saw of the counters.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: Target,
        allowance_id: &str,
        key_id: &KeyId,
        version: u64,
        limits: &Limits,
        hints: &CounterHints,
        now: Timestamp,
        usage: UsageMark,
    ) -> Self {
        let quota = limits.quota.map(|q| {
            let current = q.period.window(now).start;
            let step = match hints.quota {
                Some(seen) if seen.period == q.period => Step::from_seen(seen.start, current),
                _ => Step::Continue(current),
            };
            (q.period, step)
        });
        let rate = limits.rate.map(|r| {
            let current = r.window_at(now).start;
            let step = match hints.rate {
                Some(seen) if seen.window == r.window => Step::from_seen(seen.start, current),
                _ => Step::Reset(current),
            };
            (r.window, step)
        });
        Self {
            allowance_id: allowance_id.to_owned(),
            target,
            key_id: key_id.clone(),
            version,
            quota,
            rate,
            usage,
            quota_limit: limits.quota.map(|q| q.limit),
            rate_limit: limits.rate.map(|r| r.limit),
        }
    }

    /// The same plan on another item of the allowance (to explain what a
    /// survey read of that item shows).
    pub fn on(&self, target: Target) -> Self {
        Self {
            target,
            ..self.clone()
        }
    }

    /// [`Target::eligible`] for this plan's limits.
    fn eligible(&self, count: u32) -> u32 {
        let mut n = u64::from(count);
        for limit in [self.quota_limit, self.rate_limit].into_iter().flatten() {
            n = n.min(limit);
        }
        n.max(1) as u32
    }

    /// The conditional update that admits one request.
    pub fn expression(&self) -> Expression {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut cond = vec!["#kv.#kid = :ver".to_owned()];
        let mut set = Vec::new();
        let mut add = vec!["#uok :one".to_owned(), "#wc :one".to_owned()];
        names.insert("#kv".into(), alw::VERSIONS.into());
        names.insert("#kid".into(), self.key_id.as_str().into());
        values.insert(":ver".into(), n(self.version));
        values.insert(":one".into(), n(1));
        let kid = self.key_id.as_str();
        let day = &self.usage.day;
        names.insert("#uok".into(), items::usage_attr(day, kid, "ok"));
        names.insert("#wc".into(), alw::WRITES.into());
        names.insert("#sh".into(), alw::SHARDS.into());
        // A shard's share is of the shards containers choose (those with a
        // share of every limit), so no part of a limit sits where no
        // container writes.
        let slice = |limit: Option<u64>| match self.target {
            Target::Single => None,
            Target::Shard { index, count } => {
                let eligible = self.eligible(count);
                limit.map(|l| share(l, eligible, index))
            }
        };
        match self.target {
            Target::Single => cond.push("attribute_not_exists(#sh)".into()),
            Target::Shard { count, .. } => {
                values.insert(":sh".into(), n(count));
                cond.push("#sh = :sh".into());
            }
        }

        names.insert("#ql".into(), alw::QUOTA_LIMIT.into());
        match self.quota {
            None => cond.push("attribute_not_exists(#ql)".into()),
            Some((period, step)) => {
                names.insert("#qt".into(), alw::QUOTA_KIND.into());
                names.insert("#qs".into(), alw::QUOTA_START.into());
                names.insert("#qu".into(), alw::QUOTA_USED.into());
                values.insert(":qt".into(), AttributeValue::S(period_name(period).into()));
                values.insert(":qs".into(), n(step.start()));
                cond.push("#qt = :qt".into());
                match step {
                    Step::Continue(_) => {
                        cond.push("#qs = :qs AND #qu < #ql".into());
                        add.push("#qu :one".into());
                    }
                    Step::Reset(_) => match slice(self.quota_limit) {
                        // A shard's new period starts with its even share.
                        Some(share) => {
                            cond.push("(attribute_not_exists(#qs) OR #qs < :qs)".into());
                            values.insert(":qsl".into(), n(share));
                            set.push("#qs = :qs, #qu = :one, #ql = :qsl".to_owned());
                        }
                        None => {
                            cond.push(
                                "(attribute_not_exists(#qs) OR #qs < :qs) AND #ql >= :one".into(),
                            );
                            set.push("#qs = :qs, #qu = :one".to_owned());
                        }
                    },
                }
            }
        }
        names.insert("#rl".into(), alw::RATE_LIMIT.into());
        match self.rate {
            None => cond.push("attribute_not_exists(#rl)".into()),
            Some((window, step)) => {
                names.insert("#rw".into(), alw::RATE_WINDOW.into());
                names.insert("#rs".into(), alw::RATE_START.into());
                names.insert("#ru".into(), alw::RATE_USED.into());
                values.insert(":rw".into(), n(window));
                values.insert(":rs".into(), n(step.start()));
                cond.push("#rw = :rw".into());
                match step {
                    Step::Continue(_) => {
                        cond.push("#rs = :rs AND #ru < #rl".into());
                        add.push("#ru :one".into());
                    }
                    Step::Reset(_) => match slice(self.rate_limit) {
                        Some(share) => {
                            cond.push("(attribute_not_exists(#rs) OR #rs < :rs)".into());
                            values.insert(":rsl".into(), n(share));
                            set.push("#rs = :rs, #ru = :one, #rl = :rsl".to_owned());
                        }
                        None => {
                            cond.push(
                                "(attribute_not_exists(#rs) OR #rs < :rs) AND #rl >= :one".into(),
                            );
                            set.push("#rs = :rs, #ru = :one".to_owned());
                        }
                    },
                }
            }
        }
        if let Some(route) = &self.usage.route {
            names.insert(
                "#urt".into(),
                items::usage_attr(day, kid, &format!("r#{}", route_label(route))),
            );
            add.push("#urt :one".into());
        }
        if let Some(ip) = &self.usage.source_ip {
            names.insert(
                "#uip".into(),
                items::usage_attr(day, kid, &format!("ip{}", ip_slot(ip))),
            );
            values.insert(":ip".into(), AttributeValue::S(route_label(ip)));
            set.push("#uip = if_not_exists(#uip, :ip)".into());
        }
        Expression::assemble(&set, &add, &cond, names, values)
    }

    /// Read what is left from the attributes the update returned
    /// (`UPDATED_NEW`: the counters this plan wrote).
    pub fn granted_from(&self, new: Option<HashMap<String, AttributeValue>>) -> Granted {
        self.granted(&new.unwrap_or_default())
    }

    fn granted(&self, new: &HashMap<String, AttributeValue>) -> Granted {
        // A reset writes 1. An attribute set to the value it already had
        // may be left out of `UPDATED_NEW` (moto does): then it is that 1,
        // not "all used".
        let reset_to_one = |step: Option<Step>| matches!(step, Some(Step::Reset(_))).then_some(1);
        let quota_used =
            num(new, alw::QUOTA_USED).or_else(|| reset_to_one(self.quota.map(|(_, s)| s)));
        let rate_used =
            num(new, alw::RATE_USED).or_else(|| reset_to_one(self.rate.map(|(_, s)| s)));
        let hints = CounterHints {
            shards: match self.target {
                Target::Single => 1,
                Target::Shard { count, .. } => count,
            },
            quota: self.quota.map(|(period, step)| QuotaPos {
                period,
                start: num(new, alw::QUOTA_START).unwrap_or(step.start()),
            }),
            rate: self.rate.map(|(window, step)| RatePos {
                window,
                start: num(new, alw::RATE_START).unwrap_or(step.start()),
            }),
        };
        // On a shard: what is left of an even share, times the shards: an
        // estimate of the whole (readers sum the shards exactly).
        let used_of = |used: Option<i64>| used.and_then(|u| u64::try_from(u).ok());
        let left =
            |limit: u64, used: Option<i64>| match self.target {
                Target::Single => limit.saturating_sub(used_of(used).unwrap_or(limit)),
                Target::Shard { count, .. } => limit.min(u64::from(count).saturating_mul(
                    share(limit, count, 1).saturating_sub(used_of(used).unwrap_or(0)),
                )),
            };
        let stale = match &self.usage.keep_from {
            None => StaleUsage::default(),
            Some(keep_from) => StaleUsage::of(new, keep_from),
        };
        Granted {
            writes: num(new, alw::WRITES).and_then(|w| u64::try_from(w).ok()),
            quota_remaining: self.quota_limit.map(|limit| left(limit, quota_used)),
            rate_remaining: self.rate_limit.map(|limit| left(limit, rate_used)),
            hints,
            stale,
        }
    }
}

/// The usage attributes of `item` to prune: days before `keep_from`, or, if
/// the item is over [`items::ALLOWANCE_PRUNE_BYTES`], every day but the
/// newest [`items::LIVE_USAGE_DAYS`] (and whether that size rule decided).
fn stale_usage(item: &HashMap<String, AttributeValue>, keep_from: &str) -> (Vec<String>, bool) {
    fn day_of(name: &str) -> Option<&str> {
        name.strip_prefix("u#")?.split('#').next()
    }
    let mut cutoff = keep_from;
    let mut for_size = false;
    if crate::store::size::item_size(item) > items::ALLOWANCE_PRUNE_BYTES {
        let mut days: Vec<&str> = item.keys().filter_map(|n| day_of(n)).collect();
        days.sort_unstable_by(|a, b| b.cmp(a));
        days.dedup();
        if let Some(oldest_live) = days.get(items::LIVE_USAGE_DAYS as usize - 1) {
            if *oldest_live > cutoff {
                cutoff = *oldest_live;
                for_size = true;
            }
        }
    }
    let stale: Vec<String> = item
        .keys()
        .filter(|name| day_of(name).is_some_and(|day| day < cutoff))
        .cloned()
        .collect();
    let for_size = for_size && !stale.is_empty();
    (stale, for_size)
}

fn num(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// Explain a failed admission from the item as it was.
pub fn explain(
    plan: &AdmitPlan,
    old: Option<&HashMap<String, AttributeValue>>,
    now: Timestamp,
) -> Explained {
    let Some(old) = old else {
        return match plan.target {
            Target::Single => Explained::Deny(DenyReason::NotFound),
            Target::Shard { .. } => Explained::Incomplete,
        };
    };
    let shards = num(old, alw::SHARDS).and_then(|n| u32::try_from(n).ok());
    match (plan.target, shards) {
        (Target::Single, Some(n)) => return Explained::Reshard(n),
        (Target::Shard { count, .. }, found) if found != Some(count) => {
            return Explained::Reshard(found.unwrap_or(1))
        }
        _ => {}
    }
    let version = old
        .get(alw::VERSIONS)
        .and_then(|v| v.as_m().ok())
        .and_then(|m| m.get(plan.key_id.as_str()))
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if version != Some(plan.version) {
        return Explained::Stale;
    }
    let quota = match (num(old, alw::QUOTA_LIMIT), text(old, alw::QUOTA_KIND)) {
        (Some(limit), Some(kind)) => {
            let period = if kind == "month" {
                Period::Month
            } else {
                Period::Day
            };
            let current = period.window(now).start;
            let start = num(old, alw::QUOTA_START);
            let used = num(old, alw::QUOTA_USED).unwrap_or(0);
            if start.is_some_and(|s| s >= current) && used >= limit {
                return Explained::Deny(DenyReason::QuotaExceeded);
            }
            Some(QuotaPos {
                period,
                start: start.unwrap_or(i64::MIN),
            })
        }
        _ => None,
    };
    let rate = match (num(old, alw::RATE_LIMIT), num(old, alw::RATE_WINDOW)) {
        (Some(limit), Some(window)) => {
            let window = u32::try_from(window).unwrap_or(1);
            let current = crate::limits::Rate { limit: 0, window }
                .window_at(now)
                .start;
            let start = num(old, alw::RATE_START);
            let used = num(old, alw::RATE_USED).unwrap_or(0);
            if start.is_some_and(|s| s >= current) && used >= limit {
                return Explained::Deny(DenyReason::RateLimited);
            }
            Some(RatePos {
                window,
                start: start.unwrap_or(i64::MIN),
            })
        }
        _ => None,
    };
    Explained::Retry(CounterHints {
        quota,
        rate,
        shards: shards.unwrap_or(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Quota, Rate};

    fn limits() -> Limits {
        Limits {
            quota: Some(Quota {
                limit: 50,
                period: Period::Day,
            }),
            rate: Some(Rate {
                limit: 5,
                window: 60,
            }),
        }
    }

    fn plan(hints: &CounterHints, now: Timestamp) -> AdmitPlan {
        AdmitPlan::new(
            Target::Single,
            "a1",
            &KeyId::parse("key_0000000000000000000001").unwrap(),
            3,
            &limits(),
            hints,
            now,
            UsageMark {
                day: "2026-11-29".into(),
                route: Some("GET /orders/{id}".into()),
                source_ip: Some("203.0.113.7".into()),
                keep_from: Some("2026-10-25".into()),
            },
        )
    }

    #[test]
    fn steps_follow_the_hints() {
        let now = 1_800_000_000;
        let hints = CounterHints::guess(&limits(), now);
        let p = plan(&hints, now);
        assert!(matches!(p.quota, Some((Period::Day, Step::Continue(_)))));
        assert!(matches!(p.rate, Some((60, Step::Reset(_)))));
        let expr = p.expression();
        assert!(expr.condition.starts_with("#kv.#kid = :ver"));
        assert!(expr.condition.contains("#qu < #ql"));
        assert!(expr.condition.contains("#rs < :rs"));
        assert!(expr
            .update
            .contains("ADD #uok :one, #wc :one, #qu :one, #urt :one"));
        assert!(expr.update.contains("#rs = :rs, #ru = :one"));
        assert!(expr.update.contains("#uip = if_not_exists(#uip, :ip)"));
        // Every placeholder used is defined.
        for word in expr
            .update
            .split([' ', ',', '(', ')'])
            .chain(expr.condition.split([' ', ',', '(', ')']))
        {
            let word = word.split('.').next().unwrap_or(word);
            if word.starts_with('#') {
                assert!(expr.names.contains_key(word), "{word} undefined");
            }
            if word.starts_with(':') {
                assert!(expr.values.contains_key(word), "{word} undefined");
            }
        }
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn explain_tells_why() {
        let now = 1_800_000_000;
        let p = plan(&CounterHints::guess(&limits(), now), now);
        let kv = AttributeValue::M(HashMap::from([(p.key_id.as_str().to_owned(), n(3))]));
        let day = Period::Day.window(now).start;
        let win = 1_800_000_000 / 60 * 60;
        assert_eq!(
            explain(&p, None, now),
            Explained::Deny(DenyReason::NotFound)
        );
        let stale = item(&[("kv", AttributeValue::M(HashMap::new()))]);
        assert_eq!(explain(&p, Some(&stale), now), Explained::Stale);
        let base = [
            ("kv", kv.clone()),
            ("ql", n(50)),
            ("qt", AttributeValue::S("day".into())),
            ("rl", n(5)),
            ("rw", n(60)),
        ];
        let mut over = item(&base);
        over.extend(item(&[("qs", n(day)), ("qu", n(50))]));
        assert_eq!(
            explain(&p, Some(&over), now),
            Explained::Deny(DenyReason::QuotaExceeded)
        );
        // Yesterday's full counter is not a deny: it rolls over.
        let mut yesterday = item(&base);
        yesterday.extend(item(&[("qs", n(day - 86_400)), ("qu", n(50))]));
        let Explained::Retry(hints) = explain(&p, Some(&yesterday), now) else {
            panic!("expected retry")
        };
        let retry = plan(&hints, now);
        assert_eq!(retry.quota, Some((Period::Day, Step::Reset(day))));
        let mut rated = item(&base);
        rated.extend(item(&[
            ("qs", n(day)),
            ("qu", n(3)),
            ("rs", n(win)),
            ("ru", n(5)),
        ]));
        assert_eq!(
            explain(&p, Some(&rated), now),
            Explained::Deny(DenyReason::RateLimited)
        );
    }

    #[test]
    fn remaining_is_read_from_the_update() {
        let now = 1_800_000_000;
        let p = plan(&CounterHints::default(), now);
        let new = item(&[
            ("qu", n(10)),
            ("ru", n(5)),
            ("qs", n(1)),
            ("rs", n(2)),
            ("u#2026-10-24#key_x#ok", n(1)),
            ("u#2026-10-25#key_x#ok", n(1)),
        ]);
        let g = p.granted(&new);
        assert_eq!(g.stale.names, vec!["u#2026-10-24#key_x#ok".to_owned()]);
        assert_eq!(g.quota_remaining, Some(40));
        assert_eq!(g.rate_remaining, Some(0));
        assert_eq!(g.hints.quota.unwrap().start, 1);
        assert_eq!(route_label(&"é".repeat(100)).len(), 128);
    }

    #[test]
    fn an_allowance_near_the_item_limit_keeps_only_its_live_days() {
        let big = |day: &str, route: usize| {
            (
                format!("u#{day}#key_x#r#GET /{route:03}/{}", "p".repeat(120)),
                AttributeValue::N("12345".into()),
            )
        };
        let mut new: HashMap<String, AttributeValue> = HashMap::new();
        for day in ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"] {
            for route in 0..500 {
                let (name, value) = big(day, route);
                new.insert(name, value);
            }
        }
        assert!(crate::store::size::item_size(&new) > items::ALLOWANCE_PRUNE_BYTES);
        let (stale, for_size) = stale_usage(&new, "2026-10-01");
        assert!(for_size);
        assert_eq!(stale.len(), 1000, "the two oldest days go");
        assert!(stale
            .iter()
            .all(|n| n.starts_with("u#2026-11-01") || n.starts_with("u#2026-11-02")));
        // Under the limit, only days past retention go.
        let small: HashMap<String, AttributeValue> = [
            big("2026-09-30", 1),
            big("2026-11-03", 1),
            big("2026-11-04", 1),
        ]
        .into_iter()
        .collect();
        let (stale, for_size) = stale_usage(&small, "2026-10-01");
        assert!(!for_size);
        assert_eq!(stale.len(), 1);
        assert!(stale[0].starts_with("u#2026-09-30"));
    }

    #[test]
    fn a_shard_plan_checks_the_layout_and_resets_to_its_share() {
        let now = 1_800_000_000;
        let mut p = plan(&CounterHints::guess(&limits(), now - 40 * 86_400), now);
        p.target = Target::Shard { index: 2, count: 4 };
        let expr = p.expression();
        assert!(expr.condition.contains("#sh = :sh"));
        assert_eq!(expr.values[":sh"], n(4));
        // 50/day over 4 shards: 13, 13, 12, 12; 5 per minute: 2, 1, 1, 1.
        assert!(expr.update.contains("#qs = :qs, #qu = :one, #ql = :qsl"));
        assert_eq!(expr.values[":qsl"], n(13));
        assert_eq!(expr.values[":rsl"], n(1));
        // With a rate of 2 only shards 1 and 2 are chosen: the quota is
        // shared over those two (25 each), none of it left on 3 and 4.
        let mut narrow = plan(&CounterHints::guess(&limits(), now - 40 * 86_400), now);
        narrow.rate_limit = Some(2);
        narrow.target = Target::Shard { index: 2, count: 4 };
        assert_eq!(narrow.expression().values[":qsl"], n(25));
        let single = plan(&CounterHints::default(), now).expression();
        assert!(single.condition.contains("attribute_not_exists(#sh)"));
        // A write to a layout that changed tells the new one.
        let kv = AttributeValue::M(HashMap::from([(p.key_id.as_str().to_owned(), n(3))]));
        let grown = item(&[("kv", kv.clone()), ("sh", n(16))]);
        assert_eq!(explain(&p, Some(&grown), now), Explained::Reshard(16));
        let root = item(&[("kv", kv), ("sh", n(4))]);
        let single_plan = plan(&CounterHints::default(), now);
        assert_eq!(
            explain(&single_plan, Some(&root), now),
            Explained::Reshard(4)
        );
        assert_eq!(explain(&p, None, now), Explained::Incomplete);
        assert_eq!(
            Target::eligible(&limits(), 16),
            5,
            "no shard without a share"
        );
    }

    #[test]
    fn a_reset_counter_left_out_of_the_answer_reads_as_one_used() {
        let now = 1_800_000_000;
        // Hints from an earlier window: both counters reset on this write.
        let p = plan(&CounterHints::guess(&limits(), now - 40 * 86_400), now);
        assert!(matches!(p.rate, Some((_, Step::Reset(_)))));
        assert!(matches!(p.quota, Some((_, Step::Reset(_)))));
        let g = p.granted(&item(&[]));
        assert_eq!(g.quota_remaining, Some(49));
        assert_eq!(g.rate_remaining, Some(4));
    }
}
