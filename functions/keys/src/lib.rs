//! The `keys` function: the management API over `lambda_http`.
//!
//! Only conversion lives here: the routes, rules and validation are in
//! [`keygate::manage`]. The caller comes from the authorizer context API
//! Gateway places at `requestContext.authorizer.lambda`; a request without
//! it (a route not behind the authorizer) is refused with 401.
//!
//! Manual leak reports (`POST /v1/keys/{key_id}/report-leak`) take the leak
//! receiver's path: the same policy (`KEYGATE_LEAK_POLICY`) and the same
//! EventBridge notice.

use std::sync::Arc;

use keygate::clock::{Clock, SystemClock};
use keygate::config::{ConfigError, Deployment};
use keygate::leak::{EventBridgeNotifier, LeakPolicy, LeakService};
use keygate::manage::{route, ApiRequest, Caller, KeyService};
use keygate::secrets::{SecretSink, SecretsManager};
use keygate::store::{DynamoStore, KeyAdmin, PlanAdmin};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

/// Production wiring: one client per service per container.
pub async fn build(
    get: impl Fn(&str) -> Option<String>,
) -> Result<KeyService<DynamoStore, SystemClock, SecretsManager>, ConfigError> {
    let deployment = Deployment::from_lookup(&get)?;
    let rotation_days = keygate::config::rotation_days(&get)?;
    let policy = LeakPolicy::from_lookup(&get)?;
    let prefix = get("KEYGATE_SECRET_PREFIX").unwrap_or_else(|| "keygate".into());
    let sdk = keygate::sdk::load(deployment.tls_roots).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), deployment.table);
    let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let leaks = LeakService::new(
        store.clone(),
        SystemClock,
        deployment.format.clone(),
        policy,
        EventBridgeNotifier::new(aws_sdk_eventbridge::Client::new(&sdk)),
    );
    Ok(
        KeyService::new(store, SystemClock, deployment.format, secrets, &prefix)
            .with_default_rotation_days(rotation_days)
            .with_leaks(Arc::new(leaks)),
    )
}

fn caller(req: &Request) -> Option<Caller> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            Caller::from_context(&ctx.authorizer.as_ref()?.fields).ok()
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The router's view of a `lambda_http` request.
pub fn api_request(req: &Request) -> ApiRequest<'_> {
    let query = req
        .query_string_parameters_ref()
        .map(|q| {
            q.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let content_type = req
        .headers()
        .get(lambda_http::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    ApiRequest {
        method: req.method().as_str(),
        path: req.uri().path(),
        query,
        content_type,
        body: req.body().as_ref(),
        caller: caller(req),
    }
}

/// An answer, never cached: some carry a key, none should sit in a cache.
/// A 503 says when to retry (`Retry-After`).
pub fn respond(status: u16, content_type: &str, body: String) -> Response<Body> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store");
    if let Some(seconds) = keygate::manage::retry_after(status) {
        builder = builder.header("retry-after", seconds);
    }
    builder
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::from("{}")))
}

/// Serve one HTTP request.
pub async fn handle<S, C, X>(service: &KeyService<S, C, X>, req: Request) -> Response<Body>
where
    S: KeyAdmin + PlanAdmin,
    C: Clock,
    X: SecretSink,
{
    let answer = route(service, api_request(&req)).await;
    tracing::info!(method = %req.method(), path = req.uri().path(), status = answer.status, "management request");
    respond(answer.status, "application/json", answer.body.to_string())
}
