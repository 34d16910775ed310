//! VP9 into WebM and H.264 into Matroska, against independent encoders and readers: the distro's
//! `ffmpeg` encodes raw streams (libvpx-vp9 into IVF, libx264 into Annex B with access unit
//! delimiters), the writer stores them frame by frame, and `ffprobe`/`ffmpeg` must name the
//! codec and size and decode every frame — in finished files, across a resolution change, and
//! in files cut at arbitrary bytes and repaired.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wavecast_media::webm::{
    self, TrackSpec, VideoCodec, WebmInfo, WebmOptions, WebmWriter, h264, recover, vp9,
};

/// One encoded video frame: data and whether it is a keyframe.
type Frame = (Vec<u8>, bool);

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .expect("ffmpeg/ffprobe run (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `frames` frames of ffmpeg's test source at `w`×`h`, 30 fps, a keyframe every 30 frames.
fn encode(dir: &Path, codec: VideoCodec, w: u32, h: u32, frames: u32) -> Vec<Frame> {
    let src = format!("testsrc=size={w}x{h}:rate=30");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", &src])
        .args([
            "-frames:v",
            &frames.to_string(),
            "-pix_fmt",
            "yuv420p",
            "-g",
            "30",
        ]);
    match codec {
        VideoCodec::H264 => {
            let path = dir.join(format!("{w}x{h}.h264"));
            cmd.args(["-c:v", "libx264", "-profile:v", "baseline"])
                .args(["-x264-params", "aud=1", "-bsf:v", "h264_mp4toannexb"])
                .args(["-f", "h264"])
                .arg(&path);
            run(&mut cmd);
            let out = split_access_units(&std::fs::read(&path).unwrap());
            out.into_iter()
                .map(|au| {
                    let key = h264::is_keyframe(&au);
                    (au, key)
                })
                .collect()
        }
        VideoCodec::Vp9 => {
            let path = dir.join(format!("{w}x{h}.ivf"));
            cmd.args(["-c:v", "libvpx-vp9", "-speed", "8", "-f", "ivf"])
                .arg(&path);
            run(&mut cmd);
            read_ivf(&std::fs::read(&path).unwrap())
                .into_iter()
                .map(|f| {
                    let key = vp9::is_keyframe(&f);
                    (f, key)
                })
                .collect()
        }
        other => panic!("no fixture for {other:?}"),
    }
}

/// Split an Annex B stream into access units: each starts at its access unit delimiter.
fn split_access_units(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut starts: Vec<usize> = stream
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w[..3] == [0, 0, 1] && w[3] & 0x1F == h264::NAL_AUD)
        .map(|(i, _)| {
            if i > 0 && stream[i - 1] == 0 {
                i - 1
            } else {
                i
            }
        })
        .collect();
    assert_eq!(starts.first(), Some(&0), "the stream starts with an AUD");
    starts.push(stream.len());
    starts
        .windows(2)
        .map(|w| stream[w[0]..w[1]].to_vec())
        .collect()
}

/// The frames of an IVF file.
fn read_ivf(file: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(&file[..4], b"DKIF");
    let mut at = usize::from(u16::from_le_bytes([file[6], file[7]]));
    let mut out = Vec::new();
    while at + 12 <= file.len() {
        let len = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        out.push(file[at + 12..at + 12 + len].to_vec());
        at += 12 + len;
    }
    out
}

fn track(codec: VideoCodec, first: &Frame) -> TrackSpec {
    assert!(first.1, "a stream starts with a keyframe");
    match codec {
        VideoCodec::H264 => TrackSpec::h264_from_keyframe("camera", &first.0).unwrap(),
        VideoCodec::Vp9 => {
            let (w, h) = vp9::keyframe_size(&first.0).unwrap();
            TrackSpec::vp9("camera", w, h)
        }
        other => panic!("{other:?}"),
    }
}

/// A 20 ms silent Opus packet (stereo CELT).
const OPUS_SILENCE: [u8; 3] = [0xFC, 0xFF, 0xFE];

/// Write `frames` at 30 fps (and, with `audio`, 20 ms Opus packets alongside) into a new file
/// in `dir` named by the container; the writer is returned unfinished.
fn write(dir: &Path, name: &str, codec: VideoCodec, frames: &[Frame], audio: bool) -> WebmWriter {
    let mut tracks = vec![track(codec, &frames[0])];
    if audio {
        tracks.push(TrackSpec::opus("microphone", 2));
    }
    let path = dir.join(format!("{name}.{}", webm::extension(&tracks)));
    let mut w = WebmWriter::create(&path, &tracks, WebmOptions::default()).unwrap();
    let mut packets = 0u64;
    for (n, (data, key)) in frames.iter().enumerate() {
        let ts = Duration::from_micros(n as u64 * 1_000_000 / 30);
        while audio && Duration::from_millis(packets * 20) <= ts {
            w.write_frame(1, Duration::from_millis(packets * 20), true, &OPUS_SILENCE)
                .unwrap();
            packets += 1;
        }
        w.write_frame(0, ts, *key, data).unwrap();
    }
    w
}

