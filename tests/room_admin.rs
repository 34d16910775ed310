//! Room administration end to end against the real server, with an official Python SDK participant:
//! create → list (with metadata) → Python joins and publishes → list_participants → mute → remove →
//! delete → gone.

use std::collections::HashMap;
use std::time::Duration;

use wavecast_server_api::{AdminError, DataKind, NewRoom, RoomAdmin};
use wavecast_testbed::{LiveKitServer, PythonPeer};
use wavecast_token::Keys;

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(t) = probe().await {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_lifecycle_with_a_python_participant() {
    let server = LiveKitServer::start().expect("start livekit-server");
    let admin = RoomAdmin::new(&server.ws_url(), &server.keys(), Duration::from_secs(5));
    let room = "admin-e2e";

    let created = admin
        .create_room(
            room,
            NewRoom {
                empty_timeout: 120,
                max_participants: 7,
                metadata: "{\"topic\":\"e2e\"}".into(),
            },
        )
        .await
        .expect("create");
    assert_eq!(created.name, room);
    assert!(created.sid.starts_with("RM_"), "{}", created.sid);

    let listed = admin.list_rooms(&[]).await.expect("list");
    let found = listed
        .iter()
        .find(|r| r.name == room)
        .expect("list shows the room");
    assert_eq!(found.metadata, "{\"topic\":\"e2e\"}");
    assert_eq!(found.max_participants, 7);

    let updated = admin
        .update_room_metadata(room, "v2")
        .await
        .expect("update metadata");
    assert_eq!(updated.metadata, "v2");

    // The official Python SDK joins and publishes a microphone track.
    let mut peer = PythonPeer::spawn(
        &server,
        "publish_tone.py",
        &["--room", room, "--identity", "py-pub", "--seconds", "60"],
    )
    .expect("start python peer");
    let ready: serde_json::Value = serde_json::from_str(
        &peer
            .wait_line("READY", Duration::from_secs(30))
            .expect("python published"),
    )
    .unwrap();
    let track_sid = ready["track_sid"].as_str().unwrap().to_owned();

    let participant = eventually("the participant with its track", || async {
        let ps = admin.list_participants(room).await.ok()?;
        ps.into_iter()
            .find(|p| p.identity == "py-pub" && p.tracks.iter().any(|t| t.sid == track_sid))
    })
    .await;
    assert_eq!(participant.sid, ready["participant_sid"].as_str().unwrap());
    let track = participant
        .tracks
        .iter()
        .find(|t| t.sid == track_sid)
        .unwrap();
    assert_eq!(
        (track.kind.as_str(), track.source.as_str(), track.muted),
        ("audio", "microphone", false)
    );

    let attrs = HashMap::from([("role".to_owned(), "guest".to_owned())]);
    let p = admin
        .update_participant(room, "py-pub", "hello", attrs, "")
        .await
        .expect("update participant");
    assert_eq!(p.metadata, "hello");
    assert_eq!(p.attributes["role"], "guest");
    admin
        .send_data(
            room,
            b"ping".to_vec(),
            DataKind::Reliable,
            Some("t".into()),
            vec![],
        )
        .await
        .expect("send data");

    let muted = admin
        .mute_track(room, "py-pub", &track_sid, true)
        .await
        .expect("mute");
    assert!(muted.muted);
    assert_eq!(
        peer.wait_line("MUTED", Duration::from_secs(10))
            .expect("python sees the mute"),
        track_sid
    );
    let p = admin
        .get_participant(room, "py-pub")
        .await
        .expect("get participant");
    assert!(
        p.tracks.iter().any(|t| t.sid == track_sid && t.muted),
        "get_participant shows the track muted"
    );

    admin
        .remove_participant(room, "py-pub")
        .await
        .expect("remove");
    peer.wait_line("DISCONNECTED", Duration::from_secs(10))
        .expect("python is disconnected");
    eventually("the participant to be gone", || async {
        let ps = admin.list_participants(room).await.ok()?;
        ps.iter().all(|p| p.identity != "py-pub").then_some(())
    })
    .await;

    admin.delete_room(room).await.expect("delete");
    let listed = admin.list_rooms(&[]).await.expect("list");
    assert!(
        listed.iter().all(|r| r.name != room),
        "deleted room still listed"
    );
}

#[tokio::test]
async fn server_errors_are_typed_and_carry_the_server_message() {
    let server = LiveKitServer::start().expect("start livekit-server");
    let admin = RoomAdmin::new(&server.ws_url(), &server.keys(), Duration::from_secs(5));

    match admin.delete_room("no-such-room").await {
        Err(AdminError::NotFound { operation, message }) => {
            assert!(operation.contains("no-such-room"), "{operation}");
            assert!(message.contains("room does not exist"), "{message}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }

    let wrong = RoomAdmin::new(
        &server.ws_url(),
        &Keys::new("devkey", "wrong"),
        Duration::from_secs(5),
    );
    match wrong.list_rooms(&[]).await {
        Err(AdminError::PermissionDenied { code, message, .. }) => {
            assert!(code.starts_with("401"), "{code}");
            assert!(message.contains("signature is invalid"), "{message}");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }

    let port = wavecast_testbed::free_tcp_port().unwrap();
    let nowhere = RoomAdmin::new(
        &format!("ws://127.0.0.1:{port}"),
        &server.keys(),
        Duration::from_secs(2),
    );
    match nowhere.list_rooms(&[]).await {
        Err(AdminError::Unreachable { detail, .. }) => {
            assert!(detail.contains("refused"), "{detail}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}
