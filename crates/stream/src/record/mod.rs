//! Room recording: join hidden, keep every participant's audio and video as it was sent.
//!
//! A [`Recorder`] joins a room with a recorder token (hidden, subscribe-only), subscribes to
//! every track — or those a [`TrackFilter`] selects — and writes each participant's Opus audio
//! and video, without transcoding, into one file per participant ([`wavecast_media::webm`]):
//! WebM (`.webm`) for VP8 and VP9, Matroska (`.mkv`) when a track is H.264 — each frame names
//! its codec ([`wavecast_session::EncodedFrame::codec`]) — plus a JSON [`Manifest`] for the room
//! that names each track's codec.
//!
//! [`ivf_wav`] holds the viewer's simpler recording of the one participant it watches (VP8 or VP9
//! into IVF — H.264 is refused there —, decoded audio into WAV), written by its decoder threads.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wavecast_stream::record::RecordError> {
//! use std::time::Duration;
//! use wavecast_stream::record::{Recorder, RecorderOptions};
//! use wavecast_session::Credentials;
//! use wavecast_token::{Keys, Preset};
//!
//! let creds = Credentials::mint(Keys::new("devkey", "secret"), "rec", "demo", Preset::Recorder);
//! let options = RecorderOptions::new("ws://127.0.0.1:7880", creds, "recordings");
//! let recorder = Recorder::start(options).await?;
//! tokio::time::sleep(Duration::from_secs(15)).await;
//! let manifest = recorder.stop().await?;
//! for (participant, file) in manifest.files() {
//!     println!("{}: {} ({} ms)", participant.identity, file.path, file.duration_ms);
//! }
//! # Ok(()) }
//! ```
//!
//! # What ends up where
//! - **One file per participant visit**: a participant's file opens at its first frame (after
//!   waiting up to 1.5 s for the rest of its published tracks, since a file's tracks are fixed)
//!   and is finalized when the participant leaves. A participant who rejoins, or publishes a
//!   track the open file lacks, or switches a track's codec, continues in a new file
//!   (`ada-2.webm`, `ada-3.mkv`: a visit's number is unique across both containers); the
//!   manifest says why. An H.264 track's file opens at a keyframe that carries its SPS and PPS
//!   (the track's CodecPrivate); earlier H.264 frames are dropped. A muted track without frames
//!   gets the codec the server announces (H.264 only with SPS and PPS known from an earlier file;
//!   else VP8 is guessed). Frames of other codecs are dropped and listed once in the errors.
//! - **Timestamps** come from RTP: each track's RTP clock is anchored at the arrival of its
//!   first frame, so a participant's tracks are aligned to within their network jitter (RTCP
//!   sender reports are not exposed by the engine). A jump of more than 1 s between RTP time
//!   and arrival (a publisher restarting its stream) re-anchors and is counted.
//! - **Mute** leaves a gap (no silence or frozen frames are invented) and the manifest lists
//!   the mute changes and the gaps with their reason.
//! - **Packet loss**: video is skipped up to the next keyframe and a keyframe is requested
//!   (PLI, at most every 500 ms), so a file never holds undecodable frames; counted per track.
//! - **Resolution changes** pass through (VP8 and VP9 carry the size in keyframes, H.264 its new
//!   SPS) and are listed, with sizes read from each codec's keyframe header.
//! - **Nothing lost**: clusters reach the file at least every half second (`max_cluster`); a
//!   killed recorder leaves files that play up to their last half second and a manifest at most
//!   a second old;
//!   [`recover_dir`] completes them. Stopping ([`Recorder::stop`]) finalizes every file and
//!   the manifest before leaving the room. Existing files are never overwritten.
//!
//! # Design
//! The network side never waits for the disk: one task per subscribed track reads frames,
//! applies the keyframe gate and hands them to the room's writer thread through a queue that
//! holds at most [`RecorderOptions::queue`] frames (full: the frame is dropped, counted, and
//! video waits for the next keyframe). The writer thread owns every file and the manifest; its
//! state machine takes the time as input, so it is unit-tested without a server.

mod filter;
mod gate;
pub mod ivf_wav;
mod manifest;
mod room;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use wavecast_media::MediaError;
use wavecast_session::{
    Credentials, DisconnectReason, Participant, Room, RoomEvent, RoomEvents, RoomOptions,
    SessionError, SubscribedTrack, TrackKey,
};

