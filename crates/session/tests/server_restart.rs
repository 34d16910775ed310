//! The server is killed mid-stream and restarted on the same ports: both of our sessions go
//! Reconnecting → Connected, the publisher's track is published again by itself, and the
//! subscriber's handle (held across the rejoin) decodes stamped frames again within 10 s.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wavecast_session::internals::SessionState;
use wavecast_session::{TrackKind, VideoSubscriber};
use wavecast_testbed::LiveKitServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_stream_media_resumes() {
    common::init_tracing();
    let mut server = LiveKitServer::start().expect("server starts");
    let room = "restart";
    let policy = common::quick_policy(20);
    let (publisher, pub_events) =
        common::connect(common::options(&server, room, "rust-pub").reconnect(policy.clone())).await;
    let _pub_drain = common::drain(pub_events);
    let (subscriber, mut sub_events) =
        common::connect(common::options(&server, room, "rust-sub").reconnect(policy)).await;
    let pub_states = common::record_states(&publisher);
    let sub_states = common::record_states(&subscriber);

    let video = publisher
        .publish_video("cam", common::small_video())
        .await
        .expect("video published");
    let first_sid = video.track().sid().expect("bound");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = common::spawn_video_sender(video, stop.clone());

    let track =
        common::next_track(&mut sub_events, TrackKind::Video, Duration::from_secs(10)).await;
    assert_eq!(track.key().identity, "rust-pub");
    assert_eq!(track.key().name, "cam");
    let mut video_in = VideoSubscriber::new(track).expect("decoder");
    let _sub_drain = common::drain(sub_events);

    // Before: stamped frames arrive.
    let mut before = 0u32;
    let mut last_before = 0u32;
    let t0 = Instant::now();
    while before < 45 {
        let f = tokio::time::timeout(Duration::from_secs(5), video_in.recv())
            .await
            .expect("frames before the restart")
            .expect("track alive");
        assert_eq!((f.image.image.width, f.image.image.height), (320, 240));
        if let Some(s) = common::read_stamp(&f.image.image) {
            before += 1;
            last_before = s.frame_number;
        }
    }
    eprintln!(
        "{before} stamped frames in {:?} before the restart",
        t0.elapsed()
    );

    // Kill the server, wait until both sessions noticed, bring it back.
    tokio::task::block_in_place(|| server.stop());
    let down = Instant::now();
    for s in [&publisher, &subscriber] {
        common::wait_state(s, Duration::from_secs(5), |st| {
            matches!(st, SessionState::Reconnecting { .. })
        })
        .await;
    }
    eprintln!("both reconnecting {:?} after the kill", down.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| server.restart()).expect("server restarts");
    let up = Instant::now();

    // After: the same subscriber handle decodes new frames (numbers beyond the old ones).
    let mut after = 0u32;
    let mut first_after = None;
    while after < 30 {
        let left = Duration::from_secs(10).saturating_sub(up.elapsed());
        let f = tokio::time::timeout(left, video_in.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "media did not resume within 10 s of the restart (pub {}, sub {}; {after} frames)",
                    publisher.state(),
                    subscriber.state()
                )
            })
            .expect("the handle survives the rejoin");
        if let Some(s) = common::read_stamp(&f.image.image)
            && s.frame_number > last_before
        {
            after += 1;
            first_after.get_or_insert((up.elapsed(), s.frame_number));
        }
    }
    let (resumed_in, first_number) = first_after.expect("frames after the restart");
    eprintln!(
        "media resumed {resumed_in:?} after the restart (frame {first_number}); \
         30 frames by {:?}",
        up.elapsed()
    );
    assert!(resumed_in < Duration::from_secs(10));
    assert_eq!(publisher.state(), SessionState::Connected);
    assert_eq!(subscriber.state(), SessionState::Connected);
    assert!(
        video_in.track().expect("a session track").rebinds() >= 1,
        "the handle moved to a new track"
    );

    stop.store(true, Ordering::Relaxed);
    let (pushes, queued) = tokio::task::spawn_blocking(move || sender.join().unwrap())
        .await
        .unwrap();
    eprintln!("publisher pushed {pushes} pictures, {queued} queued");
    let stats = (publisher.stats(), subscriber.stats());
    eprintln!("stats: {stats:?}");
    assert!(stats.0.rejoins >= 1 && stats.1.rejoins >= 1);
    publisher.close().await;
    subscriber.close().await;
    publisher.close().await; // idempotent

    for (who, states) in [("publisher", pub_states), ("subscriber", sub_states)] {
        let states = states.await.unwrap();
        eprintln!("{who}: {states:?}");
        let reconnecting = states
            .iter()
            .position(|s| matches!(s, SessionState::Reconnecting { .. }))
            .expect("went through Reconnecting");
        assert!(
            states[reconnecting..].contains(&SessionState::Connected),
            "{who} came back: {states:?}"
        );
        assert!(matches!(
            states.last(),
            Some(SessionState::Disconnected {
                reason: wavecast_session::internals::EndReason::Closed
            })
        ));
    }
    let _ = first_sid;
}
