//! The load test's error type.

use wavecast_server_api::AdminError;
use wavecast_session::SessionError;
use wavecast_stream::StreamError;

/// Why a load test could not run. Failures of single participants are not errors: they are
/// counted in the [`crate::Report`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadTestError {
    /// A setting is out of range.
    #[error("invalid {setting}: {value} (allowed: {allowed})")]
    InvalidConfig {
        /// Which setting.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// The server could not be reached (or refused the API key) before the test started.
    #[error("load test cannot start: {url} does not answer")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The server API's error.
        #[source]
        source: Box<AdminError>,
    },
    /// A publisher could not join or publish: without it the test would measure nothing.
    #[error("publisher {identity} in room {room} failed")]
    Publisher {
        /// The publisher's identity.
        identity: String,
        /// Its room.
        room: String,
        /// What failed.
        #[source]
        source: Box<SessionError>,
    },
    /// A publisher joined but its tracks could not be published.
    #[error("publisher {identity} in room {room} could not publish")]
    Publish {
        /// The publisher's identity.
        identity: String,
        /// Its room.
        room: String,
        /// What failed.
        #[source]
        source: Box<StreamError>,
    },
    /// A publish loop or a receiver could not start (encoder, decoder, thread).
    #[error("cannot start the {what}")]
    Media {
        /// Which part.
        what: &'static str,
        /// The media-stream error.
        #[source]
        source: Box<StreamError>,
    },
}
