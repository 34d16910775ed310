//! Shared helpers of the session's integration tests (real livekit-server, official Python SDK).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use wavecast_codec::{I420, Vp8Config};
use wavecast_media::stamp::{self, Stamp};
use wavecast_session::internals::{
    Session, SessionEvent, SessionEvents, SessionOptions, SessionState,
};
use wavecast_session::{
    Credentials, ReconnectPolicy, SubscribedTrack, TrackKind, VideoPublisher, VideoSubscriber,
};
use wavecast_testbed::LiveKitServer;
use wavecast_token::Preset;

/// Log to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A quick policy for tests: 200 ms, 400 ms, 800 ms … capped at 1 s, ±20 %.
pub fn quick_policy(max_attempts: u32) -> ReconnectPolicy {
    ReconnectPolicy {
        initial_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.2,
        max_attempts,
    }
}

/// Session options minting tokens for `identity` in `room` on `server`.
pub fn options(server: &LiveKitServer, room: &str, identity: &str) -> SessionOptions {
    SessionOptions::new(
        server.ws_url(),
        Credentials::mint(server.keys(), identity, room, Preset::Broadcaster),
    )
}

/// Connect, panicking with the error.
pub async fn connect(options: SessionOptions) -> (Session, SessionEvents) {
    Session::connect(options).await.expect("session connects")
}

/// Records every state a session goes through (from the watch channel).
pub fn record_states(session: &Session) -> tokio::task::JoinHandle<Vec<SessionState>> {
    let mut rx = session.watch_state();
    tokio::spawn(async move {
        let mut seen = vec![rx.borrow_and_update().clone()];
        while rx.changed().await.is_ok() {
            let s = rx.borrow_and_update().clone();
            let end = matches!(s, SessionState::Disconnected { .. });
            seen.push(s);
            if end {
                break;
            }
        }
        seen
    })
}

/// Wait until the session's state matches `pred`.
pub async fn wait_state<F>(session: &Session, timeout: Duration, pred: F) -> SessionState
where
    F: Fn(&SessionState) -> bool,
{
    let mut rx = session.watch_state();
    match tokio::time::timeout(timeout, rx.wait_for(|s| pred(s))).await {
        Ok(Ok(s)) => s.clone(),
        Ok(Err(_)) => panic!("state channel closed"),
        Err(_) => panic!(
            "state not reached within {timeout:?}; now {}",
            session.state()
        ),
    }
}

/// The first subscribed track of `kind` from the event stream (events are drained meanwhile).
pub async fn next_track(
    events: &mut SessionEvents,
    kind: TrackKind,
    timeout: Duration,
) -> SubscribedTrack {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(SessionEvent::TrackSubscribed(t))) if t.kind() == kind => return t,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event stream ended"),
            Err(_) => panic!("no {kind:?} track within {timeout:?}"),
        }
    }
}

/// Drain events in the background so the session never waits on the reader.
pub fn drain(mut events: SessionEvents) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut n = 0;
        while events.recv().await.is_some() {
            n += 1;
        }
        n
    })
}

/// A stamped test-pattern source ([`stamp::StampedBars`]) as I420 pictures for an encoder.
pub struct StampedSource {
    pub width: u32,
    pub height: u32,
    bars: stamp::StampedBars,
}

impl StampedSource {
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            bars: stamp::StampedBars::new(width, height)
                .expect("frame is large enough for a stamp"),
        }
    }

    /// Draw the next frame (a moving bar below the stamp band); returns its stamp.
    pub fn next(&mut self) -> (I420<'_>, Stamp) {
        let (width, height) = (self.width, self.height);
        let (planes, strides, s) = self.bars.next_frame();
        (
            I420 {
                width,
                height,
                planes,
                strides,
            },
            s,
        )
    }
}

/// Read the stamp of a decoded picture.
pub fn read_stamp(image: &I420<'_>) -> Option<Stamp> {
    stamp::decode_plane(
        image.planes[0],
        image.strides[0],
        1,
        image.width,
        image.height,
    )
    .ok()
}

