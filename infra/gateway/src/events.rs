//! The events API Gateway sends (payload format 2.0) and the answers it reads.
//!
//! Everything here is pure: a request in, JSON out, and back. The shapes
//! follow the HTTP API documentation and `infra/events/http-v2.json`: the
//! `rawPath` and `requestContext.http.path` keep the stage prefix (`/prod/...`)
//! while the route ARN and the route key do not; `cookies` are lifted out of
//! the `Cookie` header; repeated headers and query parameters are joined with
//! commas; the authorizer's context reaches the function at
//! `requestContext.authorizer.lambda`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::routes::Matched;
use crate::template::AuthorizerSpec;

/// The account and API id local events carry (there is no real one).
pub const ACCOUNT_ID: &str = "123456789012";
pub const API_ID: &str = "local";
pub const REGION: &str = "us-east-1";

/// One HTTP request as the gateway received it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: String,
    /// The path without the stage (what the routes match).
    pub path: String,
    pub raw_query: String,
    /// Header names lower-cased, in arrival order, repeats kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub source_ip: String,
    pub protocol: String,
    pub request_id: String,
    pub time: OffsetDateTime,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn query(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.raw_query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// What the authorizer said.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow(Map<String, Value>),
    Deny,
}

/// An answer API Gateway could not use: it answers 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("authorizer answer has no boolean isAuthorized")]
    NotSimple,
    #[error("authorizer answer has no policyDocument")]
    NoPolicy,
    #[error("function answer has an invalid statusCode")]
    Status,
    #[error("function answer has a body that is not valid base64")]
    Base64,
}

/// Comma-joined values per name, first-seen order.
fn joined(pairs: impl IntoIterator<Item = (String, String)>) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for (k, v) in pairs {
        match out.get_mut(&k) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(&v);
            }
            _ => {
                out.insert(k, Value::String(v));
            }
        }
    }
    out
}

fn staged(stage: &str, path: &str) -> String {
    if stage == "$default" {
        path.to_owned()
    } else {
        format!("/{stage}{path}")
    }
}

