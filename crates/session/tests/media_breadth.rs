//! Media breadth between two of our rooms on a real livekit-server: VP8, VP9 and H.264, each
//! with three simulcast layers; the subscriber picks layers by quality and by the size it
//! shows the picture at, and the publisher's encoders follow dynacast (the top layer stops
//! while nobody receives it, and comes back with a keyframe).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{StampedSource, init_tracing, read_stamp};
use wavecast_session::{
    Preset, Room, RoomEvent, RoomEvents, RoomOptions, SubscribedTrack, VideoCodec, VideoOptions,
    VideoPublisher, VideoQuality, VideoSubscriber,
};
use wavecast_testbed::LiveKitServer;

async fn join(server: &LiveKitServer, room: &str, identity: &str) -> (Room, RoomEvents) {
    let token = server.token(identity, room, Preset::Broadcaster);
    Room::connect(&server.ws_url(), &token, RoomOptions::default())
        .await
        .expect("joined")
}

/// Publish 640x360 stamped pictures at 30 fps from a thread until `stop`; hands the
/// publisher back at the end (for its layer figures).
fn send(
    mut publisher: VideoPublisher,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<VideoPublisher> {
    std::thread::spawn(move || {
        let mut source = StampedSource::new(640, 360);
        let start = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let (img, _) = source.next();
            publisher.push(&img, Instant::now()).expect("encode");
            n += 1;
            let next = start + Duration::from_micros(n * 33_333);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        publisher
    })
}

/// Decode until a picture of `width` arrives whose stamp reads (the server switches layers at
/// a keyframe; frames of the old layer may come first).
async fn wait_for_width(sub: &mut VideoSubscriber, width: u32, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        let picture = tokio::time::timeout_at(deadline, sub.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: no {width}-wide picture; saw widths {seen:?}"))
            .expect("track open");
        let w = picture.image.image.width;
        if w == width {
            assert!(
                read_stamp(&picture.image.image).is_some(),
                "{what}: the stamp reads"
            );
            return;
        }
        if seen.last() != Some(&w) {
            seen.push(w);
        }
    }
}

async fn next_video(
    events: &mut RoomEvents,
) -> (SubscribedTrack, wavecast_session::RemoteTrackPublication) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(15), events.recv())
            .await
            .expect("a video track in time")
            .expect("room open");
        if let RoomEvent::TrackSubscribed {
            track, publication, ..
        } = ev
            && track.kind() == wavecast_session::TrackKind::Video
        {
            return (track, publication);
        }
    }
}

