//! The engine's state machine without I/O, in the style of str0m: no sockets, no signal client,
//! no clock reads, nothing `async`.
//!
//! [`Core`] is driven by input ([`Core::handle`] with the current time and one [`Input`]: a
//! datagram received, a signal message or a change of the signal connection, a command from a
//! handle, an encoded frame to send, the event reader making room, or a timeout) and polled for
//! output ([`Core::poll_output`]: datagrams to send with their addresses, requests for the
//! signal connection, and finally the next time it wants to be woken). Events go to the
//! [`EventSink`] the driver gave it, under the policy of [`EngineEvent`] (droppable events
//! dropped and counted, the others held in order while the reader is behind).
//!
//! The async driver (`engine::driver`) owns the UDP sockets, the WebSocket (livekit-signaling)
//! and the timers; tests drive the core on virtual time (`crate::core_tests`). Nothing here
//! waits: a resume is a state of the core ([`resume`]), during which datagrams, commands and
//! media keep being handled.
//!
//! The core hands frames to subscribed tracks and replies to commands through non-blocking
//! queues and callbacks (`crate::track`'s `FrameQueue`, `CommandSender`, `MediaSender`, and
//! [`Reply`]); it never waits on them. Those queues are tokio channels inside `crate::track`
//! (the handles' ends are async); no tokio type appears in this module, which
//! tests/architecture.rs checks.
//!
//! Its work is split by responsibility: [`signal`] (server messages, leaving), [`resume`],
//! [`liveness`], [`negotiation`], [`roster`], [`data`], [`routing`] (media in and out),
//! [`commands`], [`outbox`] (the event policy) and [`peer`] (one str0m connection).

mod closing;
mod commands;
mod data;
mod ice_tcp;
pub(crate) mod liveness;
mod negotiation;
mod offer_sdp;
mod outbox;
pub(crate) mod peer;
pub(crate) mod recovery;
mod requests;
pub(crate) mod resume;
mod roster;
mod routing;
pub(crate) mod rtp_stats;
mod signal;

pub(crate) use outbox::{EventSink, Offer};
pub use requests::ParticipantUpdate;
pub(crate) use resume::ResumeFailure;
pub use rtp_stats::RtpStats;
pub(crate) use rtp_stats::STATS_INTERVAL;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use prost::Message as _;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::{Event, IceConnectionState};
use tracing::{debug, info, trace, warn};

use crate::error::{EngineError, PeerRole, RequestRefusal};
use crate::events::{DisconnectReason, EngineEvent, Participant, TrackInfo, TransportState};
use crate::sdp::{self, SectionKind};
use crate::track::{
    CommandSender, EncodedFrame, FrameQueue, LocalShared, LocalTrack, MediaCodec, MediaSender,
    MediaWrite, QueueError, RemoteTrack, TrackKind, TrackOptions, TrackSettings, VideoLayer,
};
use peer::{Peer, candidate_init, parse_candidate_init};

/// Largest data packet payload we send (LiveKit's SDKs cap at 15 KiB for reliable data).
pub const MAX_DATA_PAYLOAD: usize = 15 * 1024;

/// Largest encoded data packet we send (a data-stream chunk of the SDKs' 15 000 bytes with its
/// header fits easily; SCTP messages over 64 KiB are not accepted by every peer).
pub const MAX_DATA_PACKET: usize = 64 * 1024;

/// Reliable data packets the engine queues while the SCTP send buffer is full.
const RELIABLE_BACKLOG: usize = 4096;

