//! Engine probe: our session and the official Python SDK subscribe side by side to the same
//! stamped VP8 stream (plus a 440 Hz Opus tone), published by our session — on a quiet
//! loopback, or under random UDP loss.
//!
//! ```text
//! cargo run --release -p wavecast-session --example probe -- [--seconds 20] [--runs 1] [--size 1280x720]
//! sudo …/probe --loss 0,5,15,30 --size 640x360 --seconds 15
//! ```
//!
//! Starts a private livekit-server (wavecast-testbed), publishes WxH at 30 fps from a capture
//! thread (the wavecast frame stamp in every picture) and a 48 kHz tone in 20 ms packets, then,
//! per measurement, starts two subscriber *processes* at the same moment: this binary with
//! `--role subscriber` (wavecast-session, libvpx/libopus decode) and `probe_subscriber.py`
//! (official Python SDK, libwebrtc decode). Once both decoded a first picture the orchestrator
//! sends both the same measurement window (wall-clock µs, on stdin); each reports for that window:
//! join-to-first-frame (from just before its connect call), stamped frames/s, glass-to-glass
//! latency p50/p95/max (capture time in the stamp → picture decoded, same machine clock), audio
//! decoded per wall second and the share of it that carries the tone, and the CPU its own process
//! used (i.e. the CPU cost of one subscribed stream).
//!
//! `--loss 0,5,15,30` runs everything inside a private network namespace
//! (`wavecast_testbed::NetNs`, needs root and `ip`/`nft`): the server advertises the namespace's
//! veth address 192.0.2.10 (libwebrtc gathers no candidate on loopback), and for each level an
//! nftables rule drops that share of the UDP datagrams entering any socket — both the
//! publisher → server and the server → subscriber legs cross it once. Subscribers join with no
//! loss; the loss starts when both show a picture and the window opens a second later. One
//! server and one publisher serve every level. Prints one table row per level with the loss the
//! rule measured. `--leg up` drops only what is sent to the server (publisher media, the
//! subscribers' NACKs), `--leg down` only what the server sends; `both` (default) is both.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wavecast_codec::{I420, Vp8Config};
use wavecast_media::stamp::{self, StampedBars};
use wavecast_pipeline::Timestamp;
use wavecast_session::{
    AudioPublisher, AudioSubscriber, Credentials, Room, RoomEvent, RoomOptions, TrackKind,
    VideoPublisher, VideoSubscriber,
};
use wavecast_testbed::{LiveKitServer, NetNs, ServerOptions, UdpLeg};
use wavecast_token::Preset;

const FPS: u64 = 30;
/// Tone published next to the video (Hz).
const TONE_HZ: f64 = 440.0;
/// Tone amplitude (of i16 full scale).
const TONE_AMPLITUDE: f64 = 8000.0;
/// Time between both subscribers showing a picture (and the loss starting) and the window.
const SETTLE: Duration = Duration::from_secs(1);
/// How long a subscriber may take to show its first picture.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(40);

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn parse<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    match arg(args, name) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("probe: {name} {v:?} is not a valid value");
            std::process::exit(2)
        }),
    }
}

/// `WxH` → (w, h), both even and at least 64×64 (the stamp needs room).
fn parse_size(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    let (w, h): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
    (w >= 64 && h >= 64 && w % 2 == 0 && h % 2 == 0 && w <= 4096 && h <= 4096).then_some((w, h))
}

