//! Regression: the engine dropped roster events (`try_send`) when its reader fell behind, and
//! awaited the reader inside its network loop for subscriptions. Now a reader that stalls keeps
//! every roster and subscription event, in order, while the loop keeps receiving media.

mod common;

use std::time::Duration;

use wavecast_rtc::{Engine, EngineEvent, EngineOptions, TrackKind};
use wavecast_testbed::{LiveKitServer, PythonPeer};
use wavecast_token::Preset;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_loses_no_roster_event_and_media_keeps_flowing() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let mut options = EngineOptions::default();
    options.event_capacity = 2;
    let token = server.token("slow-reader", "stall", Preset::Broadcaster);
    let (mut engine, mut events) = Engine::connect(&server.ws_url(), &token, options)
        .await
        .expect("engine joins");
    let _py = PythonPeer::spawn(
        &server,
        "engine_peer.py",
        &["publish", "stall", "py-pub", "20"],
    )
    .expect("python starts");

    // The reader stalls while the peer joins, publishes and its media starts.
    tokio::time::sleep(Duration::from_secs(8)).await;

    let mut order = Vec::new();
    let mut audio = None;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
        match ev {
            EngineEvent::ParticipantJoined(p) => order.push(format!("joined {}", p.identity)),
            EngineEvent::TrackPublished { track, .. } => {
                order.push(format!("published {}", track.name))
            }
            EngineEvent::TrackSubscribed(t) => {
                order.push(format!("subscribed {:?}", t.kind()));
                if t.kind() == TrackKind::Audio {
                    audio = Some(t);
                }
            }
            _ => {}
        }
    }
    let pos = |s: &str| {
        order
            .iter()
            .position(|o| o == s)
            .unwrap_or_else(|| panic!("{s:?} missing from {order:?}"))
    };
    assert!(pos("joined py-pub") < pos("published tone"), "{order:?}");
    assert!(pos("joined py-pub") < pos("published pattern"), "{order:?}");
    pos("subscribed Audio");
    pos("subscribed Video");
    assert!(
        engine.held_events_peak() > 0,
        "the reader stalled, so events must have been held"
    );
    // The loop kept receiving while nobody read events: audio frames queued meanwhile.
    let mut audio = audio.expect("the audio track");
    let mut queued = 0;
    while audio.try_recv().is_ok() {
        queued += 1;
    }
    assert!(
        queued >= 50,
        "only {queued} audio frames arrived while the reader stalled"
    );
    engine.close().await;
}
