//! Property tests for the file readers and the frame stamp with arbitrary and mutated input: every
//! outcome is a frame, the end, or an error that names the file — never a panic — and valid input
//! round-trips exactly.

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use wavecast_media::stamp::{self, MAX_TIMESTAMP_MICROS, MIN_WIDTH, Stamp};
use wavecast_media::{
    AudioSource, FrameRate, MediaError, WavReader, WavWriter, Y4mReader, Y4mWriter,
};
use wavecast_pipeline::{
    AudioFormat, AudioFrameMut, MAX_DIMENSION, PixelFormat, Timestamp, VideoFrameMut, VideoLayout,
};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    path
}

/// The error names the file (every file error of this crate does).
fn names_file(e: &MediaError, path: &Path) -> Result<(), TestCaseError> {
    let text = e.to_string();
    prop_assert!(
        text.contains(&path.display().to_string()),
        "error does not name {}: {text}",
        path.display()
    );
    Ok(())
}

/// Reads every frame of a Y4M file that opened; returns how many, or the error.
fn read_all_y4m(r: &mut Y4mReader) -> Result<u64, MediaError> {
    let info = r.info();
    let layout = VideoLayout::new(PixelFormat::I420, info.width, info.height).unwrap();
    let mut frame = VideoFrameMut::new(layout);
    let mut n = 0;
    while r.read_frame(&mut frame)? {
        n += 1;
    }
    Ok(n)
}

fn read_all_wav(r: &mut WavReader) -> Result<Vec<i16>, MediaError> {
    let mut out = Vec::new();
    loop {
        let mut frame = AudioFrameMut::new(r.format(), 480);
        let n = r.read_frame(&mut frame)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(frame.samples());
    }
}

/// Header tokens: valid ones, broken ones and arbitrary text (non-ASCII included).
fn header_token() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u32..64).prop_map(|w| format!("W{w}")),
        (1u32..64).prop_map(|h| format!("H{h}")),
        (0u32..100, 0u32..4).prop_map(|(n, d)| format!("F{n}:{d}")),
        prop_oneof![
            Just("C420"),
            Just("C420jpeg"),
            Just("C444"),
            Just("C420p10"),
            Just("Ip"),
            Just("A1:1"),
            Just("XYSCSS=420JPEG")
        ]
        .prop_map(str::to_owned),
        "[WHFC][-+0-9a-z:]{0,12}",
        "\\PC{1,6}",
        Just("é".to_owned()),
        Just("W99999999999".to_owned()),
        Just(format!("W{}", MAX_DIMENSION + 1)),
    ]
}

fn y4m_file(dir: &Path, w: u32, h: u32, frames: &[Vec<u8>]) -> std::path::PathBuf {
    let path = dir.join("clip.y4m");
    let mut writer = Y4mWriter::create(&path, w, h, FrameRate::new(30, 1)).unwrap();
    for data in frames {
        let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, w, h).unwrap());
        fill(&mut f, data);
        writer.write_frame(&f.freeze()).unwrap();
    }
    writer.finish().unwrap();
    path
}

