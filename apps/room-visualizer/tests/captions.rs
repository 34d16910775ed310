//! Transcriptions published with the official Python SDK (as LiveKit's agents publish them:
//! `lk.transcription` text streams naming the transcribed track) show as a caption under the
//! speaker's tile in the room-visualizer's headless PNGs — an OCR-free pixel check of the
//! caption area — and an interim text is replaced by the next text of its segment.

use std::process::Command;
use std::time::{Duration, Instant};

use wavecast_testbed::LiveKitServer;
use wavecast_testbed::apps::{self as common, Background, bright_pixels};
use wavecast_testbed::scripted::ScriptedPeer;

const BIN: &str = env!("CARGO_BIN_EXE_room-visualizer");

#[test]
fn transcriptions_show_under_the_speakers_tile() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let room = "captions";
    // `speaker` publishes dark video; `agent` transcribes it.
    let mut peer = ScriptedPeer::join_script(&server, "caption_peer.py", room, "speaker");

    let (_dir, dump) = common::temp_path("captions");
    let mut v = Command::new(BIN);
    v.args(common::join_args(&url, room, "grid-viewer"))
        .args(["--headless", "--wait-participants", "1"])
        .args(["--frames", "50", "--fps", "5"])
        .args(["--size", "960x540", "--timeout", "60s"])
        .arg("--dump")
        .arg(&dump);
    let viewer = Background::spawn("room-visualizer", &mut v);

    // Frames of the room before any caption: wait for six, and keep the second newest (complete:
    // frames are written in turn) — by then the speaker's tile shows their video, not the
    // avatar the first frames may show while the first picture is on its way.
    let deadline = Instant::now() + Duration::from_secs(45);
    let before = loop {
        let pngs = common::pngs(&dump);
        if pngs.len() >= 6 {
            break pngs[pngs.len() - 2].clone();
        }
        assert!(Instant::now() < deadline, "no frames rendered");
        std::thread::sleep(Duration::from_millis(50));
    };

    // An interim text, then its replacement, kept alive by repeating it as speech-to-text does.
    peer.send("transcribe SG_1 false ░░░ interim ░░░");
    let text = "█".repeat(24);
    peer.send(&format!("repeat SG_1 {text}"));

    let run = viewer.finish(Duration::from_secs(90));
    assert_eq!(run.code(), 0, "{}", run.output());
    let stats = common::json(&dump.join("stats.json"));
    let tiles = stats["tiles"].as_array().expect("tiles");
    eprintln!("{}", serde_json::to_string_pretty(tiles).unwrap());
    assert_eq!(tiles.len(), 2, "speaker and agent: {tiles:?}");
    let tile = |id: &str| {
        tiles
            .iter()
            .find(|t| t["identity"] == id)
            .unwrap_or_else(|| panic!("no tile for {id}: {tiles:?}"))
    };
    let (speaker, agent) = (tile("speaker"), tile("agent"));
    assert_eq!(speaker["has_video"].as_bool(), Some(true), "{speaker}");
    // Under the transcribed speaker's tile, not the sending agent's; the interim text is gone.
    let lines: Vec<&str> = speaker["captions"]
        .as_array()
        .expect("captions")
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.concat(), text, "{speaker}");
    assert_eq!(
        agent["captions"].as_array().map(Vec::len),
        Some(0),
        "{agent}"
    );

    // The pixels: the caption area of the speaker's tile is dark before, bright after.
    let area = common::rect(&speaker["caption_area"]);
    let pngs = common::pngs(&dump);
    let after = common::load_png(pngs.last().unwrap());
    let before = common::load_png(&before);
    let (lit_before, lit_after) = (bright_pixels(&before, area), bright_pixels(&after, area));
    // The frame before shows the speaker's dark video in the tile (not the avatar).
    let (x, y, w, h) = common::rect(&speaker["tile"]);
    let centre = before
        .pixel((x + w * 0.5) as u32, (y + h * 0.5) as u32)
        .unwrap();
    assert!(
        common::distance(centre, [0x30; 3]) < 24,
        "not the video: {centre:?}"
    );
    eprintln!("caption area {area:?}: {lit_before} bright px before, {lit_after} after");
    assert!(lit_before < 20, "{lit_before} bright px before any caption");
    assert!(
        lit_after > 400,
        "only {lit_after} bright px in the caption area"
    );
}
