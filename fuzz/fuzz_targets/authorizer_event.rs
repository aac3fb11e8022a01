//! Authorizer events from raw bytes: JSON decoding, shape detection, reading
//! the request, and the whole decision pipeline over an in-memory store that
//! holds one key and admits every request (no DynamoDB).
//!
//! `__KEY__` in the input (the fixtures in `infra/events/` carry it, and they
//! seed the corpus) stands for that key, so mutations reach the steps after
//! the checksum: status, allowlist, scopes, answer shaping. Whatever the
//! input: no panic; an error only for events of no known shape; an allow
//! only for an event that carries the key, on a route its scope covers; the
//! key never in the answer (unless placed in the ARN the answer names).

#![no_main]

use std::sync::OnceLock;

use authorizer::event::{parse, shape_of};
use authorizer::response::V2Response;
use authorizer::{Handler, Settings};
use keygate::authorize::{AuthConfig, Authorizer};
use keygate::clock::ManualClock;
use keygate::issue::{mint, KeySpec};
use keygate::key::{ApiKey, KeyEnv, KeyFormat};
use keygate::scope::Scope;
use keygate_tests::instant::InstantStore;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// 2026-11-29T12:00:00Z.
const NOON: i64 = 1_795_953_600;

struct Rig {
    runtime: tokio::runtime::Runtime,
    handler: Handler<InstantStore, ManualClock>,
    key: ApiKey,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
        let spec = KeySpec::new("acme", "fuzz", vec![Scope::parse("GET /orders/*").unwrap()]);
        let (key, record) = mint(&format, spec, NOON - 60);
        let authorizer = Authorizer::new(
            InstantStore { record },
            ManualClock::at(NOON),
            format,
            AuthConfig::default(),
        );
        let settings = Settings {
            v2_response: V2Response::Simple,
            deadline: std::time::Duration::from_secs(5),
        };
        Rig {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap(),
            handler: Handler::new(authorizer, settings, "ak"),
            key,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let rig = rig();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = text.replace("__KEY__", rig.key.expose());
    let Ok(event) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    let recognised = shape_of(&event).is_some();
    let arns = format!("{}{}", event["methodArn"], event["routeArn"]);
    let read = parse(event.clone(), "ak").ok();
    let handled = rig.runtime.block_on(rig.handler.handle(event, "fuzz"));
    let Ok(handled) = handled else {
        assert!(!recognised, "a recognised event was refused");
        return;
    };
    assert!(recognised, "an unrecognised event was answered");
    let answer = handled.response.to_string();
    // The policy names the event's ARN (set by API Gateway, never by the
    // caller); short of a key placed there, the answer never holds the key.
    if !arns.contains(rig.key.expose()) {
        assert!(!answer.contains(rig.key.expose()), "the key is in the answer");
    }
    if handled.allowed {
        assert!(handled.reason.is_none());
        assert!(text.contains(rig.key.expose()), "allowed without the key");
        let incoming = read.expect("an allowed event was readable");
        assert!(incoming.method.eq_ignore_ascii_case("GET"), "{incoming:?}");
        assert!(incoming.path.starts_with("/orders/"), "{incoming:?}");
        // A policy names exactly the request's ARN, never a wildcard.
        let statements = handled.response["policyDocument"]["Statement"].to_string();
        assert!(!statements.contains('*'), "wildcard in an allow: {answer}");
    } else {
        assert!(handled.reason.is_some(), "a deny without a reason");
        assert!(!answer.contains("\"Allow\""), "a deny that allows: {answer}");
        assert!(handled.response["isAuthorized"] != Value::Bool(true));
    }
});
