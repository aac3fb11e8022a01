//! A [`LeakNotifier`] that keeps the owner notices in memory, so tests can
//! count and read what would have gone to EventBridge.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use keygate::leak::notify::NotifyError;
use keygate::leak::{LeakNotice, LeakNotifier};

/// Notices kept in memory; clones share them.
#[derive(Clone, Default)]
pub struct Recorded(Arc<Mutex<Vec<LeakNotice>>>);

#[async_trait]
impl LeakNotifier for Recorded {
    async fn notify(&self, notice: &LeakNotice) -> Result<(), NotifyError> {
        self.0.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

impl Recorded {
    pub fn all(&self) -> Vec<LeakNotice> {
        self.0.lock().unwrap().clone()
    }
}
