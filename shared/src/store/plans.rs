//! Plans and owners' subscriptions, as the store keeps them (the item
//! layout is in [`super::items`]; the DynamoDB code in `dynamo/plans.rs`).
//!
//! Two traits, sized by capability: [`PlanLookup`] (consistent `GetItem`s)
//! is all key issuance needs to refuse a key wider than its owner's plan;
//! [`PlanAdmin`] writes plans and subscriptions, and stamps owners' plan
//! allowances.

use async_trait::async_trait;

use super::{Page, StoreError};
use crate::plans::audit::PlanEvent;
use crate::plans::model::{Plan, Subscription};

/// Read plans and subscriptions, strongly consistent.
#[async_trait]
pub trait PlanLookup: Send + Sync {
    async fn plan(&self, plan_id: &str) -> Result<Option<Plan>, StoreError>;

    /// The owner's subscription (current plan and history), if it ever had one.
    async fn subscription(&self, owner: &str) -> Result<Option<Subscription>, StoreError>;
}

/// A change of an owner's subscription, ready to write.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionChange<'a> {
    /// The subscription as read (`None`: the owner never had one): the
    /// write is conditional on it being unchanged.
    pub previous: Option<&'a Subscription>,
    pub next: &'a Subscription,
    /// The plan `next` is on, as read: the write is conditional on its
    /// version, so the stamp never carries a plan's older limits.
    pub plan: Option<&'a Plan>,
    pub event: &'a PlanEvent,
}

/// What re-stamping a plan's subscribers did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restamped {
    /// Owners whose allowance now carries the plan's version.
    pub stamped: u64,
    /// Owners skipped: already at this version or a newer one, or moved to
    /// another plan meanwhile.
    pub skipped: u64,
}

/// Plans, subscriptions and the owners' plan allowance stamps:
/// `TransactWriteItems` (`Put`, `Update`, `Delete` of subscription
/// markers, `ConditionCheck` of a plan's version), `UpdateItem`, `Query`.
#[async_trait]
pub trait PlanAdmin: PlanLookup {
    /// Store a new plan with its event. [`StoreError::Conflict`] if a plan
    /// with that id exists.
    async fn create_plan(&self, plan: &Plan, event: &PlanEvent) -> Result<(), StoreError>;

    /// Replace the plan stored at `previous` by `plan` (its next version),
    /// with its event. [`StoreError::Conflict`] if the stored version is
    /// not `previous`. Does not re-stamp: see [`PlanAdmin::restamp`].
    async fn update_plan(
        &self,
        previous: u64,
        plan: &Plan,
        event: &PlanEvent,
    ) -> Result<(), StoreError>;

    /// Plans by id (the owner index: a plan created a moment ago may take
    /// a second to appear).
    async fn list_plans(&self, limit: i32, cursor: Option<&str>) -> Result<Page<Plan>, StoreError>;

    /// Write a subscription change, its plan markers, the owner's stamp
    /// and the event in one transaction. [`StoreError::Conflict`] if the
    /// subscription or the plan's version changed meanwhile.
    async fn change_subscription(&self, change: SubscriptionChange<'_>) -> Result<(), StoreError>;

    /// Stamp every owner subscribed to `plan` with its current version and
    /// limits, idempotently: an owner already stamped at this version or a
    /// newer one, or moved to another plan, is left alone.
    /// `clock` is read for each owner's write: the slices of a sharded
    /// plan allowance are of the periods at that time.
    async fn restamp(
        &self,
        plan: &Plan,
        clock: &dyn crate::clock::Clock,
    ) -> Result<Restamped, StoreError>;

    /// The audit trail of a subject (`plan:<id>`, `owner:<owner>`), oldest first.
    async fn plan_events(
        &self,
        subject: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<PlanEvent>, StoreError>;
}
