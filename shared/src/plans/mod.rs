//! Plans: named, versioned bundles of limits (a per-N-seconds rate, a
//! daily and a monthly quota) that every key of a subscribed owner spends
//! from together.
//!
//! - [`model`]: plans, their limits and the narrowing rule for keys,
//!   subscriptions with their bounded history, the allowance stamp;
//! - [`audit`]: the audit trail of plans and subscriptions;
//! - [`request`]: strict request bodies and their validation;
//! - [`service`]: the operations, their permissions, and the check that a
//!   key's own limits only narrow its owner's plan;
//! - [`view`]: what the routes answer;
//! - [`http`]: the routes, served beside the key routes.
//!
//! What is enforced here: who may change plans and subscriptions, and the
//! stamp on each subscribed owner's plan allowance (`ALW#owner:<owner>`,
//! see [`crate::store::items::stamp`]), rewritten on every change before
//! the answer. Spending from that allowance is the authorizer's.

pub mod audit;
pub mod http;
pub mod model;
pub mod request;
pub mod service;
pub mod view;

pub use model::{Plan, PlanLimits, PlanStamp, Subscription};
pub use service::PlanService;