/// `0,5,15,30` → loss levels in per cent (each 0..=100).
fn parse_losses(s: &str) -> Option<Vec<u8>> {
    s.split(',')
        .map(|p| p.trim().parse::<u8>().ok().filter(|&v| v <= 100))
        .collect::<Option<Vec<_>>>()
        .filter(|v| !v.is_empty())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    if arg(&args, "--role").as_deref() == Some("subscriber") {
        let (Some(url), Some(token)) = (arg(&args, "--url"), arg(&args, "--token")) else {
            eprintln!("probe --role subscriber needs --url and --token");
            std::process::exit(2)
        };
        let result = rt().block_on(subscribe(url, token));
        println!("RESULT {result}");
        return;
    }
    let seconds: f64 = parse(&args, "--seconds", 20.0);
    let runs: u32 = parse(&args, "--runs", 1);
    let size = arg(&args, "--size").unwrap_or_else(|| "1280x720".into());
    let Some((width, height)) = parse_size(&size) else {
        eprintln!("probe: --size {size:?}: want WxH, even, 64..=4096 each");
        std::process::exit(2)
    };
    let losses = arg(&args, "--loss").map(|l| {
        parse_losses(&l).unwrap_or_else(|| {
            eprintln!("probe: --loss {l:?}: want per cent values 0..=100, comma-separated");
            std::process::exit(2)
        })
    });
    if !(seconds.is_finite() && (2.0..=3600.0).contains(&seconds)) {
        eprintln!("probe: --seconds {seconds}: want 2..=3600");
        std::process::exit(2)
    }
    let leg = arg(&args, "--leg").unwrap_or_else(|| "both".into());
    let Some(leg) = Leg::parse(&leg) else {
        eprintln!(
            "probe: --leg {leg:?}: want both, up (publisher → server) or down (server → subscribers)"
        );
        std::process::exit(2)
    };
    let plan = Plan {
        width,
        height,
        seconds,
        leg,
    };
    for run in 1..=runs {
        eprintln!("--- run {run}/{runs}");
        match &losses {
            None => {
                let table = rt().block_on(orchestrate(&plan, None, &[0]));
                print_table(&plan, &table);
            }
            Some(levels) => {
                // The namespace's thread: the runtime, the server and both subscriber
                // processes are started from it, so all of them live inside.
                let ns = NetNs::create().unwrap_or_else(|e| {
                    eprintln!("probe: --loss needs a network namespace: {e}");
                    std::process::exit(1)
                });
                let table = std::thread::scope(|s| {
                    s.spawn(|| {
                        ns.enter_current_thread().expect("enter the namespace");
                        let rt = rt();
                        let table = rt.block_on(orchestrate(&plan, Some(&ns), levels));
                        drop(rt);
                        table
                    })
                    .join()
                    .expect("namespace thread")
                });
                drop(ns);
                print_table(&plan, &table);
            }
        }
    }
}

struct Plan {
    width: u32,
    height: u32,
    seconds: f64,
    leg: Leg,
}

/// Where the loss applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    /// Every datagram in the namespace.
    Both,
    /// Datagrams to the server's media port (publisher media, subscribers' RTCP).
    Up,
    /// Datagrams from the server (subscriber media, the publisher's RTCP).
    Down,
}

impl Leg {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "both" => Some(Self::Both),
            "up" => Some(Self::Up),
            "down" => Some(Self::Down),
            _ => None,
        }
    }

    fn udp(self, server_port: u16) -> UdpLeg {
        match self {
            Self::Both => UdpLeg::All,
            Self::Up => UdpLeg::ToPort(server_port),
            Self::Down => UdpLeg::NotToPort(server_port),
        }
    }
}

/// One measured level: the loss asked for, what the rule measured, both subscribers' results.
struct Row {
    loss: u8,
    measured_loss: Option<f64>,
    ours: Value,
    python: Value,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Whether a block of samples carries the tone: its RMS is at least half the tone's.
fn has_tone(samples: &[i16]) -> bool {
    if samples.is_empty() {
        return false;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (energy / samples.len() as f64).sqrt();
    rms >= 0.5 * TONE_AMPLITUDE / std::f64::consts::SQRT_2
}

/// The measurement window (wall clock, µs since the UNIX epoch) read from stdin as
/// `WINDOW start end`.
fn window_from_stdin() -> tokio::sync::watch::Receiver<Option<(u64, u64)>> {
    let (tx, rx) = tokio::sync::watch::channel(None);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let mut p = line.split_whitespace();
            if p.next() == Some("WINDOW")
                && let (Some(Ok(a)), Some(Ok(b))) =
                    (p.next().map(str::parse), p.next().map(str::parse))
            {
                let _ = tx.send(Some((a, b)));
            }
        }
    });
    rx
}

