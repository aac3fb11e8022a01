//! The portal's bearer secrets: sign-in link tokens and session ids.
//!
//! Each is 32 bytes from the operating system's CSPRNG, written as 43
//! characters of URL-safe base64 without padding. Only its SHA-256 (hex) is
//! stored; the CSRF token of a session is derived from the session id, so
//! it needs no storage at all and only a holder of the session cookie can
//! compute it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::{Digest, Sha256};

/// Random bytes per secret (256 bits).
const BYTES: usize = 32;
/// Its length as unpadded base64url.
pub const SECRET_LEN: usize = 43;

/// A link token or session id. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A fresh secret.
    ///
    /// # Panics
    /// Only if the operating system cannot provide randomness (no secret is
    /// better than a guessable one).
    pub fn generate() -> Self {
        let mut bytes = [0u8; BYTES];
        OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's CSPRNG is available");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A secret as a client sent it: exactly [`SECRET_LEN`] base64url
    /// characters, else `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == SECRET_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(text.to_owned()))
    }

    /// The text, for the one place it goes (a URL fragment, a cookie).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the text, lower-case hex: what the store keeps.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The CSRF token of the session this secret identifies (SHA-256 of a
    /// domain-separated input, base64url).
    pub fn csrf(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"keygate-portal-csrf\0");
        h.update(self.0.as_bytes());
        URL_SAFE_NO_PAD.encode(h.finalize())
    }

    /// Whether `sent` is this session's CSRF token. Compares digests, so
    /// the time taken says nothing about how much of the token matched.
    pub fn csrf_matches(&self, sent: &str) -> bool {
        Sha256::digest(self.csrf().as_bytes()) == Sha256::digest(sent.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_and_differ() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_ne!(a, b);
        assert_eq!(Secret::parse(a.expose()), Some(a.clone()));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
        ] {
            assert_eq!(Secret::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn csrf_is_bound_to_the_session() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert!(a.csrf_matches(&a.csrf()));
        assert!(!a.csrf_matches(&b.csrf()));
        assert!(!a.csrf_matches(""));
        assert_ne!(a.csrf(), a.expose());
    }
}
