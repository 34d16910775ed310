//! Errors of a live session.

use std::time::Duration;

use wavecast_rtc::EngineError;
use wavecast_token::TokenError;

use super::SessionState;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server refused the token (HTTP 401/403): retrying with it cannot help.
    #[error("the server at {url} refused the token ({status}): {message}")]
    Unauthorized {
        /// The signal URL.
        url: String,
        /// HTTP status (401 or 403).
        status: u16,
        /// The server's message (with the token redacted).
        message: String,
    },
    /// The URL is not a usable LiveKit URL (unparsable, wrong scheme, or the server answered
    /// that it has no signal endpoint there).
    #[error("bad LiveKit URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server could not be reached (refused port, timeout, DNS) or the join failed in a way
    /// a later retry may fix.
    #[error("cannot reach LiveKit at {url}")]
    Unreachable {
        /// The signal URL.
        url: String,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// The server accepted the join but the media connections did not come up in time.
    #[error("joined {url} but the media connections did not connect within {timeout:?}")]
    TransportTimeout {
        /// The signal URL.
        url: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The connection was lost (signal closed, transport failed, or the media connections did
    /// not come up) and no later join replaced it.
    #[error("the connection to {url} was lost: {reason}")]
    ConnectionLost {
        /// The signal URL.
        url: String,
        /// What the engine reported.
        reason: String,
    },
    /// A fresh token could not be minted from the key and secret.
    #[error("could not mint a token for identity {identity:?} in room {room:?}")]
    Token {
        /// The identity.
        identity: String,
        /// The room.
        room: String,
        /// The token error.
        #[source]
        source: TokenError,
    },
    /// The operation needs a live connection and the session is reconnecting (or connecting).
    #[error("the session is not connected (state: {state})")]
    NotConnected {
        /// The state at the time of the call.
        state: SessionState,
    },
    /// The session has ended (closed, or gave up reconnecting).
    #[error("the session has ended ({state})")]
    Closed {
        /// The final state.
        state: SessionState,
    },
    /// The track handle was unpublished or belongs to no live publication.
    #[error("track {name:?} is not published")]
    NotPublished {
        /// The track name.
        name: String,
    },
    /// The official SDK failed (feature `libwebrtc`).
    #[cfg(feature = "libwebrtc")]
    #[error("{operation} failed (official SDK)")]
    Official {
        /// What the session was doing.
        operation: String,
        /// The SDK's error.
        #[source]
        source: livekit::RoomError,
    },
    /// A picture's planes are smaller than its size says (feature `libwebrtc`).
    #[cfg(feature = "libwebrtc")]
    #[error("a {width}x{height} picture has planes too small for its size")]
    BadPicture {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// What was asked cannot be done with these settings.
    #[error("{operation}: {reason}")]
    Unsupported {
        /// What the session was asked, e.g. `publish track "cam"`.
        operation: String,
        /// Why not.
        reason: String,
    },
    /// The engine rejected the operation.
    #[error("{operation} failed")]
    Engine {
        /// What the session was doing, e.g. `publish track "cam"`.
        operation: String,
        /// The engine's error.
        #[source]
        source: EngineError,
    },
    /// A media encoder or decoder failed.
    #[error("{operation} failed")]
    Codec {
        /// What the session was doing, e.g. `start VP8 on "cam"`.
        operation: String,
        /// The codec's error.
        #[source]
        source: wavecast_codec::CodecError,
    },
}

impl SessionError {
    /// Whether a later attempt of the same join can succeed (false for refused tokens, bad URLs
    /// and tokens that cannot be minted).
    pub fn is_retryable(&self) -> bool {
        match self {
            SessionError::Unauthorized { .. }
            | SessionError::BadUrl { .. }
            | SessionError::Token { .. }
            | SessionError::Closed { .. }
            | SessionError::NotPublished { .. }
            | SessionError::Unsupported { .. }
            | SessionError::Codec { .. } => false,
            SessionError::Unreachable { source, .. } | SessionError::Engine { source, .. } => {
                source.is_retryable()
            }
            SessionError::TransportTimeout { .. }
            | SessionError::NotConnected { .. }
            | SessionError::ConnectionLost { .. } => true,
            #[cfg(feature = "libwebrtc")]
            SessionError::Official { .. } => true,
            #[cfg(feature = "libwebrtc")]
            SessionError::BadPicture { .. } => false,
        }
    }

    /// Classify an error of `Engine::connect` against `url`.
    pub(crate) fn from_connect(url: &str, source: EngineError) -> Self {
        match source {
            EngineError::Unauthorized {
                url,
                status,
                message,
            } => SessionError::Unauthorized {
                url,
                status,
                message,
            },
            EngineError::Connect {
                source: livekit_signaling::SignalError::UrlParse(reason),
                ..
            } => SessionError::BadUrl {
                url: url.to_owned(),
                reason,
            },
            EngineError::Connect {
                source: livekit_signaling::SignalError::Client(status, message),
                ..
            } if matches!(status.as_u16(), 400 | 404 | 405) => SessionError::BadUrl {
                url: url.to_owned(),
                reason: format!(
                    "the server answered {status} ({}): no LiveKit signal endpoint at this URL",
                    message.trim()
                ),
            },
            other => SessionError::Unreachable {
                url: url.to_owned(),
                source: other,
            },
        }
    }
}

/// An error and its causes on one line, `: `-separated (for a log line, a stored reason or a
/// caller's message; an error's own `Display` names only its top level).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
