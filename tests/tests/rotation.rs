//! Scheduled rotation against the emulator's DynamoDB and Secrets Manager,
//! checked through the real authorizer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use authorizer::response::V2Response;
use authorizer::Settings as AuthSettings;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use keygate::authorize::{AuthConfig, Authorizer};
use keygate::clock::{Clock, ManualClock};
use keygate::config::Deployment;
use keygate::hash::KeyHash;
use keygate::id::KeyId;
use keygate::issue::{mint, KeySpec};
use keygate::key::{ApiKey, KeyEnv, KeyFormat};
use keygate::limits::{Period, Quota};
use keygate::model::{KeyRecord, KeyStatus};
use keygate::rotation::{sweep, Budget, Delivery, Summary};
use keygate::scope::Scope;
use keygate::secrets::{secret_name, SecretError, SecretSink, SecretsManager};
use keygate::store::{AuditAction, DynamoStore, KeyAdmin};
use keygate_tests::events::{event, Payload};
use keygate_tests::{audit, fresh_store, logs, sdk_config, unique_name};
use rotation::Settings;

const T0: i64 = 1_790_000_000;
const DAY: i64 = 86_400;

struct Rig {
    store: DynamoStore,
    clock: ManualClock,
    format: KeyFormat,
    secrets: SecretsManager,
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
}

async fn rig() -> Rig {
    let store = fresh_store().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    Rig {
        store,
        clock: ManualClock::at(T0),
        format: KeyFormat::new("ak", KeyEnv::Test).unwrap(),
        secrets: SecretsManager::new(client.clone()),
        client,
        prefix: unique_name("kg"),
    }
}

