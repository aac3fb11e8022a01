//! The authorizer's side of owners' plans (issue 17; the write is
//! `store/plan_admission.rs`): the owner's plan stamp, cached with the key
//! records, and one spend from the plan allowance per decision, held across
//! the key's own attempts and given back if they refuse. A sharded plan
//! allowance is spent from one random shard with room, as a key's is: a
//! refusal for a limit is followed by one read of every shard, a throttle
//! grows it (1 -> 16 -> 64 shards, at most once a second per container).

use std::collections::HashMap;

use rand::seq::IndexedRandom;
use rand::Rng;

use super::{Authorizer, Cache};
use crate::clock::{Clock, Timestamp};
use crate::decision::{DenyReason, LimitHit};
use crate::limits::day_string;
use crate::store::items;
use crate::store::plan_admission::{
    self, PlanExplained, PlanGranted, PlanHints, PlanLimit, PlanSpend, PlanStamp,
};
use crate::store::shards::grown_throttled;
use crate::store::{Admission, KeyLookup, PlanOutcome, StoreError, Target};

/// Owners' plan stamps this container knows, with when each was read.
#[derive(Debug, Default)]
pub(super) struct Stamps {
    stamps: HashMap<String, (Option<PlanStamp>, Timestamp)>,
    /// Counter hints per plan allowance item (`<owner>#<item>`).
    hints: HashMap<String, PlanHints>,
    /// Owners whose key-change fence this container met, and until when.
    fences: HashMap<String, Timestamp>,
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
    /// A counter of the plan is already in the window or period starting
    /// then (other containers' clocks are ahead): the decision is made in
    /// it, so it is dated from it.
    Ahead(Timestamp),
    /// A spend deciding alone met the owner's key-change fence: decide
    /// again with the key's own allowance too.
    Fenced,
    Failed(StoreError),
}

/// Marks of a spent plan limit live under the plan allowance, one number
/// per item (0: the root of a single one, else the shard) and limit, for
/// the plan id and stamp version they were seen at.
fn mark_item(index: u32, which: PlanLimit) -> u32 {
    index * 3
        + match which {
            PlanLimit::Rate => 0,
            PlanLimit::Day => 1,
            PlanLimit::Month => 2,
        }
}

fn index_of(target: Target) -> u32 {
    match target {
        Target::Single => 0,
        Target::Shard { index, .. } => index,
    }
}

/// Seconds of a key-change fence not available to a container's record
/// cache: the change's own commit after the fence, and clocks apart.
const FENCE_MARGIN: i64 = 20;

/// Spends retried at once on counters found in another period, before the
/// decision starts over with a fresh clock reading.
const PLAN_RETRIES: u32 = 2;

