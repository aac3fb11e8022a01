//! Moving finished days off allowance items into the owner's history (the
//! daily job's second half): one transaction per key (or plan) and day,
//! which adds the live counters to the archived day and removes them from
//! the allowance together. A day is never counted twice, however often the
//! job runs or fails midway, and counters written after a day was archived
//! (a container's usage detail, flushed up to a minute after it counted or
//! whenever a frozen container runs again) are added to it by the next run.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use rand::Rng;

use super::{live_counters, Day};
use crate::store::items::{self, alw};
use crate::store::{StoreError, Subject, UsageStore, MOVE_BATCH};

type Item = HashMap<String, AttributeValue>;

/// Attempts at one move cancelled by a concurrent write to one of its items
/// (`TransactionConflict`: an admission on a busy root).
const MOVE_ATTEMPTS: usize = 5;

/// Move every finished day (before `today`) of `subject`s off `item` (the
/// allowance `allowance_id` as [`UsageStore::allowances`] reads it, shards
/// summed in) into `owner`'s history. Returns how many (subject, day) pairs
/// it moved.
///
/// # Errors
/// The store's ([`StoreError::Conflict`] when another run moved counters of
/// this allowance meanwhile); what moved before stays moved, and the next
/// run moves the rest.
pub async fn finished_days<S: UsageStore + ?Sized>(
    store: &S,
    owner: &str,
    (allowance_id, item): (&str, &Item),
    subject: Subject,
    today: Day,
    now: i64,
) -> Result<u64, StoreError> {
    let prefix = match subject {
        Subject::Key => "u#",
        Subject::Plan => items::PLAN_USAGE_PREFIX,
    };
    let shards = item
        .get(alw::SHARDS)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    let mut moves = item
        .get(alw::MOVES)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let live = live_counters(item, prefix);
    let mut moved = 0;
    for (id, day) in live.days.keys() {
        if Day::parse(day).is_none_or(|d| d >= today) {
            continue;
        }
        // Only names the parser counted (a malformed one is left alone).
        let counted: BTreeSet<&String> = live.attrs.get(day).into_iter().flatten().collect();
        let own = format!("{prefix}{day}#{id}#");
        let names: Vec<String> = counted
            .into_iter()
            .filter(|name| name.starts_with(&own))
            .cloned()
            .collect();
        for batch in names.chunks(MOVE_BATCH) {
            let part: Item = batch
                .iter()
                .filter_map(|name| Some((name.clone(), item.get(name)?.clone())))
                .collect();
            let usage = live_counters(&part, prefix)
                .days
                .remove(&(id.clone(), day.clone()))
                .unwrap_or_default();
            let archived = store.archived_day(owner, subject, id, day).await?;
            let read = archived.as_ref().map(|a| a.version);
            let mut total = archived.map(|a| a.usage).unwrap_or_default();
            total.absorb_same_day(&usage);
            // A conflict (another run moved counters, or wrote this day) is
            // not retried here: the counters read may be gone. The next run
            // reads everything again.
            let mut attempt = 0;
            loop {
                attempt += 1;
                let result = store
                    .move_day(
                        owner,
                        (subject, id, day),
                        (&total, read),
                        (allowance_id, shards, moves),
                        batch,
                        now,
                    )
                    .await;
                match result {
                    Ok(()) => break,
                    Err(e) if attempt < MOVE_ATTEMPTS && e.is_transaction_conflict() => {
                        let pause = rand::rng().random_range(20..=100) * attempt as u64;
                        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            moves += 1;
        }
        moved += 1;
    }
    Ok(moved)
}
