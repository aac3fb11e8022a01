//! Scopes: what a key may do, in least-privilege terms.
//!
//! Two kinds:
//! - **routes**: `<METHOD> <path-pattern>`, e.g. `GET /orders/*` or
//!   `* /reports/**`. `METHOD` is an HTTP method or `*`. In the pattern a
//!   segment `*` matches exactly one path segment and a final `**` matches any
//!   number of segments, including none.
//! - **permissions**: `<resource>:<action>` names such as `keys:issue` or
//!   `usage:read`, and `admin`, which covers everything.
//!
//! Scopes serialize as their text, so stored records and API bodies read the
//! same way a person writes them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Methods a route scope may name.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/// Longest scope text accepted.
pub const MAX_SCOPE_LEN: usize = 256;

/// One scope.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Route {
        method: Method,
        pattern: Vec<Segment>,
    },
    Permission(String),
    Admin,
}

/// The method part of a route scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Any,
    Exact(String),
}

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: any number of segments; only ever the last.
    Rest,
}

/// Why a scope string is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("scope is empty or longer than {MAX_SCOPE_LEN} characters")]
    Length,
    #[error("unknown HTTP method {0:?}")]
    Method(String),
    #[error("path pattern must start with '/'")]
    PathStart,
    #[error("'**' may only be the last segment")]
    RestNotLast,
    #[error("path segment {0:?} is not allowed")]
    BadSegment(String),
    #[error("permission must look like 'resource:action' in lower case, or 'admin'")]
    Permission,
    #[error("a scope may not contain {LIST_SEPARATOR:?}, which separates scopes in the authorizer context")]
    Separator,
}

/// What separates scopes where a list travels as one string: the authorizer
/// context (REST context values must be strings, numbers or booleans, per
/// API Gateway's Lambda authorizer output reference). [`Scope::parse`]
/// refuses it inside a scope, so a joined list always splits back into the
/// same scopes, whatever the entry point (API, `keyctl`, store).
pub const LIST_SEPARATOR: char = ',';

/// Scopes as one string, for the authorizer context.
pub fn join_list(scopes: &[Scope]) -> String {
    let texts: Vec<String> = scopes.iter().map(ToString::to_string).collect();
    texts.join(&LIST_SEPARATOR.to_string())
}

/// Scopes from a string made by [`join_list`]; any invalid part fails it all.
pub fn split_list(text: &str) -> Result<Vec<Scope>, ScopeError> {
    text.split(LIST_SEPARATOR)
        .filter(|s| !s.is_empty())
        .map(Scope::parse)
        .collect()
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        if text.is_empty() || text.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::Length);
        }
        if text.contains(LIST_SEPARATOR) {
            return Err(ScopeError::Separator);
        }
        if text == "admin" {
            return Ok(Scope::Admin);
        }
        if let Some((method, path)) = text.split_once(' ') {
            let method = match method {
                "*" => Method::Any,
                m if METHODS.contains(&m) => Method::Exact(m.to_owned()),
                other => return Err(ScopeError::Method(other.to_owned())),
            };
            let pattern = parse_pattern(path)?;
            return Ok(Scope::Route { method, pattern });
        }
        let valid_part = |p: &str| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        };
        match text.split_once(':') {
            Some((res, act)) if valid_part(res) && valid_part(act) => {
                Ok(Scope::Permission(text.to_owned()))
            }
            _ => Err(ScopeError::Permission),
        }
    }

    /// Whether this scope lets a request with `method` on `path` through.
    /// Permission scopes never match routes; `admin` matches everything.
    pub fn allows_route(&self, method: &str, path: &str) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Permission(_) => false,
            Scope::Route { method: m, pattern } => {
                let method_ok = match m {
                    Method::Any => true,
                    Method::Exact(exact) => exact.eq_ignore_ascii_case(method),
                };
                method_ok && matches_path(pattern, path)
            }
        }
    }

    /// Whether holding `self` is enough to grant `other`: the basis of the
    /// no-escalation rule (a caller grants only what it holds).
    pub fn covers(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Admin, _) => true,
            (_, Scope::Admin) => false,
            (Scope::Permission(a), Scope::Permission(b)) => a == b,
            (
                Scope::Route {
                    method: ma,
                    pattern: pa,
                },
                Scope::Route {
                    method: mb,
                    pattern: pb,
                },
            ) => {
                let method_ok = match (ma, mb) {
                    (Method::Any, _) => true,
                    (Method::Exact(a), Method::Exact(b)) => a == b,
                    (Method::Exact(_), Method::Any) => false,
                };
                method_ok && pattern_covers(pa, pb)
            }
            _ => false,
        }
    }

    /// The permission name, for permission scopes.
    pub fn permission(&self) -> Option<&str> {
        match self {
            Scope::Permission(p) => Some(p),
            _ => None,
        }
    }
}

