//! The usage routes in process, for the usage suites: a GET through
//! [`keygate::usage::http::route`], its JSON answer checked against the
//! OpenAPI contract.

use keygate::clock::Clock;
use keygate::manage::{ApiRequest, Caller};
use keygate::store::{KeyAdmin, UsageStore};
use keygate::usage::http::{route, Body};
use keygate::usage::service::UsageService;

/// A GET through the usage routes of `usage`, its JSON answer checked
/// against the OpenAPI contract.
pub async fn get<S, C>(
    usage: &UsageService<S, C>,
    caller: &Caller,
    path: &str,
    query: &[(&str, &str)],
) -> (u16, Body)
where
    S: KeyAdmin + UsageStore,
    C: Clock,
{
    let resp = route(
        usage,
        ApiRequest {
            method: "GET",
            path,
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            content_type: None,
            body: b"",
            caller: Some(caller.clone()),
        },
    )
    .await;
    // Every JSON answer is checked against the OpenAPI contract.
    if let Body::Json(v) = &resp.body {
        crate::openapi::check("GET", path, resp.status, v);
    }
    (resp.status, resp.body)
}
