//! Orchestration: join (with an optional ramp), measure, leave, report.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wavecast_pipeline::AgeHistogram;
use wavecast_server_api::RoomAdmin;
use wavecast_session::{
    Credentials, Preset, ReconnectPolicy, Room, RoomEvent, RoomEvents, RoomOptions, TrackKind,
    error_chain,
};
use wavecast_stream::publish::CaptureStats;

use crate::config::LoadTestConfig;
use crate::error::LoadTestError;
use crate::media::{self, LiveMedia, PublishLoop};
use crate::plan::{Member, Plan, plan};
use crate::report::{
    CpuReport, Report, Settings, SubscriberOutcome, publisher_report, subscriber_report, totals,
};
use wavecast_pipeline::cpu::process_cpu_seconds;

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
        let media = l.media.totals();
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
            frames_decoded: media.frames_decoded,
            bytes: media.bytes,
            decode_errors: media.decode_errors,
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
        let mut publishers: Vec<(Member, Room, PublishLoop)> = Vec::new();
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
        let counters: Arc<HashMap<String, Arc<CaptureStats>>> = Arc::new(
            publishers
                .iter()
                .map(|(m, _, p)| (m.identity.clone(), p.video_stats()))
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
            .map(|(k, v)| (k.clone(), numbered(v).saturating_sub(behind)))
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
        let mut latency = AgeHistogram::new();
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
                decode: "every frame decoded, every stamp read; pictures not copied out",
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

/// The next stamped frame number of a publisher's video loop (frames `0..n` were numbered).
fn numbered(stats: &CaptureStats) -> u64 {
    stats.numbered.load(Ordering::Relaxed)
}

/// How long a join still in flight when the run stops may take to finish, so that it can be
/// left cleanly (a connect dropped half-way leaves the server waiting for a reconnect).
const LEAVE_GRACE: Duration = Duration::from_secs(5);

/// Room options of every load-test participant: the first join is not retried (a failed join
/// is a result to report, not to hide), and a lost connection is not rejoined.
fn room_options(c: &LoadTestConfig) -> RoomOptions {
    let no_retry = ReconnectPolicy {
        max_attempts: 0,
        ..ReconnectPolicy::default()
    };
    RoomOptions::default()
        .reconnect(no_retry)
        .transport_timeout(c.join_timeout)
}

async fn connect(
    m: &Member,
    c: &LoadTestConfig,
    preset: Preset,
) -> Result<(Room, RoomEvents), wavecast_session::SessionError> {
    let creds = Credentials::mint(c.keys.clone(), &m.identity, &m.room, preset);
    let options = room_options(c);
    Room::connect_with(&m.url, creds, options).await
}

async fn join_publisher(
    m: &Member,
    c: &LoadTestConfig,
) -> Result<(Room, PublishLoop), LoadTestError> {
    // The loops start first (encoder set-up is not join time); they send nothing until
    // published.
    let mut publish = PublishLoop::start(c.video, c.audio)?;
    let (room, mut events) = match connect(m, c, Preset::Broadcaster).await {
        Ok(r) => r,
        Err(e) => {
            tokio::task::spawn_blocking(move || publish.stop());
            return Err(LoadTestError::Publisher {
                identity: m.identity.clone(),
                room: m.room.clone(),
                source: Box::new(e),
            });
        }
    };
    // Nobody needs a publisher's events; the task ends when the room closes.
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    if let Err(e) = publish.publish(room.local_participant()).await {
        room.close().await;
        tokio::task::spawn_blocking(move || publish.stop());
        return Err(LoadTestError::Publish {
            identity: m.identity.clone(),
            room: m.room.clone(),
            source: Box::new(e),
        });
    }
    Ok((room, publish))
}

/// Stops every publish loop, then leaves the rooms.
async fn stop_publishers(
    publishers: Vec<(Member, Room, PublishLoop)>,
) -> Vec<(Member, u64, media::PublishOutcome)> {
    let mut out = Vec::with_capacity(publishers.len());
    for (m, room, publish) in publishers {
        let captured = numbered(&publish.video_stats());
        let outcome = tokio::task::spawn_blocking(move || publish.stop())
            .await
            .unwrap_or_default();
        room.close().await;
        out.push((m, captured, outcome));
    }
    out
}

struct SubscriberContext {
    config: LoadTestConfig,
    live: Arc<Live>,
    counters: Arc<HashMap<String, Arc<CaptureStats>>>,
    decode: Handle,
    stop: CancellationToken,
    tracks_per_publisher: u64,
}

/// One subscriber: join, hand every subscribed track to a receiver, stop at `stop`, leave.
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
    let join = tokio::time::timeout(c.join_timeout, connect(&m, c, Preset::Viewer));
    tokio::pin!(join);
    let joined = tokio::select! {
        r = &mut join => r,
        _ = ctx.stop.cancelled() => {
            // Stopped (Ctrl-C, or the run ended) while joining: let the join finish so that
            // the room is left cleanly, not abandoned half-way.
            match tokio::time::timeout(LEAVE_GRACE, &mut join).await {
                Ok(Ok(Ok((room, _events)))) => {
                    room.close().await;
                    out.error = Some("stopped while joining (joined and left at once)".into());
                }
                Ok(Ok(Err(e))) => out.error = Some(error_chain(&e)),
                Ok(Err(_)) => out.error = Some(format!("no join within {:?}", c.join_timeout)),
                Err(_) => out.error = Some("stopped while joining (join abandoned)".into()),
            }
            ctx.live.failed.fetch_add(1, Ordering::Relaxed);
            out.left_at = Instant::now();
            return out;
        }
    };
    let (room, mut events) = match joined {
        Ok(Ok(r)) => r,
        other => {
            out.error = Some(match other {
                Ok(Err(e)) => error_chain(&e),
                _ => format!("no join within {:?}", c.join_timeout),
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
        .map(|(k, v)| (k.clone(), numbered(v)))
        .collect();
    let mut video = Vec::new();
    let mut audio = Vec::new();
    loop {
        let ev = tokio::select! {
            biased;
            _ = ctx.stop.cancelled() => break,
            ev = events.recv() => match ev { Some(ev) => ev, None => break },
        };
        if let RoomEvent::TrackSubscribed { track, .. } = ev {
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
        match h.await {
            Ok(Ok(v)) => out.video.push(v),
            Ok(Err(e)) => tracing::error!("{}: {}", m.identity, error_chain(&e)),
            Err(e) => tracing::error!("{}: a video receiver failed: {e}", m.identity),
        }
    }
    for h in audio {
        match h.await {
            Ok(Ok(a)) => out.audio.push(a),
            Ok(Err(e)) => tracing::error!("{}: {}", m.identity, error_chain(&e)),
            Err(e) => tracing::error!("{}: an audio receiver failed: {e}", m.identity),
        }
    }
    out.left_at = Instant::now();
    room.close().await;
    out
}
