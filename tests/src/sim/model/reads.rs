//! The reads: `GetItem`, `BatchGetItem` and `Query`, each checked against
//! its partition's read budget and charged by size.

use std::time::Instant;

use serde_json::{json, Map, Value};

use super::{key_text, names_of, object, text, values_of, Answer, DynError, Model, THROTTLED};
use crate::realism::throughput::{Kind, Partition};
use crate::realism::units::{item_size, read_units};
use crate::sim::expr::{self, Item};

impl Model {
    pub(super) fn get_item(&mut self, body: &Value, now: Instant) -> Answer {
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

    pub(super) fn batch_get(&mut self, body: &Value, now: Instant) -> Answer {
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

    pub(super) fn query(&mut self, body: &Value, now: Instant) -> Answer {
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
}
