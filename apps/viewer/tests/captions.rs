//! The viewer shows the watched participant's transcriptions (published with the official
//! Python SDK as LiveKit's agents do) as a caption at the bottom of the picture: an OCR-free
//! pixel check of the caption area in its headless PNGs.

use std::time::{Duration, Instant};

use wavecast_testbed::LiveKitServer;
use wavecast_testbed::apps::{self as common, Background, bright_pixels};
use wavecast_testbed::scripted::ScriptedPeer;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

#[test]
fn the_watched_speakers_transcription_shows_as_a_caption() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let room = "captions";
    // `speaker` publishes dark video at 10 fps; `agent` transcribes it.
    let mut peer = ScriptedPeer::join_script(&server, "caption_peer.py", room, "speaker");
    let (_dir, dump) = common::temp_path("captions");
    let mut v = common::join_command(VIEWER, &server.ws_url(), room, "watcher");
    v.args(["--headless", "--frames", "60", "--timeout", "60s"])
        .args(["--size", "640x360", "--audio-out", "none"])
        .arg("--dump")
        .arg(&dump);
    let viewer = Background::spawn("viewer", &mut v);

    let deadline = Instant::now() + Duration::from_secs(45);
    while common::pngs(&dump).len() < 2 {
        assert!(Instant::now() < deadline, "no frames rendered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = common::pngs(&dump)[0].clone();
    let text = "█".repeat(20);
    peer.send(&format!("repeat SG_1 {text}"));

    let run = viewer.finish(Duration::from_secs(90));
    assert_eq!(run.code(), 0, "{}", run.output());
    let stats = common::json(&dump.join("stats.json"));
    let render = &stats["render"];
    eprintln!("{render}");
    let lines: Vec<&str> = render["captions"]
        .as_array()
        .expect("captions")
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.concat(), text, "{render}");
    let area = common::rect(&render["caption_rect"]);
    let pngs = common::pngs(&dump);
    let lit_before = bright_pixels(&common::load_png(&before), area);
    let lit_after = bright_pixels(&common::load_png(pngs.last().unwrap()), area);
    eprintln!("caption area {area:?}: {lit_before} bright px before, {lit_after} after");
    assert!(lit_before < 20, "{lit_before} bright px before any caption");
    assert!(
        lit_after > 300,
        "only {lit_after} bright px in the caption area"
    );
}
