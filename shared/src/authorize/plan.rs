//! The authorizer's side of owners' plans (issue 17; the write is
//! `store/plan_admission.rs`): the owner's plan stamp, cached with the key
//! records, and one spend from the plan allowance per decision, held across
//! the key's own attempts and given back if they refuse.

use std::collections::HashMap;

use super::{Authorizer, Cache};
use crate::clock::{Clock, Timestamp};
use crate::decision::{DenyReason, LimitHit};
use crate::limits::day_string;
use crate::store::plan_admission::{
    self, PlanExplained, PlanGranted, PlanHints, PlanLimit, PlanSpend, PlanStamp,
};
use crate::store::{Admission, KeyLookup, PlanOutcome, StoreError};

/// Owners' plan stamps this container knows, with when each was read.
#[derive(Debug, Default)]
pub(super) struct Stamps {
    stamps: HashMap<String, (Option<PlanStamp>, Timestamp)>,
    hints: HashMap<String, PlanHints>,
}

/// What one spend from the plan allowance came to.
pub(super) enum PlanStep {
    /// Spent: the key's own allowance decides next.
    Granted(PlanSpend, PlanGranted),
    /// A limit of the plan is spent (marked here until its window ends).
    Denied(DenyReason, LimitHit),
    /// The stamp changed: decide again with the new one (`None`: no plan).
    Restamped(Option<PlanStamp>),
    /// A counter is in a later period than this reading: decide again.
    Again,
    Failed(StoreError),
}

/// Marks of a spent plan limit live under the plan allowance, one item
/// number per limit, for the plan id and stamp version they were seen at.
fn mark_item(which: PlanLimit) -> u32 {
    match which {
        PlanLimit::Rate => 0,
        PlanLimit::Day => 1,
        PlanLimit::Month => 2,
    }
}

/// What a deny by a plan limit tells the backend.
pub(super) fn plan_hit(stamp: &PlanStamp, which: PlanLimit) -> LimitHit {
    LimitHit {
        scope: "plan",
        window: which.window_name(stamp),
        plan_id: Some(stamp.plan_id.clone()),
    }
}

impl Cache {
    fn stamp(&self, owner: &str, now: Timestamp, ttl: i64) -> Option<Option<PlanStamp>> {
        let (stamp, at) = self.plans.stamps.get(owner)?;
        (now - *at < ttl && now >= *at).then(|| stamp.clone())
    }
}

impl<S: KeyLookup + Admission, C: Clock> Authorizer<S, C> {
    /// The owner's plan: from this container's cache while it is younger
    /// than the record cache TTL, else read (one request, counted).
    pub(super) async fn plan_of(
        &self,
        owner: &str,
        now: Timestamp,
        requests: &mut u32,
    ) -> Result<Option<PlanStamp>, StoreError> {
        let ttl = self.config.cache_ttl;
        if let Some(known) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.stamp(owner, now, ttl))
        {
            return Ok(known);
        }
        *requests += 1;
        let stamp = self.store.plan_stamp(owner).await?;
        self.restamp(owner, stamp.clone(), now);
        Ok(stamp)
    }

    /// The owner's plan as this container knows it now, without a read
    /// (`None` if unknown or on no plan).
    pub(super) fn known_plan(&self, owner: &str, now: Timestamp) -> Option<PlanStamp> {
        let ttl = self.config.cache_ttl;
        self.cache.lock().ok()?.stamp(owner, now, ttl).flatten()
    }

    /// Remember the owner's stamp as now known.
    pub(super) fn restamp(&self, owner: &str, stamp: Option<PlanStamp>, now: Timestamp) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.plans.stamps.insert(owner.to_owned(), (stamp, now));
        }
    }

    /// The plan limit this container saw spent, if any still holds.
    fn plan_blocked(&self, stamp: &PlanStamp, now: Timestamp) -> Option<PlanLimit> {
        let cache = self.cache.lock().ok()?;
        let allowance = stamp.allowance_id();
        PlanLimit::ALL.into_iter().find(|which| {
            cache
                .exhausted
                .blocked(
                    &allowance,
                    mark_item(*which),
                    (stamp.plan_id.as_str(), stamp.version),
                    now,
                )
                .is_some()
        })
    }

    /// Spend one request from the owner's plan (one request, counted),
    /// unless a limit of it is known spent here.
    pub(super) async fn spend_plan(
        &self,
        stamp: &PlanStamp,
        now: Timestamp,
        requests: &mut u32,
    ) -> PlanStep {
        if let Some(which) = self.plan_blocked(stamp, now) {
            return PlanStep::Denied(which.reason(), plan_hit(stamp, which));
        }
        let hints = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.plans.hints.get(&stamp.owner).copied())
            .unwrap_or_default();
        let spend = PlanSpend::new(stamp, &hints, now);
        *requests += 1;
        match self.store.spend_plan(&spend).await {
            Ok(PlanOutcome::Admitted(granted)) => {
                self.plan_hints(&stamp.owner, granted.hints);
                PlanStep::Granted(spend, granted)
            }
            Ok(PlanOutcome::Rejected(old)) => match spend.explain(old.as_ref(), now) {
                PlanExplained::Deny(which) => {
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.exhausted.mark(
                            &stamp.allowance_id(),
                            mark_item(which),
                            (stamp.plan_id.as_str(), stamp.version),
                            which.reason(),
                            stamp.exhausted_until(which, now),
                        );
                    }
                    PlanStep::Denied(which.reason(), plan_hit(stamp, which))
                }
                PlanExplained::Restamp(new) => {
                    self.restamp(&stamp.owner, new.clone(), now);
                    PlanStep::Restamped(new)
                }
                PlanExplained::Retry(hints) => {
                    self.plan_hints(&stamp.owner, hints);
                    PlanStep::Again
                }
            },
            Err(e) => PlanStep::Failed(e),
        }
    }

    fn plan_hints(&self, owner: &str, hints: PlanHints) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.plans.hints.insert(owner.to_owned(), hints);
        }
    }

    /// Give back a spend the key's own allowance refused (one request,
    /// counted; a failure is logged: a unit lost to the plan until its
    /// period ends, never one admitted twice).
    pub(super) async fn refund(&self, spend: &PlanSpend, requests: &mut u32) {
        *requests += 1;
        if let Err(e) = self.store.refund_plan(spend).await {
            tracing::warn!(owner = %spend.stamp.owner, plan = %spend.stamp.plan_id, error = %e, "plan refund failed");
        }
    }

    /// Count a denial while on a plan under the plan (flushed with the
    /// container's usage detail).
    pub(super) fn count_plan_denial(&self, stamp: &PlanStamp, reason: DenyReason, now: Timestamp) {
        let name =
            plan_admission::usage_attr(&day_string(now), &stamp.plan_id, &format!("d#{reason}"));
        if let Ok(mut cache) = self.cache.lock() {
            cache.detail.count(&stamp.allowance_id(), name, now);
        }
    }
}
