//! Data: 1 000 reliable messages each way arrive complete and in order; lossy messages arrive on
//! loopback. The official Python SDK is the other side.

mod common;

use std::time::Duration;

use wavecast_rtc::{DataOptions, EngineEvent};
use wavecast_testbed::{LiveKitServer, PythonPeer};

const COUNT: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_reliable_each_way_in_order() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    let (mut engine, mut events) = common::join(&server, "data", "rust-data").await;
    let py = PythonPeer::spawn(
        &server,
        "engine_peer.py",
        &["data-echo", "data", "py-data", "30", &COUNT.to_string()],
    )
    .expect("python starts");
    common::wait_connected(&mut events, Duration::from_secs(10)).await;
    let py = common::python_ready(py, Duration::from_secs(30)).await;
    common::wait_for(
        &mut events,
        Duration::from_secs(10),
        |e| matches!(e, EngineEvent::ParticipantJoined(p) if p.identity == "py-data"),
    )
    .await;

    for i in 0..200 {
        engine
            .publish_data(
                i.to_string().into_bytes(),
                DataOptions::lossy().topic("lossy"),
            )
            .await
            .expect("lossy send");
    }
    for i in 0..COUNT {
        engine
            .publish_data(
                i.to_string().into_bytes(),
                DataOptions::reliable().topic("seq"),
            )
            .await
            .expect("reliable send");
    }

    let mut got = Vec::with_capacity(COUNT);
    let mut lossy = 0;
    while got.len() < COUNT {
        let ev = common::wait_for(&mut events, Duration::from_secs(30), |e| {
            matches!(e, EngineEvent::DataReceived { .. })
        })
        .await;
        if let EngineEvent::DataReceived {
            participant_identity,
            topic,
            payload,
            reliable,
        } = ev
        {
            assert_eq!(participant_identity, "py-data");
            let n: usize = String::from_utf8(payload).unwrap().parse().unwrap();
            match topic.as_deref() {
                Some("seq") => {
                    assert!(reliable, "seq packets come on the reliable channel");
                    got.push(n);
                }
                Some("lossy") => lossy += 1,
                other => panic!("unexpected topic {other:?}"),
            }
        }
    }
    // Python sends 200 lossy packets after the reliable ones.
    while lossy < 190 {
        match tokio::time::timeout(Duration::from_secs(3), events.recv()).await {
            Ok(Some(EngineEvent::DataReceived { topic, .. }))
                if topic.as_deref() == Some("lossy") =>
            {
                lossy += 1
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let result = common::python_result(py, Duration::from_secs(30)).await;
    engine.close().await;
    eprintln!(
        "python: {result}; we got {} reliable, {lossy} lossy",
        got.len()
    );

    assert_eq!(
        got,
        (0..COUNT).collect::<Vec<_>>(),
        "python's packets complete and in order"
    );
    assert_eq!(
        result["received"].as_u64(),
        Some(COUNT as u64),
        "python got all of ours"
    );
    assert_eq!(
        result["in_order"].as_bool(),
        Some(true),
        "python got ours in order"
    );
    assert!(
        result["lossy_received"].as_u64().unwrap() >= 190,
        "our lossy packets on loopback"
    );
    assert!(lossy >= 190, "python's lossy packets on loopback: {lossy}");
}