/// Audio decoded inside the window: samples per channel, and those in blocks carrying the tone.
#[derive(Default)]
struct AudioCount {
    samples: u64,
    tone_samples: u64,
    /// First packet received → decoded, per decoded packet (ms): what the receive path
    /// (str0m's audio reorder stage, then the decoder) held it for.
    held_ms: Vec<f64>,
}

/// Our subscriber: join, decode every frame of the first video track (and the audio track),
/// read stamps; report the window the orchestrator sends.
async fn subscribe(url: String, token: String) -> Value {
    let t_join = Instant::now();
    let (room, mut events) = Room::connect(&url, &token, RoomOptions::default())
        .await
        .expect("subscriber joins");
    let window = window_from_stdin();
    let audio_count = Arc::new(std::sync::Mutex::new(AudioCount::default()));
    let track = loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Some(RoomEvent::TrackSubscribed { track, .. }))
                if track.kind() == TrackKind::Video =>
            {
                break track;
            }
            Ok(Some(RoomEvent::TrackSubscribed { track, .. })) => {
                spawn_audio(track, window.clone(), audio_count.clone());
            }
            Ok(Some(_)) => {}
            other => panic!("no video track: {other:?}"),
        }
    };
    {
        let (window, audio_count) = (window.clone(), audio_count.clone());
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if let RoomEvent::TrackSubscribed { track, .. } = ev
                    && track.kind() == TrackKind::Audio
                {
                    spawn_audio(track, window.clone(), audio_count.clone());
                }
            }
        });
    }
    let mut video = VideoSubscriber::new(track).expect("decoder");
    let mut first = None;
    let mut cpu_start = None;
    let mut latencies = Vec::with_capacity(4096);
    // First packet received → picture decoded: the time a frame waited in the receiver.
    let mut helds = Vec::with_capacity(4096);
    let (mut frames, mut stamped, mut size) = (0u64, 0u64, (0, 0));
    let mut last_number = None;
    // PROBE_FRAMES=PATH: one line per stamped frame in the window (number, capture → decoded
    // ms, first packet → decoded ms), to see how holds cluster.
    let mut frame_log = std::env::var("PROBE_FRAMES").ok().map(|_| String::new());
    loop {
        let w = *window.borrow();
        let now_us = Timestamp::now().as_micros();
        if let Some((start, end)) = w {
            if now_us >= start && cpu_start.is_none() {
                cpu_start = Some((
                    Instant::now(),
                    wavecast_pipeline::cpu::process_cpu_seconds(),
                ));
            }
            if now_us >= end {
                break;
            }
        }
        let f = match tokio::time::timeout(Duration::from_millis(50), video.recv()).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(_) => continue,
        };
        let now = Timestamp::now();
        let held = f.received_at.elapsed().as_secs_f64() * 1000.0;
        let img = f.image.image;
        size = (img.width, img.height);
        let s = stamp::decode_plane(img.planes[0], img.strides[0], 1, img.width, img.height).ok();
        if first.is_none() {
            first = Some(t_join.elapsed());
            println!("FIRST");
        }
        let in_window = w.is_some_and(|(a, b)| (a..b).contains(&now.as_micros()));
        if !in_window {
            continue;
        }
        frames += 1;
        if let Some(s) = s {
            // A frame shown twice (never expected) counts once.
            if last_number.is_none_or(|n| s.frame_number > n) {
                last_number = Some(s.frame_number);
                stamped += 1;
                let age = now.saturating_duration_since(s.timestamp).as_secs_f64() * 1000.0;
                latencies.push(age);
                helds.push(held);
                if let Some(log) = &mut frame_log {
                    log.push_str(&format!("{} {age:.1} {held:.1}\n", s.frame_number));
                }
            }
        }
    }
    let (end_at, end_cpu) = (
        Instant::now(),
        wavecast_pipeline::cpu::process_cpu_seconds(),
    );
    let stats = room.stats();
    if let (Some(log), Ok(path)) = (frame_log, std::env::var("PROBE_FRAMES")) {
        let _ = std::fs::write(path, log);
    }
    room.close().await;
    let (start_at, start_cpu) = cpu_start.unwrap_or((end_at, end_cpu));
    let (start, end) = window.borrow().unwrap_or((0, 1));
    let window_s = end.saturating_sub(start) as f64 / 1e6;
    let cpu_window = end_at.duration_since(start_at).as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    helds.sort_by(f64::total_cmp);
    let audio = audio_count
        .lock()
        .map(|a| (a.samples, a.tone_samples, a.held_ms.clone()));
    let (audio_samples, tone_samples, mut audio_held) = audio.unwrap_or((0, 0, Vec::new()));
    audio_held.sort_by(f64::total_cmp);
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
        "held_p50_ms": percentile(&helds, 50.0),
        "held_p95_ms": percentile(&helds, 95.0),
        "window_s": window_s,
        "cpu_s": end_cpu - start_cpu,
        "cpu_percent": 100.0 * (end_cpu - start_cpu) / cpu_window.max(1e-3),
        "fps": stamped as f64 / window_s,
        "audio_s_per_s": audio_samples as f64 / 48_000.0 / window_s,
        "tone_s_per_s": tone_samples as f64 / 48_000.0 / window_s,
        "audio_held_p50_ms": percentile(&audio_held, 50.0),
        "audio_held_p95_ms": percentile(&audio_held, 95.0),
        "audio_held_max_ms": audio_held.last().copied().unwrap_or(f64::NAN),
        "rtp": format!("{:?}", stats.rtp),
    })
}

