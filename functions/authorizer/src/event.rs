//! Recognising and reading the authorizer events API Gateway sends.
//!
//! One binary serves every payload: REST `TOKEN` and `REQUEST` authorizers,
//! HTTP API payload 1.0 (same shape as REST `REQUEST`) and 2.0. The shape is
//! recognised from the event itself, then read with the `aws_lambda_events`
//! type for it. Method and path come from the method/route ARN, which holds
//! the path after the stage, exactly as the API's routes see it.

use std::net::IpAddr;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayV2CustomAuthorizerV2Request,
};
use aws_lambda_events::http::HeaderMap;
use keygate::address::parse_source_ip;
use keygate::authorize::{AuthRequest, Credential};
use serde_json::Value;

/// The event shapes we answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// REST API, `TOKEN` authorizer.
    Token,
    /// REST API `REQUEST` authorizer, or HTTP API payload format 1.0.
    Request,
    /// HTTP API payload format 2.0.
    HttpV2,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Token => "rest_token",
            Shape::Request => "rest_request",
            Shape::HttpV2 => "http_v2",
        }
    }
}

/// Query parameter names that carry keys in other products. A request using
/// one is refused even if it also has a header: the key has already leaked
/// into access logs and browser history.
const KEY_PARAMS: [&str; 8] = [
    "api_key",
    "apikey",
    "api-key",
    "x-api-key",
    "key",
    "token",
    "access_token",
    "authorization",
];

/// An owned, event-independent view of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub shape: Shape,
    credential: Found,
    pub method: String,
    pub path: String,
    pub route: Option<String>,
    pub source_ip: Option<IpAddr>,
    /// The ARN the answer's policy names (method ARN or route ARN).
    pub resource_arn: String,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    Key(String),
    /// `Authorization: Bearer` and `X-API-Key` carry different keys.
    Conflicting,
    InQuery,
    Missing,
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not an API Gateway authorizer event")]
    Unrecognised,
    #[error("{} event could not be read", shape.as_str())]
    Invalid {
        shape: Shape,
        /// Whatever ARN could be salvaged, so the deny names it.
        resource_arn: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Incoming {
    /// The pipeline's view of this request.
    pub fn auth_request(&self) -> AuthRequest<'_> {
        AuthRequest {
            credential: match &self.credential {
                Found::Key(k) => Credential::Presented(k),
                Found::Conflicting => Credential::Conflicting,
                Found::InQuery => Credential::InQuery,
                Found::Missing => Credential::Missing,
            },
            method: &self.method,
            path: &self.path,
            route: self.route.as_deref(),
            source_ip: self.source_ip,
        }
    }
}

/// Recognise the event's shape.
pub fn shape_of(event: &Value) -> Option<Shape> {
    let field = |name: &str| event.get(name).and_then(Value::as_str);
    match (field("type"), field("version")) {
        (Some("TOKEN"), _) => Some(Shape::Token),
        (Some("REQUEST"), Some("2.0")) => Some(Shape::HttpV2),
        (Some("REQUEST"), _) if event.get("methodArn").is_some() => Some(Shape::Request),
        _ => None,
    }
}

/// Read an event of any supported shape.
pub fn parse(event: Value, key_prefix: &str) -> Result<Incoming, EventError> {
    let shape = shape_of(&event).ok_or(EventError::Unrecognised)?;
    let arn_field = if shape == Shape::HttpV2 {
        "routeArn"
    } else {
        "methodArn"
    };
    let salvaged = event
        .get(arn_field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let invalid = |source| EventError::Invalid {
        shape,
        resource_arn: salvaged.clone(),
        source,
    };
    Ok(match shape {
        Shape::Token => {
            let ev: ApiGatewayCustomAuthorizerRequest =
                serde_json::from_value(event).map_err(invalid)?;
            let arn = ev.method_arn.unwrap_or_default();
            let (method, path) = split_arn(&arn);
            let credential = match ev.authorization_token.as_deref() {
                None | Some("") => Found::Missing,
                Some(token) => Found::Key(strip_bearer(token).unwrap_or(token).trim().to_owned()),
            };
            Incoming {
                shape,
                credential,
                method,
                path,
                route: None,
                source_ip: None,
                resource_arn: arn,
                request_id: None,
            }
        }
        Shape::Request => {
            let ev: ApiGatewayCustomAuthorizerRequestTypeRequest =
                serde_json::from_value(event).map_err(invalid)?;
            let arn = ev.method_arn.unwrap_or_default();
            let (arn_method, arn_path) = split_arn(&arn);
            let method = ev
                .http_method
                .map(|m| m.as_str().to_owned())
                .unwrap_or(arn_method);
            let path = if arn_path.is_empty() {
                ev.path.unwrap_or_default()
            } else {
                arn_path
            };
            let in_query = ev
                .query_string_parameters
                .iter()
                .chain(ev.multi_value_query_string_parameters.iter())
                .any(|(k, v)| query_has_key(k, v, key_prefix));
            let identity = ev.request_context.identity.as_ref();
            Incoming {
                shape,
                credential: credential(&ev.headers, in_query),
                route: ev.resource.map(|r| format!("{method} {r}")),
                method,
                path,
                source_ip: identity
                    .and_then(|i| i.source_ip.as_deref())
                    .and_then(parse_source_ip),
                resource_arn: arn,
                request_id: ev.request_context.request_id,
            }
        }
        Shape::HttpV2 => {
            let ev: ApiGatewayV2CustomAuthorizerV2Request =
                serde_json::from_value(event).map_err(invalid)?;
            let arn = ev.route_arn.unwrap_or_default();
            let (arn_method, arn_path) = split_arn(&arn);
            let http = &ev.request_context.http;
            let method = if arn_method.is_empty() {
                http.method.as_str().to_owned()
            } else {
                arn_method
            };
            let path = if arn_path.is_empty() {
                ev.raw_path.unwrap_or_default()
            } else {
                arn_path
            };
            let in_query = ev
                .query_string_parameters
                .iter()
                .any(|(k, v)| query_has_key(k, v, key_prefix))
                || ev
                    .raw_query_string
                    .as_deref()
                    .is_some_and(|q| raw_query_has_key(q, key_prefix));
            Incoming {
                shape,
                credential: credential(&ev.headers, in_query),
                method,
                path,
                route: ev.route_key,
                source_ip: http.source_ip.as_deref().and_then(parse_source_ip),
                resource_arn: arn,
                request_id: ev.request_context.request_id.clone(),
            }
        }
    })
}

/// `Bearer <token>`, scheme case-insensitive; `None` for other schemes.
fn strip_bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

/// The key from `Authorization: Bearer` or `X-API-Key` (header names are
/// case-insensitive; `HeaderMap` lower-cases them). One request, one
/// credential: when both headers carry a key and the keys differ, a backend
/// reading `X-API-Key` itself would attribute the call to another key than
/// the one we decided on (a confused deputy), so neither is used.
fn credential(headers: &HeaderMap, in_query: bool) -> Found {
    if in_query {
        return Found::InQuery;
    }
    let value = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().map(|v| v.trim().to_owned()).unwrap_or_default())
    };
    let bearer = value("authorization")
        .and_then(|auth| strip_bearer(&auth).map(|token| token.trim().to_owned()));
    match (bearer, value("x-api-key")) {
        (Some(a), Some(b)) if a != b => Found::Conflicting,
        (Some(key), _) | (None, Some(key)) => Found::Key(key),
        (None, None) => Found::Missing,
    }
}

