//! Usage reporting: what the authorizer counted, per key and day, read back
//! for analytics, billing and anomaly flags.
//!
//! Where the counts live:
//! - **live days** sit on the allowance item the authorizer writes (flat
//!   attributes `u#<day>#<key_id>#<what>`, see [`crate::store::items`]);
//! - **archived days**: the daily report job copies every finished day into
//!   one history item per key and day (partition `UOWN#<owner>`, sort
//!   `<day>#<key_id>`, and in the owner index under `UKEY#<key_id>`), then
//!   removes those attributes from the allowance. The allowance item keeps
//!   only the current day or two, so the authorizer's write stays small
//!   (DynamoDB bills a write by the size of the item).
//!
//! Readers merge both: a day still on the allowance wins over its archive.
//!
//! Per-plan usage (what an owner's keys did under each plan) follows the
//! same pattern on the owner's plan allowance: see [`plan_usage`].
//!
//! - [`report`]: the daily per-owner report and its anomaly flags, pure;
//! - [`plan_usage`]: per-plan counters, their archive and billing periods, pure;
//! - [`service`]: the operations over the store;
//! - [`http`]: the HTTP routes and their validation.

pub mod archive;
pub mod http;
pub mod plan_usage;
pub mod report;
pub mod service;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// What one key did on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayUsage {
    /// Requests allowed (each spent quota).
    #[serde(default)]
    pub allowed: u64,
    /// Requests denied after the key was known, by reason.
    #[serde(default)]
    pub denied: BTreeMap<String, u64>,
    /// Allowed requests by route label.
    #[serde(default)]
    pub routes: BTreeMap<String, u64>,
    /// Source addresses seen (bounded: the first to land in each of
    /// [`crate::store::items::IP_SLOTS`] slots).
    #[serde(default)]
    pub ips: BTreeSet<String>,
}

impl DayUsage {
    pub fn denied_total(&self) -> u64 {
        self.denied.values().sum()
    }

    /// Every request counted: allowed plus denied.
    pub fn requests(&self) -> u64 {
        self.allowed + self.denied_total()
    }

    /// Add another count of the same key and day (or a range total).
    pub fn absorb(&mut self, other: &DayUsage) {
        self.allowed += other.allowed;
        for (k, v) in &other.denied {
            *self.denied.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.routes {
            *self.routes.entry(k.clone()).or_default() += v;
        }
        self.ips.extend(other.ips.iter().cloned());
    }

    /// Add counts of the same key (or plan) and day that arrived later (a
    /// late flush, or what is still live beside an archived day): as
    /// [`DayUsage::absorb`], but `other`'s addresses only while fewer than
    /// [`crate::store::items::IP_SLOTS`] are kept (the day's first ones
    /// stay, as a live day keeps them).
    pub fn absorb_same_day(&mut self, other: &DayUsage) {
        let ips = std::mem::take(&mut self.ips);
        self.absorb(&DayUsage {
            ips: BTreeSet::new(),
            ..other.clone()
        });
        self.ips = ips;
        let slots = crate::store::items::IP_SLOTS as usize;
        for ip in &other.ips {
            if self.ips.len() >= slots {
                break;
            }
            self.ips.insert(ip.clone());
        }
    }

    /// The busiest routes, most first (ties by name), at most `n`.
    pub fn top_routes(&self, n: usize) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.routes.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

/// One key's usage on one day, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDay {
    pub key_id: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    #[serde(flatten)]
    pub usage: DayUsage,
}

/// Usage read off an allowance item: per (subject id, day), where the
/// subject is a key id (`u#` counters) or a plan id (`pu#` counters), and
/// the attribute names that hold each day (so an archived day can be
/// removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveUsage {
    pub days: BTreeMap<(String, String), DayUsage>,
    pub attrs: BTreeMap<String, Vec<String>>,
}

/// Parse the usage counters of an allowance item. Unknown attributes are
/// ignored, so the layout can grow.
pub fn live_usage(item: &HashMap<String, AttributeValue>) -> LiveUsage {
    live_counters(item, "u#")
}

/// Parse the counters named `<prefix><day>#<subject>#<what>`, `what` being
/// `ok`, `d#<reason>`, `r#<route>` or `ip<slot>`.
pub(crate) fn live_counters(item: &HashMap<String, AttributeValue>, prefix: &str) -> LiveUsage {
    let mut out = LiveUsage::default();
    for (name, value) in item {
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let mut parts = rest.splitn(3, '#');
        let (Some(day), Some(subject), Some(what)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let count = value
            .as_n()
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let entry = out
            .days
            .entry((subject.to_owned(), day.to_owned()))
            .or_default();
        if what == "ok" {
            entry.allowed += count;
        } else if let Some(reason) = what.strip_prefix("d#") {
            *entry.denied.entry(reason.to_owned()).or_default() += count;
        } else if let Some(route) = what.strip_prefix("r#") {
            *entry.routes.entry(route.to_owned()).or_default() += count;
        } else if what.starts_with("ip") {
            if let Ok(ip) = value.as_s() {
                entry.ips.insert(ip.clone());
            }
        } else {
            continue;
        }
        out.attrs
            .entry(day.to_owned())
            .or_default()
            .push(name.clone());
    }
    out
}

/// A UTC calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(time::Date);

impl Day {
    /// Parse `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Self> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        if text.len() != 10 {
            return None;
        }
        time::Date::parse(text, &format).ok().map(Day)
    }

    pub fn of(now: Timestamp) -> Self {
        let at = time::OffsetDateTime::from_unix_timestamp(now)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Day(at.date())
    }

    /// Midnight UTC at the start of the day.
    pub fn start(self) -> Timestamp {
        self.0.midnight().assume_utc().unix_timestamp()
    }

    pub fn plus(self, days: i64) -> Self {
        Day(self
            .0
            .checked_add(time::Duration::days(days))
            .unwrap_or(self.0))
    }

    /// Days from `self` to `later` (negative if earlier).
    pub fn until(self, later: Day) -> i64 {
        (later.0 - self.0).whole_days()
    }

    /// The first day of the month this day is in.
    pub fn month_start(self) -> Self {
        Day(self.0.replace_day(1).unwrap_or(self.0))
    }

    /// The last day of the month this day is in.
    pub fn month_end(self) -> Self {
        let days = self.0.month().length(self.0.year());
        Day(self.0.replace_day(days).unwrap_or(self.0))
    }

    /// The month this day is in, `YYYY-MM`.
    pub fn month(self) -> String {
        format!("{:04}-{:02}", self.0.year(), u8::from(self.0.month()))
    }

    /// Every day from `self` to `last`, both included.
    pub fn through(self, last: Day) -> impl Iterator<Item = Day> {
        let n = self.until(last).max(-1);
        (0..=n).map(move |i| self.plus(i))
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.0.year(),
            u8::from(self.0.month()),
            self.0.day()
        )
    }
}

