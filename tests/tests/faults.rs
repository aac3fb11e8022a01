//! Faults between the SDK and DynamoDB / Secrets Manager, injected by a
//! proxy in front of the emulator: server errors, throttling, latency beyond
//! the deadline, connections reset before the request arrived or after it
//! took effect.
//!
//! Under every fault the authorizer denies (never an allow without a
//! confirmed conditional write) within its deadline, and once the fault
//! clears the same keys are allowed again with counters that show no quota
//! was spent except by writes that really landed. The rotation function
//! reports failure under a fault, and the next run ends consistent: every due
//! key rotated exactly once, its secret's current value an active key.
//!
//! Setup and checks go straight to the emulator; only the code under test
//! talks through the proxy.

use std::time::{Duration, Instant, SystemTime};

use authorizer::{Config, Handler};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use keygate::authorize::Authorizer;
use keygate::clock::{Clock, ManualClock};
use keygate::hash::KeyHash;
use keygate::issue::{mint, KeySpec};
use keygate::key::{ApiKey, KeyFormat};
use keygate::limits::{Period, Quota};
use keygate::model::{KeyRecord, KeyStatus};
use keygate::scope::Scope;
use keygate::secrets::{secret_name, SecretsManager};
use keygate::store::{AuditAction, DynamoStore, KeyAdmin};
use keygate_tests::events::{allows, event, reason, Payload};
use keygate_tests::faults::{Fault, FaultProxy};
use keygate_tests::{allowance_item, audit, fresh_store, logs, sdk_config, unique_name};

/// 2026-11-29T12:00:00Z.
const NOON: i64 = 1_795_953_600;
const DAY: i64 = 86_400;
/// Scheduling slack on a loaded machine: the deadline itself is enforced by
/// the handler, this only absorbs the time to build the answer and wake up.
const MARGIN: Duration = Duration::from_millis(500);

/// The authorizer's settings as in production (`KEYGATE_DEADLINE_MS` from
/// the environment, default 1500 ms), over `table`.
fn authorizer_config(table: &str) -> Config {
    Config::from_lookup(|name| match name {
        "KEYGATE_TABLE" => Some(table.to_owned()),
        "KEYGATE_KEY_ENV" => Some("test".into()),
        "KEYGATE_DEADLINE_MS" => std::env::var(name).ok(),
        _ => None,
    })
    .expect("authorizer settings")
}

