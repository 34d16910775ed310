//! Example (a) — `examples/audio_visualizer.rs` — run headless against a real livekit-server
//! while the official Python SDK publishes a tone: it must report the tone's frequency.

mod common;

use std::time::Duration;

use wavecast_testbed::{LiveKitServer, PythonPeer};
use wavecast_token::Preset;

const TONE_HZ: f64 = 660.0;

#[test]
fn example_a_reports_the_tone_a_python_participant_publishes() {
    common::init_tracing();
    let bin = common::example_binary("audio_visualizer");
    let server = LiveKitServer::start().expect("livekit-server starts");
    let mut tone = PythonPeer::spawn(
        &server,
        "publish_tone.py",
        &[
            "--room",
            "seed",
            "--identity",
            "tone",
            "--frequency",
            "660",
            "--seconds",
            "60",
        ],
    )
    .expect("python peer starts");
    tone.wait_line("READY", Duration::from_secs(30))
        .expect("the tone is published");

    let token = server.token("listener", "seed", Preset::Viewer);
    let url = server.ws_url();
    let args = [url.as_str(), token.as_str(), "--headless", "3"];
    let stdout = common::run_example(&bin, &args, Duration::from_secs(60));
    assert!(stdout.contains("listening to tone/"), "{stdout}");
    let hz: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DOMINANT "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no DOMINANT line in: {stdout}"));
    assert!(
        (hz - TONE_HZ).abs() < 10.0,
        "reported {hz} Hz for a {TONE_HZ} Hz tone"
    );
}