pub use filter::TrackFilter;
pub use manifest::{
    FileEntry, Gap, Manifest, MuteChange, ParticipantEntry, Resolution, TrackEntry,
};

use gate::{KeyframeGate, Verdict};
use room::{Input, RoomRecording};

/// Errors of the recorder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Joining the room failed.
    #[error("recorder could not join")]
    Join(#[from] SessionError),
    /// A file or directory could not be used.
    #[error("{path}: {action} failed")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest could not be parsed.
    #[error("{path}: not a recorder manifest")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A filter pattern is malformed.
    #[error("bad {what} filter `{pattern}`: {reason}")]
    Filter {
        /// `participant` or `track`.
        what: &'static str,
        /// The pattern.
        pattern: String,
        /// What is allowed.
        reason: String,
    },
    /// A WebM or Matroska file could not be written or repaired.
    #[error(transparent)]
    Webm(#[from] MediaError),
    /// The writer thread ended unexpectedly (a bug).
    #[error("the recorder's writer thread ended unexpectedly")]
    WriterGone,
}

/// What a [`Recorder`] needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecorderOptions {
    /// The server URL.
    pub url: String,
    /// How to join (give it recorder credentials: `Preset::Recorder`).
    pub credentials: Credentials,
    /// Reconnect policy and timeouts of the room (it always subscribes to everything).
    pub room: RoomOptions,
    /// Directory for the WebM/Matroska files and the manifest (created if missing).
    pub out_dir: PathBuf,
    /// What to record.
    pub filter: TrackFilter,
    /// Longest a cluster spans or waits in memory: the most a crash loses. Default 500 ms.
    pub max_cluster: Duration,
    /// Frames the queue to the writer thread holds (default 2048: seconds of a busy room).
    pub queue: usize,
}

impl RecorderOptions {
    /// Record everything of the room `credentials` admit to at `url` into `out_dir`.
    pub fn new(
        url: impl Into<String>,
        credentials: Credentials,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            url: url.into(),
            credentials,
            room: RoomOptions::default(),
            out_dir: out_dir.into(),
            filter: TrackFilter::default(),
            max_cluster: Duration::from_millis(500),
            queue: 2048,
        }
    }

    /// Record only what `filter` selects.
    pub fn filter(mut self, filter: TrackFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Join with these room options (auto-subscribe stays on).
    pub fn room_options(mut self, room: RoomOptions) -> Self {
        self.room = room;
        self
    }
}

/// Counters of a running recorder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderStats {
    /// Tracks being read.
    pub tracks: u64,
    /// Frames handed to the writer.
    pub frames: u64,
    /// Frames dropped because the writer's queue was full.
    pub queue_drops: u64,
}

#[derive(Default)]
struct Counters {
    tracks: AtomicU64,
    frames: AtomicU64,
    queue_drops: AtomicU64,
}

/// The queue to the writer thread: frames are bounded (`capacity` in flight, beyond that they
/// are dropped), room events are never dropped (they are few).
#[derive(Clone)]
struct Tx {
    tx: mpsc::Sender<Input>,
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
}

impl Tx {
    fn frame(&self, input: Input) -> bool {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        if self.tx.send(input).is_err() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn event(&self, input: Input) {
        let _ = self.tx.send(input);
    }
}

/// A running room recording: see the [module docs](self).
pub struct Recorder {
    room: Room,
    /// Why the room ended by itself, once it did.
    ended: watch::Receiver<Option<DisconnectReason>>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    tx: Tx,
    writer: Option<std::thread::JoinHandle<Manifest>>,
    manifest_path: PathBuf,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("manifest", &self.manifest_path)
            .finish()
    }
}

