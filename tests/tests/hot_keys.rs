//! Sharded allowances (issue 14, `shared/src/store/allowance-design.md`)
//! against the emulator behind the realism layer: several containers (each
//! its own `Authorizer`, cache and hints) deciding on one key whose
//! allowance is forced onto more than one shard, and the growth a throttled
//! partition triggers.

use std::sync::Arc;

use keygate::authorize::{AuthConfig, AuthRequest, Authorizer, Credential};
use keygate::clock::{Clock, ManualClock};
use keygate::decision::{Decision, DenyReason};
use keygate::issue::KeySpec;
use keygate::key::{ApiKey, KeyEnv, KeyFormat};
use keygate::limits::{Limits, Period, Quota, Rate};
use keygate::model::KeyRecord;
use keygate::scope::Scope;
use keygate::store::items;
use keygate::store::{Admission, AuditAction, DynamoStore, KeyAdmin, UsageStore};
use keygate_tests::realism::{Config, RealismProxy};
use keygate_tests::{audit, logs, realism_store, store_key};

/// 2026-11-30T12:00:00Z.
const NOON: i64 = 1_796_040_000;

type Container = Authorizer<DynamoStore, ManualClock>;

struct Rig {
    proxy: RealismProxy,
    store: DynamoStore,
    clock: ManualClock,
    format: KeyFormat,
}

async fn rig(scale: f64) -> Rig {
    logs::init();
    let (proxy, store) = realism_store(Config {
        scale,
        ..Config::default()
    })
    .await;
    Rig {
        proxy,
        store,
        clock: ManualClock::at(NOON),
        format: KeyFormat::new("ak", KeyEnv::Test).unwrap(),
    }
}

impl Rig {
    async fn issue(&self, limits: Limits) -> (ApiKey, KeyRecord) {
        let mut spec = KeySpec::new("acme", "hot", vec![Scope::parse("GET /orders/*").unwrap()]);
        spec.limits = limits;
        store_key(&self.store, &self.format, spec, self.clock.now()).await
    }

    fn containers(&self, n: usize) -> Vec<Arc<Container>> {
        self.containers_over(&self.store, n)
    }

    fn containers_over(&self, store: &DynamoStore, n: usize) -> Vec<Arc<Container>> {
        (0..n)
            .map(|_| {
                Arc::new(Authorizer::new(
                    store.clone(),
                    self.clock.clone(),
                    self.format.clone(),
                    AuthConfig::default(),
                ))
            })
            .collect()
    }

    /// Force the allowance onto `shards` shards.
    async fn shard(&self, record: &KeyRecord, shards: u32) {
        let got = self
            .store
            .grow(&record.allowance_id, shards, self.clock.now())
            .await
            .expect("grow");
        assert_eq!(got, shards);
    }

    /// The shard items of an allowance, raw.
    async fn shard_items(
        &self,
        record: &KeyRecord,
        count: u32,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut out = Vec::new();
        for i in 1..=count {
            let pk = items::allowance_shard_pk(&record.allowance_id, i);
            out.push(keygate_tests::allowance_part(&self.store, pk).await);
        }
        out
    }
}

fn request(key: &ApiKey) -> AuthRequest<'_> {
    keygate_tests::orders_request(key)
}

/// `n` decisions spread over `containers`, all at once, each container
/// deciding one at a time as a Lambda container does; (allowed, denials
/// and errors by reason).
async fn burst(
    containers: &[Arc<Container>],
    key: &ApiKey,
    n: usize,
) -> (usize, std::collections::BTreeMap<String, usize>) {
    let key = Arc::new(key.expose().to_owned());
    let per = n / containers.len();
    let extra = n % containers.len();
    let tasks: Vec<_> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (c, key) = (c.clone(), key.clone());
            let count = per + usize::from(i < extra);
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for _ in 0..count {
                    let req = AuthRequest {
                        credential: Credential::Presented(&key),
                        method: "GET",
                        path: "/orders/1",
                        route: Some("GET /orders/{id}"),
                        source_ip: None,
                    };
                    outcomes.push(match c.authorize(&req).await {
                        Ok(v) => match v.decision {
                            Decision::Allow(_) => None,
                            Decision::Deny(r) => Some(r.to_string()),
                        },
                        Err(e) => Some(format!("error: {e}: {:?}", std::error::Error::source(&e))),
                    });
                }
                outcomes
            })
        })
        .collect();
    let mut allowed = 0;
    let mut denied = std::collections::BTreeMap::new();
    for t in tasks {
        for outcome in t.await.unwrap() {
            match outcome {
                None => allowed += 1,
                Some(reason) => *denied.entry(reason).or_default() += 1,
            }
        }
    }
    (allowed, denied)
}

