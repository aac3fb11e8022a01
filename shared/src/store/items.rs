//! Single-table layout. The table has a string partition key `pk` and sort
//! key `sk`; every item type below says what it keeps there.
//!
//! | item | pk | sk | what it holds |
//! |---|---|---|---|
//! | key record | `KEY#<sha256>` | `KEY` | [`KeyRecord`](crate::model::KeyRecord), plus `gpk`/`gsk` for the owner index |
//! | key id pointer | `KID#<key_id>` | `KEY` | `hash`, `owner`: find a record by its public id |
//! | allowance | `ALW#<allowance_id>` | `ALW` | live key versions, quota and rate counters, today's usage; `sh` when sharded |
//! | allowance shard | `ALW#<allowance_id>#<n>` | `ALW` | a sharded allowance's shard `n`: versions, its slices, allowed counts |
//! | usage history | `UOWN#<owner>` | `<day>#<key_id>` | one key's finished day ([`crate::usage::DayUsage`]); `gpk` `UKEY#<key_id>`, `gsk` `<day>` |
//! | plan usage history | `UOWN#<owner>` | `PLAN#<day>#<plan_id>` | the owner's finished day under one plan ([`crate::usage::plan_usage::PlanDay`]) |
//! | usage report | `RPT#<owner>` | `<day>` | [`crate::usage::report::OwnerReport`] |
//! | audit event | `AUDIT#<key_id>` | `<time>#<event id>` | [`AuditEvent`](crate::store::AuditEvent), immutable |
//! | plan | `PLAN#<plan_id>` | `PLAN` | [`Plan`](crate::plans::model::Plan); `gpk` `PLANS`, `gsk` `<plan_id>` (listing, in the owner index) |
//! | subscription | `OWNER#<owner>` | `PLAN` | [`Subscription`](crate::plans::model::Subscription): `plan_id` (absent: none), `since`, `version`, `history` (`[{plan_id, from}]`, the last [`MAX_HISTORY`](crate::plans::model::MAX_HISTORY) changes) |
//! | plan member | `PLANSUB#<plan_id>` | `<owner>` | `owner`, `since`: present while the owner is on the plan |
//! | owner plan allowance | `ALW#owner:<owner>` | `ALW` | the plan stamp ([`stamp`]); its counters ([`plan_counters`], [`plan_usage_attr`]) belong to the authorizer |
//! | plan / subscription audit event | `AUDIT#plan:<plan_id>`, `AUDIT#owner:<owner>` | `<time>#<event id>` | [`PlanEvent`](crate::plans::audit::PlanEvent), immutable |
//!
//! A plan's members are a partition of the table, not an index: a plan
//! update re-stamps them with a strongly consistent `Query` right after it
//! commits, so an owner subscribed a moment before is never missed (an
//! index lags its table by about a second). Subscribing writes the member
//! item, the subscription and the stamp in one transaction conditional on
//! the plan's version; moving deletes the old member item in it too.
//!
//! The allowance item is what the authorizer's single conditional write
//! touches: the map `kv` holds the current record version of every key that
//! may spend from it (revocation removes the entry, any record change bumps
//! the version, so a stale cached record can never be admitted), `ql`/`qt`/
//! `qs`/`qu` the quota (limit, period kind, period start, used), and
//! `rl`/`rw`/`rs`/`ru` the rate limit (limit, window length, window start,
//! used). Usage counters are flat attributes named
//! `u#<day>#<key_id>#...`, bounded per day (see [`usage_attr`]).

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// Owner index: partition and sort key attributes, and the index name.
pub const OWNER_INDEX: &str = "by_owner";
pub const GPK: &str = "gpk";
pub const GSK: &str = "gsk";
/// Rotation-due index (sparse: only keys with a rotation policy carry it).
pub const DUE_INDEX: &str = "by_due";
pub const DPK: &str = "dpk";
pub const DSK: &str = "dsk";
/// Partitions of the due index: keys whose delivery to Secrets Manager must
/// be finished, active keys by rotation due date, rotating keys by grace
/// deadline. A key is in at most one; revoked and retired keys in none.
pub const DUE_PROMOTE: &str = "PROMOTE";
pub const DUE_ROTATE: &str = "ROTATE";
pub const DUE_RETIRE: &str = "RETIRE";
/// Partition of the same keys-only index listing every allowance, sorted
/// `<owner>#<allowance_id>`: how the daily usage report finds all owners
/// without a scan.
pub const DIRECTORY: &str = "ALLOWANCES";

/// The due-index entry `(dpk, dsk)` of a record, if any.
pub fn due_entry(record: &crate::model::KeyRecord) -> Option<(&'static str, String)> {
    use crate::model::KeyStatus;
    let (partition, at) = match record.status {
        KeyStatus::Active if record.secret_pending => (DUE_PROMOTE, record.created_at),
        KeyStatus::Active => (DUE_ROTATE, record.rotation_due()?),
        KeyStatus::Rotating => (DUE_RETIRE, record.grace_until?),
        KeyStatus::Revoked | KeyStatus::Retired | KeyStatus::Quarantined => return None,
    };
    Some((partition, format!("{:012}#{}", at.max(0), record.key_id)))
}

