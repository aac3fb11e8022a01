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

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Value};

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

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Name(String),
    Value(String),
    Num(usize),
    Sym(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, ExprError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if let Some(sym) = ["<>", "<=", ">="].into_iter().find(|s| *s == two) {
            out.push(Tok::Sym(sym));
            i += 2;
            continue;
        }
        if let Some(sym) = ["=", "<", ">", "(", ")", ",", ".", "[", "]", "+", "-"]
            .into_iter()
            .find(|s| s.starts_with(c))
        {
            out.push(Tok::Sym(sym));
            i += 1;
            continue;
        }
        if c == '#' || c == ':' {
            let start = i;
            i += 1;
            while i < chars.len() && word(chars[i]) {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(if c == '#' {
                Tok::Name(text)
            } else {
                Tok::Value(text)
            });
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            out.push(Tok::Num(digits.parse().map_err(|_| ExprError(digits))?));
            continue;
        }
        if word(c) {
            let start = i;
            while i < chars.len() && word(chars[i]) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
            continue;
        }
        return err(format!("Invalid expression: unexpected character {c:?}"));
    }
    Ok(out)
}

/// A parser over one expression, with the request's names and values.
struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    names: &'a HashMap<String, String>,
    values: &'a HashMap<String, Value>,
}

impl<'a> Parser<'a> {
    fn new(
        text: &str,
        names: &'a HashMap<String, String>,
        values: &'a HashMap<String, Value>,
    ) -> Result<Self, ExprError> {
        Ok(Self {
            toks: tokenize(text)?,
            pos: 0,
            names,
            values,
        })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Tok> {
        self.toks.get(self.pos + ahead)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), ExprError> {
        if self.sym(sym) {
            Ok(())
        } else {
            err(format!("Invalid expression: expected {sym:?}"))
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn done(&self) -> Result<(), ExprError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => err(format!("Invalid expression: unexpected {t:?}")),
        }
    }

    fn path(&mut self) -> Result<Path, ExprError> {
        let mut path = vec![Step::Attr(self.attr()?)];
        loop {
            if self.sym(".") {
                path.push(Step::Attr(self.attr()?));
            } else if self.sym("[") {
                match self.next() {
                    Some(Tok::Num(n)) => path.push(Step::Index(n)),
                    _ => return err("Invalid expression: list index"),
                }
                self.expect("]")?;
            } else {
                return Ok(path);
            }
        }
    }

    fn attr(&mut self) -> Result<String, ExprError> {
        match self.next() {
            Some(Tok::Name(n)) => match self.names.get(&n) {
                Some(name) => Ok(name.clone()),
                None => err(format!(
                    "An expression attribute name used in the document path is not defined; attribute name: {n}"
                )),
            },
            Some(Tok::Word(w)) => Ok(w),
            t => err(format!("Invalid expression: expected a name, got {t:?}")),
        }
    }

    fn value(&mut self) -> Result<Value, ExprError> {
        match self.next() {
            Some(Tok::Value(v)) => match self.values.get(&v) {
                Some(value) => Ok(value.clone()),
                None => err(format!(
                    "An expression attribute value used in expression is not defined; attribute value: {v}"
                )),
            },
            t => err(format!("Invalid expression: expected a value, got {t:?}")),
        }
    }

    fn function_next(&self, name: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w == name)
            && matches!(self.peek_at(1), Some(Tok::Sym("(")))
    }

    /// An operand of a condition, or the right side of `SET a = ..`.
    fn operand(&mut self) -> Result<Operand, ExprError> {
        if self.function_next("size") {
            self.pos += 2;
            let p = self.path()?;
            self.expect(")")?;
            return Ok(Operand::Size(p));
        }
        if self.function_next("if_not_exists") {
            self.pos += 2;
            let p = self.path()?;
            self.expect(",")?;
            let v = self.operand()?;
            self.expect(")")?;
            return Ok(Operand::IfNotExists(p, Box::new(v)));
        }
        if self.function_next("list_append") {
            self.pos += 2;
            let a = self.operand()?;
            self.expect(",")?;
            let b = self.operand()?;
            self.expect(")")?;
            return Ok(Operand::ListAppend(Box::new(a), Box::new(b)));
        }
        if matches!(self.peek(), Some(Tok::Value(_))) {
            return Ok(Operand::Value(self.value()?));
        }
        Ok(Operand::Path(self.path()?))
    }

