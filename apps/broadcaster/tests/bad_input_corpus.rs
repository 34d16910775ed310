//! Bad-input corpus for the broadcaster: broken configuration files, Y4M and WAV files, and bad
//! flags. Every case must fail during validation — exit code 2, before any connection is
//! attempted — with an `error:` line that names what was wrong and where (file, key or flag), and
//! must not panic.
//!
//! The corpus is generated (deterministic mutations of valid files, kept only when the library
//! refuses them) plus hand-written nasty cases (non-ASCII header tags, NaN, huge durations).

use std::ffi::OsString;
use std::process::Command;
use std::sync::LazyLock;

use wavecast_config::Loader;
use wavecast_media::{
    AudioSource, FrameRate, VideoSource, WavReader, WavWriter, Y4mReader, Y4mWriter,
};
use wavecast_pipeline::{AudioFormat, PixelFormat, VideoFrameMut, VideoLayout};
use wavecast_testbed::corpus::{
    Case, Check, Outcome, Rng, TIMEOUT, bad_config_value_cases, good_config, run_case,
};

const BIN: &str = env!("CARGO_BIN_EXE_broadcaster");
const KEYS: [&str; 4] = ["--api-key", "devkey", "--api-secret", "secret"];
/// Where a case that wrongly passed validation would connect: nothing listens there, and the
/// test fails on its exit code (3, unreachable) instead of 2.
const NOWHERE: [&str; 4] = ["--url", "ws://127.0.0.1:1", "--max-attempts", "0"];

static GOOD_CONFIG: LazyLock<String> =
    LazyLock::new(|| good_config("ws://127.0.0.1:1", 0, (320, 180), 500));

fn in_temp<T>(name: &str, bytes: &[u8], f: impl FnOnce(&std::path::Path) -> T) -> T {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    f(&path)
}

fn config_refused(text: &[u8]) -> bool {
    in_temp("probe.toml", text, |p| {
        Loader::new()
            .file(p)
            .env_vars(Vec::<(String, String)>::new())
            .load()
            .is_err()
    })
}

fn config_cases() -> Vec<Case> {
    let args = ["--config", "bad.toml"];
    let mut cases = bad_config_value_cases(&GOOD_CONFIG, &args, config_refused);
    let mut rng = Rng::seeded(0x5151_7a7a_0303_9999);
    let (mut made, mut tries) = (0, 0);
    while made < 20 && tries < 10_000 {
        tries += 1;
        let mut b = GOOD_CONFIG.as_bytes().to_vec();
        const JUNK: &[&[u8]] = &[b"=", b"[", b"\"", b"\0", b"\xff", b"= =", b"[[", b"nan"];
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(b.len());
            if rng.below(2) == 0 {
                b.remove(i);
            } else {
                let j = JUNK[rng.below(JUNK.len())];
                b.splice(i..i, j.iter().copied());
            }
        }
        if config_refused(&b) {
            made += 1;
            cases.push(
                Case::new(format!("config mutation #{made}"), &args, &["bad.toml"])
                    .file("bad.toml", b),
            );
        }
    }
    assert_eq!(made, 20);
    cases.push(Case::new(
        "config missing",
        &["--config", "nope.toml"],
        &["nope.toml"],
    ));
    cases.push(Case::new(
        "config is a directory",
        &["--config", "."],
        &["not a regular file"],
    ));
    cases
}

// ---------------------------------------------------------------- Y4M

fn good_y4m() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.y4m");
    let mut w = Y4mWriter::create(&path, 128, 72, FrameRate::new(30, 1)).unwrap();
    for i in 0..2u8 {
        let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 128, 72).unwrap());
        for p in f.planes_mut().iter_mut() {
            for y in 0..p.rows {
                p.row_mut(y).fill(i * 50 + y as u8);
            }
        }
        w.write_frame(&f.freeze()).unwrap();
    }
    w.finish().unwrap();
    std::fs::read(&path).unwrap()
}

/// Does the broadcaster's check refuse this file? (It opens it and reads the first frame.)
fn y4m_refused(bytes: &[u8]) -> bool {
    in_temp("probe.y4m", bytes, |p| match Y4mReader::open(p) {
        Err(_) => true,
        Ok(mut r) => {
            let mut f = VideoFrameMut::new(r.layout());
            // Narrower than the frame stamp needs is refused too (with --stamp).
            !matches!(r.read_frame(&mut f), Ok(true))
        }
    })
}

