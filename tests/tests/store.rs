//! The DynamoDB store against the local emulator, over HTTP, through the SDK.

use std::sync::Arc;

use keygate::hash::KeyHash;
use keygate::id::KeyId;
use keygate::issue::{mint, KeySpec};
use keygate::key::{KeyEnv, KeyFormat};
use keygate::limits::{day_string, Limits, Period, Quota};
use keygate::model::KeyStatus;
use keygate::scope::Scope;
use keygate::store::admission::{explain, Explained};
use keygate::store::{
    items, Admission, AdmitOutcome, AdmitPlan, CounterHints, KeyAdmin, KeyLookup, StoreError,
    UsageMark,
};
use keygate::table::TableSpec;
use keygate_tests::{dynamo, fresh_store, unique_name};

const NOW: i64 = 1_795_000_000; // 2026-11-18T...

fn format() -> KeyFormat {
    KeyFormat::new("ak", KeyEnv::Test).unwrap()
}

fn spec(quota: Option<u64>) -> KeySpec {
    let mut spec = KeySpec::new("acme", "ci", vec![Scope::parse("GET /orders/*").unwrap()]);
    spec.limits = Limits {
        quota: quota.map(|limit| Quota {
            limit,
            period: Period::Day,
        }),
        rate: None,
    };
    spec
}

#[tokio::test]
async fn table_created_from_the_template_matches_it() {
    let client = dynamo().await;
    let name = unique_name("keygate-spec");
    let spec = TableSpec::from_embedded_template().unwrap();
    spec.create(&client, &name).await.unwrap();
    let table = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<(String, bool)> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str() == "HASH",
            )
        })
        .collect();
    let want: Vec<(String, bool)> = spec.keys.iter().map(|k| (k.name.clone(), k.hash)).collect();
    assert_eq!(keys, want);
    let mut indexes: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| i.index_name().unwrap_or_default().to_owned())
        .collect();
    indexes.sort();
    let mut want_indexes: Vec<String> = spec.indexes.iter().map(|i| i.name.clone()).collect();
    want_indexes.sort();
    assert_eq!(indexes, want_indexes);
    assert!(indexes.contains(&items::OWNER_INDEX.to_owned()));
}

#[tokio::test]
async fn create_read_and_revoke_a_key() {
    let store = fresh_store().await;
    let (key, record) = mint(&format(), spec(Some(10)), NOW);
    store
        .create_key(
            &record,
            &keygate_tests::audit(&record, keygate::store::AuditAction::Issued),
        )
        .await
        .unwrap();
    let by_hash = store.key_by_hash(&KeyHash::of(&key), true).await.unwrap();
    assert_eq!(by_hash.as_ref(), Some(&record));
    assert_eq!(
        store.key_by_id(&record.key_id).await.unwrap().as_ref(),
        Some(&record)
    );
    // Same record again: the conditional puts refuse it.
    assert!(matches!(
        store
            .create_key(
                &record,
                &keygate_tests::audit(&record, keygate::store::AuditAction::Issued)
            )
            .await,
        Err(StoreError::Conflict)
    ));
    // Nothing stored contains the plaintext.
    let scan = store
        .client()
        .scan()
        .table_name(store.table())
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let dump = format!("{:?}", scan.items());
    assert!(!dump.contains(key.expose()));
    assert!(dump.contains(record.hash.as_str()));

    let revoked = store
        .revoke(
            &record.key_id,
            NOW + 5,
            &keygate_tests::audit(&record, keygate::store::AuditAction::Revoked),
        )
        .await
        .unwrap();
    assert_eq!(revoked.status, KeyStatus::Revoked);
    assert_eq!(revoked.version, record.version + 1);
    let stored = store.key_by_id(&record.key_id).await.unwrap().unwrap();
    assert_eq!(stored, revoked);
    let missing = KeyId::generate();
    assert!(matches!(
        store
            .revoke(
                &missing,
                NOW,
                &keygate_tests::audit(&record, keygate::store::AuditAction::Revoked)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.key_by_id(&missing).await.unwrap(), None);
}

/// One admission, retried as the pipeline does when counters roll over,
/// and, like a client, after a pause when the partition is throttled
/// (`make test` scales DynamoDB's partition limits down, so a burst of 200
/// writes to one item meets them): a throttled write decided nothing.
async fn admit_once(store: &impl Admission, record: &keygate::model::KeyRecord, now: i64) -> bool {
    let mut hints = CounterHints::guess(&record.limits, now);
    let mut throttled = 0;
    let mut attempts = 0;
    while attempts < 8 {
        let plan = AdmitPlan::new(
            keygate::store::Target::Single,
            &record.allowance_id,
            &record.key_id,
            record.version,
            &record.limits,
            &hints,
            now,
            UsageMark {
                day: day_string(now),
                route: Some("GET /orders/{id}".into()),
                source_ip: None,
                keep_from: None,
            },
        );
        let outcome = match store.admit(&plan).await {
            Ok(outcome) => outcome,
            Err(keygate::store::StoreError::Dynamo(e)) if is_throttling(&e) && throttled < 100 => {
                throttled += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => panic!("admission failed: {e:?}"),
        };
        attempts += 1;
        match outcome {
            AdmitOutcome::Admitted(_) => return true,
            AdmitOutcome::Rejected(old) => match explain(&plan, old.as_ref(), now) {
                Explained::Retry(h) => hints = h,
                Explained::Deny(_) => return false,
                Explained::Stale => panic!("record did not change"),
                Explained::Reshard(n) => panic!("never sharded here, yet {n} shards"),
                Explained::Incomplete => panic!("never sharded here"),
            },
        }
    }
    panic!("no decision after 8 attempts")
}

fn is_throttling(e: &aws_sdk_dynamodb::Error) -> bool {
    matches!(
        e,
        aws_sdk_dynamodb::Error::ThrottlingException(_)
            | aws_sdk_dynamodb::Error::ProvisionedThroughputExceededException(_)
    )
}

#[tokio::test]
async fn two_hundred_concurrent_increments_against_a_limit_of_fifty_admit_exactly_fifty() {
    let store = Arc::new(fresh_store().await);
    let (_key, record) = mint(&format(), spec(Some(50)), NOW);
    store
        .create_key(
            &record,
            &keygate_tests::audit(&record, keygate::store::AuditAction::Issued),
        )
        .await
        .unwrap();
    let record = Arc::new(record);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (store, record) = (store.clone(), record.clone());
            tokio::spawn(async move { admit_once(store.as_ref(), &record, NOW).await })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    assert_eq!(admitted, 50);
    let item = keygate_tests::allowance_item(&store, &record).await;
    assert_eq!(item["qu"].as_n().unwrap(), "50");
    let ok = items::usage_attr(&day_string(NOW), record.key_id.as_str(), "ok");
    assert_eq!(item[&ok].as_n().unwrap(), "50");

    // The next UTC day starts a fresh period.
    let tomorrow = keygate::limits::Period::Day.window(NOW).end;
    assert!(admit_once(store.as_ref(), &record, tomorrow).await);
    // A container whose clock lags behind adopts the newer period rather
    // than resetting it backwards: it spends from the same, new counter.
    assert!(admit_once(store.as_ref(), &record, tomorrow - 1).await);
    let item = keygate_tests::allowance_item(&store, &record).await;
    assert_eq!(item["qu"].as_n().unwrap(), "2");
    assert_eq!(item["qs"].as_n().unwrap(), &tomorrow.to_string());
}
