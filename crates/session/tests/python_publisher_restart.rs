//! Interop across a server restart: the official Python SDK publishes (tone + 320x240 video), our
//! session subscribes; the server is killed and restarted. The Python SDK rejoins and publishes
//! again (new track sids), our session rejoins, and the video handle we held all along decodes the
//! Python SDK's frames again.

mod common;

use std::time::{Duration, Instant};

use wavecast_session::internals::SessionState;
use wavecast_session::{TrackKind, VideoSubscriber};
use wavecast_testbed::{LiveKitServer, PythonPeer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_publisher_survives_a_server_restart() {
    common::init_tracing();
    let mut server = LiveKitServer::start().expect("server starts");
    let room = "py-restart";
    let py = PythonPeer::spawn(
        &server,
        "engine_peer.py",
        &["publish", room, "py-pub", "20"],
    )
    .expect("python starts");
    let py = tokio::task::spawn_blocking(move || {
        let mut py = py;
        py.wait_line("READY", Duration::from_secs(30))
            .expect("python publishes");
        py
    })
    .await
    .unwrap();
    let (session, mut events) = common::connect(
        common::options(&server, room, "rust-sub").reconnect(common::quick_policy(30)),
    )
    .await;
    let track = common::next_track(&mut events, TrackKind::Video, Duration::from_secs(10)).await;
    assert_eq!(track.key().identity, "py-pub");
    assert_eq!(track.key().name, "pattern");
    let first_sid = track.sid();
    let _drain = common::drain(events);
    let mut video = VideoSubscriber::new(track).expect("decoder");
    for _ in 0..30 {
        let f = tokio::time::timeout(Duration::from_secs(5), video.recv())
            .await
            .expect("python frames")
            .expect("track alive");
        assert_eq!((f.image.image.width, f.image.image.height), (320, 240));
    }

    tokio::task::block_in_place(|| server.stop());
    common::wait_state(&session, Duration::from_secs(5), |s| {
        matches!(s, SessionState::Reconnecting { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| server.restart()).expect("server restarts");
    let up = Instant::now();

    // Drain what was buffered before the kill, then count frames of the new publication.
    let mut after = 0;
    let mut first_after = None;
    while after < 30 {
        let left = Duration::from_secs(30).saturating_sub(up.elapsed());
        let size = tokio::time::timeout(left, video.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no Python frames within 30 s of the restart (session {})",
                    session.state()
                )
            })
            .map(|f| (f.image.image.width, f.image.image.height))
            .expect("handle survives");
        if video.track().expect("a session track").rebinds() >= 1 {
            assert_eq!(size, (320, 240));
            after += 1;
            first_after.get_or_insert(up.elapsed());
        }
    }
    let new_sid = video.track().expect("a session track").sid();
    eprintln!(
        "Python video resumed {:?} after the restart ({first_sid} → {new_sid}); session {}",
        first_after.unwrap(),
        session.state()
    );
    assert_ne!(first_sid, new_sid, "the restarted server issued a new sid");
    assert_eq!(session.state(), SessionState::Connected);
    session.close().await;
    drop(py); // killed: its RESULT (after 20 s of publishing) is not needed here
}
