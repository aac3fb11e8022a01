//! [`PortalStore`] over the table. Item families (built and read only here):
//! - link: `pk = PLINK#<sha256 of the token>`, `sk = PLINK`;
//! - session: `pk = PSESS#<sha256 of the session id>`, `sk = PSESS`, and in
//!   the owner index under `gpk = PORTAL#<owner>`, `gsk = <expires_at>#<hash>`.
//!
//! Each carries the grant as JSON (`grant`) and `ttl` (its expiry), so
//! DynamoDB's TTL removes it eventually.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::{n, s, DynamoStore, Item};
use crate::store::items;
use crate::store::portal::{PortalGrant, PortalStore};
use crate::store::StoreError;

const LINK: &str = "PLINK";
const SESSION: &str = "PSESS";
const GRANT: &str = "grant";

fn link_key(hash: &str) -> Item {
    DynamoStore::key_of(format!("{LINK}#{hash}"), LINK)
}

fn session_key(hash: &str) -> Item {
    DynamoStore::key_of(format!("{SESSION}#{hash}"), SESSION)
}

fn owner_gpk(owner: &str) -> String {
    format!("PORTAL#{owner}")
}

fn with_grant(mut item: Item, grant: &PortalGrant) -> Result<Item, StoreError> {
    let json = serde_json::to_string(grant)
        .map_err(|_| StoreError::Corrupt("portal grant could not be encoded"))?;
    item.insert(GRANT.into(), s(json));
    item.insert(items::TTL.into(), n(grant.expires_at));
    Ok(item)
}

fn grant_of(item: &Item) -> Result<PortalGrant, StoreError> {
    let json = item
        .get(GRANT)
        .and_then(|v| v.as_s().ok())
        .ok_or(StoreError::Corrupt("portal item without its grant"))?;
    serde_json::from_str(json).map_err(|_| StoreError::Corrupt("portal grant is not valid"))
}

fn failed<E>(err: aws_sdk_dynamodb::error::SdkError<E>) -> StoreError
where
    aws_sdk_dynamodb::Error: From<aws_sdk_dynamodb::error::SdkError<E>>,
{
    match aws_sdk_dynamodb::Error::from(err) {
        aws_sdk_dynamodb::Error::ConditionalCheckFailedException(_) => StoreError::Conflict,
        other => StoreError::Dynamo(Box::new(other)),
    }
}

impl DynamoStore {
    /// Put an item that must not exist yet (a 256-bit secret's hash never
    /// repeats; the condition makes sure).
    async fn put_new_item(&self, item: Item) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", items::PK)
            .send()
            .await
            .map_err(failed)?;
        Ok(())
    }
}

#[async_trait]
impl PortalStore for DynamoStore {
    async fn put_link(&self, hash: &str, link: &PortalGrant) -> Result<(), StoreError> {
        self.put_new_item(with_grant(link_key(hash), link)?).await
    }

    async fn take_link(&self, hash: &str) -> Result<Option<PortalGrant>, StoreError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(link_key(hash)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", items::PK)
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result.map_err(failed) {
            Ok(out) => out.attributes().map(grant_of).transpose(),
            Err(StoreError::Conflict) => Ok(None),
            Err(other) => Err(other),
        }
    }

    async fn put_session(&self, hash: &str, session: &PortalGrant) -> Result<(), StoreError> {
        let mut item = with_grant(session_key(hash), session)?;
        item.insert(items::GPK.into(), s(owner_gpk(&session.owner)));
        item.insert(
            items::GSK.into(),
            s(format!("{:012}#{hash}", session.expires_at)),
        );
        self.put_new_item(item).await
    }

    async fn session(&self, hash: &str) -> Result<Option<PortalGrant>, StoreError> {
        let out = self
            .client()
            .get_item()
            .table_name(self.table())
            .set_key(Some(session_key(hash)))
            .consistent_read(true)
            .send()
            .await
            .map_err(failed)?;
        out.item().map(grant_of).transpose()
    }

    async fn delete_session(&self, hash: &str) -> Result<(), StoreError> {
        self.client()
            .delete_item()
            .table_name(self.table())
            .set_key(Some(session_key(hash)))
            .send()
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn revoke_owner(&self, owner: &str) -> Result<u64, StoreError> {
        let mut removed = 0;
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client()
                .query()
                .table_name(self.table())
                .index_name(items::OWNER_INDEX)
                .key_condition_expression("#g = :g")
                .expression_attribute_names("#g", items::GPK)
                .expression_attribute_values(":g", AttributeValue::S(owner_gpk(owner)))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(failed)?;
            for item in out.items() {
                let key: Item = [items::PK, items::SK]
                    .iter()
                    .filter_map(|k| Some(((*k).to_owned(), item.get(*k)?.clone())))
                    .collect();
                self.client()
                    .delete_item()
                    .table_name(self.table())
                    .set_key(Some(key))
                    .send()
                    .await
                    .map_err(failed)?;
                removed += 1;
            }
            match out.last_evaluated_key() {
                Some(k) => start = Some(k.clone()),
                None => return Ok(removed),
            }
        }
    }
}
