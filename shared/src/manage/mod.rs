//! Key issuance and management: the logic behind the `keys` function and
//! the operator CLI, free of Lambda types.
//!
//! - [`caller`]: who calls, what it may do, the no-escalation rule;
//! - [`request`]: strict request bodies and their validation;
//! - [`service`]: the operations;
//! - [`view`]: what responses show (never a key's hash; the key only once);
//! - [`http`]: routes, and the one mapping from outcomes to HTTP answers;
//! - [`error`]: every failure with its status and public code.

pub mod caller;
pub mod error;
pub mod http;
pub mod request;
pub mod service;
pub mod view;

pub use caller::Caller;
pub use error::ManageError;
pub use http::{retry_after, route, ApiRequest, ApiResponse, RETRY_AFTER_SECONDS};
pub use service::KeyService;
