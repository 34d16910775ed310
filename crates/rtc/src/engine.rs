//! The engine: one task that owns the signal client and both peer connections.
//!
//! Everything protocol-related happens on that task, in response to one of: a datagram on either
//! socket, a signal message, a command from a handle, an encoded frame to send, or a str0m
//! deadline. Encoding and decoding never happen here.

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
use crate::events::{
    DisconnectReason, EngineEvent, Participant, Quality, TrackInfo, TransportState,
};
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
}

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
            .unwrap_or(Participant {
                sid: String::new(),
                identity: String::new(),
                name: String::new(),
                metadata: String::new(),
            });
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

    /// Events dropped because the event stream was full.
    pub fn dropped_events(&self) -> u64 {
        self.counters.dropped_events.load(Ordering::Relaxed)
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

/// The server echoes the token in some refusals: never let it reach logs or error messages.
fn redact_token(message: &str, token: &str) -> String {
    if token.is_empty() {
        message.to_owned()
    } else {
        message.replace(token, "<token>")
    }
}

fn classify_connect_error(url: &str, token: &str, source: SignalError) -> EngineError {
    match &source {
        SignalError::Client(status, message)
            if status.as_u16() == 401 || status.as_u16() == 403 =>
        {
            EngineError::Unauthorized {
                url: url.to_owned(),
                status: status.as_u16(),
                message: redact_token(message, token),
            }
        }
        SignalError::Client(status, message) => EngineError::Connect {
            url: url.to_owned(),
            source: SignalError::Client(*status, redact_token(message, token)),
        },
        _ => EngineError::Connect {
            url: url.to_owned(),
            source,
        },
    }
}

/// The local address the OS would use to reach the signal URL's host (no packet is sent).
async fn local_ip_towards(url: &str) -> IpAddr {
    let fallback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let Some(rest) = url.split("://").nth(1) else {
        return fallback;
    };
    let hostport = rest.split('/').next().unwrap_or(rest);
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_owned()
    } else {
        format!("{hostport}:443")
    };
    let Ok(mut addrs) = tokio::net::lookup_host(with_port).await else {
        return fallback;
    };
    let Some(remote) = addrs.next() else {
        return fallback;
    };
    if remote.ip().is_loopback() {
        return remote.ip();
    }
    let bind: SocketAddr = if remote.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid literal")
    } else {
        "[::]:0".parse().expect("valid literal")
    };
    match std::net::UdpSocket::bind(bind).and_then(|s| {
        s.connect(remote)?;
        s.local_addr()
    }) {
        Ok(a) => a.ip(),
        Err(_) => fallback,
    }
}

enum PubChange {
    Channels,
    Media { kind: TrackKind, cid: Arc<str> },
    Stop(Mid),
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
}

enum Wake {
    Datagram(PeerRole, std::io::Result<(usize, SocketAddr)>),
    Signal(Option<SignalEvent>),
    Command(Option<Command>),
    Media(Option<MediaWrite>),
    Timeout,
}

