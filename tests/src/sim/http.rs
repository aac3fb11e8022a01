//! The SDK's HTTP client in the simulation: requests never leave the
//! process. [`SimClient`] implements smithy's `HttpClient` /
//! `HttpConnector`, reads the JSON protocol's operation from
//! `X-Amz-Target: DynamoDB_20120810.<Op>`, and answers from the shared
//! [`Model`] after a sampled network-and-service latency, half before the
//! model applies the request and half after, on tokio's clock (virtual
//! when paused). The SDK's own sleeps (retry backoff, timeouts) use the same
//! tokio clock, so the whole run is in virtual time.
//!
//! Latency: log-normal with a 4 ms median and a 12 ms 99th percentile. An
//! assumption: AWS states "single-digit millisecond" latency for DynamoDB
//! (developer guide, "What is Amazon DynamoDB?":
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Introduction.html>),
//! and a Lambda in the table's region adds about a millisecond of network.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::model::Model;

/// A log-normal latency distribution, sampled from a seeded generator.
#[derive(Debug)]
pub struct Latency {
    median: Duration,
    sigma: f64,
    rng: Mutex<StdRng>,
}

/// The standard normal's 99th percentile.
const Z99: f64 = 2.326_347_874;

impl Latency {
    /// Median `p50` and 99th percentile `p99` (`p99 >= p50`).
    pub fn new(p50: Duration, p99: Duration, seed: u64) -> Self {
        let ratio = p99.as_secs_f64() / p50.as_secs_f64().max(1e-9);
        Self {
            median: p50,
            sigma: ratio.max(1.0).ln() / Z99,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// DynamoDB as assumed here: p50 4 ms, p99 12 ms.
    pub fn dynamodb(seed: u64) -> Self {
        Self::new(Duration::from_millis(4), Duration::from_millis(12), seed)
    }

    pub fn sample(&self) -> Duration {
        let (u1, u2): (f64, f64) = match self.rng.lock() {
            Ok(mut rng) => (rng.random(), rng.random()),
            Err(_) => (0.5, 0.0),
        };
        // Box-Muller: one standard normal from two uniforms.
        let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        self.median.mul_f64((self.sigma * z).exp())
    }
}

/// The in-process HTTP client: every connector it hands out shares one model.
#[derive(Debug, Clone)]
pub struct SimClient {
    model: Arc<Mutex<Model>>,
    latency: Arc<Latency>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Model")
    }
}

impl SimClient {
    pub fn new(model: Arc<Mutex<Model>>, latency: Arc<Latency>) -> Self {
        Self { model, latency }
    }

    fn answer(&self, op: &str, body: &[u8]) -> (u16, Value) {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let now = tokio::time::Instant::now().into_std();
        let answer = match self.model.lock() {
            Ok(mut model) => model.handle(op, &parsed, now),
            Err(_) => return (500, serde_json::json!({"__type": "InternalServerError"})),
        };
        match answer {
            Ok(v) => (200, v),
            Err(e) => (400, e.to_json()),
        }
    }
}

impl HttpConnector for SimClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let op = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.strip_prefix("DynamoDB_20120810."))
            .unwrap_or_default()
            .to_owned();
        let body = request.body().bytes().unwrap_or_default().to_vec();
        let this = self.clone();
        HttpConnectorFuture::new(async move {
            let latency = this.latency.sample();
            tokio::time::sleep(latency / 2).await;
            let (status, answer) = this.answer(&op, &body);
            tokio::time::sleep(latency - latency / 2).await;
            let bytes = serde_json::to_vec(&answer).unwrap_or_default();
            let status = StatusCode::try_from(status)
                .unwrap_or_else(|_| StatusCode::try_from(500u16).expect("500 is a status code"));
            let mut response = HttpResponse::new(status, SdkBody::from(bytes));
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
            Ok(response)
        })
    }
}

impl HttpClient for SimClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
