//! End-to-end encryption between wavecast rooms on a real livekit-server (issue 21).
//!
//! A publisher with a shared passphrase sends stamped VP8 video and Opus audio. Three rooms
//! subscribe: one with the same passphrase decodes the pictures in order and the audio; one with
//! a wrong passphrase decodes nothing, gets `E2eeStateChanged(DecryptionFailed)` and counts the
//! refused frames; one without keys gets `MissingKey`, nothing by default, and — when it asks for
//! them, as the recorder does — the encrypted frames as the server forwarded them (the SDKs'
//! trailer, the pictures not readable). The server sees the tracks announced as encrypted.

mod common;

use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wavecast_session::{
    Credentials, E2eeOptions, E2eeState, Preset, Room, RoomEvent, RoomEvents, RoomOptions,
    SubscribedTrack, TrackKind, VideoDecode, VideoSubscriber,
};

use wavecast_session::{AudioPublisher, AudioSubscriber};
use wavecast_testbed::{LiveKitServer, PythonPeer};

const ROOM: &str = "e2ee";
const PASSPHRASE: &str = "wavecast shared passphrase";
const WAIT: Duration = Duration::from_secs(20);
/// The tone every publisher here sends.
const TONE_HZ: f64 = 440.0;

async fn join(
    server: &LiveKitServer,
    identity: &str,
    e2ee: Option<E2eeOptions>,
) -> (Room, RoomEvents) {
    let mut options = RoomOptions::default();
    if let Some(e) = e2ee {
        options = options.e2ee(e);
    }
    Room::connect_with(
        &server.ws_url(),
        Credentials::mint(server.keys(), identity, ROOM, Preset::Broadcaster),
        options,
    )
    .await
    .expect("joins")
}

/// The subscribed (video, audio) tracks of the publisher, whichever comes first.
async fn tracks(events: &mut RoomEvents) -> (SubscribedTrack, SubscribedTrack) {
    let (mut video, mut audio) = (None, None);
    while video.is_none() || audio.is_none() {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(RoomEvent::TrackSubscribed { track, .. })) => match track.kind() {
                TrackKind::Video => video = Some(track),
                TrackKind::Audio => audio = Some(track),
            },
            Ok(Some(_)) => {}
            Ok(None) => panic!("events ended"),
            Err(_) => panic!("no tracks in {WAIT:?}"),
        }
    }
    (video.unwrap(), audio.unwrap())
}

/// Read events until an `E2eeStateChanged` for the track `name` with `want` arrives.
async fn e2ee_state(events: &mut RoomEvents, name: &str, want: E2eeState) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(RoomEvent::E2eeStateChanged {
                track_name, state, ..
            })) if track_name == name && state == want => return,
            Ok(Some(ev)) => seen.push(ev.name()),
            Ok(None) => panic!("events ended; read {seen:?}"),
            Err(_) => panic!("no E2eeStateChanged({want:?}) for {name} in {WAIT:?}; read {seen:?}"),
        }
    }
}

/// Decode video for `time` on a thread; returns (stamped frame numbers in order, frames read).
fn decode_for(track: SubscribedTrack, time: Duration) -> std::thread::JoinHandle<(Vec<u32>, u64)> {
    let rt = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let mut sub = VideoSubscriber::without_track().expect("decoder");
        let mut track = track;
        let mut stamps = Vec::new();
        let mut frames = 0u64;
        let end = Instant::now() + time;
        while Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now());
            let Ok(Some(f)) = rt.block_on(async { tokio::time::timeout(left, track.recv()).await })
            else {
                break;
            };
            frames += 1;
            match sub.decode(&f) {
                VideoDecode::Picture(p) => {
                    if let Some(s) = common::read_stamp(&p.image.image) {
                        stamps.push(s.frame_number);
                    }
                }
                VideoDecode::WaitingForKeyframe { ask_keyframe: true } | VideoDecode::Failed(_) => {
                    track.request_keyframe()
                }
                _ => {}
            }
        }
        (stamps, frames)
    })
}

