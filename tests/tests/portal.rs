//! The developer portal against the emulator, through the real SDK: its
//! routes served by `keygate::portal::Portal` (what the `portal` function
//! runs, with the embedded site), a manual clock for expiry.
//!
//! Sessions: permission, no escalation, single use, expiry, forged links,
//! cookie flags, sign-out and revocation. The API: CSRF and origin, tenant
//! isolation, grants, the audit actor. Storage: only hashes, 503 when the
//! store fails. Pages: security headers. The browser tests
//! (`infra/local/browser-tests`) drive the same function over HTTP.

use keygate::clock::ManualClock;
use keygate::key::{KeyEnv, KeyFormat};
use keygate::limits::{Limits, Period, Quota};
use keygate::manage::request::IssueRequest;
use keygate::manage::{Caller, KeyService};
use keygate::portal::headers::CSP;
use keygate::portal::{Portal, PortalRequest, PortalResponse, PortalSettings};
use keygate::secrets::SecretsManager;
use keygate::store::DynamoStore;
use keygate_tests::faults::{Fault, FaultProxy};
use keygate_tests::{fresh_store, logs, openapi, sdk_config, unique_name};
use serde_json::{json, Value};

const NOON: i64 = 1_767_268_800; // 2026-01-01T12:00:00Z
const HOST: &str = "127.0.0.1:3000";
const ORIGIN: &str = "http://127.0.0.1:3000";

type TestPortal = Portal<DynamoStore, ManualClock, SecretsManager>;

struct Env {
    portal: TestPortal,
    clock: ManualClock,
    store: DynamoStore,
    /// The provider's backend key: `portal:create`, two routes, a quota.
    provider: Caller,
}

async fn portal_over(store: DynamoStore, clock: ManualClock) -> TestPortal {
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let keys = KeyService::new(
        store.clone(),
        clock.clone(),
        KeyFormat::new("ak", KeyEnv::Test).unwrap(),
        SecretsManager::new(secrets),
        &unique_name("keygate"),
    );
    portal::wire(store, clock, keys, PortalSettings::default())
}

fn issue_request(owner: &str, name: &str, scopes: &[&str], limits: Limits) -> IssueRequest {
    IssueRequest {
        owner: Some(owner.into()),
        name: name.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        limits,
        allowed_cidrs: vec![],
        expires_at: None,
        rotation_days: None,
        metadata: Default::default(),
        deliver_to_secret: false,
    }
}

fn remember(key: &str) {
    let format = KeyFormat::new("ak", KeyEnv::Test).unwrap();
    logs::remember(&format.parse(key).expect("a key we issued"));
}

async fn env() -> Env {
    let store = fresh_store().await;
    let clock = ManualClock::at(NOON);
    let portal = portal_over(store.clone(), clock.clone()).await;
    let quota = Limits {
        quota: Some(Quota {
            limit: 1000,
            period: Period::Day,
        }),
        rate: None,
    };
    let issued = portal
        .keys
        .issue(
            &Caller::operator("test"),
            issue_request(
                "provider",
                "backend",
                &["portal:create", "GET /v1/whoami", "GET /v1/usage/**"],
                quota,
            ),
        )
        .await
        .unwrap();
    remember(&issued.key);
    let provider = Caller {
        key_id: Some(issued.view.key_id.clone()),
        actor: issued.view.key_id.as_str().to_owned(),
        owner: "provider".into(),
        scopes: issued.view.scopes.clone(),
        grants: None,
    };
    Env {
        portal,
        clock,
        store,
        provider,
    }
}

/// One request, owned, turned into a `PortalRequest` when sent.
#[derive(Default, Clone)]
struct Call {
    method: &'static str,
    path: String,
    body: Option<Value>,
    cookie: Option<String>,
    csrf: Option<String>,
    origin: Option<String>,
    caller: Option<Caller>,
}

