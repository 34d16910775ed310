//! Recordings of every codec: our broadcasters publish H.264 (two simulcast layers), VP9 and
//! VP8 into one room; the recorder writes H.264 into Matroska (`.mkv`) and VP9 and VP8 into
//! WebM, the manifest names each codec, and the distro's ffprobe and ffmpeg (an independent
//! reader) read each file in its codec and decode every frame without an error.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Background;
use wavecast_testbed::LiveKitServer;

const BIN: &str = env!("CARGO_BIN_EXE_recorder");

#[test]
fn h264_vp9_and_vp8_broadcasters_recorded_in_their_codecs() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let room = "codecs";
    let bin = common::broadcaster(BIN);
    let mut casters = Vec::new();
    for (id, codec, tone) in [("h", "h264", 330), ("n", "vp9", 440), ("e", "vp8", 550)] {
        let mut cmd = common::broadcaster_cmd(&bin, &url, room, id, tone, 15, 40);
        cmd.args(["--codec", codec]);
        if codec == "h264" {
            // 320×180 and 160×90: the recorder receives the top layer.
            cmd.arg("--simulcast");
        }
        casters.push(Background::spawn(id, &mut cmd));
    }
    std::thread::sleep(Duration::from_secs(2));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut rec = Command::new(BIN);
    rec.args(common::join_args(&url, room, "rec"))
        .args(["--duration", "10s", "--out"])
        .arg(dir.path());
    let rec = Background::spawn("recorder", &mut rec);
    rec.wait_line("{\"event\":\"recording\"", Duration::from_secs(20));
    let (code, out, err) = rec.finish(Duration::from_secs(40));
    for c in casters.drain(..) {
        let (_, o, e) = c.finish(Duration::from_secs(1));
        eprintln!(
            "--- caster\n{o:?}\n{}",
            e.lines()
                .filter(|l| l.contains("ERROR") || l.contains("error") || l.contains("publishing"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(code, Some(0), "{out:?}\n{err}");
    let summary = out
        .iter()
        .find(|l| l.contains("\"summary\""))
        .expect("summary");
    let summary: serde_json::Value = serde_json::from_str(summary).expect("summary JSON");
    let manifest = common::json(std::path::Path::new(
        summary["manifest"].as_str().expect("manifest"),
    ));
    for (id, codec, extension) in [
        ("h", "h264", "mkv"),
        ("n", "vp9", "webm"),
        ("e", "vp8", "webm"),
    ] {
        let p = manifest["participants"]
            .as_array()
            .expect("participants")
            .iter()
            .find(|p| p["identity"] == id)
            .unwrap_or_else(|| panic!("{id} in {manifest}"));
        let files = p["files"].as_array().expect("files");
        assert_eq!(files.len(), 1, "{id}: {files:?}\n{err}");
        let f = &files[0];
        assert_eq!(f["state"], "finalized", "{id}: {f}");
        let video = f["tracks"]
            .as_array()
            .expect("tracks")
            .iter()
            .find(|t| t["kind"] == "video" && t["frames"].as_u64() > Some(0))
            .unwrap_or_else(|| panic!("{id}: a recorded video track in {f}\n{err}"));
        assert_eq!(
            video["codec"], codec,
            "{id}: the manifest names the codec: {f}"
        );
        let path = dir.path().join(f["path"].as_str().expect("path"));
        assert_eq!(
            path.extension().and_then(|e| e.to_str()),
            Some(extension),
            "{}",
            path.display()
        );
        let v = wavecast_testbed::apps::assert_video_decodes(&path);
        eprintln!("{id}: {} → {v}", path.display());
        assert_eq!(v["codec_name"], codec, "{id}: {v}");
        let packets = wavecast_testbed::apps::ffprobe_number(&v["nb_read_packets"]).unwrap_or(0.0);
        assert!(packets >= 100.0, "{id}: {v}");
        assert_eq!(
            video["frames"].as_f64(),
            Some(packets),
            "{id}: manifest and file agree"
        );
    }
    drop(casters);
}
