//! The authorizer function end to end, in process, against the emulator:
//! real events from `infra/events/`, the real handler, the real store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use authorizer::response::V2Response;
use authorizer::{Handled, Handler, Settings};
use aws_sdk_dynamodb::types::AttributeValue;
use keygate::authorize::{AuthConfig, Authorizer};
use keygate::clock::{Clock, ManualClock};
use keygate::issue::{mint, KeySpec};
use keygate::key::{ApiKey, KeyEnv, KeyFormat};
use keygate::limits::{day_string, Limits, Period, Quota, Rate};
use keygate::model::KeyRecord;
use keygate::scope::Scope;
use keygate::store::{items, DynamoStore, KeyAdmin};
use keygate_tests::events::{
    allows, event, reason, with_header, with_query, with_route, with_source_ip, Payload,
};
use keygate_tests::{fresh_store, logs};
use serde_json::Value;

/// 2026-11-29T12:00:00Z.
const NOON: i64 = 1_795_953_600;
const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/orders/42";

struct Rig {
    handler: Handler<DynamoStore, ManualClock>,
    clock: ManualClock,
    store: DynamoStore,
    format: KeyFormat,
    payload: Payload,
}

fn settings(payload: Payload) -> Settings {
    Settings {
        v2_response: if payload == Payload::HttpV2Iam {
            V2Response::Iam
        } else {
            V2Response::Simple
        },
        // Generous: the single-threaded emulator is shared by the whole suite.
        // The deadline itself is tested with a broken store below.
        deadline: Duration::from_secs(30),
    }
}

async fn rig(payload: Payload) -> Rig {
    logs::init();
    rig_over(payload, fresh_store().await)
}

/// A rig over `store` (e.g. one behind a realism proxy of its own).
fn rig_over(payload: Payload, store: DynamoStore) -> Rig {
    let clock = ManualClock::at(NOON);
    let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
    let authorizer = Authorizer::new(
        store.clone(),
        clock.clone(),
        format.clone(),
        AuthConfig::default(),
    );
    Rig {
        handler: Handler::new(authorizer, settings(payload), "ak"),
        clock,
        store,
        format,
        payload,
    }
}

impl Rig {
    async fn issue(&self, edit: impl FnOnce(&mut KeySpec)) -> (ApiKey, KeyRecord) {
        let mut spec = KeySpec::new(
            "acme",
            "test key",
            vec![Scope::parse("GET /orders/*").unwrap()],
        );
        edit(&mut spec);
        let (key, record) = mint(&self.format, spec, self.clock.now());
        logs::remember(&key);
        self.store
            .create_key(
                &record,
                &keygate_tests::audit(&record, keygate::store::AuditAction::Issued),
            )
            .await
            .unwrap();
        (key, record)
    }

    async fn call(&self, ev: Value) -> Handled {
        self.handler
            .handle(ev, "req-test")
            .await
            .expect("recognised event")
    }

    async fn call_with(&self, key: &ApiKey) -> Handled {
        self.call(event(self.payload, Some(key.expose()))).await
    }

    fn allowed(&self, handled: &Handled) -> bool {
        let by_response = allows(self.payload, &handled.response, Some(ARN));
        assert_eq!(
            by_response, handled.allowed,
            "summary disagrees with {}",
            handled.response
        );
        by_response
    }

    /// Assert a deny with `want` as reason, in the response and the summary.
    fn assert_denied(&self, handled: &Handled, want: &str) {
        assert!(
            !self.allowed(handled),
            "{:?}: expected deny {want}, got {}",
            self.payload,
            handled.response
        );
        assert_eq!(
            reason(&handled.response).as_deref(),
            Some(want),
            "{:?}",
            self.payload
        );
        assert_eq!(handled.reason, Some(want));
    }

    async fn allowance(
        &self,
        record: &KeyRecord,
    ) -> std::collections::HashMap<String, AttributeValue> {
        keygate_tests::allowance_item(&self.store, record).await
    }
}

