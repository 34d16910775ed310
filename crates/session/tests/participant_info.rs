//! Setting our own name, metadata and attributes against a real livekit-server, seen by
//! another wavecast room; and the token without `canUpdateOwnMetadata` refused with a typed
//! error.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::init_tracing;
use wavecast_session::{
    Credentials, EngineError, Participant, RequestRefusal, Room, RoomEvent, RoomEvents,
    RoomOptions, SessionError,
};
use wavecast_testbed::LiveKitServer;
use wavecast_token::{Preset, TokenBuilder};

const WAIT: Duration = Duration::from_secs(20);

/// Read events until one named `name` passes `pred`.
async fn wait_for(
    events: &mut RoomEvents,
    name: &str,
    pred: impl Fn(&RoomEvent) -> bool,
) -> RoomEvent {
    let deadline = Instant::now() + WAIT;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(ev)) if ev.name() == name && pred(&ev) => return ev,
            Ok(Some(ev)) => before.push(ev.name()),
            Ok(None) => panic!("events ended waiting for {name}; read {before:?}"),
            Err(_) => panic!("no {name} within {WAIT:?}; read {before:?}"),
        }
    }
}

fn whose(ev: &RoomEvent) -> Option<&Participant> {
    match ev {
        RoomEvent::ParticipantNameChanged { participant, .. }
        | RoomEvent::ParticipantMetadataChanged { participant, .. }
        | RoomEvent::ParticipantAttributesChanged { participant, .. } => Some(participant),
        _ => None,
    }
}

/// Join as a broadcaster that may (or may not) update its own metadata.
async fn join(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
    can_update: bool,
) -> (Room, RoomEvents) {
    let builder = TokenBuilder::new(identity)
        .room(room)
        .preset(Preset::Broadcaster)
        .can_update_own_metadata(can_update);
    let credentials = Credentials::Mint {
        keys: server.keys(),
        builder: Box::new(builder),
    };
    Room::connect_with(&server.ws_url(), credentials, RoomOptions::default())
        .await
        .expect("the room joins")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn name_metadata_and_attributes_set_on_one_room_are_seen_on_the_other() {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (alice, mut alice_events) = join(&server, "info", "alice", true).await;
    let (bob, mut bob_events) = join(&server, "info", "bob", false).await;
    wait_for(&mut alice_events, "ParticipantConnected", |_| true).await;
    let me = alice.local_participant();

    me.set_name("Alice A.").await.expect("set_name");
    assert_eq!(
        me.name(),
        "Alice A.",
        "read back as soon as the call returns"
    );
    let ev = wait_for(&mut alice_events, "ParticipantNameChanged", |_| true).await;
    let RoomEvent::ParticipantNameChanged {
        participant,
        old_name,
        name,
    } = ev
    else {
        unreachable!()
    };
    assert!(participant.is_local());
    assert_eq!((old_name.as_str(), name.as_str()), ("", "Alice A."));
    let ev = wait_for(&mut bob_events, "ParticipantNameChanged", |_| true).await;
    let seen = whose(&ev).and_then(Participant::as_remote).expect("remote");
    assert_eq!(seen.identity(), "alice");
    assert_eq!(seen.name(), "Alice A.");

    me.set_metadata("{\"seat\":3}").await.expect("set_metadata");
    assert_eq!(me.metadata(), "{\"seat\":3}");
    let ev = wait_for(&mut bob_events, "ParticipantMetadataChanged", |_| true).await;
    let RoomEvent::ParticipantMetadataChanged { metadata, .. } = &ev else {
        unreachable!()
    };
    assert_eq!(metadata, "{\"seat\":3}");

    let attrs: HashMap<String, String> = [("lk.agent.state", "listening"), ("role", "host")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    me.set_attributes(attrs).await.expect("set_attributes");
    assert_eq!(me.attributes()["role"], "host");
    let ev = wait_for(&mut bob_events, "ParticipantAttributesChanged", |_| true).await;
    let RoomEvent::ParticipantAttributesChanged {
        changed_attributes, ..
    } = &ev
    else {
        unreachable!()
    };
    assert_eq!(changed_attributes["lk.agent.state"], "listening");
    assert_eq!(changed_attributes["role"], "host");

    // A partial update keeps the other keys; an empty value removes a key.
    let attrs: HashMap<String, String> = [("role", ""), ("lk.agent.state", "thinking")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    me.set_attributes(attrs)
        .await
        .expect("set_attributes again");
    assert_eq!(
        me.attributes(),
        [("lk.agent.state".to_owned(), "thinking".to_owned())].into()
    );
    let ev = wait_for(&mut bob_events, "ParticipantAttributesChanged", |e| {
        whose(e).is_some_and(|p| {
            p.attributes().get("lk.agent.state").map(String::as_str) == Some("thinking")
        })
    })
    .await;
    let RoomEvent::ParticipantAttributesChanged {
        changed_attributes, ..
    } = &ev
    else {
        unreachable!()
    };
    assert_eq!(changed_attributes["role"], "", "removed keys read empty");
    let alice_seen = bob
        .remote_participant("alice")
        .expect("alice in bob's roster");
    assert_eq!(alice_seen.name(), "Alice A.");
    assert_eq!(alice_seen.metadata(), "{\"seat\":3}");
    assert_eq!(
        alice_seen.attributes(),
        [("lk.agent.state".to_owned(), "thinking".to_owned())].into()
    );

    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_without_the_grant_is_refused_with_a_typed_error() {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    // The broadcaster preset alone does not grant canUpdateOwnMetadata.
    let (carol, _events) = join(&server, "denied", "carol", false).await;
    let me = carol.local_participant();
    for result in [
        me.set_name("Carol").await,
        me.set_metadata("m").await,
        me.set_attributes([("k".to_owned(), "v".to_owned())].into())
            .await,
    ] {
        match result {
            Err(SessionError::Engine {
                source:
                    EngineError::RequestRefused {
                        reason: RequestRefusal::NotAllowed,
                        ..
                    },
                ..
            }) => {}
            other => panic!("expected a NotAllowed refusal, got {other:?}"),
        }
    }
    assert_eq!(me.name(), "", "nothing changed");
    assert!(me.attributes().is_empty());
    carol.close().await;
}
