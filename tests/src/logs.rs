//! The suite's logs, kept for the secrets-hygiene check.
//!
//! Every test binary installs one JSON `tracing` subscriber writing to
//! `<dir>/<binary>-<pid>.log`, and records every plaintext key it issues in
//! `<dir>/keys-<pid>.txt`. After the whole suite, `check-logs` (run by
//! `make test`) fails if any recorded key appears in any log. The directory
//! is `KEYGATE_TEST_LOGS`, or `.local/test-logs` at the workspace root.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use keygate::key::ApiKey;

/// Where the suite's logs go.
pub fn dir() -> PathBuf {
    std::env::var_os("KEYGATE_TEST_LOGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.local/test-logs"))
        })
}

static KEYS: OnceLock<Mutex<File>> = OnceLock::new();
static SECRETS: OnceLock<Mutex<File>> = OnceLock::new();

/// One line appended to `<dir>/<stem>-<pid>.txt` (created on first use).
fn append(cell: &'static OnceLock<Mutex<File>>, stem: &str, line: &str) {
    let file = cell.get_or_init(|| {
        let dir = dir();
        fs::create_dir_all(&dir).expect("create the test log directory");
        let path = dir.join(format!("{stem}-{}.txt", std::process::id()));
        Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the list"),
        )
    });
    let mut file = file.lock().expect("list lock");
    writeln!(file, "{line}").expect("write the list");
}

/// Remember another secret this test saw (a portal link token or session
/// id), so the check can look for it too.
pub fn remember_secret(secret: &str) {
    append(&SECRETS, "secrets", secret);
}

/// Install the log subscriber (once per test binary).
pub fn init() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let dir = dir();
        fs::create_dir_all(&dir).expect("create the test log directory");
        let exe = std::env::current_exe().ok();
        let name = exe
            .as_ref()
            .and_then(|p| p.file_stem())
            .and_then(|s| s.to_str())
            .unwrap_or("test");
        let path = dir.join(format!("{name}-{}.log", std::process::id()));
        let file = File::create(path).expect("create the test log file");
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(Mutex::new(file))
            // Everything of ours at debug; the SDK's and HTTP stack's chatter
            // (hundreds of lines per request) at info, which keeps the logs
            // of the 1000-key tests small enough to check in seconds.
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_smithy_http_client=info,\
                 aws_config=info,aws_runtime=info,aws_sigv4=info,hyper=info,hyper_util=info,h2=info,rustls=info",
            ))
            .init();
    });
}

/// Remember a key this test issued, so the check can look for it.
pub fn remember(key: &ApiKey) {
    append(&KEYS, "keys", key.expose());
}