fn num(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn quota(limit: u64, period: Period) -> impl FnOnce(&mut KeySpec) {
    move |spec| {
        spec.limits.quota = Some(Quota { limit, period });
    }
}

#[tokio::test]
async fn every_payload_allows_a_good_key_with_its_context() {
    for payload in Payload::ALL {
        let rig = rig(payload).await;
        let (key, record) = rig.issue(quota(10, Period::Day)).await;
        let handled = rig.call_with(&key).await;
        assert!(rig.allowed(&handled), "{payload:?}: {}", handled.response);
        let ctx = &handled.response["context"];
        assert_eq!(ctx["keyId"], record.key_id.as_str());
        assert_eq!(ctx["owner"], "acme");
        assert_eq!(ctx["scopes"], "GET /orders/*");
        assert_eq!(ctx["quotaRemaining"], 9);
        assert!(ctx.get("rateRemaining").is_none());
        // Context values are strings, numbers or booleans only; never the key or its hash.
        for (_, v) in ctx.as_object().unwrap() {
            assert!(v.is_string() || v.is_number() || v.is_boolean());
        }
        let text = handled.response.to_string();
        assert!(!text.contains(key.expose()) && !text.contains(record.hash.as_str()));
        if payload != Payload::HttpV2Simple {
            assert_eq!(handled.response["principalId"], record.key_id.as_str());
        }
    }
}

#[tokio::test]
async fn every_payload_denies_for_every_reason() {
    for payload in Payload::ALL {
        let rig = rig(payload).await;
        rig.assert_denied(&rig.call(event(payload, None)).await, "missing");

        let (good, _) = rig.issue(|_| {}).await;
        let mut broken = good.expose().to_owned();
        let last = broken.pop().unwrap();
        broken.push(if last == 'a' { 'b' } else { 'a' });
        let handled = rig.call(event(payload, Some(&broken))).await;
        rig.assert_denied(&handled, "malformed");
        assert_eq!(
            handled.requests,
            Some(0),
            "no DynamoDB request for a bad checksum"
        );

        // A wildcard in the request's ARN (a literal `*` or `?` in the path)
        // would widen an Allow policy: malformed, before any I/O. Found by
        // the authorizer_event fuzz target.
        for path in ["/orders/*", "/orders/4?"] {
            let ev = with_route(event(payload, Some(good.expose())), "GET", path);
            let handled = rig.call(ev).await;
            rig.assert_denied(&handled, "malformed");
            assert_eq!(handled.requests, Some(0), "{path}");
        }

        if payload.has_request_details() {
            let ev = with_query(
                event(payload, Some(good.expose())),
                "api_key",
                good.expose(),
            );
            rig.assert_denied(&rig.call(ev).await, "key_in_query");
        }

        let unknown = rig.format.generate();
        logs::remember(&unknown);
        rig.assert_denied(&rig.call_with(&unknown).await, "not_found");

        let (revoked, record) = rig.issue(|_| {}).await;
        rig.store
            .revoke(
                &record.key_id,
                NOON,
                &keygate_tests::audit(&record, keygate::store::AuditAction::Revoked),
            )
            .await
            .unwrap();
        rig.assert_denied(&rig.call_with(&revoked).await, "revoked");

        let (expiring, _) = rig.issue(|s| s.expires_at = Some(NOON + 60)).await;
        assert!(rig.allowed(&rig.call_with(&expiring).await));
        rig.clock.advance(60);
        rig.assert_denied(&rig.call_with(&expiring).await, "expired");
        rig.clock.set(NOON);

        let (limited, _) = rig.issue(quota(1, Period::Day)).await;
        assert!(rig.allowed(&rig.call_with(&limited).await));
        rig.assert_denied(&rig.call_with(&limited).await, "quota_exceeded");

        let (rated, _) = rig
            .issue(|s| {
                s.limits.rate = Some(Rate {
                    limit: 1,
                    window: 60,
                })
            })
            .await;
        assert!(rig.allowed(&rig.call_with(&rated).await));
        rig.assert_denied(&rig.call_with(&rated).await, "rate_limited");

        let (scoped, _) = rig
            .issue(|s| s.scopes = vec![Scope::parse("POST /orders/*").unwrap()])
            .await;
        rig.assert_denied(&rig.call_with(&scoped).await, "scope_denied");
        let ev = with_route(event(payload, Some(scoped.expose())), "POST", "/orders/42");
        let handled = rig.call(ev).await;
        assert!(
            allows(payload, &handled.response, None),
            "{payload:?} POST allowed by its scope"
        );

        let (fenced, _) = rig
            .issue(|s| s.allowed_cidrs = vec!["198.51.100.0/24".parse().unwrap()])
            .await;
        rig.assert_denied(&rig.call_with(&fenced).await, "ip_denied");
        if payload.has_request_details() {
            let ev = with_source_ip(event(payload, Some(fenced.expose())), "198.51.100.7");
            assert!(
                rig.allowed(&rig.call(ev).await),
                "{payload:?} inside the allowlist"
            );
        }
    }
}

/// At DynamoDB's own partition limits (a realism proxy of its own at scale
/// 1: `make test` scales the shared one down), a burst of 200 stays under
/// one partition's 1,000 write units and is decided exactly. Under
/// throttling, see `consistency.rs`: never an allow without a write.
#[tokio::test]
async fn two_hundred_concurrent_calls_with_a_quota_of_fifty_allow_exactly_fifty() {
    logs::init();
    let (_proxy, store) =
        keygate_tests::realism_store(keygate_tests::realism::Config::default()).await;
    let rig = Arc::new(rig_over(Payload::HttpV2Simple, store));
    let (key, record) = rig.issue(quota(50, Period::Day)).await;
    let key = Arc::new(key);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (rig, key) = (rig.clone(), key.clone());
            tokio::spawn(async move { rig.call_with(&key).await })
        })
        .collect();
    let mut allowed = 0;
    let mut over = 0;
    for task in tasks {
        let handled = task.await.unwrap();
        if rig.allowed(&handled) {
            allowed += 1;
        } else {
            assert_eq!(
                handled.reason,
                Some("quota_exceeded"),
                "{}",
                handled.response
            );
            over += 1;
        }
    }
    assert_eq!((allowed, over), (50, 150));
    let item = rig.allowance(&record).await;
    assert_eq!(num(&item, "qu"), 50);
    let day = day_string(NOON);
    let kid = record.key_id.as_str();
    assert_eq!(num(&item, &items::usage_attr(&day, kid, "ok")), 50);
    assert_eq!(
        num(&item, &items::usage_attr(&day, kid, "d#quota_exceeded")),
        150
    );
    assert_eq!(
        num(&item, &items::usage_attr(&day, kid, "r#GET /orders/{id}")),
        50
    );
    assert_eq!(
        item.get(&items::usage_attr(
            &day,
            kid,
            &format!("ip{}", crc_slot("203.0.113.10"))
        ))
        .and_then(|v| v.as_s().ok())
        .map(String::as_str),
        Some("203.0.113.10")
    );
}

