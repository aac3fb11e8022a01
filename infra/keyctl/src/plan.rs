//! `keyctl plan ...`: plans and subscriptions through the same
//! [`PlanService`] as `/v1/plans` and `/v1/owners/{owner}/plan`, acting as
//! the operator.

use clap::{Args, Subcommand};
use keygate::clock::Clock;
use keygate::limits::Rate;
use keygate::manage::{Caller, ManageError};
use keygate::plans::request::{CreatePlanRequest, SubscribeRequest, UpdatePlanRequest};
use keygate::plans::{PlanLimits, PlanService};
use keygate::store::PlanAdmin;

/// `keyctl plan ...`.
#[derive(Subcommand)]
pub enum PlanCommand {
    /// Create a plan: at least one of --rate, --daily, --monthly.
    Create {
        plan_id: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List plans.
    List {
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a plan.
    Show { plan_id: String },
    /// Change a plan's name or limits (the limits given replace them all);
    /// every subscribed owner is re-stamped before it returns.
    Update {
        plan_id: String,
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Apply only if the plan is still at this version.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Put an owner on a plan, or take it off with --none.
    Subscribe {
        owner: String,
        #[arg(required_unless_present = "none", conflicts_with = "none")]
        plan_id: Option<String>,
        #[arg(long)]
        none: bool,
    },
    /// Show an owner's plan and its history.
    Owner { owner: String },
}

/// A plan's limits on the command line.
#[derive(Args)]
pub struct LimitArgs {
    /// Requests per rate window.
    #[arg(long)]
    rate: Option<u64>,
    /// Rate window in seconds.
    #[arg(long, default_value_t = 1)]
    window: u32,
    /// Requests per UTC day.
    #[arg(long)]
    daily: Option<u64>,
    /// Requests per UTC calendar month.
    #[arg(long)]
    monthly: Option<u64>,
}

impl LimitArgs {
    fn limits(&self) -> PlanLimits {
        PlanLimits {
            rate: self.rate.map(|limit| Rate {
                limit,
                window: self.window,
            }),
            daily: self.daily,
            monthly: self.monthly,
        }
    }
}

/// Run one plan command; the answer as pretty JSON.
pub async fn run<S: PlanAdmin, C: Clock>(
    plans: &PlanService<'_, S, C>,
    op: &Caller,
    command: PlanCommand,
) -> Result<String, ManageError> {
    Ok(match command {
        PlanCommand::Create {
            plan_id,
            name,
            limits,
        } => {
            let req = CreatePlanRequest {
                plan_id,
                name,
                limits: limits.limits(),
            };
            json(&plans.create(op, req).await?)
        }
        PlanCommand::List { cursor } => json(&plans.list(op, cursor.as_deref(), None).await?),
        PlanCommand::Show { plan_id } => json(&plans.get(op, &plan_id).await?),
        PlanCommand::Update {
            plan_id,
            name,
            limits,
            version,
        } => {
            let limits = limits.limits();
            let req = UpdatePlanRequest {
                name,
                limits: limits.is_limited().then_some(limits),
                version,
            };
            json(&plans.update(op, &plan_id, req).await?)
        }
        PlanCommand::Subscribe { owner, plan_id, .. } => json(
            &plans
                .subscribe(op, &owner, SubscribeRequest { plan_id })
                .await?,
        ),
        PlanCommand::Owner { owner } => json(&plans.subscription(op, &owner).await?),
    })
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
