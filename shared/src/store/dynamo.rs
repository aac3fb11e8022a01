//! [`DynamoStore`]: the store traits over one DynamoDB table.

mod key_fence;
mod leak;
mod plan_shards;
mod plan_spend;
mod plans;
mod portal;
mod shards;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;

use super::admission::{AdmitOutcome, AdmitPlan, StaleUsage, Target};
use super::items::{self, alw};
use super::plan_admission::{PlanSpend, PlanStamp};
use super::{
    Admission, AuditAction, AuditEvent, KeyAdmin, KeyLookup, Page, PlanOutcome, StoreError,
};
use crate::clock::Timestamp;
use crate::decision::DenyReason;
use crate::hash::KeyHash;
use crate::id::KeyId;
use crate::limits::Period;
use crate::model::{KeyRecord, KeyStatus};
use shards::KvChange;

type Item = HashMap<String, AttributeValue>;

/// Items one `TransactWriteItems` takes at most (DynamoDB API Reference,
/// TransactWriteItems).
const MAX_TRANSACTION_ITEMS: usize = 100;

/// The store over one table. Cheap to clone; build it once per container.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub(super) fn key_of(pk: String, sk: &str) -> Item {
        HashMap::from([(items::PK.to_owned(), s(pk)), (items::SK.to_owned(), s(sk))])
    }

    /// The key of an allowance item.
    pub(super) fn allowance_key(allowance_id: &str) -> Item {
        Self::key_of(items::allowance_pk(allowance_id), items::ALLOWANCE_SK)
    }

    /// One item by its key (one `GetItem`), if it exists.
    pub(super) async fn get(
        &self,
        key: Item,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(consistent)
            .send()
            .await?;
        Ok(out.item)
    }

    /// The item an admission plan writes: the root, or one shard.
    fn target_key(allowance_id: &str, target: Target) -> Item {
        match target {
            Target::Single => Self::allowance_key(allowance_id),
            Target::Shard { index, .. } => Self::shard_key(allowance_id, index),
        }
    }

    /// The record as a table item, with its keys and index attributes.
    fn record_item(record: &KeyRecord) -> Result<Item, StoreError> {
        let mut item: Item =
            serde_dynamo::to_item(record).map_err(|source| StoreError::Mapping {
                what: "key record",
                source,
            })?;
        item.insert(items::PK.into(), s(items::key_pk(record.hash.as_str())));
        item.insert(items::SK.into(), s(items::KEY_SK));
        item.insert(items::GPK.into(), s(items::owner_pk(&record.owner)));
        item.insert(
            items::GSK.into(),
            s(format!("{:012}#{}", record.created_at, record.key_id)),
        );
        if let Some((partition, sort)) = items::due_entry(record) {
            item.insert(items::DPK.into(), s(partition));
            item.insert(items::DSK.into(), s(sort));
        }
        Ok(item)
    }

    fn parse_record(item: Item) -> Result<KeyRecord, StoreError> {
        serde_dynamo::from_item(item).map_err(|source| StoreError::Mapping {
            what: "key record",
            source,
        })
    }

    fn audit_item(event: &AuditEvent) -> Result<Item, StoreError> {
        let mut item: Item =
            serde_dynamo::to_item(event).map_err(|source| StoreError::Mapping {
                what: "audit event",
                source,
            })?;
        item.insert(items::PK.into(), s(items::audit_pk(event.key_id.as_str())));
        item.insert(items::SK.into(), s(event.sort_key()));
        Ok(item)
    }

    /// The pointer from a public key id to the record.
    fn pointer_item(record: &KeyRecord) -> Item {
        let mut pointer = Self::key_of(items::key_id_pk(record.key_id.as_str()), items::KEY_SK);
        pointer.insert("hash".into(), s(record.hash.as_str()));
        pointer.insert("owner".into(), s(record.owner.clone()));
        pointer
    }

    /// A transactional put that refuses to overwrite.
    fn put_new(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = built(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", items::PK)
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A transactional put of the next version of a record, if the stored
    /// one is still `previous`.
    fn put_version(
        &self,
        record: &KeyRecord,
        previous: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put_if_version(Self::record_item(record)?, previous)
    }

    /// A transactional put of `item` if the stored item's `version` is
    /// still `previous`.
    fn put_if_version(&self, item: Item, previous: u64) -> Result<TransactWriteItem, StoreError> {
        let put = built(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("#v = :prev")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":prev", n(previous))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// End a key (revoked or retired): the new record, the allowance no
    /// longer admitting it, and the audit event, in one transaction.
    async fn close(
        &self,
        old: &KeyRecord,
        closed: &KeyRecord,
        audit: &AuditEvent,
        extra: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        let close_allowance = built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(Self::allowance_key(&old.allowance_id)))
                .update_expression("REMOVE #kv.#kid")
                .expression_attribute_names("#kv", alw::VERSIONS)
                .expression_attribute_names("#kid", old.key_id.as_str())
                .build(),
        )?;
        let kv = KvChange {
            remove: vec![old.key_id.as_str().to_owned()],
            ..KvChange::default()
        };
        self.commit_change(
            old.version,
            closed,
            (close_allowance, kv, None),
            audit,
            extra,
        )
        .await
    }

    /// The next version of a record, the allowance change that goes with
    /// it (the root's update, its `kv` change for the shards, the new limits
    /// if they changed), the audit event and any `extra` actions, in one
    /// transaction.
    async fn commit_change(
        &self,
        previous: u64,
        record: &KeyRecord,
        allowance: (Update, KvChange, Option<crate::limits::Limits>),
        audit: &AuditEvent,
        extra: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        let (root, kv, limits) = allowance;
        let mut actions = vec![
            self.put_version(record, previous)?,
            self.put_new(Self::audit_item(audit)?)?,
        ];
        actions.extend(extra);
        self.commit_with_allowance(
            (&record.owner, &record.allowance_id),
            actions,
            (root, &kv, limits.as_ref()),
            audit.at,
        )
        .await
    }

    /// `actions` with the allowance side of a record change, in one
    /// transaction: built for a single allowance first (no read), and once
    /// more with the layout if the allowance turns out to be sharded. The
    /// owner's key-change fence ([`items::KEY_FENCE`]) goes in the same
    /// transaction while the owner's plan allowance is single (so that no
    /// container admits on the old record from the owner's plan allowance
    /// alone); a sharded one is fenced item by item first.
    async fn commit_with_allowance(
        &self,
        (owner, allowance_id): (&str, &str),
        actions: Vec<TransactWriteItem>,
        change: (Update, &KvChange, Option<&crate::limits::Limits>),
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let until = now + items::KEY_FENCE_SECONDS;
        let (root, kv, limits) = change;
        let mut layout = None;
        let mut plan_shards = 1;
        let mut plan_read = false;
        let mut completed = false;
        loop {
            let mut all = actions.clone();
            all.extend(
                self.allowance_actions(
                    allowance_id,
                    root.clone(),
                    kv,
                    limits,
                    now,
                    layout.as_ref(),
                )
                .await?,
            );
            if plan_shards <= 1 && all.len() < MAX_TRANSACTION_ITEMS {
                all.push(self.fence_action(owner, until)?);
            } else {
                self.fence_owner_keys(owner, until).await?;
            }
            match self.transact(all).await {
                Err(StoreError::Conflict) => {
                    // The plan allowance may be sharded (or have grown).
                    if !plan_read {
                        plan_read = true;
                        let found = self.plan_shard_count(owner).await?;
                        if found != plan_shards {
                            plan_shards = found;
                            continue;
                        }
                    }
                    if layout.is_none() {
                        match self.sharded_layout(allowance_id).await? {
                            Some(found) => layout = Some(found),
                            None => return Err(StoreError::Conflict),
                        }
                    } else if !completed {
                        // A growth left half made (its shards not created
                        // yet) fails every shard's update: make its shards,
                        // then try once more.
                        completed = true;
                        let shards = layout.as_ref().map_or(1, |l| l.shards);
                        self.grow_to(allowance_id, shards, now).await?;
                        layout = self.sharded_layout(allowance_id).await?;
                    } else {
                        return Err(StoreError::Conflict);
                    }
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// One `TransactWriteItems` of `actions`; a failed condition is
    /// [`StoreError::Conflict`], any other cancellation
    /// [`StoreError::Cancelled`] ([`transact_error`]).
    pub(super) async fn transact(&self, actions: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
            .map_err(transact_error)?;
        Ok(())
    }

    /// The other keys spending from `record`'s allowance (a rotated key and
    /// its successor), read consistently: the allowance's version map names
    /// them.
    async fn siblings(&self, record: &KeyRecord) -> Result<Vec<KeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(&record.allowance_id)))
            .projection_expression("#kv")
            .expression_attribute_names("#kv", alw::VERSIONS)
            .consistent_read(true)
            .send()
            .await?;
        let ids: Vec<String> = out
            .item
            .as_ref()
            .and_then(|item| item.get(alw::VERSIONS))
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.keys()
                    .filter(|k| **k != record.key_id.as_str())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut siblings = Vec::new();
        for id in ids {
            let key_id =
                KeyId::parse(&id).ok_or(StoreError::Corrupt("allowance names a bad key id"))?;
            if let Some(sibling) = self.key_by_id(&key_id).await? {
                siblings.push(sibling);
            }
        }
        Ok(siblings)
    }

    /// One page of a query over one partition of the table or an index,
    /// optionally bounded above on the sort key. The cursor is checked to
    /// belong to the same partition before it is used.
    pub(super) async fn query_page(
        &self,
        index: Option<(&str, &str, &str)>,
        partition: &str,
        below: Option<String>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        // (index name, its partition attribute, its sort attribute)
        let (pk_attr, sk_attr) = match index {
            Some((_, pk, sk)) => (pk, sk),
            None => (items::PK, items::SK),
        };
        let mut attrs = vec![items::PK, items::SK];
        if index.is_some() {
            attrs.extend([pk_attr, sk_attr]);
        }
        let start = cursor
            .map(|c| decode_cursor(c, &attrs, (pk_attr, partition)))
            .transpose()?;
        let mut condition = "#p = :p".to_owned();
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(|(name, _, _)| name.to_owned()))
            .expression_attribute_names("#p", pk_attr)
            .expression_attribute_values(":p", s(partition))
            .limit(limit)
            .set_exclusive_start_key(start)
            // The table's own partitions read consistently; indexes cannot.
            .consistent_read(index.is_none());
        if let Some(upper) = below {
            condition.push_str(" AND #s < :upper");
            req = req
                .expression_attribute_names("#s", sk_attr)
                .expression_attribute_values(":upper", s(upper));
        }
        let out = req.key_condition_expression(condition).send().await?;
        Ok((
            out.items.unwrap_or_default(),
            out.last_evaluated_key.as_ref().map(encode_cursor),
        ))
    }

    /// One page of a partition ([`DynamoStore::query_page`]), each item
    /// mapped to a `T` (`what` names it in a mapping error).
    pub(super) async fn query_mapped<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        index: Option<(&str, &str, &str)>,
        partition: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, StoreError> {
        let (found, next) = self
            .query_page(index, partition, None, limit, cursor)
            .await?;
        let items = found
            .into_iter()
            .map(|item| {
                serde_dynamo::from_item(item).map_err(|source| StoreError::Mapping { what, source })
            })
            .collect::<Result<Vec<T>, _>>()?;
        Ok(Page { items, next })
    }

    /// The allowance item a new key starts with.
    fn allowance_item(record: &KeyRecord) -> Item {
        let mut item = Self::allowance_key(&record.allowance_id);
        item.insert(alw::OWNER.into(), s(record.owner.clone()));
        // The allowance directory (for the daily usage report): a partition
        // of the keys-only due index, so counter updates never touch it.
        item.insert(items::DPK.into(), s(items::DIRECTORY));
        item.insert(
            items::DSK.into(),
            s(format!("{}#{}", record.owner, record.allowance_id)),
        );
        item.insert(
            alw::VERSIONS.into(),
            AttributeValue::M(HashMap::from([(
                record.key_id.as_str().to_owned(),
                n(record.version),
            )])),
        );
        if let Some(q) = record.limits.quota {
            item.insert(alw::QUOTA_LIMIT.into(), n(q.limit));
            item.insert(alw::QUOTA_KIND.into(), s(period_name(q.period)));
        }
        if let Some(r) = record.limits.rate {
            item.insert(alw::RATE_LIMIT.into(), n(r.limit));
            item.insert(alw::RATE_WINDOW.into(), n(r.window));
        }
        item
    }
}

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Month => "month",
    }
}

