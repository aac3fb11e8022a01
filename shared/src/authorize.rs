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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::clock::{Clock, Timestamp};
use crate::decision::{AllowContext, Decision, DenyReason};
use crate::hash::KeyHash;
use crate::id::KeyId;
use crate::key::KeyFormat;
use crate::limits::day_string;
use crate::model::{KeyRecord, KeyStatus};
use crate::store::admission::{explain, Explained};
use crate::store::items;
use crate::store::{
    Admission, AdmitOutcome, AdmitPlan, CounterHints, KeyLookup, StoreError, UsageMark,
};

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
    /// Allowance id -> the day this container last pruned its usage.
    pruned: HashMap<String, String>,
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
        let presented = match req.credential {
            Credential::Missing => return Ok(offline(DenyReason::Missing)),
            Credential::InQuery => return Ok(offline(DenyReason::KeyInQuery)),
            Credential::Conflicting => return Ok(offline(DenyReason::ConflictingKeys)),
            Credential::Presented(text) => text,
        };
        let Ok(key) = self.format.parse(presented) else {
            return Ok(offline(DenyReason::Malformed));
        };
        let hash = KeyHash::of(&key);
        let mut requests = 0u32;
        let now = self.clock.now();
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
                        })
                    }
                    Err(e) => return Err(fail(requests, e)),
                },
                Err(e) => return Err(fail(requests, e)),
            },
        };

        let mut attempts = 0;
        let outcome = loop {
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
            attempts += 1;
            if attempts > self.config.max_attempts {
                return Err(AuthError::Contention { requests });
            }
            let hints = self.hints(record, now);
            let today = day_string(now);
            let prune = self.prune_due(&record.allowance_id, &today);
            let usage = UsageMark {
                route: Some(route_label(record, req)),
                source_ip: req.source_ip.map(|ip| ip.to_string()),
                keep_from: prune.then(|| day_string(now - items::USAGE_RETENTION_DAYS * 86_400)),
                day: today,
            };
            let plan = AdmitPlan::new(
                &record.allowance_id,
                &record.key_id,
                record.version,
                &record.limits,
                &hints,
                now,
                usage,
            );
            requests += 1;
            match self.store.admit(&plan).await {
                Ok(AdmitOutcome::Admitted(granted)) => {
                    self.set_hints(&record.allowance_id, granted.hints);
                    if let Some(day) = &plan.usage.keep_from {
                        if granted.pruned_for_size {
                            tracing::warn!(allowance = %record.allowance_id, days_removed = granted.stale_usage.len(), "allowance item near DynamoDB's 400 KB limit: usage days not yet archived by the daily report are pruned (is the usage-report job running?)");
                        }
                        // Housekeeping, at most one write per decision (each
                        // costs the item's size in write units): the oldest
                        // counters first; once nothing is left, not again
                        // today in this container. The request is already
                        // admitted whatever happens.
                        let mut stale = granted.stale_usage.clone();
                        stale.sort_unstable();
                        stale.truncate(items::PRUNE_BATCH);
                        if granted.stale_usage.len() <= items::PRUNE_BATCH {
                            self.pruned(&record.allowance_id, &plan.usage.day);
                        }
                        if !stale.is_empty() {
                            requests += 1;
                            if let Err(e) =
                                self.store.prune_usage(&record.allowance_id, &stale).await
                            {
                                tracing::warn!(allowance = %record.allowance_id, keep_from = %day, error = %e, cause = ?std::error::Error::source(&e), "usage pruning failed");
                            }
                        }
                    }
                    break Ok(granted);
                }
                Ok(AdmitOutcome::Rejected(old)) => match explain(&plan, old.as_ref(), now) {
                    Explained::Deny(reason) => break Err(reason),
                    Explained::Retry(hints) => self.set_hints(&record.allowance_id, hints),
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
                Err(e) => return Err(fail(requests, e)),
            }
        };

        let record = &known.record;
        let decision = match outcome {
            Ok(granted) => Decision::Allow(AllowContext {
                key_id: record.key_id.clone(),
                owner: record.owner.clone(),
                scopes: record.scopes.clone(),
                quota_remaining: granted.quota_remaining,
                rate_remaining: granted.rate_remaining,
            }),
            Err(reason) => {
                requests += 1;
                let day = day_string(now);
                // The decision is a deny either way: a lost count must not
                // turn it into `error` and hide its reason.
                if let Err(e) = self
                    .store
                    .record_denial(&record.allowance_id, &record.key_id, reason, &day)
                    .await
                {
                    tracing::warn!(key_id = %record.key_id, reason = %reason, error = %e, cause = ?std::error::Error::source(&e), "denial count lost");
                }
                Decision::Deny(reason)
            }
        };
        Ok(Verdict {
            decision,
            key_id: Some(record.key_id.clone()),
            requests,
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

    fn prune_due(&self, allowance_id: &str, today: &str) -> bool {
        self.cache
            .lock()
            .map(|c| c.pruned.get(allowance_id).map(String::as_str) != Some(today))
            .unwrap_or(false)
    }

    fn pruned(&self, allowance_id: &str, today: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache
                .pruned
                .insert(allowance_id.to_owned(), today.to_owned());
        }
    }

    fn set_hints(&self, allowance_id: &str, hints: CounterHints) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.hints.insert(allowance_id.to_owned(), hints);
        }
    }
}

fn offline(reason: DenyReason) -> Verdict {
    Verdict {
        decision: Decision::Deny(reason),
        key_id: None,
        requests: 0,
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
