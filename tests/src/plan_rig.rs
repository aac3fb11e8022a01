//! A rig for plan tests against the emulator behind the realism layer:
//! plans, subscriptions and keys of one owner, containers, and bursts of
//! decisions (shared by `tests/plan_limits.rs` and `tests/plan_shards.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use keygate::authorize::{AuthConfig, AuthRequest, Authorizer, Verdict};
use keygate::clock::{Clock, ManualClock};
use keygate::decision::DenyReason;
use keygate::issue::KeySpec;
use keygate::key::{ApiKey, KeyEnv, KeyFormat};
use keygate::limits::{Limits, Period, Quota};
use keygate::manage::Caller;
use keygate::plans::request::{CreatePlanRequest, SubscribeRequest, UpdatePlanRequest};
use keygate::plans::{PlanLimits, PlanService};
use keygate::scope::Scope;
use keygate::store::{items, DynamoStore};

use crate::realism::Config;
use crate::{logs, realism_store, store_key};

/// 2026-11-30T12:00:00Z.
pub const NOON: i64 = 1_796_040_000;
pub const OWNER: &str = "acme";

pub type Container = Authorizer<DynamoStore, ManualClock>;

pub struct Rig {
    pub store: DynamoStore,
    pub clock: ManualClock,
    pub format: KeyFormat,
    pub proxy: crate::realism::RealismProxy,
}

/// A rig with DynamoDB's partition limits times `scale`.
pub async fn rig_at(scale: f64) -> Rig {
    logs::init();
    let (proxy, store) = realism_store(Config {
        scale,
        ..Config::default()
    })
    .await;
    Rig {
        store,
        clock: ManualClock::at(NOON),
        format: KeyFormat::new("ak", KeyEnv::Test).unwrap(),
        proxy,
    }
}

pub async fn rig() -> Rig {
    rig_at(1.0).await
}

pub fn operator() -> Caller {
    Caller::operator("test")
}

impl Rig {
    pub fn plans(&self) -> PlanService<'_, DynamoStore, ManualClock> {
        PlanService::new(&self.store, &self.clock)
    }

    pub async fn plan(&self, plan_id: &str, limits: PlanLimits) {
        let req = CreatePlanRequest {
            plan_id: plan_id.into(),
            name: plan_id.into(),
            limits,
        };
        self.plans().create(&operator(), req).await.expect("plan");
    }

    pub async fn subscribe(&self, plan_id: Option<&str>) {
        let req = SubscribeRequest {
            plan_id: plan_id.map(str::to_owned),
        };
        self.plans()
            .subscribe(&operator(), OWNER, req)
            .await
            .expect("subscribe");
    }

    pub async fn change(&self, plan_id: &str, limits: PlanLimits) {
        let req = UpdatePlanRequest {
            limits: Some(limits),
            ..UpdatePlanRequest::default()
        };
        self.plans()
            .update(&operator(), plan_id, req)
            .await
            .expect("update the plan");
    }

    /// A key of the owner with `limits`, and its record.
    pub async fn key_and_record(&self, limits: Limits) -> (ApiKey, keygate::model::KeyRecord) {
        let mut spec = KeySpec::new(OWNER, "k", vec![Scope::parse("GET /orders/*").unwrap()]);
        spec.limits = limits;
        store_key(&self.store, &self.format, spec, self.clock.now()).await
    }

    pub async fn key(&self, limits: Limits) -> ApiKey {
        self.key_and_record(limits).await.0
    }

    /// Plan `basic` (30 a second, 100 a day, 10,000 a month), the owner
    /// subscribed to it, and three keys of its own without limits.
    pub async fn basic_plan_with_three_keys(&self) -> Vec<ApiKey> {
        let limits = PlanLimits {
            rate: Some(keygate::limits::Rate {
                limit: 30,
                window: 1,
            }),
            daily: Some(100),
            monthly: Some(10_000),
        };
        self.plan("basic", limits).await;
        self.subscribe(Some("basic")).await;
        let mut keys = Vec::new();
        for _ in 0..3 {
            keys.push(self.key(Limits::default()).await);
        }
        keys
    }

    pub fn containers(&self, n: usize) -> Vec<Arc<Container>> {
        self.containers_over(&self.store, n)
    }

    /// `n` containers deciding through `store` (for example one with the
    /// function's production SDK settings).
    pub fn containers_over(&self, store: &DynamoStore, n: usize) -> Vec<Arc<Container>> {
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

    /// The owner's plan allowance item, read strongly consistently (empty
    /// if there is none).
    pub async fn plan_allowance(&self) -> HashMap<String, AttributeValue> {
        let pk = items::allowance_pk(&items::owner_allowance_id(OWNER));
        self.store
            .client()
            .get_item()
            .table_name(self.store.table())
            .key(items::PK, AttributeValue::S(pk))
            .key(items::SK, AttributeValue::S(items::ALLOWANCE_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("read the plan allowance")
            .item
            .unwrap_or_default()
    }
}

pub fn request(key: &ApiKey) -> AuthRequest<'_> {
    crate::orders_request(key)
}

/// A key's own daily quota.
pub fn own_daily(n: u64) -> Limits {
    Limits {
        quota: Some(Quota {
            limit: n,
            period: Period::Day,
        }),
        rate: None,
    }
}

pub fn daily(n: u64) -> PlanLimits {
    PlanLimits {
        rate: None,
        daily: Some(n),
        monthly: None,
    }
}

/// `per_container` decisions on each container, all containers at once,
/// each deciding one at a time, cycling over `keys`.
pub async fn burst(
    containers: &[Arc<Container>],
    keys: &[ApiKey],
    per_container: usize,
) -> Vec<Verdict> {
    let mut tasks = Vec::new();
    for (c, container) in containers.iter().enumerate() {
        let container = container.clone();
        let keys = keys.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..per_container {
                let key = &keys[(c + i) % keys.len()];
                out.push(container.authorize(&request(key)).await.expect("decided"));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Whether `container` allows a request with `key`.
pub async fn allows(container: &Container, key: &ApiKey) -> bool {
    container
        .authorize(&request(key))
        .await
        .expect("decided")
        .decision
        .is_allow()
}

pub fn allowed(verdicts: &[Verdict]) -> usize {
    verdicts.iter().filter(|v| v.decision.is_allow()).count()
}

pub fn denied(verdicts: &[Verdict], reason: DenyReason) -> Vec<&Verdict> {
    verdicts
        .iter()
        .filter(|v| v.decision.deny_reason() == Some(reason))
        .collect()
}
