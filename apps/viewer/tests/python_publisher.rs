//! The viewer watches the official Python SDK's video and tone. That video carries no frame
//! stamp: regression test for a false stamp (1 in 256 pictures pass the CRC) giving a latency of
//! decades — unstamped video must report no latency and no delivery ratio.

use wavecast_testbed::apps as common;

use std::time::Duration;

use wavecast_testbed::LiveKitServer;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

#[test]
fn unstamped_python_video_has_no_latency_figure() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let _py =
        common::python_publishing(&server, "engine_peer.py", &["publish", "py", "pypub", "30"]);
    let (_dir, stats) = common::temp_path("stats.json");
    common::run_ok(
        common::join_command(VIEWER, &server.ws_url(), "py", "watcher")
            .args([
                "--headless",
                "--frames",
                "90",
                "--timeout",
                "30s",
                "--size",
                "320x240",
            ])
            .arg("--stats")
            .arg(&stats),
        Duration::from_secs(45),
    );
    let s = common::json(&stats);
    let v = &s["video"];
    assert!(v["frames_received"].as_u64().unwrap() >= 90, "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(320), Some(240)),
        "{v}"
    );
    assert!(
        v["latency_ms"].is_null() && v["received_pct"].is_null(),
        "{v}"
    );
    assert!(s["audio"]["packets"].as_u64().unwrap() > 50, "{s}");
}