impl Core {
    async fn run(
        mut self,
        mut signal_events: SignalEvents,
        mut commands: mpsc::Receiver<Command>,
        mut media: mpsc::Receiver<MediaWrite>,
    ) {
        let pub_sock = self.publisher.socket.clone();
        let sub_sock = self.subscriber.socket.clone();
        let mut pub_buf = vec![0u8; RECV_BUF];
        let mut sub_buf = vec![0u8; RECV_BUF];
        let reason = loop {
            let now = Instant::now();
            let deadline = self
                .publisher
                .next_timeout
                .min(self.subscriber.next_timeout)
                .min(now + Duration::from_millis(100))
                .max(now);
            let wake = tokio::select! {
                r = pub_sock.recv_from(&mut pub_buf) => Wake::Datagram(PeerRole::Publisher, r),
                r = sub_sock.recv_from(&mut sub_buf) => Wake::Datagram(PeerRole::Subscriber, r),
                e = signal_events.recv() => Wake::Signal(e),
                c = commands.recv() => Wake::Command(c),
                m = media.recv() => Wake::Media(m),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timeout,
            };
            let result = match wake {
                Wake::Datagram(role, Ok((n, from))) => {
                    let (peer, buf) = match role {
                        PeerRole::Publisher => (&mut self.publisher, &pub_buf),
                        PeerRole::Subscriber => (&mut self.subscriber, &sub_buf),
                    };
                    peer.receive(from, &buf[..n])
                }
                Wake::Datagram(role, Err(e)) => {
                    // ICMP errors (port unreachable) surface here on Linux; not fatal.
                    trace!(%role, "udp recv error: {e}");
                    Ok(())
                }
                Wake::Signal(Some(SignalEvent::Message(msg))) => self.on_signal(*msg).await,
                Wake::Signal(Some(SignalEvent::Close(why))) => {
                    break DisconnectReason::SignalClosed(why.into_owned());
                }
                Wake::Signal(None) => {
                    break DisconnectReason::SignalClosed("signal client ended".into());
                }
                Wake::Command(Some(Command::Close { reply })) => {
                    self.leave().await;
                    let _ = reply.send(());
                    break DisconnectReason::ClientInitiated;
                }
                Wake::Command(Some(c)) => self.on_command(c).await,
                Wake::Command(None) => {
                    self.leave().await;
                    break DisconnectReason::ClientInitiated;
                }
                Wake::Media(Some(m)) => self.on_media_write(m),
                Wake::Media(None) => Ok(()),
                Wake::Timeout => Ok(()),
            };
            if let Err(e) = result {
                warn!("engine: {e}");
            }
            let now = Instant::now();
            if let Err(e) = self.publisher.tick(now) {
                warn!("engine: {e}");
            }
            if let Err(e) = self.subscriber.tick(now) {
                warn!("engine: {e}");
            }
            if let Err(e) = self.handle_peer_events().await {
                warn!("engine: {e}");
            }
            self.expire_pending_publish(now);
            if !self.reliable_backlog.is_empty()
                && let Err(e) = self.flush_reliable()
            {
                warn!("engine: {e}");
            }
            if !self.publisher.rtc.is_alive() && self.publisher.connected {
                break DisconnectReason::TransportFailed(PeerRole::Publisher);
            }
        };
        info!("engine stopped: {reason:?}");
        // Disconnected must not be lost: wait for room.
        let _ = self.events.send(EngineEvent::Disconnected(reason)).await;
    }

    fn emit(&self, ev: EngineEvent) {
        if let Err(e) = self.events.try_send(ev) {
            match e {
                mpsc::error::TrySendError::Full(ev) => {
                    self.counters.dropped_events.fetch_add(1, Ordering::Relaxed);
                    debug!("event stream full, dropped {ev:?}");
                }
                mpsc::error::TrySendError::Closed(_) => {}
            }
        }
    }

    async fn send_signal(&self, msg: proto::signal_request::Message) {
        self.signal.send(msg).await;
    }