async fn simulcast_in(codec: VideoCodec) {
    init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let room = format!("breadth-{codec}");
    let (sender, _sender_events) = join(&server, &room, "sender").await;
    let (viewer, mut viewer_events) = join(&server, &room, "viewer").await;

    let options = VideoOptions::new(codec, 640, 360, 30).with_simulcast(true);
    assert_eq!(options.layers().len(), 3, "640x360 makes three layers");
    let publisher = sender
        .local_participant()
        .publish_video("camera", options)
        .await
        .expect("published");
    let mut published = publisher.track().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let sending = send(publisher, stop.clone());

    let (track, publication) = next_video(&mut viewer_events).await;
    let mut sub = VideoSubscriber::new(track).expect("subscriber");
    // The server names the codec and the three layers the publisher announced.
    let deadline = Instant::now() + Duration::from_secs(10);
    while publication.codec() != Some(wavecast_session::media_codec(codec)) {
        assert!(Instant::now() < deadline, "codec {:?}", publication.codec());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let widths: Vec<u32> = publication.layers().iter().map(|l| l.width).collect();
    assert_eq!(widths, [160, 320, 640], "announced layers");

    wait_for_width(&mut sub, 640, "the default (top) layer").await;
    viewer
        .set_video_quality(&publication, VideoQuality::Low)
        .await
        .expect("settings");
    wait_for_width(&mut sub, 160, "the low layer").await;
    // Shown at 300x170: the smallest layer at least that large is the middle one.
    viewer
        .set_video_dimensions(&publication, 300, 170)
        .await
        .expect("settings");
    wait_for_width(&mut sub, 320, "the layer for a 300x170 element").await;

    // Dynacast: only the low layer is received, so the top encoder stops…
    viewer
        .set_video_quality(&publication, VideoQuality::Low)
        .await
        .expect("settings");
    wait_for_width(&mut sub, 160, "the low layer again").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while published
        .engine_track()
        .is_some_and(|t| t.layer_active(VideoQuality::High))
    {
        assert!(
            Instant::now() < deadline,
            "{codec}: the server never paused the top layer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // …and comes back, with a keyframe, when the top layer is wanted again.
    let asked = Instant::now();
    viewer
        .set_video_quality(&publication, VideoQuality::High)
        .await
        .expect("settings");
    wait_for_width(&mut sub, 640, "the top layer again").await;
    let back_after = asked.elapsed();
    assert!(
        back_after < Duration::from_secs(1),
        "{codec}: the top layer's pictures came back {back_after:?} after it was asked for"
    );

    stop.store(true, Ordering::Relaxed);
    let publisher = sending.join().expect("sender thread");
    let stats = publisher.layer_stats();
    eprintln!("{codec}: top layer back after {back_after:?}; layers {stats:#?}");
    let top = stats.last().expect("layers");
    assert_eq!(top.quality, VideoQuality::High);
    assert!(
        top.paused > 30,
        "{codec}: the top encoder stopped while nobody received it: {top:?}"
    );
    assert!(top.resumed >= 1, "{codec}: and started again: {top:?}");
    let low = stats.first().expect("layers");
    assert_eq!(
        low.paused, 0,
        "{codec}: the received low layer never stopped: {low:?}"
    );
    let (decoded, errors) = sub.counts();
    assert!(
        decoded > 60 && errors == 0,
        "{codec}: {decoded} decoded, {errors} errors"
    );
    drop((sender, viewer));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_simulcast_layers_by_quality_and_size_with_dynacast() {
    simulcast_in(VideoCodec::Vp8).await;
}

/// VP9 goes out as one layer: LiveKit treats VP9 as a scalable (SVC) codec, one RTP stream
/// whose spatial layers the VP9 payload descriptor numbers, and str0m's packetiser writes
/// every frame as spatial layer 0 — so rid simulcast is not what the server reads, and SVC
/// is not ours to send (see docs/MEDIA.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp9_one_layer_with_its_codec_named() {
    init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let (sender, _sender_events) = join(&server, "breadth-vp9", "sender").await;
    let (_viewer, mut viewer_events) = join(&server, "breadth-vp9", "viewer").await;
    let options = VideoOptions::new(VideoCodec::Vp9, 640, 360, 30).with_simulcast(true);
    assert_eq!(options.layers().len(), 1, "VP9 publishes one layer");
    let publisher = sender
        .local_participant()
        .publish_video("camera", options)
        .await
        .expect("published");
    let stop = Arc::new(AtomicBool::new(false));
    let sending = send(publisher, stop.clone());
    let (track, publication) = next_video(&mut viewer_events).await;
    let mut sub = VideoSubscriber::new(track).expect("subscriber");
    for n in 0..60 {
        wait_for_width(&mut sub, 640, &format!("VP9 picture {n}")).await;
    }
    assert_eq!(publication.codec(), Some(wavecast_session::MediaCodec::Vp9));
    stop.store(true, Ordering::Relaxed);
    let publisher = sending.join().expect("sender thread");
    let (decoded, errors) = sub.counts();
    assert!(
        decoded >= 60 && errors == 0,
        "{decoded} decoded, {errors} errors"
    );
    assert_eq!(publisher.layer_stats().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_simulcast_layers_by_quality_and_size_with_dynacast() {
    simulcast_in(VideoCodec::H264).await;
}
