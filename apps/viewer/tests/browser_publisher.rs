//! A browser publishes, our viewer watches: Debian's Chromium, headless, runs the official
//! JavaScript SDK (livekit-client) with its default publish settings — simulcast, VP8 with a
//! backup codec, RED and DTX audio, capture at 720p with echo cancellation, noise suppression
//! and auto gain, plus adaptive stream and dynacast — and publishes its fake camera and
//! microphone, fed with our stamped Y4M and a WAV tone. Mid-stream the page halves its capture
//! size, as libwebrtc's adaptation does under pressure. The viewer (headless) must receive the
//! frames (with readable stamps: the pictures are ours, through simulcast layers and the size
//! change), follow the change to the smaller size, and hear the tone at its frequency.
//! Everything runs in a private network namespace (libwebrtc gathers no candidate on loopback
//! alone); measured figures are printed.
//!
//! The simulcast layer: the viewer must be on the largest layer the server can forward —
//! 640×360 until the capture is halved, then 160×90 (libwebrtc encodes a single layer for a
//! 320×180 capture) — within 3 s of any change, and never drop below it. Which layers the
//! server can forward is its own record (its debug log, [`server_availability`]: a layer the
//! browser paused counts again only after 10 s of steady packets); their sizes come from the
//! page, which records when each layer encodes and at what size (`layer_timeline`).
//!
//! Why the check reads the server's record instead of assuming the top layer: Chromium may stop
//! its own 640×360 layer on a loaded machine, and the server forwards a resumed upper layer
//! only after its stream tracker has seen it steady. The runs behind these rules and their
//! figures: docs/PERFORMANCE.md, "Browser publisher: simulcast layers".

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wavecast_media::{AudioSource, ToneGenerator, WavReader, WavWriter, Waveform};
use wavecast_pipeline::analysis::SpectrumAnalyzer;
use wavecast_pipeline::{AudioFormat, AudioFrameMut, Timestamp};
use wavecast_testbed::apps as common;
use wavecast_testbed::browser::{BrowserPeer, PublishOptions};
use wavecast_testbed::{LiveKitServer, NetNs, ServerOptions};
use wavecast_token::Preset;

mod stamped_y4m;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

/// The camera file: 640×360 at 30 fps, 3 s, looped by Chromium.
const SOURCE: (u32, u32) = (640, 360);
const FPS: u32 = 30;
const LOOP_FRAMES: u32 = 90;
/// The microphone file: this tone, 2 s (a whole number of periods: the loop is seamless).
const TONE_HZ: f64 = 660.0;
/// Video frames the viewer waits for (11 s of livekit-client's 20 fps for 360p).
const FRAMES: u64 = 220;
/// When the page halves its capture size (after it published): the viewer shows the full
/// size for about 5 s before.
const DOWNSCALE_AFTER: Duration = Duration::from_secs(6);
/// How soon after that the viewer must decode the smaller pictures.
const FOLLOW_WITHIN_S: f64 = 2.0;
/// The page reads its clock once the capture change is applied; pictures of the new size may
/// be decoded a little before.
const SCALE_CLOCK_SLACK_S: f64 = 0.5;
/// How long the viewer may take to be on the browser's top simulcast layer once that layer
/// changed (or once the viewer's first picture arrived): the server notices a layer that
/// stopped after about 0.5 s, and switching up waits for a keyframe and, right after
/// publishing, for the sender report that aligns the layers' timestamps (the slowest switch
/// seen is in docs/PERFORMANCE.md, "Browser publisher: simulcast layers").
const ON_TOP_WITHIN_S: f64 = 3.0;

