//! Live sessions: join a room over the media engine and stay in it.
//!
//! A [`Session`] owns one supervisor task that owns the current [`wavecast_rtc::Engine`]. The
//! supervisor forwards the engine's events, follows the connection state and, when the
//! connection is lost, rejoins: a full join on a new engine with exponential backoff and jitter
//! ([`ReconnectPolicy`]), then it publishes the session's tracks again and hands the new
//! subscriptions to the [`SubscribedTrack`] handles the app already holds. Before that, when
//! only the signal connection was lost, the engine *resumes* (`reconnect=1` with the same
//! participant sid, ICE restart, sync state): tracks, subscriptions and handles stay as they
//! are and nothing is re-published; a refused or failed resume falls back to the full rejoin.
//! A server `Leave` is followed: DISCONNECT ends the session ([`EndReason::RemovedByServer`]),
//! RECONNECT rejoins, RESUME resumes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wavecast_session::SessionError> {
//! use wavecast_session::Credentials;
//! use wavecast_session::internals::{Session, SessionEvent, SessionOptions};
//! use wavecast_token::{Keys, Preset};
//!
//! let creds = Credentials::mint(Keys::new("devkey", "secret"), "alice", "demo", Preset::Broadcaster);
//! let (session, mut events) = Session::connect(SessionOptions::new("ws://127.0.0.1:7880", creds)).await?;
//! let mut state = session.watch_state();
//! tokio::spawn(async move {
//!     while state.changed().await.is_ok() {
//!         println!("state: {}", *state.borrow());
//!     }
//! });
//! while let Some(ev) = events.recv().await {
//!     if let SessionEvent::TrackSubscribed(mut track) = ev {
//!         while let Some(frame) = track.recv().await { // continues across rejoins
//!             println!("{}: {} bytes", track.key(), frame.data.len());
//!         }
//!     }
//! }
//! session.close().await;
//! # Ok(()) }
//! ```

mod credentials;
pub(crate) mod e2ee;
mod error;
mod media;
#[cfg(feature = "libwebrtc")]
pub mod official;
mod options;
mod outbox;
mod reconnect;
mod state;
mod supervisor;
mod tracks;
mod video;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::{debug, info, warn};
use wavecast_rtc::{DisconnectReason, Engine, EngineError, EngineEvents, TransportState};
use wavecast_token::{Keys, Preset, TokenBuilder};

pub use credentials::Credentials;
pub use e2ee::{E2eeOptions, E2eeState, E2eeStats};
pub use error::{SessionError, error_chain};
pub use media::{
    AudioPublisher, AudioSubscriber, DecodedAudio, DecodedVideo, VideoDecode, VideoSubscriber,
};
pub use options::SessionOptions;
pub use outbox::{SessionEvent, SessionEvents};
pub use state::{EndReason, SessionState, SessionStats};
pub use tracks::{PublishedTrack, SendError, SubscribedTrack, TrackKey};
pub use video::{LayerStats, VideoOptions, VideoPublisher, media_codec, video_codec};
pub use wavecast_config::ReconnectPolicy;
pub use wavecast_rtc::{
    DataOptions, EncodedFrame, EngineEvent, EngineOptions, JoinInfo, MediaCodec, PeerRole,
    TrackInfo, TrackKind, TrackOptions, TrackSettings, TrackSource, VideoLayer, VideoQuality,
};

use outbox::BACKLOG_MAX;
use reconnect::shutdown_engine;
pub(crate) use reconnect::unit_random;
use supervisor::Supervisor;
pub(crate) use tracks::lock;
use tracks::{LocalSlot, RemoteSlot};

struct Shared {
    options: SessionOptions,
    engine: Mutex<Option<(u64, Arc<Engine>)>>,
    published: Mutex<Vec<Arc<LocalSlot>>>,
    subscribed: Mutex<HashMap<TrackKey, Weak<RemoteSlot>>>,
    state: watch::Sender<SessionState>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    join_attempts: AtomicU64,
    rejoins: AtomicU64,
    resumes: AtomicU64,
    dropped_events: AtomicU64,
    /// The error that ended the session, when an error did.
    /// The newest token the server sent (`RefreshToken`) on an earlier engine: later joins use
    /// it instead of a [`Credentials::Token`] that may have expired.
    refreshed_token: Mutex<Option<String>>,
    /// End-to-end encryption: keys (if any), counters, state reports.
    e2ee: Arc<e2ee::E2ee>,
}

