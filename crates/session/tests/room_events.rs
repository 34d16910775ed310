//! The Room API against a real livekit-server, with the official Python SDK as the other
//! participant: events, roster, `next_track`, and explicit subscriptions.

mod common;

use std::time::{Duration, Instant};

use common::init_tracing;
use wavecast_session::{
    Credentials, DataPacketKind, DisconnectReason, Preset, RemoteTrackPublication, Room, RoomEvent,
    RoomEvents, RoomOptions, SubscribedTrack, TrackFilter, TrackKind,
};
use wavecast_testbed::LiveKitServer;
use wavecast_testbed::scripted::ScriptedPeer;

const WAIT: Duration = Duration::from_secs(20);

/// Read events until one named `name` passes `pred`; returns it and the names read before it.
async fn wait_for(
    events: &mut RoomEvents,
    name: &str,
    pred: impl Fn(&RoomEvent) -> bool,
) -> (RoomEvent, Vec<&'static str>) {
    let deadline = Instant::now() + WAIT;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(ev)) if ev.name() == name && pred(&ev) => return (ev, before),
            Ok(Some(ev)) => before.push(ev.name()),
            Ok(None) => panic!("events ended waiting for {name}; read {before:?}"),
            Err(_) => panic!("no {name} within {WAIT:?}; read {before:?}"),
        }
    }
}

fn publication_named<'a>(ev: &'a RoomEvent, name: &str) -> Option<&'a RemoteTrackPublication> {
    match ev {
        RoomEvent::TrackPublished { publication, .. }
        | RoomEvent::TrackUnpublished { publication, .. }
        | RoomEvent::TrackSubscribed { publication, .. }
        | RoomEvent::TrackUnsubscribed { publication, .. }
        | RoomEvent::TrackMuted { publication, .. }
        | RoomEvent::TrackUnmuted { publication, .. } => {
            (publication.name() == name).then_some(publication)
        }
        _ => None,
    }
}

/// Frames arrive on a subscribed track.
async fn receives_frames(track: &mut SubscribedTrack) {
    let first = tokio::time::timeout(Duration::from_secs(10), track.recv())
        .await
        .expect("a frame within 10 s")
        .expect("the track flows");
    assert!(!first.data.is_empty());
}

