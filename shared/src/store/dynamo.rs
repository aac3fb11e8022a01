//! [`DynamoStore`]: the store traits over one DynamoDB table.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use aws_sdk_dynamodb::Client;

use super::admission::{AdmitOutcome, AdmitPlan};
use super::items::{self, alw};
use super::{Admission, KeyAdmin, KeyLookup, StoreError};
use crate::decision::DenyReason;
use crate::hash::KeyHash;
use crate::id::KeyId;
use crate::limits::Period;
use crate::model::{KeyRecord, KeyStatus};

type Item = HashMap<String, AttributeValue>;

/// The store over one table. Cheap to clone; build it once per container.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
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

    fn key_of(pk: String, sk: &str) -> Item {
        HashMap::from([(items::PK.to_owned(), s(pk)), (items::SK.to_owned(), s(sk))])
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
        Ok(item)
    }

    fn parse_record(item: Item) -> Result<KeyRecord, StoreError> {
        serde_dynamo::from_item(item).map_err(|source| StoreError::Mapping {
            what: "key record",
            source,
        })
    }

    /// The allowance item a new key starts with.
    fn allowance_item(record: &KeyRecord) -> Item {
        let mut item = Self::key_of(
            items::allowance_pk(&record.allowance_id),
            items::ALLOWANCE_SK,
        );
        item.insert(alw::OWNER.into(), s(record.owner.clone()));
        item.insert(
            alw::VERSIONS.into(),
            AttributeValue::M(HashMap::from([(
                record.key_id.as_str().to_owned(),
                n(record.version),
            )])),
        );
        if let Some(q) = record.limits.quota {
            item.insert(alw::QUOTA_LIMIT.into(), n(q.limit));
            let kind = match q.period {
                Period::Day => "day",
                Period::Month => "month",
            };
            item.insert(alw::QUOTA_KIND.into(), s(kind));
        }
        if let Some(r) = record.limits.rate {
            item.insert(alw::RATE_LIMIT.into(), n(r.limit));
            item.insert(alw::RATE_WINDOW.into(), n(r.window));
        }
        item
    }
}

fn is_conditional(err: &aws_sdk_dynamodb::Error) -> bool {
    matches!(
        err,
        aws_sdk_dynamodb::Error::ConditionalCheckFailedException(_)
            | aws_sdk_dynamodb::Error::TransactionCanceledException(_)
    )
}

#[async_trait]
impl KeyLookup for DynamoStore {
    async fn key_by_hash(
        &self,
        hash: &KeyHash,
        consistent: bool,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key_of(
                items::key_pk(hash.as_str()),
                items::KEY_SK,
            )))
            .consistent_read(consistent)
            .send()
            .await?;
        out.item.map(Self::parse_record).transpose()
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
            .set_key(Some(Self::key_of(
                items::allowance_pk(&plan.allowance_id),
                items::ALLOWANCE_SK,
            )))
            .update_expression(expr.update)
            .condition_expression(expr.condition)
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
            .return_values(ReturnValue::UpdatedNew)
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
            .set_key(Some(Self::key_of(
                items::allowance_pk(allowance_id),
                items::ALLOWANCE_SK,
            )))
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
    async fn create_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let not_exists = "attribute_not_exists(#pk)";
        let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(not_exists)
                .expression_attribute_names("#pk", items::PK)
                .build()
                .map_err(|_| StoreError::Corrupt("put request"))?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        let mut pointer = Self::key_of(items::key_id_pk(record.key_id.as_str()), items::KEY_SK);
        pointer.insert("hash".into(), s(record.hash.as_str()));
        pointer.insert("owner".into(), s(record.owner.clone()));
        let result = self
            .client
            .transact_write_items()
            .transact_items(put(Self::record_item(record)?)?)
            .transact_items(put(pointer)?)
            .transact_items(put(Self::allowance_item(record))?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                let err = aws_sdk_dynamodb::Error::from(err);
                if is_conditional(&err) {
                    Err(StoreError::Conflict)
                } else {
                    Err(StoreError::Dynamo(Box::new(err)))
                }
            }
        }
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

    async fn revoke(&self, key_id: &KeyId, now: i64) -> Result<KeyRecord, StoreError> {
        let mut record = self.key_by_id(key_id).await?.ok_or(StoreError::NotFound)?;
        let previous = record.version;
        record.status = KeyStatus::Revoked;
        record.version += 1;
        record.revoked_at = Some(now);
        let update_record = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key_of(
                items::key_pk(record.hash.as_str()),
                items::KEY_SK,
            )))
            .update_expression("SET #st = :st, #v = :v, #ra = :ra")
            .condition_expression("#v = :prev")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#ra", "revoked_at")
            .expression_attribute_values(":ra", n(now))
            .expression_attribute_values(":st", s("revoked"))
            .expression_attribute_values(":v", n(record.version))
            .expression_attribute_values(":prev", n(previous))
            .build()
            .map_err(|_| StoreError::Corrupt("update request"))?;
        let close_allowance = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key_of(
                items::allowance_pk(&record.allowance_id),
                items::ALLOWANCE_SK,
            )))
            .update_expression("REMOVE #kv.#kid")
            .expression_attribute_names("#kv", alw::VERSIONS)
            .expression_attribute_names("#kid", key_id.as_str())
            .build()
            .map_err(|_| StoreError::Corrupt("update request"))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update_record).build())
            .transact_items(TransactWriteItem::builder().update(close_allowance).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(record),
            Err(err) => {
                let err = aws_sdk_dynamodb::Error::from(err);
                if is_conditional(&err) {
                    Err(StoreError::Conflict)
                } else {
                    Err(StoreError::Dynamo(Box::new(err)))
                }
            }
        }
    }
}
