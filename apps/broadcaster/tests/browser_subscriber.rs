//! Our broadcaster publishes, a browser watches: Debian's Chromium, headless, runs the official
//! JavaScript SDK (livekit-client, adaptive stream and dynacast on) and subscribes to the
//! broadcaster's synthetic stamped video and tone. The page counts the frames it presents
//! (requestVideoFrameCallback), reads the picture size (videoWidth × videoHeight) and measures
//! the tone with WebAudio (AnalyserNode FFT peak). Everything runs in a private network
//! namespace (libwebrtc gathers no candidate on loopback alone); measured figures are printed.

use std::time::Duration;

use wavecast_testbed::apps as common;
use wavecast_testbed::browser::{BrowserPeer, SubscribeOptions};
use wavecast_testbed::{LiveKitServer, NetNs, ServerOptions};
use wavecast_token::Preset;

const BROADCASTER: &str = env!("CARGO_BIN_EXE_broadcaster");

/// What the broadcaster sends: 640×360 at 30 fps, 800 kbps, and this tone.
const VIDEO: [u32; 4] = [640, 360, 30, 800];
const TONE_HZ: f64 = 550.0;
/// How long the page measures, once the first frame is shown.
const MEASURE_S: u32 = 8;
/// The least share of the broadcaster's frames (by stamp number, over the measured window)
/// the page must present.
const MIN_PRESENTED_PCT: f64 = 85.0;
/// The least frame rate the page must present: video keeps moving. Of the 30 the broadcaster
/// aims at, a debug build on a busy 2-core machine sends 13 to 30 (its `stats:` lines), and
/// 7.6–8.5 was seen with two busy loops beside the test, which is why the share above is the
/// real measure.
const MIN_FPS: f64 = 5.0;

