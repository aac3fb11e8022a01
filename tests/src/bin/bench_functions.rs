//! Every function binary run as Lambda runs it: a process started with the
//! environment Lambda sets, serving events from a stand-in Runtime API
//! ([`keygate_tests::runtime_api`]), against the local emulator over HTTP.
//!
//! For each function under `functions/`:
//! - **cold start**: `RUNS` fresh processes, each timed from spawn to its
//!   first `/next` poll (initialisation) and to its first answer (which, for
//!   the authorizer, includes the DynamoDB round trips of an allowed decision);
//! - **load**: one process serving many events, then its peak resident memory
//!   (`VmHWM`) and the duration of each invocation (event handed out to
//!   answer received, what Lambda bills).
//!
//! Also the authorizer's allowance item after the load (a day of usage
//! counters), sized by DynamoDB's rules, for the write cost of a decision.
//! Prints one JSON object (read by `infra/bench/report.py`); progress and the
//! functions' own logs go elsewhere (`LOG_DIR`, default `target/bench/logs`).
//!
//! Usage (under `infra/local/with-emulator`):
//! bench-functions BIN_DIR [RUNS] [DECISIONS] [REQUESTS] [ROTATION_KEYS]
//! (`BENCH_FUNCTIONS=authorizer,keys` measures only those functions).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keygate::clock::{Clock, SystemClock};
use keygate::issue::{mint, KeySpec};
use keygate::key::{KeyEnv, KeyFormat};
use keygate::manage::request::IssueRequest;
use keygate::manage::{Caller, KeyService};
use keygate::rotation::Delivery;
use keygate::scope::Scope;
use keygate::secrets::SecretsManager;
use keygate::store::{items, AuditAction, DynamoStore, KeyAdmin};
use keygate_tests::events::{event, management, with_route, with_source_ip, Payload};
use keygate_tests::item_size::{item_size, value_size, write_units};
use keygate_tests::runtime_api::{Outcome, RuntimeApi};
use keygate_tests::{allowance_item, audit, fresh_store, sdk_config, unique_name};
use serde_json::{json, Value};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const SCHEDULED: &str = include_str!("../../../infra/events/scheduled.json");
const DAY: i64 = 86_400;

/// Resident memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    hwm_kb: u64,
    rss_kb: u64,
}

