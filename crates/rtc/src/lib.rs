//! wavecast's media engine: joins LiveKit rooms without libwebrtc.
//!
//! Signaling uses the official `livekit-signaling` client; WebRTC is [str0m] (sans-IO). The
//! engine's state machine is sans-IO too (no sockets, no clock reads, nothing async), driven by
//! one tokio task per engine that owns the UDP sockets of the two peer connections (publisher
//! and subscriber) and the timers, and talks to the signal client on a task of its own. Media crosses the engine as *encoded* frames only: the
//! engine is transport; encoding and decoding belong to `wavecast-session`'s publishers and
//! subscribers, which hold the `wavecast-codec` encoders and decoders on the caller's threads.
//!
//! ```no_run
//! # async fn demo(url: &str, token: &str) -> Result<(), wavecast_rtc::EngineError> {
//! use wavecast_rtc::{Engine, EngineEvent, EngineOptions};
//! let (mut engine, mut events) = Engine::connect(url, token, EngineOptions::default()).await?;
//! while let Some(ev) = events.recv().await {
//!     if let EngineEvent::TrackSubscribed(mut track) = ev {
//!         while let Some(frame) = track.recv().await {
//!             println!("{} bytes", frame.data.len());
//!         }
//!     }
//! }
//! engine.close().await;
//! # Ok(()) }
//! ```
//!
//! # Design
//! The engine task wakes on a datagram, a signal message, a command, an encoded frame to send or
//! a deadline; it hands that one input to the core with the current time and carries out the
//! core's output (datagrams, signal requests, the next deadline) before waiting again. A resume
//! is a state of the core: datagrams and commands keep being handled while it runs. The runtime belongs to the caller: `Engine::connect` spawns onto the current tokio
//! runtime, dropping the `Engine` aborts the task, `close` leaves cleanly. The event stream and
//! each track's frame queue are bounded (see [`EngineEvent`] for the drop policy).
#![deny(missing_docs)]

#[cfg(test)]
mod core_tests;
pub mod data_message;
mod engine;
mod error;
mod events;
#[cfg(test)]
mod hostile_tests;
pub mod redact;
mod sansio;
mod sdp;
mod track;
mod wire;

pub use data_message::DataMessage;
pub use engine::{
    ClientProtocol, DEFAULT_INITIAL_BITRATE, DataOptions, Engine, EngineEvents, EngineOptions,
    IceTransport, JoinInfo, MAX_DATA_PACKET, MAX_DATA_PAYLOAD, MediaTransport, PROTOCOL_VERSION,
    ParticipantUpdate, RtpStats,
};
pub use error::{EngineError, PeerRole, RequestRefusal};
pub use events::{
    DisconnectReason, EngineEvent, Participant, ParticipantKind, Quality, TrackInfo, TransportState,
};
pub use track::{
    EncodedFrame, LocalTrack, MediaCodec, RemoteTrack, TrackKind, TrackOptions, TrackSettings,
    TrackSource, VideoLayer, VideoQuality, WriteError,
};
