//! Logging setup shared by every function: one JSON object per line, level
//! from `RUST_LOG`, fields flattened so CloudWatch Logs Insights can query them.

/// Install the JSON subscriber. Call once, first thing in `main`.
pub fn init() {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
}
