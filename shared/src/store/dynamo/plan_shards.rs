//! Owners' plan allowances past one partition (see `store/plan_admission.rs`
//! and `allowance-design.md`, "Plan allowances"): the layout read, growth
//! onto more shards, and a stamp change carried to every shard, each in one
//! transaction so that the root and every shard always carry the same
//! stamp version `pv`. The slices of each plan limit always sum to it.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, ReturnValue, TransactWriteItem, Update,
};

use super::shards::Parts;
use super::{built, n, DynamoStore, Item};
use crate::clock::Timestamp;
use crate::store::items::{self, alw, plan_counters as counters, stamp};
use crate::store::plan_admission::{PlanLimit, PlanStamp};
use crate::store::shards::{reslice, Counter, Slice};
use crate::store::StoreError;

/// The stamp attributes a shard copies from its root.
pub(super) const STAMP: [&str; 6] = [
    stamp::PLAN_ID,
    stamp::PLAN_VERSION,
    stamp::RATE_LIMIT,
    stamp::RATE_WINDOW,
    stamp::DAILY,
    stamp::MONTHLY,
];

/// When a single plan allowance was frozen to grow (epoch seconds, on the
/// root): its shards share out what it left in the periods of that time.
const FROZEN_AT: &str = "pfz";

/// An owner's plan allowance as read (strongly consistent).
#[derive(Debug, Clone)]
pub(in crate::store) struct PlanLayout {
    /// Empty if the item does not exist.
    pub root: Item,
    /// 1: single.
    pub shards: u32,
    /// The root's stamp version (0 before the first stamp).
    pub version: u64,
    /// Shards 1..=`shards` in order (empty when single).
    pub items: Vec<Item>,
}

