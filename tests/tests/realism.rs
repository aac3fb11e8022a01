//! The realism proxy (`keygate_tests::realism`): through the real SDK, the
//! emulator behind it answers as strictly as DynamoDB. Each test starts its
//! own proxy in front of the emulator itself (`KEYGATE_EMULATOR_URL` when a
//! global proxy runs) on a fresh table from the template.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use keygate::table::TableSpec;
use keygate_tests::realism::{Config, RealismProxy, ThrottleError};

type Item = HashMap<String, AttributeValue>;

struct Rig {
    proxy: RealismProxy,
    /// Through the proxy, without retries (a retry would hide a throttle).
    client: Client,
    /// Straight to the emulator.
    direct: Client,
    table: String,
}

async fn rig(config: Config) -> Rig {
    let proxy = RealismProxy::to_emulator(config).await;
    let sdk = keygate_tests::sdk_config().await;
    let client = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(proxy.endpoint())
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let upstream = std::env::var("KEYGATE_EMULATOR_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| std::env::var("AWS_ENDPOINT_URL").unwrap_or_default());
    let direct = Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(upstream)
            .build(),
    );
    let table = keygate_tests::unique_name("realism");
    TableSpec::from_embedded_template()
        .expect("template defines the table")
        .create(&direct, &table)
        .await
        .expect("create the table");
    Rig {
        proxy,
        client,
        direct,
        table,
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s("X"))])
}

fn config(stale: Duration, scale: f64) -> Config {
    Config {
        stale_window: stale,
        scale,
        ..Config::default()
    }
}

const WINDOW: Duration = Duration::from_secs(2);

async fn past_window() {
    tokio::time::sleep(WINDOW + Duration::from_millis(300)).await;
}

async fn read(client: &Client, table: &str, pk: &str, consistent: bool) -> Option<Item> {
    client
        .get_item()
        .table_name(table)
        .set_key(Some(key(pk)))
        .consistent_read(consistent)
        .send()
        .await
        .expect("GetItem")
        .item
}

impl Rig {
    async fn get(&self, pk: &str, consistent: bool) -> Option<Item> {
        read(&self.client, &self.table, pk, consistent).await
    }

    async fn put(&self, pk: &str, extra: &[(&str, AttributeValue)]) {
        let mut item = key(pk);
        item.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .expect("PutItem");
    }

    fn update(&self, pk: &str, value: AttributeValue) -> Update {
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .update_expression("SET v = :v")
            .expression_attribute_values(":v", value)
            .build()
            .unwrap()
    }

    /// `SET v = :v` on one item.
    fn set_v(&self, pk: &str, value: AttributeValue) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk)))
            .update_expression("SET v = :v")
            .expression_attribute_values(":v", value)
    }

    async fn set(&self, pk: &str, value: AttributeValue) {
        self.set_v(pk, value).send().await.expect("UpdateItem");
    }

    async fn direct_item(&self, pk: &str) -> Option<Item> {
        read(&self.direct, &self.table, pk, true).await
    }

    fn write_units(&self, pk: &str) -> f64 {
        self.proxy.usage(&self.table, None, pk).write_units
    }
}

#[tokio::test]
async fn eventual_reads_see_the_item_as_it_was_a_window_ago() {
    let rig = rig(config(WINDOW, 1.0)).await;
    rig.put("KEY#a", &[("v", n(1))]).await;
    assert_eq!(rig.get("KEY#a", false).await, None, "not there yet");
    assert_eq!(rig.get("KEY#a", true).await.unwrap()["v"], n(1));
    past_window().await;
    assert_eq!(rig.get("KEY#a", false).await.unwrap()["v"], n(1));
    rig.set("KEY#a", n(2)).await;
    assert_eq!(
        rig.get("KEY#a", false).await.unwrap()["v"],
        n(1),
        "old image"
    );
    assert_eq!(rig.get("KEY#a", true).await.unwrap()["v"], n(2));
    // A projection applies to the stale image too.
    let projected = rig
        .client
        .get_item()
        .table_name(&rig.table)
        .set_key(Some(key("KEY#a")))
        .projection_expression("#v")
        .expression_attribute_names("#v", "v")
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(projected, HashMap::from([("v".to_owned(), n(1))]));
    past_window().await;
    assert_eq!(rig.get("KEY#a", false).await.unwrap()["v"], n(2));
    assert_eq!(rig.get("KEY#a", true).await.unwrap()["v"], n(2));
}

