//! The broadcaster's command line: help with defaults, clear errors for bad flags, configuration
//! and media files, and the offline behaviour with no server.

use wavecast_testbed::apps as common;
use wavecast_testbed::cli;

use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_broadcaster");

fn app() -> Command {
    let mut c = cli::command(BIN);
    c.arg("--no-stdin");
    c
}

const KEYS: [&str; 4] = ["--api-key", "devkey", "--api-secret", "secret"];

#[test]
fn help_lists_flags_with_defaults() {
    cli::assert_help(
        &mut cli::command(BIN),
        &[
            "--source <SOURCE>",
            "[default: synthetic]",
            "--video-file <FILE>",
            "--audio-file <FILE>",
            "--width <WIDTH>",
            "[default: 1280]",
            "--height <HEIGHT>",
            "[default: 720]",
            "--fps <FPS>",
            "[default: 30]",
            "--bitrate <KBPS>",
            "[default: 1500]",
            "--codec <CODEC>",
            "[default: vp8]",
            "--audio-bitrate <KBPS>",
            "[default: 32]",
            "--url <URL>",
            "[default: ws://127.0.0.1:7880]",
            "--room <ROOM>",
            "--identity <IDENTITY>",
            "--token <TOKEN>",
            "--api-key <KEY>",
            "--api-secret <SECRET>",
            "--stats-interval <DURATION>",
            "[default: 2s]",
            "--max-attempts <N>",
            "Exit codes",
        ],
    );
}

#[test]
fn bad_flags_are_refused_clearly() {
    let cases: [(&[&str], &str); 8] = [
        (&["--fps", "thirty"], "--fps"),
        (&["--source", "camera"], "possible values: synthetic, file"),
        (&["--source", "file"], "--source file needs --video-file"),
        (&["--codec", "av1"], "possible values: vp8, vp9, h264"),
        (
            &["--min-bitrate", "2000", "--bitrate", "500"],
            "video.min_bitrate = 2000 (command-line flag --min-bitrate): must not exceed video.bitrate (500)",
        ),
        (&["--tone", "5"], "--tone 5"),
        (&["--no-audio", "--no-video"], "nothing to publish"),
        (&["--video-file", "x.y4m"], "need --source file"),
    ];
    for (args, needle) in cases {
        cli::assert_usage_error(&cli::run(app().args(KEYS).args(args)), &[needle]);
    }
}

#[test]
fn bad_config_and_bad_files_name_the_culprit() {
    let (dir, file) = common::temp_path("bad.toml");
    std::fs::write(&file, "[video]\nwidth = 15\nfps = 500\n").unwrap();
    let r = cli::run(app().args(KEYS).arg("--config").arg(&file));
    cli::assert_usage_error(&r, &["video.width = 15"]);
    assert!(r.stderr.contains("video.fps = 500"), "{}", r.output());

    // A flag overrides the file and is named as the source.
    let r = cli::run(app().args(KEYS).args(["--fps", "0"]));
    cli::assert_usage_error(&r, &["video.fps = 0 (command-line flag --fps)"]);

    let y4m = dir.path().join("broken.y4m");
    std::fs::write(&y4m, "YUV4MPEG2 W64 H48 F30:1\nFRAME\nshort").unwrap();
    let r = cli::run(
        app()
            .args(KEYS)
            .args(["--source", "file", "--video-file"])
            .arg(&y4m),
    );
    cli::assert_usage_error(&r, &["broken.y4m"]);

    let wav = dir.path().join("missing.wav");
    let r = cli::run(
        app()
            .args(KEYS)
            .args(["--source", "file", "--audio-file"])
            .arg(&wav),
    );
    cli::assert_usage_error(&r, &["missing.wav"]);
}

#[test]
fn offline_server_retries_then_gives_up() {
    // The capture runs while offline: the snapshot shows what would be sent.
    let (_dir, snap) = common::temp_path("snap.png");
    let url = common::dead_url();
    let r = common::run(
        app()
            .args(cli::offline_args(&url, 3, "400ms"))
            .args(["--width", "320", "--height", "180", "--fps", "30"])
            .arg("--snapshot")
            .arg(&snap),
        Duration::from_secs(30),
    );
    common::assert_offline(&r, &url, 3);
    let (worst, notes) = common::bar_errors(&snap, (0.0, 0.0, 320.0, 180.0));
    assert!(worst <= 3, "the snapshot is lossless:\n{notes}");
}