fn memory(pid: u32) -> Memory {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        hwm_kb: field("VmHWM:"),
        rss_kb: field("VmRSS:"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One function as deployed: its binary, its timeout and its settings
/// (as `template.yaml` gives them).
struct Function {
    name: String,
    binary: PathBuf,
    timeout: Duration,
    settings: Vec<(&'static str, String)>,
}

/// What every function process gets: the environment Lambda sets for a
/// `provided.al2023` function with 128 MB, then the function's own settings,
/// and the local emulator's endpoint and credentials instead of a role's.
struct Env {
    table: String,
    secret_prefix: String,
    log_dir: PathBuf,
    passthrough: Vec<(&'static str, String)>,
}

impl Env {
    fn command(&self, f: &Function, api: &RuntimeApi, log: &Path) -> Result<Command> {
        let name = format!("keygate-{}", f.name);
        let out = File::options().create(true).append(true).open(log)?;
        let mut cmd = Command::new(&f.binary);
        cmd.env_clear()
            .envs([
                ("AWS_LAMBDA_RUNTIME_API", api.address()),
                ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
                ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
                ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
                ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
                (
                    "AWS_LAMBDA_LOG_STREAM_NAME",
                    "2026/11/29/[$LATEST]0123456789abcdef0123456789abcdef".into(),
                ),
                ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
                ("AWS_SESSION_TOKEN", "bench".into()),
                ("LAMBDA_TASK_ROOT", "/var/task".into()),
                ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
                ("_HANDLER", "bootstrap".into()),
                ("TZ", ":UTC".into()),
                ("LANG", "en_US.UTF-8".into()),
                ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into()),
                ("KEYGATE_TABLE", self.table.clone()),
                ("KEYGATE_KEY_PREFIX", "ak".into()),
                ("KEYGATE_KEY_ENV", "live".into()),
                ("RUST_LOG", "info".into()),
            ])
            .envs(self.passthrough.iter().map(|(k, v)| (*k, v.clone())))
            .envs(f.settings.iter().map(|(k, v)| (*k, v.clone())))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        Ok(cmd)
    }
}

/// A function process serving events from its own Runtime API.
struct Running {
    api: RuntimeApi,
    child: Child,
    timeout: Duration,
}

impl Running {
    fn start(env: &Env, f: &Function, log: &Path) -> Result<Self> {
        let api = RuntimeApi::start(&arn(&f.name))?;
        let child = env.command(f, &api, log)?.spawn()?;
        Ok(Self {
            api,
            child,
            timeout: f.timeout,
        })
    }

    async fn call(&self, event: &Value) -> Result<Outcome> {
        Ok(self.api.invoke(event, self.timeout).await?)
    }

    /// Stop the process; its memory figures first.
    fn stop(mut self) -> Memory {
        let mem = memory(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        mem
    }
}

fn arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:keygate-{name}")
}

/// `RUNS` cold starts of `f`, each answering `event`; `check` rejects a
/// wrong answer (a benchmark of a failing function measures nothing).
async fn cold_starts(
    env: &Env,
    f: &Function,
    runs: usize,
    event: &Value,
    check: impl Fn(&Outcome) -> Result<()>,
) -> Result<Value> {
    let log = env.log_dir.join(format!("{}-cold.log", f.name));
    let _ = fs::remove_file(&log);
    let (mut poll, mut first, mut invocation, mut hwm) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let api = RuntimeApi::start(&arn(&f.name))?;
        // Queued before the spawn, so the first poll gets it at once.
        let answer = api.invoke(event, f.timeout);
        let mut cmd = env.command(f, &api, &log)?;
        let spawned = Instant::now();
        let mut child = cmd.spawn()?;
        let outcome = answer.await;
        let mem = memory(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let outcome = outcome?;
        check(&outcome)?;
        let polled = api.first_poll().ok_or("answered without polling")?;
        poll.push(ms(polled - spawned));
        first.push(ms(outcome.answered_at - spawned));
        invocation.push(ms(outcome.duration()));
        hwm.push(mem.hwm_kb);
    }
    Ok(json!({
        "init_to_first_poll_ms": poll,
        "to_first_response_ms": first,
        "first_invocation_ms": invocation,
        "hwm_after_first_kb": hwm,
    }))
}

/// Durations of a warm process's invocations.
fn durations(samples: &[Duration]) -> Value {
    let ms: Vec<f64> = samples.iter().map(|d| ms(*d)).collect();
    // Lambda bills each invocation's duration rounded up to the millisecond.
    let billed: f64 = ms.iter().map(|m| m.ceil().max(1.0)).sum();
    json!({
        "count": ms.len(),
        "samples_ms": ms,
        "billed_ms_mean": billed / samples.len().max(1) as f64,
    })
}

fn status_of(outcome: &Outcome) -> u64 {
    outcome.body["statusCode"].as_u64().unwrap_or(0)
}

fn body_of(outcome: &Outcome) -> Value {
    outcome.body["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null)
}

fn expect_ok(outcome: &Outcome) -> Result<()> {
    if outcome.error || !(200..300).contains(&status_of(outcome)) {
        return Err(format!("unexpected answer: {}", outcome.body).into());
    }
    Ok(())
}

/// One day of an API's traffic for one key: mostly reads of one resource,
/// some listing and writes, a few calls outside the key's scopes (denied,
/// and counted), from 40 addresses. Returns the event and whether it must be
/// allowed.
fn authorizer_event(key: &str, i: usize) -> (Value, bool) {
    let (method, path, route, allowed) = match i % 20 {
        0..=11 => ("GET", "/orders/42", "GET /orders/{id}", true),
        12..=15 => ("GET", "/orders", "GET /orders", true),
        16 | 17 => ("POST", "/orders", "POST /orders", true),
        18 => ("GET", "/orders/42/items", "GET /orders/{id}/items", true),
        _ => ("DELETE", "/orders/42", "DELETE /orders/{id}", false),
    };
    let mut ev = with_route(event(Payload::HttpV2Simple, Some(key)), method, path);
    ev["routeKey"] = json!(route);
    ev["requestContext"]["routeKey"] = json!(route);
    let ip = format!("198.51.100.{}", 1 + i % 40);
    (with_source_ip(ev, &ip), allowed)
}

fn decided_allow(outcome: &Outcome) -> Result<bool> {
    if outcome.error {
        return Err(format!("authorizer error: {}", outcome.body).into());
    }
    Ok(outcome.body["isAuthorized"] == Value::Bool(true))
}

/// DynamoDB requests per decision, from the function's own decision log lines.
fn requests_per_decision(log: &Path) -> Result<(u64, u64)> {
    let text = fs::read_to_string(log)?;
    let (mut decisions, mut requests) = (0, 0);
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["message"] == "decision" {
            decisions += 1;
            requests += v["ddb_requests"].as_u64().unwrap_or(0);
        }
    }
    Ok((decisions, requests))
}

/// Sizes of the allowance item after the load: as it is (one day of usage
/// counters) and with every day it holds in the steady state as full as this
/// one (today, and yesterday until the daily report archives it).
async fn allowance_sizes(store: &DynamoStore, key_id: &str) -> Result<Value> {
    let id = keygate::id::KeyId::parse(key_id).ok_or("bad key id")?;
    let record = store.key_by_id(&id).await?.ok_or("key not found")?;
    let item = allowance_item(store, &record).await;
    let total = item_size(&item);
    let usage: usize = item
        .iter()
        .filter(|(name, _)| name.starts_with("u#"))
        .map(|(name, v)| name.len() + value_size(v))
        .sum();
    let usage_attributes = item.keys().filter(|n| n.starts_with("u#")).count();
    let days = items::LIVE_USAGE_DAYS as usize;
    let steady = total - usage + days * usage;
    Ok(json!({
        "item_bytes": total,
        "usage_bytes_per_day": usage,
        "usage_attributes_per_day": usage_attributes,
        "other_bytes": total - usage,
        "retained_days": days,
        "steady_item_bytes": steady,
        "write_units_day_one": write_units(total),
        "write_units_steady": write_units(steady),
    }))
}

struct Bench {
    env: Env,
    store: DynamoStore,
    service: KeyService<DynamoStore, SystemClock, SecretsManager>,
    secrets: SecretsManager,
    format: KeyFormat,
    runs: usize,
}

impl Bench {
    async fn issue(&self, req: Value) -> Result<(String, String)> {
        let req: IssueRequest = serde_json::from_value(req)?;
        let issued = self.service.issue(&Caller::operator("bench"), req).await?;
        keygate_tests::logs::remember(&self.format.parse(&issued.key)?);
        Ok((issued.key, issued.view.key_id.as_str().to_owned()))
    }

    async fn authorizer(&self, f: &Function, decisions: usize) -> Result<Value> {
        let (key, key_id) = self
            .issue(json!({
                "owner": "acme",
                "name": "orders-client",
                "scopes": ["GET /orders", "GET /orders/*", "GET /orders/*/items", "POST /orders"],
                "limits": {
                    "quota": {"limit": 1_000_000_000u64, "period": "month"},
                    "rate": {"limit": 1_000_000u64, "window": 60}
                }
            }))
            .await?;
        let first = authorizer_event(&key, 0).0;
        let cold = cold_starts(&self.env, f, self.runs, &first, |o| {
            decided_allow(o)?
                .then_some(())
                .ok_or_else(|| format!("denied: {}", o.body).into())
        })
        .await?;

        let log = self.env.log_dir.join("authorizer-load.log");
        let _ = fs::remove_file(&log);
        let running = Running::start(&self.env, f, &log)?;
        running.call(&first).await?; // the cold one, not counted
        let (mut allowed, mut denied) = (vec![], vec![]);
        for i in 0..decisions {
            let (ev, expect) = authorizer_event(&key, i);
            let outcome = running.call(&ev).await?;
            if decided_allow(&outcome)? != expect {
                return Err(
                    format!("decision {i}: expected allow={expect}: {}", outcome.body).into(),
                );
            }
            if expect {
                allowed.push(outcome.duration());
            } else {
                denied.push(outcome.duration());
            }
        }
        let mem = running.stop();
        let (logged, requests) = requests_per_decision(&log)?;
        Ok(json!({
            "cold": cold,
            "cold_event": "infra/events/http-v2.json with an issued key: an allowed decision (GetItem of the key record, one conditional UpdateItem)",
            "load": {
                "description": format!("{decisions} decisions on one key after a cold first one: 5 routes, 40 source addresses, 1 in 20 outside the key's scopes (denied and counted)"),
                "invocations": decisions,
                "hwm_kb": mem.hwm_kb,
                "rss_kb": mem.rss_kb,
                "allowed": durations(&allowed),
                "denied": durations(&denied),
                "logged_decisions": logged,
                "ddb_requests": requests,
            },
            "allowance": allowance_sizes(&self.store, &key_id).await?,
        }))
    }

    async fn keys(&self, f: &Function, requests: usize) -> Result<Value> {
        let (_, admin_id) = self
            .issue(json!({"owner": "operator", "name": "bench-admin", "scopes": ["admin"]}))
            .await?;
        let ctx = json!({"keyId": admin_id, "owner": "operator", "scopes": "admin"});
        let list = management(
            "GET",
            "/v1/keys",
            &[("owner", "acme"), ("limit", "20")],
            None,
            &ctx,
        );
        let cold = cold_starts(&self.env, f, self.runs, &list, expect_ok).await?;

        let log = self.env.log_dir.join("keys-load.log");
        let _ = fs::remove_file(&log);
        let running = Running::start(&self.env, f, &log)?;
        let mut times = vec![];
        let call = |times: &mut Vec<Duration>, outcome: Outcome| -> Result<Value> {
            expect_ok(&outcome)?;
            times.push(outcome.duration());
            Ok(body_of(&outcome))
        };
        let mut i = 0;
        while times.len() < requests {
            let issue = json!({
                "owner": "acme",
                "name": format!("svc-{i}"),
                "scopes": ["GET /orders/*"],
                "limits": {"quota": {"limit": 10_000, "period": "month"}},
                "deliver_to_secret": i % 5 == 0,
            });
            let issued = call(
                &mut times,
                running
                    .call(&management("POST", "/v1/keys", &[], Some(&issue), &ctx))
                    .await?,
            )?;
            let id = issued["key_id"].as_str().ok_or("no key_id")?.to_owned();
            let path = format!("/v1/keys/{id}");
            call(
                &mut times,
                running
                    .call(&management("GET", &path, &[], None, &ctx))
                    .await?,
            )?;
            let rename = json!({"name": format!("svc-{i}-renamed")});
            call(
                &mut times,
                running
                    .call(&management("PATCH", &path, &[], Some(&rename), &ctx))
                    .await?,
            )?;
            call(&mut times, running.call(&list).await?)?;
            call(
                &mut times,
                running
                    .call(&management(
                        "GET",
                        &format!("{path}/events"),
                        &[],
                        None,
                        &ctx,
                    ))
                    .await?,
            )?;
            let (action, body) = if i % 2 == 0 {
                ("rotate", json!({"grace_seconds": 3600}))
            } else {
                ("revoke", json!({}))
            };
            call(
                &mut times,
                running
                    .call(&management(
                        "POST",
                        &format!("{path}/{action}"),
                        &[],
                        Some(&body),
                        &ctx,
                    ))
                    .await?,
            )?;
            i += 1;
        }
        let mem = running.stop();
        Ok(json!({
            "cold": cold,
            "cold_event": "infra/events/http-v2-proxy.json: GET /v1/keys?owner=acme (a Query on the owner index)",
            "load": {
                "description": format!("{} requests in rounds of issue (1 in 5 delivered to Secrets Manager), show, update, list, audit trail, rotate or revoke", times.len()),
                "invocations": times.len(),
                "hwm_kb": mem.hwm_kb,
                "rss_kb": mem.rss_kb,
                "all": durations(&times),
            },
        }))
    }

    /// An HTTP function behind the authorizer, read-only: cold starts with
    /// `first`, then `requests` invocations cycling through `events`.
    async fn http_reader(
        &self,
        f: &Function,
        requests: usize,
        first: &Value,
        events: &[Value],
        described: &str,
    ) -> Result<Value> {
        let cold = cold_starts(&self.env, f, self.runs, first, expect_ok).await?;
        let log = self.env.log_dir.join(format!("{}-load.log", f.name));
        let _ = fs::remove_file(&log);
        let running = Running::start(&self.env, f, &log)?;
        let mut times = vec![];
        for ev in events.iter().cycle().take(requests) {
            let outcome = running.call(ev).await?;
            expect_ok(&outcome)?;
            times.push(outcome.duration());
        }
        let mem = running.stop();
        Ok(json!({
            "cold": cold,
            "cold_event": described,
            "load": {
                "description": format!("{} requests", times.len()),
                "invocations": times.len(),
                "hwm_kb": mem.hwm_kb,
                "rss_kb": mem.rss_kb,
                "all": durations(&times),
            },
        }))
    }

    /// The usage routes over the keys the keys scenario left (acme's).
    async fn usage(&self, f: &Function, requests: usize) -> Result<Value> {
        let (_, admin_id) = self
            .issue(json!({"owner": "operator", "name": "bench-usage", "scopes": ["admin"]}))
            .await?;
        let ctx = json!({"keyId": admin_id, "owner": "operator", "scopes": "admin"});
        let totals = management("GET", "/v1/usage", &[("owner", "acme")], None, &ctx);
        let series = management(
            "GET",
            &format!("/v1/usage/keys/{admin_id}"),
            &[],
            None,
            &ctx,
        );
        let csv = management(
            "GET",
            "/v1/usage",
            &[("owner", "acme"), ("format", "csv")],
            None,
            &ctx,
        );
        self.http_reader(
            f,
            requests,
            &totals,
            &[series, totals.clone(), csv],
            "infra/events/http-v2-proxy.json: GET /v1/usage?owner=acme (30-day totals of every acme key)",
        )
        .await
    }

    /// The sample route: it only echoes the authorizer context.
    async fn echo(&self, f: &Function, requests: usize) -> Result<Value> {
        let ctx = json!({"keyId": "key_0000000000000000000001", "owner": "acme",
                         "scopes": "GET /v1/whoami", "quotaRemaining": 7});
        let whoami = management("GET", "/v1/whoami", &[], None, &ctx);
        self.http_reader(
            f,
            requests,
            &whoami,
            std::slice::from_ref(&whoami),
            "infra/events/http-v2-proxy.json: GET /v1/whoami",
        )
        .await
    }

    /// The developer portal: its page and script from the binary (no
    /// store request), the common case of a portal visit.
    async fn portal(&self, f: &Function, requests: usize) -> Result<Value> {
        let none = json!({});
        let page = management("GET", "/portal/home", &[], None, &none);
        let script = management("GET", "/portal/assets/app.js", &[], None, &none);
        self.http_reader(
            f,
            requests,
            &page,
            &[page.clone(), script],
            "infra/events/http-v2-proxy.json: GET /portal/home",
        )
        .await
    }

    async fn rotation(&self, f: &Function, due_keys: usize) -> Result<Value> {
        let scheduled: Value = serde_json::from_str(SCHEDULED)?;
        let cold = cold_starts(&self.env, f, self.runs, &scheduled, |o| {
            if o.error {
                return Err(format!("sweep failed: {}", o.body).into());
            }
            Ok(())
        })
        .await?;

        // Keys created 91 days ago with the default 90-day rotation: all due.
        // Every other one delivered through Secrets Manager.
        let created = SystemClock.now() - 91 * DAY;
        let delivery = Delivery {
            secrets: &self.secrets,
            prefix: &self.env.secret_prefix,
        };
        for n in 0..due_keys {
            let spec = KeySpec::new(
                "acme",
                format!("svc-{n}"),
                vec![Scope::parse("GET /orders/*")?],
            );
            let (key, record) = mint(&self.format, spec, created);
            keygate_tests::logs::remember(&key);
            let event = audit(&record, AuditAction::Issued);
            if n % 2 == 0 {
                delivery.issue(&self.store, &record, &key, &event).await?;
            } else {
                self.store.create_key(&record, &event).await?;
            }
        }
        let log = self.env.log_dir.join("rotation-load.log");
        let _ = fs::remove_file(&log);
        let running = Running::start(&self.env, f, &log)?;
        let outcome = running.call(&scheduled).await?;
        let mem = running.stop();
        if outcome.error {
            return Err(format!("sweep failed: {}", outcome.body).into());
        }
        let rotated = outcome.body["rotated"].as_array().map_or(0, Vec::len);
        if rotated != due_keys {
            return Err(format!("rotated {rotated} of {due_keys}: {}", outcome.body).into());
        }
        Ok(json!({
            "cold": cold,
            "cold_event": "infra/events/scheduled.json: a sweep with nothing due (one Query per due-index partition)",
            "load": {
                "description": format!("one sweep rotating {due_keys} due keys, half of them delivered through Secrets Manager"),
                "invocations": 1,
                "hwm_kb": mem.hwm_kb,
                "rss_kb": mem.rss_kb,
                "sweep_ms": ms(outcome.duration()),
            },
        }))
    }
}

/// Every package under `functions/`: each must have a scenario here.
/// Every package under `functions/`, or those `BENCH_FUNCTIONS` names
/// (comma-separated), to measure one function while working on it.
fn function_names() -> Result<Vec<String>> {
    let mut names = vec![];
    for entry in fs::read_dir(Path::new(ROOT).join("functions"))? {
        let entry = entry?;
        if entry.path().join("Cargo.toml").exists() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    if let Ok(only) = std::env::var("BENCH_FUNCTIONS") {
        let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
        if let Some(unknown) = wanted.iter().find(|w| !names.iter().any(|n| n == *w)) {
            return Err(format!("BENCH_FUNCTIONS names {unknown:?}, not a function").into());
        }
        names.retain(|n| wanted.contains(&n.as_str()));
    }
    names.sort();
    Ok(names)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let bin_dir =
        PathBuf::from(args.get(1).ok_or(
            "usage: bench-functions BIN_DIR [RUNS] [DECISIONS] [REQUESTS] [ROTATION_KEYS]",
        )?);
    let runs: usize = arg(&args, 2, 20);
    let decisions: usize = arg(&args, 3, 2000);
    let requests: usize = arg(&args, 4, 300);
    let rotation_keys: usize = arg(&args, 5, 200);
    let log_dir = std::env::var_os("LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join("target/bench/logs"));
    fs::create_dir_all(&log_dir)?;

    let store = fresh_store().await;
    let sdk = sdk_config().await;
    let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let secret_prefix = unique_name("keygate-bench");
    let format = KeyFormat::new("ak", KeyEnv::Live)?;
    let passthrough = [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ]
    .into_iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k, v)))
    .collect();
    let bench = Bench {
        env: Env {
            table: store.table().to_owned(),
            secret_prefix: secret_prefix.clone(),
            log_dir,
            passthrough,
        },
        service: KeyService::new(
            store.clone(),
            SystemClock,
            format.clone(),
            secrets.clone(),
            &secret_prefix,
        ),
        store,
        secrets,
        format,
        runs,
    };

    let mut results = serde_json::Map::new();
    for name in function_names()? {
        let binary = bin_dir.join(&name);
        if !binary.exists() {
            return Err(format!("{} not built", binary.display()).into());
        }
        let prefix = secret_prefix.clone();
        let f = |timeout: u64, settings: Vec<(&'static str, String)>| Function {
            name: name.clone(),
            binary: binary.clone(),
            timeout: Duration::from_secs(timeout),
            settings,
        };
        eprintln!("bench-functions: {name}");
        let started = Instant::now();
        let result = match name.as_str() {
            "authorizer" => {
                let f = f(
                    3,
                    vec![
                        ("KEYGATE_V2_RESPONSE", "simple".into()),
                        ("KEYGATE_DEADLINE_MS", "1500".into()),
                        ("KEYGATE_CACHE_TTL_SECONDS", "10".into()),
                    ],
                );
                bench.authorizer(&f, decisions).await?
            }
            "keys" => {
                let f = f(
                    5,
                    vec![
                        ("KEYGATE_SECRET_PREFIX", prefix),
                        ("KEYGATE_ROTATION_DAYS", "90".into()),
                    ],
                );
                bench.keys(&f, requests).await?
            }
            "rotation" => {
                let f = f(
                    300,
                    vec![
                        ("KEYGATE_SECRET_PREFIX", prefix),
                        ("KEYGATE_GRACE_HOURS", "24".into()),
                    ],
                );
                bench.rotation(&f, rotation_keys).await?
            }
            "usage" => bench.usage(&f(5, vec![]), requests).await?,
            "echo" => bench.echo(&f(3, vec![]), requests).await?,
            "portal" => bench.portal(&f(5, vec![]), requests).await?,
            other => {
                return Err(format!(
                    "no benchmark scenario for the function {other:?}: add one to bench-functions"
                )
                .into())
            }
        };
        eprintln!("bench-functions: {name} done in {:?}", started.elapsed());
        results.insert(name, result);
    }
    println!(
        "{}",
        json!({
            "runs": runs,
            "binaries": format!(
                "native {} release builds, the workspace's release profile",
                std::env::consts::ARCH
            ),
            "command": format!(
                "infra/local/with-emulator target/release/bench-functions target/release {runs} {decisions} {requests} {rotation_keys}"
            ),
            "functions": results,
        })
    );
    Ok(())
}