/// The two tests here each run a debug broadcaster and a Chromium: one at a time, so neither
/// starves the other of the machine's two cores.
static ONE_BROWSER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn browser_subscribes_to_the_broadcaster() {
    let _one = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let test = "browser_subscribes_to_the_broadcaster";
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    let server = LiveKitServer::start_with(&ServerOptions {
        media_ip: Some(NetNs::ADDR),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts in the namespace");
    let url = server.ws_url();
    let room = "browser-subscribes";
    let mut b =
        common::broadcaster_command(BROADCASTER.as_ref(), &url, room, "caster", VIDEO, "60s");
    b.args(["--tone", &TONE_HZ.to_string(), "--stats-interval", "1s"]);
    let caster = common::Background::spawn("broadcaster", &mut b);

    let token = server.token("browser", room, Preset::Viewer);
    let mut browser =
        BrowserPeer::subscribe(&url, &token, "caster", MEASURE_S).expect("the browser peer starts");
    let result = browser.wait_json("RESULT", Duration::from_secs(90));
    common::send_signal(caster.pid(), "INT");
    let caster = caster.finish(Duration::from_secs(10));
    let result = result.unwrap_or_else(|e| panic!("{e}\n--- broadcaster\n{}", caster.output()));
    eprintln!("browser measured: {result}");

    let frames = result["frames"].as_u64().expect("frames");
    let fps = result["fps"].as_f64().expect("fps");
    let (w, h) = (
        result["video_width"].as_u64().expect("video_width"),
        result["video_height"].as_u64().expect("video_height"),
    );
    let stamps = &result["stamps"];
    let (read, unread) = (
        stamps["read"].as_u64().unwrap_or(0),
        stamps["unread"].as_u64().unwrap_or(0),
    );
    let presented_pct = stamps["presented_pct"].as_f64().unwrap_or(0.0);
    let age_p95 = stamps["age_p95_ms"].as_f64().unwrap_or(f64::INFINITY);
    let audio = &result["audio"];
    let tone = audio["tone_hz"].as_f64().unwrap_or(0.0);
    eprintln!(
        "BROADCASTER → BROWSER: {frames} frames presented in {:.1} s = {fps:.1} fps, {w}x{h}, \
         first frame {} ms after joining; stamps read on {read} frames ({unread} unreadable), \
         frames {}..{} of the broadcaster: {presented_pct:.1} % presented, capture to shown \
         p50 {} ms p95 {age_p95:.0} ms; tone {tone:.1} Hz at {:.1} dB ({} of {} spectra, \
         AudioContext at {} Hz)",
        result["seconds"].as_f64().unwrap_or(0.0),
        result["join_to_first_frame_ms"],
        stamps["first"],
        stamps["last"],
        stamps["age_p50_ms"].as_f64().unwrap_or(f64::NAN).round(),
        audio["peak_db"].as_f64().unwrap_or(f64::NAN),
        audio["snapshots"],
        MEASURE_S * 4,
        audio["sample_rate"],
    );
    assert_eq!(
        (w, h),
        (u64::from(VIDEO[0]), u64::from(VIDEO[1])),
        "{result}"
    );
    // The pictures are the broadcaster's (stamps readable), nearly all of those it sent in the
    // window were shown, and they keep moving.
    assert!(
        read > 0 && unread * 10 <= read,
        "{read} stamps read, {unread} unreadable: {result}"
    );
    assert!(
        presented_pct >= MIN_PRESENTED_PCT,
        "{presented_pct:.1} % of the broadcaster's frames presented (want ≥ {MIN_PRESENTED_PCT}): {result}"
    );
    assert!(
        fps >= MIN_FPS,
        "{frames} frames = {fps:.1} fps presented (want ≥ {MIN_FPS}): {result}"
    );
    assert!(
        age_p95 < 2000.0,
        "capture to shown p95 {age_p95} ms: {result}"
    );
    assert!(
        (tone - TONE_HZ).abs() <= 3.0,
        "the page heard {tone:.1} Hz, the broadcaster sent {TONE_HZ} Hz: {result}"
    );
    assert_eq!(
        caster.code(),
        0,
        "the broadcaster ends cleanly on SIGINT\n{}",
        caster.output()
    );
}

/// End-to-end encryption (issue 21): the broadcaster encrypts with a passphrase
/// (`--e2ee-key`), the browser subscribes with the same one (livekit-client's
/// `ExternalE2EEKeyProvider` and e2ee worker) and must show our pictures — stamps readable, so
/// decrypted, nearly all of them — and hear the tone, with no decryption error.
#[test]
fn browser_decrypts_an_encrypted_broadcaster() {
    let _one = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let test = "browser_decrypts_an_encrypted_broadcaster";
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    let key = "broadcaster and browser share this";
    let server = LiveKitServer::start_with(&ServerOptions {
        media_ip: Some(NetNs::ADDR),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts in the namespace");
    let url = server.ws_url();
    let room = "browser-subscribes-e2ee";
    let mut b =
        common::broadcaster_command(BROADCASTER.as_ref(), &url, room, "caster", VIDEO, "60s");
    b.args(["--tone", &TONE_HZ.to_string(), "--stats-interval", "1s"]);
    b.args(["--e2ee-key", key]);
    let caster = common::Background::spawn("broadcaster", &mut b);

    let token = server.token("browser", room, Preset::Viewer);
    let options = SubscribeOptions {
        e2ee_key: Some(key.into()),
    };
    let mut browser = BrowserPeer::subscribe_with(&url, &token, "caster", MEASURE_S, &options)
        .expect("the browser peer starts");
    let result = browser.wait_json("RESULT", Duration::from_secs(90));
    common::send_signal(caster.pid(), "INT");
    let caster = caster.finish(Duration::from_secs(10));
    let result = result.unwrap_or_else(|e| panic!("{e}\n--- broadcaster\n{}", caster.output()));
    let stamps = &result["stamps"];
    let (read, unread) = (
        stamps["read"].as_u64().unwrap_or(0),
        stamps["unread"].as_u64().unwrap_or(0),
    );
    let presented_pct = stamps["presented_pct"].as_f64().unwrap_or(0.0);
    let tone = result["audio"]["tone_hz"].as_f64().unwrap_or(0.0);
    let e2ee = &result["e2ee"];
    eprintln!(
        "BROADCASTER (E2EE) → BROWSER: {} frames presented, {}x{}, stamps read on {read} \
         ({unread} unreadable), {presented_pct:.1} % of the broadcaster's frames presented; \
         tone {tone:.1} Hz; page E2EE {e2ee}",
        result["frames"], result["video_width"], result["video_height"],
    );
    assert_eq!(e2ee["enabled"], true, "{result}");
    assert_eq!(
        e2ee["errors"].as_u64(),
        Some(0),
        "decryption errors in the page: {result}"
    );
    assert!(
        read > 0 && unread * 10 <= read,
        "{read} stamps read, {unread} unreadable: the page did not decrypt our pictures: {result}"
    );
    assert!(
        presented_pct >= MIN_PRESENTED_PCT,
        "{presented_pct:.1} % of the broadcaster's frames presented (want ≥ {MIN_PRESENTED_PCT}): {result}"
    );
    assert!(
        (tone - TONE_HZ).abs() <= 3.0,
        "the page heard {tone:.1} Hz, the broadcaster sent {TONE_HZ} Hz: {result}"
    );
    assert_eq!(
        caster.code(),
        0,
        "the broadcaster ends cleanly on SIGINT\n{}",
        caster.output()
    );
}
