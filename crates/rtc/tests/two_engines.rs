//! Two of our engines in one room see each other and decode each other's tracks.

mod common;

use std::time::{Duration, Instant};

use common::codec::{AudioReader, VideoReader};
use wavecast_rtc::{EngineEvent, TrackKind};
use wavecast_testbed::LiveKitServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_decode_each_other() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let (mut a, mut a_events) = common::join(&server, "pair", "alice").await;
    let (mut b, mut b_events) = common::join(&server, "pair", "bob").await;
    common::wait_connected(&mut a_events, Duration::from_secs(10)).await;
    common::wait_connected(&mut b_events, Duration::from_secs(10)).await;

    let a_sender = common::publish_test_media(&a, 6.0).await;
    let b_sender = common::publish_test_media(&b, 6.0).await;

    let mut results = Vec::new();
    for (who, events) in [("alice", &mut a_events), ("bob", &mut b_events)] {
        let mut tasks = Vec::new();
        while tasks.len() < 2 {
            let ev = common::wait_for(events, Duration::from_secs(15), |e| {
                matches!(e, EngineEvent::TrackSubscribed(_))
            })
            .await;
            let EngineEvent::TrackSubscribed(track) = ev else {
                unreachable!()
            };
            let identity = track.participant_identity().to_owned();
            assert_ne!(identity, who, "{who} must not subscribe to itself");
            tasks.push(match track.kind() {
                TrackKind::Audio => {
                    let mut sub = AudioReader::new(track);
                    tokio::spawn(async move {
                        let mut samples = Vec::new();
                        let end = Instant::now() + Duration::from_secs(4);
                        while Instant::now() < end {
                            match tokio::time::timeout(Duration::from_millis(500), sub.recv()).await
                            {
                                Ok(Some(d)) => samples.extend_from_slice(d),
                                Ok(None) => break,
                                Err(_) => {}
                            }
                        }
                        (
                            TrackKind::Audio,
                            common::dominant_frequency(&samples) as f64,
                            samples.len(),
                        )
                    })
                }
                TrackKind::Video => {
                    let mut sub = VideoReader::new(track);
                    tokio::spawn(async move {
                        let mut n = 0;
                        let mut size = (0, 0);
                        let end = Instant::now() + Duration::from_secs(4);
                        while Instant::now() < end {
                            match tokio::time::timeout(Duration::from_millis(500), sub.recv()).await
                            {
                                Ok(Some(d)) => {
                                    n += 1;
                                    size = (d.width, d.height);
                                }
                                Ok(None) => break,
                                Err(_) => {}
                            }
                        }
                        (TrackKind::Video, f64::from(size.0 * 10_000 + size.1), n)
                    })
                }
            });
        }
        results.push((who, tasks));
    }
    for (who, tasks) in results {
        for t in tasks {
            let (kind, value, count) = t.await.unwrap();
            eprintln!("{who}: {kind:?} value {value} count {count}");
            match kind {
                TrackKind::Audio => assert!((value - 440.0).abs() <= 5.0, "{who} heard {value} Hz"),
                TrackKind::Video => {
                    assert_eq!(value, 3_200_240.0, "{who} saw the wrong size");
                    assert!(count >= 90, "{who} decoded only {count} frames in 4 s");
                }
            }
        }
    }
    a_sender.join().unwrap();
    b_sender.join().unwrap();
    a.close().await;
    b.close().await;
}
