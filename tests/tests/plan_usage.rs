//! Usage per plan against the emulator: per-plan totals in JSON and CSV
//! across a mid-month (and mid-day) plan change, summed over a sharded
//! owner plan allowance; the daily job archiving finished plan days and
//! pruning them from the allowance (root and shards); and the report's
//! `near_quota` flag for a plan's daily and monthly quotas.
//!
//! Each test writes the counters itself where the contract says they live
//! ([`seed_plan_counters`], [`seed_quota_counters`]), to reach days, months
//! and shards no short test can spend into; `plan_limits.rs` checks the
//! same totals from real decisions of the authorizer. The plans and
//! subscriptions are made through the real plan service.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use keygate::clock::{Clock, ManualClock};
use keygate::issue::KeySpec;
use keygate::key::{KeyEnv, KeyFormat};
use keygate::limits::Period;
use keygate::manage::Caller;
use keygate::plans::request::{CreatePlanRequest, SubscribeRequest};
use keygate::plans::{PlanLimits, PlanService};
use keygate::scope::Scope;
use keygate::store::{items, DynamoStore};
use keygate::usage::http::Body;
use keygate::usage::report::{Flag, OwnerReport, QuotaScope, Thresholds};
use keygate::usage::service::{DailySummary, UsageService};
use keygate::usage::Day;
use keygate_tests::{caught_up, fresh_store, logs, usage_routes};
use serde_json::{json, Value};

/// 2026-11-29T12:00:00Z.
const NOON: i64 = 1_795_953_600;
const DAY: i64 = 86_400;

type Item = HashMap<String, AttributeValue>;

struct Rig {
    store: DynamoStore,
    clock: ManualClock,
    usage: UsageService<DynamoStore, ManualClock>,
}

async fn rig() -> Rig {
    logs::init();
    let store = fresh_store().await;
    let clock = ManualClock::at(NOON);
    Rig {
        usage: UsageService::new(store.clone(), clock.clone(), Thresholds::default()),
        store,
        clock,
    }
}

fn admin() -> Caller {
    Caller::operator("test")
}

impl Rig {
    /// A key of `owner`: what puts the owner in the allowance directory.
    async fn key(&self, owner: &str) {
        let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
        let spec = KeySpec::new(owner, "plan usage", vec![Scope::parse("GET /*").unwrap()]);
        keygate_tests::store_key(&self.store, &format, spec, self.clock.now()).await;
    }

    async fn plan(&self, plan_id: &str, daily: u64, monthly: u64) {
        let limits = PlanLimits {
            rate: None,
            daily: Some(daily),
            monthly: Some(monthly),
        };
        let req = CreatePlanRequest {
            plan_id: plan_id.into(),
            name: plan_id.into(),
            limits,
        };
        PlanService::new(&self.store, &self.clock)
            .create(&admin(), req)
            .await
            .expect("plan created");
    }

    async fn subscribe(&self, owner: &str, plan_id: &str) {
        let req = SubscribeRequest {
            plan_id: Some(plan_id.into()),
        };
        PlanService::new(&self.store, &self.clock)
            .subscribe(&admin(), owner, req)
            .await
            .expect("subscribed");
    }

