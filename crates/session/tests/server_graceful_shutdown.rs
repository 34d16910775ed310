//! The server shuts down gracefully mid-stream — SIGTERM (livekit-server drains: it keeps its
//! participants), then SIGTERM again (it closes every room with a `Leave`, reason
//! SERVER_SHUTDOWN, and exits) — and is started again on the same ports: both sessions follow
//! the server's Leave at once (well before any ping timeout), rejoin rather than end (a
//! shutdown is not a removal), and the subscriber's held handle decodes new frames. The
//! recovery time (second SIGTERM → first new frame) is printed.

mod common;

use std::time::{Duration, Instant};

use wavecast_session::internals::SessionState;
use wavecast_session::{TrackKind, VideoSubscriber};
use wavecast_testbed::LiveKitServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sigterm_and_restart_the_session_rejoins() {
    common::init_tracing();
    let mut server = LiveKitServer::start().expect("server starts");
    let room = "sigterm";
    let policy = common::quick_policy(30);
    let (publisher, subscriber, mut sub_events, mut video_in, sending) =
        common::video_pair(&server, room, |o| o.reconnect(policy.clone())).await;
    let (n, _, last_before) = common::read_new_frames(
        &mut video_in,
        0,
        30,
        Instant::now(),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(n, 30, "frames before the shutdown");

    // The first SIGTERM starts the server's drain: it keeps its participants and waits for
    // them to leave.
    server.terminate().expect("first SIGTERM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        subscriber.state(),
        SessionState::Connected,
        "draining keeps us"
    );
    // The second closes every room (a Leave with SERVER_SHUTDOWN to each participant) and exits.
    server.terminate().expect("second SIGTERM");
    let term = Instant::now();
    let exited = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10)));
    assert!(exited, "the server exits after the second SIGTERM");
    eprintln!(
        "server exited {:?} after the second SIGTERM",
        term.elapsed()
    );
    common::wait_state(&subscriber, Duration::from_secs(15), |s| {
        matches!(s, SessionState::Reconnecting { .. })
    })
    .await;
    let noticed = term.elapsed();
    eprintln!("subscriber went Reconnecting {noticed:?} after the second SIGTERM");
    tokio::task::block_in_place(|| server.restart()).expect("restart on the same ports");
    let restarted = term.elapsed();

    // Frames captured after the shutdown (not those the handle still held).
    let captured = common::frames_captured_by(sending.started, term).max(last_before);
    let (mut after, mut first, last) =
        common::read_new_frames(&mut video_in, captured, 30, term, Duration::from_secs(30)).await;
    if after < 30 {
        // The server may close the publisher first: the subscriber then sees it leave and its
        // handle ends (perhaps after a frame or two still in flight, seen in CI-like load);
        // after the rejoin the track comes back as a new subscription, and recovery is timed
        // from its first frame.
        let left = Duration::from_secs(30).saturating_sub(term.elapsed());
        let track = common::next_track(&mut sub_events, TrackKind::Video, left).await;
        video_in = VideoSubscriber::new(track).expect("decoder");
        let (more, first_new, _) = common::read_new_frames(
            &mut video_in,
            last,
            30 - after,
            term,
            Duration::from_secs(30),
        )
        .await;
        after += more;
        first = first_new;
    }
    let _sub_drain = common::drain(sub_events);
    let recovered = first.unwrap_or_else(|| {
        panic!(
            "no new frame within 30 s of the second SIGTERM (pub {}, sub {})",
            publisher.state(),
            subscriber.state()
        )
    });
    assert_eq!(after, 30, "frames keep flowing after the rejoin");
    eprintln!(
        "RECOVERY: first new frame {recovered:?} after the second SIGTERM (server back after \
         {restarted:?}); pub {:?}, sub {:?}",
        publisher.stats(),
        subscriber.stats()
    );
    // The server said goodbye (its Leave, or the WebSocket closed): no ping timeout needed.
    assert!(
        noticed < Duration::from_secs(5),
        "the session followed the server's close: Reconnecting after {noticed:?}"
    );
    for (who, s) in [("publisher", &publisher), ("subscriber", &subscriber)] {
        // A resume cannot work on a fresh server: each session rejoins.
        common::wait_state(s, Duration::from_secs(20), |st| {
            *st == SessionState::Connected
        })
        .await;
        let st = s.stats();
        assert!(
            st.rejoins >= 1,
            "{who} rejoined the restarted server: {st:?}"
        );
    }

    sending.stop().await;
    publisher.close().await;
    subscriber.close().await;
}
