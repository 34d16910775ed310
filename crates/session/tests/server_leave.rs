//! The server's `Leave` is followed: when an admin deletes the room or removes the participant
//! (action DISCONNECT), the session ends with the server's reason and never rejoins.

mod common;

use std::time::{Duration, Instant};

use wavecast_session::admin::RoomAdmin;
use wavecast_session::internals::{EndReason, Session, SessionState};
use wavecast_testbed::LiveKitServer;

/// Connect, wait for Connected, run `remove`, and return the end reason and the states seen.
async fn removed_by(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
    remove: impl AsyncFnOnce(&RoomAdmin),
) -> (EndReason, Vec<SessionState>, Session) {
    let options = common::options(server, room, identity).reconnect(common::quick_policy(10));
    let (session, events) = common::connect(options).await;
    let _drain = common::drain(events);
    let states = common::record_states(&session);
    common::wait_state(&session, Duration::from_secs(10), |s| {
        *s == SessionState::Connected
    })
    .await;
    let admin = RoomAdmin::new(&server.ws_url(), &server.keys(), Duration::from_secs(5));
    let t0 = Instant::now();
    remove(&admin).await;
    let end = common::wait_state(&session, Duration::from_secs(10), |s| {
        matches!(s, SessionState::Disconnected { .. })
    })
    .await;
    eprintln!(
        "{identity}: ended {:?} after the admin call: {end}",
        t0.elapsed()
    );
    let SessionState::Disconnected { reason } = end else {
        unreachable!("waited for Disconnected")
    };
    let states = states.await.expect("state recorder");
    (reason, states, session)
}

/// Both scenarios on one server, one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_leave_ends_the_session_without_rejoin() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server starts");
    participant_removed_ends_the_session_without_rejoin(&server).await;
    room_deleted_ends_the_session_without_rejoin(&server).await;
}

async fn room_deleted_ends_the_session_without_rejoin(server: &LiveKitServer) {
    let room = "to-delete";
    let (reason, states, session) = removed_by(server, room, "doomed", async |admin| {
        admin.delete_room(room).await.expect("room deleted");
    })
    .await;
    assert_eq!(
        reason,
        EndReason::RemovedByServer {
            reason: "ROOM_DELETED".into()
        },
        "states: {states:?}"
    );
    assert!(
        !states
            .iter()
            .any(|s| matches!(s, SessionState::Reconnecting { .. })),
        "never tried to rejoin: {states:?}"
    );
    assert_eq!(session.stats().join_attempts, 1, "{:?}", session.stats());
    // And it stays away: a rejoin would re-create the deleted room (auto-create is on).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let admin = RoomAdmin::new(&server.ws_url(), &server.keys(), Duration::from_secs(5));
    let rooms = admin.list_rooms(&[]).await.expect("list rooms");
    assert!(
        rooms.iter().all(|r| r.name != room),
        "room came back: {rooms:?}"
    );
}

async fn participant_removed_ends_the_session_without_rejoin(server: &LiveKitServer) {
    let room = "remove-one";
    let (reason, states, session) = removed_by(server, room, "kicked", async |admin| {
        admin
            .remove_participant(room, "kicked")
            .await
            .expect("participant removed");
    })
    .await;
    assert_eq!(
        reason,
        EndReason::RemovedByServer {
            reason: "PARTICIPANT_REMOVED".into()
        },
        "states: {states:?}"
    );
    assert!(
        !states
            .iter()
            .any(|s| matches!(s, SessionState::Reconnecting { .. })),
        "never tried to rejoin: {states:?}"
    );
    assert_eq!(session.stats().join_attempts, 1, "{:?}", session.stats());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let admin = RoomAdmin::new(&server.ws_url(), &server.keys(), Duration::from_secs(5));
    let left = admin
        .list_participants(room)
        .await
        .expect("the room outlives its removed participant");
    assert!(left.iter().all(|p| p.identity != "kicked"), "{left:?}");
}
