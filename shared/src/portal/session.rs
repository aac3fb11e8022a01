//! Portal sessions: opening a sign-in link (the provider's backend),
//! exchanging it once for a session (the portal page), reading and ending
//! a session, and the management caller a session stands for.

use crate::clock::{Clock, Timestamp};
use crate::grants::{Grants, Wanted};
use crate::manage::request::{
    validate_cidrs, validate_expiry, validate_limits, validate_owner, validate_scopes,
    validate_source_url,
};
use crate::manage::{Caller, KeyService, ManageError};
use crate::scope::Scope;
use crate::secrets::SecretSink;
use crate::store::{KeyAdmin, PortalGrant, PortalStore};

use super::error::PortalError;
use super::request::{CreateSessionRequest, GrantsRequest};
use super::settings::{PortalSettings, LINK_SECONDS};
use super::token::Secret;

/// The permission a key needs to open portal sessions (`admin` holds it).
pub const PORTAL_CREATE: &str = "portal:create";

/// What a portal session may do through `KeyService` and the usage reads:
/// its owner's keys only, and grants only within its [`Grants`].
pub const SESSION_PERMISSIONS: [&str; 5] = [
    "keys:read",
    "keys:issue",
    "keys:rotate",
    "keys:revoke",
    "usage:read",
];

/// Characters of the session hash the audit trail shows (`portal:<these>`):
/// enough to tell sessions apart, never the session id itself.
const ACTOR_HASH_CHARS: usize = 16;

/// Who the audit trail names for a session: `portal:<hash prefix>`.
pub fn actor_of(session_hash: &str) -> String {
    format!(
        "portal:{}",
        &session_hash[..ACTOR_HASH_CHARS.min(session_hash.len())]
    )
}

/// The management caller a session stands for.
pub fn caller_of(session_hash: &str, session: &PortalGrant) -> Caller {
    Caller {
        key_id: None,
        actor: actor_of(session_hash),
        owner: session.owner.clone(),
        scopes: SESSION_PERMISSIONS
            .iter()
            .map(|p| Scope::Permission((*p).to_owned()))
            .collect(),
        grants: Some(session.grants.clone()),
    }
}

/// Scopes a session can never grant: `admin`, and opening portal sessions.
fn ungrantable(scope: &Scope) -> bool {
    match scope {
        Scope::Admin => true,
        Scope::Permission(p) => p.starts_with("portal:"),
        Scope::Route { .. } => false,
    }
}

/// Opens, exchanges and reads sessions.
pub struct Sessions<'a, S, C, X> {
    pub keys: &'a KeyService<S, C, X>,
    pub store: &'a S,
    pub clock: &'a C,
    pub settings: &'a PortalSettings,
}

