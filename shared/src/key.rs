//! API key format: generation from the OS CSPRNG and offline validation.
//!
//! A key reads `<prefix>_<env>_<body><checksum>`, for example
//! `ak_live_3hQ...Zt0aB1c9`:
//! - `prefix`: per deployment, 2 to 12 lower-case letters or digits, starting
//!   with a letter (default `ak`);
//! - `env`: `live` or `test`;
//! - `body`: 256 bits from the operating system's CSPRNG, 43 base62 characters;
//! - `checksum`: CRC32 of everything before it, 6 base62 characters.
//!
//! The checksum lets the authorizer reject a mistyped, truncated or forged key
//! with no database request, and lets secret scanners confirm a match. CRC32
//! detects every burst error up to 32 bits, so every single-character change
//! fails it (a property test proves it for 100,000 keys).
//!
//! The plaintext lives only in [`ApiKey`], whose `Debug` and `Display`
//! never print it.

use std::fmt;

use rand::rngs::OsRng;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};

use crate::base62;

/// Bytes of secret in a key body.
pub const SECRET_BYTES: usize = 32;
/// Characters of the base62 body.
pub const BODY_LEN: usize = base62::width_for(SECRET_BYTES);
/// Characters of the base62 CRC32 checksum.
pub const CHECKSUM_LEN: usize = base62::width_for(4);
/// Longest key we ever parse: 12 (prefix) + 1 + 4 + 1 + 43 + 6.
pub const MAX_KEY_LEN: usize = 12 + 1 + 4 + 1 + BODY_LEN + CHECKSUM_LEN;

/// The regular expression secret scanners use to find our keys in code and logs.
pub const SCANNER_REGEX: &str = r"\b[a-z][a-z0-9]{1,11}_(?:live|test)_[0-9A-Za-z]{49}\b";

/// Environment a key belongs to; `test` keys never work against `live` deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyEnv {
    Live,
    Test,
}

impl KeyEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyEnv::Live => "live",
            KeyEnv::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "live" => Some(KeyEnv::Live),
            "test" => Some(KeyEnv::Test),
            _ => None,
        }
    }
}

/// Why a presented string is not one of our keys. All are detected offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("key length is wrong")]
    Length,
    #[error("key structure is wrong")]
    Structure,
    #[error("key prefix is not this deployment's")]
    Prefix,
    #[error("key environment is not this deployment's")]
    Env,
    #[error("key contains characters outside base62")]
    Alphabet,
    #[error("key checksum does not match")]
    Checksum,
}

/// Why a configured prefix is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key prefix must be 2-12 lower-case letters or digits starting with a letter, got {0:?}")]
pub struct InvalidPrefix(pub String);

/// What a deployment's keys look like: its prefix and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFormat {
    prefix: String,
    env: KeyEnv,
}