/// Publish a 440 Hz tone, 20 ms at a time, from a thread until `stop` is set.
fn spawn_tone_sender(
    mut audio: AudioPublisher,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let pcm: Vec<i16> = (0..960)
                .map(|i| {
                    let t = (n * 960 + i) as f64 / 48_000.0;
                    ((t * TONE_HZ * std::f64::consts::TAU).sin() * 8000.0) as i16
                })
                .collect();
            audio.push(&pcm, Instant::now()).expect("encode audio");
            n += 1;
            let next = start + Duration::from_millis(20 * n);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    })
}

/// The frequency of a tone from its zero crossings.
fn zero_crossing_hz(samples: &[i16]) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] >= 0) != (w[1] >= 0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / 48_000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_media_flows_with_the_passphrase_and_nowhere_else() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server");
    let (publisher, _pub_events) = join(
        &server,
        "pub",
        Some(E2eeOptions::shared_passphrase(PASSPHRASE)),
    )
    .await;
    let (right, mut right_events) = join(
        &server,
        "right",
        Some(E2eeOptions::shared_passphrase(PASSPHRASE)),
    )
    .await;
    let (wrong, mut wrong_events) = join(
        &server,
        "wrong",
        Some(E2eeOptions::shared_passphrase("not the passphrase")),
    )
    .await;
    let (keyless, mut keyless_events) = join(&server, "keyless", None).await;

    let video = publisher
        .local_participant()
        .publish_video("cam", common::small_video())
        .await
        .expect("video published");
    let audio = publisher
        .local_participant()
        .publish_audio("mic", 1, 32_000)
        .await
        .expect("audio published");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = common::spawn_video_sender(video, stop.clone());
    let audio_sender = spawn_tone_sender(audio, stop.clone());

    // The server announces the tracks as encrypted.
    let (right_video, mut right_audio) = tracks(&mut right_events).await;
    assert!(right_video.is_encrypted() && right_audio.is_encrypted());
    let publication = right
        .remote_participant("pub")
        .expect("the publisher is in the roster")
        .track_publications()
        .into_values()
        .find(|p| p.name() == "cam")
        .expect("its video publication");
    assert!(
        publication.is_encrypted(),
        "the server says the video is encrypted"
    );

    let (wrong_video, _wrong_audio) = tracks(&mut wrong_events).await;
    let (mut keyless_video, _keyless_audio) = tracks(&mut keyless_events).await;

    let right_decoding = decode_for(right_video, Duration::from_secs(5));
    let wrong_decoding = decode_for(wrong_video, Duration::from_secs(5));

    // Audio with the passphrase decodes to the tone's samples (not noise from ciphertext).
    let mut opus = AudioSubscriber::without_track(1).expect("opus");
    let mut packets = 0;
    let mut loud = 0;
    while packets < 100 {
        let f = tokio::time::timeout(WAIT, right_audio.recv())
            .await
            .expect("audio in time")
            .expect("audio flows");
        if let Some(d) = opus.decode(&f) {
            packets += 1;
            let peak = d
                .samples
                .iter()
                .map(|s| s.unsigned_abs())
                .max()
                .unwrap_or(0);
            loud += usize::from(peak > 4000);
        }
    }
    assert!(loud > 50, "the tone came through in {loud} of 100 packets");

    // Without keys: nothing by default, the state says why …
    assert!(
        tokio::time::timeout(Duration::from_secs(1), keyless_video.recv())
            .await
            .is_err(),
        "a keyless room handed on an encrypted frame"
    );
    e2ee_state(&mut keyless_events, "cam", E2eeState::MissingKey).await;
    // … and the encrypted frames to a reader that asks for them (the recorder does).
    keyless_video.pass_encrypted();
    let raw = tokio::time::timeout(WAIT, keyless_video.recv())
        .await
        .expect("a frame in time")
        .expect("frames flow");
    let n = raw.data.len();
    assert_eq!(
        raw.data[n - 2],
        12,
        "the SDKs' trailer: IV length 12, then the key index"
    );
    assert_eq!(raw.data[n - 1], 0, "key index 0");

    let (right_stamps, right_frames) = right_decoding.join().expect("right decoder");
    let (wrong_stamps, wrong_frames) = wrong_decoding.join().expect("wrong decoder");
    e2ee_state(&mut wrong_events, "cam", E2eeState::DecryptionFailed).await;
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("video sender");
    audio_sender.join().expect("audio sender");

    eprintln!(
        "right passphrase: {right_frames} frames read, {} pictures with stamps {:?}…; wrong: {wrong_frames} handed on, {} pictures; \
         stats right {:?}, wrong {:?}, keyless {:?}, publisher {:?}",
        right_stamps.len(),
        &right_stamps[..right_stamps.len().min(5)],
        wrong_stamps.len(),
        right.stats().e2ee,
        wrong.stats().e2ee,
        keyless.stats().e2ee,
        publisher.stats().e2ee,
    );
    assert!(
        right_stamps.len() >= 60,
        "pictures decoded with the passphrase: {}",
        right_stamps.len()
    );
    assert!(
        right_stamps.windows(2).all(|w| w[0] < w[1]),
        "pictures in order: {right_stamps:?}"
    );
    assert_eq!(
        wrong_frames, 0,
        "a frame that did not decrypt was handed on"
    );
    assert!(wrong_stamps.is_empty());
    let wrong_stats = wrong.stats().e2ee;
    assert_eq!(wrong_stats.decrypted, 0);
    assert!(wrong_stats.decrypt_failed >= 30, "{wrong_stats:?}");
    let right_stats = right.stats().e2ee;
    assert!(
        right_stats.decrypted >= right_frames + 100,
        "{right_stats:?}"
    );
    assert!(publisher.stats().e2ee.encrypted > right_stats.decrypted / 2);

    // Data between the rooms with keys travels encrypted too: an RPC round trip (request, ack,
    // response, all as EncryptedPackets) works, and the keyless room reads none of it.
    right
        .local_participant()
        .register_rpc_method("echo", |d| async move { Ok(format!("echo {}", d.payload)) });
    let answer = publisher
        .local_participant()
        .perform_rpc("right", "echo", "sealed", Duration::from_secs(10))
        .await
        .expect("an encrypted RPC round trip");
    assert_eq!(answer, "echo sealed");
    let (p, r) = (publisher.stats().e2ee, right.stats().e2ee);
    assert!(p.data_encrypted >= 1 && p.data_decrypted >= 1, "{p:?}");
    assert!(r.data_encrypted >= 1 && r.data_decrypted >= 1, "{r:?}");

    for room in [&publisher, &right, &wrong, &keyless] {
        room.close().await;
    }
}

