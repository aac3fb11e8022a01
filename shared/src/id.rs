//! Public, non-secret identifiers: key ids and allowance ids.
//!
//! A key id is random (128 bits), not derived from the key or its hash, so
//! showing it in dashboards, logs and URLs reveals nothing about the key.

use std::fmt;

use rand::rngs::OsRng;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};

use crate::base62;

const ID_BYTES: usize = 16;
const ID_LEN: usize = base62::width_for(ID_BYTES);

/// Public identifier of a key: `key_` then 22 base62 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    pub const PREFIX: &'static str = "key_";

    /// A fresh random id.
    ///
    /// # Panics
    /// Only if the OS CSPRNG is unavailable.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the OS CSPRNG must be available");
        let body = base62::encode_fixed(&bytes, ID_LEN).expect("16 bytes fit 22 characters");
        Self(format!("{}{body}", Self::PREFIX))
    }

    /// Parse an id from untrusted input (a URL path, a CLI argument).
    pub fn parse(text: &str) -> Option<Self> {
        let body = text.strip_prefix(Self::PREFIX)?;
        (body.len() == ID_LEN && base62::decode_fixed(body, ID_BYTES).is_some())
            .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let id = KeyId::generate();
        assert_eq!(KeyId::parse(id.as_str()), Some(id.clone()));
        assert_ne!(id, KeyId::generate());
        assert_eq!(KeyId::parse("key_short"), None);
        assert_eq!(KeyId::parse(&id.as_str().replace("key_", "kex_")), None);
        assert_eq!(KeyId::parse("key_!!!!!!!!!!!!!!!!!!!!!!"), None);
    }
}
