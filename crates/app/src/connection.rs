//! The apps' connection over [`Room`]: the first join through the room's own retry loop
//! ([`Room::connect_observed`]) with a clear message per failed attempt, then the room's
//! [`ConnectionState`] (rejoins after a lost connection, giving up) told in the logs and kept
//! as a [`Link`] the windows show.

use std::fmt;
use std::time::Duration;

use tokio::sync::watch;
use wavecast_config::ReconnectPolicy;
use wavecast_session::{
    ConnectionState, DisconnectReason, EngineError, IceTransport, JoinRetry, Room, RoomEvent,
    RoomEvents, RoomOptions, SessionError, error_chain,
};

use crate::Credentials;

/// The connection as windows and logs show it: the room's [`ConnectionState`] and the words
/// that go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Where the connection stands. Before the first join holds, failed attempts read as
    /// [`ConnectionState::Reconnecting`].
    pub state: ConnectionState,
    /// The room's name once joined.
    pub room: String,
    /// Retries the reconnect policy allows.
    pub max_attempts: u32,
    /// Why we are offline (`Reconnecting`) or why it ended (`Disconnected`).
    pub cause: String,
    /// The process exit code an ending calls for (0: a normal leave, or not ended).
    pub exit_code: u8,
}

impl Link {
    fn new(max_attempts: u32) -> Self {
        Self {
            state: ConnectionState::Connecting,
            room: String::new(),
            max_attempts,
            cause: String::new(),
            exit_code: 0,
        }
    }

    /// A link that is up to `room` (the loopback's).
    pub fn connected(room: &str) -> Self {
        Self {
            state: ConnectionState::Connected,
            room: room.to_owned(),
            ..Self::new(0)
        }
    }

