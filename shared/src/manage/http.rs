//! The management API's routes, over plain request and response values (the
//! `keys` function converts from and to `lambda_http`). One place maps every
//! outcome to a status and a JSON body.

use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::plans::PlanService;
use crate::secrets::SecretSink;
use crate::store::{KeyAdmin, PlanAdmin};

use super::caller::Caller;
use super::error::ManageError;
use super::request::{
    parse_body, IssueRequest, ReportLeakRequest, RotateRequest, UpdateRequest, MAX_BODY,
};
use super::service::KeyService;

/// A request as the router needs it.
#[derive(Debug, Clone)]
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Query parameters (first value of each).
    pub query: Vec<(String, String)>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// The caller from the authorizer context, if there is one.
    pub caller: Option<Caller>,
}

/// A response: status and JSON body. Every response is `no-store`: some
/// carry a key, none should sit in a cache.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
}

/// Seconds a client should wait before retrying a `503` (storage throttled
/// or unavailable, a transaction cancelled by a concurrent one): the
/// `Retry-After` header (RFC 9110 section 10.2.3) every 503 of the API
/// carries. DynamoDB's partition limits are per second, so one second is
/// the natural pause.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The `Retry-After` value an answer with `status` carries, if any.
pub fn retry_after(status: u16) -> Option<u32> {
    (status == 503).then_some(RETRY_AFTER_SECONDS)
}

impl ApiRequest<'_> {
    /// A query parameter (the first value).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Parse the JSON body, after checking size and content type.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ManageError> {
        if self.body.len() > MAX_BODY {
            return Err(ManageError::TooLarge(MAX_BODY));
        }
        let has_body = !self.body.iter().all(u8::is_ascii_whitespace);
        let json_type = self.content_type.is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
        if has_body && !json_type {
            return Err(ManageError::UnsupportedMediaType);
        }
        parse_body(self.body)
    }

    /// The path's segments after `/v1/`.
    pub fn segments(&self) -> Option<Vec<&str>> {
        segments(self.path)
    }
}

/// A JSON answer with `status`.
pub(crate) fn ok<T: Serialize>(status: u16, body: &T) -> Result<ApiResponse, ManageError> {
    Ok(ApiResponse {
        status,
        body: serde_json::to_value(body).unwrap_or(Value::Null),
    })
}

/// The route a path names, relative to the API's `/v1/` root (a stage name
/// in front, as in `/prod/v1/keys`, is ignored).
fn segments(path: &str) -> Option<Vec<&str>> {
    let start = path.find("/v1/")?;
    Some(
        path[start + 4..]
            .split('/')
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// Serve one request.
pub async fn route<S, C, X>(service: &KeyService<S, C, X>, req: ApiRequest<'_>) -> ApiResponse
where
    S: KeyAdmin + PlanAdmin,
    C: Clock,
    X: SecretSink,
{
    match dispatch(service, &req).await {
        Ok(resp) => resp,
        Err(err) => {
            if err.status() >= 500 {
                tracing::error!(code = err.code(), error = %err, cause = ?std::error::Error::source(&err), "management request failed");
            }
            ApiResponse {
                status: err.status(),
                body: err.body(),
            }
        }
    }
}

async fn dispatch<S, C, X>(
    service: &KeyService<S, C, X>,
    req: &ApiRequest<'_>,
) -> Result<ApiResponse, ManageError>
where
    S: KeyAdmin + PlanAdmin,
    C: Clock,
    X: SecretSink,
{
    let segs = segments(req.path).ok_or(ManageError::NoRoute)?;
    let caller = req.caller.clone().ok_or(ManageError::Unauthenticated)?;
    let plans = PlanService::new(service.store(), service.clock());
    if let Some(answer) = crate::plans::http::dispatch(&plans, &caller, req, &segs).await {
        return answer;
    }
    match (segs.as_slice(), req.method) {
        (["keys"], "POST") => ok(
            201,
            &service.issue(&caller, req.json::<IssueRequest>()?).await?,
        ),
        (["keys"], "GET") => ok(
            200,
            &service
                .list(
                    &caller,
                    req.param("owner"),
                    req.param("cursor"),
                    req.param("limit"),
                )
                .await?,
        ),
        (["keys", id], "GET") => ok(200, &service.get(&caller, id).await?),
        (["keys", id], "PATCH") => ok(
            200,
            &service
                .update(&caller, id, req.json::<UpdateRequest>()?)
                .await?,
        ),
        (["keys", id, "revoke"], "POST") => {
            req.json::<serde_json::Map<String, Value>>().and_then(|m| {
                if m.is_empty() {
                    Ok(())
                } else {
                    Err(ManageError::Invalid {
                        code: "unknown_field",
                        message: "revoke takes no body".into(),
                        field: m.keys().next().cloned(),
                    })
                }
            })?;
            ok(200, &service.revoke(&caller, id).await?)
        }
        (["keys", id, "rotate"], "POST") => {
            let (new, old) = service
                .rotate(&caller, id, req.json::<RotateRequest>()?)
                .await?;
            ok(201, &json!({"successor": new, "rotated": old}))
        }
        (["keys", id, "report-leak"], "POST") => ok(
            200,
            &service
                .report_leak(&caller, id, req.json::<ReportLeakRequest>()?)
                .await?,
        ),
        (["keys", id, "events"], "GET") => ok(
            200,
            &service
                .events(&caller, id, req.param("cursor"), req.param("limit"))
                .await?,
        ),
        (
            ["keys"] | ["keys", _] | ["keys", _, "revoke" | "rotate" | "report-leak" | "events"],
            _,
        ) => Err(ManageError::MethodNotAllowed),
        _ => Err(ManageError::NoRoute),
    }
}
