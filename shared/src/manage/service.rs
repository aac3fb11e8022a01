//! The management operations, with their authorization rules:
//! permission first, then tenant (another owner's key is a 404, exactly like
//! a missing one), then the no-escalation rule for anything granted.

use std::sync::Arc;

use serde_json::json;

use crate::clock::Clock;
use crate::grants::Wanted;
use crate::id::KeyId;
use crate::issue::{mint, KeySpec};
use crate::key::KeyFormat;
use crate::leak::{LeakHandler, Sighting};
use crate::model::{KeyRecord, KeyStatus};
use crate::plans::service::check_key_limits;
use crate::rotation::{self, Delivery};
use crate::secrets::SecretSink;
use crate::store::{AuditAction, AuditEvent, KeyAdmin, StoreError};

use super::caller::{check_grant, Caller};
use super::error::ManageError;
use super::request::*;
use super::view::{EventPage, IssuedView, KeyPage, KeyView};

/// The `kind` of a leak reported through the API or `keyctl`.
pub const MANUAL_REPORT: &str = "manual";

/// Page size of listings: default and maximum.
pub const DEFAULT_PAGE: i32 = 50;
pub const MAX_PAGE: i32 = 100;

/// Key management over a store, a clock and (optionally) Secrets Manager.
pub struct KeyService<S, C, X> {
    store: S,
    clock: C,
    format: KeyFormat,
    secrets: X,
    secret_prefix: String,
    default_rotation_days: u32,
    /// The leak path of manual reports (the one GitHub's reports take).
    leaks: Option<Arc<dyn LeakHandler>>,
}

impl<S: KeyAdmin, C: Clock, X: SecretSink> KeyService<S, C, X> {
    pub fn new(store: S, clock: C, format: KeyFormat, secrets: X, secret_prefix: &str) -> Self {
        Self {
            store,
            clock,
            format,
            secrets,
            secret_prefix: secret_prefix.to_owned(),
            default_rotation_days: crate::model::DEFAULT_ROTATION_DAYS,
            leaks: None,
        }
    }

    /// Serve manual leak reports through `leaks` (without it, the
    /// deployment has no `report-leak` route: 404).
    pub fn with_leaks(mut self, leaks: Arc<dyn LeakHandler>) -> Self {
        self.leaks = Some(leaks);
        self
    }

    /// The rotation interval of keys issued without one (deployment setting).
    pub fn with_default_rotation_days(mut self, days: u32) -> Self {
        self.default_rotation_days = days;
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The no-escalation rule for `new`, against the caller's ceiling.
    async fn check_grant(&self, caller: &Caller, new: &KeyRecord) -> Result<(), ManageError> {
        self.check_within(
            caller,
            Wanted {
                scopes: &new.scopes,
                limits: &new.limits,
                cidrs: &new.allowed_cidrs,
                expires_at: new.expires_at,
            },
        )
        .await
    }

    /// The no-escalation rule: `wanted` within the caller's ceiling (a
    /// portal session's grants, or the calling key's current record). A
    /// caller whose key vanished or stopped working is not authenticated
    /// any more. Admins (and the operator) are exempt and skip the read.
    ///
    /// # Errors
    /// 403 `scope_escalation` / `limit_escalation`; 401 for a dead key;
    /// 503 when the store fails.
    pub async fn check_within(
        &self,
        caller: &Caller,
        wanted: Wanted<'_>,
    ) -> Result<(), ManageError> {
        if caller.grants.is_some() || caller.is_admin() {
            return check_grant(caller, None, wanted);
        }
        let id = caller.key_id.as_ref().ok_or(ManageError::Unauthenticated)?;
        let own = self
            .store
            .key_by_id(id)
            .await?
            .ok_or(ManageError::Unauthenticated)?;
        if !own.status.is_live() {
            return Err(ManageError::Unauthenticated);
        }
        check_grant(caller, Some(&own), wanted)
    }

    /// A key the caller may see, or 404.
    async fn visible(&self, caller: &Caller, key_id: &str) -> Result<KeyRecord, ManageError> {
        let id = KeyId::parse(key_id).ok_or(ManageError::NotFound)?;
        match self.store.key_by_id(&id).await? {
            Some(r) if caller.may_manage(&r.owner) => Ok(r),
            _ => Err(ManageError::NotFound),
        }
    }

    fn delivery(&self) -> Delivery<'_, X> {
        Delivery {
            secrets: &self.secrets,
            prefix: &self.secret_prefix,
        }
    }

