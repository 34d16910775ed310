//! Room events (the official SDKs' names), their queue and its drop policy.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use wavecast_rtc::{Quality, TrackKind, TrackSource};

use super::participant::Participant;
use super::roster::{RemoteParticipant, RemoteTrackPublication};
use crate::ids::{ParticipantIdentity, TrackSid};
use crate::session::{E2eeState, EndReason, PublishedTrack, SessionError, SubscribedTrack};

/// A participant speaking now, loudest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveSpeaker {
    /// Its identity.
    pub identity: ParticipantIdentity,
    /// Audio level, 0..1.
    pub level: f32,
    /// Whether it is us.
    pub local: bool,
}

/// The room's connection, as the SDKs name its states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Joined; the media connections are coming up.
    Connecting,
    /// Joined, media connections up.
    Connected,
    /// The connection was lost; rejoin attempt `attempt` (1-based) is waiting or running.
    Reconnecting {
        /// The attempt number.
        attempt: u32,
    },
    /// The room is left for good; [`RoomEvent::Disconnected`] says why.
    Disconnected,
}

/// Why the room was left. Errors keep their causes ([`std::error::Error::source`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// [`crate::Room::close`] was called (or the room dropped).
    #[error("closed by the client")]
    ClientInitiated,
    /// The server removed us (an admin removed the participant or deleted the room).
    #[error("removed by the server ({reason})")]
    RemovedByServer {
        /// The server's reason.
        reason: String,
    },
    /// A join was refused (HTTP 401/403): the token expired or was revoked.
    #[error("the server refused to let us rejoin")]
    Refused(#[source] Arc<SessionError>),
    /// An error retrying cannot fix, or a connection lost before it was ever up.
    #[error("the room connection failed")]
    Failed(#[source] Arc<SessionError>),
    /// Every rejoin attempt of the reconnect policy failed; the source is the last attempt's
    /// error.
    #[error("gave up after {attempts} rejoin attempts")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last_error: Arc<SessionError>,
    },
}

impl DisconnectReason {
    /// From the session's end (its errors are shared, not copied).
    pub(crate) fn from_end(end: &EndReason) -> Self {
        match end {
            EndReason::RemovedByServer { reason } => DisconnectReason::RemovedByServer {
                reason: reason.clone(),
            },
            EndReason::Refused { error, .. } => DisconnectReason::Refused(error.clone()),
            EndReason::GaveUp {
                attempts,
                last_error,
            } => DisconnectReason::GaveUp {
                attempts: *attempts,
                last_error: last_error.clone(),
            },
            EndReason::Fatal { error } => DisconnectReason::Failed(error.clone()),
            // Closed, and endings a later session version adds.
            _ => DisconnectReason::ClientInitiated,
        }
    }
}

