//! # gateway: API Gateway's HTTP API, locally
//!
//! `make dev` and the end-to-end tests run the functions under
//! `cargo lambda watch`, which invokes a function with whatever event it is
//! given. This crate plays API Gateway in front of them, so a request to
//! `http://127.0.0.1:3000/v1/...` goes through the same steps as one to the
//! deployed API: the route is found among `template.yaml`'s `HttpApi` events
//! ([`template`], [`routes`]: there is no second route table), the Lambda
//! authorizer is invoked with a payload 2.0 `REQUEST` event, its denial
//! answered with 401/403 as API Gateway does, and the route's function invoked
//! with the authorizer's context at `requestContext.authorizer.lambda`
//! ([`events`], [`lambda`]); its answer becomes the HTTP response ([`server`]).

pub mod events;
pub mod lambda;
pub mod routes;
pub mod server;
pub mod template;

pub use lambda::Invoker;
pub use server::{serve, Gateway};
pub use template::ApiSpec;
