//! One scenario, run in virtual time: a key issued through the real store,
//! Lambda-like containers (each a real authorizer `Handler` with its own SDK
//! client, cache and counter hints, one request at a time), and a load
//! generator that hands each decision to a free container, starting more
//! as all are busy, up to a cap beyond which requests are refused (Lambda's
//! concurrency limit), never queued.
//!
//! Every decision is recorded with the time it arrived, the clock second
//! the authorizer decided in, when it answered, and what it answered: the
//! ground truth [`super::report`] checks the limits against.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::clock::{Clock, Timestamp};
use keygate::limits::Limits;
use keygate::scope::Scope;
use keygate::store::{AuditAction, DynamoStore, KeyAdmin};
use keygate::table::TableSpec;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::http::{Latency, SimClient};
use super::model::{Model, Stats};
use crate::events::{self, Payload};

/// The simulated table's name.
pub const TABLE: &str = "keygate-sim";

/// Routes the key is used on (distinct usage counters, as a busy API has).
pub const ROUTES: usize = 30;
/// Distinct client addresses (more than the item's 20 address slots).
pub const CLIENT_IPS: usize = 200;

/// Time a new container takes before its first decision (an assumption:
/// Lambda's sandbox start plus the 4-20 ms process start BENCHMARKS.md
/// measures for the authorizer).
pub const COLD_START: Duration = Duration::from_millis(50);

/// The reason recorded for a request refused because every container was
/// busy at the cap (Lambda answers `TooManyRequestsException`; API Gateway
/// then refuses the request).
pub const AT_CAP: &str = "no_container";

/// How the offered load moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// The rate from the start, with containers already warm (created and
    /// initialised; their caches still empty).
    Steady,
    /// One second at 1% of the rate from no containers at all, then a step
    /// to the full rate: containers start as Lambda scales out.
    Burst,
}

/// One scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scenario {
    pub name: String,
    /// Offered decisions per second for the one key.
    pub rate: f64,
    /// Virtual seconds of load.
    pub seconds: f64,
    pub shape: Shape,
    pub limits: Limits,
    /// Keys of the owner sharing the load (1: one hot key). With a `plan`,
    /// the owner is on it and every key spends from it; the keys have no
    /// limits of their own.
    pub keys: usize,
    pub plan: Option<keygate::plans::PlanLimits>,
    /// Quota already used in the run's first quota period when it starts
    /// (a client that spent its quota and keeps calling: a flood).
    pub spent: u64,
    /// Wall-clock start of the run (epoch seconds, UTC).
    pub start: Timestamp,
    /// Concurrent containers at most (Lambda's default account concurrency
    /// is 1,000).
    pub max_containers: usize,
    pub seed: u64,
}

/// One decision as it happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// When the request arrived (virtual seconds since the run started).
    pub arrived: f64,
    /// The authorizer clock's reading it decided at (`Handled::at`: read
    /// at the start, and again when the decision found itself late).
    pub now: Timestamp,
    /// Seconds from arrival to answer (container wait and cold start included).
    pub latency: f64,
    pub allowed: bool,
    /// The deny reason's wire name (`error` for a system failure).
    pub reason: Option<&'static str>,
    /// DynamoDB requests the authorizer counted for it.
    pub requests: u32,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Run {
    pub outcomes: Vec<Outcome>,
    pub stats: Stats,
    pub containers: usize,
    /// The model's stats right after the key was issued (not the run's).
    pub setup: Stats,
    /// The run's stats when the first request of its second half arrived:
    /// what the steady state after growth costs is the difference.
    pub half: Stats,
}

/// The authorizer's clock in the simulation: the run's start plus the
/// virtual time elapsed on tokio's (paused) clock.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    start: Timestamp,
    origin: tokio::time::Instant,
}

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        self.start + self.origin.elapsed().as_secs() as Timestamp
    }
}

/// Set the allowance's quota counter to `scenario.spent` in the run's
/// first period, as earlier decisions would have left it.
async fn spend(admin: &DynamoStore, record: &keygate::model::KeyRecord, scenario: &Scenario) {
    use aws_sdk_dynamodb::types::AttributeValue;
    use keygate::store::items::{self, alw};
    let quota = scenario.limits.quota.expect("a spent quota needs a quota");
    let n = |v: i64| AttributeValue::N(v.to_string());
    admin
        .client()
        .update_item()
        .table_name(TABLE)
        .key(
            items::PK,
            AttributeValue::S(items::allowance_pk(&record.allowance_id)),
        )
        .key(items::SK, AttributeValue::S(items::ALLOWANCE_SK.to_owned()))
        .update_expression("SET #qs = :qs, #qu = :qu")
        .expression_attribute_names("#qs", alw::QUOTA_START)
        .expression_attribute_names("#qu", alw::QUOTA_USED)
        .expression_attribute_values(":qs", n(quota.period.window(scenario.start).start))
        .expression_attribute_values(":qu", n(scenario.spent as i64))
        .send()
        .await
        .expect("spend the quota in the model");
}