fn num(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// Each shard's new slice of one limit for its current window or period,
/// and the condition it is written under.
struct LimitSlices {
    which: PlanLimit,
    current: Timestamp,
    slices: Vec<Slice>,
}

impl LimitSlices {
    /// Share what is left of `stamp`'s limit `which` over `count` shards
    /// (the first `eligible` get any), keeping what each used. A counter in
    /// a later period of this kind means this reading is behind
    /// ([`StoreError::Conflict`]: moving it back would count its period
    /// twice); one in a later period of another kind (the rate window
    /// changed) counts toward the current one.
    fn of(
        stamp: &PlanStamp,
        which: PlanLimit,
        layout: &PlanLayout,
        (count, eligible): (u32, u32),
        now: Timestamp,
    ) -> Result<Option<Self>, StoreError> {
        let Some(limit) = stamp
            .limits()
            .into_iter()
            .find(|(w, _)| *w == which)
            .and_then(|(_, l)| l)
        else {
            return Ok(None);
        };
        let [_, start, used, _] = which.names();
        let current = which.current(stamp, now);
        let aligned = |s: Timestamp| which.current(stamp, s) == s;
        let read = |item: &Item| Counter {
            start: num(item, start),
            used: num(item, used)
                .and_then(|u| u64::try_from(u).ok())
                .unwrap_or(0),
        };
        let counted = |c: Counter| -> Result<Counter, StoreError> {
            match c.start {
                Some(s) if s > current && aligned(s) => Err(StoreError::Conflict),
                Some(s) if s > current => Ok(Counter {
                    start: Some(current),
                    ..c
                }),
                _ => Ok(c),
            }
        };
        let root_used = counted(read(&layout.root))?.used_in(current);
        let mut shards = Vec::new();
        for item in &layout.items {
            shards.push(counted(read(item))?);
        }
        let mut slices = reslice(limit, (count, eligible), current, root_used, &shards);
        // Conditions are on what was read.
        for (slice, item) in slices.iter_mut().zip(&layout.items) {
            slice.read = read(item);
        }
        Ok(Some(Self {
            which,
            current,
            slices,
        }))
    }
}

/// Set a shard's slice of a limit, conditioned on its counter still
/// counting the period it was read in and not past the new slice (its use
/// may have moved since the read; a unit it admitted in between is within
/// the slice, so the slices still sum to the limit: else the write fails
/// and is made again from a fresh read).
fn slice(parts: &mut Parts, limit: &LimitSlices, index: usize) {
    let [_, start, used, bound] = limit.which.names();
    let slice = &limit.slices[index];
    let t = limit.which.tag();
    parts.names.insert(format!("#{t}s"), start.into());
    parts.names.insert(format!("#{t}b"), bound.into());
    parts.values.insert(format!(":{t}b"), n(slice.limit));
    parts.set.push(format!("#{t}b = :{t}b"));
    match slice.read.start {
        Some(read) => {
            parts.values.insert(format!(":{t}r"), n(read));
            parts.cond.push(format!("#{t}s = :{t}r"));
        }
        None => parts.cond.push(format!("attribute_not_exists(#{t}s)")),
    }
    parts.names.insert(format!("#{t}u"), used.into());
    match slice.read.start {
        Some(read) if read == limit.current => parts.cond.push(format!("#{t}u <= :{t}b")),
        // Counting a window of another length (the rate window changed):
        // its use carries into the current one, whatever it is by then.
        Some(read) if read > limit.current => {
            parts.cond.push(format!("#{t}u <= :{t}b"));
            parts.values.insert(format!(":{t}c"), n(limit.current));
            parts.set.push(format!("#{t}s = :{t}c"));
        }
        // An older period: nothing of it counts in this one.
        _ => {
            parts.values.insert(format!(":{t}c"), n(limit.current));
            parts.values.insert(format!(":{t}z"), n(0));
            parts.set.push(format!("#{t}s = :{t}c, #{t}u = :{t}z"));
        }
    }
}

/// The latest of `now` and of every period start the root and the shards
/// counted: other containers' clocks may be a window ahead of this one's,
/// and slices are of the latest period anyone has counted.
fn latest(now: Timestamp, layout: &PlanLayout) -> Timestamp {
    let starts = [
        counters::RATE_START,
        counters::DAY_START,
        counters::MONTH_START,
    ];
    std::iter::once(&layout.root)
        .chain(&layout.items)
        .flat_map(|item| starts.iter().filter_map(|name| num(item, name)))
        .fold(now, Timestamp::max)
}

/// A new shard: the root's stamp and key-change fence, `pv` and `sh` of the
/// layout, and its slice of each limit in the current periods.
fn new_shard(
    key: Item,
    root: &Item,
    (version, count): (u64, u32),
    slices: &[LimitSlices],
    index: usize,
) -> Item {
    let mut item = key;
    for attr in STAMP.iter().chain([&items::KEY_FENCE]) {
        if let Some(v) = root.get(*attr) {
            item.insert((*attr).into(), v.clone());
        }
    }
    item.insert(stamp::STAMP_VERSION.into(), n(version));
    item.insert(alw::SHARDS.into(), n(count));
    for limit in slices {
        let [_, start, used, bound] = limit.which.names();
        item.insert(start.into(), n(limit.current));
        item.insert(used.into(), n(0));
        item.insert(bound.into(), n(limit.slices[index].limit));
    }
    item
}

/// The stamp attributes of `plan`: each with its value, or `None` (removed).
fn stamp_values(
    plan: Option<&crate::plans::model::PlanStamp<'_>>,
) -> Vec<(&'static str, Option<AttributeValue>)> {
    match plan {
        Some(p) => {
            let l = p.limits;
            vec![
                (
                    stamp::PLAN_ID,
                    Some(AttributeValue::S(p.plan_id.to_owned())),
                ),
                (stamp::PLAN_VERSION, Some(n(p.plan_version))),
                (stamp::RATE_LIMIT, l.rate.map(|r| n(r.limit))),
                (stamp::RATE_WINDOW, l.rate.map(|r| n(r.window))),
                (stamp::DAILY, l.daily.map(n)),
                (stamp::MONTHLY, l.monthly.map(n)),
            ]
        }
        None => STAMP.iter().map(|a| (*a, None)).collect(),
    }
}

impl DynamoStore {
    /// The owner's plan allowance and its shards, strongly consistent (one
    /// `GetItem`, and one `BatchGetItem` when sharded).
    pub(in crate::store) async fn plan_layout(
        &self,
        owner: &str,
    ) -> Result<PlanLayout, StoreError> {
        let id = items::owner_allowance_id(owner);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(&id)))
            .consistent_read(true)
            .send()
            .await?;
        let root = out.item.unwrap_or_default();
        let shards = num(&root, alw::SHARDS)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(1)
            .max(1);
        let mut items = if shards > 1 {
            self.shard_items(&id, shards, true).await?
        } else {
            Vec::new()
        };
        let mut layout = PlanLayout {
            version: num(&root, stamp::STAMP_VERSION)
                .and_then(|v| u64::try_from(v).ok())
                .unwrap_or(0),
            root,
            shards,
            items: Vec::new(),
        };
        // A growth whose second step was not made (or lost): make it.
        if shards > 1 && items.iter().all(HashMap::is_empty) {
            self.create_plan_shards(owner, &layout).await?;
            items = self.shard_items(&id, shards, true).await?;
        }
        layout.items = items;
        Ok(layout)
    }

    /// Step two of a growth from single: every shard at once, only if none
    /// exists, with what the frozen root left of each limit in the periods
    /// it counted (the periods at the freeze, so a later completion shares
    /// out the same units); [`StoreError::Conflict`] (someone made them) is
    /// success.
    async fn create_plan_shards(&self, owner: &str, layout: &PlanLayout) -> Result<(), StoreError> {
        let Some(stamp) = PlanStamp::from_item(owner, &layout.root) else {
            // Unsubscribed meanwhile: shards without a stamp, so no spend
            // is admitted on them.
            return self.create_bare_shards(owner, layout).await;
        };
        // The latest of the freeze and of every period the root counted
        // (a container with a later clock may have written it in the next
        // rate window before the freeze): no counter is then ahead.
        let at = latest(num(&layout.root, FROZEN_AT).unwrap_or(0), layout);
        let mut slices = Vec::new();
        let empty = PlanLayout {
            items: Vec::new(),
            ..layout.clone()
        };
        for which in PlanLimit::ALL {
            let count = (layout.shards, stamp.eligible());
            if let Some(s) = LimitSlices::of(&stamp, which, &empty, count, at)? {
                slices.push(s);
            }
        }
        let id = stamp.allowance_id();
        let mut actions = vec![self.root_unchanged(&id, layout)?];
        for index in 1..=layout.shards {
            let key = Self::shard_key(&id, index);
            let item = new_shard(
                key,
                &layout.root,
                (layout.version, layout.shards),
                &slices,
                index as usize - 1,
            );
            actions.push(self.put_new(item)?);
        }
        match self.transact(actions).await {
            // Made by someone else, or being made right now.
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) if e.is_transaction_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A check that the root is still as read: its stamp version and its
    /// key-change fence (shards copy both).
    fn root_unchanged(
        &self,
        id: &str,
        layout: &PlanLayout,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(id)))
            .expression_attribute_names("#pv", stamp::STAMP_VERSION)
            .expression_attribute_names("#kx", items::KEY_FENCE)
            .expression_attribute_values(":pv", n(layout.version));
        check = match layout.root.get(items::KEY_FENCE) {
            Some(fence) => check
                .expression_attribute_values(":kx", fence.clone())
                .condition_expression("#pv = :pv AND #kx = :kx"),
            None => check.condition_expression("#pv = :pv AND attribute_not_exists(#kx)"),
        };
        Ok(TransactWriteItem::builder()
            .condition_check(built(check.build())?)
            .build())
    }

    /// Shards of an owner no longer on a plan: the layout only.
    async fn create_bare_shards(&self, owner: &str, layout: &PlanLayout) -> Result<(), StoreError> {
        let id = items::owner_allowance_id(owner);
        let mut actions = vec![self.root_unchanged(&id, layout)?];
        for index in 1..=layout.shards {
            let key = Self::shard_key(&id, index);
            let item = new_shard(key, &layout.root, (layout.version, layout.shards), &[], 0);
            actions.push(self.put_new(item)?);
        }
        match self.transact(actions).await {
            // Made by someone else, or being made right now.
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) if e.is_transaction_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The updates that stamp a sharded plan allowance with `plan` (or
    /// clear it): the root and every shard at the next stamp version, the
    /// root conditioned on the version and layout read, each shard on the
    /// layout and on its counters' periods as read, with its slices of the
    /// new limits (what it used, plus its share of what is left: raising a
    /// limit keeps the use, lowering it below the use leaves no shard room).
    pub(in crate::store) fn sharded_stamp(
        &self,
        owner: &str,
        layout: &PlanLayout,
        plan: Option<&crate::plans::model::PlanStamp<'_>>,
        root_cond: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<Update>, StoreError> {
        let id = items::owner_allowance_id(owner);
        let next = layout.version + 1;
        let values = stamp_values(plan);
        let slices = match plan {
            Some(p) => {
                let stamp = PlanStamp {
                    owner: owner.to_owned(),
                    plan_id: p.plan_id.to_owned(),
                    version: next,
                    rate: p.limits.rate,
                    daily: p.limits.daily,
                    monthly: p.limits.monthly,
                    shards: layout.shards,
                };
                let mut all = Vec::new();
                let at = latest(now, layout);
                for which in PlanLimit::ALL {
                    let count = (layout.shards, stamp.eligible());
                    if let Some(s) = LimitSlices::of(&stamp, which, layout, count, at)? {
                        all.push(s);
                    }
                }
                all
            }
            None => Vec::new(),
        };
        let mut updates = Vec::new();
        for index in 0..=layout.shards {
            let mut parts = Parts::default();
            parts
                .names
                .insert("#pv".into(), stamp::STAMP_VERSION.into());
            parts.names.insert("#sh".into(), alw::SHARDS.into());
            parts.values.insert(":pvn".into(), n(next));
            parts.values.insert(":shn".into(), n(layout.shards));
            parts.set.push("#pv = :pvn".into());
            parts.cond.push("#sh = :shn".into());
            for (attr, value) in &values {
                let name = format!("#{attr}");
                parts.names.insert(name.clone(), (*attr).into());
                match value {
                    Some(v) => {
                        parts.values.insert(format!(":{attr}"), v.clone());
                        parts.set.push(format!("{name} = :{attr}"));
                    }
                    None => parts.remove.push(name),
                }
            }
            let key = if index == 0 {
                parts.values.insert(":pvr".into(), n(layout.version));
                parts.cond.push("#pv = :pvr".into());
                if let Some(c) = root_cond {
                    parts.cond.push(format!("({c})"));
                }
                Self::allowance_key(&id)
            } else {
                for limit in &slices {
                    slice(&mut parts, limit, index as usize - 1);
                }
                Self::shard_key(&id, index)
            };
            updates.push(self.update_of(key, parts)?);
        }
        Ok(updates)
    }

    /// Grow the owner's plan allowance, stamped with `current`, to `to`
    /// shards. From single, in two steps, as a key's allowance grows: one
    /// `UpdateItem` moves the root to the next stamp version and the new
    /// layout (from then on no spend is admitted on it, so its counters are
    /// final; it records when, `pfz`), then one transaction creates every
    /// shard with an even share of what the root left
    /// ([`DynamoStore::plan_layout`] makes that step for anyone who finds
    /// it missing). From sharded, one transaction over the root and every
    /// shard, each shard conditioned on its use not past its new slice.
    /// Returns the stamp after it; when the stamp read is not `current`
    /// (another growth or a plan change won), that stamp, unchanged.
    /// [`StoreError::Conflict`] when a write lost a race.
    pub(in crate::store) async fn grow_plan_to(
        &self,
        current: &PlanStamp,
        to: u32,
        now: Timestamp,
    ) -> Result<Option<PlanStamp>, StoreError> {
        let owner = current.owner.as_str();
        let layout = self.plan_layout(owner).await?;
        let Some(found) = PlanStamp::from_item(owner, &layout.root) else {
            return Ok(None);
        };
        if &found != current || found.shards >= to {
            return Ok(Some(found));
        }
        let next = PlanStamp {
            version: found.version + 1,
            shards: to,
            ..found
        };
        let id = current.allowance_id();
        let mut root = Parts::default();
        root.names.insert("#pv".into(), stamp::STAMP_VERSION.into());
        root.names.insert("#sh".into(), alw::SHARDS.into());
        root.values.insert(":pvr".into(), n(current.version));
        root.values.insert(":pvn".into(), n(next.version));
        root.values.insert(":to".into(), n(to));
        root.set.push("#pv = :pvn, #sh = :to".into());
        root.cond.push("#pv = :pvr".into());
        if layout.shards <= 1 {
            root.names.insert("#fz".into(), FROZEN_AT.into());
            root.values.insert(":fz".into(), n(now));
            root.set.push("#fz = :fz".into());
            root.cond.push("attribute_not_exists(#sh)".into());
            let update = self.update_of(Self::allowance_key(&id), root)?;
            let Some(root) = self.update_alone(update, ReturnValue::AllNew).await? else {
                return Err(StoreError::Conflict);
            };
            let frozen = PlanLayout {
                version: next.version,
                root,
                shards: to,
                items: Vec::new(),
            };
            self.create_plan_shards(owner, &frozen).await?;
            tracing::info!(owner = %owner, to, "plan allowance sharded");
            return Ok(Some(next));
        }
        let mut slices = Vec::new();
        let at = latest(now, &layout);
        for which in PlanLimit::ALL {
            if let Some(s) = LimitSlices::of(&next, which, &layout, (to, next.eligible()), at)? {
                slices.push(s);
            }
        }
        // The new shards copy the key-change fence read: a fence set since
        // must fail this (the fence is then written to every shard).
        root.names.insert("#kx".into(), items::KEY_FENCE.into());
        match layout.root.get(items::KEY_FENCE) {
            Some(fence) => {
                root.values.insert(":kx".into(), fence.clone());
                root.cond.push("#kx = :kx".into());
            }
            None => root.cond.push("attribute_not_exists(#kx)".into()),
        }
        let mut actions = vec![self.action(Self::allowance_key(&id), root)?];
        for index in 1..=to {
            let i = index as usize - 1;
            if index <= layout.shards {
                let mut parts = Parts::default();
                parts
                    .names
                    .insert("#pv".into(), stamp::STAMP_VERSION.into());
                parts.names.insert("#sh".into(), alw::SHARDS.into());
                parts.values.insert(":pvn".into(), n(next.version));
                parts.values.insert(":to".into(), n(to));
                parts.values.insert(":from".into(), n(layout.shards));
                parts.set.push("#pv = :pvn, #sh = :to".into());
                parts.cond.push("#sh = :from".into());
                for limit in &slices {
                    slice(&mut parts, limit, i);
                }
                actions.push(self.action(Self::shard_key(&id, index), parts)?);
            } else {
                let key = Self::shard_key(&id, index);
                let item = new_shard(key, &layout.root, (next.version, to), &slices, i);
                actions.push(self.put_new(item)?);
            }
        }
        self.transact(actions).await?;
        tracing::info!(owner = %owner, from = layout.shards, to, "plan allowance resliced");
        Ok(Some(next))
    }
}
