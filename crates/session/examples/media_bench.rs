//! Media breadth, measured side by side with the official Python SDK in one run (figures in
//! docs/PERFORMANCE.md, "Simulcast, dynacast and bandwidth"):
//!
//! 1. **CPU per published 720p30 stream with three simulcast layers**, VP8 and H.264: our
//!    `broadcaster` (release build) and the Python SDK's `media_publish.py`, each alone in a
//!    room with three of our subscribers, one per layer (so dynacast keeps every layer on). CPU
//!    is each publisher process's, from /proc, over the same window.
//! 2. **Dynacast**: our broadcaster with only a low-layer subscriber — the upper encoders stop.
//! 3. **A 600 kbit/s uplink** (nftables policer on the leg into the server's media port, in a
//!    private network namespace): each publisher in turn, VP8 simulcast 720p30 with frame stamps,
//!    watched by our viewer, which reads the stamps: frames per second shown and the age of each
//!    picture on arrival (capture to decoded, same clock).
//!
//! Needs root (`ip netns`), the Python venv and livekit-server (`just setup`); run with
//! `just bench` or `cargo build --release -p wavecast-broadcaster && cargo run --release -p
//! wavecast-session --example media_bench`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wavecast_media::stamp;
use wavecast_pipeline::Timestamp;
use wavecast_session::{
    Preset, RemoteTrackPublication, Room, RoomEvent, RoomEvents, RoomOptions, SubscribedTrack,
    TrackKind, VideoQuality, VideoSubscriber,
};
use wavecast_testbed::{LiveKitServer, NetNs, PythonPeer, UdpLeg};

const WARMUP: Duration = Duration::from_secs(8);
const WINDOW: Duration = Duration::from_secs(15);
const LIMIT_KBIT: u32 = 600;

type Error = Box<dyn std::error::Error>;

/// A publisher process: ours or the Python SDK's.
enum Publisher {
    Ours(Child),
    Python(PythonPeer),
}

impl Publisher {
    fn pid(&self) -> u32 {
        match self {
            Publisher::Ours(c) => c.id(),
            Publisher::Python(p) => p.pid(),
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Publisher::Ours(c) = self {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// user + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the state field.
    (ticks(11) + ticks(12)) / 100.0
}

fn broadcaster_bin() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("no target directory")?;
    let bin = dir.join("broadcaster");
    if !bin.is_file() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-q", "-p", "wavecast-broadcaster"])
            .status()?;
        if !status.success() || !bin.is_file() {
            return Err(format!("cannot build {}", bin.display()).into());
        }
    }
    Ok(bin)
}

fn start_ours(server: &LiveKitServer, room: &str, codec: &str) -> Result<Publisher, Error> {
    let child = Command::new(broadcaster_bin()?)
        .args(wavecast_testbed::apps::join_args(
            &server.ws_url(),
            room,
            "caster",
        ))
        .args(["--codec", codec, "--simulcast", "--no-audio", "--no-stdin"])
        .args(["--width", "1280", "--height", "720", "--fps", "30"])
        .args(["--bitrate", "2500", "--duration", "120s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Publisher::Ours(child))
}

fn start_python(server: &LiveKitServer, room: &str, codec: &str) -> Result<Publisher, Error> {
    let mut py = PythonPeer::spawn(
        server,
        "media_publish.py",
        &[
            "--room",
            room,
            "--identity",
            "caster",
            "--codec",
            codec,
            "--simulcast",
            "--stamp",
            "--width",
            "1280",
            "--height",
            "720",
            "--fps",
            "30",
            "--seconds",
            "120",
        ],
    )?;
    py.wait_line("READY", Duration::from_secs(30))?;
    Ok(Publisher::Python(py))
}

async fn join(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
) -> Result<(Room, RoomEvents), Error> {
    let token = server.token(identity, room, Preset::Viewer);
    Ok(Room::connect(&server.ws_url(), &token, RoomOptions::default()).await?)
}

async fn caster_video(
    events: &mut RoomEvents,
) -> Result<(SubscribedTrack, RemoteTrackPublication), Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| "no video from the publisher within 30 s")?
            .ok_or("room closed")?;
        if let RoomEvent::TrackSubscribed {
            track,
            publication,
            participant,
        } = ev
            && track.kind() == TrackKind::Video
            && participant.identity().as_str() == "caster"
        {
            return Ok((track, publication));
        }
    }
}

/// A subscriber on one layer, counting its frames until dropped.
async fn layer_subscriber(
    server: &LiveKitServer,
    room: &str,
    quality: VideoQuality,
) -> Result<(Room, tokio::task::JoinHandle<u64>), Error> {
    let (r, mut events) = join(server, room, &format!("sub-{quality:?}")).await?;
    let (mut track, publication) = caster_video(&mut events).await?;
    r.set_video_quality(&publication, quality).await?;
    let counting = tokio::spawn(async move {
        let mut n = 0;
        while track.recv().await.is_some() {
            n += 1;
        }
        n
    });
    Ok((r, counting))
}

/// CPU seconds per second of `publisher` over [`WINDOW`], after [`WARMUP`].
async fn cpu_share(publisher: &Publisher) -> f64 {
    tokio::time::sleep(WARMUP).await;
    let (c0, t0) = (cpu_seconds(publisher.pid()), Instant::now());
    tokio::time::sleep(WINDOW).await;
    (cpu_seconds(publisher.pid()) - c0) / t0.elapsed().as_secs_f64()
}

