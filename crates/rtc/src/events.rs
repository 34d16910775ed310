//! The engine's typed event stream.

use std::collections::BTreeMap;

use crate::error::PeerRole;
use crate::track::{RemoteTrack, TrackKind, TrackSource};

/// A participant as the server describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Participant {
    /// Server-assigned sid (`PA_…`).
    pub sid: String,
    /// The identity from the token.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Application metadata.
    pub metadata: String,
    /// Key/value attributes (set by the participant or the server API).
    pub attributes: BTreeMap<String, String>,
    /// What kind of participant it is (a person's client, an agent, SIP, …).
    pub kind: ParticipantKind,
    /// The data-plane protocol its client speaks (`ClientInfo.client_protocol`): 0 data
    /// streams and RPC packets, 1 RPC over data streams too, 2 single-packet streams too.
    pub client_protocol: i32,
    /// Its client reads DEFLATE-compressed data streams (capability `CAP_COMPRESSION_DEFLATE_RAW`).
    pub reads_deflate: bool,
}

impl Participant {
    pub(crate) fn from_proto(p: &livekit_protocol::ParticipantInfo) -> Self {
        Self {
            sid: p.sid.clone(),
            identity: p.identity.clone(),
            name: p.name.clone(),
            metadata: p.metadata.clone(),
            attributes: p
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            kind: ParticipantKind::from_proto(p.kind),
            client_protocol: p.client_protocol,
            reads_deflate: p.capabilities.contains(
                &(livekit_protocol::client_info::Capability::CapCompressionDeflateRaw as i32),
            ),
        }
    }
}

/// What kind of participant the server says it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParticipantKind {
    /// A client such as a browser, an SDK app or wavecast.
    #[default]
    Standard,
    /// An ingress (a stream pushed in from outside).
    Ingress,
    /// An egress (a recorder or streamer run by the server).
    Egress,
    /// A SIP (telephone) participant.
    Sip,
    /// A LiveKit agent.
    Agent,
    /// A connector.
    Connector,
    /// A kind this version does not know (the protocol's number).
    Other(i32),
}

impl ParticipantKind {
    /// From the protocol's `ParticipantInfo.kind`.
    pub fn from_proto(kind: i32) -> Self {
        use livekit_protocol::participant_info::Kind;
        match Kind::try_from(kind) {
            Ok(Kind::Standard) => Self::Standard,
            Ok(Kind::Ingress) => Self::Ingress,
            Ok(Kind::Egress) => Self::Egress,
            Ok(Kind::Sip) => Self::Sip,
            Ok(Kind::Agent) => Self::Agent,
            Ok(Kind::Connector) => Self::Connector,
            _ => Self::Other(kind),
        }
    }
}

/// A published track as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Track sid (`TR_…`).
    pub sid: String,
    /// Track name.
    pub name: String,
    /// Audio or video (`None` for data tracks and unknown kinds).
    pub kind: Option<TrackKind>,
    /// Source label.
    pub source: TrackSource,
    /// Whether the publisher muted it.
    pub muted: bool,
    /// Video width.
    pub width: u32,
    /// Video height.
    pub height: u32,
    /// Whether its frames are end-to-end encrypted (`Encryption.Type` other than NONE).
    pub encrypted: bool,
    /// Its codec, as the server names it (`None` while the server does not know it yet, or
    /// for a codec we do not speak).
    pub codec: Option<crate::MediaCodec>,
    /// Its simulcast layers as the publisher announced them, smallest first (one layer without
    /// simulcast; none for audio).
    pub layers: Vec<crate::VideoLayer>,
}

impl TrackInfo {
    pub(crate) fn from_proto(t: &livekit_protocol::TrackInfo) -> Self {
        let kind = match livekit_protocol::TrackType::try_from(t.r#type) {
            Ok(livekit_protocol::TrackType::Audio) => Some(TrackKind::Audio),
            Ok(livekit_protocol::TrackType::Video) => Some(TrackKind::Video),
            _ => None,
        };
        Self {
            sid: t.sid.clone(),
            name: t.name.clone(),
            kind,
            source: TrackSource::from_proto(t.source),
            muted: t.muted,
            width: t.width,
            height: t.height,
            encrypted: t.encryption != livekit_protocol::encryption::Type::None as i32,
            codec: crate::MediaCodec::from_mime(&t.mime_type),
            layers: {
                // Newer servers list layers per codec; older ones on the track.
                #[allow(deprecated)]
                let announced = t
                    .codecs
                    .iter()
                    .find(|c| !c.layers.is_empty())
                    .map_or(&t.layers, |c| &c.layers);
                let mut layers: Vec<crate::VideoLayer> = announced
                    .iter()
                    .filter_map(|l| {
                        Some(crate::VideoLayer {
                            quality: crate::VideoQuality::from_proto(l.quality)?,
                            width: l.width,
                            height: l.height,
                            bitrate: l.bitrate,
                        })
                    })
                    .collect();
                layers.sort_by_key(|l| l.quality);
                layers
            },
        }
    }
}

/// Connection quality the server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// Excellent.
    Excellent,
    /// Good.
    Good,
    /// Poor.
    Poor,
    /// Lost.
    Lost,
}

/// State of one peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportState {
    /// ICE and DTLS are up: media and data can flow.
    Connected,
    /// ICE lost the path (may come back).
    Disconnected,
}