/// The official Python SDK (its libwebrtc frame cryptor, the same key as a shared key) publishes
/// encrypted video and a tone: a room with the passphrase decodes both, nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_publisher_with_the_shared_key_is_decrypted() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server");
    let mut py = PythonPeer::spawn(
        &server,
        "publish_av.py",
        &[
            "--room",
            ROOM,
            "--identity",
            "py",
            "--seconds",
            "20",
            "--fps",
            "15",
            "--frequency",
            "440",
            "--e2ee-key",
            PASSPHRASE,
        ],
    )
    .expect("python starts");
    py.wait_line("READY", WAIT).expect("python publishes");
    let (room, mut events) = join(
        &server,
        "us",
        Some(E2eeOptions::shared_passphrase(PASSPHRASE)),
    )
    .await;
    let (video, mut audio) = tracks(&mut events).await;
    assert!(
        video.is_encrypted() && audio.is_encrypted(),
        "announced as encrypted"
    );
    let decoding = decode_for(video, Duration::from_secs(5));
    let mut opus = AudioSubscriber::without_track(1).expect("opus");
    let mut pcm = Vec::new();
    while pcm.len() < 48_000 * 3 {
        let f = tokio::time::timeout(WAIT, audio.recv())
            .await
            .expect("audio in time")
            .expect("audio flows");
        if let Some(d) = opus.decode(&f) {
            pcm.extend_from_slice(d.samples);
        }
    }
    let (_, frames) = decoding.join().expect("decoder");
    // The last 2 s: past the start of the stream.
    let tone = zero_crossing_hz(&pcm[48_000..]);
    let stats = room.stats().e2ee;
    eprintln!(
        "PYTHON (E2EE) → US: {frames} video frames decrypted and read in 5 s, tone {tone:.1} Hz, {stats:?}"
    );
    assert!(frames >= 30, "{frames} video frames: {stats:?}");
    assert!((tone - TONE_HZ).abs() < 10.0, "heard {tone:.1} Hz");
    assert_eq!(stats.decrypt_failed, 0, "{stats:?}");
    room.close().await;
    drop(py);
}