/// The two browser tests here each run a Chromium publishing and a debug viewer: one at a
/// time, so neither starves the other of the machine's two cores (the layer checks need a
/// browser that is not starved).
static ONE_BROWSER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn viewer_receives_a_browser_publishing_with_default_settings() {
    let _one = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let test = "viewer_receives_a_browser_publishing_with_default_settings";
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let camera = dir.path().join("camera.y4m");
    let microphone = dir.path().join("tone.wav");
    write_stamped_y4m(&camera);
    write_tone_wav(&microphone);

    let server = LiveKitServer::start_with(&ServerOptions {
        media_ip: Some(NetNs::ADDR),
        // Its layer decisions, which the viewer's sizes are checked against.
        log_level: Some("debug"),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts in the namespace");
    let url = server.ws_url();
    let room = "browser-publishes";
    let token = server.token("browser", room, Preset::Broadcaster);
    let mut browser = BrowserPeer::publish(
        &url,
        &token,
        &PublishOptions {
            video: Some(camera),
            audio: Some(microphone),
            downscale_after: Some(DOWNSCALE_AFTER),
            ..PublishOptions::default()
        },
        60,
    )
    .expect("the browser peer starts");
    let ready = browser
        .wait_json("READY", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("the browser publishes: {e}"));
    eprintln!("browser published: {ready}");
    let published_at = ready["published_at_unix_ms"].as_f64().expect("a time") / 1000.0;

    let viewer_started = unix_now();
    let heard = dir.path().join("heard.wav");
    let stats_path = dir.path().join("stats.json");
    let run = common::run(
        common::join_command(VIEWER, &url, room, "watcher")
            .args([
                "--participant",
                "browser",
                "--headless",
                "--size",
                "320x180",
            ])
            .args(["--frames", &FRAMES.to_string(), "--timeout", "40s"])
            .arg("--audio-out")
            .arg(format!("wav:{}", heard.display()))
            .arg("--stats")
            .arg(&stats_path),
        Duration::from_secs(60),
    );
    browser.stop();
    let scaled = browser.wait_json("SCALED", Duration::from_secs(30));
    let sent = browser.wait_json("RESULT", Duration::from_secs(30));
    assert_eq!(
        run.code(),
        0,
        "viewer failed\n{}\n--- browser\n{}",
        run.output(),
        browser.stderr()
    );
    let scaled = scaled.unwrap_or_else(|e| panic!("the browser scales its capture: {e}"));
    let sent = sent.unwrap_or_else(|e| panic!("the browser's figures: {e}"));
    eprintln!("browser encoders: {}", sent["video_layers"]);
    // livekit-client's defaults were in force: the camera went out as simulcast layers.
    let layers = sent["video_layers"].as_array().expect("video layers");
    assert!(
        layers.len() >= 2
            && layers
                .iter()
                .any(|l| l["frames_encoded"].as_u64() > Some(0)),
        "the browser did not publish simulcast: {layers:?}"
    );

    let stats = common::json(&stats_path);
    let video = &stats["video"];
    let stream = &stats["streams"]["video"][0];
    eprintln!("viewer video: {video}\nviewer stream: {stream}");
    assert_eq!(stream["participant"], "browser", "{stream}");
    let received = video["frames_received"].as_u64().expect("frames_received");
    assert!(received >= FRAMES, "{video}");

    // Sizes. The server forwards one simulcast layer (the full or the half-size one; which,
    // and when it switches, is its allocator's choice), so the viewer starts at a size of the
    // source's layers and, soon after the browser halves its capture, decodes a smaller size,
    // at most the halved capture's, and nothing larger after that. Every size is the source
    // scaled down, keeping its aspect.
    let sizes = stream["sizes"].as_array().expect("sizes");
    assert!(!sizes.is_empty(), "{stream}");
    let size_of = |s: &serde_json::Value| {
        (
            s["width"].as_u64().expect("width"),
            s["height"].as_u64().expect("height"),
        )
    };
    let at = |s: &serde_json::Value| s["at_unix_s"].as_f64().expect("at_unix_s");
    let half = (
        scaled["width"].as_u64().expect("width"),
        scaled["height"].as_u64().expect("height"),
    );
    assert_eq!(
        half,
        (u64::from(SOURCE.0 / 2), u64::from(SOURCE.1 / 2)),
        "{scaled}"
    );
    let scaled_at = scaled["at_unix_ms"].as_f64().expect("at_unix_ms") / 1000.0;
    // The first small pictures can be decoded a moment before the page's call returns.
    let (before, after): (Vec<_>, Vec<_>) = sizes
        .iter()
        .partition(|s| at(s) < scaled_at - SCALE_CLOCK_SLACK_S);
    let was = before
        .last()
        .map(|s| size_of(s))
        .unwrap_or_else(|| panic!("no pictures before the browser scaled: {stream}"));
    // The first picture of at most the halved size (pictures of the old size may still be
    // in flight within the slack).
    let follows = after
        .iter()
        .position(|s| size_of(s).0 <= half.0)
        .unwrap_or_else(|| panic!("no smaller pictures after the browser scaled: {stream}"));
    let followed = after[follows];
    let follow_s = at(followed) - scaled_at;
    let now = size_of(followed);
    assert!(
        now.0 < was.0 && follow_s <= FOLLOW_WITHIN_S,
        "the viewer went from {was:?} to {now:?} {follow_s:.2} s after the browser halved its \
         capture: {stream}"
    );
    assert!(
        after[follows..].iter().all(|s| size_of(s).0 <= half.0),
        "larger than the halved capture after it: {stream}"
    );
    for s in sizes {
        let (w, h) = (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap());
        let aspect = w as f64 / h as f64;
        let want = f64::from(SOURCE.0) / f64::from(SOURCE.1);
        assert!(
            w <= u64::from(SOURCE.0) && h <= u64::from(SOURCE.1) && (aspect - want).abs() < 0.05,
            "{w}x{h} is not the {}x{} source scaled down: {stream}",
            SOURCE.0,
            SOURCE.1
        );
    }
    // The layer: the server forwards one simulcast layer; our viewer asks for the best
    // (UpdateTrackSettings quality HIGH) and must be on the largest one the browser is
    // encoding — the full size until the capture is halved (then libwebrtc encodes one layer
    // only), or a smaller one whenever the browser itself stops its top layer — except for
    // [`ON_TOP_WITHIN_S`] after that top layer changed, and it never drops below it.
    let timeline = LayerTimeline::new(&sent, server_availability(&server.log()));
    let last_at = first_at_s(sizes) + stream["seconds"].as_f64().expect("seconds");
    let held = timeline.check_viewer(sizes, last_at).unwrap_or_else(|e| {
        panic!(
            "{e}\nbrowser layers (s after publishing): {}\nviewer: {}\n{stream}",
            timeline.describe(published_at),
            describe_sizes(sizes, published_at)
        )
    });
    eprintln!(
        "LAYERS: top layer the server could forward {} ; viewer {} (s after publishing); checked on the top \
         layer: {}\nbrowser layers: {}",
        timeline.describe_top(published_at),
        describe_sizes(sizes, published_at),
        held,
        timeline.describe(published_at)
    );

    // The pictures are ours: most carry a readable stamp.
    let stamped = stream["stamped_frames"].as_u64().unwrap_or(0);
    let decoded = stream["frames_decoded"].as_u64().unwrap_or(0);
    assert!(
        stamped * 2 >= decoded && stamped > 0,
        "{stamped} of {decoded} pictures carry a readable stamp: {stream}"
    );
    let first_at = sizes[0]["at_unix_s"].as_f64().expect("at_unix_s");

    // The tone: the viewer's WAV output has the microphone file's frequency.
    let (tone, level) = dominant_frequency(&heard);
    let audio = &stats["audio"];
    eprintln!(
        "BROWSER → VIEWER: {received} frames ({stamped} of {decoded} decoded with a stamp), \
         sizes {} (the halved capture decoded {:.0} ms after the browser scaled), first frame \
         {:.2} s after the viewer started ({:.2} s after the browser published), {:.1} fps; \
         tone {tone:.1} Hz at {level:.1} dBFS ({} s of audio, {} packets)",
        sizes
            .iter()
            .map(|s| format!("{}x{}", s["width"], s["height"]))
            .collect::<Vec<_>>()
            .join(" → "),
        follow_s * 1000.0,
        first_at - viewer_started,
        first_at - published_at,
        video["fps"].as_f64().unwrap_or(0.0),
        audio["seconds"],
        audio["packets"],
    );
    assert!(
        (tone - TONE_HZ).abs() <= 5.0,
        "the viewer heard {tone:.1} Hz at {level:.1} dBFS, the browser sent {TONE_HZ} Hz"
    );
}

/// The camera loop of the end-to-end encrypted run: 5 s, so the viewer's run sees at most two
/// restarts of the frame numbers.
const E2EE_LOOP_FRAMES: u32 = 150;
/// The passphrase both sides are given.
const E2EE_KEY: &str = "browser and viewer share this";

/// End-to-end encryption (issue 21): the browser publishes with livekit-client's E2EE (a shared
/// passphrase, `ExternalE2EEKeyProvider` and its e2ee worker). A viewer with a wrong passphrase
/// receives nothing it could show — no frame is handed to its decoder — and says why; the
/// viewer with the passphrase decodes the stamped pictures in order and hears the tone.
#[test]
fn viewer_decrypts_a_browser_publishing_with_e2ee() {
    let _one = ONE_BROWSER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let test = "viewer_decrypts_a_browser_publishing_with_e2ee";
    let Some(_ns) = NetNs::enter_for_test(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let camera = dir.path().join("camera.y4m");
    let microphone = dir.path().join("tone.wav");
    stamped_y4m::write(&camera, SOURCE, FPS, E2EE_LOOP_FRAMES);
    write_tone_wav(&microphone);
    let server = LiveKitServer::start_with(&ServerOptions {
        media_ip: Some(NetNs::ADDR),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts in the namespace");
    let url = server.ws_url();
    let room = "browser-publishes-e2ee";
    let token = server.token("browser", room, Preset::Broadcaster);
    let mut browser = BrowserPeer::publish(
        &url,
        &token,
        &PublishOptions {
            video: Some(camera),
            audio: Some(microphone),
            e2ee_key: Some(E2EE_KEY.into()),
            ..PublishOptions::default()
        },
        90,
    )
    .expect("the browser peer starts");
    let ready = browser
        .wait_json("READY", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("the browser publishes: {e}"));
    eprintln!("browser published with E2EE: {ready}");

    let viewer =
        |identity: &str, key: &str, frames: u64, timeout: &str, stats: &Path, heard: &Path| {
            common::run(
                common::join_command(VIEWER, &url, room, identity)
                    .args([
                        "--participant",
                        "browser",
                        "--headless",
                        "--size",
                        "320x180",
                    ])
                    .args(["--frames", &frames.to_string(), "--timeout", timeout])
                    .args(["--e2ee-key", key])
                    .arg("--audio-out")
                    .arg(format!("wav:{}", heard.display()))
                    .arg("--stats")
                    .arg(stats),
                Duration::from_secs(60),
            )
        };
    // A wrong passphrase: nothing decodes (the viewer ends short of its frames) and it says why.
    let (wrong_stats, wrong_heard) = (dir.path().join("wrong.json"), dir.path().join("wrong.wav"));
    let wrong = viewer(
        "wrong-key",
        "not the passphrase",
        30,
        "8s",
        &wrong_stats,
        &wrong_heard,
    );
    let wrong_json = common::json(&wrong_stats);
    let wrong_video = wrong_json["video"].clone();
    let wrong_e2ee = &wrong_json["e2ee"];
    eprintln!(
        "viewer with a wrong passphrase: exit {}, {wrong_video}, e2ee {wrong_e2ee}",
        wrong.code()
    );
    assert_eq!(wrong_e2ee["decrypted"].as_u64(), Some(0), "{wrong_e2ee}");
    assert!(
        wrong_e2ee["decrypt_failed"].as_u64() > Some(30),
        "{wrong_e2ee}"
    );
    assert_ne!(
        wrong.code(),
        0,
        "the wrong passphrase showed 30 frames\n{}",
        wrong.output()
    );
    assert_eq!(
        wrong_video["frames_received"].as_u64(),
        Some(0),
        "{wrong_video}"
    );
    assert!(
        wrong.output().contains("DecryptionFailed"),
        "the viewer does not say why nothing shows\n{}",
        wrong.output()
    );

    // The passphrase: the pictures, in order, and the tone.
    let (stats_path, heard) = (dir.path().join("stats.json"), dir.path().join("heard.wav"));
    let run = viewer("watcher", E2EE_KEY, 150, "40s", &stats_path, &heard);
    browser.stop();
    let sent = browser.wait_json("RESULT", Duration::from_secs(30));
    assert_eq!(
        run.code(),
        0,
        "viewer failed\n{}\n--- browser\n{}",
        run.output(),
        browser.stderr()
    );
    let sent = sent.unwrap_or_else(|e| panic!("the browser's figures: {e}"));
    assert_eq!(
        sent["e2ee"]["enabled"], true,
        "the browser encrypted: {}",
        sent["e2ee"]
    );
    let stats = common::json(&stats_path);
    let stream = &stats["streams"]["video"][0];
    let e2ee = &stats["e2ee"];
    assert!(e2ee["decrypted"].as_u64() > Some(150), "{e2ee}");
    let decoded = stream["frames_decoded"].as_u64().unwrap_or(0);
    let stamped = stream["stamped_frames"].as_u64().unwrap_or(0);
    let regressions = stream["stamp_regressions"]
        .as_u64()
        .expect("stamp_regressions");
    let seconds = stream["seconds"].as_f64().unwrap_or(0.0);
    let (tone, level) = dominant_frequency(&heard);
    eprintln!(
        "BROWSER (E2EE) → VIEWER: {decoded} pictures in {seconds:.1} s, {stamped} with a stamp, \
         frame numbers {}..{} ({} distinct), {regressions} times lower than the one before (the \
         {E2EE_LOOP_FRAMES}-frame camera loop restarting); tone {tone:.1} Hz at {level:.1} dBFS",
        stream["first_frame_number"], stream["last_frame_number"], stream["distinct_frame_numbers"],
    );
    assert!(decoded >= 150, "{stream}");
    assert!(
        stamped * 10 >= decoded * 9,
        "{stamped} of {decoded} pictures carry a readable stamp: decrypted pictures are ours: {stream}"
    );
    // In order: the numbers only go down where the 5 s camera loop starts over.
    // (A window of T seconds holds at most ⌈T / loop⌉ restarts; 0.5 s for the pacing of the
    // first and last pictures.)
    let loops = ((seconds + 0.5) / (f64::from(E2EE_LOOP_FRAMES) / f64::from(FPS))).ceil() as u64;
    assert!(
        regressions <= loops,
        "{regressions} regressions in {seconds:.1} s (at most {loops} loop restarts): {stream}"
    );
    assert!(
        (tone - TONE_HZ).abs() <= 5.0,
        "the viewer heard {tone:.1} Hz at {level:.1} dBFS, the browser sent {TONE_HZ} Hz"
    );
}

/// When the viewer decoded its first picture (seconds since the UNIX epoch).
fn first_at_s(sizes: &[serde_json::Value]) -> f64 {
    sizes[0]["at_unix_s"].as_f64().expect("at_unix_s")
}

/// The viewer's size changes as `WxH@+s`, seconds after `origin`.
fn describe_sizes(sizes: &[serde_json::Value], origin: f64) -> String {
    sizes
        .iter()
        .map(|s| {
            let at = s["at_unix_s"].as_f64().expect("at_unix_s");
            format!("{}x{}@{:+.2}", s["width"], s["height"], at - origin)
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// One entry of the browser's layer timeline (tests/browser/page.js `watchLayers`): a
/// simulcast layer started or stopped encoding, or changed size or quality limitation.
#[derive(Debug)]
struct LayerChange {
    at: f64,
    rid: String,
    sending: bool,
    size: Option<(u64, u64)>,
    limitation: String,
}

/// livekit-client's simulcast layers from the lowest (livekit-server's spatial layers 0, 1, 2).
const RIDS: [&str; 3] = ["q", "h", "f"];

/// livekit-server's record of the video layers it could forward: (when, available spatial
/// layers), from its `available layers changed` lines (debug level). Its stream tracker
/// (`pkg/sfu/streamtracker`) counts a layer gone after a 500 ms cycle with too few packets and
/// back only after 20 cycles with packets (the lowest layer: 4); a layer's very first packet
/// counts at once.
fn server_availability(log: &str) -> Vec<(f64, Vec<usize>)> {
    log.lines()
        .filter(|l| l.contains("available layers changed") && l.contains("video/"))
        .filter_map(|l| {
            let at = humantime::parse_rfc3339(l.split('\t').next()?).ok()?;
            let at = at.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
            let fields: serde_json::Value =
                serde_json::from_str(l.split('\t').next_back()?).ok()?;
            let layers = fields["availableLayers"]
                .as_array()?
                .iter()
                .filter_map(|v| usize::try_from(v.as_u64()?).ok())
                .collect();
            Some((at, layers))
        })
        .collect()
}

/// The browser's camera layers over time and the layers the server could forward, and so the
/// largest picture the viewer can get.
#[derive(Debug)]
struct LayerTimeline {
    changes: Vec<LayerChange>,
    /// [`server_availability`].
    available: Vec<(f64, Vec<usize>)>,
    /// How often the page sampled (its timeline lags the encoder by up to this).
    sample_s: f64,
    /// (from, top size) each time the largest forwardable size changed.
    tops: Vec<(f64, Option<(u64, u64)>)>,
}

impl LayerTimeline {
    fn new(result: &serde_json::Value, available: Vec<(f64, Vec<usize>)>) -> Self {
        let entries = result["layer_timeline"]
            .as_array()
            .unwrap_or_else(|| panic!("no layer_timeline in the browser's result: {result}"));
        let changes: Vec<LayerChange> = entries
            .iter()
            .map(|e| LayerChange {
                at: e["at_unix_ms"].as_f64().expect("at_unix_ms") / 1000.0,
                rid: e["rid"].as_str().unwrap_or("").to_owned(),
                sending: e["sending"].as_bool().expect("sending"),
                size: e["width"].as_u64().zip(e["height"].as_u64()),
                limitation: e["limitation"].as_str().unwrap_or("?").to_owned(),
            })
            .collect();
        assert!(!changes.is_empty(), "an empty layer timeline: {result}");
        assert!(
            !available.is_empty(),
            "the server logged no layer availability (is it at debug level?)"
        );
        let sample_s = result["layer_sample_ms"].as_f64().expect("layer_sample_ms") / 1000.0;
        let mut timeline = Self {
            changes,
            available,
            sample_s,
            tops: Vec::new(),
        };
        let mut times: Vec<f64> = timeline.changes.iter().map(|c| c.at).collect();
        times.extend(timeline.available.iter().map(|a| a.0));
        times.sort_by(f64::total_cmp);
        for t in times {
            let top = timeline.top_at(t);
            if timeline.tops.last().map(|x| x.1) != Some(top) {
                timeline.tops.push((t, top));
            }
        }
        timeline
    }

    /// The largest picture the server could forward at `t`: the largest layer it counted as
    /// available, at the size the browser last encoded that layer; `None`: none.
    fn top_at(&self, t: f64) -> Option<(u64, u64)> {
        let (_, layers) = self.available.iter().rev().find(|a| a.0 <= t)?;
        layers
            .iter()
            .filter_map(|&layer| {
                let rid = RIDS.get(layer)?;
                let sized = self
                    .changes
                    .iter()
                    .filter(|c| c.rid == *rid && c.size.is_some());
                let mut before = sized.clone().filter(|c| c.at <= t);
                // The server sees a layer a moment before the page's first sample.
                before.next_back().or_else(|| sized.clone().next())?.size
            })
            .max_by_key(|s| s.0 * s.1)
    }

    /// Checks the viewer's sizes against the top layer from its first picture to `last_at`:
    /// wherever the top layer has been the same for [`ON_TOP_WITHIN_S`] (and the viewer has
    /// been watching that long) the viewer shows it, and every drop of the viewer's size
    /// follows a drop of the top layer. Returns how long it was checked on each size.
    fn check_viewer(&self, sizes: &[serde_json::Value], last_at: f64) -> Result<String, String> {
        let viewer: Vec<(f64, (u64, u64))> = sizes
            .iter()
            .map(|s| {
                let at = s["at_unix_s"].as_f64().expect("at_unix_s");
                (
                    at,
                    (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()),
                )
            })
            .collect();
        let first_at = viewer[0].0;
        let viewer_at = |t: f64| viewer.iter().rev().find(|v| v.0 <= t).map(|v| v.1);
        let area = |s: (u64, u64)| s.0 * s.1;
        // Every drop of the viewer's size comes after the browser's top layer dropped (at most
        // ON_TOP_WITHIN_S before; the page's sampling may see it a little after).
        for pair in viewer.windows(2) {
            let ((_, was), (at, now)) = (pair[0], pair[1]);
            if area(now) >= area(was) {
                continue;
            }
            let cause = (1..self.tops.len()).any(|i| {
                // Compared with the last layer there was (a gap with none is no rise).
                let before = self.tops[..i].iter().rev().find_map(|x| x.1);
                let (when, top) = self.tops[i];
                let dropped = match (before, top) {
                    (Some(a), Some(b)) => area(b) < area(a),
                    (Some(_), None) => true,
                    _ => false,
                };
                dropped && when >= at - ON_TOP_WITHIN_S && when <= at + 2.0 * self.sample_s
            });
            if !cause {
                return Err(format!(
                    "the viewer dropped from {was:?} to {now:?} while the browser's top layer \
                     did not change"
                ));
            }
        }
        // Wherever the top layer has been stable for ON_TOP_WITHIN_S (and does not change in
        // the next two samples), the viewer is on it.
        let step = 0.05;
        let mut checked: Vec<((u64, u64), f64)> = Vec::new();
        let mut t = first_at + ON_TOP_WITHIN_S;
        while t <= last_at {
            let stable = self
                .tops
                .iter()
                .rev()
                .find(|x| x.0 <= t)
                .and_then(|&(since, top)| Some((since, top?)))
                .filter(|&(since, _)| t - since >= ON_TOP_WITHIN_S)
                // The page sees a change up to a sample late: the viewer may be ahead of it.
                .filter(|_| {
                    !self
                        .tops
                        .iter()
                        .any(|x| x.0 > t && x.0 <= t + 2.0 * self.sample_s)
                });
            if let Some((since, top)) = stable {
                let shown = viewer_at(t);
                if shown != Some(top) {
                    return Err(format!(
                        "{:.2} s after its first picture the viewer showed {shown:?} while the \
                         browser had been encoding {top:?} as its top layer for {:.2} s",
                        t - first_at,
                        t - since
                    ));
                }
                match checked.iter_mut().find(|c| c.0 == top) {
                    Some(c) => c.1 += step,
                    None => checked.push((top, step)),
                }
            }
            t += step;
        }
        if checked.is_empty() {
            return Err("the browser's top layer never held still long enough to check".into());
        }
        // How long the viewer showed the top layer, switching times included.
        let (mut on_top, mut total) = (0.0, 0.0);
        let mut t = first_at;
        while t <= last_at {
            if let Some(top) = self.top_at(t) {
                total += step;
                if viewer_at(t) == Some(top) {
                    on_top += step;
                }
            }
            t += step;
        }
        let checked = checked
            .iter()
            .map(|(s, secs)| format!("{}x{} {secs:.1} s", s.0, s.1))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(format!(
            "{checked}; on the top layer {on_top:.1} s of {total:.1} s ({:.0} %) from its first \
             picture",
            100.0 * on_top / total.max(step)
        ))
    }

    /// The top layer's changes as `WxH@+s` (seconds after `origin`).
    fn describe_top(&self, origin: f64) -> String {
        self.tops
            .iter()
            .map(|(at, top)| match top {
                Some((w, h)) => format!("{w}x{h}@{:+.2}", at - origin),
                None => format!("none@{:+.2}", at - origin),
            })
            .collect::<Vec<_>>()
            .join(" → ")
    }

    /// Every entry, for failure messages.
    fn describe(&self, origin: f64) -> String {
        self.changes
            .iter()
            .map(|c| {
                format!(
                    "{:+.2} {} {} {:?} ({})",
                    c.at - origin,
                    c.rid,
                    if c.sending { "sending" } else { "stopped" },
                    c.size,
                    c.limitation
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
            + "\nserver's available layers: "
            + &self
                .available
                .iter()
                .map(|(at, layers)| format!("{:+.2} {layers:?}", at - origin))
                .collect::<Vec<_>>()
                .join("; ")
    }
}

/// Writes [`LOOP_FRAMES`] frames of the test pattern, each stamped with its number and a
/// capture time from now on (within the viewer's plausibility window, so it reads them; the
/// times are not the browser's capture times, so its latency figure is not one).
fn write_stamped_y4m(path: &Path) {
    stamped_y4m::write(path, SOURCE, FPS, LOOP_FRAMES);
}

/// Writes 2 s of a [`TONE_HZ`] sine at half scale, 48 kHz mono 16-bit.
fn write_tone_wav(path: &Path) {
    let format = AudioFormat::new(48_000, 1).expect("a format");
    let mut tone =
        ToneGenerator::new(format, Waveform::Tone(TONE_HZ), 0.5, Timestamp::now()).expect("a tone");
    let mut writer = WavWriter::create(path, format).expect("create WAV");
    for _ in 0..100 {
        let mut frame = AudioFrameMut::new(format, 960);
        tone.fill(&mut frame);
        writer.write_frame(&frame.freeze()).expect("write audio");
    }
    writer.finish().expect("finish the WAV");
}

/// The strongest frequency (Hz) and its level (dBFS) of the last 16 384 samples of the WAV at
/// `path`, mixed to mono.
fn dominant_frequency(path: &Path) -> (f64, f64) {
    let mut wav = WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let format = wav.format();
    let mut spectrum =
        SpectrumAnalyzer::new(16_384, format.sample_rate).expect("a spectrum analyser");
    let mut samples = 0usize;
    loop {
        let mut frame = AudioFrameMut::new(format, 960);
        match wav.read_frame(&mut frame).expect("read the WAV") {
            0 => break,
            n => {
                samples += n;
                spectrum.push(frame.samples(), format.channels);
            }
        }
    }
    assert!(
        samples >= 16_384 * 2,
        "{}: only {samples} samples",
        path.display()
    );
    spectrum.compute();
    let (f, level) = spectrum
        .dominant_frequency()
        .unwrap_or_else(|| panic!("{}: silence", path.display()));
    (f64::from(f), f64::from(level))
}

/// Seconds since the UNIX epoch (the viewer's stats give times that way).
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The layer check itself, on made-up timelines: it passes a viewer that follows the browser's
/// top layer and fails one the server moved down (or never up) while the browser sent it.
#[test]
fn layer_check_fails_a_viewer_off_the_top_layer() {
    let t0 = 1_000_000.0;
    let entry = |at: f64, rid: &str, sending: bool, w: u64, h: u64| {
        serde_json::json!({
            "at_unix_ms": (t0 + at) * 1000.0, "rid": rid, "sending": sending,
            "width": w, "height": h, "limitation": "none",
        })
    };
    let result = serde_json::json!({
        "layer_sample_ms": 200,
        "layer_timeline": [
            entry(0.4, "h", true, 640, 360),
            entry(0.4, "q", true, 320, 180),
            entry(6.0, "h", false, 640, 360),
            entry(6.0, "q", true, 160, 90),
        ],
    });
    let timeline = LayerTimeline::new(&result, vec![(t0 + 0.4, vec![0, 1]), (t0 + 6.3, vec![0])]);
    assert_eq!(timeline.top_at(t0 + 1.0), Some((640, 360)));
    assert_eq!(timeline.top_at(t0 + 7.0), Some((160, 90)));
    let sizes = |changes: &[(f64, u64, u64)]| -> Vec<serde_json::Value> {
        changes
            .iter()
            .map(|&(at, w, h)| serde_json::json!({"at_unix_s": t0 + at, "width": w, "height": h}))
            .collect()
    };
    // Follows: starts small, is on the full size at once, follows the halving.
    let good = sizes(&[(0.5, 320, 180), (0.6, 640, 360), (6.4, 160, 90)]);
    let held = timeline
        .check_viewer(&good, t0 + 10.0)
        .expect("a viewer on the top layer");
    assert!(
        held.contains("640x360") && held.contains("160x90"),
        "{held}"
    );
    // Moved down while the browser still sent the full size.
    let dropped = sizes(&[(0.5, 640, 360), (3.0, 320, 180), (6.4, 160, 90)]);
    let e = timeline.check_viewer(&dropped, t0 + 10.0).unwrap_err();
    assert!(e.contains("dropped"), "{e}");
    // Never moved up.
    let low = sizes(&[(0.5, 320, 180), (6.4, 160, 90)]);
    let e = timeline.check_viewer(&low, t0 + 10.0).unwrap_err();
    assert!(e.contains("top layer for"), "{e}");

    // The browser pauses its full-size layer for 0.6 s: the server forwards it again only
    // after 10 s of steady sending, so the smaller layer is the top until then (the
    // availability below is what the server logs then).
    let result = serde_json::json!({
        "layer_sample_ms": 200,
        "layer_timeline": [
            entry(0.4, "h", true, 640, 360),
            entry(0.4, "q", true, 320, 180),
            entry(1.0, "h", false, 640, 360),
            entry(1.6, "h", true, 640, 360),
        ],
    });
    let available = vec![
        (t0 + 0.4, vec![0, 1]),
        (t0 + 1.5, vec![0]),
        (t0 + 11.6, vec![0, 1]),
    ];
    let timeline = LayerTimeline::new(&result, available);
    assert_eq!(timeline.top_at(t0 + 5.0), Some((320, 180)));
    assert_eq!(timeline.top_at(t0 + 11.7), Some((640, 360)));
    let follows = sizes(&[(0.5, 640, 360), (2.2, 320, 180), (12.5, 640, 360)]);
    timeline
        .check_viewer(&follows, t0 + 15.0)
        .expect("a viewer that follows the server's rule");
    let stays_low = sizes(&[(0.5, 640, 360), (2.2, 320, 180)]);
    let e = timeline.check_viewer(&stays_low, t0 + 15.0).unwrap_err();
    assert!(e.contains("top layer for"), "{e}");
}

/// The server's availability lines, as livekit-server v1.13.5 writes them at debug level.
#[test]
fn server_availability_reads_the_layer_lines() {
    let log = "2026-11-28T18:33:12.044Z\tDEBUG\tlivekit.pub\tsfu/streamtrackermanager.go:527\t\
        available layers changed - layer seen\t{\"trackID\": \"TR_V\", \"mime\": \"video/VP8\", \
        \"added\": 1, \"availableLayers\": [0, 1]}\n\
        2026-11-28T18:33:13.563Z\tDEBUG\tlivekit.pub\tsfu/streamtrackermanager.go:559\t\
        available layers changed - layer gone\t{\"trackID\": \"TR_V\", \"mime\": \"video/VP8\", \
        \"removed\": 1, \"availableLayers\": [0]}\n\
        2026-11-28T18:33:13.600Z\tDEBUG\tlivekit.sub\tsfu/forwarder.go:1\tswitching feed\t{}\n";
    let got = server_availability(log);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].1.clone(), got[1].1.clone()), (vec![0, 1], vec![0]));
    assert!((got[1].0 - got[0].0 - 1.519).abs() < 1e-6, "{got:?}");
}