fn quota(limit: u64) -> Limits {
    Limits {
        quota: Some(Quota {
            limit,
            period: Period::Day,
        }),
        rate: None,
    }
}

#[tokio::test]
async fn a_sharded_quota_admits_exactly_its_limit_under_concurrency() {
    let rig = rig(1.0).await;
    let (key, record) = rig.issue(quota(50)).await;
    // Some use before it goes hot: counted against the same quota.
    let first = rig.containers(1);
    let (allowed, _) = burst(&first, &key, 5).await;
    assert_eq!(allowed, 5);
    rig.shard(&record, 4).await;
    let containers = rig.containers(6);
    let (allowed, denied) = burst(&containers, &key, 200).await;
    assert_eq!(allowed, 45, "exactly the quota: {denied:?}");
    assert_eq!(denied.get("quota_exceeded"), Some(&155), "{denied:?}");
    // Every shard took part, and none admitted past its slice.
    let shards = rig.shard_items(&record, 4).await;
    let used: Vec<i64> = shards
        .iter()
        .map(|s| s["qu"].as_n().unwrap().parse().unwrap())
        .collect();
    let slices: Vec<i64> = shards
        .iter()
        .map(|s| s["ql"].as_n().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        slices.iter().sum::<i64>(),
        45,
        "slices sum to what was left"
    );
    assert_eq!(used, slices, "every slice spent: no under-admission");
    // Readers see one allowance: the allowed counts of root and shards summed.
    let merged = rig
        .store
        .allowances(std::slice::from_ref(&record.allowance_id))
        .await
        .unwrap();
    let ok = items::usage_attr(
        &keygate::limits::day_string(NOON),
        record.key_id.as_str(),
        "ok",
    );
    assert_eq!(merged[&record.allowance_id][&ok].as_n().unwrap(), "50");
}

#[tokio::test]
async fn a_sharded_rate_limit_admits_exactly_its_window() {
    let rig = rig(1.0).await;
    let limits = Limits {
        quota: None,
        rate: Some(Rate {
            limit: 30,
            window: 60,
        }),
    };
    let (key, record) = rig.issue(limits).await;
    rig.shard(&record, 4).await;
    let containers = rig.containers(5);
    let (allowed, denied) = burst(&containers, &key, 120).await;
    assert_eq!(allowed, 30, "{denied:?}");
    assert_eq!(denied.get("rate_limited"), Some(&90), "{denied:?}");
    // The next window starts each shard on its even share again.
    rig.clock.advance(60);
    let (allowed, denied) = burst(&containers, &key, 60).await;
    assert_eq!(allowed, 30, "{denied:?}");
    let shards = rig.shard_items(&record, 4).await;
    let slices: Vec<&str> = shards
        .iter()
        .map(|s| s["rl"].as_n().unwrap().as_str())
        .collect();
    assert_eq!(slices, ["8", "8", "7", "7"]);
}

