//! GitHub's signing keys, fetched from the key endpoint (a deployment
//! setting, `KEYGATE_GITHUB_KEYS_URL`) and cached in the container. A
//! report naming a key not in the cache refetches the list (GitHub rotates
//! its keys), at most once per [`REFETCH_SECONDS`], so unknown identifiers
//! cannot make us hammer the endpoint.

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::clock::{Clock, Timestamp};

use super::signature::{KeyListError, PublicKeys};

/// Fewest seconds between two fetches of the list.
pub const REFETCH_SECONDS: i64 = 60;
/// Oldest list used without refetching.
pub const MAX_AGE_SECONDS: i64 = 3600;

/// Where the key list comes from (HTTPS in production, a local stand-in in
/// tests).
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The list's raw JSON.
    async fn fetch(&self) -> Result<Vec<u8>, KeyListError>;
}

/// The cached list.
pub struct KeyCache<F, C> {
    source: F,
    clock: C,
    cached: Mutex<Option<(PublicKeys, Timestamp)>>,
}

impl<F: KeySource, C: Clock> KeyCache<F, C> {
    pub fn new(source: F, clock: C) -> Self {
        Self {
            source,
            clock,
            cached: Mutex::new(None),
        }
    }

    /// The list to verify a report signed by `key_id` with.
    pub async fn keys_for(&self, key_id: Option<&str>) -> Result<PublicKeys, KeyListError> {
        let now = self.clock.now();
        let mut cached = self.cached.lock().await;
        if let Some((keys, at)) = cached.as_ref() {
            let known = key_id.is_none_or(|id| keys.knows(id.trim()));
            let fresh = now - at < MAX_AGE_SECONDS;
            if (known && fresh) || now - at < REFETCH_SECONDS {
                return Ok(keys.clone());
            }
        }
        let keys = PublicKeys::parse(&self.source.fetch().await?)?;
        *cached = Some((keys.clone(), now));
        Ok(keys)
    }
}