/// ffprobe's streams (counting decoded frames).
fn streams(path: &Path) -> Vec<serde_json::Value> {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"].as_array().unwrap().clone()
}

fn number(v: &serde_json::Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// ffmpeg decodes the whole file without a single complaint.
fn decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.is_empty(),
        "{}: {err}",
        path.display()
    );
}

/// The size of every decoded video frame.
fn decoded_sizes(path: &Path) -> Vec<(u32, u32)> {
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries"])
        .args(["frame=width,height", "-of", "csv=p=0"])
        .arg(path));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (w, h) = l.trim_end_matches(',').split_once(',')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .collect()
}

fn ffprobe_name(codec: VideoCodec) -> &'static str {
    codec.name()
}

fn codec_id(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "V_MPEG4/ISO/AVC",
        VideoCodec::Vp9 => "V_VP9",
        _ => "V_VP8",
    }
}

fn finished_file_decodes_every_frame(codec: VideoCodec) {
    let dir = tempfile::tempdir().unwrap();
    let frames = encode(dir.path(), codec, 320, 240, 60);
    assert_eq!(frames.len(), 60);
    assert!(
        frames.iter().filter(|f| f.1).count() >= 2,
        "keyframes at 0 and 30"
    );
    let w = write(dir.path(), "a", codec, &frames, false);
    let path: PathBuf = w.path().to_path_buf();
    let summary = w.finish().unwrap();
    assert_eq!(summary.tracks[0].frames, 60);

    let s = streams(&path);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["codec_name"], ffprobe_name(codec), "{s:?}");
    assert_eq!(
        (number(&s[0]["width"]), number(&s[0]["height"])),
        (320, 240)
    );
    assert_eq!(number(&s[0]["nb_read_frames"]), 60, "{s:?}");
    decodes_cleanly(&path);

    let info = WebmInfo::read(&path).unwrap();
    let t = info.track(codec_id(codec)).unwrap();
    assert_eq!((t.frames, t.size), (60, Some((320, 240))));
    assert!(info.finalized, "{info:?}");
    match codec {
        VideoCodec::H264 => {
            assert_eq!(info.doc_type, "matroska");
            assert_eq!(path.extension().unwrap(), "mkv");
            assert_eq!(
                Some(t.codec_private.clone()),
                h264::avc_decoder_config(&frames[0].0)
            );
        }
        _ => {
            assert_eq!(info.doc_type, "webm");
            assert_eq!(path.extension().unwrap(), "webm");
            assert!(t.codec_private.is_empty());
        }
    }
}

#[test]
fn h264_in_matroska_names_its_codec_and_every_frame_decodes() {
    finished_file_decodes_every_frame(VideoCodec::H264);
}

#[test]
fn vp9_in_webm_names_its_codec_and_every_frame_decodes() {
    finished_file_decodes_every_frame(VideoCodec::Vp9);
}

fn resolution_change_decodes_every_frame(codec: VideoCodec) {
    let dir = tempfile::tempdir().unwrap();
    let mut frames = encode(dir.path(), codec, 320, 240, 45);
    let large = encode(dir.path(), codec, 640, 360, 45);
    assert!(large[0].1);
    assert_eq!(webm::keyframe_size(codec, &large[0].0), Some((640, 360)));
    frames.extend(large);
    let w = write(dir.path(), "grow", codec, &frames, false);
    let path = w.path().to_path_buf();
    w.finish().unwrap();
    decodes_cleanly(&path);
    let sizes = decoded_sizes(&path);
    let small = sizes.iter().filter(|s| **s == (320, 240)).count();
    let big = sizes.iter().filter(|s| **s == (640, 360)).count();
    assert_eq!((small, big, sizes.len()), (45, 45, 90), "{sizes:?}");
}

#[test]
fn h264_resolution_change_mid_stream_decodes_at_both_sizes() {
    resolution_change_decodes_every_frame(VideoCodec::H264);
}

#[test]
fn vp9_resolution_change_mid_stream_decodes_at_both_sizes() {
    resolution_change_decodes_every_frame(VideoCodec::Vp9);
}

