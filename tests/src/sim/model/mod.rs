//! An in-memory DynamoDB table with the service's conditional-write
//! semantics, per-partition throughput limits and capacity-unit accounting:
//! the database of the simulation.
//!
//! Requests and answers are DynamoDB's JSON protocol bodies; the model is
//! called with an operation name (`X-Amz-Target: DynamoDB_20120810.<Op>`)
//! and answers a body or an error ([`DynError`]) shaped as the service's.
//! Operations: `GetItem`, `PutItem`, `UpdateItem`, `DeleteItem`,
//! `BatchGetItem`, `BatchWriteItem`, `Query` (table and indexes) and
//! `TransactWriteItems`. Eventually consistent `GetItem` and `BatchGetItem`
//! reads answer with the item as it stood [`STALE`] ago, the realism proxy's
//! worst case (its own [`History`]; DynamoDB documents that copies are
//! "usually" consistent "within a second": developer guide, "DynamoDB read
//! consistency",
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html>);
//! `Query` always reads the latest items.
//!
//! [`reads`] and [`writes`] hold the operations. Accounting and limits reuse the realism proxy's code
//! ([`crate::realism::units`], [`crate::realism::throughput`]): 1 WCU per
//! started KB of the larger image (twice in a transaction, the same for a
//! failed condition), 1 RCU per started 4 KB (half eventual), and 1,000 WCU /
//! 3,000 RCU per second per partition key value over a sliding second
//! (developer guide, "Read/write capacity mode" and "Best practices for
//! designing and using partition keys effectively":
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html>,
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html>).
//! A request whose partition already spent its second is refused with
//! `ThrottlingException` and changes nothing. An index entry written costs 1
//! WCU on the index's partition when the item's index keys change (every
//! index of the table projects keys only or a few attributes).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use keygate::table::TableSpec;
use serde_json::{json, Map, Value};

use super::expr::Item;
use crate::realism::history::History;
use crate::realism::throughput::{Kind, Partition, Throughput};

mod reads;
mod writes;

/// A DynamoDB error answer: its code (`ConditionalCheckFailedException`) and
/// the body's other members.
#[derive(Debug, Clone, PartialEq)]
pub struct DynError {
    pub code: &'static str,
    pub body: Map<String, Value>,
}

impl DynError {
    fn new(code: &'static str, message: &str) -> Self {
        let mut body = Map::new();
        body.insert("message".into(), message.into());
        Self { code, body }
    }

    fn validation(message: impl std::fmt::Display) -> Self {
        Self::new("ValidationException", &message.to_string())
    }

    /// The JSON body as DynamoDB sends it (`__type` names the shape).
    pub fn to_json(&self) -> Value {
        let mut body = self.body.clone();
        body.insert(
            "__type".into(),
            format!("com.amazonaws.dynamodb.v20120810#{}", self.code).into(),
        );
        Value::Object(body)
    }
}

const THROTTLED: &str = "Throughput exceeds the current capacity of your table or index. \
DynamoDB is automatically scaling your table or index so please try again shortly. \
If exceptions persist, check if you have a hot key: \
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html";

/// What one operation cost, summed over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct OpStats {
    pub requests: u64,
    /// Requests refused with `ThrottlingException` (or, in a transaction,
    /// cancelled with `ThrottlingError`).
    pub throttled: u64,
    /// Conditional writes whose condition failed (still charged).
    pub condition_failed: u64,
    pub write_units: f64,
    pub read_units: f64,
}

/// What the model saw, per operation, and the largest item it wrote.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    pub ops: BTreeMap<String, OpStats>,
    /// Bytes of the largest item any write left (DynamoDB's size rules).
    pub largest_item: usize,
}

impl Stats {
    pub fn total(&self) -> OpStats {
        self.ops.values().fold(OpStats::default(), |a, b| OpStats {
            requests: a.requests + b.requests,
            throttled: a.throttled + b.throttled,
            condition_failed: a.condition_failed + b.condition_failed,
            write_units: a.write_units + b.write_units,
            read_units: a.read_units + b.read_units,
        })
    }
}

