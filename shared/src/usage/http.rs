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

use super::service::{OwnerTotals, Range, Totals, UsageService};
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

/// The CSV header: one table of billing lines. Key lines (`kind` `key`)
/// come first, as before plans; then per-plan lines, `plan_month` (a plan
/// in one month of the range: `from`/`to` the part of the month in the
/// range) each followed by its `plan_day` lines (`from` = `to` = the day).
/// Plan lines leave `key_id`, `name` and `status` empty; key lines leave
/// `plan_id` and `period` empty. The new columns are last, so a reader of
/// the earlier columns by position reads key lines as before.
pub const CSV_HEADER: [&str; 12] = [
    "owner", "key_id", "name", "status", "from", "to", "allowed", "denied", "requests", "kind",
    "plan_id", "period",
];

/// Per-key and per-plan totals as CSV (RFC 4180 quoting, by the `csv`
/// crate; every text cell formula-safe): see [`CSV_HEADER`].
pub fn to_csv(totals: &OwnerTotals) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut rows = vec![CSV_HEADER
        .iter()
        .map(|h| (*h).to_owned())
        .collect::<Vec<_>>()];
    let counts = |t: &Totals| [t.allowed, t.denied, t.requests].map(|n| n.to_string());
    for k in &totals.keys {
        let mut row = vec![
            cell(&totals.owner),
            cell(&k.key_id),
            cell(k.name.as_deref().unwrap_or("")),
            cell(k.status.as_deref().unwrap_or("deleted")),
            totals.from.clone(),
            totals.to.clone(),
        ];
        row.extend(counts(&k.totals));
        row.extend(["key".to_owned(), String::new(), String::new()]);
        rows.push(row);
    }
    let plan_row = |kind: &str, plan_id: &str, period: &str, from: &str, to: &str, t: &Totals| {
        let mut row = vec![
            cell(&totals.owner),
            String::new(),
            String::new(),
            String::new(),
            from.to_owned(),
            to.to_owned(),
        ];
        row.extend(counts(t));
        row.extend([kind.to_owned(), cell(plan_id), period.to_owned()]);
        row
    };
    for p in &totals.plans {
        rows.push(plan_row(
            "plan_month",
            &p.plan_id,
            &p.period,
            &p.from,
            &p.to,
            &p.totals,
        ));
        for d in &p.days {
            rows.push(plan_row(
                "plan_day", &p.plan_id, &d.day, &d.day, &d.day, &d.totals,
            ));
        }
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
    use crate::usage::plan_usage::{PlanDayTotals, PlanPeriod};
    use crate::usage::service::KeyTotals;

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
            plans: vec![PlanPeriod {
                plan_id: "-1".into(),
                period: "2026-11".into(),
                from: "2026-11-01".into(),
                to: "2026-11-30".into(),
                totals: Totals {
                    allowed: 7,
                    denied: 2,
                    requests: 9,
                    ..Default::default()
                },
                days: vec![PlanDayTotals {
                    day: "2026-11-29".into(),
                    totals: Totals {
                        allowed: 7,
                        denied: 2,
                        requests: 9,
                        ..Default::default()
                    },
                }],
            }],
        };
        let text = to_csv(&totals);
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            r.headers().unwrap(),
            &csv::StringRecord::from(CSV_HEADER.to_vec())
        );
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(&rows[0][9], "key");
        assert_eq!(&rows[0][10], "");
        // A plan id may start with '-': it is made formula-safe too.
        let month: Vec<&str> = rows[2].iter().collect();
        assert_eq!(
            month,
            [
                "acme",
                "",
                "",
                "",
                "2026-11-01",
                "2026-11-30",
                "7",
                "2",
                "9",
                "plan_month",
                "'-1",
                "2026-11"
            ]
        );
        let day: Vec<&str> = rows[3].iter().collect();
        assert_eq!(
            day,
            [
                "acme",
                "",
                "",
                "",
                "2026-11-29",
                "2026-11-29",
                "7",
                "2",
                "9",
                "plan_day",
                "'-1",
                "2026-11-29"
            ]
        );
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