/// A DynamoDB client through the proxy, with the authorizer's own timeouts
/// and retries.
async fn proxied_dynamo(proxy: &FaultProxy, config: &Config) -> aws_sdk_dynamodb::Client {
    let (timeouts, retries) = config.sdk_timeouts();
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .endpoint_url(proxy.endpoint())
        .timeout_config(timeouts)
        .retry_config(retries)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

struct AuthRig {
    proxy: FaultProxy,
    /// Straight to the emulator: setup and checks.
    direct: DynamoStore,
    handler: Handler<DynamoStore, ManualClock>,
    clock: ManualClock,
    format: KeyFormat,
    deadline: Duration,
}

async fn auth_rig() -> AuthRig {
    let direct = fresh_store().await;
    let proxy = FaultProxy::to_emulator().await;
    let config = authorizer_config(direct.table());
    let store = DynamoStore::new(proxied_dynamo(&proxy, &config).await, direct.table());
    let clock = ManualClock::at(NOON);
    let authorizer = Authorizer::new(store, clock.clone(), config.format.clone(), config.auth);
    AuthRig {
        proxy,
        direct,
        handler: Handler::new(authorizer, config.settings, config.format.prefix()),
        clock,
        format: config.format.clone(),
        deadline: config.settings.deadline,
    }
}

impl AuthRig {
    async fn issue(&self) -> (ApiKey, KeyRecord) {
        let mut spec = KeySpec::new("acme", "svc", vec![Scope::parse("GET /orders/*").unwrap()]);
        spec.limits.quota = Some(Quota {
            limit: 100,
            period: Period::Day,
        });
        let (key, record) = mint(&self.format, spec, self.clock.now());
        logs::remember(&key);
        self.direct
            .create_key(&record, &audit(&record, AuditAction::Issued))
            .await
            .unwrap();
        (key, record)
    }

    /// One decision through the proxy; asserts it came within the deadline.
    async fn decide(&self, payload: Payload, key: &ApiKey) -> (bool, Option<String>) {
        let started = Instant::now();
        let handled = self
            .handler
            .handle(event(payload, Some(key.expose())), "req-fault")
            .await
            .expect("recognised event");
        let took = started.elapsed();
        assert!(
            took < self.deadline + MARGIN,
            "{payload:?} answered after {took:?}, deadline {:?}",
            self.deadline
        );
        let allowed = allows(payload, &handled.response, None);
        assert_eq!(allowed, handled.allowed, "{}", handled.response);
        (allowed, reason(&handled.response))
    }

    /// Units of quota spent from the key's allowance, read from the emulator.
    async fn spent(&self, record: &KeyRecord) -> u64 {
        allowance_item(&self.direct, record)
            .await
            .get("qu")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

const PAYLOADS: [Payload; 3] = [
    Payload::HttpV2Simple,
    Payload::RestRequest,
    Payload::RestToken,
];

/// Decisions under `fault` for a key whose record is cached (only the
/// conditional write meets the fault) and for a key seen for the first time
/// (the record read meets it first); then the fault clears.
async fn authorizer_under(fault: Fault) {
    let rig = auth_rig().await;
    let (warm, warm_record) = rig.issue().await;
    let (cold, cold_record) = rig.issue().await;
    assert!(rig.decide(Payload::HttpV2Simple, &warm).await.0);

    rig.proxy.set(fault);
    let writes_before = rig.proxy.forwarded("UpdateItem");
    for payload in PAYLOADS {
        let (allowed, why) = rig.decide(payload, &warm).await;
        assert!(!allowed, "{fault:?} {payload:?}: allowed");
        assert_eq!(why.as_deref(), Some("error"), "{fault:?} {payload:?}");
    }
    rig.proxy.settle().await;
    let warm_landed = rig.proxy.forwarded("UpdateItem") - writes_before;

    let writes_before = rig.proxy.forwarded("UpdateItem");
    let (allowed, why) = rig.decide(Payload::HttpV2Simple, &cold).await;
    assert!(!allowed, "{fault:?} cold key: allowed");
    assert_eq!(why.as_deref(), Some("error"), "{fault:?} cold key");
    rig.proxy.settle().await;
    let cold_landed = rig.proxy.forwarded("UpdateItem") - writes_before;

    assert!(rig.proxy.injected() >= 4, "the fault was applied");
    if fault.forwards() {
        // The conditional write reached the table at least once; it may
        // have spent quota, yet its answer never came: still a deny.
        assert!(warm_landed >= 1, "{fault:?}: no write reached the table");
    } else {
        assert_eq!((warm_landed, cold_landed), (0, 0));
    }

    rig.proxy.clear();
    for key in [&warm, &cold] {
        let (allowed, why) = rig.decide(Payload::HttpV2Simple, key).await;
        assert!(allowed, "{fault:?}: not allowed after the fault: {why:?}");
    }
    // Quota spent: the allowed decisions, plus writes that landed unanswered.
    assert_eq!(rig.spent(&warm_record).await, 2 + warm_landed, "{fault:?}");
    assert_eq!(rig.spent(&cold_record).await, 1 + cold_landed, "{fault:?}");
}

#[tokio::test]
async fn authorizer_denies_on_server_errors() {
    authorizer_under(Fault::ServerError).await;
}

#[tokio::test]
async fn authorizer_denies_when_throttled() {
    authorizer_under(Fault::Throttle).await;
}

#[tokio::test]
async fn authorizer_denies_when_dynamodb_is_slower_than_the_deadline() {
    let deadline = authorizer_config("t").settings.deadline;
    authorizer_under(Fault::Latency(deadline + Duration::from_millis(200))).await;
}

#[tokio::test]
async fn authorizer_denies_when_connections_reset() {
    authorizer_under(Fault::Reset).await;
}

#[tokio::test]
async fn authorizer_denies_when_the_write_lands_but_its_answer_is_lost() {
    authorizer_under(Fault::LoseAnswer).await;
}

// ---------------------------------------------------------------- rotation

struct RotationRig {
    proxy: FaultProxy,
    direct: DynamoStore,
    direct_secrets: aws_sdk_secretsmanager::Client,
    /// The rotation function's clients, through the proxy.
    store: DynamoStore,
    secrets: SecretsManager,
    clock: ManualClock,
    settings: rotation::Settings,
    format: KeyFormat,
}

/// Retries as the SDK's standard mode, with short backoff so a test does
/// not sit through seconds of sleeping; an attempt timeout so latency shows
/// up as failure, as it would when a Lambda invocation runs out of time.
fn rotation_sdk_tuning() -> (
    aws_config::retry::RetryConfig,
    aws_config::timeout::TimeoutConfig,
) {
    (
        aws_config::retry::RetryConfig::standard()
            .with_initial_backoff(Duration::from_millis(20))
            .with_max_backoff(Duration::from_millis(100)),
        aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_millis(800))
            .build(),
    )
}

async fn rotation_rig() -> RotationRig {
    let direct = fresh_store().await;
    let sdk = sdk_config().await;
    let proxy = FaultProxy::to_emulator().await;
    let (retries, timeouts) = rotation_sdk_tuning();
    let dynamo = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(proxy.endpoint())
        .retry_config(retries.clone())
        .timeout_config(timeouts.clone())
        .build();
    let secrets = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .endpoint_url(proxy.endpoint())
        .retry_config(retries)
        .timeout_config(timeouts)
        .build();
    let prefix = unique_name("kgf");
    let table = direct.table().to_owned();
    let settings = rotation::Settings::from_lookup(|name| match name {
        "KEYGATE_TABLE" => Some(table.clone()),
        "KEYGATE_KEY_ENV" => Some("test".into()),
        "KEYGATE_SECRET_PREFIX" => Some(prefix.clone()),
        _ => None,
    })
    .unwrap();
    RotationRig {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(dynamo), &table),
        secrets: SecretsManager::new(aws_sdk_secretsmanager::Client::from_conf(secrets)),
        direct_secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        direct,
        proxy,
        clock: ManualClock::at(NOON),
        format: settings.deployment.format.clone(),
        settings,
    }
}

impl RotationRig {
    async fn issue_due(&self) -> KeyRecord {
        let mut spec = KeySpec::new("acme", "svc", vec![Scope::parse("GET /orders/*").unwrap()]);
        spec.rotation_days = 90;
        let (key, record) = mint(&self.format, spec, NOON - 90 * DAY);
        logs::remember(&key);
        self.direct
            .create_key(&record, &audit(&record, AuditAction::Issued))
            .await
            .unwrap();
        record
    }

    async fn run(&self) -> Result<keygate::rotation::Summary, rotation::RunError> {
        let ev: EventBridgeEvent =
            serde_json::from_str(include_str!("../../infra/events/scheduled.json")).unwrap();
        let result = rotation::run(
            &self.store,
            &self.secrets,
            &self.clock,
            &self.format,
            &self.settings,
            SystemTime::now() + Duration::from_secs(120),
            &ev,
        )
        .await;
        let summary = match &result {
            Ok(s) => Some(s),
            Err(rotation::RunError::KeysFailed(s)) => Some(&**s),
            Err(_) => None,
        };
        for (_, new) in summary.map(|s| s.rotated.as_slice()).unwrap_or_default() {
            if let Some(key) = self.current_key(new).await {
                logs::remember(&key);
            }
        }
        result
    }

    async fn record(&self, id: &keygate::id::KeyId) -> KeyRecord {
        self.direct.key_by_id(id).await.unwrap().expect("record")
    }

    /// The key the lineage's secret holds as `AWSCURRENT`, if it is a key.
    async fn current_key(&self, id: &keygate::id::KeyId) -> Option<ApiKey> {
        let record = self.record(id).await;
        let name = secret_name(
            &self.settings.secret_prefix,
            &record.owner,
            &record.allowance_id,
        );
        let text = self
            .direct_secrets
            .get_secret_value()
            .secret_id(name)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .ok()?
            .secret_string?;
        self.format.parse(&text).ok()
    }

    /// Every key of the lineage of `old` other than `old` itself.
    async fn successors(&self, old: &KeyRecord) -> Vec<KeyRecord> {
        let page = self
            .direct
            .list_by_owner(&old.owner, 100, None)
            .await
            .unwrap();
        page.items
            .into_iter()
            .filter(|r| r.allowance_id == old.allowance_id && r.key_id != old.key_id)
            .collect()
    }

    /// Each key rotated exactly once, the successor delivered and current,
    /// and both keys accepted by the authorizer (the old one in its grace).
    async fn assert_consistent(&self, keys: &[KeyRecord]) {
        let table = self.direct.table().to_owned();
        let config = authorizer_config(&table);
        let auth = Handler::new(
            Authorizer::new(
                self.direct.clone(),
                self.clock.clone(),
                config.format.clone(),
                config.auth,
            ),
            config.settings,
            "ak",
        );
        for key in keys {
            let successors = self.successors(key).await;
            assert_eq!(successors.len(), 1, "successors of {}", key.key_id);
            let successor = &successors[0];
            let old = self.record(&key.key_id).await;
            assert_eq!(old.status, KeyStatus::Rotating);
            assert_eq!(old.successor.as_ref(), Some(&successor.key_id));
            assert_eq!(successor.status, KeyStatus::Active);
            assert!(!successor.secret_pending, "delivery unfinished");
            assert_eq!(successor.successor, None);
            let current = self
                .current_key(&key.key_id)
                .await
                .expect("the secret holds a key");
            logs::remember(&current);
            assert_eq!(KeyHash::of(&current), successor.hash);
            let handled = auth
                .handle(event(Payload::HttpV2Simple, Some(current.expose())), "r")
                .await
                .unwrap();
            assert!(handled.allowed, "current key: {}", handled.response);
        }
    }
}

/// A sweep of three due keys under the fault `apply` sets fails; once the
/// fault clears, the next sweep finishes the work and a third finds nothing.
async fn rotation_under(apply: impl FnOnce(&FaultProxy)) {
    let rig = rotation_rig().await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(rig.issue_due().await);
    }
    keygate_tests::caught_up().await; // the due index lists them
    apply(&rig.proxy);
    let failed = rig.run().await;
    assert!(
        failed.is_err(),
        "a sweep under a fault succeeded: {failed:?}"
    );
    assert!(rig.proxy.injected() > 0, "the fault was applied");
    rig.proxy.clear();
    rig.proxy.settle().await;
    // The next scheduled run: the due index shows what the failed one left.
    keygate_tests::caught_up().await;

    let healed = rig.run().await.expect("the sweep after the fault");
    assert!(!healed.more, "{healed:?}");
    keygate_tests::caught_up().await; // the owner index lists the successors
    rig.assert_consistent(&keys).await;
    let again = rig.run().await.expect("a third sweep");
    assert!(
        again.rotated.is_empty() && again.delivered.is_empty() && again.failed.is_empty(),
        "{again:?}"
    );
    rig.assert_consistent(&keys).await;
}

