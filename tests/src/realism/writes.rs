//! Writes, one at a time: the item images before and after each write
//! (consistent reads upstream) feed the history of stale reads, the write
//! units charged, and the 400 KB check of updates.
//!
//! A `BatchWriteItem` whose items' partitions are partly exhausted forwards
//! the rest and answers the throttled ones in `UnprocessedItems`, as
//! DynamoDB does; wholly exhausted, it is refused. An index is written (and
//! charged) only when the write changes what the index holds for the item:
//! its index key, or a projected attribute (DynamoDB's "Provisioned
//! throughput considerations for global secondary indexes": a table write
//! that changes neither causes no index write). It is charged the units of
//! the table write to each index partition the item leaves or enters
//! (DynamoDB charges the projected size; close enough for budgets). Before
//! an update has run its result is unknown, so its throttle check counts
//! every index the item is in.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Map, Value};

use super::answers::{cancellation_reason, cancelled, validation, TOO_LARGE, TOO_LARGE_UPDATE};
use super::schema::{key_text, project, Schema};
use super::throughput::{Kind, Partition};
use super::units::{item_size, write_units, Item, MAX_ITEM_BYTES};
use super::{changed_answer, open, whole, Answer, Call, State};

/// One item a write request touches.
struct Action {
    table: String,
    schema: Arc<Schema>,
    key: Item,
    /// The item a put writes.
    put: Option<Item>,
    /// An update (its result is known only after it ran).
    update: bool,
    /// A transaction's `ConditionCheck`: read, charged, never written.
    check_only: bool,
    /// The request entry (for `BatchWriteItem`'s `UnprocessedItems`).
    entry: Value,
    before: Option<Item>,
    after: Option<Item>,
}

impl Action {
    /// The partitions the write touches: the table's, and each index's
    /// the item is in (before, after, or as put) if the write changes it.
    fn partitions(&self) -> Vec<Partition> {
        let key = self.schema.partition_of(&self.key).unwrap_or_default();
        let mut out = vec![Partition::table(&self.table, &key)];
        let images = [&self.before, &self.after, &self.put];
        for index in &self.schema.indexes {
            if !self.changes(index) {
                continue;
            }
            for image in images.iter().filter_map(|i| i.as_ref()) {
                if let Some(value) = image.get(&index.hash) {
                    let partition = Partition::index(&self.table, &index.name, &key_text(value));
                    if !out.contains(&partition) {
                        out.push(partition);
                    }
                }
            }
        }
        out
    }

    /// Whether the write changes the item as `index` holds it (an update
    /// not yet run counts as changing it).
    fn changes(&self, index: &super::schema::Index) -> bool {
        let names = self.schema.index_attributes(index);
        let view = |image: Option<&Item>| {
            image
                .filter(|i| i.contains_key(&index.hash))
                .map(|i| project(i, names.as_deref()))
        };
        let after = if self.put.is_some() {
            self.put.as_ref()
        } else if self.update && self.after.is_none() {
            return true;
        } else {
            self.after.as_ref()
        };
        view(self.before.as_ref()) != view(after)
    }

    fn units(&self, transactional: bool) -> f64 {
        let largest = [&self.before, &self.after, &self.put]
            .into_iter()
            .flatten()
            .max_by_key(|i| item_size(i));
        write_units(largest, None, transactional)
    }
}

async fn action(
    state: &State,
    call: &Call,
    table: &str,
    kind: &str,
    spec: &Value,
    entry: Value,
) -> Option<Action> {
    let schema = state.schema(call.auth(), table).await?;
    let put = matches!(kind, "Put" | "PutRequest")
        .then(|| spec["Item"].as_object().cloned())
        .flatten();
    let key = match &put {
        Some(item) => schema.key_of(item)?,
        None => spec["Key"].as_object().cloned()?,
    };
    Some(Action {
        table: table.to_owned(),
        schema,
        key,
        put,
        update: kind == "Update",
        check_only: kind == "ConditionCheck",
        entry,
        before: None,
        after: None,
    })
}

/// The items `call` writes, `None` when the proxy cannot tell (then it
/// passes the request through).
async fn actions(state: &State, call: &Call) -> Option<Vec<Action>> {
    let request = &call.request;
    let mut out = Vec::new();
    match call.operation.as_str() {
        "PutItem" | "UpdateItem" | "DeleteItem" => {
            let kind = call.operation.trim_end_matches("Item");
            out.push(action(state, call, call.table(), kind, request, Value::Null).await?);
        }
        "BatchWriteItem" => {
            for (table, entries) in request["RequestItems"].as_object()? {
                for entry in entries.as_array()? {
                    let (kind, spec) = entry.as_object()?.iter().next()?;
                    out.push(action(state, call, table, kind, spec, entry.clone()).await?);
                }
            }
        }
        _ => {
            for entry in request["TransactItems"].as_array()? {
                let (kind, spec) = entry.as_object()?.iter().next()?;
                let table = spec["TableName"].as_str()?;
                out.push(action(state, call, table, kind, spec, Value::Null).await?);
            }
        }
    }
    Some(out)
}

