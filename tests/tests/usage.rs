//! Usage reporting against the emulator, with usage produced by the real
//! authorizer (in process, real events, real store): the counts reported are
//! the decisions made, each anomaly flag is raised when it should be and
//! not otherwise, and another owner's usage is invisible.

use authorizer::Handler;
use keygate::clock::{Clock, ManualClock};
use keygate::issue::KeySpec;
use keygate::key::{ApiKey, KeyEnv, KeyFormat};
use keygate::limits::{Limits, Period, Quota};
use keygate::manage::Caller;
use keygate::model::KeyRecord;
use keygate::scope::Scope;
use keygate::store::DynamoStore;
use keygate::usage::http::Body;
use keygate::usage::report::{Flag, OwnerReport, Thresholds};
use keygate::usage::service::UsageService;
use keygate::usage::Day;
use keygate_tests::events::{event, with_route, with_source_ip, Payload};
use keygate_tests::usage_routes::get as get_from;
use keygate_tests::{allowance_item, fresh_store, logs, v2_handler};
use serde_json::{json, Value};

/// 2026-11-29T12:00:00Z.
const NOON: i64 = 1_795_953_600;
const DAY: i64 = 86_400;

struct Rig {
    handler: Handler<DynamoStore, ManualClock>,
    usage: UsageService<DynamoStore, ManualClock>,
    clock: ManualClock,
    store: DynamoStore,
    format: KeyFormat,
}

async fn rig(thresholds: Thresholds) -> Rig {
    logs::init();
    let store = fresh_store().await;
    let clock = ManualClock::at(NOON);
    let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
    Rig {
        handler: v2_handler(store.clone(), clock.clone(), format.clone()),
        usage: UsageService::new(store.clone(), clock.clone(), thresholds),
        clock,
        store,
        format,
    }
}

/// Thresholds small enough to reach with a few requests.
fn small() -> Thresholds {
    Thresholds {
        spike_factor: 3.0,
        spike_floor: 5,
        deny_ratio: 0.5,
        deny_floor: 4,
        quota_warn: 0.8,
        unused_days: 3,
    }
}

/// The request most tests send: `GET /orders/1` from 203.0.113.10.
fn order(key: &ApiKey) -> Value {
    request(key, "GET", "GET /orders/{id}", "/orders/1", "203.0.113.10")
}

/// A payload 2.0 request for `route_key` (e.g. `GET /orders/{id}`) at `path`.
fn request(key: &ApiKey, method: &str, route_key: &str, path: &str, ip: &str) -> Value {
    let mut ev = with_route(
        event(Payload::HttpV2Simple, Some(key.expose())),
        method,
        path,
    );
    ev["routeKey"] = json!(route_key);
    ev["requestContext"]["routeKey"] = json!(route_key);
    ev["rawPath"] = json!(format!("/prod{path}"));
    ev["requestContext"]["http"]["path"] = json!(format!("/prod{path}"));
    with_source_ip(ev, ip)
}

impl Rig {
    async fn issue(&self, owner: &str, edit: impl FnOnce(&mut KeySpec)) -> (ApiKey, KeyRecord) {
        let mut spec = KeySpec::new(
            owner,
            "usage test",
            vec![Scope::parse("GET /orders/*").unwrap()],
        );
        edit(&mut spec);
        keygate_tests::store_key(&self.store, &self.format, spec, self.clock.now()).await
    }

    /// Send `n` requests and return how many were allowed.
    async fn hit(&self, ev: &Value, n: usize) -> usize {
        let mut allowed = 0;
        for _ in 0..n {
            let handled = self
                .handler
                .handle(ev.clone(), "req-usage")
                .await
                .expect("recognised event");
            allowed += usize::from(handled.allowed);
        }
        allowed
    }

    /// Noon of `offset` days from the start.
    fn at_day(&self, offset: i64) {
        self.clock.set(NOON + offset * DAY);
    }

    /// Run the daily job as it runs in production: 00:15 the next day.
    async fn report_for(&self, offset: i64) -> OwnerReport {
        self.clock.set(NOON + (offset + 1) * DAY - 12 * 3600 + 900);
        // The scheduled event the function receives (no day named: yesterday).
        let event = serde_json::from_str(include_str!("../../infra/events/scheduled.json"))
            .expect("scheduled fixture");
        // At 00:15 the allowance directory (an index) lists every key used
        // the day before.
        keygate_tests::caught_up().await;
        let summary = usage::run_daily(&self.usage, &event)
            .await
            .expect("daily job");
        assert_eq!(summary.day, Day::of(NOON + offset * DAY).to_string());
        let day = Day::of(NOON + offset * DAY).to_string();
        self.usage
            .stored_report(&Caller::operator("test"), Some("acme"), &day)
            .await
            .expect("stored report")
    }

