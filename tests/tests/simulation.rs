//! The simulation at full scale, short (issue 14; `bench-sim` runs the whole
//! table): the real authorizer over the in-process DynamoDB model, in
//! virtual time, never over-admits, and its figures add up. Also: the
//! model evaluates the product's own expressions as DynamoDB does.
//!
//! Scale: debug builds run about 1,000 decisions per wall second here, so
//! the 10,000/s case runs one virtual second; `bench-sim` runs 5.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use keygate::id::KeyId;
use keygate::limits::{Limits, Period, Quota, Rate};
use keygate::store::admission::{AdmitPlan, CounterHints, QuotaPos, RatePos};
use keygate::store::{items, UsageMark};
use keygate::table::TableSpec;
use keygate_tests::sim::load::{arrivals, Run, COLD_START};
use keygate_tests::sim::model::Model;
use keygate_tests::sim::scenarios::{scenario, shared_plan, LimitCase, NOON};
use keygate_tests::sim::{simulate, wire, Figures, Scenario, Shape};
use serde_json::{json, Value};

/// DynamoDB requests one decision can make at most: the authorizer's own
/// bound (an eventually consistent and a consistent read of the key, 4
/// admission attempts, one pruning write, one denial count: 8), each sent
/// at most twice (the authorizer's SDK retry setting, `max_attempts` 2).
const MAX_REQUESTS_PER_DECISION: f64 = 16.0;

fn check(scenario: &Scenario, run: &Run, f: &Figures) {
    let name = &scenario.name;
    assert_eq!(f.over_admitted, 0, "{name}: over-admitted");
    assert_eq!(
        f.decisions as usize,
        arrivals(scenario).len(),
        "{name}: every request decided"
    );
    assert_eq!(
        f.allowed + f.limit_denials + f.denied_by_error + f.rejected_at_cap,
        f.decisions,
        "{name}: a valid key is only ever allowed, limited, failed closed or not run"
    );
    assert!(f.allowed <= f.ideal_allowed, "{name}: {f:?}");
    assert_eq!(f.under_admitted, f.ideal_allowed - f.allowed, "{name}");
    let counted: u64 = run.outcomes.iter().map(|o| u64::from(o.requests)).sum();
    assert!(
        f.requests >= counted,
        "{name}: the model saw {} requests, the authorizer counted {counted}",
        f.requests
    );
    assert!(
        f.requests_per_decision <= MAX_REQUESTS_PER_DECISION,
        "{name}: {f:?}"
    );
    assert!(f.largest_item_bytes < 400 * 1024, "{name}: {f:?}");
    assert!(f.containers <= scenario.max_containers, "{name}: {f:?}");
    // The handler's deadline bounds a decision and a new container adds its start.
    assert!(
        f.latency_p99_ms <= 1500.0 + COLD_START.as_secs_f64() * 1000.0 + 1.0,
        "{name}: {f:?}"
    );
    assert!(
        f.latency_p50_ms >= 1.0,
        "{name}: latency is simulated: {f:?}"
    );
}

#[test]
fn a_quiet_key_costs_one_request_per_decision_and_is_never_throttled() {
    let s = scenario(100.0, 2.0, Shape::Steady, LimitCase::QuotaFar);
    let (run, f) = simulate(&s);
    check(&s, &run, &f);
    assert_eq!(f.allowed, 200, "{f:?}");
    assert_eq!((f.throttles, f.under_admitted), (0, 0), "{f:?}");
    // One conditional write each once warm: every decision of the second
    // half costs exactly one request.
    let late: Vec<u32> = run
        .outcomes
        .iter()
        .filter(|o| o.arrived >= s.seconds / 2.0)
        .map(|o| o.requests)
        .collect();
    assert!(!late.is_empty() && late.iter().all(|r| *r == 1), "{late:?}");
    // Warming up: each container's first reads (the key record and its
    // owner's plan stamp), exactly two each on an idle machine. Under the
    // whole suite's load the paused test clock can move on while a request
    // sits on the loopback socket: one run counted 9 requests more in 200
    // decisions.
    let extra = f.requests - f.decisions;
    assert!(
        extra >= 2 * f.containers as u64 && extra <= 6 * f.containers as u64,
        "{f:?}"
    );
}

