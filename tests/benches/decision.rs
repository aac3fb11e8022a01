//! In-process decision time, excluding DynamoDB: the full handler (event
//! parsing, key parsing and checksum, SHA-256, cache, scope and IP checks,
//! planning the conditional write, the response and the log line) over a
//! store that answers instantly. Target: median under 20 µs.

use std::time::Duration;

use authorizer::response::V2Response;
use authorizer::{Handler, Settings};
use criterion::{criterion_group, criterion_main, Criterion};
use keygate::authorize::{AuthConfig, Authorizer};
use keygate::clock::SystemClock;
use keygate::issue::{mint, KeySpec};
use keygate::key::{KeyEnv, KeyFormat};
use keygate::limits::{Limits, Period, Quota, Rate};
use keygate::scope::Scope;
use keygate_tests::events::{event, Payload};
use keygate_tests::instant::InstantStore;

fn decision(c: &mut Criterion) {
    // Log exactly as in production (one JSON line per decision), into a sink.
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::sink)
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let format = KeyFormat::new("ak", KeyEnv::Live).unwrap();
    let mut spec = KeySpec::new(
        "acme",
        "bench",
        vec![Scope::parse("GET /orders/*").unwrap()],
    );
    spec.limits = Limits {
        quota: Some(Quota {
            limit: 1_000_000,
            period: Period::Month,
        }),
        rate: Some(Rate {
            limit: 1000,
            window: 1,
        }),
    };
    spec.allowed_cidrs = vec!["203.0.113.0/24".parse().unwrap()];
    let (key, record) = mint(&format, spec, 0);
    let settings = Settings {
        v2_response: V2Response::Simple,
        deadline: Duration::from_secs(1),
    };
    let handler = Handler::new(
        Authorizer::new(
            InstantStore { record },
            SystemClock,
            format.clone(),
            AuthConfig::default(),
        ),
        settings,
        "ak",
    );
    for payload in [
        Payload::HttpV2Simple,
        Payload::RestRequest,
        Payload::RestToken,
    ] {
        let ev = event(payload, Some(key.expose()));
        rt.block_on(handler.handle(ev.clone(), "warm")).unwrap();
        c.bench_function(&format!("decision/{payload:?}"), |b| {
            b.to_async(&rt).iter(|| handler.handle(ev.clone(), "bench"))
        });
    }
    let bad = event(
        Payload::HttpV2Simple,
        Some(&format!("{}x", &key.expose()[..key.expose().len() - 1])),
    );
    c.bench_function("decision/malformed", |b| {
        b.to_async(&rt)
            .iter(|| handler.handle(bad.clone(), "bench"))
    });
}

criterion_group!(benches, decision);
criterion_main!(benches);
