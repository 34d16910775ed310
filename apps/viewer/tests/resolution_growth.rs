//! Regression: a publisher whose resolution grows mid-stream (320×180 → 1280×720, as browsers do
//! when their bandwidth estimate ramps up) froze the viewer on its last small picture — the
//! decoded-frame pool was sized by the first frame and larger frames were dropped. The official
//! Python SDK publishes 320×180 for 4 s, then 1280×720; the viewer must show 1280×720 pictures
//! within 1 s of the switch and render as many frames as it decodes.

use wavecast_testbed::apps as common;

use std::time::Duration;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

/// Width of the white bar the script draws (16 px of the picture), as a share of the picture
/// width in a dumped PNG: 5% at 320×180, 1.25% at 1280×720.
fn bar_share(png: &std::path::Path, rect: (f32, f32, f32, f32)) -> f32 {
    let img = common::load_png(png);
    let (x, y, w, h) = rect;
    let row = (y + h * 0.6) as u32;
    let white = (x as u32..(x + w) as u32)
        .filter(|&px| {
            img.pixel(px, row)
                .is_some_and(|p| p[0] > 200 && p[1] > 200 && p[2] > 200)
        })
        .count();
    white as f32 / w
}

#[test]
fn viewer_shows_the_larger_pictures_after_the_switch() {
    let mut run = common::run_beside_growing(
        VIEWER,
        "watcher",
        &["--headless", "--timeout", "14s", "--size", "640x360"]
            .into_iter()
            .chain(["--frames", "240", "--dump-every", "4"])
            .collect::<Vec<_>>(),
        Duration::from_secs(40),
    );
    let (stats, dump) = (&run.stats, &run.dump);
    let v = &stats["video"];
    // The last pictures are 1280x720.
    common::assert_video_size(v, 1280, 720);
    let large = common::assert_grew_after_switch(&mut run.py, &stats["streams"]["video"][0]);
    let decoded = v["frames_received"].as_u64().unwrap();
    let rendered = stats["render"]["rendered_frames"].as_u64().unwrap();
    assert!(
        rendered as f64 >= 0.9 * decoded as f64,
        "rendered {rendered} of {decoded} decoded frames: {stats}"
    );

    // The PNGs: pictures before the switch show the wide bar, those well after it the narrow one.
    let first_large = large["first_frame"].as_u64().unwrap();
    let rect = common::rect(&stats["render"]["picture_rect"]);
    let seq = |p: &std::path::Path| -> u64 {
        let s = p.file_stem().unwrap().to_string_lossy();
        s.trim_start_matches("frame-").parse().unwrap()
    };
    let pngs = common::pngs(dump);
    let (mut small_seen, mut large_seen) = (0, 0);
    for p in &pngs {
        let n = seq(p);
        let share = bar_share(p, rect);
        if n + 5 < first_large {
            assert!(share > 0.03, "{}: bar share {share:.3}", p.display());
            small_seen += 1;
        } else if n > first_large + 30 {
            assert!(share < 0.025, "{}: bar share {share:.3}", p.display());
            large_seen += 1;
        }
    }
    assert!(
        small_seen >= 5 && large_seen >= 10,
        "{small_seen} small and {large_seen} large PNGs of {}",
        pngs.len()
    );
}
