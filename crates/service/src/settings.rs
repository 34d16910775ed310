//! Validated settings of one service instance, built from the layered configuration.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wavecast_config::Config;
use wavecast_token::Keys;

use crate::ServiceError;
use crate::auth::{AdminKey, CallerAuth, caller_auth};

/// Bounds on what one client can hold: time to send headers and body, connections and requests
/// at once, and how long shutdown waits for requests in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// Longest time to send a request's headers, and to keep an idle connection open between
    /// requests (answered 408 `request_timeout`, then the connection is closed).
    pub header_timeout: Duration,
    /// Longest time to send a request's body (answered 408 `request_timeout`).
    pub body_timeout: Duration,
    /// Most open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Most requests being handled at once (the rest: 503 `overloaded` with `Retry-After`).
    pub max_in_flight: usize,
    /// Longest time shutdown waits for requests in flight before it drops them and finalises
    /// the recordings.
    pub shutdown_grace: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_in_flight: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What one caller (a stream owner) may hold at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Streams not ended.
    pub streams: u32,
    /// Streams live (their room open) at once.
    pub live_streams: u32,
    /// Recordings running at once of the caller's streams.
    pub recordings: u32,
    /// Free bytes under `recordings_dir` below which no recording starts, and below half of
    /// which running ones are stopped (reason `disk full`).
    pub min_free_disk: u64,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            streams: 100,
            live_streams: 5,
            recordings: 2,
            min_free_disk: 1 << 30,
        }
    }
}

/// Everything a [`crate::Service`] needs besides its [`crate::Store`]. Secrets inside are
/// redacted in `Debug`.
#[derive(Clone)]
pub struct Settings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Storage (a SQLite path, `sqlite:PATH` or a `postgres://` URL).
    pub database: String,
    /// The LiveKit server's URL as the service reaches it (room administration).
    pub livekit_url: String,
    /// The LiveKit URL handed to clients with their tokens.
    pub public_url: String,
    /// LiveKit API key and secret: mint tokens, administer rooms, verify webhooks.
    pub keys: Keys,
    /// Verifier of callers' JWTs.
    pub caller_auth: CallerAuth,
    /// The admin key (admin endpoints are disabled without one).
    pub admin_key: Option<AdminKey>,
    /// Upper bound of minted tokens' lifetime.
    pub max_token_ttl: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Sustained requests per minute per caller.
    pub rate_per_minute: u32,
    /// Burst above the sustained rate.
    pub rate_burst: u32,
    /// Oldest acceptable webhook event.
    pub webhook_max_age: Duration,
    /// Where stream recordings go (`POST /v1/streams/{id}/recording`); recording is off without
    /// it. Created when missing.
    pub recordings_dir: Option<PathBuf>,
    /// Timeouts and limits per client ([`Bounds::default`] for the defaults).
    pub bounds: Bounds,
    /// How long stored webhook events are kept (by arrival; events whose follow-up is not done
    /// are kept until it is).
    pub event_retention: Duration,
    /// Per-caller caps and the free-disk threshold of recording.
    pub caps: Caps,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database", &crate::store::redact_url(&self.database))
            .field("livekit_url", &self.livekit_url)
            .field("public_url", &self.public_url)
            .field("keys", &self.keys)
            .field("caller_auth", &self.caller_auth)
            .field("admin_key", &self.admin_key)
            .field("max_token_ttl", &self.max_token_ttl)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("rate_per_minute", &self.rate_per_minute)
            .field("rate_burst", &self.rate_burst)
            .field("webhook_max_age", &self.webhook_max_age)
            .field("recordings_dir", &self.recordings_dir)
            .field("bounds", &self.bounds)
            .field("event_retention", &self.event_retention)
            .field("caps", &self.caps)
            .finish()
    }
}

impl Settings {
    /// Settings from a loaded (and so validated) configuration; errors name the missing key.
    pub fn from_config(config: &Config) -> Result<Self, ServiceError> {
        let s = &config.service;
        let c = &config.connection;
        let keys = match (&c.api_key, &c.api_secret) {
            (Some(k), Some(secret)) => Keys::new(k, secret.expose()),
            _ => {
                return Err(ServiceError::Config {
                    key: "connection.api_key",
                    message: "the service needs the LiveKit API key and secret: set \
                              LIVEKIT_API_KEY / LIVEKIT_API_SECRET or [connection] api_key, api_secret"
                        .into(),
                });
            }
        };
        let listen = s.listen_addr().ok_or(ServiceError::Config {
            key: "service.listen",
            message: format!("{:?} is not IP:port", s.listen),
        })?;
        Ok(Self {
            listen,
            database: s.database.clone(),
            livekit_url: c.url.clone(),
            public_url: s
                .livekit_public_url
                .clone()
                .unwrap_or_else(|| c.url.clone()),
            keys,
            caller_auth: caller_auth(s)?,
            admin_key: s.admin_key.clone().map(AdminKey::new),
            max_token_ttl: s.max_token_ttl,
            max_body_bytes: usize::try_from(s.max_body_bytes).unwrap_or(usize::MAX),
            rate_per_minute: s.rate_per_minute,
            rate_burst: s.rate_burst,
            webhook_max_age: s.webhook_max_age,
            recordings_dir: s.recordings_dir.clone(),
            bounds: Bounds {
                header_timeout: s.header_timeout,
                body_timeout: s.body_timeout,
                max_connections: s.max_connections as usize,
                max_in_flight: s.max_in_flight as usize,
                shutdown_grace: s.shutdown_grace,
            },
            event_retention: s.event_retention,
            caps: Caps {
                streams: s.max_streams_per_caller,
                live_streams: s.max_live_streams_per_caller,
                recordings: s.max_recordings_per_caller,
                min_free_disk: s.recording_min_free_bytes,
            },
        })
    }
}
