//! `gateway`: serve template.yaml's HTTP API on 127.0.0.1. Everything else is in the library.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use gateway::{serve, ApiSpec, Gateway, Invoker};

#[derive(Parser)]
#[command(about = "Local API Gateway (HTTP API) over cargo lambda watch")]
struct Args {
    /// The SAM template whose HTTP API is served.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// The AWS::Serverless::HttpApi resource, if the template has several.
    #[arg(long)]
    api: Option<String>,
    /// Port on 127.0.0.1 (0: any free port; see --port-file).
    #[arg(long, env = "KEYGATE_GATEWAY_PORT", default_value_t = 3000)]
    port: u16,
    /// cargo lambda watch's invoke endpoint.
    #[arg(
        long,
        env = "KEYGATE_LAMBDA_URL",
        default_value = "http://127.0.0.1:9000"
    )]
    lambda: String,
    /// Seconds an invocation may take (API Gateway's integration limit is 30).
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Invoke every function once before serving (seconds allowed for each).
    #[arg(long)]
    warm: Option<u64>,
    /// Write the port here once serving (for scripts and tests).
    #[arg(long)]
    port_file: Option<PathBuf>,
    /// Print every function of the template (binary names), one per line, and exit.
    #[arg(long)]
    list_functions: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.template)
        .map_err(|e| format!("{}: {e}", args.template.display()))?;
    if args.list_functions {
        for f in gateway::template::all_functions(&text)? {
            println!("{f}");
        }
        return Ok(());
    }
    let api = ApiSpec::from_template(&text, args.api.as_deref())?;
    let invoker = Invoker::new(&args.lambda, Duration::from_secs(args.timeout));
    let gateway = Arc::new(Gateway::new(api, invoker));
    if let Some(secs) = args.warm {
        gateway
            .warm(Duration::from_secs(secs))
            .await
            .map_err(|(f, e)| format!("warming {f}: {e}"))?;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let port = listener.local_addr()?.port();
    for r in gateway.api().routes.routes() {
        tracing::info!(route = r.key(), function = r.function, "route");
    }
    tracing::info!("serving on http://127.0.0.1:{port}");
    if let Some(file) = &args.port_file {
        std::fs::write(file, port.to_string())?;
    }
    serve(listener, gateway).await?;
    Ok(())
}
