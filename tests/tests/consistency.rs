//! The product under DynamoDB as it really behaves (the realism proxy,
//! `tests/src/realism/`): eventually consistent reads that answer with the
//! item as it was a second ago, transactions cancelled for reasons other
//! than a failed condition, partitions that throttle. Each test here failed
//! before the fix it names.

use std::time::Duration;

use keygate::clock::{Clock, ManualClock};
use keygate::issue::{mint, KeySpec};
use keygate::key::{ApiKey, KeyEnv, KeyFormat};
use keygate::manage::{ApiRequest, Caller, KeyService};
use keygate::model::KeyRecord;
use keygate::rotation::{sweep, Budget, Delivery};
use keygate::scope::Scope;
use keygate::secrets::SecretsManager;
use keygate::store::{AuditAction, DynamoStore, KeyAdmin};
use keygate_tests::events::{event, reason, with_route, Payload};
use keygate_tests::realism::{Config, RealismProxy};
use keygate_tests::{audit, logs, realism_store, sdk_config, unique_name, v2_handler};
use serde_json::json;

/// 2026-11-29T12:00:00Z.
const NOON: i64 = 1_795_953_600;

struct Rig {
    proxy: RealismProxy,
    /// Through the proxy: every write is in its history.
    store: DynamoStore,
    clock: ManualClock,
    format: KeyFormat,
}

/// A fresh table and a store that reaches it through a realism proxy with
/// `config`.
async fn rig(config: Config) -> Rig {
    logs::init();
    let (proxy, store) = realism_store(config).await;
    Rig {
        proxy,
        store,
        clock: ManualClock::at(NOON),
        format: KeyFormat::new("ak", KeyEnv::Test).unwrap(),
    }
}

fn stale(window: Duration) -> Config {
    Config {
        stale_window: window,
        ..Config::default()
    }
}

impl Rig {
    async fn issue(&self, edit: impl FnOnce(&mut KeySpec)) -> (ApiKey, KeyRecord) {
        let mut spec = KeySpec::new("acme", "svc", vec![Scope::parse("GET /orders/*").unwrap()]);
        edit(&mut spec);
        let (key, record) = mint(&self.format, spec, self.clock.now());
        logs::remember(&key);
        self.store
            .create_key(&record, &audit(&record, AuditAction::Issued))
            .await
            .unwrap();
        (key, record)
    }

    /// A key issued long enough ago that eventual reads see it, then
    /// changed by `edit` (its next version) a moment ago: an eventual read
    /// now answers with the old record.
    async fn issued_then_changed(&self, edit: impl FnOnce(&mut KeyRecord)) -> ApiKey {
        let (key, record) = self.issue(|_| {}).await;
        tokio::time::sleep(self.proxy.config().stale_window + Duration::from_millis(100)).await;
        let mut changed = record.clone();
        changed.version += 1;
        edit(&mut changed);
        self.store
            .update_key(&record, &changed, &audit(&changed, AuditAction::Updated))
            .await
            .unwrap();
        key
    }

    /// A new authorizer container (empty cache) over the proxied store.
    fn container(&self) -> authorizer::Handler<DynamoStore, ManualClock> {
        v2_handler(self.store.clone(), self.clock.clone(), self.format.clone())
    }

    async fn service(&self) -> KeyService<DynamoStore, ManualClock, SecretsManager> {
        KeyService::new(
            self.store.clone(),
            self.clock.clone(),
            self.format.clone(),
            SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk_config().await)),
            &unique_name("kg"),
        )
    }
}

/// A key used within a second of its issuance is found: the eventually
/// consistent read that misses it is confirmed by a consistent one before
/// `not_found`. Before the fix: denied `not_found`.
#[tokio::test]
async fn a_just_issued_key_is_allowed_on_its_first_request() {
    let rig = rig(stale(Duration::from_secs(5))).await;
    let (key, _) = rig.issue(|_| {}).await;
    let handled = rig
        .container()
        .handle(event(Payload::HttpV2Simple, Some(key.expose())), "r")
        .await
        .unwrap();
    assert!(handled.allowed, "{}", handled.response);
    // One eventual read (missed), one consistent read, the owner's plan
    // stamp (none), one write.
    assert_eq!(handled.requests, Some(4));

    // An unknown key costs exactly the two reads, never more.
    let unknown = rig.format.generate();
    logs::remember(&unknown);
    let handled = rig
        .container()
        .handle(event(Payload::HttpV2Simple, Some(unknown.expose())), "r")
        .await
        .unwrap();
    assert_eq!(reason(&handled.response).as_deref(), Some("not_found"));
    assert_eq!(handled.requests, Some(2));
}

