//! The portal's routes, over plain request and response values (the
//! `portal` function converts from and to `lambda_http`).
//!
//! - `POST /v1/portal/sessions` (behind the key authorizer): open a link;
//!   `DELETE /v1/portal/sessions?owner=`: end an owner's sessions;
//! - `GET /portal` redirects to `/portal/home`, the page; `/portal/docs.html`
//!   the API reference; `/portal/assets/*` static files;
//!   `/portal/openapi.yaml` the embedded spec (needs a session);
//! - `/portal/api/...`: the JSON API the page calls (see [`super::api`]).
//!
//! Every answer carries the security headers of [`super::headers`].

use serde_json::{json, Value};

use crate::clock::Clock;
use crate::manage::{ApiRequest, Caller, KeyService, ManageError};
use crate::secrets::SecretSink;
use crate::store::{KeyAdmin, PortalStore, UsageStore};
use crate::usage::service::UsageService;

use super::error::PortalError;
use super::headers::{self, CSP};
use super::request::CreateSessionRequest;
use super::session::Sessions;
use super::settings::PortalSettings;
use super::site::{error_page, Site, HOME};

/// A request as the portal needs it.
#[derive(Debug, Clone)]
pub struct PortalRequest<'a> {
    /// Method, raw path (with the stage, as API Gateway passes it), query,
    /// content type, body, and the authorizer's caller (only on
    /// `/v1/portal/sessions`).
    pub api: ApiRequest<'a>,
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub forwarded_proto: Option<&'a str>,
    /// The `X-CSRF-Token` header.
    pub csrf: Option<&'a str>,
    /// The `Cookie` header.
    pub cookie: Option<&'a str>,
}

/// An answer: status, content type, body and headers (security headers,
/// `Set-Cookie`, `Location`).
#[derive(Debug, Clone, PartialEq)]
pub struct PortalResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl PortalResponse {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
            headers: headers::security(CSP),
        }
    }

    /// The answer with one more header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The value of a header (first), for tests and the function.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json_body(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The developer portal: sessions, pages and the JSON API over the same
/// `KeyService` and `UsageService` the API uses.
pub struct Portal<S, C, X> {
    pub keys: KeyService<S, C, X>,
    pub usage: UsageService<S, C>,
    pub store: S,
    pub clock: C,
    pub settings: PortalSettings,
    pub site: Site,
}

