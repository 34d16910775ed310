//! The engine: one task that owns the signal client and both peer connections.
//!
//! Everything protocol-related happens on that task, in response to one of: a datagram on either
//! socket, a signal message, a command from a handle, an encoded frame to send, or a str0m
//! deadline. Encoding and decoding never happen here.
//!
//! This file holds the public handle ([`Engine`]) and the task's state ([`Core`]); the task's
//! work is split by responsibility: [`driver`] (the I/O loop and event hand-off), [`signal`],
//! [`negotiation`], [`roster`], [`data`], [`routing`] (media in and out), [`commands`], and
//! [`connect`] (joining).

mod commands;
mod connect;
mod data;
mod driver;
mod liveness;
mod negotiation;
pub(crate) mod recovery;
mod resume;
mod roster;
mod routing;
pub(crate) mod rtp_stats;
mod signal;

use connect::{classify_connect_error, local_ip_towards};
pub use rtp_stats::RtpStats;
pub(crate) use rtp_stats::STATS_INTERVAL;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalError, SignalEvent, SignalEvents, SignalOptions};
use prost::Message as _;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::{Event, IceConnectionState};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, trace, warn};

use crate::error::{EngineError, PeerRole};
use crate::events::{DisconnectReason, EngineEvent, Participant, TrackInfo, TransportState};
use crate::peer::{Peer, RECV_BUF, candidate_init, parse_candidate_init};
use crate::sdp::{self, SectionKind};
use crate::track::{
    EncodedFrame, LocalShared, LocalTrack, MediaWrite, RemoteTrack, TrackKind, TrackOptions,
};

/// The signal protocol version this engine speaks (livekit-server v1.13's current).
pub const PROTOCOL_VERSION: u32 = 17;

/// Largest data packet payload we send (LiveKit's SDKs cap at 15 KiB for reliable data).
pub const MAX_DATA_PAYLOAD: usize = 15 * 1024;

/// Reliable data packets the engine queues while the SCTP send buffer is full.
const RELIABLE_BACKLOG: usize = 4096;

/// Engine settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineOptions {
    /// Subscribe to every track automatically.
    pub auto_subscribe: bool,
    /// Capacity of the event stream.
    pub event_capacity: usize,
    /// Capacity of each subscribed track's frame queue.
    pub track_capacity: usize,
    /// Capacity of the shared queue of encoded frames to send.
    pub media_capacity: usize,
    /// Timeout of the signal connection attempt.
    pub connect_timeout: Duration,
    /// How long `publish_track` waits for the server's confirmation.
    pub publish_timeout: Duration,
    /// How long a connected peer connection may go without receiving a single datagram (no
    /// media, no RTCP, no STUN keepalive) before the media path counts as dead while the
    /// signal is still up. The engine then resumes with an ICE restart (twice at most) and
    /// stops with [`DisconnectReason::TransportFailed`] when that brings nothing back (its
    /// owner then rejoins). Zero turns the check off.
    pub liveness_timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            auto_subscribe: true,
            event_capacity: 1024,
            track_capacity: 256,
            media_capacity: 512,
            connect_timeout: Duration::from_secs(5),
            publish_timeout: Duration::from_secs(10),
            liveness_timeout: Duration::from_secs(5),
        }
    }
}

/// How a data packet is sent.
#[derive(Debug, Clone, Default)]
pub struct DataOptions {
    /// Reliable (ordered, retransmitted) or lossy (unordered, no retransmits).
    pub reliable: bool,
    /// Optional topic.
    pub topic: Option<String>,
    /// Only these identities receive it (empty: everyone).
    pub destination_identities: Vec<String>,
}

impl DataOptions {
    /// Reliable delivery, no topic, to everyone.
    pub fn reliable() -> Self {
        Self {
            reliable: true,
            ..Self::default()
        }
    }

    /// Lossy delivery, no topic, to everyone.
    pub fn lossy() -> Self {
        Self::default()
    }

    /// Set the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }
}

/// What the server told us at join.
#[derive(Debug, Clone)]
pub struct JoinInfo {
    /// Ourselves.
    pub local: Participant,
    /// The room name.
    pub room: String,
    /// The room sid.
    pub room_sid: String,
    /// The room's metadata at join.
    pub room_metadata: String,
    /// Server version string.
    pub server_version: String,
    /// Whether the server treats the subscriber connection as primary.
    pub subscriber_primary: bool,
    /// Participants already in the room.
    pub participants: Vec<Participant>,
}

