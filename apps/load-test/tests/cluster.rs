//! The short CI load against a 2-node cluster (test bed: two livekit-server nodes sharing a
//! Redis), joins alternating between the nodes within each of 2 rooms, so media crosses nodes.

mod common;

use std::time::Duration;

use wavecast_testbed::Cluster;

#[test]
fn short_load_across_a_two_node_cluster() {
    let cluster = Cluster::start(2).expect("start the cluster");
    let (a, b) = (cluster.node(0), cluster.node(1));
    let dir = tempfile::tempdir().unwrap();
    let r = common::run_ok(
        common::command(dir.path())
            .args(["--url", &a.ws_url(), "--url", &b.ws_url(), "--rooms", "2"])
            .args(common::short_load_args()),
        Duration::from_secs(90),
    );
    let report = common::report(&r);
    common::assert_healthy(&report, 6);
    // Both nodes were used, and in each room by more than one member.
    let subs = report["subscribers"].as_array().unwrap();
    for room in ["load-0", "load-1"] {
        let urls: std::collections::HashSet<&str> = subs
            .iter()
            .chain(report["publishers"].as_array().unwrap())
            .filter(|m| m["room"] == room)
            .filter_map(|m| m["url"].as_str())
            .collect();
        assert_eq!(urls.len(), 2, "room {room} spans both nodes");
    }
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&report["total"]).unwrap()
    );
}
