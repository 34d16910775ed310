//! Helpers of the recorder's integration tests: processes in the background, the broadcaster
//! binary, and what the distro's ffprobe/ffmpeg read from a WebM file.
#![allow(dead_code)]

use std::io::Write;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A background process; its stdout lines are collected; killed on drop.
pub struct Background {
    pub child: Child,
    pub name: String,
    lines: Arc<Mutex<Vec<String>>>,
    err: Option<std::thread::JoinHandle<String>>,
    stdin: Option<ChildStdin>,
}

impl Background {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        Self::start(name, cmd, false)
    }

    /// Starts `cmd` with a pipe to its stdin (see [`Background::say`]).
    pub fn spawn_with_stdin(name: &str, cmd: &mut Command) -> Self {
        Self::start(name, cmd, true)
    }

    fn start(name: &str, cmd: &mut Command, stdin: bool) -> Self {
        let mut child = cmd
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut err = child.stderr.take().expect("piped");
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Self {
            stdin: child.stdin.take(),
            child,
            name: name.to_owned(),
            lines,
            err: Some(err),
        }
    }

    /// Writes a line to its stdin.
    pub fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("spawned with stdin");
        writeln!(stdin, "{line}").unwrap_or_else(|e| panic!("{}: stdin: {e}", self.name));
    }

    /// Stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a stdout line starting with `prefix`.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no `{prefix}` line in {timeout:?}: {:?}",
                self.name,
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (by this child's own pid).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.name);
    }

    /// Waits for the exit (killing it after `timeout`); returns (exit code, stdout, stderr).
    pub fn finish(mut self, timeout: Duration) -> (Option<i32>, Vec<String>, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        std::thread::sleep(Duration::from_millis(100));
        let err = self
            .err
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (status, self.lines(), err)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The broadcaster app's binary from the same target directory, built first if missing.
pub fn broadcaster(this_exe: &str) -> PathBuf {
    let dir = Path::new(this_exe)
        .parent()
        .expect("binary has a directory");
    let path = dir.join("broadcaster");
    if path.is_file() {
        return path;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-q",
        "-p",
        "wavecast-broadcaster",
        "--bin",
        "broadcaster",
    ]);
    if std::env::var_os("CARGO_TARGET_DIR").is_none()
        && let Some(target) = dir.parent()
    {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    assert!(cmd.status().expect("cargo").success(), "build broadcaster");
    path
}

/// `--url … --room … --identity … --api-key … --api-secret …`.
pub fn join_args(url: &str, room: &str, identity: &str) -> Vec<String> {
    let keys = (wavecast_testbed::API_KEY, wavecast_testbed::API_SECRET);
    vec![
        "--url".into(),
        url.into(),
        "--room".into(),
        room.into(),
        "--identity".into(),
        identity.into(),
        "--api-key".into(),
        keys.0.into(),
        "--api-secret".into(),
        keys.1.into(),
    ]
}

/// A broadcaster publishing 320×180 at `fps` and a tone of `tone` Hz for `seconds`.
pub fn broadcaster_cmd(
    bin: &Path,
    url: &str,
    room: &str,
    id: &str,
    tone: u32,
    fps: u32,
    seconds: u32,
) -> Command {
    let mut c = Command::new(bin);
    c.args(join_args(url, room, id))
        .args(["--tone", &tone.to_string(), "--fps", &fps.to_string()])
        .args(["--width", "320", "--height", "180", "--bitrate", "300"])
        .args(["--duration", &format!("{seconds}s"), "--no-stdin"]);
    c
}

/// One stream as ffprobe counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub codec: String,
    pub packets: u64,
    pub width: u64,
    pub height: u64,
    /// Time of the last packet + its duration, seconds.
    pub end: f64,
}

/// ffprobe's streams (with packet counts and the end of the last packet) and format duration.
pub fn probe(path: &Path) -> (Vec<Stream>, Option<f64>) {
    let v = wavecast_testbed::apps::ffprobe_json(
        &[
            "-count_packets",
            "-show_entries",
            "stream=index,codec_name,nb_read_packets,width,height:format=duration",
        ],
        path,
    );
    let num = |s: &serde_json::Value, k: &str| {
        wavecast_testbed::apps::ffprobe_number(&s[k]).unwrap_or(0.0) as u64
    };
    // Last packet end per stream.
    let pk = wavecast_testbed::apps::ffprobe(
        &[
            "-show_entries",
            "packet=stream_index,pts_time,duration_time",
            "-of",
            "csv=p=0",
        ],
        path,
    );
    let mut ends = [0f64; 8];
    for line in pk.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if let (Some(i), Some(t)) = (
            f.first().and_then(|x| x.parse::<usize>().ok()),
            f.get(1).and_then(|x| x.parse::<f64>().ok()),
        ) {
            let d = f.get(2).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
            if i < 8 {
                ends[i] = ends[i].max(t + d);
            }
        }
    }
    let streams = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Stream {
            codec: s["codec_name"].as_str().unwrap_or("").to_owned(),
            packets: num(s, "nb_read_packets"),
            width: num(s, "width"),
            height: num(s, "height"),
            end: ends[num(s, "index") as usize % 8],
        })
        .collect();
    let duration = wavecast_testbed::apps::ffprobe_number(&v["format"]["duration"]);
    (streams, duration)
}

/// The file's audio decoded by ffmpeg: mono 16-bit at 48 kHz.
pub fn decode_audio(path: &Path) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args([
            "-map", "0:a", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The dominant frequency of a tone: the median period between rising crossings (with
/// hysteresis, so silences and noise do not count).
pub fn tone_frequency(pcm: &[i16]) -> f64 {
    let peak = pcm.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
    let th = peak / 4;
    let mut armed = false;
    let mut rises = Vec::new();
    for (i, s) in pcm.iter().enumerate() {
        let s = i32::from(*s);
        if s < -th {
            armed = true;
        } else if armed && s > th {
            armed = false;
            rises.push(i);
        }
    }
    let mut periods: Vec<usize> = rises.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(periods.len() > 100, "no tone: {} periods", periods.len());
    periods.sort_unstable();
    // The mean of the middle half of the periods (the median alone is quantised to samples).
    let mid = &periods[periods.len() / 4..periods.len() * 3 / 4];
    48_000.0 / (mid.iter().sum::<usize>() as f64 / mid.len() as f64)
}

/// The luma planes of every video frame, decoded by ffmpeg (the stream must keep one size).
pub fn decode_luma(path: &Path, width: usize, height: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-fps_mode", "passthrough", "-f", "rawvideo"])
        .args(["-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(width * height)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Parses a JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
