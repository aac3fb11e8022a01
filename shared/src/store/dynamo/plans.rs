//! [`PlanLookup`] and [`PlanAdmin`] over the table (item families in
//! [`items`]: plan, subscription, plan member, owner plan allowance, plan
//! and owner audit events), and the one function that writes an owner's
//! plan stamp.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use tokio::task::JoinSet;

use super::{built, n, s, DynamoStore, Item};
use crate::clock::Timestamp;
use crate::plans::audit::PlanEvent;
use crate::plans::model::{Plan, PlanStamp, Subscription};
use crate::store::items::{self, stamp};
use crate::store::plans::{PlanAdmin, PlanLookup, Restamped, SubscriptionChange};
use crate::store::{Page, StoreError};

/// Members read per page while re-stamping, and stamps written at once:
/// each stamp is its own partition (one write unit), so a batch spreads
/// over the table; a plan with 10,000 owners takes 400 rounds of requests.
const RESTAMP_PAGE: i32 = 100;
const RESTAMP_BATCH: usize = 25;
/// Tries per owner when a re-stamp loses a race with a growth of its plan
/// allowance or a shard's period rolling over.
const RESTAMP_ATTEMPTS: usize = 4;

fn mapped<T>(what: &'static str, r: Result<T, serde_dynamo::Error>) -> Result<T, StoreError> {
    r.map_err(|source| StoreError::Mapping { what, source })
}

