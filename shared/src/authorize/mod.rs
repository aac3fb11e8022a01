//! The authorizer's decision pipeline, free of Lambda event types.
//!
//! Ordered cheapest first, quota last, so nothing is spent on a request that
//! fails earlier:
//!
//! 1. credential present, and not in the query string (no I/O);
//! 2. parse and checksum (no I/O): malformed keys never reach DynamoDB;
//! 3. SHA-256;
//! 4. key record, from a short-lived container cache or one eventually
//!    consistent `GetItem`;
//! 5. status and expiry;
//! 6. source IP against the allowlist;
//! 7. method and path against the scopes;
//! 8. one conditional `UpdateItem` that re-checks the record version, spends
//!    quota and rate, and counts usage ([`crate::store::admission`]).
//!
//! In the steady state an allowed request costs exactly that one write.
//! Denials after step 4 are counted in the key's usage with one more write
//! (best effort: a lost count is logged, the deny keeps its reason).
//! Every store failure is an [`AuthError`]; callers must turn it into a deny.
//!
//! **Reads that may be stale.** DynamoDB's default reads are eventually
//! consistent: for about a second after a write, a `GetItem` may return the
//! item as it was, or nothing for a new item. A positive decision needs no
//! fresh read (the admission write re-checks the record's version), but a
//! negative one would be wrong: a just-issued key `not_found`, a just-widened
//! scope `scope_denied`, a just-updated key `revoked`. So no request is
//! denied on a record that did not come from a strongly consistent read:
//! a negative answer from an eventually consistent read (or from the cache
//! filled by one) is confirmed by one consistent `GetItem` first. Cost bound:
//! a well-formed but unknown key costs two reads (0.5 + 1 RCU; forging one
//! takes only the offline checksum, so a flood of distinct unknown keys costs
//! 1.5 RCU each); a known key denied by its record costs one consistent read
//! per container and cache TTL, after which the confirmed record is trusted
//! for denials until it expires from the cache.

pub mod local;
mod plan;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use rand::Rng;

use crate::clock::{Clock, Timestamp};
use crate::decision::{AllowContext, Decision, DenyReason, LimitHit, PlanRemaining};
use crate::hash::KeyHash;
use crate::id::KeyId;
use crate::key::KeyFormat;
use crate::limits::{day_string, Limits};
use crate::model::{KeyRecord, KeyStatus};
use crate::store::admission::{explain, Explained};
use crate::store::items;
use crate::store::plan_admission;
use crate::store::shards::{grown, grown_throttled, MAX_SHARDS};
use crate::store::{
    Admission, AdmitOutcome, AdmitPlan, CounterHints, Granted, KeyLookup, StaleUsage, StoreError,
    Target, UsageMark,
};
use local::{Detail, Exhausted, Floods, Load, Opening};
use plan::{PlanStep, Stamps};

/// Where the request's key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// The key as presented in a header.
    Presented(&'a str),
    /// A key-like parameter was in the query string: refused whatever else.
    InQuery,
    /// Two headers carried two different keys: refused, neither is used.
    Conflicting,
    Missing,
}

/// Everything the pipeline needs to know about one request.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    pub credential: Credential<'a>,
    pub method: &'a str,
    pub path: &'a str,
    /// The API's route template (`GET /orders/{id}`), for usage counts.
    pub route: Option<&'a str>,
    pub source_ip: Option<IpAddr>,
}

/// A decision, with what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    /// The key's public id, once known.
    pub key_id: Option<KeyId>,
    /// DynamoDB requests made for this decision.
    pub requests: u32,
    /// The clock reading the decision was made at (unix seconds): read at
    /// the start, and again when the store shows the decision's reading is
    /// behind (an attempt after throttling, or counters already in a later
    /// window), so an admission spends from the window of this reading.
    pub at: Timestamp,
    /// For a `quota_exceeded` or `rate_limited` deny: which limit.
    pub limit: Option<LimitHit>,
}

/// System failures: the caller must deny (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("store failed after {requests} requests")]
    Store {
        requests: u32,
        #[source]
        source: StoreError,
    },
    #[error("counters kept moving under us after {requests} requests")]
    Contention { requests: u32 },
}

/// Tuning of the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct AuthConfig {
    /// Seconds a key record may be served from the container cache. Status
    /// changes are still immediate: the write re-checks the record version.
    pub cache_ttl: i64,
    /// Records kept in the cache at most.
    pub cache_entries: usize,
    /// Admission attempts per decision (period rollovers and races need more than one).
    pub max_attempts: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            cache_ttl: 10,
            cache_entries: 10_000,
            max_attempts: 4,
        }
    }
}

/// A cached record: when it was read, and whether that read was strongly
/// consistent (only then may it deny).
#[derive(Clone)]
struct Cached {
    record: KeyRecord,
    at: Timestamp,
    consistent: bool,
}

