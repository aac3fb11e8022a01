//! Deployment settings every function reads from its environment.

use crate::key::{KeyEnv, KeyFormat};
use crate::sdk::TlsRoots;

/// A missing or invalid setting: the container refuses to start.
#[derive(Debug, thiserror::Error)]
#[error("setting {name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(name: &'static str, problem: impl Into<String>) -> Self {
        Self {
            name,
            problem: problem.into(),
        }
    }
}

/// The table, the key format and the TLS roots of a deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub table: String,
    pub format: KeyFormat,
    pub tls_roots: TlsRoots,
}

impl Deployment {
    /// Read `KEYGATE_TABLE` (required), `KEYGATE_KEY_PREFIX` (`ak`),
    /// `KEYGATE_KEY_ENV` (`live`) and `KEYGATE_TLS_ROOTS` (`amazon`) through
    /// `get` (the process environment in production, a map in tests).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table =
            get("KEYGATE_TABLE").ok_or_else(|| ConfigError::new("KEYGATE_TABLE", "required"))?;
        let prefix = get("KEYGATE_KEY_PREFIX").unwrap_or_else(|| "ak".into());
        let env = match get("KEYGATE_KEY_ENV").as_deref().unwrap_or("live") {
            "live" => KeyEnv::Live,
            "test" => KeyEnv::Test,
            other => {
                return Err(ConfigError::new(
                    "KEYGATE_KEY_ENV",
                    format!("live or test, got {other:?}"),
                ))
            }
        };
        let format = KeyFormat::new(&prefix, env)
            .map_err(|e| ConfigError::new("KEYGATE_KEY_PREFIX", e.to_string()))?;
        let tls_roots = match get("KEYGATE_TLS_ROOTS").as_deref().unwrap_or("amazon") {
            "amazon" => TlsRoots::Amazon,
            "platform" => TlsRoots::Platform,
            other => {
                return Err(ConfigError::new(
                    "KEYGATE_TLS_ROOTS",
                    format!("amazon or platform, got {other:?}"),
                ))
            }
        };
        Ok(Self {
            table,
            format,
            tls_roots,
        })
    }
}

/// A whole-number setting read through `get`: `default` when unset, an error
/// naming the setting when it is not a number up to `max`.
pub fn whole_number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| *n <= max).ok_or_else(|| {
            ConfigError::new(name, format!("a whole number up to {max}, got {v:?}"))
        }),
    }
}
