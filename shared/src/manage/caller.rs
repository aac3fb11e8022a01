//! Who is calling the management API, from the authorizer's context, and
//! what it may do.

use std::collections::HashMap;

use serde_json::Value;

use crate::id::KeyId;
use crate::limits::{Limits, Period};
use crate::model::KeyRecord;
use crate::scope::{holds, Scope};

use super::error::ManageError;

/// The authenticated caller: the key that signed the request, or the
/// operator at the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The calling key; `None` for the operator.
    pub key_id: Option<KeyId>,
    /// Who the audit trail names: the key id, or `operator:<tool>`.
    pub actor: String,
    pub owner: String,
    pub scopes: Vec<Scope>,
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
/// allowlists and expiry no looser than its own key's. `own` is the caller's
/// current record; admins are exempt.
pub fn check_grant(
    caller: &Caller,
    own: &KeyRecord,
    scopes: &[Scope],
    limits: &Limits,
    cidrs: &[ipnet::IpNet],
    expires_at: Option<i64>,
) -> Result<(), ManageError> {
    if caller.is_admin() {
        return Ok(());
    }
    for wanted in scopes {
        if !caller.scopes.iter().any(|held| held.covers(wanted)) {
            return Err(ManageError::forbidden(
                "scope_escalation",
                format!("cannot grant scope '{wanted}': the calling key does not hold it"),
            ));
        }
    }
    let looser = |what: &str| {
        Err(ManageError::forbidden(
            "limit_escalation",
            format!("cannot grant {what} looser than the calling key's own"),
        ))
    };
    if let Some(own_q) = own.limits.quota {
        let Some(q) = limits.quota else {
            return looser("a quota");
        };
        let ok = match (own_q.period, q.period) {
            (a, b) if a == b => q.limit <= own_q.limit,
            // A day quota allows up to 31 times its limit in a month.
            (Period::Month, Period::Day) => q.limit.saturating_mul(31) <= own_q.limit,
            // A month quota allows its whole limit on one day.
            _ => q.limit <= own_q.limit,
        };
        if !ok {
            return looser("a quota");
        }
    }
    if let Some(own_r) = own.limits.rate {
        let Some(r) = limits.rate else {
            return looser("a rate limit");
        };
        // No larger burst, and no higher sustained rate.
        let sustained = u128::from(r.limit) * u128::from(own_r.window)
            <= u128::from(own_r.limit) * u128::from(r.window);
        if r.limit > own_r.limit || !sustained {
            return looser("a rate limit");
        }
    }
    if !own.allowed_cidrs.is_empty()
        && (cidrs.is_empty()
            || !cidrs
                .iter()
                .all(|c| own.allowed_cidrs.iter().any(|o| o.contains(c))))
    {
        return looser("an IP allowlist");
    }
    if let Some(own_exp) = own.expires_at {
        if expires_at.is_none_or(|e| e > own_exp) {
            return looser("an expiry");
        }
    }
    Ok(())
}
