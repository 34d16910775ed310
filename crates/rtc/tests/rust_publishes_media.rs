//! We publish a 440 Hz tone (Opus) and a 320x240 VP8 video; the official Python SDK subscribes and
//! checks: dominant frequency 440 ± 5 Hz, the published size, ≥ 90 % of the frames of 10 s.

mod common;

use std::time::Duration;

use wavecast_testbed::{LiveKitServer, PythonPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_decodes_our_tone_and_video() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let py = PythonPeer::spawn(
        &server,
        "engine_peer.py",
        &["subscribe", "rust-to-py", "py-sub", "14"],
    )
    .expect("python starts");
    let py = common::python_ready(py, Duration::from_secs(30)).await;
    let (mut engine, mut events) = common::join(&server, "rust-to-py", "rust-pub").await;
    common::wait_connected(&mut events, Duration::from_secs(10)).await;

    let sender = common::publish_test_media(&engine, 11.0).await;
    let (packets, frames, keyframes) = tokio::task::spawn_blocking(move || sender.join().unwrap())
        .await
        .unwrap();
    let result = common::python_result(py, Duration::from_secs(30)).await;
    engine.close().await;
    eprintln!(
        "sent {packets} opus packets, {frames} vp8 frames ({keyframes} keyframes); python: {result}"
    );

    let tracks = result["tracks"].as_object().expect("tracks");
    let audio = &tracks["rust-pub/tone"];
    let video = &tracks["rust-pub/pattern"];
    let freq = audio["freq"].as_f64().expect("audio analysed");
    assert!((freq - 440.0).abs() <= 5.0, "python heard {freq} Hz");
    let voiced = audio["voiced_seconds"].as_f64().unwrap();
    assert!(
        voiced >= 9.0,
        "python heard the tone for only {voiced} s of 11"
    );
    assert_eq!(video["width"].as_u64(), Some(320));
    assert_eq!(video["height"].as_u64(), Some(240));
    let got = video["frames"].as_f64().unwrap();
    // 11 s sent at 30 fps; require 90 % of 10 s worth (one second of slack for the subscription
    // to start).
    assert!(
        got >= 0.9 * 300.0,
        "python decoded only {got} of {frames} frames"
    );
}