    async fn get(&self, caller: &Caller, path: &str, query: &[(&str, &str)]) -> (u16, Body) {
        get_from(&self.usage, caller, path, query).await
    }
}

fn caller(owner: &str, scopes: &[&str]) -> Caller {
    Caller {
        key_id: None,
        actor: format!("test:{owner}"),
        owner: owner.into(),
        scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
        grants: None,
    }
}

fn flags_of<'a>(report: &'a OwnerReport, name: &str) -> Vec<&'a Flag> {
    report.flags.iter().filter(|f| f.name() == name).collect()
}

fn flagged(report: &OwnerReport, name: &str, key: &KeyRecord) -> bool {
    flags_of(report, name)
        .iter()
        .any(|f| f.key_id() == Some(key.key_id.as_str()))
}

fn json_of(body: Body) -> Value {
    match body {
        Body::Json(v) => v,
        Body::Csv(c) => panic!("expected JSON, got CSV {c}"),
    }
}

#[tokio::test]
async fn reported_counts_equal_the_decisions_made() {
    let rig = rig(Thresholds::default()).await;
    let (key, record) = rig
        .issue("acme", |s| {
            s.limits = Limits {
                quota: Some(Quota {
                    limit: 5,
                    period: Period::Day,
                }),
                rate: None,
            };
        })
        .await;
    let kid = record.key_id.as_str();
    let ip = "203.0.113.10";
    let one = request(&key, "GET", "GET /orders/{id}", "/orders/1", ip);
    let list = request(&key, "GET", "GET /orders", "/orders/all", ip);
    let post = request(&key, "POST", "POST /orders", "/orders/x", ip);
    // 3 + 2 allowed, then 2 over quota; 1 outside the key's scopes.
    assert_eq!(rig.hit(&one, 3).await, 3);
    assert_eq!(rig.hit(&list, 2).await, 2);
    assert_eq!(rig.hit(&one, 2).await, 0);
    // The second denial over quota was decided in the container (it had
    // learned the quota was spent) and counted there; its count is written
    // with the container's next decision once it is `FLUSH_AFTER` seconds old.
    rig.clock.advance(keygate::authorize::local::FLUSH_AFTER);
    assert_eq!(rig.hit(&post, 1).await, 0);

    let admin = Caller::operator("test");
    let today = Day::of(NOON).to_string();
    let check = |series: &Value| {
        let days = series["days"].as_array().unwrap();
        let d = days.iter().find(|d| d["day"] == json!(today)).unwrap();
        assert_eq!(d["allowed"], json!(5), "{d}");
        assert_eq!(d["denied"], json!(3));
        assert_eq!(
            d["denied_by_reason"],
            json!({"quota_exceeded": 2, "scope_denied": 1})
        );
        assert_eq!(
            d["top_routes"],
            json!([{"route": "GET /orders/{id}", "count": 3}, {"route": "GET /orders", "count": 2}])
        );
        assert_eq!(d["source_ips"], json!([ip]));
        assert_eq!(series["totals"]["requests"], json!(8));
        // Every other day of the default 30-day range is there, empty.
        assert_eq!(days.len(), 30);
        let others: u64 = days
            .iter()
            .filter(|d| d["day"] != json!(today))
            .map(|d| d["allowed"].as_u64().unwrap() + d["denied"].as_u64().unwrap())
            .sum();
        assert_eq!(others, 0);
    };
    let path = format!("/v1/usage/keys/{kid}");
    let (status, body) = rig.get(&admin, &path, &[]).await;
    assert_eq!(status, 200);
    check(&json_of(body));

    // The daily job reports the day, archives it and takes it off the
    // allowance item; the series reads the same from the archive.
    let report = rig.report_for(0).await;
    assert_eq!((report.allowed, report.denied), (5, 3));
    assert_eq!(report.denied_by_reason["quota_exceeded"], 2);
    assert_eq!(report.active_keys, 1);
    let item = allowance_item(&rig.store, &record).await;
    assert!(
        !item.keys().any(|k| k.starts_with(&format!("u#{today}"))),
        "archived counters stay on the allowance: {item:?}"
    );
    // The archive is read through an eventually consistent index, as in
    // production: it lists the archived day within the stale window.
    keygate_tests::caught_up().await;
    let (status, body) = rig
        .get(
            &admin,
            &path,
            &[("from", "2026-11-01"), ("to", "2026-11-30")],
        )
        .await;
    assert_eq!(status, 200);
    let series = json_of(body);
    let d = series["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["day"] == json!(today))
        .unwrap()
        .clone();
    assert_eq!(d["allowed"], json!(5));
    assert_eq!(
        d["denied_by_reason"],
        json!({"quota_exceeded": 2, "scope_denied": 1})
    );

    // Billing totals, JSON and CSV, agree.
    let (status, body) = rig
        .get(
            &admin,
            "/v1/usage",
            &[("owner", "acme"), ("from", "2026-11-01")],
        )
        .await;
    assert_eq!(status, 200);
    let totals = json_of(body);
    assert_eq!(totals["keys"][0]["key_id"], json!(kid));
    assert_eq!(totals["keys"][0]["allowed"], json!(5));
    assert_eq!(totals["keys"][0]["denied"], json!(3));
    assert_eq!(totals["totals"]["requests"], json!(8));
    let (status, body) = rig
        .get(
            &admin,
            "/v1/usage",
            &[("owner", "acme"), ("from", "2026-11-01"), ("format", "csv")],
        )
        .await;
    assert_eq!(status, 200);
    let Body::Csv(csv) = body else {
        panic!("expected CSV")
    };
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "owner,key_id,name,status,from,to,allowed,denied,requests,kind,plan_id,period"
    );
    assert_eq!(
        lines[1],
        format!("acme,{kid},usage test,active,2026-11-01,2026-11-30,5,3,8,key,,")
    );

    // Today's new usage (live) and the archive add up.
    rig.at_day(1);
    assert_eq!(rig.hit(&one, 1).await, 1);
    let (_, body) = rig
        .get(
            &admin,
            "/v1/usage",
            &[("owner", "acme"), ("from", "2026-11-01")],
        )
        .await;
    assert_eq!(json_of(body)["keys"][0]["allowed"], json!(6));
}