/// What happens in a room, as the official SDKs name it (`RoomEvent`).
///
/// The room keeps the state these events describe (see [`crate::Room::remote_participants`]):
/// an event is a notification, and the roster is right even if the app reads events late or
/// not at all. See [`RoomEvents`] for what happens when the app falls behind.
#[derive(Debug)]
#[non_exhaustive]
pub enum RoomEvent {
    /// A remote participant joined (or was in the room when we joined).
    ParticipantConnected(RemoteParticipant),
    /// A remote participant left (after its tracks were unpublished).
    ParticipantDisconnected(RemoteParticipant),
    /// A participant's display name changed (ours too: [`crate::LocalParticipant::set_name`] or
    /// the server API).
    ParticipantNameChanged {
        /// Whose (the handle already reads the new name).
        participant: Participant,
        /// The name before.
        old_name: String,
        /// The name now.
        name: String,
    },
    /// A participant's metadata changed (ours too).
    ParticipantMetadataChanged {
        /// Whose (the handle already reads the new metadata).
        participant: Participant,
        /// The metadata before.
        old_metadata: String,
        /// The metadata now.
        metadata: String,
    },
    /// Some of a participant's attributes changed (ours too).
    ParticipantAttributesChanged {
        /// Whose (the handle already reads the new attributes).
        participant: Participant,
        /// The keys that changed with their new values; a removed key has an empty value.
        changed_attributes: std::collections::BTreeMap<String, String>,
    },
    /// We published a track ([`crate::LocalParticipant::publish_track`] and friends).
    LocalTrackPublished {
        /// The publication (a handle that writes frames; a clone of the one the call returned).
        publication: PublishedTrack,
    },
    /// We stopped publishing a track ([`crate::LocalParticipant::unpublish_track`]).
    LocalTrackUnpublished {
        /// The publication.
        publication: PublishedTrack,
    },
    /// A remote participant published a track (we may or may not subscribe to it).
    TrackPublished {
        /// The publication.
        publication: RemoteTrackPublication,
        /// Its publisher.
        participant: RemoteParticipant,
    },
    /// A remote participant stopped publishing a track.
    TrackUnpublished {
        /// The publication.
        publication: RemoteTrackPublication,
        /// Its publisher.
        participant: RemoteParticipant,
    },
    /// We receive a track: read its frames from `track` (it follows rejoins by itself).
    TrackSubscribed {
        /// The frames.
        track: SubscribedTrack,
        /// The publication.
        publication: RemoteTrackPublication,
        /// Its publisher.
        participant: RemoteParticipant,
    },
    /// We no longer receive a track (unsubscribed, or unpublished by its owner).
    TrackUnsubscribed {
        /// The publication.
        publication: RemoteTrackPublication,
        /// Its publisher.
        participant: RemoteParticipant,
    },
    /// The server could not subscribe us to a publication (unsupported codec, track gone).
    TrackSubscriptionFailed {
        /// Its publisher, if the room knows it.
        participant: Option<RemoteParticipant>,
        /// The track's sid.
        track_sid: TrackSid,
        /// The server's reason (`SE_CODEC_UNSUPPORTED`, `SE_TRACK_NOTFOUND`, …).
        reason: String,
    },
    /// A subscribed track's end-to-end decryption changed state as its frames were read: a
    /// wrong key gives [`E2eeState::DecryptionFailed`], no key [`E2eeState::MissingKey`] (its
    /// frames are dropped meanwhile, never decoded), a working one [`E2eeState::Ok`]. Counted
    /// in [`crate::RoomStats::e2ee`].
    E2eeStateChanged {
        /// The publisher's identity.
        participant_identity: ParticipantIdentity,
        /// The track's sid.
        track_sid: TrackSid,
        /// The track's name.
        track_name: String,
        /// The new state.
        state: E2eeState,
    },
    /// A remote track was muted by its publisher.
    TrackMuted {
        /// The publication.
        publication: RemoteTrackPublication,
        /// Its publisher.
        participant: RemoteParticipant,
    },
    /// A remote track was unmuted.
    TrackUnmuted {
        /// The publication.
        publication: RemoteTrackPublication,
        /// Its publisher.
        participant: RemoteParticipant,
    },
    /// Who speaks now, loudest first (empty: nobody).
    ActiveSpeakersChanged {
        /// The speakers.
        speakers: Vec<ActiveSpeaker>,
    },
    /// A remote participant's connection quality changed.
    ConnectionQualityChanged {
        /// The new quality.
        quality: Quality,
        /// Whose.
        participant: RemoteParticipant,
    },
    /// Our connection changed state.
    ConnectionStateChanged(ConnectionState),
    /// The room's metadata changed.
    RoomMetadataChanged {
        /// The metadata before.
        old_metadata: String,
        /// The metadata now.
        metadata: String,
    },
    /// A user data packet arrived.
    DataReceived {
        /// The payload.
        payload: Vec<u8>,
        /// The topic, if any.
        topic: Option<String>,
        /// The channel it came on.
        kind: DataPacketKind,
        /// The sender, if it is a participant the room knows (`None` when the server API sent
        /// it).
        participant: Option<RemoteParticipant>,
        /// The sender's identity (empty when the server API sent it).
        participant_identity: ParticipantIdentity,
    },
    /// An incoming data stream went over a limit: refused (too many open) or dropped (too
    /// large, too much unread, silent too long). Its reader, if it had one, ends with
    /// [`crate::StreamError::Limit`]; [`crate::Room::data_stream_stats`] counts each kind
    /// (this event is droppable when the app is behind, the counters are not).
    DataStreamLimitExceeded {
        /// The sender.
        participant_identity: ParticipantIdentity,
        /// The stream.
        stream_id: String,
        /// Its topic.
        topic: String,
        /// Which limit.
        limit: super::data_stream::StreamLimit,
    },
    /// The room is left for good; the last event.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
}

