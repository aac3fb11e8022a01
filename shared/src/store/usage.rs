//! [`UsageStore`] over DynamoDB: usage history, reports and the allowance
//! directory. Reads are by partition (an owner, a key, the directory) or by
//! item key; nothing scans the table.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, Select, TransactWriteItem, Update,
    WriteRequest,
};

use super::dynamo::{n, s};
use super::items::{self, alw};
use super::{DynamoStore, Page, StoreError};
use crate::usage::plan_usage::PlanDay;
use crate::usage::report::OwnerReport;
use crate::usage::{DayUsage, KeyDay};

type Item = HashMap<String, AttributeValue>;

/// Whose day a history item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A key's day (`u#` counters; history sort key `<day>#<key_id>`).
    Key,
    /// An owner's day under one plan (`pu#` counters; sort key
    /// `PLAN#<day>#<plan_id>`).
    Plan,
}

/// An archived day as read, for a change conditioned on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchivedDay {
    pub usage: DayUsage,
    /// Its `hv`: 1 for the first archive, one more each time counters are
    /// added; 0 for an item archived before versions.
    pub version: u64,
}

/// Counters moved by one transaction at most. Each item's update names
/// each counter it holds twice (`#n<i> = :v<i>` in its condition, and in its
/// `REMOVE`): 50 keep both expressions far under DynamoDB's 4 KB limit
/// (Developer Guide, "Expression parameters") and under what the local
/// emulator's parser accepts (see [`items::PRUNE_BATCH`]).
pub const MOVE_BATCH: usize = 50;

/// One entry of the allowance directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub owner: String,
    pub allowance_id: String,
}

