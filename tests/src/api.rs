//! The management API in process, as the cross-function tests drive it:
//! each request first goes through the real authorizer (as API Gateway
//! would run it), then to the real `keys` function with the authorizer's
//! context where API Gateway puts it. Every response is checked against
//! the OpenAPI contract. Used by `tests/keys_api.rs` and `tests/plans.rs`.

use std::sync::Arc;
use std::time::Duration;

use authorizer::response::V2Response;
use authorizer::Settings;
use keygate::authorize::{AuthConfig, Authorizer};
use keygate::clock::ManualClock;
use keygate::key::{ApiKey, KeyEnv, KeyFormat};
use keygate::leak::{LeakPolicy, LeakService};
use keygate::manage::request::IssueRequest;
use keygate::manage::{Caller, KeyService};
use keygate::secrets::SecretsManager;
use keygate::store::DynamoStore;
use serde_json::{json, Value};

use crate::events::{allows, event, with_route, Payload};
use crate::notices::Recorded;
use crate::{fresh_store, logs, openapi, sdk_config, unique_name};

pub const NOON: i64 = 1_795_953_600;

pub struct Api {
    pub clock: ManualClock,
    pub authorizer: authorizer::Handler<DynamoStore, ManualClock>,
    pub service: KeyService<DynamoStore, ManualClock, SecretsManager>,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub secret_prefix: String,
    pub store: DynamoStore,
    /// Owner notices of leak reports.
    pub notices: Recorded,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

pub const TENANT_SCOPES: [&str; 6] = [
    "* /v1/keys/**",
    "keys:issue",
    "keys:read",
    "keys:revoke",
    "keys:rotate",
    "GET /orders/*",
];

pub async fn api() -> Api {
    api_with(LeakPolicy::Revoke).await
}

pub async fn api_with(policy: LeakPolicy) -> Api {
    let store = fresh_store().await;
    let clock = ManualClock::at(NOON);
    let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
    let authorizer = authorizer::Handler::new(
        Authorizer::new(
            store.clone(),
            clock.clone(),
            format.clone(),
            AuthConfig::default(),
        ),
        Settings {
            v2_response: V2Response::Simple,
            deadline: Duration::from_secs(30),
        },
        "ak",
    );
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let secret_prefix = unique_name("keygate");
    let notices = Recorded::default();
    let leaks = LeakService::new(
        store.clone(),
        clock.clone(),
        format.clone(),
        policy,
        notices.clone(),
    );
    let service = KeyService::new(
        store.clone(),
        clock.clone(),
        format,
        SecretsManager::new(secrets.clone()),
        &secret_prefix,
    )
    .with_leaks(Arc::new(leaks));
    Api {
        clock,
        authorizer,
        service,
        secrets,
        secret_prefix,
        store,
        notices,
    }
}

pub fn issue_request(owner: &str, scopes: &[&str]) -> IssueRequest {
    serde_json::from_value(json!({
        "owner": owner,
        "name": "fixture",
        "scopes": scopes,
    }))
    .unwrap()
}

impl Api {
    /// An admin key, bootstrapped the way `keyctl bootstrap` does.
    pub async fn admin(&self) -> String {
        let issued = self
            .service
            .issue(
                &Caller::operator("test"),
                issue_request("operator", &["admin"]),
            )
            .await
            .unwrap();
        remember(&issued.key);
        issued.key
    }

    /// A tenant key with the management scopes, issued by the operator.
    pub async fn tenant(&self, owner: &str, edit: impl FnOnce(&mut IssueRequest)) -> String {
        let mut req = issue_request(owner, &TENANT_SCOPES);
        edit(&mut req);
        let issued = self
            .service
            .issue(&Caller::operator("test"), req)
            .await
            .unwrap();
        remember(&issued.key);
        issued.key
    }

    /// One request through the authorizer and then the function.
    pub async fn call(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string());
        self.raw(key, method, path, body.as_deref(), Some("application/json"))
            .await
    }

    pub async fn raw(
        &self,
        key: &str,
        method: &str,
        path_and_query: &str,
        body: Option<&str>,
        content_type: Option<&str>,
    ) -> Reply {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let ev = with_route(event(Payload::HttpV2Simple, Some(key)), method, path);
        let decided = self.authorizer.handle(ev, "req").await.unwrap();
        if !allows(Payload::HttpV2Simple, &decided.response, None) {
            // What API Gateway answers when the authorizer says no.
            return Reply {
                status: 403,
                body: json!({"message": "Forbidden"}),
            };
        }
        let mut headers = json!({"host": "api.example.com"});
        if let Some(ct) = content_type {
            headers["content-type"] = json!(ct);
        }
        let http = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": headers,
            "queryStringParameters": query_map(query),
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abcdef1234",
                "authorizer": {"lambda": decided.response["context"].clone()},
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                          "sourceIp": "203.0.113.10", "userAgent": "test"},
                "requestId": "req",
                "routeKey": "$default",
                "stage": "$default",
                "time": "29/Nov/2026:12:00:00 +0000",
                "timeEpoch": 1_795_953_600_000i64
            },
            "body": body,
            "isBase64Encoded": false
        });
        let req = lambda_http::request::from_str(&http.to_string()).expect("valid HTTP API event");
        let resp = keys::handle(&self.service, req).await;
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_slice(resp.body().as_ref()).expect("JSON body");
        openapi::check(method, path, status, &body);
        if status >= 400 {
            assert!(status < 500, "{method} {path}: {status} {body}");
        }
        Reply { status, body }
    }

    /// The authorizer's verdict on `key` for `GET /orders/42`.
    pub async fn orders(&self, key: &str) -> Value {
        self.authorizer
            .handle(event(Payload::HttpV2Simple, Some(key)), "req")
            .await
            .unwrap()
            .response
    }
}

fn query_map(query: &str) -> Value {
    let mut map = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(k.into(), json!(v));
    }
    Value::Object(map)
}

pub fn remember(key: &str) {
    let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
    let key: ApiKey = format.parse(key).expect("a key we issued");
    logs::remember(&key);
}

pub fn code(reply: &Reply) -> &str {
    reply.body["error"]["code"].as_str().unwrap_or_default()
}

/// The `keyctl` binary the workspace build made.
///
/// # Panics
/// If it is not built (`make test` builds it first).
pub fn keyctl() -> std::path::PathBuf {
    let keyctl = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/keyctl");
    assert!(
        keyctl.exists(),
        "build the workspace first (make test does)"
    );
    keyctl
}
