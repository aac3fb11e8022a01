//! Count the DynamoDB requests a piece of code makes: an SDK interceptor on
//! a copy of the store's client, counting every attempt put on the wire.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use keygate::store::DynamoStore;

/// Requests sent so far.
#[derive(Debug, Clone, Default)]
pub struct RequestCount(Arc<AtomicU64>);

impl RequestCount {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// The count now, and reset to zero.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Counter(RequestCount);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        (self.0).0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The same store (same table, same endpoint) with its requests counted.
pub fn counted(store: &DynamoStore) -> (DynamoStore, RequestCount) {
    let count = RequestCount::default();
    let config = store
        .client()
        .config()
        .to_builder()
        .interceptor(Counter(count.clone()))
        .build();
    (
        DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), store.table()),
        count,
    )
}
