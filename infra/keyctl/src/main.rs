//! `keyctl`: operator CLI for keygate.
//!
//! Works against the local emulator (`AWS_ENDPOINT_URL`) and against real AWS
//! through the standard AWS environment and profiles. Every command goes
//! through the shared crate's code paths: the same minting, the same store.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use keygate::clock::{Clock, SystemClock};
use keygate::id::KeyId;
use keygate::issue::{mint, KeySpec};
use keygate::key::{KeyEnv, KeyFormat};
use keygate::limits::{Limits, Period, Quota, Rate};
use keygate::scope::Scope;
use keygate::store::{DynamoStore, KeyAdmin};
use keygate::table::TableSpec;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the table from the definition in template.yaml (local use).
    CreateTable,
    /// Issue the first admin key of an owner. The key is printed once.
    Bootstrap {
        #[arg(long, default_value = "operator")]
        owner: String,
        #[arg(long, default_value = "bootstrap admin")]
        name: String,
    },
    /// Issue a key. The key is printed once.
    Issue(IssueArgs),
    /// Show a key's record (never the key).
    Show { key_id: String },
    /// Revoke a key; the next request with it is denied.
    Revoke { key_id: String },
}

#[derive(Args)]
struct IssueArgs {
    #[arg(long)]
    owner: String,
    #[arg(long, default_value = "")]
    name: String,
    /// A scope, e.g. 'GET /orders/*' or 'usage:read'; repeat for more.
    #[arg(long = "scope", required = true)]
    scopes: Vec<String>,
    /// Requests per quota period.
    #[arg(long)]
    quota: Option<u64>,
    /// Quota period: day or month.
    #[arg(long, default_value = "day")]
    period: String,
    /// Requests per rate window.
    #[arg(long)]
    rate: Option<u64>,
    /// Rate window in seconds.
    #[arg(long, default_value_t = 1)]
    window: u32,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Table(#[from] keygate::table::TableError),
    #[error(transparent)]
    Store(#[from] keygate::store::StoreError),
    #[error("output: {0}")]
    Json(#[from] serde_json::Error),
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

fn format(cli: &Cli) -> Result<KeyFormat, CliError> {
    let env = KeyEnv::parse(&cli.key_env)
        .ok_or_else(|| CliError::Usage("--key-env must be live or test".into()))?;
    KeyFormat::new(&cli.prefix, env).map_err(|e| CliError::Usage(e.to_string()))
}

fn key_id(text: &str) -> Result<KeyId, CliError> {
    KeyId::parse(text).ok_or_else(|| CliError::Usage(format!("{text:?} is not a key id")))
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let store = DynamoStore::new(client.clone(), cli.table.clone());
    let now = SystemClock.now();
    match &cli.command {
        Command::CreateTable => {
            TableSpec::from_embedded_template()?
                .create(&client, &cli.table)
                .await?;
            eprintln!("created table {}", cli.table);
        }
        Command::Bootstrap { owner, name } => {
            let spec = KeySpec::new(owner, name, vec![Scope::Admin]);
            let (key, record) = mint(&format(&cli)?, spec, now);
            store.create_key(&record).await?;
            eprintln!(
                "admin key {} for owner {owner} (shown once):",
                record.key_id
            );
            println!("{}", key.expose());
        }
        Command::Issue(args) => {
            let scopes = args
                .scopes
                .iter()
                .map(|s| Scope::parse(s).map_err(|e| CliError::Usage(format!("scope {s:?}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            let period = match args.period.as_str() {
                "day" => Period::Day,
                "month" => Period::Month,
                other => return Err(CliError::Usage(format!("unknown period {other:?}"))),
            };
            let mut spec = KeySpec::new(&args.owner, &args.name, scopes);
            spec.limits = Limits {
                quota: args.quota.map(|limit| Quota { limit, period }),
                rate: args.rate.map(|limit| Rate {
                    limit,
                    window: args.window,
                }),
            };
            let (key, record) = mint(&format(&cli)?, spec, now);
            store.create_key(&record).await?;
            eprintln!("key {} (shown once):", record.key_id);
            println!("{}", key.expose());
        }
        Command::Show { key_id: id } => {
            let record = store
                .key_by_id(&key_id(id)?)
                .await?
                .ok_or_else(|| CliError::Usage(format!("no key {id}")))?;
            println!("{}", serde_json::to_string_pretty(&record)?);
        }
        Command::Revoke { key_id: id } => {
            let record = store.revoke(&key_id(id)?, now).await?;
            eprintln!("revoked {}", record.key_id);
        }
    }
    Ok(())
}
