//! Lambda entry point of the usage routes. Everything else is in the library.

use keygate::clock::SystemClock;
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keygate::logs::init();
    let service = usage::build(|name| std::env::var(name).ok(), SystemClock).await?;
    let service = &service;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(usage::handle(service, req).await)
    }))
    .await
}
