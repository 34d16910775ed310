//! Orchestration: join (with an optional ramp), measure, leave, report.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wavecast_codec::Vp8Config;
use wavecast_session::admin::RoomAdmin;
use wavecast_session::{Credentials, Session, SessionEvent, SessionOptions, TrackKind};
use wavecast_token::Preset;

use crate::config::LoadTestConfig;
use crate::cpu::process_cpu_seconds;
use crate::error::LoadTestError;
use crate::media::{self, Latency, LiveMedia, PublishLoop};
use crate::plan::{Member, Plan, plan};
use crate::report::{
    CpuReport, Report, Settings, SubscriberOutcome, publisher_report, subscriber_report, totals,
};

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Checking that the server answers.
    Checking,
    /// Publishers and subscribers are joining.
    Joining,
    /// Everybody is in; media is measured.
    Measuring,
    /// Leaving the rooms.
    Leaving,
    /// Finished.
    Done,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Phase::Checking,
            1 => Phase::Joining,
            2 => Phase::Measuring,
            3 => Phase::Leaving,
            _ => Phase::Done,
        }
    }
}

/// A snapshot of a running load test (for a progress display).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress {
    /// Where the run is.
    pub phase: Phase,
    /// Time since the measurement started (zero before).
    pub measured: Duration,
    /// The measurement time asked for.
    pub duration: Duration,
    /// Publishers in their rooms.
    pub publishers_joined: u64,
    /// Publishers planned.
    pub publishers: usize,
    /// Subscribers in their rooms.
    pub subscribers_joined: u64,
    /// Subscribers whose join failed.
    pub subscribers_failed: u64,
    /// Subscribers planned.
    pub subscribers: usize,
    /// Pictures decoded so far, all subscribers.
    pub frames_decoded: u64,
    /// Media bytes received so far, all subscribers.
    pub bytes: u64,
    /// Decode errors so far.
    pub decode_errors: u64,
}

#[derive(Debug, Default)]
struct Live {
    phase: AtomicU8,
    publishers_joined: AtomicU64,
    joined: AtomicU64,
    failed: AtomicU64,
    /// Micros since `origin` when measuring started (0: not yet).
    measuring_since_us: AtomicU64,
    media: Arc<LiveMedia>,
}

/// Reads a running load test's progress from any thread.
#[derive(Debug, Clone)]
pub struct ProgressHandle {
    live: Arc<Live>,
    origin: Instant,
    duration: Duration,
    publishers: usize,
    subscribers: usize,
}

impl ProgressHandle {
    /// The current figures (a few relaxed atomic loads).
    pub fn snapshot(&self) -> Progress {
        let l = &self.live;
        let since = l.measuring_since_us.load(Ordering::Relaxed);
        let measured = if since == 0 {
            Duration::ZERO
        } else {
            self.origin
                .elapsed()
                .saturating_sub(Duration::from_micros(since))
        };
        Progress {
            phase: Phase::from_u8(l.phase.load(Ordering::Relaxed)),
            measured: measured.min(self.duration),
            duration: self.duration,
            publishers_joined: l.publishers_joined.load(Ordering::Relaxed),
            publishers: self.publishers,
            subscribers_joined: l.joined.load(Ordering::Relaxed),
            subscribers_failed: l.failed.load(Ordering::Relaxed),
            subscribers: self.subscribers,
            frames_decoded: l.media.frames_decoded.load(Ordering::Relaxed),
            bytes: l.media.bytes.load(Ordering::Relaxed),
            decode_errors: l.media.decode_errors.load(Ordering::Relaxed),
        }
    }
}

/// A load test, validated and ready to run: see the [crate docs](crate).
#[derive(Debug)]
pub struct LoadTest {
    config: LoadTestConfig,
    plan: Plan,
    live: Arc<Live>,
    origin: Instant,
    decode: Option<Handle>,
}

impl LoadTest {
    /// Validate `config` and plan who joins where.
    pub fn new(config: LoadTestConfig) -> Result<Self, LoadTestError> {
        config.validate()?;
        let plan = plan(&config);
        Ok(Self {
            config,
            plan,
            live: Arc::default(),
            origin: Instant::now(),
            decode: None,
        })
    }

    /// Decode on this runtime (e.g. one with a worker per core, apart from the runtime the
    /// sessions' network tasks run on). Default: the runtime `run` is called on.
    pub fn decode_on(mut self, runtime: Handle) -> Self {
        self.decode = Some(runtime);
        self
    }