impl DynamoStore {
    /// The write(s) that stamp `owner`'s plan allowance with `plan` (its
    /// id, version and limits), or clear it (`None`: on no plan). The
    /// stamp version `pv` goes up by one on every write; the limit
    /// attributes a plan does not set are removed; nothing else on the
    /// item is touched (its counters belong to the authorizer). With
    /// `only_if_older`, the write applies only while the item is stamped
    /// with the same plan at an older plan version (a plan's re-stamp:
    /// idempotent, and never over an owner that moved meanwhile).
    ///
    /// One `Update` of `ALW#owner:<owner>` while it is single (conditioned
    /// on it still being single); on a sharded plan allowance (read first,
    /// strongly consistent), one per item: the root and every shard at the
    /// next stamp version, each shard with its slices of the new limits in
    /// the periods at `now` ([`DynamoStore::sharded_stamp`]). Sent together
    /// (one transaction) or not at all.
    pub(super) async fn stamp_owner_plan(
        &self,
        owner: &str,
        plan: Option<&PlanStamp<'_>>,
        only_if_older: bool,
        now: Timestamp,
    ) -> Result<Vec<Update>, StoreError> {
        let older = "#pid = :pid AND (attribute_not_exists(#pver) OR #pver < :pver)";
        let layout = self.plan_layout(owner).await?;
        if layout.shards > 1 {
            return self.sharded_stamp(owner, &layout, plan, only_if_older.then_some(older), now);
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::allowance_key(&items::owner_allowance_id(owner))))
            .expression_attribute_names("#pv", stamp::STAMP_VERSION)
            .expression_attribute_names("#sh", items::alw::SHARDS)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1));
        let mut set = vec!["#pv = if_not_exists(#pv, :zero) + :one".to_owned()];
        let mut remove = Vec::new();
        // (attribute, value): a value is set, `None` removed.
        let numbers: Vec<(&str, Option<u64>)> = match plan {
            Some(p) => {
                set.push("#pid = :pid".into());
                update = update
                    .expression_attribute_names("#pid", stamp::PLAN_ID)
                    .expression_attribute_values(":pid", s(p.plan_id));
                let l = p.limits;
                vec![
                    (stamp::PLAN_VERSION, Some(p.plan_version)),
                    (stamp::RATE_LIMIT, l.rate.map(|r| r.limit)),
                    (stamp::RATE_WINDOW, l.rate.map(|r| u64::from(r.window))),
                    (stamp::DAILY, l.daily),
                    (stamp::MONTHLY, l.monthly),
                ]
            }
            None => super::plan_shards::STAMP.map(|attr| (attr, None)).to_vec(),
        };
        for (attr, value) in numbers {
            let name = format!("#{attr}");
            update = update.expression_attribute_names(&name, attr);
            match value {
                Some(v) => {
                    set.push(format!("{name} = :{attr}"));
                    update = update.expression_attribute_values(format!(":{attr}"), n(v));
                }
                None => remove.push(name),
            }
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        // A growth since the read makes it sharded: the write must then
        // reach every shard (the caller reads again).
        let single = "attribute_not_exists(#sh)";
        update = update.condition_expression(if only_if_older {
            format!("{single} AND {older}")
        } else {
            single.to_owned()
        });
        Ok(vec![built(update.update_expression(expr).build())?])
    }

    /// Send one transaction action alone, as an `UpdateItem` (one write,
    /// not a transaction's two). `false` when its condition failed.
    async fn send_update(&self, update: Update) -> Result<bool, StoreError> {
        Ok(self
            .update_alone(update, ReturnValue::None)
            .await?
            .is_some())
    }

    /// Send one transaction action alone, as an `UpdateItem` returning
    /// `returning`: `None` when its condition failed.
    pub(super) async fn update_alone(
        &self,
        update: Update,
        returning: ReturnValue,
    ) -> Result<Option<Item>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(update.table_name())
            .set_key(Some(update.key().clone()))
            .update_expression(update.update_expression())
            .set_condition_expression(update.condition_expression().map(str::to_owned))
            .set_expression_attribute_names(update.expression_attribute_names().cloned())
            .set_expression_attribute_values(update.expression_attribute_values().cloned())
            .return_values(returning)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(err) => match err.into_service_error() {
                UpdateItemError::ConditionalCheckFailedException(_) => Ok(None),
                other => Err(StoreError::Dynamo(Box::new(other.into()))),
            },
        }
    }

    fn plan_key(plan_id: &str) -> Item {
        Self::key_of(items::plan_pk(plan_id), items::PLAN_SK)
    }

    fn subscription_key(owner: &str) -> Item {
        Self::key_of(items::owner_pk(owner), items::PLAN_SK)
    }

    fn member_key(plan_id: &str, owner: &str) -> Item {
        Self::key_of(items::plan_member_pk(plan_id), owner)
    }

    fn plan_item(plan: &Plan) -> Result<Item, StoreError> {
        let mut item: Item = mapped("plan", serde_dynamo::to_item(plan))?;
        item.extend(Self::plan_key(&plan.plan_id));
        item.insert(items::GPK.into(), s(items::PLAN_DIRECTORY));
        item.insert(items::GSK.into(), s(plan.plan_id.clone()));
        Ok(item)
    }

    fn plan_event_item(event: &PlanEvent) -> Result<Item, StoreError> {
        let mut item: Item = mapped("plan event", serde_dynamo::to_item(event))?;
        item.insert(items::PK.into(), s(items::audit_pk(&event.subject)));
        item.insert(items::SK.into(), s(event.sort_key()));
        Ok(item)
    }

    /// A transactional put of `item` if the stored version is `previous`
    /// (`None`: if there is no item yet).
    fn put_at(&self, item: Item, previous: Option<u64>) -> Result<TransactWriteItem, StoreError> {
        match previous {
            Some(previous) => self.put_if_version(item, previous),
            None => self.put_new(item),
        }
    }

    async fn get_consistent(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await?;
        Ok(out.item)
    }

    /// Stamp one owner with `plan` if it is still on it at an older plan
    /// version: `false` if it is not (moved, or stamped already). A stamp
    /// that lost a race with a growth of the plan allowance is built again
    /// from a fresh read (a few times).
    async fn restamp_owner(
        &self,
        owner: &str,
        plan: &PlanStamp<'_>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let started = std::time::Instant::now();
        for attempt in 0..RESTAMP_ATTEMPTS {
            if attempt > 0 {
                // A shard's counters in a later window than this reading
                // (the clock moved on, or the authorizers' is ahead).
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            let at = now + i64::try_from(started.elapsed().as_secs()).unwrap_or(0);
            let mut updates = match self.stamp_owner_plan(owner, Some(plan), true, at).await {
                Ok(updates) => updates,
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            };
            let applied = if updates.len() == 1 {
                let update = updates
                    .pop()
                    .ok_or(StoreError::Corrupt("no stamp update"))?;
                self.send_update(update).await?
            } else {
                let actions = updates
                    .into_iter()
                    .map(|u| TransactWriteItem::builder().update(u).build())
                    .collect();
                match self.transact(actions).await {
                    Ok(()) => true,
                    Err(StoreError::Conflict) => false,
                    Err(e) => return Err(e),
                }
            };
            if applied {
                return Ok(true);
            }
            // Not applied: moved or stamped already (done), or the layout
            // or a shard's period changed under the write (again).
            let root = self.plan_layout(owner).await?.root;
            let on_plan = root.get(stamp::PLAN_ID).and_then(|v| v.as_s().ok())
                == Some(&plan.plan_id.to_owned());
            let older = root
                .get(stamp::PLAN_VERSION)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .is_none_or(|v| v < plan.plan_version);
            if !(on_plan && older) {
                return Ok(false);
            }
        }
        // Answered 503 (retry the update: idempotent).
        Err(StoreError::Cancelled(vec![
            "plan allowance kept changing".into()
        ]))
    }

    /// Stamp one page of members, [`RESTAMP_BATCH`] at a time.
    async fn restamp_owners(
        &self,
        owners: Vec<String>,
        plan: &PlanStamp<'_>,
        done: &mut Restamped,
        clock: &dyn crate::clock::Clock,
    ) -> Result<(), StoreError> {
        for batch in owners.chunks(RESTAMP_BATCH) {
            let now = clock.now();
            let mut writes = JoinSet::new();
            for owner in batch {
                let store = self.clone();
                let owner = owner.clone();
                let plan = PlanStamp {
                    plan_id: plan.plan_id,
                    plan_version: plan.plan_version,
                    limits: plan.limits,
                };
                let plan_id = plan.plan_id.to_owned();
                writes.spawn(async move {
                    let plan = PlanStamp {
                        plan_id: &plan_id,
                        ..plan
                    };
                    store.restamp_owner(&owner, &plan, now).await
                });
            }
            let mut failed = None;
            while let Some(joined) = writes.join_next().await {
                match joined {
                    Ok(Ok(true)) => done.stamped += 1,
                    Ok(Ok(false)) => done.skipped += 1,
                    Ok(Err(e)) => failed = Some(e),
                    Err(_) => failed = Some(StoreError::Corrupt("a stamp write panicked")),
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl PlanLookup for DynamoStore {
    async fn plan(&self, plan_id: &str) -> Result<Option<Plan>, StoreError> {
        let item = self.get_consistent(Self::plan_key(plan_id)).await?;
        item.map(|i| mapped("plan", serde_dynamo::from_item(i)))
            .transpose()
    }

    async fn subscription(&self, owner: &str) -> Result<Option<Subscription>, StoreError> {
        let item = self.get_consistent(Self::subscription_key(owner)).await?;
        item.map(|i| mapped("subscription", serde_dynamo::from_item(i)))
            .transpose()
    }
}

#[async_trait]
impl PlanAdmin for DynamoStore {
    async fn create_plan(&self, plan: &Plan, event: &PlanEvent) -> Result<(), StoreError> {
        self.transact(vec![
            self.put_new(Self::plan_item(plan)?)?,
            self.put_new(Self::plan_event_item(event)?)?,
        ])
        .await
    }

    async fn update_plan(
        &self,
        previous: u64,
        plan: &Plan,
        event: &PlanEvent,
    ) -> Result<(), StoreError> {
        self.transact(vec![
            self.put_at(Self::plan_item(plan)?, Some(previous))?,
            self.put_new(Self::plan_event_item(event)?)?,
        ])
        .await
    }

    async fn list_plans(&self, limit: i32, cursor: Option<&str>) -> Result<Page<Plan>, StoreError> {
        let index = (items::OWNER_INDEX, items::GPK, items::GSK);
        self.query_mapped("plan", Some(index), items::PLAN_DIRECTORY, limit, cursor)
            .await
    }

    async fn change_subscription(&self, change: SubscriptionChange<'_>) -> Result<(), StoreError> {
        let next = change.next;
        let owner = next.owner.as_str();
        let mut item: Item = mapped("subscription", serde_dynamo::to_item(next))?;
        item.extend(Self::subscription_key(owner));
        let mut actions = vec![
            self.put_at(item, change.previous.map(|p| p.version))?,
            self.put_new(Self::plan_event_item(change.event)?)?,
        ];
        if let Some(plan) = change.plan {
            let check = built(
                ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(Self::plan_key(&plan.plan_id)))
                    .condition_expression("#v = :v")
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":v", n(plan.version))
                    .build(),
            )?;
            actions.push(TransactWriteItem::builder().condition_check(check).build());
        }
        let before = change.previous.and_then(|p| p.plan_id.as_deref());
        let after = next.plan_id.as_deref();
        if before != after {
            if let Some(old) = before {
                let delete = built(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(Self::member_key(old, owner)))
                        .build(),
                )?;
                actions.push(TransactWriteItem::builder().delete(delete).build());
            }
            if let Some(new) = after {
                let mut member = Self::member_key(new, owner);
                member.insert("owner".into(), s(owner));
                member.insert("since".into(), n(next.since));
                let put = built(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(member))
                        .build(),
                )?;
                actions.push(TransactWriteItem::builder().put(put).build());
            }
        }
        let stamp = change.plan.map(PlanStamp::of);
        for update in self
            .stamp_owner_plan(owner, stamp.as_ref(), false, next.since)
            .await?
        {
            actions.push(TransactWriteItem::builder().update(update).build());
        }
        self.transact(actions).await
    }

    async fn restamp(
        &self,
        plan: &Plan,
        clock: &dyn crate::clock::Clock,
    ) -> Result<Restamped, StoreError> {
        let stamp = PlanStamp::of(plan);
        let mut done = Restamped::default();
        let mut cursor = None;
        loop {
            // The table's own partition, read strongly consistently: every
            // owner whose subscription committed before this plan version.
            let (found, next) = self
                .query_page(
                    None,
                    &items::plan_member_pk(&plan.plan_id),
                    None,
                    RESTAMP_PAGE,
                    cursor.as_deref(),
                )
                .await?;
            let owners = found
                .iter()
                .map(|i| {
                    i.get(items::SK)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .ok_or(StoreError::Corrupt("plan member without an owner"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.restamp_owners(owners, &stamp, &mut done, clock)
                .await?;
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(done),
            }
        }
    }

    async fn plan_events(
        &self,
        subject: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<PlanEvent>, StoreError> {
        let partition = items::audit_pk(subject);
        self.query_mapped("plan event", None, &partition, limit, cursor)
            .await
    }
}