/// Our encrypted video and tone, subscribed by the official Python SDK with the same shared
/// key: its frame cryptor decrypts them (frames decoded, the tone heard, state OK only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_subscriber_with_the_shared_key_decrypts_ours() {
    common::init_tracing();
    let server = LiveKitServer::start().expect("server");
    let (publisher, _events) = join(
        &server,
        "pub",
        Some(E2eeOptions::shared_passphrase(PASSPHRASE)),
    )
    .await;
    let video = publisher
        .local_participant()
        .publish_video("cam", common::small_video())
        .await
        .expect("video published");
    let audio = publisher
        .local_participant()
        .publish_audio("mic", 1, 32_000)
        .await
        .expect("audio published");
    let stop = Arc::new(AtomicBool::new(false));
    let senders = (
        common::spawn_video_sender(video, stop.clone()),
        spawn_tone_sender(audio, stop.clone()),
    );
    let mut py = PythonPeer::spawn(
        &server,
        "e2ee_subscribe.py",
        &[
            "--room",
            ROOM,
            "--identity",
            "py",
            "--participant",
            "pub",
            "--seconds",
            "5",
            "--e2ee-key",
            PASSPHRASE,
        ],
    )
    .expect("python starts");
    let result = tokio::task::spawn_blocking(move || {
        let r = py.wait_line("RESULT", Duration::from_secs(60));
        (py, r)
    })
    .await
    .expect("waits");
    stop.store(true, Ordering::Relaxed);
    senders.0.join().expect("video sender");
    senders.1.join().expect("audio sender");
    let result: serde_json::Value =
        serde_json::from_str(&result.1.expect("python's result")).expect("json");
    eprintln!("US (E2EE) → PYTHON: {result}");
    assert!(result["video_frames"].as_u64() >= Some(30), "{result}");
    assert_eq!(
        (result["width"].as_u64(), result["height"].as_u64()),
        (Some(320), Some(240))
    );
    let tone = result["tone_hz"].as_f64().unwrap_or(0.0);
    assert!(
        (tone - TONE_HZ).abs() < 10.0,
        "python heard {tone:.1} Hz: {result}"
    );
    let states = result["e2ee_states"].as_array().expect("states");
    assert!(
        states.iter().all(|s| s == "OK" || s == "NEW") && states.iter().any(|s| s == "OK"),
        "python's frame cryptor states: {result}"
    );
    publisher.close().await;
}

