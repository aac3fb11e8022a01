//! Who is calling the management API, from the authorizer's context, and
//! what it may do.

use std::collections::HashMap;

use serde_json::Value;

use crate::grants::{Escalation, Grants, Wanted};
use crate::id::KeyId;
use crate::model::KeyRecord;
use crate::scope::{holds, Scope};

use super::error::ManageError;

/// The authenticated caller: the key that signed the request, or the
/// operator at the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The calling key; `None` for the operator.
    pub key_id: Option<KeyId>,
    /// Who the audit trail names: the key id, `operator:<tool>`, or for a
    /// developer-portal session `portal:<first 16 hex of its id's SHA-256>`.
    pub actor: String,
    pub owner: String,
    /// Permissions (and, for keys, the scopes it may grant).
    pub scopes: Vec<Scope>,
    /// A developer-portal session's ceiling for what it grants; `None` for
    /// keys and the operator, whose ceiling is their own key.
    pub grants: Option<Grants>,
}

impl Caller {
    /// Read the caller from the authorizer context (`keyId`, `owner`,
    /// `scopes`), as API Gateway passes it to the route's function.
    pub fn from_context(ctx: &HashMap<String, Value>) -> Result<Self, ManageError> {
        let text = |k: &str| ctx.get(k).and_then(Value::as_str);
        let key_id = text("keyId")
            .and_then(KeyId::parse)
            .ok_or(ManageError::Unauthenticated)?;
        let owner = text("owner")
            .filter(|o| !o.is_empty())
            .ok_or(ManageError::Unauthenticated)?
            .to_owned();
        let scopes = crate::scope::split_list(text("scopes").unwrap_or_default())
            .map_err(|_| ManageError::Unauthenticated)?;
        Ok(Self {
            actor: key_id.as_str().to_owned(),
            key_id: Some(key_id),
            owner,
            scopes,
            grants: None,
        })
    }

    /// The operator with shell access to the deployment's AWS account
    /// (`keyctl`): an admin, audited as `operator:<tool>`.
    pub fn operator(tool: &str) -> Self {
        Self {
            key_id: None,
            actor: format!("operator:{tool}"),
            owner: "operator".into(),
            scopes: vec![Scope::Admin],
            grants: None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.iter().any(|s| matches!(s, Scope::Admin))
    }

    /// Require a named permission (`admin` holds them all).
    pub fn require(&self, permission: &str) -> Result<(), ManageError> {
        if holds(&self.scopes, permission) {
            Ok(())
        } else {
            Err(ManageError::forbidden(
                "missing_permission",
                format!("this key lacks the '{permission}' permission"),
            ))
        }
    }

    /// Whether the caller may see and manage keys of `owner`. Callers that
    /// may not get the same 404 as for a missing key.
    pub fn may_manage(&self, owner: &str) -> bool {
        self.is_admin() || self.owner == owner
    }

    /// The owner a request acts for: its own unless an admin names another.
    pub fn owner_for(&self, requested: Option<&str>) -> Result<String, ManageError> {
        match requested {
            None => Ok(self.owner.clone()),
            Some(o) if self.may_manage(o) => Ok(o.to_owned()),
            Some(_) => Err(ManageError::NotFound),
        }
    }
}

/// The no-escalation rule: a caller grants only scopes it holds and limits,
/// allowlists and expiry no looser than its own ceiling: a portal session's
/// [`Grants`], else the caller's key (`own`, its current record). Admins
/// are exempt.
pub fn check_grant(
    caller: &Caller,
    own: Option<&KeyRecord>,
    wanted: Wanted<'_>,
) -> Result<(), ManageError> {
    let escalation = |e: Escalation| ManageError::forbidden(e.code, e.message);
    if let Some(grants) = &caller.grants {
        return grants
            .check("this portal session", wanted)
            .map_err(escalation);
    }
    if caller.is_admin() {
        return Ok(());
    }
    let own = own.ok_or(ManageError::Unauthenticated)?;
    let ceiling = Grants {
        scopes: caller.scopes.clone(),
        limits: own.limits,
        allowed_cidrs: own.allowed_cidrs.clone(),
        expires_at: own.expires_at,
    };
    ceiling.check("the calling key", wanted).map_err(escalation)
}
