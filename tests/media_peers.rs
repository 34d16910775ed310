//! The media-breadth peers against a real livekit-server, with no wavecast engine in the loop:
//! Debian's Chromium running livekit-client and the official Python SDK publish and receive
//! VP8, VP9 and H.264, with simulcast, and the server's own record (its Twirp API,
//! ListParticipants → TrackInfo) says what it got. These prove the peers the engine-side
//! acceptance tests lean on:
//!
//! - a browser publishing H.264, then VP9 (livekit-client's `videoCodec`): the Python SDK
//!   decodes that codec (the receiver's statistics name it, not just the publication);
//! - a browser publishing VP8 with simulcast: a browser viewer with a small `<video>` element
//!   gets the low layer, one with a large element the high layer (adaptive stream);
//! - the Python SDK publishing 720p with simulcast in each codec: the server lists the layers
//!   for the track and a Python subscriber decodes the codec.
//!
//! Everything heavy runs one test at a time ([`ONE_AT_A_TIME`]): two cores, and each test
//! already runs two encoders or browsers. Browser tests run in a private network namespace
//! (libwebrtc gathers no ICE candidate on loopback alone); namespace tests need root (set
//! `WAVECAST_SKIP_NETNS=1` to skip them elsewhere).

use std::time::{Duration, Instant};

use livekit_protocol as proto;
use serde_json::Value;
use wavecast_testbed::browser::{BrowserPeer, PublishOptions, SubscribeOptions, ViewOptions};
use wavecast_testbed::{LiveKitServer, NetNs, PythonPeer, ServerOptions};
use wavecast_token::Preset;

/// One heavy test at a time: each runs a publisher and a subscriber that both encode or decode.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long the Python subscriber decodes.
const DECODE_S: &str = "6";
/// Frames it must decode in that time: Chromium's fake camera sends 20 fps (livekit-client's
/// 720p preset), the Python publisher 30; a third of Chromium's is plenty of margin for a
/// loaded machine.
const MIN_FRAMES: u64 = 40;

