//! Joins that cannot work fail fast with a typed error naming the cause, and a token the server
//! refuses is never retried — neither at the first join nor at a rejoin.

mod common;

use std::time::{Duration, Instant};

use wavecast_session::internals::{EndReason, SessionOptions, SessionState};
use wavecast_session::{Credentials, SessionError};
use wavecast_testbed::LiveKitServer;
use wavecast_token::{Keys, Preset, TokenBuilder};

async fn connect_err(url: &str, credentials: Credentials) -> (SessionError, Duration) {
    let t0 = Instant::now();
    let r =
        wavecast_session::internals::Session::connect(SessionOptions::new(url, credentials)).await;
    let took = t0.elapsed();
    match r {
        Ok(_) => panic!("connecting to {url} succeeded"),
        Err(e) => {
            eprintln!("{url}: {e} ({:?}) after {took:?}", e);
            (e, took)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_is_refused_with_401_at_once() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let forged = TokenBuilder::new("mallory")
        .room("errors")
        .preset(Preset::Broadcaster)
        .mint(&Keys::new("devkey", "not-the-secret"))
        .unwrap();
    let (e, took) = connect_err(&server.ws_url(), Credentials::token(forged)).await;
    assert!(
        matches!(e, SessionError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refused_with_401_at_once() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let now = wavecast_token::unix_now();
    let expired = TokenBuilder::new("late")
        .room("errors")
        .preset(Preset::Broadcaster)
        .issued_at(now - 7200)
        .ttl(Duration::from_secs(600))
        .mint(&server.keys())
        .unwrap();
    let (e, took) = connect_err(&server.ws_url(), Credentials::token(expired)).await;
    match &e {
        SessionError::Unauthorized {
            status: 401,
            message,
            ..
        } => assert!(message.contains("expired"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_urls_are_bad_url_errors() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let creds = Credentials::mint(server.keys(), "lost", "errors", Preset::Viewer);
    for url in ["ftp://127.0.0.1:7880", "not a url"] {
        let (e, took) = connect_err(url, creds.clone()).await;
        assert!(matches!(e, SessionError::BadUrl { .. }), "{url}: {e:?}");
        assert!(e.to_string().contains(url), "{e}");
        assert!(!e.is_retryable());
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
    // The right server, a path that is not LiveKit's.
    let url = format!("{}/no/such/path", server.ws_url());
    let (e, took) = connect_err(&url, creds.clone()).await;
    assert!(matches!(e, SessionError::BadUrl { .. }), "{url}: {e:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_port_is_unreachable_at_once() {
    common::init_tracing();
    let port = wavecast_testbed::free_tcp_port().unwrap();
    let url = format!("ws://127.0.0.1:{port}");
    let creds = Credentials::mint(
        Keys::new("devkey", "secret"),
        "nobody",
        "errors",
        Preset::Viewer,
    );
    let (e, took) = connect_err(&url, creds).await;
    assert!(matches!(e, SessionError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains(&url), "{e}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// The session is connected with a fixed token; the server comes back with another secret
/// (the token is now refused, as an expired or revoked one would be): the first rejoin gets 401
/// and the session ends at once — one rejoin attempt, not a storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_rejoin_ends_the_session_without_retrying() {
    common::init_tracing();
    let mut server = common::OwnServer::start("secret").expect("server starts");
    let token = TokenBuilder::new("fixed")
        .room("errors")
        .preset(Preset::Broadcaster)
        .mint(&Keys::new("devkey", "secret"))
        .unwrap();
    let opts = SessionOptions::new(server.ws_url(), Credentials::token(token))
        .reconnect(common::quick_policy(10));
    let (session, events) = common::connect(opts).await;
    let _drain = common::drain(events);
    server
        .restart_with_secret("rotated-secret")
        .expect("server restarts");
    let end = common::wait_state(&session, Duration::from_secs(20), |s| {
        matches!(s, SessionState::Disconnected { .. })
    })
    .await;
    eprintln!("{end}; {:?}", session.stats());
    match end {
        SessionState::Disconnected {
            reason: EndReason::Refused { status: 401, .. },
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        session.stats().join_attempts,
        2,
        "one first join and exactly one refused rejoin"
    );
    session.close().await;
}
