//! The broadcaster publishes looping Y4M and WAV files; the official Python SDK subscribes and
//! sees the file's picture size (more frames than the file holds: it loops) and its tone. Then
//! Ctrl-C (SIGINT) leaves cleanly: exit 0 and a JSON summary.

use wavecast_testbed::apps as common;

use std::process::Command;
use std::time::Duration;

use wavecast_media::{FrameRate, TestPattern, ToneGenerator, WavWriter, Waveform, Y4mWriter};
use wavecast_pipeline::{
    AudioFormat, AudioFrameMut, PixelFormat, Timestamp, VideoFrameMut, VideoLayout,
};
use wavecast_testbed::{LiveKitServer, PythonPeer};

const BIN: &str = env!("CARGO_BIN_EXE_broadcaster");

#[test]
fn files_loop_to_the_python_sdk_and_ctrl_c_leaves() {
    let (dir, y4m) = common::temp_path("clip.y4m");
    let wav = dir.path().join("tone.wav");
    let mut w = Y4mWriter::create(&y4m, 160, 120, FrameRate::new(15, 1)).unwrap();
    for n in 0..10 {
        let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 160, 120).unwrap());
        TestPattern::default()
            .render(&mut f, n, Timestamp::ZERO)
            .unwrap();
        w.write_frame(&f.freeze()).unwrap();
    }
    w.finish().unwrap();
    let fmt = AudioFormat::MONO_48K;
    let mut g = ToneGenerator::new(fmt, Waveform::Tone(1000.0), 0.4, Timestamp::ZERO).unwrap();
    let mut out = WavWriter::create(&wav, fmt).unwrap();
    let mut f = AudioFrameMut::new(fmt, 48_000);
    g.fill(&mut f);
    out.write_frame(&f.freeze()).unwrap();
    out.finish().unwrap();

    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let mut py = PythonPeer::spawn(
        &server,
        "engine_peer.py",
        &["subscribe", "files", "py", "7"],
    )
    .expect("python starts");
    py.wait_line("READY", Duration::from_secs(30))
        .expect("python joins");

    let mut b = Command::new(BIN);
    b.args(common::join_args(&url, "files", "caster"))
        .args(["--source", "file", "--no-stdin", "--stats-interval", "1s"])
        .arg("--video-file")
        .arg(&y4m)
        .arg("--audio-file")
        .arg(&wav);
    let caster = common::Background::spawn("broadcaster", &mut b);
    let line = py
        .wait_line("RESULT", Duration::from_secs(40))
        .expect("python reports");
    let result: serde_json::Value = serde_json::from_str(&line).unwrap();
    eprintln!("python saw {result}");

    // Ctrl-C: the broadcaster leaves and exits 0 with its summary.
    let pid = caster_pid(&caster);
    let ok = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let run = caster.finish(Duration::from_secs(10));
    assert_eq!(run.code(), 0, "{}", run.output());
    assert!(!run.stderr.contains("panicked"), "{}", run.output());
    assert!(run.stderr.contains("leaving the room"), "{}", run.output());
    assert!(run.stderr.contains("stats: video"), "{}", run.output());
    let summary: serde_json::Value =
        serde_json::from_str(run.stdout.lines().last().expect("a summary line")).unwrap();
    assert!(summary["video"]["sent"].as_u64().unwrap() > 10, "{summary}");

    let video = &result["tracks"]["caster/camera"];
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(160), Some(120)),
        "{result}"
    );
    assert!(
        video["frames"].as_u64().unwrap() >= 30,
        "the 10-frame file loops: {result}"
    );
    let audio = &result["tracks"]["caster/microphone"];
    let freq = audio["freq"].as_f64().unwrap();
    assert!((freq - 1000.0).abs() <= 10.0, "heard {freq} Hz: {result}");
}

fn caster_pid(b: &common::Background) -> u32 {
    b.pid()
}
