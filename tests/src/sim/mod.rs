//! The simulation at full scale (issue 14): the real authorizer, the real
//! `DynamoStore` and the real aws-sdk-dynamodb client, over an in-process
//! DynamoDB model, in virtual time. The local emulator serves about 200
//! writes per second; this runs one key at 1,000 to 50,000 decisions per
//! second under DynamoDB's per-partition limits.
//!
//! - [`expr`]: condition and update expressions;
//! - [`model`]: the table, its conditional writes, limits and accounting;
//! - [`http`]: the SDK's HTTP client answering from the model, with latency;
//! - [`load`]: containers and the load generator of one scenario;
//! - [`report`]: the figures, from every decision's ground truth;
//! - [`scenarios`]: the benchmark's and the test's scenario lists.
//!
//! Nothing here knows how the allowance is laid out: the harness drives
//! `authorizer::Handler` and counts what reaches the model, so a different
//! allowance design runs through it unchanged as long as it uses the
//! operations the model implements.

pub mod expr;
pub mod http;
pub mod load;
pub mod model;
pub mod report;
pub mod scenarios;
pub mod wire;

pub use load::{Scenario, Shape};
pub use report::Figures;

/// Run one scenario and compute its figures.
pub fn simulate(scenario: &Scenario) -> (load::Run, Figures) {
    let run = load::run(scenario);
    let figures = report::figures(scenario, &run);
    (run, figures)
}