    /// `GET /v1/usage` for acme, JSON checked against the OpenAPI contract.
    async fn usage(&self, query: &[(&str, &str)]) -> Body {
        self.get("/v1/usage", query).await
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Body {
        let (status, body) = usage_routes::get(&self.usage, &admin(), path, query).await;
        assert_eq!(status, 200, "{body:?}");
        body
    }

    /// The `plans` of acme's usage over `from..=to`.
    async fn plans(&self, from: &str, to: &str) -> Value {
        let query = [("owner", "acme"), ("from", from), ("to", to)];
        let Body::Json(totals) = self.usage(&query).await else {
            panic!("JSON asked for");
        };
        totals["plans"].clone()
    }

    /// Run the daily job at 00:15 the day after `day` (it reports `day`).
    async fn daily_after(&self, day: &str) -> DailySummary {
        let day = Day::parse(day).unwrap();
        self.clock.set(day.plus(1).start() + 900);
        // The allowance directory is an index: it lists keys within a second.
        caught_up().await;
        self.usage.daily(None).await.expect("daily job")
    }

    async fn report(&self, owner: &str, day: &str) -> OwnerReport {
        let path = format!("/v1/usage/reports/{day}");
        let Body::Json(v) = self.get(&path, &[("owner", owner)]).await else {
            panic!("a report is JSON");
        };
        serde_json::from_value(v).expect("a report")
    }
}

/// The partition key of an owner's plan allowance, or of its shard `n`.
fn plan_allowance_pk(owner: &str, shard: Option<u32>) -> String {
    let id = items::owner_allowance_id(owner);
    match shard {
        None => items::allowance_pk(&id),
        Some(n) => items::allowance_shard_pk(&id, n),
    }
}

/// Write per-plan usage counters where the authorizer will write them (it
/// does not yet): `ADD pu#<day>#<plan_id>#<what> :n` on the owner's plan
/// allowance, its root (`shard` `None`) or shard `n`.
async fn seed_plan_counters(
    store: &DynamoStore,
    owner: &str,
    shard: Option<u32>,
    counters: &[(&str, &str, &str, u64)],
) {
    for (day, plan_id, what, n) in counters {
        store
            .client()
            .update_item()
            .table_name(store.table())
            .key(
                items::PK,
                AttributeValue::S(plan_allowance_pk(owner, shard)),
            )
            .key(items::SK, AttributeValue::S(items::ALLOWANCE_SK.into()))
            .update_expression("ADD #c :n")
            .expression_attribute_names("#c", items::plan_usage_attr(day, plan_id, what))
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .send()
            .await
            .expect("seed a plan counter");
    }
}

/// Write the authorizer's quota counters on an owner's plan allowance: the
/// daily quota's day and its use, the monthly quota's month and its use.
async fn seed_quota_counters(
    store: &DynamoStore,
    owner: &str,
    day: Day,
    day_used: u64,
    month_used: u64,
) {
    use items::plan_counters as c;
    let n = |v: i64| AttributeValue::N(v.to_string());
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key(items::PK, AttributeValue::S(plan_allowance_pk(owner, None)))
        .key(items::SK, AttributeValue::S(items::ALLOWANCE_SK.into()))
        .update_expression("SET #ds = :ds, #du = :du, #ms = :ms, #mu = :mu")
        .expression_attribute_names("#ds", c::DAY_START)
        .expression_attribute_names("#du", c::DAY_USED)
        .expression_attribute_names("#ms", c::MONTH_START)
        .expression_attribute_names("#mu", c::MONTH_USED)
        .expression_attribute_values(":ds", n(day.start()))
        .expression_attribute_values(":du", n(day_used as i64))
        .expression_attribute_values(":ms", n(day.month_start().start()))
        .expression_attribute_values(":mu", n(month_used as i64))
        .send()
        .await
        .expect("seed quota counters");
}

/// Mark the owner's plan allowance as sharded over `count` shards, as the
/// authorizer does when it grows one.
async fn shard(store: &DynamoStore, owner: &str, count: u32) {
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key(items::PK, AttributeValue::S(plan_allowance_pk(owner, None)))
        .key(items::SK, AttributeValue::S(items::ALLOWANCE_SK.into()))
        .update_expression("SET #sh = :sh")
        .expression_attribute_names("#sh", items::alw::SHARDS)
        .expression_attribute_values(":sh", AttributeValue::N(count.to_string()))
        .send()
        .await
        .expect("shard the plan allowance");
}

async fn part(store: &DynamoStore, owner: &str, shard: Option<u32>) -> Item {
    keygate_tests::allowance_part(store, plan_allowance_pk(owner, shard)).await
}

fn plan_counters_of(item: &Item) -> Vec<String> {
    let mut names: Vec<String> = item
        .keys()
        .filter(|k| k.starts_with(items::PLAN_USAGE_PREFIX))
        .cloned()
        .collect();
    names.sort();
    names
}

/// acme moved from `free` to `pro` at noon on 2026-11-29: free's counts up
/// to then, pro's after, and on until 2026-11-30; one October day on free;
/// pro's allowance sharded over two shards, with part of its counts on
/// shard 2. Returns with the clock at noon on 2026-11-30.
async fn mid_month_change(rig: &Rig) {
    rig.clock.set(NOON - 30 * DAY);
    rig.key("acme").await;
    rig.key("globex").await;
    rig.plan("free", 10, 300).await;
    rig.plan("pro", 1000, 30000).await;
    rig.subscribe("acme", "free").await;
    rig.clock.set(NOON);
    rig.subscribe("acme", "pro").await;
    seed_plan_counters(
        &rig.store,
        "acme",
        None,
        &[
            ("2026-10-31", "free", "ok", 4),
            ("2026-11-28", "free", "ok", 5),
            ("2026-11-28", "free", "d#quota_exceeded", 2),
            ("2026-11-29", "free", "ok", 3),
            ("2026-11-29", "pro", "ok", 3),
            ("2026-11-29", "pro", "d#rate_limited", 1),
            ("2026-11-30", "pro", "ok", 2),
        ],
    )
    .await;
    shard(&rig.store, "acme", 2).await;
    seed_plan_counters(
        &rig.store,
        "acme",
        Some(2),
        &[
            ("2026-11-29", "pro", "ok", 4),
            ("2026-11-30", "pro", "ok", 4),
        ],
    )
    .await;
    rig.clock.set(NOON + DAY);
    // The owner's keys are listed through an index: they show within a second.
    caught_up().await;
}

fn day_line(day: &str, allowed: u64, denied: Value) -> Value {
    let d: u64 = denied
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    json!({"day": day, "allowed": allowed, "denied": d, "denied_by_reason": denied, "requests": allowed + d})
}

/// The per-plan lines [`mid_month_change`] makes, over 2026-10-31..=2026-11-30.
fn expected_plans() -> Value {
    json!([
        {"plan_id": "free", "period": "2026-10", "from": "2026-10-31", "to": "2026-10-31",
         "allowed": 4, "denied": 0, "denied_by_reason": {}, "requests": 4,
         "days": [day_line("2026-10-31", 4, json!({}))]},
        {"plan_id": "free", "period": "2026-11", "from": "2026-11-01", "to": "2026-11-30",
         "allowed": 8, "denied": 2, "denied_by_reason": {"quota_exceeded": 2}, "requests": 10,
         "days": [day_line("2026-11-28", 5, json!({"quota_exceeded": 2})),
                  day_line("2026-11-29", 3, json!({}))]},
        {"plan_id": "pro", "period": "2026-11", "from": "2026-11-01", "to": "2026-11-30",
         "allowed": 13, "denied": 1, "denied_by_reason": {"rate_limited": 1}, "requests": 14,
         "days": [day_line("2026-11-29", 7, json!({"rate_limited": 1})),
                  day_line("2026-11-30", 6, json!({}))]},
    ])
}

const RANGE: [(&str, &str); 3] = [
    ("owner", "acme"),
    ("from", "2026-10-31"),
    ("to", "2026-11-30"),
];

#[tokio::test]
async fn per_plan_totals_split_at_a_mid_month_plan_change() {
    let rig = rig().await;
    mid_month_change(&rig).await;

    let Body::Json(totals) = rig.usage(&RANGE).await else {
        panic!("JSON asked for");
    };
    assert_eq!(totals["plans"], expected_plans(), "{totals:#}");
    // Plans count the plan counters, not the keys' own (none here).
    assert_eq!(totals["totals"]["requests"], json!(0));
    // A range that ends before the change sees free alone, clipped.
    let before = rig.plans("2026-11-15", "2026-11-28").await;
    let lines = before.as_array().unwrap();
    assert_eq!(lines.len(), 1, "{before:#}");
    assert_eq!(
        (
            &lines[0]["plan_id"],
            &lines[0]["from"],
            &lines[0]["to"],
            &lines[0]["allowed"]
        ),
        (
            &json!("free"),
            &json!("2026-11-15"),
            &json!("2026-11-28"),
            &json!(5)
        )
    );
    // An owner never on a plan has no plan lines.
    let Body::Json(other) = rig.usage(&[("owner", "globex")]).await else {
        panic!("JSON asked for");
    };
    assert_eq!(other["plans"], json!([]));

    let mut query = RANGE.to_vec();
    query.push(("format", "csv"));
    let Body::Csv(csv) = rig.usage(&query).await else {
        panic!("CSV asked for");
    };
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        vec![
            "owner,key_id,name,status,from,to,allowed,denied,requests,kind,plan_id,period",
            lines[1],
            "acme,,,,2026-10-31,2026-10-31,4,0,4,plan_month,free,2026-10",
            "acme,,,,2026-10-31,2026-10-31,4,0,4,plan_day,free,2026-10-31",
            "acme,,,,2026-11-01,2026-11-30,8,2,10,plan_month,free,2026-11",
            "acme,,,,2026-11-28,2026-11-28,5,2,7,plan_day,free,2026-11-28",
            "acme,,,,2026-11-29,2026-11-29,3,0,3,plan_day,free,2026-11-29",
            "acme,,,,2026-11-01,2026-11-30,13,1,14,plan_month,pro,2026-11",
            "acme,,,,2026-11-29,2026-11-29,7,1,8,plan_day,pro,2026-11-29",
            "acme,,,,2026-11-30,2026-11-30,6,0,6,plan_day,pro,2026-11-30",
        ],
        "{csv}"
    );
    assert!(
        lines[1].starts_with("acme,key_") && lines[1].ends_with(",0,0,0,key,,"),
        "{csv}"
    );
}

