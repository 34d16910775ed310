//! Reusable scenes: what the apps show, fed by pipeline sinks (a video mailbox, audio queues)
//! and a plain status struct the scene polls once per update — so any source of frames and
//! state (a room, a loopback, a file) can drive them, in a window or headless.
//!
//! - [`ParticipantScene`]: one participant's video, waveform, meter and stats overlay;
//! - [`RoomGridScene`]: every participant of a room in a grid.

mod participant;
mod room_grid;

pub use participant::{ParticipantFeeds, ParticipantScene, ParticipantStatus, ViewerLayout};
pub use room_grid::{RoomGridScene, RoomStatus, TileFeed, TileReport};

/// How a scene gets its status: called once per update on the rendering thread (keep it
/// cheap: read atomics and watch channels, copy a few strings).
pub type StatusFn<T> = Box<dyn Fn() -> T>;

/// Where the connection stands, as scenes show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum LinkStatus {
    /// Joining.
    #[default]
    Connecting,
    /// In the room.
    Connected {
        /// The room's name.
        room: String,
    },
    /// Waiting to retry after a failed attempt or a lost connection.
    Reconnecting {
        /// Attempt number (0: the connection was just lost).
        attempt: u32,
        /// Attempts allowed.
        max: u32,
        /// Why we are offline.
        cause: String,
    },
    /// Gave up or left.
    Disconnected {
        /// Why.
        reason: String,
    },
}
