//! Regression: in window mode Ctrl-C ended the process (`process::exit`) before the recordings
//! were finalised — an IVF header counting 0 frames and WAV sizes of 0. SIGINT and SIGTERM to a
//! windowed viewer (private Xvfb) recording a broadcaster must leave files whose headers match
//! their contents, and the room must be left.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wavecast_testbed::LiveKitServer;
use wavecast_testbed::apps::{self as common, Background, Xvfb};

const VIEWER: &str = env!("CARGO_BIN_EXE_viewer");

/// Frames actually present in an IVF file, walking its frame headers.
fn ivf_frames(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[0..4], b"DKIF");
    let header = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    let mut at = 32;
    let mut present = 0;
    while at + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(at + 12 + len <= bytes.len(), "frame {present} cut short");
        at += 12 + len;
        present += 1;
    }
    assert_eq!(at, bytes.len(), "trailing bytes after frame {present}");
    (header, present)
}

/// The RIFF and data chunk sizes of a 16-bit WAV file against its length.
fn check_wav(bytes: &[u8]) -> u32 {
    assert_eq!(&bytes[0..4], b"RIFF");
    let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff + 8, bytes.len(), "RIFF size matches the file");
    // Find the data chunk.
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        if id == b"data" {
            assert_eq!(at + 8 + size as usize, bytes.len(), "data size matches");
            return size;
        }
        at += 8 + size as usize;
    }
    panic!("no data chunk");
}

fn watch_and_signal(url: &str, display: &str, dir: &Path, identity: &str, signal: &str) {
    let rec = dir.join(identity);
    let mut cmd = Command::new(VIEWER);
    cmd.env("DISPLAY", display)
        .args(common::join_args(url, "sig", identity))
        .args(["--participant", "caster", "--size", "480x270"])
        .arg("--record")
        .arg(&rec);
    let viewer = Background::spawn(identity, &mut cmd);
    // Let it record a few seconds of media.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ivf = rec.join("video.ivf");
    loop {
        let size = std::fs::metadata(&ivf).map_or(0, |m| m.len());
        if size > 60_000 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing recorded in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    common::send_signal(viewer.pid(), signal);
    let r = viewer.finish(Duration::from_secs(20));
    assert_eq!(r.code(), 0, "exit 0 after SIG{signal}\n{}", r.output());
    assert!(
        r.stderr.contains("leaving the room") || r.stderr.contains("left the room"),
        "left the room\n{}",
        r.output()
    );
    let (header, present) = ivf_frames(&std::fs::read(&ivf).unwrap());
    assert!(present > 30, "{present} frames recorded");
    assert_eq!(
        header, present,
        "IVF header counts the frames present (SIG{signal})"
    );
    let data = check_wav(&std::fs::read(rec.join("audio.wav")).unwrap());
    assert!(data > 48_000, "{data} bytes of audio (SIG{signal})");
}

#[test]
fn sigint_and_sigterm_finalise_the_recordings_in_a_window() {
    let required = std::env::var("WAVECAST_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let Some(xvfb) = Xvfb::start(1280, 720) else {
        assert!(!required, "Xvfb is required (WAVECAST_REQUIRE_GPU=1)");
        eprintln!("SKIPPED sigint_and_sigterm_finalise_the_recordings_in_a_window: no Xvfb");
        return;
    };
    let broadcaster = common::broadcaster_bin(VIEWER);
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let mut b = Command::new(&broadcaster);
    b.args(common::join_args(&url, "sig", "caster"))
        .args(["--width", "320", "--height", "180", "--fps", "15"])
        .args(["--bitrate", "300", "--duration", "60s", "--no-stdin"]);
    let _caster = Background::spawn("caster", &mut b);
    let dir = tempfile::tempdir().unwrap();
    watch_and_signal(&url, xvfb.display(), dir.path(), "int-viewer", "INT");
    watch_and_signal(&url, xvfb.display(), dir.path(), "term-viewer", "TERM");
}
