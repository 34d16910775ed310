//! Ctrl-C (SIGINT) in the middle of a run: the report is still printed (marked interrupted,
//! exit 130) and every participant has left its room.

mod common;

use std::time::{Duration, Instant};

use wavecast_server_api::RoomAdmin;
use wavecast_testbed::LiveKitServer;
use wavecast_testbed::apps::send_signal;

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

    let room = Occupancy::new(&server);
    // Everybody (1 publisher + 3 subscribers) is in the room, media flowing for a moment.
    room.wait(
        Duration::from_secs(40),
        "the load never filled the room",
        |n| n >= 4,
    );
    std::thread::sleep(Duration::from_secs(3));

    send_signal(pid, "INT");
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
    room.wait(
        Duration::from_secs(5),
        "participants still in the room after the run",
        |n| n == 0,
    );
}

/// Ctrl-C while subscribers are still joining (a ramp of 4 joins per second): the joins in
/// flight are finished and left or abandoned, the ones not started are reported as such, every
/// joined participant leaves, and the report is printed.
#[test]
fn sigint_during_the_ramp_leaves_every_room() {
    let server = LiveKitServer::start().expect("start livekit-server");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::command(dir.path());
    cmd.args(["--url", &server.ws_url()])
        .args(["--api-key", "devkey", "--api-secret", "secret"])
        .args(["--publishers", "1", "--subscribers", "40", "--rooms", "1"])
        .args([
            "--ramp",
            "4",
            "--duration",
            "120s",
            "--size",
            "320x180",
            "--json",
        ]);
    let started = common::Background::spawn("load-test", &mut cmd);
    let pid = started.pid();

    let room = Occupancy::new(&server);
    // The publisher and a few subscribers are in; most of the 40 are still to come (10 s ramp).
    room.wait(Duration::from_secs(40), "the ramp never started", |n| {
        n >= 4
    });
    send_signal(pid, "INT");
    let r = started.finish(Duration::from_secs(30));
    assert_eq!(r.code(), 130, "exit 130 after Ctrl-C\n{}", r.output());
    let report = common::report(&r);
    assert_eq!(report["interrupted"], true, "{}", r.stdout);
    let total = &report["total"];
    assert_eq!(total["subscribers"].as_u64(), Some(40), "{}", r.stdout);
    let joined = total["joined"].as_u64().unwrap_or(0);
    assert!(
        (2..40).contains(&joined),
        "stopped during the ramp: {joined} of 40 joined\n{}",
        r.stdout
    );
    let rows = report["subscribers"]
        .as_array()
        .expect("per-subscriber rows");
    assert_eq!(rows.len(), 40);
    let mut outcomes: Vec<&str> = rows
        .iter()
        .map(|s| s["error"].as_str().unwrap_or("joined"))
        .collect();
    outcomes.dedup();
    eprintln!("{joined} joined; outcomes in join order: {outcomes:?}");
    assert!(
        rows.iter().any(|s| s["error"]
            .as_str()
            .is_some_and(|e| e.contains("interrupted"))),
        "subscribers never started are reported as such: {}",
        r.stdout
    );
    assert!(r.stderr.contains("interrupted"), "{}", r.output());

    // Every participant that joined — including joins that were in flight — left at once.
    room.wait(
        Duration::from_secs(5),
        "participants still in the room after the run",
        |n| n == 0,
    );
}

/// The participants of the load test's first room (`load-0`), through the server's admin API.
struct Occupancy {
    rt: tokio::runtime::Runtime,
    admin: RoomAdmin,
}

impl Occupancy {
    fn new(server: &LiveKitServer) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let admin = RoomAdmin::new(&server.ws_url(), &server.keys(), Duration::from_secs(5));
        Self { rt, admin }
    }

    /// Participants in the room now (0 when the room does not exist).
    fn count(&self) -> usize {
        self.rt
            .block_on(self.admin.list_participants("load-0"))
            .map(|p| p.len())
            .unwrap_or(0)
    }

    /// Waits up to `timeout` for a count that is `done`; fails with `what` and the count.
    fn wait(&self, timeout: Duration, what: &str, done: impl Fn(usize) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.count();
            if done(n) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {n} participants");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