#[tokio::test]
async fn the_quota_rolls_over_at_midnight_on_every_shard() {
    let rig = rig(1.0).await;
    rig.clock.set(NOON + 12 * 3600 - 30); // 23:59:30
    let (key, record) = rig.issue(quota(20)).await;
    rig.shard(&record, 4).await;
    let containers = rig.containers(4);
    let (allowed, _) = burst(&containers, &key, 40).await;
    assert_eq!(allowed, 20);
    rig.clock.advance(60); // 00:00:30 the next day
    let (allowed, denied) = burst(&containers, &key, 40).await;
    assert_eq!(
        allowed, 20,
        "a fresh day, exactly the quota again: {denied:?}"
    );

    // A key used yesterday, going hot today: its root counts yesterday, and
    // today's whole quota goes to the shards.
    rig.clock.set(NOON);
    let (key, record) = rig.issue(quota(20)).await;
    let (allowed, _) = burst(&rig.containers(1), &key, 7).await;
    assert_eq!(allowed, 7);
    rig.clock.advance(86_400);
    rig.shard(&record, 4).await;
    let (allowed, denied) = burst(&rig.containers(4), &key, 40).await;
    assert_eq!(allowed, 20, "{denied:?}");
}

#[tokio::test]
async fn a_revoke_is_immediate_on_every_shard() {
    let rig = rig(1.0).await;
    let (key, record) = rig.issue(Limits::default()).await;
    rig.shard(&record, 4).await;
    // Every container caches the live record and has written to shards.
    let containers = rig.containers(4);
    let (allowed, _) = burst(&containers, &key, 40).await;
    assert_eq!(allowed, 40);
    let revoked = rig
        .store
        .revoke(&record.key_id, NOON, &audit(&record, AuditAction::Revoked))
        .await
        .unwrap();
    assert_eq!(revoked.status, keygate::model::KeyStatus::Revoked);
    for c in &containers {
        for _ in 0..4 {
            let v = c.authorize(&request(&key)).await.unwrap();
            assert_eq!(v.decision, Decision::Deny(DenyReason::Revoked));
        }
    }
    // Every shard's copy of the version map dropped the key.
    for shard in rig.shard_items(&record, 4).await {
        assert!(shard["kv"].as_m().unwrap().is_empty(), "{shard:?}");
    }
}

#[tokio::test]
async fn a_rotated_key_and_its_successor_share_the_shards() {
    let rig = rig(1.0).await;
    let (old_key, old) = rig.issue(quota(30)).await;
    rig.shard(&old, 4).await;
    let now = rig.clock.now();
    let (new_key, successor) = keygate::issue::successor(&rig.format, &old, now);
    logs::remember(&new_key);
    rig.store
        .rotate(&old, &successor, now + 3600, now, "operator:test")
        .await
        .unwrap();
    let containers = rig.containers(4);
    let (a, _) = burst(&containers, &old_key, 30).await;
    let (b, denied) = burst(&containers, &new_key, 30).await;
    assert_eq!(a + b, 30, "one quota for both: {denied:?}");
    assert!(b < 30 && a > 0);
}

#[tokio::test]
async fn changing_the_limits_reslices_the_shards() {
    let rig = rig(1.0).await;
    let (key, record) = rig.issue(quota(40)).await;
    rig.shard(&record, 4).await;
    let containers = rig.containers(4);
    let (allowed, _) = burst(&containers, &key, 20).await;
    assert_eq!(allowed, 20);
    // Raised mid-day: what was used stays used.
    let mut raised = record.clone();
    raised.version += 1;
    raised.limits = quota(50);
    rig.store
        .update_key(&record, &raised, &audit(&raised, AuditAction::Updated))
        .await
        .unwrap();
    let (allowed, denied) = burst(&containers, &key, 60).await;
    assert_eq!(allowed, 30, "50 in all today: {denied:?}");
    // Lowered below what was used: denied from the next request on.
    let mut lowered = raised.clone();
    lowered.version += 1;
    lowered.limits = quota(10);
    rig.store
        .update_key(&raised, &lowered, &audit(&lowered, AuditAction::Updated))
        .await
        .unwrap();
    let (allowed, denied) = burst(&containers, &key, 10).await;
    assert_eq!(allowed, 0, "{denied:?}");
}

