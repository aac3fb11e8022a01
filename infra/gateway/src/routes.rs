//! Route matching as HTTP APIs do it.
//!
//! A route is a method (or `ANY`) and a path of literal segments, `{name}`
//! parameters (one segment) and at most one greedy `{name+}` parameter, last
//! (one or more segments). When several routes match, the most specific one
//! wins, segment by segment from the left: a literal over a parameter over a
//! greedy parameter; then a named method over `ANY`. A request no route
//! matches, whatever its method, gets 404.

use std::cmp::Ordering;

use percent_encoding::percent_decode_str;

/// Why a route in the template cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("path must start with '/': {0:?}")]
    NotAbsolute(String),
    #[error("malformed path parameter in segment {0:?}")]
    BadParameter(String),
    #[error("a greedy parameter must be the last segment")]
    GreedyNotLast,
    #[error("unknown method {0:?}")]
    BadMethod(String),
}

/// A route's method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Any,
    Exact(String),
}

impl Method {
    pub fn parse(text: &str) -> Result<Self, RouteError> {
        let upper = text.to_ascii_uppercase();
        match upper.as_str() {
            "ANY" | "X-AMAZON-APIGATEWAY-ANY-METHOD" => Ok(Method::Any),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => {
                Ok(Method::Exact(upper))
            }
            _ => Err(RouteError::BadMethod(text.to_owned())),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Method::Any => "ANY",
            Method::Exact(m) => m,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

impl Segment {
    /// Higher is more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
            Segment::Greedy(_) => 0,
        }
    }
}

/// A route's path pattern, e.g. `/v1/keys/{key_id}` or `/files/{proxy+}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, RouteError> {
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| RouteError::NotAbsolute(text.to_owned()))?;
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for raw in rest.split('/') {
                if matches!(segments.last(), Some(Segment::Greedy(_))) {
                    return Err(RouteError::GreedyNotLast);
                }
                let segment = match raw.strip_prefix('{') {
                    None if raw.contains(['{', '}']) => {
                        return Err(RouteError::BadParameter(raw.to_owned()))
                    }
                    None => Segment::Literal(raw.to_owned()),
                    Some(inner) => {
                        let name = inner
                            .strip_suffix('}')
                            .filter(|n| !n.is_empty() && !n.contains(['{', '}']))
                            .ok_or_else(|| RouteError::BadParameter(raw.to_owned()))?;
                        match name.strip_suffix('+') {
                            Some("") => return Err(RouteError::BadParameter(raw.to_owned())),
                            Some(greedy) => Segment::Greedy(greedy.to_owned()),
                            None => Segment::Param(name.to_owned()),
                        }
                    }
                };
                segments.push(segment);
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The path parameters (decoded) if `path` matches.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = if rest.is_empty() {
            vec![]
        } else {
            rest.split('/').collect()
        };
        let mut params = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Greedy(name) => {
                    let tail = &parts[i.min(parts.len())..];
                    if tail.is_empty() || tail.iter().all(|p| p.is_empty()) {
                        return None;
                    }
                    params.push((name.clone(), decode(&tail.join("/"))));
                    return Some(params);
                }
                Segment::Literal(lit) => {
                    if parts.get(i) != Some(&lit.as_str()) {
                        return None;
                    }
                }
                Segment::Param(name) => match parts.get(i) {
                    Some(value) if !value.is_empty() => params.push((name.clone(), decode(value))),
                    _ => return None,
                },
            }
        }
        (parts.len() == self.segments.len()).then_some(params)
    }

    fn specificity(&self) -> Vec<u8> {
        self.segments.iter().map(Segment::rank).collect()
    }
}

fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// One route of the API and what serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub pattern: Pattern,
    /// The function that serves the route.
    pub function: String,
    /// The authorizer in front of it (`None`: an open route).
    pub authorizer: Option<String>,
}

impl Route {
    /// The route key as API Gateway writes it: `GET /v1/keys/{key_id}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method.as_str(), self.pattern.as_str())
    }
}

/// A request matched to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'a> {
    pub route: &'a Route,
    pub params: Vec<(String, String)>,
}

/// All routes of the API.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The most specific route for `method` and `path` (the path after the stage).
    pub fn find(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        self.routes
            .iter()
            .filter(|r| match &r.method {
                Method::Any => true,
                Method::Exact(m) => m.eq_ignore_ascii_case(method),
            })
            .filter_map(|r| {
                Some(Matched {
                    route: r,
                    params: r.pattern.matches(path)?,
                })
            })
            .max_by(|a, b| compare(a.route, b.route))
    }
}

