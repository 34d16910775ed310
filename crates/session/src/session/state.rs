//! Where a session is, why it ended, and its counters.

use super::*;

/// Where the session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// Joined; waiting for the media connections.
    Connecting,
    /// Joined and both media connections are up.
    Connected,
    /// The connection was lost; rejoin attempt `attempt` (1-based) is waiting or running.
    Reconnecting {
        /// The attempt number.
        attempt: u32,
    },
    /// The session has ended; nothing more happens.
    Disconnected {
        /// Why.
        reason: EndReason,
    },
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionState::Connecting => f.write_str("connecting"),
            SessionState::Connected => f.write_str("connected"),
            SessionState::Reconnecting { attempt } => write!(f, "reconnecting (attempt {attempt})"),
            SessionState::Disconnected { reason } => write!(f, "disconnected: {reason}"),
        }
    }
}

/// Why a session ended. The errors are the typed ones that ended it, with their causes
/// ([`std::error::Error::source`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EndReason {
    /// [`Session::close`] was called (or the session was dropped).
    Closed,
    /// The server removed us (a leave request without reconnect), e.g. an admin removed the
    /// participant or deleted the room.
    RemovedByServer {
        /// The server's reason.
        reason: String,
    },
    /// A rejoin was refused (HTTP 401/403): the token expired or was revoked. Not retried.
    Refused {
        /// HTTP status.
        status: u16,
        /// The refusal ([`SessionError::Unauthorized`], with the server's message).
        error: Arc<SessionError>,
    },
    /// An error that retrying cannot fix (bad URL, a token that cannot be minted), or the first
    /// connection failed before it was ever up.
    Fatal {
        /// The error.
        error: Arc<SessionError>,
    },
    /// Every rejoin attempt of the policy failed.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last_error: Arc<SessionError>,
    },
}

/// Equal when the same ending: the same variant with the same values and the very same error.
impl PartialEq for EndReason {
    fn eq(&self, other: &Self) -> bool {
        use EndReason::*;
        match (self, other) {
            (Closed, Closed) => true,
            (RemovedByServer { reason: a }, RemovedByServer { reason: b }) => a == b,
            (
                Refused {
                    status: a,
                    error: e,
                },
                Refused {
                    status: b,
                    error: f,
                },
            ) => a == b && Arc::ptr_eq(e, f),
            (Fatal { error: e }, Fatal { error: f }) => Arc::ptr_eq(e, f),
            (
                GaveUp {
                    attempts: a,
                    last_error: e,
                },
                GaveUp {
                    attempts: b,
                    last_error: f,
                },
            ) => a == b && Arc::ptr_eq(e, f),
            _ => false,
        }
    }
}

impl Eq for EndReason {}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Closed => f.write_str("closed by the client"),
            EndReason::RemovedByServer { reason } => write!(f, "removed by the server ({reason})"),
            EndReason::Refused { status, .. } => write!(f, "rejoin refused ({status})"),
            EndReason::Fatal { error } => write!(f, "{error}"),
            EndReason::GaveUp { attempts, .. } => {
                write!(f, "gave up after {attempts} rejoin attempts")
            }
        }
    }
}

/// Counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Joins attempted (the first connect plus every rejoin attempt).
    pub join_attempts: u64,
    /// Rejoins that reached Connected.
    pub rejoins: u64,
    /// Resumes that succeeded (the signal came back with the same participant; no rejoin).
    pub resumes: u64,
    /// Events dropped by the session's drop policy.
    pub dropped_events: u64,
    /// Droppable events the current engine dropped because the session was behind.
    pub engine_dropped_events: u64,
    /// The most must-deliver events the current engine held at once for the session.
    pub engine_held_peak: u64,
    /// Loss recovery of the current engine: NACKs and keyframe requests each way.
    pub rtp: wavecast_rtc::RtpStats,
    /// What the current engine's media flows over (UDP, ICE over TCP, nothing yet).
    pub transport: wavecast_rtc::MediaTransport,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_well() {
        let error = Arc::new(SessionError::ConnectionLost {
            url: "ws://x".into(),
            reason: "ping timeout".into(),
        });
        let s = SessionState::Disconnected {
            reason: EndReason::GaveUp {
                attempts: 3,
                last_error: error.clone(),
            },
        };
        assert_eq!(
            s.to_string(),
            "disconnected: gave up after 3 rejoin attempts"
        );
        assert_eq!(
            s,
            SessionState::Disconnected {
                reason: EndReason::GaveUp {
                    attempts: 3,
                    last_error: error,
                },
            }
        );
        assert_eq!(
            SessionState::Reconnecting { attempt: 2 }.to_string(),
            "reconnecting (attempt 2)"
        );
    }
}
