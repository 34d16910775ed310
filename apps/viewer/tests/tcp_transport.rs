//! Where UDP is blocked: in a private network namespace whose nftables drop every UDP
//! datagram, the broadcaster (default `--transport auto`: it falls back to ICE over TCP) and the
//! viewer (`--transport tcp`) reach the server's `rtc.tcp_port`; the viewer receives the
//! frames in order (its stamps never go back: `stamp_regressions` 0 over > 100 stamped frames)
//! with a latency figure, which is printed.

use wavecast_testbed::apps as common;

use std::process::Command;
use std::time::Duration;

use wavecast_testbed::{LiveKitServer, NetNs, ServerOptions, free_tcp_port};

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

/// The broadcaster (default transport) in `room` and the viewer with `--transport
/// <viewer_transport>`: the viewer's video stats after 150 frames.
fn watch(server: &LiveKitServer, room: &str, viewer_transport: &str) -> serde_json::Value {
    let broadcaster = common::broadcaster_bin(VIEWER);
    let url = server.ws_url();
    let mut b = common::broadcaster_command(
        &broadcaster,
        &url,
        room,
        "caster",
        [640, 360, 30, 800],
        "30s",
    );
    let caster = common::Background::spawn("broadcaster", &mut b);
    let (_dir, dump) = common::temp_path("dump");
    let mut v = Command::new(VIEWER);
    v.args(common::join_args(&url, room, "watcher"))
        .args([
            "--transport",
            viewer_transport,
            "--headless",
            "--frames",
            "150",
        ])
        .args(["--timeout", "45s", "--participant", "caster"])
        .arg("--dump")
        .arg(&dump);
    let r = common::run(&mut v, Duration::from_secs(70));
    let caster = caster.finish(Duration::from_millis(1));
    assert_eq!(
        r.code(),
        0,
        "viewer failed\n{}\n--- broadcaster\n{}",
        r.output(),
        caster.output()
    );
    let stats = common::json(&dump.join("stats.json"));
    let video = stats["video"].clone();
    let received = video["frames_received"].as_u64().unwrap();
    assert!(received >= 150, "{video}");
    let pct = video["received_pct"].as_f64().expect("a delivery ratio");
    assert!(
        pct >= 90.0,
        "only {pct:.1}% of the sent frames arrived: {video}"
    );
    let stream = &stats["streams"]["video"][0];
    let back = stream["stamp_regressions"]
        .as_u64()
        .expect("stamp_regressions");
    assert!(
        stream["stamped_frames"].as_u64() > Some(100),
        "the stamps were read: {stream}"
    );
    assert_eq!(back, 0, "frames out of order: {stream}");
    video
}

fn latency(video: &serde_json::Value) -> (f64, f64) {
    let l = &video["latency_ms"];
    (
        l["p50_ms"].as_f64().expect("a latency figure"),
        l["p95_ms"].as_f64().expect("a latency figure"),
    )
}

#[test]
fn broadcaster_to_viewer_over_tcp_where_udp_is_dropped() {
    let test = "broadcaster_to_viewer_over_tcp_where_udp_is_dropped";
    let Some(ns) = NetNs::enter_for_test(test) else {
        return;
    };
    let server = LiveKitServer::start_with(&ServerOptions {
        ice_tcp_port: Some(free_tcp_port().expect("a free port")),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts");
    // UDP open first: the figures to compare with.
    let udp = latency(&watch(&server, "udp", "udp"));
    ns.blackhole_udp().expect("drop all UDP");
    let tcp = latency(&watch(&server, "tcp", "tcp"));
    let dropped = ns.udp_counters().expect("counters");
    assert!(
        dropped.dropped > 0,
        "UDP was tried and dropped: {dropped:?}"
    );
    eprintln!(
        "broadcaster → viewer latency (ms): UDP p50 {:.1} p95 {:.1}; UDP dropped, broadcaster \
         auto → TCP and viewer tcp: p50 {:.1} p95 {:.1} ({dropped:?})",
        udp.0, udp.1, tcp.0, tcp.1
    );
}
