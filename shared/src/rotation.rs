//! Rotation and delivery through Secrets Manager: one code path for the
//! management API, the operator CLI and the scheduled rotation function.
//!
//! A rotation mints a successor with the same owner, scopes, limits and
//! allowlist, spending from the *same* allowance, and puts the old key into a
//! grace period; after it, the sweep retires the old key. With delivery, the
//! successor's plaintext goes through the two-phase protocol of
//! [`crate::secrets`] around the table transaction, so:
//! - the secret never holds a key that is not active;
//! - duplicate or concurrent runs make exactly one successor (the table
//!   transaction is conditional on the old key's version: one wins, the
//!   losers' staged versions are never promoted);
//! - a crash at any step converges on the next sweep (records whose delivery
//!   is unfinished sit in the due index's `PROMOTE` partition).

use std::time::Instant;

use serde::Serialize;

use crate::clock::{Clock, Timestamp};
use crate::hash::KeyHash;
use crate::id::KeyId;
use crate::issue::successor;
use crate::key::{ApiKey, KeyFormat};
use crate::model::{KeyRecord, KeyStatus};
use crate::secrets::{secret_name, SecretError, SecretSink};
use crate::store::{items, AuditEvent, KeyAdmin, KeyLookup, StoreError};

/// System failures while rotating or delivering.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The staged plaintext of a key is gone from its secret: the key can
    /// never be delivered. Rotate it again.
    #[error("staged key {0} is missing from its secret")]
    Lost(KeyId),
}

/// Where a lineage's keys are delivered.
#[derive(Debug, Clone)]
pub struct Delivery<'a, X> {
    pub secrets: &'a X,
    pub prefix: &'a str,
}

impl<X: SecretSink> Delivery<'_, X> {
    pub fn secret_of(&self, record: &KeyRecord) -> String {
        secret_name(self.prefix, &record.owner, &record.allowance_id)
    }

    /// Issue `record` (whose plaintext is `key`) and deliver it.
    pub async fn issue<S: KeyAdmin>(
        &self,
        store: &S,
        record: &KeyRecord,
        key: &ApiKey,
        audit: &AuditEvent,
    ) -> Result<KeyRecord, RotationError> {
        let name = self.secret_of(record);
        self.secrets.stage(&name, &record.key_id, key).await?;
        let mut pending = record.clone();
        pending.secret_pending = true;
        store.create_key(&pending, audit).await?;
        self.secrets.promote(&name, &record.key_id).await?;
        Ok(store.settle_secret(&pending).await?)
    }

    /// Finish an interrupted delivery: promote the staged version if it is
    /// the key's, then clear the mark.
    pub async fn finish<S: KeyAdmin>(
        &self,
        store: &S,
        record: &KeyRecord,
    ) -> Result<KeyRecord, RotationError> {
        let name = self.secret_of(record);
        let staged = self.secrets.version_of(&name, &record.key_id).await?;
        let matches = staged
            .as_deref()
            .is_some_and(|text| KeyHash::of_text(text).is_some_and(|hash| hash == record.hash));
        if !matches {
            return Err(RotationError::Lost(record.key_id.clone()));
        }
        self.secrets.promote(&name, &record.key_id).await?;
        Ok(store.settle_secret(record).await?)
    }
}

/// A finished rotation.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The successor's plaintext, to show once (or already delivered).
    pub key: ApiKey,
    pub successor: KeyRecord,
    pub old: KeyRecord,
}

/// Rotate `old`: the successor now, `old` until `grace_until`. With
/// `delivery`, the successor also becomes the current value of the
/// lineage's secret.
#[allow(clippy::too_many_arguments)]
pub async fn rotate<S: KeyAdmin, X: SecretSink>(
    store: &S,
    format: &KeyFormat,
    old: &KeyRecord,
    grace_until: Timestamp,
    now: Timestamp,
    actor: &str,
    delivery: Option<&Delivery<'_, X>>,
) -> Result<Rotated, RotationError> {
    let (key, mut new) = successor(format, old, now);
    if let Some(d) = delivery {
        d.secrets
            .stage(&d.secret_of(&new), &new.key_id, &key)
            .await?;
        new.secret_pending = true;
    }
    let old_after = store.rotate(old, &new, grace_until, now, actor).await?;
    if let Some(d) = delivery {
        d.secrets.promote(&d.secret_of(&new), &new.key_id).await?;
        new = store.settle_secret(&new).await?;
    }
    Ok(Rotated {
        key,
        successor: new,
        old: old_after,
    })
}