/// How long a failed publisher connection waits for the server's Leave before the engine stops.
pub(crate) const LEAVE_GRACE: Duration = Duration::from_millis(1000);

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
    /// The data-plane protocol we tell other participants we speak (they choose how to send us
    /// data streams and RPC from it).
    pub client_protocol: ClientProtocol,
    /// End-to-end encryption of the data packets we send (user data, streams, RPC), when set.
    pub data_sealer: Option<crate::data_message::DataSealer>,
    /// How the media connections reach the server: UDP, TCP, or UDP with TCP as the fallback.
    pub ice_transport: IceTransport,
    /// With [`IceTransport::Auto`]: how long a connection may try UDP alone before TCP
    /// candidates join.
    pub tcp_fallback_after: Duration,
    /// Bandwidth estimation on the publisher connection (str0m's TWCC estimator and pacer)
    /// starting from this estimate, bits per second; `None` turns it off. Each published
    /// track reads its share as [`LocalTrack::target_bitrate`].
    pub bandwidth_estimation: Option<u64>,
}

/// Where the publisher's bandwidth estimate starts, bits per second.
pub const DEFAULT_INITIAL_BITRATE: u64 = 1_000_000;

/// Which ICE candidates the media connections offer: how they reach the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IceTransport {
    /// UDP first; when a connection has not come up over UDP within
    /// [`EngineOptions::tcp_fallback_after`], a TCP candidate joins and ICE takes whichever
    /// path works (the server's `rtc.tcp_port` must be open).
    #[default]
    Auto,
    /// UDP only.
    Udp,
    /// TCP only: ICE over TCP (RFC 4571 framing) to the server's `rtc.tcp_port`, for networks
    /// that drop UDP.
    Tcp,
}

/// The transport media flows over now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MediaTransport {
    /// Nothing received yet.
    #[default]
    None,
    /// UDP datagrams.
    Udp,
    /// ICE over TCP.
    Tcp,
}

/// The data-plane protocol a client advertises (`ClientInfo.client_protocol`), as the SDKs
/// number it. Other participants send data streams and RPC to it the newest way it reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientProtocol {
    /// 0: data streams as header, chunks and trailer; RPC as request/ack/response packets
    /// (payloads of at most 15 KiB).
    Legacy = 0,
    /// 1: RPC requests and responses also as text streams (`lk.rpc_request`,
    /// `lk.rpc_response`): payloads of any size.
    DataStreamRpc = 1,
    /// 2: short streams also as one packet (content in the header), and DEFLATE-compressed
    /// streams (with the capability that goes with it). What the current SDKs speak.
    #[default]
    DataStreamV2 = 2,
}

