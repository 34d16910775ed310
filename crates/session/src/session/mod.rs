//! Live sessions: join a room over the media engine and stay in it.
//!
//! A [`Session`] owns one supervisor task that owns the current [`wavecast_rtc::Engine`]. The
//! supervisor forwards the engine's events, follows the connection state and, when the
//! connection is lost, rejoins: a full join on a new engine with exponential backoff and jitter
//! ([`ReconnectPolicy`]), then it publishes the session's tracks again and hands the new
//! subscriptions to the [`SubscribedTrack`] handles the app already holds. Signal *resume*
//! (`reconnect=1`, keeping the server-side participant) is not attempted: the engine has no
//! ICE restart, so every recovery is a full rejoin.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wavecast_session::session::SessionError> {
//! use wavecast_session::session::{Credentials, Session, SessionEvent, SessionOptions};
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

mod error;
mod media;
#[cfg(feature = "libwebrtc")]
pub mod official;
mod tracks;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::{debug, info, warn};
use wavecast_codec::Vp8Config;
use wavecast_rtc::{DisconnectReason, Engine, EngineError, EngineEvents, TransportState};
use wavecast_token::{Keys, Preset, TokenBuilder};

pub use error::SessionError;
pub use media::{AudioPublisher, AudioSubscriber, VideoPublisher, VideoSubscriber};
pub use tracks::{PublishedTrack, SendError, SubscribedTrack, TrackKey};
pub use wavecast_config::ReconnectPolicy;
pub use wavecast_rtc::{
    DataOptions, DecodedAudio, DecodedVideo, EncodedFrame, EngineEvent, EngineOptions, JoinInfo,
    Participant, PeerRole, TrackInfo, TrackKind, TrackOptions, TrackSource,
};

use tracks::{LocalSlot, RemoteSlot, lock};

/// How many must-deliver events the supervisor holds for a slow reader before it stops reading
/// the engine (which then applies its own drop policy).
const BACKLOG_MAX: usize = 1024;

/// How the session authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// A ready token, used for every join (an expired token makes a rejoin fail with
    /// [`EndReason::Refused`]).
    Token(String),
    /// A key and secret: a fresh token is minted from the builder for every join, so expiry
    /// never breaks a rejoin.
    Mint {
        /// API key and secret.
        keys: Keys,
        /// Identity, room, grants and lifetime of the tokens.
        builder: Box<TokenBuilder>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token(<redacted>)"),
            Credentials::Mint { keys, builder } => f
                .debug_struct("Credentials::Mint")
                .field("keys", keys)
                .field("builder", builder)
                .finish(),
        }
    }
}

impl Credentials {
    /// A ready token.
    pub fn token(token: impl Into<String>) -> Self {
        Credentials::Token(token.into())
    }

    /// Mint tokens for `identity` in `room` with a preset's grants.
    pub fn mint(keys: Keys, identity: &str, room: &str, preset: Preset) -> Self {
        Credentials::Mint {
            keys,
            builder: Box::new(TokenBuilder::new(identity).room(room).preset(preset)),
        }
    }

    fn token_now(&self) -> Result<String, SessionError> {
        match self {
            Credentials::Token(t) => Ok(t.clone()),
            Credentials::Mint { keys, builder } => builder.mint(keys).map_err(|source| {
                let (identity, room) = builder
                    .claims(keys.key())
                    .map(|c| (c.sub, c.video.room))
                    .unwrap_or_default();
                SessionError::Token {
                    identity,
                    room,
                    source,
                }
            }),
        }
    }
}

/// Everything a session needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionOptions {
    /// The server URL (`ws`, `wss`, `http` or `https`).
    pub url: String,
    /// Token, or key and secret to mint tokens with.
    pub credentials: Credentials,
    /// Backoff and attempts of rejoins.
    pub reconnect: ReconnectPolicy,
    /// Engine settings for every join.
    pub engine: EngineOptions,
    /// Capacity of the session's event stream.
    pub event_capacity: usize,
    /// How long the media connections may take to come up after a join.
    pub transport_timeout: Duration,
    /// How long `close` waits for in-flight calls before it stops the engine without a leave.
    pub close_grace: Duration,
}