#[test]
fn one_hot_key_at_1k_per_second_never_over_admits_its_quota() {
    let s = scenario(1_000.0, 2.0, Shape::Steady, LimitCase::QuotaNear);
    let (run, f) = simulate(&s);
    check(&s, &run, &f);
    // A quota of 400: spent within the run, then a flood of denials.
    assert!(f.allowed > 0 && f.limit_denials > 0, "{f:?}");
}

#[test]
fn one_hot_key_bursting_to_10k_per_second_never_over_admits_its_rate() {
    let s = scenario(10_000.0, 1.5, Shape::Burst, LimitCase::RateNear);
    let (run, f) = simulate(&s);
    check(&s, &run, &f);
    assert!(f.allowed > 0, "{f:?}");
}

/// Per-second windows at 0.8 of a steady 1,000/s: decisions that wait
/// past a window's end (throttle pauses while the key goes hot) must spend
/// from the window they end in.
#[test]
fn one_hot_key_at_1k_per_second_over_its_rate_never_over_admits() {
    let s = scenario(1_000.0, 3.0, Shape::Steady, LimitCase::RateNear);
    let (run, f) = simulate(&s);
    check(&s, &run, &f);
    assert!(f.allowed > 0, "{f:?}");
}

fn s(v: &str) -> Value {
    json!({ "S": v })
}

fn n(v: i64) -> Value {
    json!({ "N": v.to_string() })
}

fn wire_map(m: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(wire::item(m))
}

/// Send the authorizer's admission for `plan` to the model, as the store does.
fn admit(model: &mut Model, plan: &AdmitPlan, return_values: &str) -> Result<Value, Value> {
    let e = plan.expression();
    let body = json!({
        "TableName": "t",
        "Key": {"pk": s(&items::allowance_pk(&plan.allowance_id)), "sk": s(items::ALLOWANCE_SK)},
        "UpdateExpression": e.update,
        "ConditionExpression": e.condition,
        "ExpressionAttributeNames": e.names,
        "ExpressionAttributeValues": wire_map(&e.values),
        "ReturnValues": return_values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    });
    model
        .handle("UpdateItem", &body, std::time::Instant::now())
        .map_err(|e| e.to_json())
}