impl ClientProtocol {
    /// The number another participant advertised, as the newest protocol it reads.
    pub fn from_number(n: i32) -> Self {
        match n {
            i32::MIN..=0 => Self::Legacy,
            1 => Self::DataStreamRpc,
            _ => Self::DataStreamV2,
        }
    }
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
            client_protocol: ClientProtocol::default(),
            data_sealer: None,
            ice_transport: IceTransport::default(),
            tcp_fallback_after: Duration::from_secs(2),
            bandwidth_estimation: Some(DEFAULT_INITIAL_BITRATE),
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

/// The answer to a command: called once by the core, never awaited by it.
pub(crate) type Reply<T> = Box<dyn FnOnce(Result<T, EngineError>) + Send>;

/// A request from a handle ([`crate::Engine`], [`RemoteTrack`]).
pub(crate) enum Command {
    Publish {
        options: TrackOptions,
        reply: Reply<LocalTrack>,
    },
    Unpublish {
        sid: String,
        reply: Reply<()>,
    },
    Mute {
        sid: String,
        muted: bool,
        reply: Reply<()>,
    },
    Data {
        payload: Vec<u8>,
        options: DataOptions,
        reply: Reply<()>,
    },
    /// Send a data-stream or RPC packet (reliable).
    Message {
        message: crate::data_message::DataMessage,
        destination_identities: Vec<String>,
        reply: Reply<()>,
    },
    /// Change our own name, metadata or attributes.
    UpdateParticipant {
        update: ParticipantUpdate,
        reply: Reply<()>,
    },
    RequestKeyframe {
        track_sid: String,
    },
    Subscribe {
        participant_sid: String,
        track_sid: String,
        subscribe: bool,
        reply: Reply<()>,
    },
    TrackSettings {
        track_sid: String,
        settings: TrackSettings,
        reply: Reply<()>,
    },
    /// Leave the room and stop.
    Close {
        reply: Reply<()>,
    },
}

/// What the signal connection brought, or what became of it.
#[derive(Debug)]
pub(crate) enum SignalIn {
    /// A message from the server.
    Message(Box<proto::signal_response::Message>),
    /// The connection was lost (remote close, ping timeout).
    Lost(String),
    /// The signal client ended for good.
    Ended,
    /// A resume attempt ([`SignalOut::Resume`]) got the server's reconnect response.
    Resumed(proto::ReconnectResponse),
    /// A resume attempt failed.
    ResumeFailed(ResumeFailure),
}

/// What the core asks of the signal connection, in order.
#[derive(Debug)]
pub(crate) enum SignalOut {
    /// Send a request to the server.
    Send(Box<proto::signal_request::Message>),
    /// Close the current connection (dropping what it still delivers) and open a new one with
    /// `reconnect=1` for our participant; answer with [`SignalIn::Resumed`] or
    /// [`SignalIn::ResumeFailed`]. A later [`SignalOut::Close`] or `Resume` abandons it.
    Resume(proto::ReconnectReason),
    /// The resume is complete: release the requests held meanwhile.
    Reconnected,
    /// Close the connection (abandoning a resume attempt in flight).
    Close,
}

/// One input to [`Core::handle`].
pub(crate) enum Input<'a> {
    /// A datagram arrived on a connection's socket (or a frame on its TCP connection).
    Datagram {
        role: PeerRole,
        proto: str0m::net::Protocol,
        source: SocketAddr,
        data: &'a [u8],
    },
    /// The signal connection.
    Signal(SignalIn),
    /// A request from a handle.
    Command(Command),
    /// An encoded frame to send.
    Media(MediaWrite),
    /// The event reader made room.
    ReaderReady,
    /// The event reader is gone.
    ReaderGone,
    /// The time asked for by [`Output::Timeout`] (or any later time) came.
    Timeout,
}

/// One output of [`Core::poll_output`].
#[derive(Debug)]
pub(crate) enum Output {
    /// Send a datagram from the connection's socket.
    Transmit(PeerRole, str0m::net::Transmit),
    /// Close the connection's TCP connections (after an ICE restart): what it sends next over
    /// TCP goes on new ones.
    ResetTcp(PeerRole),
    /// A request for the signal connection.
    Signal(SignalOut),
    /// Nothing more to do before this time (or the next input).
    Timeout(Instant),
}

/// Counters the core updates and the [`crate::Engine`] handle reads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub dropped_events: AtomicU64,
    pub held_peak: AtomicU64,
    /// The newest token the server sent (`RefreshToken`), if any.
    pub refreshed_token: std::sync::Mutex<Option<String>>,
    /// NACK/PLI/packet totals from str0m's stats events.
    pub rtp: rtp_stats::RtpTotals,
    /// What the last datagram the connections took in came over: 0 none, 1 UDP, 2 TCP.
    pub transport: std::sync::atomic::AtomicU8,
}

