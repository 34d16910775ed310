//! A 2-node LiveKit cluster (two livekit-server nodes sharing a private Redis, from the test bed):
//! the broadcaster app publishes on node A, the viewer app watches from node B and receives its
//! media (the room is hosted by one node; the other relays the signalling), the admin CLI lists
//! the room from either node, and nothing in the cluster listens on a non-loopback address.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wavecast_testbed::{API_KEY, API_SECRET, Cluster, LiveKitServer, listening_sockets};
use wavecast_tests::app_binary;

const ROOM: &str = "across-nodes";

/// A child process killed on drop (so a failed assertion leaves nothing running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn join_args(node: &LiveKitServer, identity: &str) -> Vec<String> {
    [
        "--url",
        &node.ws_url(),
        "--room",
        ROOM,
        "--identity",
        identity,
        "--api-key",
        API_KEY,
        "--api-secret",
        API_SECRET,
        "--max-attempts",
        "2",
        "--retry-delay",
        "200ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `wavecast room list --json` against one node (run in an empty directory, so no config file
/// is picked up).
fn room_list(wavecast: &Path, node: &LiveKitServer, cwd: &Path) -> serde_json::Value {
    let out = Command::new(wavecast)
        .args(["--url", &node.ws_url(), "--api-key", API_KEY])
        .args(["--api-secret", API_SECRET, "--json", "room", "list"])
        .current_dir(cwd)
        .env_remove("LIVEKIT_URL")
        .env_remove("LIVEKIT_API_KEY")
        .env_remove("LIVEKIT_API_SECRET")
        .output()
        .expect("run wavecast");
    assert!(
        out.status.success(),
        "wavecast room list on {} failed: {}",
        node.ws_url(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("room list --json prints JSON")
}

fn listed_participants(rooms: &serde_json::Value) -> Option<u64> {
    rooms
        .as_array()?
        .iter()
        .find(|r| r["name"] == ROOM)?
        .get("num_participants")?
        .as_u64()
}

fn output_of(mut child: Running) -> String {
    let _ = child.0.kill();
    let _ = child.0.wait();
    let mut s = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

#[test]
fn broadcaster_on_node_a_reaches_a_viewer_on_node_b() {
    let broadcaster = app_binary("wavecast-broadcaster", "broadcaster");
    let viewer = app_binary("wavecast-viewer", "viewer");
    let wavecast = app_binary("wavecast", "wavecast");
    let cluster = Cluster::start(2).expect("start redis and two livekit-server nodes");
    let (a, b) = (cluster.node(0), cluster.node(1));
    let dir = tempfile::tempdir().unwrap();

    let caster = Running(
        Command::new(&broadcaster)
            .args(join_args(a, "caster"))
            .args(["--width", "320", "--height", "180", "--fps", "30"])
            .args(["--bitrate", "300", "--duration", "40s", "--no-stdin"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the broadcaster"),
    );

    // The admin CLI sees the room, with the broadcaster in it, from either node.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut on_a, mut on_b) = (None, None);
    while Instant::now() < deadline {
        on_a = listed_participants(&room_list(&wavecast, a, dir.path()));
        on_b = listed_participants(&room_list(&wavecast, b, dir.path()));
        if on_a >= Some(1) && on_b >= Some(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if on_a < Some(1) || on_b < Some(1) {
        panic!(
            "room {ROOM} not listed with its broadcaster from both nodes: A {on_a:?}, B {on_b:?}\n\
             --- broadcaster\n{}",
            output_of(caster)
        );
    }

    // The viewer joins through node B and decodes the broadcaster's stamped video.
    let dump = dir.path().join("dump");
    let watch = Command::new(&viewer)
        .args(join_args(b, "watcher"))
        .args(["--headless", "--frames", "60", "--timeout", "40s"])
        .arg("--dump")
        .arg(&dump)
        .args(["--participant", "caster", "--audio-out", "none"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run the viewer");
    let stderr = String::from_utf8_lossy(&watch.stderr);
    assert!(
        watch.status.success(),
        "viewer on node B failed ({})\n{stderr}\n--- broadcaster\n{}",
        watch.status,
        output_of(caster)
    );
    let stats: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dump.join("stats.json")).expect("viewer wrote stats.json"),
    )
    .expect("stats.json is JSON");
    let video = &stats["video"];
    assert!(
        video["frames_received"].as_u64().unwrap_or(0) >= 60,
        "{video}"
    );
    let pct = video["received_pct"].as_f64().expect("stamped frames");
    assert!(pct >= 90.0, "only {pct:.1}% of the frames crossed: {video}");
    let p50 = video["latency_ms"]["p50_ms"].as_f64().expect("latency");
    assert!(p50 > 0.0 && p50 < 2000.0, "glass-to-glass p50 {p50} ms");
    let audio_packets = stats["audio"]["packets"].as_u64().unwrap_or(0);
    assert!(audio_packets > 0, "no audio crossed: {stats}");

    // Exactly one node hosts the room: LiveKit starts every participant's RTC session on the
    // room's node, whichever node the participant connected to (that one relays the signal).
    let hosts: Vec<usize> = cluster
        .nodes()
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            n.log()
                .lines()
                .any(|l| l.contains(ROOM) && l.contains("starting RTC session"))
        })
        .map(|(i, _)| i)
        .collect();
    eprintln!("room {ROOM} hosted by node(s) {hosts:?}; stats {video}");
    assert_eq!(
        hosts.len(),
        1,
        "one node hosts the room (the other relays its participants' signalling)"
    );

    // Nothing in the cluster listens beyond loopback.
    for pid in cluster.pids() {
        for s in listening_sockets(pid).expect("read /proc") {
            assert!(s.addr.ip().is_loopback(), "process {pid} listens on {s}");
        }
    }
    drop(caster);
}