#[tokio::test]
async fn bad_ranges_and_formats_are_clear_4xx() {
    let rig = rig(Thresholds::default()).await;
    let (_, record) = rig.issue("acme", |_| {}).await;
    let me = caller("acme", &["usage:read"]);
    let path = format!("/v1/usage/keys/{}", record.key_id.as_str());
    for (query, code) in [
        (
            vec![("from", "2025-01-01"), ("to", "2026-11-29")],
            "range_too_long",
        ),
        (
            vec![("from", "2026-11-29"), ("to", "2026-11-01")],
            "invalid_range",
        ),
        (vec![("from", "29/11/2026")], "invalid_date"),
    ] {
        let (status, body) = rig.get(&me, &path, &query).await;
        assert_eq!(status, 400, "{query:?}");
        assert_eq!(json_of(body)["error"]["code"], json!(code));
    }
    let (status, body) = rig.get(&me, "/v1/usage", &[("format", "xml")]).await;
    assert_eq!(status, 400);
    assert_eq!(json_of(body)["error"]["code"], json!("invalid_format"));
    let (status, _) = rig.get(&me, "/v1/usage/keys/not-a-key", &[]).await;
    assert_eq!(status, 404);
    let (status, _) = rig.get(&me, "/v1/usage/reports/2026-11-28", &[]).await;
    assert_eq!(status, 404, "no report stored yet");
}

