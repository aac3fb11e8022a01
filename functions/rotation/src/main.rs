//! Lambda entry point of the rotation function. Everything else is in the library.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use keygate::clock::SystemClock;
use keygate::secrets::SecretsManager;
use keygate::store::DynamoStore;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use rotation::Settings;

#[tokio::main]
async fn main() -> Result<(), Error> {
    keygate::logs::init();
    let settings = Settings::from_lookup(|name| std::env::var(name).ok())?;
    let sdk = keygate::sdk::load(settings.deployment.tls_roots).await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        settings.deployment.table.clone(),
    );
    let secrets = SecretsManager::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let (store, secrets, settings) = (&store, &secrets, &settings);
    run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent>| async move {
            let summary = rotation::run(
                store,
                secrets,
                &SystemClock,
                &settings.deployment.format,
                settings,
                event.context.deadline(),
                &event.payload,
            )
            .await?;
            Ok::<_, Error>(serde_json::to_value(summary)?)
        },
    ))
    .await
}
