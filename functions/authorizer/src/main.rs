//! Lambda entry point of the authorizer. Everything else is in the library.

use authorizer::{build, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    keygate::logs::init();
    let config = Config::from_lookup(|name| std::env::var(name).ok())?;
    let handler = build(&config).await;
    let handler = &handler;
    let namespace = std::env::var("KEYGATE_METRICS_NAMESPACE")
        .unwrap_or_else(|_| authorizer::metrics::DEFAULT_NAMESPACE.into());
    let emf = authorizer::metrics::init(&namespace)?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let handled = handler
            .handle(event.payload, &event.context.request_id)
            .await;
        // One EMF document per invocation, after the decision's log line.
        if let Err(e) = emf.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %e, "metrics flush failed");
        }
        Ok::<Value, Error>(handled?.response)
    }))
    .await
}
