//! Leaked keys: GitHub secret-scanning reports and manual reports.
//!
//! The deployer registers the key pattern (README, "Secret scanning") with
//! GitHub's secret scanning partner program; GitHub then POSTs every match
//! it finds in public code to `POST /v1/leaks/github`. A report is
//! verified ([`signature`], keys from [`keys`]), bounded and parsed
//! ([`report`]); each token is checked offline, the rest looked up in one
//! batch, and each key found gets the deployment's [`policy`] in one
//! transaction with its `leaked` audit event ([`service`]); the owner hears
//! of it through an EventBridge event ([`notify`]). [`http`] maps outcomes
//! to answers.
//!
//! Reports are idempotent: the first one marks the record
//! ([`LeakMark`]), and a record already marked is left alone, so the same
//! token reported twice (or concurrently: the loser's transaction fails its
//! version condition and re-reads) changes nothing, writes one audit event,
//! sends one notice and answers the same.
//!
//! The other live key of a rotated lineage is left working (it is another
//! secret) but flagged ([`LineageLeak`]) in the same transaction, with its
//! own `lineage_leaked` audit event.

pub mod http;
pub mod keys;
pub mod notify;
pub mod policy;
pub mod report;
pub mod service;
pub mod signature;

pub use notify::{EventBridgeNotifier, LeakNotice, LeakNotifier};
pub use policy::{apply, LeakMark, LeakPolicy, LineageLeak, Sighting};
pub use service::{Handled, LeakHandler, LeakService};
