//! The DynamoDB table, defined once: in `template.yaml`.
//!
//! Local setup, the operator CLI and the tests create the table from the
//! template's `AWS::DynamoDB::Table` resource through [`TableSpec`], so the
//! emulator's table and the deployed one cannot drift apart, and a unit test
//! checks that the template agrees with the attribute names the store uses.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use serde_norway::Value;

/// The template, compiled in so tools work from any directory.
pub const TEMPLATE: &str = include_str!("../../template.yaml");
/// Logical id of the table resource in the template.
pub const TABLE_RESOURCE: &str = "KeysTable";

/// A key schema element: attribute name and `HASH` or `RANGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPart {
    pub name: String,
    pub hash: bool,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub keys: Vec<KeyPart>,
    pub projection: String,
}

/// What the template says the table is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// `(name, type)` with type `S`, `N` or `B`.
    pub attributes: Vec<(String, String)>,
    pub keys: Vec<KeyPart>,
    pub indexes: Vec<IndexSpec>,
    pub ttl_attribute: Option<String>,
}

/// Why the template could not be read as a table definition, or the table not created.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("template is not valid YAML")]
    Yaml(#[from] serde_norway::Error),
    #[error("template has no {0} property in the table resource")]
    Missing(&'static str),
    #[error("CreateTable failed")]
    Create(#[source] Box<aws_sdk_dynamodb::Error>),
    #[error("request could not be built: {0}")]
    Build(String),
    #[error("DescribeTable failed")]
    Describe(#[source] Box<aws_sdk_dynamodb::Error>),
    #[error("table {name} is still {status} after {waited:?}")]
    NotActive {
        name: String,
        status: String,
        waited: std::time::Duration,
    },
}

/// How long [`TableSpec::create`] waits for a new table to become `ACTIVE`.
/// DynamoDB creates a table asynchronously: `CreateTable` answers while the
/// table is `CREATING`, and until it is `ACTIVE` every item request on it
/// fails with `ResourceNotFoundException` (DynamoDB's `CreateTable` API
/// reference). Creation with two indexes takes seconds to a few minutes.
pub const ACTIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

fn text(v: &Value, key: &'static str) -> Result<String, TableError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(TableError::Missing(key))
}

fn key_schema(v: &Value) -> Result<Vec<KeyPart>, TableError> {
    v.get("KeySchema")
        .and_then(Value::as_sequence)
        .ok_or(TableError::Missing("KeySchema"))?
        .iter()
        .map(|k| {
            Ok(KeyPart {
                name: text(k, "AttributeName")?,
                hash: text(k, "KeyType")? == "HASH",
            })
        })
        .collect()
}

impl TableSpec {
    /// The table defined by the compiled-in `template.yaml`.
    pub fn from_embedded_template() -> Result<Self, TableError> {
        Self::from_template(TEMPLATE)
    }

    /// Read the table resource from a SAM/CloudFormation template. Intrinsic
    /// function tags (`!Sub`, `!Ref`) are accepted and ignored.
    pub fn from_template(template: &str) -> Result<Self, TableError> {
        let doc: Value = serde_norway::from_str(template)?;
        let props = doc
            .get("Resources")
            .and_then(|r| r.get(TABLE_RESOURCE))
            .and_then(|r| r.get("Properties"))
            .ok_or(TableError::Missing("Resources.KeysTable.Properties"))?;
        let attributes = props
            .get("AttributeDefinitions")
            .and_then(Value::as_sequence)
            .ok_or(TableError::Missing("AttributeDefinitions"))?
            .iter()
            .map(|a| Ok((text(a, "AttributeName")?, text(a, "AttributeType")?)))
            .collect::<Result<_, TableError>>()?;
        let indexes = props
            .get("GlobalSecondaryIndexes")
            .and_then(Value::as_sequence)
            .map(|seq| {
                seq.iter()
                    .map(|i| {
                        Ok(IndexSpec {
                            name: text(i, "IndexName")?,
                            keys: key_schema(i)?,
                            projection: i
                                .get("Projection")
                                .map(|p| text(p, "ProjectionType"))
                                .transpose()?
                                .unwrap_or_else(|| "ALL".into()),
                        })
                    })
                    .collect::<Result<Vec<_>, TableError>>()
            })
            .transpose()?
            .unwrap_or_default();
        let ttl_attribute = props
            .get("TimeToLiveSpecification")
            .map(|t| text(t, "AttributeName"))
            .transpose()?;
        Ok(Self {
            attributes,
            keys: key_schema(props)?,
            indexes,
            ttl_attribute,
        })
    }

    /// Create the table (on-demand billing) under `name`.
    pub async fn create(&self, client: &Client, name: &str) -> Result<(), TableError> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| TableError::Build(e.to_string());
        let keys = |parts: &[KeyPart]| {
            parts
                .iter()
                .map(|k| {
                    KeySchemaElement::builder()
                        .attribute_name(&k.name)
                        .key_type(if k.hash {
                            KeyType::Hash
                        } else {
                            KeyType::Range
                        })
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(keys(&self.keys).map_err(build)?));
        for (attr, ty) in &self.attributes {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attr)
                    .attribute_type(ScalarAttributeType::from(ty.as_str()))
                    .build()
                    .map_err(build)?,
            );
        }
        for index in &self.indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.name)
                    .set_key_schema(Some(keys(&index.keys).map_err(build)?))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::from(index.projection.as_str()))
                            .build(),
                    )
                    .build()
                    .map_err(build)?,
            );
        }
        req.send()
            .await
            .map_err(|e| TableError::Create(Box::new(e.into())))?;
        wait_active(client, name, ACTIVE_WAIT).await
    }
}

