//! Answers in the shape each event expects.
//!
//! Policies name exactly the method (or route) ARN of the request: if API
//! Gateway caches the answer, the cached Allow can never open a route the
//! key's scopes do not cover (a cached answer for one route gives 403 on
//! another, which is safe; see the README on caching). Context values are
//! strings, numbers and booleans only (REST's rule) and never contain the key
//! or its hash. A deny carries `reason`, which a Gateway Response template
//! can show as `$context.authorizer.reason`.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayV2CustomAuthorizerIamPolicyResponse, ApiGatewayV2CustomAuthorizerSimpleResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use keygate::decision::{AllowContext, LimitHit};
use serde_json::{json, Map, Value};

use crate::event::Shape;

/// How HTTP API (payload 2.0) answers: simple `{isAuthorized}` or an IAM
/// policy; it must match the authorizer's `EnableSimpleResponses` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Response {
    Simple,
    Iam,
}

/// The decision to answer, reduced to what the response carries.
#[derive(Debug, Clone, Copy)]
pub enum Answer<'a> {
    Allow(&'a AllowContext),
    /// Deny with a public reason (a deny reason's wire name, or `error`),
    /// and for a limit deny the limit it hit.
    Deny(&'a str, Option<&'a LimitHit>),
}

/// Principal of denied requests (API Gateway requires one).
const ANONYMOUS: &str = "anonymous";

fn context(answer: Answer<'_>) -> Map<String, Value> {
    let mut ctx = Map::new();
    match answer {
        Answer::Allow(allow) => {
            ctx.insert("keyId".into(), json!(allow.key_id.as_str()));
            ctx.insert("owner".into(), json!(allow.owner));
            ctx.insert(
                "scopes".into(),
                json!(keygate::scope::join_list(&allow.scopes)),
            );
            if let Some(q) = allow.quota_remaining {
                ctx.insert("quotaRemaining".into(), json!(q));
            }
            if let Some(r) = allow.rate_remaining {
                ctx.insert("rateRemaining".into(), json!(r));
            }
            if let Some(plan) = &allow.plan {
                ctx.insert("planId".into(), json!(plan.plan_id));
                for (name, left) in [
                    ("planRateRemaining", plan.rate_remaining),
                    ("planDailyRemaining", plan.daily_remaining),
                    ("planMonthlyRemaining", plan.monthly_remaining),
                ] {
                    if let Some(left) = left {
                        ctx.insert(name.into(), json!(left));
                    }
                }
            }
        }
        Answer::Deny(reason, hit) => {
            ctx.insert("reason".into(), json!(reason));
            if let Some(hit) = hit {
                ctx.insert("limit".into(), json!(hit.scope));
                ctx.insert("window".into(), json!(hit.window));
                if let Some(plan) = &hit.plan_id {
                    ctx.insert("planId".into(), json!(plan));
                }
            }
        }
    }
    ctx
}

fn policy(allow: bool, resource_arn: &str) -> ApiGatewayCustomAuthorizerPolicy {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = if allow {
        IamPolicyEffect::Allow
    } else {
        IamPolicyEffect::Deny
    };
    // An empty ARN (a broken event) still gets a valid policy: a deny on
    // everything (`respond` never allows without an ARN).
    statement.resource = vec![if resource_arn.is_empty() {
        "*".to_owned()
    } else {
        resource_arn.to_owned()
    }];
    let mut doc = ApiGatewayCustomAuthorizerPolicy::default();
    doc.version = Some("2012-10-17".into());
    doc.statement = vec![statement];
    doc
}

/// Build the answer for a request of `shape`.
pub fn respond(shape: Shape, v2: V2Response, answer: Answer<'_>, resource_arn: &str) -> Value {
    let allow = matches!(answer, Answer::Allow(_)) && !resource_arn.is_empty();
    let principal = match answer {
        Answer::Allow(a) => a.key_id.as_str().to_owned(),
        Answer::Deny(..) => ANONYMOUS.to_owned(),
    };
    let ctx = context(answer);
    let value = match (shape, v2) {
        (Shape::HttpV2, V2Response::Simple) => {
            let mut r = ApiGatewayV2CustomAuthorizerSimpleResponse::<Map<String, Value>>::default();
            r.is_authorized = matches!(answer, Answer::Allow(_));
            r.context = ctx;
            serde_json::to_value(r)
        }
        (Shape::HttpV2, V2Response::Iam) => {
            let mut r =
                ApiGatewayV2CustomAuthorizerIamPolicyResponse::<Map<String, Value>>::default();
            r.principal_id = Some(principal);
            r.policy_document = policy(allow, resource_arn);
            r.context = ctx;
            serde_json::to_value(r)
        }
        (Shape::Token | Shape::Request, _) => {
            let mut r = ApiGatewayCustomAuthorizerResponse::<Map<String, Value>>::default();
            r.principal_id = Some(principal);
            r.policy_document = policy(allow, resource_arn);
            r.context = ctx;
            serde_json::to_value(r)
        }
    };
    // Serialising these plain structs cannot fail; if it ever did, answer
    // with the most restrictive thing every shape accepts.
    value.unwrap_or_else(|_| {
        json!({"isAuthorized": false, "principalId": ANONYMOUS,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "*"}]}})
    })
}