/// Fill every plane row by row from `data` (cycled).
fn fill(f: &mut VideoFrameMut, data: &[u8]) {
    let mut k = 0;
    for p in f.planes_mut().iter_mut() {
        for y in 0..p.rows {
            for b in p.row_mut(y) {
                *b = data[k % data.len()];
                k += 1;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    // ---------------------------------------------------------------- Y4M

    #[test]
    fn y4m_of_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600), magic in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut content = if magic { b"YUV4MPEG2 ".to_vec() } else { Vec::new() };
        content.extend_from_slice(&bytes);
        let path = write(dir.path(), "any.y4m", &content);
        match Y4mReader::open(&path) {
            Ok(mut r) => {
                prop_assert!(r.info().width <= MAX_DIMENSION && r.info().height <= MAX_DIMENSION);
                if let Err(e) = read_all_y4m(&mut r) {
                    names_file(&e, &path)?;
                }
            }
            Err(e) => names_file(&e, &path)?,
        }
    }

    /// Regression: a header tag that starts with a non-ASCII character (`é`) panicked the
    /// broadcaster (`split_at(1)` inside a multi-byte character).
    #[test]
    fn y4m_headers_of_any_tokens(tokens in proptest::collection::vec(header_token(), 0..8)) {
        let dir = tempfile::tempdir().unwrap();
        let header = format!("YUV4MPEG2 {}\n", tokens.join(" "));
        let path = write(dir.path(), "h.y4m", header.as_bytes());
        match Y4mReader::open(&path) {
            Ok(r) => {
                // Accepted only with a width and a height that the header states.
                let info = r.info();
                prop_assert!(tokens.contains(&format!("W{}", info.width)), "{header}");
                prop_assert!(tokens.contains(&format!("H{}", info.height)), "{header}");
            }
            Err(e) => {
                prop_assert!(
                    matches!(e, MediaError::Y4mHeader { .. } | MediaError::Y4mUnsupported { .. }),
                    "{e:?}"
                );
                names_file(&e, &path)?;
            }
        }
    }

    #[test]
    fn y4m_round_trips(w in 1u32..48, h in 1u32..48,
                       frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..4)) {
        let dir = tempfile::tempdir().unwrap();
        let path = y4m_file(dir.path(), w, h, &frames);
        let mut r = Y4mReader::open(&path).unwrap();
        prop_assert_eq!((r.info().width, r.info().height), (w, h));
        let layout = VideoLayout::new(PixelFormat::I420, w, h).unwrap();
        for data in &frames {
            let mut got = VideoFrameMut::new(layout);
            prop_assert!(r.read_frame(&mut got).unwrap());
            let mut want = VideoFrameMut::new(layout);
            fill(&mut want, data);
            let (got, want) = (got.freeze(), want.freeze());
            for i in 0..3 {
                let (g, x) = (got.plane(i), want.plane(i));
                for y in 0..g.rows {
                    prop_assert_eq!(g.row(y), x.row(y));
                }
            }
        }
        let mut end = VideoFrameMut::new(layout);
        prop_assert!(!r.read_frame(&mut end).unwrap(), "nothing after the last frame");
    }

    #[test]
    fn y4m_mutated_files(w in 2u32..24, h in 2u32..24, nframes in 1usize..4,
                         flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
                         cut in any::<usize>()) {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<Vec<u8>> = (0..nframes).map(|i| vec![i as u8 * 40 + 7]).collect();
        let path = y4m_file(dir.path(), w, h, &frames);
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        std::fs::write(&path, &bytes).unwrap();
        match Y4mReader::open(&path) {
            Ok(mut r) => match read_all_y4m(&mut r) {
                Ok(n) => {
                    // Only whole frames are returned: each needs its `FRAME` line and its bytes.
                    let info = r.info();
                    let size = u64::from(info.width) * u64::from(info.height)
                        + 2 * u64::from(info.width.div_ceil(2)) * u64::from(info.height.div_ceil(2));
                    prop_assert!(n * (size + 6) <= bytes.len() as u64);
                }
                Err(e) => names_file(&e, &path)?,
            },
            Err(e) => names_file(&e, &path)?,
        }
    }

    // ---------------------------------------------------------------- WAV

    #[test]
    fn wav_of_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400), riff in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut content = if riff { b"RIFF\x24\x08\x00\x00WAVEfmt ".to_vec() } else { Vec::new() };
        content.extend_from_slice(&bytes);
        let path = write(dir.path(), "any.wav", &content);
        match WavReader::open(&path) {
            Ok(mut r) => {
                if let Err(e) = read_all_wav(&mut r) {
                    names_file(&e, &path)?;
                }
            }
            Err(e) => names_file(&e, &path)?,
        }
    }

    #[test]
    fn wav_round_trips(stereo in any::<bool>(), rate in prop_oneof![Just(8_000u32), Just(16_000), Just(48_000)],
                       samples in proptest::collection::vec(any::<i16>(), 0..3000)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt.wav");
        let channels = if stereo { 2 } else { 1 };
        let format = AudioFormat::new(rate, channels).unwrap();
        let whole = samples.len() / usize::from(channels) * usize::from(channels);
        let mut w = WavWriter::create(&path, format).unwrap();
        w.write_samples(&samples[..whole], format).unwrap();
        w.finish().unwrap();
        let mut r = WavReader::open(&path).unwrap();
        prop_assert_eq!(r.format(), format);
        prop_assert_eq!(r.duration_samples() as usize, whole / usize::from(channels));
        prop_assert_eq!(read_all_wav(&mut r).unwrap(), samples[..whole].to_vec());
    }

    #[test]
    fn wav_mutated_files(samples in proptest::collection::vec(any::<i16>(), 1..400),
                         flips in proptest::collection::vec((0usize..60, any::<u8>()), 0..5),
                         cut in any::<usize>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wav");
        let format = AudioFormat::new(48_000, 1).unwrap();
        let mut w = WavWriter::create(&path, format).unwrap();
        w.write_samples(&samples, format).unwrap();
        w.finish().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // Flips land in the header (first 60 bytes), where the parser decides things.
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        std::fs::write(&path, &bytes).unwrap();
        match WavReader::open(&path) {
            Ok(mut r) => match read_all_wav(&mut r) {
                // Every sample returned was read from at least one byte of the file.
                Ok(got) => prop_assert!(got.len() <= bytes.len()),
                Err(e) => names_file(&e, &path)?,
            },
            Err(e) => names_file(&e, &path)?,
        }
    }

    // ---------------------------------------------------------------- frame stamp

    #[test]
    fn stamp_round_trips(w in MIN_WIDTH..700, extra in 0u32..64, n in any::<u32>(),
                         ts in 0..=MAX_TIMESTAMP_MICROS, rgba in any::<bool>(), pad in 0usize..40) {
        let bpp = if rgba { 4 } else { 1 };
        let h = stamp::band_height(w) + extra;
        let stride = w as usize * bpp + pad;
        let mut plane = vec![128u8; stride * h as usize];
        let s = Stamp { frame_number: n, timestamp: Timestamp::from_micros(ts) };
        stamp::encode_plane(&mut plane, stride, bpp, w, h, s).unwrap();
        prop_assert_eq!(stamp::decode_plane(&plane, stride, bpp, w, h).unwrap(), s);
    }

    #[test]
    fn stamp_of_any_plane_and_geometry(data in proptest::collection::vec(any::<u8>(), 0..20_000),
                                       stride in 0usize..4000, bpp in 0usize..6,
                                       w in 0u32..2000, h in 0u32..200) {
        // Arbitrary pixels: decoding is an error (almost always: the checksum) or a stamp whose
        // re-encoding reproduces the cells that were read; arbitrary geometry is an error.
        match stamp::decode_plane(&data, stride, bpp, w, h) {
            Ok(s) => {
                let mut again = vec![0u8; data.len()];
                stamp::encode_plane(&mut again, stride, bpp, w, h, s).unwrap();
                prop_assert_eq!(stamp::decode_plane(&again, stride, bpp, w, h).unwrap(), s);
            }
            Err(e) => prop_assert!(matches!(e, MediaError::Stamp { .. }), "{e:?}"),
        }
        let s = Stamp { frame_number: 1, timestamp: Timestamp::from_micros(2) };
        let mut buf = data.clone();
        if let Err(e) = stamp::encode_plane(&mut buf, stride, bpp, w, h, s) {
            prop_assert!(matches!(e, MediaError::Stamp { .. }), "{e:?}");
            prop_assert_eq!(buf, data, "a refused stamp writes nothing");
        }
    }

    #[test]
    fn stamp_refuses_timestamps_beyond_56_bits(ts in (MAX_TIMESTAMP_MICROS + 1)..=u64::MAX) {
        let mut plane = vec![0u8; 640 * 360];
        let s = Stamp { frame_number: 0, timestamp: Timestamp::from_micros(ts) };
        let e = stamp::encode_plane(&mut plane, 640, 1, 640, 360, s).unwrap_err();
        prop_assert!(e.to_string().contains("56 bits"), "{e}");
    }
}

#[test]
fn y4m_non_ascii_tag_is_an_error_naming_the_file_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.y4m", "YUV4MPEG2 W64 H64 éx\n".as_bytes());
    let e = Y4mReader::open(&path).err().expect("refused");
    let text = e.to_string();
    assert!(text.contains("bad.y4m") && text.contains("unknown tag `éx`"), "{text}");
}
