//! DynamoDB's error answers, shaped as the service sends them (and as
//! aws-sdk-dynamodb parses them).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::throughput::{Kind, Partition};
use super::ThrottleError;
use crate::faults::error_response;

const PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";
const THROTTLED: &str = "Throughput exceeds the current capacity of your table or index. \
DynamoDB is automatically scaling your table or index so please try again shortly. \
If exceptions persist, check if you have a hot key: \
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html";

fn dynamo_error(code: &str, mut body: Map<String, Value>) -> Response<Full<Bytes>> {
    body.insert("__type".into(), Value::String(format!("{PREFIX}{code}")));
    error_response(
        StatusCode::BAD_REQUEST,
        code,
        "application/x-amz-json-1.0",
        &Value::Object(body),
    )
}

/// The ARN of a partition's table or index.
pub fn resource(arn: &str, partition: &Partition) -> String {
    let table = if arn.is_empty() {
        format!(
            "arn:aws:dynamodb:us-east-1:000000000000:table/{}",
            partition.table
        )
    } else {
        arn.to_owned()
    };
    match &partition.index {
        Some(index) => format!("{table}/index/{index}"),
        None => table,
    }
}

/// `TableWriteKeyRangeThroughputExceeded` and its kin.
pub fn reason(partition: &Partition, kind: Kind) -> String {
    let resource = if partition.index.is_some() {
        "Index"
    } else {
        "Table"
    };
    let operation = match kind {
        Kind::Read => "Read",
        Kind::Write => "Write",
    };
    format!("{resource}{operation}KeyRangeThroughputExceeded")
}

/// A throttled request: the configured exception with one
/// `ThrottlingReason` per exhausted partition.
/// `arn_of` gives a table's ARN.
pub fn throttled(
    error: ThrottleError,
    over: &[(Partition, Kind)],
    arn_of: impl Fn(&str) -> String,
) -> Response<Full<Bytes>> {
    let reasons: Vec<Value> = over
        .iter()
        .map(|(p, kind)| {
            json!({"reason": reason(p, *kind), "resource": resource(&arn_of(&p.table), p)})
        })
        .collect();
    // The two exceptions spell the member differently in the service model.
    let (code, field) = match error {
        ThrottleError::Throttling => ("ThrottlingException", "throttlingReasons"),
        ThrottleError::ProvisionedThroughputExceeded => (
            "ProvisionedThroughputExceededException",
            "ThrottlingReasons",
        ),
    };
    let mut body = Map::new();
    body.insert("message".into(), THROTTLED.into());
    body.insert(field.into(), Value::Array(reasons));
    dynamo_error(code, body)
}

pub fn validation(message: &str) -> Response<Full<Bytes>> {
    let mut body = Map::new();
    body.insert("message".into(), message.into());
    dynamo_error("ValidationException", body)
}

/// DynamoDB's words for a put, and for an update, over 400 KB.
pub const TOO_LARGE: &str = "Item size has exceeded the maximum allowed size";
pub const TOO_LARGE_UPDATE: &str = "Item size to update has exceeded the maximum allowed size";

/// One `CancellationReasons` entry as DynamoDB words it.
pub fn cancellation_reason(code: &str) -> Value {
    let message = match code {
        "None" => return json!({"Code": "None"}),
        "ConditionalCheckFailed" => "The conditional request failed",
        "TransactionConflict" => "Transaction is ongoing for the item",
        "ThrottlingError" => THROTTLED,
        "ItemCollectionSizeLimitExceeded" => "Collection size exceeded.",
        "ValidationError" => "One or more parameter values were invalid.",
        _ => "Transaction cancelled",
    };
    json!({"Code": code, "Message": message})
}

/// `TransactionCanceledException` with one reason per action.
pub fn cancelled(reasons: Vec<Value>) -> Response<Full<Bytes>> {
    let codes: Vec<&str> = reasons
        .iter()
        .map(|r| r["Code"].as_str().unwrap_or("None"))
        .collect();
    let mut body = Map::new();
    body.insert(
        "Message".into(),
        format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        )
        .into(),
    );
    body.insert("CancellationReasons".into(), Value::Array(reasons));
    dynamo_error("TransactionCanceledException", body)
}
