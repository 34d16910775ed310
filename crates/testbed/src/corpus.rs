//! Bad-input corpora for the apps' tests: cases (arguments, files, what stderr must mention), a
//! deterministic generator for mutations, and a runner that checks every case fails clearly.
//!
//! An app's corpus test builds its cases (broken config files, media files, flags, tokens), then
//! runs them all with [`Check::failures`]:
//!
//! ```no_run
//! use std::process::Command;
//! use std::time::Duration;
//! use wavecast_testbed::corpus::{Case, Check, run_case};
//!
//! let cases = vec![
//!     Case::new("bad fps", &["--config", "bad.toml"], &["video.fps"])
//!         .file("bad.toml", b"[video]\nfps = 0\n".to_vec()),
//! ];
//! let failures = Check::exit_code(2).failures(&cases, |case| {
//!     run_case(Command::new("target/debug/broadcaster"), case, Duration::from_secs(20))
//! });
//! assert!(failures.is_empty(), "{}", failures.join("\n"));
//! ```

use std::ffi::OsString;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one case may run before it is killed (and counted as failed).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Environment variables a case never inherits (they would change what the app reads).
const CLEARED_ENV: [&str; 6] = [
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "LIVEKIT_TOKEN",
    "RUST_LOG",
    "WAVECAST_LOG",
];

/// One bad input: arguments, files to create in the working directory, and what stderr must
/// mention.
#[derive(Debug, Clone)]
pub struct Case {
    /// Shown when the case fails.
    pub name: String,
    /// Arguments after the ones the runner's command already holds.
    pub args: Vec<OsString>,
    /// Files written into the case's fresh working directory: `(name, bytes)`.
    pub files: Vec<(String, Vec<u8>)>,
    /// Substrings stderr must contain.
    pub needles: Vec<String>,
}

