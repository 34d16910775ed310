//! The viewer's command line: help with defaults, clear errors for bad flags and configuration,
//! and the offline behaviour with no server (no Xvfb needed: these runs are headless).

use wavecast_testbed::apps as common;

use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_viewer");

fn viewer() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("LIVEKIT_URL")
        .env_remove("LIVEKIT_API_KEY")
        .env_remove("LIVEKIT_API_SECRET")
        .env_remove("LIVEKIT_TOKEN")
        .env("RUST_LOG", "info");
    c
}

#[test]
fn help_lists_flags_with_defaults() {
    let r = common::run(viewer().arg("--help"), Duration::from_secs(10));
    assert_eq!(r.code(), 0, "{}", r.output());
    for needle in [
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
    ] {
        assert!(
            r.stdout.contains(needle),
            "--help lacks {needle:?}\n{}",
            r.stdout
        );
    }
}

#[test]
fn bad_flags_are_refused_clearly() {
    let r = common::run(viewer().args(["--frames", "many"]), Duration::from_secs(10));
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(
        r.stderr.contains("--frames") && r.stderr.contains("many"),
        "{}",
        r.output()
    );

    let r = common::run(viewer().args(["--size", "huge"]), Duration::from_secs(10));
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(r.stderr.contains("expected WxH"), "{}", r.output());

    let r = common::run(
        viewer().args(["--audio-out", "speakers"]),
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(
        r.stderr.contains("--audio-out") && r.stderr.contains("wav:PATH"),
        "{}",
        r.output()
    );

    if !cfg!(feature = "cpal") {
        let r = common::run(
            viewer().args(["--audio-out", "default"]),
            Duration::from_secs(10),
        );
        assert_eq!(r.code(), 2, "{}", r.output());
        assert!(r.stderr.contains("--features cpal"), "{}", r.output());
    }

    let r = common::run(viewer().args(["--dump", "/tmp/x"]), Duration::from_secs(10));
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(
        r.stderr.contains("--dump needs --headless"),
        "{}",
        r.output()
    );

    let r = common::run(viewer().args(["--no-such-flag"]), Duration::from_secs(10));
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(r.stderr.contains("--no-such-flag"), "{}", r.output());
}

#[test]
fn bad_config_names_key_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[video]\nfps = 0\n[connection]\nroom = \"r\"\n").unwrap();
    let r = common::run(
        viewer().args(["--headless", "--config"]).arg(&file),
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(r.stderr.contains("video.fps = 0"), "{}", r.output());
    assert!(r.stderr.contains("bad.toml"), "{}", r.output());

    let r = common::run(
        viewer().args([
            "--headless",
            "--url",
            "ftp://x",
            "--api-key",
            "k",
            "--api-secret",
            "s",
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(
        r.stderr.contains("connection.url") && r.stderr.contains("--url"),
        "{}",
        r.output()
    );

    let r = common::run(
        viewer()
            .args(["--headless", "--config"])
            .arg(dir.path().join("missing.toml")),
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(r.stderr.contains("missing.toml"), "{}", r.output());
}

#[test]
fn missing_credentials_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let r = common::run(
        viewer().args(["--headless", "--config"]).arg(&empty),
        Duration::from_secs(10),
    );
    assert_eq!(r.code(), 2, "{}", r.output());
    assert!(r.stderr.contains("no credentials"), "{}", r.output());
}

#[test]
fn offline_server_retries_then_gives_up() {
    let url = common::dead_url();
    let r = common::run(
        viewer().args([
            "--headless",
            "--url",
            &url,
            "--api-key",
            "devkey",
            "--api-secret",
            "secret",
            "--max-attempts",
            "3",
            "--retry-delay",
            "100ms",
            "--frames",
            "10",
        ]),
        Duration::from_secs(30),
    );
    common::assert_offline(&r, &url, 3);
}
