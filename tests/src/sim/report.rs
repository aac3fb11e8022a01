//! The figures of one run, from its ground truth: every decision's time and
//! answer (the harness knows them all) and what the model counted.
//!
//! - **over-admitted**: allowed decisions beyond the quota in any quota
//!   period, plus beyond the rate limit in any rate window, by the clock
//!   second the authorizer decided in. Must be 0.
//! - **ideal**: what an exact limiter with no capacity limit would allow
//!   of the same requests (in arrival order, one at a time against both
//!   limits); **under-admitted** is ideal minus allowed, of which **denied
//!   by error** are the fail-closed answers (throttling, timeouts) and
//!   **rejected at the cap** the requests no container was free for.
//! - costs per decision from the model's record (every request, retries
//!   included), write units per allowed decision, and latency percentiles
//!   from arrival to answer.

use std::collections::HashMap;

use keygate::clock::Timestamp;
use keygate::limits::Limits;

use super::load::{Outcome, Run, Scenario, AT_CAP};

/// One scenario's row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Figures {
    /// Requests offered (decided or refused at the container cap).
    pub decisions: u64,
    pub allowed: u64,
    pub ideal_allowed: u64,
    pub over_admitted: u64,
    pub under_admitted: u64,
    /// Decisions answered `error` (the authorizer failed closed).
    pub denied_by_error: u64,
    /// Requests refused with every container busy at the cap (no decision).
    pub rejected_at_cap: u64,
    /// Decisions denied `quota_exceeded` or `rate_limited`.
    pub limit_denials: u64,
    /// Requests DynamoDB refused for throughput (SDK retries included).
    pub throttles: u64,
    pub requests: u64,
    /// Per decision made (requests refused at the container cap excluded),
    /// as are the units per decision and the latencies.
    pub requests_per_decision: f64,
    pub write_units_per_allowed: f64,
    pub write_units_per_decision: f64,
    pub read_units_per_decision: f64,
    /// Mean DynamoDB requests (as the authorizer counts them) of a decision
    /// denied by a limit: what a client over its limit costs per retry.
    pub requests_per_limit_denial: Option<f64>,
    /// Allowed decisions per virtual second, over the run.
    pub allowed_per_second: f64,
    /// The same over the run's second half (after growth, for a key that
    /// grew), and the write units per allowed decision there: the steady
    /// state.
    pub allowed_per_second_late: f64,
    pub write_units_per_allowed_late: f64,
    /// Bytes of the largest item any write left.
    pub largest_item_bytes: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub containers: usize,
}

/// Quota used before a run: `(start of the quota period, amount used)`.
pub type Spent = Option<(Timestamp, u64)>;

/// What `scenario` had used of its quota before the run started.
pub fn spent_before(scenario: &Scenario) -> Spent {
    let q = scenario.limits.quota?;
    (scenario.spent > 0).then(|| (q.period.window(scenario.start).start, scenario.spent))
}

/// Allowed beyond each limit, in any period or window (with what was
/// `spent` before the run counted in its period).
pub fn over_admitted(limits: &Limits, spent: Spent, outcomes: &[Outcome]) -> u64 {
    let mut over = 0;
    if let Some(q) = limits.quota {
        over += excess(outcomes, q.limit, spent, |now| q.period.window(now).start);
    }
    if let Some(r) = limits.rate {
        over += excess(outcomes, r.limit, None, |now| r.window_at(now).start);
    }
    over
}

fn excess(
    outcomes: &[Outcome],
    limit: u64,
    spent: Spent,
    window: impl Fn(Timestamp) -> Timestamp,
) -> u64 {
    let mut per: HashMap<Timestamp, u64> = spent.into_iter().collect();
    for o in outcomes.iter().filter(|o| o.allowed) {
        *per.entry(window(o.now)).or_default() += 1;
    }
    per.values().map(|n| n.saturating_sub(limit)).sum()
}

