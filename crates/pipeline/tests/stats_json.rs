//! Every component's counters serialise to JSON for stats endpoints and overlays.

use std::time::Duration;

use wavecast_pipeline::{
    AgeHistogram, AudioFormat, AudioFrameMut, AudioRingConfig, FanOut, PixelFormat, Timestamp,
    VideoFrame, VideoFramePool, VideoLayout, audio_ring,
};

#[test]
fn stats_snapshots_serialise_to_json() {
    let pool = VideoFramePool::new(
        "cam",
        VideoLayout::new(PixelFormat::I420, 16, 16).unwrap(),
        2,
    );
    let mut fan: FanOut<VideoFrame> = FanOut::new();
    let renderer = fan.add_mailbox("renderer");
    for _ in 0..3 {
        fan.publish(pool.acquire().unwrap().freeze());
    }
    let mut ages = AgeHistogram::new();
    let frame = renderer.take().unwrap();
    ages.record_frame(
        frame.timestamp(),
        frame.timestamp() + Duration::from_millis(12),
    );

    let (mut tx, mut rx) = audio_ring(AudioRingConfig::new(AudioFormat::MONO_48K)).unwrap();
    let audio = AudioFrameMut::from_samples(AudioFormat::MONO_48K, &[1; 1920]).freeze();
    tx.push(&audio).unwrap();
    let mut out = [0i16; 480];
    rx.pop_at(&mut out, Timestamp::now());

    let json = serde_json::json!({
        "pool": pool.stats(),
        "renderer": renderer.stats(),
        "latency": ages.summary(),
        "ring": rx.stats(),
        "ring_latency": rx.latency(),
    });
    assert_eq!(json["pool"]["capacity"], 2);
    assert_eq!(json["renderer"]["dropped"], 2, "two frames superseded");
    assert_eq!(json["latency"]["count"], 1);
    let p50 = json["latency"]["p50_us"].as_u64().unwrap();
    assert!((11_900..=12_100).contains(&p50), "{p50}");
    assert_eq!(json["ring"]["samples_read"], 480);
    assert_eq!(json["ring"]["buffered_us"], 30_000);
    assert_eq!(json["ring_latency"]["count"], 1);
    let text = serde_json::to_string(&json).unwrap();
    assert!(text.contains("\"overflow_samples\":0"), "{text}");
}
