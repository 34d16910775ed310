//! Data streams against a real livekit-server: between two wavecast rooms (chat in order, a
//! byte stream whole, an incremental writer, a limit), and both ways with the official Python
//! SDK and with Chromium running livekit-client (1000 `lk.chat` messages in order, none lost;
//! a 5 MB file with the same sha256; attributes).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::init_tracing;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use wavecast_session::{
    DataStreamLimits, Room, RoomEvent, RoomEvents, RoomOptions, StreamByteOptions, StreamLimit,
    StreamTextOptions, TOPIC_CHAT,
};
use wavecast_testbed::LiveKitServer;
use wavecast_testbed::browser::BrowserPeer;
use wavecast_testbed::scripted::{LinePeer, ScriptedPeer};
use wavecast_token::{Preset, TokenBuilder};

const WAIT: Duration = Duration::from_secs(60);

/// The Python and Chromium tests and the close test run one at a time: the close test measures
/// what a loaded server still forwards, the others load it most.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn join(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
    o: RoomOptions,
) -> (Room, RoomEvents) {
    common::join_room(server, room, identity, o)
        .await
        .expect("the room joins")
}

async fn wait_for(events: &mut RoomEvents, name: &str) -> RoomEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(ev)) if ev.name() == name => return ev,
            Ok(Some(_)) => {}
            Ok(None) => panic!("events ended waiting for {name}"),
            Err(_) => panic!("no {name} within {WAIT:?}"),
        }
    }
}

/// Chat messages on `room` as (arrival index, sender, text), read whole.
fn collect_chat(room: &Room) -> mpsc::UnboundedReceiver<(usize, String, String)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let next = Arc::new(AtomicUsize::new(0));
    room.register_text_stream_handler(TOPIC_CHAT, move |reader, from| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let tx = tx.clone();
        tokio::spawn(async move {
            let text = reader
                .read_all()
                .await
                .unwrap_or_else(|e| format!("<error {e}>"));
            let _ = tx.send((i, from.to_string(), text));
        });
    })
    .expect("handler");
    rx
}

/// Byte streams on topic "files" as (sender, name, bytes or error).
fn collect_files(
    room: &Room,
) -> mpsc::UnboundedReceiver<(String, String, Result<Vec<u8>, String>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    room.register_byte_stream_handler("files", move |reader, from| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let name = reader.info().name.clone();
            let r = reader.read_all().await.map_err(|e| e.to_string());
            let _ = tx.send((from.to_string(), name, r));
        });
    })
    .expect("handler");
    rx
}