impl Case {
    /// A case running with `args`, whose stderr must mention every one of `needles`.
    pub fn new(name: impl Into<String>, args: &[&str], needles: &[&str]) -> Self {
        Case {
            name: name.into(),
            args: args.iter().map(OsString::from).collect(),
            files: Vec::new(),
            needles: needles.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Adds a file written into the working directory before the run.
    pub fn file(mut self, name: &str, bytes: Vec<u8>) -> Self {
        self.files.push((name.to_owned(), bytes));
        self
    }

    /// Whether the arguments hold `arg` (e.g. `--config`).
    pub fn has_arg(&self, arg: &str) -> bool {
        self.args.iter().any(|a| a == arg)
    }
}

/// A seeded random source (rand's `StdRng`): the same corpus on every run.
#[derive(Debug, Clone)]
pub struct Rng(rand::rngs::StdRng);

impl Rng {
    /// The generator for `seed`: equal seeds give equal sequences.
    pub fn seeded(seed: u64) -> Self {
        Self(rand::SeedableRng::seed_from_u64(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut self.0)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        rand::Rng::random_range(&mut self.0, 0..n)
    }
}

/// `good` (a TOML file) with `key`'s line in `[section]` replaced by `key = value`.
pub fn with_value(good: &str, section: &str, key: &str, value: &str) -> String {
    let mut out = String::new();
    let mut current = "";
    for line in good.lines() {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = s;
        }
        if current == section && line.split('=').next().map(str::trim) == Some(key) {
            out += &format!("{key} = {value}\n");
        } else {
            out += line;
            out.push('\n');
        }
    }
    out
}

/// Values no key of the shared configuration accepts, per key: `(section, key, bad values)`.
pub const BAD_CONFIG_VALUES: &[(&str, &str, &[&str])] = &[
    (
        "connection",
        "url",
        &["\"ftp://x\"", "\"\"", "\"not a url\"", "42", "\"ws://\""],
    ),
    ("connection", "room", &["\"\"", "\"   \"", "[1]"]),
    (
        "connection",
        "connect_timeout",
        &["\"0s\"", "\"1y\"", "\"forever\"", "\"500000000000y\"", "10"],
    ),
    (
        "reconnect",
        "initial_delay",
        &["\"0ms\"", "\"10m\"", "\"-1s\""],
    ),
    (
        "reconnect",
        "max_delay",
        &["\"2h\"", "\"99999999999999999999y\""],
    ),
    (
        "reconnect",
        "multiplier",
        &["nan", "inf", "-inf", "0.5", "11.0", "\"2\""],
    ),
    ("reconnect", "jitter", &["nan", "-0.1", "1.5", "+inf"]),
    (
        "reconnect",
        "max_attempts",
        &["-1", "1001", "1.5", "99999999999"],
    ),
    ("audio", "sample_rate", &["44100", "0", "-48000", "\"48k\""]),
    ("audio", "channels", &["0", "3", "65536"]),
    ("video", "width", &["0", "15", "17", "4000", "-2"]),
    ("video", "height", &["0", "2161", "13"]),
    ("video", "fps", &["0", "121", "nan"]),
    ("video", "codec", &["\"av1\"", "\"\"", "1"]),
    ("video", "bitrate", &["0", "49", "50001"]),
];

/// One case per entry of [`BAD_CONFIG_VALUES`]: `good` with that value, written to `bad.toml`,
/// the app run with `args` (which pass `--config bad.toml`); stderr must name the file and the
/// key. `refused` says whether the configuration library refuses a text: every case is checked
/// with it first, so the corpus holds only inputs that are really bad.
///
/// # Panics
/// When `refused` accepts one of the texts (the table or the library changed).
pub fn bad_config_value_cases(
    good: &str,
    args: &[&str],
    refused: impl Fn(&[u8]) -> bool,
) -> Vec<Case> {
    let mut cases = Vec::new();
    for (section, key, values) in BAD_CONFIG_VALUES {
        for value in *values {
            let text = with_value(good, section, key, value);
            assert!(
                refused(text.as_bytes()),
                "{section}.{key} = {value} is not refused"
            );
            let needle = format!("{section}.{key}");
            cases.push(
                Case::new(
                    format!("config {section}.{key} = {value}"),
                    args,
                    &["bad.toml", &needle],
                )
                .file("bad.toml", text.into_bytes()),
            );
        }
    }
    cases
}

/// A valid configuration file (as `config/livekit.toml` ships, dev keys) joining `url`, giving
/// up after `max_attempts`, with `width`x`height` VP8 video at `kbps`: the file corpus cases break.
pub fn good_config(url: &str, max_attempts: u32, (width, height): (u32, u32), kbps: u32) -> String {
    format!(
        "[connection]\nurl = \"{url}\"\napi_key = \"devkey\"\napi_secret = \"secret\"\n\
         room = \"wavecast-demo\"\nconnect_timeout = \"10s\"\n\n[reconnect]\n\
         initial_delay = \"500ms\"\nmax_delay = \"10s\"\nmultiplier = 2.0\njitter = 0.2\n\
         max_attempts = {max_attempts}\n\n[audio]\nsample_rate = 48000\nchannels = 1\n\n\
         [video]\nwidth = {width}\nheight = {height}\nfps = 30\ncodec = \"vp8\"\nbitrate = {kbps}\n"
    )
}

/// How a case ended.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None` when killed at the timeout or by a signal).
    pub code: Option<i32>,
    /// What it printed on stderr.
    pub stderr: String,
}

/// Runs `cmd` (the app with any leading arguments) followed by the case's arguments, in a fresh
/// directory holding the case's files, without the LiveKit and logging environment variables,
/// with `RUST_BACKTRACE=0`; kills it after `timeout`.
pub fn run_case(mut cmd: Command, case: &Case, timeout: Duration) -> Outcome {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, bytes) in &case.files {
        std::fs::write(dir.path().join(name), bytes).expect("write a case file");
    }
    cmd.args(&case.args).current_dir(dir.path());
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()));
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome {
        code,
        stderr: String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned(),
    }
}

/// What every case of a corpus must show: the exit code, an `error` on stderr, no panic, each
/// case's needles, and none of the forbidden lines.
#[derive(Debug, Clone)]
pub struct Check {
    code: Option<i32>,
    forbidden: Vec<(String, String)>,
}

impl Check {
    /// Every case must exit with `code` (2 = refused during validation, as clap's usage errors).
    pub fn exit_code(code: i32) -> Self {
        Check {
            code: Some(code),
            forbidden: Vec::new(),
        }
    }

    /// Every case must fail: any exit code but 0 and 101 (a panic), not killed at the timeout.
    pub fn failure() -> Self {
        Check {
            code: None,
            forbidden: Vec::new(),
        }
    }