    fn set_value(&mut self) -> Result<Operand, ExprError> {
        let left = self.operand()?;
        if self.sym("+") {
            Ok(Operand::Plus(Box::new(left), Box::new(self.operand()?)))
        } else if self.sym("-") {
            Ok(Operand::Minus(Box::new(left), Box::new(self.operand()?)))
        } else {
            Ok(left)
        }
    }

    fn or(&mut self) -> Result<Cond, ExprError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, ExprError> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            left = Cond::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Cond, ExprError> {
        if self.keyword("NOT") {
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Cond, ExprError> {
        if self.sym("(") {
            let c = self.or()?;
            self.expect(")")?;
            return Ok(c);
        }
        for (name, arity) in [
            ("attribute_exists", 1),
            ("attribute_not_exists", 1),
            ("attribute_type", 2),
            ("begins_with", 2),
            ("contains", 2),
        ] {
            if !self.function_next(name) {
                continue;
            }
            self.pos += 2;
            let cond = if arity == 1 {
                let p = self.path()?;
                if name == "attribute_exists" {
                    Cond::Exists(p)
                } else {
                    Cond::NotExists(p)
                }
            } else {
                let a = self.operand()?;
                self.expect(",")?;
                let b = self.operand()?;
                match (name, a) {
                    ("attribute_type", Operand::Path(p)) => Cond::Type(p, b),
                    ("attribute_type", _) => return err("attribute_type needs a path"),
                    ("begins_with", a) => Cond::BeginsWith(a, b),
                    (_, a) => Cond::Contains(a, b),
                }
            };
            self.expect(")")?;
            return Ok(cond);
        }
        let left = self.operand()?;
        if self.keyword("BETWEEN") {
            let low = self.operand()?;
            if !self.keyword("AND") {
                return err("Invalid expression: BETWEEN without AND");
            }
            return Ok(Cond::Between(left, low, self.operand()?));
        }
        if self.keyword("IN") {
            self.expect("(")?;
            let mut list = vec![self.operand()?];
            while self.sym(",") {
                list.push(self.operand()?);
            }
            self.expect(")")?;
            return Ok(Cond::In(left, list));
        }
        let op = match self.next() {
            Some(Tok::Sym("=")) => Cmp::Eq,
            Some(Tok::Sym("<>")) => Cmp::Ne,
            Some(Tok::Sym("<")) => Cmp::Lt,
            Some(Tok::Sym("<=")) => Cmp::Le,
            Some(Tok::Sym(">")) => Cmp::Gt,
            Some(Tok::Sym(">=")) => Cmp::Ge,
            t => {
                return err(format!(
                    "Invalid expression: expected a comparator, got {t:?}"
                ))
            }
        };
        Ok(Cond::Cmp(op, left, self.operand()?))
    }
}

/// Parse a condition (or key condition) expression.
pub fn parse_condition(
    text: &str,
    names: &HashMap<String, String>,
    values: &HashMap<String, Value>,
) -> Result<Cond, ExprError> {
    let mut p = Parser::new(text, names, values)?;
    let c = p.or()?;
    p.done()?;
    Ok(c)
}

/// Parse an update expression into its actions, in order.
pub fn parse_update(
    text: &str,
    names: &HashMap<String, String>,
    values: &HashMap<String, Value>,
) -> Result<Vec<Action>, ExprError> {
    let mut p = Parser::new(text, names, values)?;
    let mut actions = Vec::new();
    while p.peek().is_some() {
        let clause = match p.next() {
            Some(Tok::Word(w)) => w.to_ascii_uppercase(),
            t => return err(format!("Invalid UpdateExpression: unexpected {t:?}")),
        };
        loop {
            let path = p.path()?;
            actions.push(match clause.as_str() {
                "SET" => {
                    p.expect("=")?;
                    Action::Set(path, p.set_value()?)
                }
                "ADD" => Action::Add(path, p.value()?),
                "REMOVE" => Action::Remove(path),
                "DELETE" => Action::Delete(path, p.value()?),
                other => return err(format!("Invalid UpdateExpression: clause {other}")),
            });
            if !p.sym(",") {
                break;
            }
        }
    }
    if actions.is_empty() {
        return err("Invalid UpdateExpression: The expression can not be empty");
    }
    Ok(actions)
}

/// The value at `path` in `item`.
pub fn get<'v>(item: &'v Item, path: &[Step]) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    let Step::Attr(name) = first else {
        return None;
    };
    let mut at = item.get(name)?;
    for step in rest {
        at = match step {
            Step::Attr(name) => at.get("M")?.get(name)?,
            Step::Index(i) => at.get("L")?.get(*i)?,
        };
    }
    Some(at)
}