/// Merge live and archived days into one map per key. A day both archived
/// and live adds up: archiving moves counters off the allowance in the same
/// transaction that adds them to the archive, so what is still live was
/// counted after (a late flush) and is not in the archive.
pub fn merge(
    live: impl IntoIterator<Item = KeyDay>,
    archived: impl IntoIterator<Item = KeyDay>,
) -> BTreeMap<String, BTreeMap<String, DayUsage>> {
    let mut out: BTreeMap<String, BTreeMap<String, DayUsage>> = BTreeMap::new();
    for d in archived.into_iter().chain(live) {
        out.entry(d.key_id)
            .or_default()
            .entry(d.day)
            .or_default()
            .absorb_same_day(&d.usage);
    }
    out
}

impl LiveUsage {
    /// The days as [`KeyDay`]s.
    pub fn key_days(&self) -> impl Iterator<Item = KeyDay> + '_ {
        self.days.iter().map(|((key_id, day), usage)| KeyDay {
            key_id: key_id.clone(),
            day: day.clone(),
            usage: usage.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    #[test]
    fn parses_the_authorizers_counters() {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("ALW#a".into())),
            ("qu".to_owned(), n(9)),
            ("u#2026-11-28#key_a#ok".to_owned(), n(3)),
            ("u#2026-11-28#key_a#d#quota_exceeded".to_owned(), n(2)),
            ("u#2026-11-28#key_a#r#GET /a#b".to_owned(), n(3)),
            (
                "u#2026-11-28#key_a#ip7".to_owned(),
                AttributeValue::S("203.0.113.9".into()),
            ),
            ("u#2026-11-29#key_b#ok".to_owned(), n(1)),
            ("u#garbage".to_owned(), n(1)),
        ]);
        let live = live_usage(&item);
        let a = &live.days[&("key_a".to_owned(), "2026-11-28".to_owned())];
        assert_eq!(a.allowed, 3);
        assert_eq!(a.denied["quota_exceeded"], 2);
        assert_eq!(a.routes["GET /a#b"], 3);
        assert!(a.ips.contains("203.0.113.9"));
        assert_eq!(a.requests(), 5);
        assert_eq!(live.attrs["2026-11-28"].len(), 4);
        assert_eq!(live.attrs["2026-11-29"].len(), 1);
        assert_eq!(live.days.len(), 2);
    }

    #[test]
    fn days_and_merging() {
        let d = Day::parse("2026-03-01").unwrap();
        assert_eq!(d.plus(-1).to_string(), "2026-02-28");
        assert_eq!(d.plus(-1).month_start().to_string(), "2026-02-01");
        assert_eq!(d.plus(-1).month_end(), d.plus(-1));
        assert_eq!(d.month_end().to_string(), "2026-03-31");
        assert_eq!(
            Day::parse("2028-02-10").unwrap().month_end().to_string(),
            "2028-02-29"
        );
        assert_eq!(d.month(), "2026-03");
        assert_eq!(Day::of(d.start()), d);
        assert_eq!(d.plus(-365).until(d), 365);
        assert_eq!(d.through(d.plus(2)).count(), 3);
        assert_eq!(d.through(d.plus(-1)).count(), 0);
        assert!(Day::parse("2026-02-30").is_none());
        assert!(Day::parse("2026-2-3").is_none());
        let day = |k: &str, allowed| KeyDay {
            key_id: k.into(),
            day: "2026-03-01".into(),
            usage: DayUsage {
                allowed,
                ..Default::default()
            },
        };
        // A day's first addresses stay: late ones only fill free slots.
        let with_ips = |prefix: &str, n: usize| DayUsage {
            ips: (0..n).map(|i| format!("{prefix}{i:02}")).collect(),
            ..Default::default()
        };
        let mut archived = with_ips("z", 18);
        archived.absorb_same_day(&with_ips("a", 5));
        assert_eq!(archived.ips.len(), 20);
        assert_eq!(
            archived.ips.iter().filter(|ip| ip.starts_with('z')).count(),
            18
        );
        let merged = merge([day("k", 5)], [day("k", 4), day("j", 1)]);
        assert_eq!(merged["k"]["2026-03-01"].allowed, 9, "late counts add");
        assert_eq!(merged["j"]["2026-03-01"].allowed, 1);
    }
}