/// Poll the roster until `pred` holds.
async fn roster_until(room: &Room, what: &str, pred: impl Fn(&Room) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred(room) {
        assert!(
            Instant::now() < deadline,
            "roster never showed {what}: {:#?}",
            room.remote_participants()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn join(server: &LiveKitServer, room: &str, options_: RoomOptions) -> (Room, RoomEvents) {
    join_as(server, room, "viewer", options_)
        .await
        .expect("the room joins")
}

/// Join `room` as `identity` (broadcaster grants).
async fn join_as(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
    options: RoomOptions,
) -> Result<(Room, RoomEvents), wavecast_session::SessionError> {
    common::join_room(server, room, identity, options).await
}

/// Blocking peer commands off the runtime's workers.
async fn peer_do(peer: &mut ScriptedPeer, command: &str) {
    tokio::task::block_in_place(|| peer.send(command));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_participants_life_reads_as_room_events_and_roster() {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (room, mut events) = join(&server, "life", RoomOptions::default()).await;
    assert!(room.remote_participants().is_empty());

    let mut peer = tokio::task::block_in_place(|| ScriptedPeer::join(&server, "life", "alice"));
    let (ev, _) = wait_for(&mut events, "ParticipantConnected", |_| true).await;
    let RoomEvent::ParticipantConnected(p) = ev else {
        unreachable!()
    };
    assert_eq!(
        (p.identity().as_str(), p.sid().as_str()),
        ("alice", peer.sid.as_str())
    );
    assert!(room.remote_participant("alice").is_some());

    peer_do(&mut peer, "data hello room").await;
    let (ev, _) = wait_for(&mut events, "DataReceived", |_| true).await;
    let RoomEvent::DataReceived {
        payload,
        topic,
        kind,
        participant_identity,
        participant,
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(payload, b"hello room");
    assert_eq!(topic.as_deref(), Some("chat"));
    assert_eq!(kind, DataPacketKind::Reliable);
    assert_eq!(participant_identity, "alice");
    assert_eq!(participant.expect("a known sender").identity(), "alice");

    peer_do(&mut peer, "publish-audio mic 440").await;
    let (published, _) = wait_for(&mut events, "TrackPublished", |e| {
        publication_named(e, "mic").is_some()
    })
    .await;
    let mic = publication_named(&published, "mic").expect("mic").clone();
    assert_eq!(mic.kind(), Some(TrackKind::Audio));
    assert_eq!(mic.participant_identity(), "alice");
    let (subscribed, _) = wait_for(&mut events, "TrackSubscribed", |e| {
        publication_named(e, "mic").is_some()
    })
    .await;
    let RoomEvent::TrackSubscribed {
        mut track,
        participant,
        ..
    } = subscribed
    else {
        unreachable!()
    };
    assert_eq!(participant.identity(), "alice");
    receives_frames(&mut track).await;
    let alice = room.remote_participant("alice").expect("alice");
    assert!(alice.track_publications()[mic.sid()].is_subscribed());
    assert!(
        mic.is_subscribed(),
        "the event's publication handle stays current"
    );

    peer_do(&mut peer, "mute mic").await;
    wait_for(&mut events, "TrackMuted", |e| {
        publication_named(e, "mic").is_some()
    })
    .await;
    assert!(
        room.remote_participant("alice")
            .expect("alice")
            .track_publications()[mic.sid()]
        .is_muted()
    );
    peer_do(&mut peer, "unmute mic").await;
    wait_for(&mut events, "TrackUnmuted", |e| {
        publication_named(e, "mic").is_some()
    })
    .await;
    assert!(
        !room
            .remote_participant("alice")
            .expect("alice")
            .track_publications()[mic.sid()]
        .is_muted()
    );

    peer_do(&mut peer, "unpublish mic").await;
    wait_for(&mut events, "TrackUnsubscribed", |e| {
        publication_named(e, "mic").is_some()
    })
    .await;
    wait_for(&mut events, "TrackUnpublished", |e| {
        publication_named(e, "mic").is_some()
    })
    .await;
    assert!(
        room.remote_participant("alice")
            .expect("alice")
            .track_publications()
            .is_empty()
    );
    // The handle ends once the track is gone.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while track.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the unpublished track's handle did not end");

    peer_do(&mut peer, "leave").await;
    let (ev, _) = wait_for(&mut events, "ParticipantDisconnected", |_| true).await;
    let RoomEvent::ParticipantDisconnected(p) = ev else {
        unreachable!()
    };
    assert_eq!(p.identity(), "alice");
    assert!(room.remote_participants().is_empty());

    room.close().await;
    let (ev, _) = wait_for(&mut events, "Disconnected", |_| true).await;
    assert!(matches!(
        ev,
        RoomEvent::Disconnected {
            reason: DisconnectReason::ClientInitiated
        }
    ));
    assert!(
        events.recv().await.is_none(),
        "Disconnected is the last event"
    );
}

/// Regression: the engine dropped roster events when its reader was behind, and the apps'
/// participant lists went stale. The roster is state now; a reader that takes its time still
/// sees every roster change, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_event_reader_still_sees_a_correct_roster() {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (room, mut events) = join(&server, "slow", RoomOptions::default().event_capacity(2)).await;

    // The app reads one event every 300 ms; meanwhile the peer acts, paced by the roster (state
    // the room keeps, readable at any time) rather than by the events.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut seen, mut handles) = (Vec::new(), Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(Some(ev)) =
                    tokio::time::timeout(Duration::from_millis(50), events.recv()).await
                {
                    seen.push(describe(&ev));
                    if let RoomEvent::TrackSubscribed { track, .. } = ev {
                        handles.push(track);
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            (events, seen, handles)
        })
    };
    let mut peer = tokio::task::block_in_place(|| ScriptedPeer::join(&server, "slow", "bob"));
    let has = |name: &'static str| {
        move |room: &Room| {
            room.remote_participant("bob")
                .is_some_and(|b| b.track_publications().values().any(|t| t.name() == name))
        }
    };
    peer_do(&mut peer, "publish-audio a 440").await;
    peer_do(&mut peer, "publish-video v").await;
    roster_until(&room, "bob's `a`", has("a")).await;
    roster_until(&room, "bob's `v`", has("v")).await;
    peer_do(&mut peer, "mute a").await;
    peer_do(&mut peer, "unpublish v").await;

    // The roster is right whatever the reader did.
    roster_until(&room, "bob with a muted `a` only", |room| {
        room.remote_participant("bob").is_some_and(|b| {
            b.track_publications().len() == 1
                && b.track_publications()
                    .values()
                    .all(|t| t.name() == "a" && t.is_muted() && t.is_subscribed())
        })
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut events, mut seen, track_handles) = reader.await.expect("reader task");

    // And no roster event was dropped on the way: read the rest.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(300), events.recv()).await {
            Ok(Some(ev)) => seen.push(describe(&ev)),
            _ => break,
        }
    }
    let roster: Vec<&String> = seen
        .iter()
        .filter(|s| !s.starts_with("ActiveSpeakers") && !s.starts_with("ConnectionQuality"))
        .filter(|s| !s.starts_with("ConnectionState"))
        .filter(|s| !s.starts_with("TrackSubscribed") && !s.starts_with("TrackUnsubscribed"))
        .collect();
    // Each roster change exactly once (the server may announce `v` after muting `a`: its
    // updates follow media negotiation, not our command order)…
    let mut got: Vec<&str> = roster.iter().map(|s| s.as_str()).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        [
            "ParticipantConnected bob",
            "TrackMuted a",
            "TrackPublished a",
            "TrackPublished v",
            "TrackUnpublished v",
        ],
        "all: {seen:?}"
    );
    // …and in causal order.
    let at = |e: &str| roster.iter().position(|s| *s == e).expect("present");
    assert_eq!(at("ParticipantConnected bob"), 0, "{seen:?}");
    assert!(at("TrackPublished a") < at("TrackMuted a"), "{seen:?}");
    assert!(
        at("TrackPublished v") < at("TrackUnpublished v"),
        "{seen:?}"
    );
    assert!(seen.contains(&"TrackSubscribed a".to_owned()), "{seen:?}");
    // A subscription is always closed before its publication goes.
    if let Some(sub) = seen.iter().position(|s| s == "TrackSubscribed v") {
        let unsub = seen.iter().position(|s| s == "TrackUnsubscribed v");
        let unpub = seen.iter().position(|s| s == "TrackUnpublished v");
        assert!(
            unsub.is_some_and(|u| u > sub && Some(u) < unpub),
            "{seen:?}"
        );
    }
    let stats = room.stats();
    eprintln!(
        "dropped {} periodic events; peak queue {}",
        stats.dropped_events, stats.queue_peak
    );
    assert_eq!(
        stats.session_dropped_events, 0,
        "the session dropped nothing"
    );
    drop(track_handles);
    room.close().await;
}