fn y4m_cases() -> Vec<Case> {
    let good = good_y4m();
    let header_end = good.iter().position(|&b| b == b'\n').unwrap() + 1;
    let frame_end = header_end + 6 + 128 * 72 * 3 / 2;
    let args = ["--source", "file", "--video-file", "clip.y4m"];
    let mut cases = Vec::new();
    // Header tokens: each replaces the W, H, F or C token of the good header, or is added.
    let header = String::from_utf8(good[..header_end - 1].to_vec()).unwrap();
    let body = &good[header_end..];
    for (name, replace, with) in [
        ("non-ASCII tag", "Ip", "éx"),
        ("non-ASCII tag alone", "Ip", "é"),
        ("emoji tag", "Ip", "🦀1"),
        ("width 0", "W128", "W0"),
        ("width negative", "W128", "W-1"),
        ("width huge", "W128", "W99999"),
        ("width not a number", "W128", "Wabc"),
        ("width fractional", "W128", "W128.5"),
        ("width overflow", "W128", "W99999999999999"),
        ("width missing", "W128", ""),
        ("height 0", "H72", "H0"),
        ("height empty", "H72", "H"),
        ("height missing", "H72", ""),
        ("rate 0:1", "F30:1", "F0:1"),
        ("rate 1:0", "F30:1", "F1:0"),
        ("rate text", "F30:1", "Ffast"),
        ("rate no colon", "F30:1", "F30"),
        ("colour 444", "C420jpeg", "C444"),
        ("colour 10-bit", "C420jpeg", "C420p10"),
        ("colour mono", "C420jpeg", "Cmono"),
        ("unknown tag", "Ip", "Z1"),
        ("control character tag", "Ip", "\u{7}x"),
        ("magic lower-case", "YUV4MPEG2", "yuv4mpeg2"),
        ("magic short", "YUV4MPEG2", "YUV4MPEG"),
        ("magic missing", "YUV4MPEG2 ", ""),
    ] {
        let h = header.replacen(replace, with, 1);
        let mut bytes = h.into_bytes();
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        assert!(y4m_refused(&bytes), "{name}");
        cases.push(Case::new(format!("y4m {name}"), &args, &["clip.y4m"]).file("clip.y4m", bytes));
    }
    let mut hand: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("only magic", b"YUV4MPEG2".to_vec()),
        ("header without end of line", b"YUV4MPEG2 W64 H64".to_vec()),
        (
            "header 2 kB",
            [b"YUV4MPEG2 ".as_slice(), &[b'X'; 2048], b"\n"].concat(),
        ),
        ("no frames", good[..header_end].to_vec()),
        (
            "frame marker wrong",
            [&good[..header_end], b"FRAMX\n".as_slice(), &body[6..]].concat(),
        ),
        (
            "frame marker missing",
            [&good[..header_end], &body[6..]].concat(),
        ),
        ("frame truncated", good[..frame_end - 1].to_vec()),
        ("binary", vec![0, 255, 1, 254, 2, 253]),
        ("not UTF-8 header", b"YUV4MPEG2 W64 H\xff\n".to_vec()),
        ("NUL in header", b"YUV4MPEG2 W64\0 H64\n".to_vec()),
        ("WAV file given as Y4M", b"RIFF\x24\0\0\0WAVEfmt ".to_vec()),
    ];
    // Generated: mutations in the header and the first frame's marker, and truncations before
    // the end of the first frame (what the broadcaster reads before it connects).
    let mut rng = Rng::seeded(0xdead_beef_cafe_f00d);
    let mut made = 0;
    let mut tries = 0;
    let mut generated = Vec::new();
    while made < 30 && tries < 10_000 {
        tries += 1;
        let mut b = good.clone();
        match rng.below(3) {
            0 => {
                let i = rng.below(header_end + 6);
                b[i] = [b' ', b'\n', b'0', b'x', 0xc3, 0xa9, 0xff, b'W', b'-'][rng.below(9)];
            }
            1 => {
                let i = rng.below(header_end + 6);
                b.remove(i);
            }
            _ => b.truncate(rng.below(frame_end)),
        }
        if y4m_refused(&b) {
            made += 1;
            generated.push((made, b));
        }
    }
    assert_eq!(made, 30);
    for (n, b) in generated {
        cases.push(
            Case::new(format!("y4m mutation #{n}"), &args, &["clip.y4m"]).file("clip.y4m", b),
        );
    }
    for (name, bytes) in hand.drain(..) {
        assert!(y4m_refused(&bytes), "{name}");
        cases.push(Case::new(format!("y4m {name}"), &args, &["clip.y4m"]).file("clip.y4m", bytes));
    }
    cases.push(Case::new(
        "y4m missing",
        &["--source", "file", "--video-file", "nope.y4m"],
        &["nope.y4m"],
    ));
    cases.push(Case::new(
        "y4m is a directory",
        &["--source", "file", "--video-file", "."],
        &["error"],
    ));
    cases
}

