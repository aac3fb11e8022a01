//! What the plan routes answer.

use serde::Serialize;

use crate::clock::Timestamp;

use super::model::{Plan, PlanChange, Subscription};

/// One page of plans, by id.
#[derive(Debug, Clone, Serialize)]
pub struct PlanPage {
    pub plans: Vec<Plan>,
    pub next_cursor: Option<String>,
}

/// An owner's subscription: the plan it is on (`null`: none), since when,
/// and the changes that led there (oldest first, the current one last).
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionView {
    pub owner: String,
    pub plan: Option<Plan>,
    /// When the current plan (or no plan) began; `null` if never subscribed.
    pub since: Option<Timestamp>,
    /// The subscription's version: 0 if never subscribed.
    pub version: u64,
    pub history: Vec<PlanChange>,
}

impl SubscriptionView {
    pub fn of(owner: &str, sub: Option<&Subscription>, plan: Option<Plan>) -> Self {
        Self {
            owner: owner.to_owned(),
            plan,
            since: sub.map(|s| s.since),
            version: sub.map_or(0, |s| s.version),
            history: sub.map(|s| s.history.clone()).unwrap_or_default(),
        }
    }
}
