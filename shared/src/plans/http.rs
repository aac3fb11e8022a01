//! The plan routes of the management API (served by the `keys` function
//! beside the key routes, with the same errors and bodies).

use crate::clock::Clock;
use crate::manage::http::ok;
use crate::manage::{ApiRequest, ApiResponse, Caller, ManageError};
use crate::store::PlanAdmin;

use super::request::{CreatePlanRequest, SubscribeRequest, UpdatePlanRequest};
use super::service::PlanService;

/// Serve `segs` (the path after `/v1/`) if it is a plan route; `None`
/// otherwise.
pub async fn dispatch<S: PlanAdmin, C: Clock>(
    plans: &PlanService<'_, S, C>,
    caller: &Caller,
    req: &ApiRequest<'_>,
    segs: &[&str],
) -> Option<Result<ApiResponse, ManageError>> {
    let answer = match (segs, req.method) {
        (["plans"], "POST") => match req.json::<CreatePlanRequest>() {
            Ok(body) => plans.create(caller, body).await.and_then(|p| ok(201, &p)),
            Err(e) => Err(e),
        },
        (["plans"], "GET") => plans
            .list(caller, req.param("cursor"), req.param("limit"))
            .await
            .and_then(|p| ok(200, &p)),
        (["plans", id], "GET") => plans.get(caller, id).await.and_then(|p| ok(200, &p)),
        (["plans", id], "PATCH") => match req.json::<UpdatePlanRequest>() {
            Ok(body) => plans
                .update(caller, id, body)
                .await
                .and_then(|p| ok(200, &p)),
            Err(e) => Err(e),
        },
        (["owners", owner, "plan"], "PUT") => match req.json::<SubscribeRequest>() {
            Ok(body) => plans
                .subscribe(caller, owner, body)
                .await
                .and_then(|v| ok(200, &v)),
            Err(e) => Err(e),
        },
        (["owners", owner, "plan"], "GET") => plans
            .subscription(caller, owner)
            .await
            .and_then(|v| ok(200, &v)),
        (["plans"] | ["plans", _] | ["owners", _, "plan"], _) => Err(ManageError::MethodNotAllowed),
        _ => return None,
    };
    Some(answer)
}