/// Usage data: what the usage function reads and the report job writes.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Allowance items by id (missing ones left out), read consistently.
    async fn allowances(&self, ids: &[String]) -> Result<HashMap<String, Item>, StoreError>;
    /// Archived days of one key, `from..=to` (`YYYY-MM-DD`).
    async fn key_history(
        &self,
        key_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<KeyDay>, StoreError>;
    /// Archived days of every key of an owner, `from..=to`.
    async fn owner_history(
        &self,
        owner: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<KeyDay>, StoreError>;
    /// One page of the allowance directory, ordered by owner.
    async fn directory(
        &self,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<DirectoryEntry>, StoreError>;
    /// Archived plan days of an owner, `from..=to`: what its keys did
    /// under each plan (see [`crate::usage::plan_usage`]).
    async fn plan_history(
        &self,
        owner: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<PlanDay>, StoreError>;
    /// Write days to the history as they are (replacing a day archived
    /// before; for seeding history, e.g. in benchmarks).
    async fn archive(&self, owner: &str, days: &[KeyDay], now: i64) -> Result<(), StoreError>;
    /// One archived day of `subject` `id` (a key id or plan id), read
    /// consistently (one `GetItem`).
    async fn archived_day(
        &self,
        owner: &str,
        subject: Subject,
        id: &str,
        day: &str,
    ) -> Result<Option<ArchivedDay>, StoreError>;
    /// An allowance's items as they are: its root (part 0) first, then each
    /// shard that exists (part `i`), read consistently, counters not summed.
    /// Empty when the allowance is gone.
    async fn allowance_parts(&self, allowance_id: &str) -> Result<Vec<(u32, Item)>, StoreError>;
    /// Move usage counters off an allowance into the owner's history, in one
    /// `TransactWriteItems`: the history item of `subject` `id` on `day`
    /// becomes `usage` (the caller adds the counters to what it read), on
    /// the condition that it is still as read (`read`: its version, `None`
    /// when absent); from each of the allowance's `parts` (0: the root,
    /// always written) its counters (name, value as read; at most
    /// [`MOVE_BATCH`] in all) are removed, on the condition that each still
    /// holds that value, and the root's move count ([`items::alw::MOVES`])
    /// goes from `moves` to `moves + 1`. So a day is never counted twice,
    /// even by two runs at once, and a count that lands meanwhile is not
    /// lost. [`StoreError::Conflict`] when anything changed (read again);
    /// [`StoreError::Cancelled`] when a concurrent write was in the way (the
    /// same move may succeed a moment later).
    async fn move_day(
        &self,
        owner: &str,
        (subject, id, day): (Subject, &str, &str),
        (usage, read): (&DayUsage, Option<u64>),
        (allowance_id, moves): (&str, u64),
        parts: &[(u32, Vec<(String, AttributeValue)>)],
        now: i64,
    ) -> Result<(), StoreError>;
    async fn put_report(&self, report: &OwnerReport) -> Result<(), StoreError>;
    async fn report(&self, owner: &str, day: &str) -> Result<Option<OwnerReport>, StoreError>;
}

/// Batch requests retried this many times with what DynamoDB handed back
/// unprocessed (throttled partitions) before the operation fails.
const BATCH_ROUNDS: usize = 8;
/// The first pause before sending leftovers again; doubled each round, at
/// most [`BATCH_MAX_PAUSE`] (about 2.6 s in all before giving up).
const BATCH_PAUSE: Duration = Duration::from_millis(25);
const BATCH_MAX_PAUSE: Duration = Duration::from_secs(1);

/// Send `first`, then whatever each answer says was left unprocessed, until
/// nothing is left; collects what every round returned. Leftovers are sent
/// again after an exponential pause from `pause` (the SDK does not retry
/// them: to it, the request succeeded); fails after [`BATCH_ROUNDS`] rounds.
async fn until_processed<R, T, F, Fut>(
    what: &'static str,
    pause: Duration,
    first: R,
    mut send: F,
) -> Result<Vec<T>, StoreError>
where
    F: FnMut(R) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<R>), StoreError>>,
{
    let mut out = Vec::new();
    let mut pending = Some(first);
    let mut rounds = 0;
    while let Some(request) = pending.take() {
        rounds += 1;
        if rounds > BATCH_ROUNDS {
            return Err(StoreError::Unprocessed(what));
        }
        if rounds > 1 {
            let wait = pause.saturating_mul(1 << (rounds - 2).min(16));
            tokio::time::sleep(wait.min(BATCH_MAX_PAUSE)).await;
        }
        let (got, left) = send(request).await?;
        out.extend(got);
        pending = left;
    }
    Ok(out)
}

/// The history sort key of `subject` `id`'s `day`.
fn history_sk(subject: Subject, id: &str, day: &str) -> String {
    match subject {
        Subject::Key => format!("{day}#{id}"),
        Subject::Plan => items::plan_history_sk(day, id),
    }
}

fn mapping(what: &'static str) -> impl Fn(serde_dynamo::Error) -> StoreError {
    move |source| StoreError::Mapping { what, source }
}

impl DynamoStore {
    /// Every page of a query on one partition with the sort key in
    /// `[from, to]`.
    async fn query_range(
        &self,
        index: Option<(&str, &str, &str)>,
        partition: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let (pk_attr, sk_attr) = match index {
            Some((_, pk, sk)) => (pk, sk),
            None => (items::PK, items::SK),
        };
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client()
                .query()
                .table_name(self.table())
                .set_index_name(index.map(|(name, _, _)| name.to_owned()))
                .key_condition_expression("#p = :p AND #s BETWEEN :from AND :to")
                .expression_attribute_names("#p", pk_attr)
                .expression_attribute_names("#s", sk_attr)
                .expression_attribute_values(":p", s(partition))
                .expression_attribute_values(":from", s(from))
                .expression_attribute_values(":to", s(to))
                .select(Select::AllAttributes)
                .set_exclusive_start_key(start)
                .send()
                .await?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    fn key_days(found: Vec<Item>) -> Result<Vec<KeyDay>, StoreError> {
        found
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(mapping("usage history")))
            .collect()
    }

    /// Put history items, 25 per `BatchWriteItem`, until none is left
    /// unprocessed; each carries its TTL, [`items::HISTORY_RETENTION_DAYS`]
    /// from `now`.
    async fn put_history(&self, found: Vec<Item>, now: i64) -> Result<(), StoreError> {
        let expires = now + items::HISTORY_RETENTION_DAYS * 86_400;
        let mut writes = Vec::with_capacity(found.len());
        for mut item in found {
            item.insert(items::TTL.into(), n(expires));
            writes.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .map_err(|_| StoreError::Corrupt("request could not be built"))?,
                    )
                    .build(),
            );
        }
        for chunk in writes.chunks(25) {
            until_processed(
                "batch write",
                BATCH_PAUSE,
                chunk.to_vec(),
                |pending| async move {
                    let out = self
                        .client()
                        .batch_write_item()
                        .request_items(self.table(), pending)
                        .send()
                        .await?;
                    let left = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(self.table()))
                        .filter(|w| !w.is_empty());
                    Ok((Vec::<()>::new(), left))
                },
            )
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl UsageStore for DynamoStore {
    async fn allowances(&self, ids: &[String]) -> Result<HashMap<String, Item>, StoreError> {
        let mut out = HashMap::new();
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(100) {
            let keys: Vec<Item> = chunk.iter().map(|id| Self::allowance_key(id)).collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|_| StoreError::Corrupt("request could not be built"))?;
            let found = until_processed("batch read", BATCH_PAUSE, request, |request| async move {
                let got = self
                    .client()
                    .batch_get_item()
                    .request_items(self.table(), request)
                    .send()
                    .await?;
                let found = got
                    .responses
                    .unwrap_or_default()
                    .remove(self.table())
                    .unwrap_or_default();
                let left = got
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(self.table()))
                    .filter(|k| !k.keys.is_empty());
                Ok((found, left))
            })
            .await?;
            for item in found {
                let id = item
                    .get(items::PK)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("ALW#"))
                    .ok_or(StoreError::Corrupt("allowance without its key"))?
                    .to_owned();
                out.insert(id, item);
            }
        }
        // A sharded allowance: its allowed counts are on its shards; readers
        // see one item with them summed in.
        for (id, root) in out.iter_mut() {
            let shards = root
                .get(items::alw::SHARDS)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(1);
            if shards > 1 {
                for shard in self.shard_items(id, shards, true).await? {
                    merge_counts(root, shard);
                }
            }
        }
        Ok(out)
    }

    async fn key_history(
        &self,
        key_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<KeyDay>, StoreError> {
        let found = self
            .query_range(
                Some((items::OWNER_INDEX, items::GPK, items::GSK)),
                &items::usage_key_gpk(key_id),
                from,
                to,
            )
            .await?;
        Self::key_days(found)
    }

    async fn owner_history(
        &self,
        owner: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<KeyDay>, StoreError> {
        // Sort keys are `<day>#<key_id>`: every key of the last day sorts
        // below `<to>$` ('$' follows '#').
        let found = self
            .query_range(None, &items::usage_owner_pk(owner), from, &format!("{to}$"))
            .await?;
        Self::key_days(found)
    }

    async fn directory(
        &self,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<DirectoryEntry>, StoreError> {
        let (found, next) = self
            .query_page(
                Some((items::DUE_INDEX, items::DPK, items::DSK)),
                items::DIRECTORY,
                None,
                limit,
                cursor,
            )
            .await?;
        let entries = found
            .iter()
            .map(|item| {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok());
                let allowance_id = text(items::PK)
                    .and_then(|pk| pk.strip_prefix("ALW#"))
                    .ok_or(StoreError::Corrupt("directory entry without an allowance"))?;
                let owner = text(items::DSK)
                    .and_then(|d| d.strip_suffix(allowance_id))
                    .and_then(|d| d.strip_suffix('#'))
                    .ok_or(StoreError::Corrupt("directory entry without an owner"))?;
                Ok(DirectoryEntry {
                    owner: owner.to_owned(),
                    allowance_id: allowance_id.to_owned(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Page {
            items: entries,
            next,
        })
    }

    async fn plan_history(
        &self,
        owner: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<PlanDay>, StoreError> {
        // Sort keys are `PLAN#<day>#<plan_id>`: every plan of the last day
        // sorts below `PLAN#<to>$` ('$' follows '#').
        let found = self
            .query_range(
                None,
                &items::usage_owner_pk(owner),
                &items::plan_history_sk(from, ""),
                &format!("{}{to}$", items::PLAN_HISTORY_PREFIX),
            )
            .await?;
        found
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).map_err(mapping("plan usage history")))
            .collect()
    }

    async fn archive(&self, owner: &str, days: &[KeyDay], now: i64) -> Result<(), StoreError> {
        let mut found = Vec::with_capacity(days.len());
        for day in days {
            let mut item: Item = serde_dynamo::to_item(day).map_err(mapping("usage history"))?;
            item.insert(items::PK.into(), s(items::usage_owner_pk(owner)));
            item.insert(
                items::SK.into(),
                s(history_sk(Subject::Key, &day.key_id, &day.day)),
            );
            item.insert(items::GPK.into(), s(items::usage_key_gpk(&day.key_id)));
            item.insert(items::GSK.into(), s(day.day.clone()));
            found.push(item);
        }
        self.put_history(found, now).await
    }

    async fn archived_day(
        &self,
        owner: &str,
        subject: Subject,
        id: &str,
        day: &str,
    ) -> Result<Option<ArchivedDay>, StoreError> {
        let key = Self::key_of(items::usage_owner_pk(owner), &history_sk(subject, id, day));
        let Some(item) = self.get(key, true).await? else {
            return Ok(None);
        };
        let version = item
            .get(items::HISTORY_VERSION)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let usage = match subject {
            Subject::Key => {
                serde_dynamo::from_item::<_, KeyDay>(item)
                    .map_err(mapping("usage history"))?
                    .usage
            }
            Subject::Plan => {
                serde_dynamo::from_item::<_, PlanDay>(item)
                    .map_err(mapping("plan usage history"))?
                    .usage
            }
        };
        Ok(Some(ArchivedDay { usage, version }))
    }

    async fn move_day(
        &self,
        owner: &str,
        (subject, id, day): (Subject, &str, &str),
        (usage, read): (&DayUsage, Option<u64>),
        (allowance_id, moves): (&str, u64),
        parts: &[(u32, Vec<(String, AttributeValue)>)],
        now: i64,
    ) -> Result<(), StoreError> {
        let (id, day) = (id.to_owned(), day.to_owned());
        let usage = usage.clone();
        let mut item: Item = match subject {
            Subject::Key => serde_dynamo::to_item(KeyDay {
                key_id: id.clone(),
                day: day.clone(),
                usage,
            })
            .map_err(mapping("usage history"))?,
            Subject::Plan => serde_dynamo::to_item(PlanDay {
                plan_id: id.clone(),
                day: day.clone(),
                usage,
            })
            .map_err(mapping("plan usage history"))?,
        };
        item.insert(items::PK.into(), s(items::usage_owner_pk(owner)));
        item.insert(items::SK.into(), s(history_sk(subject, &id, &day)));
        if subject == Subject::Key {
            item.insert(items::GPK.into(), s(items::usage_key_gpk(&id)));
            item.insert(items::GSK.into(), s(day.clone()));
        }
        item.insert(
            items::TTL.into(),
            n(now + items::HISTORY_RETENTION_DAYS * 86_400),
        );
        item.insert(
            items::HISTORY_VERSION.into(),
            n(read.unwrap_or(0) as i64 + 1),
        );
        let put = Put::builder().table_name(self.table()).set_item(Some(item));
        let put = match read {
            None => put
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", items::PK),
            Some(0) => put
                .condition_expression("attribute_exists(#k) AND attribute_not_exists(#v)")
                .expression_attribute_names("#k", items::PK)
                .expression_attribute_names("#v", items::HISTORY_VERSION),
            Some(version) => put
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", items::HISTORY_VERSION)
                .expression_attribute_values(":v", n(version as i64)),
        };
        let mut actions = vec![TransactWriteItem::builder()
            .put(
                put.build()
                    .map_err(|_| StoreError::Corrupt("request could not be built"))?,
            )
            .build()];
        // A shard holding none of the counters is not written (an update
        // with an empty expression is refused).
        let parts = parts.iter().filter(|(i, held)| *i == 0 || !held.is_empty());
        for (index, held) in parts {
            let key = match index {
                0 => Self::allowance_key(allowance_id),
                i => Self::shard_key(allowance_id, *i),
            };
            let mut update = Update::builder()
                .table_name(self.table())
                .set_key(Some(key));
            let mut conditions = Vec::new();
            let mut removes = Vec::new();
            for (i, (name, value)) in held.iter().enumerate() {
                update = update
                    .expression_attribute_names(format!("#n{i}"), name)
                    .expression_attribute_values(format!(":v{i}"), value.clone());
                conditions.push(format!("#n{i} = :v{i}"));
                removes.push(format!("#n{i}"));
            }
            let remove = if removes.is_empty() {
                String::new()
            } else {
                format!(" REMOVE {}", removes.join(", "))
            };
            if *index == 0 {
                update = update
                    .expression_attribute_names("#m", alw::MOVES)
                    .expression_attribute_values(":next", n(moves as i64 + 1));
                if moves == 0 {
                    // Also: an allowance gone meanwhile is not re-created.
                    update = update.expression_attribute_names("#k", items::PK);
                    conditions.push("attribute_exists(#k) AND attribute_not_exists(#m)".into());
                } else {
                    update = update.expression_attribute_values(":moves", n(moves as i64));
                    conditions.push("#m = :moves".into());
                }
                update = update.update_expression(format!("SET #m = :next{remove}"));
            } else {
                update = update.update_expression(remove.trim_start());
            }
            update = update.condition_expression(conditions.join(" AND "));
            actions.push(
                TransactWriteItem::builder()
                    .update(
                        update
                            .build()
                            .map_err(|_| StoreError::Corrupt("request could not be built"))?,
                    )
                    .build(),
            );
        }
        self.transact(actions).await
    }

    async fn allowance_parts(&self, allowance_id: &str) -> Result<Vec<(u32, Item)>, StoreError> {
        let Some(root) = self.get(Self::allowance_key(allowance_id), true).await? else {
            return Ok(Vec::new());
        };
        let shards = root
            .get(alw::SHARDS)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1);
        let mut parts = vec![(0, root)];
        if shards > 1 {
            // A shard not made yet (a growth left half made) is left out.
            let found = self.shard_items(allowance_id, shards, true).await?;
            parts.extend((1..).zip(found).filter(|(_, item)| !item.is_empty()));
        }
        Ok(parts)
    }

    async fn put_report(&self, report: &OwnerReport) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(report).map_err(mapping("usage report"))?;
        item.insert(items::PK.into(), s(items::report_pk(&report.owner)));
        item.insert(items::SK.into(), s(report.day.clone()));
        item.insert(
            items::TTL.into(),
            n(report.generated_at + items::HISTORY_RETENTION_DAYS * 86_400),
        );
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .send()
            .await?;
        Ok(())
    }

    async fn report(&self, owner: &str, day: &str) -> Result<Option<OwnerReport>, StoreError> {
        let got = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(Self::key_of(items::report_pk(owner), day)))
            // A report just written by the daily job is read back at once.
            .consistent_read(true)
            .send()
            .await?;
        got.item
            .map(|item| serde_dynamo::from_item(item).map_err(mapping("usage report")))
            .transpose()
    }
}

/// Add a shard's usage counters (`u#...` numbers of keys, `pu#...` of an
/// owner's plans) into its root's.
fn merge_counts(root: &mut Item, shard: Item) {
    for (name, value) in shard {
        let counter = name.starts_with("u#") || name.starts_with(items::PLAN_USAGE_PREFIX);
        let (true, Ok(add)) = (counter, value.as_n()) else {
            continue;
        };
        let add: i64 = add.parse().unwrap_or(0);
        let have: i64 = root
            .get(&name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        root.insert(name, AttributeValue::N((have + add).to_string()));
    }
}

/// The allowance's owner attribute, for checks.
pub fn allowance_owner(item: &Item) -> Option<&str> {
    item.get(alw::OWNER)?.as_s().ok().map(String::as_str)
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[tokio::test]
    async fn leftovers_are_sent_again_until_none_are_left() {
        let mut sent = Vec::new();
        let got = until_processed(
            "batch",
            Duration::ZERO,
            vec![1, 2, 3, 4, 5],
            |batch: Vec<i32>| {
                sent.push(batch.clone());
                // Half of each batch (rounded down) comes back unprocessed.
                let (done, left) = batch.split_at(batch.len().div_ceil(2));
                let out = (done.to_vec(), (!left.is_empty()).then(|| left.to_vec()));
                async move { Ok(out) }
            },
        )
        .await
        .unwrap();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        assert_eq!(sent, vec![vec![1, 2, 3, 4, 5], vec![4, 5], vec![5]]);
    }

    #[tokio::test]
    async fn a_batch_that_never_drains_fails_after_the_last_round() {
        let mut rounds = 0;
        let err = until_processed("batch write", Duration::ZERO, (), |()| {
            rounds += 1;
            async { Ok((Vec::<()>::new(), Some(()))) }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, StoreError::Unprocessed("batch write")));
        assert_eq!(rounds, BATCH_ROUNDS);
    }

    #[tokio::test]
    async fn a_failed_round_fails_the_batch() {
        let err = until_processed("batch read", Duration::ZERO, 1, |_| async {
            Err::<(Vec<()>, Option<i32>), _>(StoreError::Corrupt("boom"))
        })
        .await
        .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt("boom")));
    }

    #[tokio::test(start_paused = true)]
    async fn leftovers_wait_longer_each_round() {
        let started = tokio::time::Instant::now();
        let mut at = Vec::new();
        let err = until_processed("batch write", BATCH_PAUSE, (), |()| {
            at.push(started.elapsed());
            async { Ok((Vec::<()>::new(), Some(()))) }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, StoreError::Unprocessed(_)));
        let ms: Vec<u128> = at.iter().map(|d| d.as_millis()).collect();
        // 0, then pauses of 25, 50, 100, 200, 400, 800 and 1000 (capped) ms.
        assert_eq!(ms, vec![0, 25, 75, 175, 375, 775, 1575, 2575]);
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    #[test]
    fn shard_counts_of_keys_and_plans_add_into_the_root() {
        let num = |v: i64| AttributeValue::N(v.to_string());
        let mut root = Item::from([
            ("u#2026-11-29#key_a#ok".to_owned(), num(2)),
            ("pu#2026-11-29#pro#ok".to_owned(), num(3)),
            ("pdu".to_owned(), num(5)),
        ]);
        let shard = Item::from([
            ("u#2026-11-29#key_a#ok".to_owned(), num(1)),
            ("pu#2026-11-29#pro#ok".to_owned(), num(4)),
            ("pu#2026-11-29#pro#d#rate_limited".to_owned(), num(1)),
            ("pdu".to_owned(), num(5)),
            (
                "pu#2026-11-29#pro#ip1".to_owned(),
                AttributeValue::S("x".into()),
            ),
        ]);
        merge_counts(&mut root, shard);
        assert_eq!(root["u#2026-11-29#key_a#ok"], num(3));
        assert_eq!(root["pu#2026-11-29#pro#ok"], num(7));
        assert_eq!(root["pu#2026-11-29#pro#d#rate_limited"], num(1));
        // Not a usage counter: the root's own stays.
        assert_eq!(root["pdu"], num(5));
        assert!(!root.contains_key("pu#2026-11-29#pro#ip1"));
    }
}
