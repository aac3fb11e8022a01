//! A store that answers instantly from memory, for measuring the decision
//! pipeline *excluding* DynamoDB (benchmarks only; tests use the emulator).

use async_trait::async_trait;
use keygate::decision::DenyReason;
use keygate::hash::KeyHash;
use keygate::id::KeyId;
use keygate::model::KeyRecord;
use keygate::store::{
    Admission, AdmitOutcome, AdmitPlan, CounterHints, Granted, KeyLookup, StoreError, Target,
};

/// Holds one record and admits every request.
pub struct InstantStore {
    pub record: KeyRecord,
}

#[async_trait]
impl KeyLookup for InstantStore {
    async fn key_by_hash(&self, hash: &KeyHash, _: bool) -> Result<Option<KeyRecord>, StoreError> {
        Ok((hash == &self.record.hash).then(|| self.record.clone()))
    }
}

#[async_trait]
impl Admission for InstantStore {
    async fn admit(&self, plan: &AdmitPlan) -> Result<AdmitOutcome, StoreError> {
        Ok(AdmitOutcome::Admitted(Granted {
            quota_remaining: Some(1),
            rate_remaining: Some(1),
            hints: CounterHints {
                shards: 1,
                quota: plan
                    .quota
                    .map(|(period, step)| keygate::store::admission::QuotaPos {
                        period,
                        start: step.start(),
                    }),
                rate: plan
                    .rate
                    .map(|(window, step)| keygate::store::admission::RatePos {
                        window,
                        start: step.start(),
                    }),
            },
            stale: keygate::store::StaleUsage::default(),
            writes: None,
        }))
    }

    async fn prune_usage(&self, _: &str, _: Target, _: &[String]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn grow(&self, _: &str, to: u32, _: i64) -> Result<u32, StoreError> {
        Ok(to)
    }

    async fn plan_stamp(
        &self,
        _: &str,
    ) -> Result<Option<keygate::store::plan_admission::PlanStamp>, StoreError> {
        Ok(None)
    }

    async fn spend_plan(
        &self,
        _: &keygate::store::plan_admission::PlanSpend,
    ) -> Result<keygate::store::PlanOutcome, StoreError> {
        Ok(keygate::store::PlanOutcome::Admitted(Default::default()))
    }

    async fn refund_plan(
        &self,
        _: &keygate::store::plan_admission::PlanSpend,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn grow_plan(
        &self,
        _: &keygate::store::plan_admission::PlanStamp,
        _: u32,
        _: i64,
    ) -> Result<Option<keygate::store::plan_admission::PlanStamp>, StoreError> {
        Ok(None)
    }

    async fn peek(
        &self,
        _: &str,
        _: Target,
    ) -> Result<
        Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
        StoreError,
    > {
        Ok(None)
    }

    async fn survey(
        &self,
        _: &str,
        count: u32,
    ) -> Result<
        Vec<Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>>,
        StoreError,
    > {
        Ok(vec![None; count as usize])
    }

    async fn flush_usage(
        &self,
        _: &str,
        _: &[(String, u64)],
        _: &[(String, String)],
        _: Option<&str>,
    ) -> Result<keygate::store::StaleUsage, StoreError> {
        Ok(keygate::store::StaleUsage::default())
    }

    async fn record_denial(
        &self,
        _: &str,
        _: &KeyId,
        _: DenyReason,
        _: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}