    /// `POST /v1/keys`.
    pub async fn issue(
        &self,
        caller: &Caller,
        req: IssueRequest,
    ) -> Result<IssuedView, ManageError> {
        caller.require("keys:issue")?;
        let now = self.clock.now();
        let owner = caller.owner_for(req.owner.as_deref())?;
        validate_owner(&owner)?;
        validate_name(&req.name)?;
        let scopes = validate_scopes(&req.scopes)?;
        validate_limits(&req.limits)?;
        let cidrs = validate_cidrs(&req.allowed_cidrs)?;
        validate_expiry(req.expires_at, now)?;
        let rotation_days = validate_rotation(req.rotation_days, self.default_rotation_days)?;
        validate_metadata(&req.metadata)?;
        let mut spec = KeySpec::new(owner, req.name, scopes);
        spec.limits = req.limits;
        spec.allowed_cidrs = cidrs;
        spec.expires_at = req.expires_at;
        spec.rotation_days = rotation_days;
        spec.metadata = req.metadata;
        let (key, record) = mint(&self.format, spec, now);
        self.check_grant(caller, &record).await?;
        check_key_limits(&self.store, &record.owner, &record.limits).await?;
        let audit = AuditEvent::new(
            &record.key_id,
            record.version,
            AuditAction::Issued,
            &caller.actor,
            now,
            json!({"view": KeyView::from(&record)}),
        );
        let secret_name = if req.deliver_to_secret {
            let delivery = self.delivery();
            delivery.issue(&self.store, &record, &key, &audit).await?;
            Some(delivery.secret_of(&record))
        } else {
            self.store.create_key(&record, &audit).await?;
            None
        };
        Ok(IssuedView {
            key: key.expose().to_owned(),
            view: KeyView::from(&record),
            secret_name,
        })
    }

    /// `GET /v1/keys/{key_id}`.
    pub async fn get(&self, caller: &Caller, key_id: &str) -> Result<KeyView, ManageError> {
        caller.require("keys:read")?;
        Ok(KeyView::from(&self.visible(caller, key_id).await?))
    }