#[tokio::test]
async fn rotation_fails_under_server_errors_then_resumes() {
    rotation_under(|p| p.set(Fault::ServerError)).await;
}

#[tokio::test]
async fn rotation_fails_when_throttled_then_resumes() {
    rotation_under(|p| p.set(Fault::Throttle)).await;
}

#[tokio::test]
async fn rotation_fails_when_connections_reset_then_resumes() {
    rotation_under(|p| p.set(Fault::Reset)).await;
}

#[tokio::test]
async fn rotation_resumes_after_staging_in_secrets_manager_fails() {
    rotation_under(|p| p.set_for("PutSecretValue", Fault::Reset)).await;
}

#[tokio::test]
async fn rotation_resumes_when_the_table_transaction_lands_but_its_answer_is_lost() {
    rotation_under(|p| p.set_for("TransactWriteItems", Fault::LoseAnswer)).await;
}

#[tokio::test]
async fn rotation_resumes_when_the_table_transaction_is_slower_than_the_client() {
    rotation_under(|p| p.set_for("TransactWriteItems", Fault::Latency(Duration::from_secs(1))))
        .await;
}

#[tokio::test]
async fn rotation_resumes_after_promoting_the_secret_fails() {
    rotation_under(|p| p.set_for("UpdateSecretVersionStage", Fault::ServerError)).await;
}

