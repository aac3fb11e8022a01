//! Lambda entry point of the management API. Everything else is in the library.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keygate::logs::init();
    let service = keys::build(|name| std::env::var(name).ok()).await?;
    let service = &service;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(keys::handle(service, req).await)
    }))
    .await
}
