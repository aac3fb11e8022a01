//! Load run of the authorizer against the local emulator, beside the
//! emulator's raw conditional-write throughput measured the same way in the
//! same run. Prints one JSON object (read by `infra/bench/report.py`).
//!
//! Two raw baselines, each `SECONDS` at the same concurrency:
//! - the simplest conditional write (one `ADD`, one comparison), the
//!   issue's "raw conditional write";
//! - the authorizer's own write (same expression, same usage marks, on a
//!   twin key's allowance) sent straight through the store, without the
//!   authorizer around it: the ratio to this one is what the authorizer
//!   itself costs; the gap between the two baselines is what the emulator
//!   charges for a longer expression (DynamoDB charges by item size).
//!
//! Usage (under `infra/local/with-emulator`): bench-load [SECONDS] [CONCURRENCY]

use std::sync::Arc;
use std::time::{Duration, Instant};

use authorizer::response::V2Response;
use authorizer::{Handler, Settings};
use aws_sdk_dynamodb::types::AttributeValue;
use keygate::authorize::{AuthConfig, Authorizer};
use keygate::clock::SystemClock;
use keygate::issue::{mint, KeySpec};
use keygate::key::{KeyEnv, KeyFormat};
use keygate::limits::day_string;
use keygate::limits::{Limits, Period, Quota, Rate};
use keygate::scope::Scope;
use keygate::store::admission::{explain, Explained};
use keygate::store::{Admission, AdmitOutcome, AdmitPlan, CounterHints, KeyAdmin, UsageMark};
use keygate_tests::events::{event, Payload};
use keygate_tests::fresh_store;
use serde_json::json;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let run_for = Duration::from_secs(seconds);

    let store = fresh_store().await;
    let format = KeyFormat::new("ak", KeyEnv::Live).unwrap();
    let mut spec = KeySpec::new("acme", "load", vec![Scope::parse("GET /orders/*").unwrap()]);
    spec.limits = Limits {
        quota: Some(Quota {
            limit: 1_000_000_000,
            period: Period::Month,
        }),
        rate: Some(Rate {
            limit: 1_000_000,
            window: 60,
        }),
    };
    let now = keygate::clock::Clock::now(&SystemClock);
    let (key, record) = mint(&format, spec.clone(), now);
    let (twin_key, twin) = mint(&format, spec, now);
    for (k, r) in [(&key, &record), (&twin_key, &twin)] {
        keygate_tests::logs::remember(k);
        store
            .create_key(
                r,
                &keygate_tests::audit(r, keygate::store::AuditAction::Issued),
            )
            .await
            .unwrap();
    }

    // Authorizer decisions: each worker is one warm container.
    let ev = Arc::new(event(Payload::HttpV2Simple, Some(key.expose())));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let handler = Handler::new(
            Authorizer::new(
                store.clone(),
                SystemClock,
                format.clone(),
                AuthConfig::default(),
            ),
            Settings {
                v2_response: V2Response::Simple,
                deadline: Duration::from_secs(10),
            },
            "ak",
        );
        let ev = ev.clone();
        workers.push(tokio::spawn(async move {
            handler.handle((*ev).clone(), "warm").await.unwrap();
            let (mut lat, mut requests, mut allowed) = (Vec::new(), 0u64, 0u64);
            let start = Instant::now();
            while start.elapsed() < run_for {
                let t = Instant::now();
                let h = handler.handle((*ev).clone(), "load").await.unwrap();
                lat.push(t.elapsed().as_micros() as u64);
                requests += u64::from(h.requests.unwrap_or(0));
                allowed += u64::from(h.allowed);
            }
            (lat, requests, allowed)
        }));
    }
    let (mut lat, mut requests, mut allowed) = (Vec::new(), 0, 0);
    for w in workers {
        let (l, r, a) = w.await.unwrap();
        lat.extend(l);
        requests += r;
        allowed += a;
    }
    lat.sort_unstable();
    let decisions = lat.len() as u64;

    // Raw conditional writes against the same emulator, same concurrency.
    let client = store.client().clone();
    let table = store.table().to_owned();
    let mut raw = Vec::new();
    for _ in 0..concurrency {
        let (client, table) = (client.clone(), table.clone());
        raw.push(tokio::spawn(async move {
            let (mut n, start) = (0u64, Instant::now());
            while start.elapsed() < run_for {
                client
                    .update_item()
                    .table_name(&table)
                    .key("pk", AttributeValue::S("RAW#bench".into()))
                    .key("sk", AttributeValue::S("RAW".into()))
                    .update_expression("ADD #u :one")
                    .condition_expression("attribute_not_exists(#u) OR #u < :lim")
                    .expression_attribute_names("#u", "used")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":lim", AttributeValue::N("1000000000".into()))
                    .send()
                    .await
                    .unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut raw_writes = 0;
    for r in raw {
        raw_writes += r.await.unwrap();
    }
    let same_writes = same_write_run(&store, &record, &twin, concurrency, run_for).await;

    let secs = run_for.as_secs_f64();
    let dps = decisions as f64 / secs;
    let wps = raw_writes as f64 / secs;
    let same_wps = same_writes as f64 / secs;
    println!(
        "{}",
        json!({
            "seconds": seconds,
            "concurrency": concurrency,
            "decisions": decisions,
            "allowed": allowed,
            "decisions_per_second": dps,
            "p50_us": percentile(&lat, 0.50),
            "p99_us": percentile(&lat, 0.99),
            "ddb_requests_per_decision": requests as f64 / decisions.max(1) as f64,
            "raw_conditional_writes_per_second": wps,
            "ratio_to_raw": dps / wps.max(1.0),
            "same_write_per_second": same_wps,
            "ratio_to_same_write": dps / same_wps.max(1.0),
        })
    );
}

/// The authorizer's conditional write for `twin`, with the usage marks the
/// load left on `record`'s allowance (its route label and source address),
/// sent through the store by `concurrency` workers for `run_for`. Each
/// worker keeps the counter positions the last write returned, as a warm
/// authorizer container does. Returns the number of admitted writes.
async fn same_write_run(
    store: &keygate::store::DynamoStore,
    record: &keygate::model::KeyRecord,
    twin: &keygate::model::KeyRecord,
    concurrency: usize,
    run_for: Duration,
) -> u64 {
    let day = day_string(keygate::clock::Clock::now(&SystemClock));
    let loaded = keygate_tests::allowance_item(store, record).await;
    let marks = format!("u#{day}#{}#", record.key_id.as_str());
    let route = loaded
        .keys()
        .find_map(|n| n.strip_prefix(&marks)?.strip_prefix("r#"))
        .expect("the load counted its route")
        .to_owned();
    let source_ip = loaded
        .iter()
        .find(|(n, _)| n.strip_prefix(&marks).is_some_and(|m| m.starts_with("ip")))
        .and_then(|(_, v)| v.as_s().ok().cloned())
        .expect("the load kept its source address");
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (store, twin) = (store.clone(), twin.clone());
        let usage = UsageMark {
            day: day.clone(),
            route: Some(route.clone()),
            source_ip: Some(source_ip.clone()),
            keep_from: None,
        };
        workers.push(tokio::spawn(async move {
            let now = keygate::clock::Clock::now(&SystemClock);
            let mut hints = CounterHints::guess(&twin.limits, now);
            let (mut admitted, start) = (0u64, Instant::now());
            while start.elapsed() < run_for {
                let now = keygate::clock::Clock::now(&SystemClock);
                let plan = AdmitPlan::new(
                    keygate::store::Target::Single,
                    &twin.allowance_id,
                    &twin.key_id,
                    twin.version,
                    &twin.limits,
                    &hints,
                    now,
                    usage.clone(),
                );
                match store.admit(&plan).await.unwrap() {
                    AdmitOutcome::Admitted(granted) => {
                        hints = granted.hints;
                        admitted += 1;
                    }
                    // Another worker moved a counter into a new window
                    // first: continue from where the item says, as the
                    // authorizer does.
                    AdmitOutcome::Rejected(old) => match explain(&plan, old.as_ref(), now) {
                        Explained::Retry(seen) => hints = seen,
                        other => panic!("the twin key's write was refused: {other:?}"),
                    },
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for w in workers {
        admitted += w.await.unwrap();
    }
    admitted
}
