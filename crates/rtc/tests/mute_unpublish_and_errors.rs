//! Mute/unmute and unpublish as another engine sees them; typed join errors.

mod common;

use std::time::Duration;

use wavecast_rtc::{Engine, EngineError, EngineEvent, EngineOptions, TrackOptions};
use wavecast_testbed::LiveKitServer;
use wavecast_token::{Keys, Preset, TokenBuilder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_unmute_and_unpublish_reach_the_other_side() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let (mut a, mut a_events) = common::join(&server, "mute", "alice").await;
    let (mut b, mut b_events) = common::join(&server, "mute", "bob").await;
    common::wait_connected(&mut a_events, Duration::from_secs(10)).await;

    let track = a
        .publish_track(TrackOptions::audio("mic"))
        .await
        .expect("published");
    let sid = track.sid().to_owned();
    assert!(sid.starts_with("TR_"), "server sid {sid}");
    common::wait_for(&mut b_events, Duration::from_secs(10), |e| {
        matches!(e, EngineEvent::TrackPublished { track, participant }
            if track.sid == sid && participant.identity == "alice" && track.name == "mic")
    })
    .await;

    a.set_track_muted(&sid, true).await.expect("mute");
    common::wait_for(&mut b_events, Duration::from_secs(10), |e| {
        matches!(e, EngineEvent::TrackMuted { track_sid, muted: true, .. } if *track_sid == sid)
    })
    .await;
    a.set_track_muted(&sid, false).await.expect("unmute");
    common::wait_for(&mut b_events, Duration::from_secs(10), |e| {
        matches!(e, EngineEvent::TrackMuted { track_sid, muted: false, .. } if *track_sid == sid)
    })
    .await;

    a.unpublish_track(&sid).await.expect("unpublish");
    common::wait_for(
        &mut b_events,
        Duration::from_secs(10),
        |e| matches!(e, EngineEvent::TrackUnpublished { track_sid, .. } if *track_sid == sid),
    )
    .await;
    assert!(matches!(
        a.unpublish_track(&sid).await,
        Err(EngineError::UnknownTrack(_))
    ));

    a.close().await;
    common::wait_for(
        &mut b_events,
        Duration::from_secs(10),
        |e| matches!(e, EngineEvent::ParticipantLeft(p) if p.identity == "alice"),
    )
    .await;
    b.close().await;
    // close is idempotent.
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_and_refused_port_are_typed_errors() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let forged = TokenBuilder::new("mallory")
        .room("r")
        .preset(Preset::Broadcaster)
        .mint(&Keys::new("devkey", "not-the-secret"))
        .expect("token");
    let err = Engine::connect(&server.ws_url(), &forged, EngineOptions::default())
        .await
        .expect_err("forged token refused");
    eprintln!("forged token: {err}");
    assert!(
        matches!(err, EngineError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(
        !format!("{err} {err:?}").contains(&forged),
        "the token must not leak into errors"
    );

    let port = wavecast_testbed::free_tcp_port().expect("port");
    let token = server.token("x", "r", Preset::Broadcaster);
    let started = std::time::Instant::now();
    let err = Engine::connect(
        &format!("ws://127.0.0.1:{port}"),
        &token,
        EngineOptions::default(),
    )
    .await
    .expect_err("refused port");
    eprintln!("refused port: {err} after {:?}", started.elapsed());
    assert!(matches!(err, EngineError::Connect { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
}
