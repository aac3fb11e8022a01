//! CloudWatch metrics for every decision, as Embedded Metric Format log
//! lines: CloudWatch extracts them from the function's logs, so dashboards
//! and alarms need no API call on the request path.
//!
//! Per decision: `Decisions` (dimension `Outcome`: `allow` or `deny`),
//! `Denials` (dimension `Reason`) and `DecisionLatency` (milliseconds). The
//! handler records them through the `metrics` facade; `main.rs` flushes one
//! EMF document per invocation.

use metrics_cloudwatch_embedded::{Builder, Collector};

/// The namespace metrics are published under unless configured.
pub const DEFAULT_NAMESPACE: &str = "keygate";

/// Install the EMF collector as the process's metrics recorder.
pub fn init(namespace: &str) -> Result<&'static Collector, String> {
    Builder::new()
        .cloudwatch_namespace(namespace.to_owned())
        .init()
        .map_err(|e| e.to_string())
}

/// Count one decision. A no-op until [`init`] ran.
pub fn record(allowed: bool, reason: Option<&'static str>, latency_us: u64) {
    let outcome = if allowed { "allow" } else { "deny" };
    metrics::counter!("Decisions", "Outcome" => outcome).increment(1);
    if let Some(reason) = reason {
        metrics::counter!("Denials", "Reason" => reason).increment(1);
    }
    metrics::histogram!("DecisionLatency").record(latency_us as f64 / 1000.0);
}
