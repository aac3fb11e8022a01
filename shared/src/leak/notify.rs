//! Telling the key's owner: one EventBridge event per handled leak, on the
//! account's default bus, so the provider can route it to email, a ticket
//! or a chat (an EventBridge rule on `source = keygate`, `detail-type =
//! keygate.leak`). The event names the key by id and hint, never the key.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::Serialize;

use crate::id::KeyId;

/// Event source of every keygate event.
pub const SOURCE: &str = "keygate";
/// Detail type of a leak notice.
pub const DETAIL_TYPE: &str = "keygate.leak";

/// The detail of a `keygate.leak` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeakNotice {
    pub owner: String,
    pub key_id: KeyId,
    /// The key's display hint (`ak_live_3hQx...9aB1`).
    pub hint: String,
    /// What was applied: `revoke`, `quarantine` or `notify`.
    pub policy: &'static str,
    pub source_url: Option<String>,
}

/// The notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("EventBridge refused the event")]
    EventBridge(#[source] Box<aws_sdk_eventbridge::Error>),
    #[error("EventBridge did not accept the event: {0}")]
    Rejected(String),
}

/// Where leak notices go.
#[async_trait]
pub trait LeakNotifier: Send + Sync {
    async fn notify(&self, notice: &LeakNotice) -> Result<(), NotifyError>;
}

/// `PutEvents` on the default bus (the function's IAM policy allows
/// `events:PutEvents` on that bus only).
#[derive(Debug, Clone)]
pub struct EventBridgeNotifier {
    client: aws_sdk_eventbridge::Client,
}

impl EventBridgeNotifier {
    pub fn new(client: aws_sdk_eventbridge::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl LeakNotifier for EventBridgeNotifier {
    async fn notify(&self, notice: &LeakNotice) -> Result<(), NotifyError> {
        let entry = PutEventsRequestEntry::builder()
            .source(SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(serde_json::to_string(notice).unwrap_or_default())
            .event_bus_name("default")
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| NotifyError::EventBridge(Box::new(e.into())))?;
        if out.failed_entry_count() > 0 {
            let code = out
                .entries()
                .iter()
                .find_map(|e| e.error_code())
                .unwrap_or("unknown");
            return Err(NotifyError::Rejected(code.to_owned()));
        }
        Ok(())
    }
}

#[async_trait]
impl<N: LeakNotifier + ?Sized> LeakNotifier for std::sync::Arc<N> {
    async fn notify(&self, notice: &LeakNotice) -> Result<(), NotifyError> {
        (**self).notify(notice).await
    }
}
