//! SHA-256 of the full key: the only form in which a key is stored.
//!
//! A key carries 256 bits of CSPRNG output, so a fast unsalted hash is the
//! right tool (as for session tokens): there is nothing to brute-force, and
//! the hash doubles as the lookup key in DynamoDB.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::key::ApiKey;

/// Lower-case hex SHA-256 of a key's full text.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn of(key: &ApiKey) -> Self {
        Self(hex::encode(Sha256::digest(key.expose().as_bytes())))
    }

    /// SHA-256 of a text that should be a key (read back from a secret).
    /// `None` if it is not shaped like one of our keys.
    pub fn of_text(text: &str) -> Option<Self> {
        crate::key::verify_any(text).ok()?;
        Some(Self(hex::encode(Sha256::digest(text.as_bytes()))))
    }

    /// Wrap a hash read from the store or from a trusted record.
    pub fn from_hex(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyHash {
    // Hashes are not secrets, but they are lookup handles: keep them out of
    // logs unless asked for explicitly, showing only a short prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}...)", &self.0[..self.0.len().min(8)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{KeyEnv, KeyFormat};

    #[test]
    fn hash_is_sha256_hex_of_the_full_text() {
        let fmt = KeyFormat::new("ak", KeyEnv::Test).unwrap();
        let key = fmt.generate();
        let hash = KeyHash::of(&key);
        assert_eq!(hash.as_str().len(), 64);
        assert_eq!(hash, KeyHash::of(&fmt.parse(key.expose()).unwrap()));
        assert_ne!(hash, KeyHash::of(&fmt.generate()));
        assert!(!hash.as_str().contains(key.expose()));
        // Known vector: SHA-256("abc").
        assert_eq!(
            hex::encode(Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