fn crc_slot(ip: &str) -> u64 {
    // Same slotting as the store: documented there, repeated here on purpose
    // so a change to it is noticed.
    let mut h = 0xffff_ffffu32;
    for b in ip.bytes() {
        h ^= u32::from(b);
        for _ in 0..8 {
            h = if h & 1 == 1 {
                (h >> 1) ^ 0xedb8_8320
            } else {
                h >> 1
            };
        }
    }
    u64::from(!h) % items::IP_SLOTS
}

#[tokio::test]
async fn revocation_is_immediate_even_with_a_warm_cache() {
    let rig = rig(Payload::RestRequest).await;
    let (key, record) = rig.issue(|_| {}).await;
    assert!(rig.allowed(&rig.call_with(&key).await));
    assert!(rig.allowed(&rig.call_with(&key).await));
    rig.store
        .revoke(
            &record.key_id,
            NOON,
            &keygate_tests::audit(&record, keygate::store::AuditAction::Revoked),
        )
        .await
        .unwrap();
    // The container still caches the active record: the write's version check denies.
    rig.assert_denied(&rig.call_with(&key).await, "revoked");
    rig.assert_denied(&rig.call_with(&key).await, "revoked");
}

#[tokio::test]
async fn quotas_roll_over_at_utc_day_and_month_boundaries() {
    let rig = rig(Payload::HttpV2Simple).await;
    let (daily, _) = rig.issue(quota(2, Period::Day)).await;
    let last_second = Period::Day.window(NOON).end - 1;
    rig.clock.set(last_second);
    assert!(rig.allowed(&rig.call_with(&daily).await));
    assert!(rig.allowed(&rig.call_with(&daily).await));
    rig.assert_denied(&rig.call_with(&daily).await, "quota_exceeded");
    rig.clock.advance(1);
    let handled = rig.call_with(&daily).await;
    assert!(rig.allowed(&handled));
    assert_eq!(handled.response["context"]["quotaRemaining"], 1);

    let (monthly, _) = rig.issue(quota(1, Period::Month)).await;
    let month_end = Period::Month.window(NOON).end;
    rig.clock.set(month_end - 1);
    assert!(rig.allowed(&rig.call_with(&monthly).await));
    rig.clock.set(month_end - 86_400 * 3);
    rig.assert_denied(&rig.call_with(&monthly).await, "quota_exceeded");
    rig.clock.set(month_end);
    assert!(rig.allowed(&rig.call_with(&monthly).await));
    rig.assert_denied(&rig.call_with(&monthly).await, "quota_exceeded");
}

#[tokio::test]
async fn rate_windows_roll_over() {
    let rig = rig(Payload::HttpV2Simple).await;
    let (key, _) = rig
        .issue(|s| {
            s.limits.rate = Some(Rate {
                limit: 2,
                window: 10,
            })
        })
        .await;
    let start = NOON / 10 * 10;
    rig.clock.set(start);
    let first = rig.call_with(&key).await;
    assert_eq!(first.response["context"]["rateRemaining"], 1);
    assert!(rig.allowed(&rig.call_with(&key).await));
    rig.assert_denied(&rig.call_with(&key).await, "rate_limited");
    rig.clock.set(start + 10);
    assert!(rig.allowed(&rig.call_with(&key).await));
}

