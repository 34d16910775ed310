//! Ctrl-C (SIGINT) in the middle of a run: the report is still printed (marked interrupted,
//! exit 130) and every participant has left its room.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use wavecast_session::admin::RoomAdmin;
use wavecast_testbed::LiveKitServer;

#[test]
fn sigint_prints_the_report_and_leaves_every_room() {
    let server = LiveKitServer::start().expect("start livekit-server");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::command(dir.path());
    cmd.args(["--url", &server.ws_url()])
        .args(["--api-key", "devkey", "--api-secret", "secret"])
        .args(["--publishers", "1", "--subscribers", "3", "--rooms", "1"])
        .args(["--duration", "120s", "--size", "320x180", "--json"]);
    let started = common::Background::spawn("load-test", &mut cmd);
    let pid = started.pid();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = RoomAdmin::new(&server.ws_url(), &server.keys(), Duration::from_secs(5));
    let count = || {
        rt.block_on(admin.list_participants("load-0"))
            .map(|p| p.len())
            .unwrap_or(0)
    };
    // Everybody (1 publisher + 3 subscribers) is in the room, media flowing for a moment.
    let deadline = Instant::now() + Duration::from_secs(40);
    while count() < 4 {
        assert!(Instant::now() < deadline, "the load never filled the room");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));

    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let r = started.finish(Duration::from_secs(30));
    assert_eq!(r.code(), 130, "exit 130 after Ctrl-C\n{}", r.output());
    let report = common::report(&r);
    assert_eq!(report["interrupted"], true, "{}", r.stdout);
    assert_eq!(report["total"]["joined"].as_u64(), Some(3), "{}", r.stdout);
    assert!(
        report["total"]["frames_delivered"].as_u64().unwrap_or(0) > 0,
        "the report covers what ran: {}",
        r.stdout
    );
    assert!(r.stderr.contains("interrupted"), "{}", r.output());

    // Every participant left (a clean leave: the server drops them at once, no timeout).
    let deadline = Instant::now() + Duration::from_secs(5);
    while count() > 0 {
        assert!(
            Instant::now() < deadline,
            "participants still in the room after the run: {}",
            count()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
