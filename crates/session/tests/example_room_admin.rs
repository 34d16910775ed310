//! The room-admin example against a real livekit-server: it creates a room, a guest joins it
//! through `Room` and publishes through its `LocalParticipant`, the server API lists, mutes and
//! removes the guest (whose room then ends as removed by the server), and the room is deleted.

mod common;

use std::time::Duration;

use wavecast_testbed::{API_KEY, API_SECRET, LiveKitServer};

#[test]
fn the_room_admin_example_mutes_and_removes_a_guest_who_sees_it() {
    common::init_tracing();
    let bin = common::example_binary("room_admin");
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let args = [url.as_str(), API_KEY, API_SECRET, "admin-example"];
    let stdout = common::run_example(&bin, &args, Duration::from_secs(60));
    for line in [
        "created admin-example (RM_",
        "guest joined as guest and publishes TR_",
        "participant guest with 1 tracks",
        "  muted microphone (TR_",
        "  removed guest",
        "guest's room ended: removed by the server",
        "deleted admin-example",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}
