//! File sources and sinks: round trips, looping, and bad files giving clear errors.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use wavecast_media::{
    AudioSource, FrameRate, InputSpec, Looping, MarkerDetector, Markers, MediaError, OutputSpec,
    TestPattern, ToneGenerator, VideoSource, WavReader, WavWriter, Waveform, Y4mReader, Y4mWriter,
    open_output, stamp,
};
use wavecast_pipeline::{
    AudioFormat, AudioFrameMut, FanOut, GPU_ROW_ALIGNMENT, PixelFormat, Timestamp, VideoFrame,
    VideoFrameMut, VideoFramePool, VideoLayout,
};

const START: u64 = 1_763_000_000_000_000;

fn write_pattern_y4m(path: &Path, frames: u32, w: u32, h: u32) -> Vec<VideoFrame> {
    let mut writer = Y4mWriter::create(path, w, h, FrameRate::new(30, 1)).unwrap();
    let pattern = TestPattern::default();
    let mut written = Vec::new();
    for n in 0..frames {
        let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, w, h).unwrap());
        pattern
            .render(
                &mut f,
                n,
                Timestamp::from_micros(START + u64::from(n) * 33_333),
            )
            .unwrap();
        let f = f.freeze();
        writer.write_frame(&f).unwrap();
        written.push(f);
    }
    writer.finish().unwrap();
    written
}

#[test]
fn stamps_decode_exactly_after_a_lossless_y4m_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pattern.y4m");
    let original = write_pattern_y4m(&path, 12, 320, 180);

    // Read back into GPU-padded pooled buffers and fan out to two consumers.
    let mut reader = Y4mReader::open(&path).unwrap();
    assert_eq!(reader.info().frame_rate, FrameRate::new(30, 1));
    let layout =
        VideoLayout::with_row_alignment(PixelFormat::I420, 320, 180, GPU_ROW_ALIGNMENT).unwrap();
    let pool = VideoFramePool::new("y4m", layout, 4);
    let mut fan = FanOut::new();
    let checker = fan.add_queue("checker", 16);
    let renderer = fan.add_mailbox("renderer");
    let mut n = 0;
    loop {
        let mut f = pool.acquire().unwrap();
        if !reader.read_frame(&mut f).unwrap() {
            break;
        }
        fan.publish(f.freeze());
        let got = checker.pop().unwrap();
        let s = stamp::decode_frame(&got).unwrap();
        assert_eq!(s.frame_number, n);
        assert_eq!(
            s.timestamp,
            Timestamp::from_micros(START + u64::from(n) * 33_333)
        );
        for plane in 0..3 {
            let (a, b) = (got.plane(plane), original[n as usize].plane(plane));
            for y in 0..a.rows {
                assert_eq!(a.row(y), b.row(y), "frame {n} plane {plane} row {y}");
            }
        }
        n += 1;
    }
    assert_eq!(n, 12);
    assert!(renderer.take().is_some());
}

#[test]
fn y4m_looping_keeps_counting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("three.y4m");
    write_pattern_y4m(&path, 3, 96, 64);
    let mut src = Looping::times(Y4mReader::open(&path).unwrap(), 3);
    let layout = src.layout();
    let mut numbers = Vec::new();
    loop {
        let mut f = VideoFrameMut::new(layout);
        if !src.read_frame(&mut f).unwrap() {
            break;
        }
        let f = f.freeze();
        numbers.push((f.sequence(), stamp::decode_frame(&f).unwrap().frame_number));
    }
    let expected: Vec<(u64, u32)> = (0..9).map(|i| (i, (i % 3) as u32)).collect();
    assert_eq!(numbers, expected);
    assert!(src.describe().contains("three.y4m"));
}

#[test]
fn empty_y4m_cannot_loop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.y4m");
    std::fs::write(&path, "YUV4MPEG2 W96 H64 F25:1\n").unwrap();
    let mut src = Looping::new(Y4mReader::open(&path).unwrap());
    let mut f = VideoFrameMut::new(src.layout());
    let err = src.read_frame(&mut f).unwrap_err();
    assert!(matches!(err, MediaError::EmptySource { .. }), "{err}");
    assert!(err.to_string().contains("empty.y4m"), "{err}");
}

fn y4m_error(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let result = Y4mReader::open(&path).and_then(|mut r| {
        let mut f = VideoFrameMut::new(r.layout());
        while r.read_frame(&mut f)? {}
        Ok(())
    });
    let err = result.expect_err("bad file must be an error");
    let text = err.to_string();
    assert!(text.contains(name), "error does not name the file: {text}");
    text
}

