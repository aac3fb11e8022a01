//! The `portal` function: the developer portal over `lambda_http`.
//!
//! Only conversion and wiring live here: sessions, routes and the JSON API
//! are in [`keygate::portal`]. `POST /v1/portal/sessions` arrives through
//! the key authorizer (its caller from the authorizer context, as in the
//! `keys` function); `/portal/...` arrives without one and is authenticated
//! by the session cookie.

pub mod assets;

use keygate::clock::{Clock, SystemClock};
use keygate::config::{ConfigError, Deployment};
use keygate::manage::KeyService;
use keygate::portal::{Portal, PortalRequest, PortalSettings};
use keygate::secrets::{SecretSink, SecretsManager};
use keygate::store::{DynamoStore, KeyAdmin, PortalStore, UsageStore};
use keygate::usage::report::Thresholds;
use keygate::usage::service::UsageService;
use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request, Response};

/// Production wiring: one client per service per container.
///
/// # Errors
/// A deployment setting that is missing or invalid (`KEYGATE_TABLE`,
/// `KEYGATE_PORTAL_*`, ...).
pub async fn build(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Portal<DynamoStore, SystemClock, SecretsManager>, ConfigError> {
    let deployment = Deployment::from_lookup(&get)?;
    let rotation_days = keygate::config::rotation_days(&get)?;
    let settings = PortalSettings::from_lookup(&get)?;
    let prefix = get("KEYGATE_SECRET_PREFIX").unwrap_or_else(|| "keygate".into());
    let sdk = keygate::sdk::load(deployment.tls_roots).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), deployment.table);
    // Never called: the portal shows keys once and delivers none (its IAM
    // policy has no Secrets Manager action).
    let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let keys = KeyService::new(
        store.clone(),
        SystemClock,
        deployment.format,
        secrets,
        &prefix,
    )
    .with_default_rotation_days(rotation_days);
    Ok(wire(store, SystemClock, keys, settings))
}

/// The portal over `store` and `clock`, with the embedded site (tests pass
/// a manual clock).
pub fn wire<S, C, X>(
    store: S,
    clock: C,
    keys: KeyService<S, C, X>,
    settings: PortalSettings,
) -> Portal<S, C, X>
where
    S: KeyAdmin + UsageStore + Clone,
    C: Clock + Clone,
{
    Portal {
        keys,
        usage: UsageService::new(store.clone(), clock.clone(), Thresholds::default()),
        store,
        clock,
        settings,
        site: assets::site(),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Serve one HTTP request.
pub async fn handle<S, C, X>(portal: &Portal<S, C, X>, req: Request) -> Response<Body>
where
    S: KeyAdmin + UsageStore + PortalStore,
    C: Clock,
    X: SecretSink,
{
    let api = keys::api_request(&req);
    let headers = req.headers();
    let preq = PortalRequest {
        api,
        host: header(headers, "host"),
        origin: header(headers, "origin"),
        forwarded_proto: header(headers, "x-forwarded-proto"),
        csrf: header(headers, "x-csrf-token"),
        cookie: header(headers, "cookie"),
    };
    let answer = portal.handle(&preq).await;
    // The path only: the page's token rides in the fragment, which never
    // reaches a server, and no query string of the portal carries a secret.
    tracing::info!(method = %req.method(), path = req.uri().path(), status = answer.status, "portal request");
    let mut builder = Response::builder()
        .status(answer.status)
        .header("content-type", answer.content_type);
    for (name, value) in &answer.headers {
        builder = builder.header(*name, value);
    }
    builder
        .body(Body::from(answer.body))
        .unwrap_or_else(|_| Response::new(Body::from("{}")))
}
