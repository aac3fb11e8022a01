//! Quotas and rate limits, and the period arithmetic they need.
//!
//! A quota counts requests per UTC calendar day or month. A rate limit counts
//! requests per fixed window of `window` seconds aligned to the epoch. Both are
//! identified in the store by the start of their current period, a number, so
//! that "newer period" is an ordered comparison in a condition expression and
//! two containers with slightly different clocks can never reset a counter
//! backwards.

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};

use crate::clock::Timestamp;

/// Calendar period of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Month,
}

/// At most `limit` requests per UTC day or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub limit: u64,
    pub period: Period,
}

/// At most `limit` requests per `window` seconds (fixed windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub limit: u64,
    pub window: u32,
}

/// The limits of a key; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
}

/// Upper bounds accepted for limits (validation happens at issuance).
pub const MAX_QUOTA: u64 = 1_000_000_000_000;
pub const MAX_RATE: u64 = 1_000_000;
pub const MAX_RATE_WINDOW: u32 = 86_400;

/// A half-open interval `[start, end)` in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

fn utc(now: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn midnight(date: Date) -> Timestamp {
    date.midnight().assume_utc().unix_timestamp()
}

impl Period {
    /// The calendar period containing `now`.
    pub fn window(self, now: Timestamp) -> Window {
        let date = utc(now).date();
        match self {
            Period::Day => {
                let start = midnight(date);
                Window {
                    start,
                    end: start + 86_400,
                }
            }
            Period::Month => {
                let first = Date::from_calendar_date(date.year(), date.month(), 1)
                    .expect("day 1 exists in every month");
                let (year, month) = match date.month() {
                    Month::December => (date.year() + 1, Month::January),
                    m => (date.year(), m.next()),
                };
                let next = Date::from_calendar_date(year, month, 1).expect("day 1 exists");
                Window {
                    start: midnight(first),
                    end: midnight(next),
                }
            }
        }
    }
}

impl Rate {
    /// Whether this rate is no looser than `ceiling`: no larger burst (at
    /// most `ceiling.limit` requests in one window) and no higher sustained
    /// rate (`limit / window`, compared without division). The one rule for
    /// "within" wherever a rate is checked against another (grants, plans).
    pub fn within(self, ceiling: Rate) -> bool {
        let sustained = u128::from(self.limit) * u128::from(ceiling.window)
            <= u128::from(ceiling.limit) * u128::from(self.window);
        self.limit <= ceiling.limit && sustained
    }

    /// The fixed window containing `now`.
    pub fn window_at(self, now: Timestamp) -> Window {
        let len = i64::from(self.window.max(1));
        let start = now.div_euclid(len) * len;
        Window {
            start,
            end: start + len,
        }
    }
}

/// The UTC day of `now` as `YYYY-MM-DD`, used to name usage counters.
pub fn day_string(now: Timestamp) -> String {
    let d = utc(now).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn ts(dt: OffsetDateTime) -> Timestamp {
        dt.unix_timestamp()
    }

    #[test]
    fn day_and_month_boundaries() {
        let just_before = ts(datetime!(2026-12-31 23:59:59 UTC));
        let day = Period::Day.window(just_before);
        assert_eq!(day.start, ts(datetime!(2026-12-31 0:00 UTC)));
        assert_eq!(day.end, ts(datetime!(2027-01-01 0:00 UTC)));
        let month = Period::Month.window(just_before);
        assert_eq!(month.start, ts(datetime!(2026-12-01 0:00 UTC)));
        assert_eq!(month.end, ts(datetime!(2027-01-01 0:00 UTC)));
        // Leap February.
        let feb = Period::Month.window(ts(datetime!(2028-02-29 12:00 UTC)));
        assert_eq!(feb.end - feb.start, 29 * 86_400);
        assert_eq!(day_string(just_before), "2026-12-31");
        assert_eq!(day_string(just_before + 1), "2027-01-01");
    }

    #[test]
    fn rate_windows_align_to_the_epoch() {
        let rate = Rate {
            limit: 10,
            window: 60,
        };
        assert_eq!(
            rate.window_at(119),
            Window {
                start: 60,
                end: 120
            }
        );
        assert_eq!(
            rate.window_at(120),
            Window {
                start: 120,
                end: 180
            }
        );
    }

    proptest! {
        #[test]
        fn every_instant_lies_in_its_period(now in 0i64..4_102_444_800, w in 1u32..86_400) {
            for period in [Period::Day, Period::Month] {
                let win = period.window(now);
                prop_assert!(win.start <= now && now < win.end);
                // The next period starts exactly where this one ends.
                prop_assert_eq!(period.window(win.end).start, win.end);
                prop_assert_eq!(period.window(win.end - 1), win);
            }
            let rate = Rate { limit: 1, window: w };
            let win = rate.window_at(now);
            prop_assert!(win.start <= now && now < win.end);
            prop_assert_eq!(win.end - win.start, i64::from(w));
        }
    }
}
