//! A fault-injecting HTTP proxy between the AWS SDK and the local emulator.
//!
//! Tests point an SDK client at [`FaultProxy::endpoint`] and switch faults
//! on and off while the code under test runs: server errors, throttling,
//! added latency, and connections reset before or after the request reached
//! the emulator. The last one is the case that matters most for correctness:
//! the write took effect but its answer was lost, so the caller cannot know.
//!
//! A fault applies to every request, or only to one operation (the
//! `X-Amz-Target` the SDK sends, e.g. `UpdateItem` or `PutSecretValue`).
//! Every request the proxy forwards runs to completion in its own task, even
//! when the client gave up on it, so [`FaultProxy::forwarded`] counts exactly
//! the requests that reached the emulator and [`FaultProxy::settle`] waits
//! until late ones have landed.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the proxy does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it unchanged.
    PassThrough,
    /// Answer HTTP 500 with the service's internal error, without forwarding.
    ServerError,
    /// Answer HTTP 400 with the service's throttling error
    /// (`ProvisionedThroughputExceededException` for DynamoDB,
    /// `ThrottlingException` otherwise), without forwarding.
    Throttle,
    /// Hold the request this long, then forward it (whether or not the
    /// client is still waiting).
    Latency(Duration),
    /// Reset the connection without forwarding the request.
    Reset,
    /// Forward the request, then reset the connection instead of answering:
    /// the request took effect, the caller never learns it.
    LoseAnswer,
}

impl Fault {
    /// Whether a request under this fault still reaches the emulator.
    pub fn forwards(self) -> bool {
        matches!(
            self,
            Fault::PassThrough | Fault::Latency(_) | Fault::LoseAnswer
        )
    }
}

#[derive(Debug, Clone)]
struct Rule {
    fault: Fault,
    /// Only requests for this operation; every request when `None`.
    operation: Option<String>,
}

struct State {
    upstream: Uri,
    client: HttpClient,
    rule: Mutex<Rule>,
    /// Requests that reached the emulator, per operation.
    forwarded: Mutex<HashMap<String, u64>>,
    injected: AtomicU64,
    in_flight: AtomicUsize,
    /// Requests the proxy began to handle, ever.
    arrived: AtomicU64,
}

/// Why the proxy drops a connection (hyper closes it on a service error;
/// the socket's zero linger turns the close into a reset).
#[derive(Debug, thiserror::Error)]
#[error("connection reset by the proxy")]
pub(crate) struct Dropped;