/// Encrypted data packets: Chromium with livekit-client's `encryption` option (which encrypts
/// the data channel as well as media) sends chat as text streams; a room with the passphrase
/// opens every packet (`EncryptedPacket`) and reads the messages in order; a room without keys
/// reads none and counts them. Our chat, encrypted the same way, is read by the page (and not by
/// the keyless room).
#[test]
fn encrypted_chat_from_a_browser_is_read_with_the_passphrase() {
    use wavecast_session::{StreamTextOptions, TOPIC_CHAT};
    use wavecast_testbed::browser::{BrowserPeer, SubscribeOptions};
    use wavecast_testbed::{NetNs, ServerOptions};

    let test = "encrypted_chat_from_a_browser_is_read_with_the_passphrase";
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    common::init_tracing();
    let server = LiveKitServer::start_with(&ServerOptions {
        media_ip: Some(NetNs::ADDR),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts");
    let token = server.token("web", ROOM, Preset::Broadcaster);
    let options = SubscribeOptions {
        e2ee_key: Some(PASSPHRASE.into()),
    };
    let mut page =
        BrowserPeer::data_with(&server.ws_url(), &token, 120, &options).expect("chromium starts");
    let ready = page.wait_json("READY", WAIT).expect("the page joins");
    assert_eq!(ready["data_encrypted"], true, "{ready}");
    const N: usize = 50;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async {
            let (room, _events) = join(
                &server,
                "us",
                Some(E2eeOptions::shared_passphrase(PASSPHRASE)),
            )
            .await;
            let (keyless, _keyless_events) = join(&server, "keyless", None).await;
            let chats = |room: &Room| {
                // One slot per stream in the order they opened (the handler runs in order),
                // filled when its reader finishes.
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                room.register_text_stream_handler(TOPIC_CHAT, move |reader, _from| {
                    let (slot, text) = tokio::sync::oneshot::channel();
                    let _ = tx.send(text);
                    tokio::spawn(async move {
                        if let Ok(text) = reader.read_all().await {
                            let _ = slot.send(text);
                        }
                    });
                })
                .expect("a chat handler");
                rx
            };
            let mut ours = chats(&room);
            let mut theirs = chats(&keyless);
            let deadline = Instant::now() + WAIT;
            while room.remote_participant("web").is_none() {
                assert!(Instant::now() < deadline, "the page never appeared");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::task::block_in_place(|| page.command(&format!("send-chat {N}")))
                .expect("command");
            let mut texts = Vec::new();
            while texts.len() < N {
                let slot = tokio::time::timeout(WAIT, ours.recv())
                    .await
                    .expect("chat in time")
                    .expect("chat flows");
                texts.push(
                    tokio::time::timeout(WAIT, slot)
                        .await
                        .expect("read in time")
                        .expect("read whole"),
                );
            }
            assert_eq!(
                texts,
                (0..N).map(|i| format!("browser {i}")).collect::<Vec<_>>()
            );
            // Ours to the page, encrypted the same way (the default with keys): livekit-client
            // opens it.
            room.local_participant()
                .send_text("from wavecast", StreamTextOptions::topic(TOPIC_CHAT))
                .await
                .expect("send_text");
            let report = tokio::task::block_in_place(|| {
                page.command("chat-report 1")
                    .and_then(|()| page.wait_line("CHAT", WAIT))
            })
            .expect("the page reads our chat");
            let stats = room.stats().e2ee;
            // The keyless room got the same packets: wait until it has counted them all.
            let deadline = Instant::now() + WAIT;
            while keyless.stats().e2ee.data_decrypt_failed < N as u64 + 1
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let keyless_stats = keyless.stats().e2ee;
            eprintln!(
                "BROWSER (encrypted data) → US: {N} chat messages in order; {stats:?}; keyless \
                 room {keyless_stats:?}; the page read ours: {report}"
            );
            assert!(report.starts_with("1 us "), "{report}");
            // (A short text stream is one packet to a v2 peer: its header with the text inline.)
            assert!(stats.data_decrypted >= N as u64, "{stats:?}");
            assert_eq!(stats.data_decrypt_failed, 0, "{stats:?}");
            assert!(
                stats.data_encrypted >= 1,
                "our chat went encrypted: {stats:?}"
            );
            assert!(
                theirs.try_recv().is_err(),
                "a keyless room read encrypted chat"
            );
            assert!(
                keyless_stats.data_decrypt_failed > N as u64,
                "{keyless_stats:?}"
            );
            room.close().await;
            keyless.close().await;
        });
}
