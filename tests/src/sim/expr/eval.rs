//! Evaluating conditions and applying updates to an item in the wire
//! format, with DynamoDB's rules for types, numbers and missing attributes.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::{err, Action, Cmp, Cond, ExprError, Item, Operand, Step};

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
