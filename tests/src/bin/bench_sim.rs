//! The simulation at full scale (issue 14), as a benchmark: every scenario
//! of `keygate_tests::sim::scenarios::bench`, run in virtual time against
//! the in-process DynamoDB model, written as JSON to stdout
//! (`make bench` keeps it in `target/bench/sim.json`).
//!
//! Usage: `bench-sim [SECONDS] [FILTER]`: virtual seconds per scenario
//! (default 5), and only scenarios whose name contains FILTER.

use keygate_tests::sim::{scenarios, simulate};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let filter = args.next().unwrap_or_default();
    let mut rows = Vec::new();
    for scenario in scenarios::bench(seconds) {
        if !scenario.name.contains(&filter) {
            continue;
        }
        let started = std::time::Instant::now();
        let (run, figures) = simulate(&scenario);
        let wall = started.elapsed().as_secs_f64();
        eprintln!(
            "{}: {} decisions, {} allowed, {} over, {} throttles, {:.2} WCU/allowed ({wall:.1} s)",
            scenario.name,
            figures.decisions,
            figures.allowed,
            figures.over_admitted,
            figures.throttles,
            figures.write_units_per_allowed
        );
        rows.push(json!({
            "scenario": scenario,
            "figures": figures,
            "operations": run.stats.ops,
            "wall_seconds": wall,
        }));
    }
    let mut command = format!("target/release/bench-sim {seconds}");
    if !filter.is_empty() {
        command.push_str(&format!(" '{filter}'"));
    }
    let out = json!({
        "command": command,
        "commit": commit(),
        "seconds": seconds,
        "latency": {"p50_ms": 4, "p99_ms": 12, "distribution": "log-normal"},
        "partition_limits": {"write_units_per_second": 1000, "read_units_per_second": 3000},
        "scenarios": rows,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
}

/// The commit simulated, `abc1234 (subject)`, marked when the tree had changes.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let head = git(&["log", "-1", "--format=%h (%s)"]);
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        head
    } else {
        format!("{head} with uncommitted changes")
    }
}
