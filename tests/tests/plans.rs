//! Plans and subscriptions end to end, in process, against the emulator
//! (with the realism layer): each request through the real authorizer and
//! the real `keys` function, every answer checked against the OpenAPI
//! contract, and the owners' plan allowance stamps read back with the SDK.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use keygate::clock::Clock;
use keygate::manage::{Caller, ManageError};
use keygate::plans::request::{CreatePlanRequest, SubscribeRequest, UpdatePlanRequest};
use keygate::plans::{PlanLimits, PlanService, Subscription};
use keygate::store::{items, DynamoStore, PlanAdmin, PlanLookup, StoreError, SubscriptionChange};
use keygate_tests::api::*;
use keygate_tests::faults::{Fault, FaultProxy};
use keygate_tests::{caught_up, sdk_config};
use serde_json::{json, Value};

/// Scopes of a tenant key that may call the plan routes (and issue keys),
/// but holds no plan permission.
const ISSUER: [&str; 6] = [
    "GET /orders/*",
    "* /v1/keys/**",
    "* /v1/plans/**",
    "* /v1/owners/**",
    "keys:issue",
    "keys:read",
];

type Item = HashMap<String, AttributeValue>;

/// The owner's plan allowance item, read strongly consistently.
async fn allowance(api: &Api, owner: &str) -> Item {
    api.store
        .client()
        .get_item()
        .table_name(api.store.table())
        .key(
            items::PK,
            AttributeValue::S(items::allowance_pk(&items::owner_allowance_id(owner))),
        )
        .key(items::SK, AttributeValue::S(items::ALLOWANCE_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

fn num(item: &Item, attr: &str) -> Option<u64> {
    item.get(attr)
        .map(|v| v.as_n().expect("a number").parse().unwrap())
}

fn text<'a>(item: &'a Item, attr: &str) -> Option<&'a str> {
    item.get(attr).map(|v| v.as_s().expect("a string").as_str())
}

async fn create(api: &Api, key: &str, plan_id: &str, limits: Value) -> Reply {
    let body = json!({"plan_id": plan_id, "name": format!("{plan_id} plan"), "limits": limits});
    api.call(key, "POST", "/v1/plans", Some(body)).await
}

async fn patch_plan(api: &Api, key: &str, plan_id: &str, body: Value) -> Reply {
    let path = format!("/v1/plans/{plan_id}");
    api.call(key, "PATCH", &path, Some(body)).await
}

async fn subscribe(api: &Api, key: &str, owner: &str, plan_id: Option<&str>) -> Reply {
    let path = format!("/v1/owners/{owner}/plan");
    api.call(key, "PUT", &path, Some(json!({ "plan_id": plan_id })))
        .await
}

/// Subscribe through the service, as a client obeying `Retry-After` would
/// (many subscriptions to one plan in a burst meet the plan member
/// partition's write limit under the realism layer).
async fn subscribe_retrying(api: &Api, owner: &str, plan_id: &str) {
    let plans = PlanService::new(api.service.store(), api.service.clock());
    for _ in 0..20 {
        let req = SubscribeRequest {
            plan_id: Some(plan_id.into()),
        };
        match plans.subscribe(&Caller::operator("test"), owner, req).await {
            Ok(_) => return,
            Err(ManageError::Unavailable(_)) => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    panic!("subscribing {owner} kept failing");
}

#[tokio::test]
async fn plans_are_created_shown_listed_and_updated_one_version_at_a_time() {
    let api = api().await;
    let admin = api.admin().await;
    let made = create(
        &api,
        &admin,
        "free",
        json!({"rate": {"limit": 5, "window": 1}, "daily": 1000}),
    )
    .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.body["version"], 1);
    assert_eq!(
        made.body["limits"],
        json!({"rate": {"limit": 5, "window": 1}, "daily": 1000})
    );
    let again = create(&api, &admin, "free", json!({"daily": 1})).await;
    assert_eq!((again.status, code(&again)), (409, "plan_exists"));
    assert_eq!(
        create(&api, &admin, "pro", json!({"monthly": 1_000_000}))
            .await
            .status,
        201
    );

    let shown = api.call(&admin, "GET", "/v1/plans/free", None).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body, made.body);
    for path in ["/v1/plans/nope", "/v1/plans/Not_An_Id"] {
        let missing = api.call(&admin, "GET", path, None).await;
        assert_eq!((missing.status, code(&missing)), (404, "plan_not_found"));
    }

    caught_up().await;
    let page = api.call(&admin, "GET", "/v1/plans?limit=1", None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["plans"][0]["plan_id"], "free");
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = api
        .call(&admin, "GET", &format!("/v1/plans?cursor={cursor}"), None)
        .await;
    assert_eq!(rest.body["plans"][0]["plan_id"], "pro", "{}", rest.body);

    api.clock.advance(60);
    let patch = |body: Value| api.call(&admin, "PATCH", "/v1/plans/free", Some(body));
    let changed = patch(json!({"limits": {"daily": 2000}, "version": 1})).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["version"], 2);
    assert_eq!(changed.body["limits"], json!({"daily": 2000}));
    assert_eq!(
        changed.body["updated_at"],
        made.body["created_at"].as_i64().unwrap() + 60
    );
    // A change made against the version before: refused.
    let stale = patch(json!({"name": "Free", "version": 1})).await;
    assert_eq!((stale.status, code(&stale)), (409, "version_conflict"));
    // The same change again (a retry) changes nothing.
    let same = patch(json!({"limits": {"daily": 2000}, "version": 1})).await;
    assert_eq!((same.status, same.body["version"].clone()), (200, json!(2)));
    let renamed = patch(json!({"name": "Free"})).await;
    assert_eq!(renamed.body["version"], 3);
    let missing = patch_plan(&api, &admin, "nope", json!({"name": "x"})).await;
    assert_eq!((missing.status, code(&missing)), (404, "plan_not_found"));

    let events = api.store.plan_events("plan:free", 10, None).await.unwrap();
    let actions: Vec<String> = events
        .items
        .iter()
        .map(|e| json!(e.action).as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["plan_created", "plan_updated", "plan_updated"]);
    assert!(events.items.iter().all(|e| e.actor.starts_with("key_")));
}

