//! The `echo` function: a sample route behind the keygate authorizer.
//!
//! It answers `GET /v1/whoami` with the identity the authorizer attached to
//! the request (API Gateway places the authorizer's context at
//! `requestContext.authorizer.lambda`): the calling key's id, owner, scopes
//! and what is left of its quota and rate window. It touches no AWS service,
//! so its IAM policy is empty. A request without that context (a route not
//! behind the authorizer) is refused with 401: the function never invents a
//! caller.

use std::collections::HashMap;

use keygate::manage::Caller;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{json, Value};

/// The caller as the authorizer described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub key_id: String,
    pub owner: String,
    pub scopes: Vec<String>,
    /// Requests left in the quota period (absent when the key has no quota).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_remaining: Option<u64>,
    /// Requests left in the rate window (absent when the key has no rate limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_remaining: Option<u64>,
    /// The owner's plan (absent when the owner is on none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// Requests left in the plan's rate window, for all of the owner's keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_rate_remaining: Option<u64>,
    /// Requests left in the plan's UTC day, for all of the owner's keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_daily_remaining: Option<u64>,
    /// Requests left in the plan's UTC month, for all of the owner's keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_monthly_remaining: Option<u64>,
}

impl Identity {
    /// Read the authorizer context (`keyId`, `owner`, `scopes`,
    /// `quotaRemaining`, `rateRemaining`, and on a plan `planId`,
    /// `planRateRemaining`, `planDailyRemaining`, `planMonthlyRemaining`);
    /// `None` when it names no valid caller.
    pub fn from_context(ctx: &HashMap<String, Value>) -> Option<Self> {
        let caller = Caller::from_context(ctx).ok()?;
        // API Gateway passes numbers through; accept their string form too
        // (REST APIs stringify context values).
        let number = |k: &str| match ctx.get(k)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        Some(Self {
            key_id: caller.key_id?.as_str().to_owned(),
            owner: caller.owner,
            scopes: caller.scopes.iter().map(ToString::to_string).collect(),
            quota_remaining: number("quotaRemaining"),
            rate_remaining: number("rateRemaining"),
            plan_id: match ctx.get("planId") {
                Some(Value::String(plan)) if !plan.is_empty() => Some(plan.clone()),
                _ => None,
            },
            plan_rate_remaining: number("planRateRemaining"),
            plan_daily_remaining: number("planDailyRemaining"),
            plan_monthly_remaining: number("planMonthlyRemaining"),
        })
    }
}

fn identity(req: &Request) -> Option<Identity> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            Identity::from_context(&ctx.authorizer.as_ref()?.fields)
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Serve one request: `200` with the identity, or `401` without one.
pub fn handle(req: &Request) -> Response<Body> {
    let (status, body) = match identity(req) {
        Some(id) => (200, json!(id)),
        None => (
            401,
            json!({"error": {"code": "unauthenticated",
                             "message": "no caller identity from the authorizer"}}),
        ),
    };
    tracing::info!(method = %req.method(), path = req.uri().path(), status, "whoami");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::from("{}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorizer: Option<Value>) -> Request {
        let mut ctx = json!({
            "accountId": "123456789012", "apiId": "abcdef1234",
            "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": "GET", "path": "/prod/v1/whoami", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.10", "userAgent": "test"},
            "requestId": "req", "routeKey": "GET /v1/whoami", "stage": "prod",
            "time": "29/Nov/2026:12:00:00 +0000", "timeEpoch": 1_795_953_600_000i64
        });
        if let Some(lambda) = authorizer {
            ctx["authorizer"] = json!({ "lambda": lambda });
        }
        let event = json!({
            "version": "2.0", "routeKey": "GET /v1/whoami", "rawPath": "/prod/v1/whoami",
            "rawQueryString": "", "headers": {"host": "api.example.com"},
            "requestContext": ctx, "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("HTTP API event")
    }

    fn body(resp: &Response<Body>) -> Value {
        serde_json::from_slice(resp.body().as_ref()).expect("JSON")
    }

    #[test]
    fn echoes_the_authorizer_context() {
        let resp = handle(&request(Some(json!({
            "keyId": "key_0123456789abcdefABCDEF",
            "owner": "acme",
            "scopes": "GET /v1/whoami,GET /orders/*",
            "quotaRemaining": 4,
            "rateRemaining": "9"
        }))));
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert_eq!(
            body(&resp),
            json!({"key_id": "key_0123456789abcdefABCDEF", "owner": "acme",
                   "scopes": ["GET /v1/whoami", "GET /orders/*"],
                   "quota_remaining": 4, "rate_remaining": 9})
        );
    }

    /// Before, a key on a plan saw nothing of it here.
    #[test]
    fn echoes_the_plan_and_what_is_left_of_it() {
        let resp = handle(&request(Some(json!({
            "keyId": "key_0123456789abcdefABCDEF", "owner": "acme", "scopes": "GET /v1/whoami",
            "planId": "pro", "planRateRemaining": 49, "planDailyRemaining": "999",
            "planMonthlyRemaining": 19_999
        }))));
        assert_eq!(resp.status(), 200);
        assert_eq!(
            body(&resp),
            json!({"key_id": "key_0123456789abcdefABCDEF", "owner": "acme",
                   "scopes": ["GET /v1/whoami"], "plan_id": "pro",
                   "plan_rate_remaining": 49, "plan_daily_remaining": 999,
                   "plan_monthly_remaining": 19_999})
        );
    }

    #[test]
    fn limits_are_omitted_when_the_key_has_none() {
        let resp = handle(&request(Some(json!({
            "keyId": "key_0123456789abcdefABCDEF", "owner": "acme", "scopes": "admin"
        }))));
        assert_eq!(resp.status(), 200);
        let b = body(&resp);
        assert!(b.get("quota_remaining").is_none() && b.get("rate_remaining").is_none());
        assert!(b.get("plan_id").is_none() && b.get("plan_daily_remaining").is_none());
        assert_eq!(b["scopes"], json!(["admin"]));
    }

    #[test]
    fn no_or_broken_context_is_401() {
        for ctx in [
            None,
            Some(json!({})),
            Some(json!({"keyId": "not-an-id", "owner": "acme", "scopes": ""})),
            Some(json!({"keyId": "key_0123456789abcdefABCDEF", "owner": ""})),
        ] {
            let resp = handle(&request(ctx.clone()));
            assert_eq!(resp.status(), 401, "{ctx:?}");
            assert_eq!(body(&resp)["error"]["code"], "unauthenticated");
        }
    }
}
