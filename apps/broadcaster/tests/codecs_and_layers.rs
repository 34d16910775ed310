//! Our broadcaster publishes with `--simulcast` in VP8, H.264 and VP9; peers nobody here wrote
//! receive each codec: the official Python SDK decodes it, and livekit-client in Debian's
//! Chromium shows it — in a small `<video>` element on the low layer and in a large one on the
//! high layer (its adaptive stream asks the server for the layer that fits). The server's own
//! record (its API, `ListParticipants`) lists the layers: three for VP8 and H.264; VP9 goes out
//! as one layer (LiveKit takes VP9 as one scalable stream; see docs/MEDIA.md). Everything runs
//! in a private network namespace (libwebrtc gathers no candidate on loopback alone).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use wavecast_session::admin::{Participant, RoomAdmin};
use wavecast_testbed::apps::{self as common, Background};
use wavecast_testbed::browser::{BrowserPeer, SubscribeOptions, ViewOptions};
use wavecast_testbed::{LiveKitServer, NetNs, PythonPeer, ServerOptions};
use wavecast_token::Preset;

const BIN: &str = env!("CARGO_BIN_EXE_broadcaster");
/// The broadcast: 640×360 at 30 fps makes layers of 160×90, 320×180 and 640×360.
const SIZE: (u32, u32) = (640, 360);

/// One at a time: each runs our broadcaster, the Python SDK and Chromium.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn broadcaster_vp8_simulcast_reaches_python_and_browsers_by_layer() {
    broadcast("vp8", "broadcaster_vp8_simulcast", 3);
}

#[test]
fn broadcaster_h264_simulcast_reaches_python_and_browsers_by_layer() {
    broadcast("h264", "broadcaster_h264_simulcast", 3);
}

#[test]
fn broadcaster_vp9_reaches_python_and_browsers() {
    broadcast("vp9", "broadcaster_vp9", 1);
}

fn mime(codec: &str) -> String {
    match codec {
        "h264" => "video/H264".into(),
        other => format!("video/{}", other.to_uppercase()),
    }
}

/// The server's record of `identity` once `ready` accepts it (up to 20 s).
fn server_participant(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
    ready: impl Fn(&Participant) -> bool,
) -> Participant {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let admin = RoomAdmin::new(&server.http_url(), &server.keys(), Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    loop {
        let listed = rt
            .block_on(admin.list_participants(room))
            .unwrap_or_else(|e| panic!("ListParticipants of {room}: {e}"));
        if let Some(p) = listed.into_iter().find(|p| p.identity == identity) {
            if ready(&p) {
                return p;
            }
            last = Some(p);
        }
        assert!(
            Instant::now() < deadline,
            "the server's record of {identity} never matched: {last:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn broadcast(codec: &str, test: &str, want_layers: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    let started = Instant::now();
    let server = LiveKitServer::start_with(&ServerOptions {
        media_ip: Some(NetNs::ADDR),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts in the namespace");
    let url = server.ws_url();
    let room = format!("caster-{codec}");
    let mut cmd = Command::new(BIN);
    cmd.args(common::join_args(&url, &room, "caster"))
        .args(["--codec", codec, "--simulcast", "--no-audio", "--no-stdin"])
        .args([
            "--width",
            &SIZE.0.to_string(),
            "--height",
            &SIZE.1.to_string(),
        ])
        .args(["--bitrate", "1200", "--duration", "60s"]);
    let caster = Background::spawn("broadcaster", &mut cmd);

    // The server's record: the codec and the layers.
    let want = mime(codec);
    let p = server_participant(&server, &room, "caster", |p| {
        p.tracks
            .iter()
            .any(|t| t.kind == "video" && t.mime_type.eq_ignore_ascii_case(&want))
    });
    let track = p.tracks.iter().find(|t| t.kind == "video").expect("video");
    let sizes: Vec<(u32, u32)> = track.layers.iter().map(|l| (l.width, l.height)).collect();
    eprintln!("server: {} with layers {sizes:?}", track.mime_type);
    assert_eq!(sizes.len(), want_layers, "{track:?}");
    assert_eq!(sizes.last(), Some(&SIZE), "{track:?}");

    // The Python SDK decodes it.
    let mut py = PythonPeer::spawn(
        &server,
        "media_subscribe.py",
        &[
            "--room",
            &room,
            "--identity",
            "py-viewer",
            "--participant",
            "caster",
            "--seconds",
            "5",
        ],
    )
    .expect("the Python subscriber starts");
    let line = py
        .wait_line("RESULT", Duration::from_secs(60))
        .expect("the Python subscriber reports");
    let result: Value = serde_json::from_str(&line).expect("Python RESULT JSON");
    let py_track = &result["tracks"][0];
    eprintln!("python: {py_track}");
    assert_eq!(py_track["received_codec"], want.as_str(), "{py_track}");
    assert!(py_track["frames"].as_u64().unwrap_or(0) >= 60, "{py_track}");

    // Browsers: a small element on the low layer, a large one on the high layer.
    let watch = |identity: &str, size: (u32, u32)| -> Value {
        let mut viewer = BrowserPeer::subscribe_view(
            &url,
            &server.token(identity, &room, Preset::Viewer),
            "caster",
            8,
            &SubscribeOptions::default(),
            &ViewOptions {
                element_size: Some(size),
                video_only: true,
            },
        )
        .expect("the browser viewer starts");
        let result = viewer
            .wait_json("RESULT", Duration::from_secs(90))
            .unwrap_or_else(|e| panic!("{identity} watches: {e}"));
        eprintln!(
            "{identity} ({}x{} element): {} fps, received {}",
            size.0, size.1, result["fps"], result["received"]
        );
        result
    };
    let width = |r: &Value, at: &str| r["received"][at]["width"].as_u64().unwrap_or(0);
    let small = watch("small", (160, 90));
    assert_eq!(small["received"]["codecs"][0], want.as_str(), "{small}");
    let large = watch("large", (1280, 720));
    assert_eq!(large["received"]["codecs"][0], want.as_str(), "{large}");
    let (low, high) = (u64::from(sizes[0].0), u64::from(SIZE.0));
    assert_eq!(
        width(&small, "last"),
        low,
        "the small element's viewer is not on the low layer: {}",
        small["received"]
    );
    assert_eq!(
        width(&large, "max"),
        high,
        "the large element's viewer never reached the high layer: {}",
        large["received"]
    );
    drop(caster);
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
}
