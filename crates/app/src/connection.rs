//! The apps' thin connection layer over [`wavecast_session::Session`]: the first join
//! with the reconnect policy and a clear message per failed attempt, then the session's own
//! state (rejoins after a lost connection, republishing, giving up) mirrored into a
//! [`ConnState`] the windows show and the logs tell.

use std::fmt;
use std::time::Duration;

use tokio::sync::watch;
use wavecast_config::ReconnectPolicy;
use wavecast_session::{
    EndReason, Session, SessionError, SessionEvents, SessionOptions, SessionState,
};
use wavecast_session::{EngineError, EngineOptions};

use crate::{Credentials, random_unit};

/// Where the app's connection stands (shown in windows and logs).
#[derive(Debug, Clone, PartialEq)]
pub enum ConnState {
    /// Joining.
    Connecting,
    /// In the room with media connections up.
    Connected {
        /// The room's name.
        room: String,
    },
    /// Waiting to retry after a failed attempt or a lost connection.
    Reconnecting {
        /// Attempt number (1-based).
        attempt: u32,
        /// Attempts the policy allows.
        max: u32,
        /// Why we are offline.
        cause: String,
    },
    /// Gave up or left.
    Disconnected {
        /// Why.
        reason: String,
        /// The process exit code this ending calls for (0: a normal leave).
        exit_code: u8,
    },
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnState::Connecting => f.write_str("connecting"),
            ConnState::Connected { room } => write!(f, "connected to room {room}"),
            ConnState::Reconnecting {
                attempt,
                max,
                cause,
            } => write!(f, "offline ({cause}): retry {attempt}/{max}"),
            ConnState::Disconnected { reason, .. } => write!(f, "disconnected: {reason}"),
        }
    }
}

/// Why connecting stopped for good.
#[derive(Debug)]
pub enum ConnectError {
    /// The server refused us (token, URL): retrying cannot help.
    Refused(String),
    /// The policy's attempts are used up.
    GaveUp {
        /// Retries made.
        attempts: u32,
        /// The last failure, as a sentence.
        cause: String,
    },
}

impl ConnectError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConnectError::Refused(_) => crate::EXIT_REFUSED,
            ConnectError::GaveUp { .. } => crate::EXIT_UNREACHABLE,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Refused(e) => f.write_str(e),
            ConnectError::GaveUp { attempts, cause } => {
                write!(f, "{cause}; gave up after {attempts} retries")
            }
        }
    }
}

/// Joins one participant and follows its session.
#[derive(Debug)]
pub struct Connector {
    url: String,
    credentials: Credentials,
    policy: ReconnectPolicy,
    connect_timeout: Duration,
    state: watch::Sender<ConnState>,
}

