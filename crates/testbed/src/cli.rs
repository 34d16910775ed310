//! Checks every app's command-line tests make: `--help` shows the flags with their defaults, a bad
//! flag is a usage error (exit 2) naming what was wrong, and the arguments of an offline run.
//!
//! ```no_run
//! use wavecast_testbed::cli;
//!
//! let bin = "target/debug/viewer";
//! cli::assert_help(&mut cli::command(bin), &["--url <URL>", "[default: ws://127.0.0.1:7880]"]);
//! let r = cli::run(cli::command(bin).args(["--frames", "many"]));
//! cli::assert_usage_error(&r, &["--frames", "many"]);
//! ```

use std::process::Command;
use std::time::Duration;

use crate::apps::{self, Run};

/// How long a command-line check may run.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `bin` with no LiveKit credentials from the environment (`LIVEKIT_URL`, `LIVEKIT_API_KEY`,
/// `LIVEKIT_API_SECRET`, `LIVEKIT_TOKEN` removed).
pub fn command(bin: &str) -> Command {
    let mut c = Command::new(bin);
    c.env_remove("LIVEKIT_URL")
        .env_remove("LIVEKIT_API_KEY")
        .env_remove("LIVEKIT_API_SECRET")
        .env_remove("LIVEKIT_TOKEN");
    c
}

/// Runs `cmd` with [`TIMEOUT`].
pub fn run(cmd: &mut Command) -> Run {
    apps::run(cmd, TIMEOUT)
}

/// Runs `cmd --help` and checks it exits 0 and its stdout holds every one of `needles`; returns
/// the run.
pub fn assert_help(cmd: &mut Command, needles: &[&str]) -> Run {
    let r = run(cmd.arg("--help"));
    assert_eq!(r.code(), 0, "{}", r.output());
    for needle in needles {
        assert!(
            r.stdout.contains(needle),
            "--help lacks {needle:?}\n{}",
            r.stdout
        );
    }
    r
}

/// Checks `r` is a usage error: exit code 2, stderr naming every one of `needles`, no panic.
pub fn assert_usage_error(r: &Run, needles: &[&str]) {
    assert_eq!(r.code(), 2, "{}", r.output());
    for needle in needles {
        assert!(
            r.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            r.output()
        );
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.output());
}

/// Arguments of a run against `url` (where nothing listens, see [`apps::dead_url`]) with the dev
/// keys, giving up after `attempts` retries `retry_delay` apart; check the result with
/// [`apps::assert_offline`].
pub fn offline_args(url: &str, attempts: u32, retry_delay: &str) -> Vec<String> {
    let attempts = attempts.to_string();
    [
        "--url",
        url,
        "--api-key",
        "devkey",
        "--api-secret",
        "secret",
        "--max-attempts",
        &attempts,
        "--retry-delay",
        retry_delay,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
