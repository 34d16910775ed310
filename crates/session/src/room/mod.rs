//! A LiveKit room, the way the official SDKs present it: [`Room`], [`RoomEvent`], a roster of
//! [`RemoteParticipant`]s with their [`RemoteTrackPublication`]s, and explicit subscriptions.
//!
//! A [`Room`] is a [`Session`] (which keeps the connection: rejoins with backoff, re-publishes
//! our tracks, hands new subscriptions to the handles the app holds) plus a task that keeps the
//! roster and turns what the session reports into room events.
//!
//! ```no_run
//! # async fn demo(url: &str, token: &str) -> Result<(), wavecast_session::SessionError> {
//! use wavecast_session::{Room, RoomEvent, RoomOptions, TrackFilter};
//!
//! let (room, mut events) = Room::connect(url, token, RoomOptions::default()).await?;
//! for p in room.remote_participants() {
//!     println!("{} publishes {} tracks", p.identity(), p.track_publications().len());
//! }
//! let mut audio = events.next_track(&TrackFilter::audio()).await.expect("an audio track");
//! while let Some(frame) = audio.recv().await {
//!     println!("{}: {} bytes", audio.key(), frame.data.len());
//! }
//! room.close().await;
//! # Ok(()) }
//! ```

pub(crate) mod data_stream;
mod events;
mod local;
mod participant;
mod roster;
pub(crate) mod rpc;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};

use crate::session::{
    Credentials, E2eeOptions, E2eeStats, EngineEvent, Session, SessionError, SessionEvent,
    SessionEvents, SessionOptions, SessionState, lock,
};
use roster::Roster;
use wavecast_config::ReconnectPolicy;
use wavecast_rtc::data_message::DecryptedData;
use wavecast_rtc::{
    ClientProtocol, DataMessage, IceTransport, MediaTransport, Quality, TrackSettings, VideoQuality,
};

pub use data_stream::{
    ByteStreamHandler, ByteStreamInfo, ByteStreamReader, ByteStreamWriter, DataStreamLimits,
    DataStreamStats, STREAM_CHUNK_SIZE, StreamByteOptions, StreamError, StreamLimit,
    StreamProgress, StreamTextOptions, TOPIC_CHAT, TOPIC_TRANSCRIPTION, TextStreamHandler,
    TextStreamInfo, TextStreamReader, TextStreamWriter,
};
pub use events::{
    ActiveSpeaker, ConnectionState, DataPacketKind, DisconnectReason, RoomEvent, RoomEvents,
    TrackFilter,
};
pub use local::LocalParticipant;
pub use participant::Participant;
pub use roster::{RemoteParticipant, RemoteTrackPublication};
pub use rpc::{
    DEFAULT_MAX_ROUND_TRIP_LATENCY, MAX_REQUESTS_IN_PROGRESS, MAX_RPC_PAYLOAD_BYTES,
    PerformRpcData, RpcError, RpcErrorCode, RpcInvocationData,
};

/// How to join a room.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RoomOptions {
    /// Subscribe to every track as it is published (the SDKs' default). Off: nothing is received
    /// until [`Room::subscribe`].
    pub auto_subscribe: bool,
    /// Backoff and attempts, for the first join as for rejoins.
    pub reconnect: ReconnectPolicy,
    /// How many events queue for the app before periodic ones are dropped (see [`RoomEvents`]).
    pub event_capacity: usize,
    /// How long the media connections may take to come up after a join.
    pub transport_timeout: Duration,
    /// How long one join (signal connection and join answer) may take.
    pub connect_timeout: Duration,
    /// Bounds on incoming data streams.
    pub data_stream_limits: DataStreamLimits,
    /// End-to-end encryption keys (none: nothing is encrypted, encrypted tracks are withheld
    /// unless their reader asks for the encrypted frames).
    pub e2ee: Option<E2eeOptions>,
    /// How the media connections reach the server (default: UDP, with ICE over TCP as the
    /// fallback when UDP does not connect within 2 s).
    pub ice_transport: IceTransport,
    /// The data-plane protocol we advertise (default: the newest, what the current SDKs speak).
    /// Other participants send us streams and RPC the way it says; we send them theirs.
    pub client_protocol: ClientProtocol,
}

