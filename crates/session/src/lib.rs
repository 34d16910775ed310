//! Sessions on a LiveKit server.
//!
//! - [`Room`]: join a room the way the official SDKs do — [`RoomEvent`]s, a roster of
//!   [`RemoteParticipant`]s and their [`RemoteTrackPublication`]s, explicit subscriptions,
//!   [`RoomEvents::next_track`]. Start here. Its [`LocalParticipant`] publishes, sets our name,
//!   metadata and attributes, sends data streams (chat on [`TOPIC_CHAT`], files) and calls RPC
//!   methods; [`Room::register_text_stream_handler`] and
//!   [`LocalParticipant::register_rpc_method`] receive them.
//! - [`admin`]: room administration through the server API — now the crate
//!   `wavecast-server-api`, re-exported here during the move; use that crate.
//! - [`internals`]: what a [`Room`] is built on, not for apps — [`internals::Session`], one live
//!   participant on the media engine with a reconnect state machine (signal resume first — same
//!   participant, ICE restart, nothing re-published — then full rejoin with backoff and jitter,
//!   tracks re-published and subscriptions handed to the handles the app holds; the server's
//!   `Leave` and `RefreshToken` are followed), for tests and tools that drive one connection.
//!   Behind the `libwebrtc` feature, the same interface on the official `livekit` crate
//!   (compile-checked only).
//!
//! ```no_run
//! # async fn demo(url: &str, token: &str) -> Result<(), wavecast_session::SessionError> {
//! use wavecast_session::{AudioSubscriber, Room, RoomOptions, TrackFilter};
//!
//! let (room, mut events) = Room::connect(url, token, RoomOptions::default()).await?;
//! let track = events.next_track(&TrackFilter::audio()).await.expect("an audio track");
//! let mut audio = AudioSubscriber::new(track, 1)?;
//! while let Some(pcm) = audio.recv().await {
//!     println!("{} samples at 48 kHz", pcm.samples.len());
//! }
//! room.close().await;
//! # Ok(()) }
//! ```
//!
//! # Design
//! This is the layer that owns async work: apps hand it validated configuration and it talks to
//! the server. Errors keep the server's own message and name the operation that failed.
#![deny(missing_docs)]

/// Room administration through the server API: the crate `wavecast-server-api`, re-exported
/// while its users move to it.
pub use wavecast_server_api as admin;
/// Room administration as clap subcommands: `wavecast_server_api::cli`, re-exported while its
/// users move to it.
#[cfg(feature = "cli")]
pub use wavecast_server_api::cli as admin_cli;
mod ids;
mod room;
mod session;

pub use ids::{ParticipantIdentity, ParticipantSid, TrackSid};
pub use room::{
    ActiveSpeaker, ByteStreamHandler, ByteStreamInfo, ByteStreamReader, ByteStreamWriter,
    ConnectionState, DEFAULT_MAX_ROUND_TRIP_LATENCY, DataPacketKind, DataStreamLimits,
    DataStreamStats, DisconnectReason, JoinRetry, LocalParticipant, MAX_REQUESTS_IN_PROGRESS,
    MAX_RPC_PAYLOAD_BYTES, Participant, PerformRpcData, RemoteParticipant, RemoteTrackPublication,
    Room, RoomEvent, RoomEvents, RoomOptions, RoomStats, RpcError, RpcErrorCode, RpcInvocationData,
    STREAM_CHUNK_SIZE, StreamByteOptions, StreamError, StreamLimit, StreamProgress,
    StreamTextOptions, TOPIC_CHAT, TOPIC_TRANSCRIPTION, TextStreamHandler, TextStreamInfo,
    TextStreamReader, TextStreamWriter, TrackFilter,
};
/// End-to-end encryption (the `wavecast-e2ee` crate): keys and their derivation, for
/// [`RoomOptions::e2ee`].
pub mod e2ee {
    pub use crate::session::e2ee::{
        Codec, DecryptStats, E2eeError, KeyDerivation, KeyMaterial, KeyProvider, KeyProviderOptions,
    };
    pub use crate::session::{E2eeOptions, E2eeState, E2eeStats};
}
pub use session::{
    AudioPublisher, AudioSubscriber, Credentials, DataOptions, DecodedAudio, DecodedVideo,
    E2eeOptions, E2eeState, E2eeStats, EncodedFrame, LayerStats, MediaCodec, PeerRole,
    PublishedTrack, ReconnectPolicy, SendError, SessionError, SubscribedTrack, TrackInfo, TrackKey,
    TrackKind, TrackOptions, TrackSettings, TrackSource, VideoDecode, VideoLayer, VideoOptions,
    VideoPublisher, VideoQuality, VideoSubscriber, error_chain, media_codec, video_codec,
};

/// What a [`Room`] is built on: one participant's [`Session`](internals::Session) on the media
/// engine, with resume, rejoin and re-publishing, and its events and state. Apps use [`Room`]
/// (the architecture test checks that they name nothing here); tests and tools that drive a
/// single connection use this.
pub mod internals {
    /// The same session interface on the official `livekit` crate (libwebrtc; compile-checked
    /// only).
    #[cfg(feature = "libwebrtc")]
    pub use crate::session::official;
    pub use crate::session::{
        EndReason, EngineEvent, EngineOptions, JoinInfo, Session, SessionEvent, SessionEvents,
        SessionOptions, SessionState, SessionStats,
    };
}
pub use wavecast_codec::{I420, StreamStats, VideoCodec, Vp8Config};
pub use wavecast_rtc::data_message::TextOperation;
pub use wavecast_rtc::{
    ClientProtocol, EngineError, IceTransport, MediaTransport, ParticipantKind, ParticipantUpdate,
    Quality, RequestRefusal, RtpStats, TransportState,
};
pub use wavecast_token::{Keys, Preset, TokenBuilder};

/// The media engine underneath, for what the session layer does not wrap (raw engine tracks,
/// encoders around them). Apps reach it here instead of depending on `wavecast-rtc`.
pub mod engine {
    pub use wavecast_rtc::*;
}
