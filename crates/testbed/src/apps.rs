//! Helpers of the apps' integration tests: run an app binary with a timeout, find a sibling app
//! binary, read PNGs and the JSON stats, start a private Xvfb, send a signal.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished process printed.
#[derive(Debug)]
pub struct Run {
    /// Exit status (`None` when killed at the timeout).
    pub status: Option<ExitStatus>,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Run {
    /// The exit code (`-1` when killed).
    pub fn code(&self) -> i32 {
        self.status.and_then(|s| s.code()).unwrap_or(-1)
    }

    /// Both streams, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "exit {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Run {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the app");
    let out = drain(child.stdout.take().expect("piped"));
    let err = drain(child.stderr.take().expect("piped"));
    let status = wait(&mut child, timeout);
    Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

fn drain<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Waits for `child` up to `timeout`; kills it then (returns `None`).
pub fn wait(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A background process whose output is collected; killed on drop.
pub struct Background {
    child: Option<Child>,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
    name: String,
}

impl Background {
    /// Starts `cmd`.
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let out = drain(child.stdout.take().expect("piped"));
        let err = drain(child.stderr.take().expect("piped"));
        Self {
            child: Some(child),
            out: Some(out),
            err: Some(err),
            name: name.to_owned(),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits for it to end (up to `timeout`, then kills it).
    pub fn finish(mut self, timeout: Duration) -> Run {
        let started = Instant::now();
        let mut child = self.child.take().expect("running");
        let status = wait(&mut child, timeout);
        Run {
            status,
            stdout: self
                .out
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default(),
            stderr: self
                .err
                .take()
                .and_then(|h| h.join().ok())
                .unwrap_or_default(),
            elapsed: started.elapsed(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            eprintln!("{} was still running: killed", self.name);
        }
    }
}

/// Another app's binary from the same target directory, built first if missing (when only this
/// package's tests were built).
pub fn sibling_bin(this_exe: &str, package: &str, bin: &str) -> PathBuf {
    let dir = Path::new(this_exe)
        .parent()
        .expect("binary has a directory");
    let path = dir.join(bin);
    if path.is_file() {
        return path;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", package, "--bin", bin]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    if std::env::var_os("CARGO_TARGET_DIR").is_none()
        && let Some(target) = dir.parent()
    {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p {package} failed");
    assert!(path.is_file(), "{} missing after the build", path.display());
    path
}

/// Runs the distro's `ffprobe` (ffmpeg's reader: an independent check of what we write) on
/// `path` with `args`, `-v error` in front; its standard output. Panics with ffprobe's own
/// message when it fails to read the file.
pub fn ffprobe(args: &[&str], path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`ffprobe`] with `-of json`: its report, parsed.
pub fn ffprobe_json(args: &[&str], path: &Path) -> serde_json::Value {
    let mut all = vec!["-of", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ffprobe(&all, path)).expect("ffprobe prints JSON")
}

/// Checks that the distro's ffmpeg decodes every frame of the video in `path` without an error
/// message (`ffmpeg -v error … -f null -` prints nothing; ffprobe decodes as many frames as the
/// file holds packets) and returns ffprobe's report of that first video stream (`codec_name`,
/// `width`, `height`, `nb_read_packets`, `nb_read_frames`). Panics naming the file otherwise.
pub fn assert_video_decodes(path: &Path) -> serde_json::Value {
    let probe = ffprobe_json(
        &[
            "-count_packets",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,nb_read_packets,nb_read_frames,width,height",
        ],
        path,
    );
    let v = probe["streams"][0].clone();
    let num = |k: &str| ffprobe_number(&v[k]).unwrap_or(0.0) as u64;
    assert_eq!(
        num("nb_read_frames"),
        num("nb_read_packets"),
        "every frame of {} decodes: {v}",
        path.display()
    );
    // `-enc_time_base -1` keeps the file's millisecond time base on the way out: by default the
    // null output rounds to the stream's guessed frame rate, and two pictures of a live stream
    // that come closer than one frame apart get one time there — a muxer complaint
    // ("non monotonically increasing dts") about ffmpeg's output, not about the file.
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(
        decode.status.success() && errors.trim().is_empty(),
        "ffmpeg decodes {} without an error:\n{errors}",
        path.display()
    );
    v
}

/// A figure of an ffprobe report, which prints numbers as numbers or as strings.
pub fn ffprobe_number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Parses a JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// PNG files in `dir`, sorted.
pub fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "png"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// An RGBA picture read from a PNG (the apps' dumps and screenshots).
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    data: Vec<u8>,
}

impl Image {
    /// The pixel at (x, y), `None` outside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 4;
        self.data.get(i..i + 4)?.try_into().ok()
    }
}

/// Reads an 8-bit RGB or RGBA PNG (with the `png` crate, so test binaries need no GPU stack).
pub fn load_png(path: &Path) -> Image {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane PNG size")];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    buf.truncate(info.buffer_size());
    let data = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        other => panic!("{}: colour type {other:?}", path.display()),
    };
    Image {
        width: info.width,
        height: info.height,
        data,
    }
}

/// The 75% colour bars of the synthetic source, left to right.
pub const BARS: [[u8; 3]; 8] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
    [0, 0, 0],
];

/// Largest channel difference between two colours.
pub fn distance(a: [u8; 4], b: [u8; 3]) -> u8 {
    (0..3).map(|i| a[i].abs_diff(b[i])).max().unwrap_or(0)
}

/// Checks the eight bars at mid-height of `rect` (x, y, w, h) in `png`; returns the worst
/// channel error and a description of every sample.
pub fn bar_errors(png: &Path, rect: (f32, f32, f32, f32)) -> (u8, String) {
    let img = load_png(png);
    let (x, y, w, h) = rect;
    let mut worst = 0;
    let mut notes = String::new();
    for (i, want) in BARS.iter().enumerate() {
        let px = (x + w * (i as f32 + 0.5) / 8.0) as u32;
        let py = (y + h * 0.5) as u32;
        let got = img.pixel(px, py).expect("sample inside the image");
        let d = distance(got, *want);
        worst = worst.max(d);
        notes.push_str(&format!(
            "bar {i} at ({px},{py}): got {got:?} want {want:?} (off {d})\n"
        ));
    }
    (worst, notes)
}

/// Arguments joining `server`'s room `room` as `identity` with the dev keys.
pub fn join_args(url: &str, room: &str, identity: &str) -> Vec<String> {
    [
        "--url",
        url,
        "--room",
        room,
        "--identity",
        identity,
        "--api-key",
        "devkey",
        "--api-secret",
        "secret",
        "--max-attempts",
        "3",
        "--retry-delay",
        "200ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A loopback port nothing listens on.
pub fn dead_url() -> String {
    let port = crate::free_tcp_port().expect("a free port");
    format!("ws://127.0.0.1:{port}")
}

/// Checks the offline behaviour: the clear message for each retry, the give-up, exit code 3,
/// no panic.
pub fn assert_offline(run: &Run, url: &str, retries: u32) {
    let err = &run.stderr;
    assert_eq!(
        run.code(),
        3,
        "exit code 3 when the policy gives up\n{}",
        run.output()
    );
    for attempt in 1..=retries {
        let line = format!("cannot reach LiveKit at {url}: connection refused; retrying in");
        let tail = format!("(attempt {attempt}/{retries})");
        assert!(
            err.lines().any(|l| l.contains(&line) && l.contains(&tail)),
            "missing retry message {attempt}/{retries}\n{}",
            run.output()
        );
    }
    assert!(
        err.contains(&format!(
            "cannot reach LiveKit at {url}: connection refused; gave up after {retries} retries"
        )),
        "missing give-up message\n{}",
        run.output()
    );
    assert!(!err.contains("panicked"), "{}", run.output());
}

/// A private Xvfb server; killed on drop.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts Xvfb on a free display number with one `width`x`height`x24 screen (`None` when
    /// Xvfb is not installed or does not come up within 10 s).
    pub fn start(width: u32, height: u32) -> Option<Self> {
        for n in 140..240 {
            let socket = format!("/tmp/.X11-unix/X{n}");
            if Path::new(&socket).exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists() {
                continue;
            }
            let child = Command::new("Xvfb")
                .args([
                    &format!(":{n}"),
                    "-screen",
                    "0",
                    &format!("{width}x{height}x24"),
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let x = Xvfb {
                child,
                display: format!(":{n}"),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if Path::new(&socket).exists() {
                    return Some(x);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            return None;
        }
        None
    }

    /// The display name (`:141`), for `DISPLAY`.
    pub fn display(&self) -> &str {
        &self.display
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (`INT`, `TERM`, …) to process `pid` with `kill(1)`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Whether a window test can run: `true` when `xvfb-run` is installed. Without it the test is
/// skipped (a `SKIPPED` line naming `test`), unless `WAVECAST_REQUIRE_GPU=1` makes it fail.
pub fn xvfb_run_available(test: &str) -> bool {
    let required = std::env::var("WAVECAST_REQUIRE_GPU").is_ok_and(|v| v == "1");
    if Command::new("xvfb-run").arg("--help").output().is_err() {
        assert!(!required, "xvfb-run is required (WAVECAST_REQUIRE_GPU=1)");
        eprintln!("SKIPPED {test}: xvfb-run not installed");
        return false;
    }
    true
}

/// The broadcaster (`bin`) joining `room` on `url` as `identity` (dev keys, see [`join_args`])
/// with synthetic `width`x`height` video at `fps` and `kbps`, for `duration`, stdin ignored.
pub fn broadcaster_command(
    bin: &Path,
    url: &str,
    room: &str,
    identity: &str,
    video: [u32; 4],
    duration: &str,
) -> Command {
    let [width, height, fps, kbps] = video;
    let mut b = Command::new(bin);
    b.args(join_args(url, room, identity))
        .args(video_args(width, height, fps))
        .args(["--bitrate", &kbps.to_string()])
        .args(["--duration", duration, "--no-stdin"]);
    b
}

/// `--width W --height H --fps F`: the synthetic video the broadcaster sends.
pub fn video_args(width: u32, height: u32, fps: u32) -> Vec<String> {
    [("--width", width), ("--height", height), ("--fps", fps)]
        .into_iter()
        .flat_map(|(flag, n)| [flag.to_owned(), n.to_string()])
        .collect()
}

/// Starts `script` of `tests/python/` with `args` against `server` and waits (30 s) for its
/// `READY` line: the official SDK is publishing.
pub fn python_publishing(
    server: &crate::LiveKitServer,
    script: &str,
    args: &[&str],
) -> crate::PythonPeer {
    let mut py = crate::PythonPeer::spawn(server, script, args).expect("python starts");
    py.wait_line("READY", Duration::from_secs(30))
        .expect("python publishes");
    py
}

/// The official SDK publishing VP8 that grows mid-stream in `room` as `identity`
/// (`tests/python/publish_growing.py`): 320×180 for 4 s, then 1280×720 until 11 s.
pub fn growing_publisher(
    server: &crate::LiveKitServer,
    room: &str,
    identity: &str,
) -> crate::PythonPeer {
    python_publishing(
        server,
        "publish_growing.py",
        &[
            "--room",
            room,
            "--identity",
            identity,
            "--small-seconds",
            "4",
            "--seconds",
            "11",
        ],
    )
}

/// Reads the unix time (seconds) at which [`growing_publisher`] switched to 1280×720, then
/// checks the stats of one received video stream (`streams.video[i]` of an app's stats file):
/// 1280×720 pictures arrived within 1 s of the switch and every decoded picture was shown.
/// Returns the stream's 1280×720 entry of `sizes`.
pub fn assert_grew_after_switch(
    py: &mut crate::PythonPeer,
    stream: &serde_json::Value,
) -> serde_json::Value {
    let switch: f64 = py
        .wait_line("SWITCH", Duration::from_secs(15))
        .expect("python switched to 1280x720")
        .parse()
        .expect("a unix time");
    let large = stream["sizes"]
        .as_array()
        .expect("sizes")
        .iter()
        .find(|s| s["width"] == 1280 && s["height"] == 720)
        .unwrap_or_else(|| panic!("no 1280x720 pictures: {stream}"))
        .clone();
    let after = large["at_unix_s"].as_f64().expect("at_unix_s") - switch;
    assert!(
        (-0.2..=1.0).contains(&after),
        "1280x720 pictures {after:.2} s after the switch: {stream}"
    );
    assert_eq!(stream["not_shown"], 0, "{stream}");
    large
}

/// The `(x, y, w, h)` rectangle of a stats file's `[x, y, w, h]` array (e.g.
/// `render.picture_rect`), for [`bar_errors`].
pub fn rect(value: &serde_json::Value) -> (f32, f32, f32, f32) {
    let at = |i: usize| {
        value[i]
            .as_f64()
            .unwrap_or_else(|| panic!("a rectangle: {value}")) as f32
    };
    (at(0), at(1), at(2), at(3))
}

/// How many pixels of `img` inside `rect` (x, y, w, h) are bright: every colour channel above
/// 200 (white text, not a grey picture).
pub fn bright_pixels(img: &Image, rect: (f32, f32, f32, f32)) -> usize {
    let (x, y, w, h) = rect;
    let mut n = 0;
    for py in y.max(0.0) as u32..(y + h).max(0.0) as u32 {
        for px in x.max(0.0) as u32..(x + w).max(0.0) as u32 {
            if img
                .pixel(px, py)
                .is_some_and(|p| p[..3].iter().all(|c| *c > 200))
            {
                n += 1;
            }
        }
    }
    n
}

/// Checks a stats file's `video` section reports `width`x`height` pictures.
pub fn assert_video_size(video: &serde_json::Value, width: u64, height: u64) {
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(width), Some(height)),
        "{video}"
    );
}

/// Checks `run` exited 0; on failure shows the output of `other` (named `name`) beside it.
pub fn assert_success_beside(run: &Run, name: &str, other: &Run) {
    assert_eq!(
        run.code(),
        0,
        "{}\n--- {name}\n{}",
        run.output(),
        other.output()
    );
}

/// [`run`], then checks the exit code is 0 (showing both streams when not).
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Run {
    let r = run(cmd, timeout);
    assert_eq!(r.code(), 0, "{}", r.output());
    r
}

/// The broadcaster app's binary beside `this_exe` (see [`sibling_bin`]).
pub fn broadcaster_bin(this_exe: &str) -> PathBuf {
    sibling_bin(this_exe, "wavecast-broadcaster", "broadcaster")
}

/// A fresh server with [`growing_publisher`] publishing in room `grow` as `py`.
pub fn start_growing() -> (crate::LiveKitServer, crate::PythonPeer) {
    let server = crate::LiveKitServer::start().expect("livekit-server starts");
    let py = growing_publisher(&server, "grow", "py");
    (server, py)
}

/// A fresh temporary directory and the path `name` inside it (not created); the directory is
/// removed when the returned guard drops.
pub fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(name);
    (dir, path)
}

/// Whether a window test can run ([`xvfb_run_available`]), and where its screenshot goes.
pub fn window_shot(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    xvfb_run_available(test).then(|| temp_path("window.png"))
}

/// A fresh server and the broadcaster binary beside `this_exe` ([`broadcaster_bin`]).
pub fn server_and_broadcaster(this_exe: &str) -> (crate::LiveKitServer, PathBuf) {
    let broadcaster = broadcaster_bin(this_exe);
    let server = crate::LiveKitServer::start().expect("livekit-server starts");
    (server, broadcaster)
}

/// The binary of `package`'s example `example` from the running test's target directory
/// (`cargo test` builds examples), built first when missing (the test ran alone).
pub fn example_bin(package: &str, example: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join("examples").join(example);
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", package, "--example", example])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building example {example} failed");
    }
    bin
}

/// `bin` joining `room` on `url` as `identity` with the dev keys ([`join_args`]).
pub fn join_command(
    bin: impl AsRef<std::ffi::OsStr>,
    url: &str,
    room: &str,
    identity: &str,
) -> Command {
    let mut c = Command::new(bin);
    c.args(join_args(url, room, identity));
    c
}

/// An app's headless run beside [`start_growing`]'s publisher (see [`run_beside_growing`]).
pub struct GrowthRun {
    /// The publisher (its `SWITCH` line is still to be read).
    pub py: crate::PythonPeer,
    /// The app's `--dump` directory.
    pub dump: PathBuf,
    /// Its `stats.json`.
    pub stats: serde_json::Value,
    _server: crate::LiveKitServer,
    _dir: tempfile::TempDir,
}

/// Runs `bin` with `args` and `--dump DIR` in room `grow` as `identity` while the official SDK
/// publishes growing video ([`start_growing`]); checks it exits 0 within `timeout`.
pub fn run_beside_growing(
    bin: &str,
    identity: &str,
    args: &[&str],
    timeout: Duration,
) -> GrowthRun {
    let (server, py) = start_growing();
    let (dir, dump) = temp_path("dump");
    run_ok(
        join_command(bin, &server.ws_url(), "grow", identity)
            .args(args)
            .arg("--dump")
            .arg(&dump),
        timeout,
    );
    let stats = json(&dump.join("stats.json"));
    GrowthRun {
        py,
        dump,
        stats,
        _server: server,
        _dir: dir,
    }
}