    /// `GET /v1/keys?owner=&cursor=&limit=`.
    pub async fn list(
        &self,
        caller: &Caller,
        owner: Option<&str>,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<KeyPage, ManageError> {
        caller.require("keys:read")?;
        let owner = caller.owner_for(owner)?;
        validate_owner(&owner)?;
        let limit = page_size(limit)?;
        let page = self
            .store
            .list_by_owner(&owner, limit, cursor)
            .await
            .map_err(cursor_error)?;
        Ok(KeyPage {
            keys: page.items.iter().map(KeyView::from).collect(),
            next_cursor: page.next,
        })
    }

    /// `PATCH /v1/keys/{key_id}`.
    pub async fn update(
        &self,
        caller: &Caller,
        key_id: &str,
        req: UpdateRequest,
    ) -> Result<KeyView, ManageError> {
        caller.require("keys:issue")?;
        let old = self.visible(caller, key_id).await?;
        if !old.status.is_live() {
            return Err(ManageError::Conflict(
                "a revoked, retired or quarantined key cannot change".into(),
            ));
        }
        let now = self.clock.now();
        let mut new = old.clone();
        let mut change = serde_json::Map::new();
        if let Some(name) = req.name {
            validate_name(&name)?;
            change.insert("name".into(), json!(name));
            new.name = name;
        }
        if let Some(scopes) = req.scopes {
            new.scopes = validate_scopes(&scopes)?;
            change.insert("scopes".into(), json!(scopes));
        }
        if let Some(limits) = req.limits {
            validate_limits(&limits)?;
            change.insert("limits".into(), json!(limits));
            new.limits = limits;
        }
        if let Some(cidrs) = req.allowed_cidrs {
            new.allowed_cidrs = validate_cidrs(&cidrs)?;
            change.insert("allowed_cidrs".into(), json!(cidrs));
        }
        if let Some(exp) = req.expires_at {
            validate_expiry(Some(exp), now)?;
            change.insert("expires_at".into(), json!(exp));
            new.expires_at = Some(exp);
        }
        if let Some(days) = req.rotation_days {
            new.rotation_days = validate_rotation(Some(days), self.default_rotation_days)?;
            change.insert("rotation_days".into(), json!(days));
        }
        if let Some(metadata) = req.metadata {
            validate_metadata(&metadata)?;
            change.insert("metadata".into(), json!(metadata));
            new.metadata = metadata;
        }
        if change.is_empty() {
            return Err(ManageError::Invalid {
                code: "empty_update",
                message: "the update names no field to change".into(),
                field: None,
            });
        }
        self.check_grant(caller, &new).await?;
        if new.limits != old.limits {
            check_key_limits(&self.store, &new.owner, &new.limits).await?;
        }
        new.version += 1;
        let audit = AuditEvent::new(
            &old.key_id,
            new.version,
            AuditAction::Updated,
            &caller.actor,
            now,
            serde_json::Value::Object(change),
        );
        self.store.update_key(&old, &new, &audit).await?;
        Ok(KeyView::from(&new))
    }

    /// `POST /v1/keys/{key_id}/revoke`. Revoking a revoked key is a no-op.
    pub async fn revoke(&self, caller: &Caller, key_id: &str) -> Result<KeyView, ManageError> {
        caller.require("keys:revoke")?;
        let record = self.visible(caller, key_id).await?;
        if record.status == KeyStatus::Revoked {
            return Ok(KeyView::from(&record));
        }
        let now = self.clock.now();
        let audit = AuditEvent::new(
            &record.key_id,
            record.version + 1,
            AuditAction::Revoked,
            &caller.actor,
            now,
            json!({"status": "revoked"}),
        );
        let revoked = self.store.revoke(&record.key_id, now, &audit).await?;
        Ok(KeyView::from(&revoked))
    }

    /// `POST /v1/keys/{key_id}/report-leak`: the deployment's leak policy,
    /// exactly as a GitHub report of the key applies it. Reporting a key an
    /// earlier report handled changes nothing and answers the same.
    pub async fn report_leak(
        &self,
        caller: &Caller,
        key_id: &str,
        req: ReportLeakRequest,
    ) -> Result<KeyView, ManageError> {
        caller.require("keys:revoke")?;
        let leaks = self.leaks.as_ref().ok_or(ManageError::NoRoute)?;
        if let Some(url) = &req.source_url {
            validate_source_url(url)?;
        }
        let record = self.visible(caller, key_id).await?;
        let sighting = Sighting {
            kind: MANUAL_REPORT.into(),
            source_url: req.source_url,
            reporter: caller.actor.clone(),
        };
        let handled = leaks.handle(record, &sighting).await?;
        Ok(KeyView::from(&handled.record))
    }

    /// `POST /v1/keys/{key_id}/rotate`: a successor now, the old key until
    /// the grace deadline.
    pub async fn rotate(
        &self,
        caller: &Caller,
        key_id: &str,
        req: RotateRequest,
    ) -> Result<(IssuedView, KeyView), ManageError> {
        caller.require("keys:rotate")?;
        let grace = validate_grace(req.grace_seconds)?;
        let old = self.visible(caller, key_id).await?;
        // The successor carries the old key's scopes, limits, allowlist and
        // expiry: rotating is issuing them anew, so the caller must hold them.
        self.check_within(
            caller,
            Wanted {
                scopes: &old.scopes,
                limits: &old.limits,
                cidrs: &old.allowed_cidrs,
                expires_at: old.expires_at,
            },
        )
        .await?;
        if old.status != KeyStatus::Active {
            return Err(ManageError::Conflict(format!(
                "only an active key can rotate; this one is {:?}",
                old.status
            )));
        }
        let now = self.clock.now();
        let delivery = self.delivery();
        let rotated = rotation::rotate(
            &self.store,
            &self.format,
            &old,
            now + grace as i64,
            now,
            &caller.actor,
            req.deliver_to_secret.then_some(&delivery),
        )
        .await?;
        Ok((
            IssuedView {
                key: rotated.key.expose().to_owned(),
                view: KeyView::from(&rotated.successor),
                secret_name: req
                    .deliver_to_secret
                    .then(|| delivery.secret_of(&rotated.successor)),
            },
            KeyView::from(&rotated.old),
        ))
    }

    /// `GET /v1/keys/{key_id}/events`.
    pub async fn events(
        &self,
        caller: &Caller,
        key_id: &str,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<EventPage, ManageError> {
        caller.require("keys:read")?;
        let record = self.visible(caller, key_id).await?;
        let limit = page_size(limit)?;
        let page = self
            .store
            .events(&record.key_id, limit, cursor)
            .await
            .map_err(cursor_error)?;
        Ok(EventPage {
            events: page.items,
            next_cursor: page.next,
        })
    }
}

pub(crate) fn cursor_error(err: StoreError) -> ManageError {
    match err {
        StoreError::InvalidCursor => ManageError::invalid(
            "invalid_cursor",
            "cursor",
            "cursor was not issued by this API",
        ),
        other => other.into(),
    }
}

pub(crate) fn page_size(limit: Option<&str>) -> Result<i32, ManageError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(text) => text
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ManageError::invalid(
                    "invalid_limit",
                    "limit",
                    format!("limit must be 1-{MAX_PAGE}"),
                )
            }),
    }
}