fn tag(value: &Value) -> Option<(&str, &Value)> {
    value
        .as_object()
        .and_then(|m| m.iter().next())
        .map(|(k, v)| (k.as_str(), v))
}

/// A number's digits as a comparable value: exact for integers, `f64` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Num {
    Int(i128),
    Float(f64),
}

fn num(text: &str) -> Option<Num> {
    text.parse::<i128>()
        .map(Num::Int)
        .ok()
        .or_else(|| text.parse::<f64>().ok().map(Num::Float))
}

fn as_f64(n: Num) -> f64 {
    match n {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
    }
}

fn num_of(value: &Value) -> Option<Num> {
    match tag(value)? {
        ("N", Value::String(s)) => num(s),
        _ => None,
    }
}

fn num_value(n: Num) -> Value {
    let text = match n {
        Num::Int(i) => i.to_string(),
        Num::Float(f) => f.to_string(),
    };
    serde_json::json!({ "N": text })
}

fn arith(a: &Value, b: &Value, plus: bool) -> Result<Value, ExprError> {
    let (Some(x), Some(y)) = (num_of(a), num_of(b)) else {
        return err("An operand in the update expression has an incorrect data type");
    };
    Ok(num_value(match (x, y) {
        (Num::Int(x), Num::Int(y)) => Num::Int(if plus { x + y } else { x - y }),
        (x, y) => Num::Float(if plus {
            as_f64(x) + as_f64(y)
        } else {
            as_f64(x) - as_f64(y)
        }),
    }))
}

/// Order two values of the same scalar type; `None` across types.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    let (ta, va) = tag(a)?;
    let (tb, vb) = tag(b)?;
    if ta != tb {
        return None;
    }
    match ta {
        "N" => {
            let (x, y) = (num_of(a)?, num_of(b)?);
            match (x, y) {
                (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
                (x, y) => as_f64(x).partial_cmp(&as_f64(y)),
            }
        }
        "S" | "B" => Some(va.as_str()?.as_bytes().cmp(vb.as_str()?.as_bytes())),
        _ => (va == vb).then_some(Ordering::Equal),
    }
}

/// A scalar operand's value; `Ok(None)` when its attribute is missing.
fn eval(item: &Item, op: &Operand) -> Result<Option<Value>, ExprError> {
    Ok(match op {
        Operand::Path(p) => get(item, p).cloned(),
        Operand::Value(v) => Some(v.clone()),
        Operand::Size(p) => get(item, p)
            .and_then(size_of)
            .map(|n| num_value(Num::Int(n))),
        Operand::IfNotExists(p, v) => match get(item, p) {
            Some(found) => Some(found.clone()),
            None => eval(item, v)?,
        },
        Operand::ListAppend(a, b) => {
            let (Some(a), Some(b)) = (eval(item, a)?, eval(item, b)?) else {
                return err("The provided expression refers to an attribute that does not exist in the item");
            };
            match (a.get("L"), b.get("L")) {
                (Some(Value::Array(x)), Some(Value::Array(y))) => {
                    let joined: Vec<Value> = x.iter().chain(y).cloned().collect();
                    Some(serde_json::json!({ "L": joined }))
                }
                _ => return err("list_append needs two lists"),
            }
        }
        Operand::Plus(a, b) | Operand::Minus(a, b) => {
            let (Some(x), Some(y)) = (eval(item, a)?, eval(item, b)?) else {
                return err("The provided expression refers to an attribute that does not exist in the item");
            };
            Some(arith(&x, &y, matches!(op, Operand::Plus(..)))?)
        }
    })
}

