//! The engine: the public handle ([`Engine`]) and the async driver that feeds the sans-IO
//! core ([`crate::sansio::Core`]).
//!
//! [`driver`] owns the two UDP sockets, the timers and the event stream, and hands every
//! datagram, signal message, command and encoded frame to the core; [`signal_link`] owns the
//! signal client (livekit-signaling's WebSocket) on its own task, so a resume's reconnect never
//! holds up the driver. [`connect`] joins.

mod connect;
mod driver;
mod signal_link;
mod tcp;

use connect::{classify_connect_error, local_ip_towards};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use livekit_signaling::{SignalClient, SignalError, SignalOptions};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::info;

use crate::error::{EngineError, PeerRole};
use crate::events::{EngineEvent, Participant};
pub use crate::sansio::{
    ClientProtocol, DEFAULT_INITIAL_BITRATE, DataOptions, EngineOptions, IceTransport,
    MAX_DATA_PACKET, MAX_DATA_PAYLOAD, MediaTransport, ParticipantUpdate, RtpStats,
};
use crate::sansio::{Command, Core, CoreConfig, Counters, Reply};
use crate::track::{CommandSender, LocalTrack, MediaSender, TrackOptions, TrackSettings};

/// The signal protocol version this engine speaks (livekit-server v1.13's current).
pub const PROTOCOL_VERSION: u32 = 17;

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
        // With protocol 2 we read DEFLATE-compressed streams (the session layer inflates them).
        sopts.client_capabilities = if options.client_protocol >= ClientProtocol::DataStreamV2 {
            vec![livekit_protocol::client_info::Capability::CapCompressionDeflateRaw]
        } else {
            Vec::new()
        };
        sopts.region_failover = false;
        sopts.single_peer_connection = false;
        sopts.client_protocol = options.client_protocol as i32;
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
        let (pub_socket, publisher_addr) = bind(PeerRole::Publisher, ip).await?;
        let (sub_socket, subscriber_addr) = bind(PeerRole::Subscriber, ip).await?;

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

        let core = Core::new(
            Instant::now(),
            CoreConfig {
                options,
                local,
                others: join.other_participants.clone(),
                publisher_addr,
                subscriber_addr,
                seed: random_seed(),
                events: Box::new(driver::EventStream(event_tx.clone())),
                counters: counters.clone(),
                commands: CommandSender(cmd_tx.clone()),
                media: MediaSender(media_tx),
            },
        )?;
        let signal = signal_link::SignalLink::spawn(signal, signal_events);
        let task = tokio::spawn(driver::run(
            core,
            driver::Io {
                publisher: pub_socket,
                subscriber: sub_socket,
                signal,
                commands: cmd_rx,
                media: media_rx,
                events: event_tx,
            },
        ));
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

    /// What media flows over now: UDP, ICE over TCP, or nothing yet.
    pub fn media_transport(&self) -> MediaTransport {
        MediaTransport::from_counter(self.counters.transport.load(Ordering::Relaxed))
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
        self.counters.refreshed_token()
    }

    async fn request<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        let reply: Reply<T> = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.commands
            .send(make(reply))
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

    /// Send a data-stream or RPC packet on the reliable channel, to everyone or to
    /// `destination_identities`. Packets keep their order. Fails with
    /// [`EngineError::DataTooLarge`] when the encoded packet exceeds [`MAX_DATA_PACKET`].
    pub async fn send_data_message(
        &self,
        message: crate::DataMessage,
        destination_identities: Vec<String>,
    ) -> Result<(), EngineError> {
        self.request(|reply| Command::Message {
            message,
            destination_identities,
            reply,
        })
        .await
    }

    /// Change our own name, metadata or attributes (`UpdateParticipantMetadata`). Returns once
    /// the server confirmed it (or our participant info shows it); fails with
    /// [`EngineError::RequestRefused`] (`NotAllowed` when the token lacks
    /// `canUpdateOwnMetadata`) or [`EngineError::RequestTimeout`]. The change also arrives as
    /// [`EngineEvent::LocalParticipantUpdated`].
    pub async fn update_participant(&self, update: ParticipantUpdate) -> Result<(), EngineError> {
        self.request(|reply| Command::UpdateParticipant { update, reply })
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
        let settings = TrackSettings {
            enabled,
            ..TrackSettings::default()
        };
        self.set_track_settings(track_sid, settings).await
    }

    /// How the server forwards a subscribed track: enabled, and for video the layer (by
    /// quality or by the size we show it at) and frame rate (LiveKit's `UpdateTrackSettings`).
    pub async fn set_track_settings(
        &self,
        track_sid: &str,
        settings: TrackSettings,
    ) -> Result<(), EngineError> {
        let track_sid = track_sid.to_owned();
        self.request(|reply| Command::TrackSettings {
            track_sid,
            settings,
            reply,
        })
        .await
    }

    /// Leave the room and stop the engine. Idempotent; waits for the engine task to end.
    pub async fn close(&mut self) {
        let (tx, rx) = oneshot::channel();
        let reply: Reply<()> = Box::new(move |_| {
            let _ = tx.send(());
        });
        if self.commands.send(Command::Close { reply }).await.is_ok() {
            let _ = rx.await;
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Bind a connection's UDP socket on `ip` (port chosen by the OS).
async fn bind(
    role: PeerRole,
    ip: std::net::IpAddr,
) -> Result<(UdpSocket, SocketAddr), EngineError> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|source| EngineError::Socket { role, source })?;
    let addr = socket
        .local_addr()
        .map_err(|source| EngineError::Socket { role, source })?;
    Ok((socket, addr))
}

/// A random seed from the OS-seeded std hasher (no extra dependency).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}