/// Decode an audio track on a task of its own, counting what falls into the window.
fn spawn_audio(
    track: wavecast_session::SubscribedTrack,
    window: tokio::sync::watch::Receiver<Option<(u64, u64)>>,
    count: Arc<std::sync::Mutex<AudioCount>>,
) {
    tokio::spawn(async move {
        let Ok(mut audio) = AudioSubscriber::new(track, 1) else {
            return;
        };
        while let Some(a) = audio.recv().await {
            let now = Timestamp::now().as_micros();
            let Some((start, end)) = *window.borrow() else {
                continue;
            };
            if !(start..end).contains(&now) {
                continue;
            }
            let n = a.samples.len() as u64;
            let tone = a.samples.chunks(480).filter(|c| has_tone(c)).count() as u64;
            let held = a.received_at.elapsed().as_secs_f64() * 1000.0;
            if let Ok(mut c) = count.lock() {
                c.samples += n;
                c.tone_samples += (tone * 480).min(n);
                c.held_ms.push(held);
            }
        }
    });
}

/// Stamped I420 pictures at 30 fps from a capture thread.
fn spawn_sender(
    mut publisher: VideoPublisher,
    (width, height): (u32, u32),
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let mut bars = StampedBars::new(width, height).expect("a picture large enough for a stamp");
        let start = Instant::now();
        let mut n = 0u64;
        let mut late = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let (planes, strides, _) = bars.next_frame();
            let img = I420 {
                width,
                height,
                planes,
                strides,
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

/// A 440 Hz tone in 20 ms packets, paced by the clock.
fn spawn_tone(
    mut publisher: AudioPublisher,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        const BLOCK: usize = 960;
        let mut pcm = [0i16; BLOCK];
        let step = 2.0 * std::f64::consts::PI * TONE_HZ / 48_000.0;
        let mut phase = 0.0f64;
        let start = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for s in &mut pcm {
                *s = (TONE_AMPLITUDE * phase.sin()).round() as i16;
                phase = (phase + step) % (2.0 * std::f64::consts::PI);
            }
            if publisher.push(&pcm, Instant::now()).is_err() {
                break;
            }
            n += 1;
            let next = start + Duration::from_millis(n * 20);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        publisher.packets_sent()
    })
}

/// A subscriber process: its stdin (for the window) and the lines it printed.
struct Child {
    stdin: ChildStdin,
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    who: &'static str,
}