#[tokio::test]
async fn another_owners_usage_is_not_found() {
    let rig = rig(Thresholds::default()).await;
    let (key, record) = rig.issue("acme", |_| {}).await;
    rig.hit(&order(&key), 1).await;
    let path = format!("/v1/usage/keys/{}", record.key_id.as_str());
    let other = caller("globex", &["usage:read"]);
    let (status, body) = rig.get(&other, &path, &[]).await;
    assert_eq!(status, 404);
    assert_eq!(json_of(body)["error"]["code"], json!("not_found"));
    let (status, _) = rig.get(&other, "/v1/usage", &[("owner", "acme")]).await;
    assert_eq!(status, 404);
    let (status, _) = rig
        .get(&other, "/v1/usage/reports/2026-11-29", &[("owner", "acme")])
        .await;
    assert_eq!(status, 404);
    // Its own totals do not include acme's key.
    let (status, body) = rig.get(&other, "/v1/usage", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(json_of(body)["keys"], json!([]));
    // Without usage:read, even its own owner's usage is refused.
    let mine = caller("acme", &["keys:read"]);
    let (status, body) = rig.get(&mine, &path, &[]).await;
    assert_eq!(status, 403);
    assert_eq!(json_of(body)["error"]["code"], json!("missing_permission"));
    let (status, _) = rig.get(&caller("acme", &["usage:read"]), &path, &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn traffic_spike_flag() {
    let rig = rig(small()).await;
    let (spiky, spiky_rec) = rig.issue("acme", |_| {}).await;
    let (steady, steady_rec) = rig.issue("acme", |_| {}).await;
    let ip = "203.0.113.10";
    let a = request(&spiky, "GET", "GET /orders/{id}", "/orders/1", ip);
    let b = request(&steady, "GET", "GET /orders/{id}", "/orders/1", ip);
    for day in 1..=7 {
        rig.at_day(day);
        rig.hit(&a, 1).await;
        rig.hit(&b, 5).await;
    }
    rig.at_day(8);
    rig.hit(&a, 6).await; // 6 >= floor 5 and > 3 x mean 1
    rig.hit(&b, 6).await; // 6 is not > 3 x mean 5
    let report = rig.report_for(8).await;
    assert!(flagged(&report, "traffic_spike", &spiky_rec), "{report:?}");
    assert!(
        !flagged(&report, "traffic_spike", &steady_rec),
        "{report:?}"
    );
    let Flag::TrafficSpike {
        requests,
        trailing_mean,
        ..
    } = flags_of(&report, "traffic_spike")[0]
    else {
        unreachable!()
    };
    assert_eq!((*requests, *trailing_mean), (6, 1.0));
}

#[tokio::test]
async fn high_deny_ratio_flag() {
    let rig = rig(small()).await;
    let (bad, bad_rec) = rig.issue("acme", |_| {}).await;
    let (good, good_rec) = rig.issue("acme", |_| {}).await;
    let ip = "203.0.113.10";
    let ok = |k| request(k, "GET", "GET /orders/{id}", "/orders/1", ip);
    let denied = |k| request(k, "DELETE", "DELETE /orders/{id}", "/orders/1", ip);
    rig.hit(&ok(&bad), 2).await;
    rig.hit(&denied(&bad), 3).await; // 3 of 5 denied
    rig.hit(&ok(&good), 4).await;
    rig.hit(&denied(&good), 1).await; // 1 of 5 denied
    let report = rig.report_for(0).await;
    assert!(flagged(&report, "high_deny_ratio", &bad_rec), "{report:?}");
    assert!(
        !flagged(&report, "high_deny_ratio", &good_rec),
        "{report:?}"
    );
}

#[tokio::test]
async fn denied_outside_allowlist_flag() {
    let rig = rig(small()).await;
    let cidr = |s: &mut KeySpec| s.allowed_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    let (probed, probed_rec) = rig.issue("acme", cidr).await;
    let (fine, fine_rec) = rig.issue("acme", cidr).await;
    rig.hit(
        &request(
            &probed,
            "GET",
            "GET /orders/{id}",
            "/orders/1",
            "198.51.100.7",
        ),
        2,
    )
    .await;
    rig.hit(
        &request(&fine, "GET", "GET /orders/{id}", "/orders/1", "10.1.2.3"),
        2,
    )
    .await;
    let report = rig.report_for(0).await;
    assert!(
        flagged(&report, "ip_not_allowed", &probed_rec),
        "{report:?}"
    );
    assert!(!flagged(&report, "ip_not_allowed", &fine_rec), "{report:?}");
}

#[tokio::test]
async fn new_source_ip_flag() {
    let rig = rig(small()).await;
    let (moved, moved_rec) = rig.issue("acme", |_| {}).await;
    let (stayed, stayed_rec) = rig.issue("acme", |_| {}).await;
    let (fresh, fresh_rec) = rig.issue("acme", |_| {}).await;
    let at = |k, ip| request(k, "GET", "GET /orders/{id}", "/orders/1", ip);
    rig.at_day(1);
    rig.hit(&at(&moved, "198.51.100.1"), 1).await;
    rig.hit(&at(&stayed, "198.51.100.1"), 1).await;
    // The job archives day 1 in between: the baseline comes from history.
    rig.report_for(1).await;
    rig.at_day(2);
    rig.hit(&at(&moved, "192.0.2.200"), 1).await;
    rig.hit(&at(&stayed, "198.51.100.1"), 1).await;
    // A key's first day has no baseline: not flagged.
    rig.hit(&at(&fresh, "192.0.2.201"), 1).await;
    let report = rig.report_for(2).await;
    assert!(flagged(&report, "new_source_ip", &moved_rec), "{report:?}");
    assert!(
        !flagged(&report, "new_source_ip", &stayed_rec),
        "{report:?}"
    );
    assert!(!flagged(&report, "new_source_ip", &fresh_rec), "{report:?}");
    let Flag::NewSourceIp { ips, .. } = flags_of(&report, "new_source_ip")[0] else {
        unreachable!()
    };
    assert_eq!(ips, &vec!["192.0.2.200".to_owned()]);
}

#[tokio::test]
async fn near_quota_flag() {
    let rig = rig(small()).await;
    let quota = |limit| {
        move |s: &mut KeySpec| {
            s.limits = Limits {
                quota: Some(Quota {
                    limit,
                    period: Period::Month,
                }),
                rate: None,
            }
        }
    };
    let (close, close_rec) = rig.issue("acme", quota(10)).await;
    let (far, far_rec) = rig.issue("acme", quota(20)).await;
    // Monthly quotas add up over the month: 4 + 4 of 10 is 80%.
    rig.at_day(-1);
    rig.hit(&order(&close), 4).await;
    rig.hit(&order(&far), 4).await;
    rig.at_day(0);
    rig.hit(&order(&close), 4).await;
    rig.hit(&order(&far), 4).await;
    let report = rig.report_for(0).await;
    assert!(flagged(&report, "near_quota", &close_rec), "{report:?}");
    assert!(!flagged(&report, "near_quota", &far_rec), "{report:?}");
    let Flag::NearQuota { used, limit, .. } = flags_of(&report, "near_quota")[0] else {
        unreachable!()
    };
    assert_eq!((*used, *limit), (8, 10));
}

#[tokio::test]
async fn unused_key_flag() {
    let rig = rig(small()).await;
    rig.at_day(-10);
    let (idle, idle_rec) = rig.issue("acme", |_| {}).await;
    let (busy, busy_rec) = rig.issue("acme", |_| {}).await;
    rig.at_day(-9);
    rig.hit(&order(&idle), 1).await;
    rig.at_day(0);
    rig.hit(&order(&busy), 1).await;
    // Too young to be called unused.
    let (_, young_rec) = rig.issue("acme", |_| {}).await;
    let report = rig.report_for(0).await;
    assert!(flagged(&report, "unused", &idle_rec), "{report:?}");
    assert!(!flagged(&report, "unused", &busy_rec), "{report:?}");
    assert!(!flagged(&report, "unused", &young_rec), "{report:?}");
    let Flag::Unused { last_used, .. } = flags_of(&report, "unused")[0] else {
        unreachable!()
    };
    assert_eq!(
        last_used.as_deref(),
        Some(Day::of(NOON - 9 * DAY).to_string().as_str())
    );
}

/// DynamoDB failing (HTTP 500 from a fault proxy in front of the emulator):
/// the routes answer 503 `unavailable`, never a partial report; the daily
/// job fails (so Lambda retries it) and archives nothing; once DynamoDB is
/// back, the retry reports and archives the day.
#[tokio::test]
async fn dynamodb_failing_is_a_503_and_a_retried_job() {
    use keygate_tests::faults::{Fault, FaultProxy};
    let rig = rig(Thresholds::default()).await;
    let (key, record) = rig.issue("acme", |_| {}).await;
    rig.hit(&order(&key), 2).await;
    let proxy = FaultProxy::to_emulator().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&keygate_tests::sdk_config().await)
        .endpoint_url(proxy.endpoint())
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(2))
        .build();
    let through = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), rig.store.table());
    let usage = UsageService::new(through, rig.clock.clone(), Thresholds::default());
    proxy.set(Fault::ServerError);
    let admin = Caller::operator("test");
    let paths = [
        format!("/v1/usage/keys/{}", record.key_id.as_str()),
        "/v1/usage".to_owned(),
    ];
    for path in &paths {
        let (status, body) = get_from(&usage, &admin, path, &[]).await;
        assert_eq!(status, 503, "{path}");
        assert_eq!(json_of(body)["error"]["code"], json!("unavailable"));
    }
    rig.clock.set(NOON + DAY / 2 + 900);
    keygate_tests::caught_up().await; // the allowance directory lists the day's keys
    assert!(usage.daily(None).await.is_err(), "a failed run must fail");
    let item = allowance_item(&rig.store, &record).await;
    assert!(
        item.keys().any(|k| k.starts_with("u#2026-11-29")),
        "nothing archived"
    );
    proxy.clear();
    keygate_tests::caught_up().await; // the allowance directory lists the day's keys
    let summary = usage.daily(None).await.expect("the retry succeeds");
    assert_eq!((summary.reports, summary.archived_days), (1, 1));
    let report = rig
        .usage
        .stored_report(&admin, Some("acme"), "2026-11-29")
        .await
        .unwrap();
    assert_eq!(report.allowed, 2);
}

