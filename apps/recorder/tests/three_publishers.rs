//! Three publishers — two of our broadcasters and the official Python SDK — recorded for 15 s;
//! the distro's ffprobe/ffmpeg (an independent reader) check every file: VP8 and Opus streams,
//! duration against the wall time recorded, frame count against what was sent, the tone's
//! frequency, and the Python publisher's resolution change.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::Background;
use wavecast_media::stamp;
use wavecast_testbed::{LiveKitServer, python_command};

const BIN: &str = env!("CARGO_BIN_EXE_recorder");
const FPS: u32 = 15;

fn wall(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
}

/// Frames the Python publisher's encoder had sent at `t`, interpolated from its SENT lines.
fn sent_at(lines: &[(f64, f64)], t: f64) -> f64 {
    let i = lines
        .partition_point(|(at, _)| *at < t)
        .clamp(1, lines.len() - 1);
    let ((t0, n0), (t1, n1)) = (lines[i - 1], lines[i]);
    n0 + (n1 - n0) * (t - t0) / (t1 - t0)
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn three_publishers_fifteen_seconds_read_by_ffprobe() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let room = "rec3";
    let bin = common::broadcaster(BIN);
    let _ada = Background::spawn(
        "ada",
        &mut common::broadcaster_cmd(&bin, &url, room, "ada", 330, FPS, 40),
    );
    let _bob = Background::spawn(
        "bob",
        &mut common::broadcaster_cmd(&bin, &url, room, "bob", 550, FPS, 40),
    );
    let mut py_cmd = python_command(&server, "publish_av.py").expect("python venv");
    py_cmd.args(["--room", room, "--identity", "py", "--frequency", "440"]);
    py_cmd.args([
        "--seconds",
        "32",
        "--fps",
        &FPS.to_string(),
        "--switch-at",
        "11",
    ]);
    let py = Background::spawn("py", &mut py_cmd);
    py.wait_line("READY", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));

    let dir = tempfile::tempdir().unwrap();
    let mut rec = Command::new(BIN);
    rec.args(common::join_args(&url, room, "rec"))
        .args(["--duration", "15s", "--out"])
        .arg(dir.path());
    let rec = Background::spawn("recorder", &mut rec);
    rec.wait_line("{\"event\":\"recording\"", Duration::from_secs(20));
    let (code, out, err) = rec.finish(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{out:?}\n{err}");
    let summary = out
        .iter()
        .find(|l| l.contains("\"summary\""))
        .expect("summary");
    let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
    let manifest_path = Path::new(summary["manifest"].as_str().unwrap()).to_path_buf();
    let m = common::json(&manifest_path);
    eprintln!("{}", serde_json::to_string_pretty(&m).unwrap());
    assert_eq!(m["state"], "finalized");
    let people = m["participants"].as_array().unwrap();
    let mut ids: Vec<&str> = people
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["ada", "bob", "py"]);
    let py_done = py.finish(Duration::from_secs(30)).1;
    let sent: Vec<(f64, f64)> = py_done
        .iter()
        .filter_map(|l| l.strip_prefix("SENT "))
        .filter_map(|l| {
            let mut f = l.split(' ');
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect();
    assert!(sent.len() > 20, "{py_done:?}");

    for p in people {
        let id = p["identity"].as_str().unwrap();
        let files = p["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{id}: {files:?}");
        let f = &files[0];
        assert_eq!(f["state"], "finalized", "{id}");
        let path = dir.path().join(f["path"].as_str().unwrap());
        let (streams, duration) = common::probe(&path);
        let codecs: Vec<&str> = streams.iter().map(|s| s.codec.as_str()).collect();
        assert_eq!(codecs, ["vp8", "opus"], "{id}");
        // Duration within 2 % of the wall time this file covers.
        let recorded = wall(f["ended_at"].as_str().unwrap())
            .duration_since(wall(f["started_at"].as_str().unwrap()))
            .unwrap()
            .as_secs_f64();
        let duration = duration.expect("a duration");
        assert!(recorded > 13.0, "{id}: {recorded} s recorded");
        assert!(
            (duration - recorded).abs() <= 0.02 * recorded,
            "{id}: file {duration} s, wall {recorded} s"
        );
        let video = streams[0].packets;
        let track = |kind: &str| {
            f["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["kind"] == kind)
                .unwrap()
                .clone()
        };
        assert_eq!(track("video")["frames"].as_u64(), Some(video), "{id}");
        // Frames sent in the recorded stretch.
        let expected = if id == "py" {
            let start = secs(wall(f["started_at"].as_str().unwrap()));
            let v = track("video");
            let first = start + v["first_ms"].as_f64().unwrap() / 1000.0;
            let last = start + v["last_ms"].as_f64().unwrap() / 1000.0;
            sent_at(&sent, last) - sent_at(&sent, first) + 1.0
        } else {
            // Our broadcaster stamps each frame's number into the picture.
            let lumas = common::decode_luma(&path, 320, 180);
            assert_eq!(lumas.len() as u64, video, "{id}: every frame decodes");
            let n = |l: &[u8]| {
                stamp::decode_plane(l, 320, 1, 320, 180)
                    .unwrap_or_else(|e| panic!("{id}: stamp: {e}"))
                    .frame_number
            };
            f64::from(n(lumas.last().unwrap()) - n(&lumas[0]) + 1)
        };
        assert!(
            (video as f64 - expected).abs() <= 0.02 * expected,
            "{id}: {video} frames recorded, {expected:.1} sent"
        );
        // The tone, decoded by ffmpeg.
        let tone = match id {
            "ada" => 330.0,
            "bob" => 550.0,
            _ => 440.0,
        };
        let freq = common::tone_frequency(&common::decode_audio(&path));
        assert!(
            (freq - tone).abs() < tone * 0.01,
            "{id}: {freq} Hz, sent {tone}"
        );
        eprintln!(
            "{id}: {duration:.2} s (wall {recorded:.2}), {video} frames ({expected:.1} sent), \
             {} audio packets, {freq:.1} Hz",
            streams[1].packets
        );
    }

    // The Python publisher grew from 320×180 to 640×360 mid-recording: the manifest says when,
    // and ffmpeg decodes frames of both sizes from the one file.
    let py = people.iter().find(|p| p["identity"] == "py").unwrap();
    let f = &py["files"][0];
    let v = f["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "video")
        .unwrap();
    let sizes: Vec<(u64, u64)> = v["resolutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["width"].as_u64().unwrap(), r["height"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, [(320, 180), (640, 360)], "{v}");
    let text = wavecast_testbed::apps::ffprobe(
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "frame=width,height",
            "-of",
            "csv=p=0",
        ],
        &dir.path().join(f["path"].as_str().unwrap()),
    );
    let small = text.lines().filter(|l| *l == "320,180").count();
    let large = text.lines().filter(|l| *l == "640,360").count();
    assert!(
        small > 30 && large > 30,
        "{small} small, {large} large frames"
    );
}
