//! End to end, over HTTP: the local gateway (`infra/gateway`) in front of the
//! real functions under `cargo lambda watch`, against the emulator. A request
//! here takes the path a request to the deployed API takes: route from
//! template.yaml, the authorizer (payload 2.0), the route's function.
//!
//! These tests need the running stack, so they are `#[ignore]`d in the plain
//! `cargo test --workspace` run; `make test` runs them in their own step:
//!
//! ```sh
//! infra/local/with-emulator infra/local/stack \
//!   cargo test --workspace --test e2e -- --ignored
//! ```
//!
//! Without the stack's `KEYGATE_GATEWAY_URL` and `KEYGATE_ADMIN_KEY_FILE`
//! they fail, saying so: they never pass without having run.

use keygate::key::{KeyEnv, KeyFormat};
use keygate_tests::http::{send, Answer};
use keygate_tests::{logs, openapi};
use serde_json::{json, Value};

struct Stack {
    base: String,
    admin: String,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run these tests through the local stack \
             (infra/local/with-emulator infra/local/stack cargo test --workspace --test e2e -- --ignored)"
        )
    })
}

fn remember(key: &str) {
    let env = match std::env::var("KEYGATE_KEY_ENV").as_deref() {
        Ok("test") => KeyEnv::Test,
        _ => KeyEnv::Live,
    };
    let prefix = std::env::var("KEYGATE_KEY_PREFIX").unwrap_or_else(|_| "ak".into());
    let format = KeyFormat::new(&prefix, env).expect("the deployment's key format");
    logs::remember(&format.parse(key).expect("a key the stack issued"));
}

fn stack() -> Stack {
    logs::init();
    let base = env("KEYGATE_GATEWAY_URL");
    let file = env("KEYGATE_ADMIN_KEY_FILE");
    let admin = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("admin key file {file}: {e}"))
        .trim()
        .to_owned();
    remember(&admin);
    Stack { base, admin }
}