#[tokio::test]
async fn every_plan_rule_has_its_code() {
    let api = api().await;
    let admin = api.admin().await;
    let post = |body: Value| api.call(&admin, "POST", "/v1/plans", Some(body));
    for (limits, field) in [
        (json!({}), "limits"),
        (json!({"daily": 0}), "limits.daily"),
        (json!({"monthly": 1_000_000_000_001u64}), "limits.monthly"),
        (
            json!({"rate": {"limit": 0, "window": 1}}),
            "limits.rate.limit",
        ),
        (
            json!({"rate": {"limit": 1_000_001, "window": 1}}),
            "limits.rate.limit",
        ),
        (
            json!({"rate": {"limit": 5, "window": 0}}),
            "limits.rate.window",
        ),
        (
            json!({"rate": {"limit": 5, "window": 86_401}}),
            "limits.rate.window",
        ),
    ] {
        let reply = post(json!({"plan_id": "p", "name": "p", "limits": limits})).await;
        assert_eq!(
            (reply.status, code(&reply)),
            (400, "invalid_limits"),
            "{limits}"
        );
        assert_eq!(reply.body["error"]["field"], field, "{limits}");
    }
    for (body, want) in [
        (
            json!({"plan_id": "Pro", "name": "p", "limits": {"daily": 1}}),
            "invalid_plan_id",
        ),
        (
            json!({"plan_id": "", "name": "p", "limits": {"daily": 1}}),
            "invalid_plan_id",
        ),
        (
            json!({"plan_id": "p", "name": " ", "limits": {"daily": 1}}),
            "invalid_name",
        ),
        (
            json!({"plan_id": "p", "name": "p", "limits": {"hourly": 1}}),
            "unknown_field",
        ),
        (
            json!({"plan_id": "p", "name": "p", "limits": {"daily": -1}}),
            "invalid_type",
        ),
        (json!({"plan_id": "p", "name": "p"}), "missing_field"),
        (
            json!({"plan_id": "p", "name": "p", "limits": {"daily": 1}, "owner": "x"}),
            "unknown_field",
        ),
    ] {
        let reply = post(body.clone()).await;
        assert_eq!((reply.status, code(&reply)), (400, want), "{body}");
    }
    assert_eq!(
        create(&api, &admin, "p", json!({"daily": 1})).await.status,
        201
    );
    let patch = |body: Value| api.call(&admin, "PATCH", "/v1/plans/p", Some(body));
    let empty = patch(json!({"version": 1})).await;
    assert_eq!((empty.status, code(&empty)), (400, "empty_update"));
    let bad = patch(json!({"limits": {"daily": "10"}})).await;
    assert_eq!((bad.status, code(&bad)), (400, "invalid_type"));
    let none = patch(json!({"limits": {}})).await;
    assert_eq!((none.status, code(&none)), (400, "invalid_limits"));
    for (body, want) in [
        (json!({}), "missing_field"),
        (json!({"plan_id": "Bad id"}), "invalid_plan_id"),
        (json!({"plan_id": 7}), "invalid_type"),
    ] {
        let reply = subscribe_body(&api, &admin, "acme", body.clone()).await;
        assert_eq!((reply.status, code(&reply)), (400, want), "{body}");
    }
    let unknown = subscribe(&api, &admin, "acme", Some("nope")).await;
    assert_eq!((unknown.status, code(&unknown)), (404, "plan_not_found"));
    let owner = subscribe(&api, &admin, "a%2Fb", Some("p")).await;
    assert_eq!((owner.status, code(&owner)), (400, "invalid_owner"));
    let wrong = api.call(&admin, "DELETE", "/v1/plans/p", None).await;
    assert_eq!((wrong.status, code(&wrong)), (405, "method_not_allowed"));
}