#[tokio::test]
async fn the_daily_job_archives_finished_plan_days_and_prunes_them() {
    let rig = rig().await;
    mid_month_change(&rig).await;
    // Today's counts (2026-12-01) arrive before the job runs at 00:15.
    seed_plan_counters(&rig.store, "acme", None, &[("2026-12-01", "pro", "ok", 2)]).await;
    seed_plan_counters(
        &rig.store,
        "acme",
        Some(1),
        &[("2026-12-01", "pro", "ok", 1)],
    )
    .await;

    let summary = rig.daily_after("2026-11-30").await;
    assert!(summary.failed_owners.is_empty(), "{summary:?}");
    // free: 10-31, 11-28, 11-29; pro: 11-29, 11-30.
    assert_eq!(summary.archived_plan_days, 5, "{summary:?}");

    // Off the allowance: root and shards keep only today's counters.
    assert_eq!(
        plan_counters_of(&part(&rig.store, "acme", None).await),
        vec!["pu#2026-12-01#pro#ok".to_owned()]
    );
    assert_eq!(
        plan_counters_of(&part(&rig.store, "acme", Some(1)).await),
        vec!["pu#2026-12-01#pro#ok".to_owned()]
    );
    assert!(plan_counters_of(&part(&rig.store, "acme", Some(2)).await).is_empty());

    // Into the history: one item per plan and day, shards summed in.
    caught_up().await;
    let history = rig
        .store
        .client()
        .query()
        .table_name(rig.store.table())
        .key_condition_expression("#p = :p AND begins_with(#s, :s)")
        .expression_attribute_names("#p", items::PK)
        .expression_attribute_names("#s", items::SK)
        .expression_attribute_values(":p", AttributeValue::S(items::usage_owner_pk("acme")))
        .expression_attribute_values(":s", AttributeValue::S(items::PLAN_HISTORY_PREFIX.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let sks: Vec<&str> = history
        .iter()
        .map(|i| i[items::SK].as_s().unwrap().as_str())
        .collect();
    assert_eq!(
        sks,
        vec![
            "PLAN#2026-10-31#free",
            "PLAN#2026-11-28#free",
            "PLAN#2026-11-29#free",
            "PLAN#2026-11-29#pro",
            "PLAN#2026-11-30#pro",
        ]
    );
    let pro = &history[3];
    assert_eq!(pro["allowed"], AttributeValue::N("7".into()));
    assert!(pro.contains_key(items::TTL), "{pro:?}");

    // The totals read the same from the archive, today's live day added.
    let after = rig.plans("2026-10-31", "2026-11-30").await;
    assert_eq!(after, expected_plans(), "{after:#}");
    let dec = rig.plans("2026-10-31", "2026-12-01").await;
    let lines = dec.as_array().unwrap();
    assert_eq!(lines.len(), 4, "{dec:#}");
    assert_eq!(
        (
            &lines[3]["plan_id"],
            &lines[3]["period"],
            &lines[3]["allowed"]
        ),
        (&json!("pro"), &json!("2026-12"), &json!(3))
    );

    // A re-run archives nothing more and changes no total.
    let again = rig.usage.daily(Day::parse("2026-11-30")).await.unwrap();
    assert_eq!(again.archived_plan_days, 0, "{again:?}");
    caught_up().await;
    assert_eq!(
        rig.plans("2026-10-31", "2026-11-30").await,
        expected_plans()
    );
}

/// A `near_quota` flag's fields: key id, scope, plan id, used, limit, period.
type QuotaFlag<'a> = (
    Option<&'a str>,
    QuotaScope,
    Option<&'a str>,
    u64,
    u64,
    Period,
);

fn plan_flags(report: &OwnerReport) -> Vec<QuotaFlag<'_>> {
    report
        .flags
        .iter()
        .filter_map(|f| match f {
            Flag::NearQuota {
                key_id,
                scope,
                plan_id,
                used,
                limit,
                period,
            } => Some((
                key_id.as_deref(),
                *scope,
                plan_id.as_deref(),
                *used,
                *limit,
                *period,
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn near_quota_flags_plan_daily_and_monthly_quotas() {
    let rig = rig().await;
    rig.clock.set(NOON - 28 * DAY);
    for owner in ["dayco", "monthco", "calmco", "planless"] {
        rig.key(owner).await;
    }
    rig.plan("free", 10, 1000).await;
    rig.plan("team", 100, 100).await;
    rig.subscribe("dayco", "free").await;
    rig.subscribe("monthco", "free").await;
    rig.subscribe("calmco", "team").await;
    rig.clock.set(NOON - DAY);
    rig.subscribe("monthco", "team").await;
    rig.clock.set(NOON);
    let today = Day::of(NOON);

    // dayco: the authorizer's day counter says 8 of 10 today (only 3 of
    // them still in per-plan counters): the counter is what the quota spent.
    seed_quota_counters(&rig.store, "dayco", today, 8, 8).await;
    seed_plan_counters(
        &rig.store,
        "dayco",
        None,
        &[("2026-11-29", "free", "ok", 3)],
    )
    .await;
    // monthco: 40 on free early in the month, 45 on team since: 85 of
    // team's 100 this month, counted across the plan change; its month
    // counter (a sharded root's slice) says less.
    seed_quota_counters(&rig.store, "monthco", today, 5, 10).await;
    seed_plan_counters(
        &rig.store,
        "monthco",
        None,
        &[
            ("2026-11-02", "free", "ok", 40),
            ("2026-11-28", "team", "ok", 40),
            ("2026-11-29", "team", "ok", 5),
            ("2026-11-29", "team", "d#quota_exceeded", 9),
        ],
    )
    .await;
    // calmco: 7 of 100 today and 79 of 100 this month, under 80%.
    seed_quota_counters(&rig.store, "calmco", today, 7, 79).await;
    seed_plan_counters(
        &rig.store,
        "calmco",
        None,
        &[("2026-11-29", "team", "ok", 7)],
    )
    .await;

    let summary = rig.daily_after("2026-11-29").await;
    assert!(summary.failed_owners.is_empty(), "{summary:?}");
    let day = "2026-11-29";

    let dayco = rig.report("dayco", day).await;
    assert_eq!(
        plan_flags(&dayco),
        vec![(None, QuotaScope::Plan, Some("free"), 8, 10, Period::Day)],
        "{dayco:?}"
    );
    assert_eq!(dayco.flag_counts["near_quota"], 1);
    let monthco = rig.report("monthco", day).await;
    assert_eq!(
        plan_flags(&monthco),
        vec![(None, QuotaScope::Plan, Some("team"), 85, 100, Period::Month)],
        "{monthco:?}"
    );
    let calmco = rig.report("calmco", day).await;
    assert!(plan_flags(&calmco).is_empty(), "{calmco:?}");
    let planless = rig.report("planless", day).await;
    assert!(planless.flags.is_empty(), "{planless:?}");

    // The flag as the API answers it (checked against the contract above).
    let Body::Json(v) = rig
        .get("/v1/usage/reports/2026-11-29", &[("owner", "dayco")])
        .await
    else {
        panic!("JSON");
    };
    assert_eq!(
        v["flags"][0],
        json!({"flag": "near_quota", "scope": "plan", "plan_id": "free", "used": 8, "limit": 10, "period": "day"})
    );
}