/// Why the engine stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// We called `close`.
    ClientInitiated,
    /// The server sent a leave request; `resume` says whether it asks us to resume/reconnect.
    ServerLeave {
        /// The server's reason (protobuf `DisconnectReason` name).
        reason: String,
        /// True when the server's action is RESUME or RECONNECT (retry makes sense).
        reconnect: bool,
    },
    /// The signal connection closed (ping timeout, socket error).
    SignalClosed(String),
    /// A peer connection failed for good.
    TransportFailed(PeerRole),
}

/// Everything the engine reports, in one bounded stream.
///
/// Policy when the reader falls behind (the engine's network loop never waits for the reader):
/// - *Droppable* events — [`EngineEvent::ActiveSpeakers`], [`EngineEvent::ConnectionQuality`]
///   (periodic, each superseding the last) and lossy [`EngineEvent::DataReceived`] — are dropped
///   when the stream is full, newest first, and counted in `Engine::dropped_events`.
/// - Every other event (the roster: participants and publications, mute states; subscriptions,
///   which carry track handles; transport states; reliable data; `Disconnected`) is never
///   dropped: the engine holds it, in order, and delivers it as the reader makes room
///   (`Engine::held_events_peak` says how far the reader fell behind). While events are held,
///   droppable ones are dropped, so the order of must-deliver events is kept.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineEvent {
    /// A participant joined (or was already there when we joined).
    ParticipantJoined(Participant),
    /// A participant left.
    ParticipantLeft(Participant),
    /// A participant's name or metadata changed.
    ParticipantUpdated(Participant),
    /// Our own participant info changed (our update confirmed, or the server API changed it).
    LocalParticipantUpdated(Participant),
    /// A remote participant published a track.
    TrackPublished {
        /// The publisher.
        participant: Participant,
        /// The track.
        track: Box<TrackInfo>,
    },
    /// A remote participant unpublished a track.
    TrackUnpublished {
        /// The publisher's sid.
        participant_sid: String,
        /// The track's sid.
        track_sid: String,
    },
    /// We are receiving a track: read its frames from the handle.
    TrackSubscribed(RemoteTrack),
    /// A subscribed track ended.
    TrackUnsubscribed {
        /// The track's sid.
        track_sid: String,
    },
    /// A track's mute state changed (remote, or ours as confirmed by the server).
    TrackMuted {
        /// The publisher's sid.
        participant_sid: String,
        /// The track's sid.
        track_sid: String,
        /// Muted or not.
        muted: bool,
    },
    /// The room's metadata changed (the server API's `UpdateRoomMetadata`).
    RoomMetadataChanged {
        /// The new metadata.
        metadata: String,
    },
    /// The server could not subscribe us to a track (unsupported codec, track gone).
    TrackSubscriptionFailed {
        /// The track's sid.
        track_sid: String,
        /// The server's reason (protobuf `SubscriptionError` name).
        reason: String,
    },
    /// The current active speakers, loudest first: (participant sid, level 0..1).
    ActiveSpeakers(Vec<(String, f32)>),
    /// Connection quality updates: (participant sid, quality).
    ConnectionQuality(Vec<(String, Quality)>),
    /// A peer connection changed state.
    Transport {
        /// Which connection.
        role: PeerRole,
        /// Its new state.
        state: TransportState,
    },
    /// A data channel opened.
    DataChannelOpen {
        /// Which connection.
        role: PeerRole,
        /// `_reliable` or `_lossy`.
        label: String,
    },
    /// A user data packet arrived.
    DataReceived {
        /// The sender's identity.
        participant_identity: String,
        /// The topic, if any.
        topic: Option<String>,
        /// The payload.
        payload: Vec<u8>,
        /// Whether it came on the reliable channel.
        reliable: bool,
    },
    /// An end-to-end encrypted data packet arrived: the engine has no keys; the session opens
    /// it (dropped like other data when it came lossy and the reader is behind).
    EncryptedData {
        /// The sender's identity (empty when the server API sent it).
        participant_identity: String,
        /// The packet.
        packet: Box<crate::data_message::EncryptedData>,
        /// Whether it came on the reliable channel.
        reliable: bool,
    },
    /// A data-stream or RPC packet arrived (reliable; never dropped).
    DataMessage {
        /// The sender's identity (empty when the server API sent it).
        participant_identity: String,
        /// The packet (boxed: a stream header is large beside the other events).
        message: Box<crate::data_message::DataMessage>,
    },
    /// The signal connection was lost (or the server asked us to resume): the engine is
    /// resuming — reconnecting the signal with the same participant and restarting ICE, keeping
    /// every track and subscription. [`EngineEvent::Resumed`] follows on success, else
    /// [`EngineEvent::Disconnected`].
    Resuming {
        /// Why.
        reason: String,
    },
    /// The resume succeeded: same participant sid, tracks and subscriptions.
    Resumed {
        /// From losing the signal to the server's reconnect response, ICE restart offered and
        /// sync state sent (media follows once ICE reconnects).
        took: std::time::Duration,
    },
    /// The engine stopped; no more events follow.
    Disconnected(DisconnectReason),
}

impl EngineEvent {
    /// Whether the engine may drop this event when the reader is behind (see the type's docs).
    pub fn is_droppable(&self) -> bool {
        matches!(
            self,
            EngineEvent::ActiveSpeakers(_)
                | EngineEvent::ConnectionQuality(_)
                | EngineEvent::DataReceived {
                    reliable: false,
                    ..
                }
                | EngineEvent::EncryptedData {
                    reliable: false,
                    ..
                }
        )
    }
}
