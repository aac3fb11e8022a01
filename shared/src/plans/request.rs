//! Request bodies of the plan routes, parsed as strictly as the key routes'
//! (unknown fields, duplicates, wrong types refused by
//! [`parse_body`](crate::manage::request::parse_body)), and their rules.

use serde::{Deserialize, Deserializer};

use crate::limits::{MAX_QUOTA, MAX_RATE, MAX_RATE_WINDOW};
use crate::manage::request::present;
use crate::manage::ManageError;

use super::model::{PlanLimits, MAX_PLAN_ID};

/// `POST /v1/plans`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePlanRequest {
    pub plan_id: String,
    pub name: String,
    pub limits: PlanLimits,
}

/// `PATCH /v1/plans/{plan_id}`: the fields present change. `version`, if
/// given, is the version the change was made against (as `If-Match`): a
/// plan changed since answers 409 `version_conflict`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlanRequest {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub limits: Option<PlanLimits>,
    #[serde(default, deserialize_with = "present")]
    pub version: Option<u64>,
}

/// `PUT /v1/owners/{owner}/plan`: `{"plan_id": "pro"}`, or
/// `{"plan_id": null}` to take the owner off its plan. The field is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    #[serde(deserialize_with = "nullable")]
    pub plan_id: Option<String>,
}

/// Present, a value or `null`.
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// 1-64 of `[a-z0-9-]`.
pub fn validate_plan_id(plan_id: &str) -> Result<(), ManageError> {
    let ok = (1..=MAX_PLAN_ID).contains(&plan_id.len())
        && plan_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ManageError::invalid(
            "invalid_plan_id",
            "plan_id",
            format!("plan_id must be 1-{MAX_PLAN_ID} of a-z, 0-9 and '-'"),
        ))
    }
}

/// At least one limit, each within the bounds keys have.
pub fn validate_plan_limits(limits: &PlanLimits) -> Result<(), ManageError> {
    let bad = |field: &str, message: String| {
        Err(ManageError::invalid(
            "invalid_limits",
            format!("limits{field}"),
            message,
        ))
    };
    if !limits.is_limited() {
        return bad("", "a plan needs a rate, a daily or a monthly limit".into());
    }
    if let Some(r) = limits.rate {
        if !(1..=MAX_RATE).contains(&r.limit) {
            return bad(".rate.limit", format!("rate limit must be 1-{MAX_RATE}"));
        }
        if !(1..=MAX_RATE_WINDOW).contains(&r.window) {
            return bad(
                ".rate.window",
                format!("rate window must be 1-{MAX_RATE_WINDOW} seconds"),
            );
        }
    }
    for (field, quota) in [(".daily", limits.daily), (".monthly", limits.monthly)] {
        if quota.is_some_and(|q| !(1..=MAX_QUOTA).contains(&q)) {
            return bad(field, format!("a quota must be 1-{MAX_QUOTA}"));
        }
    }
    // As for a key's limits: one day cannot spend more than its month.
    if let (Some(daily), Some(monthly)) = (limits.daily, limits.monthly) {
        if daily > monthly {
            return bad(
                ".daily",
                "a daily quota cannot be larger than the monthly one".into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manage::request::parse_body;

    #[test]
    fn plan_ids_and_limits() {
        assert!(validate_plan_id("pro-2").is_ok());
        for bad in ["", "Pro", "a_b", "a b", &"x".repeat(65)] {
            assert!(validate_plan_id(bad).is_err(), "{bad:?}");
        }
        let field = |body: &str| {
            let limits: PlanLimits = serde_json::from_str(body).unwrap();
            validate_plan_limits(&limits)
                .err()
                .map(|e| e.body()["error"]["field"].clone())
        };
        assert_eq!(field(r#"{"daily": 10}"#), None);
        assert_eq!(field("{}").unwrap(), "limits");
        assert_eq!(field(r#"{"daily": 0}"#).unwrap(), "limits.daily");
        assert_eq!(
            field(r#"{"monthly": 1000000000001}"#).unwrap(),
            "limits.monthly"
        );
        assert_eq!(
            field(r#"{"rate": {"limit": 5, "window": 86401}}"#).unwrap(),
            "limits.rate.window"
        );
        assert_eq!(
            field(r#"{"daily": 100, "monthly": 10}"#).unwrap(),
            "limits.daily"
        );
        assert_eq!(field(r#"{"daily": 10, "monthly": 10}"#), None);
    }

    #[test]
    fn subscribing_names_the_plan_or_null() {
        let r: SubscribeRequest = parse_body(br#"{"plan_id": null}"#).unwrap();
        assert_eq!(r.plan_id, None);
        let r: SubscribeRequest = parse_body(br#"{"plan_id": "pro"}"#).unwrap();
        assert_eq!(r.plan_id.as_deref(), Some("pro"));
        let e = parse_body::<SubscribeRequest>(b"{}").unwrap_err();
        assert_eq!(e.code(), "missing_field");
        let e = parse_body::<UpdatePlanRequest>(br#"{"limits": {"hourly": 1}}"#).unwrap_err();
        assert_eq!(e.code(), "unknown_field");
    }
}
