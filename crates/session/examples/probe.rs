//! Engine probe: our session and the official Python SDK subscribe side by side to the same
//! 720p30 VP8 stream, published by our session with the wavecast frame stamp in every picture.
//!
//! ```text
//! cargo run --release -p wavecast-session --example probe -- [--seconds 20] [--runs 1]
//! ```
//!
//! Starts a private livekit-server (wavecast-testbed), publishes 1280x720 at 30 fps from a
//! capture thread, then starts two subscriber *processes* at the same moment: this binary with
//! `--role subscriber` (wavecast-session, libvpx decode) and `probe_subscriber.py` (official
//! Python SDK 1.2.1, libwebrtc decode). Each decodes every frame, reads the stamp, and reports:
//! join-to-first-frame (from just before its connect call), glass-to-glass latency p50/p95
//! (capture time in the stamp → picture decoded, same machine clock), and the CPU its own
//! process used per second of a steady window (after 2 s of warm-up), i.e. the CPU cost of one
//! subscribed 720p30 stream. Prints a table with the ratios.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wavecast_codec::{I420, Vp8Config};
use wavecast_media::stamp::{self, Stamp};
use wavecast_pipeline::Timestamp;
use wavecast_session::{
    Credentials, Session, SessionEvent, SessionOptions, TrackKind, VideoPublisher, VideoSubscriber,
};
use wavecast_testbed::LiveKitServer;
use wavecast_token::Preset;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u64 = 30;
const WARMUP: Duration = Duration::from_secs(2);

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if arg(&args, "--role").as_deref() == Some("subscriber") {
        let url = arg(&args, "--url").expect("--url");
        let token = arg(&args, "--token").expect("--token");
        let seconds: f64 = arg(&args, "--seconds").map_or(15.0, |s| s.parse().expect("seconds"));
        let result = rt.block_on(subscribe(url, token, seconds));
        println!("RESULT {result}");
        return;
    }
    let seconds: f64 = arg(&args, "--seconds").map_or(20.0, |s| s.parse().expect("seconds"));
    let runs: u32 = arg(&args, "--runs").map_or(1, |s| s.parse().expect("runs"));
    for run in 1..=runs {
        eprintln!("--- run {run}/{runs}");
        rt.block_on(orchestrate(seconds));
    }
}

/// CPU seconds this process used (user + system, all threads), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Our subscriber: join, decode every frame of the first video track, read stamps.
async fn subscribe(url: String, token: String, seconds: f64) -> Value {
    let t_join = Instant::now();
    let (session, mut events) =
        Session::connect(SessionOptions::new(url, Credentials::token(token)))
            .await
            .expect("subscriber joins");
    let track = loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Some(SessionEvent::TrackSubscribed(t))) if t.kind() == TrackKind::Video => break t,
            Ok(Some(_)) => {}
            other => panic!("no video track: {other:?}"),
        }
    };
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let mut video = VideoSubscriber::new(track).expect("decoder");
    let mut first = None;
    let mut deadline = None;
    let mut warm: Option<(Instant, f64)> = None;
    let mut latencies = Vec::with_capacity(4096);
    let (mut frames, mut stamped, mut size) = (0u64, 0u64, (0, 0));
    while let Some(f) = video.recv().await {
        let now = Timestamp::now();
        frames += 1;
        let img = f.image.image;
        size = (img.width, img.height);
        let s = stamp::decode_plane(img.planes[0], img.strides[0], 1, img.width, img.height).ok();
        let since_join = t_join.elapsed();
        let first_at = *first.get_or_insert(since_join);
        let end = *deadline.get_or_insert(Instant::now() + Duration::from_secs_f64(seconds));
        if warm.is_none() && since_join >= first_at + WARMUP {
            warm = Some((Instant::now(), cpu_seconds()));
            latencies.clear();
        }
        if let Some(s) = s {
            stamped += 1;
            latencies.push(now.saturating_duration_since(s.timestamp).as_secs_f64() * 1000.0);
        }
        if Instant::now() >= end {
            break;
        }
    }
    let (end_at, end_cpu) = (Instant::now(), cpu_seconds());
    session.close().await;
    let (warm_at, warm_cpu) = warm.expect("ran past the warm-up");
    let window = end_at.duration_since(warm_at).as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    json!({
        "sdk": "wavecast-session",
        "join_to_first_frame_ms": first.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        "frames": frames,
        "stamped": stamped,
        "width": size.0,
        "height": size.1,
        "latency_p50_ms": percentile(&latencies, 50.0),
        "latency_p95_ms": percentile(&latencies, 95.0),
        "latency_max_ms": latencies.last().copied().unwrap_or(f64::NAN),
        "cpu_window_s": window,
        "cpu_s": end_cpu - warm_cpu,
        "cpu_percent": 100.0 * (end_cpu - warm_cpu) / window,
        "fps": latencies.len() as f64 / window,
    })
}