/// A pagination cursor: the last evaluated key, as hex of its JSON (all our
/// key attributes are strings). Opaque to clients, and checked on the way
/// back in: exactly the expected attributes, and the same partition.
fn encode_cursor(key: &Item) -> String {
    let map: std::collections::BTreeMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.as_str(), v.as_str())))
        .collect();
    hex::encode(serde_json::to_vec(&map).unwrap_or_default())
}

fn decode_cursor(
    cursor: &str,
    attrs: &[&str],
    partition: (&str, &str),
) -> Result<Item, StoreError> {
    let bytes = hex::decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;
    let exact = map.len() == attrs.len() && attrs.iter().all(|a| map.contains_key(*a));
    if !exact || map.get(partition.0).map(String::as_str) != Some(partition.1) {
        return Err(StoreError::InvalidCursor);
    }
    Ok(map.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// Map a transaction's failure by its cancellation reasons (one per action,
/// in order, as DynamoDB's `TransactWriteItems` reference documents them):
/// a failed condition (`ConditionalCheckFailed`) on any action is a
/// conflict: the data changed, retrying the same request cannot succeed.
/// Every other cancellation (`TransactionConflict` with a concurrent
/// request, `ThrottlingError`, `ProvisionedThroughputExceeded`,
/// `ValidationError`, ...) is [`StoreError::Cancelled`]: nothing was
/// decided about the data, and a retry may succeed.
fn transact_error<E, R>(err: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    aws_sdk_dynamodb::Error: From<aws_sdk_dynamodb::error::SdkError<E, R>>,
{
    match aws_sdk_dynamodb::Error::from(err) {
        aws_sdk_dynamodb::Error::ConditionalCheckFailedException(_) => StoreError::Conflict,
        aws_sdk_dynamodb::Error::TransactionCanceledException(e) => {
            let reasons: Vec<String> = e
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect();
            if reasons.iter().any(|code| code == "ConditionalCheckFailed") {
                StoreError::Conflict
            } else {
                StoreError::Cancelled(reasons)
            }
        }
        other => StoreError::Dynamo(Box::new(other)),
    }
}

fn built<T>(r: Result<T, aws_sdk_dynamodb::error::BuildError>) -> Result<T, StoreError> {
    r.map_err(|_| StoreError::Corrupt("request could not be built"))
}

#[async_trait]
impl KeyLookup for DynamoStore {
    async fn key_by_hash(
        &self,
        hash: &KeyHash,
        consistent: bool,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let key = Self::key_of(items::key_pk(hash.as_str()), items::KEY_SK);
        self.get(key, consistent)
            .await?
            .map(Self::parse_record)
            .transpose()
    }
}

#[async_trait]
impl Admission for DynamoStore {
    async fn admit(&self, plan: &AdmitPlan) -> Result<AdmitOutcome, StoreError> {
        let expr = plan.expression();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::target_key(&plan.allowance_id, plan.target)))
            .update_expression(expr.update)
            .condition_expression(expr.condition)
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .return_values(if plan.usage.keep_from.is_some() {
                ReturnValue::AllNew
            } else {
                ReturnValue::UpdatedNew
            })
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(AdmitOutcome::Admitted(plan.granted_from(out.attributes))),
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(e) => {
                    Ok(AdmitOutcome::Rejected(e.item))
                }
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }

    async fn grow(&self, allowance_id: &str, to: u32, now: Timestamp) -> Result<u32, StoreError> {
        self.grow_to(allowance_id, to, now).await
    }

    async fn plan_stamp(&self, owner: &str) -> Result<Option<PlanStamp>, StoreError> {
        self.read_plan_stamp(owner, false).await
    }

    async fn spend_plan(&self, spend: &PlanSpend) -> Result<PlanOutcome, StoreError> {
        self.spend_from_plan(spend).await
    }

    async fn refund_plan(&self, spend: &PlanSpend) -> Result<(), StoreError> {
        self.refund_to_plan(spend).await
    }

    async fn grow_plan(
        &self,
        current: &PlanStamp,
        to: u32,
        now: Timestamp,
    ) -> Result<Option<PlanStamp>, StoreError> {
        self.grow_plan_to(current, to, now).await
    }

    async fn peek(&self, allowance_id: &str, target: Target) -> Result<Option<Item>, StoreError> {
        self.get(Self::target_key(allowance_id, target), true).await
    }

    async fn survey(
        &self,
        allowance_id: &str,
        count: u32,
    ) -> Result<Vec<Option<Item>>, StoreError> {
        self.survey_shards(allowance_id, count).await
    }

    async fn flush_usage(
        &self,
        allowance_id: &str,
        counts: &[(String, u64)],
        slots: &[(String, String)],
        keep_from: Option<&str>,
    ) -> Result<StaleUsage, StoreError> {
        if counts.is_empty() && slots.is_empty() {
            return Ok(StaleUsage::default());
        }
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(allowance_id)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", items::PK);
        let mut add = Vec::new();
        for (i, (name, count)) in counts.iter().enumerate() {
            req = req
                .expression_attribute_names(format!("#c{i}"), name)
                .expression_attribute_values(format!(":c{i}"), n(*count));
            add.push(format!("#c{i} :c{i}"));
        }
        let mut set = Vec::new();
        for (i, (name, value)) in slots.iter().enumerate() {
            req = req
                .expression_attribute_names(format!("#s{i}"), name)
                .expression_attribute_values(format!(":s{i}"), s(value.clone()));
            set.push(format!("#s{i} = if_not_exists(#s{i}, :s{i})"));
        }
        let mut expr = String::new();
        if !set.is_empty() {
            expr.push_str(&format!("SET {} ", set.join(", ")));
        }
        if !add.is_empty() {
            expr.push_str(&format!("ADD {}", add.join(", ")));
        }
        if keep_from.is_some() {
            req = req.return_values(ReturnValue::AllNew);
        }
        match req.update_expression(expr.trim_end()).send().await {
            Ok(out) => Ok(match (keep_from, out.attributes()) {
                (Some(keep_from), Some(item)) => StaleUsage::of(item, keep_from),
                _ => StaleUsage::default(),
            }),
            Err(err) => match err.into_service_error() {
                // The allowance is gone (a deleted key): nothing to count against.
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(StaleUsage::default()),
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }

    async fn prune_usage(
        &self,
        allowance_id: &str,
        target: Target,
        names: &[String],
    ) -> Result<(), StoreError> {
        for chunk in names.chunks(items::PRUNE_BATCH) {
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(Self::target_key(allowance_id, target)));
            let mut placeholders = Vec::new();
            for (i, name) in chunk.iter().enumerate() {
                placeholders.push(format!("#u{i}"));
                req = req.expression_attribute_names(format!("#u{i}"), name);
            }
            req.update_expression(format!("REMOVE {}", placeholders.join(", ")))
                .send()
                .await?;
        }
        Ok(())
    }

    async fn record_denial(
        &self,
        allowance_id: &str,
        key_id: &KeyId,
        reason: DenyReason,
        day: &str,
    ) -> Result<(), StoreError> {
        let attr = items::usage_attr(day, key_id.as_str(), &format!("d#{reason}"));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(allowance_id)))
            .update_expression("ADD #u :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#u", attr)
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The allowance is gone (a deleted key): nothing to count against.
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(()),
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }
}

