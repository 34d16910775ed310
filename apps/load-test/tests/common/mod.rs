//! Helpers of the load-test app's tests: run the binary with a timeout, and check a report.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The app binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_load-test");

/// What a finished run printed.
#[derive(Debug)]
pub struct Run {
    /// Exit status (`None` when killed at the timeout).
    pub status: Option<ExitStatus>,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Run {
    /// The exit code (`-1` when killed or signalled).
    pub fn code(&self) -> i32 {
        self.status.and_then(|s| s.code()).unwrap_or(-1)
    }

    /// Both streams, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    /// Stdout parsed as the JSON report.
    pub fn report(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not a JSON report ({e})\n{}", self.output()))
    }
}

/// The command with a clean environment (no config file: runs in `dir`).
pub fn command(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("LIVEKIT_URL")
        .env_remove("LIVEKIT_API_KEY")
        .env_remove("LIVEKIT_API_SECRET")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn drain<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// A started run whose output is collected; killed on drop.
pub struct Started {
    pub child: Child,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
}

impl Started {
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd.spawn().expect("start load-test");
        let out = drain(child.stdout.take().expect("piped"));
        let err = drain(child.stderr.take().expect("piped"));
        Self {
            child,
            out: Some(out),
            err: Some(err),
        }
    }

    /// Waits up to `timeout` (then kills it) and collects the output.
    pub fn finish(mut self, timeout: Duration) -> Run {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        Run {
            status,
            stdout: self
                .out
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default(),
            stderr: self
                .err
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default(),
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs to completion with `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Run {
    Started::spawn(cmd).finish(timeout)
}

/// The short CI load: 2 publishers × 6 subscribers for 10 s at 320x180, with the dev keys.
pub fn short_load_args() -> Vec<&'static str> {
    vec![
        "--api-key",
        "devkey",
        "--api-secret",
        "secret",
        "--publishers",
        "2",
        "--subscribers",
        "6",
        "--duration",
        "10s",
        "--size",
        "320x180",
        "--fps",
        "30",
        "--bitrate",
        "300",
        "--json",
    ]
}

/// The acceptance checks of a finished short load: every join succeeded, every track was
/// subscribed, ≥ 95 % of frames delivered, latency percentiles present and plausible.
pub fn assert_healthy(report: &serde_json::Value, subscribers: u64) {
    let t = &report["total"];
    let pretty = serde_json::to_string_pretty(report).unwrap();
    assert_eq!(t["subscribers"].as_u64(), Some(subscribers), "{pretty}");
    assert_eq!(
        t["joined"].as_u64(),
        Some(subscribers),
        "all joins succeed: {pretty}"
    );
    assert_eq!(t["join_success_pct"].as_f64(), Some(100.0), "{pretty}");
    assert_eq!(
        t["tracks_subscribed"], t["tracks_expected"],
        "every track subscribed: {pretty}"
    );
    assert!(t["tracks_expected"].as_u64().unwrap_or(0) > 0, "{pretty}");
    let delivered = t["frames_delivered_pct"]
        .as_f64()
        .expect("a delivery figure");
    assert!(
        delivered >= 95.0,
        "only {delivered:.1} % of frames delivered: {pretty}"
    );
    assert!(t["frames_expected"].as_u64().unwrap_or(0) > 100, "{pretty}");
    let lat = &t["latency"];
    for key in ["p50_ms", "p95_ms", "p99_ms"] {
        let v = lat[key].as_f64().unwrap_or(f64::NAN);
        assert!(v > 0.0 && v < 2000.0, "latency {key} = {v}: {pretty}");
    }
    assert!(lat["p50_ms"].as_f64() <= lat["p95_ms"].as_f64());
    let ff = t["first_frame_ms"]["p95_ms"].as_f64().unwrap_or(f64::NAN);
    assert!(
        ff > 0.0 && ff < 5000.0,
        "join → first frame p95 {ff}: {pretty}"
    );
    assert!(t["packets"].as_u64().unwrap_or(0) > 0, "{pretty}");
    assert!(t["bitrate_kbps"].as_f64().unwrap_or(0.0) > 0.0, "{pretty}");
    assert_eq!(report["interrupted"], false, "{pretty}");
    for s in report["subscribers"]
        .as_array()
        .expect("per-subscriber rows")
    {
        assert_eq!(s["joined"], true, "{s}");
        assert!(s["latency"]["p50_ms"].as_f64().unwrap_or(0.0) > 0.0, "{s}");
    }
    assert!(report["cpu"]["percent_of_one_core"].as_f64().unwrap_or(0.0) > 0.0);
}