impl Default for RoomOptions {
    fn default() -> Self {
        Self {
            auto_subscribe: true,
            reconnect: ReconnectPolicy::default(),
            event_capacity: 256,
            transport_timeout: Duration::from_secs(10),
            connect_timeout: crate::session::EngineOptions::default().connect_timeout,
            data_stream_limits: DataStreamLimits::default(),
            e2ee: None,
            client_protocol: ClientProtocol::default(),
            ice_transport: IceTransport::default(),
        }
    }
}

impl RoomOptions {
    /// Turn auto-subscribe on or off.
    pub fn auto_subscribe(mut self, on: bool) -> Self {
        self.auto_subscribe = on;
        self
    }

    /// Set the reconnect policy.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Set the event capacity.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Set how long the media connections may take to come up after a join.
    pub fn transport_timeout(mut self, timeout: Duration) -> Self {
        self.transport_timeout = timeout;
        self
    }

    /// Set how long one join (signal connection and join answer) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Set the bounds on incoming data streams.
    pub fn data_stream_limits(mut self, limits: DataStreamLimits) -> Self {
        self.data_stream_limits = limits;
        self
    }

    /// Encrypt end to end with these keys: our tracks are published encrypted (AES-GCM, as
    /// livekit-client and the SDKs do it) and encrypted tracks are decrypted.
    pub fn e2ee(mut self, options: E2eeOptions) -> Self {
        self.e2ee = Some(options);
        self
    }

    /// Set the data-plane protocol we advertise (an older one only to talk to peers as an older
    /// SDK would, e.g. in tests).
    pub fn client_protocol(mut self, protocol: ClientProtocol) -> Self {
        self.client_protocol = protocol;
        self
    }

    /// Set how the media connections reach the server: [`IceTransport::Tcp`] where UDP is
    /// blocked, [`IceTransport::Udp`] to never try TCP.
    pub fn ice_transport(mut self, transport: IceTransport) -> Self {
        self.ice_transport = transport;
        self
    }

    /// The session options these make, for `url` and `credentials`.
    pub fn session_options(&self, url: &str, credentials: Credentials) -> SessionOptions {
        let mut s = SessionOptions::new(url, credentials)
            .reconnect(self.reconnect.clone())
            .transport_timeout(self.transport_timeout)
            .event_capacity(self.event_capacity);
        s.engine.auto_subscribe = self.auto_subscribe;
        s.engine.connect_timeout = self.connect_timeout;
        s.e2ee = self.e2ee.clone();
        s.engine.client_protocol = self.client_protocol;
        s.engine.ice_transport = self.ice_transport;
        s
    }
}

/// A first join that failed in a way a retry can fix, reported to the observer of
/// [`Room::connect_observed`] before the room waits `delay` and tries again.
#[derive(Debug)]
#[non_exhaustive]
pub struct JoinRetry<'a> {
    /// The failed attempt (1-based).
    pub attempt: u32,
    /// Retries the policy allows after the first attempt.
    pub max_retries: u32,
    /// The wait before the next attempt.
    pub delay: Duration,
    /// Why the attempt failed (with its causes).
    pub error: &'a SessionError,
}

/// Counters of a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomStats {
    /// Joins attempted by [`Room::connect`] before the first one held.
    pub first_join_attempts: u32,
    /// Rejoins that reached Connected after the connection was lost.
    pub rejoins: u64,
    /// Droppable events dropped because the app was behind (see [`RoomEvents`]).
    pub dropped_events: u64,
    /// Events the connection underneath dropped before the room saw them (its own drop policy:
    /// only periodic ones, when the room's task was behind).
    pub session_dropped_events: u64,
    /// The most events that waited for the app at once.
    pub queue_peak: u64,
    /// RTP repair and loss counters of the media connections (NACKs, PLIs each way).
    pub rtp: wavecast_rtc::RtpStats,
    /// End-to-end encryption: frames encrypted, decrypted, refused.
    pub e2ee: E2eeStats,
    /// What media flows over now: UDP, ICE over TCP (see [`RoomOptions::ice_transport`]), or
    /// nothing yet.
    pub transport: MediaTransport,
}