/// A denial is a denial whether or not its usage count lands: when the
/// write that counts it fails, the answer keeps its reason (before the fix
/// it became `error`, hiding why the key was refused), and the lost count
/// is logged.
#[tokio::test]
async fn a_lost_denial_count_keeps_the_denial_reason() {
    let rig = auth_rig().await;
    let (key, record) = rig.issue().await;
    assert!(rig.decide(Payload::HttpV2Simple, &key).await.0);
    rig.proxy.set_for("UpdateItem", Fault::ServerError);
    for payload in PAYLOADS {
        let ev = keygate_tests::events::with_route(
            event(payload, Some(key.expose())),
            "POST",
            "/orders/42",
        );
        let handled = rig.handler.handle(ev, "req-lost-count").await.unwrap();
        assert!(!handled.allowed, "{payload:?}");
        assert_eq!(
            reason(&handled.response).as_deref(),
            Some("scope_denied"),
            "{payload:?}"
        );
    }
    assert!(
        rig.proxy.injected() >= 3,
        "the counting writes met the fault"
    );
    rig.proxy.clear();
    // Nothing was counted, nothing was spent.
    let item = allowance_item(&rig.direct, &record).await;
    let denied = keygate::store::items::usage_attr(
        &keygate::limits::day_string(NOON),
        record.key_id.as_str(),
        "d#scope_denied",
    );
    assert!(!item.contains_key(&denied));
    assert_eq!(rig.spent(&record).await, 1);
}

