//! # keygate: the shared core of the API-key system
//!
//! Every Lambda function of the workspace is a thin `main.rs` over this
//! crate, so the logic is tested here, once:
//! - [`key`], [`hash`], [`id`]: the key format (CSPRNG body, CRC32 checksum
//!   checked offline), the SHA-256 that is all we store, public key ids;
//! - [`scope`], [`limits`], [`model`]: what a key may do and spend;
//! - [`grants`]: the ceiling of the no-escalation rule (a key's, a portal
//!   session's);
//! - [`decision`]: checking a key ends in `Allow` or `Deny(reason)`, values,
//!   not errors;
//! - [`clock`]: injected time;
//! - [`issue`]: minting a key, the one path every issuer takes;
//! - [`store`]: DynamoDB, behind traits sized by capability;
//! - [`sdk`]: the AWS SDK's configuration, with the one HTTPS stack;
//! - [`authorize`]: the authorizer's pipeline, free of Lambda event types;
//! - [`table`]: the table definition, read from `template.yaml`;
//! - [`usage`]: usage reports, billing totals and anomaly flags;
//! - [`leak`]: leaked-key reports (GitHub secret scanning, manual);
//! - [`portal`]: the developer portal and its one-time sessions;
//! - [`plans`]: plans (named, versioned limits) and owners' subscriptions.

pub mod address;
pub mod authorize;
pub mod base62;
pub mod clock;
pub mod config;
pub mod decision;
pub mod grants;
pub mod hash;
pub mod id;
pub mod issue;
pub mod key;
pub mod leak;
pub mod limits;
pub mod logs;
pub mod manage;
pub mod model;
pub mod plans;
pub mod portal;
pub mod rotation;
pub mod scope;
pub mod sdk;
pub mod secrets;
pub mod store;
pub mod table;
pub mod usage;