impl Call {
    fn new(method: &'static str, path: &str) -> Self {
        Self {
            method,
            path: format!("/prod{path}"),
            origin: (method != "GET").then(|| ORIGIN.to_owned()),
            ..Self::default()
        }
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn session(mut self, s: &Session) -> Self {
        self.cookie = Some(format!("other=1; keygate_portal={}", s.id));
        self.csrf = Some(s.csrf.clone());
        self
    }

    async fn send(&self, portal: &TestPortal) -> PortalResponse {
        let body = self
            .body
            .as_ref()
            .map(|b| b.to_string().into_bytes())
            .unwrap_or_default();
        let (path, query) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let query = query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let req = PortalRequest {
            api: keygate::manage::ApiRequest {
                method: self.method,
                path,
                query,
                content_type: self.body.as_ref().map(|_| "application/json"),
                body: &body,
                caller: self.caller.clone(),
            },
            host: Some(HOST),
            origin: self.origin.as_deref(),
            forwarded_proto: None,
            csrf: self.csrf.as_deref(),
            cookie: self.cookie.as_deref(),
        };
        portal.handle(&req).await
    }
}

fn code(r: &PortalResponse) -> String {
    r.json_body()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A session as the page holds it: the cookie's value (which the page
/// itself never reads) and the CSRF token.
struct Session {
    id: String,
    csrf: String,
    set_cookie: String,
}

impl Env {
    /// `POST /v1/portal/sessions` as `caller`.
    async fn open(&self, caller: &Caller, body: Value) -> PortalResponse {
        let mut call = Call::new("POST", "/v1/portal/sessions").body(body);
        call.caller = Some(caller.clone());
        call.origin = None;
        let r = call.send(&self.portal).await;
        // Every answer is one infra/openapi.yaml documents.
        openapi::check("POST", "/v1/portal/sessions", r.status, &r.json_body());
        r
    }

    /// A link's token for `owner`, granted `scopes`.
    async fn link(&self, owner: &str, scopes: &[&str]) -> String {
        let r = self
            .open(
                &self.provider,
                json!({"owner": owner, "grants": {"scopes": scopes, "limits": {"quota": {"limit": 100, "period": "day"}}}}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json_body());
        let url = r.json_body()["url"].as_str().unwrap().to_owned();
        let token = url.split_once("#t=").unwrap().1.to_owned();
        logs::remember_secret(&token);
        token
    }

    async fn exchange(&self, token: &str) -> PortalResponse {
        Call::new("POST", "/portal/api/session")
            .body(json!({ "token": token }))
            .send(&self.portal)
            .await
    }

    async fn session(&self, owner: &str) -> Session {
        let token = self.link(owner, &["GET /v1/whoami"]).await;
        let r = self.exchange(&token).await;
        assert_eq!(r.status, 201, "{:?}", r.json_body());
        let set_cookie = r.header_value("set-cookie").unwrap().to_owned();
        let id = set_cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("keygate_portal=")
            .unwrap()
            .to_owned();
        logs::remember_secret(&id);
        Session {
            id,
            csrf: r.json_body()["csrf_token"].as_str().unwrap().to_owned(),
            set_cookie,
        }
    }
}

async fn create_key(env: &Env, s: &Session, scopes: &[&str]) -> PortalResponse {
    let r = Call::new("POST", "/portal/api/keys")
        .session(s)
        .body(json!({"name": "mine", "scopes": scopes, "limits": {"quota": {"limit": 10, "period": "day"}}}))
        .send(&env.portal)
        .await;
    if let Some(key) = r.json_body()["key"].as_str() {
        remember(key);
    }
    r
}

#[tokio::test]
async fn opening_a_session_needs_portal_create_and_answers_a_link() {
    let env = env().await;
    let mut reader = env.provider.clone();
    reader.scopes = vec![keygate::scope::Scope::parse("keys:issue").unwrap()];
    let r = env.open(&reader, json!({"owner": "acme"})).await;
    assert_eq!((r.status, code(&r).as_str()), (403, "missing_permission"));

    let r = env
        .open(
            &env.provider,
            json!({"owner": "acme", "return_url": "https://app.example.com/account"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json_body());
    let body = r.json_body();
    let url = body["url"].as_str().unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:3000/portal/home#t="),
        "{url}"
    );
    assert!(!url.contains('?'), "no query string: {url}");
    logs::remember_secret(url.split_once("#t=").unwrap().1);
    assert_eq!(body["expires_at"], json!(NOON + 600));

    // Without the caller (a route not behind the authorizer): 401.
    let r = Call::new("POST", "/v1/portal/sessions")
        .body(json!({"owner": "acme"}))
        .send(&env.portal)
        .await;
    assert_eq!((r.status, code(&r).as_str()), (401, "unauthenticated"));
}

#[tokio::test]
async fn grants_beyond_the_calling_key_are_refused() {
    let env = env().await;
    let r = env
        .open(
            &env.provider,
            json!({"owner": "acme", "grants": {"scopes": ["GET /v1/**"]}}),
        )
        .await;
    assert_eq!((r.status, code(&r).as_str()), (403, "scope_escalation"));
    // The provider key has a quota of 1000/day: no quota is looser.
    let r = env
        .open(
            &env.provider,
            json!({"owner": "acme", "grants": {"scopes": ["GET /v1/whoami"]}}),
        )
        .await;
    assert_eq!((r.status, code(&r).as_str()), (403, "limit_escalation"));
    // Even an admin cannot hand out admin or portal:create.
    for scope in ["admin", "portal:create"] {
        let r = env
            .open(
                &Caller::operator("test"),
                json!({"owner": "acme", "grants": {"scopes": [scope]}}),
            )
            .await;
        assert_eq!((r.status, code(&r).as_str()), (403, "scope_escalation"));
    }
    let r = env
        .open(&env.provider, json!({"owner": "acme", "extra": 1}))
        .await;
    assert_eq!((r.status, code(&r).as_str()), (400, "unknown_field"));
}

#[tokio::test]
async fn a_link_works_once_and_sets_a_strict_cookie() {
    let env = env().await;
    let token = env.link("acme", &["GET /v1/whoami"]).await;
    let first = env.exchange(&token).await;
    assert_eq!(first.status, 201, "{:?}", first.json_body());
    let cookie = first.header_value("set-cookie").unwrap();
    for flag in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/portal",
        "Max-Age=3600",
    ] {
        assert!(cookie.split("; ").any(|f| f == flag), "{flag} in {cookie}");
    }
    logs::remember_secret(
        cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("keygate_portal="),
    );
    assert_eq!(first.json_body()["owner"], json!("acme"));
    let second = env.exchange(&token).await;
    assert_eq!(
        (second.status, code(&second).as_str()),
        (401, "link_invalid")
    );
}

#[tokio::test]
async fn expired_and_forged_links_are_refused() {
    let env = env().await;
    let token = env.link("acme", &["GET /v1/whoami"]).await;
    env.clock.advance(600);
    let r = env.exchange(&token).await;
    assert_eq!((r.status, code(&r).as_str()), (401, "link_expired"));

    let forged = keygate::portal::token::Secret::generate();
    let r = env.exchange(forged.expose()).await;
    assert_eq!((r.status, code(&r).as_str()), (401, "link_invalid"));
    for bad in ["", "x", "../../etc", &"A".repeat(500)] {
        let r = env.exchange(bad).await;
        assert_eq!(
            (r.status, code(&r).as_str()),
            (401, "link_invalid"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn sessions_expire_end_and_can_be_revoked() {
    let env = env().await;
    let s = env.session("acme").await;
    let get = Call::new("GET", "/portal/api/session").session(&s);
    assert_eq!(get.send(&env.portal).await.status, 200);
    env.clock.advance(3600);
    let r = get.send(&env.portal).await;
    assert_eq!((r.status, code(&r).as_str()), (401, "session_expired"));

    env.clock.set(NOON);
    let s = env.session("acme").await;
    let r = Call::new("DELETE", "/portal/api/session")
        .session(&s)
        .send(&env.portal)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header_value("set-cookie").unwrap().contains("Max-Age=0"));
    let r = Call::new("GET", "/portal/api/keys")
        .session(&s)
        .send(&env.portal)
        .await;
    assert_eq!((r.status, code(&r).as_str()), (401, "session_required"));

    let s = env.session("acme").await;
    let other = env.session("globex").await;
    // The owner index is eventually consistent; the expired session (never
    // signed out) goes too, the signed-out one is gone already.
    keygate_tests::caught_up().await;
    let mut revoke = Call::new("DELETE", "/v1/portal/sessions?owner=acme");
    revoke.origin = None;
    let r = revoke.send(&env.portal).await;
    assert_eq!((r.status, code(&r).as_str()), (401, "unauthenticated"));
    let mut reader = env.provider.clone();
    reader.scopes = vec![keygate::scope::Scope::parse("keys:read").unwrap()];
    revoke.caller = Some(reader);
    let r = revoke.send(&env.portal).await;
    assert_eq!((r.status, code(&r).as_str()), (403, "missing_permission"));
    revoke.caller = Some(env.provider.clone());
    let r = revoke.send(&env.portal).await;
    openapi::check("DELETE", "/v1/portal/sessions", r.status, &r.json_body());
    assert_eq!((r.status, r.json_body()), (200, json!({"revoked": 2})));
    let still = Call::new("GET", "/portal/api/keys").session(&other);
    assert_eq!(
        still.send(&env.portal).await.status,
        200,
        "other owners keep theirs"
    );
    let mut no_owner = revoke.clone();
    no_owner.path = "/prod/v1/portal/sessions".into();
    let r = no_owner.send(&env.portal).await;
    assert_eq!((r.status, code(&r).as_str()), (400, "missing_owner"));
    let r = Call::new("GET", "/portal/api/keys")
        .session(&s)
        .send(&env.portal)
        .await;
    assert_eq!((r.status, code(&r).as_str()), (401, "session_required"));
    let r = Call::new("GET", "/portal/api/keys").send(&env.portal).await;
    assert_eq!((r.status, code(&r).as_str()), (401, "session_required"));
}

#[tokio::test]
async fn state_changing_calls_need_the_csrf_token_and_this_origin() {
    let env = env().await;
    let s = env.session("acme").await;
    let call = Call::new("POST", "/portal/api/keys")
        .session(&s)
        .body(json!({"name": "k", "scopes": ["GET /v1/whoami"], "limits": {"quota": {"limit": 5, "period": "day"}}}));
    let mut no_csrf = call.clone();
    no_csrf.csrf = None;
    let r = no_csrf.send(&env.portal).await;
    assert_eq!((r.status, code(&r).as_str()), (403, "csrf_failed"));
    let mut wrong = call.clone();
    wrong.csrf = Some(env.session("acme").await.csrf);
    let r = wrong.send(&env.portal).await;
    assert_eq!((r.status, code(&r).as_str()), (403, "csrf_failed"));
    let mut elsewhere = call.clone();
    elsewhere.origin = Some("https://evil.example".into());
    let r = elsewhere.send(&env.portal).await;
    assert_eq!((r.status, code(&r).as_str()), (403, "origin_refused"));
    let mut no_origin = call.clone();
    no_origin.origin = None;
    assert_eq!(no_origin.send(&env.portal).await.status, 403);
    // An exchange from another origin is refused too.
    let token = env.link("acme", &["GET /v1/whoami"]).await;
    let mut exchange = Call::new("POST", "/portal/api/session").body(json!({ "token": token }));
    exchange.origin = Some("https://evil.example".into());
    assert_eq!(exchange.send(&env.portal).await.status, 403);
    // Nothing was created; with both, the key is.
    let list = Call::new("GET", "/portal/api/keys").session(&s);
    assert_eq!(list.send(&env.portal).await.json_body()["keys"], json!([]));
    let r = call.send(&env.portal).await;
    assert_eq!(r.status, 201, "{:?}", r.json_body());
    remember(r.json_body()["key"].as_str().unwrap());
}

#[tokio::test]
async fn a_session_sees_and_changes_only_its_owners_keys() {
    let env = env().await;
    let a = env.session("acme").await;
    let b = env.session("globex").await;
    let mine = create_key(&env, &a, &["GET /v1/whoami"]).await;
    assert_eq!(mine.status, 201, "{:?}", mine.json_body());
    let id = mine.json_body()["key_id"].as_str().unwrap().to_owned();
    // Owner B's session: A's key is a 404, exactly like a missing key.
    for (method, path) in [
        ("GET", format!("/portal/api/keys/{id}")),
        ("GET", format!("/portal/api/keys/{id}/events")),
        ("GET", format!("/portal/api/usage/keys/{id}")),
        ("POST", format!("/portal/api/keys/{id}/revoke")),
        ("POST", format!("/portal/api/keys/{id}/rotate")),
    ] {
        let mut call = Call::new(method, &path).session(&b);
        if method == "POST" {
            call = call.body(json!({}));
        }
        let r = call.send(&env.portal).await;
        assert_eq!(
            (r.status, code(&r).as_str()),
            (404, "not_found"),
            "{method} {path}"
        );
    }
    let list = Call::new("GET", "/portal/api/keys").session(&b);
    assert_eq!(list.send(&env.portal).await.json_body()["keys"], json!([]));
    // A's own session sees it, rotates it (the successor shown once) and revokes it.
    let r = Call::new("GET", &format!("/portal/api/keys/{id}"))
        .session(&a)
        .send(&env.portal)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json_body().get("key").is_none(), "never the key again");
    let r = Call::new("POST", &format!("/portal/api/keys/{id}/rotate"))
        .session(&a)
        .body(json!({"grace_seconds": 60}))
        .send(&env.portal)
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json_body());
    remember(r.json_body()["successor"]["key"].as_str().unwrap());
    let successor = r.json_body()["successor"]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = Call::new("POST", &format!("/portal/api/keys/{successor}/revoke"))
        .session(&a)
        .body(json!({}))
        .send(&env.portal)
        .await;
    assert_eq!(r.json_body()["status"], json!("revoked"));
}

#[tokio::test]
async fn keys_stay_within_the_sessions_grants_and_the_audit_names_the_session() {
    let env = env().await;
    let s = env.session("acme").await;
    let r = create_key(&env, &s, &["GET /v1/keys"]).await;
    assert_eq!((r.status, code(&r).as_str()), (403, "scope_escalation"));
    let r = create_key(&env, &s, &["keys:issue"]).await;
    assert_eq!((r.status, code(&r).as_str()), (403, "scope_escalation"));
    // The grants' quota is 100/day: none, or 1000, is looser.
    let r = Call::new("POST", "/portal/api/keys")
        .session(&s)
        .body(json!({"name": "n", "scopes": ["GET /v1/whoami"]}))
        .send(&env.portal)
        .await;
    assert_eq!((r.status, code(&r).as_str()), (403, "limit_escalation"));
    let r = Call::new("POST", "/portal/api/keys")
        .session(&s)
        .body(json!({"name": "n", "scopes": ["GET /v1/whoami"], "owner": "globex", "limits": {"quota": {"limit": 5, "period": "day"}}}))
        .send(&env.portal)
        .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (404, "not_found"),
        "no other owner"
    );
    let r = Call::new("POST", "/portal/api/keys")
        .session(&s)
        .body(json!({"name": "n", "scopes": ["GET /v1/whoami"], "deliver_to_secret": true}))
        .send(&env.portal)
        .await;
    assert_eq!(r.status, 400);

    let r = create_key(&env, &s, &["GET /v1/whoami"]).await;
    assert_eq!(r.status, 201);
    let id = r.json_body()["key_id"].as_str().unwrap().to_owned();
    let events = Call::new("GET", &format!("/portal/api/keys/{id}/events"))
        .session(&s)
        .send(&env.portal)
        .await
        .json_body();
    let actor = events["events"][0]["actor"].as_str().unwrap().to_owned();
    assert!(actor.starts_with("portal:"), "{actor}");
    assert!(!actor.contains(&s.id), "the session id is never the actor");
    let hash = keygate::portal::token::Secret::parse(&s.id).unwrap().hash();
    assert_eq!(actor, format!("portal:{}", &hash[..16]));
}

#[tokio::test]
async fn the_table_holds_only_hashes_of_links_and_sessions() {
    let env = env().await;
    let unused = env.link("acme", &["GET /v1/whoami"]).await;
    let s = env.session("acme").await;
    let items = env
        .store
        .client()
        .scan()
        .table_name(env.store.table())
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let dump = format!("{:?}", items.items());
    for secret in [&unused, &s.id, &s.csrf] {
        assert!(!dump.contains(secret.as_str()), "a secret is stored");
    }
    for secret in [&unused, &s.id] {
        let hash = keygate::portal::token::Secret::parse(secret)
            .unwrap()
            .hash();
        assert!(dump.contains(&hash), "stored under its hash");
    }
    assert!(dump.contains("ttl"), "with a TTL");
    assert!(!s.set_cookie.is_empty());
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_errors_are_clear() {
    let env = env().await;
    let r = Call::new("GET", "/portal").send(&env.portal).await;
    assert_eq!(
        (r.status, r.header_value("location")),
        (308, Some("/portal/home"))
    );
    let r = Call::new("GET", "/portal/home").send(&env.portal).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/html; charset=utf-8");
    assert_eq!(r.header_value("content-security-policy"), Some(CSP));
    assert!(CSP.contains("default-src 'none'") && CSP.contains("frame-ancestors 'none'"));
    assert!(!CSP.contains("unsafe"));
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(r.header_value(name), Some(value), "{name}");
    }
    let html = String::from_utf8(r.body.clone()).unwrap();
    assert!(
        !html.contains("style=") && !html.contains("<script>"),
        "no inline script or style"
    );
    let r = Call::new("GET", "/portal/assets/app.js")
        .send(&env.portal)
        .await;
    assert_eq!(
        (r.status, r.content_type),
        (200, "text/javascript; charset=utf-8")
    );
    let r = Call::new("GET", "/portal/nope").send(&env.portal).await;
    assert_eq!(r.status, 404);
    assert!(String::from_utf8(r.body.clone())
        .unwrap()
        .contains("<h1>Not found</h1>"));
    assert_eq!(r.header_value("content-security-policy"), Some(CSP));
    let r = Call::new("GET", "/portal/api/nope").send(&env.portal).await;
    assert_eq!(r.status, 401, "the API needs a session first");
    let s = env.session("acme").await;
    let r = Call::new("GET", "/portal/api/nope")
        .session(&s)
        .send(&env.portal)
        .await;
    assert_eq!((r.status, code(&r).as_str()), (404, "no_route"));
    let r = Call::new("PUT", "/portal/api/keys")
        .session(&s)
        .send(&env.portal)
        .await;
    assert_eq!((r.status, code(&r).as_str()), (405, "method_not_allowed"));
    // The embedded spec needs a session.
    let r = Call::new("GET", "/portal/openapi.yaml")
        .send(&env.portal)
        .await;
    assert_eq!(r.status, 401);
    let r = Call::new("GET", "/portal/openapi.yaml")
        .session(&s)
        .send(&env.portal)
        .await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("/v1/portal/sessions"));
}

#[tokio::test]
async fn a_failing_store_answers_503_never_500() {
    let env = env().await;
    let s = env.session("acme").await;
    let token = env.link("acme", &["GET /v1/whoami"]).await;
    let proxy = FaultProxy::to_emulator().await;
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
            .endpoint_url(proxy.endpoint())
            .build(),
    );
    let broken = portal_over(
        DynamoStore::new(client, env.store.table()),
        env.clock.clone(),
    )
    .await;
    proxy.set(Fault::ServerError);
    let r = Call::new("GET", "/portal/api/keys")
        .session(&s)
        .send(&broken)
        .await;
    assert_eq!((r.status, code(&r).as_str()), (503, "unavailable"));
    assert_eq!(r.header_value("retry-after"), Some("1"));
    let r = Call::new("POST", "/portal/api/session")
        .body(json!({ "token": token }))
        .send(&broken)
        .await;
    assert_eq!((r.status, code(&r).as_str()), (503, "unavailable"));
    assert!(
        !String::from_utf8(r.body).unwrap().contains("Dynamo"),
        "no detail"
    );
    proxy.set(Fault::PassThrough);
    assert_eq!(env.exchange(&token).await.status, 201, "the link survived");
}
