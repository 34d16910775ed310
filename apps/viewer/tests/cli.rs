//! The viewer's command line: help with defaults, clear errors for bad flags and configuration,
//! and the offline behaviour with no server (no Xvfb needed: these runs are headless).

use wavecast_testbed::apps as common;
use wavecast_testbed::cli;

use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_viewer");

fn viewer() -> Command {
    let mut c = cli::command(BIN);
    c.env("RUST_LOG", "info");
    c
}

#[test]
fn help_lists_flags_with_defaults() {
    cli::assert_help(
        &mut viewer(),
        &[
            "--participant <IDENTITY>",
            "--headless",
            "--frames <N>",
            "--dump <DIR>",
            "--record <DIR>",
            "--audio-out <OUT>",
            "--source <SOURCE>",
            "[default: room]",
            "loopback",
            "--url <URL>",
            "[default: ws://127.0.0.1:7880]",
            "--room <ROOM>",
            "[default: wavecast]",
            "--max-attempts <N>",
            "[default: 10]",
            "--retry-delay <DURATION>",
            "[default: 500ms]",
            "--size <WxH>",
            "[default: 960x540]",
            "--token <TOKEN>",
            "--config <FILE>",
            "Exit codes",
        ],
    );
}

#[test]
fn bad_flags_are_refused_clearly() {
    let r = cli::run(viewer().args(["--frames", "many"]));
    cli::assert_usage_error(&r, &["--frames", "many"]);

    let r = cli::run(viewer().args(["--size", "huge"]));
    cli::assert_usage_error(&r, &["expected WxH"]);

    let r = cli::run(viewer().args(["--audio-out", "speakers"]));
    cli::assert_usage_error(&r, &["--audio-out", "wav:PATH"]);

    if !cfg!(feature = "cpal") {
        let r = cli::run(viewer().args(["--audio-out", "default"]));
        cli::assert_usage_error(&r, &["--features cpal"]);
    }

    let r = cli::run(viewer().args(["--dump", "/tmp/x"]));
    cli::assert_usage_error(&r, &["--dump needs --headless"]);

    let r = cli::run(viewer().args(["--no-such-flag"]));
    cli::assert_usage_error(&r, &["--no-such-flag"]);
}

#[test]
fn bad_config_names_key_and_source() {
    let (dir, file) = common::temp_path("bad.toml");
    std::fs::write(&file, "[video]\nfps = 0\n[connection]\nroom = \"r\"\n").unwrap();
    let r = cli::run(viewer().args(["--headless", "--config"]).arg(&file));
    cli::assert_usage_error(&r, &["video.fps = 0"]);
    assert!(r.stderr.contains("bad.toml"), "{}", r.output());

    let r = cli::run(viewer().args([
        "--headless",
        "--url",
        "ftp://x",
        "--api-key",
        "k",
        "--api-secret",
        "s",
    ]));
    cli::assert_usage_error(&r, &["connection.url", "--url"]);

    let r = cli::run(
        viewer()
            .args(["--headless", "--config"])
            .arg(dir.path().join("missing.toml")),
    );
    cli::assert_usage_error(&r, &["missing.toml"]);
}

#[test]
fn missing_credentials_are_explained() {
    let (_dir, empty) = common::temp_path("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let r = cli::run(viewer().args(["--headless", "--config"]).arg(&empty));
    cli::assert_usage_error(&r, &["no credentials"]);
}

#[test]
fn offline_server_retries_then_gives_up() {
    let url = common::dead_url();
    let r = common::run(
        viewer()
            .args(cli::offline_args(&url, 3, "100ms"))
            .args(["--headless", "--frames", "10"]),
        Duration::from_secs(30),
    );
    common::assert_offline(&r, &url, 3);
}
