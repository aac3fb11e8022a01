//! Plans enforced by the authorizer (issue 17), against the emulator behind
//! the realism layer: the keys of an owner on a plan spend from its one plan
//! allowance, every limit of the plan at once, exactly under concurrency;
//! plan changes reach the next request; a key's own stricter limits still
//! deny.

use std::sync::Arc;

use keygate::decision::{Decision, DenyReason};
use keygate::limits::Limits;
use keygate::store::{KeyAdmin, UsageStore};
use keygate_tests::caught_up;
use keygate_tests::plan_rig::*;

#[tokio::test]
async fn three_keys_share_one_plan_exactly_with_its_rate_and_daily_quota_together() {
    let rig = rig().await;
    let keys = rig.basic_plan_with_three_keys().await;
    // A container learns of a new subscription with the key record, by an
    // eventually consistent read: a second after, here.
    caught_up().await;
    let containers = rig.containers(6);
    let mut all = Vec::new();
    // Five seconds of 60 requests each: the rate lets 30 through a second,
    // the day's quota stops the total at 100.
    for second in 0..5 {
        let verdicts = burst(&containers, &keys, 10).await;
        let ok = allowed(&verdicts);
        assert!(ok <= 30, "second {second}: {ok} allowed past the rate");
        all.extend(verdicts);
        rig.clock.advance(1);
    }
    assert_eq!(
        allowed(&all),
        100,
        "exactly the day's quota, over three keys"
    );
    let rated = denied(&all, DenyReason::RateLimited);
    let quota = denied(&all, DenyReason::QuotaExceeded);
    assert_eq!(rated.len() + quota.len(), 200);
    assert!(!rated.is_empty() && !quota.is_empty());
    for v in &rated {
        let hit = v.limit.as_ref().expect("the limit hit");
        assert_eq!((hit.scope, hit.window.as_str()), ("plan", "1s"));
        assert_eq!(hit.plan_id.as_deref(), Some("basic"));
    }
    for v in &quota {
        let hit = v.limit.as_ref().expect("the limit hit");
        assert_eq!((hit.scope, hit.window.as_str()), ("plan", "day"));
    }
    // Every allowed request shows what is left of each limit of the plan.
    let mut daily_left: Vec<u64> = all
        .iter()
        .filter_map(|v| match &v.decision {
            Decision::Allow(ctx) => {
                let plan = ctx.plan.as_ref().expect("the plan's remaining");
                assert_eq!(plan.plan_id, "basic");
                assert!(plan.rate_remaining.unwrap() < 30);
                assert!(plan.monthly_remaining.unwrap() < 10_000);
                plan.daily_remaining
            }
            Decision::Deny(_) => None,
        })
        .collect();
    daily_left.sort_unstable();
    assert_eq!(daily_left, (0..100).collect::<Vec<u64>>(), "each unit once");
    let item = rig.plan_allowance().await;
    let n = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).cloned();
    assert_eq!(n("pdu").as_deref(), Some("100"));
    assert_eq!(n("pmu").as_deref(), Some("100"));
    assert_eq!(n("pu#2026-11-30#basic#ok").as_deref(), Some("100"));
}

#[tokio::test]
async fn upgrades_downgrades_and_moves_reach_the_next_request() {
    let rig = rig().await;
    rig.plan("small", daily(5)).await;
    rig.plan("other", daily(3)).await;
    rig.subscribe(Some("small")).await;
    let key = rig.key(Limits::default()).await;
    caught_up().await;
    let [first, second]: [Arc<Container>; 2] = rig.containers(2).try_into().ok().unwrap();
    for _ in 0..5 {
        assert!(allows(&first, &key).await);
    }
    let over = first.authorize(&request(&key)).await.unwrap();
    assert_eq!(over.decision, Decision::Deny(DenyReason::QuotaExceeded));

    // Upgrade: what was used stays used; the next request is allowed. A
    // container that was not denying sees it at once; one that was, within
    // the second it denies locally.
    rig.change("small", daily(8)).await;
    assert!(allows(&second, &key).await);
    rig.clock.advance(1);
    assert!(allows(&first, &key).await);
    assert_eq!(rig.plan_allowance().await["pdu"].as_n().unwrap(), "7");

    // Downgrade below what is used: denied from the next request.
    rig.change("small", daily(4)).await;
    let down = second.authorize(&request(&key)).await.unwrap();
    assert_eq!(down.decision, Decision::Deny(DenyReason::QuotaExceeded));

    // A move to another plan: its own limits, from the next request (the
    // day's use so far was on the other plan: the counters go with the
    // owner, so 7 used of 3).
    rig.clock.advance(1);
    rig.subscribe(Some("other")).await;
    let moved = first.authorize(&request(&key)).await.unwrap();
    assert_eq!(moved.decision, Decision::Deny(DenyReason::QuotaExceeded));
    assert_eq!(
        moved.limit.as_ref().and_then(|h| h.plan_id.as_deref()),
        Some("other")
    );

    // Off the plan: the key's own allowance only, from the next request.
    rig.subscribe(None).await;
    let free = second.authorize(&request(&key)).await.unwrap();
    assert!(free.decision.is_allow(), "{free:?}");
    let Decision::Allow(ctx) = free.decision else {
        unreachable!()
    };
    assert_eq!(ctx.plan, None);
}