/// A container whose first read of a key returns the record as it was
/// before an update (a version behind the allowance) confirms it with a
/// consistent read and allows. Before the fix it trusted the stale record
/// as fresh and denied the key `revoked`.
#[tokio::test]
async fn a_key_read_stale_after_an_update_is_not_denied_as_revoked() {
    let rig = rig(stale(Duration::from_secs(2))).await;
    let key = rig.issued_then_changed(|r| r.name = "renamed".into()).await;
    let handled = rig
        .container()
        .handle(event(Payload::HttpV2Simple, Some(key.expose())), "r")
        .await
        .unwrap();
    assert!(handled.allowed, "{}", handled.response);
}

/// A scope widened a moment ago is honoured by a container that reads the
/// old record: the stale `scope_denied` is confirmed by a consistent read,
/// which allows.
#[tokio::test]
async fn a_just_widened_scope_is_honoured_on_a_stale_read() {
    let rig = rig(stale(Duration::from_secs(2))).await;
    let key = rig
        .issued_then_changed(|r| r.scopes.push(Scope::parse("POST /orders/*").unwrap()))
        .await;
    let container = rig.container();
    let post = with_route(
        event(Payload::HttpV2Simple, Some(key.expose())),
        "POST",
        "/orders/42",
    );
    let handled = container.handle(post.clone(), "r").await.unwrap();
    assert!(handled.allowed, "{}", handled.response);
    // A scope the key does not have is still denied, after the same check.
    let delete = with_route(
        event(Payload::HttpV2Simple, Some(key.expose())),
        "DELETE",
        "/orders/42",
    );
    let handled = container.handle(delete.clone(), "r").await.unwrap();
    assert_eq!(reason(&handled.response).as_deref(), Some("scope_denied"));
    // The consistent record is trusted for denials while cached: a flood of
    // out-of-scope requests costs no more reads.
    let handled = container.handle(delete, "r").await.unwrap();
    assert_eq!(reason(&handled.response).as_deref(), Some("scope_denied"));
    assert_eq!(handled.requests, Some(1), "only the denial count");
}

fn patch(key_id: &str, body: serde_json::Value) -> (String, Vec<u8>) {
    (format!("/v1/keys/{key_id}"), body.to_string().into_bytes())
}

async fn call(
    service: &KeyService<DynamoStore, ManualClock, SecretsManager>,
    method: &str,
    path: &str,
    body: &[u8],
) -> keygate::manage::ApiResponse {
    keygate::manage::route(
        service,
        ApiRequest {
            method,
            path,
            query: Default::default(),
            content_type: Some("application/json"),
            body,
            caller: Some(Caller::operator("test")),
        },
    )
    .await
}

