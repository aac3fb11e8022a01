//! Spending from owners' plan allowances (see `store/plan_admission.rs`):
//! the stamp read, the conditional spend, and the refund.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::DynamoStore;
use crate::store::admission::{Expression, Target};
use crate::store::items;
use crate::store::plan_admission::{PlanSpend, PlanStamp};
use crate::store::{PlanOutcome, StoreError};

impl DynamoStore {
    /// The owner's plan stamp, from its plan allowance item (one `GetItem`).
    pub(in crate::store) async fn read_plan_stamp(
        &self,
        owner: &str,
        consistent: bool,
    ) -> Result<Option<PlanStamp>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(&items::owner_allowance_id(owner))))
            .consistent_read(consistent)
            .send()
            .await?;
        Ok(out.item.and_then(|item| PlanStamp::from_item(owner, &item)))
    }

    /// A conditional `UpdateItem` of the plan allowance item `spend` is on
    /// (the root, or one shard).
    fn plan_update(&self, spend: &PlanSpend, expr: Expression) -> UpdateItemFluentBuilder {
        let id = spend.stamp.allowance_id();
        let key = match spend.target {
            Target::Single => Self::allowance_key(&id),
            Target::Shard { index, .. } => Self::shard_key(&id, index),
        };
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(expr.update)
            .condition_expression(expr.condition)
            .set_expression_attribute_names(Some(expr.names))
            .set_expression_attribute_values(Some(expr.values))
    }

    /// One conditional `UpdateItem` spending one request from every limit
    /// of the plan; a failed condition comes back with the item as it was.
    pub(in crate::store) async fn spend_from_plan(
        &self,
        spend: &PlanSpend,
    ) -> Result<PlanOutcome, StoreError> {
        let result = self
            .plan_update(spend, spend.expression())
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(PlanOutcome::Admitted(
                spend.granted(&out.attributes.unwrap_or_default()),
            )),
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(e) => {
                    Ok(PlanOutcome::Rejected(e.item))
                }
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }

    /// Give a spend's unit back; a failed condition (the period rolled
    /// over, the owner left the plan) owes nothing.
    pub(in crate::store) async fn refund_to_plan(
        &self,
        spend: &PlanSpend,
    ) -> Result<(), StoreError> {
        // Sent once: a refund whose answer was lost may have been applied,
        // and applying it twice would let the plan admit one more.
        let once = aws_sdk_dynamodb::config::Builder::default()
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled());
        let result = self
            .plan_update(spend, spend.refund())
            .customize()
            .config_override(once)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(()),
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }
}