// ---------------------------------------------------------------- WAV

fn good_wav(rate: u32, channels: u16) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.wav");
    let format = AudioFormat::new(rate, channels).unwrap();
    let mut w = WavWriter::create(&path, format).unwrap();
    let samples: Vec<i16> = (0..960 * usize::from(channels))
        .map(|i| (i * 37) as i16)
        .collect();
    w.write_samples(&samples, format).unwrap();
    w.finish().unwrap();
    drop(w);
    std::fs::read(&path).unwrap()
}

/// Does the broadcaster refuse this file? (It opens it; 48 kHz mono or stereo only.)
fn wav_refused(bytes: &[u8]) -> bool {
    in_temp("probe.wav", bytes, |p| match WavReader::open(p) {
        Err(_) => true,
        Ok(r) => r.format().sample_rate != 48_000 || r.format().channels > 2,
    })
}

fn wav_cases() -> Vec<Case> {
    let good = good_wav(48_000, 1);
    let args = ["--source", "file", "--audio-file", "tone.wav"];
    let mut cases = Vec::new();
    let set = |at: usize, v: &[u8]| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    let hand: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("RIFF only", b"RIFF".to_vec()),
        ("not RIFF", set(0, b"RIFX")),
        ("not WAVE", set(8, b"AVI ")),
        ("no fmt chunk", set(12, b"junk")),
        ("format tag 0", set(20, &0u16.to_le_bytes())),
        ("format tag MP3", set(20, &0x55u16.to_le_bytes())),
        ("0 channels", set(22, &0u16.to_le_bytes())),
        ("9 channels", set(22, &9u16.to_le_bytes())),
        ("3 channels", good_wav(48_000, 3)),
        ("0 Hz", set(24, &0u32.to_le_bytes())),
        ("44.1 kHz", good_wav(44_100, 1)),
        ("8 kHz stereo", good_wav(8_000, 2)),
        ("4 GHz", set(24, &u32::MAX.to_le_bytes())),
        ("block align 0", set(32, &0u16.to_le_bytes())),
        ("0 bits", set(34, &0u16.to_le_bytes())),
        ("12 bits", set(34, &12u16.to_le_bytes())),
        ("64 bits", set(34, &64u16.to_le_bytes())),
        ("fmt chunk size 0", set(16, &0u32.to_le_bytes())),
        ("fmt chunk size huge", set(16, &u32::MAX.to_le_bytes())),
        ("header cut", good[..30].to_vec()),
        ("binary", vec![0xff; 64]),
        ("Y4M given as WAV", b"YUV4MPEG2 W64 H64\n".to_vec()),
    ];
    for (name, bytes) in hand {
        assert!(wav_refused(&bytes), "{name}");
        cases.push(Case::new(format!("wav {name}"), &args, &["tone.wav"]).file("tone.wav", bytes));
    }
    let mut rng = Rng::seeded(0x0bad_f00d_1234_5678);
    let (mut made, mut tries) = (0, 0);
    while made < 30 && tries < 20_000 {
        tries += 1;
        let mut b = good.clone();
        for _ in 0..1 + rng.below(3) {
            match rng.below(3) {
                0 => {
                    let i = rng.below(44.min(b.len()));
                    b[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(44.min(b.len()));
                    b[i] = [0, 0xff, 1, 2, 0x80][rng.below(5)];
                }
                _ => b.truncate(rng.below(44)),
            }
            if b.is_empty() {
                break;
            }
        }
        if wav_refused(&b) {
            made += 1;
            cases.push(
                Case::new(format!("wav mutation #{made}"), &args, &["tone.wav"])
                    .file("tone.wav", b),
            );
        }
    }
    assert_eq!(made, 30);
    cases.push(Case::new(
        "wav missing",
        &["--source", "file", "--audio-file", "nope.wav"],
        &["nope.wav"],
    ));
    cases
}

// ---------------------------------------------------------------- flags

