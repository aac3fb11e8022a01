//! The portal's deployment settings, from the function's environment.

use crate::config::{whole_number, ConfigError};

/// Seconds a sign-in link stays valid (it is meant to be opened at once,
/// by a redirect).
pub const LINK_SECONDS: i64 = 600;
/// Default session length: one hour.
pub const DEFAULT_SESSION_SECONDS: i64 = 3600;
/// Longest session: 12 hours.
pub const MAX_SESSION_SECONDS: u64 = 43_200;
/// Shortest session: 5 minutes.
pub const MIN_SESSION_SECONDS: u64 = 300;

/// How the portal is deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSettings {
    /// Seconds a session lasts (`KEYGATE_PORTAL_SESSION_SECONDS`).
    pub session_seconds: i64,
    /// The portal's path as browsers see it (`KEYGATE_PORTAL_PATH`, e.g.
    /// `/prod/portal` on a staged API Gateway URL): the session cookie's
    /// `Path` and the links' path. Default `/portal`.
    pub path: String,
    /// An OpenAPI document the API reference shows instead of the embedded
    /// one (`KEYGATE_PORTAL_SPEC_URL`, https).
    pub spec_url: Option<String>,
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self {
            session_seconds: DEFAULT_SESSION_SECONDS,
            path: "/portal".into(),
            spec_url: None,
        }
    }
}

impl PortalSettings {
    /// Read the settings.
    ///
    /// # Errors
    /// A session length outside [`MIN_SESSION_SECONDS`]..=[`MAX_SESSION_SECONDS`], a path that does not
    /// start with `/` or holds characters a cookie path cannot, or a spec
    /// URL that is not `https://`.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut s = Self::default();
        let name = "KEYGATE_PORTAL_SESSION_SECONDS";
        let seconds = whole_number(
            get,
            name,
            DEFAULT_SESSION_SECONDS as u64,
            MAX_SESSION_SECONDS,
        )?;
        if seconds < MIN_SESSION_SECONDS {
            return Err(ConfigError::new(
                name,
                format!("at least {MIN_SESSION_SECONDS} seconds, got {seconds}"),
            ));
        }
        s.session_seconds = seconds as i64;
        if let Some(path) = get("KEYGATE_PORTAL_PATH").filter(|p| !p.is_empty()) {
            let ok = path.starts_with('/')
                && !path.ends_with('/')
                && path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
            if !ok {
                return Err(ConfigError::new(
                    "KEYGATE_PORTAL_PATH",
                    "must be a path like /prod/portal (no trailing slash)",
                ));
            }
            s.path = path;
        }
        if let Some(url) = get("KEYGATE_PORTAL_SPEC_URL").filter(|u| !u.is_empty()) {
            if !url.starts_with("https://") || url.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(ConfigError::new(
                    "KEYGATE_PORTAL_SPEC_URL",
                    "must be an https:// URL",
                ));
            }
            s.spec_url = Some(url);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<PortalSettings, ConfigError> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PortalSettings::from_lookup(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(read(&[]).unwrap(), PortalSettings::default());
        let s = read(&[
            ("KEYGATE_PORTAL_SESSION_SECONDS", "900"),
            ("KEYGATE_PORTAL_PATH", "/prod/portal"),
            (
                "KEYGATE_PORTAL_SPEC_URL",
                "https://docs.example.com/api.yaml",
            ),
        ])
        .unwrap();
        assert_eq!(s.session_seconds, 900);
        assert_eq!(s.path, "/prod/portal");
        assert_eq!(
            s.spec_url.as_deref(),
            Some("https://docs.example.com/api.yaml")
        );
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (name, value) in [
            ("KEYGATE_PORTAL_SESSION_SECONDS", "60"),
            ("KEYGATE_PORTAL_SESSION_SECONDS", "86400"),
            ("KEYGATE_PORTAL_SESSION_SECONDS", "an hour"),
            ("KEYGATE_PORTAL_PATH", "portal"),
            ("KEYGATE_PORTAL_PATH", "/portal/"),
            ("KEYGATE_PORTAL_PATH", "/por tal"),
            (
                "KEYGATE_PORTAL_SPEC_URL",
                "http://docs.example.com/api.yaml",
            ),
        ] {
            assert_eq!(read(&[(name, value)]).unwrap_err().name, name, "{value}");
        }
    }
}
