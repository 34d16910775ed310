//! Bench (not a test): CPU per recorded 720p30 participant, against the viewer's decode path.
//!
//! Starts a private livekit-server (wavecast-testbed) and a publisher (the broadcaster's publish
//! loops: its stamped pattern at 1280×720 VP8, 30 fps, and a 440 Hz Opus tone), then two subscriber processes side by side,
//! each measuring its own user+system CPU (`/proc/self/stat`, all threads) over the same steady
//! window:
//! - `--role recorder`: a [`Recorder`] writing the participant's VP8 + Opus into a WebM file;
//! - `--role decoder`: the viewer's decode path — VP8 decode into pipeline frames (pool) and
//!   Opus decode.
//!
//! `cargo run --release -p wavecast-stream --example record_cpu -- --seconds 20 --runs 3`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wavecast_codec::pipeline::to_frame;
use wavecast_pipeline::cpu::process_cpu_seconds;
use wavecast_pipeline::{PixelFormat, VideoFramePool, VideoLayout};
use wavecast_session::{
    AudioSubscriber, Credentials, Room, RoomEvent, RoomOptions, TrackKind, VideoSubscriber,
};
use wavecast_stream::broadcast::{Broadcast, VideoTrackInfo};
use wavecast_stream::publish::{
    AudioInput, AudioSourceOpen, VideoInput, VideoSettings, start_audio, start_video,
};
use wavecast_stream::record::{Recorder, RecorderOptions};
use wavecast_testbed::LiveKitServer;
use wavecast_token::Preset;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u64 = 30;
const WARMUP: Duration = Duration::from_secs(3);

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
    let seconds: f64 = arg(&args, "--seconds").map_or(20.0, |s| s.parse().expect("seconds"));
    if let Some(role) = arg(&args, "--role") {
        let url = arg(&args, "--url").expect("--url");
        let token = arg(&args, "--token").expect("--token");
        let result = match role.as_str() {
            "recorder" => rt.block_on(record(url, token, seconds)),
            _ => rt.block_on(decode(url, token, seconds)),
        };
        println!("RESULT {result}");
        return;
    }
    let runs: u32 = arg(&args, "--runs").map_or(1, |s| s.parse().expect("runs"));
    println!(
        "| run | CPU recorder (% core) | CPU decoder (% core) | ratio | video frames recorded / decoded in window |"
    );
    println!("|---|---|---|---|---|");
    for run in 1..=runs {
        rt.block_on(orchestrate(run, seconds));
    }
}

/// The recorder: join, record everything, measure CPU from warm-up to the end.
async fn record(url: String, token: String, seconds: f64) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = RecorderOptions::new(url, Credentials::token(token), dir.path());
    let recorder = Recorder::start(options).await.expect("recorder joins");
    // Wait for frames to flow, then measure.
    let t0 = Instant::now();
    while recorder.stats().frames < 30 && t0.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(WARMUP).await;
    let (warm_at, warm_cpu, warm_frames) = (
        Instant::now(),
        process_cpu_seconds(),
        recorder.stats().frames,
    );
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (end_at, end_cpu, end_frames) = (
        Instant::now(),
        process_cpu_seconds(),
        recorder.stats().frames,
    );
    let window = end_at.duration_since(warm_at).as_secs_f64();
    let manifest = recorder.stop().await.expect("finalized");
    let video_frames: u64 = manifest
        .files()
        .flat_map(|(_, f)| f.tracks.iter())
        .filter(|t| t.kind == "video")
        .map(|t| t.frames)
        .sum();
    json!({
        "cpu_percent": 100.0 * (end_cpu - warm_cpu) / window,
        "frames_in_window": end_frames - warm_frames,
        "video_frames_total": video_frames,
        "window_s": window,
    })
}