/// What one scheduled sweep did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// `(old, successor)` pairs.
    pub rotated: Vec<(KeyId, KeyId)>,
    pub retired: Vec<KeyId>,
    /// Interrupted deliveries finished.
    pub delivered: Vec<KeyId>,
    /// Keys no longer due when read (another run got there first).
    pub skipped: Vec<KeyId>,
    /// `(key id or hash, reason)`.
    pub failed: Vec<(String, String)>,
    /// The budget ran out with work left: the next run continues.
    pub more: bool,
}

/// Limits of one sweep.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Stop starting new keys after this instant.
    pub until: Instant,
    /// Keys handled at most.
    pub max_keys: usize,
    /// Grace period given to rotated keys.
    pub grace_seconds: i64,
}

/// The scheduled work: finish interrupted deliveries, retire keys whose
/// grace passed, rotate keys that are due, in that order, within `budget`.
/// One key's failure never stops the others.
pub async fn sweep<S, X, C>(
    store: &S,
    clock: &C,
    format: &KeyFormat,
    delivery: &Delivery<'_, X>,
    budget: Budget,
    actor: &str,
) -> Result<Summary, StoreError>
where
    S: KeyAdmin + KeyLookup,
    X: SecretSink,
    C: Clock,
{
    let mut summary = Summary::default();
    let mut handled = 0usize;
    for partition in [items::DUE_PROMOTE, items::DUE_RETIRE, items::DUE_ROTATE] {
        let mut cursor: Option<String> = None;
        loop {
            let now = clock.now();
            let page = store.due(partition, now, 50, cursor.as_deref()).await?;
            for hash in &page.items {
                if handled >= budget.max_keys || Instant::now() >= budget.until {
                    summary.more = true;
                    return Ok(summary);
                }
                handled += 1;
                let now = clock.now();
                let record = match store.key_by_hash(hash, true).await {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        summary.failed.push((format!("{hash:?}"), e.to_string()));
                        continue;
                    }
                };
                let id = record.key_id.clone();
                let result = match partition {
                    items::DUE_PROMOTE
                        if record.secret_pending && record.status == KeyStatus::Active =>
                    {
                        delivery
                            .finish(store, &record)
                            .await
                            .map(|_| summary.delivered.push(id.clone()))
                    }
                    items::DUE_RETIRE
                        if record.status == KeyStatus::Rotating
                            && record.grace_until.is_some_and(|g| g <= now) =>
                    {
                        store
                            .retire(&record, now, actor)
                            .await
                            .map(|_| summary.retired.push(id.clone()))
                            .map_err(RotationError::from)
                    }
                    items::DUE_ROTATE
                        if !record.secret_pending
                            && record.rotation_due().is_some_and(|d| d <= now) =>
                    {
                        rotate(
                            store,
                            format,
                            &record,
                            now + budget.grace_seconds,
                            now,
                            actor,
                            Some(delivery),
                        )
                        .await
                        .map(|r| summary.rotated.push((id.clone(), r.successor.key_id)))
                    }
                    _ => {
                        summary.skipped.push(id.clone());
                        Ok(())
                    }
                };
                match result {
                    Ok(()) => {}
                    // Another run changed the key first: its work stands.
                    Err(RotationError::Store(StoreError::Conflict)) => summary.skipped.push(id),
                    Err(e) => {
                        tracing::error!(key_id = %id, error = %e, "rotation step failed");
                        summary.failed.push((id.to_string(), error_chain(&e)));
                    }
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(summary)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
