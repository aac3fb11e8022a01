//! A proxy that makes the local emulator as strict as DynamoDB (issue 13).
//!
//! moto answers every read with the latest item, never throttles, accepts
//! items of any size. Between the SDK and the emulator this proxy adds what
//! DynamoDB does:
//! - eventually consistent reads (`GetItem`, `BatchGetItem`, `Query`, `Scan`
//!   without `ConsistentRead`, and every index read) answer with each item as
//!   it stood `stale_window` ago, for items written through the proxy;
//! - per-partition throughput: 1,000 write and 3,000 read units per second per
//!   partition key value (table and each index), times `scale`, refused with
//!   DynamoDB's throttling error and its `ThrottlingReasons`;
//! - items over 400 KB are refused (`ValidationException`), changing nothing;
//! - transactions cancelled with per-action `CancellationReasons`, also on
//!   demand ([`RealismProxy::inject_cancellation`]);
//! - a record of requests and consumed units per partition, and an optional
//!   capture of every distinct request shape to a file.
//!
//! Writes through the proxy are serialised (one async mutex) so the item
//! images before and after each write, read consistently from the emulator,
//! are exact. Everything it does not understand passes through unchanged,
//! Secrets Manager included.

pub mod answers;
mod capture;
pub mod history;
mod reads;
mod schema;
pub mod throughput;
pub mod units;
mod upstream;
mod writes;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH};
use hyper::http::request::Parts;
use hyper::{Request, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use capture::shape;
pub use throughput::{Partition, Usage, OVERFLOW_KEY};

use crate::faults::{serve, Dropped};
use history::{History, ItemKey};
use schema::Schema;
use throughput::{Kind, Throughput};
use upstream::Upstream;

/// Which exception a throttled request gets. On-demand tables answer a hot
/// partition with `ThrottlingException` ("Throughput exceeds the current
/// capacity of your table or index ... check if you have a hot key"),
/// provisioned ones with `ProvisionedThroughputExceededException`; both carry
/// `ThrottlingReasons` such as `TableWriteKeyRangeThroughputExceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleError {
    Throttling,
    ProvisionedThroughputExceeded,
}

/// How strict a proxy is.
#[derive(Debug, Clone)]
pub struct Config {
    /// How old the image an eventually consistent read sees is.
    pub stale_window: Duration,
    /// Multiplies DynamoDB's per-partition limits (1,000 WCU/s, 3,000 RCU/s),
    /// so the slow emulator can reach them.
    pub scale: f64,
    pub throttle_error: ThrottleError,
    /// Append one line per distinct request shape to this file.
    pub capture: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stale_window: Duration::from_secs(1),
            scale: 1.0,
            throttle_error: ThrottleError::Throttling,
            capture: None,
        }
    }
}

impl Config {
    /// From `KEYGATE_REALISM_STALE_MS` (default 1000), `KEYGATE_REALISM_SCALE`
    /// (default 1.0), `KEYGATE_REALISM_THROTTLE` (`throttling` or
    /// `provisioned`) and `KEYGATE_REALISM_CAPTURE` (a path, optional).
    pub fn from_env() -> Result<Self, String> {
        let mut config = Self::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(ms) = var("KEYGATE_REALISM_STALE_MS") {
            let ms: u64 = ms
                .parse()
                .map_err(|_| format!("KEYGATE_REALISM_STALE_MS: not milliseconds: {ms:?}"))?;
            config.stale_window = Duration::from_millis(ms);
        }
        if let Some(scale) = var("KEYGATE_REALISM_SCALE") {
            config.scale = scale
                .parse()
                .ok()
                .filter(|s: &f64| *s > 0.0 && s.is_finite())
                .ok_or_else(|| {
                    format!("KEYGATE_REALISM_SCALE: not a positive number: {scale:?}")
                })?;
        }
        if let Some(error) = var("KEYGATE_REALISM_THROTTLE") {
            config.throttle_error = match error.as_str() {
                "throttling" => ThrottleError::Throttling,
                "provisioned" => ThrottleError::ProvisionedThroughputExceeded,
                _ => {
                    return Err(format!(
                        "KEYGATE_REALISM_THROTTLE: throttling or provisioned, got {error:?}"
                    ))
                }
            };
        }
        config.capture = var("KEYGATE_REALISM_CAPTURE").map(PathBuf::from);
        Ok(config)
    }
}

/// Requests for one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// Requests the proxy received.
    pub received: u64,
    /// Of those, requests that reached the emulator.
    pub forwarded: u64,
}