impl Stack {
    async fn call(
        &self,
        key: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let bearer = key.map(|k| format!("Bearer {k}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        let answer = send(
            method,
            &format!("{}{path}", self.base),
            &headers,
            body.as_ref(),
        )
        .await;
        // Every answer, the gateway's own included, is one the contract documents.
        let documented = path.split('?').next().unwrap_or(path);
        openapi::check(method, documented, answer.status, &answer.body);
        answer
    }

    async fn whoami(&self, key: Option<&str>) -> Answer {
        self.call(key, "GET", "/v1/whoami", None).await
    }

    /// Issue a key as the admin; returns (key, key id).
    async fn issue(&self, body: Value) -> (String, String) {
        let issued = self
            .call(Some(&self.admin), "POST", "/v1/keys", Some(body))
            .await;
        assert_eq!(issued.status, 201, "{:?}", issued.body);
        assert_eq!(issued.header("cache-control"), Some("no-store"));
        assert_eq!(issued.header("content-type"), Some("application/json"));
        let key = issued.body["key"]
            .as_str()
            .expect("the key, once")
            .to_owned();
        remember(&key);
        (key, issued.body["key_id"].as_str().unwrap().to_owned())
    }
}

fn forbidden(a: &Answer) {
    assert_eq!(
        (a.status, &a.body),
        (403, &json!({"message": "Forbidden"})),
        "{a:?}"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: make test runs it"]
async fn issue_call_exhaust_revoke_through_the_gateway() {
    let s = stack();

    // The admin key reaches the protected route; its identity is echoed.
    let me = s.whoami(Some(&s.admin)).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert_eq!(me.body["owner"], "operator");
    assert_eq!(me.body["scopes"], json!(["admin"]));
    assert!(me.header("apigw-requestid").is_some());

    // Issue a key for a tenant: the sample route only, three requests a day.
    let (key, key_id) = s
        .issue(json!({"owner": "acme", "name": "e2e whoami",
                      "scopes": ["GET /v1/whoami"],
                      "limits": {"quota": {"limit": 3, "period": "day"}}}))
        .await;

    // Allowed three times, each echoing the key and what is left of the quota;
    // both header forms carry the key.
    for remaining in [2, 1] {
        let me = s.whoami(Some(&key)).await;
        assert_eq!(me.status, 200, "{:?}", me.body);
        assert_eq!(
            me.body,
            json!({"key_id": key_id, "owner": "acme", "scopes": ["GET /v1/whoami"],
                   "quota_remaining": remaining})
        );
    }
    let url = format!("{}/v1/whoami", s.base);
    let me = send("GET", &url, &[("x-api-key", &key)], None).await;
    assert_eq!((me.status, &me.body["quota_remaining"]), (200, &json!(0)));

    // The fourth is over quota: API Gateway's 403, and the function never runs.
    forbidden(&s.whoami(Some(&key)).await);

    // Out of scope: the key may not manage keys.
    forbidden(&s.call(Some(&key), "GET", "/v1/keys?owner=acme", None).await);

    // The admin sees the key; it is active until revoked.
    let shown = s
        .call(Some(&s.admin), "GET", &format!("/v1/keys/{key_id}"), None)
        .await;
    assert_eq!(
        (shown.status, &shown.body["status"]),
        (200, &json!("active")),
        "{:?}",
        shown.body
    );
    assert!(!shown.body.to_string().contains(&key));

    // The usage the authorizer counted, read back through the usage routes:
    // today, 3 allowed, 1 over quota, 1 out of scope, all on the one route.
    let series = s
        .call(
            Some(&s.admin),
            "GET",
            &format!("/v1/usage/keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(series.status, 200, "{:?}", series.body);
    let today = series.body["to"].clone();
    let day = series.body["days"]
        .as_array()
        .expect("a daily series")
        .iter()
        .find(|d| d["day"] == today)
        .expect("today in the series")
        .clone();
    assert_eq!(day["allowed"], json!(3), "{day}");
    assert_eq!(
        day["denied_by_reason"],
        json!({"quota_exceeded": 1, "scope_denied": 1})
    );
    assert_eq!(
        day["top_routes"],
        json!([{"route": "GET /v1/whoami", "count": 3}])
    );
    // Owner totals list the owner's keys through an index: it shows a key
    // issued a moment ago within the stale window.
    keygate_tests::caught_up().await;
    let totals = s
        .call(Some(&s.admin), "GET", "/v1/usage?owner=acme", None)
        .await;
    assert_eq!(totals.status, 200, "{:?}", totals.body);
    let line = totals.body["keys"]
        .as_array()
        .expect("per-key totals")
        .iter()
        .find(|k| k["key_id"] == json!(key_id))
        .expect("the key's line")
        .clone();
    assert_eq!((&line["allowed"], &line["denied"]), (&json!(3), &json!(2)));
    // The key itself may not read usage (no `usage:read`).
    forbidden(&s.call(Some(&key), "GET", "/v1/usage", None).await);

    // Revoke a working key: its very next request is denied.
    let (other, other_id) = s
        .issue(json!({"owner": "acme", "name": "e2e revoke", "scopes": ["GET /v1/whoami"]}))
        .await;
    let me = s.whoami(Some(&other)).await;
    assert_eq!(me.status, 200, "{:?}", me.body);
    assert!(
        me.body.get("quota_remaining").is_none(),
        "no quota, none shown"
    );
    let revoked = s
        .call(
            Some(&s.admin),
            "POST",
            &format!("/v1/keys/{other_id}/revoke"),
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(revoked.body["status"], "revoked");
    forbidden(&s.whoami(Some(&other)).await);
}

#[tokio::test]
#[ignore = "needs the local stack: make test runs it"]
async fn the_gateway_answers_like_api_gateway() {
    let s = stack();
    // No key. The template's authorizer has no identity source (so that
    // either header works), so API Gateway invokes it for every request and
    // it denies: 403, not 401 (the 401 of a missing identity source is
    // covered by the gateway's unit tests).
    forbidden(&s.whoami(None).await);
    // A malformed key and a key in the query string are denied alike.
    forbidden(&s.whoami(Some("ak_live_notakey")).await);
    forbidden(
        &s.call(
            Some(&s.admin),
            "GET",
            &format!("/v1/whoami?api_key={}", "x"),
            None,
        )
        .await,
    );
    // No route for the path or the method: API Gateway's 404, before any authorizer.
    let url = format!("{}/v1/nowhere", s.base);
    let none = send("GET", &url, &[], None).await;
    assert_eq!(
        (none.status, &none.body),
        (404, &json!({"message": "Not Found"}))
    );
    let url = format!("{}/v1/whoami", s.base);
    let wrong = send(
        "DELETE",
        &url,
        &[("authorization", &format!("Bearer {}", s.admin))],
        None,
    )
    .await;
    assert_eq!(
        (wrong.status, &wrong.body),
        (404, &json!({"message": "Not Found"}))
    );
    // The management API's own errors come through unchanged.
    let bad = s
        .call(
            Some(&s.admin),
            "POST",
            "/v1/keys",
            Some(json!({"owner": "acme", "bogus": 1})),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert_eq!(bad.body["error"]["code"], "unknown_field");
}