impl Child {
    fn spawn(mut cmd: Command, who: &'static str) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {who}: {e}"));
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let stdin = child.stdin.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            stdin,
            child,
            lines,
            who,
        }
    }

    /// Wait for a line starting with `prefix`; returns the rest.
    fn wait_for(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return Some(rest.trim().to_owned());
                    }
                }
                Err(_) => return None,
            }
        }
    }

    fn send_window(&mut self, start: u64, end: u64) {
        let _ = writeln!(self.stdin, "WINDOW {start} {end}");
        let _ = self.stdin.flush();
    }

    fn finish(mut self, timeout: Duration) -> Value {
        let result = self
            .wait_for("RESULT", timeout)
            .map(|r| serde_json::from_str(&r).expect("RESULT is JSON"))
            .unwrap_or_else(|| {
                eprintln!("{} gave no result", self.who);
                Value::Null
            });
        drop(self.stdin);
        let _ = self.child.kill();
        let _ = self.child.wait();
        result
    }
}

async fn orchestrate(plan: &Plan, ns: Option<&NetNs>, levels: &[u8]) -> Vec<Row> {
    let server = LiveKitServer::start_with(&ServerOptions {
        media_ip: ns.map(|_| NetNs::ADDR),
        ..ServerOptions::default()
    })
    .expect("livekit-server starts");
    let room = "probe";
    // Its events are not needed: dropping them discards them.
    let (publisher, _) = Room::connect_with(
        &server.ws_url(),
        Credentials::mint(server.keys(), "probe-pub", room, Preset::Broadcaster),
        RoomOptions::default(),
    )
    .await
    .expect("publisher joins");
    let config = Vp8Config::new(plan.width, plan.height, FPS as u32);
    let video = publisher
        .local_participant()
        .publish_video("probe-video", config)
        .await
        .expect("video published");
    let audio = publisher
        .local_participant()
        .publish_audio("probe-tone", 1, 32_000)
        .await
        .expect("audio published");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = spawn_sender(video, (plan.width, plan.height), stop.clone());
    let tone = spawn_tone(audio, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut rows = Vec::new();
    for (i, &loss) in levels.iter().enumerate() {
        let exe = std::env::current_exe().expect("own path");
        let mut ours = Command::new(exe);
        ours.args([
            "--role",
            "subscriber",
            "--url",
            &server.ws_url(),
            "--token",
            &server.token(&format!("sub-wavecast-{i}"), room, Preset::Broadcaster),
        ]);
        let mut python = Command::new(wavecast_testbed::python().expect("venv python"));
        python
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("examples/probe_subscriber.py"),
            )
            .args([
                server.ws_url(),
                server.token(&format!("sub-python-{i}"), room, Preset::Broadcaster),
            ])
            .env("PYTHONWARNINGS", "ignore");
        let (mut ours, mut python) = tokio::task::spawn_blocking(move || {
            let ours = Child::spawn(ours, "wavecast subscriber");
            let python = Child::spawn(python, "python subscriber");
            for c in [&ours, &python] {
                if c.wait_for("FIRST", FIRST_FRAME_TIMEOUT).is_none() {
                    eprintln!("{} showed no picture in {FIRST_FRAME_TIMEOUT:?}", c.who);
                }
            }
            (ours, python)
        })
        .await
        .expect("join");
        if let Some(ns) = ns {
            ns.set_udp_loss_on(loss, plan.leg.udp(server.udp_port()))
                .expect("set the loss");
        }
        let start = (Timestamp::now() + SETTLE).as_micros();
        let end = start + (plan.seconds * 1e6) as u64;
        ours.send_window(start, end);
        python.send_window(start, end);
        let wait = Duration::from_secs_f64(plan.seconds) + SETTLE + Duration::from_secs(20);
        let (ours, python) = tokio::task::spawn_blocking(move || {
            let ours = std::thread::spawn(move || ours.finish(wait));
            let python = python.finish(wait);
            (ours.join().expect("our subscriber"), python)
        })
        .await
        .expect("join");
        let measured_loss = ns.and_then(|ns| ns.udp_counters().ok().map(|c| c.loss_percent()));
        if let Some(ns) = ns {
            ns.clear_faults().expect("clear the loss");
        }
        eprintln!("loss {loss} %: ours {ours}\npython {python}");
        rows.push(Row {
            loss,
            measured_loss,
            ours,
            python,
        });
    }

    stop.store(true, Ordering::Relaxed);
    let (sent, late) = tokio::task::spawn_blocking(move || sender.join().expect("sender"))
        .await
        .expect("join");
    let packets = tokio::task::spawn_blocking(move || tone.join().expect("tone"))
        .await
        .expect("join");
    eprintln!("publisher: {:?}", publisher.stats());
    if let Ok(path) = std::env::var("PROBE_SERVER_LOG") {
        // The server logs a down track's stats (NACKs received / answered, RTT) once it
        // closed it, which waits for blank frames to flush (up to a second or so).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = std::fs::write(&path, server.log());
    }
    publisher.close().await;
    eprintln!(
        "published {sent} VP8 frames at {}x{} ({late} capture ticks late), {packets} Opus packets",
        plan.width, plan.height
    );
    rows
}