    /// Stderr must not contain `text`; `why` names it in the failure report.
    pub fn never(mut self, text: &str, why: &str) -> Self {
        self.forbidden.push((text.to_owned(), why.to_owned()));
        self
    }

    /// Why one outcome breaks the rules (empty when it keeps them).
    pub fn problems(&self, case: &Case, o: &Outcome) -> Vec<String> {
        let mut why = Vec::new();
        match (self.code, o.code) {
            (Some(want), got) if got != Some(want) => {
                why.push(format!(
                    "exit {got:?}, not {want} (refused before connecting)"
                ));
            }
            (Some(_), _) => {}
            (None, None) => why.push("timed out or killed by a signal".to_owned()),
            (None, Some(0)) => why.push("exit code 0".to_owned()),
            (None, Some(101)) => why.push("exit code 101 (panic)".to_owned()),
            (None, Some(_)) => {}
        }
        if o.stderr.contains("panicked at") {
            why.push("panicked".into());
        }
        for (text, name) in &self.forbidden {
            if o.stderr.contains(text.as_str()) {
                why.push(name.clone());
            }
        }
        if !o.stderr.contains("error") {
            why.push("no error message".into());
        }
        for n in &case.needles {
            if !o.stderr.contains(n.as_str()) {
                why.push(format!("stderr does not mention {n:?}"));
            }
        }
        why
    }

    /// Runs every case with `run` (four at a time) and returns a report line per case that broke
    /// the rules.
    pub fn failures(&self, cases: &[Case], run: impl Fn(&Case) -> Outcome + Sync) -> Vec<String> {
        let chunks: Vec<&[Case]> = cases.chunks(cases.len().div_ceil(4).max(1)).collect();
        let run = &run;
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| {
                    s.spawn(move || {
                        let mut failures = Vec::new();
                        for case in *chunk {
                            let o = run(case);
                            let why = self.problems(case, &o);
                            if !why.is_empty() {
                                failures.push(format!(
                                    "{}: {} (exit {:?})\n  stderr: {}",
                                    case.name,
                                    why.join(", "),
                                    o.code,
                                    o.stderr.trim().replace('\n', "\n          ")
                                ));
                            }
                        }
                        failures
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a corpus runner thread"))
                .collect()
        })
    }

    /// Runs every case and panics with the report when any broke the rules.
    pub fn assert_all(&self, cases: &[Case], run: impl Fn(&Case) -> Outcome + Sync) {
        let failures = self.failures(cases, run);
        assert!(
            failures.is_empty(),
            "{} of {} bad inputs were not handled clearly:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        println!("{} bad inputs refused clearly", cases.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_value_replaces_only_the_key_of_its_section() {
        let good = "[a]\nx = 1\ny = 2\n[b]\nx = 3\n";
        assert_eq!(
            with_value(good, "b", "x", "nan"),
            "[a]\nx = 1\ny = 2\n[b]\nx = nan\n"
        );
    }

    #[test]
    fn rng_is_deterministic_and_below_stays_in_range() {
        let (mut a, mut b) = (Rng::seeded(7), Rng::seeded(7));
        for _ in 0..100 {
            let n = a.below(10);
            assert_eq!(n, b.below(10));
            assert!(n < 10);
        }
        assert_eq!(a.below(0), 0);
    }

    #[test]
    fn check_reports_wrong_code_missing_needle_and_forbidden_text() {
        let case = Case::new("c", &[], &["video.fps"]);
        let check = Check::exit_code(2).never("cannot reach LiveKit", "tried to connect");
        let good = Outcome {
            code: Some(2),
            stderr: "error: video.fps = 0 is out of range".into(),
        };
        assert!(check.problems(&case, &good).is_empty());
        let bad = Outcome {
            code: Some(3),
            stderr: "error: cannot reach LiveKit at ws://x".into(),
        };
        let why = check.problems(&case, &bad);
        assert_eq!(why.len(), 3, "{why:?}");
        let panicked = Outcome {
            code: Some(101),
            stderr: "thread 'main' panicked at src/main.rs".into(),
        };
        assert_eq!(
            Check::failure().problems(&case, &panicked),
            [
                "exit code 101 (panic)",
                "panicked",
                "no error message",
                "stderr does not mention \"video.fps\""
            ]
        );
    }
}
