//! The recorder under real packet loss: a broadcaster publishes, the recorder records 8 s while
//! nftables drops 12 % of every UDP datagram inside a private network namespace (each media
//! packet crosses the rule twice: publisher → server, server → recorder). The distro's ffprobe
//! and ffmpeg (independent readers) then check the WebM: it opens, holds VP8 and Opus, lasts
//! about the wall time recorded, and every video frame in it decodes (loss is skipped up to the
//! next keyframe, never written as a corrupt frame); the manifest and the summary line count
//! what was lost. The measured numbers are printed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::Background;
use wavecast_media::stamp;
use wavecast_testbed::{LiveKitServer, NetNs};

const BIN: &str = env!("CARGO_BIN_EXE_recorder");
/// Loss applied to every UDP datagram in the namespace.
const LOSS_PERCENT: u8 = 12;
/// How long the recorder records (all of it under loss).
const RECORD_S: u32 = 8;
const FPS: u32 = 15;
const SIZE: (usize, usize) = (320, 180);

fn wall(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
}

#[test]
fn recording_under_12_percent_udp_loss_plays_and_counts_the_loss() {
    let name = "recording_under_12_percent_udp_loss_plays_and_counts_the_loss";
    let Some(ns) = NetNs::enter_for_test(name) else {
        return;
    };
    // This thread, and the server and apps it starts, live inside the namespace.
    let bin = common::broadcaster(BIN);
    let server = LiveKitServer::start().expect("livekit-server starts in the namespace");
    let url = server.ws_url();
    let room = "lossy";
    let ada = Background::spawn(
        "ada",
        &mut common::broadcaster_cmd(&bin, &url, room, "ada", 440, FPS, 40),
    );
    std::thread::sleep(Duration::from_secs(2));

    let dir = tempfile::tempdir().unwrap();
    let mut rec = Command::new(BIN);
    rec.args(common::join_args(&url, room, "rec"))
        .args(["--duration", &format!("{RECORD_S}s"), "--out"])
        .arg(dir.path());
    let rec = Background::spawn("recorder", &mut rec);
    rec.wait_line("{\"event\":\"recording\"", Duration::from_secs(20));
    ns.set_udp_loss(LOSS_PERCENT).expect("set the loss");
    let (code, out, err) = rec.finish(Duration::from_secs(40));
    let counters = ns.udp_counters().expect("nft counters");
    ns.clear_faults().expect("clear the loss");
    drop(ada);
    assert_eq!(code, Some(0), "{out:?}\n{err}");
    let measured = counters.loss_percent();
    assert!(
        (8.0..=16.0).contains(&measured) && counters.seen > 500,
        "the rule dropped about {LOSS_PERCENT} %: {counters:?}"
    );

    let summary = out
        .iter()
        .find(|l| l.contains("\"summary\""))
        .unwrap_or_else(|| panic!("no summary line: {out:?}"));
    let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
    let m = common::json(Path::new(summary["manifest"].as_str().unwrap()));
    assert_eq!(m["state"], "finalized", "{m:#}");
    let people = m["participants"].as_array().unwrap();
    assert_eq!(people.len(), 1, "{m:#}");
    assert_eq!(people[0]["identity"], "ada");
    let files = people[0]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "loss is not a rejoin: {files:#?}");
    let f = &files[0];
    assert_eq!(f["state"], "finalized");
    let track = |kind: &str| {
        f["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} track: {f:#}"))
            .clone()
    };
    eprintln!("{f:#}");
    let (video, audio) = (track("video"), track("audio"));
    let n = |t: &serde_json::Value, k: &str| t[k].as_u64().unwrap_or(0);

    // ffprobe opens it: both tracks, the duration of the wall time recorded.
    let path = dir.path().join(f["path"].as_str().unwrap());
    let (streams, duration) = common::probe(&path);
    let codecs: Vec<&str> = streams.iter().map(|s| s.codec.as_str()).collect();
    assert_eq!(codecs, ["vp8", "opus"]);
    let recorded = wall(f["ended_at"].as_str().unwrap())
        .duration_since(wall(f["started_at"].as_str().unwrap()))
        .unwrap()
        .as_secs_f64();
    let duration = duration.expect("ffprobe reads a duration");
    let ends: Vec<String> = streams
        .iter()
        .map(|s| format!("{} ends at {:.2} s", s.codec, s.end))
        .collect();
    eprintln!("ffprobe: {duration:.2} s; {ends:?}; wall {recorded:.2} s");
    assert!(
        recorded >= f64::from(RECORD_S) - 2.0,
        "{recorded:.2} s recorded"
    );
    // The media reaches the end of the wall time recorded (the last packets ffprobe reads; loss
    // may take the last few before the stop). The header's duration adds the last frame's
    // length, which the writer takes from the interval before it — a loss hole makes it longer
    // (up to its 1 s cap).
    let end = streams.iter().map(|s| s.end).fold(0.0, f64::max);
    assert!(
        (end - recorded).abs() <= 0.05 * recorded + 0.3,
        "media ends at {end:.2} s, wall {recorded:.2} s"
    );
    assert!(
        (end - 0.05..=end + 1.0).contains(&duration),
        "header duration {duration:.2} s, media ends at {end:.2} s"
    );

    // Every video frame written decodes (ffmpeg), in order: loss never reaches the file.
    let (written, audio_packets) = (streams[0].packets, streams[1].packets);
    assert_eq!(n(&video, "frames"), written, "manifest vs file");
    assert_eq!(n(&audio, "frames"), audio_packets, "manifest vs file");
    let lumas = common::decode_luma(&path, SIZE.0, SIZE.1);
    assert_eq!(lumas.len() as u64, written, "every written frame decodes");
    let numbers: Vec<u32> = lumas
        .iter()
        .map(|l| {
            stamp::decode_plane(l, SIZE.0, 1, SIZE.0 as u32, SIZE.1 as u32)
                .unwrap_or_else(|e| panic!("stamp of a recorded frame: {e}"))
                .frame_number
        })
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    let sent = u64::from(numbers.last().unwrap() - numbers[0] + 1);

    // The loss is counted, from the RTP clock at each discontinuity: audio packets that never
    // arrived, video frames lost or dropped by the engine up to the next keyframe (what
    // retransmission, NACK, did not repair), and the keyframe gate's own skips and requests.
    let (skipped, plis) = (n(&video, "skipped_frames"), n(&video, "keyframe_requests"));
    let (video_lost, audio_lost) = (n(&video, "lost_frames"), n(&audio, "lost_frames"));
    let audio_span = (n(&audio, "last_ms") - n(&audio, "first_ms")) / 20 + 1; // 20 ms packets
    let gaps: Vec<serde_json::Value> = [&video, &audio]
        .iter()
        .flat_map(|t| t["gaps"].as_array().cloned().unwrap_or_default())
        .collect();
    eprintln!(
        "LOSS: {measured:.1} % of {} UDP datagrams dropped in the namespace; file {duration:.2} s \
         (wall {recorded:.2} s); video: {written} of {sent} sent frames written ({:.0} %), \
         {video_lost} counted lost, {skipped} skipped by the gate, {plis} keyframe requests; \
         audio: {audio_packets} packets written + {audio_lost} counted lost of {audio_span} in \
         the span ({:.0} % written); {} gaps: {gaps:?}",
        counters.seen,
        written as f64 * 100.0 / sent as f64,
        audio_packets as f64 * 100.0 / audio_span as f64,
        gaps.len(),
    );
    assert!(
        written * 4 >= sent,
        "video keeps being recorded: {written} of {sent}"
    );
    // Each packet crosses the rule twice; RED rebuilds a single lost packet from the next one,
    // so what never arrives is the second of two in a row (about 5 % here, a fifth without RED).
    assert!(
        audio_lost > 0 && audio_packets < audio_span,
        "{audio_lost} audio packets counted lost, {audio_packets} of {audio_span} written"
    );
    // Written + counted lost = what was sent (audio: the span of its RTP clock; video: the
    // broadcaster's frame numbers), within 2 % (the estimate rounds each hole).
    for (what, written, lost, sent) in [
        ("audio", audio_packets, audio_lost, audio_span),
        ("video", written, video_lost + skipped, sent),
    ] {
        assert!(
            (written + lost).abs_diff(sent) * 50 <= sent.max(50),
            "{what}: written {written} + lost {lost} vs {sent} sent"
        );
    }
    for g in &gaps {
        assert_eq!(g["reason"], "packet loss", "{g}");
    }
    // The summary line says the same.
    let line = &summary["files"][0];
    let lost = video_lost + audio_lost;
    assert_eq!(line["lost_frames"].as_u64(), Some(lost), "{line}");
    assert_eq!(line["skipped_frames"].as_u64(), Some(skipped), "{line}");
    assert_eq!(line["keyframe_requests"].as_u64(), Some(plis), "{line}");
}
