//! `--source screen`: the broadcaster captures an X screen (a private Xvfb whose root window is
//! painted orange through x11rb) and publishes it as a screen share; a headless viewer receives
//! the screen's size and colour.

use wavecast_testbed::apps as common;

use std::process::Command;
use std::time::Duration;

use wavecast_testbed::LiveKitServer;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt};

const BIN: &str = env!("CARGO_BIN_EXE_broadcaster");
const ORANGE: [u8; 3] = [255, 128, 0];

#[test]
fn screen_share_of_an_x_display() {
    let required = std::env::var("WAVECAST_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let Some(xvfb) = common::Xvfb::start(640, 480) else {
        assert!(!required, "Xvfb is required (WAVECAST_REQUIRE_GPU=1)");
        eprintln!("SKIPPED screen_share_of_an_x_display: cannot start Xvfb");
        return;
    };
    let display = xvfb.display().to_owned();
    // Paint the root window orange, as `xsetroot -solid` would.
    let (conn, screen) = x11rb::connect(Some(&display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    let pixel = u32::from(ORANGE[0]) << 16 | u32::from(ORANGE[1]) << 8 | u32::from(ORANGE[2]);
    conn.change_window_attributes(
        root,
        &ChangeWindowAttributesAux::new().background_pixel(pixel),
    )
    .unwrap();
    conn.clear_area(false, root, 0, 0, 0, 0).unwrap();
    x11rb::wrapper::ConnectionExt::sync(&conn).unwrap();

    let viewer = common::sibling_bin(BIN, "wavecast-viewer", "viewer");
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let mut b = Command::new(BIN);
    b.args(common::join_args(&url, "screen", "presenter"))
        .args([
            "--source",
            "screen",
            "--display",
            &display,
            "--fps",
            "10",
            "--bitrate",
            "500",
        ])
        .args(["--duration", "30s", "--no-stdin", "--no-audio"]);
    let caster = common::Background::spawn("broadcaster", &mut b);
    let (_dir, dump) = common::temp_path("dump");
    let r = common::run(
        common::join_command(&viewer, &url, "screen", "watcher")
            .args([
                "--headless",
                "--frames",
                "15",
                "--timeout",
                "30s",
                "--size",
                "640x480",
            ])
            .arg("--dump")
            .arg(&dump),
        Duration::from_secs(45),
    );
    let c = caster.finish(Duration::from_millis(1));
    common::assert_success_beside(&r, "broadcaster", &c);
    assert!(c.stderr.contains("screen of X display"), "{}", c.stderr);
    let stats = common::json(&dump.join("stats.json"));
    let v = &stats["video"];
    common::assert_video_size(v, 640, 480);
    let (x, y, w, h) = common::rect(&stats["render"]["picture_rect"]);
    let png = common::pngs(&dump).pop().expect("a PNG");
    let img = common::load_png(&png);
    let p = img
        .pixel((x + w * 0.5) as u32, (y + h * 0.6) as u32)
        .unwrap();
    assert!(
        common::distance(p, ORANGE) <= 30,
        "screen centre is {p:?}, painted {ORANGE:?}"
    );
}
