//! The data plane side by side with the official Python SDK, in one run on one machine: RPC
//! round trips and data-stream throughput for wavecast → Python, Python → wavecast and
//! Python → Python (the official SDK with itself, the baseline), against a livekit-server
//! this example starts on loopback (the test bed's pinned one, `just setup`).
//!
//! `cargo run --release -p wavecast-session --example data_bench [-- CALLS CHATS MEGABYTES]`
//! (defaults 500 calls, 1000 chat messages, 5 MB). Figures go to docs/PERFORMANCE.md, "Data
//! plane: RPC and data streams".
//!
//! - RPC: `CALLS` sequential `echo` calls with a short payload; p50 and p95 of the round trip
//!   as each caller measures it.
//! - Chat: `CHATS` `lk.chat` text messages sent one after another; the time from the first
//!   send until the receiver has read them all.
//! - Bytes: one byte stream of `MEGABYTES` MB (`send_bytes` / the SDK's `send_file`); the time
//!   until the receiver has it whole (and its sha256 matches).

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use wavecast_session::{
    Credentials, Preset, Room, RoomOptions, StreamByteOptions, StreamTextOptions, TOPIC_CHAT,
};
use wavecast_testbed::LiveKitServer;
use wavecast_testbed::scripted::{LinePeer, ScriptedPeer};

