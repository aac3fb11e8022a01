//! A minimal stand-in for the Lambda Runtime API (version `2018-06-01`), so
//! benchmarks can run the real function binaries as Lambda runs them: a
//! process started with `AWS_LAMBDA_RUNTIME_API` that long-polls
//! `GET /runtime/invocation/next` and posts each answer to
//! `/runtime/invocation/<id>/response` (or `/error`, or `/init/error` when
//! its initialisation fails).
//!
//! The driver queues one event at a time with [`RuntimeApi::invoke`] and gets
//! the function's answer with the times the event was handed out and answered,
//! measured here, outside the function. Like Lambda, `/next` blocks while
//! there is no event: a process that answered its last event waits there
//! until the driver stops it.
//!
//! The server is hyper 0.14's, which the AWS SDK's HTTP stack already builds
//! with its server feature; hyper 1's server feature would change the features
//! of the whole SDK graph and recompile it for every workspace build.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Method, Request, Response, StatusCode};
use hyper014 as hyper;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

const PREFIX: &str = "/2018-06-01/runtime/";

/// The function's answer to one event.
#[derive(Debug)]
pub struct Outcome {
    /// The response body (or the error document for `/error`).
    pub body: Value,
    /// Whether the function reported an invocation error.
    pub error: bool,
    /// When `/next` handed the event out.
    pub handed_at: Instant,
    /// When the answer arrived.
    pub answered_at: Instant,
}

impl Outcome {
    /// The invocation as the function spent it: from the event handed out to
    /// the answer received (what Lambda bills as duration).
    pub fn duration(&self) -> Duration {
        self.answered_at - self.handed_at
    }
}

/// Why an invocation produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function reported an initialisation error: {0}")]
    Init(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the runtime API stopped")]
    Stopped,
}

struct Queued {
    event: Vec<u8>,
    deadline_ms: u64,
    reply: oneshot::Sender<Outcome>,
}

struct InFlight {
    reply: oneshot::Sender<Outcome>,
    handed_at: Instant,
}

struct State {
    function_arn: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    first_poll: OnceLock<Instant>,
    init_error: Mutex<Option<String>>,
}

/// One Runtime API endpoint for one function process.
pub struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::UnboundedSender<Queued>,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Serve on a free loopback port. `function_arn` is what
    /// `Lambda-Runtime-Invoked-Function-Arn` carries.
    pub fn start(function_arn: &str) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (events, queue) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            function_arn: function_arn.to_owned(),
            queue: tokio::sync::Mutex::new(queue),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: OnceLock::new(),
            init_error: Mutex::new(None),
        });
        let shared = state.clone();
        let make = make_service_fn(move |_conn| {
            let state = shared.clone();
            async move { Ok::<_, Infallible>(service_fn(move |req| serve(state.clone(), req))) }
        });
        let server = hyper::Server::from_tcp(listener)
            .map_err(std::io::Error::other)?
            .http1_only(true)
            .serve(make);
        let server = tokio::spawn(async move {
            let _ = server.await;
        });
        Ok(Self {
            addr,
            events,
            state,
            server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function process.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// When the function first asked for an event, if it has.
    pub fn first_poll(&self) -> Option<Instant> {
        self.state.first_poll.get().copied()
    }

    /// Queue `event` for the function; the future resolves with its answer.
    /// The invocation's deadline is `timeout` from now, as Lambda's
    /// `Lambda-Runtime-Deadline-Ms` would say for a function with that timeout.
    pub fn invoke(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Outcome, InvokeError>> + 'static {
        let (reply, answer) = oneshot::channel();
        let deadline_ms = (SystemTime::now() + timeout)
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let queued = self.events.send(Queued {
            event: event.to_string().into_bytes(),
            deadline_ms,
            reply,
        });
        let state = self.state.clone();
        // Wait a little longer than the deadline: the function answers late
        // rather than never, and a late answer is still measured.
        let wait = timeout + Duration::from_secs(5);
        async move {
            if queued.is_err() {
                return Err(InvokeError::Stopped);
            }
            let mut answer = answer;
            let started = Instant::now();
            loop {
                if let Some(e) = state.init_error.lock().expect("lock").clone() {
                    return Err(InvokeError::Init(e));
                }
                let left = wait.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(InvokeError::Timeout(wait));
                }
                let tick = left.min(Duration::from_millis(100));
                match tokio::time::timeout(tick, &mut answer).await {
                    Ok(Ok(outcome)) => return Ok(outcome),
                    Ok(Err(_)) => return Err(InvokeError::Stopped),
                    Err(_) => continue,
                }
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A request id shaped like Lambda's (a UUID).
fn request_id() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An X-Ray trace header shaped like Lambda's.
fn trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let root: [u8; 12] = rand::rng().random();
    let parent: [u8; 8] = rand::rng().random();
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        hex::encode(root),
        hex::encode(parent)
    )
}

fn reply(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn serve(state: Arc<State>, req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let Some(route) = path.strip_prefix(PREFIX) else {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            json!({"errorMessage": "unknown path", "errorType": "InvalidRequest"}),
        ));
    };
    let method = req.method().clone();
    let body = hyper::body::to_bytes(req.into_body())
        .await
        .unwrap_or_default();
    let accepted = || reply(StatusCode::ACCEPTED, json!({"status": "OK"}));
    match (method, route.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => Ok(next(&state).await),
        (Method::POST, ["init", "error"]) => {
            let text = String::from_utf8_lossy(&body).into_owned();
            *state.init_error.lock().expect("lock") = Some(text);
            Ok(accepted())
        }
        (Method::POST, ["invocation", id, kind @ ("response" | "error")]) => {
            let Some(flight) = state.in_flight.lock().expect("lock").remove(*id) else {
                return Ok(reply(
                    StatusCode::BAD_REQUEST,
                    json!({"errorMessage": "unknown request id", "errorType": "InvalidRequestID"}),
                ));
            };
            let answered_at = Instant::now();
            let body = serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
            let _ = flight.reply.send(Outcome {
                body,
                error: *kind == "error",
                handed_at: flight.handed_at,
                answered_at,
            });
            Ok(accepted())
        }
        _ => Ok(reply(
            StatusCode::NOT_FOUND,
            json!({"errorMessage": "unknown path", "errorType": "InvalidRequest"}),
        )),
    }
}

/// `GET /runtime/invocation/next`: wait for the driver's next event.
async fn next(state: &State) -> Response<Body> {
    state.first_poll.get_or_init(Instant::now);
    let queued = state.queue.lock().await.recv().await;
    let Some(queued) = queued else {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"errorMessage": "no more events", "errorType": "ServiceException"}),
        );
    };
    let id = request_id();
    let response = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("Lambda-Runtime-Aws-Request-Id", &id)
        .header("Lambda-Runtime-Deadline-Ms", queued.deadline_ms.to_string())
        .header("Lambda-Runtime-Invoked-Function-Arn", &state.function_arn)
        .header("Lambda-Runtime-Trace-Id", trace_id())
        .body(Body::from(queued.event))
        .unwrap_or_else(|_| Response::new(Body::empty()));
    state.in_flight.lock().expect("lock").insert(
        id,
        InFlight {
            reply: queued.reply,
            handed_at: Instant::now(),
        },
    );
    response
}
