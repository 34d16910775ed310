//! With no server coming back, the session tries the policy's attempts (with backoff) and ends
//! with a Disconnected reason that says it gave up and why.

mod common;

use std::time::{Duration, Instant};

use wavecast_session::SessionError;
use wavecast_session::internals::{EndReason, SessionState};
use wavecast_testbed::LiveKitServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_the_policy_attempts() {
    common::init_tracing();
    let mut server = LiveKitServer::start().expect("server starts");
    let policy = common::quick_policy(4);
    let (session, events) =
        common::connect(common::options(&server, "gone", "alone").reconnect(policy.clone())).await;
    let _drain = common::drain(events);
    let states = common::record_states(&session);
    let track = session
        .publish_audio("mic", 1, 32_000)
        .await
        .expect("audio published");

    tokio::task::block_in_place(|| server.stop());
    let down = Instant::now();
    common::wait_state(&session, Duration::from_secs(5), |s| {
        matches!(s, SessionState::Reconnecting { .. })
    })
    .await;
    // While reconnecting, calls that need the connection fail at once with the state.
    match session
        .publish_data(b"x".to_vec(), Default::default())
        .await
    {
        Err(SessionError::NotConnected { state }) => {
            assert!(
                matches!(state, SessionState::Reconnecting { .. }),
                "{state}"
            )
        }
        other => panic!("{other:?}"),
    }
    let end = common::wait_state(&session, Duration::from_secs(20), |s| {
        matches!(s, SessionState::Disconnected { .. })
    })
    .await;
    let took = down.elapsed();
    eprintln!("{end} after {took:?}; {:?}", session.stats());

    match &end {
        SessionState::Disconnected {
            reason:
                EndReason::GaveUp {
                    attempts,
                    last_error,
                },
        } => {
            assert_eq!(*attempts, 4);
            let last_error = wavecast_session::error_chain(last_error.as_ref());
            assert!(last_error.contains("cannot reach LiveKit"), "{last_error}");
            assert!(last_error.contains("refused"), "{last_error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(session.stats().join_attempts, 1 + 4);
    // Backoff: 200 + 400 + 800 + 1000 ms nominal (±20 %), so at least ~1.9 s and well under 10 s.
    let min: Duration = (1..=4).map(|a| policy.delay(a, 0.0)).sum();
    assert!(
        took >= min,
        "gave up after {took:?}, sooner than the backoff {min:?}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");

    let states = states.await.unwrap();
    let attempts: Vec<u32> = states
        .iter()
        .filter_map(|s| match s {
            SessionState::Reconnecting { attempt } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3, 4], "{states:?}");

    // Calls on an ended session fail with a typed error that carries the final state.
    match session
        .publish_data(b"x".to_vec(), Default::default())
        .await
    {
        Err(SessionError::Closed { state }) => assert_eq!(state, end),
        other => panic!("{other:?}"),
    }
    let mut track = track;
    assert!(track.push(&[0i16; 960], Instant::now()).is_ok()); // dropped, counted
    assert!(track.dropped_while_reconnecting() >= 1);
    session.close().await;
    session.close().await;
}
