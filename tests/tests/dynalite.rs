//! Against dynalite, the second emulator (`infra/local/with-dynalite`,
//! `KEYGATE_DYNALITE_URL`): behaviour moto does not have. dynalite, like
//! DynamoDB, answers `CreateTable` while the table is still `CREATING`.

use aws_sdk_dynamodb::types::{AttributeValue, TableStatus};
use keygate::table::TableSpec;
use keygate_tests::{sdk_config, unique_name};

/// A client for dynalite.
///
/// # Panics
/// Unless `KEYGATE_DYNALITE_URL` names a loopback endpoint (`make test`
/// starts dynalite and sets it).
async fn dynalite() -> aws_sdk_dynamodb::Client {
    let url = std::env::var("KEYGATE_DYNALITE_URL").unwrap_or_default();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "KEYGATE_DYNALITE_URL must point at the local dynalite (run `make test`), got {url:?}"
    );
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
        .endpoint_url(url)
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

/// `keyctl create-table && keyctl bootstrap` failed on DynamoDB (and here)
/// with `ResourceNotFoundException`: creation returned while the table was
/// `CREATING`. It now returns once the table and its indexes are `ACTIVE`.
#[tokio::test]
async fn a_created_table_is_active_and_writable_when_create_returns() {
    let client = dynalite().await;
    let name = unique_name("keygate-create");
    TableSpec::from_embedded_template()
        .unwrap()
        .create(&client, &name)
        .await
        .expect("created");
    let table = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(table.table_status, Some(TableStatus::Active));
    client
        .put_item()
        .table_name(&name)
        .item("pk", AttributeValue::S("KEY#x".into()))
        .item("sk", AttributeValue::S("KEY".into()))
        .send()
        .await
        .expect("the table takes writes at once");
}

/// The wait is bounded: a table still `CREATING` when the bound passes is
/// an error naming its status, and a missing table fails at once.
#[tokio::test]
async fn waiting_for_a_table_is_bounded() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let client = dynalite().await;
    let name = unique_name("keygate-slow");
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let early = keygate::table::wait_active(&client, &name, std::time::Duration::ZERO).await;
    match early {
        Err(keygate::table::TableError::NotActive { status, .. }) => {
            assert_eq!(status, "CREATING")
        }
        other => panic!("expected NotActive, got {other:?}"),
    }
    keygate::table::wait_active(&client, &name, std::time::Duration::from_secs(30))
        .await
        .expect("active in time");
    let missing = keygate::table::wait_active(
        &client,
        &unique_name("keygate-missing"),
        std::time::Duration::from_secs(5),
    )
    .await;
    assert!(matches!(
        missing,
        Err(keygate::table::TableError::Describe(_))
    ));
}