#[tokio::test]
async fn a_key_with_its_own_stricter_limit_is_denied_by_it_and_gives_the_plan_unit_back() {
    let rig = rig().await;
    rig.plan("roomy", daily(100)).await;
    rig.subscribe(Some("roomy")).await;
    let strict = rig.key(own_daily(3)).await;
    let open = rig.key(Limits::default()).await;
    caught_up().await;
    let container = rig.containers(1).remove(0);
    for _ in 0..3 {
        assert!(allows(&container, &strict).await);
    }
    let over = container.authorize(&request(&strict)).await.unwrap();
    assert_eq!(over.decision, Decision::Deny(DenyReason::QuotaExceeded));
    let hit = over.limit.expect("which limit");
    assert_eq!((hit.scope, hit.window.as_str()), ("key", "day"));
    // The plan counted only what was admitted: the refused request's unit
    // went back.
    assert_eq!(rig.plan_allowance().await["pdu"].as_n().unwrap(), "3");
    let Decision::Allow(ctx) = container.authorize(&request(&open)).await.unwrap().decision else {
        panic!("the plan still has room for the other key")
    };
    assert_eq!(ctx.plan.unwrap().daily_remaining, Some(96));
    assert_eq!(
        ctx.quota_remaining, None,
        "that key has no quota of its own"
    );
}

#[tokio::test]
async fn keys_of_owners_without_a_plan_spend_only_their_own_allowance() {
    let rig = rig().await;
    let key = rig.key(own_daily(2)).await;
    caught_up().await;
    let container = rig.containers(1).remove(0);
    let first = container.authorize(&request(&key)).await.unwrap();
    // The record, the owner's (absent) plan stamp, the admission (twice if
    // the container's first guess of the new allowance's counters missed).
    assert!((3..=4).contains(&first.requests), "{first:?}");
    let Decision::Allow(ctx) = first.decision else {
        panic!("allowed")
    };
    assert_eq!((ctx.plan, ctx.quota_remaining), (None, Some(1)));
    let next = container.authorize(&request(&key)).await.unwrap();
    assert_eq!(next.requests, 1, "one write, as before plans");
    assert!(rig.plan_allowance().await.is_empty(), "no plan item made");
}

