//! The WebM writer against an independent reader: the distro's `ffprobe`/`ffmpeg` read what
//! it writes from real VP8 (libvpx) and Opus (libopus) frames — finished files, files cut at
//! arbitrary bytes, repaired files and a mid-stream resolution change.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wavecast_codec::pipeline::i420_of;
use wavecast_codec::{MAX_OPUS_PACKET, OPUS_FRAME_SAMPLES, OpusEncoder, Vp8Config, Vp8Encoder};
use wavecast_media::webm::{
    TrackSpec, WebmInfo, WebmOptions, WebmWriter, recover, vp8_keyframe_size,
};
use wavecast_media::{MediaError, TestPattern, ToneGenerator, Waveform};
use wavecast_pipeline::{
    AudioFormat, AudioFrameMut, PixelFormat, Timestamp, VideoFramePool, VideoLayout,
};

/// Encoded frames with their timestamps: (track index, timestamp, keyframe, data).
type Frames = Vec<(usize, Duration, bool, Vec<u8>)>;

/// `seconds` of 30 fps VP8 (size switching to `second` at `switch`) and 20 ms Opus of a
/// `tone` Hz sine, merged in timestamp order.
fn media(seconds: u32, first: (u32, u32), second: Option<(u32, u32, u32)>, tone: f64) -> Frames {
    let mut out = Vec::new();
    let mut enc = Vp8Encoder::new(Vp8Config::new(first.0, first.1, 30)).unwrap();
    let mut pool = VideoFramePool::new(
        "t",
        VideoLayout::new(PixelFormat::I420, first.0, first.1).unwrap(),
        2,
    );
    let pattern = TestPattern::default();
    for n in 0..seconds * 30 {
        if let Some((w, h, at)) = second
            && n == at
        {
            enc = Vp8Encoder::new(Vp8Config::new(w, h, 30)).unwrap();
            pool = VideoFramePool::new("t", VideoLayout::new(PixelFormat::I420, w, h).unwrap(), 2);
        }
        let mut f = pool.acquire().unwrap();
        pattern
            .render(&mut f, n, Timestamp::from_micros(1))
            .unwrap();
        let f = f.freeze();
        if let Some(p) = enc
            .encode(&i420_of(&f).unwrap(), i64::from(n) * 3000)
            .unwrap()
        {
            let ts = Duration::from_micros(u64::from(n) * 1_000_000 / 30);
            out.push((0, ts, p.keyframe, p.data.to_vec()));
        }
    }
    let format = AudioFormat::new(48_000, 1).unwrap();
    let mut tonegen =
        ToneGenerator::new(format, Waveform::Tone(tone), 0.5, Timestamp::from_micros(1)).unwrap();
    let mut opus = OpusEncoder::new(1, 32_000).unwrap();
    let mut packet = [0u8; MAX_OPUS_PACKET];
    for n in 0..seconds * 50 {
        let mut f = AudioFrameMut::new(format, OPUS_FRAME_SAMPLES);
        tonegen.fill(&mut f);
        let len = opus.encode(f.samples(), &mut packet).unwrap();
        out.push((
            1,
            Duration::from_millis(u64::from(n) * 20),
            true,
            packet[..len].to_vec(),
        ));
    }
    out.sort_by_key(|f| f.1);
    out
}

fn tracks(w: u32, h: u32) -> [TrackSpec; 2] {
    [
        TrackSpec::vp8("camera", w, h),
        TrackSpec::opus("microphone", 2),
    ]
}

fn write(path: &Path, frames: &Frames, w: u32, h: u32) -> WebmWriter {
    let mut writer = WebmWriter::create(path, &tracks(w, h), WebmOptions::default()).unwrap();
    for (t, ts, key, data) in frames {
        writer.write_frame(*t, *ts, *key, data).unwrap();
    }
    writer
}

/// One stream as ffprobe sees it: codec, packets, width, height.
type Stream = (String, u64, u64, u64);

/// ffprobe's view: the streams, and the format duration.
fn probe(path: &Path) -> (Vec<Stream>, Option<f64>) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-of", "json"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_packets,width,height:format=duration",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let streams = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let n = |k: &str| {
                s[k].as_u64()
                    .or_else(|| s[k].as_str().and_then(|t| t.parse().ok()))
                    .unwrap_or(0)
            };
            (
                s["codec_name"].as_str().unwrap_or("").to_owned(),
                n("nb_read_packets"),
                n("width"),
                n("height"),
            )
        })
        .collect();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok());
    (streams, duration)
}

