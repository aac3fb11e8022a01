//! The emulator behind the proxy: forwarding the client's requests, and the
//! proxy's own requests (table descriptions, item images, restores), which
//! go straight upstream and are neither counted nor captured.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode, Uri};
use serde_json::{json, Value};

use super::schema::Schema;
use super::units::Item;
use crate::faults::{http_client, relay, Dropped, HttpClient};

pub struct Upstream {
    client: HttpClient,
    uri: Uri,
}

impl Upstream {
    pub fn new(uri: Uri) -> Self {
        Self {
            client: http_client(),
            uri,
        }
    }

    /// Sends a request as the client sent it.
    pub async fn forward(
        &self,
        parts: Parts,
        body: Bytes,
    ) -> Result<Response<Full<Bytes>>, Dropped> {
        relay(&self.client, &self.uri, parts, body).await
    }

    /// One DynamoDB call of the proxy's own, with the client's credentials
    /// (the emulator keeps one store per region, named in them).
    pub async fn call(
        &self,
        auth: Option<&HeaderValue>,
        operation: &str,
        body: &Value,
    ) -> Result<(StatusCode, Value), Dropped> {
        let mut builder = Request::post("/")
            .header(CONTENT_TYPE, "application/x-amz-json-1.0")
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"));
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let (parts, ()) = builder.body(()).map_err(|_| Dropped)?.into_parts();
        let answer = self.forward(parts, Bytes::from(body.to_string())).await?;
        let status = answer.status();
        let bytes = answer
            .into_body()
            .collect()
            .await
            .map_err(|_| Dropped)?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// The item with `key` now (a consistent read).
    pub async fn get_item(
        &self,
        auth: Option<&HeaderValue>,
        table: &str,
        key: &Item,
    ) -> Result<Option<Item>, Dropped> {
        let request = json!({"TableName": table, "Key": key, "ConsistentRead": true});
        let (status, answer) = self.call(auth, "GetItem", &request).await?;
        if status != StatusCode::OK {
            return Err(Dropped);
        }
        Ok(answer["Item"].as_object().cloned())
    }

    /// Puts `image` back (or deletes the item where there was none).
    pub async fn restore(
        &self,
        auth: Option<&HeaderValue>,
        table: &str,
        key: &Item,
        image: Option<&Item>,
    ) -> Result<(), Dropped> {
        let (operation, request) = match image {
            Some(item) => ("PutItem", json!({"TableName": table, "Item": item})),
            None => ("DeleteItem", json!({"TableName": table, "Key": key})),
        };
        match self.call(auth, operation, &request).await? {
            (StatusCode::OK, _) => Ok(()),
            _ => Err(Dropped),
        }
    }

    /// The key schemas of `table`, `None` if it does not exist.
    pub async fn describe(&self, auth: Option<&HeaderValue>, table: &str) -> Option<Schema> {
        let request = json!({"TableName": table});
        let (status, answer) = self.call(auth, "DescribeTable", &request).await.ok()?;
        (status == StatusCode::OK)
            .then(|| Schema::from_description(&answer))
            .flatten()
    }
}
