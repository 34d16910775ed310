//! What a session needs: URL, credentials, reconnect policy, engine settings, limits.

use super::*;

/// Everything a session needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionOptions {
    /// The server URL (`ws`, `wss`, `http` or `https`).
    pub url: String,
    /// Token, or key and secret to mint tokens with.
    pub credentials: Credentials,
    /// Backoff and attempts of rejoins.
    pub reconnect: ReconnectPolicy,
    /// Engine settings for every join.
    pub engine: EngineOptions,
    /// Capacity of the session's event stream.
    pub event_capacity: usize,
    /// How long the media connections may take to come up after a join.
    pub transport_timeout: Duration,
    /// How long `close` waits for in-flight calls before it stops the engine without a leave.
    pub close_grace: Duration,
    /// End-to-end encryption keys: with them, published tracks are encrypted and encrypted
    /// subscriptions decrypted (see [`E2eeOptions`]).
    pub e2ee: Option<E2eeOptions>,
}

impl SessionOptions {
    /// Defaults: the config's default reconnect policy, default engine options, 256 events,
    /// 10 s transport timeout.
    pub fn new(url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            url: url.into(),
            credentials,
            reconnect: ReconnectPolicy::default(),
            engine: EngineOptions::default(),
            event_capacity: 256,
            transport_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(2),
            e2ee: None,
        }
    }

    /// Set the reconnect policy.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Set the engine options.
    pub fn engine(mut self, options: EngineOptions) -> Self {
        self.engine = options;
        self
    }

    /// Set the event stream's capacity.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Encrypt end to end with these keys.
    pub fn e2ee(mut self, options: E2eeOptions) -> Self {
        self.e2ee = Some(options);
        self
    }

    /// Set the transport timeout.
    pub fn transport_timeout(mut self, timeout: Duration) -> Self {
        self.transport_timeout = timeout;
        self
    }
}
