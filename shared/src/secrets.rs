//! Delivering keys through AWS Secrets Manager, so pipelines read a key
//! instead of a person copying it.
//!
//! One secret per key lineage, named `<prefix>/<owner>/<lineage id>` (the
//! lineage id is the first key's id, shared by its rotated successors). Each
//! delivery writes a new version, which Secrets Manager makes `AWSCURRENT`,
//! moving the previous one to `AWSPREVIOUS`. The version id is derived from
//! the key id, so a retried delivery of the same key is a no-op.

use async_trait::async_trait;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
use aws_sdk_secretsmanager::Client;

use crate::id::KeyId;
use crate::key::ApiKey;

/// Secrets Manager failed.
#[derive(Debug, thiserror::Error)]
#[error("Secrets Manager request failed")]
pub struct SecretError(#[source] pub Box<aws_sdk_secretsmanager::Error>);

/// The secret name for a lineage of keys.
pub fn secret_name(prefix: &str, owner: &str, lineage: &str) -> String {
    format!("{prefix}/{owner}/{lineage}")
}

/// Idempotency token of a key's version: 32-64 characters, from the key id.
fn version_token(key_id: &KeyId) -> String {
    format!("keygate-version-{}", key_id.as_str())
}

/// Where delivered keys go.
#[async_trait]
pub trait SecretSink: Send + Sync {
    /// Make `key` (with id `key_id`) the current value of secret `name`,
    /// creating the secret if it does not exist yet.
    async fn deliver(&self, name: &str, key_id: &KeyId, key: &ApiKey) -> Result<(), SecretError>;

    /// The current value of secret `name`, if the secret exists.
    async fn current(&self, name: &str) -> Result<Option<String>, SecretError>;
}

/// [`SecretSink`] over AWS Secrets Manager.
#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SecretSink for SecretsManager {
    async fn deliver(&self, name: &str, key_id: &KeyId, key: &ApiKey) -> Result<(), SecretError> {
        let token = version_token(key_id);
        let put = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(key.expose())
            .client_request_token(&token)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(err) => match err.into_service_error() {
                PutSecretValueError::ResourceNotFoundException(_) => {
                    self.client
                        .create_secret()
                        .name(name)
                        .description("keygate API key; the current version is the active key")
                        .secret_string(key.expose())
                        .client_request_token(&token)
                        .send()
                        .await
                        .map_err(|e| SecretError(Box::new(e.into())))?;
                    Ok(())
                }
                other => Err(SecretError(Box::new(other.into()))),
            },
        }
    }

    async fn current(&self, name: &str) -> Result<Option<String>, SecretError> {
        match self.client.get_secret_value().secret_id(name).send().await {
            Ok(out) => Ok(out.secret_string),
            Err(err) => {
                let err = aws_sdk_secretsmanager::Error::from(err);
                match err {
                    aws_sdk_secretsmanager::Error::ResourceNotFoundException(_) => Ok(None),
                    other => Err(SecretError(Box::new(other))),
                }
            }
        }
    }
}
