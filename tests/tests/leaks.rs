//! Leak reports (issue 16), in process against the emulator: reports signed
//! with a local P-256 key pair whose public key a local stand-in for
//! GitHub's key endpoint serves, the real key fetch, the real store, and
//! the authorizer deciding on the reported key afterwards.

use base64::Engine;
use keygate::clock::{Clock, ManualClock};
use keygate::issue::KeySpec;
use keygate::key::{ApiKey, KeyEnv, KeyFormat};
use keygate::leak::http::{github, GithubRequest};
use keygate::leak::keys::KeyCache;
use keygate::leak::signature::p256_pem;
use keygate::leak::{LeakPolicy, LeakService};
use keygate::model::{KeyRecord, KeyStatus};
use keygate::scope::Scope;
use keygate::store::{AuditAction, DynamoStore, KeyAdmin};
use keygate_tests::counting::{counted, RequestCount};
use keygate_tests::events::{event, reason, Payload};
use keygate_tests::notices::Recorded;
use keygate_tests::{fresh_store, logs, openapi};
use leaks::HttpKeySource;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// 2026-11-29T12:00:00Z.
const NOON: i64 = 1_795_953_600;
const KEY_ID: &str = "test-signing-key";

fn pair() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn sign(pair: &EcdsaKeyPair, body: &[u8]) -> String {
    let sig = pair.sign(&SystemRandom::new(), body).unwrap();
    base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
}

