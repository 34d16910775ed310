//! The room visualizer's command line: help with defaults, clear errors, offline behaviour.

use wavecast_testbed::apps as common;
use wavecast_testbed::cli;

use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_room-visualizer");

#[test]
fn help_lists_flags_with_defaults() {
    cli::assert_help(
        &mut cli::command(BIN),
        &[
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
        ],
    );
}

#[test]
fn bad_flags_and_config_are_refused_clearly() {
    let r = cli::run(cli::command(BIN).args(["--fps", "fast"]));
    cli::assert_usage_error(&r, &["--fps", "fast"]);

    let r = cli::run(cli::command(BIN).args([
        "--headless",
        "--fps",
        "0",
        "--api-key",
        "k",
        "--api-secret",
        "s",
    ]));
    cli::assert_usage_error(&r, &["--fps between 1 and 120"]);

    let (_dir, file) = common::temp_path("bad.toml");
    std::fs::write(&file, "[reconnect]\nmax_attemps = 3\n").unwrap();
    let r = cli::run(
        cli::command(BIN)
            .args(["--headless", "--config"])
            .arg(&file),
    );
    cli::assert_usage_error(&r, &["max_attemps", "max_attempts"]);
}

#[test]
fn offline_server_retries_then_gives_up() {
    let url = common::dead_url();
    let r = common::run(
        cli::command(BIN)
            .args(cli::offline_args(&url, 2, "100ms"))
            .args(["--headless", "--frames", "5"]),
        Duration::from_secs(30),
    );
    common::assert_offline(&r, &url, 2);
}

#[test]
fn window_under_xvfb_shows_the_offline_state() {
    let Some((_dir, shot)) = common::window_shot("window_under_xvfb_shows_the_offline_state")
    else {
        return;
    };
    let url = common::dead_url();
    let r = common::run_ok(
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