async fn subscribe_body(api: &Api, key: &str, owner: &str, body: Value) -> Reply {
    let path = format!("/v1/owners/{owner}/plan");
    api.call(key, "PUT", &path, Some(body)).await
}

#[tokio::test]
async fn subscribing_stamps_the_owner_allowance_and_keeps_the_history() {
    let api = api().await;
    let admin = api.admin().await;
    for (plan_id, limits) in [
        (
            "free",
            json!({"rate": {"limit": 5, "window": 1}, "daily": 1000}),
        ),
        (
            "pro",
            json!({"rate": {"limit": 50, "window": 2}, "monthly": 1_000_000}),
        ),
    ] {
        assert_eq!(create(&api, &admin, plan_id, limits).await.status, 201);
    }
    let never = api.call(&admin, "GET", "/v1/owners/acme/plan", None).await;
    assert_eq!(never.status, 200);
    assert_eq!(
        never.body,
        json!({"owner": "acme", "plan": null, "since": null, "version": 0, "history": []})
    );

    let t0 = api.clock.now();
    let on = subscribe(&api, &admin, "acme", Some("free")).await;
    assert_eq!(on.status, 200, "{}", on.body);
    assert_eq!(on.body["plan"]["plan_id"], "free");
    let stamp = allowance(&api, "acme").await;
    assert_eq!(text(&stamp, "pid"), Some("free"));
    assert_eq!(num(&stamp, "pv"), Some(1));
    assert_eq!(num(&stamp, "pver"), Some(1));
    assert_eq!((num(&stamp, "pr"), num(&stamp, "pw")), (Some(5), Some(1)));
    assert_eq!((num(&stamp, "pd"), num(&stamp, "pm")), (Some(1000), None));

    // The authorizer's counters on the item are not the stamp's to touch.
    api.store
        .client()
        .update_item()
        .table_name(api.store.table())
        .key(items::PK, AttributeValue::S("ALW#owner:acme".into()))
        .key(items::SK, AttributeValue::S("ALW".into()))
        .update_expression("SET qu = :n, kv = :m")
        .expression_attribute_values(":n", AttributeValue::N("7".into()))
        .expression_attribute_values(":m", AttributeValue::M(HashMap::new()))
        .send()
        .await
        .unwrap();

    api.clock.advance(3600);
    let moved = subscribe(&api, &admin, "acme", Some("pro")).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    let stamp = allowance(&api, "acme").await;
    assert_eq!(
        (text(&stamp, "pid"), num(&stamp, "pv")),
        (Some("pro"), Some(2))
    );
    assert_eq!((num(&stamp, "pr"), num(&stamp, "pw")), (Some(50), Some(2)));
    assert_eq!(
        (num(&stamp, "pd"), num(&stamp, "pm")),
        (None, Some(1_000_000))
    );
    assert_eq!(num(&stamp, "qu"), Some(7));
    assert!(stamp.contains_key("kv"));

    // Naming the current plan again changes nothing.
    let same = subscribe(&api, &admin, "acme", Some("pro")).await;
    assert_eq!((same.status, same.body["version"].clone()), (200, json!(2)));
    assert_eq!(num(&allowance(&api, "acme").await, "pv"), Some(2));

    api.clock.advance(3600);
    let off = subscribe(&api, &admin, "acme", None).await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.body["plan"], Value::Null);
    let stamp = allowance(&api, "acme").await;
    assert_eq!(num(&stamp, "pv"), Some(3));
    for gone in ["pid", "pver", "pr", "pw", "pd", "pm"] {
        assert!(!stamp.contains_key(gone), "{gone} left: {stamp:?}");
    }
    assert_eq!(num(&stamp, "qu"), Some(7));

    let shown = api.call(&admin, "GET", "/v1/owners/acme/plan", None).await;
    assert_eq!(shown.body["version"], 3);
    assert_eq!(shown.body["since"], t0 + 7200);
    assert_eq!(
        shown.body["history"],
        json!([{"plan_id": "free", "from": t0}, {"plan_id": "pro", "from": t0 + 3600},
               {"plan_id": null, "from": t0 + 7200}])
    );
    // Back on: the stamp version keeps rising.
    subscribe(&api, &admin, "acme", Some("free")).await;
    assert_eq!(num(&allowance(&api, "acme").await, "pv"), Some(4));
    let trail = api.store.plan_events("owner:acme", 10, None).await.unwrap();
    assert_eq!(trail.items.len(), 4);
    assert!(
        trail.items[1].change.contains(r#""to":"pro""#),
        "{:?}",
        trail.items[1]
    );
}

