//! Authorizer events for tests, built from the committed fixtures in
//! `infra/events/` (the same files the README uses with `cargo lambda invoke`).

use serde_json::Value;

/// The payload formats the authorizer serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    RestToken,
    RestRequest,
    HttpV1,
    /// HTTP API payload 2.0, simple responses.
    HttpV2Simple,
    /// HTTP API payload 2.0, IAM policy responses.
    HttpV2Iam,
}

impl Payload {
    pub const ALL: [Payload; 5] = [
        Payload::RestToken,
        Payload::RestRequest,
        Payload::HttpV1,
        Payload::HttpV2Simple,
        Payload::HttpV2Iam,
    ];

    fn fixture(self) -> &'static str {
        match self {
            Payload::RestToken => include_str!("../../infra/events/rest-token.json"),
            Payload::RestRequest => include_str!("../../infra/events/rest-request.json"),
            Payload::HttpV1 => include_str!("../../infra/events/http-v1.json"),
            Payload::HttpV2Simple | Payload::HttpV2Iam => {
                include_str!("../../infra/events/http-v2.json")
            }
        }
    }

    /// Whether the event carries headers, a query string and a source IP.
    pub fn has_request_details(self) -> bool {
        self != Payload::RestToken
    }
}

/// The fixture with `key` in place of the placeholder, or with the key
/// removed entirely when `key` is `None`.
pub fn event(payload: Payload, key: Option<&str>) -> Value {
    let text = payload.fixture();
    match key {
        Some(key) => serde_json::from_str(&text.replace("__KEY__", key)).expect("fixture is JSON"),
        None => {
            let mut ev: Value = serde_json::from_str(text).expect("fixture is JSON");
            remove_key(&mut ev);
            ev
        }
    }
}

fn remove_key(ev: &mut Value) {
    let obj = ev.as_object_mut().expect("fixture is an object");
    if obj.contains_key("authorizationToken") {
        obj.insert("authorizationToken".into(), Value::String(String::new()));
    }
    for field in ["headers", "multiValueHeaders"] {
        if let Some(headers) = obj.get_mut(field).and_then(Value::as_object_mut) {
            headers.retain(|_, v| !v.to_string().contains("__KEY__"));
        }
    }
}

/// Set the request's method and path (ARN, route, raw path), e.g. `POST`, `/orders`.
pub fn with_route(mut ev: Value, method: &str, path: &str) -> Value {
    let arn = format!("arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/{method}{path}");
    let obj = ev.as_object_mut().expect("object");
    for field in ["methodArn", "routeArn"] {
        if obj.contains_key(field) {
            obj.insert(field.into(), Value::String(arn.clone()));
        }
    }
    if obj.contains_key("httpMethod") {
        obj.insert("httpMethod".into(), Value::String(method.into()));
    }
    if let Some(http) = obj
        .get_mut("requestContext")
        .and_then(|c| c.get_mut("http"))
        .and_then(Value::as_object_mut)
    {
        http.insert("method".into(), Value::String(method.into()));
    }
    ev
}

/// Add a query parameter (where the payload has a query string).
pub fn with_query(mut ev: Value, name: &str, value: &str) -> Value {
    let obj = ev.as_object_mut().expect("object");
    if let Some(q) = obj
        .get_mut("queryStringParameters")
        .and_then(Value::as_object_mut)
    {
        q.insert(name.into(), Value::String(value.into()));
    }
    if let Some(q) = obj
        .get_mut("multiValueQueryStringParameters")
        .and_then(Value::as_object_mut)
    {
        q.insert(name.into(), serde_json::json!([value]));
    }
    if obj.contains_key("rawQueryString") {
        obj.insert(
            "rawQueryString".into(),
            Value::String(format!("{name}={value}")),
        );
    }
    ev
}

/// Add a request header (both the single- and multi-value maps where the
/// payload has them).
pub fn with_header(mut ev: Value, name: &str, value: &str) -> Value {
    let obj = ev.as_object_mut().expect("object");
    if let Some(h) = obj.get_mut("headers").and_then(Value::as_object_mut) {
        h.insert(name.into(), Value::String(value.into()));
    }
    if let Some(h) = obj
        .get_mut("multiValueHeaders")
        .and_then(Value::as_object_mut)
    {
        h.insert(name.into(), serde_json::json!([value]));
    }
    ev
}

/// Set the caller's source address.
pub fn with_source_ip(mut ev: Value, ip: &str) -> Value {
    if let Some(ctx) = ev.get_mut("requestContext").and_then(Value::as_object_mut) {
        if let Some(identity) = ctx.get_mut("identity").and_then(Value::as_object_mut) {
            identity.insert("sourceIp".into(), Value::String(ip.into()));
        }
        if let Some(http) = ctx.get_mut("http").and_then(Value::as_object_mut) {
            http.insert("sourceIp".into(), Value::String(ip.into()));
        }
    }
    ev
}

/// Read an answer the way API Gateway would: does it let the request through?
/// Checked independently of the handler's own summary.
pub fn allows(payload: Payload, response: &Value, arn_expected: Option<&str>) -> bool {
    if payload == Payload::HttpV2Simple {
        return response["isAuthorized"] == Value::Bool(true);
    }
    let statements = response["policyDocument"]["Statement"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let allow = statements.iter().any(|s| s["Effect"] == "Allow");
    let deny = statements.iter().any(|s| s["Effect"] == "Deny");
    if allow {
        // An Allow names exactly the request's ARN, never a wildcard.
        for s in &statements {
            let resources: Vec<String> = match &s["Resource"] {
                Value::String(r) => vec![r.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => vec![],
            };
            assert!(
                resources.iter().all(|r| !r.contains('*')),
                "wildcard resource in {response}"
            );
            if let Some(arn) = arn_expected {
                assert_eq!(resources, vec![arn.to_owned()]);
            }
        }
    }
    allow && !deny
}

/// The deny reason an answer carries in its context.
pub fn reason(response: &Value) -> Option<String> {
    response["context"]["reason"].as_str().map(str::to_owned)
}

/// A management API request as API Gateway (HTTP API, payload 2.0) passes it
/// to the `keys` function, built from `infra/events/http-v2-proxy.json`:
/// `context` is the authorizer's answer context (`keyId`, `owner`, `scopes`).
pub fn management(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&Value>,
    context: &Value,
) -> Value {
    let mut ev: Value = serde_json::from_str(include_str!("../../infra/events/http-v2-proxy.json"))
        .expect("fixture is JSON");
    let route = format!("{method} {path}");
    let raw_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let params: serde_json::Map<String, Value> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    ev["routeKey"] = Value::String(route.clone());
    ev["rawPath"] = Value::String(path.into());
    ev["rawQueryString"] = Value::String(raw_query);
    ev["queryStringParameters"] = Value::Object(params);
    ev["requestContext"]["routeKey"] = Value::String(route);
    ev["requestContext"]["http"]["method"] = Value::String(method.into());
    ev["requestContext"]["http"]["path"] = Value::String(path.into());
    ev["requestContext"]["authorizer"]["lambda"] = context.clone();
    if let Some(body) = body {
        ev["body"] = Value::String(body.to_string());
    }
    ev
}
