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

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        /// The server's message.
        message: String,
    },
    /// An error that retrying cannot fix (bad URL, a token that cannot be minted), or the first
    /// connection failed before it was ever up.
    Fatal {
        /// The error, with its causes.
        error: String,
    },
    /// Every rejoin attempt of the policy failed.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error, with its causes.
        last_error: String,
    },
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Closed => f.write_str("closed by the client"),
            EndReason::RemovedByServer { reason } => write!(f, "removed by the server ({reason})"),
            EndReason::Refused { status, message } => {
                write!(f, "rejoin refused ({status}): {message}")
            }
            EndReason::Fatal { error } => write!(f, "{error}"),
            EndReason::GaveUp {
                attempts,
                last_error,
            } => write!(
                f,
                "gave up after {attempts} rejoin attempts; last error: {last_error}"
            ),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_well() {
        let s = SessionState::Disconnected {
            reason: EndReason::GaveUp {
                attempts: 3,
                last_error: "cannot reach LiveKit at ws://x".into(),
            },
        };
        assert_eq!(
            s.to_string(),
            "disconnected: gave up after 3 rejoin attempts; last error: cannot reach LiveKit at ws://x"
        );
        assert_eq!(
            SessionState::Reconnecting { attempt: 2 }.to_string(),
            "reconnecting (attempt 2)"
        );
    }
}
