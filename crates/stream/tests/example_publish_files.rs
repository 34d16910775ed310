//! Example (c) — `examples/publish_files.rs` — against a real livekit-server: it publishes a
//! looping Y4M file and a WAV tone, and the official Python SDK, subscribed in the same room, sees
//! the file's picture size (more frames than the file holds: it loops) and hears the tone.

use std::process::Command;
use std::time::Duration;

use wavecast_media::{FrameRate, TestPattern, ToneGenerator, WavWriter, Waveform, Y4mWriter};
use wavecast_pipeline::{
    AudioFormat, AudioFrameMut, PixelFormat, Timestamp, VideoFrameMut, VideoLayout,
};
use wavecast_testbed::apps::{Background, example_bin};
use wavecast_testbed::{LiveKitServer, PythonPeer};
use wavecast_token::Preset;

#[test]
fn example_c_publishes_files_the_python_sdk_sees_and_hears() {
    let bin = example_bin("wavecast-stream", "publish_files");
    let dir = tempfile::tempdir().unwrap();
    let (y4m, wav) = (dir.path().join("clip.y4m"), dir.path().join("tone.wav"));
    let mut video = Y4mWriter::create(&y4m, 160, 120, FrameRate::new(15, 1)).unwrap();
    for n in 0..10 {
        let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 160, 120).unwrap());
        TestPattern::default()
            .render(&mut f, n, Timestamp::ZERO)
            .unwrap();
        video.write_frame(&f.freeze()).unwrap();
    }
    video.finish().unwrap();
    let format = AudioFormat::MONO_48K;
    let mut tone =
        ToneGenerator::new(format, Waveform::Tone(1000.0), 0.4, Timestamp::ZERO).unwrap();
    let mut audio = AudioFrameMut::new(format, 48_000);
    tone.fill(&mut audio);
    let mut out = WavWriter::create(&wav, format).unwrap();
    out.write_frame(&audio.freeze()).unwrap();
    out.finish().unwrap();

    let server = LiveKitServer::start().expect("livekit-server starts");
    let mut py = PythonPeer::spawn(
        &server,
        "engine_peer.py",
        &["subscribe", "files", "py", "7"],
    )
    .expect("python starts");
    py.wait_line("READY", Duration::from_secs(30))
        .expect("python joins");
    let token = server.token("files", "files", Preset::Broadcaster);
    let mut cmd = Command::new(&bin);
    cmd.args([&server.ws_url(), &token])
        .arg(&y4m)
        .arg(&wav)
        .arg("12");
    let example = Background::spawn("publish_files", &mut cmd);
    let line = py
        .wait_line("RESULT", Duration::from_secs(40))
        .expect("python reports");
    let result: serde_json::Value = serde_json::from_str(&line).unwrap();
    let run = example.finish(Duration::from_secs(30));
    assert_eq!(run.code(), 0, "{}", run.output());
    // Its summary: `video: N frames sent, M dropped`.
    let sent: u64 = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("video: ")?.split_once(" frames sent"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no video summary\n{}", run.output()));
    assert!(sent > 30, "{}", run.output());

    let video = &result["tracks"]["files/camera"];
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(160), Some(120)),
        "{result}"
    );
    assert!(
        video["frames"].as_u64().unwrap_or(0) >= 30,
        "the 10-frame file loops: {result}"
    );
    let freq = result["tracks"]["files/microphone"]["freq"]
        .as_f64()
        .unwrap_or(0.0);
    assert!((freq - 1000.0).abs() <= 10.0, "heard {freq} Hz: {result}");
}
