//! The key list's HTTPS GET (plain HTTP too, for a local stand-in).

use async_trait::async_trait;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use keygate::config::ConfigError;
use keygate::leak::keys::KeySource;
use keygate::leak::signature::KeyListError;

/// Largest key list read (GitHub's is about 1 KB).
const MAX_LIST: usize = 64 * 1024;
/// The fetch's deadline: a report waits for it.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Fetches the list from a URL, trusting the platform's roots (GitHub's
/// API is not behind the Amazon roots the AWS clients trust).
pub struct HttpKeySource {
    url: hyper::Uri,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpKeySource {
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let url: hyper::Uri = url
            .parse()
            .map_err(|_| ConfigError::new("KEYGATE_GITHUB_KEYS_URL", "not a URL"))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| ConfigError::new("KEYGATE_GITHUB_KEYS_URL", e.to_string()))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            url,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn fetch(&self) -> Result<Vec<u8>, KeyListError> {
        let fail = |e: &dyn std::fmt::Display| KeyListError(e.to_string());
        let request = hyper::Request::get(self.url.clone())
            .header("accept", "application/json")
            .header("user-agent", "keygate")
            .body(Empty::new())
            .map_err(|e| fail(&e))?;
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|e| fail(&e))?
            .map_err(|e| fail(&e))?;
        if !response.status().is_success() {
            return Err(KeyListError(format!("status {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_LIST)
            .collect()
            .await
            .map_err(|e| fail(&*e))?;
        Ok(body.to_bytes().to_vec())
    }
}