pub(crate) struct State {
    upstream: Upstream,
    config: Config,
    schemas: Mutex<HashMap<String, Arc<Schema>>>,
    history: Mutex<History>,
    throughput: Mutex<Throughput>,
    requests: Mutex<BTreeMap<String, Requests>>,
    /// Held by every write from its first image to its last.
    writes: tokio::sync::Mutex<()>,
    cancellations: Mutex<VecDeque<Vec<String>>>,
    capture: Option<capture::Capture>,
}

/// A running realism proxy on a free loopback port; stops accepting when
/// dropped.
pub struct RealismProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl RealismProxy {
    /// A proxy in front of the emulator itself: `KEYGATE_EMULATOR_URL` (set
    /// by `with-emulator` when a global realism proxy runs), else
    /// `AWS_ENDPOINT_URL`.
    ///
    /// # Panics
    /// If neither is a loopback address.
    pub async fn to_emulator(config: Config) -> Self {
        let endpoint = std::env::var("KEYGATE_EMULATOR_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .unwrap_or_default();
        assert!(
            endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
            "KEYGATE_EMULATOR_URL or AWS_ENDPOINT_URL must point at the local emulator (run `make test`), got {endpoint:?}"
        );
        Self::start(&endpoint, config)
            .await
            .expect("start the realism proxy")
    }

    /// A proxy to `upstream` (`http://host:port`) on `127.0.0.1:0`.
    pub async fn start(upstream: &str, config: Config) -> std::io::Result<Self> {
        Self::bind("127.0.0.1:0".parse().expect("address"), upstream, config).await
    }

    /// A proxy to `upstream` listening on `addr`.
    pub async fn bind(addr: SocketAddr, upstream: &str, config: Config) -> std::io::Result<Self> {
        let uri = upstream
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let capture = match &config.capture {
            Some(path) => Some(capture::Capture::open(path)?),
            None => None,
        };
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream: Upstream::new(uri),
            history: Mutex::new(History::new(config.stale_window)),
            throughput: Mutex::new(Throughput::new(config.scale)),
            config,
            schemas: Mutex::new(HashMap::new()),
            requests: Mutex::new(BTreeMap::new()),
            writes: tokio::sync::Mutex::new(()),
            cancellations: Mutex::new(VecDeque::new()),
            capture,
        });
        let accept = tokio::spawn(serve(listener, state.clone(), handle));
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// The URL to give the SDK as its endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The next `TransactWriteItems` is cancelled with these reasons (one
    /// code per action, e.g. `TransactionConflict`, `None`; missing ones are
    /// `None`) without reaching the emulator. Calls queue up.
    pub fn inject_cancellation<S: Into<String>>(&self, codes: impl IntoIterator<Item = S>) {
        let codes = codes.into_iter().map(Into::into).collect();
        self.state.cancellations.lock().unwrap().push_back(codes);
    }

    /// Requests for `operation` (e.g. `UpdateItem`) so far.
    pub fn requests(&self, operation: &str) -> Requests {
        let requests = self.state.requests.lock().unwrap();
        requests.get(operation).copied().unwrap_or_default()
    }

    /// Every operation's requests so far.
    pub fn all_requests(&self) -> BTreeMap<String, Requests> {
        self.state.requests.lock().unwrap().clone()
    }

    /// What one partition consumed: `index` `None` for the table, `key` the
    /// partition key value as text.
    pub fn usage(&self, table: &str, index: Option<&str>, key: &str) -> Usage {
        let partition = Partition {
            table: table.to_owned(),
            index: index.map(str::to_owned),
            key: key.to_owned(),
        };
        self.state.throughput.lock().unwrap().usage(&partition)
    }

    /// Every partition's consumption (at most 10,000 entries; further
    /// partitions add up under [`OVERFLOW_KEY`]).
    pub fn all_usage(&self) -> BTreeMap<Partition, Usage> {
        self.state.throughput.lock().unwrap().all()
    }

    /// Forgets requests, consumption, budgets and item histories.
    pub fn reset(&self) {
        self.state.requests.lock().unwrap().clear();
        self.state.throughput.lock().unwrap().reset();
        self.state.history.lock().unwrap().clear();
        self.state.cancellations.lock().unwrap().clear();
    }
}

impl Drop for RealismProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A DynamoDB request on its way through the proxy.
pub(crate) struct Call {
    parts: Parts,
    body: Bytes,
    operation: String,
    request: Value,
}

impl Call {
    fn auth(&self) -> Option<&HeaderValue> {
        self.parts.headers.get(AUTHORIZATION)
    }

    fn table(&self) -> &str {
        self.request["TableName"].as_str().unwrap_or_default()
    }
}

type Answer = Result<Response<Full<Bytes>>, Dropped>;

