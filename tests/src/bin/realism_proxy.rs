//! The realism proxy (`keygate_tests::realism`) in front of the local
//! emulator, for the whole test suite (`infra/local/with-emulator`).
//!
//!   realism-proxy --upstream http://127.0.0.1:PORT --port-file FILE
//!
//! Binds a free loopback port and writes it to FILE once listening. Settings
//! from the environment: `KEYGATE_REALISM_STALE_MS` (default 1000),
//! `KEYGATE_REALISM_SCALE` (default 1.0), `KEYGATE_REALISM_THROTTLE`
//! (`throttling` or `provisioned`), `KEYGATE_REALISM_CAPTURE` (a file to
//! append request shapes to).

use std::process::ExitCode;

use keygate_tests::realism::{Config, RealismProxy};

const USAGE: &str = "usage: realism-proxy --upstream http://127.0.0.1:PORT --port-file FILE";

fn args() -> Result<(String, String), String> {
    let mut upstream = None;
    let mut port_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--upstream" => &mut upstream,
            "--port-file" => &mut port_file,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        *slot = Some(
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?,
        );
    }
    match (upstream, port_file) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err(USAGE.to_owned()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let started = async {
        let (upstream, port_file) = args()?;
        let config = Config::from_env()?;
        let proxy = RealismProxy::start(&upstream, config)
            .await
            .map_err(|e| format!("cannot start: {e}"))?;
        std::fs::write(&port_file, proxy.addr().port().to_string())
            .map_err(|e| format!("cannot write {port_file}: {e}"))?;
        Ok::<_, String>(proxy)
    };
    match started.await {
        Ok(proxy) => {
            eprintln!(
                "realism-proxy: {} -> upstream, {:?}",
                proxy.endpoint(),
                proxy.config()
            );
            // Runs until killed.
            std::future::pending::<()>().await;
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("realism-proxy: {message}");
            ExitCode::from(2)
        }
    }
}
