//! The authorizer's CloudWatch metrics: Embedded Metric Format documents
//! that count decisions by outcome and denials by reason. Its own test
//! binary, because the metrics recorder is global to a process.

use keygate::clock::{Clock, ManualClock};
use keygate::issue::{mint, KeySpec};
use keygate::key::{KeyEnv, KeyFormat};
use keygate::limits::{Limits, Period, Quota};
use keygate::scope::Scope;
use keygate::store::{AuditAction, KeyAdmin};
use keygate_tests::events::{event, Payload};
use keygate_tests::{fresh_store, logs, v2_handler};
use serde_json::Value;

#[tokio::test]
async fn decisions_are_published_as_embedded_metrics() {
    let emf = authorizer::metrics::init("keygate-test").expect("first recorder");
    let store = fresh_store().await;
    let clock = ManualClock::at(1_795_953_600);
    let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
    let mut spec = KeySpec::new(
        "acme",
        "metrics",
        vec![Scope::parse("GET /orders/*").unwrap()],
    );
    spec.limits = Limits {
        quota: Some(Quota {
            limit: 2,
            period: Period::Day,
        }),
        rate: None,
    };
    let (key, record) = mint(&format, spec, clock.now());
    logs::remember(&key);
    store
        .create_key(&record, &keygate_tests::audit(&record, AuditAction::Issued))
        .await
        .unwrap();
    let handler = v2_handler(store, clock, format);
    // 2 allowed, 1 over quota, 1 malformed.
    for ev in [
        event(Payload::HttpV2Simple, Some(key.expose())),
        event(Payload::HttpV2Simple, Some(key.expose())),
        event(Payload::HttpV2Simple, Some(key.expose())),
        event(Payload::HttpV2Simple, Some("ak_test_nope")),
    ] {
        handler.handle(ev, "req-metrics").await.unwrap();
    }
    let mut out = Vec::new();
    emf.flush(&mut out).unwrap();
    let docs: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
        .collect();
    // Find the value of `metric` in the document whose dimension is `dim=value`.
    let value = |metric: &str, dim: &str, val: &str| -> Option<f64> {
        docs.iter()
            .find(|d| {
                let decl = &d["_aws"]["CloudWatchMetrics"][0];
                decl["Namespace"] == "keygate-test"
                    && decl["Dimensions"][0]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == dim))
                    && decl["Metrics"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|x| x["Name"] == metric))
                    && d[dim] == val
            })
            .and_then(|d| d[metric].as_f64())
    };
    assert_eq!(
        value("Decisions", "Outcome", "allow"),
        Some(2.0),
        "{docs:?}"
    );
    assert_eq!(value("Decisions", "Outcome", "deny"), Some(2.0), "{docs:?}");
    assert_eq!(value("Denials", "Reason", "quota_exceeded"), Some(1.0));
    assert_eq!(value("Denials", "Reason", "malformed"), Some(1.0));
    assert!(docs.iter().all(|d| d["_aws"]["Timestamp"].is_number()));
    // Nothing key-shaped in the metrics.
    assert!(!docs.iter().any(|d| d.to_string().contains(key.expose())));
}
