//! Delivering keys through AWS Secrets Manager, so pipelines read a key
//! instead of a person copying it.
//!
//! One secret per key lineage, named `<prefix>/<owner>/<lineage id>` (the
//! lineage id is the first key's id, shared by its rotated successors).
//!
//! Delivery is two-phase, so the secret never holds a key that is not active:
//! 1. [`SecretSink::stage`]: the key becomes a version labelled `AWSPENDING`
//!    (a new secret starts with a placeholder as its current value);
//! 2. the caller commits the key to the table;
//! 3. [`SecretSink::promote`]: the version becomes `AWSCURRENT`, the previous
//!    one `AWSPREVIOUS`.
//!
//! A crash between 2 and 3 leaves the record marked `secret_pending`, and the
//! rotation sweep promotes it later. Version ids are derived from key ids, so
//! every step can be retried.

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

/// The current value of a secret created before its first key is promoted.
pub const PLACEHOLDER: &str = "keygate:provisioning";

/// Where delivered keys go.
#[async_trait]
pub trait SecretSink: Send + Sync {
    /// Phase 1: store `key` as the pending version of secret `name`,
    /// creating the secret (with a placeholder current value) if needed.
    async fn stage(&self, name: &str, key_id: &KeyId, key: &ApiKey) -> Result<(), SecretError>;

    /// Phase 3: make the staged version of `key_id` current. Idempotent.
    async fn promote(&self, name: &str, key_id: &KeyId) -> Result<(), SecretError>;

    /// The staged or current value for `key_id`, if that version exists.
    async fn version_of(&self, name: &str, key_id: &KeyId) -> Result<Option<String>, SecretError>;
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

fn aws<E, R>(err: aws_sdk_secretsmanager::error::SdkError<E, R>) -> aws_sdk_secretsmanager::Error
where
    aws_sdk_secretsmanager::Error: From<aws_sdk_secretsmanager::error::SdkError<E, R>>,
{
    aws_sdk_secretsmanager::Error::from(err)
}

#[async_trait]
impl SecretSink for SecretsManager {
    async fn stage(&self, name: &str, key_id: &KeyId, key: &ApiKey) -> Result<(), SecretError> {
        let put = || {
            self.client
                .put_secret_value()
                .secret_id(name)
                .secret_string(key.expose())
                .client_request_token(version_token(key_id))
                .version_stages("AWSPENDING")
                .send()
        };
        match put().await {
            Ok(_) => Ok(()),
            Err(err) => match err.into_service_error() {
                PutSecretValueError::ResourceNotFoundException(_) => {
                    // The first version of a secret is always made current:
                    // make it a placeholder, never a key that is not active.
                    let created = self
                        .client
                        .create_secret()
                        .name(name)
                        .description("keygate API key; the current version is the active key")
                        .secret_string(PLACEHOLDER)
                        .send()
                        .await;
                    if let Err(err) = created {
                        match aws(err) {
                            // Created concurrently: fine.
                            aws_sdk_secretsmanager::Error::ResourceExistsException(_) => {}
                            other => return Err(SecretError(Box::new(other))),
                        }
                    }
                    put().await.map_err(|e| SecretError(Box::new(aws(e))))?;
                    Ok(())
                }
                other => Err(SecretError(Box::new(other.into()))),
            },
        }
    }

    async fn promote(&self, name: &str, key_id: &KeyId) -> Result<(), SecretError> {
        let token = version_token(key_id);
        let described = self
            .client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| SecretError(Box::new(aws(e))))?;
        let stages = described.version_ids_to_stages.unwrap_or_default();
        let holder = |stage: &str| {
            stages
                .iter()
                .find(|(_, labels)| labels.iter().any(|l| l == stage))
                .map(|(id, _)| id.clone())
        };
        let current = holder("AWSCURRENT");
        if current.as_deref() != Some(token.as_str()) {
            self.client
                .update_secret_version_stage()
                .secret_id(name)
                .version_stage("AWSCURRENT")
                .move_to_version_id(&token)
                .set_remove_from_version_id(current)
                .send()
                .await
                .map_err(|e| SecretError(Box::new(aws(e))))?;
        }
        if holder("AWSPENDING").as_deref() == Some(token.as_str()) {
            self.client
                .update_secret_version_stage()
                .secret_id(name)
                .version_stage("AWSPENDING")
                .remove_from_version_id(&token)
                .send()
                .await
                .map_err(|e| SecretError(Box::new(aws(e))))?;
        }
        Ok(())
    }

    async fn version_of(&self, name: &str, key_id: &KeyId) -> Result<Option<String>, SecretError> {
        let got = self
            .client
            .get_secret_value()
            .secret_id(name)
            .version_id(version_token(key_id))
            .send()
            .await;
        match got {
            Ok(out) => Ok(out.secret_string),
            Err(err) => match aws(err) {
                aws_sdk_secretsmanager::Error::ResourceNotFoundException(_) => Ok(None),
                other => Err(SecretError(Box::new(other))),
            },
        }
    }
}