/// Put the owner on a plan of `limits`, through the plan service, and
/// wait until an eventually consistent read sees it.
async fn subscribe(admin: &DynamoStore, clock: VirtualClock, limits: keygate::plans::PlanLimits) {
    use keygate::manage::Caller;
    use keygate::plans::request::{CreatePlanRequest, SubscribeRequest};
    let plans = keygate::plans::PlanService::new(admin, &clock);
    let operator = Caller::operator("sim");
    let plan = CreatePlanRequest {
        plan_id: "shared".into(),
        name: "shared".into(),
        limits,
    };
    plans
        .create(&operator, plan)
        .await
        .expect("create the plan");
    let to = SubscribeRequest {
        plan_id: Some("shared".into()),
    };
    plans
        .subscribe(&operator, "acme", to)
        .await
        .expect("subscribe the owner");
    tokio::time::sleep(super::model::STALE).await;
}

type Container = authorizer::Handler<DynamoStore, VirtualClock>;

/// An SDK client as the authorizer function configures it (its timeouts
/// and retries), over the in-process HTTP client, with its own retry
/// token bucket (one per container, as one per Lambda process).
fn sdk_client(http: &SimClient, config: &authorizer::Config, n: usize) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{
        retry::RetryPartition, BehaviorVersion, Credentials, Region, StalledStreamProtectionConfig,
    };
    let (timeouts, retries) = config.sdk_timeouts();
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("sim", "sim", None, None, "sim"))
        .http_client(http.clone())
        .timeout_config(timeouts)
        .retry_config(retries)
        .retry_partition(RetryPartition::new(format!("sim-container-{n}")))
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

fn container(
    http: &SimClient,
    config: &authorizer::Config,
    clock: VirtualClock,
    n: usize,
) -> Container {
    let store = DynamoStore::new(sdk_client(http, config, n), TABLE);
    let authorizer =
        keygate::authorize::Authorizer::new(store, clock, config.format.clone(), config.auth);
    authorizer::Handler::new(authorizer, config.settings, config.format.prefix())
}

/// Request events for `key`, one per route, to clone and address.
fn events_for(key: &str) -> Vec<Value> {
    (0..ROUTES)
        .map(|i| {
            let path = format!("/v1/r{i:02}");
            let mut ev = events::with_route(
                events::event(Payload::HttpV2Simple, Some(key)),
                "GET",
                &path,
            );
            let route = Value::String(format!("GET {path}"));
            ev["routeKey"] = route.clone();
            ev["requestContext"]["routeKey"] = route;
            ev
        })
        .collect()
}

/// Arrival times (seconds since the start) of `scenario`'s decisions.
pub fn arrivals(scenario: &Scenario) -> Vec<f64> {
    let mut out = Vec::new();
    let mut t = 0.0;
    if scenario.shape == Shape::Burst {
        let quiet = (scenario.rate / 100.0).max(1.0);
        while t < 1.0 {
            out.push(t);
            t += 1.0 / quiet;
        }
        t = 1.0;
    }
    let end = scenario.seconds;
    while t < end {
        out.push(t);
        t += 1.0 / scenario.rate;
    }
    out
}

/// Run `scenario` on a fresh current-thread runtime with a paused clock.
///
/// # Panics
/// If the runtime cannot be built or the key cannot be issued.
pub fn run(scenario: &Scenario) -> Run {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    runtime.block_on(drive(scenario))
}

