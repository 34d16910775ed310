//! Shared helpers of the engine's integration tests (real livekit-server, official Python SDK).
#![allow(dead_code)]

pub mod codec;

use std::time::{Duration, Instant};

use wavecast_rtc::{Engine, EngineEvent, EngineEvents, EngineOptions, PeerRole, TransportState};
use wavecast_testbed::LiveKitServer;
use wavecast_token::Preset;

/// Log to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Join `room` as `identity` with broadcaster grants.
pub async fn join(server: &LiveKitServer, room: &str, identity: &str) -> (Engine, EngineEvents) {
    let token = server.token(identity, room, Preset::Broadcaster);
    Engine::connect(&server.ws_url(), &token, EngineOptions::default())
        .await
        .expect("engine joins")
}

/// Wait for an event matching `pred`, returning it; other events are handed to `other`.
pub async fn wait_for<F>(events: &mut EngineEvents, timeout: Duration, mut pred: F) -> EngineEvent
where
    F: FnMut(&EngineEvent) -> bool,
{
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(ev)) if pred(&ev) => return ev,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no matching event within {timeout:?}"),
        }
    }
}

/// Wait until both connections report Connected.
pub async fn wait_connected(events: &mut EngineEvents, timeout: Duration) {
    let mut publisher = false;
    let mut subscriber = false;
    while !(publisher && subscriber) {
        let ev = wait_for(events, timeout, |e| {
            matches!(
                e,
                EngineEvent::Transport {
                    state: TransportState::Connected,
                    ..
                }
            )
        })
        .await;
        if let EngineEvent::Transport { role, .. } = ev {
            match role {
                PeerRole::Publisher => publisher = true,
                PeerRole::Subscriber => subscriber = true,
            }
        }
    }
}

/// Dominant frequency of 48 kHz mono samples (the last 16 384 of them).
pub fn dominant_frequency(samples: &[i16]) -> f32 {
    let n = 16_384;
    assert!(samples.len() >= n, "only {} samples", samples.len());
    let mut spectrum =
        wavecast_pipeline::analysis::SpectrumAnalyzer::new(n, 48_000).expect("valid analyser");
    spectrum.push(&samples[samples.len() - n..], 1);
    spectrum.compute();
    spectrum.dominant_frequency().map(|(f, _)| f).unwrap_or(0.0)
}

/// Wait for a `RESULT {json}` line of a Python peer, off the async threads.
pub async fn python_result(
    mut py: wavecast_testbed::PythonPeer,
    timeout: Duration,
) -> serde_json::Value {
    tokio::task::spawn_blocking(move || {
        let line = py
            .wait_line("RESULT", timeout)
            .expect("python prints RESULT");
        serde_json::from_str(&line).expect("RESULT is JSON")
    })
    .await
    .expect("join")
}

/// Wait for a `READY` line of a Python peer, off the async threads.
pub async fn python_ready(
    mut py: wavecast_testbed::PythonPeer,
    timeout: Duration,
) -> wavecast_testbed::PythonPeer {
    tokio::task::spawn_blocking(move || {
        py.wait_line("READY", timeout).expect("python prints READY");
        py
    })
    .await
    .expect("join")
}

/// Publish a 440 Hz tone and a moving-bar 320x240 I420 video at 30 fps for `seconds`, from a
/// plain thread (as a capture thread would). Returns (audio packets, video frames, keyframes).
pub async fn publish_test_media(
    engine: &Engine,
    seconds: f64,
) -> std::thread::JoinHandle<(u64, u64, u64)> {
    use codec::{AudioSender, VideoSender};
    use wavecast_codec::{I420, Vp8Config};
    use wavecast_rtc::TrackOptions;

    let audio = engine
        .publish_track(TrackOptions::audio("tone"))
        .await
        .expect("audio published");
    let video = engine
        .publish_track(TrackOptions::video("pattern", 320, 240))
        .await
        .expect("video published");
    let mut ap = AudioSender::new(audio, 48_000);
    let mut vp = VideoSender::new(video, Vp8Config::new(320, 240, 30));
    std::thread::spawn(move || {
        let (w, h) = (320usize, 240usize);
        let mut y = vec![0u8; w * h];
        let u = vec![90u8; w * h / 4];
        let v = vec![160u8; w * h / 4];
        let mut pcm = [0i16; 480];
        let start = Instant::now();
        let mut n_audio = 0u64;
        let mut n_video = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            // Audio every 10 ms, video every third tick (30 fps).
            let now = Instant::now();
            for (i, s) in pcm.iter_mut().enumerate() {
                let t = (n_audio * 480 + i as u64) as f64 / 48_000.0;
                *s = ((t * 440.0 * std::f64::consts::TAU).sin() * 12_000.0) as i16;
            }
            ap.push(&pcm, now);
            n_audio += 1;
            if n_video * 1000 <= (n_audio - 1) * 10 * 30 {
                let bar = (n_video as usize * 4) % w;
                for (i, px) in y.iter_mut().enumerate() {
                    let x = i % w;
                    *px = if x >= bar && x < bar + 16 { 235 } else { 60 };
                }
                let img = I420 {
                    width: w as u32,
                    height: h as u32,
                    planes: [&y, &u, &v],
                    strides: [w, w / 2, w / 2],
                };
                vp.push(&img, now);
                n_video += 1;
            }
            let next = start + Duration::from_millis(n_audio * 10);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        let (frames, keyframes) = vp.sent;
        (ap.sent, frames, keyframes)
    })
}