/// Receive `n` chat messages; return the texts in arrival order.
async fn chat_in_order(
    rx: &mut mpsc::UnboundedReceiver<(usize, String, String)>,
    n: usize,
    sender: &str,
) -> Vec<String> {
    let mut got = vec![None; n];
    for _ in 0..n {
        let (i, from, text) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("chat messages keep coming")
            .expect("handler alive");
        assert_eq!(from, sender);
        assert!(i < n, "more messages than sent");
        got[i] = Some(text);
    }
    got.into_iter()
        .map(|t| t.expect("every slot filled"))
        .collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32) as u8
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_between_two_wavecast_rooms() {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (alice, mut alice_events) = join(&server, "streams", "alice", RoomOptions::default()).await;
    let limits = DataStreamLimits {
        max_stream_bytes: 100_000,
        ..DataStreamLimits::default()
    };
    let (bob, mut bob_events) = join(
        &server,
        "streams",
        "bob",
        RoomOptions::default().data_stream_limits(limits),
    )
    .await;
    wait_for(&mut alice_events, "ParticipantConnected").await;
    let mut chat = collect_chat(&bob);
    let mut files = collect_files(&bob);
    let me = alice.local_participant();

    for i in 0..300 {
        let info = me
            .send_text(
                &format!("hello {i} ✓"),
                StreamTextOptions::topic(TOPIC_CHAT),
            )
            .await
            .expect("send_text");
        assert_eq!(info.total_length, Some(format!("hello {i} ✓").len() as u64));
    }
    let texts = chat_in_order(&mut chat, 300, "alice").await;
    assert_eq!(
        texts,
        (0..300).map(|i| format!("hello {i} ✓")).collect::<Vec<_>>()
    );

    // An incremental writer: pieces longer than a chunk, multi-byte characters across chunks.
    let mut w = me
        .stream_text(StreamTextOptions::topic(TOPIC_CHAT))
        .await
        .expect("stream_text");
    let long: String = "é".repeat(20_000);
    w.write(&long).await.expect("write");
    w.write("end").await.expect("write");
    assert_eq!(w.progress().bytes_sent, 40_003);
    assert_eq!(w.progress().chunks_sent, 4);
    w.close().await.expect("close");
    let (_, _, text) = chat.recv().await.expect("the streamed message");
    assert_eq!(text, format!("{long}end"));

    let blob = pattern(99_993, 3);
    let info = me
        .send_bytes(
            &blob,
            StreamByteOptions {
                name: Some("blob.bin".into()),
                ..StreamByteOptions::topic("files")
            },
        )
        .await
        .expect("send_bytes");
    assert_eq!(info.total_length, Some(blob.len() as u64));
    let (from, name, got) = tokio::time::timeout(WAIT, files.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((from.as_str(), name.as_str()), ("alice", "blob.bin"));
    assert_eq!(sha(&got.expect("whole")), sha(&blob));

    // Over bob's per-stream limit: dropped with an event, the reader gets the error.
    me.send_bytes(&pattern(150_000, 5), StreamByteOptions::topic("files"))
        .await
        .expect("sending is fine; the receiver refuses");
    let ev = wait_for(&mut bob_events, "DataStreamLimitExceeded").await;
    let RoomEvent::DataStreamLimitExceeded {
        limit,
        participant_identity,
        ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(limit, StreamLimit::StreamTooLarge { max: 100_000 });
    assert_eq!(participant_identity, "alice");
    let (_, _, got) = tokio::time::timeout(WAIT, files.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(got.unwrap_err().contains("limit"));
    let stats = bob.data_stream_stats();
    assert_eq!(stats.dropped_too_large, 1);
    assert_eq!(stats.completed, 302);
    assert_eq!(stats.buffered_bytes, 0);

    alice.close().await;
    bob.close().await;
}

/// Leaving right after sending loses nothing: `close` waits for the reliable data channel to
/// hand everything to the server before it leaves (a 1 MB stream and 200 chat lines, sent
/// without a pause, then closed at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closing_right_after_sending_loses_nothing() {
    let _alone = HEAVY.lock().await;
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (alice, mut alice_events) = join(&server, "drain", "alice", RoomOptions::default()).await;
    let (bob, _bob_events) = join(&server, "drain", "bob", RoomOptions::default()).await;
    wait_for(&mut alice_events, "ParticipantConnected").await;
    let mut chat = collect_chat(&bob);
    let mut files = collect_files(&bob);
    let me = alice.local_participant();
    let blob = pattern(1_000_000, 3);
    me.send_bytes(&blob, StreamByteOptions::topic("files"))
        .await
        .expect("send_bytes");
    for i in 0..200 {
        me.send_text(&format!("line {i}"), StreamTextOptions::topic(TOPIC_CHAT))
            .await
            .expect("send_text");
    }
    let t0 = Instant::now();
    alice.close().await;
    let closed_in = t0.elapsed();
    let (_, _, got) = tokio::time::timeout(WAIT, files.recv())
        .await
        .expect("the file arrives")
        .expect("handler alive");
    assert_eq!(sha(&got.expect("whole")), sha(&blob));
    let texts = chat_in_order(&mut chat, 200, "alice").await;
    assert_eq!(
        texts,
        (0..200).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    assert!(
        closed_in < Duration::from_secs(3),
        "close waited {closed_in:?}"
    );
    eprintln!("close took {closed_in:?} with 1 MB and 200 lines just sent");
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_unterminated_streams_leaves_memory_bounded() {
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (alice, mut alice_events) = join(&server, "flood", "alice", RoomOptions::default()).await;
    let limits = DataStreamLimits {
        max_streams: 16,
        max_stream_bytes: 1_000_000,
        max_buffered_bytes: 200_000,
        idle_timeout: Duration::from_secs(5),
    };
    let (bob, _bob_events) = join(
        &server,
        "flood",
        "bob",
        RoomOptions::default().data_stream_limits(limits),
    )
    .await;
    wait_for(&mut alice_events, "ParticipantConnected").await;
    // Bob's app takes every reader and never reads.
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    bob.register_byte_stream_handler("flood", move |reader, _| keep.lock().unwrap().push(reader))
        .expect("handler");
    // Alice opens 100 streams, then writes 20 000 bytes into each, and never ends one.
    let me = alice.local_participant();
    let mut writers = Vec::new();
    for _ in 0..100 {
        writers.push(
            me.stream_bytes(StreamByteOptions::topic("flood"))
                .await
                .expect("open"),
        );
    }
    for w in &mut writers {
        w.write(&[7; 20_000]).await.expect("write");
    }
    // Within the limits all along, until every stream bob took has ended by a limit.
    let deadline = Instant::now() + WAIT;
    let st = loop {
        let st = bob.data_stream_stats();
        assert!(st.open_streams <= 16, "{st:?}");
        assert!(st.buffered_bytes <= 200_000, "{st:?}");
        if st.opened + st.rejected_too_many == 100 && st.open_streams == 0 {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the flood did not settle: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // 16 open at once, the rest refused; of those 16, 10 fit in the unread budget (then fell
    // silent and timed out) and 6 were dropped at their first chunk.
    assert_eq!((st.opened, st.rejected_too_many), (16, 84), "{st:?}");
    assert_eq!((st.timed_out, st.dropped_buffer_full), (10, 6), "{st:?}");
    assert_eq!(st.buffered_peak, 200_000, "{st:?}");
    held.lock().unwrap().clear();
    assert_eq!(bob.data_stream_stats().buffered_bytes, 0);
    eprintln!("flood of 100 unterminated streams: {st:?}");
    drop(writers);
    alice.close().await;
    bob.close().await;
}

/// Chat, files and attributes both ways between our `room` and `peer` (identity `who`, its
/// chat messages are "`prefix` i"), another SDK driven by command lines: 1000 `lk.chat`
/// messages each way in order, none lost; 5 MB each way with the same sha256; an attribute set
/// on each side seen on the other.
async fn both_ways(room: &Room, peer: &mut impl LinePeer, who: &str, prefix: &str) {
    let mut chat = collect_chat(room);
    let mut files = collect_files(room);
    let me = room.local_participant();
    // Wait until the server told us about the peer (so its handlers are surely registered).
    let deadline = Instant::now() + WAIT;
    while room.remote_participant(who).is_none() {
        assert!(Instant::now() < deadline, "{who} never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // wavecast → peer: 1000 chat messages, in order, none lost.
    let t0 = Instant::now();
    for i in 0..1000 {
        me.send_text(&format!("rs {i}"), StreamTextOptions::topic(TOPIC_CHAT))
            .await
            .expect("send_text");
    }
    let sent_in = t0.elapsed();
    let want = sha((0..1000)
        .map(|i| format!("rs {i}"))
        .collect::<Vec<_>>()
        .join("\n")
        .as_bytes());
    let report = tokio::task::block_in_place(|| {
        peer.run("chat-report 1000", "CHAT", Duration::from_secs(90))
    });
    assert_eq!(report, format!("1000 rusty {want}"), "count, sender, order");
    eprintln!("1000 chat messages to {who} sent in {sent_in:?}");

    // peer → wavecast: 1000 chat messages.
    let t0 = Instant::now();
    tokio::task::block_in_place(|| peer.write_line("send-chat 1000"));
    let texts = chat_in_order(&mut chat, 1000, who).await;
    assert_eq!(
        texts,
        (0..1000)
            .map(|i| format!("{prefix} {i}"))
            .collect::<Vec<_>>()
    );
    tokio::task::block_in_place(|| peer.expect_line("OK send-chat 1000", WAIT));
    eprintln!("1000 chat messages from {who} in {:?}", t0.elapsed());

    // wavecast → peer: 5 MB.
    let blob = pattern(5_000_000, 11);
    let t0 = Instant::now();
    me.send_bytes(
        &blob,
        StreamByteOptions {
            name: Some("five.bin".into()),
            ..StreamByteOptions::topic("files")
        },
    )
    .await
    .expect("send_bytes");
    let line = tokio::task::block_in_place(|| peer.expect_line("BYTES", Duration::from_secs(120)));
    eprintln!("5 MB to {who} in {:?}", t0.elapsed());
    assert_eq!(line, format!("rusty five.bin 5000000 {}", sha(&blob)));

    // peer → wavecast: 5 MB.
    let sent = tokio::task::block_in_place(|| {
        peer.write_line("send-file 5000000 7");
        peer.expect_line("SENT", WAIT)
    });
    let (from, name, got) = tokio::time::timeout(Duration::from_secs(120), files.recv())
        .await
        .expect("the file arrives")
        .expect("handler alive");
    assert_eq!(from, who);
    assert!(name.ends_with(".bin"), "{name}");
    let got = got.expect("whole");
    assert_eq!(got.len(), 5_000_000);
    assert_eq!(sha(&got), sent);
    tokio::task::block_in_place(|| peer.expect_line("OK send-file", WAIT));

    // Attributes, each way.
    me.set_attributes([("lk.agent.state".to_owned(), "listening".to_owned())].into())
        .await
        .expect("our attribute is accepted");
    let seen =
        tokio::task::block_in_place(|| peer.run("attr-report rusty lk.agent.state", "ATTR", WAIT));
    assert_eq!(seen, "listening");
    tokio::task::block_in_place(|| peer.run_quiet("set-attr mood calm and steady", WAIT));
    let deadline = Instant::now() + WAIT;
    loop {
        let theirs = room
            .remote_participant(who)
            .expect("still here")
            .attributes();
        if theirs.get("mood").map(String::as_str) == Some("calm and steady") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{who}'s attribute never arrived: {theirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stats = room.data_stream_stats();
    eprintln!("from {who}: {stats:?}");
    assert_eq!(stats.buffered_bytes, 0);
    // The SDK speaks data streams v2 to us (we advertise it): its short chat messages come as
    // one packet each,
    assert!(stats.single_packet >= 1000, "{stats:?}");
    // and its 5 MB file DEFLATE-compressed (we advertise that we read it), inflated here.
    assert!(stats.compressed >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_files_and_attributes_both_ways_with_the_python_sdk() {
    let _alone = HEAVY.lock().await;
    init_tracing();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let (room, _events) = join(&server, "pystreams", "rusty", RoomOptions::default()).await;
    let mut py = tokio::task::block_in_place(|| {
        ScriptedPeer::join_script(&server, "stream_peer.py", "pystreams", "py")
    });
    both_ways(&room, &mut py, "py", "py").await;
    room.close().await;
}

/// The same with Chromium running livekit-client, in a network namespace of its own
/// (libwebrtc gathers no candidate on loopback alone).
#[test]
fn chat_files_and_attributes_both_ways_with_chromium() {
    let _alone = HEAVY.blocking_lock();
    let test = "chat_files_and_attributes_both_ways_with_chromium";
    let Some((_ns, server)) = common::browser_bed(test) else {
        return;
    };
    let token = TokenBuilder::new("web")
        .room("webstreams")
        .preset(Preset::Broadcaster)
        .can_update_own_metadata(true)
        .mint(&server.keys())
        .expect("a token");
    let mut page = BrowserPeer::data(&server.ws_url(), &token, 120).expect("chromium starts");
    let ready = page.wait_json("READY", WAIT).expect("the page joins");
    assert_eq!(ready["client_protocol"], 2, "{ready}");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            let (room, _events) =
                join(&server, "webstreams", "rusty", RoomOptions::default()).await;
            both_ways(&room, &mut page, "web", "browser").await;
            room.close().await;
        });
}
