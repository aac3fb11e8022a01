//! DynamoDB condition, key-condition and update expressions over items in
//! the wire format (`{"N": "42"}`), for the in-process model.
//!
//! A small recursive-descent parser, because no well-kept crate parses
//! them on their own: `dynamodb-expression` only builds expressions, and
//! the emulators that parse them (`dynoxide-rs`, `kstone-core`) bring a
//! storage engine and their own value types. Grammar, as in the developer
//! guide's "Condition and filter expressions, operators, and functions" and
//! "Using update expressions" pages
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.OperatorsAndFunctions.html>,
//! <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html>):
//!
//! - conditions: `= <> < <= > >=`, `BETWEEN .. AND ..`, `IN (..)`, `AND`,
//!   `OR`, `NOT`, parentheses, `attribute_exists`, `attribute_not_exists`,
//!   `attribute_type`, `begins_with`, `contains`, `size`;
//! - updates: `SET` (with `if_not_exists`, `list_append`, `+`, `-`), `ADD`
//!   (numbers and sets), `REMOVE`, `DELETE` (from sets);
//! - document paths through maps and lists (`#kv.#kid`, `a[2]`), with
//!   `ExpressionAttributeNames` and `ExpressionAttributeValues` resolved
//!   while parsing.
//!
//! Semantics the product relies on: comparing values of different types,
//! or with a missing attribute, is false (`<>` true); `ADD` on a missing
//! attribute starts from zero; `SET a.b` needs the map `a` to exist.
//!
//! [`parse`] reads expression text into the types below; [`eval`] evaluates
//! conditions and applies updates to an item.

use serde_json::{Map, Value};

mod eval;
mod parse;

pub use eval::{apply, get, holds, top};
pub use parse::{parse_condition, parse_update};

/// An item: attribute names to wire-format values.
pub type Item = Map<String, Value>;

/// Why an expression could not be parsed or applied: DynamoDB answers
/// `ValidationException` with such a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExprError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError(message.into()))
}

/// One step of a document path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Attr(String),
    Index(usize),
}

/// A document path, names already resolved.
pub type Path = Vec<Step>;

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Path),
    Value(Value),
    Size(Path),
    IfNotExists(Path, Box<Operand>),
    ListAppend(Box<Operand>, Box<Operand>),
    Plus(Box<Operand>, Box<Operand>),
    Minus(Box<Operand>, Box<Operand>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp(Cmp, Operand, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Exists(Path),
    NotExists(Path),
    Type(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
}

/// One action of an update expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Set(Path, Operand),
    Add(Path, Value),
    Remove(Path),
    Delete(Path, Value),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn values(pairs: &[(&str, Value)]) -> HashMap<String, Value> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.clone()))
            .collect()
    }

    fn item(v: Value) -> Item {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn precedence_and_parentheses() {
        let n = names(&[("#a", "a")]);
        let v = values(&[(":one", json!({"N": "1"})), (":two", json!({"N": "2"}))]);
        let it = item(json!({"a": {"N": "2"}}));
        let c = |t: &str| holds(&it, &parse_condition(t, &n, &v).unwrap()).unwrap();
        assert!(c("#a = :one OR #a = :two AND #a > :one"));
        assert!(!c("(#a = :one OR #a = :two) AND #a < :one"));
        assert!(c("NOT #a = :one"));
        assert!(c("#a BETWEEN :one AND :two"));
        assert!(c("#a IN (:one, :two)"));
        assert!(c("#a <> :one"));
        assert!(c("attribute_not_exists(b) AND attribute_exists(#a)"));
        assert!(c("size(#a) <> :one"), "size of a number is undefined");
        assert!(!c("b = :one") && c("b <> :one"), "a missing attribute");
        assert!(parse_condition("#a = ", &n, &v).is_err());
        assert!(parse_condition("#zz = :one", &n, &v).is_err());
    }

    #[test]
    fn numbers_compare_by_value_and_types_never_mix() {
        let v = values(&[
            (":a", json!({"N": "10"})),
            (":b", json!({"N": "9.50"})),
            (":s", json!({"S": "10"})),
        ]);
        let it = Item::new();
        let c = |t: &str| holds(&it, &parse_condition(t, &HashMap::new(), &v).unwrap()).unwrap();
        assert!(c(":a > :b"));
        assert!(!c(":a = :s") && c(":a <> :s") && !c(":a < :s"));
    }

    #[test]
    fn updates_set_add_remove_delete() {
        let n = names(&[("#m", "m"), ("#k", "k"), ("#c", "c")]);
        let v = values(&[
            (":one", json!({"N": "1"})),
            (":x", json!({"S": "x"})),
            (":ss", json!({"SS": ["a", "b"]})),
            (":a", json!({"SS": ["a"]})),
            (":l", json!({"L": [{"N": "3"}]})),
        ]);
        let mut it = item(json!({"m": {"M": {"k": {"N": "5"}}}, "c": {"N": "7"}}));
        let acts = parse_update(
            "SET #m.#k = #m.#k + :one, y = if_not_exists(y, :x), z = if_not_exists(#c, :x), l = list_append(if_not_exists(l, :l), :l) ADD #c :one, n :one, s :ss REMOVE gone DELETE d :a",
            &n,
            &v,
        )
        .unwrap();
        it.insert("gone".into(), json!({"S": "g"}));
        it.insert("s".into(), json!({"SS": ["c"]}));
        it.insert("d".into(), json!({"SS": ["a", "c"]}));
        apply(&mut it, &acts).unwrap();
        assert_eq!(it["m"], json!({"M": {"k": {"N": "6"}}}));
        assert_eq!(it["y"], json!({"S": "x"}));
        assert_eq!(it["z"], json!({"N": "7"}), "computed from the old item");
        assert_eq!(it["c"], json!({"N": "8"}));
        assert_eq!(it["n"], json!({"N": "1"}));
        assert_eq!(it["l"], json!({"L": [{"N": "3"}, {"N": "3"}]}));
        assert!(!it.contains_key("gone"));
        assert_eq!(it["s"], json!({"SS": ["c", "a", "b"]}));
        assert_eq!(it["d"], json!({"SS": ["c"]}));
        let missing_parent = parse_update("SET q.r = :one", &n, &v).unwrap();
        assert!(apply(&mut it, &missing_parent).is_err());
    }
}