impl Rig {
    async fn issue(&self, rotation_days: u32, quota: Option<u64>) -> (ApiKey, KeyRecord) {
        let mut spec = KeySpec::new("acme", "svc", vec![Scope::parse("GET /orders/*").unwrap()]);
        spec.rotation_days = rotation_days;
        spec.limits.quota = quota.map(|limit| Quota {
            limit,
            period: Period::Month,
        });
        let (key, record) = mint(&self.format, spec, self.clock.now());
        logs::remember(&key);
        // A thousand keys of one owner in a burst meet the owner index
        // partition's write limit (scaled down in `make test`): a cancelled
        // transaction decided nothing, and a client retries it, as the
        // API's 503 with Retry-After asks.
        let mut attempts = 0;
        loop {
            match self
                .store
                .create_key(&record, &audit(&record, AuditAction::Issued))
                .await
            {
                Ok(()) => break,
                Err(keygate::store::StoreError::Cancelled(reasons)) if attempts < 50 => {
                    assert!(reasons.iter().all(|r| r != "ConditionalCheckFailed"));
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("issuing a fixture key: {e:?}"),
            }
        }
        (key, record)
    }

    fn budget(&self, max_keys: usize) -> Budget {
        Budget {
            until: Instant::now() + Duration::from_secs(600),
            max_keys,
            grace_seconds: DAY,
        }
    }

    /// One scheduled run. Runs are an hour apart in production: the due
    /// index has long caught up with the previous one's writes.
    async fn sweep_with(&self, secrets: &impl SecretSink, max_keys: usize) -> Summary {
        keygate_tests::caught_up().await;
        let delivery = Delivery {
            secrets,
            prefix: &self.prefix,
        };
        let summary = sweep(
            &self.store,
            &self.clock,
            &self.format,
            &delivery,
            self.budget(max_keys),
            "system:test",
        )
        .await
        .unwrap();
        for (_, new) in &summary.rotated {
            // Remember every delivered successor for the log check.
            if let Some(k) = self.current_key_of(new).await {
                logs::remember(&k);
            }
        }
        summary
    }

    async fn sweep(&self) -> Summary {
        self.sweep_with(&self.secrets, 10_000).await
    }

    async fn record(&self, id: &KeyId) -> KeyRecord {
        self.store.key_by_id(id).await.unwrap().unwrap()
    }

    fn secret(&self, record: &KeyRecord) -> String {
        secret_name(&self.prefix, &record.owner, &record.allowance_id)
    }

    async fn read(&self, name: &str, stage: &str) -> Option<String> {
        self.client
            .get_secret_value()
            .secret_id(name)
            .version_stage(stage)
            .send()
            .await
            .ok()
            .and_then(|o| o.secret_string)
    }

    /// The plaintext the lineage's secret holds as current, if it is a key.
    async fn current_key_of(&self, id: &KeyId) -> Option<ApiKey> {
        let record = self.record(id).await;
        let text = self.read(&self.secret(&record), "AWSCURRENT").await?;
        self.format.parse(&text).ok()
    }

    fn authorizer(&self) -> authorizer::Handler<DynamoStore, ManualClock> {
        authorizer::Handler::new(
            Authorizer::new(
                self.store.clone(),
                self.clock.clone(),
                self.format.clone(),
                AuthConfig::default(),
            ),
            AuthSettings {
                v2_response: V2Response::Simple,
                deadline: Duration::from_secs(30),
            },
            "ak",
        )
    }
}

async fn decide(
    h: &authorizer::Handler<DynamoStore, ManualClock>,
    key: &ApiKey,
) -> serde_json::Value {
    h.handle(event(Payload::HttpV2Simple, Some(key.expose())), "r")
        .await
        .unwrap()
        .response
}

#[tokio::test]
async fn due_keys_rotate_and_deliver_others_stay_untouched() {
    let rig = rig().await;
    let (_, due90) = rig.issue(90, None).await;
    let (_, due30) = rig.issue(30, None).await;
    let (_, never) = rig.issue(0, None).await;
    rig.clock.set(T0 + 80 * DAY);
    let (_, young) = rig.issue(90, None).await;
    rig.clock.set(T0 + 90 * DAY - 1);
    let early = rig.sweep().await;
    assert_eq!(
        early.rotated.len(),
        1,
        "only the 30-day key is due yet: {early:?}"
    );
    assert_eq!(early.rotated[0].0, due30.key_id);

    rig.clock.set(T0 + 90 * DAY);
    let summary = rig.sweep().await;
    assert_eq!(
        summary.rotated.iter().map(|r| &r.0).collect::<Vec<_>>(),
        vec![&due90.key_id]
    );
    assert!(summary.failed.is_empty() && !summary.more);
    for untouched in [&never, &young] {
        assert_eq!(
            rig.record(&untouched.key_id).await.status,
            KeyStatus::Active
        );
    }
    let old = rig.record(&due90.key_id).await;
    assert_eq!(old.status, KeyStatus::Rotating);
    assert_eq!(old.grace_until, Some(T0 + 91 * DAY));
    let successor = rig.record(old.successor.as_ref().unwrap()).await;
    assert_eq!(successor.status, KeyStatus::Active);
    assert!(!successor.secret_pending);
    assert_eq!(
        (successor.scopes.clone(), successor.allowance_id.clone()),
        (old.scopes.clone(), old.allowance_id.clone())
    );
    // The secret holds the successor, and only its hash is in the table.
    let delivered = rig
        .current_key_of(&successor.key_id)
        .await
        .expect("secret holds a key");
    assert_eq!(KeyHash::of(&delivered), successor.hash);
    // The successor is due again 90 days after its own creation.
    assert_eq!(successor.rotation_due(), Some(T0 + 180 * DAY));
}

#[tokio::test]
async fn through_the_authorizer_the_old_key_works_until_its_grace_ends_and_the_quota_is_shared() {
    let rig = rig().await;
    let auth = rig.authorizer();
    let (old_key, old) = rig.issue(90, Some(4)).await;
    rig.clock.set(T0 + 90 * DAY);
    assert_eq!(decide(&auth, &old_key).await["isAuthorized"], true);
    rig.sweep().await;
    let new_key = rig.current_key_of(&old.key_id).await.unwrap();
    assert_ne!(new_key, old_key);
    // Three left in the month, shared: not three per key.
    for key in [&new_key, &old_key, &new_key] {
        assert_eq!(decide(&auth, key).await["isAuthorized"], true);
    }
    assert_eq!(
        decide(&auth, &old_key).await["context"]["reason"],
        "quota_exceeded"
    );
    assert_eq!(
        decide(&auth, &new_key).await["context"]["reason"],
        "quota_exceeded"
    );
    // Grace passes: the old key is denied even before the sweep retires it...
    rig.clock.set(T0 + 91 * DAY);
    assert_eq!(
        decide(&auth, &old_key).await["context"]["reason"],
        "expired"
    );
    // ...and the sweep retires it, with an audit event.
    let summary = rig.sweep().await;
    assert_eq!(summary.retired, vec![old.key_id.clone()]);
    assert_eq!(rig.record(&old.key_id).await.status, KeyStatus::Retired);
    assert_eq!(
        decide(&auth, &old_key).await["context"]["reason"],
        "expired"
    );
    let trail = rig.store.events(&old.key_id, 10, None).await.unwrap().items;
    let actions: Vec<AuditAction> = trail.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::Issued,
            AuditAction::Rotated,
            AuditAction::Expired
        ]
    );
    // Next month the successor has the whole quota.
    rig.clock.set(Period::Month.window(T0 + 91 * DAY).end);
    assert_eq!(
        decide(&auth, &new_key).await["context"]["quotaRemaining"],
        3
    );
}

