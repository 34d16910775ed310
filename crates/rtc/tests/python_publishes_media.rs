//! The official Python SDK publishes a 440 Hz tone and a 320x240 VP8 test video; we subscribe and
//! decode: dominant frequency 440 ± 5 Hz, video at the published size, ≥ 90 % of the frames over
//! a 10 s window.

mod common;

use std::time::{Duration, Instant};

use common::codec::{AudioReader, VideoReader};
use wavecast_rtc::{EngineEvent, TrackKind};
use wavecast_testbed::{LiveKitServer, PythonPeer};

const SECONDS: f64 = 14.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tone_and_video_decode_here() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let (mut engine, mut events) = common::join(&server, "py-to-rust", "rust-sub").await;
    let py = PythonPeer::spawn(
        &server,
        "engine_peer.py",
        &["publish", "py-to-rust", "py-pub", &SECONDS.to_string()],
    )
    .expect("python starts");

    let mut audio_task = None;
    let mut video_task = None;
    while audio_task.is_none() || video_task.is_none() {
        let ev = common::wait_for(&mut events, Duration::from_secs(30), |e| {
            matches!(e, EngineEvent::TrackSubscribed(_))
        })
        .await;
        let EngineEvent::TrackSubscribed(track) = ev else {
            unreachable!()
        };
        match track.kind() {
            TrackKind::Audio => {
                let mut sub = AudioReader::new(track);
                audio_task = Some(tokio::spawn(async move {
                    let mut samples: Vec<i16> = Vec::with_capacity(48_000 * 16);
                    while let Some(d) = sub.recv().await {
                        samples.extend_from_slice(d);
                    }
                    samples
                }));
            }
            TrackKind::Video => {
                let mut sub = VideoReader::new(track);
                video_task = Some(tokio::spawn(async move {
                    let mut frames: Vec<(Instant, u32, u32)> = Vec::new();
                    let mut rtp = Vec::new();
                    while let Some(d) = sub.recv().await {
                        rtp.push(d.rtp_time);
                        frames.push((Instant::now(), d.width, d.height));
                    }
                    let mut diffs: std::collections::BTreeMap<u64, usize> = Default::default();
                    for w in rtp.windows(2) {
                        *diffs.entry(w[1].saturating_sub(w[0])).or_default() += 1;
                    }
                    eprintln!(
                        "video counts {:?} dropped {} rtp diffs {diffs:?}",
                        sub.counts(),
                        sub.track().dropped()
                    );
                    frames
                }));
            }
        }
    }

    let result = common::python_result(py, Duration::from_secs(60)).await;
    let sent = result["video_frames_sent"].as_f64().expect("frames sent");
    // Let the last frames drain, then end the tracks by leaving.
    tokio::time::sleep(Duration::from_millis(500)).await;
    engine.close().await;

    let samples = audio_task.unwrap().await.unwrap();
    let frames = video_task.unwrap().await.unwrap();
    assert!(
        samples.len() > 48_000 * 5,
        "only {} audio samples decoded",
        samples.len()
    );
    let freq = common::dominant_frequency(&samples);
    assert!((freq - 440.0).abs() <= 5.0, "dominant frequency {freq} Hz");

    let (first, _, _) = *frames.first().expect("some video decoded");
    let window_start = first + Duration::from_secs(1);
    let window_end = window_start + Duration::from_secs(10);
    let in_window = frames
        .iter()
        .filter(|(t, _, _)| *t >= window_start && *t < window_end)
        .count() as f64;
    let expected = sent / SECONDS * 10.0;
    let ratio = in_window / expected;
    let (_, w, h) = *frames.last().unwrap();
    eprintln!(
        "audio: {} samples, dominant {freq:.1} Hz; video: {} frames total, {in_window} in 10 s \
         (expected {expected:.0}, ratio {ratio:.3}), last size {w}x{h}",
        samples.len(),
        frames.len()
    );
    assert_eq!((w, h), (320, 240), "published resolution");
    assert!(
        ratio >= 0.9,
        "only {in_window} of {expected:.0} frames in 10 s"
    );
}