impl Recorder {
    /// Join and start recording. The manifest exists when this returns.
    pub async fn start(options: RecorderOptions) -> Result<Recorder, RecordError> {
        let room_options = options.room.clone().auto_subscribe(true);
        let (room, events) = Room::connect_observed(
            &options.url,
            options.credentials.clone(),
            room_options,
            |_| {},
        )
        .await?;
        let name = room.name().unwrap_or_default();
        let me = room.local_participant().identity().to_string();
        let recording = match RoomRecording::create(
            &options.out_dir,
            &name,
            &me,
            options.filter.clone(),
            options.max_cluster,
            Instant::now(),
        ) {
            Ok(r) => r,
            Err(e) => {
                room.close().await;
                return Err(e);
            }
        };
        let manifest_path = recording.manifest_path().to_path_buf();
        info!("recorder: room {name:?} → {}", manifest_path.display());
        let (tx, rx) = mpsc::channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let tx = Tx {
            tx,
            in_flight: in_flight.clone(),
            capacity: options.queue.max(16),
        };
        let writer = std::thread::Builder::new()
            .name("recorder-writer".into())
            .spawn(move || write_loop(recording, rx, in_flight))
            .map_err(|source| RecordError::Io {
                path: manifest_path.clone(),
                action: "start the writer thread",
                source,
            })?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let counters = Arc::new(Counters::default());
        let (ended_tx, ended) = watch::channel(None);
        tracker.spawn(route_events(
            events,
            options.filter,
            tx.clone(),
            Routing {
                cancel: cancel.clone(),
                tracker: tracker.clone(),
                counters: counters.clone(),
                ended: ended_tx,
            },
        ));
        Ok(Recorder {
            room,
            ended,
            cancel,
            tracker,
            tx,
            writer: Some(writer),
            manifest_path,
            counters,
        })
    }

    /// The room's manifest file.
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    /// Counters.
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            tracks: self.counters.tracks.load(Ordering::Relaxed),
            frames: self.counters.frames.load(Ordering::Relaxed),
            queue_drops: self.counters.queue_drops.load(Ordering::Relaxed),
        }
    }

    /// Resolves when the room ended by itself (removed by the server, gave up reconnecting),
    /// with why; the recording then still needs [`Recorder::stop`] to finalize. Pending
    /// forever once [`Recorder::stop`] has begun.
    pub async fn ended(&self) -> DisconnectReason {
        let mut ended = self.ended.clone();
        let reason = ended
            .wait_for(Option::is_some)
            .await
            .ok()
            .map(|r| r.clone());
        match reason.flatten() {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }

    /// Stop: stop reading, finalize every file and the manifest, then leave the room. Returns
    /// the final manifest.
    pub async fn stop(mut self) -> Result<Manifest, RecordError> {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.tx.event(Input::Stop);
        let writer = self.writer.take().ok_or(RecordError::WriterGone)?;
        let manifest = tokio::task::spawn_blocking(move || writer.join())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(RecordError::WriterGone);
        self.room.close().await;
        manifest
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Not stopped: stop the readers and let the writer finalize on its own thread.
        self.cancel.cancel();
        if self.writer.is_some() {
            self.tx.event(Input::Stop);
        }
    }
}

fn write_loop(
    mut recording: RoomRecording,
    rx: mpsc::Receiver<Input>,
    in_flight: Arc<AtomicUsize>,
) -> Manifest {
    let tick = room::TICK;
    let mut next_tick = Instant::now() + tick;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(input) => {
                if matches!(input, Input::Frame { .. }) {
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                }
                if !recording.handle(input, Instant::now()) {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                recording.stop(Instant::now());
                break;
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            recording.tick(now);
            next_tick = now + tick;
        }
    }
    recording.manifest().clone()
}

/// What the event router shares with the recorder.
struct Routing {
    cancel: CancellationToken,
    tracker: TaskTracker,
    counters: Arc<Counters>,
    /// Set when the room ends by itself.
    ended: watch::Sender<Option<DisconnectReason>>,
}

