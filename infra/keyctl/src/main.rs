//! `keyctl`: operator CLI for keygate.
//!
//! Works against the local emulator (`AWS_ENDPOINT_URL`) and against real AWS
//! through the standard AWS environment and profiles. Every command goes
//! through the same [`KeyService`] as the management API, acting as the
//! operator (an admin, audited as `operator:keyctl`): one implementation of
//! issuance, validation, rotation and revocation.

mod plan;

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use keygate::clock::SystemClock;
use keygate::config::Deployment;
use keygate::leak::{EventBridgeNotifier, LeakPolicy, LeakService, Sighting};
use keygate::limits::{Limits, Period, Quota, Rate};
use keygate::manage::request::{
    validate_source_url, IssueRequest, ReportLeakRequest, RotateRequest, UpdateRequest,
};
use keygate::manage::service::MANUAL_REPORT;
use keygate::manage::view::KeyView;
use keygate::manage::{Caller, KeyService, ManageError};
use keygate::portal::request::{CreateSessionRequest, GrantsRequest};
use keygate::portal::session::Sessions;
use keygate::portal::PortalSettings;
use keygate::secrets::SecretsManager;
use keygate::store::{DynamoStore, PortalStore};
use keygate::table::TableSpec;
use serde::Serialize;

#[derive(Parser)]
#[command(name = "keyctl", version, about = "Operate a keygate deployment")]
struct Cli {
    /// DynamoDB table of the deployment.
    #[arg(
        long,
        env = "KEYGATE_TABLE",
        global = true,
        default_value = "keygate-local"
    )]
    table: String,
    /// Key prefix of the deployment.
    #[arg(long, env = "KEYGATE_KEY_PREFIX", global = true, default_value = "ak")]
    prefix: String,
    /// Key environment of the deployment: live or test.
    #[arg(long, env = "KEYGATE_KEY_ENV", global = true, default_value = "live")]
    key_env: String,
    /// Name prefix of the Secrets Manager secrets keys are delivered to.
    #[arg(
        long,
        env = "KEYGATE_SECRET_PREFIX",
        global = true,
        default_value = "keygate"
    )]
    secret_prefix: String,
    /// Rotation interval of keys issued without their own (0 = never).
    #[arg(long, env = "KEYGATE_ROTATION_DAYS", global = true, default_value_t = keygate::model::DEFAULT_ROTATION_DAYS)]
    rotation_days: u32,
    /// What a leak report does: revoke, quarantine or notify (the
    /// deployment's `LeakPolicy`).
    #[arg(long, env = "KEYGATE_LEAK_POLICY", global = true, default_value = "revoke", value_parser = ["revoke", "quarantine", "notify"])]
    leak_policy: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the table from the definition in template.yaml (local use).
    CreateTable,
    /// Issue the first admin key of an owner. Prints the key once, alone on stdout.
    Bootstrap {
        #[arg(long, default_value = "operator")]
        owner: String,
        #[arg(long, default_value = "bootstrap admin")]
        name: String,
    },
    /// Issue a key. Prints the key once, alone on stdout; details on stderr.
    Issue(IssueArgs),
    /// List the keys of an owner.
    List {
        #[arg(long)]
        owner: String,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a key (never the key itself).
    Show { key_id: String },
    /// Change a key: a JSON object as for PATCH /v1/keys/{key_id}.
    Update { key_id: String, json: String },
    /// Revoke a key; the next request with it is denied.
    Revoke { key_id: String },
    /// Rotate a key: prints the successor once; the old key works until the grace ends.
    Rotate {
        key_id: String,
        #[arg(long)]
        grace_seconds: Option<u64>,
        #[arg(long)]
        deliver_to_secret: bool,
    },
    /// Show a key's audit trail.
    Events { key_id: String },
    /// Open a developer-portal session for an owner: prints its one-time
    /// link (valid 10 minutes) alone on stdout.
    PortalSession {
        #[arg(long)]
        owner: String,
        /// The API's base URL as browsers reach it (the link is
        /// `<base-url><portal path>/home#t=<token>`).
        #[arg(long, env = "KEYGATE_GATEWAY_URL")]
        base_url: String,
        /// A scope the portal user may give their keys; repeat for more.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Where the portal's "Back to the app" link leads (https://...).
        #[arg(long)]
        return_url: Option<String>,
    },
    /// End every developer-portal session of an owner at once.
    RevokePortalSessions {
        #[arg(long)]
        owner: String,
    },
    /// Plans and owners' subscriptions.
    #[command(subcommand)]
    Plan(plan::PlanCommand),
    /// Report a leaked key: the deployment's leak policy, as for a GitHub
    /// report. Names the key by --key-id, or reads the key itself from
    /// standard input (never an argument: arguments end up in shell
    /// history and process lists).
    ReportLeak {
        #[arg(long)]
        key_id: Option<String>,
        /// Where the key was seen (https://...).
        #[arg(long)]
        source_url: Option<String>,
    },
}