#[test]
fn the_model_evaluates_the_authorizers_admission_as_dynamodb_does() {
    let spec = TableSpec::from_embedded_template().unwrap();
    let mut model = Model::new("t", spec, 1.0);
    let kid = KeyId::generate();
    let limits = Limits {
        quota: Some(Quota {
            limit: 2,
            period: Period::Day,
        }),
        rate: Some(Rate {
            limit: 5,
            window: 60,
        }),
    };
    let now = NOON + 30;
    let pk = items::allowance_pk("a1");
    let put = json!({
        "TableName": "t",
        "Item": {
            "pk": s(&pk), "sk": s(items::ALLOWANCE_SK),
            "kv": {"M": {kid.as_str(): n(3)}},
            "ql": n(2), "qt": s("day"), "rl": n(5), "rw": n(60),
        },
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": {"#pk": "pk"},
    });
    model
        .handle("PutItem", &put, std::time::Instant::now())
        .unwrap();
    let usage = UsageMark {
        day: keygate::limits::day_string(now),
        route: Some("GET /v1/r01".into()),
        source_ip: Some("198.51.100.7".into()),
        keep_from: None,
    };
    let plan = |version: u64, hints: &CounterHints| {
        AdmitPlan::new(
            keygate::store::Target::Single,
            "a1",
            &kid,
            version,
            &limits,
            hints,
            now,
            usage.clone(),
        )
    };

    // Nothing seen yet: the guess resets the rate window and continues the
    // quota period, which has never started: the condition fails and the
    // old image explains it.
    let guess = CounterHints::guess(&limits, now);
    let failed = admit(&mut model, &plan(3, &guess), "UPDATED_NEW").unwrap_err();
    assert_eq!(
        failed["__type"],
        "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
    );
    assert_eq!(failed["Item"]["ql"], n(2));
    // Both counters reset into the current periods.
    let fresh = CounterHints {
        shards: 1,
        quota: Some(QuotaPos {
            period: Period::Day,
            start: 0,
        }),
        rate: Some(RatePos {
            window: 60,
            start: 0,
        }),
    };
    let first = admit(&mut model, &plan(3, &fresh), "UPDATED_NEW").unwrap();
    let attrs = &first["Attributes"];
    assert_eq!((&attrs["qu"], &attrs["ru"]), (&n(1), &n(1)), "{first}");
    assert!(attrs.get("kv").is_none(), "UPDATED_NEW: only what changed");
    // Then continue both: the second is admitted, the third is over quota.
    let seen = CounterHints {
        shards: 1,
        quota: Some(QuotaPos {
            period: Period::Day,
            start: Period::Day.window(now).start,
        }),
        rate: Some(RatePos {
            window: 60,
            start: limits.rate.unwrap().window_at(now).start,
        }),
    };
    let second = admit(&mut model, &plan(3, &seen), "ALL_NEW").unwrap();
    let item = &second["Attributes"];
    assert_eq!((&item["qu"], &item["ru"]), (&n(2), &n(2)), "{second}");
    let day = keygate::limits::day_string(now);
    let ok = items::usage_attr(&day, kid.as_str(), "ok");
    let route = items::usage_attr(&day, kid.as_str(), "r#GET /v1/r01");
    assert_eq!((&item[&ok], &item[&route]), (&n(2), &n(2)));
    let ips: Vec<&Value> = item
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains("#ip"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        ips,
        vec![&s("198.51.100.7")],
        "if_not_exists keeps one address"
    );
    let over = admit(&mut model, &plan(3, &seen), "UPDATED_NEW").unwrap_err();
    assert_eq!(over["Item"]["qu"], n(2));
    // A changed key record (version 4) never spends.
    let stale = admit(&mut model, &plan(4, &seen), "UPDATED_NEW").unwrap_err();
    assert_eq!(stale["Item"]["kv"], json!({"M": {kid.as_str(): n(3)}}));

    // The denial count: ADD on a missing attribute starts from zero.
    let denial = items::usage_attr(&day, kid.as_str(), "d#quota_exceeded");
    let count = json!({
        "TableName": "t",
        "Key": {"pk": s(&pk), "sk": s(items::ALLOWANCE_SK)},
        "UpdateExpression": "ADD #u :one",
        "ConditionExpression": "attribute_exists(#pk)",
        "ExpressionAttributeNames": {"#u": denial, "#pk": "pk"},
        "ExpressionAttributeValues": {":one": n(1)},
    });
    model
        .handle("UpdateItem", &count, std::time::Instant::now())
        .unwrap();
    let stored = model.item(&pk, items::ALLOWANCE_SK).unwrap();
    assert_eq!(stored[&denial], n(1));
    // Rotation's nested update of the versions map, on its condition.
    let next = KeyId::generate();
    let rotate = json!({
        "TableName": "t",
        "Key": {"pk": s(&pk), "sk": s(items::ALLOWANCE_SK)},
        "UpdateExpression": "SET #kv.#old = :ov, #kv.#new = :nv",
        "ConditionExpression": "#kv.#old = :prev",
        "ExpressionAttributeNames": {"#kv": "kv", "#old": kid.as_str(), "#new": next.as_str()},
        "ExpressionAttributeValues": {":ov": n(4), ":nv": n(1), ":prev": n(3)},
    });
    model
        .handle("UpdateItem", &rotate, std::time::Instant::now())
        .unwrap();
    let stored = model.item(&pk, items::ALLOWANCE_SK).unwrap();
    assert_eq!(
        stored["kv"],
        json!({"M": {kid.as_str(): n(4), next.as_str(): n(1)}})
    );
    let again = model.handle("UpdateItem", &rotate, std::time::Instant::now());
    assert_eq!(
        again.unwrap_err().code,
        "ConditionalCheckFailedException",
        "the version moved on"
    );
    // Every write above was charged by item size, failed ones included.
    let stats = model.stats().ops["UpdateItem"];
    assert_eq!((stats.requests, stats.condition_failed), (8, 4));
    assert!(stats.write_units >= 8.0, "{stats:?}");
}

#[test]
fn ten_keys_sharing_a_plan_never_over_admit_it() {
    // A rate of 800/s and a daily quota of 1,000 over 2 s at 1,000/s: both
    // are reached, over ten keys of one owner.
    let s = shared_plan(1_000.0, 2.0);
    let (run, f) = simulate(&s);
    check(&s, &run, &f);
    let rated = run
        .outcomes
        .iter()
        .filter(|o| o.reason == Some("rate_limited"))
        .count();
    let quota = run
        .outcomes
        .iter()
        .filter(|o| o.reason == Some("quota_exceeded"))
        .count();
    assert!(rated > 0 && quota > 0, "both limits reached: {f:?}");
    assert!(f.allowed <= 1_000, "{f:?}");
}