impl RoomEvent {
    /// The variant's name (`"TrackSubscribed"`, …), for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            RoomEvent::ParticipantConnected(_) => "ParticipantConnected",
            RoomEvent::ParticipantDisconnected(_) => "ParticipantDisconnected",
            RoomEvent::ParticipantNameChanged { .. } => "ParticipantNameChanged",
            RoomEvent::ParticipantMetadataChanged { .. } => "ParticipantMetadataChanged",
            RoomEvent::ParticipantAttributesChanged { .. } => "ParticipantAttributesChanged",
            RoomEvent::LocalTrackPublished { .. } => "LocalTrackPublished",
            RoomEvent::LocalTrackUnpublished { .. } => "LocalTrackUnpublished",
            RoomEvent::TrackSubscriptionFailed { .. } => "TrackSubscriptionFailed",
            RoomEvent::E2eeStateChanged { .. } => "E2eeStateChanged",
            RoomEvent::RoomMetadataChanged { .. } => "RoomMetadataChanged",
            RoomEvent::TrackPublished { .. } => "TrackPublished",
            RoomEvent::TrackUnpublished { .. } => "TrackUnpublished",
            RoomEvent::TrackSubscribed { .. } => "TrackSubscribed",
            RoomEvent::TrackUnsubscribed { .. } => "TrackUnsubscribed",
            RoomEvent::TrackMuted { .. } => "TrackMuted",
            RoomEvent::TrackUnmuted { .. } => "TrackUnmuted",
            RoomEvent::ActiveSpeakersChanged { .. } => "ActiveSpeakersChanged",
            RoomEvent::ConnectionQualityChanged { .. } => "ConnectionQualityChanged",
            RoomEvent::ConnectionStateChanged(_) => "ConnectionStateChanged",
            RoomEvent::DataReceived { .. } => "DataReceived",
            RoomEvent::DataStreamLimitExceeded { .. } => "DataStreamLimitExceeded",
            RoomEvent::Disconnected { .. } => "Disconnected",
        }
    }

    /// Whether the queue may drop it when the app is behind (see [`RoomEvents`]).
    fn is_droppable(&self) -> bool {
        matches!(
            self,
            RoomEvent::ActiveSpeakersChanged { .. }
                | RoomEvent::ConnectionQualityChanged { .. }
                | RoomEvent::DataReceived {
                    kind: DataPacketKind::Lossy,
                    ..
                }
                // A hostile peer can cause any number of them; the counters are exact.
                | RoomEvent::DataStreamLimitExceeded { .. }
        )
    }
}

/// The data channel a packet came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataPacketKind {
    /// Ordered and retransmitted.
    Reliable,
    /// Unordered, may be lost (cheap, for state that the next packet supersedes).
    Lossy,
}

/// Which remote track [`RoomEvents::next_track`] waits for: every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackFilter {
    /// Audio or video.
    pub kind: Option<TrackKind>,
    /// The publisher's identity.
    pub identity: Option<ParticipantIdentity>,
    /// The track name.
    pub name: Option<String>,
    /// The source label.
    pub source: Option<TrackSource>,
}

impl TrackFilter {
    /// Any track.
    pub fn any() -> Self {
        Self::default()
    }

    /// Any audio track.
    pub fn audio() -> Self {
        Self {
            kind: Some(TrackKind::Audio),
            ..Self::default()
        }
    }

    /// Any video track.
    pub fn video() -> Self {
        Self {
            kind: Some(TrackKind::Video),
            ..Self::default()
        }
    }

    /// Only tracks of this publisher.
    pub fn identity(mut self, identity: impl Into<ParticipantIdentity>) -> Self {
        self.identity = Some(identity.into());
        self
    }

    /// Only tracks of this name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only tracks of this source.
    pub fn source(mut self, source: TrackSource) -> Self {
        self.source = Some(source);
        self
    }

    /// Whether a publication passes.
    pub fn matches(&self, publication: &RemoteTrackPublication) -> bool {
        self.kind.is_none_or(|k| publication.kind() == Some(k))
            && self
                .identity
                .as_ref()
                .is_none_or(|i| i == publication.participant_identity())
            && self.name.as_ref().is_none_or(|n| n == publication.name())
            && self.source.is_none_or(|s| s == publication.source())
    }
}

#[derive(Debug)]
pub(crate) struct Queue {
    events: Mutex<(VecDeque<RoomEvent>, bool)>,
    notify: Notify,
    capacity: usize,
    dropped: AtomicU64,
    peak: AtomicU64,
}

