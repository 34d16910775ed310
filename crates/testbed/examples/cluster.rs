//! A 2-node LiveKit cluster (two livekit-server nodes sharing a private Redis) on free loopback
//! ports, for trying things against by hand. `just cluster` runs it; Ctrl-C stops everything.
//!
//! ```text
//! cargo run -p wavecast-testbed --example cluster -- [NODES]
//! ```

use wavecast_testbed::{API_KEY, API_SECRET, Cluster};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nodes = match std::env::args().nth(1) {
        None => 2,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=8).contains(&n) => n,
            _ => return Err(format!("NODES must be a number from 1 to 8, got {n:?}").into()),
        },
    };
    let cluster = Cluster::start(nodes)?;
    println!(
        "LiveKit cluster ready: {nodes} nodes sharing redis at {}",
        cluster.redis().addr()
    );
    for (i, node) in cluster.nodes().iter().enumerate() {
        println!(
            "  node {}: {}  (media UDP 127.0.0.1:{})",
            (b'A' + i as u8) as char,
            node.ws_url(),
            node.udp_port()
        );
    }
    println!("  key:    {API_KEY}");
    println!("  secret: {API_SECRET}");
    println!("Clients may join any node; a room lives on one node and the others relay to it.");
    println!("Ctrl-C stops the cluster.");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    drop(cluster);
    println!("cluster stopped");
    Ok(())
}
