//! Resizing the headless dashboard to 1×1 and back renders without crashing and still draws the
//! right thing afterwards.

mod common;

use common::{Checks, gpu_or_skip};
use wavecast_visualizer::demo::DemoScene;
use wavecast_visualizer::headless::HEADLESS_FORMAT;
use wavecast_visualizer::render_headless;
use wavecast_visualizer::video::COLOR_BARS;

#[test]
fn dashboard_survives_resize_to_1x1_and_back() {
    let name = "dashboard_resize";
    let Some(gpu) = gpu_or_skip(name) else { return };
    let mut scene = DemoScene::new(&gpu, HEADLESS_FORMAT, (640, 360), 9);
    let mut last = None;
    for (i, (w, h)) in [(1, 1), (960, 540), (1, 1), (1, 300), (300, 1), (960, 540)]
        .into_iter()
        .enumerate()
    {
        let img = render_headless(&gpu, &mut scene, w, h, i as u64).unwrap();
        assert_eq!((img.width, img.height), (w, h));
        last = Some(img);
    }
    let img = last.unwrap();
    let layout = scene.dashboard.layout();
    let pic = scene.dashboard.video.picture_rect().unwrap();
    assert!(layout.video.contains(pic.x + 1.0, pic.y + 1.0));
    let mut c = Checks::new("dashboard_after_resize", &img);
    // Second colour bar (yellow) is untouched by the moving box in the top third.
    c.color(
        "video bar 1",
        pic.x + pic.w * 1.5 / 8.0,
        pic.y + pic.h * 0.1,
        COLOR_BARS[1],
        6,
    );
    c.that(
        "grid has 9 tiles",
        scene.dashboard.grid.layouts().len() == 9,
        None,
    );
    c.finish();
}
