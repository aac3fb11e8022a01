//! The usage operations: a key's daily series, an owner's billing totals, a
//! stored daily report, and the daily job that writes reports and archives
//! finished days.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use serde::Serialize;

use super::archive;
use super::plan_usage::{
    live_plan_usage, merge_plan_days, periods, OwnerPlanUsage, PlanPeriod, PlanQuotas,
};
use super::report::{self, OwnerReport, Thresholds};
use super::{live_usage, merge, Day, DayUsage, KeyDay, LiveUsage};
use crate::clock::Clock;
use crate::id::KeyId;
use crate::manage::request::validate_owner;
use crate::manage::{Caller, ManageError};
use crate::model::KeyRecord;
use crate::store::items::owner_allowance_id;
use crate::store::{KeyAdmin, StoreError, Subject, UsageStore};

/// Longest range a usage read may span, in days (both ends included).
pub const MAX_RANGE_DAYS: i64 = 366;
/// Default range: the last 30 days, today included.
pub const DEFAULT_RANGE_DAYS: i64 = 30;
/// Routes listed per day in a key's series.
pub const TOP_ROUTES: usize = 10;

/// A validated day range, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: Day,
    pub to: Day,
}

impl Range {
    /// From query parameters; `to` defaults to today, `from` to 29 days
    /// before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>, today: Day) -> Result<Self, ManageError> {
        let day = |field: &'static str, text: &str| {
            Day::parse(text).ok_or_else(|| {
                ManageError::invalid(
                    "invalid_date",
                    field,
                    format!("{field} must be a date as YYYY-MM-DD"),
                )
            })
        };
        let to = to.map(|t| day("to", t)).transpose()?.unwrap_or(today);
        let from = from
            .map(|f| day("from", f))
            .transpose()?
            .unwrap_or(to.plus(-(DEFAULT_RANGE_DAYS - 1)));
        if from > to {
            return Err(ManageError::invalid(
                "invalid_range",
                "from",
                "from must not be after to",
            ));
        }
        if from.until(to) + 1 > MAX_RANGE_DAYS {
            return Err(ManageError::invalid(
                "range_too_long",
                "from",
                format!("a range spans at most {MAX_RANGE_DAYS} days"),
            ));
        }
        Ok(Self { from, to })
    }

    fn contains(&self, day: &str) -> bool {
        Day::parse(day).is_some_and(|d| self.from <= d && d <= self.to)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RouteCount {
    pub route: String,
    pub count: u64,
}

/// One day of a key's series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesDay {
    pub day: String,
    pub allowed: u64,
    pub denied: u64,
    pub denied_by_reason: BTreeMap<String, u64>,
    pub top_routes: Vec<RouteCount>,
    pub source_ips: Vec<String>,
}

impl SeriesDay {
    fn new(day: String, u: &DayUsage) -> Self {
        Self {
            day,
            allowed: u.allowed,
            denied: u.denied_total(),
            denied_by_reason: u.denied.clone(),
            top_routes: u
                .top_routes(TOP_ROUTES)
                .into_iter()
                .map(|(route, count)| RouteCount { route, count })
                .collect(),
            source_ips: u.ips.iter().cloned().collect(),
        }
    }
}

/// Totals over a range.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Totals {
    pub allowed: u64,
    pub denied: u64,
    pub denied_by_reason: BTreeMap<String, u64>,
    pub requests: u64,
}

impl From<&DayUsage> for Totals {
    fn from(u: &DayUsage) -> Self {
        Self {
            allowed: u.allowed,
            denied: u.denied_total(),
            denied_by_reason: u.denied.clone(),
            requests: u.requests(),
        }
    }
}

/// `GET /v1/usage/keys/{key_id}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeySeries {
    pub key_id: String,
    pub owner: String,
    pub from: String,
    pub to: String,
    pub totals: Totals,
    /// Every day of the range, oldest first (days without use are zeros).
    pub days: Vec<SeriesDay>,
}