impl<S, C, X> Sessions<'_, S, C, X>
where
    S: KeyAdmin + PortalStore,
    C: Clock,
    X: SecretSink,
{
    /// `POST /v1/portal/sessions`: a single-use link token for `req.owner`,
    /// valid [`LINK_SECONDS`]. Only its hash is stored.
    ///
    /// # Errors
    /// 403 `missing_permission` without `portal:create`; 403
    /// `scope_escalation` / `limit_escalation` for grants beyond the
    /// calling key's; 400 for invalid fields; 503 when the store fails.
    pub async fn open(
        &self,
        caller: &Caller,
        req: CreateSessionRequest,
    ) -> Result<(Secret, PortalGrant), ManageError> {
        caller.require(PORTAL_CREATE)?;
        validate_owner(&req.owner)?;
        if let Some(url) = &req.return_url {
            validate_source_url(url).map_err(|_| {
                ManageError::invalid(
                    "invalid_return_url",
                    "return_url",
                    "return_url must be an https:// URL of at most 2048 characters",
                )
            })?;
        }
        let now = self.clock.now();
        let grants = match req.grants {
            Some(g) => self.granted(caller, g, now).await?,
            None => self.default_grants(caller).await?,
        };
        let link = PortalGrant {
            owner: req.owner,
            grants,
            return_url: req.return_url,
            created_by: caller.actor.clone(),
            created_at: now,
            expires_at: now + LINK_SECONDS,
        };
        let token = Secret::generate();
        self.store.put_link(&token.hash(), &link).await?;
        Ok((token, link))
    }

    /// Grants as asked, checked against the calling key (no escalation).
    async fn granted(
        &self,
        caller: &Caller,
        g: GrantsRequest,
        now: Timestamp,
    ) -> Result<Grants, ManageError> {
        let scopes = validate_scopes(&g.scopes)?;
        if let Some(s) = scopes.iter().find(|s| ungrantable(s)) {
            return Err(ManageError::forbidden(
                "scope_escalation",
                format!("a portal session cannot grant scope '{s}'"),
            ));
        }
        validate_limits(&g.limits)?;
        let cidrs = validate_cidrs(&g.allowed_cidrs)?;
        validate_expiry(g.expires_at, now)?;
        self.keys
            .check_within(
                caller,
                Wanted {
                    scopes: &scopes,
                    limits: &g.limits,
                    cidrs: &cidrs,
                    expires_at: g.expires_at,
                },
            )
            .await?;
        Ok(Grants {
            scopes,
            limits: g.limits,
            allowed_cidrs: cidrs,
            expires_at: g.expires_at,
        })
    }

    /// The calling key's own ceiling, less what a session never grants.
    async fn default_grants(&self, caller: &Caller) -> Result<Grants, ManageError> {
        let scopes: Vec<Scope> = caller
            .scopes
            .iter()
            .filter(|s| !ungrantable(s))
            .cloned()
            .collect();
        if scopes.is_empty() {
            return Err(ManageError::invalid(
                "grants_required",
                "grants",
                "the calling key holds nothing a portal user could grant; name the grants",
            ));
        }
        let own = match &caller.key_id {
            Some(id) => self.store.key_by_id(id).await?,
            None => None,
        };
        Ok(Grants {
            scopes,
            limits: own.as_ref().map(|r| r.limits).unwrap_or_default(),
            allowed_cidrs: own
                .as_ref()
                .map(|r| r.allowed_cidrs.clone())
                .unwrap_or_default(),
            expires_at: own.and_then(|r| r.expires_at),
        })
    }

    /// End every session of `owner` at once; returns how many ended.
    /// Sessions are found through the owner index, which DynamoDB updates
    /// within about a second: a session opened in that second can be
    /// missed (end it again, or sign it out).
    ///
    /// # Errors
    /// 403 `missing_permission` without `portal:create`; 400 for an invalid
    /// owner; 503 when the store fails.
    pub async fn revoke(&self, caller: &Caller, owner: &str) -> Result<u64, ManageError> {
        caller.require(PORTAL_CREATE)?;
        validate_owner(owner)?;
        Ok(self.store.revoke_owner(owner).await?)
    }

    /// Exchange a link's token (once) for a new session.
    ///
    /// # Errors
    /// 401 `link_invalid` (malformed, unknown or used), 401 `link_expired`,
    /// 503 when the store fails.
    pub async fn exchange(&self, token: &str) -> Result<(Secret, PortalGrant), PortalError> {
        let token = Secret::parse(token).ok_or(PortalError::LinkInvalid)?;
        let link = self
            .store
            .take_link(&token.hash())
            .await?
            .ok_or(PortalError::LinkInvalid)?;
        let now = self.clock.now();
        if link.expires_at <= now {
            return Err(PortalError::LinkExpired);
        }
        let session = PortalGrant {
            created_at: now,
            expires_at: now + self.settings.session_seconds,
            ..link
        };
        let id = Secret::generate();
        self.store.put_session(&id.hash(), &session).await?;
        Ok((id, session))
    }

    /// The live session a cookie names.
    ///
    /// # Errors
    /// 401 `session_required` (no such session), 401 `session_expired`,
    /// 503 when the store fails.
    pub async fn find(&self, cookie: Option<&str>) -> Result<(Secret, PortalGrant), PortalError> {
        let id = cookie
            .and_then(Secret::parse)
            .ok_or(PortalError::NoSession)?;
        let session = self
            .store
            .session(&id.hash())
            .await?
            .ok_or(PortalError::NoSession)?;
        if session.expires_at <= self.clock.now() {
            return Err(PortalError::SessionExpired);
        }
        Ok((id, session))
    }

    /// Sign out: the session stops working at once.
    pub async fn end(&self, id: &Secret) -> Result<(), PortalError> {
        Ok(self.store.delete_session(&id.hash()).await?)
    }
}
