//! Sharded allowances over the table (see `../allowance-design.md`): the
//! layout read from the root, growth by reslicing, and a record change
//! carried to every shard in the change's own transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};

use super::{built, n, period_name, s, DynamoStore, Item};
use crate::clock::Timestamp;
use crate::limits::{Limits, Period, Rate};
use crate::store::items::{self, alw};
use crate::store::shards::{reslice, Counter, Slice};
use crate::store::StoreError;

/// A change of the version map `kv`: entries set to a version, entries
/// removed. The root's update (built by the caller) carries the version
/// conditions; shards take the same change under the layout condition.
#[derive(Debug, Clone, Default)]
pub(in crate::store) struct KvChange {
    pub set: Vec<(String, u64)>,
    pub remove: Vec<String>,
}

/// The root's layout as read.
#[derive(Debug, Clone)]
pub(in crate::store) struct Layout {
    /// 1: single.
    pub shards: u32,
    /// The root's allowance version (0 before its first change).
    pub version: u64,
    pub root: Item,
}

fn num(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn counter(item: &Item, start: &str, used: &str) -> Counter {
    Counter {
        start: num(item, start),
        used: num(item, used)
            .and_then(|u| u64::try_from(u).ok())
            .unwrap_or(0),
    }
}

/// The quota and rate limits the root holds (the key's full limits).
fn root_limits(root: &Item) -> Limits {
    let quota = match (num(root, alw::QUOTA_LIMIT), root.get(alw::QUOTA_KIND)) {
        (Some(limit), Some(kind)) => Some(crate::limits::Quota {
            limit: u64::try_from(limit).unwrap_or(0),
            period: if kind.as_s().map(String::as_str) == Ok("month") {
                Period::Month
            } else {
                Period::Day
            },
        }),
        _ => None,
    };
    let rate = match (num(root, alw::RATE_LIMIT), num(root, alw::RATE_WINDOW)) {
        (Some(limit), Some(window)) => Some(Rate {
            limit: u64::try_from(limit).unwrap_or(0),
            window: u32::try_from(window).unwrap_or(1),
        }),
        _ => None,
    };
    Limits { quota, rate }
}

/// Names and values of one shard write, collected while it is built.
#[derive(Default)]
pub(super) struct Parts {
    pub set: Vec<String>,
    pub remove: Vec<String>,
    pub cond: Vec<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Parts {
    /// The slice of one limit (`q`: quota, `r`: rate) for the period
    /// starting at `current`, under the condition that the shard's counter
    /// is still in the period it was read in and not past its new slice.
    fn slice(&mut self, tag: &str, names: [&str; 4], current: Timestamp, slice: &Slice) {
        let [limit, kind, start, used] = names;
        self.names.insert(format!("#{tag}l"), limit.into());
        self.names.insert(format!("#{tag}t"), kind.into());
        self.names.insert(format!("#{tag}s"), start.into());
        self.names.insert(format!("#{tag}u"), used.into());
        self.values.insert(format!(":{tag}l"), n(slice.limit));
        match slice.read.start {
            Some(read) if read == current => {
                self.values.insert(format!(":{tag}r"), n(read));
                self.cond
                    .push(format!("#{tag}s = :{tag}r AND #{tag}u <= :{tag}l"));
            }
            // Counting a period of another kind (the limit's period or window
            // changed): its use carries into this one.
            Some(read) if read > current => {
                self.values.insert(format!(":{tag}r"), n(read));
                self.values.insert(format!(":{tag}c"), n(current));
                self.cond
                    .push(format!("#{tag}s = :{tag}r AND #{tag}u <= :{tag}l"));
                self.set.push(format!("#{tag}s = :{tag}c"));
            }
            Some(read) => {
                self.values.insert(format!(":{tag}r"), n(read));
                self.values.insert(format!(":{tag}c"), n(current));
                self.values.insert(format!(":{tag}z"), n(0));
                self.cond.push(format!("#{tag}s = :{tag}r"));
                self.set
                    .push(format!("#{tag}s = :{tag}c, #{tag}u = :{tag}z"));
            }
            None => {
                self.values.insert(format!(":{tag}c"), n(current));
                self.values.insert(format!(":{tag}z"), n(0));
                self.cond.push(format!("attribute_not_exists(#{tag}s)"));
                self.set
                    .push(format!("#{tag}s = :{tag}c, #{tag}u = :{tag}z"));
            }
        }
        self.set.push(format!("#{tag}l = :{tag}l"));
    }

    fn kind(&mut self, tag: &str, value: AttributeValue) {
        self.values.insert(format!(":{tag}k"), value);
        self.set.push(format!("#{tag}t = :{tag}k"));
    }

    fn drop_limit(&mut self, tag: &str, names: [&str; 4]) {
        for (suffix, name) in ["l", "t", "s", "u"].iter().zip(names) {
            self.names.insert(format!("#{tag}{suffix}"), name.into());
            self.remove.push(format!("#{tag}{suffix}"));
        }
    }

    pub(super) fn expression(&self) -> String {
        let mut expr = String::new();
        if !self.set.is_empty() {
            expr.push_str(&format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", self.remove.join(", ")));
        }
        expr
    }
}

const QUOTA: [&str; 4] = [
    alw::QUOTA_LIMIT,
    alw::QUOTA_KIND,
    alw::QUOTA_START,
    alw::QUOTA_USED,
];
const RATE: [&str; 4] = [
    alw::RATE_LIMIT,
    alw::RATE_WINDOW,
    alw::RATE_START,
    alw::RATE_USED,
];

impl DynamoStore {
    /// The key of shard `index` (1-based) of an allowance.
    pub(in crate::store) fn shard_key(allowance_id: &str, index: u32) -> Item {
        Self::key_of(
            items::allowance_shard_pk(allowance_id, index),
            items::ALLOWANCE_SK,
        )
    }

    /// The conditional update `parts` describe, as a transaction action.
    pub(super) fn action(&self, key: Item, parts: Parts) -> Result<TransactWriteItem, StoreError> {
        Ok(TransactWriteItem::builder()
            .update(self.update_of(key, parts)?)
            .build())
    }

    /// One shard's conditional update, as a transaction action.
    fn shard_update(
        &self,
        allowance_id: &str,
        index: u32,
        parts: Parts,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self.update_of(Self::shard_key(allowance_id, index), parts)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The conditional update `parts` describe, on the item with `key`.
    pub(super) fn update_of(&self, key: Item, parts: Parts) -> Result<Update, StoreError> {
        built(
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression(parts.expression())
                .condition_expression(parts.cond.join(" AND "))
                .set_expression_attribute_names(Some(parts.names))
                .set_expression_attribute_values(Some(parts.values))
                .build(),
        )
    }

    /// The root as it is now (strongly consistent), and its layout.
    pub(in crate::store) async fn layout(&self, allowance_id: &str) -> Result<Layout, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(allowance_id)))
            .consistent_read(true)
            .send()
            .await?;
        let root = out.item.ok_or(StoreError::NotFound)?;
        Ok(Layout {
            shards: num(&root, alw::SHARDS)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(1)
                .max(1),
            version: num(&root, alw::ALLOWANCE_VERSION)
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
            root,
        })
    }

    /// After a change built for a single allowance failed its conditions:
    /// the layout, if the allowance is in fact sharded (build it again with
    /// it), or `None` (the failure was a real conflict).
    pub(in crate::store) async fn sharded_layout(
        &self,
        allowance_id: &str,
    ) -> Result<Option<Layout>, StoreError> {
        let layout = self.layout(allowance_id).await?;
        Ok((layout.shards > 1).then_some(layout))
    }

    /// Shards 1..=count of an allowance, in order (a missing one as an empty
    /// item), read with one `BatchGetItem` (strongly consistent if asked).
    pub(in crate::store) async fn shard_items(
        &self,
        allowance_id: &str,
        count: u32,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let keys: Vec<Item> = (1..=count)
            .map(|i| Self::shard_key(allowance_id, i))
            .collect();
        let mut found: HashMap<String, Item> = HashMap::new();
        for item in self.batch_get(keys, consistent).await? {
            if let Some(pk) = item.get(items::PK).and_then(|v| v.as_s().ok()) {
                found.insert(pk.clone(), item);
            }
        }
        Ok((1..=count)
            .map(|i| {
                found
                    .remove(&items::allowance_shard_pk(allowance_id, i))
                    .unwrap_or_default()
            })
            .collect())
    }

    /// Shards 1..=count as they are now, in order, from one strongly
    /// consistent `BatchGetItem` and no retry (see [`crate::store::Admission::survey`]).
    pub(in crate::store) async fn survey_shards(
        &self,
        allowance_id: &str,
        count: u32,
    ) -> Result<Vec<Option<Item>>, StoreError> {
        let keys: Vec<Item> = (1..=count.min(crate::store::shards::MAX_SHARDS))
            .map(|i| Self::shard_key(allowance_id, i))
            .collect();
        let (got, _unprocessed) = self.batch_get_once(keys, true).await?;
        let mut found: HashMap<String, Item> = HashMap::new();
        for item in got {
            if let Some(pk) = item.get(items::PK).and_then(|v| v.as_s().ok()) {
                found.insert(pk.clone(), item);
            }
        }
        Ok((1..=count)
            .map(|i| found.remove(&items::allowance_shard_pk(allowance_id, i)))
            .collect())
    }

    /// The allowance side of a record change: the caller's `root` update,
    /// guarded by the layout it was read in (and bumping the root's `av`),
    /// plus, on a sharded allowance, the same `kv` change on every shard,
    /// and their new slices if `limits` changed (`Some(new limits)`).
    ///
    /// With no `layout`, the allowance is taken to be single (nothing is
    /// read: the common case costs what it did); if it is not, the root's
    /// condition fails and [`DynamoStore::sharded_layout`] tells the caller
    /// to build the change again with the layout.
    pub(in crate::store) async fn allowance_actions(
        &self,
        allowance_id: &str,
        root: Update,
        kv: &KvChange,
        limits: Option<&Limits>,
        now: Timestamp,
        layout: Option<&Layout>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let shards = layout.map_or(1, |l| l.shards);
        let mut actions = vec![TransactWriteItem::builder()
            .update(guard_root(root, shards)?)
            .build()];
        let Some(layout) = layout.filter(|l| l.shards > 1) else {
            return Ok(actions);
        };
        let shards = match limits {
            Some(_) => self.shard_items(allowance_id, layout.shards, true).await?,
            None => Vec::new(),
        };
        let plan = match limits {
            Some(l) => Some(Slices::of(l, &layout.root, &shards, layout.shards, now)?),
            None => None,
        };
        for index in 1..=layout.shards {
            let mut parts = Parts::default();
            parts.names.insert("#kv".into(), alw::VERSIONS.into());
            parts.names.insert("#sh".into(), alw::SHARDS.into());
            parts.values.insert(":shn".into(), n(layout.shards));
            parts.cond.push("#sh = :shn".into());
            for (i, (key_id, version)) in kv.set.iter().enumerate() {
                parts.names.insert(format!("#k{i}"), key_id.clone());
                parts.values.insert(format!(":k{i}"), n(*version));
                parts.set.push(format!("#kv.#k{i} = :k{i}"));
            }
            for (i, key_id) in kv.remove.iter().enumerate() {
                parts.names.insert(format!("#x{i}"), key_id.clone());
                parts.remove.push(format!("#kv.#x{i}"));
            }
            if let (Some(limits), Some(plan)) = (limits, &plan) {
                plan.apply(limits, index, &mut parts);
            }
            actions.push(self.shard_update(allowance_id, index, parts)?);
        }
        Ok(actions)
    }

    /// Grow an allowance to `to` shards. From single, in two steps, so that
    /// neither competes with the hot root for long: one `UpdateItem` sets
    /// the root's `sh` (from then on no plan admits on the root, so its
    /// counters are final), then one transaction creates every shard with
    /// an even share of what the root left (writes to the new shards'
    /// partitions only). A container that finds the shards missing (the
    /// second step lost or not yet made) makes the second step itself:
    /// shards are created all at once, only if none exists. From sharded,
    /// one consistent read of the root and its shards and one transaction
    /// reslicing onto more. Returns the shard count after it (another
    /// container's growth may have won: [`StoreError::Conflict`], and the
    /// next write tells the layout).
    pub(in crate::store) async fn grow_to(
        &self,
        allowance_id: &str,
        to: u32,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let layout = self.layout(allowance_id).await?;
        if layout.shards <= 1 {
            let root = self.freeze(allowance_id, to).await?;
            self.create_shards(allowance_id, &root, to, now).await?;
            return Ok(to);
        }
        let shards = self.shard_items(allowance_id, layout.shards, true).await?;
        if shards.iter().all(HashMap::is_empty) {
            self.create_shards(allowance_id, &layout.root, layout.shards, now)
                .await?;
            return Ok(layout.shards);
        }
        if layout.shards >= to {
            return Ok(layout.shards);
        }
        self.reslice_to(allowance_id, &layout, &shards, to, now)
            .await
    }

    /// Step one of a growth from single: the root takes its shard count
    /// (if still single) and stops admitting. Returns the root after it.
    async fn freeze(&self, allowance_id: &str, to: u32) -> Result<Item, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(allowance_id)))
            .update_expression("SET #sh = :to")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#sh)")
            .expression_attribute_names("#sh", alw::SHARDS)
            .expression_attribute_names("#pk", items::PK)
            .expression_attribute_values(":to", n(to))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => out
                .attributes
                .ok_or(StoreError::Corrupt("no root after the update")),
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Err(StoreError::Conflict),
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }

    /// Step two: every shard, at once and only if none exists, each with
    /// the root's version map and an even share of what the frozen root
    /// left of each limit in the current period.
    async fn create_shards(
        &self,
        allowance_id: &str,
        root: &Item,
        count: u32,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let limits = root_limits(root);
        let plan = Slices::of(&limits, root, &[], count, now)?;
        let versions = root
            .get(alw::VERSIONS)
            .cloned()
            .unwrap_or(AttributeValue::M(HashMap::new()));
        let mut actions = Vec::new();
        for index in 1..=count {
            let item = plan.new_shard(allowance_id, (index, count), &versions, &limits);
            actions.push(self.put_new(item)?);
        }
        match self.transact(actions).await {
            // Another container made them.
            Ok(_) | Err(StoreError::Conflict) => {
                tracing::info!(allowance = %allowance_id, shards = count, "allowance sharded");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Reslice a sharded allowance onto `to` (more) shards: its shards keep
    /// what they used and everything left is shared out anew, in one
    /// transaction conditioned on what was read. Returns `to`.
    async fn reslice_to(
        &self,
        allowance_id: &str,
        layout: &Layout,
        shards: &[Item],
        to: u32,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let from = layout.shards;
        let limits = root_limits(&layout.root);
        let plan = Slices::of(&limits, &layout.root, shards, to, now)?;
        // The `kv` copied to new shards is the one read: no record change
        // may come between (each bumps `av`).
        let mut parts = Parts::default();
        parts.names.insert("#sh".into(), alw::SHARDS.into());
        parts
            .names
            .insert("#av".into(), alw::ALLOWANCE_VERSION.into());
        parts.values.insert(":to".into(), n(to));
        parts.set.push("#sh = :to".into());
        if layout.version == 0 {
            parts.cond.push("attribute_not_exists(#av)".into());
        } else {
            parts.values.insert(":av".into(), n(layout.version));
            parts.cond.push("#av = :av".into());
        }
        let root = self.update_of(Self::allowance_key(allowance_id), parts)?;
        let mut actions = vec![TransactWriteItem::builder()
            .update(guard_root(root, from)?)
            .build()];
        let versions = layout
            .root
            .get(alw::VERSIONS)
            .cloned()
            .unwrap_or(AttributeValue::M(HashMap::new()));
        for index in 1..=to {
            if index <= from {
                let mut parts = Parts::default();
                parts.names.insert("#sh".into(), alw::SHARDS.into());
                parts.values.insert(":shn".into(), n(from));
                parts.values.insert(":to".into(), n(to));
                parts.cond.push("#sh = :shn".into());
                parts.set.push("#sh = :to".into());
                plan.apply(&limits, index, &mut parts);
                actions.push(self.shard_update(allowance_id, index, parts)?);
            } else {
                let item = plan.new_shard(allowance_id, (index, to), &versions, &limits);
                actions.push(self.put_new(item)?);
            }
        }
        self.transact(actions).await?;
        tracing::info!(allowance = %allowance_id, from, to, "allowance resliced");
        Ok(to)
    }
}

/// The root's update, conditioned on the layout it was built for (so a
/// concurrent growth cannot leave a shard with an old `kv`), bumping `av`
/// (so a growth that read the root before this change fails).
fn guard_root(root: Update, shards: u32) -> Result<Update, StoreError> {
    let mut names = root.expression_attribute_names.clone().unwrap_or_default();
    let mut values = root.expression_attribute_values.clone().unwrap_or_default();
    names.insert("#sh_g".into(), alw::SHARDS.into());
    names.insert("#av_g".into(), alw::ALLOWANCE_VERSION.into());
    values.insert(":one_g".into(), n(1));
    let mut cond = match root.condition_expression.as_deref() {
        Some(c) => vec![format!("({c})")],
        None => Vec::new(),
    };
    if shards <= 1 {
        cond.push("attribute_not_exists(#sh_g)".into());
    } else {
        values.insert(":sh_g".into(), n(shards));
        cond.push("#sh_g = :sh_g".into());
    }
    if root.update_expression.contains("ADD ") {
        return Err(StoreError::Corrupt("a root update with its own ADD clause"));
    }
    built(
        Update::builder()
            .table_name(root.table_name)
            .set_key(Some(root.key))
            .update_expression(format!("{} ADD #av_g :one_g", root.update_expression))
            .condition_expression(cond.join(" AND "))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build(),
    )
}

/// One limit's part of a reslice: its current period and each shard's
/// slice.
struct LimitSlices {
    current: Timestamp,
    slices: Vec<Slice>,
}

impl LimitSlices {
    /// A counter in a later period that is not a period of this kind
    /// (`aligned` says which starts are) counts a period of the kind the
    /// limit had before it changed: its use carries into the current one.
    fn of(
        limit: u64,
        current: Timestamp,
        (root, shards): (&Item, &[Item]),
        names: [&str; 4],
        (count, eligible): (u32, u32),
        aligned: impl Fn(Timestamp) -> bool,
    ) -> Self {
        let [_, _, start, used] = names;
        let carried = |c: Counter| match c.start {
            Some(s) if s > current && !aligned(s) => Counter {
                start: Some(current),
                ..c
            },
            _ => c,
        };
        let root_used = carried(counter(root, start, used)).used_in(current);
        let read: Vec<Counter> = shards.iter().map(|s| counter(s, start, used)).collect();
        let counted: Vec<Counter> = read.iter().copied().map(carried).collect();
        let mut slices = reslice(limit, (count, eligible), current, root_used, &counted);
        // Conditions are on what was read.
        for (slice, read) in slices.iter_mut().zip(&read) {
            slice.read = *read;
        }
        Self { current, slices }
    }
}

/// The slices of a reslice, per limit.
struct Slices {
    quota: Option<LimitSlices>,
    rate: Option<LimitSlices>,
}

impl Slices {
    /// The slices for the period `now` is in. A counter already in a later
    /// period (another container's clock is ahead, or this reading is
    /// old) makes it [`StoreError::Conflict`]: moving it back would let it
    /// count its period twice.
    fn of(
        limits: &Limits,
        root: &Item,
        shards: &[Item],
        count: u32,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        // A counter already in a later period of the same kind: this reading
        // is behind (moving it back would count its period twice).
        let ahead = |names: [&str; 4], current: Timestamp, aligned: &dyn Fn(Timestamp) -> bool| {
            let [_, _, start, _] = names;
            std::iter::once(root)
                .chain(shards)
                .filter_map(|item| num(item, start))
                .any(|s| s > current && aligned(s))
        };
        let eligible = crate::store::Target::eligible(limits, count);
        let quota = limits.quota.map(|q| {
            let current = q.period.window(now).start;
            let aligned = move |s: Timestamp| q.period.window(s).start == s;
            let slices = LimitSlices::of(
                q.limit,
                current,
                (root, shards),
                QUOTA,
                (count, eligible),
                aligned,
            );
            (ahead(QUOTA, current, &aligned), slices)
        });
        let rate = limits.rate.map(|r| {
            let current = r.window_at(now).start;
            let aligned = move |s: Timestamp| r.window_at(s).start == s;
            let slices = LimitSlices::of(
                r.limit,
                current,
                (root, shards),
                RATE,
                (count, eligible),
                aligned,
            );
            (ahead(RATE, current, &aligned), slices)
        });
        if quota.iter().chain(rate.iter()).any(|(ahead, _)| *ahead) {
            return Err(StoreError::Conflict);
        }
        Ok(Self {
            quota: quota.map(|(_, s)| s),
            rate: rate.map(|(_, s)| s),
        })
    }

    /// The slice writes of an existing shard.
    fn apply(&self, limits: &Limits, index: u32, parts: &mut Parts) {
        let i = index as usize - 1;
        match (&self.quota, limits.quota) {
            (Some(q), Some(quota)) => {
                parts.slice("q", QUOTA, q.current, &q.slices[i]);
                parts.kind("q", s(period_name(quota.period)));
            }
            _ => parts.drop_limit("q", QUOTA),
        }
        match (&self.rate, limits.rate) {
            (Some(r), Some(rate)) => {
                parts.slice("r", RATE, r.current, &r.slices[i]);
                parts.kind("r", n(rate.window));
            }
            _ => parts.drop_limit("r", RATE),
        }
    }

    /// A new shard item: shard `index` of `count`, with the version map and
    /// its slices.
    fn new_shard(
        &self,
        allowance_id: &str,
        (index, count): (u32, u32),
        versions: &AttributeValue,
        limits: &Limits,
    ) -> Item {
        let mut item = DynamoStore::shard_key(allowance_id, index);
        item.insert(alw::SHARDS.into(), n(count));
        item.insert(alw::VERSIONS.into(), versions.clone());
        self.fill(limits, index, &mut item);
        item
    }

    /// The counters of a new shard.
    fn fill(&self, limits: &Limits, index: u32, item: &mut Item) {
        let i = index as usize - 1;
        if let (Some(q), Some(quota)) = (&self.quota, limits.quota) {
            item.insert(alw::QUOTA_LIMIT.into(), n(q.slices[i].limit));
            item.insert(alw::QUOTA_KIND.into(), s(period_name(quota.period)));
            item.insert(alw::QUOTA_START.into(), n(q.current));
            item.insert(alw::QUOTA_USED.into(), n(0));
        }
        if let (Some(r), Some(rate)) = (&self.rate, limits.rate) {
            item.insert(alw::RATE_LIMIT.into(), n(r.slices[i].limit));
            item.insert(alw::RATE_WINDOW.into(), n(rate.window));
            item.insert(alw::RATE_START.into(), n(r.current));
            item.insert(alw::RATE_USED.into(), n(0));
        }
    }
}
