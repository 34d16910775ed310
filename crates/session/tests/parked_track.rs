//! A subscription nobody reads asks its publisher for no keyframes (issue 9: "no keyframe-request
//! storm from tracks nobody watches"), on a real server.
//!
//! A publisher sends video; one subscriber reads it, a second holds its track but never reads,
//! with a small queue (8 frames) that fills within a second. Every frame that subscriber's
//! engine then drops would ask for a keyframe, so that it could restart decoding cleanly, and
//! before the fix it did: a PLI every 300 ms reached the publisher through the server. The
//! publisher's own counters (`RtpStats::plis_received`) must stay flat while the track is
//! parked. Then the reading subscriber asks for a keyframe once, and the same counter must move:
//! the path works, and the quiet above means nobody asked.
//!
//! Measured (debug build, 2-core VM): 0 requests in the 4 s watch, then 1 from the reader's
//! ask. With the old rule put back (a request every 300 ms, queue state ignored) the publisher
//! received 6 in the same 4 s (the server throttles what it forwards) and this test failed.

mod common;

use std::time::{Duration, Instant};

use wavecast_session::TrackKind;
use wavecast_session::internals::EngineOptions;
use wavecast_testbed::LiveKitServer;

/// The parked subscriber's queue: full after 8 frames (about 0.3 s of 30 fps).
const PARKED_QUEUE: usize = 8;
/// How long the parked track is watched.
const WATCH: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_subscription_sends_no_keyframe_requests() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server");
    let room = "parked";
    let (publisher, pub_events) = common::connect(common::options(&server, room, "pub")).await;
    let _pub_drain = common::drain(pub_events);
    let (_reader, mut reader_events) =
        common::connect(common::options(&server, room, "reader")).await;
    let mut engine = EngineOptions::default();
    engine.track_capacity = PARKED_QUEUE;
    let parked_options = common::options(&server, room, "parked").engine(engine);
    let (_parked, mut parked_events) = common::connect(parked_options).await;
    let video = publisher
        .publish_video("cam", common::small_video())
        .await
        .expect("video published");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = common::spawn_video_sender(video, stop.clone());

    let mut read = common::next_track(
        &mut reader_events,
        TrackKind::Video,
        Duration::from_secs(10),
    )
    .await;
    let parked = common::next_track(
        &mut parked_events,
        TrackKind::Video,
        Duration::from_secs(10),
    )
    .await;
    let _reader_drain = common::drain(reader_events);
    let _parked_drain = common::drain(parked_events);
    // The reader consumes everything, on its own task.
    let reading = tokio::spawn(async move {
        let mut frames = 0u64;
        let mut asked = false;
        let start = Instant::now();
        while let Some(_f) = read.recv().await {
            frames += 1;
            // After the watch, ask once for a keyframe (the positive control).
            if !asked && start.elapsed() >= WATCH + Duration::from_secs(3) {
                read.request_keyframe();
                asked = true;
            }
            if start.elapsed() >= WATCH + Duration::from_secs(7) {
                break;
            }
        }
        frames
    });

    // Let the parked queue fill and the joins' own keyframe requests settle (stats arrive
    // once a second), then watch.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = publisher.stats().rtp.plis_received;
    tokio::time::sleep(WATCH).await;
    let after = publisher.stats().rtp.plis_received;
    // Once its queue is full the engine refuses frames for the parked track (counted) and
    // then waits for a keyframe, which it would ask for if anybody read the track.
    let dropped = parked.dropped();
    eprintln!(
        "parked for {WATCH:?}: the parked track refused {dropped} frames; {} keyframe requests reached the publisher ({before} before)",
        after - before
    );
    assert!(
        dropped >= 1,
        "the parked track refused no frame: its queue never filled"
    );
    assert_eq!(
        after - before,
        0,
        "keyframe requests reached the publisher while nobody else asked"
    );

    // Positive control: one request from the reader reaches the publisher.
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut control = after;
    while Instant::now() < deadline && control == after {
        tokio::time::sleep(Duration::from_millis(250)).await;
        control = publisher.stats().rtp.plis_received;
    }
    eprintln!(
        "the reader's one keyframe request: {} reached the publisher",
        control - after
    );
    assert!(
        control > after,
        "the reader's keyframe request never reached the publisher: the counter proves nothing"
    );
    let frames = reading.await.expect("reader");
    assert!(frames > 100, "the reader got {frames} frames");
    drop(parked);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || sender.join()).await;
}
