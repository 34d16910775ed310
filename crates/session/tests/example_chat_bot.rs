//! The chat bot example (`examples/chat_bot.rs`) against a real livekit-server: it answers a
//! wavecast room's chat message and RPC call.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::init_tracing;
use tokio::sync::mpsc;
use wavecast_session::{RoomOptions, StreamTextOptions, TOPIC_CHAT};
use wavecast_testbed::LiveKitServer;
use wavecast_token::Preset;

/// The example's binary: built next to this test by `cargo test` (which builds examples), or
/// built here when the test runs alone.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join("examples/chat_bot");
    if !bin.is_file() {
        let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args(["build", "-p", "wavecast-session", "--example", "chat_bot"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the example failed");
    }
    bin
}

/// Kills the bot when the test ends, however it ends.
struct Bot(std::process::Child);

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_chat_bot_answers_chat_and_rpc() {
    init_tracing();
    let bin = tokio::task::block_in_place(example_binary);
    let server = LiveKitServer::start().expect("livekit-server starts");
    let token = server.token("bot", "bots", Preset::Broadcaster);
    let _bot = Bot(Command::new(&bin)
        .args([server.ws_url().as_str(), token.as_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the example"));
    let (room, _events) = common::join_room(&server, "bots", "user", RoomOptions::default())
        .await
        .expect("the room joins");
    let deadline = Instant::now() + Duration::from_secs(30);
    while room.remote_participant("bot").is_none() {
        assert!(Instant::now() < deadline, "the bot never joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    room.register_text_stream_handler(TOPIC_CHAT, move |reader, from| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let reply_to = reader.info().reply_to_stream_id.clone();
            let _ = tx.send((from.to_string(), reply_to, reader.read_all().await));
        });
    })
    .expect("handler");
    let me = room.local_participant();
    // The bot may still be registering its handlers: ask until it answers.
    let answer = loop {
        match me
            .perform_rpc("bot", "ping", "x", Duration::from_secs(5))
            .await
        {
            Ok(a) => break a,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the bot never answered: {e}"),
        }
    };
    assert_eq!(answer, "pong: x");
    let err = me
        .perform_rpc("bot", "ping", &"y".repeat(1001), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (4000, "payload too long"));

    let sent = me
        .send_text("hi bot", StreamTextOptions::topic(TOPIC_CHAT))
        .await
        .expect("send");
    let (from, reply_to, text) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("an answer")
        .expect("handler alive");
    assert_eq!(from, "bot");
    assert_eq!(reply_to, Some(sent.id));
    assert_eq!(text.expect("whole"), "echo: hi bot");
    room.close().await;
}