#[tokio::test]
async fn one_write_unit_per_allowed_decision_on_a_shard() {
    let rig = rig(1.0).await;
    let (key, record) = rig.issue(quota(1_000_000)).await;
    rig.shard(&record, 4).await;
    rig.proxy.reset();
    let containers = rig.containers(4);
    let (allowed, _) = burst(&containers, &key, 100).await;
    assert_eq!(allowed, 100);
    let table = rig.store.table().to_owned();
    let mut units = 0.0;
    for i in 1..=4 {
        let pk = items::allowance_shard_pk(&record.allowance_id, i);
        units += rig.proxy.usage(&table, None, &pk).write_units;
    }
    assert!(
        (units - 100.0).abs() < f64::EPSILON,
        "one write unit per allowed decision, not {units}"
    );
    for shard in rig.shard_items(&record, 4).await {
        let size = keygate::store::size::item_size(&shard);
        assert!(size <= 1024, "a shard item is {size} bytes");
    }
}

#[tokio::test]
async fn a_quiet_key_still_costs_one_request_per_allowed_decision() {
    let rig = rig(1.0).await;
    let (key, _record) = rig.issue(quota(1_000)).await;
    let container = rig.containers(1).remove(0);
    container.authorize(&request(&key)).await.unwrap();
    rig.proxy.reset();
    for _ in 0..20 {
        let v = container.authorize(&request(&key)).await.unwrap();
        assert!(matches!(v.decision, Decision::Allow(_)));
        assert_eq!(v.requests, 1);
    }
    assert_eq!(rig.proxy.requests("UpdateItem").received, 20);
    let all: u64 = rig.proxy.all_requests().values().map(|r| r.received).sum();
    assert_eq!(all, 20, "{:?}", rig.proxy.all_requests());
}

#[tokio::test]
async fn a_flood_over_quota_is_denied_locally_and_still_counted() {
    let rig = rig(1.0).await;
    let (key, record) = rig.issue(quota(5)).await;
    let container = rig.containers(1).remove(0);
    let mut requests = 0;
    let mut denied = 0;
    for _ in 0..400 {
        let v = container.authorize(&request(&key)).await.unwrap();
        requests += v.requests;
        if matches!(v.decision, Decision::Deny(DenyReason::QuotaExceeded)) {
            denied += 1;
        }
    }
    assert_eq!(denied, 395);
    // 1 read, 5 admissions, 1 refused write and its denial count; the rest
    // were decided in the container.
    assert!(
        f64::from(requests - 6) / 395.0 <= 0.05,
        "{requests} requests for 395 denials"
    );
    // A second later the counted denials are flushed with the next decision.
    rig.clock.advance(keygate::authorize::local::FLUSH_AFTER);
    container.authorize(&request(&key)).await.unwrap();
    let merged = rig
        .store
        .allowances(std::slice::from_ref(&record.allowance_id))
        .await
        .unwrap();
    let name = items::usage_attr(
        &keygate::limits::day_string(NOON),
        record.key_id.as_str(),
        "d#quota_exceeded",
    );
    assert_eq!(
        merged[&record.allowance_id][&name].as_n().unwrap(),
        "396",
        "every denial counted"
    );
}

#[tokio::test]
async fn a_throttled_allowance_grows_and_no_decision_under_the_limit_is_denied() {
    // A partition takes 20 write units a second here (DynamoDB's 1,000
    // scaled by 0.02): eight containers writing one item throttle within
    // the first second, and the allowance must grow past it.
    let rig = rig(0.02).await;
    let (key, record) = rig.issue(quota(1_000_000)).await;
    let store = keygate_tests::production_store(&rig.proxy.endpoint(), rig.store.table()).await;
    let containers = rig.containers_over(&store, 8);
    let ticking = keygate_tests::ticking(&rig.clock);
    let (allowed, denied) = burst(&containers, &key, 240).await;
    drop(ticking);
    let grown = rig
        .store
        .allowances(std::slice::from_ref(&record.allowance_id))
        .await
        .unwrap()[&record.allowance_id]
        .get(items::alw::SHARDS)
        .and_then(|v| v.as_n().ok())
        .cloned();
    assert!(
        grown.is_some(),
        "the allowance grew: {allowed} allowed, {denied:?}"
    );
    // Nothing under the limit is denied for throughput. A request timing
    // out at the function's 1.5 s budget on a loaded test machine (the
    // emulator is slow, not throttled) is not the system under test.
    let timeouts: usize = denied
        .iter()
        .filter(|(reason, _)| reason.contains("TimeoutError"))
        .map(|(_, n)| n)
        .sum();
    assert!(timeouts <= 4, "{denied:?}");
    assert_eq!(allowed + timeouts, 240, "{denied:?}, shards: {grown:?}");
}

