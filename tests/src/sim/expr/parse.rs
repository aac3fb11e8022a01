//! Expression text to [`Cond`] and [`Action`]s: a tokenizer and a
//! recursive-descent parser that resolves `#names` and `:values` as it goes.

use std::collections::HashMap;

use serde_json::Value;

use super::{err, Action, Cmp, Cond, ExprError, Operand, Path, Step};

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