/// What our viewer saw over the window: pictures with a stamp per second, their age on arrival.
struct Seen {
    fps: f64,
    p50_ms: f64,
    p95_ms: f64,
    widths: BTreeSet<u32>,
}

async fn watch(server: &LiveKitServer, room: &str) -> Result<Seen, Error> {
    let (_r, mut events) = join(server, room, "viewer").await?;
    let (track, _) = caster_video(&mut events).await?;
    let mut sub = VideoSubscriber::new(track)?;
    let warm_end = Instant::now() + WARMUP;
    while Instant::now() < warm_end {
        let _ = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await;
    }
    let (mut frames, mut ages, mut widths) = (BTreeSet::new(), Vec::new(), BTreeSet::new());
    let start = Instant::now();
    while start.elapsed() < WINDOW {
        let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(500), sub.recv()).await else {
            continue;
        };
        let img = &p.image.image;
        widths.insert(img.width);
        if let Ok(s) = stamp::decode_plane(img.planes[0], img.strides[0], 1, img.width, img.height)
        {
            let now = Timestamp::now().as_micros();
            ages.push(now.saturating_sub(s.timestamp.as_micros()) as f64 / 1000.0);
            frames.insert(s.frame_number);
        }
    }
    ages.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        ages.get(((ages.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(Seen {
        fps: frames.len() as f64 / WINDOW.as_secs_f64(),
        p50_ms: pct(0.5),
        p95_ms: pct(0.95),
        widths,
    })
}

fn main() -> Result<(), Error> {
    // Everything — the server, the publishers, our subscribers — in a private namespace, so the
    // rate limit and the libwebrtc peers' candidates stay inside it.
    let ns = NetNs::create()?;
    ns.enter_current_thread()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(&ns))
}

async fn run(ns: &NetNs) -> Result<(), Error> {
    let server = LiveKitServer::start()?;
    println!(
        "media_bench: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    println!("\n1. CPU per published 720p30 stream, three simulcast layers, each layer received");
    println!("| codec | wavecast broadcaster | Python SDK | ratio |\n|---|---|---|---|");
    let mut n = 0;
    for codec in ["vp8", "h264"] {
        let mut shares = Vec::new();
        for ours in [true, false] {
            n += 1;
            let room = format!("cpu-{n}");
            let publisher = if ours {
                start_ours(&server, &room, codec)?
            } else {
                start_python(&server, &room, codec)?
            };
            let mut subs = Vec::new();
            for q in VideoQuality::ALL {
                subs.push(layer_subscriber(&server, &room, q).await?);
            }
            let share = cpu_share(&publisher).await;
            let mut counts = Vec::new();
            for (r, counting) in subs {
                r.close().await;
                counts.push(counting.await.unwrap_or(0));
            }
            eprintln!(
                "  {codec} {}: {share:.3} CPU s/s; frames per layer (low, medium, high) {counts:?}",
                if ours { "ours" } else { "python" }
            );
            shares.push(share);
        }
        println!(
            "| {codec} | {:.2} CPU s/s | {:.2} CPU s/s | {:.2} |",
            shares[0],
            shares[1],
            shares[0] / shares[1]
        );
    }

    println!(
        "\n2. Dynacast: our VP8 broadcaster with subscribers on every layer vs on the low one only"
    );
    let room = "dynacast";
    let publisher = start_ours(&server, room, "vp8")?;
    let (only_low, counting) = layer_subscriber(&server, room, VideoQuality::Low).await?;
    let low_share = cpu_share(&publisher).await;
    only_low.close().await;
    let low_frames = counting.await.unwrap_or(0);
    drop(publisher);
    println!(
        "| subscribers | CPU s/s |\n|---|---|\n| low layer only ({low_frames} frames) | {low_share:.2} |"
    );

    println!("\n3. VP8 simulcast 720p30 through a {LIMIT_KBIT} kbit/s uplink, seen by our viewer");
    ns.limit_rate(LIMIT_KBIT, UdpLeg::ToPort(server.udp_port()))?;
    println!(
        "| publisher | fps shown | age p50 | age p95 | widths received | CPU s/s |\n|---|---|---|---|---|---|"
    );
    for ours in [true, false] {
        n += 1;
        let room = format!("limited-{n}");
        let publisher = if ours {
            start_ours(&server, &room, "vp8")?
        } else {
            start_python(&server, &room, "vp8")?
        };
        let (seen, share) = tokio::join!(watch(&server, &room), cpu_share(&publisher));
        let seen = seen?;
        let policed = ns.rate_counters()?;
        println!(
            "| {} | {:.1} | {:.0} ms | {:.0} ms | {:?} | {share:.2} |",
            if ours {
                "wavecast broadcaster"
            } else {
                "Python SDK"
            },
            seen.fps,
            seen.p50_ms,
            seen.p95_ms,
            seen.widths
        );
        eprintln!(
            "  policer so far: {} datagrams, {} dropped",
            policed.seen, policed.dropped
        );
        drop(publisher);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    ns.clear_faults()?;
    Ok(())
}
