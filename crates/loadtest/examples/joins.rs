//! Sequential joins bench: join → first frame and success rate over N joins, one after the other
//! (the chat seed asks for > 95 % success and < 2 s to the first frame).
//!
//! ```text
//! cargo run --release -p wavecast-loadtest --example joins -- [--joins 100] [--cluster]
//! ```
//!
//! Starts a private livekit-server (or a 2-node cluster, joins alternating between the nodes),
//! keeps one publisher in the room (a load test in this process: 640x360 at 30 fps + tone, with
//! one subscriber of its own), then N times: join a new [`Room`] (viewer grants), wait for the
//! video track, decode until the first picture (the load test's receive path), leave. Each join has 10 s. Prints the success rate
//! and join → first frame p50/p95/max.

use std::time::{Duration, Instant};

use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use wavecast_loadtest::{LoadTest, LoadTestConfig, Quantiles};

use wavecast_session::{Credentials, Room, RoomOptions, TrackFilter};
use wavecast_stream::receive::{ReceiveOptions, VideoOut, VideoReceiver};
use wavecast_testbed::{API_KEY, API_SECRET, Servers};
use wavecast_token::{Keys, Preset};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// One join: connect → first decoded picture → leave. Returns the time to the first picture.
async fn join_once(url: &str, identity: &str, room: &str) -> Result<Duration, String> {
    let t0 = Instant::now();
    let creds = Credentials::mint(
        Keys::new(API_KEY, API_SECRET),
        identity,
        room,
        Preset::Viewer,
    );
    let (room, mut events) = Room::connect_with(
        url,
        creds,
        RoomOptions::default().reconnect(wavecast_session::ReconnectPolicy {
            max_attempts: 0,
            ..Default::default()
        }),
    )
    .await
    .map_err(|e| format!("join: {e}"))?;
    let result = async {
        let mut track = events
            .next_track(&TrackFilter::video())
            .await
            .ok_or("room closed before the video track")?;
        // The load test's receive path: decode, read the stamp, copy nothing out.
        let options = ReceiveOptions {
            deliver_every: 0,
            ..Default::default()
        };
        let mut video = VideoReceiver::new(&track, Arc::new(VideoOut::default()), None, options)
            .map_err(|e| e.to_string())?;
        while video.stats().frames_decoded == 0 {
            let frame = track.recv().await.ok_or("track ended before a picture")?;
            if video.push(&frame) {
                track.request_keyframe();
            }
        }
        Ok::<Duration, String>(t0.elapsed())
    };
    let r = tokio::time::timeout(Duration::from_secs(10), result)
        .await
        .unwrap_or_else(|_| Err("no picture within 10 s".into()));
    room.close().await;
    r
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let joins: usize = arg(&args, "--joins").map_or(100, |s| s.parse().expect("--joins N"));
    let cluster_mode = args.iter().any(|a| a == "--cluster");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let servers = Servers::start(if cluster_mode { 2 } else { 1 }).expect("server(s) start");
    let urls = servers.ws_urls();
    let mut c = LoadTestConfig::new(urls[0].clone(), Keys::new(API_KEY, API_SECRET));
    c.subscribers = 1;
    c.room_prefix = "joins".into();
    c.duration = Duration::from_secs(3600);
    let cancel = CancellationToken::new();
    let publisher = LoadTest::new(c).expect("valid");
    let stop = cancel.clone();
    let task = rt.spawn(async move { publisher.run(stop).await });
    std::thread::sleep(Duration::from_secs(3));

    let mut times = Vec::with_capacity(joins);
    let mut failures = Vec::new();
    for i in 0..joins {
        let url = &urls[i % urls.len()];
        match rt.block_on(join_once(url, &format!("joiner-{i}"), "joins-0")) {
            Ok(d) => times.push(d.as_secs_f64() * 1000.0),
            Err(e) => failures.push(format!("join {i} via {url}: {e}")),
        }
    }
    cancel.cancel();
    let _ = rt.block_on(task);
    let q = Quantiles::of(&mut times);
    println!(
        "{} servers, {joins} sequential joins: {} succeeded ({:.1} %); join → first frame {}",
        urls.len(),
        times.len(),
        100.0 * times.len() as f64 / joins as f64,
        q.map_or("–".into(), |q| format!(
            "p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            q.p50_ms, q.p95_ms, q.max_ms
        )),
    );
    for f in failures.iter().take(5) {
        println!("  failed: {f}");
    }
}