impl SessionOptions {
    /// Defaults: the config's default reconnect policy, default engine options, 256 events,
    /// 10 s transport timeout.
    pub fn new(url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            url: url.into(),
            credentials,
            reconnect: ReconnectPolicy::default(),
            engine: EngineOptions::default(),
            event_capacity: 256,
            transport_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(2),
        }
    }

    /// Set the reconnect policy.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Set the engine options.
    pub fn engine(mut self, options: EngineOptions) -> Self {
        self.engine = options;
        self
    }

    /// Set the event stream's capacity.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Set the transport timeout.
    pub fn transport_timeout(mut self, timeout: Duration) -> Self {
        self.transport_timeout = timeout;
        self
    }
}

/// Where the session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Joined; waiting for the media connections.
    Connecting,
    /// Joined and both media connections are up.
    Connected,
    /// The connection was lost; rejoin attempt `attempt` (1-based) is waiting or running.
    Reconnecting {
        /// The attempt number.
        attempt: u32,
    },
    /// The session has ended; nothing more happens.
    Disconnected {
        /// Why.
        reason: EndReason,
    },
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionState::Connecting => f.write_str("connecting"),
            SessionState::Connected => f.write_str("connected"),
            SessionState::Reconnecting { attempt } => write!(f, "reconnecting (attempt {attempt})"),
            SessionState::Disconnected { reason } => write!(f, "disconnected: {reason}"),
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// [`Session::close`] was called (or the session was dropped).
    Closed,
    /// The server removed us (a leave request without reconnect), e.g. an admin removed the
    /// participant or deleted the room.
    RemovedByServer {
        /// The server's reason.
        reason: String,
    },
    /// A rejoin was refused (HTTP 401/403): the token expired or was revoked. Not retried.
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// An error that retrying cannot fix (bad URL, a token that cannot be minted), or the first
    /// connection failed before it was ever up.
    Fatal {
        /// The error, with its causes.
        error: String,
    },
    /// Every rejoin attempt of the policy failed.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error, with its causes.
        last_error: String,
    },
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Closed => f.write_str("closed by the client"),
            EndReason::RemovedByServer { reason } => write!(f, "removed by the server ({reason})"),
            EndReason::Refused { status, message } => {
                write!(f, "rejoin refused ({status}): {message}")
            }
            EndReason::Fatal { error } => write!(f, "{error}"),
            EndReason::GaveUp {
                attempts,
                last_error,
            } => write!(
                f,
                "gave up after {attempts} rejoin attempts; last error: {last_error}"
            ),
        }
    }
}

/// What the session reports, in one bounded stream.
///
/// Drop policy: `ActiveSpeakers` and `ConnectionQuality` updates (periodic, each superseding
/// the last) are dropped when the stream is full and counted in [`SessionStats::dropped_events`].
/// Every other event is kept: up to 1 024 of them wait in the supervisor for the reader; past
/// that the supervisor stops reading the engine, whose own bounded queue then drops its
/// droppable events (see [`EngineEvent`]). State changes are also always readable from
/// [`Session::watch_state`].
///
/// After a rejoin the new engine reports the room afresh (participants joined, tracks
/// published), so those events can repeat.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The session state changed.
    State(SessionState),
    /// A new remote track: read it from the handle (it continues across rejoins).
    TrackSubscribed(SubscribedTrack),
    /// After a rejoin, a track the app already holds a handle for is flowing again.
    TrackResubscribed {
        /// Which track.
        key: TrackKey,
        /// Its new sid.
        track_sid: String,
    },
    /// An engine event passed through unchanged (never `TrackSubscribed` or `Disconnected`:
    /// those become [`SessionEvent::TrackSubscribed`] and [`SessionEvent::State`]).
    Engine(EngineEvent),
}

/// The receiving end of a session's events.
pub type SessionEvents = mpsc::Receiver<SessionEvent>;

/// Counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Joins attempted (the first connect plus every rejoin attempt).
    pub join_attempts: u64,
    /// Rejoins that reached Connected.
    pub rejoins: u64,
    /// Events dropped by the session's drop policy.
    pub dropped_events: u64,
}

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
    dropped_events: AtomicU64,
}

impl Shared {
    fn set_state(&self, state: SessionState) {
        info!("session: {state}");
        self.state.send_replace(state);
    }

    fn state(&self) -> SessionState {
        self.state.borrow().clone()
    }
}

