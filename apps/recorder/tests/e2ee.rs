//! End-to-end encrypted media in recordings (issue 21): a broadcaster encrypts with a
//! passphrase; a recorder without the key stores what it receives — the encrypted frames, the
//! SDKs' trailer on every one, which the passphrase opens afterwards — and a recorder with the
//! key stores them decrypted: ffmpeg decodes its pictures and hears the tone.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Background;
use wavecast_e2ee::{Codec, DEFAULT_RATCHET_SALT, KeyMaterial, decrypt_with};
use wavecast_testbed::LiveKitServer;

const BIN: &str = env!("CARGO_BIN_EXE_recorder");
const KEY: &str = "recorded under this passphrase";
const TONE: u32 = 330;

/// The recording of one participant, from the recorder's summary and manifest.
fn recorded_file(rec: Background, dir: &Path) -> PathBuf {
    let (code, out, err) = rec.finish(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{out:?}\n{err}");
    let summary = out
        .iter()
        .find(|l| l.contains("\"summary\""))
        .expect("summary");
    let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
    let m = common::json(Path::new(summary["manifest"].as_str().unwrap()));
    let files = m["participants"][0]["files"].as_array().expect("files");
    assert_eq!(m["participants"][0]["identity"], "caster", "{m}");
    dir.join(files[0]["path"].as_str().unwrap())
}

/// The video frames of a WebM as stored (ffmpeg copies them into IVF, which frames them).
fn stored_vp8_frames(path: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-c", "copy", "-f", "ivf", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ivf = out.stdout;
    let mut frames = Vec::new();
    let mut at = 32; // the IVF file header
    while at + 12 <= ivf.len() {
        let len = u32::from_le_bytes(ivf[at..at + 4].try_into().unwrap()) as usize;
        at += 12;
        frames.push(ivf[at..at + len].to_vec());
        at += len;
    }
    frames
}

#[test]
fn a_recorder_stores_encrypted_media_as_received_and_decrypted_with_the_key() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let room = "rec-e2ee";
    let bin = common::broadcaster(BIN);
    let mut cmd = common::broadcaster_cmd(&bin, &url, room, "caster", TONE, 15, 30);
    cmd.args(["--e2ee-key", KEY]);
    let _caster = Background::spawn("caster", &mut cmd);
    std::thread::sleep(Duration::from_secs(2));

    let (raw_dir, keyed_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let recorder = |identity: &str, dir: &Path, key: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(common::join_args(&url, room, identity))
            .args(["--duration", "8s", "--out"])
            .arg(dir);
        if let Some(k) = key {
            c.args(["--e2ee-key", k]);
        }
        let rec = Background::spawn(identity, &mut c);
        rec.wait_line("{\"event\":\"recording\"", Duration::from_secs(20));
        rec
    };
    let raw = recorder("rec-raw", raw_dir.path(), None);
    let keyed = recorder("rec-keyed", keyed_dir.path(), Some(KEY));
    let raw = recorded_file(raw, raw_dir.path());
    let keyed = recorded_file(keyed, keyed_dir.path());

    // Without the key: every stored frame is encrypted (the trailer: IV length 12, key index
    // 0), and the passphrase opens each one into VP8 (key frames start with its start code).
    let frames = stored_vp8_frames(&raw);
    assert!(frames.len() >= 60, "{} frames stored", frames.len());
    let keys = KeyMaterial::passphrase(KEY).derive(DEFAULT_RATCHET_SALT);
    let mut keyframes = 0;
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(&f[f.len() - 2..], [12, 0], "frame {i} is not encrypted");
        let plain = decrypt_with(Codec::Vp8, f, &keys)
            .unwrap_or_else(|e| panic!("frame {i} does not open with the passphrase: {e}"));
        if plain[0] & 1 == 0 {
            assert_eq!(&plain[3..6], [0x9d, 0x01, 0x2a], "frame {i}");
            keyframes += 1;
        }
    }
    assert!(keyframes >= 1);

    // With the key: plain VP8 and Opus that ffmpeg decodes, the tone at its frequency.
    let (streams, _) = common::probe(&keyed);
    let codecs: Vec<&str> = streams.iter().map(|s| s.codec.as_str()).collect();
    assert_eq!(codecs, ["vp8", "opus"]);
    let pictures = common::decode_luma(&keyed, 320, 180);
    let tone = common::tone_frequency(&common::decode_audio(&keyed));
    eprintln!(
        "RECORDER: without the key {} frames stored encrypted ({keyframes} key frames), all \
         opened with the passphrase; with it {} pictures decoded by ffmpeg, tone {tone:.1} Hz",
        frames.len(),
        pictures.len(),
    );
    assert!(pictures.len() >= 60, "{} pictures", pictures.len());
    assert!(
        (tone - f64::from(TONE)).abs() < f64::from(TONE) * 0.01,
        "{tone} Hz"
    );
}