/// What an exact limiter would allow of these requests, in arrival order.
pub fn ideal_allowed(limits: &Limits, spent: Spent, outcomes: &[Outcome]) -> u64 {
    let mut quota: HashMap<Timestamp, u64> = spent.into_iter().collect();
    let mut rate: HashMap<Timestamp, u64> = HashMap::new();
    let mut allowed = 0;
    for o in outcomes {
        let q = limits
            .quota
            .map(|q| (q.period.window(o.now).start, q.limit));
        let r = limits.rate.map(|r| (r.window_at(o.now).start, r.limit));
        let room = |counts: &HashMap<Timestamp, u64>, slot: Option<(Timestamp, u64)>| {
            slot.is_none_or(|(w, limit)| counts.get(&w).copied().unwrap_or(0) < limit)
        };
        if room(&quota, q) && room(&rate, r) {
            allowed += 1;
            if let Some((w, _)) = q {
                *quota.entry(w).or_default() += 1;
            }
            if let Some((w, _)) = r {
                *rate.entry(w).or_default() += 1;
            }
        }
    }
    allowed
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn per(total: f64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        total / n as f64
    }
}

/// The figures of `run`, a run of `scenario`.
pub fn figures(scenario: &Scenario, run: &Run) -> Figures {
    let o = &run.outcomes;
    let decisions = o.len() as u64;
    let allowed = o.iter().filter(|x| x.allowed).count() as u64;
    let spent = spent_before(scenario);
    let limits = super::scenarios::judged_limits(scenario);
    let ideal = ideal_allowed(&limits, spent, o);
    let limit_denied: Vec<&Outcome> = o
        .iter()
        .filter(|x| matches!(x.reason, Some("quota_exceeded" | "rate_limited")))
        .collect();
    let total = run.stats.total();
    let late_allowed = o
        .iter()
        .filter(|x| x.allowed && x.arrived >= scenario.seconds / 2.0)
        .count() as u64;
    let made: Vec<&Outcome> = o.iter().filter(|x| x.reason != Some(AT_CAP)).collect();
    let decided = made.len() as u64;
    let mut latencies: Vec<f64> = made.iter().map(|x| x.latency * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    Figures {
        decisions,
        allowed,
        ideal_allowed: ideal,
        over_admitted: over_admitted(&limits, spent, o),
        under_admitted: ideal.saturating_sub(allowed),
        denied_by_error: o.iter().filter(|x| x.reason == Some("error")).count() as u64,
        rejected_at_cap: decisions - decided,
        limit_denials: limit_denied.len() as u64,
        throttles: total.throttled,
        requests: total.requests,
        requests_per_decision: per(total.requests as f64, decided),
        write_units_per_allowed: per(total.write_units, allowed),
        write_units_per_decision: per(total.write_units, decided),
        read_units_per_decision: per(total.read_units, decided),
        requests_per_limit_denial: (!limit_denied.is_empty()).then(|| {
            per(
                limit_denied.iter().map(|x| f64::from(x.requests)).sum(),
                limit_denied.len() as u64,
            )
        }),
        allowed_per_second: allowed as f64 / scenario.seconds.max(1e-9),
        allowed_per_second_late: late_allowed as f64 / (scenario.seconds / 2.0).max(1e-9),
        write_units_per_allowed_late: per(
            total.write_units - run.half.total().write_units,
            late_allowed,
        ),
        largest_item_bytes: run.stats.largest_item,
        latency_p50_ms: percentile(&latencies, 0.50),
        latency_p99_ms: percentile(&latencies, 0.99),
        containers: run.containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate::limits::{Period, Quota, Rate};

    fn at(now: Timestamp, allowed: bool) -> Outcome {
        Outcome {
            arrived: 0.0,
            now,
            latency: 0.0,
            allowed,
            reason: None,
            requests: 1,
        }
    }

    #[test]
    fn over_and_ideal_count_per_window() {
        let limits = Limits {
            quota: Some(Quota {
                limit: 3,
                period: Period::Day,
            }),
            rate: Some(Rate {
                limit: 2,
                window: 1,
            }),
        };
        let day = 1_796_083_200; // a UTC midnight
        let o = vec![
            at(day - 1, true),
            at(day - 1, true),
            at(day - 1, true), // third in one second: over the rate
            at(day, true),
            at(day, false),
            at(day + 1, true),
            at(day + 2, true),
            at(day + 3, true), // fourth of the day: over the quota
        ];
        assert_eq!(over_admitted(&limits, None, &o), 2);
        // 2 before midnight; 2 at day, 1 at day+1 (quota 3 reached).
        assert_eq!(ideal_allowed(&limits, None, &o), 5);
        // With 2 of the first day's quota used before: one more that day
        // (over: 2 that day, 1 in the rate's second, 1 the next day).
        let spent = Some((day - 86_400, 2));
        assert_eq!(over_admitted(&limits, spent, &o), 4);
        assert_eq!(ideal_allowed(&limits, spent, &o), 4);
    }
}