async fn successors_of(rig: &Rig, record: &KeyRecord) -> usize {
    keygate_tests::caught_up().await; // the owner index lists them
    let page = rig
        .store
        .list_by_owner(&record.owner, 100, None)
        .await
        .unwrap();
    page.items
        .iter()
        .filter(|r| r.allowance_id == record.allowance_id && r.key_id != record.key_id)
        .count()
}

#[tokio::test]
async fn repeated_and_concurrent_runs_make_exactly_one_successor_per_key() {
    let rig = rig().await;
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(rig.issue(90, None).await.1);
    }
    rig.clock.set(T0 + 90 * DAY);
    let (a, b) = tokio::join!(rig.sweep(), rig.sweep());
    assert_eq!(a.rotated.len() + b.rotated.len(), 5, "{a:?} {b:?}");
    assert!(a.failed.is_empty() && b.failed.is_empty(), "{a:?} {b:?}");
    let again = rig.sweep().await;
    assert!(again.rotated.is_empty(), "{again:?}");
    for key in &keys {
        assert_eq!(successors_of(&rig, key).await, 1);
        // The secret holds the one successor.
        let old = rig.record(&key.key_id).await;
        let current = rig.current_key_of(&key.key_id).await.unwrap();
        assert_eq!(
            KeyHash::of(&current),
            rig.record(old.successor.as_ref().unwrap()).await.hash
        );
    }
}

/// Secrets Manager that fails the first `promote` calls, as a crash between
/// the table transaction and the promotion would.
struct FailingPromote<'a> {
    inner: &'a SecretsManager,
    failures: AtomicU32,
}

#[async_trait]
impl SecretSink for FailingPromote<'_> {
    async fn stage(&self, name: &str, key_id: &KeyId, key: &ApiKey) -> Result<(), SecretError> {
        self.inner.stage(name, key_id, key).await
    }
    async fn promote(&self, name: &str, key_id: &KeyId) -> Result<(), SecretError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            // A real Secrets Manager error, from a secret that does not exist.
            return self
                .inner
                .promote("keygate-no-such-secret/x/y", key_id)
                .await;
        }
        self.inner.promote(name, key_id).await
    }
    async fn version_of(&self, name: &str, key_id: &KeyId) -> Result<Option<String>, SecretError> {
        self.inner.version_of(name, key_id).await
    }
}

#[tokio::test]
async fn a_failure_mid_rotation_then_a_normal_run_ends_consistent() {
    let rig = rig().await;
    let auth = rig.authorizer();
    let (old_key, old) = rig.issue(90, None).await;
    rig.clock.set(T0 + 90 * DAY);
    let flaky = FailingPromote {
        inner: &rig.secrets,
        failures: AtomicU32::new(1),
    };
    let broken = rig.sweep_with(&flaky, 100).await;
    assert_eq!(broken.failed.len(), 1, "{broken:?}");
    // The table committed the successor but the secret did not promote it:
    // the secret holds its placeholder, never a key that is not active, and
    // the old key keeps working.
    let rotated = rig.record(&old.key_id).await;
    let successor = rig.record(rotated.successor.as_ref().unwrap()).await;
    assert!(successor.secret_pending);
    assert_eq!(
        rig.read(&rig.secret(&old), "AWSCURRENT").await.as_deref(),
        Some(keygate::secrets::PLACEHOLDER)
    );
    assert_eq!(decide(&auth, &old_key).await["isAuthorized"], true);

    let healed = rig.sweep().await;
    assert_eq!(
        healed.delivered,
        vec![successor.key_id.clone()],
        "{healed:?}"
    );
    assert!(healed.rotated.is_empty() && healed.failed.is_empty());
    let successor = rig.record(&successor.key_id).await;
    assert!(!successor.secret_pending);
    let current = rig.current_key_of(&old.key_id).await.unwrap();
    assert_eq!(KeyHash::of(&current), successor.hash);
    assert_eq!(decide(&auth, &current).await["isAuthorized"], true);
    assert_eq!(successors_of(&rig, &old).await, 1);
}