async fn drive(scenario: &Scenario) -> Run {
    let spec = TableSpec::from_embedded_template().expect("template defines the table");
    let model = Arc::new(Mutex::new(Model::new(TABLE, spec, 1.0)));
    let http = SimClient::new(model.clone(), Arc::new(Latency::dynamodb(scenario.seed)));
    let config =
        authorizer::Config::from_lookup(|name| (name == "KEYGATE_TABLE").then(|| TABLE.to_owned()))
            .expect("authorizer settings");
    let clock = VirtualClock {
        start: scenario.start,
        origin: tokio::time::Instant::now(),
    };

    // The keys, issued through the real store into the model.
    let admin = DynamoStore::new(sdk_client(&http, &config, usize::MAX), TABLE);
    let mut events = Vec::new();
    for _ in 0..scenario.keys.max(1) {
        let mut key_spec = keygate::issue::KeySpec::new(
            "acme",
            "hot key",
            vec![Scope::parse("GET /v1/*").expect("a scope")],
        );
        key_spec.limits = scenario.limits;
        // Straight through the store, not `crate::store_key`: that one lists
        // the key for the suite's log check, and a benchmark keeps no key.
        let (key, record) = keygate::issue::mint(&config.format, key_spec, clock.now());
        admin
            .create_key(&record, &crate::audit(&record, AuditAction::Issued))
            .await
            .expect("issue the key into the model");
        if scenario.spent > 0 {
            spend(&admin, &record, scenario).await;
        }
        events.push(events_for(key.expose()));
    }
    if let Some(limits) = scenario.plan {
        subscribe(&admin, clock, limits).await;
    }
    let events = Arc::new(events);
    let setup = model.lock().map(|mut m| m.take_stats()).unwrap_or_default();
    // Let the issue's writes leave the partitions' sliding second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let origin = tokio::time::Instant::now();
    let clock = VirtualClock {
        start: scenario.start,
        origin,
    };

    let (idle_tx, mut idle_rx) = tokio::sync::mpsc::unbounded_channel::<Arc<Container>>();
    let mut created = 0usize;
    if scenario.shape == Shape::Steady {
        // Roughly the concurrency the rate needs at ~10 ms per decision.
        let warm = ((scenario.rate * 0.012).ceil() as usize).clamp(1, scenario.max_containers);
        for _ in 0..warm {
            let c = Arc::new(container(&http, &config, clock, created));
            created += 1;
            let _ = idle_tx.send(c);
        }
    }
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
    let mut half: Option<Stats> = None;
    let mut rng = StdRng::seed_from_u64(scenario.seed ^ 0x5eed);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, at) in arrivals(scenario).into_iter().enumerate() {
        tokio::time::sleep_until(origin + Duration::from_secs_f64(at)).await;
        if half.is_none() && at >= scenario.seconds / 2.0 {
            half = model.lock().ok().map(|m| m.stats().clone());
        }
        let (c, cold) = match idle_rx.try_recv() {
            Ok(c) => (c, false),
            Err(_) if created < scenario.max_containers => {
                created += 1;
                (Arc::new(container(&http, &config, clock, created)), true)
            }
            Err(_) => {
                // Lambda refuses an invocation past the concurrency limit
                // (429 to API Gateway): no decision, no access.
                if let Ok(mut o) = outcomes.lock() {
                    o.push(Outcome {
                        arrived: at,
                        now: clock.now(),
                        latency: 0.0,
                        allowed: false,
                        reason: Some(AT_CAP),
                        requests: 0,
                    });
                }
                continue;
            }
        };
        let key = rng.random_range(0..events.len());
        let mut event = events[key][rng.random_range(0..ROUTES)].clone();
        let ip = format!(
            "198.51.{}.{}",
            100 + rng.random_range(0..CLIENT_IPS) / 250,
            rng.random_range(1..250)
        );
        event = events::with_source_ip(event, &ip);
        let (idle_tx, outcomes, clock) = (idle_tx.clone(), outcomes.clone(), clock);
        tasks.spawn(async move {
            if cold {
                tokio::time::sleep(COLD_START).await;
            }
            let now = clock.now();
            let handled = c.handle(event, &format!("sim-{i}")).await;
            let latency = origin.elapsed().as_secs_f64() - at;
            let outcome = match handled {
                Ok(h) => Outcome {
                    arrived: at,
                    // The reading the authorizer decided at: a decision that
                    // waited past a window's end spends from the next one.
                    now: h.at.unwrap_or(now),
                    latency,
                    allowed: h.allowed,
                    reason: h.reason,
                    requests: h.requests.unwrap_or(0),
                },
                Err(_) => Outcome {
                    arrived: at,
                    now,
                    latency,
                    allowed: false,
                    reason: Some("error"),
                    requests: 0,
                },
            };
            if let Ok(mut o) = outcomes.lock() {
                o.push(outcome);
            }
            let _ = idle_tx.send(c);
        });
        // Reap finished tasks as we go, so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut outcomes = std::mem::take(&mut *outcomes.lock().expect("outcomes"));
    outcomes.sort_by(|a, b| a.arrived.total_cmp(&b.arrived));
    let stats = model.lock().map(|m| m.stats().clone()).unwrap_or_default();
    Run {
        outcomes,
        stats,
        containers: created,
        setup,
        half: half.unwrap_or_default(),
    }
}
