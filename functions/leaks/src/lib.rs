//! The `leaks` function: GitHub secret-scanning reports over `lambda_http`.
//!
//! Only conversion and wiring live here: verification, bounds, lookups and
//! the policy are in [`keygate::leak`]. Settings: `KEYGATE_TABLE`,
//! `KEYGATE_KEY_PREFIX`, `KEYGATE_KEY_ENV`, `KEYGATE_LEAK_POLICY`
//! (`revoke`, `quarantine`, `notify`) and `KEYGATE_GITHUB_KEYS_URL`
//! (GitHub's key list; the tests serve their own).

mod fetch;

use keygate::clock::{Clock, SystemClock};
use keygate::config::{ConfigError, Deployment};
use keygate::leak::http::{github, GithubRequest};
use keygate::leak::keys::{KeyCache, KeySource};
use keygate::leak::signature::{KEY_ID_HEADER, SIGNATURE_HEADER};
use keygate::leak::{EventBridgeNotifier, LeakNotifier, LeakPolicy, LeakService};
use keygate::store::{DynamoStore, LeakStore};
use lambda_http::{Body, Request, Response};

pub use fetch::HttpKeySource;

/// GitHub's published secret-scanning keys (GitHub Docs, "Secret scanning
/// partner program").
pub const GITHUB_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// The service and the container's key cache.
pub struct Receiver<S, C, N, F> {
    pub service: LeakService<S, C, N>,
    pub keys: KeyCache<F, C>,
}

/// Production wiring: one client per service per container.
pub async fn build(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Receiver<DynamoStore, SystemClock, EventBridgeNotifier, HttpKeySource>, ConfigError> {
    let deployment = Deployment::from_lookup(&get)?;
    let policy = LeakPolicy::from_lookup(&get)?;
    let url = get("KEYGATE_GITHUB_KEYS_URL").unwrap_or_else(|| GITHUB_KEYS_URL.into());
    let source = HttpKeySource::new(&url)?;
    let sdk = keygate::sdk::load(deployment.tls_roots).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), deployment.table);
    let notifier = EventBridgeNotifier::new(aws_sdk_eventbridge::Client::new(&sdk));
    Ok(Receiver {
        service: LeakService::new(store, SystemClock, deployment.format, policy, notifier),
        keys: KeyCache::new(source, SystemClock),
    })
}

/// Serve one HTTP request (the gateway routes only `POST /v1/leaks/github`
/// here).
pub async fn handle<S, C, N, F>(receiver: &Receiver<S, C, N, F>, req: Request) -> Response<Body>
where
    S: LeakStore,
    C: Clock + Clone,
    N: LeakNotifier,
    F: KeySource,
{
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let (status, body) = if req.method() == lambda_http::http::Method::POST {
        let report = GithubRequest {
            key_id: header(KEY_ID_HEADER),
            signature: header(SIGNATURE_HEADER),
            body: req.body().as_ref(),
        };
        github(&receiver.service, &receiver.keys, report).await
    } else {
        (
            405,
            serde_json::json!({"error": {"code": "method_not_allowed", "message": "method not allowed"}}),
        )
    };
    tracing::info!(method = %req.method(), path = req.uri().path(), status, "leak request");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::from("{}")))
}