/// A livekit-server advertising the namespace's address (for Chromium).
fn server_in_namespace() -> LiveKitServer {
    LiveKitServer::start_with(&ServerOptions {
        media_ip: Some(NetNs::ADDR),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts in the namespace")
}

fn parse(what: &str, line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{what} printed bad JSON ({e}): {line}"))
}

/// The server's record of `room`'s participant `identity`, once `ready` accepts it (up to 20 s).
fn server_participant(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
    ready: impl Fn(&proto::ParticipantInfo) -> bool,
) -> proto::ParticipantInfo {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let keys = server.keys();
    let client = livekit_api::services::room::RoomClient::with_api_key(
        &server.http_url(),
        keys.key(),
        keys.secret(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    loop {
        let listed = rt
            .block_on(client.list_participants(room))
            .unwrap_or_else(|e| panic!("ListParticipants of {room}: {e}"));
        if let Some(p) = listed.into_iter().find(|p| p.identity == identity) {
            if ready(&p) {
                return p;
            }
            last = Some(p);
        }
        assert!(
            Instant::now() < deadline,
            "the server's record of {identity} in {room} never matched: {last:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The layers the server lists for a track's primary codec (`TrackInfo.codecs[0].layers`;
/// `TrackInfo.layers` is deprecated).
fn layers(t: &proto::TrackInfo) -> &[proto::VideoLayer] {
    t.codecs.first().map_or(&[], |c| c.layers.as_slice())
}

/// The one video track of a participant, as the server has it.
fn video_track(p: &proto::ParticipantInfo) -> Option<&proto::TrackInfo> {
    p.tracks
        .iter()
        .find(|t| t.r#type == proto::TrackType::Video as i32)
}

/// The Python subscriber's report for `participant`'s one video track.
fn python_receives(server: &LiveKitServer, room: &str, participant: &str) -> Value {
    let mut sub = PythonPeer::spawn(
        server,
        "media_subscribe.py",
        &[
            "--room",
            room,
            "--identity",
            "py-viewer",
            "--participant",
            participant,
            "--seconds",
            DECODE_S,
        ],
    )
    .expect("the Python subscriber starts");
    let result = parse(
        "media_subscribe.py",
        &sub.wait_line("RESULT", Duration::from_secs(60))
            .expect("the Python subscriber reports"),
    );
    result["tracks"][0].clone()
}

fn mime(codec: &str) -> String {
    match codec {
        "h264" => "video/H264".into(),
        other => format!("video/{}", other.to_uppercase()),
    }
}

/// Chromium publishes its fake camera with livekit-client's `videoCodec`; the Python SDK
/// decodes that codec.
fn browser_codec_reaches_python(test: &str, codec: &str) {
    let _one = one_at_a_time();
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    let started = Instant::now();
    let server = server_in_namespace();
    let room = format!("browser-{codec}");
    let token = server.token("browser", &room, Preset::Broadcaster);
    let mut browser = BrowserPeer::publish(
        &server.ws_url(),
        &token,
        &PublishOptions {
            video_codec: Some(codec.into()),
            ..PublishOptions::default()
        },
        60,
    )
    .expect("the browser peer starts");
    let ready = browser
        .wait_json("READY", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("the browser publishes {codec}: {e}"));
    let want = mime(codec);
    let layers = ready["video_layers"].as_array().expect("video_layers");
    eprintln!("browser sends: {layers:?}");
    assert!(
        !layers.is_empty() && layers.iter().all(|l| l["codec"] == want.as_str()),
        "the browser's camera streams are not all {want}: {layers:?}"
    );

    let track = python_receives(&server, &room, "browser");
    eprintln!("python received: {track}");
    browser.stop();
    let sent = browser
        .wait_json("RESULT", Duration::from_secs(30))
        .expect("the browser's figures");
    eprintln!(
        "browser encoders: {}",
        sent["video_layers"]
            .as_array()
            .map(|ls| ls
                .iter()
                .map(|l| format!("{}:{}:{}", l["rid"], l["codec"], l["encoder"]))
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default()
    );
    assert_eq!(track["mime_type"], want.as_str(), "{track}");
    assert_eq!(
        track["received_codec"],
        want.as_str(),
        "the Python SDK decoded another codec (livekit-client's backup?): {track}"
    );
    let frames = track["frames"].as_u64().unwrap_or(0);
    assert!(frames >= MIN_FRAMES, "{frames} frames decoded: {track}");
    eprintln!(
        "{test}: {frames} frames of {want} in {DECODE_S} s ({} fps), {:.1} s in all",
        track["fps"],
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn browser_h264_is_decoded_by_the_python_sdk() {
    browser_codec_reaches_python("browser_h264_is_decoded_by_the_python_sdk", "h264");
}

#[test]
fn browser_vp9_is_decoded_by_the_python_sdk() {
    browser_codec_reaches_python("browser_vp9_is_decoded_by_the_python_sdk", "vp9");
}

/// Chromium publishes VP8 simulcast (its fake camera at 1280×720: layers 320×180, 640×360 and
/// 1280×720); a browser viewer with a 160×90 element receives the low layer, then one with a
/// 1280×720 element the high layer. The viewers run one after the other against the same
/// publisher (two Chromiums at a time at most).
#[test]
fn browser_viewers_get_the_simulcast_layer_that_fits_their_element() {
    let _one = one_at_a_time();
    let test = "browser_viewers_get_the_simulcast_layer_that_fits_their_element";
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    let started = Instant::now();
    let server = server_in_namespace();
    let room = "browser-simulcast";
    let url = server.ws_url();
    let mut browser = BrowserPeer::publish(
        &url,
        &server.token("browser", room, Preset::Broadcaster),
        &PublishOptions {
            video_codec: Some("vp8".into()),
            simulcast: Some(true),
            ..PublishOptions::default()
        },
        90,
    )
    .expect("the browser peer starts");
    let ready = browser
        .wait_json("READY", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("the browser publishes: {e}"));
    let camera = ready["tracks"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["kind"] == "video"))
        .expect("a camera track")
        .clone();
    let published_width = camera["settings"]["width"].as_u64().expect("capture width");
    assert!(published_width >= 640, "capture too small: {camera}");

    // The server knows three layers for the camera.
    let p = server_participant(&server, room, "browser", |p| {
        video_track(p).is_some_and(|t| layers(t).len() >= 3)
    });
    let t = video_track(&p).expect("video");
    let server_layers: Vec<(u32, u32)> = layers(t).iter().map(|l| (l.width, l.height)).collect();
    eprintln!("server layers: {server_layers:?}, codecs {:?}", t.codecs);

    let watch = |identity: &str, size: (u32, u32)| -> Value {
        let mut viewer = BrowserPeer::subscribe_view(
            &url,
            &server.token(identity, room, Preset::Viewer),
            "browser",
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
    let small = watch("small", (160, 90));
    let large = watch("large", (1280, 720));
    let large_ended_ms = unix_ms();
    browser.stop();
    let sent = browser
        .wait_json("RESULT", Duration::from_secs(30))
        .expect("the browser's figures");
    let sent_layers: Vec<String> = sent["video_layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            format!(
                "{}:{}x{}:{}:{}",
                l["rid"], l["width"], l["height"], l["frames_encoded"], l["quality_limitation"]
            )
        })
        .collect();
    eprintln!("browser layers at the end: {sent_layers:?}");

    let width = |r: &Value, at: &str| r["received"][at]["width"].as_u64().unwrap_or(0);
    assert_eq!(small["received"]["codecs"][0], "video/VP8", "{small}");
    let small_last = width(&small, "last");
    assert!(
        small_last > 0 && small_last <= published_width / 4,
        "the small element's viewer is on {small_last} px, not the low layer (≤ {}): {}",
        published_width / 4,
        small["received"]
    );
    // The high layer: the widest layer the browser was sending 3 s before the large viewer
    // ended (the server switches within that), from the page's layer timeline. Chromium may
    // stop its top layer by itself (its bandwidth estimate, CPU): the viewer can only get what
    // is sent.
    let top = sending_widths(&sent["layer_timeline"], large_ended_ms - 3000.0)
        .into_iter()
        .max()
        .unwrap_or(0);
    let large_max = width(&large, "max");
    assert!(
        top > small_last,
        "the browser sent nothing above the low layer near the end ({top} px): {sent_layers:?} {}",
        sent["layer_timeline"]
    );
    assert!(
        large_max >= top,
        "the large element's viewer reached {large_max} px, not the high layer ({top} px): {}",
        large["received"]
    );
    eprintln!(
        "{test}: small {small_last} px, large {large_max} px (top layer sent {top} px) of \
         {published_width}, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Now in milliseconds since the UNIX epoch (the page's `Date.now()`: same machine, same clock).
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
        * 1000.0
}

/// The widths of the browser's simulcast layers that were sending at `at_ms`, replaying its
/// `layer_timeline` (`at_unix_ms`, `rid`, `sending`, `width`: one entry per change).
fn sending_widths(timeline: &Value, at_ms: f64) -> Vec<u64> {
    let mut state = std::collections::BTreeMap::new();
    for e in timeline.as_array().into_iter().flatten() {
        if e["at_unix_ms"].as_f64().unwrap_or(f64::MAX) > at_ms {
            continue;
        }
        let rid = e["rid"].as_str().unwrap_or("").to_owned();
        let sending = e["sending"].as_bool().unwrap_or(false);
        state.insert(rid, sending.then(|| e["width"].as_u64()).flatten());
    }
    state.into_values().flatten().collect()
}

/// The Python SDK publishes 1280×720 at 30 fps with simulcast in `codec`: the server lists the
/// track's three layers and the Python subscriber decodes `codec`. (VP9 goes out as one RTP
/// stream with three spatial layers, SVC: the server lists them as layers all the same, with
/// the deprecated `TrackInfo.simulcast` false.)
fn python_simulcast(test: &str, codec: &str) {
    let _one = one_at_a_time();
    let started = Instant::now();
    let server = LiveKitServer::start().expect("livekit-server starts");
    let room = format!("python-{codec}");
    let mut publisher = PythonPeer::spawn(
        &server,
        "media_publish.py",
        &[
            "--room",
            &room,
            "--identity",
            "py-caster",
            "--codec",
            codec,
            "--simulcast",
            "--width",
            "1280",
            "--height",
            "720",
            "--fps",
            "30",
            "--seconds",
            "16",
        ],
    )
    .expect("the Python publisher starts");
    let ready = parse(
        "media_publish.py",
        &publisher
            .wait_line("READY", Duration::from_secs(30))
            .expect("the Python publisher publishes"),
    );
    let want = mime(codec);
    let p = server_participant(&server, &room, "py-caster", |p| {
        video_track(p).is_some_and(|t| layers(t).len() >= 3 && t.mime_type == want)
    });
    let t = video_track(&p).expect("video");
    assert_eq!(t.sid, ready["track_sid"].as_str().unwrap_or(""), "{t:?}");
    let mut widths: Vec<u32> = layers(t).iter().map(|l| l.width).collect();
    widths.sort_unstable();
    assert_eq!(widths, [320, 640, 1280], "the layers: {t:?}");
    let listed: Vec<String> = layers(t)
        .iter()
        .map(|l| format!("{}x{}@{}", l.width, l.height, l.bitrate))
        .collect();
    eprintln!("server: {} with layers {listed:?}", t.mime_type);

    let track = python_receives(&server, &room, "py-caster");
    eprintln!("python received: {track}");
    assert_eq!(
        track["received_codec"],
        want.as_str(),
        "the subscriber decoded another codec: {track}"
    );
    let frames = track["frames"].as_u64().unwrap_or(0);
    assert!(frames >= MIN_FRAMES, "{frames} frames decoded: {track}");
    let result = parse(
        "media_publish.py",
        &publisher
            .wait_line("RESULT", Duration::from_secs(60))
            .expect("the Python publisher reports"),
    );
    eprintln!(
        "{test}: {} layers, {frames} frames decoded ({} fps); publisher CPU {} s over {} s, \
         layers {}; {:.1} s in all",
        layers(t).len(),
        track["fps"],
        result["cpu_s"],
        result["wall_s"],
        result["layers"],
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn python_vp8_simulcast_has_three_layers_and_is_decoded() {
    python_simulcast(
        "python_vp8_simulcast_has_three_layers_and_is_decoded",
        "vp8",
    );
}

#[test]
fn python_h264_simulcast_has_three_layers_and_is_decoded() {
    python_simulcast(
        "python_h264_simulcast_has_three_layers_and_is_decoded",
        "h264",
    );
}

#[test]
fn python_vp9_simulcast_has_three_layers_and_is_decoded() {
    python_simulcast(
        "python_vp9_simulcast_has_three_layers_and_is_decoded",
        "vp9",
    );
}

/// The baseline for the rate-limit acceptance point: the Python SDK publishing 1280×720 at
/// 30 fps in VP8 through a 600 kbit/s policer on the leg into the server's media port (its
/// uplink; [`NetNs::limit_rate`]), with simulcast (the SDK caps its layers at 15, 20 and 30 fps)
/// or one layer. Its bandwidth estimate must settle under the limit and a Python subscriber keep
/// receiving (20 frames in 6 s at least: a floor for "media flows", not a quality bar); the
/// figures (what the subscriber decodes, what the publisher's layers send, what the policer
/// dropped) are printed for the bench to compare with.
#[test]
fn python_simulcast_publisher_under_a_600_kbit_uplink_limit() {
    python_under_a_rate_limit(
        "python_simulcast_publisher_under_a_600_kbit_uplink_limit",
        true,
    );
}

/// [`python_simulcast_publisher_under_a_600_kbit_uplink_limit`] with a single layer.
#[test]
fn python_single_layer_publisher_under_a_600_kbit_uplink_limit() {
    python_under_a_rate_limit(
        "python_single_layer_publisher_under_a_600_kbit_uplink_limit",
        false,
    );
}

fn python_under_a_rate_limit(test: &str, simulcast: bool) {
    let _one = one_at_a_time();
    let Some(ns) = NetNs::enter_for_test(test) else {
        return;
    };
    const LIMIT_KBIT: u32 = 600;
    let started = Instant::now();
    let server = LiveKitServer::start().expect("livekit-server starts in the namespace");
    ns.limit_rate(
        LIMIT_KBIT,
        wavecast_testbed::UdpLeg::ToPort(server.udp_port()),
    )
    .expect("the rate limit");
    let room = "python-limited";
    let mut args = vec![
        "--room",
        room,
        "--identity",
        "py-caster",
        "--codec",
        "vp8",
        "--seconds",
        "30",
        "--stats-every",
        "2",
    ];
    if simulcast {
        args.push("--simulcast");
    }
    let mut publisher =
        PythonPeer::spawn(&server, "media_publish.py", &args).expect("the Python publisher starts");
    publisher
        .wait_line("READY", Duration::from_secs(30))
        .expect("the Python publisher publishes");
    // Let the bandwidth estimate meet the limit first.
    std::thread::sleep(Duration::from_secs(8));
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64()
    };
    let window_start = unix_now();
    let track = python_receives(&server, room, "py-caster");
    let window_end = unix_now();
    let policed = ns.rate_counters().expect("the policer's counters");
    eprintln!("python received: {track}");
    // The publisher's send rate while the subscriber watched: its reports (every layer's
    // bytes, every 2 s; all of them wait in the pipe) nearest the window's ends.
    let mut first: Option<(f64, u64)> = None;
    let mut last: Option<(f64, u64, Value)> = None;
    while let Ok(line) = publisher.wait_line("STATS", Duration::from_secs(10)) {
        let stats = parse("media_publish.py", &line);
        let at = stats["at_unix_s"].as_f64().unwrap_or(0.0);
        let bytes: u64 = stats["layers"]
            .as_array()
            .map(|ls| ls.iter().filter_map(|l| l["bytes_sent"].as_u64()).sum())
            .unwrap_or(0);
        if at < window_start {
            continue;
        }
        first.get_or_insert((at, bytes));
        let done = at >= window_end;
        last = Some((at, bytes, stats));
        if done {
            break;
        }
    }
    let send_kbit = match (first, &last) {
        (Some((t0, b0)), Some((t1, b1, stats))) if *t1 > t0 => {
            eprintln!("publisher layers: {}", stats["layers"]);
            (b1 - b0) as f64 * 8.0 / 1000.0 / (t1 - t0)
        }
        _ => f64::NAN,
    };
    let frames = track["frames"].as_u64().unwrap_or(0);
    let fps = track["fps"].as_f64().unwrap_or(0.0);
    eprintln!(
        "{test}: subscriber {frames} frames at {fps} fps, sizes {}; publisher sends {send_kbit:.0} \
         kbit/s of RTP payload; policer saw {} datagrams, dropped {} ({:.1} %); {:.1} s",
        track["sizes"],
        policed.seen,
        policed.dropped,
        policed.loss_percent(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        policed.seen > 1000,
        "the publisher's uplink did not cross the limited leg: {policed:?}"
    );
    assert!(frames >= 20, "the subscriber got {frames} frames: {track}");
    assert!(
        send_kbit < f64::from(LIMIT_KBIT) * 1.5,
        "the publisher still sends {send_kbit:.0} kbit/s through a {LIMIT_KBIT} kbit/s limit"
    );
}