/// TTL attribute: DynamoDB deletes long-dead records in the background.
pub const TTL: &str = "ttl";
/// A history item's version (`hv`), for archiving conditioned on it.
pub const HISTORY_VERSION: &str = "hv";

pub const KEY_SK: &str = "KEY";
pub const ALLOWANCE_SK: &str = "ALW";

pub fn key_pk(hash: &str) -> String {
    format!("KEY#{hash}")
}

pub fn key_id_pk(key_id: &str) -> String {
    format!("KID#{key_id}")
}

pub fn allowance_pk(allowance_id: &str) -> String {
    format!("ALW#{allowance_id}")
}

/// Shard `index` (1-based) of a sharded allowance: its own partition key
/// value, so its own partition (see `allowance-design.md`).
pub fn allowance_shard_pk(allowance_id: &str, index: u32) -> String {
    format!("ALW#{allowance_id}#{index}")
}

pub const PLAN_SK: &str = "PLAN";
/// Owner-index partition listing every plan (sorted by id).
pub const PLAN_DIRECTORY: &str = "PLANS";

pub fn plan_pk(plan_id: &str) -> String {
    format!("PLAN#{plan_id}")
}

/// The partition of a plan's members, one item per subscribed owner.
pub fn plan_member_pk(plan_id: &str) -> String {
    format!("PLANSUB#{plan_id}")
}

/// The allowance an owner's keys share under its plan: `ALW#owner:<owner>`
/// (a key's own allowance id is a key id, `key_...`, so they never meet).
pub fn owner_allowance_id(owner: &str) -> String {
    format!("owner:{owner}")
}

/// The plan stamp on an owner's plan allowance item (the contract with the
/// authorizer). Written only by `DynamoStore::stamp_owner_plan`, never any
/// other attribute of that item. An absent limit attribute is unlimited in
/// that dimension; an item without `pid` is on no plan.
pub mod stamp {
    /// Plan id (S).
    pub const PLAN_ID: &str = "pid";
    /// Stamp version (N): `if_not_exists(pv, 0) + 1` on every change of the
    /// stamp, so it strictly increases.
    pub const STAMP_VERSION: &str = "pv";
    /// The plan's version the stamp carries (N): re-stamping is
    /// conditional on it being older, so a retry changes nothing twice.
    pub const PLAN_VERSION: &str = "pver";
    /// Rate limit (N) and its window in seconds (N).
    pub const RATE_LIMIT: &str = "pr";
    pub const RATE_WINDOW: &str = "pw";
    /// Daily quota (N).
    pub const DAILY: &str = "pd";
    /// Monthly quota (N).
    pub const MONTHLY: &str = "pm";
}

/// The counters the authorizer keeps on an owner's plan allowance (the
/// contract the usage readers are built on): each limit's current period
/// start (epoch seconds) and what it has used in it. Per-plan usage is in
/// flat attributes named by [`plan_usage_attr`].
pub mod plan_counters {
    /// Start of the current daily-quota day (UTC midnight) and its use.
    pub const DAY_START: &str = "pds";
    pub const DAY_USED: &str = "pdu";
    /// Start of the current monthly-quota month (UTC first) and its use.
    pub const MONTH_START: &str = "pms";
    pub const MONTH_USED: &str = "pmu";
    /// Start of the current rate window and its use.
    pub const RATE_START: &str = "prs";
    pub const RATE_USED: &str = "pru";
    /// On a shard of a sharded plan allowance (`sh` > 1, shards
    /// `ALW#owner:<owner>#<i>`, each with a copy of the stamp): the shard's
    /// slice of each limit in its current period or window (the stamp's
    /// `pr`, `pd`, `pm` stay the plan's whole limits).
    pub const RATE_SLICE: &str = "prl";
    pub const DAY_SLICE: &str = "pdl";
    pub const MONTH_SLICE: &str = "pml";
}

/// The key-change fence on an owner's plan allowance (root and every
/// shard), N: epoch seconds until which a decision on the owner's plan may
/// not skip its key's own allowance. Every change of a key record of the
/// owner sets it to [`KEY_FENCE_SECONDS`] ahead before the change commits:
/// a key without limits of its own spends from its owner's plan in one
/// write, conditioned on no fence, and a fenced one writes its own
/// allowance too (whose version map `kv` the change updates), so a change
/// reaches the next request even of a container holding the old record.
pub const KEY_FENCE: &str = "kx";

/// How long a key change fences its owner's plan allowance, in seconds:
/// longer than a container keeps a record read before the change
/// (`AuthConfig::cache_ttl`, 10 s by default) plus the change's own
/// commit, with room for clocks a few seconds apart.
pub const KEY_FENCE_SECONDS: i64 = 60;

/// Prefix of the per-plan usage counters on an owner's plan allowance.
pub const PLAN_USAGE_PREFIX: &str = "pu#";

/// Name of a per-plan usage counter: requests of the owner's keys on `day`
/// (`YYYY-MM-DD`, UTC) while the owner was on `plan_id`. `what` is `ok`
/// (allowed) or `d#<reason>` (denied). A plan change inside a day splits
/// the day's counts between the two plan ids.
pub fn plan_usage_attr(day: &str, plan_id: &str, what: &str) -> String {
    format!("{PLAN_USAGE_PREFIX}{day}#{plan_id}#{what}")
}

