//! Lambda entry point of the developer portal. Everything else is in the library.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keygate::logs::init();
    let portal = portal::build(|name| std::env::var(name).ok()).await?;
    let portal = &portal;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(portal::handle(portal, req).await)
    }))
    .await
}
