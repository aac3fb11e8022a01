//! The body of a GitHub secret-scanning report, and the answer GitHub
//! expects (GitHub Docs, "Secret scanning partner program": the body is a
//! JSON array of `{token, type, url, source}`; the answer, per token,
//! `{token_hash, token_type, label}` with `label` `true_positive` or
//! `false_positive`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest body accepted: 64 KiB holds 100 tokens with long URLs.
pub const MAX_BODY: usize = 64 * 1024;
/// Most tokens in one report.
pub const MAX_TOKENS: usize = 100;
/// Longest `type`, `url` and `source` kept (longer ones are cut, on a
/// character boundary): they are stored on the key record and in its audit
/// trail, whose items are bounded.
pub const MAX_FIELD: usize = 1024;

/// One match GitHub found.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Match {
    pub token: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// Never prints the token: a reported token is a live key until handled.
impl std::fmt::Debug for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Match")
            .field("token_hash", &token_hash(&self.token))
            .field("kind", &self.kind)
            .field("url", &self.url)
            .finish()
    }
}

/// Why a body is refused (after its signature verified).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the report is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("the report holds more than {MAX_TOKENS} tokens")]
    TooManyTokens,
    #[error("the report is not a JSON array of {{token, type, url, source}}: {0}")]
    Malformed(String),
}

/// Parse a report body, within its bounds.
pub fn parse(body: &[u8]) -> Result<Vec<Match>, BodyError> {
    if body.len() > MAX_BODY {
        return Err(BodyError::TooLarge);
    }
    let matches: Vec<Match> =
        serde_json::from_slice(body).map_err(|e| BodyError::Malformed(e.to_string()))?;
    if matches.len() > MAX_TOKENS {
        return Err(BodyError::TooManyTokens);
    }
    Ok(matches
        .into_iter()
        .map(|m| Match {
            kind: cut(m.kind),
            url: m.url.map(cut),
            source: m.source.map(cut),
            token: m.token,
        })
        .collect())
}

/// `text` cut to [`MAX_FIELD`] bytes on a character boundary.
pub fn cut(mut text: String) -> String {
    if text.len() > MAX_FIELD {
        let mut end = MAX_FIELD;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// GitHub's verdict labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// One of our keys that is or was live.
    TruePositive,
    /// Anything else.
    FalsePositive,
}

/// The answer for one token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub token_hash: String,
    pub token_type: String,
    pub label: Label,
}

/// Lower-case hex SHA-256 of a reported token (equal to the stored hash
/// when the token is one of our keys).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_shapes() {
        let one = br#"[{"token":"t","type":"k","url":"u","source":"content"}]"#;
        assert_eq!(parse(one).unwrap().len(), 1);
        assert!(matches!(parse(b"{}"), Err(BodyError::Malformed(_))));
        assert!(matches!(
            parse(b"[{\"type\":\"k\"}]"),
            Err(BodyError::Malformed(_))
        ));
        let many = format!(
            "[{}]",
            vec![r#"{"token":"t","type":"k"}"#; MAX_TOKENS + 1].join(",")
        );
        assert_eq!(parse(many.as_bytes()), Err(BodyError::TooManyTokens));
        assert_eq!(parse(&vec![b' '; MAX_BODY + 1]), Err(BodyError::TooLarge));
        let long = format!(
            r#"[{{"token":"t","type":"k","url":"{}é"}}]"#,
            "a".repeat(MAX_FIELD - 1)
        );
        assert_eq!(
            parse(long.as_bytes()).unwrap()[0]
                .url
                .as_ref()
                .unwrap()
                .len(),
            MAX_FIELD - 1
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let m = &parse(br#"[{"token":"ak_live_secret","type":"k"}]"#).unwrap()[0];
        assert!(!format!("{m:?}").contains("ak_live_secret"));
    }
}
