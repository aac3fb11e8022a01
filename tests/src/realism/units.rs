//! Item sizes and capacity units of items in DynamoDB's wire format (JSON
//! attribute values such as `{"S": "abc"}`), by the rules of
//! [`crate::item_size`]: what a request costs and whether an item fits.

use serde_json::{Map, Value};

use crate::item_size::{number_size, write_units as units_of_kb};

/// An item as it travels: attribute names to attribute values.
pub type Item = Map<String, Value>;

/// DynamoDB's item size limit: 400 KB.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Bytes of base64 text once decoded.
fn decoded_len(text: &str) -> usize {
    let padding = text.bytes().rev().take_while(|b| *b == b'=').count();
    (text.len() / 4 * 3).saturating_sub(padding)
}

fn strings(value: &Value) -> impl Iterator<Item = &str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Bytes of one attribute value (`{"S": "abc"}`), without its name.
pub fn value_size(value: &Value) -> usize {
    let Some((tag, inner)) = value.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    let text = inner.as_str().unwrap_or_default();
    match tag.as_str() {
        "S" => text.len(),
        "N" => number_size(text),
        "B" => decoded_len(text),
        "BOOL" | "NULL" => 1,
        "SS" => strings(inner).map(str::len).sum(),
        "NS" => strings(inner).map(number_size).sum(),
        "BS" => strings(inner).map(decoded_len).sum(),
        "L" => {
            let elements = inner.as_array().into_iter().flatten();
            3 + elements.map(|e| value_size(e) + 1).sum::<usize>()
        }
        "M" => {
            let entries = inner.as_object().into_iter().flatten();
            3 + entries
                .map(|(k, e)| k.len() + value_size(e) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// Bytes of a whole item: every attribute's name and value.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write units of one write that found `before` and left `after`: one per
/// started KB of the larger (at least one), twice in a transaction.
pub fn write_units(before: Option<&Item>, after: Option<&Item>, transactional: bool) -> f64 {
    let bytes = before
        .map(item_size)
        .unwrap_or(0)
        .max(after.map(item_size).unwrap_or(0));
    let units = units_of_kb(bytes) as f64;
    if transactional {
        2.0 * units
    } else {
        units
    }
}

/// Read units of reading `bytes` (one item, or a Query/Scan page): one per
/// started 4 KB (at least one) when consistent, half when eventual.
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent {
        units
    } else {
        units / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(value: Value) -> Item {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn values_follow_dynamodb_rules() {
        assert_eq!(value_size(&json!({"S": "héllo"})), 6);
        assert_eq!(value_size(&json!({"N": "123"})), 3);
        assert_eq!(value_size(&json!({"N": "-0012.5000"})), 3);
        assert_eq!(value_size(&json!({"B": "AAEC"})), 3);
        assert_eq!(value_size(&json!({"B": "AAE="})), 2);
        assert_eq!(value_size(&json!({"BOOL": true})), 1);
        assert_eq!(value_size(&json!({"NULL": true})), 1);
        assert_eq!(value_size(&json!({"SS": ["ab", "cde"]})), 5);
        assert_eq!(value_size(&json!({"NS": ["1", "1000"]})), 4);
        // 3 + (2 + 1) + (1 + 1)
        assert_eq!(value_size(&json!({"L": [{"S": "ab"}, {"BOOL": false}]})), 8);
        // 3 + (1 + 2 + 1)
        assert_eq!(value_size(&json!({"M": {"k": {"N": "42"}}})), 7);
    }

    #[test]
    fn items_add_names_and_values() {
        let it = item(json!({"pk": {"S": "ALW#abc"}, "qu": {"N": "42"}}));
        assert_eq!(item_size(&it), 2 + 7 + 2 + 2);
    }

    #[test]
    fn writes_charge_the_larger_image_per_started_kb() {
        let small = item(json!({"pk": {"S": "a"}}));
        let big = item(json!({"pk": {"S": "a"}, "d": {"S": "x".repeat(3584)}}));
        assert_eq!(item_size(&big), 2 + 1 + 1 + 3584);
        assert_eq!(write_units(None, None, false), 1.0);
        assert_eq!(write_units(Some(&small), None, false), 1.0);
        assert_eq!(write_units(Some(&big), Some(&small), false), 4.0);
        assert_eq!(write_units(Some(&small), Some(&big), false), 4.0);
        assert_eq!(write_units(Some(&big), Some(&big), true), 8.0);
        let exact = item(json!({"d": {"S": "x".repeat(1023)}}));
        assert_eq!(write_units(Some(&exact), None, false), 1.0);
    }

    #[test]
    fn reads_charge_per_started_4kb_and_half_when_eventual() {
        assert_eq!(read_units(0, true), 1.0);
        assert_eq!(read_units(0, false), 0.5);
        assert_eq!(read_units(4096, true), 1.0);
        assert_eq!(read_units(4097, true), 2.0);
        assert_eq!(read_units(4097, false), 1.0);
        assert_eq!(read_units(10_000, false), 1.5);
    }

    #[test]
    fn the_limit_is_400_kb() {
        assert_eq!(MAX_ITEM_BYTES, 409_600);
    }
}
