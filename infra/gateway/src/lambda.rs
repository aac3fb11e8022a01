//! Invoking functions through `cargo lambda watch`'s invoke endpoint
//! (`POST /2015-03-31/functions/<function>/invocations`, the Lambda API's
//! own path), the way API Gateway invokes them.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Why an invocation gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("invoke request could not be built")]
    Build(#[from] hyper::http::Error),
    #[error("invoke endpoint unreachable")]
    Unreachable(#[from] hyper_util::client::legacy::Error),
    #[error("invoke answer could not be read")]
    Read(#[from] hyper::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("invoke endpoint answered HTTP {0}")]
    Status(u16),
    #[error("function failed: {0}")]
    Function(String),
    #[error("function answer is not JSON")]
    NotJson(#[source] serde_json::Error),
}

/// A client of one invoke endpoint.
#[derive(Debug, Clone)]
pub struct Invoker {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    timeout: Duration,
}

impl Invoker {
    /// `base` is the endpoint's URL, e.g. `http://127.0.0.1:9000`.
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.trim_end_matches('/').to_owned(),
            timeout,
        }
    }

    /// Invoke `function` with `event` and return its JSON answer.
    pub async fn invoke(&self, function: &str, event: &Value) -> Result<Value, InvokeError> {
        self.invoke_within(function, event, self.timeout).await
    }

    pub async fn invoke_within(
        &self,
        function: &str,
        event: &Value,
        timeout: Duration,
    ) -> Result<Value, InvokeError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.base
            ))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(event.to_string())))?;
        let call = async {
            let resp = self.client.request(req).await?;
            let status = resp.status().as_u16();
            let failed = resp
                .headers()
                .get("x-amz-function-error")
                .map(|v| v.to_str().unwrap_or("error").to_owned());
            let body = resp.into_body().collect().await?.to_bytes();
            if let Some(kind) = failed {
                return Err(InvokeError::Function(kind));
            }
            if !(200..300).contains(&status) {
                return Err(InvokeError::Status(status));
            }
            serde_json::from_slice(&body).map_err(InvokeError::NotJson)
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| InvokeError::Timeout(timeout))?
    }
}
