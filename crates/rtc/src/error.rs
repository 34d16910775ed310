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
    /// Data packets are end-to-end encrypted and there is no key to encrypt this one with: it
    /// was not sent.
    #[error("no end-to-end key to encrypt the data packet with: not sent")]
    DataNotEncrypted,
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
    /// A track's publish options do not hold together (codec for its kind, layers).
    #[error("cannot publish track {name:?}: {problem}")]
    BadTrackOptions {
        /// The track's name.
        name: String,
        /// What is wrong with its options.
        problem: String,
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
    /// The server refused a request (its `RequestResponse` named an error).
    #[error("the server refused {request}: {reason}{}", if message.is_empty() { String::new() } else { format!(" ({message})") })]
    RequestRefused {
        /// What was asked, e.g. `the participant update`.
        request: &'static str,
        /// The server's reason.
        reason: RequestRefusal,
        /// The server's message (may be empty).
        message: String,
    },
    /// The server did not answer a request in time.
    #[error("the server did not answer {request} within {timeout_ms} ms")]
    RequestTimeout {
        /// What was asked.
        request: &'static str,
        /// How long we waited.
        timeout_ms: u64,
    },
    /// The engine task has ended (closed, or the connection was lost).
    #[error("the engine is closed")]
    Closed,
}

/// Why the server refused a request (the protocol's `RequestResponse.Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestRefusal {
    /// What the request names does not exist.
    NotFound,
    /// The token does not grant it (for a participant update: `canUpdateOwnMetadata`).
    NotAllowed,
    /// A server limit was exceeded (for example the size of metadata or attributes).
    LimitExceeded,
    /// The request was malformed.
    InvalidRequest,
    /// Another reason, by the protocol's name (or number when this version does not know it).
    Other(i32),
}

impl RequestRefusal {
    /// From the protocol's reason number (`None` for `OK` and `QUEUED`, which are no refusal).
    pub fn from_proto(reason: i32) -> Option<Self> {
        use livekit_protocol::request_response::Reason;
        Some(match Reason::try_from(reason) {
            Ok(Reason::Ok | Reason::Queued) => return None,
            Ok(Reason::NotFound) => Self::NotFound,
            Ok(Reason::NotAllowed) => Self::NotAllowed,
            Ok(Reason::LimitExceeded) => Self::LimitExceeded,
            Ok(Reason::InvalidRequest) => Self::InvalidRequest,
            _ => Self::Other(reason),
        })
    }
}

impl std::fmt::Display for RequestRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use livekit_protocol::request_response::Reason;
        let code = match self {
            Self::NotFound => Reason::NotFound as i32,
            Self::NotAllowed => Reason::NotAllowed as i32,
            Self::LimitExceeded => Reason::LimitExceeded as i32,
            Self::InvalidRequest => Reason::InvalidRequest as i32,
            Self::Other(n) => *n,
        };
        match Reason::try_from(code) {
            Ok(r) => f.write_str(r.as_str_name()),
            Err(_) => write!(f, "reason {code}"),
        }
    }
}

impl EngineError {
    /// Whether retrying the same operation can succeed (false for refused tokens and bad URLs).
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Unauthorized { .. } => false,
            EngineError::Connect { source, .. } => {
                !matches!(source, SignalError::UrlParse(_) | SignalError::TokenFormat)
            }
            EngineError::UnknownTrack(_)
            | EngineError::DataTooLarge { .. }
            | EngineError::RequestRefused { .. } => false,
            _ => true,
        }
    }
}