#[tokio::test]
async fn a_plan_update_restamps_every_subscriber_before_it_answers() {
    let api = api().await;
    let admin = api.admin().await;
    create(&api, &admin, "team", json!({"daily": 100})).await;
    create(&api, &admin, "other", json!({"daily": 5})).await;
    let owners: Vec<String> = (0..30).map(|i| format!("team-owner-{i}")).collect();
    for owner in &owners {
        subscribe_retrying(&api, owner, "team").await;
    }
    subscribe_retrying(&api, "elsewhere", "other").await;
    // One subscriber moves away before the update: it keeps its new plan.
    subscribe_retrying(&api, &owners[0], "other").await;

    let update = || {
        let body = json!({"limits": {"daily": 500, "rate": {"limit": 10, "window": 1}}});
        api.call(&admin, "PATCH", "/v1/plans/team", Some(body))
    };
    let changed = update().await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    for owner in &owners[1..] {
        let stamp = allowance(&api, owner).await;
        assert_eq!(text(&stamp, "pid"), Some("team"), "{owner}");
        assert_eq!(
            (num(&stamp, "pver"), num(&stamp, "pv")),
            (Some(2), Some(2)),
            "{owner}"
        );
        assert_eq!(
            (num(&stamp, "pd"), num(&stamp, "pr"), num(&stamp, "pw")),
            (Some(500), Some(10), Some(1)),
            "{owner}"
        );
    }
    for owner in [owners[0].as_str(), "elsewhere"] {
        let stamp = allowance(&api, owner).await;
        assert_eq!(
            (text(&stamp, "pid"), num(&stamp, "pd")),
            (Some("other"), Some(5)),
            "{owner}"
        );
    }
    // A retry of the same update (as after a 503) re-stamps nobody twice.
    let retry = update().await;
    assert_eq!(
        (retry.status, retry.body["version"].clone()),
        (200, json!(2))
    );
    let done = api
        .store
        .restamp(
            &api.store.plan("team").await.unwrap().unwrap(),
            &keygate::clock::SystemClock,
        )
        .await
        .unwrap();
    assert_eq!((done.stamped, done.skipped), (0, 29));
    assert_eq!(num(&allowance(&api, &owners[5]).await, "pv"), Some(2));
}

