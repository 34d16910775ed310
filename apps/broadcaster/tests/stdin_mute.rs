//! Stdin commands mute and unmute the broadcaster's tracks as another participant sees them, and
//! `quit` leaves the room cleanly.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use wavecast_session::engine::{Engine, EngineEvent, EngineEvents, EngineOptions, TrackKind};
use wavecast_testbed::LiveKitServer;
use wavecast_testbed::apps as common;
use wavecast_token::Preset;

const BIN: &str = env!("CARGO_BIN_EXE_broadcaster");

async fn next_matching<T>(
    events: &mut EngineEvents,
    what: &str,
    mut f: impl FnMut(&EngineEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(ev)) => {
                if let Some(v) = f(&ev) {
                    return v;
                }
            }
            Ok(None) => panic!("event stream ended while waiting for {what}"),
            Err(_) => panic!("no {what} within 15 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_mutes_unmutes_and_quits() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let token = server.token("watcher", "mute", Preset::Viewer);
    let (mut engine, mut events) = Engine::connect(&url, &token, EngineOptions::default())
        .await
        .expect("watcher joins");

    let mut child = common::join_command(BIN, &url, "mute", "caster")
        .args(common::video_args(320, 180, 15))
        .args(["--duration", "60s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("broadcaster starts");
    let mut stdin = child.stdin.take().unwrap();

    let mut tracks: HashMap<TrackKind, String> = HashMap::new();
    while tracks.len() < 2 {
        let (kind, sid) = next_matching(&mut events, "the caster's tracks", |ev| match ev {
            EngineEvent::TrackPublished { participant, track }
                if participant.identity == "caster" =>
            {
                Some((track.kind.expect("audio or video"), track.sid.clone()))
            }
            _ => None,
        })
        .await;
        tracks.insert(kind, sid);
    }
    for (cmd, kind, muted) in [
        ("mute video", TrackKind::Video, true),
        ("unmute video", TrackKind::Video, false),
        ("toggle audio", TrackKind::Audio, true),
        ("unmute", TrackKind::Audio, false),
    ] {
        writeln!(stdin, "{cmd}").unwrap();
        let sid = tracks[&kind].clone();
        next_matching(&mut events, cmd, |ev| match ev {
            EngineEvent::TrackMuted {
                track_sid,
                muted: m,
                ..
            } if *track_sid == sid && *m == muted => Some(()),
            _ => None,
        })
        .await;
    }
    writeln!(stdin, "quit").unwrap();
    let t0 = Instant::now();
    next_matching(&mut events, "the caster leaving", |ev| match ev {
        EngineEvent::ParticipantLeft(p) if p.identity == "caster" => Some(()),
        _ => None,
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "a clean leave is seen at once, took {:?}",
        t0.elapsed()
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("video muted") && stderr.contains("audio unmuted"),
        "{stderr}"
    );
    engine.close().await;
}