/// Wait until the table and every one of its indexes is `ACTIVE`, polling
/// `DescribeTable` (100 ms, doubling up to 2 s), at most `limit`.
///
/// # Errors
/// [`TableError::Describe`] when DescribeTable fails, [`TableError::NotActive`]
/// when `limit` passes first.
pub async fn wait_active(
    client: &Client,
    name: &str,
    limit: std::time::Duration,
) -> Result<(), TableError> {
    use aws_sdk_dynamodb::types::{IndexStatus, TableStatus};
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(100);
    loop {
        let out = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| TableError::Describe(Box::new(e.into())))?;
        let status = out.table.as_ref().and_then(|t| t.table_status.clone());
        let indexes_active = out.table.as_ref().is_some_and(|t| {
            t.global_secondary_indexes().iter().all(|i| {
                i.index_status
                    .as_ref()
                    .is_none_or(|s| *s == IndexStatus::Active)
            })
        });
        if status == Some(TableStatus::Active) && indexes_active {
            return Ok(());
        }
        let waited = started.elapsed();
        if waited >= limit {
            return Err(TableError::NotActive {
                name: name.to_owned(),
                status: status.map_or_else(|| "unknown".into(), |s| s.as_str().to_owned()),
                waited,
            });
        }
        tokio::time::sleep(pause.min(limit - waited)).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::items;

    /// The template and the store's item layout must agree: a renamed key or
    /// index on either side fails here, before anything is deployed.
    #[test]
    fn template_table_matches_the_store_layout() {
        let spec = TableSpec::from_embedded_template().unwrap();
        let part = |name: &str, hash: bool| KeyPart {
            name: name.into(),
            hash,
        };
        assert_eq!(
            spec.keys,
            vec![part(items::PK, true), part(items::SK, false)]
        );
        let index = |name: &str| spec.indexes.iter().find(|i| i.name == name).unwrap();
        assert_eq!(
            index(items::OWNER_INDEX).keys,
            vec![part(items::GPK, true), part(items::GSK, false)]
        );
        assert_eq!(
            index(items::DUE_INDEX).keys,
            vec![part(items::DPK, true), part(items::DSK, false)]
        );
        assert_eq!(spec.indexes.len(), 2);
        for (name, ty) in &spec.attributes {
            assert_eq!(ty, "S", "{name}");
            assert!(
                [
                    items::PK,
                    items::SK,
                    items::GPK,
                    items::GSK,
                    items::DPK,
                    items::DSK
                ]
                .contains(&name.as_str()),
                "attribute {name} is defined in the template but unknown to the store"
            );
        }
        assert_eq!(spec.attributes.len(), 6);
        assert_eq!(spec.ttl_attribute.as_deref(), Some(items::TTL));
    }

    #[test]
    fn a_template_without_the_table_is_an_error() {
        assert!(matches!(
            TableSpec::from_template("Resources: {}"),
            Err(TableError::Missing(_))
        ));
        assert!(TableSpec::from_template(": : :").is_err());
    }
}