/// A subscription read against a plan version that changed before it
/// commits is refused by its condition, so no stamp carries old limits.
#[tokio::test]
async fn a_subscription_never_stamps_a_superseded_plan_version() {
    let api = api().await;
    let admin = api.admin().await;
    create(&api, &admin, "free", json!({"daily": 10})).await;
    let v1 = api.store.plan("free").await.unwrap().unwrap();
    let patched = patch_plan(&api, &admin, "free", json!({"limits": {"daily": 20}})).await;
    assert_eq!(patched.status, 200);
    let next = Subscription::moved("acme", None, Some("free"), api.clock.now());
    let event = keygate::plans::audit::PlanEvent::new(
        "owner:acme".into(),
        keygate::plans::audit::PlanAction::SubscriptionChanged,
        "test",
        api.clock.now(),
        1,
        json!({}),
    );
    let change = SubscriptionChange {
        previous: None,
        next: &next,
        plan: Some(&v1),
        event: &event,
    };
    assert!(matches!(
        api.store.change_subscription(change).await,
        Err(StoreError::Conflict)
    ));
    assert!(allowance(&api, "acme").await.is_empty());
    assert_eq!(api.store.subscription("acme").await.unwrap(), None);
    // Through the service the subscription reads the plan anew: version 2.
    subscribe(&api, &admin, "acme", Some("free")).await;
    let stamp = allowance(&api, "acme").await;
    assert_eq!(
        (num(&stamp, "pver"), num(&stamp, "pd")),
        (Some(2), Some(20))
    );
}

