//! Usage-report benchmark against the local emulator (run by `make bench`
//! under `infra/local/with-emulator`): one owner with N keys (default
//! 1,000), 29 archived days of usage for each plus today's live counters
//! written by the real authorizer; then the 30-day billing totals, one key's
//! 30-day series and the daily report job, each timed, with the DynamoDB
//! requests it took. Prints JSON.
//!
//!   bench-usage [keys]

use std::time::Instant;

use keygate::clock::{Clock, ManualClock};
use keygate::issue::{mint, KeySpec};
use keygate::key::{KeyEnv, KeyFormat};
use keygate::manage::Caller;
use keygate::scope::Scope;
use keygate::store::{AuditAction, KeyAdmin, UsageStore};
use keygate::usage::report::Thresholds;
use keygate::usage::service::{Range, UsageService};
use keygate::usage::{Day, DayUsage, KeyDay};
use keygate_tests::counting::counted;
use keygate_tests::events::{event, Payload};
use keygate_tests::{audit, fresh_store, v2_handler};
use serde_json::json;

/// 2026-11-29T12:00:00Z.
const NOON: i64 = 1_795_953_600;
const DAYS: i64 = 30;

fn day_usage(i: usize, d: i64) -> DayUsage {
    let n = 10 + ((i as u64 * 7 + d as u64 * 13) % 90);
    DayUsage {
        allowed: n,
        denied: [("quota_exceeded".to_owned(), n / 10)].into(),
        routes: [
            ("GET /orders/{id}".to_owned(), n / 2),
            ("GET /orders".to_owned(), n - n / 2),
        ]
        .into(),
        ips: [format!("198.51.100.{}", i % 250)].into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let store = fresh_store().await;
    let clock = ManualClock::at(NOON);
    let format = KeyFormat::new("ak", KeyEnv::Test)?;
    let today = Day::of(NOON);
    let seeding = Instant::now();
    let mut issued = Vec::with_capacity(keys);
    for i in 0..keys {
        let spec = KeySpec::new(
            "bench",
            format!("key {i}"),
            vec![Scope::parse("GET /orders/*")?],
        );
        let (key, record) = mint(&format, spec, NOON - 40 * 86_400);
        store
            .create_key(&record, &audit(&record, AuditAction::Issued))
            .await?;
        issued.push((key, record));
    }
    let history: Vec<KeyDay> = issued
        .iter()
        .enumerate()
        .flat_map(|(i, (_, r))| {
            (1..DAYS).map(move |d| KeyDay {
                key_id: r.key_id.as_str().to_owned(),
                day: today.plus(-d).to_string(),
                usage: day_usage(i, d),
            })
        })
        .collect();
    store.archive("bench", &history, NOON).await?;
    // Today's counters, live on the allowances, written by the authorizer.
    let handler = v2_handler(store.clone(), clock.clone(), format.clone());
    for (key, _) in &issued {
        let handled = handler
            .handle(event(Payload::HttpV2Simple, Some(key.expose())), "bench")
            .await?;
        assert!(handled.allowed, "seeding decision denied");
    }
    let seed_seconds = seeding.elapsed().as_secs_f64();

    let (counting, requests) = counted(&store);
    let usage = UsageService::new(counting, clock.clone(), Thresholds::default());
    let operator = Caller::operator("bench");
    let range = Range {
        from: today.plus(-(DAYS - 1)),
        to: today,
    };
    let started = Instant::now();
    let totals = usage.owner_totals(&operator, Some("bench"), range).await?;
    let totals_ms = started.elapsed().as_secs_f64() * 1000.0;
    let totals_requests = requests.take();
    assert_eq!(totals.keys.len(), keys);
    let expected: u64 = (0..keys)
        .map(|i| 1 + (1..DAYS).map(|d| day_usage(i, d).allowed).sum::<u64>())
        .sum();
    assert_eq!(
        totals.totals.allowed, expected,
        "totals disagree with the seed"
    );

    let one = issued[0].1.key_id.as_str().to_owned();
    let started = Instant::now();
    let series = usage.key_series(&operator, &one, range).await?;
    let series_ms = started.elapsed().as_secs_f64() * 1000.0;
    let series_requests = requests.take();
    assert_eq!(series.days.len(), DAYS as usize);

    clock.set(NOON + 12 * 3600 + 900);
    let started = Instant::now();
    let summary = usage.daily(None).await?;
    let daily_ms = started.elapsed().as_secs_f64() * 1000.0;
    let daily_requests = requests.take();
    assert_eq!(summary.reports, 1);
    let stored = usage.store().report("bench", &today.to_string()).await?;
    let _ = requests.take();
    let report = stored.ok_or("no report stored")?;
    assert_eq!(report.allowed, keys as u64);

    println!(
        "{}",
        json!({
            "keys": keys,
            "days": DAYS,
            "history_items": history.len(),
            "seed_seconds": seed_seconds,
            "totals_ms": totals_ms,
            "totals_requests": totals_requests,
            "series_ms": series_ms,
            "series_requests": series_requests,
            "daily_ms": daily_ms,
            "daily_requests": daily_requests,
            "daily_archived_days": summary.archived_days,
            "clock_now": clock.now(),
        })
    );
    Ok(())
}