impl<S, C, X> Portal<S, C, X>
where
    S: KeyAdmin + UsageStore + PortalStore,
    C: Clock,
    X: SecretSink,
{
    pub(super) fn sessions(&self) -> Sessions<'_, S, C, X> {
        Sessions {
            keys: &self.keys,
            store: &self.store,
            clock: &self.clock,
            settings: &self.settings,
        }
    }

    /// Serve one request.
    pub async fn handle(&self, req: &PortalRequest<'_>) -> PortalResponse {
        let segs = req.api.segments();
        if let Some(["portal", "sessions", rest @ ..]) = segs.as_deref() {
            return json_result(match (rest, req.api.method) {
                ([], "POST") => self.create(req).await,
                ([], "DELETE") => self.revoke(req).await,
                ([], _) => Err(ManageError::MethodNotAllowed.into()),
                _ => Err(ManageError::NoRoute.into()),
            });
        }
        let Some(sub) = portal_subpath(req.api.path) else {
            return self.page_error(404, "Not found", "There is no such page.");
        };
        if let Some(api) = sub.strip_prefix("/api/") {
            return json_result(self.api(req, api).await);
        }
        match (sub, req.api.method) {
            ("" | "/", "GET" | "HEAD") => PortalResponse {
                status: 308,
                content_type: "text/plain; charset=utf-8",
                body: Vec::new(),
                headers: headers::security(CSP),
            }
            .with_header("location", format!("{}/{HOME}", self.settings.path)),
            ("/openapi.yaml", "GET") => self.spec(req).await,
            (_, "GET" | "HEAD") => self.static_file(sub.trim_start_matches('/')),
            _ => self.page_error(405, "Method not allowed", "This page only answers GET."),
        }
    }

    /// `POST /v1/portal/sessions`: 201 `{url, expires_at}`.
    async fn create(&self, req: &PortalRequest<'_>) -> Result<PortalResponse, PortalError> {
        let caller: Caller = req.api.caller.clone().ok_or(ManageError::Unauthenticated)?;
        let body: CreateSessionRequest = req.api.json()?;
        let (token, link) = self.sessions().open(&caller, body).await?;
        let origin = headers::own_origin(req.host.unwrap_or("localhost"), req.forwarded_proto);
        tracing::info!(
            actor = caller.actor,
            owner = link.owner,
            "portal link opened"
        );
        Ok(PortalResponse::json(
            201,
            &json!({
                "url": format!("{origin}{}/{HOME}#t={}", self.settings.path, token.expose()),
                "expires_at": link.expires_at,
            }),
        ))
    }

    /// `DELETE /v1/portal/sessions?owner=`: end every session of an owner
    /// (the provider disabled the customer's account): 200 `{revoked}`.
    async fn revoke(&self, req: &PortalRequest<'_>) -> Result<PortalResponse, PortalError> {
        let caller: Caller = req.api.caller.clone().ok_or(ManageError::Unauthenticated)?;
        let owner = req.api.param("owner").ok_or_else(|| {
            ManageError::invalid("missing_owner", "owner", "name the owner: ?owner=")
        })?;
        let revoked = self.sessions().revoke(&caller, owner).await?;
        tracing::info!(
            actor = caller.actor,
            owner,
            revoked,
            "portal sessions revoked"
        );
        Ok(PortalResponse::json(200, &json!({ "revoked": revoked })))
    }

    async fn spec(&self, req: &PortalRequest<'_>) -> PortalResponse {
        match self
            .sessions()
            .find(headers::session_from(req.cookie))
            .await
        {
            Ok(_) => PortalResponse {
                status: 200,
                content_type: "application/yaml",
                body: self.site.spec.to_vec(),
                headers: headers::security(CSP),
            },
            Err(e) => json_result(Err(e)),
        }
    }

    fn static_file(&self, path: &str) -> PortalResponse {
        let Some(asset) = self.site.asset(path) else {
            return self.page_error(404, "Not found", "There is no such page.");
        };
        let csp = if asset.path == "docs.html" {
            headers::docs_csp(
                self.settings
                    .spec_url
                    .as_deref()
                    .and_then(headers::origin_of),
            )
        } else {
            CSP.to_owned()
        };
        PortalResponse {
            status: 200,
            content_type: asset.content_type,
            body: asset.body.to_vec(),
            headers: headers::security(&csp),
        }
    }

    fn page_error(&self, status: u16, title: &str, message: &str) -> PortalResponse {
        PortalResponse {
            status,
            content_type: "text/html; charset=utf-8",
            body: error_page(&self.settings.path, status, title, message).into_bytes(),
            headers: headers::security(CSP),
        }
    }
}

/// The path below `/portal` (`""`, `"/"`, `"/api/keys"`, ...), whatever
/// stage prefix stands before it; `None` outside the portal.
fn portal_subpath(path: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(i) = path[from..].find("/portal") {
        let rest = &path[from + i + "/portal".len()..];
        if rest.is_empty() || rest.starts_with('/') {
            return Some(rest);
        }
        from += i + 1;
    }
    None
}

/// An API answer, or the error's JSON; 5xx failures are logged with their
/// cause, never shown.
pub(super) fn json_result(result: Result<PortalResponse, PortalError>) -> PortalResponse {
    result.unwrap_or_else(|err| {
        if err.status() >= 500 {
            tracing::error!(code = err.code(), error = %err, cause = ?std::error::Error::source(&err), "portal request failed");
        }
        let mut resp = PortalResponse::json(err.status(), &err.body());
        if let Some(s) = crate::manage::retry_after(err.status()) {
            resp.headers.push(("retry-after", s.to_string()));
        }
        resp
    })
}

#[cfg(test)]
mod tests {
    use super::portal_subpath;

    #[test]
    fn the_portal_path_is_found_behind_any_stage() {
        assert_eq!(portal_subpath("/portal"), Some(""));
        assert_eq!(portal_subpath("/prod/portal/"), Some("/"));
        assert_eq!(portal_subpath("/prod/portal/api/keys"), Some("/api/keys"));
        assert_eq!(portal_subpath("/portals/x"), None);
        assert_eq!(portal_subpath("/x/portalx/portal/a"), Some("/a"));
    }
}