/// How stale an eventually consistent read is (always this much).
pub const STALE: std::time::Duration = std::time::Duration::from_secs(1);

/// One table's items, in key order, with its limits and its record.
pub struct Model {
    table: String,
    spec: TableSpec,
    items: BTreeMap<(String, String), Item>,
    /// Past images, for eventually consistent reads.
    history: History,
    throughput: Throughput,
    stats: Stats,
}

type Answer = Result<Value, DynError>;

fn key_text(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_object)
        .and_then(|m| m.values().next())
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

fn names_of(body: &Value) -> HashMap<String, String> {
    body.get("ExpressionAttributeNames")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn values_of(body: &Value) -> HashMap<String, Value> {
    body.get("ExpressionAttributeValues")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn object(value: Option<&Value>) -> Item {
    value
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn text<'a>(body: &'a Value, field: &str) -> &'a str {
    body.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// A write worked out but not yet applied: the item's key, both images,
/// and the answer's attributes.
struct Planned {
    key: (String, String),
    before: Option<Item>,
    after: Option<Item>,
    returned: Option<Item>,
}

impl Model {
    /// An empty table `table` laid out as `spec`; `scale` multiplies
    /// DynamoDB's per-partition limits (1.0 is the service's own).
    pub fn new(table: &str, spec: TableSpec, scale: f64) -> Self {
        Self {
            table: table.to_owned(),
            spec,
            items: BTreeMap::new(),
            history: History::new(STALE),
            throughput: Throughput::new(scale),
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The record so far, leaving an empty one.
    pub fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }

    /// The item with key `(pk, sk)`, as stored.
    pub fn item(&self, pk: &str, sk: &str) -> Option<&Item> {
        self.items.get(&(pk.to_owned(), sk.to_owned()))
    }

    fn key_names(&self) -> (String, String) {
        let hash = self.spec.keys.iter().find(|k| k.hash);
        let range = self.spec.keys.iter().find(|k| !k.hash);
        (
            hash.map(|k| k.name.clone()).unwrap_or_default(),
            range.map(|k| k.name.clone()).unwrap_or_default(),
        )
    }

    fn key_of(&self, item: &Item) -> (String, String) {
        let (pk, sk) = self.key_names();
        (key_text(item.get(&pk)), key_text(item.get(&sk)))
    }

    fn key_item(&self, key: &(String, String)) -> Item {
        let (pk, sk) = self.key_names();
        let mut item = Item::new();
        item.insert(pk, json!({"S": key.0}));
        if !sk.is_empty() {
            item.insert(sk, json!({"S": key.1}));
        }
        item
    }

    fn check_table(&self, body: &Value) -> Result<(), DynError> {
        let name = text(body, "TableName");
        if name == self.table {
            Ok(())
        } else {
            Err(DynError::new(
                "ResourceNotFoundException",
                "Requested resource not found",
            ))
        }
    }

    /// Answer one request at `now` (the simulation's virtual instant).
    pub fn handle(&mut self, op: &str, body: &Value, now: Instant) -> Answer {
        self.stats.ops.entry(op.to_owned()).or_default().requests += 1;
        let answer = match op {
            "GetItem" => self.get_item(body, now),
            "PutItem" | "UpdateItem" | "DeleteItem" => self.write(op, body, now),
            "BatchGetItem" => self.batch_get(body, now),
            "BatchWriteItem" => self.batch_write(body, now),
            "Query" => self.query(body, now),
            "TransactWriteItems" => self.transact(body, now),
            _ => Err(DynError::new(
                "UnknownOperationException",
                "The simulation does not model this operation",
            )),
        };
        if let Err(e) = &answer {
            let stats = self.stats.ops.entry(op.to_owned()).or_default();
            match e.code {
                "ThrottlingException" => stats.throttled += 1,
                "ConditionalCheckFailedException" => stats.condition_failed += 1,
                "TransactionCanceledException" => {
                    let reasons = e.body.get("CancellationReasons").and_then(Value::as_array);
                    let any =
                        |code: &str| reasons.is_some_and(|r| r.iter().any(|x| x["Code"] == code));
                    if any("ThrottlingError") {
                        stats.throttled += 1;
                    } else if any("ConditionalCheckFailed") {
                        stats.condition_failed += 1;
                    }
                }
                _ => {}
            }
        }
        answer
    }

    fn charge(&mut self, op: &str, partition: &Partition, kind: Kind, units: f64, now: Instant) {
        self.throughput.charge(partition, kind, units, now);
        let stats = self.stats.ops.entry(op.to_owned()).or_default();
        match kind {
            Kind::Read => stats.read_units += units,
            Kind::Write => stats.write_units += units,
        }
    }

    fn throttled(&mut self, over: &[(Partition, Kind)]) -> DynError {
        let reasons: Vec<Value> = over
            .iter()
            .map(|(p, kind)| {
                json!({
                    "reason": crate::realism::answers::reason(p, *kind),
                    "resource": crate::realism::answers::resource("", p),
                })
            })
            .collect();
        for (p, _) in over {
            self.throughput.throttled(p);
        }
        let mut e = DynError::new("ThrottlingException", THROTTLED);
        e.body
            .insert("throttlingReasons".into(), Value::Array(reasons));
        e
    }

    fn history_key(&self, key: &(String, String)) -> (String, String) {
        (self.table.clone(), format!("{}\u{0}{}", key.0, key.1))
    }

    /// The item at `key` as a read sees it: the latest, or when eventually
    /// consistent, as it stood [`STALE`] ago.
    fn read(&self, key: &(String, String), consistent: bool, now: Instant) -> Option<Item> {
        if !consistent {
            if let Some(image) = self.history.as_of(&self.history_key(key), now) {
                return image.cloned();
            }
        }
        self.items.get(key).cloned()
    }

    fn table_partition(&self, key: &(String, String)) -> Partition {
        Partition::table(&self.table, &key.0)
    }

    /// Index partitions whose entry a write from `before` to `after` changes.
    fn index_writes(&self, before: Option<&Item>, after: Option<&Item>) -> Vec<Partition> {
        let mut out = Vec::new();
        for index in &self.spec.indexes {
            let keys = |item: Option<&Item>| -> Option<Vec<String>> {
                let item = item?;
                index
                    .keys
                    .iter()
                    .map(|k| item.get(&k.name).map(|v| key_text(Some(v))))
                    .collect()
            };
            let (old, new) = (keys(before), keys(after));
            if old == new {
                continue;
            }
            for entry in [old, new].into_iter().flatten() {
                let p = Partition::index(&self.table, &index.name, &entry[0]);
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(scale: f64) -> Model {
        Model::new("t", TableSpec::from_embedded_template().unwrap(), scale)
    }

    fn put(pk: &str, sk: &str) -> Value {
        json!({"Put": {"TableName": "t", "Item": {"pk": {"S": pk}, "sk": {"S": sk}},
            "ConditionExpression": "attribute_not_exists(#pk)",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}})
    }

    #[test]
    fn query_pages_a_sort_key_range_as_the_usage_store_reads_it() {
        let mut m = model(1.0);
        let now = Instant::now();
        let days = ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"];
        let puts: Vec<Value> = days.iter().map(|d| put("UOWN#acme", d)).collect();
        m.handle("TransactWriteItems", &json!({"TransactItems": puts}), now)
            .unwrap();
        let query = |start: Option<Value>| {
            let mut body = json!({
                "TableName": "t",
                "KeyConditionExpression": "#p = :p AND #s BETWEEN :from AND :to",
                "ExpressionAttributeNames": {"#p": "pk", "#s": "sk"},
                "ExpressionAttributeValues": {":p": {"S": "UOWN#acme"},
                    ":from": {"S": "2026-11-29"}, ":to": {"S": "2026-11-30~"}},
                "Limit": 1,
            });
            if let Some(k) = start {
                body["ExclusiveStartKey"] = k;
            }
            body
        };
        let first = m.handle("Query", &query(None), now).unwrap();
        assert_eq!(first["Items"][0]["sk"], json!({"S": "2026-11-29"}));
        let next = first["LastEvaluatedKey"].clone();
        let second = m.handle("Query", &query(Some(next)), now).unwrap();
        assert_eq!(second["Items"][0]["sk"], json!({"S": "2026-11-30"}));
        assert!(second.get("LastEvaluatedKey").is_none(), "{second}");
        // Four puts in a transaction: 2 units each.
        assert_eq!(m.stats().ops["TransactWriteItems"].write_units, 8.0);
    }

    #[test]
    fn eventually_consistent_reads_see_the_item_as_it_was_a_second_ago() {
        let mut m = model(1.0);
        let now = Instant::now();
        m.handle(
            "TransactWriteItems",
            &json!({"TransactItems": [put("K", "1")]}),
            now,
        )
        .unwrap();
        let get = |consistent: bool| {
            json!({"TableName": "t", "Key": {"pk": {"S": "K"}, "sk": {"S": "1"}},
                "ConsistentRead": consistent})
        };
        assert_eq!(m.handle("GetItem", &get(false), now).unwrap(), json!({}));
        assert!(m.handle("GetItem", &get(true), now).unwrap()["Item"].is_object());
        let later = now + STALE;
        assert!(m.handle("GetItem", &get(false), later).unwrap()["Item"].is_object());
        // Half a unit eventual, one consistent.
        assert_eq!(m.stats().ops["GetItem"].read_units, 2.0);
    }

    #[test]
    fn a_transaction_cancels_with_one_reason_per_action() {
        let mut m = model(1.0);
        let now = Instant::now();
        m.handle(
            "TransactWriteItems",
            &json!({"TransactItems": [put("A", "1")]}),
            now,
        )
        .unwrap();
        let e = m
            .handle(
                "TransactWriteItems",
                &json!({"TransactItems": [put("B", "1"), put("A", "1")]}),
                now,
            )
            .unwrap_err();
        assert_eq!(e.code, "TransactionCanceledException");
        let reasons = &e.body["CancellationReasons"];
        assert_eq!(reasons[0]["Code"], "None");
        assert_eq!(reasons[1]["Code"], "ConditionalCheckFailed");
        assert_eq!(reasons[1]["Item"]["pk"], json!({"S": "A"}));
        assert!(m.item("B", "1").is_none(), "nothing applied");
    }

    #[test]
    fn a_partition_over_its_second_throttles_and_changes_nothing() {
        // 1% of DynamoDB's limits: 10 write units per second.
        let mut m = model(0.01);
        let now = Instant::now();
        let add = json!({"TableName": "t", "Key": {"pk": {"S": "ALW#a"}, "sk": {"S": "ALW"}},
            "UpdateExpression": "ADD #n :one",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":one": {"N": "1"}}});
        for _ in 0..10 {
            m.handle("UpdateItem", &add, now).unwrap();
        }
        let e = m.handle("UpdateItem", &add, now).unwrap_err();
        assert_eq!(e.code, "ThrottlingException");
        assert_eq!(
            e.to_json()["__type"],
            "com.amazonaws.dynamodb.v20120810#ThrottlingException"
        );
        assert_eq!(
            e.body["throttlingReasons"][0]["reason"],
            "TableWriteKeyRangeThroughputExceeded"
        );
        assert_eq!(m.item("ALW#a", "ALW").unwrap()["n"], json!({"N": "10"}));
        let later = now + std::time::Duration::from_secs(1);
        m.handle("UpdateItem", &add, later).unwrap();
        let stats = m.stats().ops["UpdateItem"];
        assert_eq!(
            (stats.requests, stats.throttled, stats.write_units),
            (12, 1, 11.0)
        );
    }
}
