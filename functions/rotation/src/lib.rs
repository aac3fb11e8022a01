//! The rotation function: one sweep per EventBridge schedule tick.
//!
//! The work is [`keygate::rotation::sweep`]; this crate reads settings,
//! turns the invocation's deadline into a budget, and reports. A sweep with
//! failed keys ends the invocation in an error (after every other key was
//! handled), so Lambda retries it and then hands it to the on-failure
//! destination configured in the template. Every step is idempotent, so the
//! retries are safe.

use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::eventbridge::EventBridgeEvent;
use keygate::clock::Clock;
use keygate::config::{ConfigError, Deployment};
use keygate::key::KeyFormat;
use keygate::rotation::{sweep, Budget, Delivery, Summary};
use keygate::secrets::SecretSink;
use keygate::store::{KeyAdmin, KeyLookup, StoreError};

/// Who the audit trail names for scheduled work.
pub const ACTOR: &str = "system:rotation";

/// Settings from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub deployment: Deployment,
    pub secret_prefix: String,
    pub grace_seconds: i64,
    pub max_keys: usize,
    /// Stop starting keys this long before the invocation's deadline.
    pub margin: Duration,
}

impl Settings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let deployment = Deployment::from_lookup(&get)?;
        let number = |name: &'static str, default: u64, max: u64| {
            keygate::config::whole_number(&get, name, default, max)
        };
        Ok(Self {
            deployment,
            secret_prefix: get("KEYGATE_SECRET_PREFIX").unwrap_or_else(|| "keygate".into()),
            grace_seconds: number("KEYGATE_GRACE_HOURS", 24, 24 * 30)? as i64 * 3600,
            max_keys: number("KEYGATE_ROTATION_MAX_KEYS", 5000, 100_000)? as usize,
            margin: Duration::from_secs(number("KEYGATE_ROTATION_MARGIN_SECONDS", 15, 600)?),
        })
    }
}

/// A sweep that left failed keys: the invocation fails with the summary.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{} keys failed: {}", .0.failed.len(), serde_json::to_string(.0).unwrap_or_default())]
    KeysFailed(Box<Summary>),
    #[error("listing due keys failed")]
    Store(#[from] StoreError),
}

/// One sweep, ending before `deadline` less the margin.
pub async fn run<S, X, C>(
    store: &S,
    secrets: &X,
    clock: &C,
    format: &KeyFormat,
    settings: &Settings,
    deadline: SystemTime,
    event: &EventBridgeEvent,
) -> Result<Summary, RunError>
where
    S: KeyAdmin + KeyLookup,
    X: SecretSink,
    C: Clock,
{
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(settings.margin);
    let budget = Budget {
        until: Instant::now() + left,
        max_keys: settings.max_keys,
        grace_seconds: settings.grace_seconds,
    };
    let delivery = Delivery {
        secrets,
        prefix: &settings.secret_prefix,
    };
    let summary = sweep(store, clock, format, &delivery, budget, ACTOR).await?;
    tracing::info!(
        event_id = event.id.as_deref().unwrap_or(""),
        rotated = summary.rotated.len(),
        retired = summary.retired.len(),
        delivered = summary.delivered.len(),
        skipped = summary.skipped.len(),
        failed = summary.failed.len(),
        more = summary.more,
        summary = %serde_json::to_string(&summary).unwrap_or_default(),
        "rotation sweep"
    );
    if summary.failed.is_empty() {
        Ok(summary)
    } else {
        Err(RunError::KeysFailed(Box::new(summary)))
    }
}
