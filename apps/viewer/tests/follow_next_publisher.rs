//! Without `--participant` the viewer watches the first publisher, stays with it while another
//! joins, and follows the other one when the first leaves.

use wavecast_testbed::apps as common;

use std::process::Command;
use std::time::Duration;

use wavecast_token::Preset;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

#[test]
fn follows_the_next_publisher_when_the_first_leaves() {
    let (server, broadcaster) = common::server_and_broadcaster(VIEWER);
    let url = server.ws_url();
    let caster = |id: &str, secs: &str| {
        let mut b = common::broadcaster_command(
            &broadcaster,
            &url,
            "follow",
            id,
            [320, 180, 30, 300],
            secs,
        );
        common::Background::spawn(id, &mut b)
    };
    let first = caster("first", "5s");
    std::thread::sleep(Duration::from_millis(1500));
    let (_dir, stats) = common::temp_path("stats.json");
    // The viewer joins with a ready token (no key or secret).
    let token = server.token("watcher", "follow", Preset::Viewer);
    let mut v = Command::new(VIEWER);
    v.args(["--url", &url, "--token", &token])
        .args([
            "--headless",
            "--frames",
            "150",
            "--timeout",
            "40s",
            "--size",
            "320x180",
        ])
        .arg("--stats")
        .arg(&stats);
    let viewer = common::Background::spawn("viewer", &mut v);
    std::thread::sleep(Duration::from_millis(1000));
    let second = caster("second", "30s");
    let r = viewer.finish(Duration::from_secs(60));
    let first = first.finish(Duration::from_secs(5));
    drop(second);
    common::assert_success_beside(&r, "first", &first);
    assert!(r.stderr.contains("watching first"), "{}", r.stderr);
    assert!(
        r.stderr.contains("the watched participant left"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("watching second"), "{}", r.stderr);

    let s = common::json(&stats);
    let streams = s["streams"]["video"].as_array().unwrap();
    let who: Vec<&str> = streams
        .iter()
        .map(|v| v["participant"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["first", "second"], "{s}");
    for v in streams {
        assert!(v["frames_decoded"].as_u64().unwrap() >= 20, "{v}");
        assert!(v["received_pct"].as_f64().unwrap() >= 90.0, "{v}");
    }
}
