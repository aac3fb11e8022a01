//! The authorizer function: API Gateway events in, decisions out.
//!
//! The decision itself lives in [`keygate::authorize`]; this crate only
//! recognises and reads events ([`event`]), shapes answers ([`response`]),
//! enforces the deadline and logs ([`handler`]), publishes metrics
//! ([`metrics`]), and reads its settings ([`config`]). `main.rs` wires them to the Lambda runtime.

pub mod config;
pub mod event;
pub mod handler;
pub mod metrics;
pub mod response;

pub use config::Config;
pub use handler::{Handled, Handler, Settings};

use keygate::authorize::Authorizer;
use keygate::clock::SystemClock;
use keygate::store::DynamoStore;

/// Build the production handler: one SDK client per container, with
/// timeouts that fit the deadline.
pub async fn build(config: &Config) -> Handler<DynamoStore, SystemClock> {
    let (timeouts, retries) = config.sdk_timeouts();
    let sdk = keygate::sdk::loader(config.tls_roots)
        .timeout_config(timeouts)
        .retry_config(retries)
        .load()
        .await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table.clone());
    let authorizer = Authorizer::new(store, SystemClock, config.format.clone(), config.auth);
    Handler::new(authorizer, config.settings, config.format.prefix())
}