fn size_of(value: &Value) -> Option<i128> {
    let (t, v) = tag(value)?;
    Some(match t {
        "S" => v.as_str()?.len() as i128,
        "B" => crate::realism::units::value_size(value) as i128,
        "SS" | "NS" | "BS" | "L" => v.as_array()?.len() as i128,
        "M" => v.as_object()?.len() as i128,
        _ => return None,
    })
}

/// Whether `cond` holds for `item` (an absent item is an empty one).
pub fn holds(item: &Item, cond: &Cond) -> Result<bool, ExprError> {
    let cmp = |op: Cmp, a: &Operand, b: &Operand| -> Result<bool, ExprError> {
        let (Some(x), Some(y)) = (eval(item, a)?, eval(item, b)?) else {
            return Ok(op == Cmp::Ne);
        };
        let o = order(&x, &y);
        Ok(match op {
            Cmp::Eq => x == y || o == Some(Ordering::Equal),
            Cmp::Ne => !(x == y || o == Some(Ordering::Equal)),
            Cmp::Lt => o == Some(Ordering::Less),
            Cmp::Le => matches!(o, Some(Ordering::Less | Ordering::Equal)),
            Cmp::Gt => o == Some(Ordering::Greater),
            Cmp::Ge => matches!(o, Some(Ordering::Greater | Ordering::Equal)),
        })
    };
    Ok(match cond {
        Cond::Cmp(op, a, b) => cmp(*op, a, b)?,
        Cond::Between(x, lo, hi) => cmp(Cmp::Ge, x, lo)? && cmp(Cmp::Le, x, hi)?,
        Cond::In(x, list) => {
            let mut any = false;
            for o in list {
                any |= cmp(Cmp::Eq, x, o)?;
            }
            any
        }
        Cond::And(a, b) => holds(item, a)? && holds(item, b)?,
        Cond::Or(a, b) => holds(item, a)? || holds(item, b)?,
        Cond::Not(a) => !holds(item, a)?,
        Cond::Exists(p) => get(item, p).is_some(),
        Cond::NotExists(p) => get(item, p).is_none(),
        Cond::Type(p, t) => match (get(item, p).and_then(tag), eval(item, t)?) {
            (Some((found, _)), Some(want)) => want.get("S").and_then(Value::as_str) == Some(found),
            _ => false,
        },
        Cond::BeginsWith(a, b) => match (eval(item, a)?, eval(item, b)?) {
            (Some(x), Some(y)) => match (x.get("S"), y.get("S")) {
                (Some(Value::String(x)), Some(Value::String(y))) => x.starts_with(y.as_str()),
                _ => false,
            },
            _ => false,
        },
        Cond::Contains(a, b) => match (eval(item, a)?, eval(item, b)?) {
            (Some(x), Some(y)) => contains(&x, &y),
            _ => false,
        },
    })
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match (tag(haystack), tag(needle)) {
        (Some(("S", Value::String(h))), Some(("S", Value::String(n)))) => h.contains(n.as_str()),
        (Some(("SS" | "NS" | "BS", Value::Array(set))), Some((_, n))) => set.contains(n),
        (Some(("L", Value::Array(list))), _) => list.contains(needle),
        _ => false,
    }
}

/// The top-level attribute an action touches.
pub fn top(path: &[Step]) -> Option<&str> {
    match path.first() {
        Some(Step::Attr(name)) => Some(name),
        _ => None,
    }
}