#[test]
fn bad_y4m_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.y4m");
    write_pattern_y4m(&good, 2, 96, 64);
    let bytes = std::fs::read(&good).unwrap();

    let text = y4m_error("truncated.y4m", &bytes[..bytes.len() - 100]);
    assert!(text.contains("truncated Y4M frame 1"), "{text}");
    assert!(text.contains("expected 9216 bytes, found 9116"), "{text}");

    let text = y4m_error("wrong-magic.y4m", b"YUV4MPEG W96 H64\nFRAME\n");
    assert!(text.contains("does not start with `YUV4MPEG2`"), "{text}");
    let text = y4m_error("no-size.y4m", b"YUV4MPEG2 F30:1\n");
    assert!(text.contains("missing W or H"), "{text}");
    let text = y4m_error("bad-width.y4m", b"YUV4MPEG2 Wabc H64\n");
    assert!(text.contains("bad width `abc`"), "{text}");
    let text = y4m_error("zero.y4m", b"YUV4MPEG2 W0 H64\n");
    assert!(text.contains("0x64"), "{text}");
    let text = y4m_error("444.y4m", b"YUV4MPEG2 W96 H64 C444\n");
    assert!(
        text.contains("unsupported Y4M stream: colour space `C444`"),
        "{text}"
    );
    let text = y4m_error("empty.y4m", b"");
    assert!(text.contains("file is empty"), "{text}");
    let text = y4m_error("binary.y4m", &[0xff; 2000]);
    assert!(text.contains("bad Y4M header"), "{text}");
    let mut bad_frame = bytes[..bytes.iter().position(|&b| b == b'\n').unwrap() + 1].to_vec();
    bad_frame.extend_from_slice(b"FRAMX\n");
    let text = y4m_error("bad-frame.y4m", &bad_frame);
    assert!(text.contains("expected `FRAME`"), "{text}");

    let missing = Y4mReader::open(dir.path().join("missing.y4m"))
        .err()
        .unwrap();
    assert!(
        missing.to_string().contains("missing.y4m: open failed"),
        "{missing}"
    );
}

#[test]
fn y4m_writer_refuses_other_formats_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.y4m");
    let mut w = Y4mWriter::create(&path, 96, 64, FrameRate::new(30, 1)).unwrap();
    let rgba = VideoFrameMut::new(VideoLayout::new(PixelFormat::Rgba, 96, 64).unwrap()).freeze();
    assert!(matches!(
        w.write_frame(&rgba),
        Err(MediaError::UnsupportedPixelFormat { .. })
    ));
    let other = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 98, 64).unwrap()).freeze();
    assert!(
        w.write_frame(&other)
            .unwrap_err()
            .to_string()
            .contains("96x64")
    );
}

fn tone_wav(path: &Path, format: AudioFormat, frames: usize, markers: bool) {
    let mut g = ToneGenerator::new(
        format,
        Waveform::Tone(440.0),
        0.5,
        Timestamp::from_micros(START),
    )
    .unwrap();
    if markers {
        g = g.with_markers(Markers::default());
    }
    let mut w = WavWriter::create(path, format).unwrap();
    for _ in 0..frames {
        let mut f = AudioFrameMut::new(format, 480);
        g.fill(&mut f);
        w.write_frame(&f.freeze()).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn wav_round_trip_keeps_samples_and_markers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let format = AudioFormat::STEREO_48K;
    tone_wav(&path, format, 150, true); // 1.5 s

    let mut reader = WavReader::open(&path).unwrap();
    assert_eq!(reader.format(), format);
    assert_eq!(reader.duration_samples(), 150 * 480);
    let mut det = MarkerDetector::new(48_000, 0.5, Duration::from_millis(10));
    let mut found = Vec::new();
    let mut position = 0u64;
    loop {
        let mut f = AudioFrameMut::new(format, 480);
        let n = reader.read_frame(&mut f).unwrap();
        if n == 0 {
            break;
        }
        // The file has no timestamps: rebuild them from the position, as a player would.
        let ts = Timestamp::from_micros(START + position * 1_000_000 / 48_000);
        let f = f.freeze();
        det.push(f.samples(), 2, 48_000, ts, &mut found);
        position += n as u64;
    }
    assert_eq!(position, 150 * 480);
    // START is a multiple of 500 ms: the first sample is a marker gap (not reported: no sound
    // before it), then markers at +500 ms and +1000 ms.
    let period = Markers::default().period;
    let times: Vec<u64> = found
        .iter()
        .map(|m| m.capture_time(period).as_micros() - START)
        .collect();
    assert_eq!(times, [500_000, 1_000_000]);
    for m in &found {
        // Found within 1 / (6 × 440 Hz) ≈ 0.38 ms before the true gap start.
        let early = m
            .capture_time(period)
            .saturating_duration_since(m.timestamp);
        assert!(early < Duration::from_micros(380), "{m:?}");
    }
}

#[test]
fn wav_looping_and_short_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.wav");
    let format = AudioFormat::MONO_48K;
    let mut w = WavWriter::create(&path, format).unwrap();
    w.write_samples(&(0..700).map(|i| i as i16).collect::<Vec<_>>(), format)
        .unwrap();
    w.finish().unwrap();
    let mut src = Looping::times(WavReader::open(&path).unwrap(), 2);
    let mut sizes = Vec::new();
    let mut firsts = Vec::new();
    loop {
        let mut f = AudioFrameMut::new(format, 480);
        let n = src.read_frame(&mut f).unwrap();
        if n == 0 {
            break;
        }
        let f = f.freeze();
        sizes.push(f.samples_per_channel());
        firsts.push(f.samples()[0]);
    }
    assert_eq!(sizes, [480, 220, 480, 220]);
    assert_eq!(firsts, [0, 480, 0, 480]);
}

