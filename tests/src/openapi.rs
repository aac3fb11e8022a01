//! The OpenAPI contract (`infra/openapi.yaml`) as a test oracle: every
//! response a test sees must be documented for its route and status and
//! match the documented schema.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Value};

const SPEC: &str = include_str!("../../infra/openapi.yaml");

fn spec() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_norway::from_str(SPEC).expect("openapi.yaml is valid YAML"))
}

/// The documented path template a concrete path falls under.
pub fn template_of(path: &str) -> Option<String> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    spec()["paths"].as_object()?.keys().find_map(|t| {
        let tsegs: Vec<&str> = t.trim_matches('/').split('/').collect();
        (tsegs.len() == segs.len()
            && tsegs
                .iter()
                .zip(&segs)
                .all(|(a, b)| a.starts_with('{') || a == b))
        .then(|| t.clone())
    })
}

fn escape(part: &str) -> String {
    part.replace('~', "~0").replace('/', "~1")
}

/// Assert that `body` is a documented response of `method path` with `status`.
///
/// # Panics
/// If the route or status is undocumented, or the body does not match.
pub fn check(method: &str, path: &str, status: u16, body: &Value) {
    static CACHE: OnceLock<Mutex<HashMap<String, jsonschema::Validator>>> = OnceLock::new();
    let template = template_of(path).unwrap_or_else(|| panic!("{path} is not documented"));
    let op = format!(
        "/paths/{}/{}",
        escape(&template),
        method.to_ascii_lowercase()
    );
    let mut response = if spec().pointer(&op).is_none() {
        // Methods a path does not have answer 405, with the shared error body.
        assert_eq!(status, 405, "{method} {template} is not an operation");
        spec()["components"]["responses"]["MethodNotAllowed"].clone()
    } else {
        spec()
            .pointer(&format!("{op}/responses/{status}"))
            .unwrap_or_else(|| panic!("{method} {template} does not document status {status}"))
            .clone()
    };
    if let Some(r) = response.get("$ref").and_then(Value::as_str) {
        response = spec()
            .pointer(&r[1..])
            .expect("response ref resolves")
            .clone();
    }
    let schema = response
        .pointer("/content/application~1json/schema")
        .unwrap_or_else(|| panic!("{method} {template} {status} has no JSON schema"))
        .clone();
    let key = format!("{method} {template} {status}");
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().expect("validator cache");
    let validator = cache.entry(key.clone()).or_insert_with(|| {
        // The schema, with the spec's components beside it so `$ref`s resolve.
        let mut root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": spec()["components"].clone(),
        });
        root["allOf"] = json!([schema]);
        jsonschema::draft202012::new(&root).expect("schema compiles")
    });
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{key}: response does not match the contract: {errors:?}\n{body}"
    );
}
