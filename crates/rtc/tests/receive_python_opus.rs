//! Subscribing to the official Python SDK: our engine joins, answers the subscriber offer,
//! connects both connections and receives the Opus packets of a tone the Python SDK publishes.
//! (The spike that chose str0m, docs/adr/0001-webrtc-stack.md, started as this test.)

mod common;

use std::time::{Duration, Instant};

use wavecast_rtc::{EngineEvent, TrackKind};
use wavecast_testbed::{LiveKitServer, PythonPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receives_opus_from_python_publisher() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let (mut engine, mut events) = common::join(&server, "python-opus", "rust-sub").await;
    let mut py = PythonPeer::spawn(
        &server,
        "engine_peer.py",
        &["publish", "python-opus", "py-pub", "8"],
    )
    .expect("python starts");
    common::wait_connected(&mut events, Duration::from_secs(10)).await;

    let ev = common::wait_for(
        &mut events,
        Duration::from_secs(20),
        |e| matches!(e, EngineEvent::TrackSubscribed(t) if t.kind() == TrackKind::Audio),
    )
    .await;
    let EngineEvent::TrackSubscribed(mut track) = ev else {
        unreachable!()
    };
    let t0 = Instant::now();
    let mut packets = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        if let Ok(Some(f)) = tokio::time::timeout(Duration::from_secs(1), track.recv()).await {
            assert!(!f.data.is_empty());
            packets += 1;
        }
    }
    // Opus at 20 ms per packet: 150 in 3 s; accept some start-up slack.
    assert!(packets > 100, "only {packets} opus packets in 3 s");
    let _ = py.wait_line("RESULT", Duration::from_secs(20));
    engine.close().await;
}