pub(super) async fn write(state: &State, call: Call) -> Answer {
    let _one_at_a_time = state.writes.lock().await;
    let Some(mut actions) = actions(state, &call).await else {
        return state.forward(call).await;
    };
    let transactional = call.operation == "TransactWriteItems";
    if transactional {
        let injected = state.cancellations.lock().unwrap().pop_front();
        if let Some(codes) = injected {
            let reasons = (0..actions.len())
                .map(|i| cancellation_reason(codes.get(i).map_or("None", String::as_str)))
                .collect();
            return Ok(cancelled(reasons));
        }
    }
    let oversized = |a: &Action| {
        a.put
            .as_ref()
            .is_some_and(|p| item_size(p) > MAX_ITEM_BYTES)
    };
    if actions.iter().any(oversized) {
        return Ok(validation(TOO_LARGE));
    }
    for action in &mut actions {
        action.before = state
            .upstream
            .get_item(call.auth(), &action.table, &action.key)
            .await?;
    }
    let over: Vec<Vec<(Partition, Kind)>> = actions
        .iter()
        .map(|a| {
            let wanted: Vec<_> = a
                .partitions()
                .into_iter()
                .map(|p| (p, Kind::Write))
                .collect();
            state.over_budget(&wanted)
        })
        .collect();
    let mut unprocessed: Map<String, Value> = Map::new();
    let mut call = call;
    if over.iter().any(|o| !o.is_empty()) {
        if transactional {
            let reasons = over
                .iter()
                .map(|o| {
                    cancellation_reason(if o.is_empty() {
                        "None"
                    } else {
                        "ThrottlingError"
                    })
                })
                .collect();
            return Ok(cancelled(reasons));
        }
        if call.operation != "BatchWriteItem" || over.iter().all(|o| !o.is_empty()) {
            let all: Vec<_> = over.into_iter().flatten().collect();
            return Ok(state.throttled(&all));
        }
        let mut remaining: Map<String, Value> = Map::new();
        let mut kept = Vec::new();
        for (action, over) in actions.into_iter().zip(&over) {
            let side = if over.is_empty() {
                &mut remaining
            } else {
                &mut unprocessed
            };
            let list = side
                .entry(action.table.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                list.push(action.entry.clone());
            }
            if over.is_empty() {
                kept.push(action);
            }
        }
        actions = kept;
        let mut request = call.request.clone();
        request["RequestItems"] = Value::Object(remaining);
        call.body = Bytes::from(request.to_string());
    }
    let auth = call.auth().cloned();
    let answer = state.forward(call).await?;
    let status = answer.status();
    let (parts, bytes) = open(answer);
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let error = body["__type"].as_str().unwrap_or_default();
    // A failed condition costs what the write would have.
    let charged = status == StatusCode::OK
        || error.ends_with("ConditionalCheckFailedException")
        || error.ends_with("TransactionCanceledException");
    for action in &mut actions {
        action.after = if action.check_only {
            action.before.clone()
        } else {
            state
                .upstream
                .get_item(auth.as_ref(), &action.table, &action.key)
                .await?
        };
    }
    let too_large = |a: &Action| {
        a.update
            && a.after
                .as_ref()
                .is_some_and(|i| item_size(i) > MAX_ITEM_BYTES)
    };
    if status == StatusCode::OK && actions.iter().any(too_large) {
        for action in actions.iter().filter(|a| !a.check_only) {
            let (table, key) = (&action.table, &action.key);
            state
                .upstream
                .restore(auth.as_ref(), table, key, action.before.as_ref())
                .await?;
        }
        return Ok(validation(TOO_LARGE_UPDATE));
    }
    if charged {
        for action in &actions {
            let units = action.units(transactional);
            for partition in action.partitions() {
                state.charge(&partition, Kind::Write, units);
            }
        }
    }
    record_history(state, actions);
    if unprocessed.is_empty() || status != StatusCode::OK {
        return Ok(whole(parts, bytes));
    }
    let mut body = body;
    let merged = body["UnprocessedItems"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (table, entries) in merged {
        let list = unprocessed
            .entry(table)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let (Value::Array(list), Value::Array(entries)) = (list, entries) {
            list.extend(entries);
        }
    }
    body["UnprocessedItems"] = Value::Object(unprocessed);
    Ok(changed_answer(parts, &body))
}

fn record_history(state: &State, actions: Vec<Action>) {
    let now = Instant::now();
    let mut history = state.history.lock().unwrap();
    for action in actions {
        if action.check_only || action.before == action.after {
            continue;
        }
        if let Some(id) = action.schema.key_id(&action.key) {
            history.record((action.table, id), action.before, action.after, now);
        }
    }
}
