//! A room where people come and go, recorded twice at once: one recorder is SIGKILLed after
//! 10 s (its files still read ≥ 9 s in ffprobe and `--recover` completes them), the other gets
//! SIGTERM (it finalizes everything). A participant leaving and another joining mid-recording
//! appear in both manifests and files as stated.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Background;
use wavecast_media::webm::WebmInfo;
use wavecast_testbed::LiveKitServer;

const BIN: &str = env!("CARGO_BIN_EXE_recorder");

fn file_of<'a>(m: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    let p = m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["identity"] == id)
        .unwrap_or_else(|| panic!("{id} not in the manifest: {m:#}"));
    let files = p["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{id}: {files:?}");
    &files[0]
}

fn manifest_of(rec: &Background) -> std::path::PathBuf {
    let line = rec.wait_line("{\"event\":\"recording\"", Duration::from_secs(20));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    Path::new(v["manifest"].as_str().unwrap()).to_path_buf()
}

#[test]
fn sigkill_keeps_the_last_second_and_sigterm_finalizes_while_people_come_and_go() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let room = "churn";
    let bin = common::broadcaster(BIN);
    // Ada mutes her microphone from about 2 s to 4 s into the recording (stdin commands).
    let ada_cmd = common::broadcaster_cmd(&bin, &url, room, "ada", 330, 15, 40);
    let ada_args: Vec<_> = ada_cmd
        .get_args()
        .filter(|a| *a != "--no-stdin")
        .map(|a| a.to_owned())
        .collect();
    let mut ada_cmd = Command::new(&bin);
    ada_cmd.args(ada_args);
    let mut ada = Background::spawn_with_stdin("ada", &mut ada_cmd);
    // Bob leaves about 6 s into the recording.
    let bob = Background::spawn(
        "bob",
        &mut common::broadcaster_cmd(&bin, &url, room, "bob", 550, 15, 8),
    );
    std::thread::sleep(Duration::from_secs(2));

    let (kdir, tdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let recorder = |id: &str, dir: &Path| {
        let mut c = Command::new(BIN);
        c.args(common::join_args(&url, room, id))
            .arg("--out")
            .arg(dir);
        Background::spawn(id, &mut c)
    };
    let killed = recorder("rec-kill", kdir.path());
    let termed = recorder("rec-term", tdir.path());
    let (kman, tman) = (manifest_of(&killed), manifest_of(&termed));
    std::thread::sleep(Duration::from_secs(2));
    ada.say("mute audio");
    std::thread::sleep(Duration::from_secs(2));
    ada.say("unmute audio");
    // Carol joins 4 s in.
    let _carol = Background::spawn(
        "carol",
        &mut common::broadcaster_cmd(&bin, &url, room, "carol", 440, 15, 30),
    );
    // SIGKILL 10 s after Ada's file began (its time 0 is her first frame's arrival).
    let ada_start = {
        let m = common::json(&kman);
        let f = file_of(&m, "ada");
        humantime::parse_rfc3339(f["started_at"].as_str().unwrap()).unwrap()
    };
    let kill_at = ada_start + Duration::from_secs(10);
    std::thread::sleep(
        kill_at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    );
    killed.signal("KILL");
    termed.signal("TERM");
    let (code, _, err) = killed.finish(Duration::from_secs(5));
    assert_eq!(code, None, "SIGKILL: no exit code\n{err}");
    let (code, out, err) = termed.finish(Duration::from_secs(20));
    assert_eq!(
        code,
        Some(0),
        "SIGTERM finalizes and exits 0\n{out:?}\n{err}"
    );
    drop(bob);

    // The SIGTERMed recording: everything finalized, as stated.
    let m = common::json(&tman);
    assert_eq!(m["state"], "finalized", "{m:#}");
    for id in ["ada", "bob", "carol"] {
        let f = file_of(&m, id);
        assert_eq!(f["state"], "finalized", "{id}");
        let info = WebmInfo::read(tdir.path().join(f["path"].as_str().unwrap())).unwrap();
        assert!(info.finalized, "{id}: {info:?}");
    }
    assert_eq!(file_of(&m, "bob")["closed_because"], "left");
    assert_eq!(file_of(&m, "ada")["closed_because"], "stopped");
    assert_eq!(file_of(&m, "carol")["reason"], "joined");
    // Ada's mute: stated as mute changes and as a gap, not filled with silence.
    let audio = file_of(&m, "ada")["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "audio")
        .unwrap()
        .clone();
    let mutes: Vec<bool> = audio["mutes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["muted"].as_bool().unwrap())
        .collect();
    assert_eq!(mutes, [true, false], "{audio:#}");
    let gaps = audio["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{audio:#}");
    assert_eq!(gaps[0]["reason"], "muted", "{audio:#}");
    // The gap follows the announced mute: it starts after the mute was announced and ends
    // near the unmute. Media and signalling travel separately, so they skew: the last frames
    // before the gap arrive up to ~1 s after the mute signal (what was in flight from the
    // publisher), and in CI the first frames after it arrived before the unmute signal.
    let at = |i: usize| audio["mutes"][i]["at_ms"].as_i64().unwrap();
    let (from, to) = (
        gaps[0]["from_ms"].as_i64().unwrap(),
        gaps[0]["to_ms"].as_i64().unwrap(),
    );
    assert!(to - from >= 500, "{audio:#}");
    assert!(
        from >= at(0) - 100 && from < at(1) && (to - at(1)).abs() < 1000,
        "gap {from}..{to} ms vs mute {}..{} ms: {audio:#}",
        at(0),
        at(1)
    );

    // The SIGKILLed recording: the manifest is at most a second old; every file reads in
    // ffprobe up to about its last second.
    let m = common::json(&kman);
    eprintln!("{}", serde_json::to_string_pretty(&m).unwrap());
    assert_eq!(m["state"], "recording");
    let ada = file_of(&m, "ada");
    let bob = file_of(&m, "bob");
    let carol = file_of(&m, "carol");
    assert_eq!(ada["state"], "recording");
    assert_eq!(
        (bob["state"].as_str(), bob["closed_because"].as_str()),
        (Some("finalized"), Some("left"))
    );
    assert_eq!(
        (carol["state"].as_str(), carol["reason"].as_str()),
        (Some("recording"), Some("joined"))
    );
    let end = |f: &serde_json::Value| {
        let (streams, _) = common::probe(&kdir.path().join(f["path"].as_str().unwrap()));
        let codecs: Vec<&str> = streams.iter().map(|s| s.codec.as_str()).collect();
        assert_eq!(codecs, ["vp8", "opus"]);
        streams.iter().map(|s| s.end).fold(f64::MAX, f64::min)
    };
    let ada_end = end(ada);
    assert!(ada_end >= 9.0, "ada: ffprobe reads {ada_end:.2} s of 10 s");
    // Carol was recorded from about 4 s to the kill at 10 s.
    let carol_end = end(carol);
    assert!(carol_end >= 4.0, "carol: ffprobe reads {carol_end:.2} s");
    let bob_end = end(bob);
    assert!(
        (4.0..9.0).contains(&bob_end),
        "bob left after ~6 s: {bob_end:.2} s"
    );

    // --recover completes the killed files.
    let out = Command::new(BIN)
        .arg("--recover")
        .arg(&kman)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = common::json(&kman);
    assert_eq!(m["state"], "recovered");
    for id in ["ada", "carol"] {
        let f = file_of(&m, id);
        assert_eq!(f["state"], "recovered", "{id}");
        let path = kdir.path().join(f["path"].as_str().unwrap());
        let info = WebmInfo::read(&path).unwrap();
        assert!(info.finalized && info.partial_tail == 0, "{id}: {info:?}");
        let (_, duration) = common::probe(&path);
        let duration = duration.unwrap();
        assert!(
            (duration * 1000.0 - f["duration_ms"].as_f64().unwrap()).abs() < 50.0,
            "{id}: {duration}"
        );
    }
}
