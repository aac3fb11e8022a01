//! Handling reported tokens: the offline checksum first, one batched
//! consistent lookup for the rest, then the policy, per key, in one
//! transaction with its audit event, then the owner's notice.

use std::collections::HashMap;

use async_trait::async_trait;
use serde_json::json;

use crate::clock::Clock;
use crate::hash::KeyHash;
use crate::key::KeyFormat;
use crate::model::KeyRecord;
use crate::store::{AuditAction, AuditEvent, LeakStore, StoreError};

use super::notify::{LeakNotice, LeakNotifier};
use super::policy::{apply, LeakPolicy, Sighting};
use super::report::{token_hash, Label, Match, Verdict};

/// Attempts at one key's transaction when concurrent reports race.
const ATTEMPTS: usize = 3;

/// The outcome of one report of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// The record as it stands after the report.
    pub record: KeyRecord,
    /// Whether this report changed it (false: an earlier one did).
    pub changed: bool,
}

/// Leak reports over a store, a clock and a notifier.
pub struct LeakService<S, C, N> {
    store: S,
    clock: C,
    format: KeyFormat,
    policy: LeakPolicy,
    notifier: N,
}

impl<S: LeakStore, C: Clock, N: LeakNotifier> LeakService<S, C, N> {
    pub fn new(store: S, clock: C, format: KeyFormat, policy: LeakPolicy, notifier: N) -> Self {
        Self {
            store,
            clock,
            format,
            policy,
            notifier,
        }
    }

    pub fn policy(&self) -> LeakPolicy {
        self.policy
    }

    /// Judge every match of a (verified) GitHub report, in order.
    pub async fn github(&self, matches: &[Match]) -> Result<Vec<Verdict>, StoreError> {
        // Offline: only strings that pass this deployment's format and
        // checksum cost a lookup.
        let hashes: Vec<Option<KeyHash>> = matches
            .iter()
            .map(|m| self.format.parse(&m.token).ok().map(|k| KeyHash::of(&k)))
            .collect();
        let mut wanted: Vec<KeyHash> = hashes.iter().flatten().cloned().collect();
        wanted.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        wanted.dedup();
        let mut records: HashMap<String, KeyRecord> = if wanted.is_empty() {
            HashMap::new()
        } else {
            self.store
                .keys_by_hashes(&wanted)
                .await?
                .into_iter()
                .map(|r| (r.hash.as_str().to_owned(), r))
                .collect()
        };
        let mut verdicts = Vec::with_capacity(matches.len());
        for (m, hash) in matches.iter().zip(hashes) {
            let found = hash.and_then(|h| records.remove(h.as_str()).map(|r| (h, r)));
            let label = match found {
                Some((hash, record)) => {
                    let sighting = Sighting {
                        kind: m.kind.clone(),
                        source_url: m.url.clone(),
                        reporter: "github".into(),
                    };
                    let handled = self.handle(record, &sighting).await?;
                    // The same token twice in one report: the second sees
                    // the record as the first left it.
                    records.insert(hash.as_str().to_owned(), handled.record);
                    Label::TruePositive
                }
                None => Label::FalsePositive,
            };
            verdicts.push(Verdict {
                token_hash: token_hash(&m.token),
                token_type: m.kind.clone(),
                label,
            });
        }
        Ok(verdicts)
    }

    /// Apply the policy to one reported key: the path of GitHub's reports
    /// and of manual ones. A key an earlier report handled is left as it is.
    pub async fn handle(
        &self,
        mut record: KeyRecord,
        sighting: &Sighting,
    ) -> Result<Handled, StoreError> {
        for _ in 0..ATTEMPTS {
            let now = self.clock.now();
            let Some(next) = apply(&record, self.policy, sighting, now) else {
                return Ok(Handled {
                    record,
                    changed: false,
                });
            };
            let mark = next.leak.as_ref();
            let audit = AuditEvent::new(
                &record.key_id,
                next.version,
                AuditAction::Leaked,
                &sighting.reporter,
                now,
                json!({
                    "status": next.status,
                    "policy": mark.map(|m| m.policy),
                    "kind": sighting.kind,
                    "source_url": sighting.source_url,
                }),
            );
            match self.store.mark_leaked(&record, &next, &audit).await {
                Ok(()) => {
                    self.notify(&next, sighting).await;
                    return Ok(Handled {
                        record: next,
                        changed: true,
                    });
                }
                // Another report (or change) won: judge the record anew.
                Err(StoreError::Conflict) => {
                    match self
                        .store
                        .keys_by_hashes(std::slice::from_ref(&record.hash))
                        .await?
                        .pop()
                    {
                        Some(fresh) => record = fresh,
                        None => return Err(StoreError::NotFound),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// A manual report of a key given as a string (`keyctl report-leak`
    /// reading standard input): `None` when it is not one of this
    /// deployment's keys (checked offline first) or no record has its hash.
    pub async fn handle_token(
        &self,
        token: &str,
        sighting: &Sighting,
    ) -> Result<Option<Handled>, StoreError> {
        let Ok(key) = self.format.parse(token) else {
            return Ok(None);
        };
        match self.store.keys_by_hashes(&[KeyHash::of(&key)]).await?.pop() {
            Some(record) => self.handle(record, sighting).await.map(Some),
            None => Ok(None),
        }
    }

    /// The owner's notice. The change is made and audited already, so a
    /// failed notice is logged, not retried by failing the report (a
    /// retried report would find the key handled and send nothing).
    async fn notify(&self, record: &KeyRecord, sighting: &Sighting) {
        let notice = LeakNotice {
            owner: record.owner.clone(),
            key_id: record.key_id.clone(),
            hint: record.hint.clone(),
            policy: record
                .leak
                .as_ref()
                .map_or(self.policy, |m| m.policy)
                .as_str(),
            source_url: sighting.source_url.clone(),
        };
        match self.notifier.notify(&notice).await {
            Ok(()) => {
                tracing::info!(key_id = %record.key_id, policy = notice.policy, "leak handled, owner notified")
            }
            Err(e) => {
                tracing::error!(key_id = %record.key_id, error = %e, cause = ?std::error::Error::source(&e), "leak handled, owner notice failed")
            }
        }
    }
}

/// [`LeakService::handle`] behind a trait object, so the management API can
/// hold the leak path without taking on its store, clock and notifier types.
#[async_trait]
pub trait LeakHandler: Send + Sync {
    /// See [`LeakService::handle`].
    async fn handle(&self, record: KeyRecord, sighting: &Sighting) -> Result<Handled, StoreError>;
}

#[async_trait]
impl<S: LeakStore, C: Clock, N: LeakNotifier> LeakHandler for LeakService<S, C, N> {
    async fn handle(&self, record: KeyRecord, sighting: &Sighting) -> Result<Handled, StoreError> {
        LeakService::handle(self, record, sighting).await
    }
}
