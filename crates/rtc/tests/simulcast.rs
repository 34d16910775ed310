//! Simulcast on a real livekit-server: our engine publishes three VP8 layers by rid, a second
//! engine picks a layer with `UpdateTrackSettings` and gets that layer's pictures, and the
//! server's dynacast tells the publisher which layers anybody receives.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wavecast_codec::{I420, Vp8Config, Vp8Encoder, vp8_keyframe_size};
use wavecast_rtc::{
    EngineEvent, LocalTrack, TrackKind, TrackOptions, TrackSettings, VideoLayer, VideoQuality,
};
use wavecast_testbed::LiveKitServer;

/// The three layers: full, half and quarter size.
const LAYERS: [(VideoQuality, u32, u32, u32); 3] = [
    (VideoQuality::Low, 160, 90, 100_000),
    (VideoQuality::Medium, 320, 180, 300_000),
    (VideoQuality::High, 640, 360, 800_000),
];

/// Encodes a moving bar at each layer's size for as long as `run` holds; a layer nobody
/// receives is not encoded. Returns frames encoded per layer.
fn publish_layers(track: LocalTrack, run: Arc<AtomicBool>) -> std::thread::JoinHandle<[u64; 3]> {
    std::thread::spawn(move || {
        let mut encoders: Vec<Vp8Encoder> = LAYERS
            .iter()
            .map(|&(_, w, h, b)| {
                let mut c = Vp8Config::new(w, h, 30);
                c.bitrate = b;
                Vp8Encoder::new(c).expect("vp8 encoder")
            })
            .collect();
        let mut counts = [0u64; 3];
        let start = Instant::now();
        let mut n = 0u64;
        while run.load(Ordering::Relaxed) {
            let capture = Instant::now();
            let rtp = capture.duration_since(start).as_micros() as u64 * 9 / 100;
            for (i, &(q, w, h, _)) in LAYERS.iter().enumerate() {
                if !track.layer_active(q) {
                    continue;
                }
                if track.take_layer_keyframe_request(q) {
                    encoders[i].force_keyframe();
                }
                let (w, h) = (w as usize, h as usize);
                let bar = (n as usize * 4) % w;
                let y: Vec<u8> = (0..w * h)
                    .map(|p| {
                        if (bar..bar + 8).contains(&(p % w)) {
                            235
                        } else {
                            60
                        }
                    })
                    .collect();
                let uv = vec![128u8; w.div_ceil(2) * h.div_ceil(2)];
                let img = I420 {
                    width: w as u32,
                    height: h as u32,
                    planes: [&y, &uv, &uv],
                    strides: [w, w.div_ceil(2), w.div_ceil(2)],
                };
                if let Some(f) = encoders[i].encode(&img, rtp as i64).expect("encode")
                    && track.write_layer(q, f.data.to_vec(), rtp, capture).is_ok()
                {
                    counts[i] += 1;
                }
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(33));
        }
        counts
    })
}

/// The width of the next keyframe that arrives on `track` within `timeout`.
async fn next_keyframe_width(track: &mut wavecast_rtc::RemoteTrack, timeout: Duration) -> u32 {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let f = tokio::time::timeout_at(end, track.recv())
            .await
            .expect("a keyframe in time")
            .expect("track open");
        if f.keyframe
            && let Some((w, _)) = vp8_keyframe_size(&f.data)
        {
            return w;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_layers_by_rid_a_subscriber_picks_one_and_dynacast_pauses_the_rest() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let (publisher, mut pub_events) = common::join(&server, "simulcast", "sender").await;
    let (subscriber, mut sub_events) = common::join(&server, "simulcast", "viewer").await;
    common::wait_connected(&mut pub_events, Duration::from_secs(10)).await;
    common::wait_connected(&mut sub_events, Duration::from_secs(10)).await;

    let layers = LAYERS
        .iter()
        .map(|&(quality, width, height, bitrate)| VideoLayer {
            quality,
            width,
            height,
            bitrate,
        })
        .collect();
    let track = publisher
        .publish_track(TrackOptions::video("camera", 640, 360).with_layers(layers))
        .await
        .expect("simulcast track published");
    let run = Arc::new(AtomicBool::new(true));
    let sender = publish_layers(track.clone(), run.clone());

    let ev = common::wait_for(
        &mut sub_events,
        Duration::from_secs(15),
        |e| matches!(e, EngineEvent::TrackSubscribed(t) if t.kind() == TrackKind::Video),
    )
    .await;
    let EngineEvent::TrackSubscribed(mut remote) = ev else {
        unreachable!()
    };

    // Each quality asked for brings that layer's pictures.
    for (quality, width) in [
        (VideoQuality::Low, 160),
        (VideoQuality::High, 640),
        (VideoQuality::Medium, 320),
    ] {
        let settings = TrackSettings {
            quality,
            ..TrackSettings::default()
        };
        subscriber
            .set_track_settings(remote.sid(), settings)
            .await
            .expect("settings sent");
        // The server switches at the next keyframe of the new layer; frames of the old one
        // may still be on their way.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let w = next_keyframe_width(&mut remote, Duration::from_secs(10)).await;
            if w == width {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{quality:?}: keyframes of width {w}, not {width}"
            );
        }
    }

    // Dynacast: with its only subscriber on the low layer, the top layer is paused (the
    // server says so within a few seconds), and asked for again once a subscriber wants it.
    subscriber
        .set_track_settings(
            remote.sid(),
            TrackSettings {
                quality: VideoQuality::Low,
                ..TrackSettings::default()
            },
        )
        .await
        .expect("settings sent");
    let deadline = Instant::now() + Duration::from_secs(15);
    while track.layer_active(VideoQuality::High) {
        assert!(Instant::now() < deadline, "the top layer was never paused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        track.layer_active(VideoQuality::Low),
        "the low layer is received"
    );
    subscriber
        .set_track_settings(remote.sid(), TrackSettings::default())
        .await
        .expect("settings sent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !track.layer_active(VideoQuality::High) {
        assert!(Instant::now() < deadline, "the top layer was never resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let w = loop {
        let w = next_keyframe_width(&mut remote, Duration::from_secs(10)).await;
        if w == 640 || Instant::now() > deadline {
            break w;
        }
    };
    assert_eq!(w, 640, "the top layer's pictures come back");

    run.store(false, Ordering::Relaxed);
    let counts = sender.join().expect("sender");
    assert!(
        counts.iter().all(|&c| c > 30),
        "every layer was sent: {counts:?}"
    );
    drop((publisher, subscriber));
}
