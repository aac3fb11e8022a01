//! The key-change fence on an owner's plan allowance ([`items::KEY_FENCE`]):
//! written with every change of one of the owner's key records, so that no
//! container spends a key without limits of its own from the plan alone
//! (one write) on a record read before the change.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::TransactWriteItem;
use tokio::task::JoinSet;

use super::shards::Parts;
use super::{n, DynamoStore, Item};
use crate::clock::Timestamp;
use crate::store::items::{self, alw};
use crate::store::StoreError;

impl DynamoStore {
    /// The shard count of the owner's plan allowance (1: single or none),
    /// read strongly consistently (one `GetItem` of one attribute).
    pub(in crate::store) async fn plan_shard_count(&self, owner: &str) -> Result<u32, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(&items::owner_allowance_id(owner))))
            .projection_expression("#sh")
            .expression_attribute_names("#sh", alw::SHARDS)
            .consistent_read(true)
            .send()
            .await?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| i.get(alw::SHARDS))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1))
    }

    /// The action that sets the owner's key-change fence to `until` on a
    /// single plan allowance, inside the change's own transaction: the root
    /// (created if the owner never had a plan, so a subscription racing the
    /// change inherits it), conditioned on it being single (a sharded one
    /// fails it: [`StoreError::Conflict`], then [`DynamoStore::fence_owner_keys`]).
    pub(in crate::store) fn fence_action(
        &self,
        owner: &str,
        until: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut parts = Parts::default();
        parts.names.insert("#kx".into(), items::KEY_FENCE.into());
        parts.names.insert("#sh".into(), alw::SHARDS.into());
        parts.values.insert(":kx".into(), n(until));
        parts.set.push("#kx = :kx".into());
        parts.cond.push("attribute_not_exists(#sh)".into());
        self.action(
            Self::allowance_key(&items::owner_allowance_id(owner)),
            parts,
        )
    }

    /// Set the fence of a sharded plan allowance before the change, item by
    /// item (a transaction over the owner's busiest items would make their
    /// spends fail with `TransactionConflict` while it runs): the root
    /// first, then every shard of the layout read after it (a growth from a
    /// root read before the fence fails on it; shards made later copy it).
    /// Each write only moves the fence later.
    pub(in crate::store) async fn fence_owner_keys(
        &self,
        owner: &str,
        until: Timestamp,
    ) -> Result<(), StoreError> {
        let id = items::owner_allowance_id(owner);
        self.fence_item(Self::allowance_key(&id), until, false)
            .await?;
        let layout = self.plan_layout(owner).await?;
        let mut writes = JoinSet::new();
        for index in (1..=layout.shards).filter(|_| layout.shards > 1) {
            let store = self.clone();
            let key = Self::shard_key(&id, index);
            writes.spawn(async move { store.fence_item(key, until, true).await });
        }
        while let Some(joined) = writes.join_next().await {
            joined.map_err(|_| StoreError::Corrupt("a fence write panicked"))??;
        }
        Ok(())
    }

    /// One item's fence, moved to `until` unless it is already later (a
    /// shard only if it exists).
    async fn fence_item(
        &self,
        key: Item,
        until: Timestamp,
        existing: bool,
    ) -> Result<(), StoreError> {
        let mut cond = "(attribute_not_exists(#kx) OR #kx < :kx)".to_owned();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("SET #kx = :kx")
            .expression_attribute_names("#kx", items::KEY_FENCE)
            .expression_attribute_values(":kx", n(until));
        if existing {
            cond = format!("attribute_exists(#pk) AND {cond}");
            req = req.expression_attribute_names("#pk", items::PK);
        }
        match req.condition_expression(cond).send().await {
            Ok(_) => Ok(()),
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(()),
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }
}
