//! `POST /v1/leaks/github`: the one mapping from a report's outcome to an
//! HTTP answer. Not behind the key authorizer: GitHub authenticates the
//! report with its signature, checked before anything else is read.
//!
//! Order: body size (413, nothing read), signature (401, nothing changed),
//! body shape (400 / 422), then the tokens.

use serde_json::{json, Value};

use crate::clock::Clock;
use crate::store::{LeakStore, StoreError};

use super::keys::{KeyCache, KeySource};
use super::notify::LeakNotifier;
use super::report::{self, BodyError};
use super::service::LeakService;
use super::signature::{KeyListError, SignatureError};

/// A GitHub report as the route needs it.
#[derive(Debug, Clone, Copy)]
pub struct GithubRequest<'a> {
    /// `Github-Public-Key-Identifier`.
    pub key_id: Option<&'a str>,
    /// `Github-Public-Key-Signature`.
    pub signature: Option<&'a str>,
    /// The raw body, exactly as signed.
    pub body: &'a [u8],
}

/// Why a report is not served.
#[derive(Debug, thiserror::Error)]
pub enum LeakError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error("GitHub's public keys are unavailable, retry")]
    Keys(#[source] KeyListError),
    #[error("storage is unavailable, retry")]
    Store(#[source] StoreError),
}

impl LeakError {
    pub fn status(&self) -> u16 {
        match self {
            LeakError::Signature(_) => 401,
            LeakError::Body(BodyError::TooLarge) => 413,
            LeakError::Body(BodyError::TooManyTokens) => 422,
            LeakError::Body(BodyError::Malformed(_)) => 400,
            LeakError::Keys(_) | LeakError::Store(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            LeakError::Signature(SignatureError::Missing) => "missing_signature",
            LeakError::Signature(SignatureError::UnknownKey) => "unknown_signing_key",
            LeakError::Signature(SignatureError::Invalid) => "invalid_signature",
            LeakError::Body(BodyError::TooLarge) => "payload_too_large",
            LeakError::Body(BodyError::TooManyTokens) => "too_many_tokens",
            LeakError::Body(BodyError::Malformed(_)) => "malformed_report",
            LeakError::Keys(_) | LeakError::Store(_) => "unavailable",
        }
    }

    /// The API's error shape, `{"error": {"code", "message"}}`.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code(), "message": self.to_string()}})
    }
}

/// Serve one report: status and JSON body.
pub async fn github<S, C, N, F, K>(
    service: &LeakService<S, C, N>,
    keys: &KeyCache<F, K>,
    req: GithubRequest<'_>,
) -> (u16, Value)
where
    S: LeakStore,
    C: Clock,
    N: LeakNotifier,
    F: KeySource,
    K: Clock,
{
    match serve(service, keys, req).await {
        Ok(verdicts) => (200, serde_json::to_value(verdicts).unwrap_or(Value::Null)),
        Err(err) => {
            if err.status() >= 500 {
                tracing::error!(code = err.code(), error = %err, cause = ?std::error::Error::source(&err), "leak report failed");
            } else {
                tracing::warn!(
                    code = err.code(),
                    status = err.status(),
                    "leak report refused"
                );
            }
            (err.status(), err.body())
        }
    }
}

async fn serve<S, C, N, F, K>(
    service: &LeakService<S, C, N>,
    keys: &KeyCache<F, K>,
    req: GithubRequest<'_>,
) -> Result<Vec<report::Verdict>, LeakError>
where
    S: LeakStore,
    C: Clock,
    N: LeakNotifier,
    F: KeySource,
    K: Clock,
{
    if req.body.len() > report::MAX_BODY {
        return Err(BodyError::TooLarge.into());
    }
    let (Some(_), Some(_)) = (req.key_id, req.signature) else {
        return Err(SignatureError::Missing.into());
    };
    let published = keys.keys_for(req.key_id).await.map_err(LeakError::Keys)?;
    published.verify(req.key_id, req.signature, req.body)?;
    let matches = report::parse(req.body)?;
    let verdicts = service.github(&matches).await.map_err(LeakError::Store)?;
    let found = verdicts
        .iter()
        .filter(|v| v.label == report::Label::TruePositive)
        .count();
    tracing::info!(
        tokens = verdicts.len(),
        true_positives = found,
        "leak report served"
    );
    Ok(verdicts)
}