/// A transaction cancelled for any reason but a failed condition
/// (`TransactionConflict` with a concurrent request, `ThrottlingError`) is a
/// retryable 503 with `Retry-After`, not a 409 "changed meanwhile"; a
/// failed condition still is a 409. Before the fix every cancellation was
/// a 409.
#[tokio::test]
async fn cancelled_transactions_answer_by_their_reason() {
    let rig = rig(Config::default()).await;
    let (_, record) = rig.issue(|_| {}).await;
    let service = rig.service().await;
    let (path, body) = patch(record.key_id.as_str(), json!({"name": "n1"}));
    for reasons in [
        vec!["None", "TransactionConflict", "None"],
        vec!["ThrottlingError", "None", "None"],
        vec!["None", "None", "ProvisionedThroughputExceeded"],
    ] {
        rig.proxy.inject_cancellation(reasons.clone());
        let answer = call(&service, "PATCH", &path, &body).await;
        assert_eq!(answer.status, 503, "{reasons:?}: {}", answer.body);
        assert_eq!(answer.body["error"]["code"], "unavailable");
        assert_eq!(keygate::manage::retry_after(answer.status), Some(1));
        let response = keys::respond(answer.status, "application/json", answer.body.to_string());
        assert_eq!(response.headers()["retry-after"], "1");
    }
    rig.proxy
        .inject_cancellation(["ConditionalCheckFailed", "None", "None"]);
    let answer = call(&service, "PATCH", &path, &body).await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    // Nothing injected: the change goes through.
    let answer = call(&service, "PATCH", &path, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// A change that meets a throttled partition answers 503, never 409 or 500:
/// partition limits scaled down so two changes in a second exceed them.
#[tokio::test]
async fn a_change_on_a_throttled_partition_answers_503() {
    let rig = rig(Config {
        scale: 0.004, // 4 write units/s, 12 read units/s per partition
        ..Config::default()
    })
    .await;
    let (_, record) = rig.issue(|_| {}).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let service = rig.service().await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (path, body) = patch(record.key_id.as_str(), json!({"name": format!("n{i}")}));
        let answer = call(&service, "PATCH", &path, &body).await;
        statuses.push(answer.status);
    }
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    let throttles: u64 = rig.proxy.all_usage().values().map(|u| u.throttles).sum();
    assert!(throttles > 0);
}

/// A rotation whose transaction is cancelled by a concurrent request is a
/// failure (retried by Lambda, then dead-lettered), not a key skipped as if
/// another run had rotated it. Before the fix it was filed as skipped and
/// nothing retried it.
#[tokio::test]
async fn a_rotation_cancelled_by_a_conflict_fails_and_the_next_sweep_rotates() {
    let rig = rig(stale(Duration::from_millis(200))).await;
    let (_, record) = rig.issue(|s| s.rotation_days = 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the due index catches up
    rig.clock.set(record.created_at + 2 * 86_400);
    let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk_config().await));
    let prefix = unique_name("kg");
    let delivery = Delivery {
        secrets: &secrets,
        prefix: &prefix,
    };
    let budget = || Budget {
        until: std::time::Instant::now() + Duration::from_secs(60),
        max_keys: 100,
        grace_seconds: 86_400,
    };
    let run = || {
        sweep(
            &rig.store,
            &rig.clock,
            &rig.format,
            &delivery,
            budget(),
            "system:test",
        )
    };
    rig.proxy
        .inject_cancellation(["None", "None", "TransactionConflict", "None"]);
    let summary = run().await.unwrap();
    assert!(summary.skipped.is_empty(), "{summary:?}");
    assert_eq!(summary.failed.len(), 1, "{summary:?}");
    assert!(
        summary.failed[0].1.contains("TransactionConflict"),
        "{summary:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let summary = run().await.unwrap();
    assert_eq!(summary.rotated.len(), 1, "{summary:?}");
    assert!(summary.failed.is_empty(), "{summary:?}");
}

/// A hot key on a throttled partition (limits scaled to 1/50: 20 write
/// units/s) with the authorizer's production SDK settings: the allowance
/// grows onto shards, decisions still throttled fail closed (`error`), never
/// allow; every allow is a write that landed (on the root or a shard), and
/// the quota is never exceeded.
#[tokio::test]
async fn a_throttled_hot_key_never_over_admits_nor_allows_without_a_write() {
    let rig = rig(Config {
        scale: 0.02,
        ..Config::default()
    })
    .await;
    let (key, record) = rig
        .issue(|s| {
            s.limits.quota = Some(keygate::limits::Quota {
                limit: 40,
                period: keygate::limits::Period::Day,
            })
        })
        .await;
    let table = rig.store.table().to_owned();
    let config = authorizer::Config::from_lookup(|name| match name {
        "KEYGATE_TABLE" => Some(table.clone()),
        "KEYGATE_KEY_ENV" => Some("test".into()),
        _ => None,
    })
    .unwrap();
    let store = keygate_tests::production_store(&rig.proxy.endpoint(), &table).await;
    let handler = std::sync::Arc::new(authorizer::Handler::new(
        keygate::authorize::Authorizer::new(
            store,
            rig.clock.clone(),
            rig.format.clone(),
            config.auth,
        ),
        config.settings,
        "ak",
    ));
    let key = std::sync::Arc::new(key);
    let mut allowed = 0;
    let mut errors = 0;
    let mut over = 0;
    for _ in 0..3 {
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (handler, key) = (handler.clone(), key.clone());
                tokio::spawn(async move {
                    handler
                        .handle(event(Payload::HttpV2Simple, Some(key.expose())), "hot")
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            let handled = task.await.unwrap();
            match (handled.allowed, handled.reason) {
                (true, _) => allowed += 1,
                (false, Some("error")) => errors += 1,
                (false, Some("quota_exceeded")) => over += 1,
                other => panic!("unexpected {other:?}: {}", handled.response),
            }
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let throttles: u64 = rig.proxy.all_usage().values().map(|u| u.throttles).sum();
    assert!(throttles > 0, "the partition was throttled");
    let root = keygate_tests::allowance_item(&rig.store, &record).await;
    assert!(
        errors > 0 || root.contains_key("sh"),
        "throttled decisions failed closed, or the allowance grew: {allowed} {errors} {over}"
    );
    assert!(allowed <= 40, "over-admitted: {allowed}");
    let spent = keygate_tests::allowance_spent(&rig.store, &record).await;
    // Every allow is a write that landed (a write whose answer was lost may
    // have landed too, and spent without an allow), never past the quota.
    assert!(
        allowed as i64 <= spent && spent <= 40,
        "allowed {allowed}, spent {spent}"
    );
}
