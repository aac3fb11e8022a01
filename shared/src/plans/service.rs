//! The plan operations and their rules.
//!
//! Permissions: `plans:manage` (held by `admin`) for every write, and it
//! acts for any owner: it is the provider's own backend permission, like
//! `portal:create`. Reading plans needs `plans:read` or `plans:manage`;
//! reading an owner's subscription also needs that owner to be the
//! caller's own, unless the caller holds `plans:manage` or `admin` (another
//! owner's answers `404 not_found`, as for keys).
//!
//! A plan update commits the new version first, then re-stamps every
//! subscribed owner before answering. If the re-stamp fails (503), the
//! plan is already changed; sending the same PATCH again finds nothing to
//! change and re-stamps whoever is still behind, so it is safe to retry.

use serde_json::json;

use crate::clock::Clock;
use crate::limits::Limits;
use crate::manage::request::{validate_name, validate_owner};
use crate::manage::service::{cursor_error, page_size};
use crate::manage::{Caller, ManageError};
use crate::scope::holds;
use crate::store::{PlanAdmin, PlanLookup, StoreError, SubscriptionChange};

use super::audit::{PlanAction, PlanEvent};
use super::model::{Plan, Subscription};
use super::request::*;
use super::view::{PlanPage, SubscriptionView};

pub const MANAGE: &str = "plans:manage";
pub const READ: &str = "plans:read";

/// Attempts at a subscription change racing another change of the owner
/// or of the plan (each attempt reads both anew).
const SUBSCRIBE_ATTEMPTS: usize = 3;

/// Plans and subscriptions over a store and a clock.
pub struct PlanService<'a, S, C> {
    store: &'a S,
    clock: &'a C,
}

fn plan_not_found(plan_id: &str) -> ManageError {
    ManageError::NoSuch {
        code: "plan_not_found",
        message: format!("no plan '{plan_id}'"),
    }
}

fn version_conflict() -> ManageError {
    ManageError::Clash {
        code: "version_conflict",
        message: "the plan changed meanwhile; read it and retry".into(),
    }
}

/// `plans:read` or `plans:manage`; a refusal names the lesser, which is
/// all a reader needs (403 `missing_permission`).
fn require_read(caller: &Caller) -> Result<(), ManageError> {
    if holds(&caller.scopes, READ) || holds(&caller.scopes, MANAGE) {
        return Ok(());
    }
    caller.require(READ)
}

/// Refuse a key whose own `limits` are wider than its owner's plan
/// (403 `limits_exceed_plan`). An owner on no plan: any limits.
///
/// # Errors
/// 403 as above; 503 when the store fails.
pub async fn check_key_limits<S: PlanLookup + ?Sized>(
    store: &S,
    owner: &str,
    limits: &Limits,
) -> Result<(), ManageError> {
    let Some(plan_id) = store.subscription(owner).await?.and_then(|s| s.plan_id) else {
        return Ok(());
    };
    match store.plan(&plan_id).await? {
        Some(plan) if !plan.limits.narrows(limits) => Err(ManageError::forbidden(
            "limits_exceed_plan",
            format!(
                "owner '{owner}' is on plan '{plan_id}': a key's own limits may only narrow the plan's"
            ),
        )),
        _ => Ok(()),
    }
}

impl<'a, S: PlanAdmin, C: Clock> PlanService<'a, S, C> {
    pub fn new(store: &'a S, clock: &'a C) -> Self {
        Self { store, clock }
    }

    async fn find(&self, plan_id: &str) -> Result<Plan, ManageError> {
        if validate_plan_id(plan_id).is_err() {
            return Err(plan_not_found(plan_id));
        }
        self.store
            .plan(plan_id)
            .await?
            .ok_or_else(|| plan_not_found(plan_id))
    }