fn compare(a: &Route, b: &Route) -> Ordering {
    a.pattern
        .specificity()
        .cmp(&b.pattern.specificity())
        .then_with(|| {
            let exact = |r: &Route| matches!(r.method, Method::Exact(_));
            exact(a).cmp(&exact(b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str, function: &str) -> Route {
        Route {
            method: Method::parse(method).unwrap(),
            pattern: Pattern::parse(path).unwrap(),
            function: function.into(),
            authorizer: Some("auth".into()),
        }
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route("POST", "/v1/keys", "issue"),
            route("GET", "/v1/keys", "list"),
            route("GET", "/v1/keys/{key_id}", "show"),
            route("POST", "/v1/keys/{key_id}/revoke", "revoke"),
            route("GET", "/v1/keys/special", "special"),
            route("ANY", "/v1/keys/special", "any-special"),
            route("ANY", "/files/{proxy+}", "files"),
            route("GET", "/files/{dir}/index", "index"),
            route("GET", "/", "root"),
        ])
    }

    fn hit(method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
        table()
            .find(method, path)
            .map(|m| (m.route.function.clone(), m.params))
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn literal_routes_and_methods() {
        assert_eq!(hit("POST", "/v1/keys"), Some(("issue".into(), vec![])));
        assert_eq!(hit("GET", "/v1/keys"), Some(("list".into(), vec![])));
        assert_eq!(hit("get", "/v1/keys"), Some(("list".into(), vec![])));
        assert_eq!(
            hit("DELETE", "/v1/keys"),
            None,
            "no route for the method: 404"
        );
        assert_eq!(hit("GET", "/"), Some(("root".into(), vec![])));
        assert_eq!(hit("GET", "/v1/nothing"), None);
    }

    #[test]
    fn parameters_match_one_non_empty_segment() {
        assert_eq!(
            hit("GET", "/v1/keys/key_abc"),
            Some(("show".into(), p(&[("key_id", "key_abc")])))
        );
        assert_eq!(
            hit("POST", "/v1/keys/key_abc/revoke"),
            Some(("revoke".into(), p(&[("key_id", "key_abc")])))
        );
        assert_eq!(hit("GET", "/v1/keys/"), None);
        assert_eq!(hit("GET", "/v1/keys/a/b"), None);
        assert_eq!(hit("POST", "/v1/keys//revoke"), None);
        assert_eq!(
            hit("GET", "/v1/keys/a%20b"),
            Some(("show".into(), p(&[("key_id", "a b")]))),
            "parameters are decoded"
        );
    }

    #[test]
    fn the_most_specific_route_wins() {
        assert_eq!(hit("GET", "/v1/keys/special").unwrap().0, "special");
        assert_eq!(hit("PATCH", "/v1/keys/special").unwrap().0, "any-special");
        assert_eq!(hit("GET", "/files/docs/index").unwrap().0, "index");
        assert_eq!(
            hit("DELETE", "/files/docs/index"),
            Some(("files".into(), p(&[("proxy", "docs/index")])))
        );
    }

    #[test]
    fn greedy_parameters_take_one_or_more_segments() {
        assert_eq!(
            hit("GET", "/files/a/b/c.txt"),
            Some(("files".into(), p(&[("proxy", "a/b/c.txt")])))
        );
        assert_eq!(
            hit("GET", "/files/x"),
            Some(("files".into(), p(&[("proxy", "x")])))
        );
        assert_eq!(hit("GET", "/files/"), None);
        assert_eq!(hit("GET", "/files"), None);
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(
            Pattern::parse("v1"),
            Err(RouteError::NotAbsolute("v1".into()))
        );
        assert_eq!(
            Pattern::parse("/a/{proxy+}/b"),
            Err(RouteError::GreedyNotLast)
        );
        assert!(matches!(
            Pattern::parse("/a/{id"),
            Err(RouteError::BadParameter(_))
        ));
        assert!(matches!(
            Pattern::parse("/a/x{id}"),
            Err(RouteError::BadParameter(_))
        ));
        assert!(matches!(
            Pattern::parse("/a/{}"),
            Err(RouteError::BadParameter(_))
        ));
        assert!(matches!(
            Pattern::parse("/a/{+}"),
            Err(RouteError::BadParameter(_))
        ));
        assert_eq!(Method::parse("ANY"), Ok(Method::Any));
        assert_eq!(
            Method::parse("x-amazon-apigateway-any-method"),
            Ok(Method::Any)
        );
        assert!(Method::parse("BREW").is_err());
    }

    #[test]
    fn route_keys_read_like_api_gateway() {
        assert_eq!(
            route("get", "/v1/keys/{key_id}", "f").key(),
            "GET /v1/keys/{key_id}"
        );
        assert_eq!(
            route("ANY", "/files/{proxy+}", "f").key(),
            "ANY /files/{proxy+}"
        );
    }
}
