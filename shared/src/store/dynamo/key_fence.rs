//! The key-change fence on an owner's plan allowance ([`items::KEY_FENCE`]):
//! written before every change of one of the owner's key records, so that
//! no container spends a key without limits of its own from the plan alone
//! (one write) on a record read before the change.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

use super::shards::Parts;
use super::{n, DynamoStore};
use crate::clock::Timestamp;
use crate::store::items::{self, alw};
use crate::store::StoreError;

/// Tries when a growth of the plan allowance changes its layout between
/// the read and the write.
const FENCE_ATTEMPTS: usize = 3;

impl DynamoStore {
    /// Set the owner's key-change fence to `until` on its plan allowance:
    /// the root (created if the owner never had a plan, so a subscription
    /// racing the change inherits it) and, when sharded, every shard in the
    /// same transaction (conditioned on the layout read).
    pub(in crate::store) async fn fence_owner_keys(
        &self,
        owner: &str,
        until: Timestamp,
    ) -> Result<(), StoreError> {
        let id = items::owner_allowance_id(owner);
        for _ in 0..FENCE_ATTEMPTS {
            let out = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(Self::allowance_key(&id)))
                .projection_expression("#sh")
                .expression_attribute_names("#sh", alw::SHARDS)
                .consistent_read(true)
                .send()
                .await?;
            let shards = out
                .item
                .as_ref()
                .and_then(|i| i.get(alw::SHARDS))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(1)
                .max(1);
            let parts = || {
                let mut parts = Parts::default();
                parts.names.insert("#kx".into(), items::KEY_FENCE.into());
                parts.names.insert("#sh".into(), alw::SHARDS.into());
                parts.values.insert(":kx".into(), n(until));
                parts.set.push("#kx = :kx".into());
                if shards > 1 {
                    parts.values.insert(":shn".into(), n(shards));
                    parts.cond.push("#sh = :shn".into());
                } else {
                    parts.cond.push("attribute_not_exists(#sh)".into());
                }
                parts
            };
            if shards <= 1 {
                // One item: one `UpdateItem` (a transaction bills twice).
                let p = parts();
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(Self::allowance_key(&id)))
                    .update_expression(p.expression())
                    .condition_expression(p.cond.join(" AND "))
                    .set_expression_attribute_names(Some(p.names))
                    .set_expression_attribute_values(Some(p.values))
                    .send()
                    .await;
                match result.map_err(|e| e.into_service_error()) {
                    Ok(_) => return Ok(()),
                    Err(UpdateItemError::ConditionalCheckFailedException(_)) => continue,
                    Err(other) => return Err(StoreError::Dynamo(Box::new(other.into()))),
                }
            }
            let mut actions = vec![self.action(Self::allowance_key(&id), parts())?];
            for index in 1..=shards {
                actions.push(self.action(Self::shard_key(&id, index), parts())?);
            }
            match self.transact(actions).await {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }
}
