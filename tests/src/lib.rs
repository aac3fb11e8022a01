//! Helpers for the cross-function tests: an SDK client pointed at the local
//! emulator and a fresh table per test, created from `template.yaml`.
//!
//! The tests run under `infra/local/with-emulator` (`make test`), which starts
//! moto on a free loopback port and sets `AWS_ENDPOINT_URL`. They refuse to
//! run against anything but a loopback endpoint, so they can never touch a
//! real AWS account.

pub mod api;
pub mod counting;
pub mod events;
pub mod faults;
pub mod http;
pub mod instant;
/// DynamoDB's item size rules (in the shared crate, which bounds items by them).
pub mod item_size {
    pub use keygate::store::size::*;
}
pub mod logs;
pub mod notices;
pub mod openapi;
pub mod plan_rig;
pub mod realism;
pub mod runtime_api;
pub mod sim;
pub mod usage_routes;

use keygate::store::DynamoStore;
use keygate::table::TableSpec;
use rand::Rng;

/// SDK configuration for the local emulator, or for a real AWS account
/// when `KEYGATE_REAL_AWS=1` (`infra/aws/test-against-real-dynamodb` sets it,
/// with no endpoint override: the store and authorizer suites then run
/// against real DynamoDB).
///
/// # Panics
/// If `AWS_ENDPOINT_URL` is unset or not a loopback address, unless
/// `KEYGATE_REAL_AWS=1` and no endpoint is set: run the tests through
/// `make test`.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let real = std::env::var("KEYGATE_REAL_AWS").as_deref() == Ok("1") && endpoint.is_empty();
    assert!(
        real || endpoint.starts_with("http://127.0.0.1:")
            || endpoint.starts_with("http://localhost:"),
        "AWS_ENDPOINT_URL must point at the local emulator (run `make test`), got {endpoint:?}"
    );
    keygate::sdk::load(keygate::sdk::TlsRoots::Amazon).await
}

/// A DynamoDB client for the local emulator.
pub async fn dynamo() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&sdk_config().await)
}

/// How stale the realism layer's eventually consistent reads are in this
/// run: `KEYGATE_REALISM_STALE_MS` (default 1000), none with
/// `KEYGATE_REALISM=off` (see `infra/local/with-emulator`).
pub fn stale_window() -> std::time::Duration {
    if std::env::var("KEYGATE_REALISM").as_deref() == Ok("off") {
        return std::time::Duration::ZERO;
    }
    let ms = std::env::var("KEYGATE_REALISM_STALE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    std::time::Duration::from_millis(ms)
}

/// Wait until eventually consistent reads and index queries see what was
/// just written (the stale window and a margin), as a test must on DynamoDB
/// itself, where an index catches up within about a second. Only tests wait
/// like this; the product never relies on it (a sweep that misses a key
/// finds it on its next run, and a negative answer is confirmed by a
/// consistent read).
pub async fn caught_up() {
    tokio::time::sleep(stale_window() + std::time::Duration::from_millis(100)).await;
}

/// A unique table name, so tests run in parallel without sharing state.
pub fn unique_name(prefix: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("{prefix}-{n:016x}")
}

/// A fresh table created from the template's definition, and a store over it.
pub async fn fresh_store() -> DynamoStore {
    logs::init();
    let client = dynamo().await;
    let name = unique_name("keygate-test");
    TableSpec::from_embedded_template()
        .expect("template defines the table")
        .create(&client, &name)
        .await
        .expect("create table in the emulator");
    DynamoStore::new(client, name)
}

/// A DynamoDB client straight to the emulator, past the realism proxy
/// (`KEYGATE_EMULATOR_URL`, else `AWS_ENDPOINT_URL`): for test setup that
/// DynamoDB itself would throttle (writing a 300 KB item many times).
pub async fn emulator_dynamo() -> aws_sdk_dynamodb::Client {
    let direct = std::env::var("KEYGATE_EMULATOR_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let config = sdk_config().await;
    match direct {
        Some(url) => aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&config)
                .endpoint_url(url)
                .build(),
        ),
        None => aws_sdk_dynamodb::Client::new(&config),
    }
}

/// A fresh table and a store that reaches it through a realism proxy of its
/// own with `config` (which the test can then inspect or steer), in front
/// of the emulator itself.
pub async fn realism_store(config: realism::Config) -> (realism::RealismProxy, DynamoStore) {
    let direct = fresh_store().await;
    let proxy = realism::RealismProxy::to_emulator(config).await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .endpoint_url(proxy.endpoint())
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), direct.table());
    (proxy, store)
}