#[derive(Args)]
struct IssueArgs {
    #[arg(long)]
    owner: String,
    #[arg(long, default_value = "issued by keyctl")]
    name: String,
    /// A scope, e.g. 'GET /orders/*' or 'usage:read'; repeat for more.
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// Requests per quota period.
    #[arg(long)]
    quota: Option<u64>,
    /// Quota period: day or month.
    #[arg(long, default_value = "day", value_parser = ["day", "month"])]
    period: String,
    /// Requests per rate window.
    #[arg(long)]
    rate: Option<u64>,
    /// Rate window in seconds.
    #[arg(long, default_value_t = 1)]
    window: u32,
    /// An allowed source CIDR; repeat for more.
    #[arg(long = "cidr")]
    cidrs: Vec<String>,
    /// Expiry, seconds since the epoch.
    #[arg(long)]
    expires_at: Option<i64>,
    /// Also write the key to Secrets Manager.
    #[arg(long)]
    deliver_to_secret: bool,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] keygate::config::ConfigError),
    #[error(transparent)]
    Table(#[from] keygate::table::TableError),
    /// Code and status; `main` prints the error's message and its causes
    /// (a store failure's) after it, as the chain of sources.
    #[error("{} ({})", .0.code(), .0.status())]
    Manage(#[from] ManageError),
    #[error("could not read the key from standard input")]
    Stdin(#[source] std::io::Error),
    #[error("not one of this deployment's keys (prefix, environment, checksum or record)")]
    UnknownKey,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let mut msg = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("keyctl: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn print<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let lookup = |name: &str| match name {
        "KEYGATE_TABLE" => Some(cli.table.clone()),
        "KEYGATE_KEY_PREFIX" => Some(cli.prefix.clone()),
        "KEYGATE_KEY_ENV" => Some(cli.key_env.clone()),
        "KEYGATE_LEAK_POLICY" => Some(cli.leak_policy.clone()),
        "KEYGATE_TLS_ROOTS" => std::env::var(name).ok(),
        _ => None,
    };
    let deployment = Deployment::from_lookup(&lookup)?;
    let sdk = keygate::sdk::load(deployment.tls_roots).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoStore::new(client.clone(), deployment.table.clone());
    let leaks = Arc::new(LeakService::new(
        store.clone(),
        SystemClock,
        deployment.format.clone(),
        LeakPolicy::from_lookup(&lookup)?,
        EventBridgeNotifier::new(aws_sdk_eventbridge::Client::new(&sdk)),
    ));
    let service = KeyService::new(
        store,
        SystemClock,
        deployment.format,
        SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk)),
        &cli.secret_prefix,
    )
    .with_default_rotation_days(cli.rotation_days)
    .with_leaks(leaks.clone());
    let op = Caller::operator("keyctl");
    match cli.command {
        Command::CreateTable => {
            TableSpec::from_embedded_template()?
                .create(&client, &deployment.table)
                .await?;
            eprintln!("created table {}", deployment.table);
        }
        Command::Bootstrap { owner, name } => {
            let issued = service
                .issue(&op, issue_request(owner, name, vec!["admin".into()]))
                .await?;
            eprintln!(
                "admin key {} for owner {} (shown once):",
                issued.view.key_id, issued.view.owner
            );
            println!("{}", issued.key);
        }
        Command::Issue(args) => {
            let period = if args.period == "month" {
                Period::Month
            } else {
                Period::Day
            };
            let mut req = issue_request(args.owner, args.name, args.scopes);
            req.limits = Limits {
                quota: args.quota.map(|limit| Quota { limit, period }),
                rate: args.rate.map(|limit| Rate {
                    limit,
                    window: args.window,
                }),
            };
            req.allowed_cidrs = args.cidrs;
            req.expires_at = args.expires_at;
            req.deliver_to_secret = args.deliver_to_secret;
            let issued = service.issue(&op, req).await?;
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&issued.view).unwrap_or_default()
            );
            if let Some(secret) = &issued.secret_name {
                eprintln!("also delivered to secret {secret}");
            }
            eprintln!("key {} (shown once):", issued.view.key_id);
            println!("{}", issued.key);
        }
        Command::List { owner, cursor } => print(
            &service
                .list(&op, Some(&owner), cursor.as_deref(), None)
                .await?,
        ),
        Command::Show { key_id } => print(&service.get(&op, &key_id).await?),
        Command::Update { key_id, json } => {
            let req: UpdateRequest = keygate::manage::request::parse_body(json.as_bytes())?;
            print(&service.update(&op, &key_id, req).await?)
        }
        Command::Revoke { key_id } => print(&service.revoke(&op, &key_id).await?),
        Command::Rotate {
            key_id,
            grace_seconds,
            deliver_to_secret,
        } => {
            let req = RotateRequest {
                grace_seconds,
                deliver_to_secret,
            };
            let (new, old) = service.rotate(&op, &key_id, req).await?;
            eprintln!("{}", serde_json::to_string_pretty(&old).unwrap_or_default());
            eprintln!("successor {} (shown once):", new.view.key_id);
            println!("{}", new.key);
        }
        Command::PortalSession {
            owner,
            base_url,
            scopes,
            return_url,
        } => {
            let settings = PortalSettings::from_lookup(&|n: &str| std::env::var(n).ok())?;
            let sessions = Sessions {
                keys: &service,
                store: service.store(),
                clock: &SystemClock,
                settings: &settings,
            };
            let grants = GrantsRequest {
                scopes,
                limits: Limits::default(),
                allowed_cidrs: Vec::new(),
                expires_at: None,
            };
            let req = CreateSessionRequest {
                owner,
                return_url,
                grants: Some(grants),
            };
            let (token, link) = sessions.open(&op, req).await?;
            eprintln!(
                "portal link for owner {} (single use, valid until {}):",
                link.owner, link.expires_at
            );
            println!(
                "{}{}/{}#t={}",
                base_url.trim_end_matches('/'),
                settings.path,
                keygate::portal::site::HOME,
                token.expose()
            );
        }
        Command::RevokePortalSessions { owner } => {
            let ended = service
                .store()
                .revoke_owner(&owner)
                .await
                .map_err(ManageError::from)?;
            eprintln!("ended {ended} portal session(s) of owner {owner}");
        }
        Command::Plan(command) => {
            let plans = keygate::plans::PlanService::new(service.store(), service.clock());
            println!("{}", plan::run(&plans, &op, command).await?);
        }
        Command::Events { key_id } => print(&service.events(&op, &key_id, None, None).await?),
        Command::ReportLeak {
            key_id: Some(key_id),
            source_url,
        } => print(
            &service
                .report_leak(&op, &key_id, ReportLeakRequest { source_url })
                .await?,
        ),
        Command::ReportLeak {
            key_id: None,
            source_url,
        } => {
            if let Some(url) = &source_url {
                validate_source_url(url)?;
            }
            let mut token = String::new();
            std::io::stdin()
                .take(1024)
                .read_to_string(&mut token)
                .map_err(CliError::Stdin)?;
            let sighting = Sighting {
                kind: MANUAL_REPORT.into(),
                source_url,
                reporter: op.actor.clone(),
            };
            let handled = leaks
                .handle_token(token.trim(), &sighting)
                .await
                .map_err(ManageError::from)?
                .ok_or(CliError::UnknownKey)?;
            print(&KeyView::from(&handled.record))
        }
    }
    Ok(())
}

fn issue_request(owner: String, name: String, scopes: Vec<String>) -> IssueRequest {
    IssueRequest {
        owner: Some(owner),
        name,
        scopes,
        limits: Limits::default(),
        allowed_cidrs: Vec::new(),
        expires_at: None,
        rotation_days: None,
        metadata: Default::default(),
        deliver_to_secret: false,
    }
}
