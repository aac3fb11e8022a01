//! Settings from the function's environment, read once per container.

use std::time::Duration;

use keygate::authorize::AuthConfig;
pub use keygate::config::ConfigError;
use keygate::config::Deployment;
use keygate::key::KeyFormat;
use keygate::sdk::TlsRoots;

use crate::handler::Settings;
use crate::response::V2Response;

/// Everything the authorizer reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub format: KeyFormat,
    pub tls_roots: TlsRoots,
    pub settings: Settings,
    pub auth: AuthConfig,
}

impl Config {
    /// Read from a lookup function (the process environment in `main`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let Deployment {
            table,
            format,
            tls_roots,
        } = Deployment::from_lookup(&get)?;
        let v2_response = keygate::config::one_of(
            &get,
            "KEYGATE_V2_RESPONSE",
            &[("simple", V2Response::Simple), ("iam", V2Response::Iam)],
        )?;
        let number = |name: &'static str, default: u64, max: u64| {
            keygate::config::whole_number(&get, name, default, max)
        };
        let deadline_ms = number("KEYGATE_DEADLINE_MS", 1500, 10_000)?;
        let cache_ttl = number("KEYGATE_CACHE_TTL_SECONDS", 10, 300)?;
        Ok(Self {
            table,
            format,
            tls_roots,
            settings: Settings {
                v2_response,
                deadline: Duration::from_millis(deadline_ms),
            },
            auth: AuthConfig {
                cache_ttl: cache_ttl as i64,
                ..AuthConfig::default()
            },
        })
    }

    /// SDK timeouts and retries that fit inside the decision deadline.
    pub fn sdk_timeouts(
        &self,
    ) -> (
        aws_config::timeout::TimeoutConfig,
        aws_config::retry::RetryConfig,
    ) {
        let deadline = self.settings.deadline;
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(deadline / 4)
            .operation_attempt_timeout(deadline / 3)
            .operation_timeout(deadline)
            .build();
        let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(2);
        (timeouts, retries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_errors() {
        let c = from(&[("KEYGATE_TABLE", "t")]).unwrap();
        assert_eq!(c.format.prefix(), "ak");
        assert_eq!(c.settings.v2_response, V2Response::Simple);
        assert_eq!(c.settings.deadline, Duration::from_millis(1500));
        assert_eq!(c.tls_roots, TlsRoots::Amazon);
        assert_eq!(from(&[]).unwrap_err().name, "KEYGATE_TABLE");
        assert_eq!(
            from(&[("KEYGATE_TABLE", "t"), ("KEYGATE_KEY_ENV", "prod")])
                .unwrap_err()
                .name,
            "KEYGATE_KEY_ENV"
        );
        let platform = [("KEYGATE_TABLE", "t"), ("KEYGATE_TLS_ROOTS", "platform")];
        assert_eq!(from(&platform).unwrap().tls_roots, TlsRoots::Platform);
        // A misspelt value refuses to start rather than quietly meaning "amazon".
        assert_eq!(
            from(&[("KEYGATE_TABLE", "t"), ("KEYGATE_TLS_ROOTS", "Platform")])
                .unwrap_err()
                .name,
            "KEYGATE_TLS_ROOTS"
        );
        assert_eq!(
            from(&[("KEYGATE_TABLE", "t"), ("KEYGATE_DEADLINE_MS", "99999")])
                .unwrap_err()
                .name,
            "KEYGATE_DEADLINE_MS"
        );
    }
}