fn hints_key(stamp: &PlanStamp, index: u32) -> String {
    format!("{}#{index}", stamp.owner)
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

    /// The item to spend from: the root of a single plan allowance, or a
    /// random shard with a share of every limit that no mark here says is
    /// spent; the limit to deny on when every one is (a rate if any shard
    /// is only out of rate: it comes back within its window).
    fn plan_target(&self, stamp: &PlanStamp, now: Timestamp) -> Result<Target, PlanLimit> {
        // A poisoned cache knows nothing: the write checks everything.
        let Ok(cache) = self.cache.lock() else {
            return Ok(Target::Single);
        };
        let allowance = stamp.allowance_id();
        let blocked = |index: u32| {
            PlanLimit::ALL.into_iter().find(|which| {
                cache
                    .exhausted
                    .blocked(
                        &allowance,
                        mark_item(index, *which),
                        (stamp.plan_id.as_str(), stamp.version),
                        now,
                    )
                    .is_some()
            })
        };
        if stamp.shards <= 1 {
            return match blocked(0) {
                Some(which) => Err(which),
                None => Ok(Target::Single),
            };
        }
        let mut spent = Vec::new();
        let mut open = Vec::new();
        for index in 1..=stamp.eligible() {
            match blocked(index) {
                Some(which) => spent.push(which),
                None => open.push(index),
            }
        }
        match open.choose(&mut rand::rng()) {
            Some(&index) => Ok(Target::Shard {
                index,
                count: stamp.shards,
            }),
            None if spent.contains(&PlanLimit::Rate) => Err(PlanLimit::Rate),
            None => Err(spent.first().copied().unwrap_or(PlanLimit::Day)),
        }
    }

    fn plan_mark(&self, stamp: &PlanStamp, index: u32, which: PlanLimit, now: Timestamp) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.exhausted.mark(
                &stamp.allowance_id(),
                mark_item(index, which),
                (stamp.plan_id.as_str(), stamp.version),
                which.reason(),
                stamp.exhausted_until(which, now),
            );
        }
    }

    /// Spend one request from the owner's plan (one request, counted),
    /// unless a limit of it is known spent here. On a sharded plan
    /// allowance a shard refused for a limit is marked, every shard is
    /// read at once (one more request) and the spent ones marked, and one
    /// with room is tried; refused again, the decision is a deny.
    ///
    /// `alone`: the spend decides by itself (a key without limits of its
    /// own, no fence known here), so it is conditioned on no key-change
    /// fence.
    pub(super) async fn spend_plan(
        &self,
        stamp: &PlanStamp,
        now: Timestamp,
        requests: &mut u32,
        alone: bool,
    ) -> PlanStep {
        let mut surveyed = false;
        let mut retried = 0;
        loop {
            let target = match self.plan_target(stamp, now) {
                Ok(target) => target,
                Err(which) => return PlanStep::Denied(which.reason(), plan_hit(stamp, which)),
            };
            let index = index_of(target);
            let hints = self
                .cache
                .lock()
                .ok()
                .and_then(|c| c.plans.hints.get(&hints_key(stamp, index)).copied())
                .unwrap_or_else(|| PlanHints::guess(stamp, now));
            let mut spend = PlanSpend::new(stamp, target, &hints, now);
            if alone {
                spend = spend.alone(now);
            }
            *requests += 1;
            let old = match self.store.spend_plan(&spend).await {
                Ok(PlanOutcome::Admitted(granted)) => {
                    self.plan_hints(stamp, index, granted.hints);
                    return PlanStep::Granted(spend, granted);
                }
                Ok(PlanOutcome::Rejected(old)) => old,
                Err(e) => return PlanStep::Failed(e),
            };
            match spend.explain(old.as_ref(), now) {
                PlanExplained::Deny(which) => {
                    self.plan_mark(stamp, index, which, now);
                    if target == Target::Single || surveyed {
                        return PlanStep::Denied(which.reason(), plan_hit(stamp, which));
                    }
                    surveyed = true;
                    *requests += 1;
                    if let Some(step) = self.survey_plan(&spend, now).await {
                        return step;
                    }
                }
                PlanExplained::Restamp(new) => {
                    self.restamp(&stamp.owner, new.clone(), now);
                    return PlanStep::Restamped(new);
                }
                // Counters in another period than thought: again at once
                // with what the refusal showed (a shard this container
                // has not written yet costs this once a period).
                PlanExplained::Retry(hints) => {
                    self.plan_hints(stamp, index, hints);
                    let ahead = [
                        (PlanLimit::Rate, hints.rate),
                        (PlanLimit::Day, hints.day),
                        (PlanLimit::Month, hints.month),
                    ]
                    .into_iter()
                    .filter_map(|(which, seen)| seen.filter(|s| *s > which.current(stamp, now)))
                    .max();
                    if let Some(at) = ahead {
                        return PlanStep::Ahead(at);
                    }
                    retried += 1;
                    if retried > PLAN_RETRIES {
                        return PlanStep::Again;
                    }
                }
                PlanExplained::Fenced(until) => {
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.plans.fences.insert(stamp.owner.clone(), until);
                    }
                    return PlanStep::Fenced;
                }
                // A growth whose shards are not made yet: make them (the
                // store does, reading the layout), then decide again.
                PlanExplained::Missing => {
                    *requests += 2;
                    return match self.store.grow_plan(stamp, stamp.shards, now).await {
                        Ok(found) => {
                            self.restamp(&stamp.owner, found.clone(), now);
                            PlanStep::Restamped(found)
                        }
                        // Another container is making them: a moment,
                        // then again.
                        Err(e)
                            if e.is_transaction_conflict() || matches!(e, StoreError::Conflict) =>
                        {
                            let pause = rand::rng().random_range(2..=10);
                            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                            PlanStep::Restamped(Some(stamp.clone()))
                        }
                        Err(e) => PlanStep::Failed(e),
                    };
                }
            }
        }
    }

    /// Read every shard of a sharded plan allowance at once and mark the
    /// spent ones; a shard stamped anew says the stamp changed.
    async fn survey_plan(&self, spend: &PlanSpend, now: Timestamp) -> Option<PlanStep> {
        let stamp = &spend.stamp;
        let found = match self.store.survey(&stamp.allowance_id(), stamp.shards).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(owner = %stamp.owner, error = %e, "plan shard survey failed");
                return None;
            }
        };
        for (index, item) in (1..).zip(found) {
            let Some(item) = item else { continue };
            let on = spend.on(Target::Shard {
                index,
                count: stamp.shards,
            });
            match on.explain(Some(&item), now) {
                PlanExplained::Deny(which) => self.plan_mark(stamp, index, which, now),
                PlanExplained::Restamp(new) => {
                    self.restamp(&stamp.owner, new.clone(), now);
                    return Some(PlanStep::Restamped(new));
                }
                _ => {}
            }
        }
        None
    }

    /// After a throttled spend: grow the owner's plan allowance (1 -> 16 ->
    /// 64 shards), at most once a second per container and owner. The stamp
    /// after it (`None` if no growth was tried or it failed).
    pub(super) async fn grow_plan(
        &self,
        stamp: &PlanStamp,
        now: Timestamp,
        requests: &mut u32,
    ) -> Option<Option<PlanStamp>> {
        let to = grown_throttled(stamp.shards);
        let id = stamp.allowance_id();
        {
            let mut cache = self.cache.lock().ok()?;
            if to <= stamp.shards || cache.grown.get(&id).is_some_and(|at| now - at < 1) {
                return None;
            }
            cache.grown.insert(id, now);
        }
        // A read of the root (and of the shards when sharded), one transaction.
        *requests += if stamp.shards > 1 { 3 } else { 2 };
        match self.store.grow_plan(stamp, to, self.clock.now()).await {
            Ok(found) => {
                self.restamp(&stamp.owner, found.clone(), now);
                Some(found)
            }
            Err(e) => {
                tracing::warn!(owner = %stamp.owner, to, error = %e, "plan allowance growth failed");
                None
            }
        }
    }

    /// Whether a key of `owner` without limits of its own may be decided
    /// by its plan alone now: the cache TTL is well inside the fence, and
    /// this container has met no fence of the owner that still holds.
    pub(super) fn may_decide_alone(&self, owner: &str, now: Timestamp) -> bool {
        self.config.cache_ttl < items::KEY_FENCE_SECONDS - FENCE_MARGIN
            && self
                .cache
                .lock()
                .is_ok_and(|c| c.plans.fences.get(owner).is_none_or(|until| *until < now))
    }

    fn plan_hints(&self, stamp: &PlanStamp, index: u32, hints: PlanHints) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.plans.hints.insert(hints_key(stamp, index), hints);
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
