//! Reads: budgets checked before forwarding, units charged after, and the
//! answers of eventually consistent reads replaced by the images of a window
//! ago.
//!
//! Not modelled: an item deleted (or moved out of an index partition) within
//! the window still appears in a stale `GetItem`/`BatchGetItem` but not in a
//! stale `Query`/`Scan` page, and filter expressions are not re-evaluated on
//! stale images. A `BatchGetItem` touching one exhausted partition is
//! refused whole rather than answered with `UnprocessedKeys`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::Value;

use super::schema::{key_text, project, projected_names, query_partition, Index, Schema};
use super::throughput::{Kind, Partition};
use super::units::{item_size, read_units, Item};
use super::{changed_answer, open, whole, Answer, Call, State};
use crate::faults::Dropped;

/// A read's answer from the emulator.
enum Forwarded {
    /// A success, with its JSON.
    Json(hyper::http::response::Parts, Bytes, Value),
    /// Anything else, to pass on as it is.
    Pass(Response<Full<Bytes>>),
}

async fn forward_json(state: &State, call: Call) -> Result<Forwarded, Dropped> {
    let answer = state.forward(call).await?;
    if answer.status() != StatusCode::OK {
        return Ok(Forwarded::Pass(answer));
    }
    let (parts, bytes) = open(answer);
    Ok(match serde_json::from_slice::<Value>(&bytes) {
        Ok(body) => Forwarded::Json(parts, bytes, body),
        Err(_) => Forwarded::Pass(whole(parts, bytes)),
    })
}

fn consistent(request: &Value) -> bool {
    request["ConsistentRead"] == Value::Bool(true)
}

/// The stale image of the item with primary key `key` (see `State::stale`).
fn stale_of(state: &State, table: &str, schema: &Schema, key: &Item) -> Option<Option<Item>> {
    let id = schema.key_id(key)?;
    state.stale(&(table.to_owned(), id))
}

pub(super) async fn get_item(state: &State, call: Call) -> Answer {
    let table = call.table().to_owned();
    let Some(key) = call.request["Key"].as_object().cloned() else {
        return state.forward(call).await;
    };
    let Some(schema) = state.schema(call.auth(), &table).await else {
        return state.forward(call).await;
    };
    let consistent = consistent(&call.request);
    let partition = Partition::table(&table, &schema.partition_of(&key).unwrap_or_default());
    if let Some(refused) = state.refuse(&[(partition.clone(), Kind::Read)]) {
        return Ok(refused);
    }
    let names = projected_names(&call.request);
    let (parts, bytes, mut body) = match forward_json(state, call).await? {
        Forwarded::Json(parts, bytes, body) => (parts, bytes, body),
        Forwarded::Pass(answer) => return Ok(answer),
    };
    let size = body["Item"].as_object().map(item_size).unwrap_or(0);
    state.charge(&partition, Kind::Read, read_units(size, consistent));
    let stale = if consistent {
        None
    } else {
        stale_of(state, &table, &schema, &key)
    };
    let (Some(stale), Some(fields)) = (stale, body.as_object_mut()) else {
        return Ok(whole(parts, bytes));
    };
    match stale {
        Some(image) => {
            let image = project(&image, names.as_deref());
            fields.insert("Item".into(), Value::Object(image));
        }
        None => {
            fields.remove("Item");
        }
    }
    Ok(changed_answer(parts, &body))
}

/// One table of a `BatchGetItem`.
struct BatchTable {
    name: String,
    schema: std::sync::Arc<Schema>,
    consistent: bool,
    keys: Vec<Item>,
    names: Option<Vec<String>>,
}

