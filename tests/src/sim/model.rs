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
//! Accounting and limits reuse the realism proxy's code
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

use super::expr::{self, Action, Item};
use crate::realism::history::History;
use crate::realism::throughput::{Kind, Partition, Throughput};
use crate::realism::units::{item_size, read_units, write_units, MAX_ITEM_BYTES};

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

    fn get_item(&mut self, body: &Value, now: Instant) -> Answer {
        self.check_table(body)?;
        let key = self.key_of(&object(body.get("Key")));
        let partition = self.table_partition(&key);
        if self.throughput.exhausted(&partition, Kind::Read, now) {
            return Err(self.throttled(&[(partition, Kind::Read)]));
        }
        let consistent = body.get("ConsistentRead") == Some(&Value::Bool(true));
        let found = self.read(&key, consistent, now);
        let units = read_units(found.as_ref().map(item_size).unwrap_or(0), consistent);
        self.charge("GetItem", &partition, Kind::Read, units, now);
        Ok(match found {
            Some(item) => json!({ "Item": item }),
            None => json!({}),
        })
    }

    /// Work out one `PutItem` / `UpdateItem` / `DeleteItem` (also a
    /// transaction's action) without applying it. `Err` is the condition's
    /// failure or a validation error.
    fn plan(&self, op: &str, body: &Value) -> Result<Planned, DynError> {
        self.check_table(body)?;
        let names = names_of(body);
        let values = values_of(body);
        let key = match op {
            "PutItem" | "Put" => self.key_of(&object(body.get("Item"))),
            _ => self.key_of(&object(body.get("Key"))),
        };
        let before = self.items.get(&key).cloned();
        let condition = text(body, "ConditionExpression");
        if !condition.is_empty() {
            let cond =
                expr::parse_condition(condition, &names, &values).map_err(DynError::validation)?;
            let empty = Item::new();
            if !expr::holds(before.as_ref().unwrap_or(&empty), &cond)
                .map_err(DynError::validation)?
            {
                let mut e = DynError::new(
                    "ConditionalCheckFailedException",
                    "The conditional request failed",
                );
                if text(body, "ReturnValuesOnConditionCheckFailure") == "ALL_OLD" {
                    if let Some(old) = &before {
                        e.body.insert("Item".into(), Value::Object(old.clone()));
                    }
                }
                return Err(e);
            }
        }
        let (after, touched): (Option<Item>, Vec<String>) = match op {
            "PutItem" | "Put" => {
                let item = object(body.get("Item"));
                let touched = item.keys().cloned().collect();
                (Some(item), touched)
            }
            "DeleteItem" | "Delete" => (None, Vec::new()),
            "ConditionCheck" => (before.clone(), Vec::new()),
            _ => {
                let actions = expr::parse_update(text(body, "UpdateExpression"), &names, &values)
                    .map_err(DynError::validation)?;
                let mut item = before.clone().unwrap_or_else(|| self.key_item(&key));
                expr::apply(&mut item, &actions).map_err(DynError::validation)?;
                let touched = actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::Set(p, _)
                        | Action::Add(p, _)
                        | Action::Remove(p)
                        | Action::Delete(p, _) => expr::top(p).map(str::to_owned),
                    })
                    .collect();
                (Some(item), touched)
            }
        };
        if let Some(item) = &after {
            if item_size(item) > MAX_ITEM_BYTES {
                return Err(DynError::validation(if op.starts_with("Update") {
                    "Item size to update has exceeded the maximum allowed size"
                } else {
                    "Item size has exceeded the maximum allowed size"
                }));
            }
        }
        let pick = |image: &Option<Item>| -> Option<Item> {
            image.as_ref().map(|item| {
                item.iter()
                    .filter(|(k, _)| touched.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
        };
        let returned = match text(body, "ReturnValues") {
            "ALL_OLD" => before.clone(),
            "ALL_NEW" => after.clone(),
            "UPDATED_OLD" => pick(&before),
            "UPDATED_NEW" => pick(&after),
            _ => None,
        };
        Ok(Planned {
            key,
            before,
            after,
            returned,
        })
    }

    fn store(&mut self, planned: &Planned, now: Instant) {
        let key = self.history_key(&planned.key);
        self.history
            .record(key, planned.before.clone(), planned.after.clone(), now);
        match &planned.after {
            Some(item) => {
                self.stats.largest_item = self.stats.largest_item.max(item_size(item));
                self.items.insert(planned.key.clone(), item.clone());
            }
            None => {
                self.items.remove(&planned.key);
            }
        }
    }

    /// Partitions a write of `key` touches: the table's, then `indexes`.
    fn write_partitions(&self, key: &(String, String), indexes: &[Partition]) -> Vec<Partition> {
        let mut all = vec![self.table_partition(key)];
        all.extend(indexes.iter().cloned());
        all
    }

    fn over(
        &mut self,
        partitions: &[Partition],
        kind: Kind,
        now: Instant,
    ) -> Vec<(Partition, Kind)> {
        partitions
            .iter()
            .filter(|p| self.throughput.exhausted(p, kind, now))
            .map(|p| (p.clone(), kind))
            .collect()
    }

    fn write(&mut self, op: &str, body: &Value, now: Instant) -> Answer {
        self.check_table(body)?;
        let key = match op {
            "PutItem" => self.key_of(&object(body.get("Item"))),
            _ => self.key_of(&object(body.get("Key"))),
        };
        let table_partition = self.table_partition(&key);
        let over = self.over(std::slice::from_ref(&table_partition), Kind::Write, now);
        if !over.is_empty() {
            return Err(self.throttled(&over));
        }
        match self.plan(op, body) {
            Ok(planned) => {
                let indexes = self.index_writes(planned.before.as_ref(), planned.after.as_ref());
                let over = self.over(&indexes, Kind::Write, now);
                if !over.is_empty() {
                    return Err(self.throttled(&over));
                }
                let units = write_units(planned.before.as_ref(), planned.after.as_ref(), false);
                self.charge(op, &table_partition, Kind::Write, units, now);
                for p in &indexes {
                    self.charge(op, p, Kind::Write, 1.0, now);
                }
                self.store(&planned, now);
                Ok(match planned.returned {
                    Some(attrs) => json!({ "Attributes": attrs }),
                    None => json!({}),
                })
            }
            Err(e) => {
                if e.code == "ConditionalCheckFailedException" {
                    // A failed condition is charged as the write would have been.
                    let before = self.items.get(&key).cloned();
                    let units = write_units(before.as_ref(), None, false);
                    self.charge(op, &table_partition, Kind::Write, units, now);
                }
                Err(e)
            }
        }
    }

    fn batch_get(&mut self, body: &Value, now: Instant) -> Answer {
        let mut responses = Map::new();
        let mut unprocessed = Map::new();
        let (mut asked, mut refused) = (0, 0);
        let requests = object(body.get("RequestItems"));
        for (table, request) in &requests {
            self.check_table(&json!({ "TableName": table }))?;
            let consistent = request.get("ConsistentRead") == Some(&Value::Bool(true));
            let mut found = Vec::new();
            let mut left = Vec::new();
            for key in request["Keys"].as_array().into_iter().flatten() {
                asked += 1;
                let key_value = key.clone();
                let key = self.key_of(&object(Some(key)));
                let partition = self.table_partition(&key);
                if self.throughput.exhausted(&partition, Kind::Read, now) {
                    self.throughput.throttled(&partition);
                    refused += 1;
                    left.push(key_value);
                    continue;
                }
                let item = self.read(&key, consistent, now);
                let units = read_units(item.as_ref().map(item_size).unwrap_or(0), consistent);
                self.charge("BatchGetItem", &partition, Kind::Read, units, now);
                found.extend(item.map(Value::Object));
            }
            responses.insert(table.clone(), Value::Array(found));
            if !left.is_empty() {
                let mut rest = request.as_object().cloned().unwrap_or_default();
                rest.insert("Keys".into(), Value::Array(left));
                unprocessed.insert(table.clone(), Value::Object(rest));
            }
        }
        if asked > 0 && refused == asked {
            let e = DynError::new("ThrottlingException", THROTTLED);
            return Err(e);
        }
        Ok(json!({ "Responses": responses, "UnprocessedKeys": unprocessed }))
    }

    fn batch_write(&mut self, body: &Value, now: Instant) -> Answer {
        let requests = object(body.get("RequestItems"));
        for (table, writes) in &requests {
            for w in writes.as_array().into_iter().flatten() {
                let (op, mut inner) = if let Some(put) = w.get("PutRequest") {
                    ("PutItem", put.clone())
                } else {
                    (
                        "DeleteItem",
                        w.get("DeleteRequest").cloned().unwrap_or_default(),
                    )
                };
                if let Some(m) = inner.as_object_mut() {
                    m.insert("TableName".into(), table.clone().into());
                }
                self.write(op, &inner, now)?;
            }
        }
        Ok(json!({ "UnprocessedItems": {} }))
    }

    fn query(&mut self, body: &Value, now: Instant) -> Answer {
        self.check_table(body)?;
        let names = names_of(body);
        let values = values_of(body);
        let index = text(body, "IndexName");
        let keys = if index.is_empty() {
            self.spec.keys.clone()
        } else {
            match self.spec.indexes.iter().find(|i| i.name == index) {
                Some(i) => i.keys.clone(),
                None => {
                    return Err(DynError::validation(
                        "The table does not have the specified index",
                    ))
                }
            }
        };
        let hash = keys
            .iter()
            .find(|k| k.hash)
            .map(|k| k.name.clone())
            .unwrap_or_default();
        let range = keys.iter().find(|k| !k.hash).map(|k| k.name.clone());
        let cond = expr::parse_condition(text(body, "KeyConditionExpression"), &names, &values)
            .map_err(DynError::validation)?;
        let filter = match text(body, "FilterExpression") {
            "" => None,
            f => Some(expr::parse_condition(f, &names, &values).map_err(DynError::validation)?),
        };
        let mut matched: Vec<&Item> = Vec::new();
        for item in self.items.values() {
            if !item.contains_key(&hash) || range.as_ref().is_some_and(|r| !item.contains_key(r)) {
                continue;
            }
            if expr::holds(item, &cond).map_err(DynError::validation)? {
                matched.push(item);
            }
        }
        let sort = |item: &Item| {
            range
                .as_ref()
                .map(|r| key_text(item.get(r)))
                .unwrap_or_default()
        };
        matched.sort_by_key(|a| sort(a));
        if body.get("ScanIndexForward") == Some(&Value::Bool(false)) {
            matched.reverse();
        }
        if let Some(start) = body.get("ExclusiveStartKey").and_then(Value::as_object) {
            let table_key = self.key_of(start);
            if let Some(at) = matched.iter().position(|i| self.key_of(i) == table_key) {
                matched.drain(..=at);
            }
        }
        let limit = body
            .get("Limit")
            .and_then(Value::as_u64)
            .map(|l| l as usize);
        let mut last = None;
        if let Some(limit) = limit {
            if matched.len() > limit {
                matched.truncate(limit);
                let tail = matched[limit - 1];
                let mut k = self.key_item(&self.key_of(tail));
                for part in &keys {
                    if let Some(v) = tail.get(&part.name) {
                        k.insert(part.name.clone(), v.clone());
                    }
                }
                last = Some(k);
            }
        }
        let partition_key = matched
            .first()
            .map(|i| key_text(i.get(&hash)))
            .unwrap_or_default();
        let partition = if index.is_empty() {
            Partition::table(&self.table, &partition_key)
        } else {
            Partition::index(&self.table, index, &partition_key)
        };
        if self.throughput.exhausted(&partition, Kind::Read, now) {
            return Err(self.throttled(&[(partition, Kind::Read)]));
        }
        let consistent = index.is_empty() && body.get("ConsistentRead") == Some(&Value::Bool(true));
        let bytes: usize = matched.iter().map(|i| item_size(i)).sum();
        let mut items: Vec<Value> = Vec::new();
        for item in matched {
            let keep = match &filter {
                Some(f) => expr::holds(item, f).map_err(DynError::validation)?,
                None => true,
            };
            if keep {
                items.push(Value::Object(item.clone()));
            }
        }
        self.charge(
            "Query",
            &partition,
            Kind::Read,
            read_units(bytes, consistent),
            now,
        );
        let mut out = json!({ "Count": items.len(), "ScannedCount": items.len(), "Items": items });
        if let Some(k) = last {
            out["LastEvaluatedKey"] = Value::Object(k);
        }
        Ok(out)
    }

    fn transact(&mut self, body: &Value, now: Instant) -> Answer {
        let actions: Vec<(&'static str, Value)> = body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                ["Put", "Update", "Delete", "ConditionCheck"]
                    .into_iter()
                    .find_map(|op| a.get(op).map(|inner| (op, inner.clone())))
            })
            .collect();
        if actions.len() > 100 {
            return Err(DynError::validation(
                "Member must have length less than or equal to 100",
            ));
        }
        let mut reasons = Vec::new();
        let mut planned = Vec::new();
        let mut failed = false;
        for (op, inner) in &actions {
            let key = match *op {
                "Put" => self.key_of(&object(inner.get("Item"))),
                _ => self.key_of(&object(inner.get("Key"))),
            };
            let table_partition = self.table_partition(&key);
            if self
                .throughput
                .exhausted(&table_partition, Kind::Write, now)
            {
                self.throughput.throttled(&table_partition);
                failed = true;
                reasons.push(json!({"Code": "ThrottlingError", "Message": THROTTLED}));
                continue;
            }
            match self.plan(op, inner) {
                Ok(p) => {
                    reasons.push(json!({"Code": "None"}));
                    planned.push(p);
                }
                Err(e) if e.code == "ConditionalCheckFailedException" => {
                    failed = true;
                    let mut reason = json!({"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"});
                    if let Some(item) = e.body.get("Item") {
                        reason["Item"] = item.clone();
                    }
                    reasons.push(reason);
                }
                Err(e) => return Err(e),
            }
        }
        if failed {
            let codes: Vec<&str> = reasons
                .iter()
                .map(|r| r["Code"].as_str().unwrap_or("None"))
                .collect();
            let mut e = DynError::new("TransactionCanceledException", "");
            e.body.remove("message");
            e.body.insert(
                "Message".into(),
                format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")).into(),
            );
            e.body
                .insert("CancellationReasons".into(), Value::Array(reasons));
            return Err(e);
        }
        for p in &planned {
            let indexes = self.index_writes(p.before.as_ref(), p.after.as_ref());
            let units = write_units(p.before.as_ref(), p.after.as_ref(), true);
            for (i, partition) in self.write_partitions(&p.key, &indexes).iter().enumerate() {
                let u = if i == 0 { units } else { 2.0 };
                self.charge("TransactWriteItems", partition, Kind::Write, u, now);
            }
            self.store(p, now);
        }
        Ok(json!({}))
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