#[tokio::test]
async fn steady_state_costs_exactly_one_dynamodb_request() {
    let rig = rig(Payload::HttpV2Simple).await;
    let (key, _) = rig
        .issue(|s| {
            s.limits = Limits {
                quota: Some(Quota {
                    limit: 1000,
                    period: Period::Month,
                }),
                rate: Some(Rate {
                    limit: 1000,
                    window: 60,
                }),
            }
        })
        .await;
    let first = rig.call_with(&key).await;
    assert!(rig.allowed(&first));
    assert!(
        first.requests.unwrap() >= 2,
        "cold: read the record, then write"
    );
    for _ in 0..20 {
        let handled = rig.call_with(&key).await;
        assert!(rig.allowed(&handled));
        assert_eq!(handled.requests, Some(1));
    }
    // A key without limits too.
    let (free, _) = rig.issue(|_| {}).await;
    rig.call_with(&free).await;
    assert_eq!(rig.call_with(&free).await.requests, Some(1));
}

/// A store whose DynamoDB is unreachable: connection refused, or a server
/// that accepts and never answers.
async fn broken_handler(
    endpoint: &str,
    deadline: Duration,
) -> (Handler<DynamoStore, ManualClock>, KeyFormat) {
    logs::init();
    let sdk = keygate_tests::sdk_config().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .timeout_config(
            aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(deadline / 3)
                .build(),
        )
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), "unreachable");
    let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
    let authorizer = Authorizer::new(
        store,
        ManualClock::at(NOON),
        format.clone(),
        AuthConfig::default(),
    );
    let settings = Settings {
        v2_response: V2Response::Simple,
        deadline,
    };
    (Handler::new(authorizer, settings, "ak"), format)
}

#[tokio::test]
async fn dynamodb_unreachable_never_allows_and_answers_within_the_deadline() {
    let deadline = Duration::from_millis(400);
    // Nothing listens on this port once the listener is dropped.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // This one accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    for port in [refused, silent_port] {
        let (handler, format) = broken_handler(&format!("http://127.0.0.1:{port}"), deadline).await;
        for payload in [
            Payload::HttpV2Simple,
            Payload::RestRequest,
            Payload::RestToken,
        ] {
            let key = format.generate();
            logs::remember(&key);
            let started = Instant::now();
            let handled = handler
                .handle(event(payload, Some(key.expose())), "req-broken")
                .await
                .unwrap();
            let took = started.elapsed();
            assert!(
                !allows(payload, &handled.response, None),
                "{payload:?} on port {port}"
            );
            assert_eq!(reason(&handled.response).as_deref(), Some("error"));
            assert!(took < deadline * 3, "{payload:?} took {took:?}");
        }
    }
}

#[tokio::test]
async fn odd_events_never_panic_and_never_allow() {
    let rig = rig(Payload::HttpV2Simple).await;
    let (key, _) = rig.issue(|_| {}).await;
    // Not authorizer events at all: an error, which API Gateway turns into a 500.
    for ev in [
        Value::Null,
        serde_json::json!("x"),
        serde_json::json!({"type": "OTHER"}),
        serde_json::json!([]),
    ] {
        assert!(rig.handler.handle(ev, "r").await.is_err());
    }
    let huge = "A".repeat(1 << 20);
    let mut cases = vec![
        // Huge header value.
        event(Payload::HttpV2Simple, Some(&huge)),
        // Control characters in a header: unreadable event.
        event(Payload::RestRequest, Some("ak_test_\\u0007")),
        // Wrong types in known fields.
        serde_json::json!({"version": "2.0", "type": "REQUEST", "routeArn": 5, "headers": []}),
        serde_json::json!({"type": "TOKEN", "authorizationToken": {"a": 1}, "methodArn": ARN}),
        serde_json::json!({"type": "REQUEST", "methodArn": ARN, "headers": {"x-api-key": 7}}),
        // Missing ARN: never an allow, whatever the key.
        serde_json::json!({"type": "TOKEN", "authorizationToken": key.expose()}),
        // Non-ASCII and odd encodings.
        event(Payload::HttpV2Simple, Some("ak_test_ключ")),
        event(Payload::RestToken, Some("Bearer  Bearer")),
        with_route(
            event(Payload::HttpV2Simple, Some(key.expose())),
            "GET",
            "/orders/%2e%2e/admin",
        ),
        with_route(
            event(Payload::HttpV2Simple, Some(key.expose())),
            "GET",
            "/orders/../admin",
        ),
    ];
    let token_no_arn = cases.remove(5);
    for ev in cases {
        let handled = rig
            .handler
            .handle(ev.clone(), "r")
            .await
            .expect("recognised");
        assert!(!handled.allowed, "allowed {ev}");
        assert!(handled.reason.is_some());
    }
    let handled = rig.handler.handle(token_no_arn, "r").await.unwrap();
    assert!(!allows(Payload::RestToken, &handled.response, None));
}

