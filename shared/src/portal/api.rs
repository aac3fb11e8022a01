//! The JSON API the portal page calls, under `/portal/api/`:
//!
//! | route | what |
//! |---|---|
//! | `POST session` `{token}` | exchange a link (once) for a session cookie |
//! | `GET session` | the session: owner, grants, expiry, CSRF token |
//! | `DELETE session` | sign out |
//! | `GET keys?cursor=` / `POST keys` | list / create the owner's keys |
//! | `GET keys/{id}`, `POST keys/{id}/rotate`, `POST keys/{id}/revoke` | one key |
//! | `GET keys/{id}/events?cursor=` | its audit trail |
//! | `GET usage?from=&to=` / `GET usage/keys/{id}?from=&to=` | usage |
//!
//! Every call but the exchange needs the session cookie. Every
//! state-changing call (POST, DELETE) must come from this portal's origin
//! (`Origin`), and, but the exchange, carry the session's CSRF token in
//! `X-CSRF-Token`. The key operations are `KeyService`'s and the usage
//! reads `UsageService`'s, with the session as the caller: the same tenant
//! isolation (another owner's key is a 404) and no-escalation rule (403
//! `scope_escalation`) as `/v1/keys`.

use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::manage::request::IssueRequest;
use crate::manage::{Caller, ManageError};
use crate::secrets::SecretSink;
use crate::store::{KeyAdmin, PortalGrant, PortalStore, UsageStore};
use crate::usage::service::Range;

use super::error::PortalError;
use super::headers;
use super::http::{Portal, PortalRequest, PortalResponse};
use super::request::{ExchangeRequest, PortalRotateRequest};
use super::session::caller_of;
use super::token::Secret;

fn ok<T: Serialize>(status: u16, body: &T) -> Result<PortalResponse, PortalError> {
    Ok(PortalResponse::json(
        status,
        &serde_json::to_value(body).unwrap_or(Value::Null),
    ))
}

fn changes_state(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// What the page learns of its session (and where the API reference's
/// document is).
fn session_view(id: &Secret, s: &PortalGrant, spec_url: Option<&str>) -> Value {
    json!({
        "spec_url": spec_url.unwrap_or("openapi.yaml"),
        "owner": s.owner,
        "expires_at": s.expires_at,
        "return_url": s.return_url,
        "grants": s.grants,
        "csrf_token": id.csrf(),
    })
}

impl<S, C, X> Portal<S, C, X>
where
    S: KeyAdmin + UsageStore + PortalStore,
    C: Clock,
    X: SecretSink,
{
    /// A state-changing call from another origin is refused.
    fn check_origin(&self, req: &PortalRequest<'_>) -> Result<(), PortalError> {
        let own = headers::own_origin(req.host.unwrap_or_default(), req.forwarded_proto);
        match req.origin {
            Some(o) if o == own => Ok(()),
            _ => Err(PortalError::Origin),
        }
    }

    /// Serve `/portal/api/<path>`.
    pub(super) async fn api(
        &self,
        req: &PortalRequest<'_>,
        path: &str,
    ) -> Result<PortalResponse, PortalError> {
        let method = req.api.method;
        if changes_state(method) {
            self.check_origin(req)?;
        }
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if let (["session"], "POST") = (segs.as_slice(), method) {
            return self.exchange(req).await;
        }
        let (id, session) = self
            .sessions()
            .find(headers::session_from(req.cookie))
            .await?;
        if changes_state(method) && !req.csrf.is_some_and(|t| id.csrf_matches(t)) {
            return Err(PortalError::Csrf);
        }
        let caller = caller_of(&id.hash(), &session);
        match (segs.as_slice(), method) {
            (["session"], "GET") => ok(
                200,
                &session_view(&id, &session, self.settings.spec_url.as_deref()),
            ),
            (["session"], "DELETE") => {
                self.sessions().end(&id).await?;
                tracing::info!(actor = caller.actor, "portal session ended");
                Ok(PortalResponse::json(200, &json!({"signed_out": true}))
                    .with_header("set-cookie", headers::cleared_cookie(&self.settings.path)))
            }
            _ => self.keys_and_usage(req, &segs, &caller).await,
        }
    }

    async fn exchange(&self, req: &PortalRequest<'_>) -> Result<PortalResponse, PortalError> {
        let body: ExchangeRequest = req.api.json()?;
        let (id, session) = self.sessions().exchange(&body.token).await?;
        let caller = caller_of(&id.hash(), &session);
        tracing::info!(
            actor = caller.actor,
            owner = session.owner,
            "portal session started"
        );
        let max_age = session.expires_at - self.clock.now();
        Ok(PortalResponse::json(
            201,
            &session_view(&id, &session, self.settings.spec_url.as_deref()),
        )
        .with_header(
            "set-cookie",
            headers::session_cookie(id.expose(), &self.settings.path, max_age),
        ))
    }

    async fn keys_and_usage(
        &self,
        req: &PortalRequest<'_>,
        segs: &[&str],
        caller: &Caller,
    ) -> Result<PortalResponse, PortalError> {
        let keys = &self.keys;
        let range = || {
            Range::parse(
                req.api.param("from"),
                req.api.param("to"),
                self.usage.today(),
            )
        };
        match (segs, req.api.method) {
            (["keys"], "GET") => ok(
                200,
                &keys
                    .list(caller, None, req.api.param("cursor"), None)
                    .await?,
            ),
            (["keys"], "POST") => {
                let body: IssueRequest = req.api.json()?;
                if body.deliver_to_secret {
                    return Err(ManageError::invalid(
                        "unknown_field",
                        "deliver_to_secret",
                        "the portal shows a new key once; it does not deliver keys to Secrets Manager",
                    )
                    .into());
                }
                let issued = keys.issue(caller, body).await?;
                tracing::info!(actor = caller.actor, key_id = %issued.view.key_id, "portal key issued");
                ok(201, &issued)
            }
            (["keys", id], "GET") => ok(200, &keys.get(caller, id).await?),
            (["keys", id, "rotate"], "POST") => {
                let body: PortalRotateRequest = req.api.json()?;
                let (new, old) = keys.rotate(caller, id, body.into()).await?;
                ok(201, &json!({"successor": new, "rotated": old}))
            }
            (["keys", id, "revoke"], "POST") => ok(200, &keys.revoke(caller, id).await?),
            (["keys", id, "events"], "GET") => ok(
                200,
                &keys
                    .events(caller, id, req.api.param("cursor"), None)
                    .await?,
            ),
            (["usage"], "GET") => ok(200, &self.usage.owner_totals(caller, None, range()?).await?),
            (["usage", "keys", id], "GET") => {
                ok(200, &self.usage.key_series(caller, id, range()?).await?)
            }
            (
                ["keys"]
                | ["keys", _]
                | ["keys", _, "rotate" | "revoke" | "events"]
                | ["usage"]
                | ["usage", "keys", _]
                | ["session"],
                _,
            ) => Err(ManageError::MethodNotAllowed.into()),
            _ => Err(ManageError::NoRoute.into()),
        }
    }
}
