//! The management API end to end, in process, against the emulator: each
//! request first goes through the real authorizer (as API Gateway would run
//! it), then to the real `keys` function with the authorizer's context where
//! API Gateway puts it. Every response is checked against the OpenAPI contract.

use keygate::clock::Clock;
use keygate::key::{KeyEnv, KeyFormat};
use keygate::leak::LeakPolicy;
use keygate::manage::Caller;
use keygate_tests::api::*;
use keygate_tests::{fresh_store, openapi};
use serde_json::{json, Value};

#[tokio::test]
async fn issue_then_the_authorizer_allows_and_after_revoke_the_next_request_is_denied() {
    let api = api().await;
    let admin = api.admin().await;
    let reply = api
        .call(
            &admin,
            "POST",
            "/v1/keys",
            Some(
                json!({"owner": "acme", "name": "orders reader", "scopes": ["GET /orders/*"],
                        "limits": {"quota": {"limit": 5, "period": "day"}}}),
            ),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let key = reply.body["key"].as_str().unwrap().to_owned();
    remember(&key);
    let key_id = reply.body["key_id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["owner"], "acme");
    assert!(reply.body["hint"].as_str().unwrap().starts_with("ak_test_"));

    let verdict = api.orders(&key).await;
    assert_eq!(verdict["isAuthorized"], true, "{verdict}");
    assert_eq!(verdict["context"]["quotaRemaining"], 4);

    // Reading the key back never shows the key.
    let shown = api
        .call(&admin, "GET", &format!("/v1/keys/{key_id}"), None)
        .await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.get("key").is_none());
    assert!(!shown.body.to_string().contains(&key));

    let revoked = api
        .raw(
            &admin,
            "POST",
            &format!("/v1/keys/{key_id}/revoke"),
            None,
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.body["status"], "revoked");
    let verdict = api.orders(&key).await;
    assert_eq!(verdict["isAuthorized"], false);
    assert_eq!(verdict["context"]["reason"], "revoked");
}

#[tokio::test]
async fn escalation_attempts_fail() {
    let api = api().await;
    let tenant = api
        .tenant("acme", |r| {
            // Generous enough for this test's own calls through the authorizer
            // (the clock does not move), tight enough to test against.
            r.limits = serde_json::from_value(json!({"quota": {"limit": 1000, "period": "day"},
                                                      "rate": {"limit": 500, "window": 1}}))
            .unwrap();
            r.allowed_cidrs = vec!["203.0.113.0/24".into()];
        })
        .await;
    let issue = |body: Value| api.call(&tenant, "POST", "/v1/keys", Some(body));
    let base = |scopes: Value, limits: Value| json!({"name": "x", "scopes": scopes, "limits": limits, "allowed_cidrs": ["203.0.113.0/25"]});
    // Cases that differ only in the limits asked for.
    let orders = |limits: Value| base(json!(["GET /orders/*"]), limits);
    let ok_limits =
        json!({"quota": {"limit": 10, "period": "day"}, "rate": {"limit": 5, "window": 1}});

    // Within its own grants: fine.
    let fine = issue(base(json!(["GET /orders/*"]), ok_limits.clone())).await;
    assert_eq!(fine.status, 201, "{}", fine.body);
    remember(fine.body["key"].as_str().unwrap());

    for (body, want) in [
        (
            base(json!(["admin"]), ok_limits.clone()),
            "scope_escalation",
        ),
        (
            base(json!(["usage:read"]), ok_limits.clone()),
            "scope_escalation",
        ),
        (
            base(json!(["GET /admin/*"]), ok_limits.clone()),
            "scope_escalation",
        ),
        (
            base(json!(["* /orders/*"]), ok_limits.clone()),
            "scope_escalation",
        ),
        (
            base(json!(["GET /orders/**"]), ok_limits.clone()),
            "scope_escalation",
        ),
        (
            orders(json!({"quota": {"limit": 1001, "period": "day"},
                                              "rate": {"limit": 5, "window": 1}})),
            "limit_escalation",
        ),
        (
            orders(json!({"quota": {"limit": 1000, "period": "month"},
                                              "rate": {"limit": 5, "window": 1}})),
            "ok",
        ),
        (
            orders(json!({"quota": {"limit": 10, "period": "day"}})),
            "limit_escalation",
        ),
        (
            orders(json!({"rate": {"limit": 5, "window": 1}})),
            "limit_escalation",
        ),
        (
            orders(json!({"quota": {"limit": 10, "period": "day"},
                                              "rate": {"limit": 10, "window": 0}})),
            "invalid_limit",
        ),
        (
            orders(json!({"quota": {"limit": 10, "period": "day"},
                                              "rate": {"limit": 501, "window": 2}})),
            "limit_escalation",
        ),
        (
            orders(json!({"quota": {"limit": 10, "period": "day"},
                                              "rate": {"limit": 500, "window": 0}})),
            "invalid_limit",
        ),
        (
            orders(json!({"quota": {"limit": 31_000, "period": "month"},
                                              "rate": {"limit": 500, "window": 1}})),
            "limit_escalation",
        ),
        (
            orders(json!({"quota": {"limit": 10, "period": "day"},
                                              "rate": {"limit": 10, "window": 1}})),
            "ok",
        ),
    ] {
        let reply = issue(body.clone()).await;
        if want == "ok" {
            assert_eq!(reply.status, 201, "{body}: {}", reply.body);
            remember(reply.body["key"].as_str().unwrap());
        } else {
            assert!(matches!(reply.status, 400 | 403), "{body}: {}", reply.body);
            assert_eq!(code(&reply), want, "{body}");
        }
    }
    // Looser allowlist or none at all.
    let mut wide = base(json!(["GET /orders/*"]), ok_limits.clone());
    wide["allowed_cidrs"] = json!(["203.0.0.0/16"]);
    assert_eq!(code(&issue(wide).await), "limit_escalation");
    let mut open = base(json!(["GET /orders/*"]), ok_limits.clone());
    open["allowed_cidrs"] = json!([]);
    assert_eq!(code(&issue(open).await), "limit_escalation");

    // Another owner: the same 404 as a missing key, for every operation.
    let mut other = base(json!(["GET /orders/*"]), ok_limits.clone());
    other["owner"] = json!("globex");
    let reply = issue(other).await;
    assert_eq!((reply.status, code(&reply)), (404, "not_found"));
    let foreign = api.tenant("globex", |_| {}).await;
    keygate_tests::caught_up().await; // the owner index lists it
    let foreign_id = api.call(&foreign, "GET", "/v1/keys", None).await.body["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing = keygate::id::KeyId::generate();
    for id in [foreign_id.as_str(), missing.as_str()] {
        for (method, path, body) in [
            ("GET", format!("/v1/keys/{id}"), None),
            ("GET", format!("/v1/keys/{id}/events"), None),
            (
                "PATCH",
                format!("/v1/keys/{id}"),
                Some(json!({"name": "mine now"})),
            ),
            ("POST", format!("/v1/keys/{id}/revoke"), None),
            ("POST", format!("/v1/keys/{id}/rotate"), Some(json!({}))),
        ] {
            let reply = api.call(&tenant, method, &path, body).await;
            assert_eq!(
                (reply.status, code(&reply)),
                (404, "not_found"),
                "{method} {path}"
            );
            assert_eq!(reply.body["error"]["message"], "no such key");
        }
    }
    let reply = api
        .call(&tenant, "GET", "/v1/keys?owner=globex", None)
        .await;
    assert_eq!(reply.status, 404);
    // The foreign key still works: nothing above touched it.
    assert_eq!(
        api.call(&foreign, "GET", &format!("/v1/keys/{foreign_id}"), None)
            .await
            .status,
        200
    );

    // Its own key cannot be widened either.
    let own_id = api.call(&tenant, "GET", "/v1/keys", None).await.body["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = api
        .call(
            &tenant,
            "PATCH",
            &format!("/v1/keys/{own_id}"),
            Some(json!({"scopes": ["admin"]})),
        )
        .await;
    assert_eq!((reply.status, code(&reply)), (403, "scope_escalation"));

    // Rotating issues the old key's grants anew: a key that may rotate but
    // does not hold an admin key's scopes cannot mint a copy of it.
    let admin_key = api
        .tenant("acme", |r| r.scopes = vec!["admin".into()])
        .await;
    let admin_id = {
        let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
        let parsed = format.parse(&admin_key).unwrap();
        use keygate::store::KeyLookup;
        api.store
            .key_by_hash(&keygate::hash::KeyHash::of(&parsed), true)
            .await
            .unwrap()
            .unwrap()
            .key_id
    };
    let rotator = api
        .tenant("acme", |r| {
            r.scopes = vec!["POST /v1/keys/**".into(), "keys:rotate".into()]
        })
        .await;
    let reply = api
        .call(
            &rotator,
            "POST",
            &format!("/v1/keys/{admin_id}/rotate"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (reply.status, code(&reply)),
        (403, "scope_escalation"),
        "{}",
        reply.body
    );

    // A key without keys:issue cannot issue at all.
    let reader = api
        .tenant("acme", |r| {
            r.scopes = vec!["* /v1/keys/**".into(), "keys:read".into()]
        })
        .await;
    let reply = api
        .call(
            &reader,
            "POST",
            "/v1/keys",
            Some(json!({"name": "x", "scopes": ["keys:read"]})),
        )
        .await;
    assert_eq!((reply.status, code(&reply)), (403, "missing_permission"));
    // And a key without a route scope for the API never reaches it.
    let outsider = api
        .tenant("acme", |r| r.scopes = vec!["keys:issue".into()])
        .await;
    assert_eq!(
        api.call(&outsider, "GET", "/v1/keys", None).await.status,
        403
    );
}

#[tokio::test]
async fn every_validation_rule_has_its_code() {
    let api = api().await;
    let admin = api.admin().await;
    let good = || json!({"owner": "acme", "name": "x", "scopes": ["GET /orders/*"]});
    let with = |field: &str, value: Value| {
        let mut b = good();
        b[field] = value;
        b
    };
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            with("admin", json!(true)),
            400,
            "unknown_field",
            Some("admin"),
        ),
        (json!({"name": "x"}), 400, "missing_field", Some("scopes")),
        (with("name", json!(5)), 400, "invalid_type", Some("name")),
        (with("name", json!("")), 400, "invalid_name", Some("name")),
        (
            with("name", json!("x".repeat(129))),
            400,
            "invalid_name",
            Some("name"),
        ),
        (
            with("name", json!("a\u{0007}b")),
            400,
            "invalid_name",
            Some("name"),
        ),
        (
            with("owner", json!("a/b")),
            400,
            "invalid_owner",
            Some("owner"),
        ),
        (
            with("scopes", json!([])),
            400,
            "invalid_scope",
            Some("scopes"),
        ),
        (
            with("scopes", json!(["FETCH /x"])),
            400,
            "invalid_scope",
            Some("scopes[0]"),
        ),
        (
            with("scopes", json!(["GET /a", "GET x"])),
            400,
            "invalid_scope",
            Some("scopes[1]"),
        ),
        (
            with("scopes", json!(["Keys:Issue"])),
            400,
            "invalid_scope",
            Some("scopes[0]"),
        ),
        (
            with("scopes", json!(vec!["GET /a"; 33])),
            400,
            "invalid_scope",
            Some("scopes"),
        ),
        (
            with("limits", json!({"quota": {"limit": 0, "period": "day"}})),
            400,
            "invalid_limit",
            Some("limits.quota.limit"),
        ),
        (
            with("limits", json!({"quota": {"limit": 1, "period": "week"}})),
            400,
            "invalid_type",
            Some("limits.quota.period"),
        ),
        (
            with("limits", json!({"rate": {"limit": 1, "window": 0}})),
            400,
            "invalid_limit",
            Some("limits.rate.window"),
        ),
        (
            with("limits", json!({"rate": {"limit": 0, "window": 1}})),
            400,
            "invalid_limit",
            Some("limits.rate.limit"),
        ),
        (
            with("limits", json!({"burst": 1})),
            400,
            "unknown_field",
            Some("burst"),
        ),
        (
            with("allowed_cidrs", json!(["10.0.0.0/33"])),
            400,
            "invalid_cidr",
            Some("allowed_cidrs[0]"),
        ),
        (
            with("allowed_cidrs", json!(["not a cidr"])),
            400,
            "invalid_cidr",
            Some("allowed_cidrs[0]"),
        ),
        (
            with("expires_at", json!(NOON - 1)),
            400,
            "invalid_expiry",
            Some("expires_at"),
        ),
        (
            with("expires_at", json!(NOON + 11 * 366 * 86_400)),
            400,
            "invalid_expiry",
            Some("expires_at"),
        ),
        (
            with("rotation_days", json!(5000)),
            400,
            "invalid_rotation",
            Some("rotation_days"),
        ),
        (
            with("metadata", json!({"": "x"})),
            400,
            "invalid_metadata",
            Some("metadata"),
        ),
    ];
    for (body, status, want, field) in cases {
        let reply = api
            .call(&admin, "POST", "/v1/keys", Some(body.clone()))
            .await;
        assert_eq!(
            (reply.status, code(&reply)),
            (status, want),
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["field"].as_str(), field, "{body}");
    }
    // Transport-level rules.
    let reply = api
        .raw(
            &admin,
            "POST",
            "/v1/keys",
            Some("{"),
            Some("application/json"),
        )
        .await;
    assert_eq!((reply.status, code(&reply)), (400, "invalid_json"));
    let reply = api
        .raw(
            &admin,
            "POST",
            "/v1/keys",
            Some(&good().to_string()),
            Some("text/plain"),
        )
        .await;
    assert_eq!(
        (reply.status, code(&reply)),
        (415, "unsupported_media_type")
    );
    let reply = api
        .raw(&admin, "POST", "/v1/keys", Some(&good().to_string()), None)
        .await;
    assert_eq!(
        (reply.status, code(&reply)),
        (415, "unsupported_media_type")
    );
    let huge = json!({"name": "x".repeat(20_000), "scopes": []}).to_string();
    let reply = api
        .raw(
            &admin,
            "POST",
            "/v1/keys",
            Some(&huge),
            Some("application/json"),
        )
        .await;
    assert_eq!((reply.status, code(&reply)), (413, "payload_too_large"));
    let reply = api
        .raw(
            &admin,
            "POST",
            "/v1/keys",
            Some(&good().to_string()),
            Some("application/json; charset=utf-8"),
        )
        .await;
    assert_eq!(reply.status, 201);
    remember(reply.body["key"].as_str().unwrap());
    let id = reply.body["key_id"].as_str().unwrap().to_owned();

    let reply = api
        .call(&admin, "PATCH", &format!("/v1/keys/{id}"), Some(json!({})))
        .await;
    assert_eq!((reply.status, code(&reply)), (400, "empty_update"));
    let reply = api
        .call(
            &admin,
            "PATCH",
            &format!("/v1/keys/{id}"),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!((reply.status, code(&reply)), (400, "unknown_field"));
    let reply = api
        .call(
            &admin,
            "POST",
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_seconds": 2_592_001})),
        )
        .await;
    assert_eq!((reply.status, code(&reply)), (400, "invalid_grace"));
    let reply = api
        .call(
            &admin,
            "POST",
            &format!("/v1/keys/{id}/revoke"),
            Some(json!({"why": "x"})),
        )
        .await;
    assert_eq!((reply.status, code(&reply)), (400, "unknown_field"));
    let reply = api
        .call(&admin, "GET", "/v1/keys?owner=acme&cursor=zz", None)
        .await;
    assert_eq!((reply.status, code(&reply)), (400, "invalid_cursor"));
    let forged = hex_json(&json!({"gpk": "OWNER#globex", "gsk": "x", "pk": "x", "sk": "x"}));
    let reply = api
        .call(
            &admin,
            "GET",
            &format!("/v1/keys?owner=acme&cursor={forged}"),
            None,
        )
        .await;
    assert_eq!((reply.status, code(&reply)), (400, "invalid_cursor"));
    let reply = api
        .call(&admin, "GET", "/v1/keys?owner=acme&limit=0", None)
        .await;
    assert_eq!((reply.status, code(&reply)), (400, "invalid_limit"));
    let reply = api.call(&admin, "GET", "/v1/keys/not-a-key-id", None).await;
    assert_eq!((reply.status, code(&reply)), (404, "not_found"));
    let reply = api
        .call(&admin, "DELETE", &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!((reply.status, code(&reply)), (405, "method_not_allowed"));
}

fn hex_json(v: &Value) -> String {
    v.to_string().bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn requests_without_the_authorizer_context_are_refused() {
    let api = api().await;
    let http = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/v1/keys", "rawQueryString": "",
        "headers": {"host": "api.example.com"},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "http": {"method": "GET", "path": "/v1/keys", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "t"},
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "t", "timeEpoch": 0},
        "isBase64Encoded": false
    });
    let req = lambda_http::request::from_str(&http.to_string()).unwrap();
    let resp = keys::handle(&api.service, req).await;
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    openapi::check("GET", "/v1/keys", 401, &body);
    assert_eq!(body["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn listing_pages_through_an_owners_keys_and_the_audit_trail_records_each_event() {
    let api = api().await;
    let tenant = api.tenant("acme", |_| {}).await;
    let mut issued = Vec::new();
    for n in 0..5 {
        api.clock.advance(1);
        let reply = api
            .call(
                &tenant,
                "POST",
                "/v1/keys",
                Some(json!({"name": format!("k{n}"), "scopes": ["GET /orders/*"]})),
            )
            .await;
        assert_eq!(reply.status, 201);
        remember(reply.body["key"].as_str().unwrap());
        issued.push(reply.body["key_id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    keygate_tests::caught_up().await; // the owner index lists them all
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/keys?limit=2&cursor={c}"),
            None => "/v1/keys?limit=2".to_owned(),
        };
        let page = api.call(&tenant, "GET", &path, None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for k in page.body["keys"].as_array().unwrap() {
            assert_eq!(k["owner"], "acme");
            seen.push(k["key_id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "the tenant's own key and the five it issued");
    for id in &issued {
        assert!(seen.contains(id));
    }

    let id = &issued[0];
    let tenant_id = seen.iter().find(|s| !issued.contains(s)).unwrap().clone();
    api.call(
        &tenant,
        "PATCH",
        &format!("/v1/keys/{id}"),
        Some(json!({"name": "renamed"})),
    )
    .await;
    let rotated = api
        .call(
            &tenant,
            "POST",
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace_seconds": 60})),
        )
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.body);
    remember(rotated.body["successor"]["key"].as_str().unwrap());
    let successor = rotated.body["successor"]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(rotated.body["rotated"]["status"], "rotating");
    api.call(
        &tenant,
        "POST",
        &format!("/v1/keys/{successor}/revoke"),
        None,
    )
    .await;

    let trail = api
        .call(&tenant, "GET", &format!("/v1/keys/{id}/events"), None)
        .await;
    let actions: Vec<&str> = trail.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["issued", "updated", "rotated"]);
    for e in trail.body["events"].as_array().unwrap() {
        assert_eq!(e["actor"], tenant_id.as_str(), "the acting key is recorded");
        assert_eq!(e["key_id"], id.as_str());
    }
    assert!(trail.body["events"][1]["change"]
        .as_str()
        .unwrap()
        .contains("renamed"));
    let trail = api
        .call(
            &tenant,
            "GET",
            &format!("/v1/keys/{successor}/events"),
            None,
        )
        .await;
    let actions: Vec<&str> = trail.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["issued", "revoked"]);
}

#[tokio::test]
async fn keys_can_be_delivered_through_secrets_manager_and_rotation_moves_the_current_version() {
    let api = api().await;
    let tenant = api.tenant("acme", |_| {}).await;
    let reply = api
        .call(
            &tenant,
            "POST",
            "/v1/keys",
            Some(json!({"name": "ci", "scopes": ["GET /orders/*"], "deliver_to_secret": true})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let first = reply.body["key"].as_str().unwrap().to_owned();
    remember(&first);
    let id = reply.body["key_id"].as_str().unwrap().to_owned();
    let name = reply.body["secret_name"].as_str().unwrap().to_owned();
    assert_eq!(name, format!("{}/acme/{id}", api.secret_prefix));
    let read = |stage: &'static str| {
        let (client, name) = (api.secrets.clone(), name.clone());
        async move {
            client
                .get_secret_value()
                .secret_id(name)
                .version_stage(stage)
                .send()
                .await
                .unwrap()
                .secret_string
                .unwrap()
        }
    };
    assert_eq!(read("AWSCURRENT").await, first);

    let rotated = api
        .call(
            &tenant,
            "POST",
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"deliver_to_secret": true})),
        )
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.body);
    let second = rotated.body["successor"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    remember(&second);
    assert_eq!(rotated.body["successor"]["secret_name"], name.as_str());
    assert_eq!(read("AWSCURRENT").await, second);
    assert_eq!(read("AWSPREVIOUS").await, first);
    // Both work during the grace period (24 h by default), the old one not after.
    assert_eq!(api.orders(&first).await["isAuthorized"], true);
    assert_eq!(api.orders(&second).await["isAuthorized"], true);
    assert_eq!(rotated.body["rotated"]["grace_until"], NOON + 86_400);
    api.clock.set(NOON + 86_400);
    assert_eq!(api.orders(&first).await["context"]["reason"], "expired");
    assert_eq!(api.orders(&second).await["isAuthorized"], true);
    // A second rotation of the rotated key is refused.
    let again = api
        .call(
            &tenant,
            "POST",
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({})),
        )
        .await;
    assert_eq!((again.status, code(&again)), (409, "conflict"));
    let _ = api.clock.now();
}

#[tokio::test]
async fn keyctl_bootstraps_an_admin_key_that_issues_through_the_api() {
    let api = api().await;
    let keyctl = keyctl();
    let out = std::process::Command::new(&keyctl)
        .args([
            "--table",
            api.store.table(),
            "--key-env",
            "test",
            "bootstrap",
            "--owner",
            "operator",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    remember(&admin);
    assert!(keygate::key::verify_any(&admin).is_ok());
    let reply = api
        .call(&admin, "POST", "/v1/keys", Some(json!({"owner": "acme", "name": "from the bootstrap key", "scopes": ["GET /orders/*"]})))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let key = reply.body["key"].as_str().unwrap().to_owned();
    remember(&key);
    assert_eq!(api.orders(&key).await["isAuthorized"], true);
    // keyctl revokes through the same service: the key is denied at once.
    let out = std::process::Command::new(&keyctl)
        .args([
            "--table",
            api.store.table(),
            "--key-env",
            "test",
            "revoke",
            reply.body["key_id"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(api.orders(&key).await["context"]["reason"], "revoked");
}

/// The deployment's `RotationDays` reaches the function as
/// `KEYGATE_ROTATION_DAYS`, and keys issued through the API without a
/// `rotation_days` of their own follow it (before the fix only `keyctl`
/// read it: API keys rotated every 90 days even with `RotationDays=0`).
#[tokio::test]
async fn the_deployments_rotation_days_applies_to_keys_issued_through_the_api() {
    let store = fresh_store().await;
    let table = store.table().to_owned();
    for (setting, want) in [(Some("0"), 0), (Some("7"), 7), (None, 90)] {
        let service = keys::build(|name| match name {
            "KEYGATE_TABLE" => Some(table.clone()),
            "KEYGATE_KEY_ENV" => Some("test".into()),
            "KEYGATE_ROTATION_DAYS" => setting.map(str::to_owned),
            _ => None,
        })
        .await
        .expect("settings");
        let issued = service
            .issue(
                &Caller::operator("test"),
                issue_request("acme", &["GET /orders/*"]),
            )
            .await
            .unwrap();
        remember(&issued.key);
        assert_eq!(issued.view.rotation_days, want, "{setting:?}");
        let record = keygate::store::KeyAdmin::key_by_id(&store, &issued.view.key_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.rotation_due().is_none(), want == 0, "{setting:?}");
    }
    for bad in ["-1", "ninety", "3651"] {
        let err = keys::build(|name| match name {
            "KEYGATE_TABLE" => Some(table.clone()),
            "KEYGATE_ROTATION_DAYS" => Some(bad.to_owned()),
            _ => None,
        })
        .await
        .err()
        .expect("refused");
        assert_eq!(err.name, "KEYGATE_ROTATION_DAYS", "{bad}");
    }
}

/// The leaked-audit events of a key, through the API.
async fn leaked_events(api: &Api, caller: &str, key_id: &str) -> Vec<Value> {
    let events = api
        .call(caller, "GET", &format!("/v1/keys/{key_id}/events"), None)
        .await;
    assert_eq!(events.status, 200, "{}", events.body);
    events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "leaked")
        .cloned()
        .collect()
}

/// An `acme` key on `GET /orders/*`, issued through the API: its key and id.
async fn orders_key(api: &Api, caller: &str) -> (String, String) {
    let reply = api
        .call(
            caller,
            "POST",
            "/v1/keys",
            Some(json!({"owner": "acme", "name": "leaky", "scopes": ["GET /orders/*"]})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let key = reply.body["key"].as_str().unwrap().to_owned();
    remember(&key);
    (key, reply.body["key_id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_manual_leak_report_revokes_once_audits_and_tells_the_owner() {
    let api = api().await;
    let acme = api.tenant("acme", |_| {}).await;
    let (key, key_id) = orders_key(&api, &acme).await;
    assert_eq!(api.orders(&key).await["isAuthorized"], true);
    let path = format!("/v1/keys/{key_id}/report-leak");

    // Another tenant cannot report (nor learn of) acme's key.
    let globex = api.tenant("globex", |_| {}).await;
    let foreign = api
        .call(
            &globex,
            "POST",
            &path,
            Some(json!({"source_url": "https://github.com/x/y"})),
        )
        .await;
    assert_eq!((foreign.status, code(&foreign)), (404, "not_found"));
    // keys:revoke is required.
    let reader = api
        .tenant("acme", |r| r.scopes.retain(|s| s != "keys:revoke"))
        .await;
    let denied = api.call(&reader, "POST", &path, None).await;
    assert_eq!(
        (denied.status, code(&denied)),
        (403, "missing_permission"),
        "{}",
        denied.body
    );
    // Bodies are strict.
    let unknown = api
        .call(
            &acme,
            "POST",
            &path,
            Some(json!({"source_url": "https://x.example/a", "admin": true})),
        )
        .await;
    assert_eq!((unknown.status, code(&unknown)), (400, "unknown_field"));
    assert_eq!(unknown.body["error"]["field"], "admin");
    for bad in [
        json!({"source_url": "http://x.example/a"}),
        json!({"source_url": null}),
        json!({"source_url": "https://a b"}),
    ] {
        let refused = api.call(&acme, "POST", &path, Some(bad.clone())).await;
        assert_eq!(refused.status, 400, "{bad}: {}", refused.body);
    }
    assert!(api.notices.all().is_empty(), "nothing refused was applied");
    assert_eq!(api.orders(&key).await["isAuthorized"], true);

    let url = "https://github.com/octo/repo/blob/main/.env";
    let reported = api
        .call(&acme, "POST", &path, Some(json!({"source_url": url})))
        .await;
    assert_eq!(reported.status, 200, "{}", reported.body);
    assert_eq!(reported.body["status"], "revoked");
    assert_eq!(api.orders(&key).await["context"]["reason"], "revoked");
    let events = leaked_events(&api, &acme, &key_id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let change: Value = serde_json::from_str(events[0]["change"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&change["source_url"], &change["kind"], &change["policy"]),
        (&json!(url), &json!("manual"), &json!("revoke")),
        "{events:?}"
    );
    assert!(
        events[0]["actor"].as_str().unwrap().starts_with("key_"),
        "the reporter is audited"
    );
    let notices = api.notices.all();
    assert_eq!(notices.len(), 1);
    assert_eq!(
        (
            notices[0].key_id.to_string(),
            notices[0].policy,
            notices[0].source_url.as_deref()
        ),
        (key_id.clone(), "revoke", Some(url))
    );

    // Reported again (an empty body is fine): nothing more happens.
    let again = api.raw(&acme, "POST", &path, None, None).await;
    assert_eq!(
        (again.status, &again.body["status"]),
        (200, &json!("revoked"))
    );
    assert_eq!(leaked_events(&api, &acme, &key_id).await.len(), 1);
    assert_eq!(api.notices.all().len(), 1);
}

#[tokio::test]
async fn a_manual_leak_report_quarantines_under_the_quarantine_policy() {
    let api = api_with(LeakPolicy::Quarantine).await;
    let admin = api.admin().await;
    let (key, key_id) = orders_key(&api, &admin).await;
    let reported = api
        .call(
            &admin,
            "POST",
            &format!("/v1/keys/{key_id}/report-leak"),
            None,
        )
        .await;
    assert_eq!(reported.status, 200, "{}", reported.body);
    assert_eq!(reported.body["status"], "quarantined");
    assert_eq!(api.orders(&key).await["context"]["reason"], "leaked");
    assert_eq!(api.notices.all()[0].policy, "quarantine");
    // An admin can still revoke it for good.
    let revoked = api
        .call(&admin, "POST", &format!("/v1/keys/{key_id}/revoke"), None)
        .await;
    assert_eq!(
        (revoked.status, &revoked.body["status"]),
        (200, &json!("revoked"))
    );
}

/// `keyctl report-leak` takes the same path: by id, or the key itself on
/// standard input (never an argument), and never prints the key.
#[tokio::test]
async fn keyctl_reports_a_leak_by_id_or_by_the_key_on_stdin() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let api = api().await;
    let admin = api.admin().await;
    let (by_id, by_id_key_id) = orders_key(&api, &admin).await;
    let (by_stdin, by_stdin_key_id) = orders_key(&api, &admin).await;
    let keyctl = keyctl();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(&keyctl)
            .args([
                "--table",
                api.store.table(),
                "--key-env",
                "test",
                "--leak-policy",
                "quarantine",
                "report-leak",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in [by_id.as_str(), by_stdin.as_str(), stdin.trim()] {
            assert!(
                secret.is_empty() || !text.contains(secret),
                "a key was printed"
            );
        }
        (out.status.success(), text)
    };
    let (ok, text) = run(
        &[
            "--key-id",
            &by_id_key_id,
            "--source-url",
            "https://x.example/leak",
        ],
        "",
    );
    assert!(ok, "{text}");
    assert_eq!(api.orders(&by_id).await["context"]["reason"], "leaked");
    assert_eq!(api.orders(&by_stdin).await["isAuthorized"], true);

    let (ok, text) = run(&[], &format!("{by_stdin}\n"));
    assert!(ok, "{text}");
    assert!(text.contains(&by_stdin_key_id), "{text}");
    assert_eq!(api.orders(&by_stdin).await["context"]["reason"], "leaked");
    assert_eq!(leaked_events(&api, &admin, &by_stdin_key_id).await.len(), 1);

    // Not a key of ours (a checksum off by one character): refused, nothing printed back.
    let mut forged = by_stdin.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(forged.len() - 1.., last);
    let (ok, text) = run(&[], &forged);
    assert!(!ok, "{text}");
    assert!(text.contains("not one of this deployment's keys"), "{text}");
}
