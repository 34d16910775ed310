//! A browser publishes H.264, then VP9 (livekit-client's `videoCodec` option, its other
//! publish defaults kept: simulcast for H.264, SVC for VP9), our viewer and our recorder
//! receive it: the viewer decodes the stamped pictures in order, the recorder writes a file
//! (H.264 into Matroska, VP9 into WebM) that ffprobe reads with that codec and ffmpeg decodes
//! to the last frame without an error. Debian's Chromium runs livekit-client in a private
//! network namespace (libwebrtc gathers no candidate on loopback alone).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wavecast_testbed::apps::{self as common, Background};
use wavecast_testbed::browser::{BrowserPeer, PublishOptions};
use wavecast_testbed::{LiveKitServer, NetNs, ServerOptions};
use wavecast_token::Preset;

mod stamped_y4m;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");
/// The camera file: 640×360 at 30 fps, 5 s, looped by Chromium.
const SOURCE: (u32, u32) = (640, 360);
const FPS: u32 = 30;
const LOOP_FRAMES: u32 = 150;
/// Pictures the viewer must decode.
const FRAMES: u64 = 120;

/// One browser at a time (two cores; each test runs Chromium, a viewer and a recorder).
static ONE_BROWSER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn viewer_and_recorder_take_a_browser_publishing_h264() {
    browser_publishes("h264", "browser_codecs_h264", "mkv");
}

#[test]
fn viewer_and_recorder_take_a_browser_publishing_vp9() {
    browser_publishes("vp9", "browser_codecs_vp9", "webm");
}

fn browser_publishes(codec: &str, test: &str, extension: &str) {
    let _one = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let camera = dir.path().join("camera.y4m");
    stamped_y4m::write(&camera, SOURCE, FPS, LOOP_FRAMES);
    let server = LiveKitServer::start_with(&ServerOptions {
        media_ip: Some(NetNs::ADDR),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts in the namespace");
    let url = server.ws_url();
    let room = format!("browser-{codec}");
    let token = server.token("browser", &room, Preset::Broadcaster);
    let mut browser = BrowserPeer::publish(
        &url,
        &token,
        &PublishOptions {
            video: Some(camera),
            video_codec: Some(codec.into()),
            ..PublishOptions::default()
        },
        90,
    )
    .expect("the browser peer starts");
    let ready = browser
        .wait_json("READY", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("the browser publishes: {e}"));
    eprintln!("browser published {codec}: {ready}");

    // The recorder, for the whole viewing.
    let out = dir.path().join("recording");
    let recorder_bin = common::sibling_bin(VIEWER, "wavecast-recorder", "recorder");
    let mut rec = Command::new(recorder_bin);
    rec.args(common::join_args(&url, &room, "rec"))
        .args(["--duration", "14s", "--out"])
        .arg(&out);
    let rec = Background::spawn("recorder", &mut rec);
    // The recorder joins and subscribes while the viewer starts; it records 14 s.
    std::thread::sleep(Duration::from_secs(2));

    let stats_path = dir.path().join("stats.json");
    let run = common::run(
        common::join_command(VIEWER, &url, &room, "watcher")
            .args([
                "--participant",
                "browser",
                "--headless",
                "--size",
                "320x180",
            ])
            .args(["--frames", &FRAMES.to_string(), "--timeout", "40s"])
            .arg("--stats")
            .arg(&stats_path),
        Duration::from_secs(60),
    );
    let recorded = rec.finish(Duration::from_secs(40));
    browser.stop();
    assert_eq!(
        run.code(),
        0,
        "viewer failed\n{}\n--- browser\n{}",
        run.output(),
        browser.stderr()
    );

    // The viewer: that codec, the stamped pictures in order.
    let stats = common::json(&stats_path);
    let stream = &stats["streams"]["video"][0];
    let decoded = stream["frames_decoded"].as_u64().unwrap_or(0);
    let stamped = stream["stamped_frames"].as_u64().unwrap_or(0);
    let regressions = stream["stamp_regressions"].as_u64().expect("regressions");
    let seconds = stream["seconds"].as_f64().unwrap_or(0.0);
    eprintln!(
        "BROWSER ({codec}) → VIEWER: {decoded} pictures in {seconds:.1} s, {stamped} stamped, \
         frame numbers {}..{}, {regressions} regressions, {} decode errors",
        stream["first_frame_number"], stream["last_frame_number"], stream["decode_errors"]
    );
    assert_eq!(stream["codec"], codec, "{stream}\n{}", run.output());
    assert!(decoded >= FRAMES, "{stream}");
    assert!(
        stamped * 10 >= decoded * 9,
        "{stamped} of {decoded} pictures carry a readable stamp: {stream}"
    );
    let loops = ((seconds + 0.5) / (f64::from(LOOP_FRAMES) / f64::from(FPS))).ceil() as u64;
    assert!(
        regressions <= loops,
        "in order: {regressions} regressions in {seconds:.1} s (at most {loops} loop restarts)"
    );

    // The recorder: a finalised file of the browser in that codec, every frame decodable.
    assert_eq!(recorded.code(), 0, "recorder failed\n{}", recorded.output());
    let summary = recorded
        .stdout
        .lines()
        .find(|l| l.contains("\"summary\""))
        .unwrap_or_else(|| panic!("the recorder's summary\n{}", recorded.output()));
    let summary: serde_json::Value = serde_json::from_str(summary).expect("summary JSON");
    let manifest = common::json(Path::new(summary["manifest"].as_str().expect("manifest")));
    let browser_entry = manifest["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["identity"] == "browser")
        .unwrap_or_else(|| panic!("the browser in the manifest: {manifest}"));
    eprintln!(
        "manifest: {browser_entry}\n--- recorder\n{}",
        recorded.output()
    );
    let file = browser_entry["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(extension)))
        .unwrap_or_else(|| panic!("a .{extension} file for the browser: {browser_entry}"));
    assert_eq!(file["state"], "finalized", "{file}");
    let video_track = file["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .find(|t| t["kind"] == "video" && t["frames"].as_u64() > Some(0))
        .unwrap_or_else(|| panic!("a recorded video track in {file}"));
    assert_eq!(
        video_track["codec"], codec,
        "the manifest names the codec: {file}"
    );
    let path = out.join(file["path"].as_str().expect("path"));
    assert_eq!(
        path.extension().and_then(|e| e.to_str()),
        Some(extension),
        "{}",
        path.display()
    );
    let v = common::assert_video_decodes(&path);
    eprintln!("recording {}: {v}", path.display());
    assert_eq!(
        v["codec_name"],
        codec,
        "ffprobe reads {}: {v}",
        path.display()
    );
    let packets = common::ffprobe_number(&v["nb_read_packets"]).unwrap_or(0.0);
    assert!(packets >= 100.0, "{v}");
}
