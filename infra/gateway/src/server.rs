//! The HTTP side: each request is matched to a route, authorized, handed to
//! the route's function, and its answer returned, with API Gateway's own
//! answers where API Gateway would give them:
//!
//! | case | status | body |
//! |---|---|---|
//! | no route for the method and path | 404 | `{"message":"Not Found"}` |
//! | an identity source is missing | 401 | `{"message":"Unauthorized"}` |
//! | the authorizer denies | 403 | `{"message":"Forbidden"}` |
//! | the authorizer or the function fails | 500 | `{"message":"Internal Server Error"}` |
//! | the function does not answer in time | 503 | `{"message":"Service Unavailable"}` |
//! | a body over 10 MB | 413 | `{"message":"Request Entity Too Large"}` |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming as Body;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::events::{self, Incoming, Reply, Verdict};
use crate::lambda::{InvokeError, Invoker};
use crate::routes::{Matched, Method};
use crate::template::ApiSpec;

/// HTTP APIs refuse payloads over 10 MB.
pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// The local HTTP API.
#[derive(Debug)]
pub struct Gateway {
    api: ApiSpec,
    invoker: Invoker,
}

fn failed(function: &str, err: &InvokeError) -> Reply {
    tracing::error!(function, error = %err, "invocation failed");
    match err {
        InvokeError::Timeout(_) => Reply::message(503, "Service Unavailable"),
        _ => Reply::message(500, "Internal Server Error"),
    }
}

impl Gateway {
    pub fn new(api: ApiSpec, invoker: Invoker) -> Self {
        Self { api, invoker }
    }

    pub fn api(&self) -> &ApiSpec {
        &self.api
    }

    /// Serve one request.
    pub async fn handle(&self, req: &Incoming) -> Reply {
        let Some(matched) = self.api.routes.find(&req.method, &req.path) else {
            return Reply::message(404, "Not Found");
        };
        let stage = &self.api.stage;
        let context = match &matched.route.authorizer {
            None => None,
            Some(name) => match self.authorize(name, req, &matched).await {
                Ok(ctx) => Some(ctx),
                Err(reply) => return reply,
            },
        };
        let event = events::proxy_event(stage, req, &matched, context.as_ref());
        let function = &matched.route.function;
        match self.invoker.invoke(function, &event).await {
            Ok(answer) => events::reply(&answer).unwrap_or_else(|e| {
                tracing::error!(function, error = %e, "unusable function answer");
                Reply::message(500, "Internal Server Error")
            }),
            Err(e) => failed(function, &e),
        }
    }

    /// The authorizer's context, or the reply that ends the request.
    async fn authorize(
        &self,
        name: &str,
        req: &Incoming,
        matched: &Matched<'_>,
    ) -> Result<serde_json::Map<String, Value>, Reply> {
        let auth = self
            .api
            .authorizer(name)
            .ok_or_else(|| Reply::message(500, "Internal Server Error"))?;
        let identity = events::identity_source(auth, req)
            .ok_or_else(|| Reply::message(401, "Unauthorized"))?;
        let event = events::authorizer_event(&self.api.stage, req, matched, &identity);
        let arn = event["routeArn"].as_str().unwrap_or_default().to_owned();
        let answer = self
            .invoker
            .invoke(&auth.function, &event)
            .await
            .map_err(|e| {
                // An authorizer that fails or times out is a 500 in API Gateway.
                failed(&auth.function, &e);
                Reply::message(500, "Internal Server Error")
            })?;
        match events::verdict(auth, &answer, &arn) {
            Ok(Verdict::Allow(ctx)) => Ok(ctx),
            Ok(Verdict::Deny) => Err(Reply::message(403, "Forbidden")),
            Err(e) => {
                tracing::error!(function = auth.function, error = %e, "unusable authorizer answer");
                Err(Reply::message(500, "Internal Server Error"))
            }
        }
    }

