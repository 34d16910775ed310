//! The short CI load (2 publishers × 6 subscribers, 10 s, 320x180) against one real
//! livekit-server: every join succeeds, ≥ 95 % of frames arrive, latency is plausible.

mod common;

use std::time::Duration;

use wavecast_testbed::LiveKitServer;

#[test]
fn short_load_against_one_server() {
    let server = LiveKitServer::start().expect("start livekit-server");
    let dir = tempfile::tempdir().unwrap();
    let r = common::run_ok(
        common::command(dir.path())
            .args(["--url", &server.ws_url()])
            .args(common::short_load_args()),
        Duration::from_secs(90),
    );
    let report = common::report(&r);
    common::assert_healthy(&report, 6);
    assert_eq!(report["publishers"].as_array().map(Vec::len), Some(2));
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&report["total"]).unwrap()
    );
}
