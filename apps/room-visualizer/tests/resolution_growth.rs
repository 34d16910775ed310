//! Regression: a publisher whose resolution grows mid-stream (320×180 → 1280×720) froze its tile
//! on the last small picture (the decoded-frame pool was sized by the first frame). The official
//! Python SDK publishes 320×180 for 4 s, then 1280×720; the grid must show 1280×720 pictures
//! within 1 s of the switch, a new picture at (nearly) every rendered frame.

use std::time::Duration;

use wavecast_testbed::apps as common;

const BIN: &str = env!("CARGO_BIN_EXE_room-visualizer");

#[test]
fn grid_tile_shows_the_larger_pictures_after_the_switch() {
    // 15 fps for 8 s once the tile has media: the run ends after the switch.
    let mut run = common::run_beside_growing(
        BIN,
        "grid",
        &[
            "--headless",
            "--wait-participants",
            "1",
            "--fps",
            "15",
            "--frames",
            "120",
        ]
        .into_iter()
        .chain([
            "--dump-every",
            "10",
            "--timeout",
            "20s",
            "--size",
            "640x360",
        ])
        .collect::<Vec<_>>(),
        Duration::from_secs(40),
    );
    let (stats, dump) = (&run.stats, &run.dump);
    let tile = &stats["tiles"][0];
    assert_eq!(tile["identity"], "py", "{stats}");
    assert_eq!(tile["video_size"], serde_json::json!([1280, 720]), "{tile}");
    common::assert_grew_after_switch(&mut run.py, &stats["streams"]["video"][0]);
    // The publisher sends 30 fps, the grid draws 15: every drawn frame can show a new picture.
    let shown = tile["frames_shown"].as_u64().unwrap();
    let counted = 120;
    assert!(
        shown as f64 >= 0.9 * counted as f64,
        "the tile showed {shown} pictures in {counted} counted frames: {tile}"
    );
    assert!(!common::pngs(dump).is_empty());
}