fn describe(ev: &RoomEvent) -> String {
    match ev {
        RoomEvent::ParticipantConnected(p) | RoomEvent::ParticipantDisconnected(p) => {
            format!("{} {}", ev.name(), p.identity())
        }
        other => match publication_named_any(other) {
            Some(p) => format!("{} {}", other.name(), p.name()),
            None => other.name().to_owned(),
        },
    }
}

fn publication_named_any(ev: &RoomEvent) -> Option<&RemoteTrackPublication> {
    match ev {
        RoomEvent::TrackPublished { publication, .. }
        | RoomEvent::TrackUnpublished { publication, .. }
        | RoomEvent::TrackSubscribed { publication, .. }
        | RoomEvent::TrackUnsubscribed { publication, .. }
        | RoomEvent::TrackMuted { publication, .. }
        | RoomEvent::TrackUnmuted { publication, .. } => Some(publication),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn next_track_returns_the_first_track_that_matches() {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (room, mut events) = join(&server, "next", RoomOptions::default()).await;
    let mut peer = tokio::task::block_in_place(|| ScriptedPeer::join(&server, "next", "carol"));
    peer_do(&mut peer, "publish-video cam").await;
    peer_do(&mut peer, "publish-audio mic 440").await;
    let mut track = tokio::time::timeout(
        WAIT,
        events.next_track(&TrackFilter::audio().identity("carol")),
    )
    .await
    .expect("a track within the wait")
    .expect("the room is joined");
    assert_eq!(track.key().name, "mic");
    assert_eq!(track.kind(), TrackKind::Audio);
    receives_frames(&mut track).await;
    room.close().await;
}

/// A viewer that subscribes only to what it shows: auto-subscribe off, one publication asked
/// for, the other never arrives; unsubscribing ends the track.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_auto_subscribe_off_only_the_chosen_publication_arrives() {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (room, mut events) = join(
        &server,
        "manual",
        RoomOptions::default().auto_subscribe(false),
    )
    .await;
    let mut peer = tokio::task::block_in_place(|| ScriptedPeer::join(&server, "manual", "dave"));
    peer_do(&mut peer, "publish-audio mic 440").await;
    peer_do(&mut peer, "publish-video cam").await;
    roster_until(&room, "dave with two publications", |room| {
        room.remote_participant("dave")
            .is_some_and(|d| d.track_publications().len() == 2)
    })
    .await;
    let dave = room.remote_participant("dave").expect("dave");
    assert!(
        dave.track_publications()
            .values()
            .all(|t| !t.is_subscribed())
    );
    let mic = dave
        .publication_of_kind(TrackKind::Audio)
        .expect("mic")
        .clone();
    let cam = dave
        .publication_of_kind(TrackKind::Video)
        .expect("cam")
        .clone();

    room.subscribe(&mic).await.expect("subscribe");
    let (ev, before) = wait_for(&mut events, "TrackSubscribed", |_| true).await;
    assert!(!before.contains(&"TrackSubscribed"));
    let RoomEvent::TrackSubscribed {
        mut track,
        publication,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(
        publication.sid(),
        mic.sid(),
        "the first subscription is the one asked for"
    );
    receives_frames(&mut track).await;

    // The camera is never received.
    let quiet_until = Instant::now() + Duration::from_secs(3);
    while let Ok(Some(ev)) = tokio::time::timeout(
        quiet_until.saturating_duration_since(Instant::now()),
        events.recv(),
    )
    .await
    {
        assert!(
            !matches!(ev, RoomEvent::TrackSubscribed { .. }),
            "received {} though only the mic was asked for",
            describe(&ev)
        );
    }
    let dave = room.remote_participant("dave").expect("dave");
    assert!(dave.track_publications()[mic.sid()].is_subscribed());
    assert_eq!(dave.track_publications()[mic.sid()].wanted(), Some(true));
    assert!(!dave.track_publications()[cam.sid()].is_subscribed());

    room.unsubscribe(&mic).await.expect("unsubscribe");
    let (ev, _) = wait_for(&mut events, "TrackUnsubscribed", |_| true).await;
    assert_eq!(
        publication_named_any(&ev).map(|p| p.sid().as_str()),
        Some(mic.sid().as_str())
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while track.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the unsubscribed track's handle did not end");
    assert!(
        !room
            .remote_participant("dave")
            .expect("dave")
            .track_publications()[mic.sid()]
        .is_subscribed()
    );
    room.close().await;
}

/// The first join is retried per the reconnect policy: a server that comes up after the first
/// attempt is still joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_join_is_retried_until_the_server_is_up() {
    init_tracing();
    let mut server = LiveKitServer::start().expect("livekit-server starts");
    server.stop();
    let url = server.ws_url();
    let creds = Credentials::mint(server.keys(), "viewer", "late", Preset::Broadcaster);
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        server.restart().expect("server restarts");
        server
    });
    let policy = common::quick_policy(10);
    let (room, _events) = Room::connect_with(&url, creds, RoomOptions::default().reconnect(policy))
        .await
        .expect("joins once the server is up");
    assert!(room.stats().first_join_attempts > 1, "{:?}", room.stats());
    room.close().await;
    drop(starter.join());
}