const DYNAMODB: &str = "DynamoDB_20120810.";

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(operation) = target.strip_prefix(DYNAMODB).map(str::to_owned) else {
        return state.upstream.forward(parts, body).await;
    };
    state.count(&operation, |r| r.received += 1);
    if let Some(capture) = &state.capture {
        capture.record(&operation, &body);
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return state
            .forward(Call {
                parts,
                body,
                operation,
                request: Value::Null,
            })
            .await;
    };
    let call = Call {
        parts,
        body,
        operation,
        request,
    };
    match call.operation.as_str() {
        "GetItem" => reads::get_item(&state, call).await,
        "BatchGetItem" => reads::batch_get_item(&state, call).await,
        "Query" | "Scan" => reads::query_or_scan(&state, call).await,
        "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems" => {
            writes::write(&state, call).await
        }
        "CreateTable" | "DeleteTable" | "UpdateTable" => {
            state.schemas.lock().unwrap().remove(call.table());
            state.forward(call).await
        }
        _ => state.forward(call).await,
    }
}

impl State {
    fn count(&self, operation: &str, change: impl FnOnce(&mut Requests)) {
        change(
            self.requests
                .lock()
                .unwrap()
                .entry(operation.to_owned())
                .or_default(),
        );
    }

    /// Sends the client's request on, counted.
    async fn forward(&self, call: Call) -> Answer {
        self.count(&call.operation, |r| r.forwarded += 1);
        let mut parts = call.parts;
        parts.headers.remove(CONTENT_LENGTH);
        self.upstream.forward(parts, call.body).await
    }

    /// The key schemas of `table`, described once.
    async fn schema(&self, auth: Option<&HeaderValue>, table: &str) -> Option<Arc<Schema>> {
        if let Some(schema) = self.schemas.lock().unwrap().get(table) {
            return Some(schema.clone());
        }
        let schema = Arc::new(self.upstream.describe(auth, table).await?);
        self.schemas
            .lock()
            .unwrap()
            .insert(table.to_owned(), schema.clone());
        Some(schema)
    }

    /// The partitions among `wanted` that spent their budget (each recorded
    /// as throttled), empty when the request may go on.
    fn over_budget(&self, wanted: &[(Partition, Kind)]) -> Vec<(Partition, Kind)> {
        let now = Instant::now();
        let mut throughput = self.throughput.lock().unwrap();
        let mut over: Vec<(Partition, Kind)> = Vec::new();
        for (partition, kind) in wanted {
            if !over.iter().any(|(p, k)| p == partition && k == kind)
                && throughput.exhausted(partition, *kind, now)
            {
                throughput.throttled(partition);
                over.push((partition.clone(), *kind));
            }
        }
        over
    }

    fn charge(&self, partition: &Partition, kind: Kind, units: f64) {
        let now = Instant::now();
        self.throughput
            .lock()
            .unwrap()
            .charge(partition, kind, units, now);
    }

    /// The throttling answer when a partition in `wanted` spent its budget.
    fn refuse(&self, wanted: &[(Partition, Kind)]) -> Option<Response<Full<Bytes>>> {
        let over = self.over_budget(wanted);
        (!over.is_empty()).then(|| self.throttled(&over))
    }

    /// The throttling answer for the partitions `over` their budget.
    fn throttled(&self, over: &[(Partition, Kind)]) -> Response<Full<Bytes>> {
        let schemas = self.schemas.lock().unwrap();
        answers::throttled(self.config.throttle_error, over, |table| {
            schemas
                .get(table)
                .map(|s| s.arn.clone())
                .unwrap_or_default()
        })
    }

    /// The item as an eventually consistent read sees it (see [`History::as_of`]).
    fn stale(&self, key: &ItemKey) -> Option<Option<units::Item>> {
        let history = self.history.lock().unwrap();
        history
            .as_of(key, Instant::now())
            .map(|image| image.cloned())
    }
}

/// An answer's head and its whole body.
fn open(answer: Response<Full<Bytes>>) -> (hyper::http::response::Parts, Bytes) {
    use hyper::body::Body;
    let (parts, body) = answer.into_parts();
    // A Full body is already whole: one poll yields all of it.
    let mut body = std::pin::pin!(body);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let bytes = match body.as_mut().poll_frame(&mut context) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        _ => Bytes::new(),
    };
    (parts, bytes)
}

fn whole(parts: hyper::http::response::Parts, bytes: Bytes) -> Response<Full<Bytes>> {
    Response::from_parts(parts, Full::new(bytes))
}

/// An answer with a changed body (its checksum header no longer applies).
fn changed_answer(mut parts: hyper::http::response::Parts, body: &Value) -> Response<Full<Bytes>> {
    parts.headers.remove("x-amz-crc32");
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Full::new(Bytes::from(body.to_string())))
}