/// A key whose owner is on a plan: DynamoDB failing on the plan's spend, or
/// on the read of the owner's plan, never ends in an allow; once the fault
/// clears, decisions resume and the plan counts only what was admitted.
#[tokio::test]
async fn authorizer_fails_closed_when_the_plan_allowance_fails() {
    use keygate::manage::Caller;
    use keygate::plans::request::{CreatePlanRequest, SubscribeRequest};
    use keygate::plans::{PlanLimits, PlanService};
    let rig = auth_rig().await;
    let plans = PlanService::new(&rig.direct, &rig.clock);
    let operator = Caller::operator("test");
    let limits = PlanLimits {
        rate: None,
        daily: Some(1_000),
        monthly: None,
    };
    let plan = CreatePlanRequest {
        plan_id: "basic".into(),
        name: "basic".into(),
        limits,
    };
    plans.create(&operator, plan).await.unwrap();
    let to = SubscribeRequest {
        plan_id: Some("basic".into()),
    };
    plans.subscribe(&operator, "acme", to).await.unwrap();
    let (key, _) = rig.issue().await;
    keygate_tests::caught_up().await;
    assert!(rig.decide(Payload::HttpV2Simple, &key).await.0);

    // The plan's spend (the first write of a decision) fails.
    rig.proxy.set_for("UpdateItem", Fault::ServerError);
    let (allowed, why) = rig.decide(Payload::HttpV2Simple, &key).await;
    assert!(!allowed);
    assert_eq!(why.as_deref(), Some("error"));
    rig.proxy.clear();

    // The key record and the owner's plan are read again once the cache
    // ages out, and the reads fail.
    rig.clock.advance(10);
    rig.proxy.set_for("GetItem", Fault::ServerError);
    let (allowed, why) = rig.decide(Payload::HttpV2Simple, &key).await;
    assert!(!allowed);
    assert_eq!(why.as_deref(), Some("error"));
    rig.proxy.clear();

    assert!(rig.decide(Payload::HttpV2Simple, &key).await.0);
    let pk =
        keygate::store::items::allowance_pk(&keygate::store::items::owner_allowance_id("acme"));
    let item = keygate_tests::allowance_part(&rig.direct, pk).await;
    assert_eq!(item["pdu"].as_n().unwrap(), "2", "only the two admitted");
}