/// What the local participant publishes is reported to us and seen by the other side; what the
/// server API changes (room metadata, a participant's name, metadata and attributes) arrives as
/// the SDKs' events, and the handles the app kept read the new state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_publications_and_server_side_changes_read_as_the_sdks_events() {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (publisher, mut pub_events) = join_as(&server, "changes", "erin", RoomOptions::default())
        .await
        .expect("the publisher joins");
    let (viewer, mut events) = join(&server, "changes", RoomOptions::default()).await;

    let me = publisher.local_participant();
    assert_eq!(me.identity(), "erin");
    assert!(me.sid().is_some_and(|s| s.starts_with("PA_")));
    let mut mic = me.publish_audio("mic", 1, 32_000).await.expect("publish");
    let (ev, _) = wait_for(&mut pub_events, "LocalTrackPublished", |_| true).await;
    let RoomEvent::LocalTrackPublished { publication } = ev else {
        unreachable!()
    };
    assert_eq!(publication.name(), "mic");
    assert_eq!(me.track_publications().len(), 1);
    mic.push(&[0i16; 960], Instant::now()).expect("encode");

    let (ev, _) = wait_for(&mut events, "TrackPublished", |e| {
        publication_named(e, "mic").is_some()
    })
    .await;
    let RoomEvent::TrackPublished { participant, .. } = ev else {
        unreachable!()
    };
    assert_eq!(participant.identity(), "erin");

    let admin = wavecast_session::admin::RoomAdmin::new(
        &server.ws_url(),
        &server.keys(),
        Duration::from_secs(5),
    );
    admin
        .update_room_metadata("changes", "{\"topic\":\"new\"}")
        .await
        .expect("room metadata");
    let (ev, _) = wait_for(&mut events, "RoomMetadataChanged", |_| true).await;
    let RoomEvent::RoomMetadataChanged { metadata, .. } = ev else {
        unreachable!()
    };
    assert_eq!(metadata, "{\"topic\":\"new\"}");
    assert_eq!(viewer.metadata(), metadata);

    admin
        .update_participant(
            "changes",
            "erin",
            "meta-2",
            [("role".to_owned(), "host".to_owned())].into(),
            "Erin",
        )
        .await
        .expect("participant update");
    let (ev, _) = wait_for(&mut events, "ParticipantAttributesChanged", |_| true).await;
    let RoomEvent::ParticipantAttributesChanged {
        changed_attributes, ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(changed_attributes["role"], "host");
    // The handle from the earlier event reads the new state.
    assert_eq!(participant.name(), "Erin");
    assert_eq!(participant.metadata(), "meta-2");
    assert_eq!(participant.attributes()["role"], "host");

    me.unpublish_track(mic.track()).await.expect("unpublish");
    wait_for(&mut pub_events, "LocalTrackUnpublished", |_| true).await;
    assert!(me.track_publications().is_empty());
    wait_for(&mut events, "TrackUnpublished", |e| {
        publication_named(e, "mic").is_some()
    })
    .await;
    publisher.close().await;
    viewer.close().await;
}
