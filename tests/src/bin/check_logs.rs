//! Secrets hygiene over the whole suite's logs: no key the tests issued may
//! appear in any log line. Run by `make test` after `cargo test`.
//!
//! The same holds for the other secrets the tests saw (`secrets-*.txt`:
//! developer-portal link tokens and session ids), looked up as text.
//!
//! It fails, too, if there is nothing to check (no keys or no decision
//! lines), so a broken log capture cannot pass silently.

use std::collections::HashSet;
use std::fs;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = keygate_tests::logs::dir();
    let Ok(entries) = fs::read_dir(&dir) else {
        eprintln!("check-logs: no log directory at {}", dir.display());
        return ExitCode::FAILURE;
    };
    let mut keys = HashSet::new();
    let mut secrets = HashSet::new();
    let mut logs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if name.starts_with("secrets-") {
            secrets.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        } else if name.starts_with("keys-") {
            keys.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        } else if name.ends_with(".log") {
            logs.push((name, text));
        }
    }
    let decisions: usize = logs
        .iter()
        .map(|(_, t)| {
            t.lines()
                .filter(|l| l.contains("\"message\":\"decision\""))
                .count()
        })
        .sum();
    let lines: usize = logs.iter().map(|(_, t)| t.lines().count()).sum();
    if keys.is_empty() || decisions == 0 {
        eprintln!(
            "check-logs: nothing to check ({} keys, {decisions} decisions)",
            keys.len()
        );
        return ExitCode::FAILURE;
    }
    // Every key is found as (part of) a token of key characters: look each
    // token's windows of a key's length up in the set, so the check is linear
    // in the size of the logs, not logs times keys.
    let lengths: HashSet<usize> = keys.iter().map(String::len).collect();
    let mut leaks = 0;
    for (name, text) in &logs {
        for (n, line) in text.lines().enumerate() {
            let leaked = line
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .any(|tok| {
                    keygate::key::verify_any(tok).is_ok()
                        || lengths.iter().any(|&len| {
                            tok.len() >= len
                                && (0..=tok.len() - len).any(|i| keys.contains(&tok[i..i + len]))
                        })
                });
            let leaked = leaked || secrets.iter().any(|s| line.contains(s.as_str()));
            if leaked {
                eprintln!("check-logs: a key appears in {name}:{}", n + 1);
                leaks += 1;
            }
        }
    }
    println!(
        "check-logs: {} keys issued, {} other secrets, {} log lines ({decisions} decisions) in {} files, {leaks} leaks",
        keys.len(),
        secrets.len(),
        lines,
        logs.len()
    );
    if leaks == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