#[tokio::test]
async fn a_rotated_key_and_its_successor_share_one_allowance_until_the_grace_ends() {
    let rig = rig(Payload::HttpV2Simple).await;
    let (old_key, old) = rig.issue(quota(4, Period::Day)).await;
    assert!(rig.allowed(&rig.call_with(&old_key).await)); // cached from here on
    assert!(rig.allowed(&rig.call_with(&old_key).await));

    let (new_key, successor) = keygate::issue::successor(&rig.format, &old, NOON);
    logs::remember(&new_key);
    let grace_until = NOON + 3600;
    rig.store
        .rotate(&old, &successor, grace_until, NOON, "test")
        .await
        .unwrap();
    // A second rotation of the same version loses.
    let (_, again) = keygate::issue::successor(&rig.format, &old, NOON);
    assert!(rig
        .store
        .rotate(&old, &again, grace_until, NOON, "test")
        .await
        .is_err());

    // Two left in the shared allowance, whichever key spends them.
    let handled = rig.call_with(&new_key).await;
    assert!(rig.allowed(&handled));
    assert_eq!(handled.response["context"]["quotaRemaining"], 1);
    assert_eq!(
        handled.response["context"]["keyId"],
        successor.key_id.as_str()
    );
    assert!(rig.allowed(&rig.call_with(&old_key).await));
    rig.assert_denied(&rig.call_with(&new_key).await, "quota_exceeded");
    rig.assert_denied(&rig.call_with(&old_key).await, "quota_exceeded");

    // Until its grace deadline the old key is valid (only out of quota);
    // from the deadline on it is refused as expired, whatever the quota.
    rig.clock.set(grace_until - 1);
    rig.assert_denied(&rig.call_with(&old_key).await, "quota_exceeded");
    rig.clock.set(grace_until);
    rig.assert_denied(&rig.call_with(&old_key).await, "expired");
    // The next day the successor has the whole allowance again.
    rig.clock.set(Period::Day.window(NOON).end);
    rig.assert_denied(&rig.call_with(&old_key).await, "expired");
    let handled = rig.call_with(&new_key).await;
    assert!(rig.allowed(&handled));
    assert_eq!(handled.response["context"]["quotaRemaining"], 3);
}

#[tokio::test]
async fn usage_counters_past_retention_are_pruned_so_the_item_stays_bounded() {
    let rig = rig(Payload::HttpV2Simple).await;
    let (key, record) = rig.issue(|_| {}).await;
    let first_day = day_string(NOON);
    assert!(rig.allowed(&rig.call_with(&key).await));
    let ok = |day: &str| items::usage_attr(day, record.key_id.as_str(), "ok");
    assert_eq!(num(&rig.allowance(&record).await, &ok(&first_day)), 1);
    // Within retention nothing is removed.
    rig.clock.set(NOON + 10 * 86_400);
    assert!(rig.allowed(&rig.call_with(&key).await));
    assert_eq!(num(&rig.allowance(&record).await, &ok(&first_day)), 1);
    // Past it, the first write of the day prunes the old day's counters: the
    // record and its owner's plan stamp are re-read (the cache aged out),
    // written, then one housekeeping request; later writes that day cost
    // one again.
    let later = NOON + (items::USAGE_RETENTION_DAYS + 1) * 86_400;
    rig.clock.set(later);
    // The record is old enough that an eventually consistent read finds it
    // (a key younger than the stale window costs one confirming read more).
    keygate_tests::caught_up().await;
    let handled = rig.call_with(&key).await;
    assert!(rig.allowed(&handled));
    assert_eq!(handled.requests, Some(4));
    let item = rig.allowance(&record).await;
    assert!(
        !item
            .keys()
            .any(|k| k.starts_with(&format!("u#{first_day}#"))),
        "old usage kept: {:?}",
        item.keys().collect::<Vec<_>>()
    );
    assert_eq!(num(&item, &ok(&day_string(later))), 1);
    assert_eq!(num(&item, &ok(&day_string(NOON + 10 * 86_400))), 1);
    assert_eq!(rig.call_with(&key).await.requests, Some(1));
}

/// One request, one credential: two headers with two different keys are
/// denied `conflicting_keys` (a backend reading `X-API-Key` itself would
/// otherwise bill the call to another key than the one we decided on);
/// the same key in both is fine.
#[tokio::test]
async fn two_different_keys_in_one_request_are_denied_in_every_payload() {
    for payload in Payload::ALL.into_iter().filter(|p| p.has_request_details()) {
        let rig = rig(payload).await;
        let (a, _) = rig.issue(|_| {}).await;
        let (b, _) = rig.issue(|_| {}).await;
        let both = |x: &ApiKey, y: &ApiKey| {
            let ev = with_header(
                event(payload, None),
                "authorization",
                &format!("Bearer {}", x.expose()),
            );
            with_header(ev, "x-api-key", y.expose())
        };
        let handled = rig.call(both(&a, &b)).await;
        rig.assert_denied(&handled, "conflicting_keys");
        assert_eq!(
            handled.requests,
            Some(0),
            "{payload:?}: decided before any I/O"
        );
        rig.assert_denied(&rig.call(both(&b, &a)).await, "conflicting_keys");
        assert!(
            rig.allowed(&rig.call(both(&a, &a)).await),
            "{payload:?}: the same key twice"
        );
        // A non-key Authorization scheme is not a second key.
        let ev = with_header(event(payload, None), "authorization", "Basic dXNlcjpwYXNz");
        assert!(
            rig.allowed(&rig.call(with_header(ev, "x-api-key", a.expose())).await),
            "{payload:?}: Basic auth beside X-API-Key"
        );
    }
}