/// One key's line in an owner's totals.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyTotals {
    pub key_id: String,
    /// `None` for a key whose record is gone (its usage still bills).
    pub name: Option<String>,
    pub status: Option<String>,
    #[serde(flatten)]
    pub totals: Totals,
}

/// `GET /v1/usage`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OwnerTotals {
    pub owner: String,
    pub from: String,
    pub to: String,
    pub totals: Totals,
    pub keys: Vec<KeyTotals>,
    /// Requests per plan and month of the range, with their days (an owner
    /// never on a plan: empty). The same requests as `keys`, counted by the
    /// plan the owner was on when each was decided.
    pub plans: Vec<PlanPeriod>,
}

/// What one run of the daily job did.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct DailySummary {
    pub day: String,
    pub owners: u64,
    pub reports: u64,
    pub flags: u64,
    pub archived_days: u64,
    /// Finished (plan, day)s of owners' plan allowances archived.
    pub archived_plan_days: u64,
    pub failed_owners: Vec<String>,
}

/// Failure of the daily job.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("usage store failed")]
    Store(#[from] StoreError),
    #[error("{} owner report(s) failed", .0.failed_owners.len())]
    Partial(DailySummary),
}

/// The usage operations over a store and a clock.
pub struct UsageService<S, C> {
    store: S,
    clock: C,
    thresholds: Thresholds,
}

type Allowances = HashMap<String, HashMap<String, AttributeValue>>;

/// The per-plan counters on the owner's plan allowance, if it has one.
fn plan_live(allowances: &Allowances, owner: &str) -> LiveUsage {
    allowances
        .get(&owner_allowance_id(owner))
        .map(live_plan_usage)
        .unwrap_or_default()
}

/// Read every page of an owner's keys.
async fn all_keys<S: KeyAdmin>(store: &S, owner: &str) -> Result<Vec<KeyRecord>, StoreError> {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_by_owner(owner, 100, cursor.as_deref()).await?;
        keys.extend(page.items);
        cursor = page.next;
        if cursor.is_none() {
            return Ok(keys);
        }
    }
}

/// An owner's keys and the allowance items they spend from (plus `more`,
/// allowances known from elsewhere, such as the directory, and the owner's
/// plan allowance if it has one), keyed by allowance id: what billing
/// totals and the daily report both start from.
///
/// The owner's plan allowance (`ALW#owner:<owner>`) is not in the
/// allowance directory; it is read for every owner the job finds there
/// instead. That finds every one with plan counters: they are written only
/// by decisions of the owner's keys, and every key's allowance is in the
/// directory. An owner never on a plan costs one missing key in the same
/// `BatchGetItem`.
async fn owner_snapshot<S: KeyAdmin + UsageStore>(
    store: &S,
    owner: &str,
    more: &[String],
) -> Result<(Vec<KeyRecord>, Allowances), StoreError> {
    let keys = all_keys(store, owner).await?;
    let mut ids = more.to_vec();
    ids.extend(keys.iter().map(|k| k.allowance_id.clone()));
    ids.push(owner_allowance_id(owner));
    let allowances = store.allowances(&ids).await?;
    Ok((keys, allowances))
}