    /// The connection ended for good with a non-zero exit code.
    pub fn gave_up(&self) -> bool {
        self.state == ConnectionState::Disconnected && self.exit_code != 0
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            ConnectionState::Connected => write!(f, "connected to room {}", self.room),
            ConnectionState::Reconnecting { attempt } => write!(
                f,
                "offline ({}): retry {attempt}/{}",
                self.cause, self.max_attempts
            ),
            ConnectionState::Disconnected => write!(f, "disconnected: {}", self.cause),
            _ => f.write_str("connecting"),
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

/// Joins one participant to a room and tells how its connection goes.
#[derive(Debug)]
pub struct Connector {
    url: String,
    credentials: Credentials,
    policy: ReconnectPolicy,
    connect_timeout: Duration,
    transport: IceTransport,
    state: watch::Sender<Link>,
    e2ee: Option<wavecast_session::E2eeOptions>,
}

/// The engine's setting for `connection.transport`.
pub fn ice_transport(transport: wavecast_config::Transport) -> IceTransport {
    match transport {
        wavecast_config::Transport::Auto => IceTransport::Auto,
        wavecast_config::Transport::Udp => IceTransport::Udp,
        wavecast_config::Transport::Tcp => IceTransport::Tcp,
    }
}

impl Connector {
    /// A connector for `url` with `credentials`, retrying by `policy`.
    pub fn new(
        url: String,
        credentials: Credentials,
        policy: ReconnectPolicy,
        connect_timeout: Duration,
    ) -> Self {
        let (state, _) = watch::channel(Link::new(policy.max_attempts));
        Self {
            url,
            credentials,
            policy,
            connect_timeout,
            transport: IceTransport::Auto,
            state,
            e2ee: None,
        }
    }

    /// Join with end-to-end encryption (`--e2ee-key`; `None`: none).
    pub fn with_e2ee(mut self, e2ee: Option<wavecast_session::E2eeOptions>) -> Self {
        self.e2ee = e2ee;
        self
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Watch the link.
    pub fn subscribe(&self) -> watch::Receiver<Link> {
        self.state.subscribe()
    }

    fn update(&self, f: impl FnOnce(&mut Link)) {
        self.state.send_modify(f);
    }

    /// Set how media reaches the server (`connection.transport`; default: UDP, then ICE over
    /// TCP).
    pub fn with_transport(mut self, transport: wavecast_config::Transport) -> Self {
        self.transport = ice_transport(transport);
        self
    }

    /// The room options the apps join with.
    pub fn options(&self) -> RoomOptions {
        let options = RoomOptions::default()
            .reconnect(self.policy.clone())
            .connect_timeout(self.connect_timeout)
            .ice_transport(self.transport)
            .event_capacity(1024);
        match &self.e2ee {
            Some(e) => options.e2ee(e.clone()),
            None => options,
        }
    }

    /// Joins, retrying per policy (the room's retry loop) with a message for every failed
    /// attempt. Cancel-safe. Then feed every event of the room to [`Connector::follow`].
    pub async fn connect(&self) -> Result<(Room, RoomEvents), ConnectError> {
        self.update(|l| l.state = ConnectionState::Connecting);
        let url = self.url.clone();
        let on_retry = |r: &JoinRetry<'_>| {
            let cause = describe(r.error);
            tracing::warn!(
                "cannot reach LiveKit at {url}: {cause}; retrying in {} (attempt {}/{})",
                human_delay(r.delay),
                r.attempt,
                r.max_retries
            );
            self.update(|l| {
                l.state = ConnectionState::Reconnecting { attempt: r.attempt };
                l.cause = cause;
            });
        };
        let joined = Room::connect_observed(
            &self.url,
            self.credentials.session_credentials(),
            self.options(),
            on_retry,
        )
        .await;
        match joined {
            Ok((room, events)) => {
                let name = room.name().unwrap_or_default();
                tracing::info!("connected to {} in room {name:?}", self.url);
                self.update(|l| {
                    l.state = ConnectionState::Connected;
                    l.room = name;
                    l.cause.clear();
                });
                Ok((room, events))
            }
            Err(e) if !e.is_retryable() => {
                let msg = error_chain(&e);
                self.ended(crate::EXIT_REFUSED, msg.clone());
                Err(ConnectError::Refused(msg))
            }
            Err(e) => {
                let max = self.policy.max_attempts;
                let msg = format!("cannot reach LiveKit at {}: {}", self.url, describe(&e));
                self.ended(
                    crate::EXIT_UNREACHABLE,
                    format!("{msg}; gave up after {max} retries"),
                );
                Err(ConnectError::GaveUp {
                    attempts: max,
                    cause: msg,
                })
            }
        }
    }

    fn ended(&self, exit_code: u8, cause: String) {
        self.update(|l| {
            l.state = ConnectionState::Disconnected;
            l.cause = cause;
            l.exit_code = exit_code;
        });
    }

    /// Follows the room's connection with one of its events: logs and shows state changes, and
    /// says whether the room ended.
    pub fn follow(&self, event: &RoomEvent) -> Followed {
        match event {
            RoomEvent::ConnectionStateChanged(ConnectionState::Connected) => {
                tracing::info!("connected to {} again", self.url);
                self.update(|l| {
                    l.state = ConnectionState::Connected;
                    l.cause.clear();
                });
                Followed::Connected
            }
            RoomEvent::ConnectionStateChanged(ConnectionState::Reconnecting { attempt }) => {
                tracing::warn!(
                    "lost the connection to LiveKit at {}; reconnecting (attempt {attempt}/{}: a resume, then rejoins)",
                    self.url,
                    self.policy.max_attempts
                );
                self.update(|l| {
                    l.state = ConnectionState::Reconnecting { attempt: *attempt };
                    l.cause = "connection lost".into();
                });
                Followed::Connected
            }
            RoomEvent::Disconnected { reason } => {
                let failure = end_failure(reason, &self.url);
                match &failure {
                    Some((code, text)) => {
                        tracing::error!("{text}");
                        self.ended(*code, text.clone());
                    }
                    None => self.left(),
                }
                Followed::Ended { failure }
            }
            _ => Followed::Connected,
        }
    }

    /// Marks the link as left normally (unless it already ended with a failure).
    pub fn left(&self) {
        self.state.send_if_modified(|l| {
            if l.gave_up() {
                return false;
            }
            l.state = ConnectionState::Disconnected;
            l.cause = "left the room".into();
            l.exit_code = 0;
            true
        });
    }
}

/// What one room event meant for the connection ([`Connector::follow`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// The room goes on (connected, or reconnecting by itself).
    Connected,
    /// The room ended: `failure` holds the exit code and message, `None` for a normal leave.
    Ended {
        /// The exit code and message of a failure.
        failure: Option<(u8, String)>,
    },
}

/// The exit code and message for a room that ended by itself (`None` for a normal leave).
pub fn end_failure(reason: &DisconnectReason, url: &str) -> Option<(u8, String)> {
    match reason {
        DisconnectReason::ClientInitiated => None,
        DisconnectReason::GaveUp {
            attempts,
            last_error,
        } => Some((
            crate::EXIT_UNREACHABLE,
            format!(
                "cannot reach LiveKit at {url}: {}; gave up after {attempts} retries",
                describe(last_error)
            ),
        )),
        DisconnectReason::Refused(_) => Some((crate::EXIT_REFUSED, error_chain(reason))),
        other => Some((1, error_chain(other))),
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
    use std::sync::Arc;

    use super::*;

    #[test]
    fn delays_read_well() {
        assert_eq!(human_delay(Duration::from_millis(500)), "500ms");
        assert_eq!(human_delay(Duration::from_secs(2)), "2s");
        assert_eq!(human_delay(Duration::from_millis(1234)), "1.2s");
    }

    #[test]
    fn links_read_well() {
        let l = Link {
            state: ConnectionState::Reconnecting { attempt: 3 },
            cause: "connection refused".into(),
            ..Link::new(10)
        };
        assert_eq!(l.to_string(), "offline (connection refused): retry 3/10");
        assert_eq!(Link::connected("a").to_string(), "connected to room a");
        assert_eq!(
            short("IO error: Connection refused (os error 111)"),
            "connection refused"
        );
    }

    #[test]
    fn room_endings_map_to_exit_codes() {
        let url = "ws://127.0.0.1:1";
        assert!(end_failure(&DisconnectReason::ClientInitiated, url).is_none());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let last_error = SessionError::Unreachable {
            url: url.into(),
            source: EngineError::Socket {
                role: wavecast_session::PeerRole::Publisher,
                source: refused,
            },
        };
        let (code, msg) = end_failure(
            &DisconnectReason::GaveUp {
                attempts: 10,
                last_error: Arc::new(last_error),
            },
            url,
        )
        .expect("a failure");
        assert_eq!(code, crate::EXIT_UNREACHABLE);
        assert_eq!(
            msg,
            "cannot reach LiveKit at ws://127.0.0.1:1: connection refused; gave up after 10 retries"
        );
        let (code, msg) = end_failure(
            &DisconnectReason::RemovedByServer {
                reason: "PARTICIPANT_REMOVED".into(),
            },
            url,
        )
        .expect("a failure");
        assert_eq!(code, 1);
        assert_eq!(msg, "removed by the server (PARTICIPANT_REMOVED)");
    }

    #[test]
    fn a_leave_does_not_hide_a_failure() {
        let c = Connector::new(
            "ws://127.0.0.1:1".into(),
            Credentials::Token("t".into()),
            ReconnectPolicy::default(),
            Duration::from_secs(1),
        );
        let ended = c.follow(&RoomEvent::Disconnected {
            reason: DisconnectReason::RemovedByServer {
                reason: "ROOM_DELETED".into(),
            },
        });
        assert_eq!(
            ended,
            Followed::Ended {
                failure: Some((1, "removed by the server (ROOM_DELETED)".into()))
            }
        );
        c.left();
        let l = c.subscribe().borrow().clone();
        assert!(l.gave_up(), "{l}");
        assert_eq!(l.exit_code, 1);
    }
}