    async fn leave(&mut self) {
        self.send_signal(proto::signal_request::Message::Leave(proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            regions: None,
        }))
        .await;
        self.publisher.rtc.disconnect();
        self.subscriber.rtc.disconnect();
        let _ = self.publisher.drain();
        let _ = self.subscriber.drain();
        self.signal.close().await;
    }

    // ---------------------------------------------------------------- signal

    async fn on_signal(&mut self, msg: proto::signal_response::Message) -> Result<(), EngineError> {
        use proto::signal_response::Message as M;
        match msg {
            M::Offer(desc) => self.on_subscriber_offer(desc).await?,
            M::Answer(desc) => self.on_publisher_answer(desc).await?,
            M::Trickle(t) => self.on_trickle(t)?,
            M::Update(u) => {
                for p in &u.participants {
                    self.on_participant(p);
                }
            }
            M::TrackPublished(r) => self.on_track_published(r).await?,
            M::TrackUnpublished(r) => {
                debug!("server unpublished our track {}", r.track_sid);
            }
            M::Leave(l) => {
                let action = proto::leave_request::Action::try_from(l.action)
                    .unwrap_or(proto::leave_request::Action::Disconnect);
                let reason = proto::DisconnectReason::try_from(l.reason)
                    .map(|r| r.as_str_name().to_owned())
                    .unwrap_or_else(|_| l.reason.to_string());
                info!("server leave: {reason} {action:?}");
                self.emit(EngineEvent::Disconnected(DisconnectReason::ServerLeave {
                    reason,
                    reconnect: action != proto::leave_request::Action::Disconnect,
                }));
            }
            M::Mute(m) => {
                // The server muted one of our tracks.
                if let Some(t) = self.local_tracks.values_mut().find(|t| t.sid == m.sid) {
                    t.muted = m.muted;
                }
                self.emit(EngineEvent::TrackMuted {
                    participant_sid: self.local.sid.clone(),
                    track_sid: m.sid,
                    muted: m.muted,
                });
            }
            M::SpeakersChanged(s) => {
                let list = s
                    .speakers
                    .iter()
                    .filter(|s| s.active)
                    .map(|s| (s.sid.clone(), s.level))
                    .collect();
                self.emit(EngineEvent::ActiveSpeakers(list));
            }
            M::ConnectionQuality(q) => {
                let list = q
                    .updates
                    .iter()
                    .map(|u| {
                        let quality = match proto::ConnectionQuality::try_from(u.quality) {
                            Ok(proto::ConnectionQuality::Excellent) => Quality::Excellent,
                            Ok(proto::ConnectionQuality::Good) => Quality::Good,
                            Ok(proto::ConnectionQuality::Lost) => Quality::Lost,
                            _ => Quality::Poor,
                        };
                        (u.participant_sid.clone(), quality)
                    })
                    .collect();
                self.emit(EngineEvent::ConnectionQuality(list));
            }
            other => trace!("signal message ignored: {other:?}"),
        }
        Ok(())
    }

    fn on_participant(&mut self, p: &proto::ParticipantInfo) {
        if p.sid == self.local.sid || p.identity == self.local.identity {
            return;
        }
        let info = Participant::from_proto(p);
        let disconnected = p.state == proto::participant_info::State::Disconnected as i32;
        if disconnected {
            if let Some(old) = self.participants.remove(&p.sid) {
                for t in old.tracks.keys() {
                    self.emit(EngineEvent::TrackUnpublished {
                        participant_sid: p.sid.clone(),
                        track_sid: t.clone(),
                    });
                }
                self.emit(EngineEvent::ParticipantLeft(old.info));
            }
            return;
        }
        let is_new = !self.participants.contains_key(&p.sid);
        let entry = self
            .participants
            .entry(p.sid.clone())
            .or_insert_with(|| RemoteParticipant {
                info: info.clone(),
                tracks: HashMap::new(),
            });
        let mut out = Vec::new();
        if is_new {
            out.push(EngineEvent::ParticipantJoined(info.clone()));
        } else if entry.info != info {
            entry.info = info.clone();
            out.push(EngineEvent::ParticipantUpdated(info.clone()));
        }
        let mut seen = Vec::with_capacity(p.tracks.len());
        for t in &p.tracks {
            let ti = TrackInfo::from_proto(t);
            seen.push(ti.sid.clone());
            match entry.tracks.get(&ti.sid) {
                None => {
                    out.push(EngineEvent::TrackPublished {
                        participant: info.clone(),
                        track: ti.clone(),
                    });
                    entry.tracks.insert(ti.sid.clone(), ti);
                }
                Some(old) if old.muted != ti.muted => {
                    out.push(EngineEvent::TrackMuted {
                        participant_sid: p.sid.clone(),
                        track_sid: ti.sid.clone(),
                        muted: ti.muted,
                    });
                    entry.tracks.insert(ti.sid.clone(), ti);
                }
                Some(_) => {
                    entry.tracks.insert(ti.sid.clone(), ti);
                }
            }
        }
        let gone: Vec<String> = entry
            .tracks
            .keys()
            .filter(|k| !seen.contains(k))
            .cloned()
            .collect();
        for sid in gone {
            entry.tracks.remove(&sid);
            out.push(EngineEvent::TrackUnpublished {
                participant_sid: p.sid.clone(),
                track_sid: sid,
            });
        }
        for ev in out {
            self.emit(ev);
        }
    }

    fn on_trickle(&mut self, t: proto::TrickleRequest) -> Result<(), EngineError> {
        let cand = match parse_candidate_init(&t.candidate_init) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e) => {
                warn!("ignoring remote candidate: {e}");
                return Ok(());
            }
        };
        if t.target == proto::SignalTarget::Subscriber as i32 {
            self.subscriber.add_remote_candidate(cand)
        } else {
            self.publisher.add_remote_candidate(cand)
        }
    }

    async fn trickle_local(&self, role: PeerRole) -> Result<(), EngineError> {
        let peer = match role {
            PeerRole::Publisher => &self.publisher,
            PeerRole::Subscriber => &self.subscriber,
        };
        let c = peer.local_candidate()?;
        let target = match role {
            PeerRole::Publisher => proto::SignalTarget::Publisher,
            PeerRole::Subscriber => proto::SignalTarget::Subscriber,
        };
        self.send_signal(proto::signal_request::Message::Trickle(
            proto::TrickleRequest {
                candidate_init: candidate_init(&c),
                target: target as i32,
                r#final: false,
            },
        ))
        .await;
        Ok(())
    }

    async fn on_subscriber_offer(
        &mut self,
        desc: proto::SessionDescription,
    ) -> Result<(), EngineError> {
        let role = PeerRole::Subscriber;
        debug!("subscriber offer id {}:\n{}", desc.id, desc.sdp);
        let offer = SdpOffer::from_sdp_string(&desc.sdp).map_err(|source| EngineError::Sdp {
            role,
            kind: "offer",
            source,
        })?;
        let answer: SdpAnswer =
            self.subscriber
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .map_err(|source| EngineError::Rtc {
                    role,
                    what: "answering the subscriber offer",
                    source,
                })?;
        self.subscriber.drain()?;
        self.subscriber.remote_description_applied()?;
        let sdp = answer.to_sdp_string();
        debug!("subscriber answer:\n{sdp}");
        self.send_signal(proto::signal_request::Message::Answer(
            proto::SessionDescription {
                r#type: "answer".into(),
                sdp,
                id: desc.id,
                mid_to_track_id: HashMap::new(),
            },
        ))
        .await;
        if !self.sub_trickled {
            self.sub_trickled = true;
            self.trickle_local(role).await?;
        }
        self.map_remote_tracks(&desc.sdp).await;
        Ok(())
    }

    /// Match the offer's media sections to remote tracks: new msid on a mid → new subscription.
    async fn map_remote_tracks(&mut self, sdp_text: &str) {
        for s in sdp::sections(sdp_text) {
            let kind = match s.kind {
                SectionKind::Audio => TrackKind::Audio,
                SectionKind::Video => TrackKind::Video,
                _ => continue,
            };
            let mid = Mid::from(s.mid.as_str());
            let sending = s.remote_sends();
            let track_sid = s.track_sid().map(str::to_owned);
            let current = self.remote.get(&mid).map(|r| r.sid.clone());
            match (sending, track_sid, current) {
                (true, Some(sid), Some(cur)) if sid == cur => {}
                (true, Some(sid), cur) => {
                    if let Some(old) = cur {
                        self.remote.remove(&mid);
                        self.emit(EngineEvent::TrackUnsubscribed { track_sid: old });
                    }
                    let participant_sid = s.participant_sid().unwrap_or_default().to_owned();
                    let (identity, name) = self
                        .participants
                        .get(&participant_sid)
                        .map(|p| {
                            (
                                p.info.identity.clone(),
                                p.tracks
                                    .get(&sid)
                                    .map(|t| t.name.clone())
                                    .unwrap_or_default(),
                            )
                        })
                        .unwrap_or_default();
                    let (tx, rx) = mpsc::channel(self.options.track_capacity.max(1));
                    let dropped = Arc::new(AtomicU64::new(0));
                    self.remote.insert(
                        mid,
                        RemoteState {
                            sid: sid.clone(),
                            kind,
                            tx,
                            dropped: dropped.clone(),
                            need_keyframe: kind == TrackKind::Video,
                            last_pli: None,
                        },
                    );
                    info!("subscribed {kind:?} track {sid} of {participant_sid} on mid {mid}");
                    let track = RemoteTrack {
                        sid,
                        participant_sid,
                        participant_identity: identity,
                        name,
                        kind,
                        frames: rx,
                        commands: self.commands.clone(),
                        dropped,
                    };
                    // Must not be lost: wait for room in the event stream.
                    let _ = self.events.send(EngineEvent::TrackSubscribed(track)).await;
                }
                (false, _, Some(old)) | (true, None, Some(old)) => {
                    self.remote.remove(&mid);
                    self.emit(EngineEvent::TrackUnsubscribed { track_sid: old });
                }
                _ => {}
            }
        }
    }

    async fn on_publisher_answer(
        &mut self,
        desc: proto::SessionDescription,
    ) -> Result<(), EngineError> {
        let role = PeerRole::Publisher;
        let Some(pending) = self.pub_pending.take() else {
            warn!("publisher answer without an offer in flight");
            return Ok(());
        };
        debug!("publisher answer:\n{}", desc.sdp);
        let answer = SdpAnswer::from_sdp_string(&desc.sdp).map_err(|source| EngineError::Sdp {
            role,
            kind: "answer",
            source,
        })?;
        self.publisher
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|source| EngineError::Rtc {
                role,
                what: "applying the publisher answer",
                source,
            })?;
        self.publisher.drain()?;
        self.publisher.remote_description_applied()?;
        if !self.pub_trickled {
            self.pub_trickled = true;
            self.trickle_local(role).await?;
        }
        if !self.pub_changes.is_empty() {
            self.negotiate_publisher().await?;
        }
        Ok(())
    }

    /// Apply queued publisher changes and send an offer, unless one is in flight.
    async fn negotiate_publisher(&mut self) -> Result<(), EngineError> {
        if self.pub_pending.is_some() || self.pub_changes.is_empty() {
            return Ok(());
        }
        let role = PeerRole::Publisher;
        let local_sid = self.local.sid.clone();
        let changes = std::mem::take(&mut self.pub_changes);
        let mut api = self.publisher.rtc.sdp_api();
        let mut new_mids = Vec::new();
        for change in changes {
            match change {
                PubChange::Channels => {
                    self.reliable = Some(api.add_channel_with_config(ChannelConfig {
                        label: "_reliable".into(),
                        ordered: true,
                        reliability: Reliability::Reliable,
                        negotiated: None,
                        protocol: String::new(),
                    }));
                    self.lossy = Some(api.add_channel_with_config(ChannelConfig {
                        label: "_lossy".into(),
                        ordered: false,
                        reliability: Reliability::MaxRetransmits { retransmits: 0 },
                        negotiated: None,
                        protocol: String::new(),
                    }));
                }
                PubChange::Media { kind, cid, .. } => {
                    let mk = match kind {
                        TrackKind::Audio => MediaKind::Audio,
                        TrackKind::Video => MediaKind::Video,
                    };
                    let mid = api.add_media(
                        mk,
                        Direction::SendOnly,
                        Some(local_sid.clone()),
                        Some(cid.to_string()),
                        None,
                    );
                    new_mids.push((cid, mid));
                }
                PubChange::Stop(mid) => api.set_direction(mid, Direction::Inactive),
            }
        }
        let applied = api.apply();
        for (cid, mid) in new_mids {
            if let Some(t) = self.local_tracks.get_mut(&cid) {
                t.mid = Some(mid);
            }
        }
        let Some((offer, pending)) = applied else {
            return self.publisher.drain();
        };
        self.publisher.drain()?;
        self.pub_pending = Some(pending);
        let sdp = offer.to_sdp_string();
        debug!("publisher offer:\n{sdp}");
        let _ = role;
        self.send_signal(proto::signal_request::Message::Offer(
            proto::SessionDescription {
                r#type: "offer".into(),
                sdp,
                id: 0,
                mid_to_track_id: HashMap::new(),
            },
        ))
        .await;
        Ok(())
    }

    async fn on_track_published(
        &mut self,
        r: proto::TrackPublishedResponse,
    ) -> Result<(), EngineError> {
        let Some(p) = self.pending_publish.remove(r.cid.as_str()) else {
            debug!("TrackPublished for unknown cid {}", r.cid);
            return Ok(());
        };
        let sid = r.track.map(|t| t.sid).unwrap_or_default();
        info!(
            "track {:?} published as {sid} (cid {})",
            p.options.name, p.cid
        );
        let shared = Arc::new(LocalShared::default());
        shared.keyframe_requested.store(true, Ordering::Relaxed);
        let kind = p.options.kind;
        self.local_tracks.insert(
            p.cid.clone(),
            LocalTrackState {
                sid: sid.clone(),
                cid: p.cid.clone(),
                kind,
                mid: None,
                muted: p.options.muted,
                shared: shared.clone(),
                rtp_offset: u64::from(random_u32()),
            },
        );
        self.pub_changes.push(PubChange::Media {
            kind,
            cid: p.cid.clone(),
        });
        self.negotiate_publisher().await?;
        let handle = LocalTrack {
            sid,
            cid: p.cid,
            kind,
            name: p.options.name,
            media: self.media_tx.clone(),
            shared,
        };
        let _ = p.reply.send(Ok(handle));
        Ok(())
    }

    fn expire_pending_publish(&mut self, now: Instant) {
        let expired: Vec<Arc<str>> = self
            .pending_publish
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for cid in expired {
            if let Some(p) = self.pending_publish.remove(&cid) {
                let _ = p.reply.send(Err(EngineError::PublishTimeout {
                    name: p.options.name,
                    cid: cid.to_string(),
                    timeout_ms: self.options.publish_timeout.as_millis() as u64,
                }));
            }
        }
    }

    // ---------------------------------------------------------------- commands

    #[allow(deprecated)] // disable_dtx: still honoured by v1.13 servers.
    async fn on_command(&mut self, c: Command) -> Result<(), EngineError> {
        match c {
            Command::Publish { options, reply } => {
                self.next_cid += 1;
                let cid: Arc<str> = format!("TR_wc{:08x}{}", random_u32(), self.next_cid).into();
                let track_type = match options.kind {
                    TrackKind::Audio => proto::TrackType::Audio,
                    TrackKind::Video => proto::TrackType::Video,
                };
                let req = proto::AddTrackRequest {
                    cid: cid.to_string(),
                    name: options.name.clone(),
                    r#type: track_type as i32,
                    width: options.width,
                    height: options.height,
                    muted: options.muted,
                    source: options.source.to_proto() as i32,
                    disable_red: true,
                    disable_dtx: true,
                    ..Default::default()
                };
                self.pending_publish.insert(
                    cid.clone(),
                    PendingPublish {
                        options,
                        cid,
                        reply,
                        deadline: Instant::now() + self.options.publish_timeout,
                    },
                );
                self.send_signal(proto::signal_request::Message::AddTrack(req))
                    .await;
            }
            Command::Unpublish { sid, reply } => {
                let cid = self
                    .local_tracks
                    .values()
                    .find(|t| t.sid == sid)
                    .map(|t| t.cid.clone());
                let Some(cid) = cid else {
                    let _ = reply.send(Err(EngineError::UnknownTrack(sid)));
                    return Ok(());
                };
                if let Some(t) = self.local_tracks.remove(&cid)
                    && let Some(mid) = t.mid
                {
                    self.pub_changes.push(PubChange::Stop(mid));
                }
                let r = self.negotiate_publisher().await;
                let _ = reply.send(r);
            }
            Command::Mute { sid, muted, reply } => {
                let Some(t) = self.local_tracks.values_mut().find(|t| t.sid == sid) else {
                    let _ = reply.send(Err(EngineError::UnknownTrack(sid)));
                    return Ok(());
                };
                t.muted = muted;
                if !muted {
                    t.shared.keyframe_requested.store(true, Ordering::Relaxed);
                }
                self.send_signal(proto::signal_request::Message::Mute(
                    proto::MuteTrackRequest { sid, muted },
                ))
                .await;
                let _ = reply.send(Ok(()));
            }
            Command::Data {
                payload,
                options,
                reply,
            } => {
                let r = self.send_data(payload, options);
                let _ = reply.send(r);
            }
            Command::RequestKeyframe { track_sid } => {
                let mid = self
                    .remote
                    .iter()
                    .find(|(_, r)| r.sid == track_sid)
                    .map(|(m, _)| *m);
                if let Some(mid) = mid {
                    self.request_keyframe(mid)?;
                }
            }
            Command::Close { .. } => {}
        }
        Ok(())
    }

    fn send_data(&mut self, payload: Vec<u8>, options: DataOptions) -> Result<(), EngineError> {
        let (id, label) = if options.reliable {
            (self.reliable, "_reliable")
        } else {
            (self.lossy, "_lossy")
        };
        let Some(id) = id else {
            return Err(EngineError::ChannelNotOpen { label });
        };
        let sequence = if options.reliable {
            self.reliable_seq += 1;
            self.reliable_seq
        } else {
            0
        };
        let kind = if options.reliable {
            proto::data_packet::Kind::Reliable
        } else {
            proto::data_packet::Kind::Lossy
        };
        #[allow(deprecated)]
        let packet = proto::DataPacket {
            kind: kind as i32,
            participant_identity: self.local.identity.clone(),
            destination_identities: options.destination_identities.clone(),
            sequence,
            participant_sid: self.local.sid.clone(),
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                participant_sid: self.local.sid.clone(),
                participant_identity: self.local.identity.clone(),
                payload,
                destination_identities: options.destination_identities,
                topic: options.topic,
                ..Default::default()
            })),
        };
        let bytes = packet.encode_to_vec();
        if options.reliable {
            if self.reliable_backlog.len() >= RELIABLE_BACKLOG {
                return Err(EngineError::DataBufferFull {
                    label,
                    queued: self.reliable_backlog.len(),
                });
            }
            // Keep order: everything goes through the backlog, which flushes what SCTP accepts.
            self.reliable_backlog.push_back(bytes);
            return self.flush_reliable();
        }
        let Some(mut ch) = self.publisher.rtc.channel(id) else {
            return Err(EngineError::ChannelNotOpen { label });
        };
        let accepted = ch.write(true, &bytes).map_err(|source| EngineError::Rtc {
            role: PeerRole::Publisher,
            what: "writing to a data channel",
            source,
        })?;
        if !accepted {
            // Lossy data: a full send buffer drops the packet.
            self.lossy_drops += 1;
        }
        self.publisher.drain()
    }

    /// Write queued reliable packets while SCTP accepts them.
    fn flush_reliable(&mut self) -> Result<(), EngineError> {
        let Some(id) = self.reliable else {
            return Ok(());
        };
        while let Some(bytes) = self.reliable_backlog.front() {
            let Some(mut ch) = self.publisher.rtc.channel(id) else {
                return Ok(()); // not open yet: keep them queued
            };
            let accepted = ch.write(true, bytes).map_err(|source| EngineError::Rtc {
                role: PeerRole::Publisher,
                what: "writing to the reliable data channel",
                source,
            })?;
            self.publisher.drain()?;
            if !accepted {
                break;
            }
            self.reliable_backlog.pop_front();
        }
        Ok(())
    }

    fn request_keyframe(&mut self, mid: Mid) -> Result<(), EngineError> {
        let now = Instant::now();
        if let Some(r) = self.remote.get_mut(&mid) {
            if r.last_pli
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(300))
            {
                return Ok(());
            }
            r.last_pli = Some(now);
        }
        if let Some(mut w) = self.subscriber.rtc.writer(mid)
            && let Err(e) = w.request_keyframe(None, KeyframeRequestKind::Pli)
        {
            debug!("keyframe request on mid {mid}: {e}");
        }
        self.subscriber.drain()
    }

    fn on_media_write(&mut self, m: MediaWrite) -> Result<(), EngineError> {
        let Some(t) = self.local_tracks.get(&m.cid) else {
            return Ok(()); // unpublished meanwhile
        };
        let (Some(mid), false) = (t.mid, t.muted) else {
            return Ok(());
        };
        if !self.publisher.connected {
            return Ok(());
        }
        let (codec, freq) = match t.kind {
            TrackKind::Audio => (Codec::Opus, str0m::media::Frequency::FORTY_EIGHT_KHZ),
            TrackKind::Video => (Codec::Vp8, str0m::media::Frequency::NINETY_KHZ),
        };
        let rtp_time = m.rtp_time.wrapping_add(t.rtp_offset);
        let Some(writer) = self.publisher.rtc.writer(mid) else {
            return Ok(());
        };
        let Some(pt) = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
        else {
            warn!("no negotiated {codec:?} payload type on mid {mid}");
            return Ok(());
        };
        writer
            .write(pt, m.capture, MediaTime::new(rtp_time, freq), m.data)
            .map_err(|source| EngineError::Rtc {
                role: PeerRole::Publisher,
                what: "writing media",
                source,
            })?;
        self.publisher.drain()
    }

    // ---------------------------------------------------------------- peer events

    async fn handle_peer_events(&mut self) -> Result<(), EngineError> {
        while let Some(ev) = self.publisher.events.pop_front() {
            self.on_peer_event(PeerRole::Publisher, ev).await?;
        }
        while let Some(ev) = self.subscriber.events.pop_front() {
            self.on_peer_event(PeerRole::Subscriber, ev).await?;
        }
        Ok(())
    }

    async fn on_peer_event(&mut self, role: PeerRole, ev: Event) -> Result<(), EngineError> {
        match ev {
            Event::Connected => {
                info!(%role, "connected (ICE + DTLS)");
                match role {
                    PeerRole::Publisher => self.publisher.connected = true,
                    PeerRole::Subscriber => self.subscriber.connected = true,
                }
                self.emit(EngineEvent::Transport {
                    role,
                    state: TransportState::Connected,
                });
            }
            Event::IceConnectionStateChange(s) => {
                debug!(%role, "ICE {s:?}");
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
                    self.sub_channels.insert(id, label != "_lossy");
                }
                self.emit(EngineEvent::DataChannelOpen { role, label });
            }
            Event::ChannelData(d) => {
                let reliable = match role {
                    PeerRole::Subscriber => self.sub_channels.get(&d.id).copied().unwrap_or(true),
                    PeerRole::Publisher => Some(d.id) == self.reliable,
                };
                self.on_data_packet(&d.data, reliable);
            }
            Event::MediaData(md) => self.on_media_data(md)?,
            Event::KeyframeRequest(kr) if role == PeerRole::Publisher => {
                if let Some(t) = self.local_tracks.values().find(|t| t.mid == Some(kr.mid)) {
                    debug!("keyframe requested for {} ({:?})", t.sid, kr.kind);
                    t.shared.keyframe_requested.store(true, Ordering::Relaxed);
                }
            }
            Event::EgressBitrateEstimate(bwe) => {
                let bps = match bwe {
                    str0m::bwe::BweKind::Twcc { estimate, .. } => estimate.as_u64(),
                    str0m::bwe::BweKind::Remb { estimate, .. } => estimate.as_u64(),
                    _ => 0,
                };
                for t in self.local_tracks.values() {
                    t.shared.target_bitrate.store(bps, Ordering::Relaxed);
                }
            }
            Event::MediaAdded(m) => debug!(%role, "media added: mid {} {:?}", m.mid, m.kind),
            other => trace!(%role, "rtc event {other:?}"),
        }
        Ok(())
    }

    #[allow(deprecated)] // Speaker packets and UserPacket identity are still sent by servers.
    fn on_data_packet(&mut self, bytes: &[u8], reliable: bool) {
        let packet = match proto::DataPacket::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                debug!("undecodable data packet ({} bytes): {e}", bytes.len());
                return;
            }
        };
        match packet.value {
            Some(proto::data_packet::Value::User(u)) => {
                let identity = if packet.participant_identity.is_empty() {
                    u.participant_identity
                } else {
                    packet.participant_identity
                };
                self.emit(EngineEvent::DataReceived {
                    participant_identity: identity,
                    topic: u.topic,
                    payload: u.payload,
                    reliable,
                });
            }
            Some(proto::data_packet::Value::Speaker(s)) => {
                let list = s
                    .speakers
                    .iter()
                    .filter(|s| s.active)
                    .map(|s| (s.sid.clone(), s.level))
                    .collect();
                self.emit(EngineEvent::ActiveSpeakers(list));
            }
            _ => trace!("data packet of another kind ignored"),
        }
    }

    fn on_media_data(&mut self, md: str0m::media::MediaData) -> Result<(), EngineError> {
        let mid = md.mid;
        let keyframe = md.is_keyframe();
        let Some(r) = self.remote.get_mut(&mid) else {
            trace!("media on unmapped mid {mid}");
            return Ok(());
        };
        let mut want_pli = false;
        if r.kind == TrackKind::Video {
            if !md.contiguous {
                r.need_keyframe = true;
            }
            if r.need_keyframe {
                if keyframe {
                    r.need_keyframe = false;
                } else {
                    want_pli = true;
                }
            }
        }
        if !want_pli {
            let frame = EncodedFrame {
                data: md.data,
                rtp_time: md.time.numer(),
                received_at: md.network_time,
                keyframe,
                contiguous: md.contiguous,
            };
            match r.tx.try_send(frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    r.dropped.fetch_add(1, Ordering::Relaxed);
                    if r.kind == TrackKind::Video {
                        r.need_keyframe = true;
                        want_pli = true;
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        if want_pli {
            self.request_keyframe(mid)?;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_never_carry_the_token() {
        let token = "eyJhbGciOi.secretpart.sig";
        let msg = format!("invalid token: {token}, error: signature is invalid");
        let e = classify_connect_error("ws://h", token, SignalError::Client(http_status(401), msg));
        let text = format!("{e} {e:?}");
        assert!(!text.contains("secretpart"), "{text}");
        assert!(matches!(e, EngineError::Unauthorized { status: 401, .. }));
        assert!(!e.is_retryable());
    }

    fn http_status(code: u16) -> http::StatusCode {
        http::StatusCode::from_u16(code).expect("valid status")
    }
}