pub(crate) struct RoomShared {
    roster: Mutex<Roster>,
    /// Incoming data streams and their handlers.
    streams: Mutex<data_stream::Streams>,
    auto_subscribe: bool,
    /// The room's metadata now.
    metadata: Mutex<String>,
    /// Our own connection quality as the server last reported it.
    local_quality: Mutex<Option<Quality>>,
}

/// A joined LiveKit room: see the [crate docs](crate).
///
/// Dropping it leaves without a leave message (its tasks are aborted); call [`Room::close`].
pub struct Room {
    session: Arc<Session>,
    local: LocalParticipant,
    shared: Arc<RoomShared>,
    queue: Arc<events::Queue>,
    first_join_attempts: u32,
    _task: AbortOnDropHandle<()>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Room {
    /// Join the room `token` grants at `url` and wait until media can flow.
    ///
    /// A join that fails in a way a retry can fix (server unreachable, media connections not up
    /// in time) is retried per [`RoomOptions::reconnect`]; a refused token or a bad URL fails
    /// at once. Must be called inside a tokio runtime.
    pub async fn connect(
        url: &str,
        token: &str,
        options: RoomOptions,
    ) -> Result<(Room, RoomEvents), SessionError> {
        Self::connect_observed(url, Credentials::token(token), options, |_| {}).await
    }

    /// Join with `credentials` (a token, or a key and secret that mint a fresh token for every
    /// join), telling `on_retry` about every failed first-join attempt that will be retried
    /// (to show progress: "cannot reach the server, retrying in 2 s"). Retries follow
    /// [`RoomOptions::reconnect`], as in [`Room::connect`]; the error returned is the last
    /// attempt's.
    pub async fn connect_observed(
        url: &str,
        credentials: Credentials,
        options: RoomOptions,
        on_retry: impl FnMut(&JoinRetry<'_>) + Send,
    ) -> Result<(Room, RoomEvents), SessionError> {
        let session = options.session_options(url, credentials);
        Self::join(session, options, on_retry).await
    }

    /// Join with `credentials`: a token, or a key and secret ([`Credentials::Mint`]) that mint
    /// a fresh token for every join, so a rejoin after a long outage never presents an expired
    /// one.
    pub async fn connect_with(
        url: &str,
        credentials: Credentials,
        options: RoomOptions,
    ) -> Result<(Room, RoomEvents), SessionError> {
        Self::connect_observed(url, credentials, options, |_| {}).await
    }

    /// The first join, retried per `options.reconnect`, then the room around the session.
    async fn join(
        session_options: SessionOptions,
        options: RoomOptions,
        mut on_retry: impl FnMut(&JoinRetry<'_>) + Send,
    ) -> Result<(Room, RoomEvents), SessionError> {
        let policy = options.reconnect.clone();
        let mut attempt = 0u32;
        let (session, session_events) = loop {
            attempt += 1;
            match Session::connect(session_options.clone()).await {
                Ok(pair) => break pair,
                Err(e) if e.is_retryable() && attempt <= policy.max_attempts => {
                    let delay = policy.delay(attempt, crate::session::unit_random());
                    info!("join attempt {attempt} failed ({e}); retrying in {delay:?}");
                    on_retry(&JoinRetry {
                        attempt,
                        max_retries: policy.max_attempts,
                        delay,
                        error: &e,
                    });
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        };
        let queue = events::Queue::new(options.event_capacity);
        let mut roster = Roster::default();
        let mut metadata = String::new();
        if let Some(j) = session.join_info() {
            roster.local_sid = j.local.sid.clone();
            metadata = j.room_metadata;
        }
        let shared = Arc::new(RoomShared {
            roster: Mutex::new(roster),
            streams: Mutex::new(data_stream::Streams::new(options.data_stream_limits)),
            auto_subscribe: options.auto_subscribe,
            metadata: Mutex::new(metadata),
            local_quality: Mutex::new(None),
        });
        let session = Arc::new(session);
        let rpc = Arc::new(rpc::Rpc::default());
        serve_rpc_streams(&shared, &session, &rpc);
        let local =
            LocalParticipant::new(session.clone(), queue.clone(), shared.clone(), rpc.clone());
        let task = tokio::spawn(run(
            session.clone(),
            session_events,
            shared.clone(),
            queue.clone(),
            local.clone(),
            rpc,
        ));
        // The session reports the room it joined (participants, tracks) as events; apply
        // those before handing the room out, so the roster is complete from the start.
        let room = Room {
            session,
            local,
            shared,
            queue: queue.clone(),
            first_join_attempts: attempt,
            _task: AbortOnDropHandle::new(task),
        };
        room.settle().await;
        Ok((room, RoomEvents { queue }))
    }

    /// Wait (briefly) until the task applied the join's initial participant reports.
    async fn settle(&self) {
        let Some(join) = self.session.join_info() else {
            return;
        };
        let want: Vec<String> = join
            .participants
            .iter()
            .map(|p| p.identity.clone())
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            let complete = {
                let roster = lock(&self.shared.roster);
                want.iter().all(|i| roster.participant(i).is_some())
            };
            if complete {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The room's name (`None` while rejoining).
    pub fn name(&self) -> Option<String> {
        self.session.join_info().map(|j| j.room)
    }

    /// Ourselves: publish, mute, send data.
    pub fn local_participant(&self) -> &LocalParticipant {
        &self.local
    }

    /// The room's metadata now.
    pub fn metadata(&self) -> String {
        lock(&self.shared.metadata).clone()
    }

    /// The connection state now.
    pub fn connection_state(&self) -> ConnectionState {
        connection_state(&self.session.state())
    }

    /// Everyone else in the room now, by identity, with their publications.
    pub fn remote_participants(&self) -> Vec<RemoteParticipant> {
        lock(&self.shared.roster).participants()
    }

    /// One remote participant by identity.
    pub fn remote_participant(&self, identity: &str) -> Option<RemoteParticipant> {
        lock(&self.shared.roster).participant(identity)
    }

    /// Receive a publication (needed when auto-subscribe is off). The track arrives as
    /// [`RoomEvent::TrackSubscribed`]. The wish is kept across rejoins.
    pub async fn subscribe(
        &self,
        publication: &RemoteTrackPublication,
    ) -> Result<(), SessionError> {
        self.set_subscribed(publication, true).await
    }

    /// Stop receiving a publication: its handle ends and [`RoomEvent::TrackUnsubscribed`]
    /// follows. The wish is kept across rejoins.
    pub async fn unsubscribe(
        &self,
        publication: &RemoteTrackPublication,
    ) -> Result<(), SessionError> {
        self.set_subscribed(publication, false).await
    }

    /// Subscribe or unsubscribe (the SDKs' `set_subscribed`).
    pub async fn set_subscribed(
        &self,
        publication: &RemoteTrackPublication,
        subscribed: bool,
    ) -> Result<(), SessionError> {
        let participant_sid = {
            let mut roster = lock(&self.shared.roster);
            roster.set_wanted(publication.sid(), subscribed);
            roster
                .find_track(publication.sid())
                .map(|(p, _)| p.sid())
                .unwrap_or_else(|| publication.participant_sid())
        };
        self.session
            .set_subscribed(&participant_sid, publication.sid(), subscribed)
            .await
    }

    /// Pause (`false`) or resume the server's forwarding of a subscribed publication without
    /// unsubscribing (the SDKs' `set_enabled`).
    pub async fn set_enabled(
        &self,
        publication: &RemoteTrackPublication,
        enabled: bool,
    ) -> Result<(), SessionError> {
        let settings = TrackSettings {
            enabled,
            ..publication.settings()
        };
        self.update_track_settings(publication, settings).await
    }

    /// Receive this simulcast layer of a video publication (the server switches at its next
    /// keyframe). Kept across rejoins.
    pub async fn set_video_quality(
        &self,
        publication: &RemoteTrackPublication,
        quality: VideoQuality,
    ) -> Result<(), SessionError> {
        let settings = TrackSettings {
            quality,
            width: 0,
            height: 0,
            ..publication.settings()
        };
        self.update_track_settings(publication, settings).await
    }

    /// Receive the layer that suits a picture shown at `width`×`height` pixels (the smallest
    /// layer at least that large: what the SDKs' adaptive stream asks for a video element).
    /// Kept across rejoins.
    pub async fn set_video_dimensions(
        &self,
        publication: &RemoteTrackPublication,
        width: u32,
        height: u32,
    ) -> Result<(), SessionError> {
        let settings = TrackSettings {
            width,
            height,
            ..publication.settings()
        };
        self.update_track_settings(publication, settings).await
    }

    /// How the server forwards a subscribed publication: enabled, which layer (by quality or
    /// by the size it is shown at), at most how many frames a second (LiveKit's
    /// `UpdateTrackSettings`). Kept across rejoins.
    pub async fn update_track_settings(
        &self,
        publication: &RemoteTrackPublication,
        settings: TrackSettings,
    ) -> Result<(), SessionError> {
        lock(&self.shared.roster).set_settings(publication.sid(), settings);
        self.session
            .set_track_settings(publication.sid(), settings)
            .await
    }

    /// Hand every incoming text stream on `topic` to `handler` (with the sender's identity).
    /// The handler runs on the room's task: give the reader to a task of your own. Fails when
    /// a handler for the topic exists already. Streams with no handler are ignored (counted in
    /// [`DataStreamStats::unhandled`]).
    ///
    /// ```no_run
    /// # fn demo(room: &wavecast_session::Room) -> Result<(), wavecast_session::StreamError> {
    /// room.register_text_stream_handler(wavecast_session::TOPIC_CHAT, |reader, from| {
    ///     tokio::spawn(async move {
    ///         if let Ok(text) = reader.read_all().await {
    ///             println!("{from}: {text}");
    ///         }
    ///     });
    /// })
    /// # }
    /// ```
    pub fn register_text_stream_handler(
        &self,
        topic: &str,
        handler: impl Fn(TextStreamReader, crate::ParticipantIdentity) + Send + Sync + 'static,
    ) -> Result<(), StreamError> {
        lock(&self.shared.streams).register_text(topic, Arc::new(handler))
    }

    /// Hand every incoming byte stream on `topic` to `handler` (see
    /// [`Room::register_text_stream_handler`]).
    pub fn register_byte_stream_handler(
        &self,
        topic: &str,
        handler: impl Fn(ByteStreamReader, crate::ParticipantIdentity) + Send + Sync + 'static,
    ) -> Result<(), StreamError> {
        lock(&self.shared.streams).register_bytes(topic, Arc::new(handler))
    }

    /// Stop handling text streams on `topic`.
    pub fn unregister_text_stream_handler(&self, topic: &str) {
        if [rpc::TOPIC_RPC_REQUEST, rpc::TOPIC_RPC_RESPONSE].contains(&topic) {
            return; // the room's own (RPC)
        }
        lock(&self.shared.streams).unregister_text(topic);
    }

    /// Stop handling byte streams on `topic`.
    pub fn unregister_byte_stream_handler(&self, topic: &str) {
        lock(&self.shared.streams).unregister_bytes(topic);
    }

    /// Counters of incoming data streams (and the bytes waiting unread).
    pub fn data_stream_stats(&self) -> DataStreamStats {
        lock(&self.shared.streams).stats()
    }

    /// Counters.
    pub fn stats(&self) -> RoomStats {
        let session = self.session.stats();
        RoomStats {
            first_join_attempts: self.first_join_attempts,
            rejoins: session.rejoins,
            session_dropped_events: session.dropped_events,
            dropped_events: self.queue.dropped(),
            queue_peak: self.queue.peak(),
            rtp: session.rtp,
            e2ee: self.session.e2ee_stats(),
            transport: session.transport,
        }
    }

    /// Leave the room and wait for its tasks. Idempotent. [`RoomEvent::Disconnected`] is the
    /// last event.
    pub async fn close(&self) {
        self.session.close().await;
    }
}

fn connection_state(s: &SessionState) -> ConnectionState {
    match s {
        SessionState::Connecting => ConnectionState::Connecting,
        SessionState::Connected => ConnectionState::Connected,
        SessionState::Reconnecting { attempt } => {
            ConnectionState::Reconnecting { attempt: *attempt }
        }
        SessionState::Disconnected { .. } => ConnectionState::Disconnected,
    }
}

/// The client protocol of the participant `identity` (the oldest when unknown).
pub(crate) fn remote_protocol(shared: &RoomShared, identity: &str) -> ClientProtocol {
    lock(&shared.roster)
        .participant(identity)
        .map_or(ClientProtocol::Legacy, |p| p.client_protocol())
}

/// Whether every recipient of a stream to `destinations` (empty: everyone in the room) reads
/// single-packet streams (data streams v2). An empty room counts as yes, as in the SDKs.
pub(crate) fn all_read_single_packets(
    shared: &RoomShared,
    destinations: &[crate::ParticipantIdentity],
) -> bool {
    let roster = lock(&shared.roster);
    let v2 = |p: Option<RemoteParticipant>| {
        p.is_some_and(|p| p.client_protocol() >= ClientProtocol::DataStreamV2)
    };
    if destinations.is_empty() {
        roster.participants().into_iter().all(|p| v2(Some(p)))
    } else {
        destinations.iter().all(|d| v2(roster.participant(d)))
    }
}

/// Take the RPC v2 topics: requests and responses that come as text streams go to `rpc`, each
/// on a task of its own. (The handlers hold the room weakly: they live in it.)
fn serve_rpc_streams(shared: &Arc<RoomShared>, session: &Arc<Session>, rpc: &Arc<rpc::Rpc>) {
    let mut streams = lock(&shared.streams);
    let (weak_shared, weak_session, serving) =
        (Arc::downgrade(shared), Arc::downgrade(session), rpc.clone());
    let requests: data_stream::TextStreamHandler = Arc::new(move |reader, caller| {
        let (Some(shared), Some(session)) = (weak_shared.upgrade(), weak_session.upgrade()) else {
            return;
        };
        let protocol = remote_protocol(&shared, &caller);
        tokio::spawn(
            serving
                .clone()
                .serve_stream(session, caller, reader, protocol),
        );
    });
    let calling = rpc.clone();
    let responses: data_stream::TextStreamHandler = Arc::new(move |reader, from| {
        let rpc = calling.clone();
        tokio::spawn(async move { rpc.on_response_stream(from, reader).await });
    });
    for (topic, handler) in [
        (rpc::TOPIC_RPC_REQUEST, requests),
        (rpc::TOPIC_RPC_RESPONSE, responses),
    ] {
        if let Err(e) = streams.register_text(topic, handler) {
            warn!("RPC over data streams: {e}");
        }
    }
}

/// The room's task: apply every session event to the roster, then queue what it means for the
/// app. Never waits for the app.
async fn run(
    session: Arc<Session>,
    mut events: SessionEvents,
    shared: Arc<RoomShared>,
    queue: Arc<events::Queue>,
    local: LocalParticipant,
    rpc: Arc<rpc::Rpc>,
) {
    let local_changed = |info: wavecast_rtc::Participant| {
        let before = local.replace_info(info.clone());
        roster::info_changes(&local.clone().into(), &before, &info)
    };
    let mut ended = false;
    // Idle data streams are dropped on this clock.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ev = tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            _ = tick.tick() => {
                let mut out = Vec::new();
                lock(&shared.streams).expire(std::time::Instant::now(), &mut out);
                for ev in out {
                    queue.push(ev);
                }
                continue;
            }
        };
        // End-to-end encrypted data (livekit-client's data channel encryption): opened with the
        // room's keys, then handled as the plain packet it carries; dropped (counted in
        // `RoomStats::e2ee`) when it does not open.
        let ev = match ev {
            SessionEvent::Engine(EngineEvent::EncryptedData {
                participant_identity,
                packet,
                reliable,
            }) => match session.open_data(&participant_identity, &packet) {
                Some(DecryptedData::User { topic, payload }) => {
                    SessionEvent::Engine(EngineEvent::DataReceived {
                        participant_identity,
                        topic,
                        payload,
                        reliable,
                    })
                }
                Some(DecryptedData::Message(message)) => {
                    SessionEvent::Engine(EngineEvent::DataMessage {
                        participant_identity,
                        message: Box::new(message),
                    })
                }
                _ => continue,
            },
            ev => ev,
        };
        let mut out: Vec<RoomEvent> = Vec::new();
        let mut opened: Vec<data_stream::Opened> = Vec::new();
        let mut resubscribe: Vec<(String, String, bool)> = Vec::new();
        // Forwarding settings the app changed, for a track subscribed again (after a rejoin
        // the new engine's server knows nothing of them).
        let mut resettle: Option<(String, TrackSettings)> = None;
        match ev {
            SessionEvent::State(state) => {
                let mut roster = lock(&shared.roster);
                match &state {
                    SessionState::Reconnecting { .. } => roster.begin_rejoin(),
                    SessionState::Connected => {
                        if let Some(j) = session.join_info() {
                            roster.local_sid = j.local.sid.clone();
                            // A rejoin starts from what the token says about us.
                            out.extend(local_changed(j.local));
                        }
                        out.extend(roster.end_rejoin());
                    }
                    _ => {}
                }
                drop(roster);
                out.push(RoomEvent::ConnectionStateChanged(connection_state(&state)));
                if let SessionState::Disconnected { reason } = &state {
                    out.push(RoomEvent::Disconnected {
                        reason: DisconnectReason::from_end(reason),
                    });
                    ended = true;
                }
            }
            SessionEvent::TrackSubscribed(track) => {
                let sid = track.sid();
                let known = lock(&shared.roster).track_subscribed(&sid);
                match known {
                    Some((participant, publication)) => out.push(RoomEvent::TrackSubscribed {
                        track,
                        publication,
                        participant,
                    }),
                    None => {
                        // Subscribed before its publication was announced (the engine names
                        // tracks from participant updates, which can come later): describe it
                        // from the handle.
                        debug!("track {sid} subscribed before it was announced");
                        let key = track.key().clone();
                        let publication = RemoteTrackPublication::unannounced(
                            &sid,
                            &key.name,
                            key.kind,
                            &key.identity,
                        );
                        let participant = lock(&shared.roster)
                            .participant(&key.identity)
                            .unwrap_or_else(|| RemoteParticipant::unannounced(&key.identity));
                        out.push(RoomEvent::TrackSubscribed {
                            track,
                            publication,
                            participant,
                        });
                    }
                }
            }
            SessionEvent::TrackResubscribed { track_sid, .. } => {
                // The app's handle flows again: no new event (the handle is the same).
                if let Some((_, publication)) = lock(&shared.roster).track_subscribed(&track_sid)
                    && publication.settings() != TrackSettings::default()
                {
                    resettle = Some((track_sid.to_string(), publication.settings()));
                }
            }
            SessionEvent::E2eeStateChanged {
                key,
                track_sid,
                state,
            } => out.push(RoomEvent::E2eeStateChanged {
                participant_identity: key.identity.into(),
                track_sid: track_sid.into(),
                track_name: key.name,
                state,
            }),
            SessionEvent::Engine(ev) => {
                let mut roster = lock(&shared.roster);
                match ev {
                    EngineEvent::ParticipantJoined(p) | EngineEvent::ParticipantUpdated(p) => {
                        out.extend(roster.participant_joined(&p));
                    }
                    EngineEvent::ParticipantLeft(p) => {
                        lock(&shared.streams).participant_left(&p.identity);
                        rpc.participant_left(&p.identity);
                        out.extend(roster.participant_left(&p.identity))
                    }
                    EngineEvent::DataMessage {
                        participant_identity,
                        message,
                    } => {
                        let from = crate::ParticipantIdentity::from(participant_identity);
                        match *message {
                            DataMessage::RpcRequest(r) => {
                                let protocol = roster
                                    .participant(&from)
                                    .map_or(ClientProtocol::Legacy, |p| p.client_protocol());
                                tokio::spawn(rpc.clone().serve(session.clone(), from, r, protocol));
                            }
                            DataMessage::RpcAck(a) => rpc.on_ack(a),
                            DataMessage::RpcResponse(r) => rpc.on_response(r),
                            m => {
                                let now = std::time::Instant::now();
                                if let Some(o) =
                                    lock(&shared.streams).on_message(now, &from, m, &mut out)
                                {
                                    opened.push(o);
                                }
                            }
                        }
                    }
                    EngineEvent::TrackPublished { participant, track } => {
                        out.extend(roster.track_published(&participant, &track));
                        // After a rejoin the new engine knows nothing of what the app asked:
                        // ask again where it differs from auto-subscribe.
                        if let Some((p, t)) = roster.find_track(&track.sid)
                            && let Some(wanted) = t.wanted()
                            && wanted != shared.auto_subscribe
                        {
                            resubscribe.push((p.sid().into_string(), t.sid().to_string(), wanted));
                        }
                    }
                    EngineEvent::TrackUnpublished { track_sid, .. } => {
                        out.extend(roster.track_unpublished(&track_sid));
                    }
                    EngineEvent::TrackUnsubscribed { track_sid } => {
                        out.extend(roster.track_unsubscribed(&track_sid));
                    }
                    EngineEvent::TrackMuted {
                        track_sid, muted, ..
                    } => out.extend(roster.track_muted(&track_sid, muted)),
                    EngineEvent::ActiveSpeakers(list) => {
                        let me = session
                            .join_info()
                            .map(|j| j.local.identity)
                            .unwrap_or_default();
                        out.push(roster.speakers(&list, &me));
                    }
                    EngineEvent::ConnectionQuality(list) => {
                        if let Some((_, q)) = list.iter().find(|(sid, _)| *sid == roster.local_sid)
                        {
                            *lock(&shared.local_quality) = Some(*q);
                        }
                        out.extend(roster.qualities(&list))
                    }
                    EngineEvent::LocalParticipantUpdated(p) => out.extend(local_changed(p)),
                    EngineEvent::DataReceived {
                        participant_identity,
                        topic,
                        payload,
                        reliable,
                    } => out.push(RoomEvent::DataReceived {
                        payload,
                        topic,
                        kind: if reliable {
                            DataPacketKind::Reliable
                        } else {
                            DataPacketKind::Lossy
                        },
                        participant: roster.participant(&participant_identity),
                        participant_identity: participant_identity.into(),
                    }),
                    EngineEvent::TrackSubscriptionFailed { track_sid, reason } => {
                        out.push(roster.track_subscription_failed(&track_sid, reason));
                    }
                    EngineEvent::RoomMetadataChanged { metadata } => {
                        let old_metadata =
                            std::mem::replace(&mut *lock(&shared.metadata), metadata.clone());
                        if old_metadata != metadata {
                            out.push(RoomEvent::RoomMetadataChanged {
                                old_metadata,
                                metadata,
                            });
                        }
                    }
                    _ => {} // transport details: the connection state covers them
                }
            }
        }
        for ev in out {
            queue.push(ev);
        }
        for o in opened {
            o.deliver();
        }
        if let Some((track_sid, settings)) = resettle
            && let Err(e) = session.set_track_settings(&track_sid, settings).await
        {
            warn!("re-applying the settings of {track_sid} after a rejoin: {e}");
        }
        for (participant_sid, track_sid, wanted) in resubscribe {
            if let Err(e) = session
                .set_subscribed(&participant_sid, &track_sid, wanted)
                .await
            {
                warn!("re-applying the subscription to {track_sid} after a rejoin: {e}");
            }
        }
        if ended {
            break;
        }
    }
    lock(&shared.streams).close_all();
    if !ended {
        queue.push(RoomEvent::Disconnected {
            reason: DisconnectReason::ClientInitiated,
        });
    }
    queue.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_and_their_events_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Room>();
        send::<RoomEvents>();
        send::<RoomEvent>();
    }

    #[test]
    fn room_options_set_the_session_options() {
        let o = RoomOptions::default()
            .auto_subscribe(false)
            .transport_timeout(Duration::from_secs(3));
        let s = o.session_options("ws://h", Credentials::token("t"));
        assert!(!s.engine.auto_subscribe);
        assert_eq!(s.transport_timeout, Duration::from_secs(3));
        assert_eq!(s.url, "ws://h");
    }
}