impl Shared {
    /// A session's shared state at its start: join attempt 1 on `engine` (none in unit tests).
    #[cfg(test)]
    fn new(options: SessionOptions, engine: Option<Arc<Engine>>) -> Self {
        let e2ee = e2ee::E2ee::new(options.e2ee.as_ref());
        Self::with_e2ee(options, engine, e2ee)
    }

    /// [`Shared::new`] with the session's encryption made beforehand (its data sealer is in
    /// `options.engine`).
    fn with_e2ee(
        options: SessionOptions,
        engine: Option<Arc<Engine>>,
        e2ee: Arc<e2ee::E2ee>,
    ) -> Self {
        Self {
            e2ee,
            options,
            engine: Mutex::new(engine.map(|e| (1, e))),
            published: Mutex::new(Vec::new()),
            subscribed: Mutex::new(HashMap::new()),
            state: watch::Sender::new(SessionState::Connecting),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            join_attempts: AtomicU64::new(1),
            rejoins: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            dropped_events: AtomicU64::new(0),
            refreshed_token: Mutex::new(None),
        }
    }

    fn set_state(&self, state: SessionState) {
        info!("session: {state}");
        self.state.send_replace(state);
    }

    fn state(&self) -> SessionState {
        self.state.borrow().clone()
    }
}

/// A participant in a LiveKit room that stays connected: see [`crate::internals`].
///
/// Dropping a session aborts its tasks without a leave; call [`Session::close`] to leave.
pub struct Session {
    shared: Arc<Shared>,
    _supervisor: AbortOnDropHandle<()>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.shared.options.url)
            .field("state", &self.shared.state())
            .finish()
    }
}

impl Session {
    /// Join: one attempt (no retry — a refused token, a bad URL or a refused port fail at once
    /// with a typed error), then wait until both media connections are up
    /// ([`SessionOptions::transport_timeout`]). Returns in state [`SessionState::Connected`].
    ///
    /// Must be called inside a tokio runtime; the session's task runs there.
    pub async fn connect(
        mut options: SessionOptions,
    ) -> Result<(Session, SessionEvents), SessionError> {
        // Every engine of the session seals our data packets with its keys (when it has them).
        let e2ee = e2ee::E2ee::new(options.e2ee.as_ref());
        options.engine.data_sealer = e2ee.data_sealer();
        let url = options.url.clone();
        let token = options.credentials.token_now()?;
        let (engine, events) = Engine::connect(&url, &token, options.engine.clone())
            .await
            .map_err(|e| SessionError::from_connect(&url, e))?;
        let transport_timeout = options.transport_timeout;
        let (out, rx) = mpsc::channel(options.event_capacity.max(1));
        let shared = Arc::new(Shared::with_e2ee(options, Some(Arc::new(engine)), e2ee));
        shared.e2ee.report_to(&out);
        let sup = Supervisor {
            shared: shared.clone(),
            out,
            backlog: VecDeque::new(),
            epoch: 1,
            events,
            transports: (false, false),
            since: Instant::now(),
            connected: false,
            connected_once: false,
            attempt: 0,
            identities: HashMap::new(),
            track_names: HashMap::new(),
        };
        let handle = shared.tracker.spawn(sup.run());
        let session = Session {
            shared,
            _supervisor: AbortOnDropHandle::new(handle),
        };
        match session.wait_connected(transport_timeout).await {
            Ok(()) => Ok((session, rx)),
            Err(e) => {
                session.close().await;
                Err(e)
            }
        }
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.shared.state()
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.shared.options.url
    }

    /// A receiver of every state change.
    pub fn watch_state(&self) -> watch::Receiver<SessionState> {
        self.shared.state.subscribe()
    }

