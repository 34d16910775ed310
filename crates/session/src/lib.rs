//! Sessions on a LiveKit server.
//!
//! - [`admin`]: room administration (create, list, delete rooms; list, get, remove, mute and
//!   update participants; send data) through the server API.
//! - [`session`]: a live participant on the media engine — connect, publish, subscribe, data —
//!   with a reconnect state machine (full rejoin with backoff and jitter, tracks re-published and
//!   subscriptions handed to the handles the app holds). Behind the `libwebrtc` feature, the same
//!   interface on the official `livekit` crate (compile-checked only).
//!
//! ```no_run
//! # async fn demo() -> Result<(), wavecast_session::admin::AdminError> {
//! use std::time::Duration;
//! use wavecast_session::admin::{NewRoom, RoomAdmin};
//! use wavecast_token::Keys;
//!
//! let admin = RoomAdmin::new("ws://127.0.0.1:7880", &Keys::new("devkey", "secret"), Duration::from_secs(5));
//! admin.create_room("demo", NewRoom { metadata: "hello".into(), ..Default::default() }).await?;
//! for room in admin.list_rooms(&[]).await? {
//!     println!("{} ({} participants)", room.name, room.num_participants);
//! }
//! # Ok(()) }
//! ```
//!
//! # Design
//! This is the layer that owns async work: apps hand it validated configuration and it talks to
//! the server. Errors keep the server's own message and name the operation that failed.
#![deny(missing_docs)]

pub mod admin;
pub mod session;

pub use session::{Credentials, Session, SessionError, SessionEvent, SessionOptions, SessionState};
