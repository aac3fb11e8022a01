//! Management API request bodies: strict JSON parsing and validation of
//! issue, update and rotate requests. Whatever the bytes: no panic, and every
//! refusal is a 4xx with a JSON `{error: {code, message}}` body.

#![no_main]

use keygate::manage::request::{
    parse_body, validate_cidrs, validate_expiry, validate_grace, validate_limits,
    validate_metadata, validate_name, validate_owner, validate_rotation, validate_scopes,
    IssueRequest, RotateRequest, UpdateRequest,
};
use keygate::manage::ManageError;
use libfuzzer_sys::fuzz_target;

/// 2026-11-29T12:00:00Z.
const NOON: i64 = 1_795_953_600;

fn issue(body: &[u8]) -> Result<(), ManageError> {
    let req: IssueRequest = parse_body(body)?;
    validate_owner(req.owner.as_deref().unwrap_or("acme"))?;
    validate_name(&req.name)?;
    validate_scopes(&req.scopes)?;
    validate_limits(&req.limits)?;
    validate_cidrs(&req.allowed_cidrs)?;
    validate_expiry(req.expires_at, NOON)?;
    validate_rotation(req.rotation_days, 90)?;
    validate_metadata(&req.metadata)
}

fn update(body: &[u8]) -> Result<(), ManageError> {
    let req: UpdateRequest = parse_body(body)?;
    if let Some(name) = &req.name {
        validate_name(name)?;
    }
    if let Some(scopes) = &req.scopes {
        validate_scopes(scopes)?;
    }
    if let Some(limits) = &req.limits {
        validate_limits(limits)?;
    }
    if let Some(cidrs) = &req.allowed_cidrs {
        validate_cidrs(cidrs)?;
    }
    if req.expires_at.is_some() {
        validate_expiry(req.expires_at, NOON)?;
    }
    if req.rotation_days.is_some() {
        validate_rotation(req.rotation_days, 90)?;
    }
    if let Some(metadata) = &req.metadata {
        validate_metadata(metadata)?;
    }
    Ok(())
}

fn rotate(body: &[u8]) -> Result<(), ManageError> {
    let req: RotateRequest = parse_body(body)?;
    validate_grace(req.grace_seconds).map(|_| ())
}

fn refused_with_a_4xx(result: Result<(), ManageError>) {
    if let Err(err) = result {
        let status = err.status();
        assert!((400..500).contains(&status), "{status} for {err:?}");
        let body = err.body();
        assert!(body["error"]["code"].is_string(), "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}

fuzz_target!(|data: &[u8]| {
    refused_with_a_4xx(issue(data));
    refused_with_a_4xx(update(data));
    refused_with_a_4xx(rotate(data));
});
