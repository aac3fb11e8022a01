//! GitHub's signature on a secret-scanning report.
//!
//! GitHub signs the raw request body with ECDSA on P-256 over SHA-256. The
//! `Github-Public-Key-Identifier` header names the signing key and
//! `Github-Public-Key-Signature` carries the base64 of the ASN.1 DER
//! signature. The keys are published as JSON,
//! `{"public_keys": [{"key_identifier", "key" (PEM SubjectPublicKeyInfo),
//! "is_current"}]}`, at `https://api.github.com/meta/public_keys/secret_scanning`
//! (GitHub Docs, "Secret scanning partner program", section "Implement
//! signature verification in your secret alert service").

use base64::engine::{general_purpose::STANDARD, Engine};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use serde::Deserialize;

/// Header naming the signing key.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";

/// DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480: algorithm
/// `id-ecPublicKey`, curve `prime256v1`, then a 66-byte BIT STRING holding
/// the 65-byte uncompressed point).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a report is not accepted as GitHub's: each answers 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the report carries no key identifier or no signature")]
    Missing,
    #[error("the report names a key GitHub does not publish")]
    UnknownKey,
    #[error("the signature does not verify")]
    Invalid,
}

/// The published key list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GitHub's public key list is unreadable: {0}")]
pub struct KeyListError(pub String);

#[derive(Deserialize)]
struct KeyList {
    public_keys: Vec<Published>,
}

#[derive(Deserialize)]
struct Published {
    key_identifier: String,
    key: String,
}

/// GitHub's signing keys, as uncompressed P-256 points by identifier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl PublicKeys {
    /// Parse the key list. Keys that are not P-256 are skipped (GitHub
    /// publishes only P-256 today); a list with no usable key is an error.
    pub fn parse(json: &[u8]) -> Result<Self, KeyListError> {
        let list: KeyList =
            serde_json::from_slice(json).map_err(|e| KeyListError(e.to_string()))?;
        let keys: Vec<(String, Vec<u8>)> = list
            .public_keys
            .into_iter()
            .filter_map(|k| Some((k.key_identifier, p256_point(&k.key)?)))
            .collect();
        if keys.is_empty() {
            return Err(KeyListError("no P-256 key in the list".into()));
        }
        Ok(Self { keys })
    }

    /// Whether a key identifier is in the list.
    pub fn knows(&self, key_id: &str) -> bool {
        self.keys.iter().any(|(id, _)| id == key_id)
    }

    /// Check the signature on `body` (the raw bytes, before any parsing).
    pub fn verify(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let (Some(key_id), Some(signature)) = (key_id, signature) else {
            return Err(SignatureError::Missing);
        };
        let point = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id.trim())
            .map(|(_, point)| point)
            .ok_or(SignatureError::UnknownKey)?;
        let der = STANDARD
            .decode(signature.trim())
            .map_err(|_| SignatureError::Invalid)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
            .verify(body, &der)
            .map_err(|_| SignatureError::Invalid)
    }
}

/// The uncompressed point of a PEM P-256 public key, if it is one.
fn p256_point(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(b64).ok()?;
    let point = der.strip_prefix(&P256_SPKI_PREFIX[..])?;
    (point.len() == 65 && point[0] == 0x04).then(|| point.to_vec())
}

/// PEM of an uncompressed P-256 point: how a key list publishes it (for
/// tests and the local walk-through, which sign with their own key pair).
pub fn p256_pem(point: &[u8]) -> String {
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(point);
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    fn pair() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap()
    }

    fn list(id: &str, pair: &EcdsaKeyPair) -> PublicKeys {
        let json = serde_json::json!({"public_keys": [{
            "key_identifier": id, "key": p256_pem(pair.public_key().as_ref()), "is_current": true}]});
        PublicKeys::parse(json.to_string().as_bytes()).unwrap()
    }

    fn sign(pair: &EcdsaKeyPair, body: &[u8]) -> String {
        STANDARD.encode(pair.sign(&SystemRandom::new(), body).unwrap().as_ref())
    }

    #[test]
    fn verifies_only_the_signed_body_by_the_named_key() {
        let (a, b) = (pair(), pair());
        let keys = list("k1", &a);
        let body = br#"[{"token":"x","type":"t","url":"u","source":"content"}]"#;
        let sig = sign(&a, body);
        assert_eq!(keys.verify(Some("k1"), Some(&sig), body), Ok(()));
        assert_eq!(
            keys.verify(Some("k1"), Some(&sig), b"[]"),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            keys.verify(Some("k1"), Some(&sign(&b, body)), body),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            keys.verify(Some("k2"), Some(&sig), body),
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(
            keys.verify(None, Some(&sig), body),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            keys.verify(Some("k1"), Some("not base64!"), body),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn reads_githubs_published_sample_key() {
        // The sample key of GitHub's partner-program documentation.
        let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq\nkCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==\n-----END PUBLIC KEY-----";
        let point = p256_point(pem).unwrap();
        assert_eq!(point.len(), 65);
        // ... and the documentation's sample report and signature verify with it.
        let keys = PublicKeys {
            keys: vec![("sample".into(), point)],
        };
        let body = br#"[{"token":"some_token","type":"some_type","url":"some_url"}]"#;
        let sig = "MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc=";
        assert_eq!(keys.verify(Some("sample"), Some(sig), body), Ok(()));
        assert!(keys.verify(Some("sample"), Some(sig), b"[]").is_err());
        assert!(p256_point("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_none());
    }
}