/// Source addresses in the forms API Gateway has been seen to send them
/// (with a port, in brackets) and their other textual forms are one address
/// to the allowlist and to the day's `source_ips`, in every payload format.
#[tokio::test]
async fn source_addresses_in_every_form_meet_the_allowlist_in_every_payload() {
    let v4 = [
        "203.0.113.10:39870",
        "::ffff:203.0.113.10",
        "[::ffff:203.0.113.10]:443",
    ];
    let v6 = [
        "[2001:db8::1]:12345",
        "2001:DB8:0:0:0:0:0:1",
        "[2001:db8::1]",
        "2001:db8::1%eth0",
    ];
    for payload in Payload::ALL.into_iter().filter(|p| p.has_request_details()) {
        let rig = rig(payload).await;
        let (key, record) = rig
            .issue(|s| {
                s.allowed_cidrs = vec![
                    "203.0.113.0/24".parse().unwrap(),
                    "2001:db8::/32".parse().unwrap(),
                ]
            })
            .await;
        for form in v4.iter().chain(v6.iter()) {
            let ev = with_source_ip(event(payload, Some(key.expose())), form);
            assert!(
                rig.allowed(&rig.call(ev).await),
                "{payload:?}: {form} is inside the allowlist"
            );
        }
        for outside in [
            "198.51.100.7:80",
            "[2001:db9::1]:80",
            "0xcb.0.113.10",
            "203.0.113.10:99999",
        ] {
            let ev = with_source_ip(event(payload, Some(key.expose())), outside);
            rig.assert_denied(&rig.call(ev).await, "ip_denied");
        }
        let item = rig.allowance(&record).await;
        let day = day_string(NOON);
        let prefix = items::usage_attr(&day, record.key_id.as_str(), "ip");
        let mut ips: Vec<String> = item
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .filter_map(|(_, v)| v.as_s().ok().cloned())
            .collect();
        ips.sort();
        assert_eq!(
            ips,
            vec!["2001:db8::1".to_owned(), "203.0.113.10".to_owned()],
            "{payload:?}"
        );
    }
}

/// Limits live on the allowance a rotated key and its successor share:
/// changing them through one key must not lock the other out. Before the
/// fix the update bumped only one key's version, and the sibling's writes
/// (its record still naming the old limits) never matched the allowance
/// again: denied until its grace ended.
#[tokio::test]
async fn changing_limits_through_one_key_of_a_rotated_pair_keeps_both_working() {
    let rig = rig(Payload::HttpV2Simple).await;
    let (old_key, old) = rig.issue(quota(10, Period::Day)).await;
    assert!(rig.allowed(&rig.call_with(&old_key).await));
    let (new_key, successor) = keygate::issue::successor(&rig.format, &old, NOON);
    logs::remember(&new_key);
    let rotated = rig
        .store
        .rotate(&old, &successor, NOON + 3600, NOON, "test")
        .await
        .unwrap();
    assert!(rig.allowed(&rig.call_with(&new_key).await)); // both records cached
    assert!(rig.allowed(&rig.call_with(&old_key).await));

    for (through, other_key) in [(&successor, &old_key), (&rotated, &new_key)] {
        let current = rig.store.key_by_id(&through.key_id).await.unwrap().unwrap();
        let mut changed = current.clone();
        changed.version += 1;
        changed.limits = Limits {
            quota: None,
            rate: Some(Rate {
                limit: 100,
                window: 60,
            }),
        };
        rig.store
            .update_key(
                &current,
                &changed,
                &keygate_tests::audit(&changed, keygate::store::AuditAction::Updated),
            )
            .await
            .unwrap();
        let handled = rig.call_with(other_key).await;
        assert!(
            rig.allowed(&handled),
            "the sibling still works: {}",
            handled.response
        );
        assert!(handled.response["context"].get("quotaRemaining").is_none());
        assert!(handled.response["context"]["rateRemaining"].is_number());
        // Back to a quota for the next round.
        let current = rig.store.key_by_id(&through.key_id).await.unwrap().unwrap();
        let mut back = current.clone();
        back.version += 1;
        back.limits = Limits {
            quota: Some(Quota {
                limit: 10,
                period: Period::Day,
            }),
            rate: None,
        };
        rig.store
            .update_key(
                &current,
                &back,
                &keygate_tests::audit(&back, keygate::store::AuditAction::Updated),
            )
            .await
            .unwrap();
    }
    // Both records carry the shared limits, each at a new version, each
    // with its audit event.
    for id in [&old.key_id, &successor.key_id] {
        let record = rig.store.key_by_id(id).await.unwrap().unwrap();
        assert_eq!(record.limits.quota.map(|q| q.limit), Some(10), "{id}");
    }
    let trail = rig.store.events(&old.key_id, 50, None).await.unwrap();
    assert!(
        trail.items.iter().any(|e| e.change.contains("shared_with")),
        "the sibling's change is audited"
    );
    assert!(rig.allowed(&rig.call_with(&old_key).await));
    assert!(rig.allowed(&rig.call_with(&new_key).await));
}