/// Decode with ffmpeg; returns (stderr, whether it exited 0).
fn decode_all(path: &Path) -> (String, bool) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn ffprobe_reads_vp8_and_opus_with_counts_and_duration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.webm");
    let frames = media(3, (320, 180), None, 440.0);
    let sent_video = frames.iter().filter(|f| f.0 == 0).count() as u64;
    let summary = write(&path, &frames, 320, 180).finish().unwrap();
    assert_eq!(summary.tracks[0].frames, sent_video);
    assert_eq!(summary.tracks[1].frames, 150);

    let (streams, duration) = probe(&path);
    assert_eq!(
        streams,
        vec![
            ("vp8".to_owned(), sent_video, 320, 180),
            ("opus".to_owned(), 150, 0, 0)
        ]
    );
    let duration = duration.expect("a duration");
    assert!((duration - 3.0).abs() < 0.05, "duration {duration}");
    let (err, ok) = decode_all(&path);
    assert!(ok && err.is_empty(), "{err}");

    let info = WebmInfo::read(&path).unwrap();
    assert!(info.finalized && info.partial_tail == 0, "{info:?}");
    assert_eq!(info.track("V_VP8").unwrap().frames, sent_video);
    assert_eq!(info.duration, Some(Duration::from_secs(3)));
    // Clusters start at keyframes and span at most a second.
    assert!(info.clusters >= 3, "{} clusters", info.clusters);
}

#[test]
fn decoded_tone_has_the_frequency_sent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.webm");
    write(&path, &media(2, (160, 90), None, 660.0), 160, 90)
        .finish()
        .unwrap();
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(&path)
        .args([
            "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let pcm: Vec<i16> = out
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(pcm.len() > 48_000, "{} samples", pcm.len());
    let f = wavecast_pipeline_frequency(&pcm[4800..]);
    assert!((f - 660.0).abs() < 5.0, "{f} Hz");
}

/// Frequency from rising zero crossings (a clean sine).
fn wavecast_pipeline_frequency(pcm: &[i16]) -> f64 {
    let crossings: Vec<usize> = pcm
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0 && w[1] >= 0)
        .map(|(i, _)| i)
        .collect();
    let (first, last) = (crossings[0], *crossings.last().unwrap());
    (crossings.len() - 1) as f64 * 48_000.0 / (last - first) as f64
}

