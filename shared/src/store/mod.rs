//! Persistence, behind traits sized by capability.
//!
//! Each Lambda function depends only on the traits it uses, and its IAM
//! policy grants only the DynamoDB actions those traits need:
//! - [`KeyLookup`]: `GetItem` on key records (authorizer);
//! - [`Admission`]: `UpdateItem` on allowance items (authorizer);
//! - [`KeyAdmin`]: issuance and lifecycle, `TransactWriteItems`, `GetItem`,
//!   `Query` (key management, rotation, operator CLI);
//! - [`UsageStore`]: usage history and reports, `BatchGetItem`, `Query`,
//!   `BatchWriteItem`, `PutItem`, `GetItem` (usage reporting);
//! - [`LeakStore`]: leak reports, `BatchGetItem` (consistent) and
//!   `TransactWriteItems` (the leak receiver);
//! - [`PortalStore`]: developer-portal links and sessions, `PutItem`,
//!   `DeleteItem`, `GetItem`, `Query` (the portal);
//! - [`PlanLookup`]: plans and subscriptions, `GetItem` (key issuance,
//!   which refuses a key wider than its owner's plan: part of [`KeyAdmin`]);
//! - [`PlanAdmin`]: plans, subscriptions and owners' plan stamps,
//!   `TransactWriteItems` (`Put`, `Update`, `Delete`, `ConditionCheck`),
//!   `UpdateItem`, `Query` (the management API).
//!
//! [`DynamoStore`] implements them all over one table (see [`items`] for the
//! layout).

pub mod admission;
pub mod audit;
mod dynamo;
pub mod items;
pub mod plan_admission;
pub mod plans;
pub mod portal;
pub mod shards;
pub mod size;
mod usage;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

pub use admission::{
    AdmitOutcome, AdmitPlan, CounterHints, Granted, StaleUsage, Target, UsageMark,
};
pub use audit::{AuditAction, AuditEvent};
pub use dynamo::DynamoStore;
pub use plans::{PlanAdmin, PlanLookup, Restamped, SubscriptionChange};
pub use portal::{PortalGrant, PortalStore};
pub use usage::{allowance_owner, ArchivedDay, DirectoryEntry, Subject, UsageStore, MOVE_BATCH};

use crate::clock::Timestamp;
use crate::decision::DenyReason;
use crate::hash::KeyHash;
use crate::id::KeyId;
use crate::model::KeyRecord;