fn flag_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (args, needle) in [
        (&["--fps", "x"][..], "--fps"),
        (&["--fps", "0"], "--fps"),
        (&["--fps", "1000"], "--fps"),
        (&["--fps=-1"], "--fps"),
        (&["--fps", "-1"], "'-1'"),
        (&["--width", "0"], "--width"),
        (&["--width", "99999"], "--width"),
        (&["--width", "abc"], "--width"),
        (&["--width=-2"], "--width"),
        (&["--height", "7"], "--height"),
        (&["--bitrate", "0"], "--bitrate"),
        (&["--bitrate", "4294967296"], "--bitrate"),
        (&["--audio-bitrate", "0"], "--audio-bitrate"),
        (&["--audio-bitrate", "1000"], "--audio-bitrate"),
        (&["--tone", "nan"], "--tone"),
        (&["--tone", "inf"], "--tone"),
        (&["--tone=-440"], "--tone"),
        (&["--tone", "5"], "--tone"),
        (&["--tone", "la"], "--tone"),
        (&["--min-bitrate", "0"], "video.min_bitrate = 0"),
        (&["--codec", "av1"], "--codec"),
        (&["--source", "camera"], "--source"),
        (&["--source", "file"], "--source file"),
        (&["--video-file", "x.y4m"], "--source file"),
        (&["--display", ":0"], "--display"),
        (&["--no-audio", "--no-video"], "--no-audio"),
        (&["--max-attempts=-1"], "--max-attempts"),
        (&["--max-attempts", "1001"], "--max-attempts"),
        (&["--retry-delay", "0s"], "--retry-delay"),
        (&["--retry-delay", "500000000000y"], "--retry-delay"),
        (&["--retry-delay", "soon"], "--retry-delay"),
        (&["--max-retry-delay", "2h"], "--max-retry-delay"),
        (&["--connect-timeout", "0s"], "--connect-timeout"),
        (&["--connect-timeout", "1y"], "--connect-timeout"),
        (&["--stats-interval", "often"], "--stats-interval"),
        (&["--duration", "a while"], "--duration"),
        (&["--duration=-5s"], "--duration"),
        (&["--url", "ftp://127.0.0.1"], "--url"),
        (&["--url", ""], "--url"),
        (&["--room", ""], "--room"),
        (&["--room", "   "], "--room"),
        (&["--frobnicate"], "--frobnicate"),
    ] {
        cases.push(Case::new(format!("flags {args:?}"), args, &[needle]));
    }
    // Only a key, only a secret: names the missing one.
    for (args, needle) in [
        (&["--api-key", "devkey"][..], "--api-secret"),
        (&["--api-secret", "secret"], "--api-key"),
        (
            &["--api-key", "devkey", "--api-secret", ""],
            "connection.api_secret",
        ),
    ] {
        let mut c = Case::new(format!("credentials {args:?}"), args, &[needle]);
        c.name.push_str(" (no KEYS)");
        cases.push(c);
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let mut c = Case::new("non-UTF-8 room", &["--room"], &["UTF-8"]);
        c.args.push(OsString::from_vec(vec![b'r', 0xff]));
        cases.push(c);
    }
    cases
}

// ---------------------------------------------------------------- runner

fn run(case: &Case) -> Outcome {
    let mut cmd = Command::new(BIN);
    let own_credentials = case.name.ends_with("(no KEYS)") || case.has_arg("--config");
    if !own_credentials {
        cmd.args(KEYS);
    }
    if !case.has_arg("--url") && !case.has_arg("--config") {
        cmd.args(NOWHERE);
    }
    cmd.arg("--no-stdin");
    run_case(cmd, case, TIMEOUT)
}

#[test]
fn bad_configs_media_files_and_flags_fail_before_connecting() {
    let cases = [config_cases(), y4m_cases(), wav_cases(), flag_cases()].concat();
    assert!(cases.len() >= 200, "corpus has {} cases", cases.len());
    // 2 = refused during validation (clap's usage errors are 2 as well).
    Check::exit_code(2)
        .never("cannot reach LiveKit", "tried to connect")
        .assert_all(&cases, run);
}

/// Regression: `--duration 500000000000y` panicked (`Instant + duration` overflowed the clock).
/// A duration beyond the clock's range now means "no deadline": the run goes on to connect
/// (nothing listens on port 1) and reports that.
#[test]
fn huge_duration_is_no_deadline_not_a_panic() {
    let case = Case::new(
        "huge --duration",
        &[
            "--duration",
            "500000000000y",
            "--url",
            "ws://127.0.0.1:1",
            "--max-attempts",
            "0",
        ],
        &[],
    );
    let o = run(&case);
    assert!(!o.stderr.contains("panicked at"), "{}", o.stderr);
    assert_eq!(o.code, Some(3), "unreachable, not a crash:\n{}", o.stderr);
    assert!(
        o.stderr
            .contains("cannot reach LiveKit at ws://127.0.0.1:1"),
        "{}",
        o.stderr
    );
}