/// A stand-in for GitHub's key endpoint: answers every request with `list`.
async fn key_endpoint(list: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/meta/public_keys/secret_scanning",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let list = list.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{list}",
                    list.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

struct Rig {
    store: DynamoStore,
    requests: RequestCount,
    clock: ManualClock,
    format: KeyFormat,
    signer: EcdsaKeyPair,
    service: LeakService<DynamoStore, ManualClock, Recorded>,
    keys: KeyCache<HttpKeySource, ManualClock>,
    notices: Recorded,
}

async fn rig(policy: LeakPolicy) -> Rig {
    logs::init();
    let store = fresh_store().await;
    let (counted_store, requests) = counted(&store);
    let clock = ManualClock::at(NOON);
    let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
    let signer = pair();
    let list = json!({"public_keys": [{
        "key_identifier": KEY_ID,
        "key": p256_pem(signer.public_key().as_ref()),
        "is_current": true,
    }]});
    let url = key_endpoint(list.to_string()).await;
    let notices = Recorded::default();
    Rig {
        service: LeakService::new(
            counted_store,
            clock.clone(),
            format.clone(),
            policy,
            notices.clone(),
        ),
        keys: KeyCache::new(HttpKeySource::new(&url).unwrap(), clock.clone()),
        store,
        requests,
        clock,
        format,
        signer,
        notices,
    }
}

impl Rig {
    async fn issue(&self) -> (ApiKey, KeyRecord) {
        let spec = KeySpec::new(
            "acme",
            "leaky",
            vec![Scope::parse("GET /orders/*").unwrap()],
        );
        keygate_tests::store_key(&self.store, &self.format, spec, self.clock.now()).await
    }

    fn body(tokens: &[&str]) -> Vec<u8> {
        let matches: Vec<Value> = tokens
            .iter()
            .map(|t| json!({"token": t, "type": "keygate_api_key", "url": "https://github.com/octo/repo/blob/x/config.env", "source": "content"}))
            .collect();
        serde_json::to_vec(&matches).unwrap()
    }

    /// Send a report signed by our key pair.
    async fn report(&self, body: &[u8]) -> (u16, Value) {
        let sig = sign(&self.signer, body);
        self.send(Some(KEY_ID), Some(&sig), body).await
    }

    async fn send(&self, key_id: Option<&str>, sig: Option<&str>, body: &[u8]) -> (u16, Value) {
        let req = GithubRequest {
            key_id,
            signature: sig,
            body,
        };
        let (status, answer) = github(&self.service, &self.keys, req).await;
        // Every answer is the documented one.
        openapi::check("POST", "/v1/leaks/github", status, &answer);
        (status, answer)
    }

    async fn record(&self, r: &KeyRecord) -> KeyRecord {
        self.store.key_by_id(&r.key_id).await.unwrap().unwrap()
    }

    async fn leaked_events(&self, r: &KeyRecord) -> usize {
        let page = self.store.events(&r.key_id, 100, None).await.unwrap();
        page.items
            .iter()
            .filter(|e| e.action == AuditAction::Leaked)
            .count()
    }

    /// The authorizer's answer for `key` on a route its scope covers.
    async fn authorize(&self, key: &ApiKey) -> Option<String> {
        let handler =
            keygate_tests::v2_handler(self.store.clone(), self.clock.clone(), self.format.clone());
        let handled = handler
            .handle(event(Payload::HttpV2Simple, Some(key.expose())), "req-leak")
            .await
            .unwrap();
        if handled.allowed {
            None
        } else {
            reason(&handled.response)
        }
    }
}

fn labels(answer: &Value) -> Vec<String> {
    answer
        .as_array()
        .expect("an array of verdicts")
        .iter()
        .map(|v| v["label"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reported_key_is_revoked_audited_and_its_owner_told() {
    let rig = rig(LeakPolicy::Revoke).await;
    let (key, record) = rig.issue().await;
    assert_eq!(rig.authorize(&key).await, None, "live before the report");
    let (status, answer) = rig.report(&Rig::body(&[key.expose()])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!([{"token_hash": record.hash.as_str(), "token_type": "keygate_api_key", "label": "true_positive"}])
    );
    assert_eq!(rig.authorize(&key).await.as_deref(), Some("revoked"));
    let stored = rig.record(&record).await;
    assert_eq!(stored.status, KeyStatus::Revoked);
    assert_eq!(rig.leaked_events(&record).await, 1);
    let notices = rig.notices.all();
    assert_eq!(notices.len(), 1);
    assert_eq!(
        (notices[0].key_id.clone(), notices[0].policy),
        (record.key_id.clone(), "revoke")
    );
    assert_eq!(notices[0].hint, record.hint);
    assert!(!serde_json::to_string(&notices[0])
        .unwrap()
        .contains(key.expose()));
}

#[tokio::test]
async fn quarantine_denies_leaked_until_revoked() {
    let rig = rig(LeakPolicy::Quarantine).await;
    let (key, record) = rig.issue().await;
    // Warm the authorizer's cache with the live record: the allowance must
    // refuse it anyway.
    let handler =
        keygate_tests::v2_handler(rig.store.clone(), rig.clock.clone(), rig.format.clone());
    let first = handler
        .handle(event(Payload::HttpV2Simple, Some(key.expose())), "r1")
        .await
        .unwrap();
    assert!(first.allowed);
    let (status, answer) = rig.report(&Rig::body(&[key.expose()])).await;
    assert_eq!(
        (status, labels(&answer)),
        (200, vec!["true_positive".to_owned()])
    );
    let cached = handler
        .handle(event(Payload::HttpV2Simple, Some(key.expose())), "r2")
        .await
        .unwrap();
    assert!(!cached.allowed, "a cached record must not be admitted");
    assert_eq!(rig.authorize(&key).await.as_deref(), Some("leaked"));
    assert_eq!(rig.record(&record).await.status, KeyStatus::Quarantined);
    assert_eq!(rig.notices.all()[0].policy, "quarantine");
}

#[tokio::test]
async fn notify_only_flags() {
    let rig = rig(LeakPolicy::Notify).await;
    let (key, record) = rig.issue().await;
    let (status, _) = rig.report(&Rig::body(&[key.expose()])).await;
    assert_eq!(status, 200);
    assert_eq!(
        rig.authorize(&key).await,
        None,
        "notify leaves the key working"
    );
    let stored = rig.record(&record).await;
    assert_eq!(stored.leak.map(|m| m.policy), Some(LeakPolicy::Notify));
    assert_eq!(rig.leaked_events(&record).await, 1);
}

#[tokio::test]
async fn false_positives_and_no_io_for_non_keys() {
    let rig = rig(LeakPolicy::Revoke).await;
    // A valid checksum, but never issued.
    let unknown = rig.format.generate();
    rig.requests.take();
    let (status, answer) = rig.report(&Rig::body(&[unknown.expose()])).await;
    assert_eq!(
        (status, labels(&answer)),
        (200, vec!["false_positive".to_owned()])
    );
    assert_eq!(
        rig.requests.take(),
        1,
        "one batched read for a well-formed token"
    );
    let (status, answer) = rig
        .report(&Rig::body(&[
            "ak_test_notakeyatall",
            "ghp_something",
            "ak_live_0000000000000000000000000000000000000000000000000",
        ]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(labels(&answer), vec!["false_positive"; 3]);
    assert_eq!(rig.requests.take(), 0, "non-keys cost no DynamoDB request");
    assert!(rig.notices.all().is_empty());
}

#[tokio::test]
async fn unsigned_or_forged_reports_are_401_and_change_nothing() {
    let rig = rig(LeakPolicy::Revoke).await;
    let (key, record) = rig.issue().await;
    let body = Rig::body(&[key.expose()]);
    let good = sign(&rig.signer, &body);
    let other = sign(&pair(), &body);
    let mut altered = body.clone();
    altered.extend_from_slice(b" ");
    // (what, key id, signature, body, expected code)
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8], &'a str);
    let cases: Vec<Case> = vec![
        ("bad signature", Some(KEY_ID), Some("MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc="), &body, "invalid_signature"),
        ("another key's signature", Some(KEY_ID), Some(&other), &body, "invalid_signature"),
        ("unknown key id", Some("someone-else"), Some(&good), &body, "unknown_signing_key"),
        ("altered body", Some(KEY_ID), Some(&good), &altered, "invalid_signature"),
        ("no signature", Some(KEY_ID), None, &body, "missing_signature"),
    ];
    rig.requests.take();
    for (what, key_id, sig, body, code) in cases {
        let (status, answer) = rig.send(key_id, sig, body).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{what}");
    }
    assert_eq!(rig.requests.take(), 0);
    assert_eq!(rig.record(&record).await, record);
    assert!(rig.notices.all().is_empty());
    assert_eq!(rig.authorize(&key).await, None);
}

#[tokio::test]
async fn bad_input_has_its_own_codes() {
    let rig = rig(LeakPolicy::Revoke).await;
    let big = vec![b' '; keygate::leak::report::MAX_BODY + 1];
    let (status, answer) = rig.report(&big).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let tokens: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let (status, answer) = rig.report(&Rig::body(&refs)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("too_many_tokens"))
    );
    let (status, answer) = rig.report(b"{\"token\": 1").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("malformed_report"))
    );
}

#[tokio::test]
async fn the_same_report_twice_and_concurrently_acts_once() {
    for policy in [
        LeakPolicy::Revoke,
        LeakPolicy::Quarantine,
        LeakPolicy::Notify,
    ] {
        let rig = rig(policy).await;
        let (key, record) = rig.issue().await;
        let body = Rig::body(&[key.expose()]);
        let (a, b) = tokio::join!(rig.report(&body), rig.report(&body));
        let c = rig.report(&body).await;
        assert_eq!(a, b, "{policy:?}");
        assert_eq!(a, c, "{policy:?}");
        assert_eq!(labels(&a.1), vec!["true_positive"]);
        assert_eq!(rig.leaked_events(&record).await, 1, "{policy:?}");
        assert_eq!(rig.notices.all().len(), 1, "{policy:?}");
    }
}

#[tokio::test]
async fn a_hundred_tokens_cost_one_batched_read_plus_one_write_per_key() {
    let rig = rig(LeakPolicy::Revoke).await;
    let mut ours = Vec::new();
    for _ in 0..3 {
        ours.push(rig.issue().await);
    }
    let unknown: Vec<ApiKey> = (0..97).map(|_| rig.format.generate()).collect();
    let mut tokens: Vec<&str> = unknown.iter().map(ApiKey::expose).collect();
    tokens.extend(ours.iter().map(|(k, _)| k.expose()));
    rig.requests.take();
    let (status, answer) = rig.report(&Rig::body(&tokens)).await;
    assert_eq!(status, 200, "{answer}");
    let labels = labels(&answer);
    assert_eq!(labels.iter().filter(|l| *l == "true_positive").count(), 3);
    assert_eq!(labels.iter().filter(|l| *l == "false_positive").count(), 97);
    // One BatchGetItem (100 keys), one transaction per key found.
    assert_eq!(rig.requests.take(), 1 + 3);
    for (key, _) in &ours {
        assert_eq!(rig.authorize(key).await.as_deref(), Some("revoked"));
    }
}

#[tokio::test]
async fn the_other_key_of_a_rotated_lineage_keeps_working_but_is_flagged() {
    use keygate::manage::view::KeyView;
    use keygate::usage::report::{build, Thresholds};
    use keygate::usage::Day;
    use std::collections::BTreeMap;

    let rig = rig(LeakPolicy::Revoke).await;
    let (old_key, old) = rig.issue().await;
    let now = rig.clock.now();
    let (new_key, successor) = keygate::issue::successor(&rig.format, &old, now);
    keygate_tests::logs::remember(&new_key);
    rig.store
        .rotate(&old, &successor, now + 3600, now, "operator:test")
        .await
        .unwrap();
    // The old key (in its grace period) leaks.
    let (status, answer) = rig.report(&Rig::body(&[old_key.expose()])).await;
    assert_eq!(
        (status, labels(&answer)),
        (200, vec!["true_positive".to_owned()])
    );
    assert_eq!(rig.authorize(&old_key).await.as_deref(), Some("revoked"));
    assert_eq!(
        rig.authorize(&new_key).await,
        None,
        "the successor is another secret: it keeps working"
    );
    let flagged = rig.record(&successor).await;
    assert_eq!(flagged.status, KeyStatus::Active);
    assert_eq!(flagged.version, successor.version, "a flag, not a change");
    let mark = flagged
        .lineage_leak
        .clone()
        .expect("the successor is flagged");
    assert_eq!(mark.key_id, old.key_id);
    let events = rig
        .store
        .events(&successor.key_id, 100, None)
        .await
        .unwrap();
    let lineage: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.action == AuditAction::LineageLeaked)
        .collect();
    assert_eq!(lineage.len(), 1, "{:?}", events.items);
    assert!(lineage[0].change.contains(old.key_id.as_str()));
    // One report, one notice: the owner hears of the leaked key.
    assert_eq!(rig.notices.all().len(), 1);

    // Both show it in GET /v1/keys/{id}, as documented.
    let leaked = rig.record(&old).await;
    let leaked_view = serde_json::to_value(KeyView::from(&leaked)).unwrap();
    let flagged_view = serde_json::to_value(KeyView::from(&flagged)).unwrap();
    for view in [&leaked_view, &flagged_view] {
        openapi::check("GET", "/v1/keys/{key_id}", 200, view);
    }
    assert_eq!(leaked_view["leak"]["policy"], "revoke");
    assert_eq!(
        leaked_view["leak"]["source_url"],
        "https://github.com/octo/repo/blob/x/config.env"
    );
    assert_eq!(leaked_view["lineage_leak"], Value::Null);
    assert_eq!(flagged_view["leak"], Value::Null);
    assert_eq!(flagged_view["lineage_leak"]["key_id"], old.key_id.as_str());

    // The owner's daily report for that day carries both flags, first;
    // the day after, neither.
    let keys = vec![leaked, flagged];
    let today = build(
        "acme",
        Day::of(now),
        &keys,
        &BTreeMap::new(),
        &Default::default(),
        &Thresholds::default(),
        now,
    );
    let names: Vec<(&str, Option<&str>)> =
        today.flags.iter().map(|f| (f.name(), f.key_id())).collect();
    assert_eq!(
        names[..2],
        [
            ("leaked", Some(old.key_id.as_str())),
            ("lineage_leaked", Some(successor.key_id.as_str()))
        ],
        "{today:?}"
    );
    let report = serde_json::to_value(&today).unwrap();
    openapi::check("GET", "/v1/usage/reports/{day}", 200, &report);
    let next = build(
        "acme",
        Day::of(now + 86_400),
        &keys,
        &BTreeMap::new(),
        &Default::default(),
        &Thresholds::default(),
        now,
    );
    assert!(
        next.flags.iter().all(|f| !f.name().contains("leaked")),
        "{next:?}"
    );

    // The flagged successor leaking itself later is handled in full.
    let (status, _) = rig.report(&Rig::body(&[new_key.expose()])).await;
    assert_eq!(status, 200);
    assert_eq!(rig.authorize(&new_key).await.as_deref(), Some("revoked"));
}
