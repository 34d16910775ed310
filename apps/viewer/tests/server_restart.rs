//! The server is stopped and restarted mid-stream: the viewer shows the outage, rejoins with the
//! broadcaster (both through their sessions), and video flows again.

use wavecast_testbed::apps as common;

use std::process::Command;
use std::time::Duration;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

#[test]
fn viewer_and_broadcaster_rejoin_after_a_server_restart() {
    let (mut server, broadcaster) = common::server_and_broadcaster(VIEWER);
    let url = server.ws_url();
    let mut b = Command::new(&broadcaster);
    b.args(patient(common::join_args(&url, "restart", "caster")))
        .args(common::video_args(320, 180, 30))
        .args(["--bitrate", "300", "--duration", "40s", "--no-stdin"]);
    let caster = common::Background::spawn("broadcaster", &mut b);
    let (_dir, stats) = common::temp_path("stats.json");
    let mut v = Command::new(VIEWER);
    v.args(patient(common::join_args(&url, "restart", "watcher")))
        .args([
            "--headless",
            "--frames",
            "240",
            "--timeout",
            "45s",
            "--size",
            "320x180",
        ])
        .arg("--stats")
        .arg(&stats);
    let viewer = common::Background::spawn("viewer", &mut v);
    // About 90 frames arrive before the stop: 240 can only be reached after the rejoin.
    std::thread::sleep(Duration::from_secs(4));
    server.stop();
    std::thread::sleep(Duration::from_secs(2));
    server
        .restart()
        .expect("server comes back on the same ports");
    let r = viewer.finish(Duration::from_secs(60));
    let c = caster.finish(Duration::from_millis(1));
    common::assert_success_beside(&r, "broadcaster", &c);
    assert!(
        r.stderr.contains("lost the connection to LiveKit"),
        "{}",
        r.stderr
    );
    let s = common::json(&stats);
    assert!(s["reconnects"].as_u64().unwrap() >= 1, "{s}");
    assert!(
        s["video"]["frames_received"].as_u64().unwrap() >= 240,
        "{s}"
    );
    assert!(!r.stderr.contains("panicked") && !c.stderr.contains("panicked"));
}

/// The join arguments with 8 retries instead of 3 (the outage lasts a few seconds).
fn patient(mut args: Vec<String>) -> Vec<String> {
    let i = args.iter().position(|a| a == "--max-attempts").unwrap();
    args[i + 1] = "8".into();
    args
}
