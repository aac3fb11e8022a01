//! The size of a DynamoDB item by DynamoDB's published rules, which decide
//! what a write costs: an `UpdateItem` consumes one write request unit per
//! started KB of the larger of the item before and after it.
//!
//! Rules: a string is its UTF-8 bytes; a number about one byte per two
//! significant digits plus one (leading and trailing zeros trimmed); binary
//! its raw bytes; boolean and null one byte; a list or map 3 bytes plus its
//! elements, each element one more byte; a set the sum of its elements. Every
//! top-level attribute also counts its name's UTF-8 bytes. (DynamoDB
//! Developer Guide, "Item sizes and formats"; items are capped at 400 KB.)
//!
//! The store uses it to keep the allowance item bounded
//! ([`crate::store::items::ALLOWANCE_PRUNE_BYTES`]); tests and benchmarks to
//! measure items and write units.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// Bytes of one number as DynamoDB stores it (approximately, as documented).
pub fn number_size(text: &str) -> usize {
    let digits: String = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// Bytes of one attribute value, without its name.
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|e| value_size(e) + 1).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| k.len() + value_size(e) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// Bytes of a whole item: every attribute's name and value.
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// Write request units of one write touching an item of `bytes` bytes.
pub fn write_units(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_count_significant_digits() {
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("7"), 2);
        assert_eq!(number_size("12"), 2);
        assert_eq!(number_size("123"), 3);
        assert_eq!(number_size("1000000"), 2);
        assert_eq!(number_size("-0012.5000"), 3);
        assert_eq!(number_size("1795942800"), 5);
    }

    #[test]
    fn items_add_names_values_and_overheads() {
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("ALW#abc".into())),
            ("qu".to_owned(), AttributeValue::N("42".into())),
            (
                "kv".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "key_a".to_owned(),
                    AttributeValue::N("3".into()),
                )])),
            ),
            ("ok".to_owned(), AttributeValue::Bool(true)),
            (
                "ss".to_owned(),
                AttributeValue::Ss(vec!["ab".into(), "cde".into()]),
            ),
        ]);
        // pk 2+7, qu 2+2, kv 2+(3 + 5+2+1), ok 2+1, ss 2+5
        assert_eq!(item_size(&item), 9 + 4 + 13 + 3 + 7);
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
    }
}