#[test]
fn a_file_cut_at_any_byte_reads_up_to_its_last_whole_cluster_and_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.webm");
    let frames = media(4, (320, 180), None, 440.0);
    // Not finished: what a killed process leaves (every closed cluster is in the file).
    let mut writer = write(&whole, &frames, 320, 180);
    writer.flush().unwrap();
    std::mem::forget(writer);
    let bytes = std::fs::read(&whole).unwrap();
    let full = WebmInfo::read(&whole).unwrap();
    assert!(!full.finalized);
    assert_eq!(full.partial_tail, 0);
    // ffprobe reads the unfinished file's Duration, kept current after every cluster.
    let (_, duration) = probe(&whole);
    assert!((duration.unwrap() - 4.0).abs() < 0.05, "{duration:?}");

    for cut in [bytes.len() * 3 / 10, bytes.len() / 2 + 7, bytes.len() - 1] {
        let path = dir.path().join(format!("cut{cut}.webm"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let info = WebmInfo::read(&path).unwrap();
        assert!(info.partial_tail > 0, "cut at {cut}: {info:?}");
        let video = info.track("V_VP8").unwrap().frames;
        let audio = info.track("A_OPUS").unwrap().frames;
        // An independent reader reads at least every whole cluster (and the whole blocks of
        // the cut one: at most a second more), and decodes them.
        let (streams, _) = probe(&path);
        assert!(
            streams[0].1 >= video && streams[0].1 <= video + 31,
            "cut at {cut}: {streams:?} vs {video} video frames in whole clusters"
        );
        assert!(
            streams[1].1 >= audio && streams[1].1 <= audio + 51,
            "cut at {cut}: {streams:?} vs {audio}"
        );
        let (err, ok) = decode_all(&path);
        assert!(ok, "cut at {cut}: {err}");

        let report = recover(&path).unwrap();
        assert!(!report.already_final);
        assert_eq!(report.dropped_bytes, info.partial_tail);
        let repaired = WebmInfo::read(&path).unwrap();
        assert!(repaired.finalized && repaired.partial_tail == 0);
        assert_eq!(repaired.track("V_VP8").unwrap().frames, video);
        let (streams, duration) = probe(&path);
        assert_eq!((streams[0].1, streams[1].1), (video, audio), "cut at {cut}");
        let last = repaired.track("A_OPUS").unwrap().last.unwrap();
        let duration = duration.unwrap();
        assert!(
            (duration - last.as_secs_f64()).abs() < 0.1,
            "cut at {cut}: duration {duration}, last audio {last:?}"
        );
        let (err, ok) = decode_all(&path);
        assert!(ok && err.is_empty(), "repaired cut at {cut}: {err}");
        assert!(recover(&path).unwrap().already_final);
    }
}

#[test]
fn an_existing_file_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.webm");
    std::fs::write(&path, b"precious").unwrap();
    let err = WebmWriter::create(&path, &tracks(320, 180), WebmOptions::default()).unwrap_err();
    match &err {
        MediaError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists)
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("keep.webm"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn resolution_change_mid_stream_decodes_at_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grow.webm");
    let frames = media(2, (320, 180), Some((640, 360, 30)), 440.0);
    let sizes: Vec<_> = frames
        .iter()
        .filter_map(|f| vp8_keyframe_size(&f.3))
        .collect();
    assert_eq!(sizes.first(), Some(&(320, 180)));
    assert!(sizes.contains(&(640, 360)));
    write(&path, &frames, 320, 180).finish().unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries"])
        .args(["frame=width,height", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let small = text.lines().filter(|l| *l == "320,180").count();
    let large = text.lines().filter(|l| *l == "640,360").count();
    assert_eq!((small, large), (30, 30), "{text}");
}

#[test]
fn a_quiet_track_still_reaches_the_disk_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiet.webm");
    let mut w = WebmWriter::create(
        &path,
        &[TrackSpec::opus("mic", 1)],
        WebmOptions::default().max_cluster(Duration::from_millis(200)),
    )
    .unwrap();
    w.write_frame(0, Duration::ZERO, true, &[0xF8, 0xFF, 0xFE])
        .unwrap();
    assert!(!w.flush_if_older(Instant::now()).unwrap());
    assert_eq!(WebmInfo::read(&path).unwrap().clusters, 0);
    let later = Instant::now() + Duration::from_millis(250);
    assert!(w.flush_if_older(later).unwrap());
    let info = WebmInfo::read(&path).unwrap();
    assert_eq!((info.clusters, info.tracks[0].frames), (1, 1));
    // Bad calls are errors naming the file, not panics.
    let e = w.write_frame(3, Duration::ZERO, true, &[1]).unwrap_err();
    assert!(e.to_string().contains("quiet.webm") && e.to_string().contains("track index 3"));
    assert!(WebmWriter::create(dir.path().join("none.webm"), &[], WebmOptions::default()).is_err());
    std::fs::write(dir.path().join("junk.webm"), b"not a webm file at all").unwrap();
    let e = recover(dir.path().join("junk.webm")).unwrap_err();
    assert!(e.to_string().contains("junk.webm"), "{e}");
}

/// The disk fills in the middle of a file: each cluster that no longer fits fails with a typed
/// out-of-space error (no panic) and is left out whole; the file keeps what was written before
/// it, `finish` finalizes it in place (without Cues, which no longer fit) and ffmpeg decodes it
/// cleanly; once there is room again `recover` adds the Cues.
#[test]
fn a_full_disk_loses_the_clusters_that_do_not_fit_not_the_file() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let test = "a_full_disk_loses_the_clusters_that_do_not_fit_not_the_file";
    let Some(_tmpfs) = wavecast_testbed::Tmpfs::mount_for(test, dir.path(), 4 << 20) else {
        return;
    };
    let path = dir.path().join("full.webm");
    let frames = media(6, (320, 180), None, 440.0);
    let half = frames
        .iter()
        .position(|f| f.1 >= Duration::from_secs(3))
        .unwrap();
    let mut w = WebmWriter::create(&path, &tracks(320, 180), WebmOptions::default()).unwrap();
    for (t, ts, key, data) in &frames[..half] {
        w.write_frame(*t, *ts, *key, data).unwrap();
    }
    w.flush().unwrap();
    let written = std::fs::metadata(&path).unwrap().len();

    // Another writer takes every byte left.
    let mut filler = std::fs::File::create(dir.path().join("filler")).unwrap();
    let full = loop {
        if let Err(e) = filler.write_all(&[0xA5; 64 * 1024]) {
            break e;
        }
    };
    assert_eq!(full.kind(), std::io::ErrorKind::StorageFull, "{full}");

    let mut failed = 0;
    for (t, ts, key, data) in &frames[half..] {
        match w.write_frame(*t, *ts, *key, data) {
            Ok(()) => {}
            Err(MediaError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::StorageFull =>
            {
                failed += 1
            }
            Err(e) => panic!("not an out-of-space error: {e}"),
        }
    }
    assert!(failed > 0, "no write failed on a full disk");
    let summary = w.finish().expect("finalized on a full disk");
    assert!(summary.lost_clusters > 0, "{summary:?}");
    assert!(std::fs::metadata(&path).unwrap().len() >= written);

    // What was written before stays; what did not fit is missing (the Duration says so).
    let (streams, duration) = probe(&path);
    let duration = duration.expect("a duration");
    assert!(
        (2.9..5.5).contains(&duration),
        "duration {duration}: {streams:?}"
    );
    assert!(streams.iter().all(|s| s.1 > 0), "{streams:?}");
    let (err, ok) = decode_all(&path);
    assert!(ok && err.is_empty(), "{err}");
    let info = WebmInfo::read(&path).unwrap();
    assert_eq!(info.partial_tail, 0, "{info:?}");
    // The few Cues may still fit in the file's last, partly used page; the test below makes
    // sure they do not.
    eprintln!("finalized with Cues: {}", info.finalized);
}

/// The disk is full when a file with many Cues is finished: it is finalized without them (in
/// place), every whole cluster reads, and `recover` adds the Cues once there is room.
#[test]
fn a_file_finished_on_a_full_disk_is_finalized_without_cues() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let test = "a_file_finished_on_a_full_disk_is_finalized_without_cues";
    let Some(_tmpfs) = wavecast_testbed::Tmpfs::mount_for(test, dir.path(), 1 << 20) else {
        return;
    };
    let path = dir.path().join("cues.webm");
    // Audio only, a cluster (and a cue) per 20 ms packet: 2000 cues, far more than a page.
    let options = WebmOptions::default().max_cluster(Duration::from_millis(20));
    let mut w = WebmWriter::create(&path, &[TrackSpec::opus("microphone", 2)], options).unwrap();
    let packet = [0xFCu8, 0xFF, 0xFE];
    for n in 0..2000u64 {
        w.write_frame(0, Duration::from_millis(n * 20), true, &packet)
            .unwrap();
    }
    let mut filler = std::fs::File::create(dir.path().join("filler")).unwrap();
    let full = loop {
        if let Err(e) = filler.write_all(&[0xA5; 64 * 1024]) {
            break e;
        }
    };
    assert_eq!(full.kind(), std::io::ErrorKind::StorageFull, "{full}");
    let summary = w.finish().expect("finalized on a full disk");

    let info = WebmInfo::read(&path).unwrap();
    assert!(!info.finalized, "no room for Cues, yet: {info:?}");
    assert_eq!(info.partial_tail, 0, "{info:?}");
    let written = info.track("A_OPUS").unwrap().frames;
    assert_eq!(written + summary.lost_clusters, 2000, "{summary:?}");
    let (streams, duration) = probe(&path);
    assert_eq!(streams, vec![("opus".to_owned(), written, 0, 0)]);
    let duration = duration.expect("a duration");
    assert!(
        (duration - written as f64 * 0.02).abs() < 0.03,
        "{duration} s"
    );

    drop(filler);
    std::fs::remove_file(dir.path().join("filler")).unwrap();
    let report = recover(&path).unwrap();
    assert_eq!(report.dropped_bytes, 0, "{report:?}");
    let info = WebmInfo::read(&path).unwrap();
    assert!(info.finalized, "{info:?}");
    assert_eq!(info.track("A_OPUS").unwrap().frames, written);
}