impl<S, C> UsageService<S, C>
where
    S: KeyAdmin + UsageStore,
    C: Clock,
{
    pub fn new(store: S, clock: C, thresholds: Thresholds) -> Self {
        Self {
            store,
            clock,
            thresholds,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn today(&self) -> Day {
        Day::of(self.clock.now())
    }

    /// A key's daily series.
    pub async fn key_series(
        &self,
        caller: &Caller,
        key_id: &str,
        range: Range,
    ) -> Result<KeySeries, ManageError> {
        caller.require("usage:read")?;
        let id = KeyId::parse(key_id).ok_or(ManageError::NotFound)?;
        let record = self
            .store
            .key_by_id(&id)
            .await?
            .filter(|r| caller.may_manage(&r.owner))
            .ok_or(ManageError::NotFound)?;
        // History first: a move of counters between the two reads leaves
        // them out of this answer (the next has them), never in it twice.
        let archived = self
            .store
            .key_history(key_id, &range.from.to_string(), &range.to.to_string())
            .await?;
        let allowances = self
            .store
            .allowances(std::slice::from_ref(&record.allowance_id))
            .await?;
        let live: Vec<KeyDay> = allowances
            .values()
            .flat_map(|item| live_usage(item).key_days().collect::<Vec<_>>())
            .filter(|d| d.key_id == key_id && range.contains(&d.day))
            .collect();
        let days = merge(live, archived).remove(key_id).unwrap_or_default();
        let mut total = DayUsage::default();
        let series = range
            .from
            .through(range.to)
            .map(|d| {
                let day = d.to_string();
                let u = days.get(&day).cloned().unwrap_or_default();
                total.absorb(&u);
                SeriesDay::new(day, &u)
            })
            .collect();
        Ok(KeySeries {
            key_id: key_id.to_owned(),
            owner: record.owner,
            from: range.from.to_string(),
            to: range.to.to_string(),
            totals: Totals::from(&total),
            days: series,
        })
    }

    /// Per-key totals of an owner over a range, for billing.
    pub async fn owner_totals(
        &self,
        caller: &Caller,
        owner: Option<&str>,
        range: Range,
    ) -> Result<OwnerTotals, ManageError> {
        caller.require("usage:read")?;
        if let Some(o) = owner {
            validate_owner(o)?;
        }
        let owner = caller.owner_for(owner)?;
        // History first (see `key_series`).
        let (from, to) = (range.from.to_string(), range.to.to_string());
        let archived = self.store.owner_history(&owner, &from, &to).await?;
        let plan_archived = self.store.plan_history(&owner, &from, &to).await?;
        let (keys, allowances) = owner_snapshot(&self.store, &owner, &[]).await?;
        let live: Vec<KeyDay> = allowances
            .values()
            .flat_map(|item| live_usage(item).key_days().collect::<Vec<_>>())
            .filter(|d| range.contains(&d.day))
            .collect();
        let merged = merge(live, archived);
        let mut all = DayUsage::default();
        let mut seen = BTreeSet::new();
        let mut lines = Vec::new();
        let sum = |key_id: &str| {
            let mut t = DayUsage::default();
            for u in merged.get(key_id).into_iter().flat_map(BTreeMap::values) {
                t.absorb(u);
            }
            t
        };
        for k in &keys {
            seen.insert(k.key_id.as_str().to_owned());
            let t = sum(k.key_id.as_str());
            all.absorb(&t);
            lines.push(KeyTotals {
                key_id: k.key_id.as_str().to_owned(),
                name: Some(k.name.clone()),
                status: serde_json::to_value(k.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned)),
                totals: Totals::from(&t),
            });
        }
        for key_id in merged.keys().filter(|k| !seen.contains(*k)) {
            let t = sum(key_id);
            all.absorb(&t);
            lines.push(KeyTotals {
                key_id: key_id.clone(),
                name: None,
                status: None,
                totals: Totals::from(&t),
            });
        }
        lines.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        let plan_live = plan_live(&allowances, &owner);
        let plan_days = merge_plan_days(plan_live.plan_days(), plan_archived);
        Ok(OwnerTotals {
            plans: periods(&plan_days, range.from, range.to),
            owner,
            from: range.from.to_string(),
            to: range.to.to_string(),
            totals: Totals::from(&all),
            keys: lines,
        })
    }

    /// A stored daily report.
    pub async fn stored_report(
        &self,
        caller: &Caller,
        owner: Option<&str>,
        day: &str,
    ) -> Result<OwnerReport, ManageError> {
        caller.require("usage:read")?;
        if let Some(o) = owner {
            validate_owner(o)?;
        }
        let owner = caller.owner_for(owner)?;
        let day = Day::parse(day).ok_or_else(|| {
            ManageError::invalid("invalid_date", "day", "day must be a date as YYYY-MM-DD")
        })?;
        self.store
            .report(&owner, &day.to_string())
            .await?
            .ok_or(ManageError::NotFound)
    }

    /// The daily job: for every owner, the report of `day` (default:
    /// yesterday), stored and logged; then every finished day still on an
    /// allowance is archived and removed from it. One owner failing does
    /// not stop the others; the run then fails so it is retried (both steps
    /// are idempotent).
    pub async fn daily(&self, day: Option<Day>) -> Result<DailySummary, ReportError> {
        let now = self.clock.now();
        let today = Day::of(now);
        let day = day.unwrap_or(today.plus(-1));
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.store.directory(200, cursor.as_deref()).await?;
            for e in page.items {
                owners.entry(e.owner).or_default().push(e.allowance_id);
            }
            cursor = page.next;
            if cursor.is_none() {
                break;
            }
        }
        let mut summary = DailySummary {
            day: day.to_string(),
            owners: owners.len() as u64,
            ..Default::default()
        };
        for (owner, ids) in &owners {
            match self.owner_day(owner, ids, day, today, now).await {
                Ok((report, archived, archived_plans)) => {
                    summary.reports += 1;
                    summary.flags += report.flag_counts.values().sum::<u64>();
                    summary.archived_days += archived;
                    summary.archived_plan_days += archived_plans;
                    tracing::info!(
                        owner = %report.owner,
                        day = %report.day,
                        keys = report.keys,
                        active_keys = report.active_keys,
                        allowed = report.allowed,
                        denied = report.denied,
                        flags = %serde_json::to_string(&report.flags).unwrap_or_default(),
                        "usage report"
                    );
                }
                Err(e) => {
                    tracing::error!(owner = %owner, error = %e, cause = ?std::error::Error::source(&e), "usage report failed");
                    summary.failed_owners.push(owner.clone());
                }
            }
        }
        if summary.failed_owners.is_empty() {
            Ok(summary)
        } else {
            Err(ReportError::Partial(summary))
        }
    }

    /// One owner's report of `day`, then its finished days archived: key
    /// days and plan days. Returns the report and how many of each were
    /// archived.
    async fn owner_day(
        &self,
        owner: &str,
        directory_ids: &[String],
        day: Day,
        today: Day,
        now: i64,
    ) -> Result<(OwnerReport, u64, u64), StoreError> {
        let from = day.plus(-report::lookback(&self.thresholds));
        // History first (see `key_series`): another run moving counters
        // meanwhile cannot make this report count them twice.
        let (from_text, day_text) = (from.to_string(), day.to_string());
        let archived = self
            .store
            .owner_history(owner, &from_text, &day_text)
            .await?;
        let plan_archived = self
            .store
            .plan_history(owner, &from_text, &day_text)
            .await?;
        let (keys, allowances) = owner_snapshot(&self.store, owner, directory_ids).await?;
        let in_window = |d: &str| Day::parse(d).is_some_and(|x| from <= x && x <= day);
        let mut live_days = Vec::new();
        for item in allowances.values() {
            live_days.extend(live_usage(item).key_days().filter(|d| in_window(&d.day)));
        }
        let usage = merge(live_days, archived);
        let plan_live = plan_live(&allowances, owner);
        let plan = OwnerPlanUsage {
            quotas: allowances
                .get(&owner_allowance_id(owner))
                .and_then(PlanQuotas::of),
            days: merge_plan_days(
                plan_live.plan_days().filter(|d| in_window(&d.day)),
                plan_archived,
            ),
        };
        let report = report::build(owner, day, &keys, &usage, &plan, &self.thresholds, now);
        self.store.put_report(&report).await?;
        let (mut archived_days, mut archived_plans) = (0, 0);
        for allowance_id in allowances.keys() {
            let (store, id) = (&self.store, allowance_id.as_str());
            archived_days +=
                archive::finished_days(store, owner, id, Subject::Key, today, now).await?;
            if *allowance_id == owner_allowance_id(owner) {
                archived_plans +=
                    archive::finished_days(store, owner, id, Subject::Plan, today, now).await?;
            }
        }
        Ok((report, archived_days, archived_plans))
    }
}