    /// A handle to watch the run's progress.
    pub fn progress(&self) -> ProgressHandle {
        ProgressHandle {
            live: self.live.clone(),
            origin: self.origin,
            duration: self.config.duration,
            publishers: self.config.publishers,
            subscribers: self.config.subscribers,
        }
    }

    fn set_phase(&self, phase: Phase) {
        self.live.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Run: check the server, join the publishers then the subscribers (at the ramp's pace),
    /// measure for the configured duration, leave every room and report.
    ///
    /// `cancel` stops the run early (Ctrl-C): everybody still leaves their room and the report
    /// covers what ran, marked `interrupted`. Errors only when the run cannot start (server
    /// unreachable, a publisher cannot join or publish); subscriber failures are in the report.
    pub async fn run(self, cancel: CancellationToken) -> Result<Report, LoadTestError> {
        let c = &self.config;
        self.set_phase(Phase::Checking);
        for url in c.urls() {
            let admin = RoomAdmin::new(url, &c.keys, Duration::from_secs(5));
            admin
                .list_rooms(&[])
                .await
                .map_err(|source| LoadTestError::Unreachable {
                    url: url.to_owned(),
                    source: Box::new(source),
                })?;
        }
        let decode = self.decode.clone().unwrap_or_else(Handle::current);
        self.set_phase(Phase::Joining);
        let joins_started = Instant::now();
        let mut pace = Pacer::new(c.ramp);

        // Publishers first: the test has nothing to measure without them.
        let mut publishers: Vec<(Member, Session, PublishLoop)> = Vec::new();
        for m in &self.plan.publishers {
            if !pace.wait(&cancel).await {
                break;
            }
            match tokio::time::timeout(c.join_timeout, join_publisher(m, c)).await {
                Ok(Ok((session, publish))) => {
                    self.live.publishers_joined.fetch_add(1, Ordering::Relaxed);
                    publishers.push((m.clone(), session, publish));
                }
                failed => {
                    stop_publishers(publishers).await;
                    self.set_phase(Phase::Done);
                    return Err(match failed {
                        Ok(Err(e)) => e,
                        _ => LoadTestError::Publisher {
                            identity: m.identity.clone(),
                            room: m.room.clone(),
                            source: Box::new(wavecast_session::SessionError::TransportTimeout {
                                url: m.url.clone(),
                                timeout: c.join_timeout,
                            }),
                        },
                    });
                }
            }
        }
        let counters: Arc<HashMap<String, Arc<AtomicU64>>> = Arc::new(
            publishers
                .iter()
                .map(|(m, _, p)| (m.identity.clone(), p.counter()))
                .collect(),
        );

        // Subscribers, each in its own task.
        let stop = CancellationToken::new();
        let ctx = Arc::new(SubscriberContext {
            config: c.clone(),
            live: self.live.clone(),
            counters: counters.clone(),
            decode,
            stop: stop.clone(),
            tracks_per_publisher: if c.audio { 2 } else { 1 },
        });
        let mut subscribers: Vec<JoinHandle<SubscriberOutcome>> = Vec::new();
        for m in &self.plan.subscribers {
            if !pace.wait(&cancel).await {
                break;
            }
            let in_room = self.plan.publishers_in_room[m.room_index] as u64;
            subscribers.push(tokio::spawn(subscribe(m.clone(), in_room, ctx.clone())));
        }
        // Wait until every started join has succeeded or failed.
        let spawned = subscribers.len() as u64;
        let join_deadline = tokio::time::Instant::now() + c.join_timeout + Duration::from_secs(5);
        while self.live.joined.load(Ordering::Relaxed) + self.live.failed.load(Ordering::Relaxed)
            < spawned
            && tokio::time::Instant::now() < join_deadline
            && !cancel.is_cancelled()
        {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        let join_phase = joins_started.elapsed();

        // Measure.
        self.set_phase(Phase::Measuring);
        let measure_start = Instant::now();
        self.live.measuring_since_us.store(
            measure_start.duration_since(self.origin).as_micros().max(1) as u64,
            Ordering::Relaxed,
        );
        let cpu_start = process_cpu_seconds();
        let allowance = c.in_flight_allowance;
        let interrupted = !sleep_or_cancel(c.duration - allowance, &cancel).await;
        // Frames captured up to the allowance before the end are expected everywhere.
        let behind = if interrupted {
            (allowance.as_secs_f64() * f64::from(c.video.fps)).ceil() as u64
        } else {
            0
        };
        let cutoff: HashMap<String, u64> = counters
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed).saturating_sub(behind)))
            .collect();
        let interrupted = interrupted || !sleep_or_cancel(allowance, &cancel).await;
        let measured = measure_start.elapsed();
        let cpu_s = process_cpu_seconds() - cpu_start;

        // Leave: subscribers stop decoding and leave, then the publishers.
        self.set_phase(Phase::Leaving);
        stop.cancel();
        let mut outcomes = Vec::with_capacity(subscribers.len());
        for h in subscribers {
            if let Ok(o) = h.await {
                outcomes.push(o);
            }
        }
        let publisher_rows = stop_publishers(publishers)
            .await
            .into_iter()
            .map(|(m, captured, o)| publisher_report(&m, captured, o))
            .collect();

        let members: Vec<&Member> = self.plan.publishers.iter().collect();
        let mut latency = Latency::default();
        let rows: Vec<_> = outcomes
            .iter()
            .map(|o| subscriber_report(o, &cutoff, &members, &mut latency))
            .collect();
        // Subscribers never started (interrupted during the ramp) count as not joined.
        let mut rows = rows;
        for m in self.plan.subscribers.iter().skip(rows.len()) {
            rows.push(crate::report::SubscriberReport {
                identity: m.identity.clone(),
                room: m.room.clone(),
                url: m.url.clone(),
                joined: false,
                error: Some("not started: the run was interrupted".into()),
                join_ms: None,
                first_frame_ms: None,
                tracks_subscribed: 0,
                tracks_expected: 0,
                video_frames: 0,
                audio_packets: 0,
                audio_loss_pct: None,
                gaps: 0,
                frames_expected: 0,
                frames_delivered: 0,
                frames_delivered_pct: None,
                bitrate_kbps: 0.0,
                latency: None,
                decode_errors: 0,
                queue_drops: 0,
            });
        }
        let total = totals(&rows, &latency);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let window = measured.as_secs_f64().max(1e-6);
        self.set_phase(Phase::Done);
        Ok(Report {
            settings: Settings {
                urls: c.urls().map(str::to_owned).collect(),
                publishers: c.publishers,
                subscribers: c.subscribers,
                rooms: c.rooms,
                duration_s: c.duration.as_secs_f64(),
                ramp_joins_per_s: c.ramp,
                video: c.video,
                audio: c.audio,
                decode: "every frame",
            },
            interrupted,
            join_phase_s: join_phase.as_secs_f64(),
            measured_s: measured.as_secs_f64(),
            publishers: publisher_rows,
            subscribers: rows,
            total,
            cpu: CpuReport {
                cores,
                cpu_s,
                window_s: window,
                percent_of_one_core: 100.0 * cpu_s / window,
                percent_of_machine: 100.0 * cpu_s / window / cores as f64,
            },
        })
    }
}

