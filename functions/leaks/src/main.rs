//! Lambda entry point of the leak receiver. Everything else is in the library.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keygate::logs::init();
    let receiver = leaks::build(|name| std::env::var(name).ok()).await?;
    let receiver = &receiver;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(leaks::handle(receiver, req).await)
    }))
    .await
}