    /// `POST /v1/plans`.
    pub async fn create(
        &self,
        caller: &Caller,
        req: CreatePlanRequest,
    ) -> Result<Plan, ManageError> {
        caller.require(MANAGE)?;
        validate_plan_id(&req.plan_id)?;
        validate_name(&req.name)?;
        validate_plan_limits(&req.limits)?;
        let now = self.clock.now();
        let plan = Plan {
            plan_id: req.plan_id,
            name: req.name,
            limits: req.limits,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let event = PlanEvent::new(
            PlanEvent::plan_subject(&plan.plan_id),
            PlanAction::PlanCreated,
            &caller.actor,
            now,
            plan.version,
            json!({"name": plan.name, "limits": plan.limits}),
        );
        match self.store.create_plan(&plan, &event).await {
            Err(StoreError::Conflict) => Err(ManageError::Clash {
                code: "plan_exists",
                message: format!("plan '{}' exists", plan.plan_id),
            }),
            other => other.map(|()| plan).map_err(Into::into),
        }
    }

    /// `GET /v1/plans?cursor=&limit=`.
    pub async fn list(
        &self,
        caller: &Caller,
        cursor: Option<&str>,
        limit: Option<&str>,
    ) -> Result<PlanPage, ManageError> {
        require_read(caller)?;
        let limit = page_size(limit)?;
        let page = self
            .store
            .list_plans(limit, cursor)
            .await
            .map_err(cursor_error)?;
        Ok(PlanPage {
            plans: page.items,
            next_cursor: page.next,
        })
    }

    /// `GET /v1/plans/{plan_id}`.
    pub async fn get(&self, caller: &Caller, plan_id: &str) -> Result<Plan, ManageError> {
        require_read(caller)?;
        self.find(plan_id).await
    }

    /// `PATCH /v1/plans/{plan_id}`: the next version, then every
    /// subscriber re-stamped before the answer.
    pub async fn update(
        &self,
        caller: &Caller,
        plan_id: &str,
        req: UpdatePlanRequest,
    ) -> Result<Plan, ManageError> {
        caller.require(MANAGE)?;
        let old = self.find(plan_id).await?;
        if req.name.is_none() && req.limits.is_none() {
            return Err(ManageError::Invalid {
                code: "empty_update",
                message: "the update names no field to change".into(),
                field: None,
            });
        }
        let mut new = old.clone();
        if let Some(name) = req.name {
            validate_name(&name)?;
            new.name = name;
        }
        if let Some(limits) = req.limits {
            validate_plan_limits(&limits)?;
            new.limits = limits;
        }
        if (&new.name, new.limits) == (&old.name, old.limits) {
            // Nothing to change: a retry of an update whose re-stamp failed.
            self.store.restamp(&old, self.clock).await?;
            return Ok(old);
        }
        if req.version.is_some_and(|v| v != old.version) {
            return Err(version_conflict());
        }
        let now = self.clock.now();
        new.version += 1;
        new.updated_at = now;
        let event = PlanEvent::new(
            PlanEvent::plan_subject(plan_id),
            PlanAction::PlanUpdated,
            &caller.actor,
            now,
            new.version,
            json!({"name": new.name, "limits": new.limits}),
        );
        match self.store.update_plan(old.version, &new, &event).await {
            Err(StoreError::Conflict) => return Err(version_conflict()),
            other => other?,
        }
        let done = self.store.restamp(&new, self.clock).await?;
        tracing::info!(
            plan_id,
            version = new.version,
            stamped = done.stamped,
            skipped = done.skipped,
            "plan re-stamped"
        );
        Ok(new)
    }

    /// `PUT /v1/owners/{owner}/plan`.
    pub async fn subscribe(
        &self,
        caller: &Caller,
        owner: &str,
        req: SubscribeRequest,
    ) -> Result<SubscriptionView, ManageError> {
        caller.require(MANAGE)?;
        validate_owner(owner)?;
        if let Some(id) = &req.plan_id {
            validate_plan_id(id)?;
        }
        for _ in 0..SUBSCRIBE_ATTEMPTS {
            let plan = match &req.plan_id {
                Some(id) => Some(self.find(id).await?),
                None => None,
            };
            let previous = self.store.subscription(owner).await?;
            let current = previous.as_ref().and_then(|p| p.plan_id.as_deref());
            if current == req.plan_id.as_deref() {
                return Ok(SubscriptionView::of(owner, previous.as_ref(), plan));
            }
            let now = self.clock.now();
            let next = Subscription::moved(owner, previous.as_ref(), req.plan_id.as_deref(), now);
            let event = PlanEvent::new(
                PlanEvent::owner_subject(owner),
                PlanAction::SubscriptionChanged,
                &caller.actor,
                now,
                next.version,
                json!({"from": current, "to": req.plan_id, "plan_version": plan.as_ref().map(|p| p.version)}),
            );
            let change = SubscriptionChange {
                previous: previous.as_ref(),
                next: &next,
                plan: plan.as_ref(),
                event: &event,
            };
            match self.store.change_subscription(change).await {
                Err(StoreError::Conflict) => continue,
                other => other?,
            }
            return Ok(SubscriptionView::of(owner, Some(&next), plan));
        }
        Err(ManageError::Conflict(
            "the subscription or its plan kept changing; retry".into(),
        ))
    }

    /// `GET /v1/owners/{owner}/plan`.
    pub async fn subscription(
        &self,
        caller: &Caller,
        owner: &str,
    ) -> Result<SubscriptionView, ManageError> {
        require_read(caller)?;
        if !(caller.may_manage(owner) || holds(&caller.scopes, MANAGE)) {
            return Err(ManageError::NotFound);
        }
        validate_owner(owner)?;
        let sub = self.store.subscription(owner).await?;
        let plan = match sub.as_ref().and_then(|s| s.plan_id.as_deref()) {
            Some(id) => self.store.plan(id).await?,
            None => None,
        };
        Ok(SubscriptionView::of(owner, sub.as_ref(), plan))
    }
}