/// Sleeps `d`; false when `cancel` fired first.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Spaces join starts at the ramp's rate.
struct Pacer {
    interval: Option<Duration>,
    next: tokio::time::Instant,
}

impl Pacer {
    fn new(ramp: Option<f64>) -> Self {
        Self {
            interval: ramp.map(|r| Duration::from_secs_f64(1.0 / r)),
            next: tokio::time::Instant::now(),
        }
    }

    /// Waits for the next join slot; false when cancelled.
    async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        if cancel.is_cancelled() {
            return false;
        }
        let Some(interval) = self.interval else {
            return true;
        };
        let at = self.next;
        self.next = at.max(tokio::time::Instant::now()) + interval;
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = tokio::time::sleep_until(at) => true,
        }
    }
}

async fn join_publisher(
    m: &Member,
    c: &LoadTestConfig,
) -> Result<(Session, PublishLoop), LoadTestError> {
    let failed = |source| LoadTestError::Publisher {
        identity: m.identity.clone(),
        room: m.room.clone(),
        source: Box::new(source),
    };
    let creds = Credentials::mint(c.keys.clone(), &m.identity, &m.room, Preset::Broadcaster);
    let options = SessionOptions::new(m.url.clone(), creds).transport_timeout(c.join_timeout);
    let (session, mut events) = Session::connect(options).await.map_err(failed)?;
    // Nobody needs a publisher's events; the task ends when the session closes.
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let mut vp8 = Vp8Config::new(c.video.width, c.video.height, c.video.fps);
    vp8.bitrate = c.video.bitrate;
    let tracks = async {
        let video = session.publish_video("video", vp8).await?;
        let audio = if c.audio {
            Some(session.publish_audio("tone", 1, 32_000).await?)
        } else {
            None
        };
        Ok((video, audio))
    };
    let (video, audio) = match tracks.await {
        Ok(t) => t,
        Err(e) => {
            session.close().await;
            return Err(failed(e));
        }
    };
    match media::start_publisher(&m.identity, video, audio, c.video) {
        Ok(publish) => Ok((session, publish)),
        Err(e) => {
            session.close().await;
            Err(e)
        }
    }
}

