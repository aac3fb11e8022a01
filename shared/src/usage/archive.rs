//! Moving finished days off allowance items into the owner's history (the
//! daily job's second half): one transaction per key (or plan), day and
//! batch of counters, which adds the counters to the archived day and
//! removes them from the allowance's items together, on the condition that
//! each still holds the value read. A day is never counted twice, however
//! often the job runs, fails midway or overlaps itself, and no count that
//! lands meanwhile is lost; counters written after a day was archived (a
//! container's usage detail, flushed up to a minute after it counted or
//! whenever a frozen container runs again) are added to it by the next run.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use rand::Rng;

use super::{live_counters, Day, DayUsage};
use crate::store::items::{self, alw};
use crate::store::{StoreError, Subject, UsageStore, MOVE_BATCH};

type Item = HashMap<String, AttributeValue>;

/// Attempts at one batch cancelled by a concurrent write to one of its
/// items (`TransactionConflict`: an admission on a busy root).
const MOVE_ATTEMPTS: usize = 5;
/// Fresh reads of the allowance after a batch found its counters changed
/// (a flush landed, or another run moved them).
const REREADS: usize = 3;

/// Move every finished day (before `today`) of `subject`s off the allowance
/// `allowance_id` into `owner`'s history. Returns how many (subject, day)
/// pairs it moved.
///
/// # Errors
/// The store's; [`StoreError::Conflict`] when the counters kept changing
/// under it. What moved before stays moved, and the next run moves the
/// rest.
pub async fn finished_days<S: UsageStore + ?Sized>(
    store: &S,
    owner: &str,
    allowance_id: &str,
    subject: Subject,
    today: Day,
    now: i64,
) -> Result<u64, StoreError> {
    let prefix = prefix(subject);
    let mut moved = BTreeSet::new();
    let mut rereads = 0;
    loop {
        let parts = store.allowance_parts(allowance_id).await?;
        let todo = finished(&parts, prefix, today);
        if todo.is_empty() {
            return Ok(moved.len() as u64);
        }
        match move_all(store, owner, allowance_id, subject, &parts, &todo, now).await {
            Ok(done) => {
                moved.extend(done);
                return Ok(moved.len() as u64);
            }
            Err((done, StoreError::Conflict)) if rereads < REREADS => {
                moved.extend(done);
                rereads += 1;
            }
            Err((_, e)) => return Err(e),
        }
    }
}

/// The counters' name prefix of `subject`s.
fn prefix(subject: Subject) -> &'static str {
    match subject {
        Subject::Key => "u#",
        Subject::Plan => items::PLAN_USAGE_PREFIX,
    }
}

/// The finished (subject, day) pairs on any part, with their counters'
/// names (only names the parser counts: a malformed one is left alone).
fn finished(
    parts: &[(u32, Item)],
    prefix: &str,
    today: Day,
) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (_, item) in parts {
        let live = live_counters(item, prefix);
        for (id, day) in live.days.keys() {
            if Day::parse(day).is_none_or(|d| d >= today) {
                continue;
            }
            let own = format!("{prefix}{day}#{id}#");
            let names = live.attrs.get(day).into_iter().flatten();
            out.entry((id.clone(), day.clone()))
                .or_default()
                .extend(names.filter(|n| n.starts_with(&own)).cloned());
        }
    }
    out
}

/// Move `todo` batch by batch; the pairs fully moved, and on failure the
/// error with the pairs moved before it.
async fn move_all<S: UsageStore + ?Sized>(
    store: &S,
    owner: &str,
    allowance_id: &str,
    subject: Subject,
    parts: &[(u32, Item)],
    todo: &BTreeMap<(String, String), BTreeSet<String>>,
    now: i64,
) -> Result<Vec<(String, String)>, (Vec<(String, String)>, StoreError)> {
    let prefix = prefix(subject);
    let mut moves = parts
        .first()
        .and_then(|(_, root)| root.get(alw::MOVES))
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut done = Vec::new();
    for ((id, day), names) in todo {
        let names: Vec<&String> = names.iter().collect();
        for batch in names.chunks(MOVE_BATCH) {
            // Each part's counters of this batch, with the values read.
            let mut usage = DayUsage::default();
            let mut held: Vec<(u32, Vec<(String, AttributeValue)>)> = Vec::new();
            for (index, item) in parts {
                let mine: Item = batch
                    .iter()
                    .filter_map(|n| Some(((*n).clone(), item.get(*n)?.clone())))
                    .collect();
                if let Some(d) = live_counters(&mine, prefix)
                    .days
                    .remove(&(id.clone(), day.clone()))
                {
                    usage.absorb_same_day(&d);
                }
                if *index == 0 || !mine.is_empty() {
                    held.push((*index, mine.into_iter().collect()));
                }
            }
            let step = async {
                let archived = store.archived_day(owner, subject, id, day).await?;
                let read = archived.as_ref().map(|a| a.version);
                let mut total = archived.map(|a| a.usage).unwrap_or_default();
                total.absorb_same_day(&usage);
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let result = store
                        .move_day(
                            owner,
                            (subject, id, day),
                            (&total, read),
                            (allowance_id, moves),
                            &held,
                            now,
                        )
                        .await;
                    match result {
                        Err(e) if attempt < MOVE_ATTEMPTS && e.is_transaction_conflict() => {
                            let pause = rand::rng().random_range(20..=100) * attempt as u64;
                            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                        }
                        other => break other,
                    }
                }
            };
            if let Err(e) = step.await {
                return Err((done, e));
            }
            moves += 1;
        }
        done.push((id.clone(), day.clone()));
    }
    Ok(done)
}