/// The parts both events share.
fn common(stage: &str, req: &Incoming, matched: &Matched<'_>) -> Map<String, Value> {
    let cookies: Vec<String> = req
        .headers
        .iter()
        .filter(|(k, _)| k == "cookie")
        .flat_map(|(_, v)| {
            v.split(';')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect();
    let headers = joined(req.headers.iter().filter(|(k, _)| k != "cookie").cloned());
    let host = req.header("host").unwrap_or("localhost").to_owned();
    let raw_path = staged(stage, &req.path);
    let route_key = matched.route.key();
    let clf = format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    let mut ev = Map::new();
    ev.insert("version".into(), json!("2.0"));
    ev.insert("routeKey".into(), json!(route_key));
    ev.insert("rawPath".into(), json!(raw_path));
    ev.insert("rawQueryString".into(), json!(req.raw_query));
    if !cookies.is_empty() {
        ev.insert("cookies".into(), json!(cookies));
    }
    ev.insert("headers".into(), Value::Object(headers));
    let query = joined(req.query());
    if !query.is_empty() {
        ev.insert("queryStringParameters".into(), Value::Object(query));
    }
    if !matched.params.is_empty() {
        ev.insert(
            "pathParameters".into(),
            Value::Object(
                matched
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect(),
            ),
        );
    }
    ev.insert(
        "requestContext".into(),
        json!({
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or_default(),
            "http": {
                "method": req.method,
                "path": raw_path,
                "protocol": req.protocol,
                "sourceIp": req.source_ip,
                "userAgent": req.header("user-agent").unwrap_or_default(),
            },
            "requestId": req.request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": req.time.format(&clf).unwrap_or_default(),
            "timeEpoch": (req.time.unix_timestamp_nanos() / 1_000_000) as i64,
        }),
    );
    ev
}

/// The identity source values, or `None` when one is missing or empty:
/// then API Gateway answers 401 without invoking the authorizer.
pub fn identity_source(auth: &AuthorizerSpec, req: &Incoming) -> Option<Vec<String>> {
    let query = req.query();
    let headers = auth.identity_headers.iter().map(|name| {
        let values: Vec<&str> = req
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    });
    let queries = auth.identity_queries.iter().map(|name| {
        let values: Vec<&str> = query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(","))
    });
    headers
        .chain(queries)
        .map(|v| v.filter(|v| !v.is_empty()))
        .collect()
}

/// The authorizer's event (payload 2.0, type `REQUEST`).
pub fn authorizer_event(
    stage: &str,
    req: &Incoming,
    matched: &Matched<'_>,
    identity: &[String],
) -> Value {
    let mut ev = common(stage, req, matched);
    ev.insert("type".into(), json!("REQUEST"));
    ev.insert(
        "routeArn".into(),
        json!(format!(
            "arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{stage}/{}{}",
            req.method, req.path
        )),
    );
    ev.insert("identitySource".into(), json!(identity));
    Value::Object(ev)
}

/// The route function's event, with the authorizer's context (if any) where
/// API Gateway puts it.
pub fn proxy_event(
    stage: &str,
    req: &Incoming,
    matched: &Matched<'_>,
    context: Option<&Map<String, Value>>,
) -> Value {
    let mut ev = common(stage, req, matched);
    if let Some(ctx) = context {
        ev["requestContext"]["authorizer"] = json!({ "lambda": ctx });
    }
    match std::str::from_utf8(&req.body) {
        _ if req.body.is_empty() => {}
        Ok(text) => {
            ev.insert("body".into(), json!(text));
        }
        Err(_) => {
            ev.insert("body".into(), json!(BASE64.encode(&req.body)));
        }
    }
    let binary = !req.body.is_empty() && std::str::from_utf8(&req.body).is_err();
    ev.insert("isBase64Encoded".into(), json!(binary));
    Value::Object(ev)
}

/// Read the authorizer's answer.
pub fn verdict(
    auth: &AuthorizerSpec,
    answer: &Value,
    route_arn: &str,
) -> Result<Verdict, AnswerError> {
    let context = answer
        .get("context")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if auth.simple_responses {
        return match answer.get("isAuthorized").and_then(Value::as_bool) {
            Some(true) => Ok(Verdict::Allow(context)),
            Some(false) => Ok(Verdict::Deny),
            None => Err(AnswerError::NotSimple),
        };
    }
    let statements = answer
        .get("policyDocument")
        .and_then(|p| p.get("Statement"))
        .and_then(Value::as_array)
        .ok_or(AnswerError::NoPolicy)?;
    let applies = |s: &Value| {
        let resources: Vec<&str> = match s.get("Resource") {
            Some(Value::String(r)) => vec![r.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        resources.iter().any(|r| wildcard(r, route_arn))
    };
    let effect = |e: &str| {
        statements
            .iter()
            .any(|s| s.get("Effect").and_then(Value::as_str) == Some(e) && applies(s))
    };
    Ok(if effect("Allow") && !effect("Deny") {
        Verdict::Allow(context)
    } else {
        Verdict::Deny
    })
}

/// IAM-style match: `*` any run of characters, `?` one character.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// API Gateway's own answers: `{"message": "..."}`.
    pub fn message(status: u16, message: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({ "message": message }).to_string().into_bytes(),
        }
    }
}

/// Translate a function's answer (payload 2.0). An object with `statusCode`
/// is a full response; anything else is a `200` JSON body, as API Gateway
/// infers it.
pub fn reply(answer: &Value) -> Result<Reply, AnswerError> {
    let Some(status) = answer.get("statusCode") else {
        return Ok(Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: answer.to_string().into_bytes(),
        });
    };
    let status = status
        .as_u64()
        .filter(|s| (100..=599).contains(s))
        .ok_or(AnswerError::Status)? as u16;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(map) = answer.get("headers").and_then(Value::as_object) {
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            headers.push((k.to_ascii_lowercase(), v));
        }
    }
    if let Some(map) = answer.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vs) in map {
            for v in vs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                headers.push((k.to_ascii_lowercase(), v.to_owned()));
            }
        }
    }
    for cookie in answer
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        headers.push(("set-cookie".into(), cookie.to_owned()));
    }
    let text = answer
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = if answer.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        BASE64.decode(text).map_err(|_| AnswerError::Base64)?
    } else {
        text.as_bytes().to_vec()
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Method, Pattern, Route};
    use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;

    fn route() -> Route {
        Route {
            method: Method::parse("GET").unwrap(),
            pattern: Pattern::parse("/orders/{id}").unwrap(),
            function: "orders".into(),
            authorizer: Some("Keys".into()),
        }
    }

    fn incoming(headers: &[(&str, &str)], query: &str, body: &[u8]) -> Incoming {
        Incoming {
            method: "GET".into(),
            path: "/orders/42".into(),
            raw_query: query.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1".into(),
            request_id: "req-1".into(),
            time: OffsetDateTime::from_unix_timestamp(1_795_942_800).unwrap(),
        }
    }

    fn auth(headers: &[&str]) -> AuthorizerSpec {
        AuthorizerSpec {
            name: "Keys".into(),
            function: "authorizer".into(),
            simple_responses: true,
            identity_headers: headers.iter().map(|h| h.to_string()).collect(),
            identity_queries: vec![],
        }
    }

    #[test]
    fn the_authorizer_event_is_the_fixtures_shape() {
        let r = route();
        let m = Matched {
            route: &r,
            params: vec![("id".into(), "42".into())],
        };
        let req = incoming(
            &[
                ("authorization", "Bearer k"),
                ("host", "127.0.0.1:3000"),
                ("user-agent", "curl/8"),
                ("cookie", "a=1; b=2"),
            ],
            "page=2&tag=x&tag=y",
            b"",
        );
        let ev = authorizer_event("prod", &req, &m, &["Bearer k".into()]);
        let fixture: Value =
            serde_json::from_str(include_str!("../../events/http-v2.json")).unwrap();
        // Same fields at the top level and in requestContext / http.
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let mut expected = keys(&fixture);
        expected.retain(|k| k != "stageVariables");
        assert_eq!(keys(&ev), expected);
        assert_eq!(
            keys(&ev["requestContext"]),
            keys(&fixture["requestContext"])
        );
        assert_eq!(
            keys(&ev["requestContext"]["http"]),
            keys(&fixture["requestContext"]["http"])
        );
        assert_eq!(
            ev["routeArn"],
            "arn:aws:execute-api:us-east-1:123456789012:local/prod/GET/orders/42"
        );
        assert_eq!(ev["routeKey"], "GET /orders/{id}");
        assert_eq!(ev["rawPath"], "/prod/orders/42");
        assert_eq!(ev["requestContext"]["http"]["path"], "/prod/orders/42");
        assert_eq!(ev["requestContext"]["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(ev["requestContext"]["time"], "29/Nov/2026:09:00:00 +0000");
        assert_eq!(ev["requestContext"]["timeEpoch"], 1_795_942_800_000i64);
        assert_eq!(ev["identitySource"], json!(["Bearer k"]));
        assert_eq!(ev["cookies"], json!(["a=1", "b=2"]));
        assert!(ev["headers"].get("cookie").is_none());
        assert_eq!(
            ev["queryStringParameters"],
            json!({"page": "2", "tag": "x,y"})
        );
        assert_eq!(ev["pathParameters"], json!({"id": "42"}));
        // The event type the authorizer reads it with accepts it.
        let typed: ApiGatewayV2CustomAuthorizerV2Request = serde_json::from_value(ev).unwrap();
        assert_eq!(typed.route_key.as_deref(), Some("GET /orders/{id}"));
        assert_eq!(
            typed.request_context.http.source_ip.as_deref(),
            Some("127.0.0.1")
        );
    }

    #[test]
    fn the_proxy_event_carries_the_context_and_the_body() {
        let r = route();
        let m = Matched {
            route: &r,
            params: vec![],
        };
        let ctx: Map<String, Value> =
            serde_json::from_value(json!({"keyId": "key_x", "quotaRemaining": 3})).unwrap();
        let ev = proxy_event("$default", &incoming(&[], "", b"{\"a\":1}"), &m, Some(&ctx));
        assert_eq!(
            ev["requestContext"]["authorizer"]["lambda"]["keyId"],
            "key_x"
        );
        assert_eq!(ev["rawPath"], "/orders/42");
        assert_eq!(ev["body"], "{\"a\":1}");
        assert_eq!(ev["isBase64Encoded"], false);
        assert!(ev.get("type").is_none() && ev.get("routeArn").is_none());
        let binary = proxy_event("prod", &incoming(&[], "", &[0xff, 0x00]), &m, None);
        assert_eq!(binary["isBase64Encoded"], true);
        assert_eq!(binary["body"], "/wA=");
        assert!(binary["requestContext"].get("authorizer").is_none());
        // lambda_http (what the functions use) reads it, context included.
        let req = lambda_http::request::from_str(&ev.to_string()).unwrap();
        use lambda_http::RequestExt as _;
        match req.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => {
                assert_eq!(c.authorizer.as_ref().unwrap().fields["keyId"], "key_x");
            }
            other => panic!("not an HTTP API request: {other:?}"),
        }
    }

    #[test]
    fn identity_sources_must_all_be_present_and_non_empty() {
        let req = incoming(&[("authorization", "Bearer k")], "", b"");
        assert_eq!(identity_source(&auth(&[]), &req), Some(vec![]));
        assert_eq!(
            identity_source(&auth(&["authorization"]), &req),
            Some(vec!["Bearer k".into()])
        );
        assert_eq!(
            identity_source(&auth(&["authorization", "x-api-key"]), &req),
            None
        );
        let empty = incoming(&[("x-api-key", "")], "", b"");
        assert_eq!(identity_source(&auth(&["x-api-key"]), &empty), None);
        let mut q = auth(&[]);
        q.identity_queries = vec!["token".into()];
        assert_eq!(
            identity_source(&q, &incoming(&[], "token=t", b"")),
            Some(vec!["t".into()])
        );
        assert_eq!(identity_source(&q, &incoming(&[], "other=t", b"")), None);
    }

    #[test]
    fn verdicts_simple_and_iam() {
        let simple = auth(&[]);
        assert_eq!(
            verdict(
                &simple,
                &json!({"isAuthorized": true, "context": {"keyId": "k"}}),
                "arn"
            ),
            Ok(Verdict::Allow(
                serde_json::from_value(json!({"keyId": "k"})).unwrap()
            ))
        );
        assert_eq!(
            verdict(&simple, &json!({"isAuthorized": false}), "arn"),
            Ok(Verdict::Deny)
        );
        assert_eq!(
            verdict(&simple, &json!({"isAuthorized": "yes"}), "arn"),
            Err(AnswerError::NotSimple)
        );
        let iam = AuthorizerSpec {
            simple_responses: false,
            ..simple
        };
        let arn = "arn:aws:execute-api:us-east-1:123456789012:local/prod/GET/orders/42";
        let policy = |effect: &str, resource: &str| {
            json!({"principalId": "k", "policyDocument": {"Version": "2012-10-17",
                   "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": [resource]}]}})
        };
        assert!(matches!(
            verdict(&iam, &policy("Allow", arn), arn),
            Ok(Verdict::Allow(_))
        ));
        assert!(matches!(
            verdict(
                &iam,
                &policy("Allow", "arn:aws:execute-api:*/prod/GET/*"),
                arn
            ),
            Ok(Verdict::Allow(_))
        ));
        assert_eq!(
            verdict(&iam, &policy("Allow", "arn:other"), arn),
            Ok(Verdict::Deny)
        );
        assert_eq!(verdict(&iam, &policy("Deny", arn), arn), Ok(Verdict::Deny));
        assert_eq!(verdict(&iam, &json!({}), arn), Err(AnswerError::NoPolicy));
    }

    #[test]
    fn replies_are_translated() {
        let r = reply(
            &json!({"statusCode": 201, "headers": {"Content-Type": "application/json", "X-N": 1},
                              "cookies": ["a=1", "b=2"], "body": "{}", "isBase64Encoded": false}),
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"{}");
        assert_eq!(
            r.headers,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("x-n".into(), "1".into()),
                ("set-cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into())
            ]
        );
        let b =
            reply(&json!({"statusCode": 200, "body": "/wA=", "isBase64Encoded": true})).unwrap();
        assert_eq!(b.body, vec![0xff, 0x00]);
        let bare = reply(&json!({"hello": "world"})).unwrap();
        assert_eq!(
            (bare.status, bare.body),
            (200, b"{\"hello\":\"world\"}".to_vec())
        );
        assert_eq!(
            reply(&json!({"statusCode": 1000})),
            Err(AnswerError::Status)
        );
        assert_eq!(
            reply(&json!({"statusCode": 200, "body": "!!", "isBase64Encoded": true})),
            Err(AnswerError::Base64)
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", "anything"));
        assert!(wildcard("a*c", "abbbc"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "abbc"));
        assert!(!wildcard("abc", "abcd"));
    }
}