/// One owner's data unreadable among several: the others' reports are
/// stored and their days archived, the job fails naming that owner, its
/// usage stays on the allowance, and a re-run once it is readable reports
/// it without counting anyone twice.
#[tokio::test]
async fn one_failing_owner_does_not_stop_the_others() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use keygate::store::items;
    use keygate::usage::service::ReportError;
    let rig = rig(Thresholds::default()).await;
    let mut keys = Vec::new();
    for (owner, hits) in [("acme", 2), ("globex", 3), ("initech", 4)] {
        let (key, record) = rig.issue(owner, |_| {}).await;
        let ev = order(&key);
        assert_eq!(rig.hit(&ev, hits).await, hits);
        keys.push((owner, hits, record));
    }
    // globex's key record no longer maps (a status no version knows).
    let globex = &keys[1].2;
    let record_key = |r: &KeyRecord| {
        [
            (
                items::PK.to_owned(),
                AttributeValue::S(items::key_pk(r.hash.as_str())),
            ),
            (
                items::SK.to_owned(),
                AttributeValue::S(items::KEY_SK.to_owned()),
            ),
        ]
        .into()
    };
    let set_status = |status: AttributeValue| {
        rig.store
            .client()
            .update_item()
            .table_name(rig.store.table())
            .set_key(Some(record_key(globex)))
            .update_expression("SET #s = :s")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", status)
            .send()
    };
    let original = rig
        .store
        .client()
        .get_item()
        .table_name(rig.store.table())
        .set_key(Some(record_key(globex)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .and_then(|mut i| i.remove("status"))
        .expect("the record has a status");
    set_status(AttributeValue::S("unheard-of".into()))
        .await
        .unwrap();

    rig.clock.set(NOON + DAY / 2 + 900);
    let admin = Caller::operator("test");
    keygate_tests::caught_up().await; // the allowance directory lists the day's keys
    let Err(ReportError::Partial(summary)) = rig.usage.daily(None).await else {
        panic!("the run must fail, naming the owner");
    };
    assert_eq!(summary.failed_owners, vec!["globex".to_owned()]);
    assert_eq!(
        (summary.owners, summary.reports, summary.archived_days),
        (3, 2, 2)
    );
    for (owner, hits, record) in &keys {
        let stored = rig
            .usage
            .stored_report(&admin, Some(owner), "2026-11-29")
            .await;
        let live = allowance_item(&rig.store, record)
            .await
            .keys()
            .any(|k| k.starts_with("u#2026-11-29"));
        if *owner == "globex" {
            assert!(stored.is_err(), "no report for the failed owner");
            assert!(live, "the failed owner's usage was archived or lost");
        } else {
            assert_eq!(stored.unwrap().allowed, *hits as u64, "{owner}");
            assert!(!live, "{owner}'s finished day is still on the allowance");
        }
    }

    set_status(original).await.unwrap();
    keygate_tests::caught_up().await; // the allowance directory lists the day's keys
    let summary = rig.usage.daily(None).await.expect("the re-run succeeds");
    assert!(summary.failed_owners.is_empty());
    // Only globex had a day left to archive.
    assert_eq!((summary.reports, summary.archived_days), (3, 1));
    for (owner, hits, _) in &keys {
        let report = rig
            .usage
            .stored_report(&admin, Some(owner), "2026-11-29")
            .await
            .unwrap();
        assert_eq!(report.allowed, *hits as u64, "{owner} counted once");
    }
}

/// Counts of a day that reach the allowance after the daily job archived
/// that day (a container writes its usage detail up to a minute after it
/// counted, or whenever a frozen container next runs) add to the archive.
/// Before, the late live counts hid the archived day from the usage API,
/// and the next job's archive replaced the day with them: the day's
/// earlier counts were lost from history and billing.
#[tokio::test]
async fn late_counts_of_an_archived_day_add_to_its_archive() {
    use keygate::store::{items, Admission};
    let rig = rig(Thresholds::default()).await;
    let (key, record) = rig.issue("acme", |_| {}).await;
    let kid = record.key_id.as_str();
    let one = request(&key, "GET", "GET /orders/{id}", "/orders/1", "203.0.113.10");
    assert_eq!(rig.hit(&one, 3).await, 3);
    assert_eq!(rig.report_for(0).await.allowed, 3);
    // After the job: a container writes two denials and a route count of
    // day 0 it had counted before midnight.
    let day0 = Day::of(NOON).to_string();
    let late = [
        (items::usage_attr(&day0, kid, "d#rate_limited"), 2),
        (items::usage_attr(&day0, kid, "r#GET /orders/{id}"), 1),
    ];
    rig.store
        .flush_usage(&record.allowance_id, &late, &[], None)
        .await
        .unwrap();
    let admin = Caller::operator("test");
    let path = format!("/v1/usage/keys/{kid}");
    let range = [("from", "2026-11-01"), ("to", "2026-12-31")];
    let day_0 = |series: Value| {
        series["days"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["day"] == json!(day0))
            .cloned()
            .unwrap()
    };
    let totals = |body: Body| {
        let t = json_of(body)["keys"][0].clone();
        (t["allowed"].clone(), t["denied"].clone())
    };
    keygate_tests::caught_up().await;
    // Live and archived add up, in the series and in billing.
    let (status, body) = rig.get(&admin, &path, &range).await;
    assert_eq!(status, 200);
    let d = day_0(json_of(body));
    assert_eq!((&d["allowed"], &d["denied"]), (&json!(3), &json!(2)), "{d}");
    assert_eq!(
        d["top_routes"],
        json!([{"route": "GET /orders/{id}", "count": 4}])
    );
    let billing = [("owner", "acme"), ("from", "2026-11-01")];
    let (_, body) = rig.get(&admin, "/v1/usage", &billing).await;
    assert_eq!(totals(body), (json!(3), json!(2)));
    // The next job archives the late counts into the same day.
    rig.report_for(1).await;
    let item = allowance_item(&rig.store, &record).await;
    assert!(
        !item.keys().any(|k| k.starts_with(&format!("u#{day0}"))),
        "{item:?}"
    );
    keygate_tests::caught_up().await;
    let (_, body) = rig.get(&admin, &path, &range).await;
    let d = day_0(json_of(body));
    assert_eq!((&d["allowed"], &d["denied"]), (&json!(3), &json!(2)), "{d}");
    assert_eq!(d["source_ips"], json!(["203.0.113.10"]));
    let (_, body) = rig.get(&admin, "/v1/usage", &billing).await;
    assert_eq!(totals(body), (json!(3), json!(2)));
    // Running the job again changes nothing (nothing live is left).
    rig.report_for(1).await;
    keygate_tests::caught_up().await;
    let (_, body) = rig.get(&admin, "/v1/usage", &billing).await;
    assert_eq!(totals(body), (json!(3), json!(2)));
}

/// Two runs of the daily job at once (a retry overlapping a manual run)
/// archive a day once: each move is conditioned on the allowance's move
/// count and on the archived day as read, so the run that loses the race
/// fails for that owner (Lambda runs it again) instead of adding the same
/// counters twice.
#[tokio::test]
async fn two_daily_runs_at_once_archive_a_day_once() {
    let rig = rig(Thresholds::default()).await;
    let (key, record) = rig.issue("acme", |_| {}).await;
    let kid = record.key_id.as_str();
    let one = request(&key, "GET", "GET /orders/{id}", "/orders/1", "203.0.113.10");
    assert_eq!(rig.hit(&one, 4).await, 4);
    rig.clock.set(NOON + DAY - 12 * 3600 + 900);
    keygate_tests::caught_up().await;
    // The counters as one run reads them, before another moves them.
    use keygate::store::{Subject, UsageStore};
    let stale = rig
        .store
        .allowance_parts(&record.allowance_id)
        .await
        .unwrap();
    let event: aws_lambda_events::eventbridge::EventBridgeEvent =
        serde_json::from_str(include_str!("../../infra/events/scheduled.json")).unwrap();
    let (a, b) = tokio::join!(
        usage::run_daily(&rig.usage, &event),
        usage::run_daily(&rig.usage, &event)
    );
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
    // Whatever the loser left is moved by the next run.
    usage::run_daily(&rig.usage, &event).await.unwrap();
    // A run still holding counters read before the move adds nothing: its
    // move (naming the archived day as it is now) is refused.
    let day0 = Day::of(NOON).to_string();
    let root = &stale[0].1;
    let held: Vec<(String, aws_sdk_dynamodb::types::AttributeValue)> = root
        .iter()
        .filter(|(name, _)| name.starts_with(&format!("u#{day0}#")))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    assert!(!held.is_empty());
    let moves = root
        .get(keygate::store::items::alw::MOVES)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let now_archived = rig
        .store
        .archived_day("acme", Subject::Key, kid, &day0)
        .await
        .unwrap()
        .unwrap();
    let late = rig
        .store
        .move_day(
            "acme",
            (Subject::Key, kid, &day0),
            (&now_archived.usage, Some(now_archived.version)),
            (&record.allowance_id, moves),
            &[(0, held)],
            rig.clock.now(),
        )
        .await;
    assert!(
        matches!(late, Err(keygate::store::StoreError::Conflict)),
        "{late:?}"
    );
    let day0 = Day::of(NOON).to_string();
    let item = allowance_item(&rig.store, &record).await;
    assert!(
        !item.keys().any(|k| k.starts_with(&format!("u#{day0}"))),
        "{item:?}"
    );
    keygate_tests::caught_up().await;
    let admin = Caller::operator("test");
    let (_, body) = rig
        .get(
            &admin,
            &format!("/v1/usage/keys/{kid}"),
            &[("from", day0.as_str()), ("to", day0.as_str())],
        )
        .await;
    let series = json_of(body);
    assert_eq!(series["days"][0]["allowed"], json!(4), "{series}");
    assert_eq!(
        series["days"][0]["top_routes"],
        json!([{"route": "GET /orders/{id}", "count": 4}])
    );
}

/// A day with more counters than one transaction moves (120 routes, three
/// batches of `MOVE_BATCH`) is archived whole, each batch conditioned on
/// its counters' values (a stale read is refused: see the test above).
#[tokio::test]
async fn a_busy_day_moves_in_batches_and_loses_no_late_count() {
    use keygate::store::{items, Admission, UsageStore, MOVE_BATCH};
    let rig = rig(Thresholds::default()).await;
    let (key, record) = rig.issue("acme", |_| {}).await;
    let kid = record.key_id.as_str();
    let one = request(&key, "GET", "GET /orders/{id}", "/orders/1", "203.0.113.10");
    assert_eq!(rig.hit(&one, 2).await, 2);
    let day0 = Day::of(NOON).to_string();
    let routes: Vec<(String, u64)> = (0..120)
        .map(|i| (items::usage_attr(&day0, kid, &format!("r#GET /r{i:03}")), 1))
        .collect();
    assert!(routes.len() > 2 * MOVE_BATCH);
    for chunk in routes.chunks(40) {
        rig.store
            .flush_usage(&record.allowance_id, chunk, &[], None)
            .await
            .unwrap();
    }
    let parts = rig
        .store
        .allowance_parts(&record.allowance_id)
        .await
        .unwrap();
    assert_eq!(parts.len(), 1, "a single allowance: its root");
    // After midnight, a flush adds to one of them.
    let now = NOON + DAY - 12 * 3600 + 900;
    rig.clock.set(now);
    let late = [(routes[0].0.clone(), 5)];
    rig.store
        .flush_usage(&record.allowance_id, &late, &[], None)
        .await
        .unwrap();
    let moved = keygate::usage::archive::finished_days(
        &rig.store,
        "acme",
        &record.allowance_id,
        keygate::store::Subject::Key,
        Day::of(now),
        now,
    )
    .await
    .unwrap();
    assert_eq!(moved, 1, "one key, one day");
    let item = allowance_item(&rig.store, &record).await;
    assert!(
        !item.keys().any(|k| k.starts_with(&format!("u#{day0}"))),
        "{item:?}"
    );
    let archived = rig
        .store
        .archived_day("acme", keygate::store::Subject::Key, kid, &day0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(archived.usage.allowed, 2);
    assert_eq!(archived.usage.routes.len(), 121, "120 + the route hit");
    assert_eq!(archived.usage.routes["GET /r000"], 6, "the late 5 added");
    assert_eq!(archived.usage.routes.values().sum::<u64>(), 2 + 120 + 5);
    assert!(
        archived.version >= 3,
        "a transaction per batch: {}",
        archived.version
    );
}
