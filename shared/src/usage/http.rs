//! The usage routes, over plain request values (the `usage` function converts
//! from and to `lambda_http`):
//!
//! - `GET /v1/usage/keys/{key_id}?from=&to=`: a key's daily series;
//! - `GET /v1/usage?owner=&from=&to=&format=json|csv`: per-key totals;
//! - `GET /v1/usage/reports/{day}?owner=`: a stored daily report.
//!
//! All need `usage:read`; another owner's data needs `admin` and otherwise
//! answers 404, like a missing key.

use serde::Serialize;
use serde_json::Value;

use super::service::{OwnerTotals, Range, UsageService};
use crate::clock::Clock;
use crate::manage::{ApiRequest, ManageError};
use crate::store::{KeyAdmin, UsageStore};

/// A response body: JSON, or CSV for billing exports.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Json(Value),
    Csv(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageResponse {
    pub status: u16,
    pub body: Body,
}

impl UsageResponse {
    pub fn content_type(&self) -> &'static str {
        match self.body {
            Body::Json(_) => "application/json",
            Body::Csv(_) => "text/csv; charset=utf-8",
        }
    }

    pub fn text(&self) -> String {
        match &self.body {
            Body::Json(v) => v.to_string(),
            Body::Csv(s) => s.clone(),
        }
    }
}

fn json<T: Serialize>(body: &T) -> UsageResponse {
    UsageResponse {
        status: 200,
        body: Body::Json(serde_json::to_value(body).unwrap_or(Value::Null)),
    }
}

/// A CSV cell that a spreadsheet will not run as a formula.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// Per-key totals as CSV (RFC 4180 quoting, by the `csv` crate).
pub fn to_csv(totals: &OwnerTotals) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "owner", "key_id", "name", "status", "from", "to", "allowed", "denied", "requests",
    ];
    let mut rows = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    for k in &totals.keys {
        rows.push(vec![
            cell(&totals.owner),
            cell(&k.key_id),
            cell(k.name.as_deref().unwrap_or("")),
            cell(k.status.as_deref().unwrap_or("deleted")),
            totals.from.clone(),
            totals.to.clone(),
            k.totals.allowed.to_string(),
            k.totals.denied.to_string(),
            k.totals.requests.to_string(),
        ]);
    }
    for row in rows {
        // Writing to memory cannot fail.
        let _ = w.write_record(&row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Serve one request.
pub async fn route<S, C>(service: &UsageService<S, C>, req: ApiRequest<'_>) -> UsageResponse
where
    S: KeyAdmin + UsageStore,
    C: Clock,
{
    match dispatch(service, &req).await {
        Ok(resp) => resp,
        Err(err) => {
            if err.status() >= 500 {
                tracing::error!(code = err.code(), error = %err, cause = ?std::error::Error::source(&err), "usage request failed");
            }
            UsageResponse {
                status: err.status(),
                body: Body::Json(err.body()),
            }
        }
    }
}

async fn dispatch<S, C>(
    service: &UsageService<S, C>,
    req: &ApiRequest<'_>,
) -> Result<UsageResponse, ManageError>
where
    S: KeyAdmin + UsageStore,
    C: Clock,
{
    let segs = req.segments().ok_or(ManageError::NoRoute)?;
    let caller = req.caller.clone().ok_or(ManageError::Unauthenticated)?;
    let range = || Range::parse(req.param("from"), req.param("to"), service.today());
    match (segs.as_slice(), req.method) {
        (["usage", "keys", id], "GET") => {
            Ok(json(&service.key_series(&caller, id, range()?).await?))
        }
        (["usage"], "GET") => {
            let format = req.param("format").unwrap_or("json");
            if !matches!(format, "json" | "csv") {
                return Err(ManageError::invalid(
                    "invalid_format",
                    "format",
                    "format must be json or csv",
                ));
            }
            let totals = service
                .owner_totals(&caller, req.param("owner"), range()?)
                .await?;
            Ok(if format == "csv" {
                UsageResponse {
                    status: 200,
                    body: Body::Csv(to_csv(&totals)),
                }
            } else {
                json(&totals)
            })
        }
        (["usage", "reports", day], "GET") => Ok(json(
            &service
                .stored_report(&caller, req.param("owner"), day)
                .await?,
        )),
        (["usage"] | ["usage", "keys", _] | ["usage", "reports", _], _) => {
            Err(ManageError::MethodNotAllowed)
        }
        _ => Err(ManageError::NoRoute),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::service::{KeyTotals, Totals};

    #[test]
    fn csv_is_quoted_and_formula_safe() {
        let totals = OwnerTotals {
            owner: "acme".into(),
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            totals: Totals::default(),
            keys: vec![
                KeyTotals {
                    key_id: "key_a".into(),
                    name: Some("billing, \"prod\"\nline".into()),
                    status: Some("active".into()),
                    totals: Totals {
                        allowed: 3,
                        denied: 1,
                        requests: 4,
                        ..Default::default()
                    },
                },
                KeyTotals {
                    key_id: "key_b".into(),
                    name: Some("=HYPERLINK(\"x\")".into()),
                    status: None,
                    totals: Totals::default(),
                },
            ],
        };
        let text = to_csv(&totals);
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][2], "billing, \"prod\"\nline");
        assert_eq!(&rows[0][6], "3");
        assert_eq!(&rows[0][8], "4");
        assert_eq!(&rows[1][2], "'=HYPERLINK(\"x\")");
        assert_eq!(&rows[1][3], "deleted");
    }

    #[test]
    fn ranges_are_checked() {
        let today = crate::usage::Day::parse("2026-11-29").unwrap();
        let r = Range::parse(None, None, today).unwrap();
        assert_eq!(r.from.to_string(), "2026-10-31");
        assert_eq!(r.to, today);
        assert!(Range::parse(Some("2025-11-29"), None, today).is_ok());
        let too_long = Range::parse(Some("2025-11-28"), None, today).unwrap_err();
        assert_eq!(too_long.code(), "range_too_long");
        assert_eq!(
            Range::parse(Some("2026-11-30"), None, today)
                .unwrap_err()
                .code(),
            "invalid_range"
        );
        assert_eq!(
            Range::parse(Some("yesterday"), None, today)
                .unwrap_err()
                .code(),
            "invalid_date"
        );
        assert_eq!(
            Range::parse(None, Some("2026-02-30"), today)
                .unwrap_err()
                .status(),
            400
        );
    }
}