fn slot<'v>(item: &'v mut Item, path: &'v [Step]) -> Result<(&'v mut Value, &'v Step), ExprError> {
    let invalid = || {
        ExprError(
            "The document path provided in the update expression is invalid for update".into(),
        )
    };
    let (last, parents) = path.split_last().ok_or_else(invalid)?;
    let Some((Step::Attr(first), rest)) = parents.split_first() else {
        return Err(invalid());
    };
    let mut at = item.get_mut(first).ok_or_else(invalid)?;
    for step in rest {
        at = match step {
            Step::Attr(name) => at.get_mut("M").and_then(|m| m.get_mut(name)),
            Step::Index(i) => at.get_mut("L").and_then(|l| l.get_mut(*i)),
        }
        .ok_or_else(invalid)?;
    }
    Ok((at, last))
}

fn put(item: &mut Item, path: &[Step], value: Value) -> Result<(), ExprError> {
    if let [Step::Attr(name)] = path {
        item.insert(name.clone(), value);
        return Ok(());
    }
    let invalid = || {
        ExprError(
            "The document path provided in the update expression is invalid for update".into(),
        )
    };
    let (parent, last) = slot(item, path)?;
    match last {
        Step::Attr(name) => {
            let map = parent
                .get_mut("M")
                .and_then(Value::as_object_mut)
                .ok_or_else(invalid)?;
            map.insert(name.clone(), value);
        }
        Step::Index(i) => {
            let list = parent
                .get_mut("L")
                .and_then(Value::as_array_mut)
                .ok_or_else(invalid)?;
            if *i < list.len() {
                list[*i] = value;
            } else {
                list.push(value);
            }
        }
    }
    Ok(())
}

fn remove(item: &mut Item, path: &[Step]) {
    if let [Step::Attr(name)] = path {
        item.remove(name);
        return;
    }
    let Ok((parent, last)) = slot(item, path) else {
        return;
    };
    match last {
        Step::Attr(name) => {
            if let Some(map) = parent.get_mut("M").and_then(Value::as_object_mut) {
                map.remove(name);
            }
        }
        Step::Index(i) => {
            if let Some(list) = parent.get_mut("L").and_then(Value::as_array_mut) {
                if *i < list.len() {
                    list.remove(*i);
                }
            }
        }
    }
}

fn set_union(old: &Value, add: &Value, union: bool) -> Result<Value, ExprError> {
    match (tag(old), tag(add)) {
        (Some((t, Value::Array(a))), Some((u, Value::Array(b)))) if t == u => {
            let mut out: Vec<Value> = if union {
                let mut out = a.clone();
                out.extend(b.iter().filter(|v| !a.contains(v)).cloned());
                out
            } else {
                a.iter().filter(|v| !b.contains(v)).cloned().collect()
            };
            out.dedup();
            let mut m = Map::new();
            m.insert(t.to_owned(), Value::Array(out));
            Ok(Value::Object(m))
        }
        _ => err("An operand in the update expression has an incorrect data type"),
    }
}

/// Apply `actions` to `item` in place. Every value is computed from the
/// item as it was before the update, as DynamoDB does.
pub fn apply(item: &mut Item, actions: &[Action]) -> Result<(), ExprError> {
    let before = item.clone();
    for action in actions {
        match action {
            Action::Set(path, value) => {
                let Some(v) = eval(&before, value)? else {
                    return err("The provided expression refers to an attribute that does not exist in the item");
                };
                put(item, path, v)?;
            }
            Action::Add(path, value) => {
                let next = match get(&before, path) {
                    None => value.clone(),
                    Some(old) if num_of(old).is_some() => arith(old, value, true)?,
                    Some(old) => set_union(old, value, true)?,
                };
                put(item, path, next)?;
            }
            Action::Remove(path) => remove(item, path),
            Action::Delete(path, value) => {
                if let Some(old) = get(&before, path) {
                    let next = set_union(old, value, false)?;
                    if next
                        .as_object()
                        .and_then(|m| m.values().next())
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty)
                    {
                        remove(item, path);
                    } else {
                        put(item, path, next)?;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
