//! How every function (and the tools) configure the AWS SDK.
//!
//! One HTTPS stack for all clients: hyper 1 with rustls on `ring`, roots
//! from the platform's store. The SDK's defaults would link `aws-lc-rs`
//! (and, with its `rustls` feature, a second, legacy hyper 0.14 / rustls
//! 0.21 stack besides); one stack on `ring` keeps the Lambda zips and cold
//! starts small. Every crate turns the SDK's default client off, so a
//! config built elsewhere than here has no HTTP client and fails loudly at
//! its first request instead of silently linking another stack.

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The config loader with the workspace's HTTP client; callers add
/// timeouts or retries and `load()` it.
pub fn loader() -> ConfigLoader {
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(client)
}

/// The SDK configuration from the environment, with [`loader`]'s client.
pub async fn load() -> aws_config::SdkConfig {
    loader().load().await
}