    /// Invoke every function once with a harmless request (no key, no
    /// authorizer context), so the first real request finds them running.
    pub async fn warm(&self, timeout: Duration) -> Result<(), (String, InvokeError)> {
        let routes = self.api.routes.routes();
        for function in self.api.functions() {
            let authorizer = self.api.authorizers.iter().find(|a| a.function == function);
            let route = match authorizer {
                Some(a) => routes
                    .iter()
                    .find(|r| r.authorizer.as_deref() == Some(&a.name)),
                None => routes.iter().find(|r| r.function == function),
            };
            let Some(route) = route else { continue };
            let method = match &route.method {
                Method::Any => "GET".to_owned(),
                Method::Exact(m) => m.clone(),
            };
            let req = Incoming {
                method,
                path: route.pattern.as_str().replace(['{', '}', '+'], ""),
                raw_query: String::new(),
                headers: vec![("host".into(), "localhost".into())],
                body: Vec::new(),
                source_ip: "127.0.0.1".into(),
                protocol: "HTTP/1.1".into(),
                request_id: request_id(),
                time: OffsetDateTime::now_utc(),
            };
            let matched = Matched {
                route,
                params: vec![],
            };
            let event = match authorizer {
                Some(_) => events::authorizer_event(&self.api.stage, &req, &matched, &[]),
                None => events::proxy_event(&self.api.stage, &req, &matched, None),
            };
            let started = Instant::now();
            self.invoker
                .invoke_within(&function, &event, timeout)
                .await
                .map_err(|e| (function.clone(), e))?;
            tracing::info!(function, ms = started.elapsed().as_millis() as u64, "warm");
        }
        Ok(())
    }

    async fn http(&self, req: Request<Body>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let request_id = request_id();
        let reply = match Limited::new(body, MAX_BODY).collect().await {
            Err(_) => Reply::message(413, "Request Entity Too Large"),
            Ok(body) => {
                let incoming = Incoming {
                    method: parts.method.as_str().to_owned(),
                    path: parts.uri.path().to_owned(),
                    raw_query: parts.uri.query().unwrap_or_default().to_owned(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_owned(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect(),
                    body: body.to_bytes().to_vec(),
                    source_ip: peer.ip().to_string(),
                    protocol: format!("{:?}", parts.version),
                    request_id: request_id.clone(),
                    time: OffsetDateTime::now_utc(),
                };
                self.handle(&incoming).await
            }
        };
        // The path only: a query string could carry a key.
        tracing::info!(
            method = %parts.method,
            path = parts.uri.path(),
            status = reply.status,
            ms = started.elapsed().as_millis() as u64,
            "request"
        );
        let mut resp = Response::builder().status(reply.status);
        for (k, v) in &reply.headers {
            resp = resp.header(k, v);
        }
        resp.header("apigw-requestid", request_id)
            .body(Full::new(Bytes::from(reply.body)))
            .unwrap_or_else(|_| {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"{\"message\":\"Internal Server Error\"}",
                )));
                *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                r
            })
    }
}

/// A request id like API Gateway's (opaque, unique enough locally).
fn request_id() -> String {
    format!("{}=", Alphanumeric.sample_string(&mut rand::rng(), 15))
}

/// Accept connections until the task is dropped.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.http(req, peer).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::template::tests::TEMPLATE;

    /// A stand-in invoke endpoint: records which functions are invoked and
    /// denies as the authorizer, answers 202 as any other function.
    async fn invoke_endpoint() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let invoked = Arc::new(Mutex::new(Vec::new()));
        let seen = invoked.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then the body its content-length announces.
                let (head_end, length) = loop {
                    let n = conn.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = conn.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let function = head
                    .split('/')
                    .nth(3)
                    .expect("/2015-03-31/functions/<name>/invocations")
                    .to_owned();
                let answer = if function == "authorizer" {
                    r#"{"isAuthorized":false}"#.to_owned()
                } else {
                    r#"{"statusCode":202,"body":"served"}"#.to_owned()
                };
                seen.lock().unwrap().push(function);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                conn.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        (base, invoked)
    }

    fn get(path: &str, headers: &[(&str, &str)]) -> Incoming {
        Incoming {
            method: "GET".into(),
            path: path.into(),
            raw_query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            source_ip: "203.0.113.7".into(),
            protocol: "HTTP/1.1".into(),
            request_id: "req".into(),
            time: OffsetDateTime::now_utc(),
        }
    }

    #[tokio::test]
    async fn an_open_route_reaches_its_function_without_the_authorizer() {
        let (base, invoked) = invoke_endpoint().await;
        let api = ApiSpec::from_template(TEMPLATE, None).unwrap();
        let gateway = Gateway::new(api, Invoker::new(&base, Duration::from_secs(5)));

        let open = gateway.handle(&get("/health", &[])).await;
        assert_eq!((open.status, open.body.as_slice()), (202, &b"served"[..]));
        assert_eq!(*invoked.lock().unwrap(), ["items"]);

        // The same function behind the authorizer: no identity, no call at
        // all; with one, the authorizer decides first (and denies).
        invoked.lock().unwrap().clear();
        assert_eq!(gateway.handle(&get("/items/1", &[])).await.status, 401);
        assert!(invoked.lock().unwrap().is_empty());
        let denied = gateway
            .handle(&get("/items/1", &[("authorization", "Bearer x")]))
            .await;
        assert_eq!(denied.status, 403);
        assert_eq!(*invoked.lock().unwrap(), ["authorizer"]);
    }
}