#[tokio::test]
async fn index_queries_are_always_stale() {
    let rig = rig(config(WINDOW, 1.0)).await;
    let owner = |consistent: bool| {
        rig.client
            .query()
            .table_name(&rig.table)
            .index_name("by_owner")
            .key_condition_expression("gpk = :o")
            .expression_attribute_values(":o", s("OWNER#x"))
            .consistent_read(consistent)
            .send()
    };
    rig.put(
        "KEY#b",
        &[("gpk", s("OWNER#x")), ("gsk", s("1")), ("v", n(1))],
    )
    .await;
    let page = owner(false).await.unwrap();
    assert_eq!((page.count, page.items().len()), (0, 0), "not indexed yet");
    past_window().await;
    assert_eq!(owner(false).await.unwrap().items()[0]["v"], n(1));
    rig.set("KEY#b", n(2)).await;
    assert_eq!(owner(false).await.unwrap().items()[0]["v"], n(1));
    // The base table's consistent Query sees the write at once.
    let base = rig
        .client
        .query()
        .table_name(&rig.table)
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("KEY#b"))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(base.items()[0]["v"], n(2));
    // A read of the index was charged to the index partition.
    let read = rig.proxy.usage(&rig.table, Some("by_owner"), "OWNER#x");
    assert!(read.read_units >= 1.5, "{read:?}");
}

/// An item of about 3.5 KB: four write units, one read unit.
fn payload() -> AttributeValue {
    s(&"x".repeat(3500))
}

#[tokio::test]
async fn a_hot_partition_is_throttled_with_its_reason_and_nothing_is_forwarded() {
    // 1,000 WCU/s times 0.004: four write units per second.
    let rig = rig(config(WINDOW, 0.004)).await;
    rig.put("KEY#hot", &[("d", payload())]).await;
    assert_eq!(rig.write_units("KEY#hot"), 4.0);
    let refused = rig
        .set_v("KEY#hot", n(1))
        .send()
        .await
        .expect_err("over the partition's budget");
    let service = refused.into_service_error();
    let aws_sdk_dynamodb::operation::update_item::UpdateItemError::ThrottlingException(e) =
        &service
    else {
        panic!("not a ThrottlingException: {service:?}");
    };
    let reason = &e.throttling_reasons()[0];
    assert_eq!(
        reason.reason(),
        Some("TableWriteKeyRangeThroughputExceeded")
    );
    assert!(
        reason
            .resource()
            .unwrap()
            .ends_with(&format!(":table/{}", rig.table)),
        "{reason:?}"
    );
    assert_eq!(rig.proxy.requests("UpdateItem").received, 1);
    assert_eq!(rig.proxy.requests("UpdateItem").forwarded, 0);
    assert!(!rig.direct_item("KEY#hot").await.unwrap().contains_key("v"));
    let usage = rig.proxy.usage(&rig.table, None, "KEY#hot");
    assert_eq!(
        (usage.write_units, usage.throttles),
        (4.0, 1),
        "not charged"
    );
    // Another partition is not affected; the hot one recovers after a second.
    rig.set("KEY#cold", n(1)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    rig.set("KEY#hot", n(1)).await;
}

#[tokio::test]
async fn provisioned_throughput_errors_carry_reasons_too() {
    let rig = rig(Config {
        throttle_error: ThrottleError::ProvisionedThroughputExceeded,
        ..config(WINDOW, 0.0001)
    })
    .await;
    rig.set("KEY#p", n(1)).await;
    let refused = rig
        .client
        .get_item()
        .table_name(&rig.table)
        .set_key(Some(key("KEY#p")))
        .send()
        .await;
    // 3,000 RCU/s times 0.0001 is 0.3: the eventual read's half unit passes,
    // the next one is refused.
    assert!(refused.is_ok());
    let service = rig
        .client
        .get_item()
        .table_name(&rig.table)
        .set_key(Some(key("KEY#p")))
        .send()
        .await
        .expect_err("over the read budget")
        .into_service_error();
    let aws_sdk_dynamodb::operation::get_item::GetItemError::ProvisionedThroughputExceededException(
        e,
    ) = &service
    else {
        panic!("not ProvisionedThroughputExceeded: {service:?}");
    };
    assert_eq!(
        e.throttling_reasons()[0].reason(),
        Some("TableReadKeyRangeThroughputExceeded")
    );
}

#[tokio::test]
async fn writes_cost_units_of_the_larger_image_twice_in_transactions() {
    let rig = rig(config(WINDOW, 1.0)).await;
    rig.put("KEY#u", &[("d", payload())]).await;
    rig.proxy.reset();
    rig.set("KEY#u", n(1)).await;
    assert_eq!(rig.write_units("KEY#u"), 4.0, "one attribute, whole item");
    rig.proxy.reset();
    rig.client
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .update(rig.update("KEY#u", n(2)))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(rig.write_units("KEY#u"), 8.0);
    rig.proxy.reset();
    let failed = rig
        .set_v("KEY#u", n(3))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await
        .expect_err("the condition fails")
        .into_service_error();
    assert!(failed.is_conditional_check_failed_exception(), "{failed:?}");
    assert_eq!(
        rig.write_units("KEY#u"),
        4.0,
        "a failed condition is charged"
    );
    // Reads: a consistent GetItem of a missing item costs the minimum.
    rig.get("KEY#none", true).await;
    assert_eq!(
        rig.proxy.usage(&rig.table, None, "KEY#none").read_units,
        1.0
    );
}

#[tokio::test]
async fn transactions_are_cancelled_with_reasons_per_action() {
    let rig = rig(config(WINDOW, 1.0)).await;
    rig.set("KEY#t1", n(1)).await;
    let both = || {
        rig.client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(rig.update("KEY#t1", n(2)))
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&rig.table)
                            .set_key(Some(key("KEY#t2")))
                            .update_expression("SET v = :v")
                            .condition_expression("v = :v")
                            .expression_attribute_values(":v", n(9))
                            .return_values_on_condition_check_failure(
                                ReturnValuesOnConditionCheckFailure::AllOld,
                            )
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
    };
    let codes = |e: aws_sdk_dynamodb::error::SdkError<_, _>| {
        let service = e.into_service_error();
        let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) = service else {
            panic!("not cancelled: {service:?}");
        };
        c.cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    rig.proxy
        .inject_cancellation(["None", "TransactionConflict"]);
    let injected = both().await.expect_err("injected");
    assert_eq!(codes(injected), ["None", "TransactionConflict"]);
    assert_eq!(rig.proxy.requests("TransactWriteItems").forwarded, 0);
    // A real failed condition: the emulator's reasons come through.
    rig.set("KEY#t2", n(1)).await;
    let failed = both().await.expect_err("v is not 9");
    assert_eq!(codes(failed), ["None", "ConditionalCheckFailed"]);
    assert_eq!(rig.direct_item("KEY#t1").await.unwrap()["v"], n(1));
}