#[async_trait]
impl KeyAdmin for DynamoStore {
    async fn create_key(&self, record: &KeyRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let put = |item| self.put_new(item);
        self.client
            .transact_write_items()
            .transact_items(put(Self::record_item(record)?)?)
            .transact_items(put(Self::pointer_item(record))?)
            .transact_items(put(Self::allowance_item(record))?)
            .transact_items(put(Self::audit_item(audit)?)?)
            .send()
            .await
            .map_err(transact_error)?;
        Ok(())
    }

    async fn key_by_id(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let pointer = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_of(
                items::key_id_pk(key_id.as_str()),
                items::KEY_SK,
            )))
            .consistent_read(true)
            .send()
            .await?;
        let Some(pointer) = pointer.item else {
            return Ok(None);
        };
        let hash = pointer
            .get("hash")
            .and_then(|v| v.as_s().ok())
            .ok_or(StoreError::Corrupt("key id pointer without hash"))?;
        self.key_by_hash(&KeyHash::from_hex(hash.clone()), true)
            .await
    }

    async fn revoke(
        &self,
        key_id: &KeyId,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<KeyRecord, StoreError> {
        let record = self.key_by_id(key_id).await?.ok_or(StoreError::NotFound)?;
        let mut revoked = record.clone();
        revoked.status = KeyStatus::Revoked;
        revoked.version += 1;
        revoked.revoked_at = Some(now);
        self.close(&record, &revoked, audit, Vec::new()).await?;
        Ok(revoked)
    }

    async fn retire(
        &self,
        record: &KeyRecord,
        now: i64,
        actor: &str,
    ) -> Result<KeyRecord, StoreError> {
        let mut retired = record.clone();
        retired.status = KeyStatus::Retired;
        retired.version += 1;
        let audit = AuditEvent::new(
            &record.key_id,
            retired.version,
            AuditAction::Expired,
            actor,
            now,
            serde_json::json!({"status": "retired", "grace_until": record.grace_until}),
        );
        self.close(record, &retired, &audit, Vec::new()).await?;
        Ok(retired)
    }

    async fn rotate(
        &self,
        old: &KeyRecord,
        successor: &KeyRecord,
        grace_until: i64,
        now: i64,
        actor: &str,
    ) -> Result<KeyRecord, StoreError> {
        if successor.allowance_id != old.allowance_id || successor.owner != old.owner {
            return Err(StoreError::Corrupt(
                "a successor must share owner and allowance",
            ));
        }
        if old.status != KeyStatus::Active {
            return Err(StoreError::Conflict);
        }
        let mut updated = old.clone();
        updated.status = KeyStatus::Rotating;
        updated.version += 1;
        updated.rotated_at = Some(now);
        updated.grace_until = Some(grace_until);
        updated.successor = Some(successor.key_id.clone());
        // Both keys spend from the one allowance: the old one at its new
        // version, the successor at its first.
        let share = built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(Self::allowance_key(&old.allowance_id)))
                .update_expression("SET #kv.#old = :ov, #kv.#new = :nv")
                .condition_expression("#kv.#old = :prev")
                .expression_attribute_names("#kv", alw::VERSIONS)
                .expression_attribute_names("#old", old.key_id.as_str())
                .expression_attribute_names("#new", successor.key_id.as_str())
                .expression_attribute_values(":ov", n(updated.version))
                .expression_attribute_values(":nv", n(successor.version))
                .expression_attribute_values(":prev", n(old.version))
                .build(),
        )?;
        let rotated = AuditEvent::new(
            &old.key_id,
            updated.version,
            AuditAction::Rotated,
            actor,
            now,
            serde_json::json!({"successor": successor.key_id, "grace_until": grace_until}),
        );
        let issued = AuditEvent::new(
            &successor.key_id,
            successor.version,
            AuditAction::Issued,
            actor,
            now,
            serde_json::json!({"rotated_from": old.key_id}),
        );
        let kv = KvChange {
            set: vec![
                (old.key_id.as_str().to_owned(), updated.version),
                (successor.key_id.as_str().to_owned(), successor.version),
            ],
            ..KvChange::default()
        };
        let actions = vec![
            self.put_new(Self::record_item(successor)?)?,
            self.put_new(Self::pointer_item(successor))?,
            self.put_version(&updated, old.version)?,
            self.put_new(Self::audit_item(&rotated)?)?,
            self.put_new(Self::audit_item(&issued)?)?,
        ];
        self.commit_with_allowance(
            (&old.owner, &old.allowance_id),
            actions,
            (share, &kv, None),
            now,
        )
        .await?;
        Ok(updated)
    }

    async fn settle_secret(&self, record: &KeyRecord) -> Result<KeyRecord, StoreError> {
        let mut settled = record.clone();
        settled.secret_pending = false;
        // Bookkeeping only: the version stays, so caches and the allowance
        // are untouched. The condition keeps a concurrent change from being
        // overwritten.
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::record_item(&settled)?))
            .condition_expression("#v = :v AND #sp = :yes")
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#sp", "secret_pending")
            .expression_attribute_values(":v", n(record.version))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(settled),
            Err(err) => match aws_sdk_dynamodb::Error::from(err) {
                aws_sdk_dynamodb::Error::ConditionalCheckFailedException(_) => {
                    Err(StoreError::Conflict)
                }
                other => Err(StoreError::Dynamo(Box::new(other))),
            },
        }
    }

    async fn due(
        &self,
        partition: &str,
        up_to: i64,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<KeyHash>, StoreError> {
        // Every entry due at or before `up_to` sorts below this.
        let below = format!("{:012}$", up_to.max(0));
        let (found, next) = self
            .query_page(
                Some((items::DUE_INDEX, items::DPK, items::DSK)),
                partition,
                Some(below),
                limit,
                cursor,
            )
            .await?;
        let hashes = found
            .iter()
            .map(|item| {
                item.get(items::PK)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| pk.strip_prefix("KEY#"))
                    .map(KeyHash::from_hex)
                    .ok_or(StoreError::Corrupt("due entry without a key hash"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items: hashes,
            next,
        })
    }

    async fn update_key(
        &self,
        old: &KeyRecord,
        new: &KeyRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        if new.key_id != old.key_id || new.hash != old.hash || new.version != old.version + 1 {
            return Err(StoreError::Corrupt(
                "an update keeps the key and bumps the version",
            ));
        }
        // Limits live on the allowance, which a rotated key and its
        // successor share: a change of limits is a change of both records
        // (each at its next version, with its own audit event), or the
        // sibling's cached record would never match the allowance again.
        let siblings = if new.limits == old.limits {
            Vec::new()
        } else {
            self.siblings(old).await?
        };
        let mut set = vec!["#kv.#kid = :v".to_owned()];
        let mut condition = vec!["#kv.#kid = :prev".to_owned()];
        let mut remove = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(&old.allowance_id)))
            .expression_attribute_names("#kv", alw::VERSIONS)
            .expression_attribute_names("#kid", old.key_id.as_str())
            .expression_attribute_names("#ql", alw::QUOTA_LIMIT)
            .expression_attribute_names("#qt", alw::QUOTA_KIND)
            .expression_attribute_names("#rl", alw::RATE_LIMIT)
            .expression_attribute_names("#rw", alw::RATE_WINDOW)
            .expression_attribute_values(":v", n(new.version))
            .expression_attribute_values(":prev", n(old.version));
        let mut extra = Vec::new();
        let mut kv = KvChange {
            set: vec![(old.key_id.as_str().to_owned(), new.version)],
            ..KvChange::default()
        };
        for (i, sibling) in siblings.iter().enumerate() {
            let mut next = sibling.clone();
            next.limits = new.limits;
            next.version += 1;
            kv.set
                .push((sibling.key_id.as_str().to_owned(), next.version));
            set.push(format!("#kv.#s{i} = :sv{i}"));
            condition.push(format!("#kv.#s{i} = :sp{i}"));
            update = update
                .expression_attribute_names(format!("#s{i}"), sibling.key_id.as_str())
                .expression_attribute_values(format!(":sv{i}"), n(next.version))
                .expression_attribute_values(format!(":sp{i}"), n(sibling.version));
            let event = AuditEvent::new(
                &sibling.key_id,
                next.version,
                AuditAction::Updated,
                audit.actor.clone(),
                audit.at,
                serde_json::json!({"limits": new.limits, "shared_with": old.key_id}),
            );
            extra.push(self.put_version(&next, sibling.version)?);
            extra.push(self.put_new(Self::audit_item(&event)?)?);
        }
        match new.limits.quota {
            Some(q) => {
                set.push("#ql = :ql, #qt = :qt".into());
                update = update
                    .expression_attribute_values(":ql", n(q.limit))
                    .expression_attribute_values(":qt", s(period_name(q.period)));
            }
            None => remove.push("#ql, #qt"),
        }
        match new.limits.rate {
            Some(r) => {
                set.push("#rl = :rl, #rw = :rw".into());
                update = update
                    .expression_attribute_values(":rl", n(r.limit))
                    .expression_attribute_values(":rw", n(r.window));
            }
            None => remove.push("#rl, #rw"),
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let update = built(
            update
                .update_expression(expr)
                .condition_expression(condition.join(" AND "))
                .build(),
        )?;
        let limits = (new.limits != old.limits).then_some(new.limits);
        self.commit_change(old.version, new, (update, kv, limits), audit, extra)
            .await
    }

    async fn list_by_owner(
        &self,
        owner: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<KeyRecord>, StoreError> {
        let (found, next) = self
            .query_page(
                Some((items::OWNER_INDEX, items::GPK, items::GSK)),
                &items::owner_pk(owner),
                None,
                limit,
                cursor,
            )
            .await?;
        let items = found
            .into_iter()
            .map(Self::parse_record)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next })
    }

    async fn events(
        &self,
        key_id: &KeyId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, StoreError> {
        let partition = items::audit_pk(key_id.as_str());
        self.query_mapped("audit event", None, &partition, limit, cursor)
            .await
    }
}
