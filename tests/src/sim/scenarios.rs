//! The scenario lists: the benchmark's (`bench-sim`, `make bench`) and the
//! short one `tests/tests/simulation.rs` runs in `make test`.

use keygate::clock::Timestamp;
use keygate::limits::{Limits, Period, Quota, Rate};

use super::load::{Scenario, Shape};

/// 2026-11-30 12:00:00 UTC: mid-day, no rollover during a run.
pub const NOON: Timestamp = 1_796_040_000;
/// 2026-11-30 23:59:58 UTC: the UTC day (and month) rolls over 2 s in.
pub const BEFORE_MIDNIGHT: Timestamp = 1_796_083_198;

/// Which limits a scenario's key carries, relative to the offered load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitCase {
    None,
    /// A daily quota of 100 times the run's offered decisions.
    QuotaFar,
    /// A daily quota of a fifth of the run's offered decisions: exhausted
    /// during the run (at a fifth of it, by an exact limiter that keeps up),
    /// then a flood of denials.
    QuotaNear,
    /// A daily quota of 1% of the run's offered decisions, all used before
    /// the run: a client retrying in a loop after its quota ran out (the
    /// issue's flood).
    QuotaFlood,
    /// A rate limit of 10 times the offered rate, per second.
    RateFar,
    /// A rate limit of 80% of the offered rate, per second: every second
    /// ends in denials.
    RateNear,
    /// A rate limit of 1% of the offered rate, per second: a client sending
    /// a hundred times what it may.
    RateFlood,
}

impl LimitCase {
    pub fn name(self) -> &'static str {
        match self {
            LimitCase::None => "no limits",
            LimitCase::QuotaFar => "quota far",
            LimitCase::QuotaNear => "quota near",
            LimitCase::QuotaFlood => "quota flood",
            LimitCase::RateFar => "rate far",
            LimitCase::RateNear => "rate near",
            LimitCase::RateFlood => "rate flood",
        }
    }

    fn limits(self, rate: f64, seconds: f64) -> Limits {
        let offered = rate * seconds;
        let per_second = |f: f64| Rate {
            limit: (rate * f).round().max(1.0) as u64,
            window: 1,
        };
        let daily = |f: f64| Quota {
            limit: (offered * f).round().max(1.0) as u64,
            period: Period::Day,
        };
        match self {
            LimitCase::None => Limits::default(),
            LimitCase::QuotaFar => Limits {
                quota: Some(daily(100.0)),
                rate: None,
            },
            LimitCase::QuotaNear => Limits {
                quota: Some(daily(0.2)),
                rate: None,
            },
            LimitCase::QuotaFlood => Limits {
                quota: Some(daily(0.01)),
                rate: None,
            },
            LimitCase::RateFlood => Limits {
                quota: None,
                rate: Some(per_second(0.01)),
            },
            LimitCase::RateFar => Limits {
                quota: None,
                rate: Some(per_second(10.0)),
            },
            LimitCase::RateNear => Limits {
                quota: None,
                rate: Some(per_second(0.8)),
            },
        }
    }

    /// The far cases start just before a UTC midnight, so the day's usage
    /// counters and quota period roll over mid-run.
    fn start(self) -> Timestamp {
        match self {
            LimitCase::None | LimitCase::QuotaFar | LimitCase::RateFar => BEFORE_MIDNIGHT,
            LimitCase::QuotaNear
            | LimitCase::QuotaFlood
            | LimitCase::RateNear
            | LimitCase::RateFlood => NOON,
        }
    }
}

/// One scenario: `rate` decisions/s for `seconds`, shaped and limited.
pub fn scenario(rate: f64, seconds: f64, shape: Shape, case: LimitCase) -> Scenario {
    let shape_name = match shape {
        Shape::Steady => "steady",
        Shape::Burst => "burst",
    };
    Scenario {
        name: format!("{}/s {shape_name}, {}", rate as u64, case.name()),
        rate,
        seconds,
        shape,
        limits: case.limits(rate, seconds),
        keys: 1,
        plan: None,
        spent: match case {
            LimitCase::QuotaFlood => case.limits(rate, seconds).quota.map_or(0, |q| q.limit),
            _ => 0,
        },
        start: case.start(),
        max_containers: 1000,
        seed: rate as u64 ^ (seconds * 1000.0) as u64,
    }
}

/// Ten keys of one owner on a plan, `rate` decisions/s in all: a rate of
/// 80% of the offered rate per second and a daily quota of half the run's
/// offered decisions, so both limits are reached (issue 17).
pub fn shared_plan(rate: f64, seconds: f64) -> Scenario {
    let mut s = scenario(rate, seconds, Shape::Steady, LimitCase::None);
    s.name = format!("{}/s steady, plan of 10 keys", rate as u64);
    s.keys = 10;
    s.plan = Some(keygate::plans::PlanLimits {
        rate: Some(Rate {
            limit: (rate * 0.8).round() as u64,
            window: 1,
        }),
        daily: Some((rate * seconds * 0.5).round() as u64),
        monthly: None,
    });
    s.start = NOON;
    s
}

/// Ten keys of one owner on a plan whose only limit, a monthly quota, is
/// far away: the steady state of a plan, one write per decision once the
/// plan allowance has grown.
pub fn shared_plan_far(rate: f64, seconds: f64) -> Scenario {
    let mut s = shared_plan(rate, seconds);
    s.name = format!("{}/s steady, plan of 10 keys, quota far", rate as u64);
    s.plan = Some(keygate::plans::PlanLimits {
        rate: None,
        daily: None,
        monthly: Some(1_000_000_000),
    });
    s
}

/// The limits a scenario's decisions are judged against: the plan's (its
/// rate and daily quota) when the owner is on one, else the key's.
pub fn judged_limits(s: &Scenario) -> Limits {
    match s.plan {
        Some(plan) => Limits {
            quota: plan.daily.map(|limit| Quota {
                limit,
                period: Period::Day,
            }),
            rate: plan.rate,
        },
        None => s.limits,
    }
}

/// The benchmark: 1k, 10k and 50k decisions/s for one key, `seconds` each.
pub fn bench(seconds: f64) -> Vec<Scenario> {
    let mut out = Vec::new();
    for rate in [1_000.0, 10_000.0, 50_000.0] {
        for case in [
            LimitCase::None,
            LimitCase::QuotaFar,
            LimitCase::QuotaNear,
            LimitCase::QuotaFlood,
            LimitCase::RateFar,
            LimitCase::RateNear,
            LimitCase::RateFlood,
        ] {
            out.push(scenario(rate, seconds, Shape::Steady, case));
        }
        for case in [LimitCase::None, LimitCase::QuotaNear] {
            out.push(scenario(rate, seconds, Shape::Burst, case));
        }
    }
    out.push(shared_plan(10_000.0, seconds));
    out.push(shared_plan_far(10_000.0, seconds));
    out
}