/// Six unarchived days (days 1 to 6 after `NOON`) of a key busy on 300
/// long routes, written straight to the emulator: the allowance root grows
/// to about 310 KB, past [`items::ALLOWANCE_PRUNE_BYTES`].
async fn six_busy_days(rig: &Rig, record: &KeyRecord) {
    let direct = keygate_tests::emulator_dynamo().await;
    let kid = record.key_id.as_str();
    for offset in 1..=6 {
        let day = day_string(NOON + offset * 86_400);
        let mut names = Vec::new();
        for route in 0..300 {
            names.push(items::usage_attr(
                &day,
                kid,
                &format!("r#GET /{route:03}/{}", "p".repeat(120)),
            ));
        }
        for chunk in names.chunks(50) {
            let mut update = direct
                .update_item()
                .table_name(rig.store.table())
                .key(
                    items::PK,
                    AttributeValue::S(items::allowance_pk(&record.allowance_id)),
                )
                .key(items::SK, AttributeValue::S(items::ALLOWANCE_SK.into()))
                .expression_attribute_values(":n", AttributeValue::N("7".into()));
            let mut set = Vec::new();
            for (i, name) in chunk.iter().enumerate() {
                update = update.expression_attribute_names(format!("#a{i}"), name);
                set.push(format!("#a{i} = :n"));
            }
            update
                .update_expression(format!("SET {}", set.join(", ")))
                .send()
                .await
                .unwrap();
        }
    }
    assert!(item_bytes(&rig.allowance(record).await) > items::ALLOWANCE_PRUNE_BYTES);
}

fn item_bytes(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    keygate_tests::item_size::item_size(item)
}

/// The usage counters of `item` for the day `day` days after `NOON`.
fn counters_of_day(item: &std::collections::HashMap<String, AttributeValue>, day: i64) -> usize {
    let prefix = format!("u#{}#", day_string(NOON + day * 86_400));
    item.keys().filter(|n| n.starts_with(&prefix)).count()
}

/// What the usage counters of `item` for the day `day` days after `NOON`
/// add up to.
fn requests_of_day(item: &std::collections::HashMap<String, AttributeValue>, day: i64) -> i64 {
    let prefix = format!("u#{}#", day_string(NOON + day * 86_400));
    item.iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .filter_map(|(_, v)| v.as_n().ok()?.parse::<i64>().ok())
        .sum()
}

/// Writes to a ~300 KB item cost ~300 write units each: pausing a second
/// between decisions keeps a test's partition under DynamoDB's 1,000 write
/// units per second, which the realism proxy enforces (a throttled root
/// would grow onto shards, which the next test covers).
async fn partition_budget_pause() {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
}

/// If the daily report job stops, the authorizer's daily pruning is the
/// backstop that keeps the allowance under DynamoDB's 400 KB item limit:
/// while the item is over `ALLOWANCE_PRUNE_BYTES`, its oldest counters go,
/// a batch per decision, never those of its two newest days (before, days
/// within the 35-day retention were kept whatever their size, and a busy
/// key's allowance could outgrow what DynamoDB accepts).
#[tokio::test]
async fn an_allowance_near_the_item_limit_sheds_its_oldest_counters_first() {
    // DynamoDB's own limits: one write of a 300 KB item costs 300 units.
    logs::init();
    let (_proxy, store) =
        keygate_tests::realism_store(keygate_tests::realism::Config::default()).await;
    let rig = rig_over(Payload::HttpV2Simple, store);
    let (key, record) = rig.issue(|_| {}).await;
    assert!(rig.allowed(&rig.call_with(&key).await));
    six_busy_days(&rig, &record).await;
    // From the first request of day 6 on, each decision removes one batch
    // of the oldest counters (one extra write, never more; the first also
    // re-reads the record and its owner's plan stamp), until only the two
    // newest days are left; then decisions cost one request again.
    rig.clock.set(NOON + 6 * 86_400);
    keygate_tests::caught_up().await;
    let mut decisions = 0;
    loop {
        partition_budget_pause().await;
        let handled = rig.call_with(&key).await;
        assert!(rig.allowed(&handled));
        assert!(handled.requests <= Some(4), "{:?}", handled.requests);
        decisions += 1;
        if handled.requests == Some(1) {
            break;
        }
        assert!(decisions < 20, "pruning does not converge");
    }
    assert!(decisions >= 2, "a batch of 100 per decision: {decisions}");
    let item = rig.allowance(&record).await;
    // The oldest counters went first; the two newest days are whole.
    assert_eq!(counters_of_day(&item, 0), 0, "the oldest day is gone");
    assert!(
        counters_of_day(&item, 1) < 300,
        "then the next oldest, until under the bound"
    );
    assert!(
        counters_of_day(&item, 5) >= 300 && counters_of_day(&item, 6) >= 300,
        "the live days stay whole"
    );
    assert!(item_bytes(&item) < items::ALLOWANCE_PRUNE_BYTES);
}