/// Whether a query parameter carries a key: a name other products use for
/// keys, or one of our keys anywhere in its name or value.
fn query_has_key(name: &str, value: &str, prefix: &str) -> bool {
    KEY_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p))
        || contains_key(name, prefix)
        || contains_key(value, prefix)
}

/// Whether the raw query string carries a key anywhere, in any encoding:
/// percent-decoded (and `+` read as a space) before looking, so neither
/// `%20`, quotes, separators nor a parameter without `=` hides one.
fn raw_query_has_key(raw: &str, prefix: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned();
    contains_key(&decoded, prefix)
        || decoded.split('&').any(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            KEY_PARAMS
                .iter()
                .any(|p| name.trim().eq_ignore_ascii_case(p))
        })
}

/// Whether `text` holds something shaped like one of this deployment's keys
/// (`<prefix>_live_` or `<prefix>_test_`), wherever it stands.
fn contains_key(text: &str, prefix: &str) -> bool {
    ["live", "test"]
        .iter()
        .any(|env| text.contains(&format!("{prefix}_{env}_")))
}

/// Method and path from `arn:aws:execute-api:region:account:api/stage/METHOD/path`.
fn split_arn(arn: &str) -> (String, String) {
    let Some(resource) = arn.splitn(6, ':').nth(5) else {
        return (String::new(), String::new());
    };
    let mut parts = resource.splitn(4, '/');
    let (_api, _stage) = (parts.next(), parts.next());
    let method = parts.next().unwrap_or_default().to_owned();
    let path = format!("/{}", parts.next().unwrap_or_default());
    if method.is_empty() {
        return (String::new(), String::new());
    }
    (method, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_split() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/orders/42";
        assert_eq!(split_arn(arn), ("GET".into(), "/orders/42".into()));
        let root = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/";
        assert_eq!(split_arn(root), ("GET".into(), "/".into()));
        assert_eq!(split_arn("garbage"), (String::new(), String::new()));
    }

    #[test]
    fn bearer_and_query_rules() {
        assert_eq!(strip_bearer("Bearer abc"), Some("abc"));
        assert_eq!(strip_bearer("bEaReR abc"), Some("abc"));
        assert_eq!(strip_bearer("Basic abc"), None);
        assert!(raw_query_has_key("a=1&API_KEY=x", "ak"));
        assert!(raw_query_has_key("q=ak_live_xyz", "ak"));
        assert!(!raw_query_has_key("q=hello&page=2", "ak"));
        // Found by a new-user review: each of these slipped through.
        for hidden in [
            "ak_live_xyz",
            "x=%20ak_live_xyz",
            "x=+ak_test_xyz",
            "x=Bearer%20ak_live_xyz",
            "x=a,ak_live_xyz",
            "x=%22ak_live_xyz%22",
            "x=%61k_live_xyz",
            "%61pi_key=1",
        ] {
            assert!(raw_query_has_key(hidden, "ak"), "{hidden}");
        }
        assert!(query_has_key("x", " ak_live_xyz", "ak"));
        assert!(query_has_key("x", "Bearer ak_test_xyz", "ak"));
        assert!(!query_has_key("q", "ak_other", "ak"));
        assert!(!raw_query_has_key("q=ak_other&page=ak", "ak"));
    }

    #[test]
    fn unknown_shapes_are_refused() {
        assert!(matches!(
            parse(serde_json::json!({"type": "OTHER"}), "ak"),
            Err(EventError::Unrecognised)
        ));
        assert!(matches!(
            parse(Value::Null, "ak"),
            Err(EventError::Unrecognised)
        ));
        assert!(matches!(
            parse(serde_json::json!([1, 2]), "ak"),
            Err(EventError::Unrecognised)
        ));
    }
}