async fn route_events(mut events: RoomEvents, filter: TrackFilter, tx: Tx, r: Routing) {
    let mut next_stream = 0u64;
    loop {
        let ev = tokio::select! {
            _ = r.cancel.cancelled() => break,
            ev = events.recv() => ev,
        };
        let Some(ev) = ev else { break };
        match ev {
            RoomEvent::TrackSubscribed { track, .. } => {
                let key = track.key().clone();
                if !filter.matches(&key.identity, &key.name) {
                    debug!("recorder: {key} not selected");
                    continue;
                }
                next_stream += 1;
                r.counters.tracks.fetch_add(1, Ordering::Relaxed);
                info!("recorder: recording {key}");
                r.tracker.spawn(read_track(
                    track,
                    next_stream,
                    tx.clone(),
                    r.cancel.clone(),
                    r.counters.clone(),
                ));
            }
            RoomEvent::ParticipantConnected(p) => tx.event(Input::Joined {
                sid: p.sid().into_string(),
                identity: p.identity().to_string(),
                name: p.name(),
            }),
            RoomEvent::ParticipantNameChanged {
                participant: Participant::Remote(participant),
                ..
            } => tx.event(Input::Joined {
                sid: participant.sid().into_string(),
                identity: participant.identity().to_string(),
                name: participant.name(),
            }),
            RoomEvent::ParticipantDisconnected(p) => tx.event(Input::Left {
                sid: p.sid().into_string(),
                identity: p.identity().to_string(),
            }),
            RoomEvent::TrackPublished {
                publication,
                participant,
            } => tx.event(Input::Published {
                identity: participant.identity().to_string(),
                track: publication.info(),
            }),
            RoomEvent::TrackMuted { publication, .. } => tx.event(Input::Muted {
                track_sid: publication.sid().to_string(),
                muted: true,
            }),
            RoomEvent::TrackUnmuted { publication, .. } => tx.event(Input::Muted {
                track_sid: publication.sid().to_string(),
                muted: false,
            }),
            RoomEvent::ConnectionStateChanged(state) => info!("recorder: room {state:?}"),
            RoomEvent::Disconnected { reason } => {
                info!("recorder: the room ended: {reason}");
                r.ended.send_replace(Some(reason));
                break;
            }
            _ => {}
        }
    }
}

async fn read_track(
    mut track: SubscribedTrack,
    stream: u64,
    tx: Tx,
    cancel: CancellationToken,
    counters: Arc<Counters>,
) {
    // A recorder stores what it receives: an end-to-end encrypted track is stored encrypted
    // when the room has no keys (decrypted when it has them).
    track.pass_encrypted();
    let key: TrackKey = track.key().clone();
    let mut gate = KeyframeGate::new(key.kind);
    let mut drops = 0u64;
    let mut binding = u64::MAX;
    let mut sid: Arc<str> = Arc::from(track.sid());
    let shared_key = Arc::new(key.clone());
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => break,
            f = track.recv() => f,
        };
        let Some(frame) = frame else { break };
        let b = track.rebinds();
        if b != binding {
            binding = b;
            sid = Arc::from(track.sid());
        }
        if let Verdict::Skip { request_keyframe } = gate.admit(&frame, b, Instant::now()) {
            if request_keyframe {
                debug!("recorder: {key}: waiting for a keyframe (PLI)");
                track.request_keyframe();
            }
            continue;
        }
        let (skipped, keyframe_requests) = gate.take_counts();
        let input = Input::Frame {
            key: shared_key.clone(),
            sid: sid.clone(),
            stream: (stream, b),
            frame,
            skipped,
            keyframe_requests,
            queue_drops: drops,
        };
        if tx.frame(input) {
            drops = 0;
            counters.frames.fetch_add(1, Ordering::Relaxed);
        } else {
            drops += 1;
            counters.queue_drops.fetch_add(1, Ordering::Relaxed);
            gate.lost();
        }
    }
    debug!("recorder: {key} ended");
}

/// Complete a recording whose recorder was killed: repair every file (`.webm` or `.mkv`) the
/// manifest lists as `recording` ([`wavecast_media::webm::recover`]) and mark it and the manifest `recovered`.
pub fn recover_dir(manifest_path: impl AsRef<Path>) -> Result<Manifest, RecordError> {
    let path = manifest_path.as_ref();
    let mut m = Manifest::read(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut changed = false;
    for p in &mut m.participants {
        for f in &mut p.files {
            if f.state != "recording" {
                continue;
            }
            let report = wavecast_media::webm::recover(dir.join(&f.path))?;
            f.state = "recovered".into();
            f.closed_because = "recorder killed".into();
            f.duration_ms = report.duration.as_millis() as u64;
            changed = true;
        }
    }
    if m.state == "recording" {
        m.state = "recovered".into();
        changed = true;
    }
    if changed {
        let text = serde_json::to_string_pretty(&m).expect("a manifest serialises");
        manifest::write_atomic(path, &text).map_err(|source| RecordError::Io {
            path: path.to_path_buf(),
            action: "write manifest",
            source,
        })?;
    } else {
        warn!("{}: nothing to recover", path.display());
    }
    Ok(m)
}