impl KeyFormat {
    pub fn new(prefix: &str, env: KeyEnv) -> Result<Self, InvalidPrefix> {
        if !valid_prefix(prefix) {
            return Err(InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            env,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn env(&self) -> KeyEnv {
        self.env
    }

    fn head(&self) -> String {
        format!("{}_{}_", self.prefix, self.env.as_str())
    }

    /// A fresh key with 256 bits from the OS CSPRNG.
    ///
    /// # Panics
    /// Only if the operating system cannot provide randomness, in which case no
    /// key may be issued at all.
    pub fn generate(&self) -> ApiKey {
        let mut secret = [0u8; SECRET_BYTES];
        OsRng
            .try_fill_bytes(&mut secret)
            .expect("the OS CSPRNG must be available to issue keys");
        let body = base62::encode_fixed(&secret, BODY_LEN).expect("32 bytes fit 43 characters");
        let mut text = self.head();
        text.push_str(&body);
        let checksum = checksum(&text);
        text.push_str(&checksum);
        ApiKey(text)
    }

    /// Validate a presented key offline: structure, prefix, environment,
    /// alphabet and checksum. No I/O.
    pub fn parse(&self, presented: &str) -> Result<ApiKey, KeyFormatError> {
        let (prefix, env, tail) = split(presented)?;
        if prefix != self.prefix {
            return Err(KeyFormatError::Prefix);
        }
        if KeyEnv::parse(env) != Some(self.env) {
            return Err(KeyFormatError::Env);
        }
        verify_tail(presented, tail)?;
        Ok(ApiKey(presented.to_owned()))
    }
}

/// Check the format of a key of *any* prefix and environment (for scanners and tools).
/// Accepts exactly the keys some deployment's [`KeyFormat::parse`] accepts.
pub fn verify_any(presented: &str) -> Result<(), KeyFormatError> {
    let (prefix, env, tail) = split(presented)?;
    if !valid_prefix(prefix) {
        return Err(KeyFormatError::Prefix);
    }
    KeyEnv::parse(env).ok_or(KeyFormatError::Env)?;
    verify_tail(presented, tail)
}

/// 2-12 lower-case letters or digits, starting with a letter.
fn valid_prefix(prefix: &str) -> bool {
    let bytes = prefix.as_bytes();
    (2..=12).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn split(presented: &str) -> Result<(&str, &str, &str), KeyFormatError> {
    if presented.len() > MAX_KEY_LEN || presented.len() < 2 + 1 + 4 + 1 + BODY_LEN + CHECKSUM_LEN {
        return Err(KeyFormatError::Length);
    }
    let mut parts = presented.splitn(3, '_');
    let (Some(prefix), Some(env), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyFormatError::Structure);
    };
    if tail.len() != BODY_LEN + CHECKSUM_LEN {
        return Err(KeyFormatError::Length);
    }
    Ok((prefix, env, tail))
}

fn verify_tail(presented: &str, tail: &str) -> Result<(), KeyFormatError> {
    if !tail.bytes().all(|c| base62::digit(c).is_some()) {
        return Err(KeyFormatError::Alphabet);
    }
    let split_at = presented.len() - CHECKSUM_LEN;
    let expected = checksum(&presented[..split_at]);
    // Constant-time is not needed here: the checksum is public information.
    if expected != presented[split_at..] {
        return Err(KeyFormatError::Checksum);
    }
    Ok(())
}

fn checksum(text: &str) -> String {
    let crc = crc32fast::hash(text.as_bytes());
    base62::encode_fixed(&crc.to_be_bytes(), CHECKSUM_LEN).expect("u32 fits 6 characters")
}

/// A plaintext API key. Its `Debug` and `Display` are redacted so it cannot
/// reach a log by accident; [`ApiKey::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The plaintext, for the one response that shows it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Display hint: prefix and environment, then the first and last 4
    /// characters of the random part, e.g. `ak_live_3hQx...9aB1`.
    pub fn hint(&self) -> String {
        let tail_start = self.0.len() - CHECKSUM_LEN - BODY_LEN;
        let head = &self.0[..tail_start + 4];
        let last = &self.0[self.0.len() - 4..];
        format!("{head}...{last}")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Found by the `key_parse` fuzz target: a checksum-valid text whose
    /// prefix no deployment can have (control characters, upper case) was
    /// accepted by `verify_any`, so `KeyHash::of_text` took it for a key.
    #[test]
    fn verify_any_refuses_prefixes_no_deployment_can_have() {
        let found = "tecstt\u{1}\0\0\0C_test_QQQQQQQQ0QbbbbbbbbbQ0Qbbbbbbbbbbbbbbb3bb0Qb2PzSOK";
        assert_eq!(verify_any(found), Err(KeyFormatError::Prefix));
        assert!(crate::hash::KeyHash::of_text(found).is_none());
        let body = "Q".repeat(BODY_LEN);
        for prefix in ["AK", "a-k", "9ak", "ak\u{7}"] {
            let head = format!("{prefix}_live_{body}");
            let text = format!("{head}{}", checksum(&head));
            assert_eq!(verify_any(&text), Err(KeyFormatError::Prefix), "{prefix:?}");
        }
        let head = format!("ak_live_{body}");
        assert_eq!(verify_any(&format!("{head}{}", checksum(&head))), Ok(()));
    }

    fn live() -> KeyFormat {
        KeyFormat::new("ak", KeyEnv::Live).unwrap()
    }

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = live().generate();
        let text = key.expose();
        assert!(text.starts_with("ak_live_"));
        assert_eq!(text.len(), 8 + BODY_LEN + CHECKSUM_LEN);
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert_eq!(format!("{key}"), "<redacted>");
        assert!(key.hint().starts_with("ak_live_"));
        assert!(key.hint().len() < 24);
    }

    #[test]
    fn prefix_rules() {
        assert!(KeyFormat::new("a", KeyEnv::Live).is_err());
        assert!(KeyFormat::new("Ak", KeyEnv::Live).is_err());
        assert!(KeyFormat::new("1k", KeyEnv::Live).is_err());
        assert!(KeyFormat::new("a_b", KeyEnv::Live).is_err());
        assert!(KeyFormat::new("abcdefghijklm", KeyEnv::Live).is_err());
        assert!(KeyFormat::new("acme2", KeyEnv::Test).is_ok());
    }

    #[test]
    fn wrong_prefix_env_length_alphabet_are_rejected_offline() {
        let fmt = live();
        let key = fmt.generate();
        let text = key.expose();
        let other = KeyFormat::new("zz", KeyEnv::Live).unwrap();
        assert_eq!(other.parse(text), Err(KeyFormatError::Prefix));
        let test_env = KeyFormat::new("ak", KeyEnv::Test).unwrap();
        assert_eq!(test_env.parse(text), Err(KeyFormatError::Env));
        assert_eq!(
            fmt.parse(&text[..text.len() - 1]),
            Err(KeyFormatError::Length)
        );
        assert_eq!(fmt.parse(""), Err(KeyFormatError::Length));
        assert_eq!(fmt.parse(&"x".repeat(10_000)), Err(KeyFormatError::Length));
        let mut bad = text.to_owned();
        bad.replace_range(10..11, "-");
        assert_eq!(fmt.parse(&bad), Err(KeyFormatError::Alphabet));
        // A multi-byte character must not panic on slicing.
        let mut utf = text[..text.len() - 2].to_owned();
        utf.push('é');
        assert!(fmt.parse(&utf).is_err());
        assert_eq!(verify_any(text), Ok(()));
    }

    #[test]
    fn scanner_regex_is_consistent_with_the_format() {
        // The regex's fixed tail length must equal body + checksum.
        assert!(SCANNER_REGEX.contains(&format!("{{{}}}", BODY_LEN + CHECKSUM_LEN)));
    }

    /// The issue's acceptance test: 100,000 keys all parse; every
    /// single-character change fails; no two collide.
    #[test]
    fn hundred_thousand_keys_parse_never_collide_and_detect_every_single_change() {
        let fmt = live();
        let mut seen = HashSet::with_capacity(100_000);
        let alphabet = base62::ALPHABET;
        for n in 0..100_000 {
            let key = fmt.generate();
            let text = key.expose();
            assert_eq!(fmt.parse(text).as_ref(), Ok(&key));
            assert!(seen.insert(text.to_owned()), "collision");
            // Every position, one substitution chosen per key and position (all
            // 62 substitutions on the first 200 keys), so the run stays fast
            // while covering every (position, character) pair many times over.
            let bytes = text.as_bytes();
            for pos in 0..bytes.len() {
                let subs: Vec<u8> = if n < 200 {
                    alphabet.iter().copied().chain([b'_', b'-']).collect()
                } else {
                    vec![alphabet[(n + pos * 7) % 62]]
                };
                for c in subs {
                    if c == bytes[pos] {
                        continue;
                    }
                    let mut changed = bytes.to_vec();
                    changed[pos] = c;
                    let changed = String::from_utf8(changed).unwrap();
                    assert!(fmt.parse(&changed).is_err(), "change at {pos} accepted");
                    assert!(verify_any(&changed).is_err(), "change at {pos} accepted");
                }
            }
        }
    }
}