#[derive(Default)]
struct Cache {
    records: HashMap<String, Cached>,
    hints: HashMap<String, CounterHints>,
    /// Allowance item (`<allowance id>#<item>`) -> the day this container
    /// last pruned its usage.
    pruned: HashMap<String, String>,
    /// Items whose limits this container saw exhausted.
    exhausted: Exhausted,
    /// Usage detail of sharded allowances, and local denials, to flush.
    detail: Detail,
    /// Allowance id -> when this container last grew it.
    grown: HashMap<String, Timestamp>,
    /// Admission rates of the items this container writes.
    load: Load,
    /// How the latest rate window of each allowance went here.
    floods: Floods,
    /// Owners' plan stamps and plan counter hints.
    plans: Stamps,
}

/// The pipeline, with its store, clock and container-lifetime cache.
pub struct Authorizer<S, C> {
    store: S,
    clock: C,
    format: KeyFormat,
    config: AuthConfig,
    cache: Mutex<Cache>,
}

/// What step 4-8 work on.
struct Known {
    record: KeyRecord,
    /// Read with `ConsistentRead` (now or within the cache TTL): it may deny.
    consistent: bool,
    /// Read with `ConsistentRead` during this decision: the latest there is.
    fresh: bool,
}

impl<S: KeyLookup + Admission, C: Clock> Authorizer<S, C> {
    pub fn new(store: S, clock: C, format: KeyFormat, config: AuthConfig) -> Self {
        Self {
            store,
            clock,
            format,
            config,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Decide on one request.
    pub async fn authorize(&self, req: &AuthRequest<'_>) -> Result<Verdict, AuthError> {
        let mut now = self.clock.now();
        let presented = match req.credential {
            Credential::Missing => return Ok(offline(DenyReason::Missing, now)),
            Credential::InQuery => return Ok(offline(DenyReason::KeyInQuery, now)),
            Credential::Conflicting => return Ok(offline(DenyReason::ConflictingKeys, now)),
            Credential::Presented(text) => text,
        };
        let Ok(key) = self.format.parse(presented) else {
            return Ok(offline(DenyReason::Malformed, now));
        };
        let hash = KeyHash::of(&key);
        let mut requests = 0u32;
        let fail = |requests, source| AuthError::Store { requests, source };

        let mut known = match self.cached(&hash, now) {
            Some(known) => known,
            None => match self.read(&hash, false, now, &mut requests).await {
                Ok(Some(known)) => known,
                // Maybe only not there yet: confirm before denying.
                Ok(None) => match self.read(&hash, true, now, &mut requests).await {
                    Ok(Some(known)) => known,
                    Ok(None) => {
                        return Ok(Verdict {
                            decision: Decision::Deny(DenyReason::NotFound),
                            key_id: None,
                            requests,
                            at: now,
                            limit: None,
                        })
                    }
                    Err(e) => return Err(fail(requests, e)),
                },
                Err(e) => return Err(fail(requests, e)),
            },
        };

        let mut attempts = 0;
        let mut throttled = 0;
        // Whether the decision was made here, from marks (no write).
        let mut local = false;
        // Whether this decision has read every shard after a refusal, and
        // the item it wrote after a throttle.
        let mut surveyed = false;
        let mut peeked = false;
        let opening = self.opening(&known.record, now);
        let mut read_first = opening == Opening::ReadFirst;
        // The owner's plan, if it is on one (read when a decision first
        // needs it: one denied before any write never does): spent first,
        // held across the key's own attempts, given back if they refuse.
        let mut plan: Option<Option<plan_admission::PlanStamp>> = None;
        let mut plan_grant: Option<(plan_admission::PlanSpend, plan_admission::PlanGranted)> = None;
        let mut hit: Option<LimitHit> = None;
        let looped: Result<Result<Granted, DenyReason>, AuthError> = async { Ok(loop {
            if let Some(reason) = check_record(&known.record, req, now) {
                if known.consistent {
                    break Err(reason);
                }
                // A stale record may deny what the current one allows.
                match self.read(&hash, true, now, &mut requests).await {
                    Ok(Some(fresh)) => {
                        known = fresh;
                        continue;
                    }
                    Ok(None) => {
                        self.forget(&hash);
                        break Err(DenyReason::Revoked);
                    }
                    Err(e) => return Err(fail(requests, e)),
                }
            }
            let record = &known.record;
            if opening == Opening::SitOut {
                local = true;
                break Err(DenyReason::RateLimited);
            }
            let hints = self.hints(record, now);
            let target = match self.target(record, hints.shards, now) {
                Ok(target) => target,
                Err(reason) => {
                    local = true;
                    break Err(reason);
                }
            };
            attempts += 1;
            if attempts > self.config.max_attempts + hints.shards.min(MAX_SHARDS) + throttled {
                return Err(AuthError::Contention { requests });
            }
            if plan.is_none() {
                match self.plan_of(&record.owner, now, &mut requests).await {
                    Ok(stamp) => plan = Some(stamp),
                    Err(e) => return Err(fail(requests, e)),
                }
            }
            if let (None, Some(Some(stamp))) = (&plan_grant, plan.clone()) {
                // A key without limits of its own is decided by its plan
                // alone: one write.
                let alone = record.limits.quota.is_none()
                    && record.limits.rate.is_none()
                    && self.may_decide_alone(&record.owner, now);
                match self.spend_plan(&stamp, now, &mut requests, alone).await {
                    PlanStep::Granted(spend, granted) => plan_grant = Some((spend, granted)),
                    PlanStep::Denied(reason, limit) => {
                        hit = Some(limit);
                        local = true;
                        break Err(reason);
                    }
                    PlanStep::Restamped(new) => {
                        plan = Some(new);
                        continue;
                    }
                    PlanStep::Again => {
                        now = now.max(self.clock.now());
                        continue;
                    }
                    PlanStep::Ahead(at) => {
                        now = now.max(at).max(self.clock.now());
                        continue;
                    }
                    // A key of the owner changed: its own allowance, whose
                    // version map the change updated, decides too.
                    PlanStep::Fenced => continue,
                    // A transaction (a growth, a plan change) holds the item:
                    // a moment, then again.
                    PlanStep::Failed(e) if e.is_transaction_conflict() && throttled < MAX_THROTTLED => {
                        throttled += 1;
                        let pause = rand::rng().random_range(2..=10) * u64::from(throttled);
                        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                        now = now.max(self.clock.now());
                        continue;
                    }
                    PlanStep::Failed(e) if e.is_throttle() && throttled < MAX_THROTTLED => {
                        throttled += 1;
                        tracing::warn!(owner = %stamp.owner, shards = stamp.shards, error = %e, "plan allowance write throttled");
                        // Spread it over more partitions, then try again.
                        if let Some(grown) = self.grow_plan(&stamp, now, &mut requests).await {
                            plan = Some(grown);
                        }
                        let pause = rand::rng().random_range(2..=10) * u64::from(throttled);
                        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                        now = now.max(self.clock.now());
                        continue;
                    }
                    PlanStep::Failed(e) => return Err(fail(requests, e)),
                }
            }
            if let Some((spend, _)) = &plan_grant {
                if spend.alone.is_some() {
                    self.count_alone(record, req, now);
                    break Ok(Granted {
                        quota_remaining: None,
                        rate_remaining: None,
                        hints,
                        stale: StaleUsage::default(),
                        writes: None,
                    });
                }
            }
            let today = day_string(now);
            let item = item_of(target);
            let prune = self.prune_due(&record.allowance_id, item, &today);
            let single = target == Target::Single;
            let usage = UsageMark {
                route: single.then(|| route_label(record, req)),
                source_ip: req.source_ip.filter(|_| single).map(|ip| ip.to_string()),
                keep_from: prune.then(|| day_string(now - items::USAGE_RETENTION_DAYS * 86_400)),
                day: today,
            };
            let plan = AdmitPlan::new(
                target,
                &record.allowance_id,
                &record.key_id,
                record.version,
                &record.limits,
                &hints,
                now,
                usage,
            );
            // After a flooded window, the first decision of the next one
            // reads what is left before writing (a read, from the read
            // budget, instead of a refused write and a survey).
            if std::mem::take(&mut read_first) {
                requests += 1;
                let spent = if single {
                    self.peek(&plan, &record.limits, now).await.is_some()
                } else {
                    surveyed = true;
                    self.survey(&plan, &record.limits, hints.shards, now).await;
                    self.target(record, hints.shards, now).is_err()
                };
                if spent {
                    continue;
                }
            }
            requests += 1;
            match self.store.admit(&plan).await {
                Ok(AdmitOutcome::Admitted(granted)) => {
                    self.set_hints(&record.allowance_id, granted.hints);
                    if !single {
                        self.count_detail(record, req, now);
                    }
                    if self.heating(record, target, granted.writes, now)
                        && self.grow(record, hints.shards, false, now).await
                    {
                        requests += 1;
                    }
                    if let Some(keep_from) = &plan.usage.keep_from {
                        let mark = (item, plan.usage.day.as_str(), keep_from.as_str());
                        if self
                            .prune(&record.allowance_id, target, mark, &granted.stale)
                            .await
                        {
                            requests += 1;
                        }
                    }
                    break Ok(granted);
                }
                Ok(AdmitOutcome::Rejected(old)) => match explain(&plan, old.as_ref(), now) {
                    Explained::Deny(reason) => {
                        let Some(until) = exhausted_until(&record.limits, reason, now) else {
                            break Err(reason);
                        };
                        // This item is spent until its window ends: deny
                        // locally until then; a sharded allowance tries
                        // its other shards first.
                        self.mark(record, item, reason, until);
                        if single {
                            break Err(reason);
                        }
                        // Refused again after reading every shard: the
                        // units the read saw went to other containers
                        // meanwhile; deny rather than chase them.
                        if surveyed {
                            break Err(reason);
                        }
                        // One read of every shard tells which others are
                        // spent too: one request, not a failed write each.
                        if !surveyed {
                            surveyed = true;
                            requests += 1;
                            self.survey(&plan, &record.limits, hints.shards, now).await;
                        }
                    }
                    Explained::Retry(hints) => {
                        self.set_hints(&record.allowance_id, hints);
                        // Counters in a later window than this reading: the
                        // decision is late; it spends from the window it is in.
                        now = now.max(self.clock.now());
                    }
                    Explained::Reshard(shards) => self.reshard(&record.allowance_id, shards),
                    // A growth left half made: make its shards.
                    Explained::Incomplete => {
                        requests += 1;
                        let fresh = self.clock.now();
                        if let Err(e) = self
                            .store
                            .grow(&record.allowance_id, hints.shards, fresh)
                            .await
                        {
                            tracing::warn!(allowance = %record.allowance_id, error = %e, "completing a growth failed");
                            if !e.is_throttle()
                                && !matches!(e, StoreError::Conflict | StoreError::Cancelled(_))
                            {
                                return Err(fail(requests, e));
                            }
                        }
                    }
                    Explained::Stale if known.fresh => {
                        // A consistent read still disagrees with the allowance:
                        // the key is no longer allowed to spend from it.
                        break Err(match record.status {
                            KeyStatus::Active | KeyStatus::Revoked => DenyReason::Revoked,
                            KeyStatus::Quarantined => DenyReason::Leaked,
                            _ => DenyReason::Expired,
                        });
                    }
                    Explained::Stale => match self.read(&hash, true, now, &mut requests).await {
                        Ok(Some(fresh)) => known = fresh,
                        Ok(None) => {
                            self.forget(&hash);
                            break Err(DenyReason::Revoked);
                        }
                        Err(e) => return Err(fail(requests, e)),
                    },
                },
                // The item's partition is over its throughput: spread the
                // allowance over more shards (at most once a second per
                // container), then try again on the new layout.
                // A transaction (a growth, a record change) holds the
                // item: a moment, then again (not a throughput problem).
                Err(e) if e.is_transaction_conflict() && throttled < MAX_THROTTLED => {
                    throttled += 1;
                    let pause = rand::rng().random_range(2..=10) * u64::from(throttled);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    now = now.max(self.clock.now());
                }
                Err(e) if e.is_throttle() && throttled < MAX_THROTTLED => {
                    throttled += 1;
                    tracing::warn!(allowance = %record.allowance_id, shards = hints.shards, error = %e, "allowance write throttled");
                    // A flood throttles too: read (from the partition's
                    // read budget) whether a limit is spent before writing
                    // again; a container that knows denies locally.
                    if !peeked && (record.limits.quota.is_some() || record.limits.rate.is_some()) {
                        peeked = true;
                        requests += 1;
                        if let Some(reason) = self.peek(&plan, &record.limits, now).await {
                            if single {
                                // Counted with the next flush: the
                                // partition is busy enough.
                                local = true;
                                break Err(reason);
                            }
                            if !surveyed {
                                surveyed = true;
                                requests += 1;
                                self.survey(&plan, &record.limits, hints.shards, now).await;
                            }
                            continue;
                        }
                    }
                    if self.grow(record, hints.shards, true, now).await {
                        requests += 1;
                    }
                    // A moment before the next attempt, longer each time,
                    // jittered so containers do not retry in step.
                    let pause = rand::rng().random_range(2..=10) * u64::from(throttled);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    now = now.max(self.clock.now());
                }
                Err(e) => return Err(fail(requests, e)),
            }
        }) }
        .await;
        // A plan unit spent for a request the key's own allowance did not
        // admit goes back.
        let outcome = match looped {
            Ok(outcome) => outcome,
            Err(e) => {
                if let Some((spend, _)) = &plan_grant {
                    self.refund(spend, &mut requests).await;
                }
                return Err(e);
            }
        };
        if outcome.is_err() {
            if let Some((spend, _)) = plan_grant.take() {
                self.refund(&spend, &mut requests).await;
            }
        }

        let record = &known.record;
        let plan_hit = hit.is_some();
        self.tally(record, &outcome, plan_hit, opening == Opening::SitOut, now);
        if let (Err(reason), None) = (&outcome, &hit) {
            hit = key_hit(&record.limits, *reason);
        }
        // Every denial of a key while its owner is on a plan (as this
        // container knows it) is counted under the plan too, whatever denied
        // it (flushed with the detail).
        if let Err(reason) = &outcome {
            let stamp = match plan {
                Some(known) => known,
                None => self.known_plan(&record.owner, now),
            };
            if let Some(stamp) = stamp {
                self.count_plan_denial(&stamp, *reason, now);
            }
        }
        let pruned_root = match &outcome {
            Ok(g) if g.hints.shards == 1 && !g.stale.names.is_empty() => {
                Some(record.allowance_id.clone())
            }
            _ => None,
        };
        let decision = match outcome {
            Ok(granted) => Decision::Allow(AllowContext {
                key_id: record.key_id.clone(),
                owner: record.owner.clone(),
                scopes: record.scopes.clone(),
                quota_remaining: granted.quota_remaining,
                rate_remaining: granted.rate_remaining,
                plan: plan_grant.map(|(spend, g)| PlanRemaining {
                    plan_id: spend.stamp.plan_id,
                    rate_remaining: g.rate_remaining,
                    daily_remaining: g.daily_remaining,
                    monthly_remaining: g.monthly_remaining,
                }),
            }),
            Err(reason) if local || self.hints(record, now).shards > 1 => {
                // Counted here, written with the next flush.
                self.count_denial(record, reason, now);
                Decision::Deny(reason)
            }
            Err(reason) => {
                requests += 1;
                let day = day_string(now);
                // The decision is a deny either way: a failed count must not
                // turn it into `error` and hide its reason. It goes with the
                // next flush instead (e.g. refused for a moment by the daily
                // job's transaction on the item: `TransactionConflict`).
                if let Err(e) = self
                    .store
                    .record_denial(&record.allowance_id, &record.key_id, reason, &day)
                    .await
                {
                    tracing::warn!(key_id = %record.key_id, reason = %reason, error = %e, cause = ?std::error::Error::source(&e), "denial count failed, kept for the next flush");
                    self.count_denial(record, reason, now);
                }
                Decision::Deny(reason)
            }
        };
        // One prune write per decision at most: a root this admission just
        // pruned is not pruned again by its flush.
        self.flush_due(now, pruned_root.as_deref(), &mut requests)
            .await;
        Ok(Verdict {
            decision,
            key_id: Some(record.key_id.clone()),
            requests,
            at: now,
            limit: hit,
        })
    }

    /// Read the record (counted in `requests`) and cache it.
    async fn read(
        &self,
        hash: &KeyHash,
        consistent: bool,
        now: Timestamp,
        requests: &mut u32,
    ) -> Result<Option<Known>, StoreError> {
        *requests += 1;
        let found = self.store.key_by_hash(hash, consistent).await?;
        Ok(found.map(|record| {
            self.remember(hash, &record, now, consistent);
            Known {
                record,
                consistent,
                fresh: consistent,
            }
        }))
    }

    fn cached(&self, hash: &KeyHash, now: Timestamp) -> Option<Known> {
        let cache = self.cache.lock().ok()?;
        let cached = cache.records.get(hash.as_str())?;
        (now - cached.at < self.config.cache_ttl && now >= cached.at).then(|| Known {
            record: cached.record.clone(),
            consistent: cached.consistent,
            fresh: false,
        })
    }

    fn remember(&self, hash: &KeyHash, record: &KeyRecord, now: Timestamp, consistent: bool) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.records.len() >= self.config.cache_entries {
                cache.records.clear();
                cache.hints.clear();
                cache.pruned.clear();
                cache.exhausted = Exhausted::default();
                cache.grown.clear();
                cache.floods.clear();
                cache.plans = Stamps::default();
            }
            cache.records.insert(
                hash.as_str().to_owned(),
                Cached {
                    record: record.clone(),
                    at: now,
                    consistent,
                },
            );
        }
    }

