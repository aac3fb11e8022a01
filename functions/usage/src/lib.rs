//! The `usage` function (HTTP usage routes) and the `usage-report` function
//! (the daily report job).
//!
//! Only wiring lives here: the routes, reports and flags are in
//! [`keygate::usage`]. HTTP requests are read the same way as the key
//! management API's ([`keys::api_request`]).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use keygate::clock::Clock;
use keygate::config::{ConfigError, Deployment};
use keygate::store::{DynamoStore, KeyAdmin, UsageStore};
use keygate::usage::report::Thresholds;
use keygate::usage::service::{DailySummary, ReportError, UsageService};
use keygate::usage::Day;
use lambda_http::{Body, Request, Response};

/// Settings from the environment: the table and the anomaly thresholds.
#[derive(Debug, Clone)]
pub struct Settings {
    pub deployment: Deployment,
    pub thresholds: Thresholds,
}

impl Settings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let deployment = Deployment::from_lookup(&get)?;
        let d = Thresholds::default();
        let ratio = |name: &'static str, default: f64, max: f64| -> Result<f64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0 && *x <= max)
                    .ok_or_else(|| {
                        ConfigError::new(
                            name,
                            format!("a number above 0 and up to {max}, got {v:?}"),
                        )
                    }),
            }
        };
        let count = |name: &'static str, default: u64, max: u64| {
            keygate::config::whole_number(&get, name, default, max)
        };
        Ok(Self {
            deployment,
            thresholds: Thresholds {
                spike_factor: ratio("KEYGATE_SPIKE_FACTOR", d.spike_factor, 1000.0)?,
                spike_floor: count("KEYGATE_SPIKE_FLOOR", d.spike_floor, u64::MAX)?,
                deny_ratio: ratio("KEYGATE_DENY_RATIO", d.deny_ratio, 1.0)?,
                deny_floor: count("KEYGATE_DENY_FLOOR", d.deny_floor, u64::MAX)?,
                quota_warn: ratio("KEYGATE_QUOTA_WARN", d.quota_warn, 1.0)?,
                unused_days: count("KEYGATE_UNUSED_DAYS", u64::from(d.unused_days), 365)? as u32,
            },
        })
    }
}

/// Production wiring: one client per container.
pub async fn build<C: Clock>(
    get: impl Fn(&str) -> Option<String>,
    clock: C,
) -> Result<UsageService<DynamoStore, C>, ConfigError> {
    let settings = Settings::from_lookup(get)?;
    let sdk = keygate::sdk::load(settings.deployment.tls_roots).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        settings.deployment.table,
    );
    Ok(UsageService::new(store, clock, settings.thresholds))
}

/// Serve one HTTP request.
pub async fn handle<S, C>(service: &UsageService<S, C>, req: Request) -> Response<Body>
where
    S: KeyAdmin + UsageStore,
    C: Clock,
{
    let answer = keygate::usage::http::route(service, keys::api_request(&req)).await;
    tracing::info!(method = %req.method(), path = req.uri().path(), status = answer.status, "usage request");
    keys::respond(answer.status, answer.content_type(), answer.text())
}

/// The scheduled event may name the day to report in its `detail`
/// (`{"day": "YYYY-MM-DD"}`), for a re-run; otherwise yesterday.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("detail.day must be a date as YYYY-MM-DD")]
    BadDay,
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// One run of the daily job.
pub async fn run_daily<S, C>(
    service: &UsageService<S, C>,
    event: &EventBridgeEvent,
) -> Result<DailySummary, RunError>
where
    S: KeyAdmin + UsageStore,
    C: Clock,
{
    let day = match event.detail.get("day") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(v.as_str().and_then(Day::parse).ok_or(RunError::BadDay)?),
    };
    let summary = service.daily(day).await?;
    tracing::info!(summary = %serde_json::to_string(&summary).unwrap_or_default(), "usage reports done");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_and_check_thresholds() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let s = Settings::from_lookup(env(&[
            ("KEYGATE_TABLE", "t"),
            ("KEYGATE_SPIKE_FACTOR", "2.5"),
            ("KEYGATE_UNUSED_DAYS", "14"),
        ]))
        .unwrap();
        assert_eq!(s.thresholds.spike_factor, 2.5);
        assert_eq!(s.thresholds.unused_days, 14);
        assert_eq!(s.thresholds.deny_ratio, 0.5);
        for bad in [
            ("KEYGATE_DENY_RATIO", "1.5"),
            ("KEYGATE_SPIKE_FACTOR", "NaN"),
            ("KEYGATE_UNUSED_DAYS", "-1"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([("KEYGATE_TABLE", "t"), bad]));
            assert!(Settings::from_lookup(env(pairs)).is_err(), "{bad:?}");
        }
    }
}