#[tokio::test]
async fn items_over_400_kb_are_refused_and_change_nothing() {
    let rig = rig(config(WINDOW, 1.0)).await;
    let big = |kb: usize| s(&"x".repeat(kb * 1024));
    rig.put("KEY#big", &[("a", big(300))]).await;
    let before = rig.direct_item("KEY#big").await.unwrap();
    let too_large = |e: &dyn std::fmt::Debug| {
        let text = format!("{e:?}");
        assert!(text.contains("ValidationException"), "{text}");
        assert!(text.contains("exceeded the maximum allowed size"), "{text}");
    };
    let put = rig
        .client
        .put_item()
        .table_name(&rig.table)
        .set_item(Some({
            let mut item = key("KEY#big");
            item.insert("a".into(), big(401));
            item
        }))
        .send()
        .await
        .expect_err("401 KB");
    too_large(&put.into_service_error());
    let update = rig
        .client
        .update_item()
        .table_name(&rig.table)
        .set_key(Some(key("KEY#big")))
        .update_expression("SET b = :b")
        .expression_attribute_values(":b", big(101))
        .send()
        .await
        .expect_err("300 + 101 KB");
    too_large(&update.into_service_error());
    assert_eq!(rig.direct_item("KEY#big").await.unwrap(), before);
    assert_eq!(rig.proxy.requests("PutItem").forwarded, 1);
}

#[tokio::test]
async fn capture_writes_one_line_per_request_shape() {
    let path = std::env::temp_dir().join(keygate_tests::unique_name("realism-capture"));
    let rig = rig(Config {
        capture: Some(path.clone()),
        ..config(WINDOW, 1.0)
    })
    .await;
    rig.get("KEY#c1", true).await;
    rig.get("KEY#c2", true).await;
    rig.set("KEY#c1", n(1)).await;
    rig.set("KEY#c2", s("text")).await;
    rig.get("KEY#c1", false).await;
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let operations: Vec<&str> = lines
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    // GetItem consistent, UpdateItem with a number, with a string, GetItem
    // eventual; no helper request (DescribeTable, image reads) among them.
    assert_eq!(
        operations,
        ["GetItem", "UpdateItem", "UpdateItem", "GetItem"]
    );
    assert_eq!(lines[0]["body"]["TableName"], rig.table.as_str());
    assert_eq!(lines[0]["body"]["Key"]["pk"]["S"], "KEY#c1");
}