    fn forget(&self, hash: &KeyHash) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.records.remove(hash.as_str());
        }
    }

    fn hints(&self, record: &KeyRecord, now: Timestamp) -> CounterHints {
        self.cache
            .lock()
            .ok()
            .and_then(|c| c.hints.get(&record.allowance_id).copied())
            .unwrap_or_else(|| CounterHints::guess(&record.limits, now))
    }

    fn prune_due(&self, allowance_id: &str, item: u32, today: &str) -> bool {
        let name = format!("{allowance_id}#{item}");
        self.cache
            .lock()
            .map(|c| c.pruned.get(&name).map(String::as_str) != Some(today))
            .unwrap_or(false)
    }

    fn pruned(&self, allowance_id: &str, item: u32, today: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache
                .pruned
                .insert(format!("{allowance_id}#{item}"), today.to_owned());
        }
    }

    /// The item to write for this record: the root of a single allowance,
    /// or a random shard with a share of every limit that is not marked
    /// exhausted; the reason to deny when every one is.
    fn target(
        &self,
        record: &KeyRecord,
        shards: u32,
        now: Timestamp,
    ) -> Result<Target, DenyReason> {
        // A poisoned cache knows nothing: the write checks everything.
        let Ok(cache) = self.cache.lock() else {
            return Ok(Target::Single);
        };
        let blocked = |item| {
            cache.exhausted.blocked(
                &record.allowance_id,
                item,
                (record.key_id.as_str(), record.version),
                now,
            )
        };
        if shards <= 1 {
            return match blocked(0) {
                Some(reason) => Err(reason),
                None => Ok(Target::Single),
            };
        }
        let eligible = Target::eligible(&record.limits, shards);
        let open: Vec<u32> = (1..=eligible).filter(|i| blocked(*i).is_none()).collect();
        if open.is_empty() {
            // Every shard is spent: the quota's mark outlasts the rate's.
            let reasons: Vec<DenyReason> = (1..=eligible).filter_map(blocked).collect();
            return Err(if reasons.contains(&DenyReason::QuotaExceeded) {
                DenyReason::QuotaExceeded
            } else {
                DenyReason::RateLimited
            });
        }
        let index = open[rand::rng().random_range(0..open.len())];
        Ok(Target::Shard {
            index,
            count: shards,
        })
    }

    fn mark(&self, record: &KeyRecord, item: u32, reason: DenyReason, until: Timestamp) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.exhausted.mark(
                &record.allowance_id,
                item,
                (record.key_id.as_str(), record.version),
                reason,
                until,
            );
        }
    }

    /// How this decision opens its key's rate window (see [`Opening`]):
    /// only a key with a rate limit, in the first decision of a window
    /// here after a flooded one, reads first or sits out; a container
    /// sitting a window out denies all of it.
    fn opening(&self, record: &KeyRecord, now: Timestamp) -> Opening {
        let Some(rate) = record.limits.rate.filter(|r| r.window <= FLOOD_WINDOW) else {
            return Opening::Write;
        };
        let start = rate.window_at(now).start;
        let draw = rand::rng().random::<f64>();
        let Ok(cache) = self.cache.lock() else {
            return Opening::Write;
        };
        if cache.floods.sitting_out(&record.allowance_id, start) {
            return Opening::SitOut;
        }
        cache
            .floods
            .opening(&record.allowance_id, start, rate.window, draw)
    }

    /// Count an admission or a limit denial in this container's tally of
    /// the key's rate window.
    fn tally(
        &self,
        record: &KeyRecord,
        outcome: &Result<Granted, DenyReason>,
        plan_hit: bool,
        sat_out: bool,
        now: Timestamp,
    ) {
        let Some(rate) = record.limits.rate.filter(|r| r.window <= FLOOD_WINDOW) else {
            return;
        };
        // Only what the key's own rate limit decided: a quota or a plan
        // limit says nothing about how its rate windows fill.
        let admitted = match outcome {
            Ok(_) => true,
            Err(DenyReason::RateLimited) if !plan_hit => false,
            Err(_) => return,
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.floods.count(
                &record.allowance_id,
                rate.window_at(now).start,
                admitted,
                sat_out,
            );
        }
    }

    /// Read the item `plan` writes; if it shows a limit spent, mark it and
    /// say which (a failed read says nothing: the writes still decide).
    async fn peek(&self, plan: &AdmitPlan, limits: &Limits, now: Timestamp) -> Option<DenyReason> {
        let item = match self.store.peek(&plan.allowance_id, plan.target).await {
            Ok(item) => item?,
            Err(e) => {
                tracing::warn!(allowance = %plan.allowance_id, error = %e, "allowance read after a throttle failed");
                return None;
            }
        };
        let Explained::Deny(reason) = explain(plan, Some(&item), now) else {
            return None;
        };
        let until = exhausted_until(limits, reason, now)?;
        let mut cache = self.cache.lock().ok()?;
        cache.exhausted.mark(
            &plan.allowance_id,
            item_of(plan.target),
            (plan.key_id.as_str(), plan.version),
            reason,
            until,
        );
        Some(reason)
    }

    /// Read every shard of the allowance `plan` was refused on, and mark
    /// those spent for this key's record version (a failed read marks
    /// nothing: the writes still decide). A shard showing another layout
    /// means the allowance grew: marks are dropped instead.
    async fn survey(&self, plan: &AdmitPlan, limits: &Limits, shards: u32, now: Timestamp) {
        let found = match self.store.survey(&plan.allowance_id, shards).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(allowance = %plan.allowance_id, error = %e, "shard survey failed");
                return;
            }
        };
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        for (index, item) in (1..).zip(found) {
            let Some(item) = item else { continue };
            let on = plan.on(Target::Shard {
                index,
                count: shards,
            });
            match explain(&on, Some(&item), now) {
                Explained::Deny(reason) => {
                    if let Some(until) = exhausted_until(limits, reason, now) {
                        cache.exhausted.mark(
                            &plan.allowance_id,
                            index,
                            (plan.key_id.as_str(), plan.version),
                            reason,
                            until,
                        );
                    }
                }
                Explained::Reshard(_) => {
                    cache.exhausted.clear(&plan.allowance_id);
                    return;
                }
                _ => {}
            }
        }
    }

    /// A new layout: marks of the old one no longer say anything.
    fn reshard(&self, allowance_id: &str, shards: u32) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.exhausted.clear(allowance_id);
            let hints = cache.hints.entry(allowance_id.to_owned()).or_default();
            hints.shards = shards.max(1);
        }
    }

    /// The shard count to grow to, if this container may grow the
    /// allowance now (below the maximum, and not within a second of a
    /// growth it made or lost).
    fn growth_due(
        &self,
        allowance_id: &str,
        shards: u32,
        throttled: bool,
        now: Timestamp,
    ) -> Option<u32> {
        let cache = self.cache.lock().ok()?;
        let recent = cache
            .grown
            .get(allowance_id)
            .is_some_and(|at| now - *at < 1);
        let to = if throttled {
            grown_throttled(shards)
        } else {
            grown(shards)
        };
        (shards < MAX_SHARDS && !recent).then_some(to)
    }

    /// Whether this container should grow the allowance now, before its
    /// partition throttles: the item it wrote took more than
    /// [`HOT_ITEM_WRITES`] (single) or [`HOT_SHARD_WRITES`] (shard)
    /// admissions a second, measured over a second or more, and this
    /// container drew the 1-in-[`GROWERS`] lot (many containers see the same
    /// rate at once; one growth is enough).
    fn heating(
        &self,
        record: &KeyRecord,
        target: Target,
        writes: Option<u64>,
        now: Timestamp,
    ) -> bool {
        let Some(writes) = writes else {
            return false;
        };
        let item = format!("{}#{}", record.allowance_id, item_of(target));
        let rate = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.load.observe(&item, now, writes));
        let hot = match target {
            Target::Single => HOT_ITEM_WRITES,
            Target::Shard { .. } => HOT_SHARD_WRITES,
        };
        rate.is_some_and(|r| r > hot) && rand::rng().random_range(0..GROWERS) == 0
    }

    /// Grow the allowance beyond `shards` (further when a write was
    /// `throttled`), if this container may now; whether it asked the store
    /// (a failure is logged: the decision does not depend on it).
    async fn grow(&self, record: &KeyRecord, shards: u32, throttled: bool, now: Timestamp) -> bool {
        let Some(to) = self.growth_due(&record.allowance_id, shards, throttled, now) else {
            return false;
        };
        // A fresh reading: this decision may have waited out throttles, and
        // a reslice in a period already over would undo its counts.
        match self
            .store
            .grow(&record.allowance_id, to, self.clock.now())
            .await
        {
            Ok(shards) => {
                self.grew(&record.allowance_id, now);
                self.reshard(&record.allowance_id, shards);
            }
            Err(StoreError::Conflict) => self.grew(&record.allowance_id, now),
            Err(e) => {
                tracing::warn!(allowance = %record.allowance_id, error = %e, "allowance growth failed")
            }
        }
        true
    }

    fn grew(&self, allowance_id: &str, now: Timestamp) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.grown.insert(allowance_id.to_owned(), now);
        }
    }

    /// Count a request its plan alone admitted in the key's usage (flushed
    /// with the container's usage detail: the plan's own count is exact).
    fn count_alone(&self, record: &KeyRecord, req: &AuthRequest<'_>, now: Timestamp) {
        let name = items::usage_attr(&day_string(now), record.key_id.as_str(), "ok");
        if let Ok(mut cache) = self.cache.lock() {
            cache.detail.count(&record.allowance_id, name, now);
        }
        self.count_detail(record, req, now);
    }

    /// Route and address of an allowed request on a shard, counted here.
    fn count_detail(&self, record: &KeyRecord, req: &AuthRequest<'_>, now: Timestamp) {
        let day = day_string(now);
        let kid = record.key_id.as_str();
        let route = crate::store::admission::route_label(&route_label(record, req));
        if let Ok(mut cache) = self.cache.lock() {
            cache.detail.count(
                &record.allowance_id,
                items::usage_attr(&day, kid, &format!("r#{route}")),
                now,
            );
            if let Some(ip) = req.source_ip {
                let ip = ip.to_string();
                cache.detail.slot(
                    &record.allowance_id,
                    items::usage_attr(
                        &day,
                        kid,
                        &format!("ip{}", crate::store::admission::ip_slot(&ip)),
                    ),
                    ip,
                    now,
                );
            }
        }
    }

    /// Count a denial of `record` in this container's usage detail (written
    /// with its allowance's next flush).
    fn count_denial(&self, record: &KeyRecord, reason: DenyReason, now: Timestamp) {
        let name = items::usage_attr(
            &day_string(now),
            record.key_id.as_str(),
            &format!("d#{reason}"),
        );
        if let Ok(mut cache) = self.cache.lock() {
            cache.detail.count(&record.allowance_id, name, now);
        }
    }

    /// Write one allowance's due usage detail, if any (one request), and
    /// prune its root if due, unless it is `pruned` (already pruned by this
    /// decision). A failed flush is kept for the next one.
    async fn flush_due(&self, now: Timestamp, pruned: Option<&str>, requests: &mut u32) {
        let due = self
            .cache
            .lock()
            .ok()
            .and_then(|mut c| c.detail.take_due(now));
        let Some((allowance, pending)) = due else {
            return;
        };
        *requests += 1;
        let counts: Vec<(String, u64)> = pending
            .counts
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let slots: Vec<(String, String)> = pending
            .slots
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The root takes no admissions once sharded (nor for a key decided
        // by its plan alone): this write is its size backstop's only chance.
        let today = day_string(now);
        let keep_from = (pruned != Some(allowance.as_str())
            && self.prune_due(&allowance, ROOT, &today))
        .then(|| day_string(now - items::USAGE_RETENTION_DAYS * 86_400));
        match self
            .store
            .flush_usage(&allowance, &counts, &slots, keep_from.as_deref())
            .await
        {
            Ok(stale) => {
                if let Some(keep_from) = &keep_from {
                    let mark = (ROOT, today.as_str(), keep_from.as_str());
                    if self.prune(&allowance, Target::Single, mark, &stale).await {
                        *requests += 1;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(allowance = %allowance, error = %e, cause = ?std::error::Error::source(&e), "usage detail flush failed, kept for the next");
                if let Ok(mut cache) = self.cache.lock() {
                    cache.detail.restore(allowance, pending);
                }
            }
        }
    }

    /// Housekeeping after a write that returned the whole item (`stale` from
    /// it): at most one write (each costs the item's size in write units),
    /// the oldest counters first; once nothing is left, not again today
    /// (`mark`: item, day, oldest day kept) in this container. Whether it
    /// wrote. What it serves is already decided whatever happens.
    async fn prune(
        &self,
        allowance_id: &str,
        target: Target,
        (item, today, keep_from): (u32, &str, &str),
        stale: &StaleUsage,
    ) -> bool {
        if stale.for_size {
            tracing::warn!(allowance = %allowance_id, days_removed = stale.names.len(), "allowance item near DynamoDB's 400 KB limit: usage days not yet archived by the daily report are pruned (is the usage-report job running?)");
        }
        let mut batch = stale.names.clone();
        batch.sort_unstable();
        batch.truncate(items::PRUNE_BATCH);
        // The last batch: once it is written (a failed one is tried again
        // with the next write that returns the item).
        let last = stale.names.len() <= items::PRUNE_BATCH;
        if batch.is_empty() {
            if last {
                self.pruned(allowance_id, item, today);
            }
            return false;
        }
        match self.store.prune_usage(allowance_id, target, &batch).await {
            Ok(()) if last => self.pruned(allowance_id, item, today),
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(allowance = %allowance_id, keep_from = %keep_from, error = %e, cause = ?std::error::Error::source(&e), "usage pruning failed");
            }
        }
        true
    }

    fn set_hints(&self, allowance_id: &str, hints: CounterHints) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.hints.insert(allowance_id.to_owned(), hints);
        }
    }
}