/// What a killed writer leaves, cut at many bytes: each cut reads up to its last whole cluster,
/// and `recover` makes a finalized file that ffmpeg decodes entirely (every cut is repaired and
/// read back; ffmpeg checks a few of them).
fn a_cut_file_repairs(codec: VideoCodec) {
    let dir = tempfile::tempdir().unwrap();
    let frames = encode(dir.path(), codec, 320, 240, 120);
    let mut w = write(dir.path(), "whole", codec, &frames, true);
    w.flush().unwrap();
    let whole = w.path().to_path_buf();
    std::mem::forget(w); // no finish, no drop: a killed process
    let bytes = std::fs::read(&whole).unwrap();
    let full = WebmInfo::read(&whole).unwrap();
    assert!(!full.finalized && full.partial_tail == 0, "{full:?}");
    assert_eq!(full.track(codec_id(codec)).unwrap().frames, 120);
    // Readable as it is (unknown Segment size, Duration kept current).
    let s = streams(&whole);
    assert_eq!(s[0]["codec_name"], ffprobe_name(codec));
    assert_eq!(number(&s[0]["nb_read_frames"]), 120, "{s:?}");

    let ext = whole.extension().unwrap().to_str().unwrap().to_owned();
    let step = bytes.len() / 40;
    let checked_by_ffmpeg = [bytes.len() / 3, bytes.len() / 2 + 7, bytes.len() - 1];
    let mut cuts: Vec<usize> = (1..40).map(|i| i * step + i % 7).collect();
    cuts.extend(checked_by_ffmpeg);
    for cut in cuts {
        let path = dir.path().join(format!("cut{cut}.{ext}"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let Ok(info) = WebmInfo::read(&path) else {
            // Cut inside the header: nothing to repair, and recover says so.
            assert!(recover(&path).is_err(), "cut at {cut}");
            continue;
        };
        let video = info.track(codec_id(codec)).map_or(0, |t| t.frames);
        let report = match recover(&path) {
            Ok(r) => r,
            Err(e) => {
                // Only a file cut before its Tracks ended cannot be repaired.
                assert!(info.tracks.len() < 2, "cut at {cut}: {e}");
                continue;
            }
        };
        assert!(!report.already_final, "cut at {cut}");
        assert_eq!(report.dropped_bytes, info.partial_tail, "cut at {cut}");
        let repaired = WebmInfo::read(&path).unwrap();
        assert_eq!(repaired.partial_tail, 0, "cut at {cut}");
        assert_eq!(repaired.doc_type, full.doc_type);
        assert_eq!(repaired.track(codec_id(codec)).unwrap().frames, video);
        if video > 0 {
            // (Cues point at video keyframes: a file cut before its first whole video cluster
            // has none, so it never counts as final.)
            assert!(repaired.finalized, "cut at {cut}");
            assert!(recover(&path).unwrap().already_final);
        }
        if checked_by_ffmpeg.contains(&cut) {
            assert!(video > 0, "cut at {cut}");
            let s = streams(&path);
            assert_eq!(s[0]["codec_name"], ffprobe_name(codec));
            assert_eq!(
                number(&s[0]["nb_read_frames"]),
                video,
                "cut at {cut}: {s:?}"
            );
            decodes_cleanly(&path);
        }
    }
}

#[test]
fn a_cut_h264_file_reads_up_to_its_last_whole_cluster_and_repairs() {
    a_cut_file_repairs(VideoCodec::H264);
}

#[test]
fn a_cut_vp9_file_reads_up_to_its_last_whole_cluster_and_repairs() {
    a_cut_file_repairs(VideoCodec::Vp9);
}

#[test]
fn h264_frames_are_stored_with_lengths_and_bad_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let frames = encode(dir.path(), VideoCodec::H264, 160, 120, 2);
    let mut w = write(dir.path(), "small", VideoCodec::H264, &frames, false);
    let before = w.track_stats(0).unwrap();
    // No start code: refused, nothing counted.
    let e = w
        .write_frame(0, Duration::from_millis(100), false, &[0x41, 0x9A, 0x02])
        .unwrap_err();
    assert!(e.to_string().contains("Annex B"), "{e}");
    assert_eq!(w.track_stats(0).unwrap(), before);
    // Stored bytes: every NAL unit behind a 4-byte length instead of its start code.
    let stored: u64 = frames
        .iter()
        .map(|f| h264::length_prefixed_len(&f.0) as u64)
        .sum();
    assert_eq!(before.bytes, stored);
    let path = w.path().to_path_buf();
    w.finish().unwrap();
    decodes_cleanly(&path);
    // A keyframe without SPS/PPS gives no track, and an empty config is refused.
    assert!(TrackSpec::h264_from_keyframe("x", &[0, 0, 1, 0x65, 0x88, 0x84]).is_none());
    let bad = [TrackSpec::h264("x", 16, 16, vec![])];
    assert!(WebmWriter::create(dir.path().join("bad.mkv"), &bad, WebmOptions::default()).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Arbitrary bytes as H.264 or VP9 frames: each write is stored or refused (H.264 without a
    /// start code), never a panic, and the file holds exactly the frames stored.
    #[test]
    fn arbitrary_frames_are_stored_or_refused(
        frames in proptest::collection::vec(
            (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), proptest::prelude::any::<bool>()),
            1..12,
        ),
        h264_track in proptest::prelude::any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = h264::avc_decoder_config(&[
            0, 0, 1, 0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00, 0x03,
            0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x42, 0xA4, 0x80, 0, 0, 1, 0x68, 0xCB,
        ])
        .unwrap();
        let spec = if h264_track {
            TrackSpec::h264("v", 320, 240, config)
        } else {
            TrackSpec::vp9("v", 320, 240)
        };
        let path = dir.path().join("p.mkv");
        let mut w = WebmWriter::create(&path, &[spec], WebmOptions::default()).unwrap();
        let mut stored = 0u64;
        for (n, (data, key)) in frames.iter().enumerate() {
            let ts = Duration::from_millis(n as u64 * 33);
            match w.write_frame(0, ts, *key, data) {
                Ok(()) => stored += 1,
                Err(e) => {
                    proptest::prop_assert!(h264_track && h264::length_prefixed_len(data) == 0, "{e}");
                    proptest::prop_assert!(e.to_string().contains("p.mkv"), "{e}");
                }
            }
        }
        w.finish().unwrap();
        let info = WebmInfo::read(&path).unwrap();
        proptest::prop_assert_eq!(info.tracks[0].frames, stored);
        proptest::prop_assert_eq!(info.partial_tail, 0);
    }
}

/// `frames` frames from our own encoders (`wavecast_codec`: OpenH264 for H.264, libvpx for
/// VP9) at each of `sizes` in turn, a new encoder (so a keyframe) at each size.
fn ours(codec: VideoCodec, sizes: &[(u32, u32)], frames: u32) -> Vec<Frame> {
    use wavecast_codec::{VideoEncoder, VideoEncoderConfig, pipeline::i420_of};
    use wavecast_media::TestPattern;
    use wavecast_pipeline::{PixelFormat, Timestamp, VideoFramePool, VideoLayout};
    let theirs = match codec {
        VideoCodec::H264 => wavecast_codec::VideoCodec::H264,
        _ => wavecast_codec::VideoCodec::Vp9,
    };
    let mut out = Vec::new();
    let pattern = TestPattern::default();
    for &(w, h) in sizes {
        let mut enc = VideoEncoder::new(VideoEncoderConfig::new(theirs, w, h, 30)).unwrap();
        let layout = VideoLayout::new(PixelFormat::I420, w, h).unwrap();
        let pool = VideoFramePool::new("t", layout, 2);
        for n in 0..frames {
            let mut f = pool.acquire().unwrap();
            pattern
                .render(&mut f, n, Timestamp::from_micros(1))
                .unwrap();
            let f = f.freeze();
            if let Some(p) = enc
                .encode(&i420_of(&f).unwrap(), i64::from(n) * 3000)
                .unwrap()
            {
                out.push((p.data.to_vec(), p.keyframe));
            }
        }
    }
    out
}

/// What our own encoders send (the recorder's input when a wavecast broadcaster publishes)
/// decodes from the files: every frame, at both sizes.
fn our_encoder_decodes(codec: VideoCodec) {
    let dir = tempfile::tempdir().unwrap();
    let frames = ours(codec, &[(320, 240), (640, 360)], 45);
    assert!(frames.len() >= 88, "{} frames", frames.len());
    for (data, key) in &frames {
        assert_eq!(
            *key,
            webm::keyframe_size(codec, data).is_some(),
            "the encoder's keyframe flag and our header parser agree"
        );
    }
    let w = write(dir.path(), "ours", codec, &frames, false);
    let path = w.path().to_path_buf();
    w.finish().unwrap();
    let s = streams(&path);
    assert_eq!(s[0]["codec_name"], ffprobe_name(codec));
    assert_eq!(
        (number(&s[0]["width"]), number(&s[0]["height"])),
        (320, 240)
    );
    assert_eq!(
        number(&s[0]["nb_read_frames"]),
        frames.len() as u64,
        "{s:?}"
    );
    decodes_cleanly(&path);
    let sizes = decoded_sizes(&path);
    let big = sizes.iter().filter(|s| **s == (640, 360)).count();
    assert_eq!(
        big,
        frames.len() - sizes.iter().filter(|s| **s == (320, 240)).count()
    );
    assert!(big >= 44, "{sizes:?}");
}

#[test]
fn our_h264_encoder_decodes_from_matroska() {
    our_encoder_decodes(VideoCodec::H264);
}

#[test]
fn our_vp9_encoder_decodes_from_webm() {
    our_encoder_decodes(VideoCodec::Vp9);
}
