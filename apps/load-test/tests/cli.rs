//! Bad flags and an unreachable server give clear errors and exit codes, never a panic.

mod common;

use wavecast_testbed::cli;

use std::time::Duration;

fn run(args: &[&str]) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    common::run(
        common::command(dir.path())
            .args(["--api-key", "devkey", "--api-secret", "secret"])
            .args(args),
        Duration::from_secs(30),
    )
}

fn assert_usage_error(r: &common::Run, wants: &[&str]) {
    cli::assert_usage_error(r, wants);
    assert!(r.stdout.is_empty(), "{}", r.output());
}

#[test]
fn zero_subscribers_is_refused() {
    let r = run(&["--subscribers", "0"]);
    assert_usage_error(&r, &["--subscribers", "0", "at least 1"]);
}

#[test]
fn negative_duration_is_refused() {
    let r = run(&["--duration", "-5s"]);
    assert_usage_error(&r, &["--duration", "negative"]);
    let r = run(&["--duration", "500ms"]);
    assert_usage_error(&r, &["--duration", "at least"]);
}

#[test]
fn more_rooms_than_publishers_is_refused() {
    let r = run(&["--rooms", "3", "--publishers", "2", "--subscribers", "6"]);
    assert_usage_error(&r, &["--publishers", "every room needs a publisher"]);
}

#[test]
fn bad_size_and_url_are_refused() {
    let r = run(&["--size", "640by360"]);
    assert_usage_error(&r, &["--size", "WIDTHxHEIGHT"]);
    let r = run(&["--url", "127.0.0.1:7880"]);
    assert_usage_error(&r, &["--url", "ws://"]);
}

#[test]
fn missing_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = common::run(&mut common::command(dir.path()), Duration::from_secs(30));
    assert_usage_error(&r, &["--api-key"]);
}

#[test]
fn unreachable_server_is_one_clear_error() {
    let port = wavecast_testbed::free_tcp_port().unwrap();
    let url = format!("ws://127.0.0.1:{port}");
    let r = run(&["--url", &url, "--duration", "5s"]);
    assert_eq!(r.code(), 3, "{}", r.output());
    assert!(r.stderr.contains(&url), "{}", r.output());
    assert!(
        r.stderr.contains("does not answer") && r.stderr.contains("cannot reach"),
        "{}",
        r.output()
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.output());
}

#[test]
fn help_shows_defaults_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    cli::assert_help(
        common::command(dir.path()).args(["--api-key", "devkey", "--api-secret", "secret"]),
        &[
            "--publishers",
            "[default: 1]",
            "--subscribers",
            "[default: 10]",
            "--duration",
            "[default: 30s]",
            "--ramp",
            "--json",
            "decodes every video frame",
            "130 interrupted",
        ],
    );
}