impl Counters {
    pub(crate) fn refreshed_token(&self) -> Option<String> {
        self.refreshed_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// What the core starts from.
pub(crate) struct CoreConfig {
    pub options: EngineOptions,
    /// Ourselves, as the join response said.
    pub local: Participant,
    /// The others already in the room.
    pub others: Vec<proto::ParticipantInfo>,
    /// The publisher socket's local address (our host candidate).
    pub publisher_addr: SocketAddr,
    /// The subscriber socket's local address.
    pub subscriber_addr: SocketAddr,
    /// Seeds the client track ids and RTP time offsets.
    pub seed: u64,
    pub events: Box<dyn EventSink>,
    pub counters: Arc<Counters>,
    /// Handed to subscribed tracks (keyframe requests).
    pub commands: CommandSender,
    /// Handed to published tracks (their frames).
    pub media: MediaSender,
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
    reply: Reply<LocalTrack>,
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
    /// End-to-end encrypted frames: audio goes out without RED (a browser's frame decryptor
    /// would see the whole RED payload).
    encrypted: bool,
    /// The codec its frames are in.
    codec: MediaCodec,
    /// Simulcast layers, smallest first (empty: one layer, no rid).
    layers: Vec<VideoLayer>,
}

struct RemoteState {
    sid: String,
    kind: TrackKind,
    frames: FrameQueue,
    dropped: Arc<AtomicU64>,
    /// Ask for a keyframe before passing on more video (after loss or a dropped frame).
    need_keyframe: bool,
    last_pli: Option<Instant>,
}

struct RemoteParticipant {
    info: Participant,
    tracks: HashMap<String, TrackInfo>,
}

/// The publisher connection's negotiation state.
#[derive(Default)]
struct PubNegotiation {
    /// Our offer in flight, and its SDP (sent again when a resume lost its answer).
    pending: Option<(SdpPendingOffer, String)>,
    changes: Vec<PubChange>,
    trickled: bool,
}

/// The data channels.
#[derive(Default)]
struct DataState {
    reliable: Option<ChannelId>,
    lossy: Option<ChannelId>,
    /// Channels the server opened on the subscriber connection: id → reliable?
    sub_channels: HashMap<ChannelId, bool>,
    reliable_seq: u32,
    /// Reliable packets SCTP has not accepted yet (bounded by `RELIABLE_BACKLOG`).
    reliable_backlog: VecDeque<Vec<u8>>,
    lossy_drops: u64,
}

/// The engine's state machine (see the module docs).
pub(crate) struct Core {
    /// The time of the input being handled.
    now: Instant,
    options: EngineOptions,
    outbox: outbox::Outbox,
    counters: Arc<Counters>,
    commands: CommandSender,
    media: MediaSender,
    publisher: Peer,
    subscriber: Peer,
    negotiation: PubNegotiation,
    sub_trickled: bool,
    /// Our last answer on the subscriber connection (the resume's SyncState carries it).
    last_sub_answer: Option<proto::SessionDescription>,
    data: DataState,
    pending_publish: HashMap<Arc<str>, PendingPublish>,
    /// Keyed by cid.
    local_tracks: HashMap<Arc<str>, LocalTrackState>,
    /// Subscribed tracks keyed by mid on the subscriber connection.
    remote: HashMap<Mid, RemoteState>,
    participants: HashMap<String, RemoteParticipant>,
    local: Participant,
    /// The last request id we sent (participant updates).
    next_request_id: u32,
    /// Participant updates waiting for the server.
    pending_updates: Vec<requests::PendingUpdate>,
    next_cid: u64,
    rng: u64,
    /// The signal connection: up, or being resumed (see [`resume`]).
    link: resume::Link,
    /// A dead media path being recovered (see [`liveness`]).
    media_recovery: Option<liveness::MediaRecovery>,
    /// Since when the publisher connection is closed (waiting [`LEAVE_GRACE`] for a Leave).
    publisher_failed_at: Option<Instant>,
    /// Requests for the signal connection, in order.
    signal_out: VecDeque<SignalOut>,
    /// Commands that wait for a resume to end (data packets).
    deferred: VecDeque<Command>,
    /// Why the engine must stop, set while handling an input.
    stop: Option<DisconnectReason>,
    /// The engine stopped (`Disconnected` was emitted); only events still go out.
    stopped: bool,
    /// The last cumulative stats per stream (turned into the `counters.rtp` totals).
    rtp_acc: rtp_stats::RtpAccumulator,
    /// Published streams whose resend limits are set (see [`recovery`]).
    resend_configured: HashSet<str0m::rtp::Ssrc>,
    /// A close waiting for the reliable data channel to drain (see [`closing`]).
    closing: Option<closing::Closing>,
}

impl Core {
    /// A core for a participant the server just accepted: both connections created, the
    /// roster filled from the join, and the publisher's first offer (its data channels) queued.
    pub(crate) fn new(now: Instant, config: CoreConfig) -> Result<Self, EngineError> {
        let transport = config.options.ice_transport;
        let bwe = config.options.bandwidth_estimation;
        let publisher = Peer::new(
            PeerRole::Publisher,
            config.publisher_addr,
            transport,
            bwe,
            now,
        )?;
        let subscriber = Peer::new(
            PeerRole::Subscriber,
            config.subscriber_addr,
            transport,
            None,
            now,
        )?;
        let mut core = Core {
            now,
            options: config.options,
            outbox: outbox::Outbox::new(config.events, config.counters.clone()),
            counters: config.counters,
            commands: config.commands,
            media: config.media,
            publisher,
            subscriber,
            negotiation: PubNegotiation::default(),
            sub_trickled: false,
            last_sub_answer: None,
            data: DataState::default(),
            pending_publish: HashMap::new(),
            local_tracks: HashMap::new(),
            remote: HashMap::new(),
            participants: HashMap::new(),
            local: config.local,
            next_request_id: 0,
            pending_updates: Vec::new(),
            next_cid: 0,
            rng: config.seed | 1,
            link: resume::Link::Up,
            media_recovery: None,
            publisher_failed_at: None,
            signal_out: VecDeque::new(),
            deferred: VecDeque::new(),
            stop: None,
            stopped: false,
            rtp_acc: rtp_stats::RtpAccumulator::default(),
            resend_configured: HashSet::new(),
            closing: None,
        };
        for p in &config.others {
            core.on_participant(p);
        }
        // Data channels on the publisher: the first offer carries them.
        core.negotiation.changes.push(PubChange::Channels);
        core.negotiate_publisher()?;
        Ok(core)
    }

    /// Handle one input at `now` (never earlier than the previous call's).
    pub(crate) fn handle(&mut self, now: Instant, input: Input<'_>) {
        self.now = self.now.max(now);
        let result = match input {
            Input::ReaderReady => {
                self.outbox.reader_ready();
                Ok(())
            }
            Input::ReaderGone => {
                self.outbox.reader_gone();
                Ok(())
            }
            _ if self.stopped => return,
            Input::Datagram {
                role,
                proto,
                source,
                data,
            } => {
                let now = self.now;
                let r = self.peer_mut(role).receive(now, proto, source, data);
                self.note_transport(role);
                r
            }
            Input::Signal(s) => self.on_signal_input(s),
            Input::Command(c) => self.on_command(c),
            Input::Media(m) => self.on_media_write(m),
            Input::Timeout => Ok(()),
        };
        if let Err(e) = result {
            warn!("engine: {e}");
        }
        if !self.stopped {
            self.advance();
        }
    }

    /// The next output: datagrams first, then signal requests, then the time to be woken at.
    pub(crate) fn poll_output(&mut self) -> Output {
        for role in [PeerRole::Publisher, PeerRole::Subscriber] {
            let peer = self.peer_mut(role);
            if std::mem::take(&mut peer.tcp_reset) {
                return Output::ResetTcp(role);
            }
        }
        if let Some(t) = self.publisher.transmits.pop_front() {
            return Output::Transmit(PeerRole::Publisher, t);
        }
        if let Some(t) = self.subscriber.transmits.pop_front() {
            return Output::Transmit(PeerRole::Subscriber, t);
        }
        if let Some(s) = self.signal_out.pop_front() {
            return Output::Signal(s);
        }
        Output::Timeout(self.next_timeout())
    }

    /// Why the engine stopped, once it has (`Disconnected` is then the last event).
    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Whether must-deliver events wait for the reader to make room.
    pub(crate) fn holding_events(&self) -> bool {
        self.outbox.holding()
    }

    /// The held events (after the stop: the driver hands them over as the reader takes them).
    pub(crate) fn take_held(&mut self) -> VecDeque<EngineEvent> {
        self.outbox.take_held()
    }

    /// Everything that follows an input: str0m's timers and events, the liveness check, the
    /// resume's timers, publish deadlines, the reliable backlog, a failed publisher, a stop.
    fn advance(&mut self) {
        let now = self.now;
        for role in [PeerRole::Publisher, PeerRole::Subscriber] {
            if let Err(e) = self.peer_mut(role).tick(now) {
                warn!("engine: {e}");
            }
        }
        if let Err(e) = self.handle_peer_events() {
            warn!("engine: {e}");
        }
        self.resume_timers();
        self.check_media_path();
        self.expire_pending_publish();
        self.expire_pending_updates();
        if !self.data.reliable_backlog.is_empty()
            && let Err(e) = self.flush_reliable()
        {
            warn!("engine: {e}");
        }
        self.fall_back_to_tcp();
        self.finish_closing();
        if !self.publisher.rtc.is_alive() && self.publisher.connected && self.stop.is_none() {
            // When the server removes us it closes the connections (an SCTP abort over
            // UDP) and sends a Leave over the signal; the abort often arrives first. Wait
            // a moment for the Leave so we follow it instead of rejoining.
            let since = *self.publisher_failed_at.get_or_insert(now);
            if now.saturating_duration_since(since) >= LEAVE_GRACE {
                self.stop = Some(DisconnectReason::TransportFailed(PeerRole::Publisher));
            }
        }
        if let Some(reason) = self.stop.take() {
            self.finish(reason);
        }
    }

    /// Stop: close the signal connection and emit `Disconnected` (the last event).
    fn finish(&mut self, reason: DisconnectReason) {
        info!("engine stopped: {reason:?}");
        self.signal_out.push_back(SignalOut::Close);
        self.stopped = true;
        // Their replies go unanswered: the handles see the engine closed.
        self.deferred.clear();
        self.outbox.emit(EngineEvent::Disconnected(reason));
    }

    /// The earliest time something is due.
    fn next_timeout(&self) -> Instant {
        let far = self.now + Duration::from_secs(3600);
        if self.stopped {
            return far;
        }
        let mut t = self
            .publisher
            .next_timeout
            .min(self.subscriber.next_timeout);
        if let Some(d) = self.resume_deadline() {
            t = t.min(d);
        }
        if let Some(d) = self.liveness_deadline() {
            t = t.min(d);
        }
        if let Some(d) = self.pending_publish.values().map(|p| p.deadline).min() {
            t = t.min(d);
        }
        if let Some(d) = self.pending_updates_deadline() {
            t = t.min(d);
        }
        if let Some(since) = self.publisher_failed_at {
            t = t.min(since + LEAVE_GRACE);
        }
        if !self.data.reliable_backlog.is_empty() {
            // SCTP makes room as acknowledgements arrive; look again soon.
            t = t.min(self.now + Duration::from_millis(100));
        }
        if let Some(d) = self.tcp_fallback_deadline() {
            t = t.min(d);
        }
        if let Some(d) = self.closing_deadline() {
            t = t.min(d);
        }
        t.max(self.now)
    }

    fn peer_mut(&mut self, role: PeerRole) -> &mut Peer {
        match role {
            PeerRole::Publisher => &mut self.publisher,
            PeerRole::Subscriber => &mut self.subscriber,
        }
    }

    /// Hand an event to the reader (see [`outbox`]).
    fn emit(&mut self, ev: EngineEvent) {
        self.outbox.emit(ev);
    }

    fn send_signal(&mut self, msg: proto::signal_request::Message) {
        self.signal_out.push_back(SignalOut::Send(Box::new(msg)));
    }

    /// A pseudo-random 32-bit value (splitmix64 of the seed the driver gave).
    fn random_u32(&mut self) -> u32 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }

    fn handle_peer_events(&mut self) -> Result<(), EngineError> {
        while let Some(ev) = self.publisher.events.pop_front() {
            self.on_peer_event(PeerRole::Publisher, ev)?;
        }
        while let Some(ev) = self.subscriber.events.pop_front() {
            self.on_peer_event(PeerRole::Subscriber, ev)?;
        }
        Ok(())
    }

    fn on_peer_event(&mut self, role: PeerRole, ev: Event) -> Result<(), EngineError> {
        match ev {
            Event::Connected => {
                info!(%role, "connected (ICE + DTLS)");
                self.peer_mut(role).connected = true;
                self.emit(EngineEvent::Transport {
                    role,
                    state: TransportState::Connected,
                });
            }
            Event::IceConnectionStateChange(s) => {
                debug!(%role, "ICE {s:?}");
                let now = self.now;
                self.peer_mut(role).ice = (s, now);
                if s == IceConnectionState::Disconnected {
                    self.emit(EngineEvent::Transport {
                        role,
                        state: TransportState::Disconnected,
                    });
                }
            }
            Event::ChannelOpen(id, label) => {
                info!(%role, "data channel {label} open");
                if role == PeerRole::Subscriber {
                    self.data.sub_channels.insert(id, label != "_lossy");
                }
                self.emit(EngineEvent::DataChannelOpen { role, label });
            }
            Event::ChannelData(d) => {
                let reliable = match role {
                    PeerRole::Subscriber => {
                        self.data.sub_channels.get(&d.id).copied().unwrap_or(true)
                    }
                    PeerRole::Publisher => Some(d.id) == self.data.reliable,
                };
                self.on_data_packet(&d.data, reliable);
            }
            Event::MediaData(md) => self.on_media_data(md)?,
            Event::KeyframeRequest(kr) if role == PeerRole::Publisher => {
                if let Some(t) = self.local_tracks.values().find(|t| t.mid == Some(kr.mid)) {
                    debug!(
                        "keyframe requested for {} {:?} ({:?})",
                        t.sid, kr.rid, kr.kind
                    );
                    let layer = kr.rid.and_then(|rid| {
                        crate::track::VideoQuality::ALL
                            .into_iter()
                            .find(|q| q.rid() == &*rid)
                    });
                    match layer {
                        Some(q) => {
                            t.shared.layer_keyframe[q.index()].store(true, Ordering::Relaxed)
                        }
                        None => {
                            // No rid: every layer (a track of one layer reads the plain flag).
                            t.shared.keyframe_requested.store(true, Ordering::Relaxed);
                            for k in &t.shared.layer_keyframe {
                                k.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
            Event::EgressBitrateEstimate(bwe) => {
                let bps = match bwe {
                    str0m::bwe::BweKind::Twcc { estimate, .. } => estimate.as_u64(),
                    str0m::bwe::BweKind::Remb { estimate, .. } => estimate.as_u64(),
                    _ => 0,
                };
                self.share_estimate(bps);
            }
            Event::MediaIngressStats(st) => {
                let way = rtp_stats::Way::In;
                self.counters.rtp.note_rtt(way, st.rtt);
                let key = (role, way, st.mid, st.rid);
                let counts = [st.nacks, st.plis, st.packets];
                self.rtp_acc.add(&self.counters.rtp, key, counts);
            }
            Event::MediaEgressStats(st) => {
                let way = rtp_stats::Way::Out;
                self.counters.rtp.note_rtt(way, st.rtt);
                let key = (role, way, st.mid, st.rid);
                let counts = [st.nacks, st.plis, st.packets];
                self.rtp_acc.add(&self.counters.rtp, key, counts);
            }
            Event::MediaAdded(m) => debug!(%role, "media added: mid {} {:?}", m.mid, m.kind),
            other => trace!(%role, "rtc event {other:?}"),
        }
        Ok(())
    }
}
