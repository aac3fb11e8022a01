//! The writes: `PutItem`, `UpdateItem`, `DeleteItem`, `BatchWriteItem` and
//! `TransactWriteItems`. A write is planned against the current item (its
//! condition, its new image, the attributes to return), then charged and
//! applied, or refused whole.

use std::time::Instant;

use serde_json::{json, Value};

use super::{names_of, object, text, values_of, Answer, DynError, Model, Planned, THROTTLED};
use crate::realism::throughput::{Kind, Partition};
use crate::realism::units::{item_size, write_units, MAX_ITEM_BYTES};
use crate::sim::expr::{self, Action, Item};

impl Model {
    /// Work out one `PutItem` / `UpdateItem` / `DeleteItem` (also a
    /// transaction's action) without applying it. `Err` is the condition's
    /// failure or a validation error.
    pub(super) fn plan(&self, op: &str, body: &Value) -> Result<Planned, DynError> {
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

    pub(super) fn store(&mut self, planned: &Planned, now: Instant) {
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
    pub(super) fn write_partitions(
        &self,
        key: &(String, String),
        indexes: &[Partition],
    ) -> Vec<Partition> {
        let mut all = vec![self.table_partition(key)];
        all.extend(indexes.iter().cloned());
        all
    }

    pub(super) fn over(
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

    pub(super) fn write(&mut self, op: &str, body: &Value, now: Instant) -> Answer {
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

    pub(super) fn batch_write(&mut self, body: &Value, now: Instant) -> Answer {
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

    pub(super) fn transact(&mut self, body: &Value, now: Instant) -> Answer {
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
