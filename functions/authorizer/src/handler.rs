//! One invocation: read the event, decide within the deadline, answer, log.
//!
//! Fails closed: an unreadable event, a store error or a missed deadline is a
//! deny, never an allow. Exactly one JSON log line per decision, with the
//! request id, key id, decision, reason, latency and DynamoDB request count;
//! never the key or its hash.

use std::time::{Duration, Instant};

use keygate::authorize::{AuthError, Authorizer, Verdict};
use keygate::clock::Clock;
use keygate::decision::Decision;
use keygate::store::{Admission, KeyLookup};
use serde_json::Value;

use crate::event::{self, EventError, Shape};
use crate::response::{respond, Answer, V2Response};

/// Deployment settings of the handler.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub v2_response: V2Response,
    /// Time budget of one decision, well under API Gateway's authorizer timeout.
    pub deadline: Duration,
}

/// What was decided, for the caller (tests, benchmarks) and the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    pub response: Value,
    pub allowed: bool,
    /// The deny reason's wire name, `error` for a system failure.
    pub reason: Option<&'static str>,
    /// DynamoDB requests made, when known (not after a missed deadline).
    pub requests: Option<u32>,
    /// The clock reading the decision was made at (unix seconds), when it
    /// was made: the window an admission spent from.
    pub at: Option<i64>,
}

/// The authorizer function: pipeline plus settings.
pub struct Handler<S, C> {
    authorizer: Authorizer<S, C>,
    settings: Settings,
    key_prefix: String,
}

impl<S: KeyLookup + Admission, C: Clock> Handler<S, C> {
    pub fn new(authorizer: Authorizer<S, C>, settings: Settings, key_prefix: &str) -> Self {
        Self {
            authorizer,
            settings,
            key_prefix: key_prefix.to_owned(),
        }
    }

    pub fn authorizer(&self) -> &Authorizer<S, C> {
        &self.authorizer
    }

    /// Handle one event. `Err` only for events that are not authorizer
    /// events at all (there is no shape to deny in); the runtime reports it
    /// as a failed invocation, which API Gateway turns into a 500: no access.
    pub async fn handle(&self, event: Value, request_id: &str) -> Result<Handled, EventError> {
        let started = Instant::now();
        let incoming = match event::parse(event, &self.key_prefix) {
            Ok(incoming) => incoming,
            Err(EventError::Invalid {
                shape,
                resource_arn,
                source,
            }) => {
                tracing::warn!(request_id, payload = shape.as_str(), error = %source, "unreadable event");
                return Ok(self.finish(
                    started,
                    request_id,
                    shape,
                    &resource_arn,
                    None,
                    Err(("malformed", Some(0))),
                    None,
                ));
            }
            Err(err) => {
                tracing::error!(request_id, error = %err, "unrecognised event");
                return Err(err);
            }
        };
        // An Allow names the request's ARN as its policy's resource, and IAM
        // reads `*` and `?` there as wildcards: an ARN carrying them (a
        // literal `*` in a path) would let a cached Allow cover routes the
        // key's scopes do not. Refused before any I/O.
        if incoming.resource_arn.contains(['*', '?']) {
            tracing::warn!(
                request_id,
                payload = incoming.shape.as_str(),
                "wildcard in the resource ARN"
            );
            return Ok(self.finish(
                started,
                request_id,
                incoming.shape,
                &incoming.resource_arn,
                None,
                Err(("malformed", Some(0))),
                None,
            ));
        }
        let result = tokio::time::timeout(
            self.settings.deadline,
            self.authorizer.authorize(&incoming.auth_request()),
        )
        .await;
        let mut decided_at = None;
        let mut hit = None;
        let (key_id, outcome) = match result {
            Ok(Ok(Verdict {
                decision,
                key_id,
                requests,
                at,
                limit,
            })) => (
                {
                    decided_at = Some(at);
                    hit = limit;
                    key_id
                },
                match decision {
                    Decision::Allow(ctx) => Ok((ctx, requests)),
                    Decision::Deny(reason) => Err((reason.as_str(), Some(requests))),
                },
            ),
            Ok(Err(err)) => {
                let requests = match &err {
                    AuthError::Store { requests, .. } | AuthError::Contention { requests } => {
                        *requests
                    }
                };
                tracing::error!(request_id, error = %err, cause = ?std::error::Error::source(&err), "authorizer failed closed");
                (None, Err(("error", Some(requests))))
            }
            Err(_) => {
                tracing::error!(
                    request_id,
                    deadline_ms = self.settings.deadline.as_millis() as u64,
                    "deadline missed, failed closed"
                );
                (None, Err(("error", None)))
            }
        };
        let key_id = match &outcome {
            Ok((ctx, _)) => Some(ctx.key_id.as_str().to_owned()),
            Err(_) => key_id.map(|k| k.as_str().to_owned()),
        };
        let mut handled = self.finish(
            started,
            request_id,
            incoming.shape,
            &incoming.resource_arn,
            key_id.as_deref(),
            outcome,
            hit.as_ref(),
        );
        handled.at = decided_at;
        Ok(handled)
    }

    /// Answer, log and count a decision (`hit`: the limit a limit deny hit).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        started: Instant,
        request_id: &str,
        shape: Shape,
        resource_arn: &str,
        key_id: Option<&str>,
        outcome: Result<(keygate::decision::AllowContext, u32), (&'static str, Option<u32>)>,
        hit: Option<&keygate::decision::LimitHit>,
    ) -> Handled {
        let latency_us = started.elapsed().as_micros() as u64;
        let (response, allowed, reason, requests) = match &outcome {
            Ok((ctx, requests)) => (
                respond(
                    shape,
                    self.settings.v2_response,
                    Answer::Allow(ctx),
                    resource_arn,
                ),
                !resource_arn.is_empty() || shape == Shape::HttpV2,
                None,
                Some(*requests),
            ),
            Err((reason, requests)) => (
                respond(
                    shape,
                    self.settings.v2_response,
                    Answer::Deny(reason, hit),
                    resource_arn,
                ),
                false,
                Some(*reason),
                *requests,
            ),
        };
        tracing::info!(
            request_id,
            payload = shape.as_str(),
            key_id = key_id.unwrap_or(""),
            decision = if allowed { "allow" } else { "deny" },
            reason = reason.unwrap_or(""),
            latency_us,
            ddb_requests = requests.map(i64::from).unwrap_or(-1),
            "decision"
        );
        crate::metrics::record(allowed, reason, latency_us);
        Handled {
            response,
            allowed,
            reason,
            requests,
            at: None,
        }
    }
}