#[tokio::test]
async fn escalation_attempts_fail_with_their_codes() {
    let api = api().await;
    let admin = api.admin().await;
    let issuer = api
        .tenant("acme", |r| {
            r.scopes = ISSUER.iter().map(|s| s.to_string()).collect()
        })
        .await;
    // A keys:issue key cannot create, change or subscribe to plans, not
    // even its own owner, nor read them.
    let made = create(&api, &issuer, "mine", json!({"daily": 1_000_000})).await;
    assert_eq!((made.status, code(&made)), (403, "missing_permission"));
    create(
        &api,
        &admin,
        "free",
        json!({"rate": {"limit": 5, "window": 1}, "daily": 1000}),
    )
    .await;
    create(&api, &admin, "big", json!({"daily": 1_000_000})).await;
    let widened = patch_plan(
        &api,
        &issuer,
        "free",
        json!({"limits": {"daily": 1_000_000}}),
    )
    .await;
    assert_eq!(
        (widened.status, code(&widened)),
        (403, "missing_permission")
    );
    let upgrade = subscribe(&api, &issuer, "acme", Some("big")).await;
    assert_eq!(
        (upgrade.status, code(&upgrade)),
        (403, "missing_permission")
    );
    let read = api.call(&issuer, "GET", "/v1/plans", None).await;
    assert_eq!((read.status, code(&read)), (403, "missing_permission"));
    // It names what a reader needs, not the write permission.
    let said = read.body["error"]["message"].as_str().unwrap_or_default();
    assert!(said.contains("'plans:read'"), "{said}");
    assert_eq!(api.store.subscription("acme").await.unwrap(), None);

    // Not on a plan yet: a key may have any limits its issuer holds.
    let key = |limits: Value| json!({"name": "k", "scopes": ["GET /orders/*"], "limits": limits});
    let wide = api
        .call(
            &issuer,
            "POST",
            "/v1/keys",
            Some(key(json!({"quota": {"limit": 5000, "period": "day"}}))),
        )
        .await;
    assert_eq!(wide.status, 201, "{}", wide.body);
    remember(wide.body["key"].as_str().unwrap());
    let wide_id = wide.body["key_id"].as_str().unwrap().to_owned();

    assert_eq!(
        subscribe(&api, &admin, "acme", Some("free")).await.status,
        200
    );
    for (limits, want) in [
        (json!({"quota": {"limit": 1001, "period": "day"}}), 403),
        (json!({"rate": {"limit": 6, "window": 1}}), 403),
        (json!({"rate": {"limit": 10, "window": 2}}), 403),
        (
            json!({"quota": {"limit": 1000, "period": "day"}, "rate": {"limit": 5, "window": 1}}),
            201,
        ),
        (json!({"quota": {"limit": 50_000, "period": "month"}}), 201),
        (json!({}), 201),
    ] {
        let reply = api
            .call(&issuer, "POST", "/v1/keys", Some(key(limits.clone())))
            .await;
        assert_eq!(reply.status, want, "{limits}: {}", reply.body);
        if want == 403 {
            assert_eq!(code(&reply), "limits_exceed_plan", "{limits}");
        } else {
            remember(reply.body["key"].as_str().unwrap());
        }
    }
    // Admins too: a key's own limits only ever narrow its owner's plan.
    let by_admin = api
        .call(&admin, "POST", "/v1/keys", Some(json!({"owner": "acme", "name": "k", "scopes": ["GET /orders/*"],
                                                      "limits": {"quota": {"limit": 2000, "period": "day"}}})))
        .await;
    assert_eq!(
        (by_admin.status, code(&by_admin)),
        (403, "limits_exceed_plan")
    );
    // Changing a key's limits is held to the plan; other changes are not.
    let path = format!("/v1/keys/{wide_id}");
    let day_quota = |limit: u64| json!({"limits": {"quota": {"limit": limit, "period": "day"}}});
    let widen = api
        .call(&issuer, "PATCH", &path, Some(day_quota(4000)))
        .await;
    assert_eq!((widen.status, code(&widen)), (403, "limits_exceed_plan"));
    let narrow = api
        .call(&issuer, "PATCH", &path, Some(day_quota(900)))
        .await;
    assert_eq!(narrow.status, 200, "{}", narrow.body);
    let rename = api
        .call(&issuer, "PATCH", &path, Some(json!({"name": "renamed"})))
        .await;
    assert_eq!(rename.status, 200);
}

#[tokio::test]
async fn a_tenant_reads_only_its_own_owners_subscription() {
    let api = api().await;
    let admin = api.admin().await;
    create(&api, &admin, "free", json!({"daily": 1000})).await;
    subscribe(&api, &admin, "acme", Some("free")).await;
    subscribe(&api, &admin, "globex", Some("free")).await;
    let reader = api
        .tenant("acme", |r| {
            r.scopes = vec![
                "GET /v1/plans/**".into(),
                "* /v1/owners/**".into(),
                "plans:read".into(),
            ]
        })
        .await;
    let own = api.call(&reader, "GET", "/v1/owners/acme/plan", None).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["plan"]["plan_id"], "free");
    let other = api
        .call(&reader, "GET", "/v1/owners/globex/plan", None)
        .await;
    let absent = api
        .call(&reader, "GET", "/v1/owners/initech/plan", None)
        .await;
    assert_eq!((other.status, code(&other)), (404, "not_found"));
    assert_eq!(
        other.body, absent.body,
        "another owner answers like one that does not exist"
    );
    assert_eq!(
        api.call(&reader, "GET", "/v1/plans/free", None)
            .await
            .status,
        200
    );
    // plans:read changes nothing.
    let write = subscribe(&api, &reader, "acme", None).await;
    assert_eq!((write.status, code(&write)), (403, "missing_permission"));
}

