//! A session joined with a ready token (no key to mint new ones) rejoins after that token has
//! expired, with the token the server refreshed (`RefreshToken`).
//!
//! livekit-server v1.13.5 sends `RefreshToken` right after the join and then every 5 minutes
//! (`tokenRefreshInterval` in pkg/service/roommanager.go), valid for at least its default TTL.
//! The server accepts tokens up to a leeway past `exp` (go-jose's default: 1 min), so the join
//! token here is minted already past its `exp` and the test waits until the server refuses it
//! (checked with a twin token for another identity), then restarts the server.

mod common;

use std::time::{Duration, Instant};

use wavecast_session::Credentials;
use wavecast_session::internals::{SessionOptions, SessionState};
use wavecast_testbed::LiveKitServer;
use wavecast_token::{Preset, TokenBuilder, unix_now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_only_session_rejoins_after_its_token_expired() {
    common::init_tracing();
    let mut server = LiveKitServer::start().expect("server starts");
    let room = "refresh";
    // exp = now - 40 s: accepted for about 20 s more (leeway), then refused.
    let issued = unix_now() - 110;
    let mint = |identity: &str| {
        TokenBuilder::new(identity)
            .room(room)
            .preset(Preset::Viewer)
            .issued_at(issued)
            .ttl(Duration::from_secs(70))
            .mint(&server.keys())
            .expect("token mints")
    };
    let token = mint("holder");
    let probe_token = mint("probe");

    let options = SessionOptions::new(server.ws_url(), Credentials::token(token))
        .reconnect(common::quick_policy(30));
    let (session, events) = common::connect(options).await;
    let _drain = common::drain(events);
    common::wait_state(&session, Duration::from_secs(10), |s| {
        *s == SessionState::Connected
    })
    .await;

    // Wait until the server refuses a token with the same times.
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the server still accepts the expired token after 90 s"
        );
        let probe = SessionOptions::new(server.ws_url(), Credentials::token(probe_token.clone()))
            .reconnect(common::quick_policy(0));
        match wavecast_session::internals::Session::connect(probe).await {
            Ok((s, _)) => {
                s.close().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                eprintln!(
                    "the join token is refused now ({e}), {:?} after the join",
                    t0.elapsed()
                );
                assert!(!e.is_retryable(), "refused as unauthorized: {e}");
                break;
            }
        }
    }
    assert_eq!(session.state(), SessionState::Connected);

    // Restart the server: the old participant is gone, the session must join afresh.
    tokio::task::block_in_place(|| server.stop());
    let down = Instant::now();
    common::wait_state(&session, Duration::from_secs(10), |s| {
        matches!(s, SessionState::Reconnecting { .. })
    })
    .await;
    tokio::task::block_in_place(|| server.restart()).expect("server restarts");
    let st = common::wait_state(&session, Duration::from_secs(20), |s| {
        matches!(
            s,
            SessionState::Connected | SessionState::Disconnected { .. }
        )
    })
    .await;
    assert_eq!(
        st,
        SessionState::Connected,
        "rejoined with the refreshed token"
    );
    eprintln!(
        "rejoined {:?} after the kill with the refreshed token; stats {:?}",
        down.elapsed(),
        session.stats()
    );
    assert!(session.stats().rejoins >= 1);
    session.close().await;
}
