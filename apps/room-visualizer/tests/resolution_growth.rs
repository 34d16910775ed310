//! Regression: a publisher whose resolution grows mid-stream (320×180 → 1280×720) froze its tile
//! on the last small picture (the decoded-frame pool was sized by the first frame). The official
//! Python SDK publishes 320×180 for 4 s, then 1280×720; the grid must show 1280×720 pictures
//! within 1 s of the switch, a new picture at (nearly) every rendered frame.

use std::process::Command;
use std::time::Duration;

use wavecast_testbed::apps as common;

const BIN: &str = env!("CARGO_BIN_EXE_room-visualizer");

#[test]
fn grid_tile_shows_the_larger_pictures_after_the_switch() {
    let (server, mut py) = common::start_growing();
    let (_dir, dump) = common::temp_path("dump");
    // 15 fps for 8 s once the tile has media: the run ends after the switch.
    common::run_ok(
        Command::new(BIN)
            .args(common::join_args(&server.ws_url(), "grow", "grid"))
            .args(["--headless", "--wait-participants", "1", "--fps", "15"])
            .args(["--frames", "120", "--dump-every", "10", "--timeout", "20s"])
            .args(["--size", "640x360"])
            .arg("--dump")
            .arg(&dump),
        Duration::from_secs(40),
    );
    let stats = common::json(&dump.join("stats.json"));
    let tile = &stats["tiles"][0];
    assert_eq!(tile["identity"], "py", "{stats}");
    assert_eq!(tile["video_size"], serde_json::json!([1280, 720]), "{tile}");
    common::assert_grew_after_switch(&mut py, &stats["streams"]["video"][0]);
    // The publisher sends 30 fps, the grid draws 15: every drawn frame can show a new picture.
    let shown = tile["frames_shown"].as_u64().unwrap();
    let counted = 120;
    assert!(
        shown as f64 >= 0.9 * counted as f64,
        "the tile showed {shown} pictures in {counted} counted frames: {tile}"
    );
    assert!(!common::pngs(&dump).is_empty());
}
