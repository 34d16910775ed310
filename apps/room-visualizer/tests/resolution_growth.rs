//! Regression: a publisher whose resolution grows mid-stream (320×180 → 1280×720) froze its tile
//! on the last small picture (the decoded-frame pool was sized by the first frame). The official
//! Python SDK publishes 320×180 for 4 s, then 1280×720; the grid must show 1280×720 pictures
//! within 1 s of the switch, a new picture at (nearly) every rendered frame.

use std::process::Command;
use std::time::Duration;

use wavecast_testbed::apps as common;
use wavecast_testbed::{LiveKitServer, PythonPeer};

const BIN: &str = env!("CARGO_BIN_EXE_room-visualizer");

#[test]
fn grid_tile_shows_the_larger_pictures_after_the_switch() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let mut py = PythonPeer::spawn(
        &server,
        "publish_growing.py",
        &[
            "--room",
            "grow",
            "--identity",
            "py",
            "--small-seconds",
            "4",
            "--seconds",
            "11",
        ],
    )
    .expect("python starts");
    py.wait_line("READY", Duration::from_secs(30))
        .expect("python publishes");
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    // 15 fps for 8 s once the tile has media: the run ends after the switch.
    let r = common::run(
        Command::new(BIN)
            .args(common::join_args(&server.ws_url(), "grow", "grid"))
            .args(["--headless", "--wait-participants", "1", "--fps", "15"])
            .args(["--frames", "120", "--dump-every", "10", "--timeout", "20s"])
            .args(["--size", "640x360"])
            .arg("--dump")
            .arg(&dump),
        Duration::from_secs(40),
    );
    let switch: f64 = py
        .wait_line("SWITCH", Duration::from_secs(15))
        .expect("python switched to 1280x720")
        .parse()
        .expect("a unix time");
    assert_eq!(r.code(), 0, "{}", r.output());
    let stats = common::json(&dump.join("stats.json"));
    let tile = &stats["tiles"][0];
    assert_eq!(tile["identity"], "py", "{stats}");
    assert_eq!(tile["video_size"], serde_json::json!([1280, 720]), "{tile}");
    let stream = &stats["streams"]["video"][0];
    let large = stream["sizes"]
        .as_array()
        .expect("sizes")
        .iter()
        .find(|s| s["width"] == 1280 && s["height"] == 720)
        .unwrap_or_else(|| panic!("no 1280x720 pictures: {stream}"))
        .clone();
    let after = large["at_unix_s"].as_f64().unwrap() - switch;
    assert!(
        (-0.2..=1.0).contains(&after),
        "1280x720 pictures {after:.2} s after the switch: {stream}"
    );
    assert_eq!(stream["not_shown"], 0, "{stream}");
    // The publisher sends 30 fps, the grid draws 15: every drawn frame can show a new picture.
    let shown = tile["frames_shown"].as_u64().unwrap();
    let counted = 120;
    assert!(
        shown as f64 >= 0.9 * counted as f64,
        "the tile showed {shown} pictures in {counted} counted frames: {tile}"
    );
    assert!(!common::pngs(&dump).is_empty());
}
