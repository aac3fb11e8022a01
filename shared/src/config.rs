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
        let env = one_of(
            get,
            "KEYGATE_KEY_ENV",
            &[("live", KeyEnv::Live), ("test", KeyEnv::Test)],
        )?;
        let format = KeyFormat::new(&prefix, env)
            .map_err(|e| ConfigError::new("KEYGATE_KEY_PREFIX", e.to_string()))?;
        let tls_roots = one_of(
            get,
            "KEYGATE_TLS_ROOTS",
            &[
                ("amazon", TlsRoots::Amazon),
                ("platform", TlsRoots::Platform),
            ],
        )?;
        Ok(Self {
            table,
            format,
            tls_roots,
        })
    }
}

/// A setting with a fixed set of values, read through `get`: the first
/// choice when unset, an error listing the choices for anything else.
pub fn one_of<T: Copy>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(value) = get(name) else {
        return choices
            .first()
            .map(|(_, v)| *v)
            .ok_or_else(|| ConfigError::new(name, "no choices"));
    };
    choices
        .iter()
        .find(|(text, _)| *text == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(text, _)| *text).collect();
            ConfigError::new(name, format!("{}, got {value:?}", names.join(" or ")))
        })
}

/// `KEYGATE_ROTATION_DAYS` (template parameter `RotationDays`): days between
/// scheduled rotations of keys issued without a `rotation_days` of their own,
/// `0` for never; [`crate::model::DEFAULT_ROTATION_DAYS`] when unset, an error
/// above [`crate::model::MAX_ROTATION_DAYS`].
pub fn rotation_days(get: &impl Fn(&str) -> Option<String>) -> Result<u32, ConfigError> {
    let days = whole_number(
        get,
        "KEYGATE_ROTATION_DAYS",
        u64::from(crate::model::DEFAULT_ROTATION_DAYS),
        u64::from(crate::model::MAX_ROTATION_DAYS),
    )?;
    // Bounded above by a u32 constant.
    Ok(u32::try_from(days).unwrap_or(crate::model::MAX_ROTATION_DAYS))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_defaults_to_the_first_choice_and_names_them_all_when_wrong() {
        let choices = [
            ("amazon", TlsRoots::Amazon),
            ("platform", TlsRoots::Platform),
        ];
        let unset = |_: &str| None;
        assert_eq!(one_of(&unset, "X", &choices).unwrap(), TlsRoots::Amazon);
        let set = |_: &str| Some("platform".to_owned());
        assert_eq!(one_of(&set, "X", &choices).unwrap(), TlsRoots::Platform);
        let wrong = |_: &str| Some("Platform".to_owned());
        let err = one_of(&wrong, "X", &choices).unwrap_err();
        assert_eq!(err.name, "X");
        assert_eq!(err.problem, r#"amazon or platform, got "Platform""#);
    }

    #[test]
    fn rotation_days_is_read_bounded_and_zero_means_never() {
        let unset = |_: &str| None;
        assert_eq!(
            rotation_days(&unset).unwrap(),
            crate::model::DEFAULT_ROTATION_DAYS
        );
        let never = |_: &str| Some("0".to_owned());
        assert_eq!(rotation_days(&never).unwrap(), 0);
        let weekly = |_: &str| Some("7".to_owned());
        assert_eq!(rotation_days(&weekly).unwrap(), 7);
        for bad in ["-1", "ninety", "99999999"] {
            let get = |_: &str| Some(bad.to_owned());
            assert_eq!(
                rotation_days(&get).unwrap_err().name,
                "KEYGATE_ROTATION_DAYS"
            );
        }
    }
}