#[tokio::test]
async fn no_part_of_the_quota_sits_on_shards_the_rate_never_lets_a_container_choose() {
    // 40 a day at 2 a second over 4 shards: containers choose shards 1 and
    // 2 only (the rate has two units a window), so the quota must be there.
    let rig = rig(1.0).await;
    let limits = Limits {
        quota: Some(Quota {
            limit: 40,
            period: Period::Day,
        }),
        rate: Some(Rate {
            limit: 2,
            window: 1,
        }),
    };
    let (key, record) = rig.issue(limits).await;
    rig.shard(&record, 4).await;
    let container = rig.containers(1).remove(0);
    let mut allowed = 0;
    for _ in 0..30 {
        for _ in 0..2 {
            let v = container.authorize(&request(&key)).await.unwrap();
            allowed += usize::from(matches!(v.decision, Decision::Allow(_)));
        }
        rig.clock.advance(1);
    }
    assert_eq!(allowed, 40, "the whole quota, over the shards in use");
}

#[tokio::test]
async fn a_sharded_key_can_change_its_period_and_its_window() {
    let rig = rig(1.0).await;
    let mut limits = quota(40);
    limits.rate = Some(Rate {
        limit: 100,
        window: 1,
    });
    let (key, record) = rig.issue(limits).await;
    rig.shard(&record, 4).await;
    let containers = rig.containers(4);
    let (allowed, _) = burst(&containers, &key, 10).await;
    assert_eq!(allowed, 10);
    // A daily quota becomes a monthly one, a 1 s window a minute: today's
    // use carries into the month.
    let mut monthly = record.clone();
    monthly.version += 1;
    monthly.limits = Limits {
        quota: Some(Quota {
            limit: 30,
            period: Period::Month,
        }),
        rate: Some(Rate {
            limit: 100,
            window: 60,
        }),
    };
    rig.store
        .update_key(&record, &monthly, &audit(&monthly, AuditAction::Updated))
        .await
        .expect("a period change on a sharded key");
    let (allowed, denied) = burst(&containers, &key, 40).await;
    assert_eq!(allowed, 20, "30 this month, 10 used today: {denied:?}");
}

#[tokio::test]
async fn a_revoke_completes_a_growth_left_half_made() {
    let rig = rig(1.0).await;
    let (key, record) = rig.issue(quota(100)).await;
    // Step one of going hot (the root takes its shard count) with no step
    // two: the container that grew it was frozen in between.
    rig.store
        .client()
        .update_item()
        .table_name(rig.store.table())
        .key(
            items::PK,
            aws_sdk_dynamodb::types::AttributeValue::S(items::allowance_pk(&record.allowance_id)),
        )
        .key(
            items::SK,
            aws_sdk_dynamodb::types::AttributeValue::S(items::ALLOWANCE_SK.into()),
        )
        .update_expression("SET #sh = :n")
        .expression_attribute_names("#sh", items::alw::SHARDS)
        .expression_attribute_values(":n", aws_sdk_dynamodb::types::AttributeValue::N("4".into()))
        .send()
        .await
        .unwrap();
    rig.store
        .revoke(&record.key_id, NOON, &audit(&record, AuditAction::Revoked))
        .await
        .expect("the revoke makes the missing shards, then lands");
    let container = rig.containers(1).remove(0);
    let v = container.authorize(&request(&key)).await.unwrap();
    assert_eq!(v.decision, Decision::Deny(DenyReason::Revoked));
    for shard in rig.shard_items(&record, 4).await {
        assert!(shard["kv"].as_m().unwrap().is_empty(), "{shard:?}");
    }
}