pub(super) async fn batch_get_item(state: &State, call: Call) -> Answer {
    let Some(request_items) = call.request["RequestItems"].as_object().cloned() else {
        return state.forward(call).await;
    };
    let mut tables = Vec::new();
    let mut wanted = Vec::new();
    for (name, spec) in &request_items {
        let Some(schema) = state.schema(call.auth(), name).await else {
            return state.forward(call).await;
        };
        let keys: Vec<Item> = spec["Keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_object().cloned())
            .collect();
        for key in &keys {
            let partition = Partition::table(name, &schema.partition_of(key).unwrap_or_default());
            wanted.push((partition, Kind::Read));
        }
        tables.push(BatchTable {
            name: name.clone(),
            schema,
            consistent: consistent(spec),
            keys,
            names: projected_names(spec),
        });
    }
    if let Some(refused) = state.refuse(&wanted) {
        return Ok(refused);
    }
    let (parts, bytes, mut body) = match forward_json(state, call).await? {
        Forwarded::Json(parts, bytes, body) => (parts, bytes, body),
        Forwarded::Pass(answer) => return Ok(answer),
    };
    let mut changed = false;
    for table in &tables {
        let returned: Vec<Value> = body["Responses"][&table.name]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for item in returned.iter().filter_map(Value::as_object) {
            let partition = Partition::table(
                &table.name,
                &table.schema.partition_of(item).unwrap_or_default(),
            );
            let units = read_units(item_size(item), table.consistent);
            state.charge(&partition, Kind::Read, units);
        }
        if table.consistent {
            continue;
        }
        if let Some(items) = stale_batch(state, table, returned) {
            body["Responses"][&table.name] = Value::Array(items);
            changed = true;
        }
    }
    if !changed {
        return Ok(whole(parts, bytes));
    }
    Ok(changed_answer(parts, &body))
}

/// The items of one table as of a window ago, `None` when none changed.
fn stale_batch(state: &State, table: &BatchTable, returned: Vec<Value>) -> Option<Vec<Value>> {
    let schema = &table.schema;
    let mut by_key: Vec<(Option<String>, Value)> = returned
        .into_iter()
        .map(|item| {
            let id = item.as_object().and_then(|i| schema.key_id(i));
            (id, item)
        })
        .collect();
    let mut changed = false;
    for key in &table.keys {
        let Some(stale) = stale_of(state, &table.name, schema, key) else {
            continue;
        };
        changed = true;
        let id = schema.key_id(key);
        by_key.retain(|(other, _)| *other != id);
        if let Some(image) = stale {
            let image = project(&image, table.names.as_deref());
            by_key.push((id, Value::Object(image)));
        }
    }
    changed.then(|| by_key.into_iter().map(|(_, item)| item).collect())
}

pub(super) async fn query_or_scan(state: &State, call: Call) -> Answer {
    let table = call.table().to_owned();
    let Some(schema) = state.schema(call.auth(), &table).await else {
        return state.forward(call).await;
    };
    let index = call.request["IndexName"]
        .as_str()
        .and_then(|n| schema.index(n))
        .cloned();
    // Index reads are always eventually consistent.
    let consistent = index.is_none() && consistent(&call.request);
    let query = call.operation == "Query";
    let key = if query {
        let hash = index.as_ref().map_or(&schema.hash, |i| &i.hash);
        query_partition(&call.request, hash)
            .map(|v| key_text(&v))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let partition = match &index {
        Some(i) => Partition::index(&table, &i.name, &key),
        None => Partition::table(&table, &key),
    };
    if query {
        if let Some(refused) = state.refuse(&[(partition.clone(), Kind::Read)]) {
            return Ok(refused);
        }
    }
    let names = projected_names(&call.request)
        .or_else(|| index.as_ref().and_then(|i| schema.index_attributes(i)));
    let (parts, bytes, mut body) = match forward_json(state, call).await? {
        Forwarded::Json(parts, bytes, body) => (parts, bytes, body),
        Forwarded::Pass(answer) => return Ok(answer),
    };
    let items = body["Items"].as_array().cloned().unwrap_or_default();
    let size = items
        .iter()
        .filter_map(Value::as_object)
        .map(item_size)
        .sum();
    state.charge(&partition, Kind::Read, read_units(size, consistent));
    if consistent || body.get("Items").is_none() {
        return Ok(whole(parts, bytes));
    }
    let page = Page {
        table: &table,
        schema: &schema,
        index: index.as_ref(),
        names: names.as_deref(),
    };
    let Some(items) = page.stale(state, items) else {
        return Ok(whole(parts, bytes));
    };
    body["Count"] = Value::from(items.len());
    body["Items"] = Value::Array(items);
    Ok(changed_answer(parts, &body))
}

/// How to read a Query or Scan page as of a window ago.
struct Page<'a> {
    table: &'a str,
    schema: &'a Schema,
    index: Option<&'a Index>,
    names: Option<&'a [String]>,
}

impl Page<'_> {
    /// The page's items as of a window ago, `None` when none changed. An
    /// item whose index keys differ then was not in this index partition.
    fn stale(&self, state: &State, items: Vec<Value>) -> Option<Vec<Value>> {
        let mut changed = false;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let stale = item
                .as_object()
                .and_then(|i| stale_of(state, self.table, self.schema, i));
            let Some(stale) = stale else {
                out.push(item);
                continue;
            };
            changed = true;
            let Some(image) = stale else {
                continue;
            };
            if let Some(index) = self.index {
                let mut keys = std::iter::once(&index.hash).chain(index.range.as_ref());
                if !keys.all(|k| image.get(k) == item.get(k)) {
                    continue;
                }
            }
            out.push(Value::Object(project(&image, self.names)));
        }
        changed.then_some(out)
    }
}