/// Publish stamped 320x240 video at 30 fps from a thread until `stop` is set. Returns (pushes,
/// frames queued).
pub fn spawn_video_sender(
    mut publisher: VideoPublisher,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let mut source = StampedSource::new(320, 240);
        let start = Instant::now();
        let mut pushes = 0u64;
        let mut queued = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (img, _) = source.next();
            if publisher.push(&img, Instant::now()).expect("encode") {
                queued += 1;
            }
            pushes += 1;
            let next = start + Duration::from_micros(pushes * 33_333);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        (pushes, queued)
    })
}

/// 320x240 at 30 fps, 300 kbit/s.
pub fn small_video() -> Vp8Config {
    let mut c = Vp8Config::new(320, 240, 30);
    c.bitrate = 300_000;
    c
}

/// A livekit-server started here (not through the testbed) so a test can restart it on the same
/// ports with a *different* API secret — as a rotated secret or an expired token looks to a
/// client that rejoins.
pub struct OwnServer {
    dir: std::path::PathBuf,
    http_port: u16,
    udp_port: u16,
    child: Option<std::process::Child>,
}

impl OwnServer {
    pub fn start(secret: &str) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "wavecast-session-own-{}-{}",
            std::process::id(),
            wavecast_testbed::free_tcp_port().map_err(|e| e.to_string())?
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut s = Self {
            dir,
            http_port: wavecast_testbed::free_tcp_port().map_err(|e| e.to_string())?,
            udp_port: wavecast_testbed::free_udp_port().map_err(|e| e.to_string())?,
            child: None,
        };
        s.spawn(secret)?;
        Ok(s)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.http_port)
    }

    fn spawn(&mut self, secret: &str) -> Result<(), String> {
        let config = wavecast_testbed::server_config(self.http_port, self.udp_port).replace(
            &format!(
                "{}: {}",
                wavecast_testbed::API_KEY,
                wavecast_testbed::API_SECRET
            ),
            &format!("{}: {secret}", wavecast_testbed::API_KEY),
        );
        let path = self.dir.join("livekit-server.yaml");
        std::fs::write(&path, config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(self.dir.join("server.log")).map_err(|e| e.to_string())?;
        let child = std::process::Command::new(
            wavecast_testbed::server_binary().map_err(|e| e.to_string())?,
        )
        .arg("--config")
        .arg(&path)
        .arg("--bind")
        .arg("127.0.0.1")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| e.to_string())?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if http_ok(self.http_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("server did not answer within 30 s".into())
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart_with_secret(&mut self, secret: &str) -> Result<(), String> {
        self.stop();
        self.spawn(secret)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn http_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && &buf[9..12] == b"200")
}

/// Run `body` on a fresh tokio runtime inside a private network namespace (see
/// `wavecast_testbed::netns`): the test's thread enters the namespace first, so the runtime's
/// threads, every socket and the livekit-server started from it live inside. Returns without
/// running `body` when namespaces cannot be made and `WAVECAST_SKIP_NETNS=1`.
pub fn run_in_netns<F, Fut>(test: &str, body: F)
where
    F: FnOnce(std::sync::Arc<wavecast_testbed::NetNs>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(ns) = wavecast_testbed::NetNs::enter_for_test(test) else {
        return;
    };
    let ns = std::sync::Arc::new(ns);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(body(ns.clone()));
    // The runtime's tasks and threads end before the namespace goes.
    drop(rt);
    drop(ns);
}

/// Read stamped frames from `video` until `count` newer than `after` arrived, or `timeout`
/// passed since `since`. Returns (frames, time of the first one since `since`, last number).
pub async fn read_new_frames(
    video: &mut wavecast_session::VideoSubscriber,
    after: u32,
    count: u32,
    since: Instant,
    timeout: Duration,
) -> (u32, Option<Duration>, u32) {
    let (mut n, mut first, mut last) = (0, None, after);
    while n < count {
        let left = timeout.saturating_sub(since.elapsed());
        match tokio::time::timeout(left, video.recv()).await {
            Ok(Some(f)) => {
                if let Some(s) = read_stamp(&f.image.image)
                    && s.frame_number > after
                {
                    n += 1;
                    last = last.max(s.frame_number);
                    first.get_or_insert(since.elapsed());
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    (n, first, last)
}

/// The number of the newest frame [`spawn_video_sender`] (30 fps, started at `started`) had
/// captured by `at`: frames numbered above it were captured after `at`.
pub fn frames_captured_by(started: Instant, at: Instant) -> u32 {
    (at.saturating_duration_since(started).as_secs_f64() * 30.0) as u32
}

/// The thread [`video_pair`] publishes from.
pub struct Sending {
    /// When it started (for [`frames_captured_by`]).
    pub started: Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

impl Sending {
    /// Stops it and waits for it.
    pub async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// The set-up of the fault tests: a publisher sending stamped video ([`spawn_video_sender`]) and
/// a subscriber decoding it, both in `room` with the options `tune` makes of [`options`]
/// (identities `rust-pub`, `rust-sub`). Returns the publisher (its events drained), the
/// subscriber, its events from just after the video track arrived (10 s at most), the decoder
/// on that track, and the sender.
pub async fn video_pair(
    server: &LiveKitServer,
    room: &str,
    tune: impl Fn(SessionOptions) -> SessionOptions,
) -> (Session, Session, SessionEvents, VideoSubscriber, Sending) {
    let (publisher, pub_events) = connect(tune(options(server, room, "rust-pub"))).await;
    drain(pub_events);
    let (subscriber, mut sub_events) = connect(tune(options(server, room, "rust-sub"))).await;
    let video = publisher
        .publish_video("cam", small_video())
        .await
        .expect("video published");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let thread = spawn_video_sender(video, stop.clone());
    let track = next_track(&mut sub_events, TrackKind::Video, Duration::from_secs(10)).await;
    let video_in = VideoSubscriber::new(track).expect("decoder");
    let sending = Sending {
        started,
        stop,
        thread,
    };
    (publisher, subscriber, sub_events, video_in, sending)
}

/// The binary of this crate's example `name`: the one `cargo test` built next to the test when
/// it is newer than the example's and the crate's sources, else built here (a run filtered
/// with `--test` builds no examples, and must not run a stale one; building here resolves
/// features for this package alone, so it is avoided when the workspace build already did it).
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join("examples").join(name);
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let fresh = built.is_some_and(|built| {
        let source = crate_dir.join("examples").join(format!("{name}.rs"));
        newest_change(&[source, crate_dir.join("src")]).is_some_and(|changed| changed <= built)
    });
    if !fresh {
        let status = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args(["build", "-p", "wavecast-session", "--example", name])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the example {name} failed");
    }
    bin
}

/// The latest modification time of the files at and below `paths`.
fn newest_change(paths: &[std::path::PathBuf]) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack = paths.to_vec();
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).ok()?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p).ok()? {
                stack.push(entry.ok()?.path());
            }
        } else {
            newest = newest.max(Some(meta.modified().ok()?));
        }
    }
    newest
}

/// Run an example binary with `args` (stderr passed through) and return its stdout, failing the
/// test when it does not end within `timeout` or ends unsuccessfully.
pub fn run_example(bin: &std::path::Path, args: &[&str], timeout: Duration) -> String {
    let child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start the example");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("the example ends within {timeout:?}"))
        .expect("the example ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "example failed: {stdout}");
    stdout
}

/// Join `room` as `identity` through a `Room` (broadcaster grants, minted per join).
pub async fn join_room(
    server: &LiveKitServer,
    room: &str,
    identity: &str,
    options: wavecast_session::RoomOptions,
) -> Result<(wavecast_session::Room, wavecast_session::RoomEvents), wavecast_session::SessionError>
{
    // A broadcaster that may also set its own name, metadata and attributes.
    let builder = wavecast_token::TokenBuilder::new(identity)
        .room(room)
        .preset(Preset::Broadcaster)
        .can_update_own_metadata(true);
    let creds = Credentials::Mint {
        keys: server.keys(),
        builder: Box::new(builder),
    };
    wavecast_session::Room::connect_with(&server.ws_url(), creds, options).await
}