fn print_table(plan: &Plan, rows: &[Row]) {
    for r in rows {
        println!(
            "{}",
            json!({"loss": r.loss, "wavecast": r.ours, "python": r.python})
        );
    }
    let f = |v: &Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    if rows.len() == 1 && rows[0].measured_loss.is_none() {
        let (ours, python) = (&rows[0].ours, &rows[0].python);
        let metrics = [
            ("join → first frame (ms)", "join_to_first_frame_ms"),
            ("glass-to-glass p50 (ms)", "latency_p50_ms"),
            ("glass-to-glass p95 (ms)", "latency_p95_ms"),
            ("glass-to-glass max (ms)", "latency_max_ms"),
            ("CPU per subscribed stream (% of a core)", "cpu_percent"),
            ("stamped frames/s in window", "fps"),
            ("audio decoded s per s", "audio_s_per_s"),
        ];
        println!("| metric | wavecast-session | Python SDK | ratio (ours / Python) |");
        println!("| --- | ---: | ---: | ---: |");
        for (label, key) in metrics {
            let (a, b) = (f(ours, key), f(python, key));
            println!("| {label} | {a:.1} | {b:.1} | {:.2} |", a / b);
        }
        println!(
            "| resolution | {}x{} | {}x{} | |",
            ours["width"], ours["height"], python["width"], python["height"]
        );
        return;
    }
    println!(
        "{}x{}@{FPS}, {} s per level, loss on {:?}: frames/s, latency p50 / p95 (ms), audio with tone s/s",
        plan.width, plan.height, plan.seconds, plan.leg
    );
    println!("| UDP loss (measured) | ours | Python SDK |");
    println!("| --- | --- | --- |");
    for r in rows {
        let cell = |v: &Value| {
            format!(
                "{:.1} fps, {:.0} / {:.0} ms, tone {:.2}",
                f(v, "fps"),
                f(v, "latency_p50_ms"),
                f(v, "latency_p95_ms"),
                f(v, "tone_s_per_s"),
            )
        };
        println!(
            "| {} % ({:.1} %) | {} | {} |",
            r.loss,
            r.measured_loss.unwrap_or(f64::NAN),
            cell(&r.ours),
            cell(&r.python)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_losses_parse_or_refuse() {
        assert_eq!(parse_size("640x360"), Some((640, 360)));
        assert_eq!(parse_size("641x360"), None);
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_losses("0,5, 15,30"), Some(vec![0, 5, 15, 30]));
        assert_eq!(parse_losses("101"), None);
        assert_eq!(parse_losses(""), None);
    }

    #[test]
    fn tone_detection() {
        let tone: Vec<i16> = (0..480)
            .map(|i| (TONE_AMPLITUDE * (i as f64 * 0.0576).sin()) as i16)
            .collect();
        assert!(has_tone(&tone));
        assert!(!has_tone(&[0; 480]));
        assert!(!has_tone(&[]));
    }
}
