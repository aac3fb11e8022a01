//! The developer portal: a self-service page where an API's customers
//! manage their own keys, watch their usage and read the API's reference,
//! opened from the provider's app through one-time portal sessions.
//!
//! The flow (the "customer portal session" pattern of billing providers):
//! 1. the provider's backend, where its customer is signed in, calls
//!    `POST /v1/portal/sessions {owner, return_url?, grants?}` with a key
//!    holding `portal:create`, and redirects the customer to the `url` it
//!    gets (`.../portal/home#t=<token>`: the token rides in the fragment, which
//!    browsers never send to a server, so no log sees it);
//! 2. the page posts the token once to `/portal/api/session`; the link is
//!    deleted in the same conditional write that reads it (single use),
//!    and a session cookie (`HttpOnly; Secure; SameSite=Strict`) is set;
//! 3. every later call carries the cookie, and state-changing ones the
//!    session's CSRF token and this origin's `Origin`.
//!
//! Only SHA-256 hashes of link tokens and session ids are stored, with a
//! TTL; expiry is checked on every read too.
//!
//! - [`token`]: the secrets, their hashes, the CSRF token;
//! - [`session`]: opening, exchanging, finding and ending sessions;
//! - [`request`]: request bodies;
//! - [`headers`]: CSP and the other security headers, the cookie;
//! - [`site`]: static files and the HTML error page;
//! - [`http`]: routes; [`api`]: the JSON API the page calls;
//! - [`settings`]: deployment settings; [`error`]: failures and codes.

pub mod api;
pub mod error;
pub mod headers;
pub mod http;
pub mod request;
pub mod session;
pub mod settings;
pub mod site;
pub mod token;

pub use error::PortalError;
pub use http::{Portal, PortalRequest, PortalResponse};
pub use settings::PortalSettings;
pub use site::{Asset, Site};
