//! [`LeakStore`] over the table: batched consistent lookups and the leak
//! transaction.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{KeysAndAttributes, TransactWriteItem, Update};

use super::{built, DynamoStore, Item};
use crate::hash::KeyHash;
use crate::leak::LineageLeak;
use crate::model::KeyRecord;
use crate::store::items::{self, alw};
use crate::store::{AuditAction, AuditEvent, LeakStore, StoreError};

/// `BatchGetItem` reads at most 100 items per request (DynamoDB API
/// Reference, BatchGetItem).
const BATCH_GET: usize = 100;
/// Requests per chunk while DynamoDB hands keys back unprocessed.
const ATTEMPTS: usize = 4;

/// Keys of a rotation lineage flagged by one leak report: two items each
/// (the flag and its audit event), so with the report's own three and a
/// 64-shard allowance's 65 the transaction stays within DynamoDB's 100
/// items (DynamoDB API Reference, TransactWriteItems). A lineage has two
/// live keys unless keys were rolled again and again within long grace
/// periods; past this many, the rest are left unflagged (and logged).
const MAX_LINEAGE_FLAGS: usize = 16;

#[async_trait]
impl LeakStore for DynamoStore {
    async fn keys_by_hashes(&self, hashes: &[KeyHash]) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys: Vec<Item> = hashes
            .iter()
            .map(|h| Self::key_of(items::key_pk(h.as_str()), items::KEY_SK))
            .collect();
        keys.dedup();
        self.batch_get(keys, true)
            .await?
            .into_iter()
            .map(Self::parse_record)
            .collect()
    }

    async fn mark_leaked(
        &self,
        old: &KeyRecord,
        leaked: &KeyRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let flags = self.flag_lineage(old, audit).await?;
        match (old.status.is_live(), leaked.status.is_live()) {
            // Taken out of service: the very path of a revoke.
            (true, false) => self.close(old, leaked, audit, flags).await,
            // Flagged, still live: the allowance follows the new version.
            (true, true) => {
                let follow = built(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(Self::allowance_key(&old.allowance_id)))
                        .update_expression("SET #kv.#kid = :v")
                        .condition_expression("#kv.#kid = :prev")
                        .expression_attribute_names("#kv", alw::VERSIONS)
                        .expression_attribute_names("#kid", old.key_id.as_str())
                        .expression_attribute_values(":v", super::n(leaked.version))
                        .expression_attribute_values(":prev", super::n(old.version))
                        .build(),
                )?;
                let kv = super::shards::KvChange {
                    set: vec![(old.key_id.as_str().to_owned(), leaked.version)],
                    ..Default::default()
                };
                self.commit_change(old.version, leaked, (follow, kv, None), audit, flags)
                    .await
            }
            // Already out of service: the allowance no longer names it.
            (false, _) => {
                let mut actions = vec![
                    self.put_version(leaked, old.version)?,
                    self.put_new(Self::audit_item(audit)?)?,
                ];
                actions.extend(flags);
                self.transact(actions).await
            }
        }
    }
}

impl DynamoStore {
    /// The items with these keys that exist, read with `BatchGetItem` (100
    /// keys a request; keys handed back unprocessed are asked for again, up
    /// to 4 rounds).
    pub(in crate::store) async fn batch_get(
        &self,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                attempt += 1;
                if attempt > ATTEMPTS {
                    return Err(StoreError::Unprocessed("BatchGetItem"));
                }
                let (items, unprocessed) = self
                    .batch_get_once(std::mem::take(&mut pending), consistent)
                    .await?;
                found.extend(items);
                pending = unprocessed;
            }
        }
        Ok(found)
    }

    /// One `BatchGetItem` of at most 100 keys: the items found, and the keys
    /// DynamoDB handed back unprocessed.
    pub(in crate::store) async fn batch_get_once(
        &self,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<(Vec<Item>, Vec<Item>), StoreError> {
        let request = built(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(consistent)
                .build(),
        )?;
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.table, request)
            .send()
            .await?;
        let found = out
            .responses
            .and_then(|mut r| r.remove(&self.table))
            .unwrap_or_default();
        let unprocessed = out
            .unprocessed_keys
            .and_then(|mut u| u.remove(&self.table))
            .map(|k| k.keys)
            .unwrap_or_default();
        Ok((found, unprocessed))
    }

    /// The actions that flag the other live keys of `old`'s rotation lineage
    /// (those its allowance admits, read consistently; no read for a key
    /// never rotated): [`LineageLeak`] set
    /// on each record if it is still at the version read, and a
    /// `lineage_leaked` audit event. The version is not bumped: the flag
    /// changes no decision, so cached copies stay admissible.
    async fn flag_lineage(
        &self,
        old: &KeyRecord,
        audit: &AuditEvent,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut actions = Vec::new();
        if !old.in_lineage() {
            return Ok(actions);
        }
        let siblings = self.siblings(old).await?;
        if siblings.len() > MAX_LINEAGE_FLAGS {
            tracing::warn!(key_id = %old.key_id, siblings = siblings.len(), flagged = MAX_LINEAGE_FLAGS, "a long rotation lineage: only its first keys are flagged");
        }
        for sibling in siblings.into_iter().take(MAX_LINEAGE_FLAGS) {
            let mark = LineageLeak {
                key_id: old.key_id.clone(),
                at: audit.at,
            };
            let value =
                serde_dynamo::to_attribute_value(&mark).map_err(|source| StoreError::Mapping {
                    what: "lineage leak",
                    source,
                })?;
            let flag = built(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::key_of(
                        items::key_pk(sibling.hash.as_str()),
                        items::KEY_SK,
                    )))
                    .update_expression("SET #ll = :ll")
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#ll", "lineage_leak")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":ll", value)
                    .expression_attribute_values(":v", super::n(sibling.version))
                    .build(),
            )?;
            let event = AuditEvent::new(
                &sibling.key_id,
                sibling.version,
                AuditAction::LineageLeaked,
                audit.actor.clone(),
                audit.at,
                serde_json::json!({"leaked": old.key_id}),
            );
            actions.push(TransactWriteItem::builder().update(flag).build());
            actions.push(self.put_new(Self::audit_item(&event)?)?);
        }
        Ok(actions)
    }
}