/// Sort key of an archived plan day in the owner's usage history
/// partition: after every `<day>#<key_id>` (digits sort before `P`), so a
/// range of key days never meets one.
pub fn plan_history_sk(day: &str, plan_id: &str) -> String {
    format!("{PLAN_HISTORY_PREFIX}{day}#{plan_id}")
}

/// Prefix of [`plan_history_sk`].
pub const PLAN_HISTORY_PREFIX: &str = "PLAN#";

/// Audit partition of a key (`<key_id>`), a plan (`plan:<id>`) or an
/// owner's subscription (`owner:<owner>`).
pub fn audit_pk(key_id: &str) -> String {
    format!("AUDIT#{key_id}")
}

pub fn owner_pk(owner: &str) -> String {
    format!("OWNER#{owner}")
}

/// Allowance attributes.
pub mod alw {
    pub const VERSIONS: &str = "kv";
    pub const OWNER: &str = "owner";
    pub const QUOTA_LIMIT: &str = "ql";
    pub const QUOTA_KIND: &str = "qt";
    pub const QUOTA_START: &str = "qs";
    pub const QUOTA_USED: &str = "qu";
    pub const RATE_LIMIT: &str = "rl";
    pub const RATE_WINDOW: &str = "rw";
    pub const RATE_START: &str = "rs";
    pub const RATE_USED: &str = "ru";
    /// Shard count of a sharded allowance (root and shards); absent: single.
    pub const SHARDS: &str = "sh";
    /// Root only: bumped by every change of `kv` or the limits, so a reslice
    /// copies a `kv` that is still current.
    pub const ALLOWANCE_VERSION: &str = "av";
    /// Root only: bumped by every move of usage counters into the history
    /// (the daily job), so a move is conditioned on no other having
    /// happened since its read of the counters.
    pub const MOVES: &str = "mv";
    /// Admissions ever written to this item (root or shard): containers
    /// read its growth to see a partition heating before it throttles.
    pub const WRITES: &str = "wc";
}

/// Distinct source addresses kept per key and day: the first address to land
/// in each of these slots (by a hash of the address) stays.
pub const IP_SLOTS: u64 = 20;
/// Longest route label counted; longer ones are cut.
pub const MAX_ROUTE_LABEL: usize = 128;

/// Days of usage counters an allowance item keeps. The authorizer prunes
/// older ones (on its first write of a day per container), which bounds the
/// item: per day at most the key's bounded counters (10 deny reasons, route
/// labels from configuration, 20 address slots).
pub const USAGE_RETENTION_DAYS: i64 = 35;

/// Above this size (DynamoDB's rules, [`crate::store::size`]), the
/// authorizer's daily pruning removes the allowance's oldest usage counters,
/// archived or not, [`PRUNE_BATCH`] per decision, never those of its
/// [`LIVE_USAGE_DAYS`] newest days: DynamoDB refuses an item over
/// 400 KB, which would fail every decision of the key. In the steady state
/// the daily report job archives older days long before; this only acts when
/// that job has stopped for days and the key is busy on many routes (the
/// unarchived days are then lost, and the authorizer logs it). Bound: at most
/// this plus one day's growth (a rotated pair on 300 routes with 128-byte
/// labels, ~105 KB), under 400 KB.
pub const ALLOWANCE_PRUNE_BYTES: usize = 256 * 1024;

/// Usage counters removed per write, in one `UpdateItem` `REMOVE`. Each such
/// write costs the whole item's size in write units (a 300 KB allowance:
/// 300, nearly a third of a partition's second), so the authorizer removes
/// at most one batch per decision and spreads a large pruning over the next
/// requests. 100 placeholders keep the expression well under DynamoDB's
/// 4 KB expression limit, and under what the local emulator's parser
/// accepts (moto fails between 150 and 200).
pub const PRUNE_BATCH: usize = 100;

/// Days of usage counters an allowance item holds in the steady state: today,
/// and yesterday until the daily usage report archives it (00:15 UTC) and
/// removes it from the item. [`USAGE_RETENTION_DAYS`] only bounds the item if
/// that job stops.
pub const LIVE_USAGE_DAYS: i64 = 2;

/// Name of a usage counter for a key on a day. `what` is one of `ok`,
/// `d#<reason>`, `r#<route>` or `ip<slot>`.
pub fn usage_attr(day: &str, key_id: &str, what: &str) -> String {
    format!("u#{day}#{key_id}#{what}")
}

pub fn usage_owner_pk(owner: &str) -> String {
    format!("UOWN#{owner}")
}

pub fn usage_key_gpk(key_id: &str) -> String {
    format!("UKEY#{key_id}")
}

pub fn report_pk(owner: &str) -> String {
    format!("RPT#{owner}")
}

/// Days an archived usage day is kept (DynamoDB's TTL deletes it later):
/// enough for a year-long range plus a month.
pub const HISTORY_RETENTION_DAYS: i64 = 400;