/// What every session backend offers: the engine-based [`Session`] and, behind the `libwebrtc`
/// feature, the official SDK's `official::OfficialSession`.
pub trait SessionBackend {
    /// The current state.
    fn state(&self) -> SessionState;
    /// A receiver of every state change.
    fn watch_state(&self) -> watch::Receiver<SessionState>;
    /// Send a user data packet.
    fn publish_data(
        &self,
        payload: Vec<u8>,
        options: DataOptions,
    ) -> impl std::future::Future<Output = Result<(), SessionError>> + Send;
    /// Leave, close the connections and wait for the session's tasks. Idempotent.
    fn close(&self) -> impl std::future::Future<Output = ()> + Send;
}

impl SessionBackend for Session {
    fn state(&self) -> SessionState {
        Session::state(self)
    }

    fn watch_state(&self) -> watch::Receiver<SessionState> {
        Session::watch_state(self)
    }

    async fn publish_data(
        &self,
        payload: Vec<u8>,
        options: DataOptions,
    ) -> Result<(), SessionError> {
        Session::publish_data(self, payload, options).await
    }

    async fn close(&self) {
        Session::close(self).await
    }
}

/// A participant in a LiveKit room that stays connected: see the [module docs](self).
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
        options: SessionOptions,
    ) -> Result<(Session, SessionEvents), SessionError> {
        let url = options.url.clone();
        let token = options.credentials.token_now()?;
        let (engine, events) = Engine::connect(&url, &token, options.engine.clone())
            .await
            .map_err(|e| SessionError::from_connect(&url, e))?;
        let transport_timeout = options.transport_timeout;
        let (out, rx) = mpsc::channel(options.event_capacity.max(1));
        let shared = Arc::new(Shared {
            options,
            engine: Mutex::new(Some((1, Arc::new(engine)))),
            published: Mutex::new(Vec::new()),
            subscribed: Mutex::new(HashMap::new()),
            state: watch::Sender::new(SessionState::Connecting),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            join_attempts: AtomicU64::new(1),
            rejoins: AtomicU64::new(0),
            dropped_events: AtomicU64::new(0),
        });
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

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            join_attempts: self.shared.join_attempts.load(Ordering::Relaxed),
            rejoins: self.shared.rejoins.load(Ordering::Relaxed),
            dropped_events: self.shared.dropped_events.load(Ordering::Relaxed),
        }
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
        options: TrackOptions,
    ) -> Result<PublishedTrack, SessionError> {
        let (epoch, engine) = self.engine()?;
        let track = engine
            .publish_track(options.clone())
            .await
            .map_err(|e| self.engine_error(format!("publish track {:?}", options.name), e))?;
        let slot = LocalSlot::new(options, track, epoch);
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

    /// Publish a VP8 camera track of the config's size and wrap it with an encoder.
    pub async fn publish_video(
        &self,
        name: &str,
        config: Vp8Config,
    ) -> Result<VideoPublisher, SessionError> {
        let track = self
            .publish_track(TrackOptions::video(name, config.width, config.height))
            .await?;
        VideoPublisher::new(track, config)
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

/// A value in `[0, 1)` from the OS-seeded std hasher (jitter needs no better randomness).
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Close an engine: a clean leave once no call holds it any more, or a plain stop (abort) after
/// `grace`.
async fn shutdown_engine(mut engine: Arc<Engine>, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        match Arc::try_unwrap(engine) {
            Ok(mut e) => {
                if tokio::time::timeout(grace, e.close()).await.is_err() {
                    warn!("engine did not close within {grace:?}; stopping it");
                }
                return;
            }
            Err(shared) if Instant::now() >= deadline => {
                warn!("engine still in use after {grace:?}; stopping it without a leave");
                drop(shared);
                return;
            }
            Err(shared) => {
                engine = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// How a run of the current engine ended.
enum Drive {
    Cancelled,
    Lost(String),
    Removed(String),
}

struct Supervisor {
    shared: Arc<Shared>,
    out: mpsc::Sender<SessionEvent>,
    /// Must-deliver events waiting for the reader.
    backlog: VecDeque<SessionEvent>,
    /// Epoch of the current engine (1 for the first).
    epoch: u64,
    events: EngineEvents,
    /// (publisher, subscriber) connected on the current engine.
    transports: (bool, bool),
    /// When the current engine joined.
    since: Instant,
    connected: bool,
    connected_once: bool,
    /// Rejoin attempts since the last time we were connected.
    attempt: u32,
    /// Participant sid → identity, for the current engine.
    identities: HashMap<String, String>,
    /// Track sid → (publisher identity, name), for the current engine.
    track_names: HashMap<String, (String, String)>,
}

impl Supervisor {
    async fn run(mut self) {
        let end = loop {
            match self.drive().await {
                Drive::Cancelled => break EndReason::Closed,
                Drive::Removed(reason) => break EndReason::RemovedByServer { reason },
                Drive::Lost(why) => {
                    warn!("session: connection lost: {why}");
                    self.drop_engine().await;
                    if !self.connected_once {
                        break EndReason::Fatal {
                            error: format!("the first connection was lost before it was up: {why}"),
                        };
                    }
                    match self.rejoin(why).await {
                        Ok(()) => {}
                        Err(end) => break end,
                    }
                }
            }
        };
        self.finish(end).await;
    }

    fn set_state(&mut self, state: SessionState) {
        self.shared.set_state(state.clone());
        self.push(SessionEvent::State(state));
    }

    /// Queue a must-deliver event, or try-send a droppable one.
    fn push(&mut self, ev: SessionEvent) {
        let droppable = matches!(
            ev,
            SessionEvent::Engine(EngineEvent::ActiveSpeakers(_))
                | SessionEvent::Engine(EngineEvent::ConnectionQuality(_))
        );
        if droppable {
            if !self.backlog.is_empty() || self.out.try_send(ev).is_err() {
                self.shared.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if self.backlog.is_empty() {
            match self.out.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(ev)) => self.backlog.push_back(ev),
                Err(mpsc::error::TrySendError::Closed(_)) => {} // nobody listens
            }
        } else {
            self.backlog.push_back(ev);
        }
    }

    /// Run the current engine until it ends, forwarding its events.
    async fn drive(&mut self) -> Drive {
        loop {
            let deadline = self.since + self.shared.options.transport_timeout;
            enum Wake {
                Cancelled,
                Sent,
                ReaderGone,
                Event(Option<EngineEvent>),
                Timeout,
            }
            let wake = tokio::select! {
                biased;
                _ = self.shared.cancel.cancelled() => Wake::Cancelled,
                permit = self.out.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(p) => {
                        if let Some(ev) = self.backlog.pop_front() {
                            p.send(ev);
                        }
                        Wake::Sent
                    }
                    Err(_) => Wake::ReaderGone,
                },
                ev = self.events.recv(), if self.backlog.len() < BACKLOG_MAX => Wake::Event(ev),
                _ = tokio::time::sleep_until(deadline.into()), if !self.connected => Wake::Timeout,
            };
            match wake {
                Wake::Cancelled => return Drive::Cancelled,
                Wake::Sent => {}
                Wake::ReaderGone => self.backlog.clear(),
                Wake::Event(None) => return Drive::Lost("the engine ended".into()),
                Wake::Event(Some(EngineEvent::Disconnected(reason))) => match reason {
                    DisconnectReason::ServerLeave {
                        reason,
                        reconnect: false,
                    } => return Drive::Removed(reason),
                    other => return Drive::Lost(describe(&other)),
                },
                Wake::Event(Some(ev)) => self.on_event(ev),
                Wake::Timeout => {
                    return Drive::Lost(format!(
                        "the media connections did not come up within {:?}",
                        self.shared.options.transport_timeout
                    ));
                }
            }
        }
    }

    fn on_event(&mut self, ev: EngineEvent) {
        match ev {
            EngineEvent::Transport { role, state } => {
                let up = state == TransportState::Connected;
                match role {
                    PeerRole::Publisher => self.transports.0 = up,
                    PeerRole::Subscriber => self.transports.1 = up,
                }
                self.push(SessionEvent::Engine(EngineEvent::Transport { role, state }));
                if self.transports == (true, true) && !self.connected {
                    self.on_connected();
                }
            }
            EngineEvent::ParticipantJoined(p) => {
                self.identities.insert(p.sid.clone(), p.identity.clone());
                self.push(SessionEvent::Engine(EngineEvent::ParticipantJoined(p)));
            }
            EngineEvent::TrackPublished { participant, track } => {
                self.identities
                    .insert(participant.sid.clone(), participant.identity.clone());
                self.track_names.insert(
                    track.sid.clone(),
                    (participant.identity.clone(), track.name.clone()),
                );
                self.push(SessionEvent::Engine(EngineEvent::TrackPublished {
                    participant,
                    track,
                }));
            }
            EngineEvent::TrackUnpublished {
                participant_sid,
                track_sid,
            } => {
                self.end_remote(&track_sid);
                self.push(SessionEvent::Engine(EngineEvent::TrackUnpublished {
                    participant_sid,
                    track_sid,
                }));
            }
            EngineEvent::TrackUnsubscribed { track_sid } => {
                self.end_remote(&track_sid);
                self.push(SessionEvent::Engine(EngineEvent::TrackUnsubscribed {
                    track_sid,
                }));
            }
            EngineEvent::TrackSubscribed(track) => self.on_subscribed(track),
            other => self.push(SessionEvent::Engine(other)),
        }
    }

    fn on_connected(&mut self) {
        self.connected = true;
        self.connected_once = true;
        if self.attempt > 0 {
            self.shared.rejoins.fetch_add(1, Ordering::Relaxed);
        }
        self.attempt = 0;
        self.set_state(SessionState::Connected);
        // Tracks the app published on the old engine while we rejoined get published by the
        // next pass; warn if any are left behind.
        let stale = lock(&self.shared.published)
            .iter()
            .filter(|s| !s.is_unpublished() && s.epoch() < self.epoch)
            .count();
        if stale > 0 {
            warn!("{stale} tracks were published on the old engine during the rejoin");
        }
    }

    fn end_remote(&mut self, track_sid: &str) {
        let subscribed = lock(&self.shared.subscribed);
        for slot in subscribed.values().filter_map(Weak::upgrade) {
            if slot.sid() == track_sid {
                slot.end();
            }
        }
    }

    fn on_subscribed(&mut self, track: wavecast_rtc::RemoteTrack) {
        let (mut identity, mut name) = (
            track.participant_identity().to_owned(),
            track.name().to_owned(),
        );
        if let Some((i, n)) = self.track_names.get(track.sid()) {
            if identity.is_empty() {
                identity = i.clone();
            }
            if name.is_empty() {
                name = n.clone();
            }
        }
        if identity.is_empty() {
            identity = self
                .identities
                .get(track.participant_sid())
                .cloned()
                .unwrap_or_default();
        }
        if identity.is_empty() || name.is_empty() {
            // Unnamed yet: key by sids (such a handle cannot follow a rejoin).
            debug!("track {} subscribed before it was named", track.sid());
            if identity.is_empty() {
                identity = track.participant_sid().to_owned();
            }
            if name.is_empty() {
                name = track.sid().to_owned();
            }
        }
        let key = TrackKey {
            identity,
            name,
            kind: track.kind(),
        };
        let sid = track.sid().to_owned();
        let existing = lock(&self.shared.subscribed)
            .get(&key)
            .and_then(Weak::upgrade)
            .filter(|s| !s.is_ended());
        match existing {
            Some(slot) => {
                info!("session: {key} flows again as {sid}");
                slot.rebind(track);
                self.push(SessionEvent::TrackResubscribed {
                    key,
                    track_sid: sid,
                });
            }
            None => {
                let slot = RemoteSlot::new(key.clone(), sid);
                let mut subscribed = lock(&self.shared.subscribed);
                subscribed.retain(|_, w| w.strong_count() > 0);
                subscribed.insert(key, Arc::downgrade(&slot));
                drop(subscribed);
                self.push(SessionEvent::TrackSubscribed(SubscribedTrack::new(
                    slot, track,
                )));
            }
        }
    }

    /// Take the current engine out of service: unbind our tracks and stop it.
    async fn drop_engine(&mut self) {
        self.connected = false;
        self.transports = (false, false);
        let engine = lock(&self.shared.engine).take();
        for slot in lock(&self.shared.published).iter() {
            slot.unbind();
        }
        if let Some((_, engine)) = engine {
            shutdown_engine(engine, self.shared.options.close_grace).await;
        }
    }

    /// Full rejoins with backoff until one joins (Ok) or the session must end (Err).
    async fn rejoin(&mut self, why: String) -> Result<(), EndReason> {
        let policy = self.shared.options.reconnect.clone();
        let url = self.shared.options.url.clone();
        let mut last_error = why;
        loop {
            if self.attempt >= policy.max_attempts {
                return Err(EndReason::GaveUp {
                    attempts: self.attempt,
                    last_error,
                });
            }
            self.attempt += 1;
            let attempt = self.attempt;
            self.set_state(SessionState::Reconnecting { attempt });
            let delay = policy.delay(attempt, unit_random());
            debug!("rejoin attempt {attempt} in {delay:?}");
            if self
                .wait_or_cancel(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                return Err(EndReason::Closed);
            }
            self.shared.join_attempts.fetch_add(1, Ordering::Relaxed);
            let token = match self.shared.options.credentials.token_now() {
                Ok(t) => t,
                Err(e) => {
                    return Err(EndReason::Fatal {
                        error: error_chain(&e),
                    });
                }
            };
            let engine_options = self.shared.options.engine.clone();
            let connected = self
                .wait_or_cancel(Engine::connect(&url, &token, engine_options))
                .await;
            let (engine, events) = match connected {
                None => return Err(EndReason::Closed),
                Some(Err(e)) => {
                    let e = SessionError::from_connect(&url, e);
                    if !e.is_retryable() {
                        return Err(match e {
                            SessionError::Unauthorized {
                                status, message, ..
                            } => EndReason::Refused { status, message },
                            other => EndReason::Fatal {
                                error: error_chain(&other),
                            },
                        });
                    }
                    last_error = error_chain(&e);
                    info!("rejoin attempt {attempt} failed: {last_error}");
                    continue;
                }
                Some(Ok(pair)) => pair,
            };
            self.epoch += 1;
            let engine = Arc::new(engine);
            match self.republish(&engine).await {
                None => {
                    shutdown_engine(engine, self.shared.options.close_grace).await;
                    return Err(EndReason::Closed);
                }
                Some(Err(e)) => {
                    last_error = error_chain(&e);
                    warn!("rejoin attempt {attempt}: re-publishing failed: {last_error}");
                    shutdown_engine(engine, self.shared.options.close_grace).await;
                    continue;
                }
                Some(Ok(n)) => info!("rejoined; re-published {n} tracks"),
            }
            *lock(&self.shared.engine) = Some((self.epoch, engine));
            self.events = events;
            self.since = Instant::now();
            self.identities.clear();
            self.track_names.clear();
            return Ok(());
        }
    }

    /// Publish every live track of the session on `engine` and rebind its handles. `None` when
    /// cancelled.
    async fn republish(&self, engine: &Engine) -> Option<Result<usize, SessionError>> {
        let slots: Vec<Arc<LocalSlot>> = lock(&self.shared.published)
            .iter()
            .filter(|s| !s.is_unpublished() && s.epoch() < self.epoch)
            .cloned()
            .collect();
        let mut n = 0;
        for slot in slots {
            let options = lock(&slot.options).clone();
            let name = options.name.clone();
            match self.wait_or_cancel(engine.publish_track(options)).await? {
                Ok(track) => {
                    slot.rebind(track, self.epoch);
                    n += 1;
                }
                Err(source) => {
                    return Some(Err(SessionError::Engine {
                        operation: format!("re-publish track {name:?}"),
                        source,
                    }));
                }
            }
        }
        Some(Ok(n))
    }

    async fn wait_or_cancel<F: std::future::Future>(&self, f: F) -> Option<F::Output> {
        tokio::select! {
            _ = self.shared.cancel.cancelled() => None,
            out = f => Some(out),
        }
    }

    async fn finish(mut self, end: EndReason) {
        let engine = lock(&self.shared.engine).take();
        if let Some((_, engine)) = engine {
            shutdown_engine(engine, self.shared.options.close_grace).await;
        }
        for slot in lock(&self.shared.published).iter() {
            slot.mark_unpublished();
        }
        for slot in lock(&self.shared.subscribed)
            .values()
            .filter_map(Weak::upgrade)
        {
            slot.end();
        }
        self.set_state(SessionState::Disconnected { reason: end });
        // Best effort: hand the reader what is left, without waiting.
        while let Some(ev) = self.backlog.pop_front() {
            if self.out.try_send(ev).is_err() {
                self.shared
                    .dropped_events
                    .fetch_add(1 + self.backlog.len() as u64, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// The engine's reason, in words.
fn describe(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::ClientInitiated => "the engine was closed".into(),
        DisconnectReason::ServerLeave { reason, .. } => {
            format!("the server asked us to reconnect ({reason})")
        }
        DisconnectReason::SignalClosed(why) => format!("the signal connection closed ({why})"),
        DisconnectReason::TransportFailed(role) => format!("the {role} connection failed"),
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor(capacity: usize) -> (Supervisor, SessionEvents) {
        let options = SessionOptions::new("ws://127.0.0.1:1", Credentials::token("t"));
        let shared = Arc::new(Shared {
            options,
            engine: Mutex::new(None),
            published: Mutex::new(Vec::new()),
            subscribed: Mutex::new(HashMap::new()),
            state: watch::Sender::new(SessionState::Connecting),
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            join_attempts: AtomicU64::new(1),
            rejoins: AtomicU64::new(0),
            dropped_events: AtomicU64::new(0),
        });
        let (out, rx) = mpsc::channel(capacity);
        let (_engine_tx, events) = mpsc::channel(1);
        let sup = Supervisor {
            shared,
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
        (sup, rx)
    }

    /// Periodic updates are dropped (and counted) when the reader is behind; everything else
    /// waits in the backlog, in order, behind which droppable updates are dropped too.
    #[test]
    fn drop_policy_keeps_must_deliver_events_in_order() {
        let (mut sup, mut rx) = supervisor(2);
        sup.push(SessionEvent::Engine(EngineEvent::ActiveSpeakers(vec![])));
        sup.set_state(SessionState::Connected);
        // Full now: a speaker update is dropped, state changes queue up.
        sup.push(SessionEvent::Engine(EngineEvent::ActiveSpeakers(vec![])));
        sup.set_state(SessionState::Reconnecting { attempt: 1 });
        sup.set_state(SessionState::Reconnecting { attempt: 2 });
        sup.push(SessionEvent::Engine(EngineEvent::ConnectionQuality(vec![])));
        assert_eq!(sup.backlog.len(), 2);
        assert_eq!(sup.shared.dropped_events.load(Ordering::Relaxed), 2);
        assert!(matches!(
            rx.try_recv(),
            Ok(SessionEvent::Engine(EngineEvent::ActiveSpeakers(_)))
        ));
        assert!(matches!(
            rx.try_recv(),
            Ok(SessionEvent::State(SessionState::Connected))
        ));
        // The backlog drains in order once the reader made room.
        while let Some(ev) = sup.backlog.pop_front() {
            sup.out.try_send(ev).expect("room");
        }
        assert!(matches!(
            rx.try_recv(),
            Ok(SessionEvent::State(SessionState::Reconnecting {
                attempt: 1
            }))
        ));
        assert!(matches!(
            rx.try_recv(),
            Ok(SessionEvent::State(SessionState::Reconnecting {
                attempt: 2
            }))
        ));
        assert_eq!(
            *sup.shared.state.borrow(),
            SessionState::Reconnecting { attempt: 2 }
        );
    }

    #[test]
    fn unit_random_is_in_range() {
        for _ in 0..1000 {
            let r = unit_random();
            assert!((0.0..1.0).contains(&r), "{r}");
        }
    }

    #[test]
    fn token_credentials_are_redacted() {
        let c = Credentials::token("eyJ.secretpart.sig");
        assert!(!format!("{c:?}").contains("secretpart"));
        let c = Credentials::mint(Keys::new("devkey", "hunter2"), "a", "r", Preset::Viewer);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.token_now().is_ok());
    }

    #[test]
    fn minting_errors_name_identity_and_room() {
        let c = Credentials::mint(Keys::new("", ""), "alice", "demo", Preset::Viewer);
        let e = c.token_now().unwrap_err();
        assert!(!e.is_retryable());
        assert!(
            e.to_string().contains("alice") && e.to_string().contains("demo"),
            "{e}"
        );
    }

    #[test]
    fn states_read_well() {
        let s = SessionState::Disconnected {
            reason: EndReason::GaveUp {
                attempts: 3,
                last_error: "cannot reach LiveKit at ws://x".into(),
            },
        };
        assert_eq!(
            s.to_string(),
            "disconnected: gave up after 3 rejoin attempts; last error: cannot reach LiveKit at ws://x"
        );
        assert_eq!(
            SessionState::Reconnecting { attempt: 2 }.to_string(),
            "reconnecting (attempt 2)"
        );
    }
}
