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

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wavecast_media::{AudioSource, FrameRate, TestPattern, ToneGenerator, WavReader, WavWriter};
use wavecast_media::{Waveform, Y4mWriter};
use wavecast_pipeline::analysis::SpectrumAnalyzer;
use wavecast_pipeline::{
    AudioFormat, AudioFrameMut, PixelFormat, Timestamp, VideoFrameMut, VideoLayout,
};
use wavecast_testbed::apps as common;
use wavecast_testbed::browser::{BrowserPeer, PublishOptions};
use wavecast_testbed::{LiveKitServer, NetNs, ServerOptions};
use wavecast_token::Preset;

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

/// The camera file: 640×360 at 30 fps, 3 s, looped by Chromium.
const SOURCE: (u32, u32) = (640, 360);
const FPS: u32 = 30;
const LOOP_FRAMES: u32 = 90;
/// The microphone file: this tone, 2 s (a whole number of periods: the loop is seamless).
const TONE_HZ: f64 = 660.0;
/// Video frames the viewer waits for (7.5 s of livekit-client's 20 fps for 360p).
const FRAMES: u64 = 150;
/// When the page halves its capture size (after it published).
const DOWNSCALE_AFTER: Duration = Duration::from_secs(3);
/// How soon after that the viewer must decode the smaller pictures.
const FOLLOW_WITHIN_S: f64 = 2.0;
/// The page reads its clock once the capture change is applied; pictures of the new size may
/// be decoded a little before.
const SCALE_CLOCK_SLACK_S: f64 = 0.5;

#[test]
fn viewer_receives_a_browser_publishing_with_default_settings() {
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
    let followed = after
        .first()
        .unwrap_or_else(|| panic!("no size change after the browser scaled: {stream}"));
    let follow_s = at(followed) - scaled_at;
    let now = size_of(followed);
    assert!(
        now.0 < was.0 && now.0 <= half.0 && follow_s <= FOLLOW_WITHIN_S,
        "the viewer went from {was:?} to {now:?} {follow_s:.2} s after the browser halved its \
         capture: {stream}"
    );
    assert!(
        after.iter().all(|s| size_of(s).0 <= half.0),
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

/// Writes [`LOOP_FRAMES`] frames of the test pattern, each stamped with its number and a
/// capture time from now on (within the viewer's plausibility window, so it reads them; the
/// times are not the browser's capture times, so its latency figure is not one).
fn write_stamped_y4m(path: &Path) {
    let (w, h) = SOURCE;
    let mut writer = Y4mWriter::create(path, w, h, FrameRate::new(FPS, 1)).expect("create Y4M");
    let layout = VideoLayout::new(PixelFormat::I420, w, h).expect("a layout");
    let pattern = TestPattern::default();
    let start = Timestamp::now().as_micros();
    for n in 0..LOOP_FRAMES {
        let mut frame = VideoFrameMut::new(layout);
        let at = Timestamp::from_micros(start + u64::from(n) * 1_000_000 / u64::from(FPS));
        pattern.render(&mut frame, n, at).expect("render");
        writer.write_frame(&frame.freeze()).expect("write a frame");
    }
    writer.finish().expect("finish the Y4M");
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