fn wav_header(format_tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format_tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn wav_error(name: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    let err = WavReader::open(&path)
        .err()
        .expect("bad WAV must be an error");
    let text = err.to_string();
    assert!(text.contains(name), "error does not name the file: {text}");
    std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[test]
fn bad_wav_files_give_clear_errors() {
    let text = wav_error("alaw.wav", &wav_header(6, 1, 8000, 8, &[0; 100]));
    assert!(text.contains("unsupported WAV format"), "{text}");
    let text = wav_error("double.wav", &wav_header(3, 1, 48_000, 64, &[0; 64]));
    assert!(text.contains("bits per sample"), "{text}");
    let text = wav_error("nine-channels.wav", &wav_header(1, 9, 48_000, 16, &[0; 36]));
    assert!(text.contains("channels = 9"), "{text}");
    let text = wav_error("not-riff.wav", b"this is not a wav file at all, just text");
    assert!(text.contains("WAV error"), "{text}");
    let text = wav_error("empty.wav", b"");
    assert!(text.contains("empty.wav"), "{text}");
}

#[test]
fn output_specs_and_headless_outputs() {
    assert_eq!("null".parse::<OutputSpec>().unwrap(), OutputSpec::Null);
    assert_eq!(
        "wav:/tmp/x.wav".parse::<OutputSpec>().unwrap(),
        OutputSpec::Wav("/tmp/x.wav".into())
    );
    assert_eq!(
        "device".parse::<OutputSpec>().unwrap(),
        OutputSpec::Device(None)
    );
    assert_eq!(
        "device:hw:0".parse::<OutputSpec>().unwrap(),
        OutputSpec::Device(Some("hw:0".into()))
    );
    assert_eq!(
        "wav:a.wav".parse::<OutputSpec>().unwrap().to_string(),
        "wav:a.wav"
    );
    for bad in ["", "wav", "wav:", "speaker", "null:x"] {
        let err = bad.parse::<OutputSpec>().unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{bad}`")) && err.contains("wav:PATH"),
            "{err}"
        );
    }
    assert!("null".parse::<InputSpec>().is_err());
    assert_eq!(
        "wav:in.wav".parse::<InputSpec>().unwrap(),
        InputSpec::Wav("in.wav".into())
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.wav");
    let format = AudioFormat::MONO_48K;
    let frame = AudioFrameMut::from_samples(format, &[1, 2, 3, 4]).freeze();
    let mut null = open_output(&OutputSpec::Null, format).unwrap();
    null.write(&frame).unwrap();
    assert_eq!(null.stats().samples, 4);
    let mut wav = open_output(&OutputSpec::Wav(path.clone()), format).unwrap();
    wav.write(&frame).unwrap();
    wav.write(&frame).unwrap();
    wav.finish().unwrap();
    let mut back = WavReader::open(&path).unwrap();
    let mut f = AudioFrameMut::new(format, 100);
    assert_eq!(back.read_frame(&mut f).unwrap(), 8);
    assert_eq!(f.samples(), &[1, 2, 3, 4, 1, 2, 3, 4]);
    let stereo = AudioFrameMut::from_samples(AudioFormat::STEREO_48K, &[1, 2]).freeze();
    let mut wav = open_output(&OutputSpec::Wav(dir.path().join("o2.wav")), format).unwrap();
    assert!(matches!(
        wav.write(&stereo),
        Err(MediaError::FormatMismatch { .. })
    ));

    #[cfg(not(feature = "cpal"))]
    {
        let err = open_output(&OutputSpec::Device(None), format)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`cpal` feature"), "{err}");
    }
}