/// Stops every publish loop, then closes the sessions (leave).
async fn stop_publishers(
    publishers: Vec<(Member, Session, PublishLoop)>,
) -> Vec<(Member, u64, media::PublishOutcome)> {
    let mut out = Vec::with_capacity(publishers.len());
    for (m, session, publish) in publishers {
        let captured = publish.frames_captured();
        let outcome = tokio::task::spawn_blocking(move || publish.stop())
            .await
            .unwrap_or_default();
        session.close().await;
        out.push((m, captured, outcome));
    }
    out
}

struct SubscriberContext {
    config: LoadTestConfig,
    live: Arc<Live>,
    counters: Arc<HashMap<String, Arc<AtomicU64>>>,
    decode: Handle,
    stop: CancellationToken,
    tracks_per_publisher: u64,
}

/// One subscriber: join, hand every subscribed track to a decoder, stop at `stop`, leave.
async fn subscribe(m: Member, publishers: u64, ctx: Arc<SubscriberContext>) -> SubscriberOutcome {
    let c = &ctx.config;
    let started = Instant::now();
    let mut out = SubscriberOutcome {
        member: m.clone(),
        started,
        joined_at: None,
        left_at: started,
        error: None,
        tracks_subscribed: 0,
        tracks_expected: publishers * ctx.tracks_per_publisher,
        video: Vec::new(),
        audio: Vec::new(),
        captured_at_join: HashMap::new(),
    };
    let creds = Credentials::mint(c.keys.clone(), &m.identity, &m.room, Preset::Viewer);
    let options = SessionOptions::new(m.url.clone(), creds).transport_timeout(c.join_timeout);
    let joined = tokio::select! {
        _ = ctx.stop.cancelled() => None,
        r = tokio::time::timeout(c.join_timeout, Session::connect(options)) => Some(r),
    };
    let (session, mut events) = match joined {
        Some(Ok(Ok(s))) => s,
        other => {
            out.error = Some(match other {
                Some(Ok(Err(e))) => error_chain(&e),
                Some(Err(_)) => format!("no join within {:?}", c.join_timeout),
                Some(Ok(Ok(_))) | None => "stopped before the join completed".into(),
            });
            ctx.live.failed.fetch_add(1, Ordering::Relaxed);
            out.left_at = Instant::now();
            return out;
        }
    };
    out.joined_at = Some(Instant::now());
    ctx.live.joined.fetch_add(1, Ordering::Relaxed);
    out.captured_at_join = ctx
        .counters
        .iter()
        .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
        .collect();
    let mut video = Vec::new();
    let mut audio = Vec::new();
    loop {
        let ev = tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => break,
            ev = events.recv() => match ev { Some(ev) => ev, None => break },
        };
        if let SessionEvent::TrackSubscribed(track) = ev {
            out.tracks_subscribed += 1;
            let (stop, live) = (ctx.stop.clone(), ctx.live.media.clone());
            match track.kind() {
                TrackKind::Video => video.push(
                    ctx.decode
                        .spawn(media::receive_video(track, stop, c.warmup, live)),
                ),
                TrackKind::Audio => {
                    audio.push(ctx.decode.spawn(media::receive_audio(track, stop, live)))
                }
            }
        }
    }
    for h in video {
        if let Ok(v) = h.await {
            out.video.push(v);
        }
    }
    for h in audio {
        if let Ok(a) = h.await {
            out.audio.push(a);
        }
    }
    out.left_at = Instant::now();
    session.close().await;
    out
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