#[tokio::test]
async fn keyctl_manages_plans_and_subscriptions() {
    let api = api().await;
    let keyctl = keyctl();
    let run = |args: &[&str]| {
        let mut all = vec!["--table", api.store.table(), "--key-env", "test", "plan"];
        all.extend_from_slice(args);
        std::process::Command::new(&keyctl)
            .args(&all)
            .output()
            .unwrap()
    };
    let out = run(&[
        "create", "free", "--name", "Free", "--rate", "5", "--daily", "1000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plan["limits"],
        json!({"rate": {"limit": 5, "window": 1}, "daily": 1000})
    );
    let out = run(&["create", "free", "--name", "Free", "--daily", "1"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("plan_exists (409)"), "{said}");
    // The message once (before, the error's source repeated it).
    assert_eq!(said.matches("plan 'free' exists").count(), 1, "{said}");
    let out = run(&["subscribe", "acme", "free"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["update", "free", "--monthly", "20000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stamp = allowance(&api, "acme").await;
    assert_eq!(
        (num(&stamp, "pm"), num(&stamp, "pd"), num(&stamp, "pver")),
        (Some(20_000), None, Some(2))
    );
    let out = run(&["show", "free"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"],
        2
    );
    let out = run(&["subscribe", "acme", "--none"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!allowance(&api, "acme").await.contains_key("pid"));
    let out = run(&["owner", "acme"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["history"].as_array().unwrap().len(), 2);
    let plans = PlanService::new(api.service.store(), api.service.clock());
    let listed = plans
        .create(
            &Caller::operator("test"),
            CreatePlanRequest {
                plan_id: "second".into(),
                name: "Second".into(),
                limits: PlanLimits {
                    daily: Some(1),
                    ..PlanLimits::default()
                },
            },
        )
        .await;
    assert!(listed.is_ok());
    caught_up().await;
    let out = run(&["list"]);
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["plans"].as_array().unwrap().len(), 2, "{page}");
}

/// A re-stamp that fails answers 503 after the plan's new version is
/// committed; the same update sent again finishes the re-stamp.
#[tokio::test]
async fn a_failed_restamp_answers_503_and_the_same_update_finishes_it() {
    let api = api().await;
    let admin = api.admin().await;
    create(&api, &admin, "team", json!({"daily": 100})).await;
    for owner in ["a", "b", "c"] {
        assert_eq!(
            subscribe(&api, &admin, owner, Some("team")).await.status,
            200
        );
    }
    let proxy = FaultProxy::to_emulator().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .endpoint_url(proxy.endpoint())
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    let faulty = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), api.store.table());
    let plans = PlanService::new(&faulty, &api.clock);
    let update = || UpdatePlanRequest {
        limits: Some(PlanLimits {
            daily: Some(50),
            ..PlanLimits::default()
        }),
        ..UpdatePlanRequest::default()
    };
    proxy.set_for("UpdateItem", Fault::ServerError);
    let failed = plans
        .update(&Caller::operator("test"), "team", update())
        .await
        .unwrap_err();
    assert_eq!((failed.status(), failed.code()), (503, "unavailable"));
    assert_eq!(keygate::manage::retry_after(failed.status()), Some(1));
    assert_eq!(api.store.plan("team").await.unwrap().unwrap().version, 2);
    assert_eq!(num(&allowance(&api, "a").await, "pd"), Some(100));

    proxy.clear();
    let done = plans
        .update(&Caller::operator("test"), "team", update())
        .await
        .unwrap();
    assert_eq!(done.version, 2, "the retry commits no new version");
    for owner in ["a", "b", "c"] {
        let stamp = allowance(&api, owner).await;
        assert_eq!(
            (num(&stamp, "pver"), num(&stamp, "pd"), num(&stamp, "pv")),
            (Some(2), Some(50), Some(2)),
            "{owner}"
        );
    }
}