const ROOM: &str = "bench";
const WAIT: Duration = Duration::from_secs(300);

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map(|a| {
            a.parse()
                .unwrap_or_else(|_| panic!("argument {n}: {a:?} is not a number"))
        })
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Run a peer's command (blocking) from the runtime.
fn run(peer: &mut ScriptedPeer, command: &str, prefix: &str) -> String {
    tokio::task::block_in_place(|| peer.run(command, prefix, WAIT))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (calls, chats, megabytes) = (arg(1, 500), arg(2, 1000), arg(3, 5));
    let server = LiveKitServer::start()?;
    let credentials = Credentials::mint(server.keys(), "rusty", ROOM, Preset::Broadcaster);
    let (room, _events) =
        Room::connect_with(&server.ws_url(), credentials, RoomOptions::default()).await?;
    let me = room.local_participant().clone();
    me.register_rpc_method("echo", |call| async move { Ok(call.payload) });
    // Chat and files arriving here: (count, bytes of the last file).
    let (chat_tx, mut chat_rx) = mpsc::unbounded_channel::<()>();
    room.register_text_stream_handler(TOPIC_CHAT, move |reader, _| {
        let tx = chat_tx.clone();
        tokio::spawn(async move {
            if reader.read_all().await.is_ok() {
                let _ = tx.send(());
            }
        });
    })?;
    let (file_tx, mut file_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    room.register_byte_stream_handler("files", move |reader, _| {
        let tx = file_tx.clone();
        tokio::spawn(async move {
            if let Ok(bytes) = reader.read_all().await {
                let _ = tx.send(bytes);
            }
        });
    })?;

    let join = |script: &str, identity: &str| {
        tokio::task::block_in_place(|| ScriptedPeer::join_script(&server, script, ROOM, identity))
    };
    let (mut rpc_a, rpc_b) = (join("rpc_peer.py", "rpc_a"), join("rpc_peer.py", "rpc_b"));
    let (mut st_a, mut st_b) = (
        join("stream_peer.py", "st_a"),
        join("stream_peer.py", "st_b"),
    );
    let deadline = Instant::now() + WAIT;
    for who in ["rpc_a", "rpc_b", "st_a", "st_b"] {
        while room.remote_participant(who).is_none() {
            assert!(Instant::now() < deadline, "{who} never joined");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!("data plane, one run: {calls} RPC calls, {chats} chat messages, {megabytes} MB");

    // RPC round trips.
    let mut rtts = Vec::with_capacity(calls);
    for i in 0..calls {
        let t0 = Instant::now();
        me.perform_rpc(
            "rpc_a",
            "echo",
            &format!("ping {i}"),
            Duration::from_secs(10),
        )
        .await?;
        rtts.push(t0.elapsed());
    }
    rtts.sort();
    let from_python = run(&mut rpc_a, &format!("bench rusty {calls}"), "BENCH");
    let python_only = run(&mut rpc_a, &format!("bench rpc_b {calls}"), "BENCH");
    println!("RPC echo round trip (ms)           p50     p95");
    println!(
        "  wavecast -> Python            {:7.2} {:7.2}",
        ms(percentile(&rtts, 0.5)),
        ms(percentile(&rtts, 0.95))
    );
    for (what, line) in [
        ("Python -> wavecast  ", &from_python),
        ("Python -> Python    ", &python_only),
    ] {
        let f: Vec<f64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        println!("  {what}          {:7.2} {:7.2}", f[0], f[1]);
    }
    drop((rpc_a, rpc_b));

    // Chat, each pair on its own: Python → Python, Python → wavecast, wavecast → Python.
    println!("{chats} chat messages, until all were read     s   msg/s");
    let t0 = Instant::now();
    tokio::task::block_in_place(|| st_a.write_line(&format!("send-chat {chats} st_b")));
    run(&mut st_b, &format!("chat-report {chats}"), "CHAT");
    let python_only = t0.elapsed();
    tokio::task::block_in_place(|| st_a.expect_line("OK send-chat", WAIT));
    let t0 = Instant::now();
    tokio::task::block_in_place(|| st_a.write_line(&format!("send-chat {chats} rusty")));
    for _ in 0..chats {
        tokio::time::timeout(WAIT, chat_rx.recv())
            .await?
            .ok_or("chat handler gone")?;
    }
    let to_wavecast = t0.elapsed();
    tokio::task::block_in_place(|| st_a.expect_line("OK send-chat", WAIT));
    let t0 = Instant::now();
    for i in 0..chats {
        let mut options = StreamTextOptions::topic(TOPIC_CHAT);
        options.destination_identities = vec!["st_b".into()];
        me.send_text(&format!("rs {i}"), options).await?;
    }
    // st_b has read the first batch and now ours.
    run(&mut st_b, &format!("chat-report {}", 2 * chats), "CHAT");
    let from_wavecast = t0.elapsed();
    for (what, d) in [
        ("wavecast -> Python", from_wavecast),
        ("Python -> wavecast", to_wavecast),
        ("Python -> Python  ", python_only),
    ] {
        println!(
            "  {what}                    {:6.3} {:7.0}",
            d.as_secs_f64(),
            chats as f64 / d.as_secs_f64()
        );
    }

    // Bytes, each pair on its own.
    let size = megabytes * 1_000_000;
    println!("one {megabytes} MB byte stream, until read whole        s    MB/s");
    let t0 = Instant::now();
    let sent = run(&mut st_a, &format!("send-file {size} 7 st_b"), "SENT");
    let line = tokio::task::block_in_place(|| st_b.expect_line("BYTES", WAIT));
    let python_only = t0.elapsed();
    assert!(line.ends_with(&sent), "st_b read it whole: {line}");
    let t0 = Instant::now();
    let sent = run(&mut st_a, &format!("send-file {size} 8 rusty"), "SENT");
    let got = tokio::time::timeout(WAIT, file_rx.recv())
        .await?
        .ok_or("file handler gone")?;
    let to_wavecast = t0.elapsed();
    assert_eq!(
        format!("{:x}", Sha256::digest(&got)),
        sent,
        "the file arrived whole"
    );
    let blob: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect();
    let t0 = Instant::now();
    let mut options = StreamByteOptions::topic("files");
    options.destination_identities = vec!["st_b".into()];
    me.send_bytes(&blob, options).await?;
    let line = tokio::task::block_in_place(|| st_b.expect_line("BYTES", WAIT));
    let from_wavecast = t0.elapsed();
    assert!(
        line.ends_with(&format!("{:x}", Sha256::digest(&blob))),
        "st_b read ours whole: {line}"
    );
    for (what, d) in [
        ("wavecast -> Python", from_wavecast),
        ("Python -> wavecast", to_wavecast),
        ("Python -> Python  ", python_only),
    ] {
        println!(
            "  {what}                    {:6.3} {:7.1}",
            d.as_secs_f64(),
            megabytes as f64 / d.as_secs_f64()
        );
    }
    let stats = room.data_stream_stats();
    println!(
        "wavecast received: {} streams ({} single-packet, {} compressed), peak {} bytes unread",
        stats.opened, stats.single_packet, stats.compressed, stats.buffered_peak
    );
    drop((st_a, st_b));
    room.close().await;
    Ok(())
}
