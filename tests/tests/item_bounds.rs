//! DynamoDB refuses any item over 400 KB ("Item size" in its service quotas),
//! and bills a write by the item's size. Each item type the product writes is
//! built here at its largest possible size, written through the realism
//! proxy (which refuses an item over 400 KB as DynamoDB does), read back raw
//! and measured by DynamoDB's size rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use keygate::issue::{mint, KeySpec};
use keygate::key::{KeyEnv, KeyFormat};
use keygate::limits::{Period, Quota, Rate};
use keygate::manage::request::{MAX_CIDRS, MAX_METADATA, MAX_NAME, MAX_SCOPES};
use keygate::scope::{Scope, MAX_SCOPE_LEN};
use keygate::store::{items, AuditAction, AuditEvent, DynamoStore, KeyAdmin, UsageStore};
use keygate::usage::report::{bounded, Flag, OwnerReport, MAX_FLAG_BYTES};
use keygate::usage::{DayUsage, KeyDay};
use keygate_tests::item_size::item_size;
use keygate_tests::realism::{Config, RealismProxy};
use keygate_tests::{logs, realism_store};

/// DynamoDB's item size limit (400 KB, 409,600 bytes).
const LIMIT: usize = 400 * 1024;
const NOON: i64 = 1_795_953_600;
/// The longest textual IPv6 address (RFC 4291 with an IPv4 tail).
const LONGEST_IP: &str = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
/// Route labels are the API's route templates, at most this long
/// ([`items::MAX_ROUTE_LABEL`]); an API has at most 300 routes (API
/// Gateway's default quota, "Routes per API" for HTTP APIs and "Resources
/// per API" for REST APIs).
const ROUTES_PER_API: usize = 300;

type Item = HashMap<String, AttributeValue>;

async fn proxied() -> (RealismProxy, DynamoStore) {
    logs::init();
    realism_store(Config::default()).await
}

async fn raw(store: &DynamoStore, pk: String, sk: &str) -> Item {
    store
        .client()
        .get_item()
        .table_name(store.table())
        .key(items::PK, AttributeValue::S(pk))
        .key(items::SK, AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the item exists")
}

fn text(len: usize, c: char) -> String {
    std::iter::repeat_n(c, len).collect()
}

/// A key record, its id pointer and its audit events at their largest: the
/// most scopes of the longest kind, CIDRs, metadata, name, owner.
#[tokio::test]
async fn key_records_and_audit_events_at_their_largest_fit() {
    let (_proxy, store) = proxied().await;
    let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
    let scopes: Vec<Scope> = (0..MAX_SCOPES)
        .map(|i| {
            let path = format!("/{i:02}/{}", text(MAX_SCOPE_LEN - 9, 'p'));
            Scope::parse(&format!("DELETE {path}")[..MAX_SCOPE_LEN]).unwrap()
        })
        .collect();
    let mut spec = KeySpec::new(text(64, 'o'), text(MAX_NAME, 'n'), scopes);
    spec.allowed_cidrs = (0..MAX_CIDRS)
        .map(|i| {
            format!("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff{i:02x}/128")
                .parse()
                .unwrap()
        })
        .collect();
    spec.metadata = (0..MAX_METADATA)
        .map(|i| (format!("{i:02}{}", text(62, 'k')), text(256, 'v')))
        .collect();
    spec.limits.quota = Some(Quota {
        limit: 1_000_000_000,
        period: Period::Month,
    });
    spec.limits.rate = Some(Rate {
        limit: 1_000_000,
        window: 3600,
    });
    spec.expires_at = Some(NOON + 3650 * 86_400);
    let (key, record) = mint(&format, spec, NOON);
    logs::remember(&key);
    store
        .create_key(&record, &keygate_tests::audit(&record, AuditAction::Issued))
        .await
        .unwrap();
    let stored = raw(&store, items::key_pk(record.hash.as_str()), items::KEY_SK).await;
    let size = item_size(&stored);
    assert!(size > 12_000, "the record is at its largest: {size} bytes");
    assert!(size < LIMIT / 10, "key record {size} bytes");

    // An update event names everything that changed, at most a whole
    // request body (16 KiB) of it.
    let mut changed = record.clone();
    changed.version += 1;
    let change = serde_json::json!({
        "scopes": record.scopes,
        "allowed_cidrs": record.allowed_cidrs,
        "metadata": record.metadata,
        "name": record.name,
    });
    assert!(change.to_string().len() > keygate::manage::request::MAX_BODY / 2);
    let event = AuditEvent::new(
        &record.key_id,
        changed.version,
        AuditAction::Updated,
        text(64, 'a'),
        NOON,
        change,
    );
    store.update_key(&record, &changed, &event).await.unwrap();
    let trail = store
        .client()
        .query()
        .table_name(store.table())
        .key_condition_expression("#p = :p")
        .expression_attribute_names("#p", items::PK)
        .expression_attribute_values(
            ":p",
            AttributeValue::S(items::audit_pk(record.key_id.as_str())),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let largest = trail.items().iter().map(item_size).max().unwrap();
    assert!(
        largest > keygate::manage::request::MAX_BODY / 2,
        "{largest}"
    );
    assert!(largest < LIMIT / 10, "audit event {largest} bytes");
}

fn busiest_day() -> DayUsage {
    DayUsage {
        allowed: u64::MAX / 2,
        denied: keygate::decision::DenyReason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), u64::MAX / 2))
            .collect(),
        routes: (0..ROUTES_PER_API)
            .map(|i| {
                let label = format!("DELETE /{i:03}/{}", text(items::MAX_ROUTE_LABEL, 'r'));
                (label[..items::MAX_ROUTE_LABEL].to_owned(), u64::MAX / 2)
            })
            .collect(),
        ips: (0..items::IP_SLOTS)
            .map(|i| format!("{}{i:02}", &LONGEST_IP[..LONGEST_IP.len() - 2]))
            .collect::<BTreeSet<_>>(),
    }
}

