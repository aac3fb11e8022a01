//! Capture of request shapes: one JSON line per distinct DynamoDB request
//! the product sends, `{"operation": ..., "body": <as the SDK sent it>}`, so
//! every shape can be replayed against another emulator. A shape is the
//! operation and the body with each attribute value replaced by its type tag
//! and each table name by a placeholder; the first example of a shape is kept.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{Map, Value};

const TABLE: &str = "<table>";

/// The type tag of `value` when it is an attribute value (`{"S": "x"}`).
fn attribute_tag(value: &Value) -> Option<&str> {
    let object = value.as_object()?;
    let (tag, inner) = object.iter().next().filter(|_| object.len() == 1)?;
    let fits = match tag.as_str() {
        "S" | "N" | "B" => inner.is_string(),
        "BOOL" | "NULL" => inner.is_boolean(),
        "SS" | "NS" | "BS" => inner
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string)),
        "L" => inner.is_array(),
        "M" => inner.is_object(),
        _ => false,
    };
    fits.then_some(tag.as_str())
}

/// Objects whose keys are table names.
const KEYED_BY_TABLE: [&str; 2] = ["RequestItems", "Responses"];

fn abstracted(value: &Value, keyed_by_table: bool) -> Value {
    if let Some(tag) = attribute_tag(value) {
        return Value::String(tag.to_owned());
    }
    match value {
        Value::Object(object) => {
            let mut out = Map::new();
            for (key, inner) in object {
                let name = if keyed_by_table { TABLE } else { key };
                let shaped = if key == "TableName" {
                    Value::String(TABLE.to_owned())
                } else {
                    abstracted(inner, KEYED_BY_TABLE.contains(&key.as_str()))
                };
                out.insert(name.to_owned(), shaped);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| abstracted(v, false)).collect()),
        other => other.clone(),
    }
}

/// The shape of a request, as comparable text.
pub fn shape(operation: &str, body: &Value) -> String {
    serde_json::json!({"operation": operation, "shape": abstracted(body, false)}).to_string()
}

/// Appends the first example of each shape to a file.
#[derive(Debug)]
pub struct Capture {
    sink: Mutex<(File, HashSet<String>)>,
}

impl Capture {
    /// Opens `path` for appending (others may append to it too).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            sink: Mutex::new((file, HashSet::new())),
        })
    }

    /// Writes `body` (the raw request) if its shape is new.
    pub fn record(&self, operation: &str, body: &[u8]) {
        let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let key = shape(operation, &parsed);
        let mut sink = self.sink.lock().unwrap();
        if !sink.1.insert(key) {
            return;
        }
        // The body is the SDK's JSON as sent; one write per line keeps lines
        // whole when two proxies append to one file.
        let mut line = format!("{{\"operation\":{},\"body\":", Value::from(operation));
        line.push_str(&String::from_utf8_lossy(body));
        line.push_str("}\n");
        if let Err(e) = sink.0.write_all(line.as_bytes()) {
            tracing::warn!("realism capture: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_ignore_values_and_table_names() {
        let a = json!({"TableName": "t-1", "Key": {"pk": {"S": "a"}},
            "ExpressionAttributeValues": {":n": {"N": "1"}, ":m": {"M": {"x": {"S": "y"}}}}});
        let b = json!({"TableName": "t-2", "Key": {"pk": {"S": "b"}},
            "ExpressionAttributeValues": {":n": {"N": "7"}, ":m": {"M": {}}}});
        let c = json!({"TableName": "t-2", "Key": {"pk": {"N": "1"}},
            "ExpressionAttributeValues": {":n": {"N": "7"}, ":m": {"M": {}}}});
        assert_eq!(shape("UpdateItem", &a), shape("UpdateItem", &b));
        assert_ne!(shape("UpdateItem", &a), shape("UpdateItem", &c));
        assert_ne!(shape("UpdateItem", &a), shape("PutItem", &a));
        let batch_a = json!({"RequestItems": {"t-1": {"Keys": [{"pk": {"S": "a"}}]}}});
        let batch_b = json!({"RequestItems": {"t-9": {"Keys": [{"pk": {"S": "z"}}]}}});
        assert_eq!(
            shape("BatchGetItem", &batch_a),
            shape("BatchGetItem", &batch_b)
        );
    }
}