/// Stamped 720p I420 pictures at 30 fps from a capture thread.
fn spawn_sender(
    mut publisher: VideoPublisher,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        let mut y = vec![60u8; w * h];
        let u = vec![90u8; w * h / 4];
        let v = vec![160u8; w * h / 4];
        let band = stamp::band_height(WIDTH) as usize;
        let start = Instant::now();
        let mut n = 0u64;
        let mut late = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let bar = (n as usize * 8) % w;
            for row in band..h {
                let line = &mut y[row * w..(row + 1) * w];
                line.fill(60);
                line[bar..(bar + 32).min(w)].fill(200);
            }
            let s = Stamp {
                frame_number: n as u32,
                timestamp: Timestamp::now(),
            };
            stamp::encode_plane(&mut y, w, 1, WIDTH, HEIGHT, s).expect("stamp fits");
            let img = I420 {
                width: WIDTH,
                height: HEIGHT,
                planes: [&y, &u, &v],
                strides: [w, w / 2, w / 2],
            };
            publisher.push(&img, Instant::now()).expect("encode");
            n += 1;
            let next = start + Duration::from_micros(n * 1_000_000 / FPS);
            let now = Instant::now();
            if now > next {
                late += 1;
            }
            std::thread::sleep(next.saturating_duration_since(now));
        }
        (publisher.frames_sent().0, late)
    })
}

fn spawn_reader(mut cmd: Command, who: &'static str) -> std::thread::JoinHandle<Value> {
    std::thread::spawn(move || {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {who}: {e}"));
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let mut result = Value::Null;
        for line in out.lines().map_while(Result::ok) {
            if let Some(r) = line.strip_prefix("RESULT ") {
                result = serde_json::from_str(r).expect("RESULT is JSON");
            }
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "{who} exited with {status}");
        result
    })
}

async fn orchestrate(seconds: f64) {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let room = "probe";
    let (publisher, events) = Session::connect(SessionOptions::new(
        server.ws_url(),
        Credentials::mint(server.keys(), "probe-pub", room, Preset::Broadcaster),
    ))
    .await
    .expect("publisher joins");
    let drain = tokio::spawn(async move {
        let mut events = events;
        while events.recv().await.is_some() {}
    });
    let config = Vp8Config::new(WIDTH, HEIGHT, FPS as u32);
    let video = publisher
        .publish_video("probe-720p", config)
        .await
        .expect("video published");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = spawn_sender(video, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let exe = std::env::current_exe().expect("own path");
    let mut ours = Command::new(exe);
    ours.args([
        "--role",
        "subscriber",
        "--url",
        &server.ws_url(),
        "--token",
        &server.token("sub-wavecast", room, Preset::Broadcaster),
        "--seconds",
        &seconds.to_string(),
    ]);
    let mut python = Command::new(wavecast_testbed::python().expect("venv python"));
    python
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/probe_subscriber.py"))
        .args([
            server.ws_url(),
            server.token("sub-python", room, Preset::Broadcaster),
            seconds.to_string(),
        ])
        .env("PYTHONWARNINGS", "ignore");
    let ours = spawn_reader(ours, "wavecast subscriber");
    let python = spawn_reader(python, "python subscriber");
    let (ours, python) = tokio::task::spawn_blocking(move || {
        (
            ours.join().expect("our subscriber"),
            python.join().expect("python subscriber"),
        )
    })
    .await
    .expect("join");

    stop.store(true, Ordering::Relaxed);
    let (sent, late) = tokio::task::spawn_blocking(move || sender.join().expect("sender"))
        .await
        .expect("join");
    publisher.close().await;
    drain.abort();

    eprintln!("published {sent} VP8 frames at {WIDTH}x{HEIGHT} ({late} capture ticks late)");
    println!("{}", json!({"wavecast": ours, "python": python}));
    let rows = [
        ("join → first frame (ms)", "join_to_first_frame_ms"),
        ("glass-to-glass p50 (ms)", "latency_p50_ms"),
        ("glass-to-glass p95 (ms)", "latency_p95_ms"),
        ("glass-to-glass max (ms)", "latency_max_ms"),
        ("CPU per 720p30 stream (% of a core)", "cpu_percent"),
        ("stamped frames/s in window", "fps"),
    ];
    println!("| metric | wavecast-session | Python SDK 1.2.1 | ratio (ours / Python) |");
    println!("| --- | ---: | ---: | ---: |");
    for (label, key) in rows {
        let a = ours[key].as_f64().unwrap_or(f64::NAN);
        let b = python[key].as_f64().unwrap_or(f64::NAN);
        println!("| {label} | {a:.1} | {b:.1} | {:.2} |", a / b);
    }
    println!(
        "| resolution | {}x{} | {}x{} | |",
        ours["width"], ours["height"], python["width"], python["height"]
    );
}
