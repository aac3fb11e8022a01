//! Deployment settings every function reads from its environment.

use crate::key::{KeyEnv, KeyFormat};

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

/// The table and the key format of a deployment.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub table: String,
    pub format: KeyFormat,
}

impl Deployment {
    /// Read `KEYGATE_TABLE` (required), `KEYGATE_KEY_PREFIX` (`ak`) and
    /// `KEYGATE_KEY_ENV` (`live`) through `get` (the process environment in
    /// production, a map in tests).
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
        Ok(Self { table, format })
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
