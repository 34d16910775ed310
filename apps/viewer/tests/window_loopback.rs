//! `--source loopback` (broadcaster → pipeline → viewer in one process, no server): headless it
//! decodes every frame and shows the bars; in a window under Xvfb it renders, screenshots and
//! exits 0.

use wavecast_testbed::apps as common;

use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_viewer");

fn loopback_args() -> [&'static str; 10] {
    [
        "--source",
        "loopback",
        "--width",
        "320",
        "--height",
        "180",
        "--fps",
        "30",
        "--bitrate",
        "400",
    ]
}

#[test]
fn loopback_headless_without_a_server() {
    let (_dir, dump) = common::temp_path("dump");
    common::run_ok(
        Command::new(BIN)
            .args(loopback_args())
            .args([
                "--headless",
                "--frames",
                "45",
                "--dump-every",
                "20",
                "--size",
                "640x360",
            ])
            .arg("--dump")
            .arg(&dump),
        Duration::from_secs(60),
    );
    let stats = common::json(&dump.join("stats.json"));
    let v = &stats["video"];
    assert!(v["frames_received"].as_u64().unwrap() >= 45, "{v}");
    assert!(
        v["received_pct"].as_f64().unwrap() >= 99.0,
        "nothing is lost in-process: {v}"
    );
    assert!(v["latency_ms"]["p50_ms"].as_f64().unwrap() < 500.0, "{v}");
    assert!(stats["audio"]["packets"].as_u64().unwrap() > 20, "{stats}");
    let rect = common::rect(&stats["render"]["picture_rect"]);
    let pngs = common::pngs(&dump);
    assert!(!pngs.is_empty());
    let (worst, notes) = common::bar_errors(pngs.last().unwrap(), rect);
    assert!(worst <= 40, "{notes}");
}

#[test]
fn loopback_window_under_xvfb() {
    let Some((_dir, shot)) = common::window_shot("loopback_window_under_xvfb") else {
        return;
    };
    common::run_ok(
        Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x720x24", BIN])
            .args(loopback_args())
            .args(["--frames", "90", "--size", "800x450", "--timeout", "60s"])
            .arg("--screenshot")
            .arg(&shot),
        Duration::from_secs(90),
    );
    let img = common::load_png(&shot);
    assert_eq!((img.width, img.height), (800, 450));
    // Somewhere in the top four fifths the bars show: count pure-ish yellow and cyan pixels.
    let (mut yellow, mut cyan) = (0, 0);
    for y in (0..360).step_by(4) {
        for x in (0..800).step_by(4) {
            let p = img.pixel(x, y).unwrap();
            if common::distance(p, [191, 191, 0]) < 40 {
                yellow += 1;
            }
            if common::distance(p, [0, 191, 191]) < 40 {
                cyan += 1;
            }
        }
    }
    assert!(
        yellow > 100 && cyan > 100,
        "no bars in the window: {yellow} yellow, {cyan} cyan samples"
    );
}

/// Regression: `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` was printed
/// twice per start without `XDG_RUNTIME_DIR` (Mesa's device-selection layer probing Wayland; see
/// `wavecast_app::env`) — here with a relative `WAYLAND_DISPLAY` too.
#[test]
fn no_wayland_probe_noise_without_a_runtime_dir() {
    let r = common::run_ok(
        Command::new(BIN)
            .env("WAYLAND_DISPLAY", "wayland-0")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("NODEVICE_SELECT")
            .args(loopback_args())
            .args(["--headless", "--frames", "5", "--size", "320x180"]),
        Duration::from_secs(60),
    );
    assert!(!r.stderr.contains("XDG_RUNTIME_DIR"), "{}", r.output());
}
