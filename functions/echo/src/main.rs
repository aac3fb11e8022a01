//! Lambda entry point of the sample protected route. Everything else is in the library.

use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keygate::logs::init();
    run(service_fn(|req: Request| async move {
        Ok::<_, Error>(echo::handle(&req))
    }))
    .await
}
