//! Lambda entry point of the daily usage report. Everything else is in the library.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use keygate::clock::SystemClock;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keygate::logs::init();
    let service = usage::build(|name| std::env::var(name).ok(), SystemClock).await?;
    let service = &service;
    run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            let summary = usage::run_daily(service, &event.payload).await?;
            Ok::<_, Error>(serde_json::to_value(summary)?)
        },
    ))
    .await
}