/// System failures of the store layer. A failed *condition* is not an error:
/// it becomes a decision or a domain outcome.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB refused or failed the request (including throttling and timeouts).
    #[error("DynamoDB request failed")]
    Dynamo(#[source] Box<aws_sdk_dynamodb::Error>),
    /// An item could not be mapped to or from our model.
    #[error("item {what} could not be mapped")]
    Mapping {
        what: &'static str,
        #[source]
        source: serde_dynamo::Error,
    },
    /// An item is missing an attribute we wrote, or has one of the wrong type.
    #[error("item is corrupt: {0}")]
    Corrupt(&'static str),
    /// A batch request kept coming back partly unprocessed (throttling).
    #[error("{0} kept coming back unprocessed")]
    Unprocessed(&'static str),
    /// A write's condition failed: the data changed meanwhile (read it again
    /// before deciding anew; the same request cannot succeed).
    #[error("concurrent update, retry")]
    Conflict,
    /// A transaction was cancelled for a reason other than a failed
    /// condition (the cancellation reason codes, one per action:
    /// `TransactionConflict`, `ThrottlingError`, `None`, ...). Nothing was
    /// written; the same request may succeed when retried.
    #[error("transaction cancelled ({}), retry", .0.join(", "))]
    Cancelled(Vec<String>),
    /// The item to change does not exist.
    #[error("not found")]
    NotFound,
    /// A pagination cursor that this store did not hand out.
    #[error("invalid cursor")]
    InvalidCursor,
}

impl StoreError {
    /// DynamoDB refused the request for throughput: `ThrottlingException`,
    /// `ProvisionedThroughputExceededException` or `RequestLimitExceeded`
    /// (DynamoDB API Reference, Common Errors and each operation's Errors).
    pub fn is_throttle(&self) -> bool {
        use aws_sdk_dynamodb::error::ProvideErrorMetadata;
        match self {
            StoreError::Dynamo(e) => matches!(
                e.code(),
                Some(
                    "ThrottlingException"
                        | "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                )
            ),
            StoreError::Cancelled(reasons) => reasons
                .iter()
                .any(|r| r == "ThrottlingError" || r == "ProvisionedThroughputExceeded"),
            _ => false,
        }
    }
}

impl StoreError {
    /// A write refused because a transaction was changing the same item
    /// (`TransactionConflictException`; DynamoDB Developer Guide,
    /// "Transaction conflict handling"): nothing was decided, and the same
    /// write a moment later may succeed. The SDK does not retry it.
    /// A transaction cancelled for one of its items being changed by
    /// another transaction (`TransactionConflict`) is one too.
    pub fn is_transaction_conflict(&self) -> bool {
        use aws_sdk_dynamodb::error::ProvideErrorMetadata;
        match self {
            StoreError::Dynamo(e) => e.code() == Some("TransactionConflictException"),
            StoreError::Cancelled(reasons) => reasons.iter().any(|r| r == "TransactionConflict"),
            _ => false,
        }
    }
}

/// One page of a listing, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; pass it back to read on.
    pub next: Option<String>,
}

impl<E, R> From<aws_sdk_dynamodb::error::SdkError<E, R>> for StoreError
where
    aws_sdk_dynamodb::Error: From<aws_sdk_dynamodb::error::SdkError<E, R>>,
{
    fn from(err: aws_sdk_dynamodb::error::SdkError<E, R>) -> Self {
        StoreError::Dynamo(Box::new(aws_sdk_dynamodb::Error::from(err)))
    }
}

/// Read a key record by the hash of the presented key.
#[async_trait]
pub trait KeyLookup: Send + Sync {
    /// `consistent` asks for a strongly consistent read (after a conflict).
    async fn key_by_hash(
        &self,
        hash: &KeyHash,
        consistent: bool,
    ) -> Result<Option<KeyRecord>, StoreError>;
}

/// Spend from an allowance: the one conditional write per allowed request.
#[async_trait]
pub trait Admission: Send + Sync {
    /// Try to admit one request as planned. A failed condition comes back as
    /// [`AdmitOutcome::Rejected`] with the item as it was, never as an error.
    async fn admit(&self, plan: &AdmitPlan) -> Result<AdmitOutcome, StoreError>;

    /// Remove usage counters past retention from an allowance item (the
    /// root, or the shard a plan wrote).
    async fn prune_usage(
        &self,
        allowance_id: &str,
        target: Target,
        names: &[String],
    ) -> Result<(), StoreError>;
    /// Grow the allowance to `to` shards (see `allowance-design.md`): one
    /// consistent read of the root and its shards, one transaction
    /// reslicing what is left of its limits in the current period. Returns
    /// the shard count after it; [`StoreError::Conflict`] when another
    /// growth or a record change won the race.
    async fn grow(&self, allowance_id: &str, to: u32, now: Timestamp) -> Result<u32, StoreError>;
    /// The owner's plan, as stamped on its plan allowance (one eventually
    /// consistent `GetItem`, read with the key record: a new subscription
    /// reaches a container within its record cache TTL; a change of a
    /// stamp it knows, on the next request, through [`Admission::spend_plan`]).
    async fn plan_stamp(
        &self,
        owner: &str,
    ) -> Result<Option<plan_admission::PlanStamp>, StoreError>;
    /// Spend one request from every limit of an owner's plan (one
    /// conditional `UpdateItem` on `ALW#owner:<owner>`). A failed condition
    /// comes back as [`PlanOutcome::Rejected`] with the item as it was.
    async fn spend_plan(
        &self,
        spend: &plan_admission::PlanSpend,
    ) -> Result<PlanOutcome, StoreError>;
    /// Give back a spend the key's own allowance then refused (one
    /// `UpdateItem`, conditional on the periods it counted in).
    async fn refund_plan(&self, spend: &plan_admission::PlanSpend) -> Result<(), StoreError>;
    /// Grow an owner's plan allowance, stamped with `current`, to `to`
    /// shards (one consistent read of it and its shards, one transaction
    /// moving every item to the next stamp version with each limit's
    /// unspent units shared out anew). Returns the stamp after it, or the
    /// stamp found if it is no longer `current` (`None`: on no plan);
    /// [`StoreError::Conflict`] when another change won the race.
    async fn grow_plan(
        &self,
        current: &plan_admission::PlanStamp,
        to: u32,
        now: Timestamp,
    ) -> Result<Option<plan_admission::PlanStamp>, StoreError>;
    /// The item an admission plan for `target` writes, as it is now (one
    /// strongly consistent `GetItem`: 1 RCU up to 4 KB, from the
    /// partition's read budget, not its write budget). What a throttled
    /// container reads to learn whether a limit is spent before it retries.
    async fn peek(
        &self,
        allowance_id: &str,
        target: Target,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError>;
    /// Shards 1..=`count` of a sharded allowance as they are now: one
    /// strongly consistent `BatchGetItem` (one request, 1 RCU per shard of
    /// up to 4 KB), so a container refused by one shard learns which others
    /// are spent without a failed write on each. A shard DynamoDB left
    /// unprocessed, or that does not exist, is `None` (unknown); nothing is
    /// retried.
    async fn survey(
        &self,
        allowance_id: &str,
        count: u32,
    ) -> Result<Vec<Option<HashMap<String, AttributeValue>>>, StoreError>;
    /// Add usage detail counted in a container to the root: `counts`
    /// (attribute name, amount) are added, `slots` (attribute name, source
    /// address) set if still free. One `UpdateItem`. With `keep_from`
    /// (`YYYY-MM-DD`) the write returns the whole root (`ALL_NEW`), and the
    /// answer names its usage attributes to prune, as an admission's
    /// [`Granted::stale`] does (a sharded allowance's root, and the
    /// root of a key decided by its plan alone, are written only here).
    async fn flush_usage(
        &self,
        allowance_id: &str,
        counts: &[(String, u64)],
        slots: &[(String, String)],
        keep_from: Option<&str>,
    ) -> Result<StaleUsage, StoreError>;

    /// Count a denial in the key's usage for the day (no condition on limits).
    async fn record_denial(
        &self,
        allowance_id: &str,
        key_id: &KeyId,
        reason: DenyReason,
        day: &str,
    ) -> Result<(), StoreError>;
}

/// What a spend from a plan allowance did.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanOutcome {
    Admitted(plan_admission::PlanGranted),
    /// The condition failed; the item as it was, if it exists.
    Rejected(Option<HashMap<String, AttributeValue>>),
}

/// Leak reports: find reported keys in batches, and mark one leaked.
#[async_trait]
pub trait LeakStore: Send + Sync {
    /// The records of those hashes that exist, read strongly consistently
    /// with `BatchGetItem` (100 keys per request).
    async fn keys_by_hashes(&self, hashes: &[KeyHash]) -> Result<Vec<KeyRecord>, StoreError>;

    /// Replace `old` by `leaked` (its next version, from
    /// [`crate::leak::apply`]) with the audit event, in one transaction; a
    /// key taken out of service stops spending from its allowance exactly as
    /// a revoked one does. Fails with [`StoreError::Conflict`] if `old` is
    /// not the stored version (a concurrent report won).
    async fn mark_leaked(
        &self,
        old: &KeyRecord,
        leaked: &KeyRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
}

/// Issuance and lifecycle of keys. Every change appends its audit event in
/// the same transaction, so the trail cannot miss a change. Issuing reads
/// the owner's plan ([`PlanLookup`]): a key's limits only narrow it.
#[async_trait]
pub trait KeyAdmin: PlanLookup + Send + Sync {
    /// Store a new key with a new allowance of its own. Fails with
    /// [`StoreError::Conflict`] if the hash or id already exists.
    async fn create_key(&self, record: &KeyRecord, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Read a key record by its public id (strongly consistent).
    async fn key_by_id(&self, key_id: &KeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// Revoke a key: its record says so and its allowance stops admitting it,
    /// in one transaction. Returns the updated record.
    async fn revoke(
        &self,
        key_id: &KeyId,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<KeyRecord, StoreError>;

    /// Store `successor` (minted by [`crate::issue::successor`]) and put
    /// `old` into its grace period until `grace_until`, in one transaction.
    /// Fails with [`StoreError::Conflict`] if `old` changed meanwhile (for
    /// example, another rotation won). Returns the updated old record.
    async fn rotate(
        &self,
        old: &KeyRecord,
        successor: &KeyRecord,
        grace_until: i64,
        now: i64,
        actor: &str,
    ) -> Result<KeyRecord, StoreError>;

    /// Retire a rotated key whose grace has passed (status, allowance, audit
    /// event `expired`, in one transaction).
    async fn retire(
        &self,
        record: &KeyRecord,
        now: i64,
        actor: &str,
    ) -> Result<KeyRecord, StoreError>;

    /// Mark a key's delivery to Secrets Manager as finished (clears
    /// `secret_pending`; the version stays).
    async fn settle_secret(&self, record: &KeyRecord) -> Result<KeyRecord, StoreError>;

    /// Hashes of keys in a due-index partition ([`items::DUE_ROTATE`], ...)
    /// due at or before `up_to`, earliest first.
    async fn due(
        &self,
        partition: &str,
        up_to: i64,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<KeyHash>, StoreError>;

    /// Replace `old` by `new` (same key, next version) and carry its limits
    /// to the allowance. Fails with [`StoreError::Conflict`] if `old` is not
    /// the stored version.
    async fn update_key(
        &self,
        old: &KeyRecord,
        new: &KeyRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Keys of one owner, oldest first.
    async fn list_by_owner(
        &self,
        owner: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<KeyRecord>, StoreError>;

    /// The audit trail of a key, oldest first.
    async fn events(
        &self,
        key_id: &KeyId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEvent>, StoreError>;
}