fn offline(reason: DenyReason, at: Timestamp) -> Verdict {
    Verdict {
        decision: Decision::Deny(reason),
        key_id: None,
        requests: 0,
        at,
        limit: None,
    }
}

/// Steps 5-7: status, expiry, IP allowlist, scope. No I/O.
fn check_record(record: &KeyRecord, req: &AuthRequest<'_>, now: Timestamp) -> Option<DenyReason> {
    match record.status {
        KeyStatus::Revoked => return Some(DenyReason::Revoked),
        KeyStatus::Retired => return Some(DenyReason::Expired),
        KeyStatus::Quarantined => return Some(DenyReason::Leaked),
        KeyStatus::Active | KeyStatus::Rotating => {}
    }
    if record.usable_until().is_some_and(|until| until <= now) {
        return Some(DenyReason::Expired);
    }
    if !record.ip_allowed(req.source_ip) {
        return Some(DenyReason::IpDenied);
    }
    if !record
        .scopes
        .iter()
        .any(|s| s.allows_route(req.method, req.path))
    {
        return Some(DenyReason::ScopeDenied);
    }
    None
}

/// The route a request is counted under: the API's own route template when
/// the event has one, else the scope that let it through. Both come from
/// configuration, never from the caller, so the set of labels is bounded.
fn route_label(record: &KeyRecord, req: &AuthRequest<'_>) -> String {
    if let Some(route) = req.route {
        return route.to_owned();
    }
    record
        .scopes
        .iter()
        .find(|s| s.allows_route(req.method, req.path))
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Admissions a second on one single allowance item past which a
/// container grows it before it throttles. A single item carries the day's
/// usage detail, 1-6 KB, so its writes cost 1-6 write units of its
/// partition's 1,000 a second (DynamoDB Developer Guide, "Service, account,
/// and table quotas"): at 100 a second the busiest item uses 600.
const HOT_ITEM_WRITES: f64 = 100.0;
/// The same for a shard, whose writes cost one write unit.
const HOT_SHARD_WRITES: f64 = 500.0;
/// One container in this many that see an item heating grows it.
const GROWERS: u32 = 8;

/// Longest rate window (seconds) whose floods a container answers by
/// reading first or sitting a window out: a window sat out is denied
/// whole, so only short windows qualify (a sat-out hour would lock a key
/// out for an hour).
const FLOOD_WINDOW: u32 = 2;

/// Throttled admission writes one decision retries (after growing the
/// allowance, and a pause of 2-10 ms times the count): at most 360 ms of
/// pauses in all, well inside the authorizer's 1.5 s decision budget
/// (`KEYGATE_DEADLINE_MS`), then the decision fails closed.
const MAX_THROTTLED: u32 = 8;

/// The item a target writes, as the container's marks name it (0: root).
/// The item number of an allowance's root (or single item).
const ROOT: u32 = 0;

fn item_of(target: Target) -> u32 {
    match target {
        Target::Single => ROOT,
        Target::Shard { index, .. } => index,
    }
}

/// Which of the key's own limits a limit deny hit.
fn key_hit(limits: &Limits, reason: DenyReason) -> Option<LimitHit> {
    let window = match reason {
        DenyReason::QuotaExceeded => match limits.quota?.period {
            crate::limits::Period::Day => "day".to_owned(),
            crate::limits::Period::Month => "month".to_owned(),
        },
        DenyReason::RateLimited => format!("{}s", limits.rate?.window),
        _ => return None,
    };
    Some(LimitHit {
        scope: "key",
        window,
        plan_id: None,
    })
}

/// The end of the window or period a limit deny holds for (`None`: not a
/// limit).
fn exhausted_until(limits: &Limits, reason: DenyReason, now: Timestamp) -> Option<Timestamp> {
    match reason {
        DenyReason::QuotaExceeded => limits.quota.map(|q| q.period.window(now).end),
        DenyReason::RateLimited => limits.rate.map(|r| r.window_at(now).end),
        _ => None,
    }
}