impl Connector {
    /// A connector for `url` with `credentials`, retrying by `policy`.
    pub fn new(
        url: String,
        credentials: Credentials,
        policy: ReconnectPolicy,
        connect_timeout: Duration,
    ) -> Self {
        let (state, _) = watch::channel(ConnState::Connecting);
        Self {
            url,
            credentials,
            policy,
            connect_timeout,
            state,
        }
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Watch the state.
    pub fn subscribe(&self) -> watch::Receiver<ConnState> {
        self.state.subscribe()
    }

    /// Sets the state.
    pub fn set_state(&self, s: ConnState) {
        self.state.send_replace(s);
    }

    fn options(&self) -> SessionOptions {
        let credentials = self.credentials.session_credentials();
        let mut engine = EngineOptions::default();
        engine.connect_timeout = self.connect_timeout;
        SessionOptions::new(self.url.clone(), credentials)
            .reconnect(self.policy.clone())
            .engine(engine)
            .event_capacity(1024)
    }

    /// Joins, retrying per policy with a message for every failed attempt; then mirrors the
    /// session's state (spawns a task on the current runtime). Cancel-safe.
    pub async fn connect(&self) -> Result<(Session, SessionEvents), ConnectError> {
        let max = self.policy.max_attempts;
        let mut attempt = 0u32;
        self.set_state(ConnState::Connecting);
        loop {
            match Session::connect(self.options()).await {
                Ok((session, events)) => {
                    let room = session.join_info().map(|j| j.room).unwrap_or_default();
                    tracing::info!("connected to {} in room {room:?}", self.url);
                    self.set_state(ConnState::Connected { room });
                    self.follow(&session);
                    return Ok((session, events));
                }
                Err(e) if !e.is_retryable() => {
                    let msg = chain(&e);
                    self.set_state(ConnState::Disconnected {
                        reason: msg.clone(),
                        exit_code: crate::EXIT_REFUSED,
                    });
                    return Err(ConnectError::Refused(msg));
                }
                Err(e) => {
                    let cause = describe(&e);
                    attempt += 1;
                    if attempt > max {
                        let msg = format!("cannot reach LiveKit at {}: {cause}", self.url);
                        self.set_state(ConnState::Disconnected {
                            reason: format!("{msg}; gave up after {max} retries"),
                            exit_code: crate::EXIT_UNREACHABLE,
                        });
                        return Err(ConnectError::GaveUp {
                            attempts: max,
                            cause: msg,
                        });
                    }
                    let delay = self.policy.delay(attempt, random_unit());
                    tracing::warn!(
                        "cannot reach LiveKit at {}: {cause}; retrying in {} (attempt {attempt}/{max})",
                        self.url,
                        human_delay(delay)
                    );
                    self.set_state(ConnState::Reconnecting {
                        attempt,
                        max,
                        cause,
                    });
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Mirrors the session's state changes into ours, with a log line for each.
    fn follow(&self, session: &Session) {
        let mut rx = session.watch_state();
        let tx = self.state.clone();
        let url = self.url.clone();
        let max = self.policy.max_attempts;
        tokio::spawn(async move {
            let mut room = String::new();
            if let ConnState::Connected { room: r } = &*tx.borrow() {
                room = r.clone();
            }
            while rx.changed().await.is_ok() {
                let s = rx.borrow_and_update().clone();
                let mapped = match s {
                    SessionState::Connecting => ConnState::Connecting,
                    SessionState::Connected => {
                        tracing::info!("connected to {url} again");
                        ConnState::Connected { room: room.clone() }
                    }
                    SessionState::Reconnecting { attempt } => {
                        tracing::warn!(
                            "lost the connection to LiveKit at {url}; reconnecting (attempt {attempt}/{max}: a resume, then rejoins)"
                        );
                        ConnState::Reconnecting {
                            attempt,
                            max,
                            cause: "connection lost".into(),
                        }
                    }
                    SessionState::Disconnected { reason } => {
                        let text = match &reason {
                            EndReason::Closed => "left the room".to_owned(),
                            EndReason::GaveUp {
                                attempts,
                                last_error,
                            } => format!(
                                "cannot reach LiveKit at {url}: {}; gave up after {attempts} retries",
                                short(last_error)
                            ),
                            other => other.to_string(),
                        };
                        if !matches!(reason, EndReason::Closed) {
                            tracing::error!("{text}");
                        }
                        let exit_code = end_failure(&reason, &url).map_or(0, |(c, _)| c);
                        tx.send_replace(ConnState::Disconnected {
                            reason: text,
                            exit_code,
                        });
                        break;
                    }
                };
                tx.send_replace(mapped);
            }
        });
    }
}

/// The exit code and message for a session that ended by itself (`None` for a normal close).
pub fn end_failure(reason: &EndReason, url: &str) -> Option<(u8, String)> {
    match reason {
        EndReason::Closed => None,
        EndReason::GaveUp {
            attempts,
            last_error,
        } => Some((
            crate::EXIT_UNREACHABLE,
            format!(
                "cannot reach LiveKit at {url}: {}; gave up after {attempts} retries",
                short(last_error)
            ),
        )),
        EndReason::Refused { .. } => Some((crate::EXIT_REFUSED, reason.to_string())),
        other => Some((1, other.to_string())),
    }
}

/// "2s", "500ms", "1.2s": short and readable.
pub fn human_delay(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// A failure's cause in a few words ("connection refused", "timed out", …).
fn short(text: &str) -> String {
    let lower = text.to_lowercase();
    if lower.contains("connection refused") {
        "connection refused".into()
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "timed out".into()
    } else {
        text.to_owned()
    }
}

/// The cause of a failed attempt in a few words.
pub fn describe(e: &SessionError) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut deepest = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                std::io::ErrorKind::TimedOut => return "timed out".into(),
                _ => {}
            }
        }
        if let Some(EngineError::Connect { source, .. }) = s.downcast_ref::<EngineError>() {
            deepest = source.to_string();
        } else {
            deepest = s.to_string();
        }
        source = s.source();
    }
    if let SessionError::TransportTimeout { timeout, .. } = e {
        return format!("the media connections did not come up within {timeout:?}");
    }
    let s = short(&deepest);
    if s == deepest && deepest.to_lowercase().contains("failed to lookup") {
        return "unknown host".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_read_well() {
        assert_eq!(human_delay(Duration::from_millis(500)), "500ms");
        assert_eq!(human_delay(Duration::from_secs(2)), "2s");
        assert_eq!(human_delay(Duration::from_millis(1234)), "1.2s");
    }

    #[test]
    fn states_read_well() {
        let s = ConnState::Reconnecting {
            attempt: 3,
            max: 10,
            cause: "connection refused".into(),
        };
        assert_eq!(s.to_string(), "offline (connection refused): retry 3/10");
        assert_eq!(
            short("IO error: Connection refused (os error 111)"),
            "connection refused"
        );
    }

    #[test]
    fn session_endings_map_to_exit_codes() {
        let url = "ws://127.0.0.1:1";
        assert!(end_failure(&EndReason::Closed, url).is_none());
        let (code, msg) = end_failure(
            &EndReason::GaveUp {
                attempts: 10,
                last_error: "could not connect: Connection refused (os error 111)".into(),
            },
            url,
        )
        .unwrap();
        assert_eq!(code, crate::EXIT_UNREACHABLE);
        assert_eq!(
            msg,
            "cannot reach LiveKit at ws://127.0.0.1:1: connection refused; gave up after 10 retries"
        );
    }
}
