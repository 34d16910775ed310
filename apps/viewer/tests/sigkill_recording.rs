//! Regression: SIGKILL of a recording viewer left `audio.wav` with RIFF/data sizes 0 and
//! `video.ivf` with 0 frames and 0×0 in its header (109 frames present): common players read
//! nothing. And `--record DIR` silently overwrote an earlier recording.
//!
//! A viewer records a broadcaster for a few seconds and is killed outright; ffprobe (the distro's
//! ffmpeg, a reader we did not write) must read both files and find all but the last second of
//! what was recorded. A second viewer pointed at the same directory must refuse to start and
//! leave the files alone.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wavecast_testbed::LiveKitServer;
use wavecast_testbed::apps::{self as common, Background};

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");
const FPS: f64 = 15.0;

fn number(v: &serde_json::Value) -> f64 {
    common::ffprobe_number(v).unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Waits until `path` is longer than `len` bytes; returns when it was first seen so.
fn wait_longer(path: &Path, len: u64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > len) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{} not written in 30 s",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn after_sigkill_ffprobe_reads_all_but_the_last_second() {
    let broadcaster = common::sibling_bin(VIEWER, "wavecast-broadcaster", "broadcaster");
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let mut b = Command::new(&broadcaster);
    b.args(common::join_args(&url, "kill", "caster"))
        .args(["--width", "320", "--height", "180", "--fps", "15"])
        .args(["--bitrate", "300", "--duration", "60s", "--no-stdin"]);
    let _caster = Background::spawn("caster", &mut b);

    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    let (ivf, wav) = (rec.join("video.ivf"), rec.join("audio.wav"));
    let mut cmd = Command::new(VIEWER);
    cmd.args(common::join_args(&url, "kill", "recorder"))
        .args(["--participant", "caster", "--headless", "--size", "320x180"])
        .args(["--frames", "100000", "--timeout", "60s"])
        .arg("--record")
        .arg(&rec);
    let viewer = Background::spawn("viewer", &mut cmd);
    // The first frame and the first audio on disk, then a few seconds of recording.
    let video_from = wait_longer(&ivf, 32);
    let audio_from = wait_longer(&wav, 44);
    std::thread::sleep(Duration::from_millis(4500));
    common::send_signal(viewer.pid(), "KILL");
    let killed = Instant::now();
    let r = viewer.finish(Duration::from_secs(10));
    assert_ne!(r.code(), 0, "killed\n{}", r.output());
    let video_s = (killed - video_from).as_secs_f64();
    let audio_s = (killed - audio_from).as_secs_f64();

    // Video: ffprobe decodes every frame it can read, at the size the header names.
    let v = common::ffprobe_json(
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
        ],
        &ivf,
    );
    let s = &v["streams"][0];
    assert_eq!(s["codec_name"], "vp8", "{v}");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(320), Some(180)),
        "{v}"
    );
    let read = number(&s["nb_read_frames"]);
    let expected = video_s * FPS;
    eprintln!("video: ffprobe read {read} frames of ~{expected:.0} sent in {video_s:.2} s");
    assert!(
        read >= (video_s - 1.0) * FPS * 0.9,
        "ffprobe read {read} frames; {video_s:.2} s at {FPS} fps were recorded: {v}"
    );
    // The header itself lags the frames on disk by at most a second.
    let bytes = std::fs::read(&ivf).unwrap();
    let header = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    assert!(
        f64::from(header) >= read - FPS - 1.0,
        "IVF header counts {header} of {read} frames"
    );

    // Audio: the header's data size gives the duration every reader trusts.
    let a = common::ffprobe_json(
        &["-show_entries", "stream=codec_name,sample_rate,duration"],
        &wav,
    );
    let s = &a["streams"][0];
    assert_eq!(s["codec_name"], "pcm_s16le", "{a}");
    assert_eq!(number(&s["sample_rate"]), 48_000.0, "{a}");
    let duration = number(&s["duration"]);
    eprintln!("audio: ffprobe reads {duration:.2} s of {audio_s:.2} s recorded");
    assert!(
        duration >= audio_s - 1.5 && duration <= audio_s + 0.5,
        "WAV says {duration:.2} s; {audio_s:.2} s were recorded: {a}"
    );

    // A second viewer refuses to overwrite the recording.
    let before = (bytes.len(), std::fs::read(&wav).unwrap());
    let r = common::run(
        Command::new(VIEWER)
            .args(common::join_args(&url, "kill", "again"))
            .args(["--headless", "--frames", "10", "--timeout", "10s"])
            .arg("--record")
            .arg(&rec),
        Duration::from_secs(30),
    );
    assert_ne!(r.code(), 0, "{}", r.output());
    assert!(
        r.stderr.contains("overwrite") && r.stderr.contains("video.ivf"),
        "the error names the file\n{}",
        r.output()
    );
    assert_eq!(std::fs::read(&ivf).unwrap().len(), before.0);
    assert_eq!(std::fs::read(&wav).unwrap(), before.1);
}