pub(crate) enum Command {
    Publish {
        options: TrackOptions,
        reply: oneshot::Sender<Result<LocalTrack, EngineError>>,
    },
    Unpublish {
        sid: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Mute {
        sid: String,
        muted: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Data {
        payload: Vec<u8>,
        options: DataOptions,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    RequestKeyframe {
        track_sid: String,
    },
    Subscribe {
        participant_sid: String,
        track_sid: String,
        subscribe: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    TrackSettings {
        track_sid: String,
        enabled: bool,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// A connected LiveKit participant: signal client plus publisher and subscriber connections.
///
/// Dropping the engine aborts its task (without a leave message); call [`Engine::close`] to
/// leave cleanly.
#[derive(Debug)]
pub struct Engine {
    commands: mpsc::Sender<Command>,
    join: JoinInfo,
    task: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

/// Counters the engine task updates.
#[derive(Debug, Default)]
struct Counters {
    dropped_events: AtomicU64,
    held_peak: AtomicU64,
    /// The newest token the server sent (`RefreshToken`), if any.
    refreshed_token: std::sync::Mutex<Option<String>>,
    /// NACK/PLI/packet totals from str0m's stats events.
    rtp: rtp_stats::RtpTotals,
}

/// How long the stopped engine task waits for the reader to take its last events.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The receiving end of the engine's event stream.
pub type EngineEvents = mpsc::Receiver<EngineEvent>;

impl Engine {
    /// Join a room: connect the signal client with `token` and set up both peer connections.
    ///
    /// Runs on the caller's tokio runtime (the engine spawns its task there). Returns once the
    /// server accepted the join; watch the events for `Transport { Connected }`.
    pub async fn connect(
        url: &str,
        token: &str,
        options: EngineOptions,
    ) -> Result<(Engine, EngineEvents), EngineError> {
        let mut sopts = SignalOptions::default();
        sopts.auto_subscribe = options.auto_subscribe;
        sopts.adaptive_stream = false;
        sopts.protocol_version = PROTOCOL_VERSION;
        sopts.client_capabilities = Vec::new();
        sopts.region_failover = false;
        sopts.single_peer_connection = false;
        sopts.connect_timeout = options.connect_timeout;
        sopts.sdk_options.sdk = "rust".into();

        let (signal, join, signal_events) = SignalClient::connect(url, token, sopts, None)
            .await
            .map_err(|source| classify_connect_error(url, token, source))?;
        info!(
            server = %join.server_version,
            subscriber_primary = join.subscriber_primary,
            "joined room {:?}",
            join.room.as_ref().map(|r| r.name.as_str()).unwrap_or("")
        );

        let ip = local_ip_towards(url).await;
        let now = Instant::now();
        let publisher = Peer::new(PeerRole::Publisher, ip, now).await?;
        let subscriber = Peer::new(PeerRole::Subscriber, ip, now).await?;

        let local = join
            .participant
            .as_ref()
            .map(Participant::from_proto)
            .unwrap_or_default();
        let info = JoinInfo {
            local: local.clone(),
            room: join
                .room
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            room_sid: join
                .room
                .as_ref()
                .map(|r| r.sid.clone())
                .unwrap_or_default(),
            room_metadata: join
                .room
                .as_ref()
                .map(|r| r.metadata.clone())
                .unwrap_or_default(),
            server_version: join.server_version.clone(),
            subscriber_primary: join.subscriber_primary,
            participants: join
                .other_participants
                .iter()
                .map(Participant::from_proto)
                .collect(),
        };

        let (event_tx, event_rx) = mpsc::channel(options.event_capacity.max(1));
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (media_tx, media_rx) = mpsc::channel(options.media_capacity.max(1));
        let counters = Arc::new(Counters::default());

        let mut core = Core {
            signal,
            options,
            events: event_tx,
            held: std::collections::VecDeque::new(),
            counters: counters.clone(),
            commands: cmd_tx.clone(),
            media_tx,
            publisher,
            subscriber,
            pub_pending: None,
            pub_changes: Vec::new(),
            pub_trickled: false,
            sub_trickled: false,
            reliable: None,
            lossy: None,
            sub_channels: HashMap::new(),
            reliable_seq: 0,
            reliable_backlog: std::collections::VecDeque::new(),
            lossy_drops: 0,
            pending_publish: HashMap::new(),
            local_tracks: HashMap::new(),
            remote: HashMap::new(),
            participants: HashMap::new(),
            local,
            next_cid: 0,
            stop: None,
            resume_requested: false,
            last_sub_answer: None,
            media_recovery: None,
            rtp_acc: rtp_stats::RtpAccumulator::default(),
            resend_configured: Default::default(),
        };
        for p in &join.other_participants {
            core.on_participant(p);
        }
        // Data channels on the publisher: the first offer carries them.
        core.pub_changes.push(PubChange::Channels);
        core.negotiate_publisher().await?;

        let task = tokio::spawn(core.run(signal_events, cmd_rx, media_rx));
        Ok((
            Engine {
                commands: cmd_tx,
                join: info,
                task: Some(task),
                counters,
            },
            event_rx,
        ))
    }

    /// What the server told us at join.
    pub fn join_info(&self) -> &JoinInfo {
        &self.join
    }

    /// Ourselves.
    pub fn local_participant(&self) -> &Participant {
        &self.join.local
    }

    /// Droppable events (speaker and quality updates, lossy data) dropped because the event
    /// stream was full.
    pub fn dropped_events(&self) -> u64 {
        self.counters.dropped_events.load(Ordering::Relaxed)
    }

    /// The most must-deliver events the engine held at once for a reader that was behind.
    pub fn held_events_peak(&self) -> u64 {
        self.counters.held_peak.load(Ordering::Relaxed)
    }

    /// Loss-recovery counters of both connections (NACKs and keyframe requests each way),
    /// updated once a second.
    pub fn rtp_stats(&self) -> RtpStats {
        self.counters.rtp.snapshot()
    }

    /// The newest token the server sent with `RefreshToken` (it sends one right after the join
    /// and then every few minutes, valid at least as long as the join token). Use it for any
    /// later join of the same participant: the join token may have expired by then. The
    /// engine's own resume uses it already.
    pub fn refreshed_token(&self) -> Option<String> {
        self.counters
            .refreshed_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> Command,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| EngineError::Closed)?;
        rx.await.map_err(|_| EngineError::Closed)?
    }

    /// Publish a track: announce it (AddTrack), wait for the server's TrackPublished, then add it
    /// to the publisher connection and renegotiate. Write encoded frames into the returned handle.
    pub async fn publish_track(&self, options: TrackOptions) -> Result<LocalTrack, EngineError> {
        self.request(|reply| Command::Publish { options, reply })
            .await
    }

    /// Stop publishing a track (by sid).
    pub async fn unpublish_track(&self, sid: &str) -> Result<(), EngineError> {
        let sid = sid.to_owned();
        self.request(|reply| Command::Unpublish { sid, reply })
            .await
    }

    /// Mute or unmute one of our tracks (by sid). Muted tracks send no media.
    pub async fn set_track_muted(&self, sid: &str, muted: bool) -> Result<(), EngineError> {
        let sid = sid.to_owned();
        self.request(|reply| Command::Mute { sid, muted, reply })
            .await
    }

    /// Send a user data packet on the reliable or lossy channel.
    pub async fn publish_data(
        &self,
        payload: Vec<u8>,
        options: DataOptions,
    ) -> Result<(), EngineError> {
        if payload.len() > MAX_DATA_PAYLOAD {
            return Err(EngineError::DataTooLarge {
                len: payload.len(),
                max: MAX_DATA_PAYLOAD,
            });
        }
        self.request(|reply| Command::Data {
            payload,
            options,
            reply,
        })
        .await
    }

    /// Subscribe to (or unsubscribe from) a remote participant's track. With
    /// [`EngineOptions::auto_subscribe`] off this is how tracks are received: the server then
    /// offers the track and it arrives as [`EngineEvent::TrackSubscribed`]; unsubscribing ends it
    /// with [`EngineEvent::TrackUnsubscribed`].
    pub async fn set_subscribed(
        &self,
        participant_sid: &str,
        track_sid: &str,
        subscribe: bool,
    ) -> Result<(), EngineError> {
        let (participant_sid, track_sid) = (participant_sid.to_owned(), track_sid.to_owned());
        self.request(|reply| Command::Subscribe {
            participant_sid,
            track_sid,
            subscribe,
            reply,
        })
        .await
    }

    /// Pause (`false`) or resume (`true`) the server's forwarding of a subscribed track without
    /// unsubscribing (LiveKit's `UpdateTrackSettings.disabled`).
    pub async fn set_track_enabled(
        &self,
        track_sid: &str,
        enabled: bool,
    ) -> Result<(), EngineError> {
        let track_sid = track_sid.to_owned();
        self.request(|reply| Command::TrackSettings {
            track_sid,
            enabled,
            reply,
        })
        .await
    }

    /// Leave the room and stop the engine. Idempotent; waits for the engine task to end.
    pub async fn close(&mut self) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Close { reply: tx })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

enum PubChange {
    Channels,
    Media {
        kind: TrackKind,
        cid: Arc<str>,
    },
    Stop(Mid),
    /// New ICE credentials (the resume's ICE restart).
    IceRestart,
}

struct PendingPublish {
    options: TrackOptions,
    cid: Arc<str>,
    reply: oneshot::Sender<Result<LocalTrack, EngineError>>,
    deadline: Instant,
}

struct LocalTrackState {
    sid: String,
    cid: Arc<str>,
    kind: TrackKind,
    mid: Option<Mid>,
    muted: bool,
    /// The server's description of the track (for the resume's SyncState).
    info: Option<proto::TrackInfo>,
    shared: Arc<LocalShared>,
    /// Offset added to the caller's RTP times (random start, as RFC 3550 asks).
    rtp_offset: u64,
}

struct RemoteState {
    sid: String,
    kind: TrackKind,
    tx: mpsc::Sender<EncodedFrame>,
    dropped: Arc<AtomicU64>,
    /// Ask for a keyframe before passing on more video (after loss or a dropped frame).
    need_keyframe: bool,
    last_pli: Option<Instant>,
}

struct RemoteParticipant {
    info: Participant,
    tracks: HashMap<String, TrackInfo>,
}

struct Core {
    signal: SignalClient,
    options: EngineOptions,
    events: mpsc::Sender<EngineEvent>,
    /// Must-deliver events waiting for room in `events`, oldest first (see `emit`).
    held: std::collections::VecDeque<EngineEvent>,
    counters: Arc<Counters>,
    commands: mpsc::Sender<Command>,
    media_tx: mpsc::Sender<MediaWrite>,
    publisher: Peer,
    subscriber: Peer,
    pub_pending: Option<SdpPendingOffer>,
    pub_changes: Vec<PubChange>,
    pub_trickled: bool,
    sub_trickled: bool,
    reliable: Option<ChannelId>,
    lossy: Option<ChannelId>,
    /// Channels the server opened on the subscriber connection: id → reliable?
    sub_channels: HashMap<ChannelId, bool>,
    reliable_seq: u32,
    /// Reliable packets SCTP has not accepted yet (bounded by `RELIABLE_BACKLOG`).
    reliable_backlog: std::collections::VecDeque<Vec<u8>>,
    lossy_drops: u64,
    pending_publish: HashMap<Arc<str>, PendingPublish>,
    /// Keyed by cid.
    local_tracks: HashMap<Arc<str>, LocalTrackState>,
    /// Subscribed tracks keyed by mid on the subscriber connection.
    remote: HashMap<Mid, RemoteState>,
    participants: HashMap<String, RemoteParticipant>,
    local: Participant,
    next_cid: u64,
    /// Why the engine must stop, set while handling a message (a server `Leave`).
    stop: Option<DisconnectReason>,
    /// The server asked us to resume (`Leave` with action RESUME).
    resume_requested: bool,
    /// Our last answer on the subscriber connection (the resume's SyncState carries it).
    last_sub_answer: Option<proto::SessionDescription>,
    /// A dead media path being recovered (see [`liveness`]).
    media_recovery: Option<liveness::MediaRecovery>,
    /// The last cumulative stats per stream (turned into the `counters.rtp` totals).
    rtp_acc: rtp_stats::RtpAccumulator,
    /// Published streams whose resend limits are set (see [`recovery`]).
    resend_configured: std::collections::HashSet<str0m::rtp::Ssrc>,
}

/// A random 32-bit value from the OS-seeded std hasher (no extra dependency).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish() as u32
}
