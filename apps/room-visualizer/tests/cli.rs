//! The room visualizer's command line: help with defaults, clear errors, offline behaviour.

use wavecast_testbed::apps as common;

use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_room-visualizer");

fn app() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("LIVEKIT_URL")
        .env_remove("LIVEKIT_API_KEY")
        .env_remove("LIVEKIT_API_SECRET")
        .env_remove("LIVEKIT_TOKEN");
    c
}

#[test]
fn help_lists_flags_with_defaults() {
    let r = common::run(app().arg("--help"), Duration::from_secs(10));
    assert_eq!(r.code(), 0, "{}", r.output());
    for needle in [
        "--headless",
        "--frames <N>",
        "--dump <DIR>",
        "--wait-participants <N>",
        "[default: 0]",
        "--fps <N>",
        "[default: 10]",
        "--size <WxH>",
        "[default: 1280x720]",
        "--url <URL>",
        "[default: ws://127.0.0.1:7880]",
        "--max-attempts <N>",
        "Exit codes",
    ] {
        assert!(
            r.stdout.contains(needle),
            "--help lacks {needle:?}\n{}",
            r.stdout
        );
    }
}

#[test]
fn bad_flags_and_config_are_refused_clearly() {
    let r = common::run(app().args(["--fps", "fast"]), Duration::from_secs(10));
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(
        r.stderr.contains("--fps") && r.stderr.contains("fast"),
        "{}",
        r.output()
    );

    let r = common::run(
        app().args([
            "--headless",
            "--fps",
            "0",
            "--api-key",
            "k",
            "--api-secret",
            "s",
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(
        r.stderr.contains("--fps between 1 and 120"),
        "{}",
        r.output()
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[reconnect]\nmax_attemps = 3\n").unwrap();
    let r = common::run(
        app().args(["--headless", "--config"]).arg(&file),
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(
        r.stderr.contains("max_attemps") && r.stderr.contains("max_attempts"),
        "{}",
        r.output()
    );
}

#[test]
fn offline_server_retries_then_gives_up() {
    let url = common::dead_url();
    let r = common::run(
        app().args([
            "--headless",
            "--url",
            &url,
            "--api-key",
            "devkey",
            "--api-secret",
            "secret",
            "--max-attempts",
            "2",
            "--retry-delay",
            "100ms",
            "--frames",
            "5",
        ]),
        Duration::from_secs(30),
    );
    common::assert_offline(&r, &url, 2);
}

#[test]
fn window_under_xvfb_shows_the_offline_state() {
    let required = std::env::var("WAVECAST_REQUIRE_GPU").is_ok_and(|v| v == "1");
    if Command::new("xvfb-run").arg("--help").output().is_err() {
        assert!(!required, "xvfb-run is required (WAVECAST_REQUIRE_GPU=1)");
        eprintln!("SKIPPED window_under_xvfb_shows_the_offline_state: xvfb-run not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("window.png");
    let url = common::dead_url();
    let r = common::run(
        Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x720x24", BIN])
            .args([
                "--url",
                &url,
                "--api-key",
                "devkey",
                "--api-secret",
                "secret",
            ])
            .args([
                "--retry-delay",
                "300ms",
                "--frames",
                "40",
                "--size",
                "960x540",
            ])
            .arg("--screenshot")
            .arg(&shot),
        Duration::from_secs(60),
    );
    assert_eq!(r.code(), 0, "{}", r.output());
    assert!(r.stderr.contains("cannot reach LiveKit"), "{}", r.output());
    let img = common::load_png(&shot);
    // The header line is drawn in red while offline.
    let mut red = 0;
    for y in 0..30 {
        for x in 0..600 {
            let p = img.pixel(x, y).unwrap();
            if p[0] > 150 && p[1] < 110 && p[2] < 110 {
                red += 1;
            }
        }
    }
    assert!(red > 50, "no red offline header ({red} red pixels)");
}