/// Whether any of `scopes` holds `permission` (or is `admin`).
pub fn holds(scopes: &[Scope], permission: &str) -> bool {
    scopes
        .iter()
        .any(|s| matches!(s, Scope::Admin) || s.permission() == Some(permission))
}

fn parse_pattern(path: &str) -> Result<Vec<Segment>, ScopeError> {
    let rest = path.strip_prefix('/').ok_or(ScopeError::PathStart)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| match *part {
            "*" => Ok(Segment::One),
            "**" if i == last => Ok(Segment::Rest),
            "**" => Err(ScopeError::RestNotLast),
            "" | "." | ".." => Err(ScopeError::BadSegment((*part).to_owned())),
            lit if lit.contains('*') || lit.chars().any(char::is_whitespace) => {
                Err(ScopeError::BadSegment(lit.to_owned()))
            }
            lit => Ok(Segment::Literal(lit.to_owned())),
        })
        .collect()
}

/// Match a concrete request path. Paths with empty, `.` or `..` segments
/// never match: we do not guess how a backend would normalise them.
fn matches_path(pattern: &[Segment], path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return false;
    }
    let mut i = 0;
    for seg in pattern {
        match seg {
            Segment::Rest => return true,
            Segment::One => {
                if i >= segments.len() {
                    return false;
                }
            }
            Segment::Literal(lit) => {
                if segments.get(i) != Some(&lit.as_str()) {
                    return false;
                }
            }
        }
        i += 1;
    }
    i == segments.len()
}

