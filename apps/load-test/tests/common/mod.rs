//! Helpers of the load-test app's tests: run the binary with a timeout, and check a report.
// Each test binary uses a part of this module.
#![allow(dead_code, unused_imports)]

use std::process::{Command, Stdio};

pub use wavecast_testbed::apps::{Background, Run, run, run_ok};

/// The app binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_load-test");

/// Stdout of `r` parsed as the JSON report.
pub fn report(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not a JSON report ({e})\n{}", r.output()))
}

/// The command with a clean environment (no config file: runs in `dir`).
pub fn command(dir: &std::path::Path) -> Command {
    let mut c = wavecast_testbed::cli::command(BIN);
    c.current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
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