impl Queue {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            events: Mutex::new((VecDeque::new(), false)),
            notify: Notify::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        })
    }

    /// Queue an event without waiting (the policy is on [`RoomEvents`]).
    pub(crate) fn push(&self, ev: RoomEvent) {
        let mut q = crate::session::lock(&self.events);
        if q.1 {
            return;
        }
        if q.0.len() >= self.capacity && ev.is_droppable() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        q.0.push_back(ev);
        self.peak.fetch_max(q.0.len() as u64, Ordering::Relaxed);
        drop(q);
        self.notify.notify_one();
    }

    /// No more events follow (the reader drains what is queued, then sees the end).
    pub(crate) fn close(&self) {
        crate::session::lock(&self.events).1 = true;
        self.notify.notify_one();
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

/// The room's events, in order.
///
/// Policy when the app reads slowly: nothing waits for the app — the room's task updates the
/// roster and queues notifications without blocking. Up to the room's event capacity everything
/// is queued. Past it, *droppable* notifications — [`RoomEvent::ActiveSpeakersChanged`],
/// [`RoomEvent::ConnectionQualityChanged`] (periodic, each superseding the last), lossy
/// [`RoomEvent::DataReceived`] and [`RoomEvent::DataStreamLimitExceeded`] (which a peer can
/// cause at will; [`crate::Room::data_stream_stats`] counts them exactly) — are dropped
/// (newest first) and counted in
/// [`crate::RoomStats::dropped_events`]; every other event is still queued, so a track handle, a
/// state change or a roster change is never lost (the queue then grows with the room's changes;
/// [`crate::RoomStats::queue_peak`] shows by how much).
///
/// Dropping it discards every event from then on (the room keeps its roster, so
/// [`crate::Room::remote_participants`] stays right): a publisher that needs no events can drop
/// it instead of draining it, and nothing accumulates.
#[derive(Debug)]
pub struct RoomEvents {
    pub(crate) queue: Arc<Queue>,
}

impl Drop for RoomEvents {
    fn drop(&mut self) {
        let mut q = crate::session::lock(&self.queue.events);
        q.1 = true;
        q.0.clear();
    }
}

impl RoomEvents {
    /// The next event; `None` after [`RoomEvent::Disconnected`] was read.
    pub async fn recv(&mut self) -> Option<RoomEvent> {
        let queue = self.queue.clone();
        loop {
            let notified = queue.notify.notified();
            {
                let mut q = crate::session::lock(&queue.events);
                if let Some(ev) = q.0.pop_front() {
                    return Some(ev);
                }
                if q.1 {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<RoomEvent> {
        crate::session::lock(&self.queue.events).0.pop_front()
    }

    /// Wait for the next subscribed track that passes `filter` and return its handle; `None` if
    /// the room is left first.
    ///
    /// Reads (and so consumes) the events before it; the roster still reflects them.
    pub async fn next_track(&mut self, filter: &TrackFilter) -> Option<SubscribedTrack> {
        loop {
            match self.recv().await? {
                RoomEvent::TrackSubscribed {
                    track, publication, ..
                } if filter.matches(&publication) => return Some(track),
                RoomEvent::Disconnected { .. } => return None,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speakers() -> RoomEvent {
        RoomEvent::ActiveSpeakersChanged { speakers: vec![] }
    }

    fn state() -> RoomEvent {
        RoomEvent::ConnectionStateChanged(ConnectionState::Connected)
    }

    #[tokio::test]
    async fn a_full_queue_drops_only_periodic_updates_and_keeps_order() {
        let queue = Queue::new(2);
        let mut events = RoomEvents {
            queue: queue.clone(),
        };
        queue.push(speakers());
        queue.push(state());
        queue.push(speakers()); // full: dropped
        queue.push(RoomEvent::ConnectionStateChanged(
            ConnectionState::Reconnecting { attempt: 1 },
        )); // kept past capacity
        queue.close();
        queue.push(state()); // after close: ignored
        let got: Vec<_> = std::iter::from_fn(|| events.try_recv()).collect();
        assert_eq!(
            got.iter().map(RoomEvent::name).collect::<Vec<_>>(),
            [
                "ActiveSpeakersChanged",
                "ConnectionStateChanged",
                "ConnectionStateChanged"
            ]
        );
        assert!(matches!(
            got[2],
            RoomEvent::ConnectionStateChanged(ConnectionState::Reconnecting { attempt: 1 })
        ));
        assert_eq!(queue.dropped(), 1);
        assert_eq!(queue.peak(), 3);
        assert!(events.recv().await.is_none());
    }

    #[test]
    fn disconnect_reasons_keep_the_error_chain() {
        let cause = Arc::new(SessionError::ConnectionLost {
            url: "ws://h".into(),
            reason: "ping timeout".into(),
        });
        let end = EndReason::GaveUp {
            attempts: 3,
            last_error: cause,
        };
        let r = DisconnectReason::from_end(&end);
        let source = std::error::Error::source(&r).expect("a source");
        assert!(source.to_string().contains("ping timeout"), "{source}");
        assert_eq!(r.to_string(), "gave up after 3 rejoin attempts");
    }

    #[test]
    fn dropped_events_discard_what_follows() {
        let queue = Queue::new(4);
        let events = RoomEvents {
            queue: queue.clone(),
        };
        queue.push(RoomEvent::ConnectionStateChanged(
            ConnectionState::Connected,
        ));
        drop(events);
        for _ in 0..100 {
            queue.push(RoomEvent::ConnectionStateChanged(
                ConnectionState::Connecting,
            ));
        }
        assert!(crate::session::lock(&queue.events).0.is_empty());
    }
}
