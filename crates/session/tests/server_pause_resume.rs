//! The server freezes (SIGSTOP) long enough for our signal ping to time out, then thaws
//! (SIGCONT): both sessions *resume* — same participant sids, same track sid, nothing
//! re-published, no rejoin — and the subscriber's held handle decodes new frames. The recovery
//! time (SIGCONT → first new frame) is printed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wavecast_session::internals::SessionState;
use wavecast_session::{TrackKind, VideoSubscriber};
use wavecast_testbed::LiveKitServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pause_resumes_with_same_sids_and_tracks() {
    common::init_tracing();
    let mut server = LiveKitServer::start().expect("server starts");
    let room = "pause";
    let policy = common::quick_policy(20);
    let (publisher, pub_events) =
        common::connect(common::options(&server, room, "rust-pub").reconnect(policy.clone())).await;
    let _pub_drain = common::drain(pub_events);
    let (subscriber, mut sub_events) =
        common::connect(common::options(&server, room, "rust-sub").reconnect(policy)).await;
    let pub_sid = publisher.join_info().expect("joined").local.sid;
    let sub_sid = subscriber.join_info().expect("joined").local.sid;

    let video = publisher
        .publish_video("cam", common::small_video())
        .await
        .expect("video published");
    let track_sid = video.track().sid().expect("bound");
    let published = video.track().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = common::spawn_video_sender(video, stop.clone());

    let track =
        common::next_track(&mut sub_events, TrackKind::Video, Duration::from_secs(10)).await;
    let mut video_in = VideoSubscriber::new(track).expect("decoder");
    let _sub_drain = common::drain(sub_events);
    let mut last_before = 0;
    for _ in 0..30 {
        let f = tokio::time::timeout(Duration::from_secs(5), video_in.recv())
            .await
            .expect("frames before the pause")
            .expect("track alive");
        if let Some(s) = common::read_stamp(&f.image.image) {
            last_before = s.frame_number;
        }
    }

    // Freeze the server until both sessions noticed (signal ping timeout).
    server.pause().expect("SIGSTOP");
    let paused = Instant::now();
    for s in [&publisher, &subscriber] {
        common::wait_state(s, Duration::from_secs(40), |st| {
            matches!(st, SessionState::Reconnecting { .. })
        })
        .await;
    }
    eprintln!("both reconnecting {:?} after SIGSTOP", paused.elapsed());
    server.resume().expect("SIGCONT");
    let thawed = Instant::now();

    let mut first_after = None;
    let mut after = 0;
    while after < 30 {
        let left = Duration::from_secs(20).saturating_sub(thawed.elapsed());
        let f = tokio::time::timeout(left, video_in.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "media did not come back within 20 s of SIGCONT (pub {}, sub {})",
                    publisher.state(),
                    subscriber.state()
                )
            })
            .expect("the handle survives");
        if let Some(s) = common::read_stamp(&f.image.image)
            && s.frame_number > last_before
        {
            after += 1;
            first_after.get_or_insert(thawed.elapsed());
        }
    }
    let recovered = first_after.expect("frames after SIGCONT");
    eprintln!(
        "RECOVERY: first new frame {recovered:?} after SIGCONT ({:?} after SIGSTOP); \
         pub {:?}, sub {:?}",
        paused.elapsed() - thawed.elapsed() + recovered,
        publisher.stats(),
        subscriber.stats()
    );

    // Not only what was buffered during the pause: read on for 3 s; the last second must
    // still bring live frames (30 fps sent).
    let reading = Instant::now();
    let mut last_second = 0;
    while reading.elapsed() < Duration::from_secs(3) {
        let left = Duration::from_secs(3).saturating_sub(reading.elapsed());
        match tokio::time::timeout(left, video_in.recv()).await {
            Ok(Some(f)) => {
                if reading.elapsed() >= Duration::from_secs(2)
                    && common::read_stamp(&f.image.image).is_some()
                {
                    last_second += 1;
                }
            }
            Ok(None) => panic!("the handle ended"),
            Err(_) => break,
        }
    }
    eprintln!("{last_second} frames in the third second after recovery");
    assert!(
        last_second >= 15,
        "media keeps flowing: {last_second} frames/s"
    );

    // Resumed, not rejoined: same participants, same track, nothing re-published.
    for (who, s, sid) in [
        ("publisher", &publisher, &pub_sid),
        ("subscriber", &subscriber, &sub_sid),
    ] {
        assert_eq!(s.state(), SessionState::Connected, "{who}");
        let st = s.stats();
        assert!(st.resumes >= 1, "{who} resumed: {st:?}");
        assert_eq!(st.rejoins, 0, "{who} did not rejoin: {st:?}");
        assert_eq!(st.join_attempts, 1, "{who} joined once: {st:?}");
        assert_eq!(&s.join_info().expect("joined").local.sid, sid, "{who} sid");
    }
    assert_eq!(published.sid().as_deref(), Some(track_sid.as_str()));
    assert_eq!(
        video_in.track().expect("a session track").sid(),
        track_sid,
        "same remote track"
    );
    assert_eq!(
        video_in.track().expect("a session track").rebinds(),
        0,
        "the handle was never rebound"
    );

    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || sender.join().unwrap()).await;
    publisher.close().await;
    subscriber.close().await;
}