/// Mint a key from `spec` at `now` and store it with its `issued` event,
/// straight through the store; the key is remembered for the log check.
pub async fn store_key(
    store: &DynamoStore,
    format: &keygate::key::KeyFormat,
    spec: keygate::issue::KeySpec,
    now: keygate::clock::Timestamp,
) -> (keygate::key::ApiKey, keygate::model::KeyRecord) {
    use keygate::store::KeyAdmin;
    let (key, record) = keygate::issue::mint(format, spec, now);
    logs::remember(&key);
    store
        .create_key(
            &record,
            &audit(&record, keygate::store::AuditAction::Issued),
        )
        .await
        .unwrap();
    (key, record)
}

/// An audit event for test fixtures written straight through the store.
pub fn audit(
    record: &keygate::model::KeyRecord,
    action: keygate::store::AuditAction,
) -> keygate::store::AuditEvent {
    keygate::store::AuditEvent::new(
        &record.key_id,
        record.version,
        action,
        "test",
        record.created_at,
        serde_json::json!({}),
    )
}

/// The allowance item of a key, read raw (consistent), to check counters.
pub async fn allowance_item(
    store: &DynamoStore,
    record: &keygate::model::KeyRecord,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use keygate::store::items;
    allowance_part(store, items::allowance_pk(&record.allowance_id)).await
}

/// One item of an allowance (its root or a shard) by partition key, raw and
/// consistent; it must exist.
pub async fn allowance_part(
    store: &DynamoStore,
    pk: String,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use keygate::store::items;
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key(items::PK, AttributeValue::S(pk))
        .key(items::SK, AttributeValue::S(items::ALLOWANCE_SK.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("read the allowance")
        .item
        .expect("the allowance item exists")
}

/// Quota spent from a key's allowance: the root's `qu` plus, once the
/// allowance is sharded, every shard's (all counting the same period here).
pub async fn allowance_spent(store: &DynamoStore, record: &keygate::model::KeyRecord) -> i64 {
    use aws_sdk_dynamodb::types::AttributeValue;
    use keygate::store::items;
    let num = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| -> i64 {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let root = allowance_item(store, record).await;
    let mut spent = num(&root, items::alw::QUOTA_USED);
    for index in 1..=num(&root, items::alw::SHARDS) {
        let pk = items::allowance_shard_pk(&record.allowance_id, index as u32);
        spent += num(&allowance_part(store, pk).await, items::alw::QUOTA_USED);
    }
    spent
}

/// Moves a test's clock on one second per second of real time until
/// dropped, as a Lambda container's clock moves while load runs: what a
/// container does at most once a second (growing a throttled allowance)
/// comes round again. A clock standing still lets each container try once
/// in a whole run.
pub struct Ticking(tokio::task::JoinHandle<()>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Start moving `clock` with real time (see [`Ticking`]).
pub fn ticking(clock: &keygate::clock::ManualClock) -> Ticking {
    let clock = clock.clone();
    Ticking(tokio::spawn(async move {
        let mut second = tokio::time::interval(std::time::Duration::from_secs(1));
        second.tick().await;
        loop {
            second.tick().await;
            clock.advance(1);
        }
    }))
}

/// A store over `table` built as the authorizer function builds its own
/// (its SDK timeouts and retries: two attempts), through `endpoint` (a
/// realism proxy).
pub async fn production_store(endpoint: &str, table: &str) -> DynamoStore {
    let config = authorizer::Config::from_lookup(|name| match name {
        "KEYGATE_TABLE" => Some(table.to_owned()),
        "KEYGATE_KEY_ENV" => Some("test".into()),
        _ => None,
    })
    .expect("the authorizer's settings");
    let (timeouts, retries) = config.sdk_timeouts();
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .endpoint_url(endpoint)
        .timeout_config(timeouts)
        .retry_config(retries)
        .build();
    DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(conf), table)
}

/// The authorizer's handler, in process over `store`: payload 2.0 with
/// simple responses, and a generous deadline (the single-threaded emulator
/// is shared by the whole suite; the deadline itself is tested elsewhere).
pub fn v2_handler(
    store: DynamoStore,
    clock: keygate::clock::ManualClock,
    format: keygate::key::KeyFormat,
) -> authorizer::Handler<DynamoStore, keygate::clock::ManualClock> {
    let authorizer = keygate::authorize::Authorizer::new(
        store,
        clock,
        format,
        keygate::authorize::AuthConfig::default(),
    );
    let settings = authorizer::Settings {
        v2_response: authorizer::response::V2Response::Simple,
        deadline: std::time::Duration::from_secs(30),
    };
    authorizer::Handler::new(authorizer, settings, "ak")
}

/// A `GET /orders/1` request (route `GET /orders/{id}`, from 203.0.113.9)
/// presenting `key`: what the authorizer tests decide on.
pub fn orders_request(key: &keygate::key::ApiKey) -> keygate::authorize::AuthRequest<'_> {
    use std::net::{IpAddr, Ipv4Addr};
    keygate::authorize::AuthRequest {
        credential: keygate::authorize::Credential::Presented(key.expose()),
        method: "GET",
        path: "/orders/1",
        route: Some("GET /orders/{id}"),
        source_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
    }
}