/// One key's archived day at its busiest: every route of the API, every
/// deny reason, every address slot with the longest address.
#[tokio::test]
async fn an_archived_usage_day_at_its_busiest_fits() {
    let (_proxy, store) = proxied().await;
    let key_id = keygate::id::KeyId::generate();
    let day = KeyDay {
        key_id: key_id.as_str().to_owned(),
        day: "2026-11-29".into(),
        usage: busiest_day(),
    };
    store.archive(&text(64, 'o'), &[day], NOON).await.unwrap();
    let stored = raw(
        &store,
        items::usage_owner_pk(&text(64, 'o')),
        &format!("2026-11-29#{key_id}"),
    )
    .await;
    let size = item_size(&stored);
    assert!(size > 40_000, "{size}");
    assert!(size < LIMIT / 4, "usage day {size} bytes");
}

/// The allowance item in the steady state at its busiest: a rotated pair
/// (two keys) with today and yesterday (the daily job archives older days)
/// at their busiest. Written through the proxy, which would refuse it over
/// 400 KB.
#[tokio::test]
async fn an_allowance_at_its_busiest_fits() {
    let (_proxy, store) = proxied().await;
    let mut item: Item = HashMap::from([
        (
            items::PK.to_owned(),
            AttributeValue::S(items::allowance_pk("a")),
        ),
        (
            items::SK.to_owned(),
            AttributeValue::S(items::ALLOWANCE_SK.into()),
        ),
    ]);
    let n = |v: u64| AttributeValue::N(v.to_string());
    for _ in 0..2 {
        let key_id = keygate::id::KeyId::generate();
        for day in ["2026-11-28", "2026-11-29"]
            .iter()
            .take(items::LIVE_USAGE_DAYS as usize)
        {
            let usage = busiest_day();
            item.insert(
                items::usage_attr(day, key_id.as_str(), "ok"),
                n(usage.allowed),
            );
            for (reason, count) in &usage.denied {
                item.insert(
                    items::usage_attr(day, key_id.as_str(), &format!("d#{reason}")),
                    n(*count),
                );
            }
            for (route, count) in &usage.routes {
                item.insert(
                    items::usage_attr(day, key_id.as_str(), &format!("r#{route}")),
                    n(*count),
                );
            }
            for (slot, ip) in usage.ips.iter().enumerate() {
                item.insert(
                    items::usage_attr(day, key_id.as_str(), &format!("ip{slot}")),
                    AttributeValue::S(ip.clone()),
                );
            }
        }
    }
    let size = item_size(&item);
    store
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .expect("accepted: under 400 KB");
    assert!(size > 150_000, "{size}");
    assert!(size < LIMIT, "allowance {size} bytes");
}

/// A daily report keeps flags up to [`MAX_FLAG_BYTES`]: with an owner whose
/// every key raises the largest flag, the stored report is under 400 KB;
/// unbounded, the same report is refused (so the bound is what keeps it in).
#[tokio::test]
async fn a_report_at_its_bound_fits_and_unbounded_it_would_not() {
    let (_proxy, store) = proxied().await;
    let flags: Vec<Flag> = (0..2_000)
        .map(|_| Flag::NewSourceIp {
            key_id: keygate::id::KeyId::generate().as_str().to_owned(),
            ips: (0..items::IP_SLOTS)
                .map(|_| LONGEST_IP.to_owned())
                .collect(),
        })
        .collect();
    let report = |flags: Vec<Flag>| OwnerReport {
        owner: text(64, 'o'),
        day: "2026-11-29".into(),
        keys: 2_000,
        active_keys: 2_000,
        allowed: u64::MAX / 2,
        denied: u64::MAX / 2,
        denied_by_reason: keygate::decision::DenyReason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), u64::MAX / 2))
            .collect::<BTreeMap<_, _>>(),
        flag_counts: BTreeMap::from([("new_source_ip".to_owned(), 2_000)]),
        flags,
        generated_at: NOON,
    };
    let kept = bounded(flags.clone());
    assert!(kept.len() < flags.len());
    store
        .put_report(&report(kept))
        .await
        .expect("bounded report stored");
    let stored = raw(&store, items::report_pk(&text(64, 'o')), "2026-11-29").await;
    let size = item_size(&stored);
    assert!(size > MAX_FLAG_BYTES / 2, "{size}");
    assert!(size < LIMIT, "report {size} bytes");

    let unbounded = store.put_report(&report(flags[..500].to_vec())).await;
    assert!(unbounded.is_err(), "500 such flags exceed 400 KB");
}