    /// Wait until the state is [`SessionState::Connected`]; an error if the session ends or
    /// `timeout` passes first.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), SessionError> {
        let mut rx = self.shared.state.subscribe();
        let wait = rx.wait_for(|s| {
            matches!(
                s,
                SessionState::Connected | SessionState::Disconnected { .. }
            )
        });
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) if *s == SessionState::Connected => Ok(()),
            Ok(Ok(s)) => Err(SessionError::Closed { state: s.clone() }),
            Ok(Err(_)) => Err(SessionError::Closed {
                state: self.state(),
            }),
            Err(_) => Err(SessionError::TransportTimeout {
                url: self.shared.options.url.clone(),
                timeout,
            }),
        }
    }

    /// What the server told the current engine at join (`None` while reconnecting). The local
    /// participant's sid changes with every rejoin.
    pub fn join_info(&self) -> Option<JoinInfo> {
        lock(&self.shared.engine)
            .as_ref()
            .map(|(_, e)| e.join_info().clone())
    }

    /// Subscribe to (or unsubscribe from) a remote track by its publisher's and its own sid (see
    /// [`crate::Room::subscribe`] for the roster-level call). Subscribing brings a
    /// [`SessionEvent::TrackSubscribed`]; unsubscribing ends the track's handle.
    pub async fn set_subscribed(
        &self,
        participant_sid: &str,
        track_sid: &str,
        subscribe: bool,
    ) -> Result<(), SessionError> {
        let (_, engine) = self.engine()?;
        engine
            .set_subscribed(participant_sid, track_sid, subscribe)
            .await
            .map_err(|e| self.engine_error(format!("subscribe to track {track_sid}"), e))
    }

    /// Pause or resume the server's forwarding of a subscribed track (it stays subscribed).
    pub async fn set_track_enabled(
        &self,
        track_sid: &str,
        enabled: bool,
    ) -> Result<(), SessionError> {
        let settings = TrackSettings {
            enabled,
            ..TrackSettings::default()
        };
        self.set_track_settings(track_sid, settings).await
    }

    /// How the server forwards a subscribed track (enabled, layer, frame rate).
    pub async fn set_track_settings(
        &self,
        track_sid: &str,
        settings: TrackSettings,
    ) -> Result<(), SessionError> {
        let (_, engine) = self.engine()?;
        engine
            .set_track_settings(track_sid, settings)
            .await
            .map_err(|e| self.engine_error(format!("update settings of track {track_sid}"), e))
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        let engine = lock(&self.shared.engine).as_ref().map(|(_, e)| e.clone());
        SessionStats {
            join_attempts: self.shared.join_attempts.load(Ordering::Relaxed),
            rejoins: self.shared.rejoins.load(Ordering::Relaxed),
            resumes: self.shared.resumes.load(Ordering::Relaxed),
            dropped_events: self.shared.dropped_events.load(Ordering::Relaxed),
            engine_dropped_events: engine.as_ref().map_or(0, |e| e.dropped_events()),
            engine_held_peak: engine.as_ref().map_or(0, |e| e.held_events_peak()),
            rtp: engine.as_ref().map(|e| e.rtp_stats()).unwrap_or_default(),
            transport: engine
                .as_ref()
                .map(|e| e.media_transport())
                .unwrap_or_default(),
        }
    }

    /// End-to-end encryption counters (all zero without [`SessionOptions::e2ee`]).
    pub fn e2ee_stats(&self) -> E2eeStats {
        self.shared.e2ee.stats()
    }

    /// Open an end-to-end encrypted data packet from `identity` with the session's keys.
    pub(crate) fn open_data(
        &self,
        identity: &str,
        packet: &wavecast_rtc::data_message::EncryptedData,
    ) -> Option<wavecast_rtc::data_message::DecryptedData> {
        self.shared.e2ee.open_data(identity, packet)
    }

    fn engine(&self) -> Result<(u64, Arc<Engine>), SessionError> {
        if let Some(e) = lock(&self.shared.engine).clone() {
            return Ok(e);
        }
        Err(self.not_connected())
    }

    fn not_connected(&self) -> SessionError {
        let state = self.state();
        if matches!(state, SessionState::Disconnected { .. }) {
            SessionError::Closed { state }
        } else {
            SessionError::NotConnected { state }
        }
    }

    fn engine_error(&self, operation: String, source: EngineError) -> SessionError {
        match source {
            EngineError::Closed => self.not_connected(),
            source => SessionError::Engine { operation, source },
        }
    }

    /// Publish a track. The returned handle survives rejoins (the session publishes the track
    /// again on every new engine). Fails with `NotConnected` while reconnecting.
    pub async fn publish_track(
        &self,
        mut options: TrackOptions,
    ) -> Result<PublishedTrack, SessionError> {
        let (epoch, engine) = self.engine()?;
        // With keys, every frame written is encrypted, and the track says so.
        let sealer = self
            .shared
            .e2ee
            .sealer(&engine.join_info().local.identity, options.codec);
        if sealer.is_some() && e2ee::sealed_codec(options.codec).is_none() {
            return Err(SessionError::Unsupported {
                operation: format!("publish track {:?}", options.name),
                reason: format!(
                    "end-to-end encryption of {} video is not implemented (VP8 and VP9 are)",
                    options.codec
                ),
            });
        }
        options.encrypted = sealer.is_some();
        let track = engine
            .publish_track(options.clone())
            .await
            .map_err(|e| self.engine_error(format!("publish track {:?}", options.name), e))?;
        let slot = LocalSlot::new(options, track, epoch, sealer);
        lock(&self.shared.published).push(slot.clone());
        Ok(PublishedTrack::new(slot))
    }

    /// Publish an Opus microphone track and wrap it with an encoder (`channels` 1 or 2).
    pub async fn publish_audio(
        &self,
        name: &str,
        channels: u16,
        bitrate: u32,
    ) -> Result<AudioPublisher, SessionError> {
        let track = self.publish_track(TrackOptions::audio(name)).await?;
        AudioPublisher::new(track, channels, bitrate)
    }

    /// Publish a video track (codec, size, simulcast: [`VideoOptions`]; a `Vp8Config` is one
    /// VP8 layer) and wrap it with its encoders.
    pub async fn publish_video(
        &self,
        name: &str,
        options: impl Into<VideoOptions>,
    ) -> Result<VideoPublisher, SessionError> {
        let options = options.into();
        let track = self.publish_track(options.track_options(name)).await?;
        VideoPublisher::new(track, options)
    }

    /// Our publications now (each a fresh handle onto the same publication).
    pub fn published_tracks(&self) -> Vec<PublishedTrack> {
        lock(&self.shared.published)
            .iter()
            .map(|slot| PublishedTrack::new(slot.clone()))
            .collect()
    }

    /// Stop publishing a track (for good: it is not published again after a rejoin).
    pub async fn unpublish_track(&self, track: &PublishedTrack) -> Result<(), SessionError> {
        let sid = track.slot.current_sid();
        track.slot.mark_unpublished();
        lock(&self.shared.published).retain(|s| !Arc::ptr_eq(s, &track.slot));
        let (Some(sid), Ok((_, engine))) = (sid, self.engine()) else {
            return Ok(()); // not bound now: nothing on the server to remove
        };
        match engine.unpublish_track(&sid).await {
            Ok(()) | Err(EngineError::Closed) | Err(EngineError::UnknownTrack(_)) => Ok(()),
            Err(e) => Err(self.engine_error(format!("unpublish track {:?}", track.name()), e)),
        }
    }

    /// Mute or unmute one of our tracks (kept across rejoins).
    pub async fn set_track_muted(
        &self,
        track: &PublishedTrack,
        muted: bool,
    ) -> Result<(), SessionError> {
        if track.slot.is_unpublished() {
            return Err(SessionError::NotPublished {
                name: track.name().to_owned(),
            });
        }
        lock(&track.slot.options).muted = muted;
        let (Some(sid), Ok((_, engine))) = (track.slot.current_sid(), self.engine()) else {
            return Ok(()); // applied at the next rejoin
        };
        engine
            .set_track_muted(&sid, muted)
            .await
            .map_err(|e| self.engine_error(format!("mute track {:?}", track.name()), e))
    }

    /// Send a user data packet. Fails with `NotConnected` while reconnecting (data is not queued
    /// across a rejoin).
    pub async fn publish_data(
        &self,
        payload: Vec<u8>,
        options: DataOptions,
    ) -> Result<(), SessionError> {
        let (_, engine) = self.engine()?;
        engine
            .publish_data(payload, options)
            .await
            .map_err(|e| self.engine_error("send data".into(), e))
    }

    /// Send a data-stream or RPC packet on the reliable channel (to everyone, or to
    /// `destination_identities`). Fails with `NotConnected` while reconnecting.
    pub async fn send_data_message(
        &self,
        message: wavecast_rtc::DataMessage,
        destination_identities: Vec<String>,
    ) -> Result<(), SessionError> {
        let (_, engine) = self.engine()?;
        engine
            .send_data_message(message, destination_identities)
            .await
            .map_err(|e| self.engine_error("send a data stream or RPC packet".into(), e))
    }

    /// Change our own name, metadata or attributes; returns once the server applied it (see
    /// [`crate::LocalParticipant::set_name`]). Fails with `NotConnected` while reconnecting.
    pub async fn update_participant(
        &self,
        update: wavecast_rtc::ParticipantUpdate,
    ) -> Result<(), SessionError> {
        let (_, engine) = self.engine()?;
        engine
            .update_participant(update)
            .await
            .map_err(|e| self.engine_error("update our participant".into(), e))
    }

    /// Leave the room, close the connections and wait for the session's tasks. Idempotent.
    pub async fn close(&self) {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
