//! Adaptive stream: the grid asks the server for the simulcast layer its tile needs. Our
//! broadcaster publishes 640×360 with three layers (160×90, 320×180, 640×360); a grid of
//! 200×150 pixels has a tile about 190×110 — the server sends the 320×180 layer (the smallest
//! at least as large) — and a grid of 1280×720 gets the full 640×360.

use std::process::Command;
use std::time::Duration;

use wavecast_testbed::LiveKitServer;
use wavecast_testbed::apps::{self as common, Background};

const BIN: &str = env!("CARGO_BIN_EXE_room-visualizer");

/// The size the grid decoded last, for a grid of `size`.
fn grid_receives(server: &LiveKitServer, size: &str) -> serde_json::Value {
    let (_dir, dump) = common::temp_path("dump");
    common::run_ok(
        common::join_command(BIN, &server.ws_url(), "adaptive", &format!("grid-{size}"))
            .args(["--headless", "--wait-participants", "1", "--fps", "10"])
            .args(["--frames", "60", "--timeout", "30s", "--size", size])
            .arg("--dump")
            .arg(&dump),
        Duration::from_secs(60),
    );
    let stats = common::json(&dump.join("stats.json"));
    stats["streams"]["video"][0].clone()
}

#[test]
fn the_grid_receives_the_layer_its_tile_needs() {
    let server = LiveKitServer::start().expect("server starts");
    let broadcaster = common::sibling_bin(BIN, "wavecast-broadcaster", "broadcaster");
    let mut cmd = Command::new(broadcaster);
    cmd.args(common::join_args(&server.ws_url(), "adaptive", "caster"))
        .args(["--simulcast", "--width", "640", "--height", "360"])
        .args(["--no-audio", "--no-stdin", "--duration", "60s"]);
    let caster = Background::spawn("broadcaster", &mut cmd);

    let small = grid_receives(&server, "200x150");
    let large = grid_receives(&server, "1280x720");
    drop(caster);
    eprintln!("200x150 grid: {small}\n1280x720 grid: {large}");
    assert_eq!(
        (small["width"].as_u64(), small["height"].as_u64()),
        (Some(320), Some(180)),
        "a ~190x110 tile gets the 320x180 layer: {small}"
    );
    assert_eq!(
        (large["width"].as_u64(), large["height"].as_u64()),
        (Some(640), Some(360)),
        "a large tile gets the full layer: {large}"
    );
}
