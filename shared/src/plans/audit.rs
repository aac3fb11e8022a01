//! The audit trail of plans and subscriptions. Key events are per key
//! (`AUDIT#<key_id>`); a plan's changes and an owner's subscription
//! changes concern no key, so they have trails of their own beside them:
//! `AUDIT#plan:<plan_id>` and `AUDIT#owner:<owner>` (a key id always starts
//! with `key_`, so the partitions never meet). Each event is written in the
//! same transaction as the change it records.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::id::KeyId;

/// What happened to a plan or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    PlanCreated,
    PlanUpdated,
    /// An owner was put on a plan, moved to another, or taken off one.
    SubscriptionChanged,
}

/// One immutable audit record of a plan or an owner's subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanEvent {
    /// `plan:<plan_id>` or `owner:<owner>`.
    pub subject: String,
    pub action: PlanAction,
    /// Key id of the caller, or `operator:<tool>`.
    pub actor: String,
    pub at: Timestamp,
    /// The plan's or the subscription's version after the change.
    pub version: u64,
    /// What changed, as JSON text.
    pub change: String,
    pub event_id: String,
}

impl PlanEvent {
    pub fn new(
        subject: String,
        action: PlanAction,
        actor: &str,
        at: Timestamp,
        version: u64,
        change: serde_json::Value,
    ) -> Self {
        Self {
            subject,
            action,
            actor: actor.to_owned(),
            at,
            version,
            change: change.to_string(),
            event_id: KeyId::generate().as_str()[KeyId::PREFIX.len()..].to_owned(),
        }
    }

    /// The trail of a plan.
    pub fn plan_subject(plan_id: &str) -> String {
        format!("plan:{plan_id}")
    }

    /// The trail of an owner's subscription.
    pub fn owner_subject(owner: &str) -> String {
        format!("owner:{owner}")
    }

    /// Sort key: time, then version, as for key events.
    pub fn sort_key(&self) -> String {
        format!("{:012}#{:09}#{}", self.at, self.version, self.event_id)
    }
}