/// The viewer's decode path: VP8 → I420 → pipeline frame (pool), Opus → PCM.
async fn decode(url: String, token: String, seconds: f64) -> Value {
    let (room, mut events) = Room::connect(&url, &token, RoomOptions::default())
        .await
        .expect("decoder joins");
    let (mut video, mut audio) = (None, None);
    while video.is_none() || audio.is_none() {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Some(RoomEvent::TrackSubscribed { track, .. }))
                if track.kind() == TrackKind::Video =>
            {
                video = Some(track)
            }
            Ok(Some(RoomEvent::TrackSubscribed { track, .. })) => audio = Some(track),
            Ok(Some(_)) => {}
            other => panic!("no tracks: {other:?}"),
        }
    }
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let mut audio = AudioSubscriber::new(audio.expect("audio"), 2).expect("opus decoder");
    tokio::spawn(async move { while audio.recv().await.is_some() {} });
    let mut video = VideoSubscriber::new(video.expect("video")).expect("vp8 decoder");
    let pool = VideoFramePool::new(
        "decoded",
        VideoLayout::new(PixelFormat::I420, WIDTH, HEIGHT).expect("layout"),
        3,
    );
    let mut frames = 0u64;
    let mut warm: Option<(Instant, f64, u64)> = None;
    let mut start = None;
    while let Some(f) = video.recv().await {
        let frame = to_frame(&f.image, &pool).expect("into a pipeline frame");
        drop(frame);
        frames += 1;
        let started = *start.get_or_insert(Instant::now());
        if warm.is_none() && started.elapsed() >= WARMUP {
            warm = Some((Instant::now(), process_cpu_seconds(), frames));
        }
        if let Some((at, _, _)) = warm
            && at.elapsed().as_secs_f64() >= seconds
        {
            break;
        }
    }
    let (end_at, end_cpu) = (Instant::now(), process_cpu_seconds());
    room.close().await;
    let (warm_at, warm_cpu, warm_frames) = warm.expect("ran past the warm-up");
    let window = end_at.duration_since(warm_at).as_secs_f64();
    json!({
        "cpu_percent": 100.0 * (end_cpu - warm_cpu) / window,
        "frames_in_window": frames - warm_frames,
        "window_s": window,
    })
}

/// The broadcaster's publish loops: the stamped synthetic pattern at 720p30 and a 440 Hz tone.
fn sources() -> Broadcast {
    let settings = VideoSettings::pattern(WIDTH, HEIGHT, FPS as u32, 2_000_000);
    let video = VideoInput::open(&settings).expect("the synthetic pattern opens");
    let info = VideoTrackInfo {
        size: video.size(),
        screen: false,
        publish: None,
    };
    let video = start_video(video, &settings).expect("the video loop starts");
    let tone = AudioInput::Tone {
        frequency: 440.0,
        channels: 1,
    };
    let audio = AudioSourceOpen::open(&tone).expect("the tone opens");
    let audio = start_audio(audio, 32_000).expect("the audio loop starts");
    Broadcast::new(Some((video, info, false)), Some((audio, false)))
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

async fn orchestrate(run: u32, seconds: f64) {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let room = "bench";
    let token = server.token("pub", room, Preset::Broadcaster);
    // Its events are not needed: dropping them discards them.
    let (publisher, _) = Room::connect(&server.ws_url(), &token, RoomOptions::default())
        .await
        .expect("publisher joins");
    let mut broadcast = sources();
    broadcast
        .publish(publisher.local_participant())
        .await
        .expect("video and audio published");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let exe = std::env::current_exe().expect("own path");
    let role = |role: &str, identity: &str, preset: Preset| {
        let mut c = Command::new(&exe);
        c.args(["--role", role, "--url", &server.ws_url()])
            .args(["--token", &server.token(identity, room, preset)])
            .args(["--seconds", &seconds.to_string()]);
        c
    };
    let rec = spawn_reader(role("recorder", "rec", Preset::Recorder), "recorder");
    let dec = spawn_reader(role("decoder", "dec", Preset::Viewer), "decoder");
    let (rec, dec) =
        tokio::task::spawn_blocking(move || (rec.join().expect("rec"), dec.join().expect("dec")))
            .await
            .expect("join");
    broadcast.detach();
    let _ = tokio::task::spawn_blocking(move || broadcast.stop()).await;
    publisher.close().await;
    let (r, d) = (
        rec["cpu_percent"].as_f64().unwrap_or(f64::NAN),
        dec["cpu_percent"].as_f64().unwrap_or(f64::NAN),
    );
    eprintln!("{}", json!({"recorder": rec, "decoder": dec}));
    println!(
        "| {run} | {r:.1} | {d:.1} | {:.2} | {} (rec, video + audio) / {} (dec, video) |",
        r / d,
        rec["frames_in_window"],
        dec["frames_in_window"]
    );
}