#[tokio::test]
async fn a_thousand_due_keys_are_handled_within_the_budget_or_continued() {
    let rig = rig().await;
    let mut ids = Vec::new();
    for _ in 0..1000 {
        ids.push(rig.issue(90, None).await.1.key_id);
    }
    rig.clock.set(T0 + 90 * DAY);
    // Each run may handle at most 400 keys: three runs, each saying whether
    // work is left, and nothing handled twice. A transaction cancelled for
    // throughput (`make test` scales the partition limits down, and 1,000
    // rotations in a burst meet them) fails its key in that run, which is
    // reported so Lambda retries: the key is still due, and a later run
    // rotates it, as the scheduled function's retry would.
    let mut rotated = Vec::new();
    let mut runs = 0;
    let mut retried = 0;
    loop {
        let started = Instant::now();
        let summary = rig.sweep_with(&rig.secrets, 400).await;
        runs += 1;
        for (key, reason) in &summary.failed {
            assert!(
                reason.contains("Throttl") || reason.contains("DynamoDB request failed"),
                "{key}: {reason}"
            );
        }
        retried += summary.failed.len();
        assert!(summary.rotated.len() <= 400);
        eprintln!(
            "run {runs}: {} rotated, {} to retry, in {:?}",
            summary.rotated.len(),
            summary.failed.len(),
            started.elapsed()
        );
        rotated.extend(summary.rotated.into_iter().map(|r| r.0));
        if !summary.more && summary.failed.is_empty() {
            break;
        }
        assert!(runs < 8, "does not converge");
    }
    // Three runs of 400, plus one for each run that left throttled keys.
    assert!(runs == 3 || (retried > 0 && runs > 3), "{runs} runs");
    rotated.sort();
    rotated.dedup();
    ids.sort();
    assert_eq!(rotated, ids);
}

#[tokio::test]
async fn the_function_reports_failures_so_lambda_retries_them() {
    let rig = rig().await;
    rig.issue(90, None).await;
    let settings = Settings::from_lookup(|name| match name {
        "KEYGATE_TABLE" => Some(rig.store.table().to_owned()),
        "KEYGATE_KEY_ENV" => Some("test".into()),
        "KEYGATE_SECRET_PREFIX" => Some(rig.prefix.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(settings.grace_seconds, DAY);
    let Deployment { format, .. } = settings.deployment.clone();
    let ev: EventBridgeEvent =
        serde_json::from_str(include_str!("../../infra/events/scheduled.json")).unwrap();
    let deadline = SystemTime::now() + Duration::from_secs(120);
    rig.clock.set(T0 + 90 * DAY);
    keygate_tests::caught_up().await; // the due index lists the key
    let ok = rotation::run(
        &rig.store,
        &rig.secrets,
        &rig.clock,
        &format,
        &settings,
        deadline,
        &ev,
    )
    .await
    .unwrap();
    assert_eq!(ok.rotated.len(), 1);
    // A deadline already past: nothing is started, and the run says more is left.
    rig.issue(1, None).await;
    rig.clock.set(T0 + 200 * DAY);
    keygate_tests::caught_up().await;
    let late = rotation::run(
        &rig.store,
        &rig.secrets,
        &rig.clock,
        &format,
        &settings,
        SystemTime::now(),
        &ev,
    )
    .await
    .unwrap();
    assert!(late.more && late.rotated.is_empty());
    // Secrets Manager failing for every key: the invocation errs with the summary.
    let flaky = FailingPromote {
        inner: &rig.secrets,
        failures: AtomicU32::new(100),
    };
    keygate_tests::caught_up().await;
    let err = rotation::run(
        &rig.store, &flaky, &rig.clock, &format, &settings, deadline, &ev,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, rotation::RunError::KeysFailed(ref s) if !s.failed.is_empty()),
        "{err}"
    );
}