fn pattern_covers(holder: &[Segment], wanted: &[Segment]) -> bool {
    for (i, h) in holder.iter().enumerate() {
        match (h, wanted.get(i)) {
            (Segment::Rest, _) => return true,
            (_, None) => return false,
            (Segment::One, Some(Segment::One | Segment::Literal(_))) => {}
            (Segment::Literal(a), Some(Segment::Literal(b))) if a == b => {}
            _ => return false,
        }
    }
    holder.len() == wanted.len()
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Permission(p) => f.write_str(p),
            Scope::Route { method, pattern } => {
                match method {
                    Method::Any => f.write_str("*")?,
                    Method::Exact(m) => f.write_str(m)?,
                }
                f.write_str(" ")?;
                if pattern.is_empty() {
                    return f.write_str("/");
                }
                for seg in pattern {
                    f.write_str("/")?;
                    match seg {
                        Segment::Literal(l) => f.write_str(l)?,
                        Segment::One => f.write_str("*")?,
                        Segment::Rest => f.write_str("**")?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({self})")
    }
}

impl std::str::FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(text: &str) -> Scope {
        Scope::parse(text).unwrap()
    }

    #[test]
    fn the_list_separator_is_refused_everywhere_in_a_scope() {
        for text in [
            "GET /a,b",
            "GET /orders/*,POST /orders",
            ",admin",
            "admin,",
            "keys:read,keys:issue",
            "GET,POST /a",
        ] {
            assert_eq!(Scope::parse(text), Err(ScopeError::Separator), "{text}");
        }
        let scopes = vec![s("GET /orders/*"), s("keys:read"), s("admin")];
        assert_eq!(split_list(&join_list(&scopes)).unwrap(), scopes);
        assert!(split_list("GET /a,POST /b c").is_err());
    }

    #[test]
    fn route_matching() {
        assert!(s("GET /orders/*").allows_route("GET", "/orders/42"));
        assert!(!s("GET /orders/*").allows_route("GET", "/orders"));
        assert!(!s("GET /orders/*").allows_route("GET", "/orders/42/items"));
        assert!(!s("GET /orders/*").allows_route("POST", "/orders/42"));
        assert!(s("* /reports/**").allows_route("DELETE", "/reports"));
        assert!(s("* /reports/**").allows_route("GET", "/reports/a/b/c"));
        assert!(!s("* /reports/**").allows_route("GET", "/reportsX"));
        assert!(!s("* /reports/**").allows_route("GET", "/reports/../admin"));
        assert!(!s("* /reports/**").allows_route("GET", "/reports//x"));
        assert!(s("GET /").allows_route("GET", "/"));
        assert!(!s("GET /").allows_route("GET", "/x"));
        assert!(s("admin").allows_route("GET", "/anything"));
        assert!(!s("keys:issue").allows_route("GET", "/keys"));
        assert!(!s("GET /a").allows_route("GET", "a"));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(Scope::parse(""), Err(ScopeError::Length));
        assert!(matches!(
            Scope::parse("FETCH /x"),
            Err(ScopeError::Method(_))
        ));
        assert_eq!(Scope::parse("GET x"), Err(ScopeError::PathStart));
        assert_eq!(Scope::parse("GET /**/x"), Err(ScopeError::RestNotLast));
        assert!(matches!(
            Scope::parse("GET /a*b"),
            Err(ScopeError::BadSegment(_))
        ));
        assert!(matches!(
            Scope::parse("GET /a//b"),
            Err(ScopeError::BadSegment(_))
        ));
        assert_eq!(Scope::parse("Keys:Issue"), Err(ScopeError::Permission));
        assert_eq!(Scope::parse("keys"), Err(ScopeError::Permission));
        assert_eq!(Scope::parse(&"a".repeat(300)), Err(ScopeError::Length));
    }

    #[test]
    fn coverage_prevents_escalation() {
        assert!(s("admin").covers(&s("keys:issue")));
        assert!(!s("keys:issue").covers(&s("admin")));
        assert!(!s("keys:issue").covers(&s("keys:revoke")));
        assert!(s("* /orders/**").covers(&s("GET /orders/*")));
        assert!(s("GET /orders/*").covers(&s("GET /orders/42")));
        assert!(!s("GET /orders/*").covers(&s("GET /orders/**")));
        assert!(!s("GET /orders/*").covers(&s("* /orders/1")));
        assert!(!s("GET /orders/1").covers(&s("GET /orders/*")));
        assert!(holds(&[s("usage:read")], "usage:read"));
        assert!(holds(&[s("admin")], "keys:issue"));
        assert!(!holds(&[s("GET /**")], "keys:issue"));
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-c]{1,2}", 0..5)
            .prop_map(|segs| format!("/{}", segs.join("/")))
    }

    proptest! {
        #[test]
        fn text_round_trips(path in path_strategy(), star in 0usize..3) {
            let text = match star {
                0 => format!("GET {path}"),
                1 => format!("* {}/**", path.trim_end_matches('/')),
                _ => format!("POST {}/*", path.trim_end_matches('/')),
            };
            let scope = Scope::parse(&text).unwrap();
            prop_assert_eq!(Scope::parse(&scope.to_string()).unwrap(), scope);
        }

        /// Coverage is sound: whatever the covered scope allows, the covering one allows too.
        #[test]
        fn coverage_is_sound(a in path_strategy(), b in path_strategy(), req in path_strategy(),
                             wa in 0usize..3, wb in 0usize..3) {
            let mk = |p: &str, w: usize| match w {
                0 => Scope::parse(&format!("GET {p}")).unwrap(),
                1 => Scope::parse(&format!("GET {}/*", p.trim_end_matches('/'))).unwrap(),
                _ => Scope::parse(&format!("GET {}/**", p.trim_end_matches('/'))).unwrap(),
            };
            let (sa, sb) = (mk(&a, wa), mk(&b, wb));
            if sa.covers(&sb) && sb.allows_route("GET", &req) {
                prop_assert!(sa.allows_route("GET", &req));
            }
        }
    }
}
