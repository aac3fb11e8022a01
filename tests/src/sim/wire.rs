//! SDK attribute values in DynamoDB's JSON wire format (`{"N": "42"}`), the
//! form the model stores: for tests that feed the product's own
//! expressions to the evaluator.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::{general_purpose::STANDARD, Engine};
use serde_json::{json, Map, Value};

fn blob(b: &Blob) -> Value {
    Value::String(STANDARD.encode(b.as_ref()))
}

/// One attribute value on the wire.
pub fn value(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": blob(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(n) => json!({ "NS": n }),
        AttributeValue::Bs(b) => json!({ "BS": b.iter().map(blob).collect::<Vec<_>>() }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(value).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item(m) }),
        _ => json!({ "NULL": true }),
    }
}

/// An item (or a map's members) on the wire.
pub fn item(m: &HashMap<String, AttributeValue>) -> Map<String, Value> {
    m.iter().map(|(k, v)| (k.clone(), value(v))).collect()
}