/// A running proxy on a free loopback port; stops accepting when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy to the emulator the tests run against (`AWS_ENDPOINT_URL`).
    ///
    /// # Panics
    /// If `AWS_ENDPOINT_URL` is not a loopback address.
    pub async fn to_emulator() -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        assert!(
            endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
            "AWS_ENDPOINT_URL must point at the local emulator (run `make test`), got {endpoint:?}"
        );
        Self::start(&endpoint).await
    }

    /// A proxy to `upstream` (`http://host:port`), passing everything through.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let state = Arc::new(State {
            upstream: upstream.parse().expect("upstream is a URI"),
            client: http_client(),
            rule: Mutex::new(Rule {
                fault: Fault::PassThrough,
                operation: None,
            }),
            forwarded: Mutex::new(HashMap::new()),
            injected: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            arrived: AtomicU64::new(0),
        });
        let accept = tokio::spawn(serve(listener, state.clone(), handle));
        Self {
            addr,
            state,
            accept,
        }
    }

    /// The URL to give the SDK as its endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Apply `fault` to every request from now on.
    pub fn set(&self, fault: Fault) {
        *self.state.rule.lock().unwrap() = Rule {
            fault,
            operation: None,
        };
    }

    /// Apply `fault` only to requests for `operation` (e.g. `UpdateItem`);
    /// others pass through.
    pub fn set_for(&self, operation: &str, fault: Fault) {
        *self.state.rule.lock().unwrap() = Rule {
            fault,
            operation: Some(operation.to_owned()),
        };
    }

    /// Pass everything through again.
    pub fn clear(&self) {
        self.set(Fault::PassThrough);
    }

    /// Requests for `operation` that reached the emulator so far.
    pub fn forwarded(&self, operation: &str) -> u64 {
        self.state
            .forwarded
            .lock()
            .unwrap()
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Requests a fault was applied to so far.
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// Wait until no request is in flight, and none arrived for 300 ms, so
    /// every delayed request has landed (or been refused) before the test
    /// reads the emulator's state. The quiet period covers a request an
    /// abandoned client had already written to its socket: on a loaded
    /// machine the proxy may read it only after the count first reached
    /// zero, and it would land after the test looked.
    ///
    /// # Panics
    /// After 30 s with requests still in flight or arriving.
    pub async fn settle(&self) {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            while self.state.in_flight.load(Ordering::SeqCst) > 0 {
                assert!(
                    tokio::time::Instant::now() < give_up,
                    "requests still in flight"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(
                tokio::time::Instant::now() < give_up,
                "requests still arriving"
            );
            let arrived = self.state.arrived.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            if self.state.arrived.load(Ordering::SeqCst) == arrived
                && self.state.in_flight.load(Ordering::SeqCst) == 0
            {
                return;
            }
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serves every connection `listener` accepts with `handler`, each request in
/// its own task: a request the client abandons still completes, so counts,
/// settling and the realism proxy's write images stay exact. A close by the
/// proxy is a reset, as a crashed peer or a broken network path would produce.
pub(crate) async fn serve<S, H, F>(listener: TcpListener, state: Arc<S>, handler: H)
where
    S: Send + Sync + 'static,
    H: Fn(Arc<S>, Request<Incoming>) -> F + Copy + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Dropped>> + Send + 'static,
{
    while let Ok((socket, _)) = listener.accept().await {
        let _ = socket.set_zero_linger();
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move {
                    tokio::spawn(handler(state, req))
                        .await
                        .unwrap_or(Err(Dropped))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

/// Decrements the in-flight count however the request ends.
struct InFlight(Arc<State>);

impl InFlight {
    fn new(state: &Arc<State>) -> Self {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        state.arrived.fetch_add(1, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let _guard = InFlight::new(&state);
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (service, operation) = target.split_once('.').unwrap_or(("", &target));
    let (service, operation) = (service.to_owned(), operation.to_owned());
    let fault = {
        let rule = state.rule.lock().unwrap();
        match &rule.operation {
            Some(only) if *only != operation => Fault::PassThrough,
            _ => rule.fault,
        }
    };
    if fault != Fault::PassThrough {
        state.injected.fetch_add(1, Ordering::SeqCst);
    }
    match fault {
        Fault::PassThrough => forward(&state, &operation, req).await,
        Fault::ServerError => Ok(aws_error(&service, StatusCode::INTERNAL_SERVER_ERROR)),
        Fault::Throttle => Ok(aws_error(&service, StatusCode::BAD_REQUEST)),
        Fault::Latency(delay) => {
            tokio::time::sleep(delay).await;
            forward(&state, &operation, req).await
        }
        Fault::Reset => Err(Dropped),
        Fault::LoseAnswer => {
            forward(&state, &operation, req).await?;
            Err(Dropped)
        }
    }
}

async fn forward(
    state: &State,
    operation: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    *state
        .forwarded
        .lock()
        .unwrap()
        .entry(operation.to_owned())
        .or_default() += 1;
    relay(&state.client, &state.upstream, parts, body).await
}

/// The HTTP client the proxies forward with.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request (its head as the client sent it) to `upstream` and reads
/// the whole answer.
pub(crate) async fn relay(
    client: &HttpClient,
    upstream: &Uri,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let mut uri = upstream.clone().into_parts();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    parts.uri = Uri::from_parts(uri).map_err(|_| Dropped)?;
    let answer = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|_| Dropped)?;
    let (mut parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    // The body is re-sent whole: hyper sets its length.
    for hop in [TRANSFER_ENCODING, CONTENT_LENGTH, CONNECTION] {
        parts.headers.remove(hop);
    }
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// An error answer in the AWS JSON protocol: the error code in the
/// `x-amzn-ErrorType` header and the body's `__type`, as the services send it.
fn aws_error(service: &str, status: StatusCode) -> Response<Full<Bytes>> {
    let dynamodb = service.starts_with("DynamoDB_");
    let code = match (status, dynamodb) {
        (StatusCode::INTERNAL_SERVER_ERROR, true) => "InternalServerError",
        (StatusCode::INTERNAL_SERVER_ERROR, false) => "InternalServiceError",
        (_, true) => "ProvisionedThroughputExceededException",
        (_, false) => "ThrottlingException",
    };
    let type_name = if dynamodb {
        format!("com.amazonaws.dynamodb.v20120810#{code}")
    } else {
        code.to_owned()
    };
    let content_type = if dynamodb {
        "application/x-amz-json-1.0"
    } else {
        "application/x-amz-json-1.1"
    };
    let body = serde_json::json!({"__type": type_name, "message": "injected by the fault proxy"});
    error_response(status, code, content_type, &body)
}

/// An error answer in the AWS JSON protocol with `body`, its code also in
/// the `x-amzn-ErrorType` header.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    content_type: &'static str,
    body: &serde_json::Value,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_str(code).expect("ASCII"),
    );
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_static("fault-proxy-request"),
    );
    response
}