/// Once an allowance is sharded, its root takes no admissions: only the
/// containers' usage detail flushes write it. The backstop rides on those
/// writes (before, a sharded root over the bound was never pruned by the
/// authorizer, and kept growing with every flush until DynamoDB refused it,
/// and with it every change of the key's record).
#[tokio::test]
async fn a_sharded_allowance_root_near_the_item_limit_is_pruned_by_the_usage_flush() {
    use keygate::store::Admission;
    logs::init();
    let (_proxy, store) =
        keygate_tests::realism_store(keygate_tests::realism::Config::default()).await;
    let rig = rig_over(Payload::HttpV2Simple, store);
    let (key, record) = rig
        .issue(|s| {
            s.limits.quota = Some(Quota {
                limit: 1_000_000,
                period: Period::Day,
            })
        })
        .await;
    assert!(rig.allowed(&rig.call_with(&key).await));
    six_busy_days(&rig, &record).await;
    rig.clock.set(NOON + 6 * 86_400);
    partition_budget_pause().await;
    let shards = rig
        .store
        .grow(&record.allowance_id, 16, rig.clock.now())
        .await
        .unwrap();
    assert_eq!(shards, 16);
    keygate_tests::caught_up().await;
    // Each round: a minute on (the detail is due), one decision on a shard
    // that flushes the detail to the root and prunes one batch from it.
    let mut rounds = 0;
    loop {
        partition_budget_pause().await;
        rig.clock.advance(61);
        let handled = rig.call_with(&key).await;
        assert!(rig.allowed(&handled));
        // The record re-read with its plan stamp (a minute on, past the
        // cache), the shard's admission, and from the second round on the
        // flush and one prune; the first meets the frozen root (refused)
        // and learns of the shards, and has nothing to flush yet.
        assert!(handled.requests <= Some(5), "{:?}", handled.requests);
        rounds += 1;
        if item_bytes(&rig.allowance(&record).await) < items::ALLOWANCE_PRUNE_BYTES {
            break;
        }
        assert!(rounds < 20, "pruning the root does not converge");
    }
    assert!(rounds >= 2, "a batch of 100 per flush: {rounds}");
    let root = rig.allowance(&record).await;
    assert_eq!(num(&root, "sh"), 16, "still sharded: {root:?}");
    assert_eq!(counters_of_day(&root, 0), 0, "the oldest day is gone");
    assert!(counters_of_day(&root, 1) < 300);
    assert!(
        counters_of_day(&root, 5) >= 300 && counters_of_day(&root, 6) > 300,
        "the live days stay whole, and the flushed detail arrived"
    );
    // Under the bound, the next flushes only add. The loop ended on a flush
    // (a decision flushes what is a minute old, its own count included):
    // the next decision only counts, the one after flushes both counts.
    // Each re-reads the record and its plan stamp and admits; no prune.
    let before = requests_of_day(&root, 6);
    for want in [3, 4] {
        partition_budget_pause().await;
        rig.clock.advance(61);
        let handled = rig.call_with(&key).await;
        assert!(rig.allowed(&handled));
        assert_eq!(handled.requests, Some(want), "no prune");
    }
    let root = rig.allowance(&record).await;
    assert_eq!(requests_of_day(&root, 6), before + 2, "the flush arrived");
    assert_eq!(counters_of_day(&root, 5), 300, "nothing more pruned");
}

/// One request per rate window: each is the first of its window, and the
/// context says `limit - 1` remain. Before the fix it said 0 from the second
/// window on: resetting the counter to the 1 it already held left it out of
/// the write's answer, which was read as "all used".
#[tokio::test]
async fn one_request_per_window_reports_what_remains() {
    let rig = rig(Payload::HttpV2Simple).await;
    let (key, _) = rig
        .issue(|s| {
            s.limits.rate = Some(Rate {
                limit: 5,
                window: 60,
            });
            s.limits.quota = Some(keygate::limits::Quota {
                limit: 100,
                period: Period::Day,
            });
        })
        .await;
    for window in 0..3 {
        rig.clock.set(NOON + window * 60);
        let handled = rig.call_with(&key).await;
        assert!(rig.allowed(&handled));
        assert_eq!(
            handled.response["context"]["rateRemaining"], 4,
            "window {window}"
        );
    }
    // The same for a quota period: one request a day.
    for day in 1..3 {
        rig.clock.set(NOON + day * 86_400);
        let handled = rig.call_with(&key).await;
        assert_eq!(
            handled.response["context"]["quotaRemaining"], 99,
            "day {day}"
        );
    }
}
