//! Regression guard for the liveness check (a connection that receives nothing for
//! `EngineOptions::liveness_timeout` is taken for dead): two engines sit idle in a room — no
//! tracks, no data — for three liveness windows, and neither resumes: STUN keepalives alone
//! keep an idle path alive.

mod common;

use std::time::{Duration, Instant};

use wavecast_rtc::{Engine, EngineEvent, EngineOptions};
use wavecast_testbed::LiveKitServer;
use wavecast_token::Preset;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_not_taken_for_dead() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let mut options = EngineOptions::default();
    options.liveness_timeout = Duration::from_secs(3);
    let window = options.liveness_timeout * 3;
    let mut joined = Vec::new();
    for who in ["alice", "bob"] {
        let token = server.token(who, "idle", Preset::Broadcaster);
        let (engine, mut events) = Engine::connect(&server.ws_url(), &token, options.clone())
            .await
            .expect("engine joins");
        common::wait_connected(&mut events, Duration::from_secs(10)).await;
        joined.push((who, engine, events));
    }
    let start = Instant::now();
    tokio::time::sleep(window).await;
    // The event streams hold everything since (far below their capacity).
    for (who, _, events) in &mut joined {
        while let Ok(ev) = events.try_recv() {
            assert!(
                !matches!(
                    ev,
                    EngineEvent::Resuming { .. } | EngineEvent::Disconnected(_)
                ),
                "{who}: an idle connection was taken for dead: {ev:?}"
            );
        }
    }
    eprintln!(
        "idle for {:?} with a 3 s liveness timeout: no resume",
        start.elapsed()
    );
    for (_, mut engine, _) in joined {
        engine.close().await;
    }
}