#[tokio::test]
async fn usage_per_plan_splits_real_decisions_at_a_plan_change_in_json_and_csv() {
    use keygate::usage::http::Body;
    use keygate::usage::report::Thresholds;
    use keygate::usage::service::UsageService;
    let rig = rig().await;
    rig.plan("free", daily(3)).await;
    rig.plan("pro", daily(1_000)).await;
    rig.subscribe(Some("free")).await;
    let key = rig.key(Limits::default()).await;
    caught_up().await;
    let container = rig.containers(1).remove(0);
    for _ in 0..3 {
        assert!(allows(&container, &key).await);
    }
    let over = container.authorize(&request(&key)).await.unwrap();
    assert_eq!(over.decision, Decision::Deny(DenyReason::QuotaExceeded));
    // Mid-day, the owner moves to pro: the next request spends from it
    // (this container denied on free a moment ago, and trusts that for
    // up to a second).
    rig.subscribe(Some("pro")).await;
    rig.clock.advance(1);
    assert!(allows(&container, &key).await);
    // Denials are counted in the container and written with its next
    // flushes (one allowance per decision: the plan's and the key's).
    rig.clock.advance(keygate::authorize::local::FLUSH_AFTER);
    assert!(allows(&container, &key).await);
    assert!(allows(&container, &key).await);

    let usage = UsageService::new(rig.store.clone(), rig.clock.clone(), Thresholds::default());
    let query = [
        ("owner", OWNER),
        ("from", "2026-11-30"),
        ("to", "2026-11-30"),
    ];
    let (status, body) =
        keygate_tests::usage_routes::get(&usage, &operator(), "/v1/usage", &query).await;
    assert_eq!(status, 200);
    let Body::Json(totals) = body else {
        panic!("JSON")
    };
    let plans = totals["plans"].as_array().expect("per-plan totals");
    let of = |id: &str| {
        plans
            .iter()
            .find(|p| p["plan_id"] == id)
            .unwrap_or_else(|| panic!("{id} in {plans:?}"))
            .clone()
    };
    assert_eq!(of("free")["allowed"], 3, "{plans:?}");
    assert_eq!(
        of("free")["denied_by_reason"]["quota_exceeded"],
        1,
        "{plans:?}"
    );
    assert_eq!(of("pro")["allowed"], 3, "{plans:?}");
    assert_eq!(of("pro")["period"], "2026-11");

    let csv_query = [
        ("owner", OWNER),
        ("from", "2026-11-30"),
        ("to", "2026-11-30"),
        ("format", "csv"),
    ];
    let (_, body) =
        keygate_tests::usage_routes::get(&usage, &operator(), "/v1/usage", &csv_query).await;
    let Body::Csv(text) = body else { panic!("CSV") };
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let months: Vec<(String, String, String)> = rows
        .records()
        .map(Result::unwrap)
        .filter(|r| &r[col("kind")] == "plan_month")
        .map(|r| {
            (
                r[col("plan_id")].to_owned(),
                r[col("allowed")].to_owned(),
                r[col("denied")].to_owned(),
            )
        })
        .collect();
    assert_eq!(
        months,
        vec![
            ("free".to_owned(), "3".to_owned(), "1".to_owned()),
            ("pro".to_owned(), "3".to_owned(), "0".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_key_without_limits_of_its_own_is_one_write_and_a_revoke_still_reaches_the_next_request()
{
    let rig = rig().await;
    rig.plan("roomy", daily(1_000)).await;
    rig.subscribe(Some("roomy")).await;
    let (key, record) = rig.key_and_record(Limits::default()).await;
    let (sibling, sibling_record) = rig.key_and_record(Limits::default()).await;
    caught_up().await;
    let container = &rig.containers(1)[0];
    // The first decision reads the record and the owner's plan; from then
    // on one conditional write each, on the plan allowance only.
    assert!(allows(container, &key).await);
    for _ in 0..5 {
        let v = container.authorize(&request(&key)).await.unwrap();
        assert!(v.decision.is_allow(), "{v:?}");
        assert_eq!(v.requests, 1, "one write per decision");
    }
    let v = container.authorize(&request(&sibling)).await.unwrap();
    assert!(v.decision.is_allow());
    // Revoked while this container holds the record as active: the next
    // request is denied (the change fences the plan allowance first, and
    // the key's own allowance no longer names it).
    rig.store
        .revoke(
            &record.key_id,
            NOON,
            &keygate_tests::audit(&record, keygate::store::AuditAction::Revoked),
        )
        .await
        .unwrap();
    let v = container.authorize(&request(&key)).await.unwrap();
    assert_eq!(v.decision, Decision::Deny(DenyReason::Revoked), "{v:?}");
    // The owner's other keys are decided with their own allowance as well
    // while the fence holds (two writes), then alone again.
    let v = container.authorize(&request(&sibling)).await.unwrap();
    assert!(v.decision.is_allow());
    assert_eq!(v.requests, 2, "plan and the key's own allowance");
    rig.clock
        .advance(keygate::store::items::KEY_FENCE_SECONDS + 1);
    // The first decisions after a minute also read the record and the
    // plan again and flush the usage detail counted here (one allowance a
    // decision: the two keys' and the plan's denial count).
    let mut costs = Vec::new();
    for _ in 0..5 {
        let v = container.authorize(&request(&sibling)).await.unwrap();
        assert!(v.decision.is_allow());
        costs.push(v.requests);
    }
    assert_eq!(costs[3..], [1, 1], "alone again after the fence: {costs:?}");
    // The plan counts every allowed request exactly; the keys' own counts
    // are flushed with the container's usage detail.
    let plan = rig.plan_allowance().await;
    assert_eq!(plan["pu#2026-11-30#roomy#ok"].as_n().unwrap(), "13");
    let ids = [
        record.allowance_id.clone(),
        sibling_record.allowance_id.clone(),
    ];
    let merged = rig.store.allowances(&ids).await.unwrap();
    let ok = |id: &str, kid: &str| {
        merged[id]
            .get(&format!("u#2026-11-30#{kid}#ok"))
            .and_then(|v| v.as_n().ok())
            .cloned()
    };
    assert_eq!(
        ok(&record.allowance_id, record.key_id.as_str()).as_deref(),
        Some("6")
    );
    assert!(ok(&sibling_record.allowance_id, sibling_record.key_id.as_str()).is_some());
}
