//! Regression: a publisher could make every viewer allocate ~400 MB by sending a VP8 keyframe that
//! announces 16383×16383. A hostile publisher (our own session, writing crafted frames) sends such
//! keyframes for a few seconds, then a proper 160×120 stream; the viewer must refuse the huge
//! keyframes clearly (one warning, counted in its stats), keep its memory flat, and show the
//! proper stream afterwards.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wavecast_codec::{I420, Vp8Config, Vp8Encoder};
use wavecast_session::internals::{Session, SessionOptions};
use wavecast_session::{Credentials, TrackOptions};
use wavecast_testbed::LiveKitServer;
use wavecast_testbed::apps::{self as common, Background};
use wavecast_token::Preset;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

/// A keyframe header announcing 16383×16383 followed by noise (never a decodable picture).
fn huge_keyframe(n: u32) -> Vec<u8> {
    let mut d = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0x3f, 0xff, 0x3f];
    d.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) ^ n) as u8));
    d
}

/// Peak resident memory of a running process, kB (`None` once it is gone).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn a_huge_keyframe_is_refused_and_the_viewer_keeps_running() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let options = SessionOptions::new(
        server.ws_url(),
        Credentials::mint(server.keys(), "mallory", "hostile", Preset::Broadcaster),
    );
    let (session, mut events) = rt
        .block_on(Session::connect(options))
        .expect("the hostile publisher connects");
    rt.spawn(async move { while events.recv().await.is_some() {} });
    let mut track = rt
        .block_on(session.publish_track(TrackOptions::video("cam", 160, 120)))
        .expect("publishes");

    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    let mut cmd = Command::new(VIEWER);
    cmd.args(common::join_args(&server.ws_url(), "hostile", "watcher"))
        .args(["--participant", "mallory", "--headless", "--timeout", "25s"])
        .args(["--size", "320x180", "--frames", "60"])
        .arg("--dump")
        .arg(&dump);
    let viewer = Background::spawn("viewer", &mut cmd);
    let pid = viewer.pid();

    // The publisher: 5 s of huge keyframes (every 5th frame; the others garbage interframes),
    // then a proper 160x120 stream with a keyframe every half second.
    let hostile_done = Arc::new(AtomicBool::new(false));
    let done = hostile_done.clone();
    let sender = std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0u32;
        let at = |n: u32| start + Duration::from_micros(u64::from(n) * 33_333);
        while start.elapsed() < Duration::from_secs(5) {
            let data = if n.is_multiple_of(5) {
                huge_keyframe(n)
            } else {
                vec![0x31, 0x00, 0x00, n as u8, 7, 7, 7, 7]
            };
            let _ = track.write(data, u64::from(n) * 3000, Instant::now());
            n += 1;
            std::thread::sleep(at(n).saturating_duration_since(Instant::now()));
        }
        done.store(true, Ordering::Relaxed);
        let mut config = Vp8Config::new(160, 120, 30);
        config.keyframe_interval = 15;
        let mut enc = Vp8Encoder::new(config).unwrap();
        let (y, u, v) = (
            vec![90u8; 160 * 120],
            vec![60u8; 80 * 60],
            vec![200u8; 80 * 60],
        );
        while start.elapsed() < Duration::from_secs(15) {
            let img = I420 {
                width: 160,
                height: 120,
                planes: [&y, &u, &v],
                strides: [160, 80, 80],
            };
            if let Some(f) = enc.encode(&img, i64::from(n) * 3000).unwrap() {
                let _ = track.write(f.data.to_vec(), u64::from(n) * 3000, Instant::now());
            }
            n += 1;
            std::thread::sleep(at(n).saturating_duration_since(Instant::now()));
        }
    });

    // Peak memory while the huge keyframes arrive and just after.
    let mut peak_during_hostile = 0;
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(kb) = peak_rss_kb(pid) {
        peak = peak.max(kb);
        if !hostile_done.load(Ordering::Relaxed) {
            peak_during_hostile = kb;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = viewer.finish(Duration::from_secs(30));
    sender.join().unwrap();
    rt.block_on(session.close());
    assert_eq!(r.code(), 0, "the viewer kept running\n{}", r.output());
    assert_eq!(
        r.stderr.matches("refusing video track").count(),
        1,
        "one warning\n{}",
        r.output()
    );
    assert!(r.stderr.contains("16383x16383"), "{}", r.output());
    let stats = common::json(&dump.join("stats.json"));
    let streams = stats["streams"]["video"].as_array().expect("video streams");
    let refused: u64 = streams
        .iter()
        .map(|s| s["refused_keyframes"].as_u64().unwrap_or(0))
        .sum();
    assert!(refused >= 5, "huge keyframes refused: {refused}\n{stats}");
    assert!(
        streams
            .iter()
            .any(|s| s["refused_size"] == serde_json::json!([16383, 16383])),
        "{stats}"
    );
    let v = &stats["video"];
    assert!(
        v["frames_received"].as_u64().unwrap_or(0) >= 60,
        "the proper stream was shown afterwards: {v}"
    );
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(160), Some(120)),
        "{v}"
    );
    eprintln!(
        "viewer peak RSS: {} MB while refusing, {} MB overall",
        peak_during_hostile / 1024,
        peak / 1024
    );
    // A 16383x16383 decode would add ~400 MB of picture buffers.
    assert!(peak < 300 * 1024, "peak RSS {} MB", peak / 1024);
}
