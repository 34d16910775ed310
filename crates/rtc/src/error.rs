use livekit_signaling::SignalError;

/// Which of the two peer connections an error or event concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRole {
    /// The connection we offer and send media/data on.
    Publisher,
    /// The connection the server offers and sends us media/data on.
    Subscriber,
}

impl std::fmt::Display for PeerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerRole::Publisher => "publisher",
            PeerRole::Subscriber => "subscriber",
        })
    }
}

/// Errors of the media engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The server refused the token (HTTP 401/403): retrying with the same token cannot help.
    #[error("the server at {url} refused the token ({status}): {message}")]
    Unauthorized {
        /// The signal URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The signal connection could not be made (refused port, DNS, timeout, bad URL).
    #[error("could not connect to {url}")]
    Connect {
        /// The signal URL.
        url: String,
        /// What went wrong.
        #[source]
        source: SignalError,
    },
    /// A UDP socket for a peer connection could not be opened.
    #[error("could not open the {role} UDP socket")]
    Socket {
        /// Which connection.
        role: PeerRole,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The WebRTC stack rejected an operation.
    #[error("WebRTC error on the {role} connection while {what}")]
    Rtc {
        /// Which connection.
        role: PeerRole,
        /// What the engine was doing.
        what: &'static str,
        /// The str0m error.
        #[source]
        source: str0m::RtcError,
    },
    /// A remote SDP could not be parsed.
    #[error("bad {kind} SDP from the server for the {role} connection")]
    Sdp {
        /// Which connection.
        role: PeerRole,
        /// `offer` or `answer`.
        kind: &'static str,
        /// The parse error.
        #[source]
        source: str0m::error::SdpError,
    },
    /// The server did not confirm a track publication in time.
    #[error(
        "the server did not confirm publication of track {name:?} (cid {cid}) within {timeout_ms} ms"
    )]
    PublishTimeout {
        /// Track name.
        name: String,
        /// Client track id.
        cid: String,
        /// How long we waited.
        timeout_ms: u64,
    },
    /// A track id given to the engine is not one of ours.
    #[error("no local track with sid or cid {0:?}")]
    UnknownTrack(String),
    /// A data channel is not open (yet).
    #[error("the {label} data channel is not open")]
    ChannelNotOpen {
        /// `_reliable` or `_lossy`.
        label: &'static str,
    },
    /// Too many reliable packets are waiting for the SCTP send buffer: the packet was not queued.
    #[error("the {label} data channel has {queued} packets queued; packet refused")]
    DataBufferFull {
        /// `_reliable`.
        label: &'static str,
        /// Packets waiting.
        queued: usize,
    },
    /// A data payload is larger than the channel accepts.
    #[error("data payload of {len} bytes exceeds the {max} byte limit")]
    DataTooLarge {
        /// Payload size.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The engine task has ended (closed, or the connection was lost).
    #[error("the engine is closed")]
    Closed,
}

impl EngineError {
    /// Whether retrying the same operation can succeed (false for refused tokens and bad URLs).
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Unauthorized { .. } => false,
            EngineError::Connect { source, .. } => {
                !matches!(source, SignalError::UrlParse(_) | SignalError::TokenFormat)
            }
            EngineError::UnknownTrack(_) | EngineError::DataTooLarge { .. } => false,
            _ => true,
        }
    }
}
