//! The `[service]` section: `wavecast serve`, the token service (crate `wavecast-service`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Secret, Violation};

/// How callers' bearer JWTs (issued by the application's own login) are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallerAlgorithm {
    /// HMAC-SHA256 with the shared secret `service.auth_secret`.
    #[default]
    Hs256,
    /// RSA PKCS#1 v1.5 SHA-256, verified with the PEM public key at `service.auth_public_key`.
    Rs256,
    /// ECDSA P-256 SHA-256, verified with the PEM public key at `service.auth_public_key`.
    Es256,
}

impl fmt::Display for CallerAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallerAlgorithm::Hs256 => "hs256",
            CallerAlgorithm::Rs256 => "rs256",
            CallerAlgorithm::Es256 => "es256",
        })
    }
}

/// Settings of the token service. The LiveKit server it mints tokens for and administers is the
/// `[connection]` section (`url`, `api_key`, `api_secret`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Address to listen on (`IP:port`). Loopback by default.
    pub listen: String,
    /// Allow a non-loopback `listen` address without TLS in this process (TLS terminated by a
    /// proxy in front). Without it the service refuses to start on a public address.
    pub allow_public: bool,
    /// Storage: a SQLite file path (the default, created when missing), `sqlite:PATH`, or a
    /// `postgres://` URL.
    pub database: String,
    /// The LiveKit URL handed to clients with their tokens (default: `connection.url`).
    pub livekit_public_url: Option<String>,
    /// Algorithm of the callers' JWTs.
    pub auth_algorithm: CallerAlgorithm,
    /// HS256 shared secret of the application's login.
    pub auth_secret: Option<Secret>,
    /// PEM public key file for RS256 / ES256.
    pub auth_public_key: Option<PathBuf>,
    /// Required `iss` of callers' JWTs.
    pub auth_issuer: String,
    /// Required `aud` of callers' JWTs.
    pub auth_audience: String,
    /// Claim of the callers' JWTs that lists their groups (an array of strings).
    pub groups_claim: String,
    /// Key for the admin endpoints (`Authorization: Bearer <admin_key>`).
    pub admin_key: Option<Secret>,
    /// Upper bound of a minted token's lifetime (the grant's remaining time bounds it further).
    #[serde(with = "humantime_serde")]
    pub max_token_ttl: Duration,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: u64,
    /// Requests per minute each caller may make (sustained).
    pub rate_per_minute: u32,
    /// Requests a caller may burst above the sustained rate.
    pub rate_burst: u32,
    /// Webhook events older than this (by their `createdAt`) are refused as stale.
    #[serde(with = "humantime_serde")]
    pub webhook_max_age: Duration,
    /// Directory the service records streams into (`POST /v1/streams/{id}/recording`), one
    /// subdirectory per stream and recording; created when a recording starts. Recording is off
    /// without it.
    pub recordings_dir: Option<PathBuf>,
    /// Longest time a client may take to send a request's headers; also how long an idle
    /// connection stays open between requests.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Longest time a client may take to send a request's body (then 408).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Most open connections at once.
    pub max_connections: u32,
    /// Most requests handled at once (the rest get 503).
    pub max_in_flight: u32,
    /// Longest time shutdown waits for requests in flight before finalising the recordings.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long stored webhook events are kept (at least 1h and `webhook_max_age`).
    #[serde(with = "humantime_serde")]
    pub event_retention: Duration,
    /// Streams (not ended) one caller may own.
    pub max_streams_per_caller: u32,
    /// Streams one caller may have live at once.
    pub max_live_streams_per_caller: u32,
    /// Recordings of one caller's streams running at once.
    pub max_recordings_per_caller: u32,
    /// Free bytes under `recordings_dir` below which no recording starts (running ones stop
    /// below half of it).
    pub recording_min_free_bytes: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8089".into(),
            allow_public: false,
            database: "wavecast-service.db".into(),
            livekit_public_url: None,
            auth_algorithm: CallerAlgorithm::Hs256,
            auth_secret: None,
            auth_public_key: None,
            auth_issuer: String::new(),
            auth_audience: String::new(),
            groups_claim: "groups".into(),
            admin_key: None,
            max_token_ttl: Duration::from_secs(3600),
            max_body_bytes: 16 * 1024,
            rate_per_minute: 600,
            rate_burst: 30,
            webhook_max_age: Duration::from_secs(300),
            recordings_dir: None,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_in_flight: 256,
            shutdown_grace: Duration::from_secs(10),
            event_retention: Duration::from_secs(7 * 86400),
            max_streams_per_caller: 100,
            max_live_streams_per_caller: 5,
            max_recordings_per_caller: 2,
            recording_min_free_bytes: 1 << 30,
        }
    }
}

fn violation(out: &mut Vec<Violation>, key: &'static str, value: String, message: String) {
    out.push(Violation {
        key,
        value,
        message,
        required_by: None,
    });
}

impl ServiceConfig {
    /// The parsed listen address (valid after loading).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }

    pub(crate) fn violations(&self, out: &mut Vec<Violation>) {
        match self.listen.parse::<SocketAddr>() {
            Err(e) => violation(
                out,
                "service.listen",
                format!("{:?}", self.listen),
                format!("is not IP:port ({e}), e.g. 127.0.0.1:8089"),
            ),
            Ok(a) if !a.ip().is_loopback() && !self.allow_public => violation(
                out,
                "service.listen",
                format!("{:?}", self.listen),
                "is not a loopback address and this process serves no TLS: put a TLS proxy in \
                 front and set service.allow_public = true, or listen on 127.0.0.1"
                    .into(),
            ),
            Ok(_) => {}
        }
        if self.database.trim().is_empty() {
            violation(
                out,
                "service.database",
                "\"\"".into(),
                "must be a SQLite file path, sqlite:PATH or a postgres:// URL".into(),
            );
        } else if self.database.contains("://")
            && !(self.database.starts_with("sqlite:")
                || self.database.starts_with("postgres://")
                || self.database.starts_with("postgresql://"))
        {
            violation(
                out,
                "service.database",
                format!("{:?}", self.database),
                "scheme is not supported: use a SQLite file path, sqlite:PATH or postgres://"
                    .into(),
            );
        }
        if let Some(u) = &self.livekit_public_url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "ws" | "wss" | "http" | "https") => {}
                _ => violation(
                    out,
                    "service.livekit_public_url",
                    format!("{u:?}"),
                    "must be a ws, wss, http or https URL".into(),
                ),
            }
        }
        if let Some(s) = &self.auth_secret
            && s.expose().len() < 16
        {
            violation(
                out,
                "service.auth_secret",
                "[redacted]".into(),
                "is too short: use at least 16 bytes".into(),
            );
        }
        if let Some(s) = &self.admin_key
            && s.expose().len() < 16
        {
            violation(
                out,
                "service.admin_key",
                "[redacted]".into(),
                "is too short: use at least 16 bytes".into(),
            );
        }
        if self.groups_claim.is_empty() {
            violation(
                out,
                "service.groups_claim",
                "\"\"".into(),
                "must name a claim, e.g. groups".into(),
            );
        }
        let ttl = self.max_token_ttl;
        if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(24 * 3600) {
            violation(
                out,
                "service.max_token_ttl",
                humantime::format_duration(ttl).to_string(),
                "must be between 1m and 24h".into(),
            );
        }
        let age = self.webhook_max_age;
        if age < Duration::from_secs(10) || age > Duration::from_secs(3600) {
            violation(
                out,
                "service.webhook_max_age",
                humantime::format_duration(age).to_string(),
                "must be between 10s and 1h".into(),
            );
        }
        let keep = self.event_retention;
        if keep < Duration::from_secs(3600)
            || keep < self.webhook_max_age
            || keep > Duration::from_secs(3650 * 86400)
        {
            violation(
                out,
                "service.event_retention",
                humantime::format_duration(keep).to_string(),
                "must be between 1h (and at least service.webhook_max_age, so that a replayed \
                 event is still recognised) and 3650d"
                    .into(),
            );
        }
        if let Some(dir) = &self.recordings_dir {
            if dir.as_os_str().is_empty() {
                violation(
                    out,
                    "service.recordings_dir",
                    "\"\"".into(),
                    "must be a directory path (leave it unset to turn recording off)".into(),
                );
            } else if dir.exists() && !dir.is_dir() {
                violation(
                    out,
                    "service.recordings_dir",
                    format!("{:?}", dir.display().to_string()),
                    "exists and is not a directory".into(),
                );
            }
        }
        for (key, d, lo, hi) in [
            ("service.header_timeout", self.header_timeout, 1, 300),
            ("service.body_timeout", self.body_timeout, 1, 300),
            ("service.shutdown_grace", self.shutdown_grace, 0, 600),
        ] {
            if d < Duration::from_secs(lo) || d > Duration::from_secs(hi) {
                violation(
                    out,
                    key,
                    humantime::format_duration(d).to_string(),
                    format!("must be between {lo}s and {hi}s"),
                );
            }
        }
        for (key, v, lo, hi) in [
            (
                "service.max_connections",
                u64::from(self.max_connections),
                1,
                1_000_000,
            ),
            (
                "service.max_in_flight",
                u64::from(self.max_in_flight),
                1,
                1_000_000,
            ),
            (
                "service.max_body_bytes",
                self.max_body_bytes,
                1024,
                1024 * 1024,
            ),
            (
                "service.rate_per_minute",
                u64::from(self.rate_per_minute),
                1,
                1_000_000,
            ),
            ("service.rate_burst", u64::from(self.rate_burst), 1, 100_000),
            (
                "service.max_streams_per_caller",
                u64::from(self.max_streams_per_caller),
                1,
                1_000_000,
            ),
            (
                "service.max_live_streams_per_caller",
                u64::from(self.max_live_streams_per_caller),
                1,
                1_000_000,
            ),
            (
                "service.max_recordings_per_caller",
                u64::from(self.max_recordings_per_caller),
                1,
                1_000_000,
            ),
        ] {
            if v < lo || v > hi {
                violation(
                    out,
                    key,
                    v.to_string(),
                    format!("must be between {lo} and {hi}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::Loader;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn service_defaults_are_loopback_and_sqlite() {
        let c = Loader::new()
            .no_file()
            .env_vars(Vec::<(String, String)>::new())
            .load()
            .unwrap();
        assert!(c.service.listen_addr().unwrap().ip().is_loopback());
        assert_eq!(c.service.database, "wavecast-service.db");
    }

    #[test]
    fn public_listen_without_tls_flag_is_refused_naming_file_and_line() {
        let f = file("[service]\nlisten = \"0.0.0.0:8089\"\n");
        let e = Loader::new()
            .file(f.path())
            .env_vars(Vec::<(String, String)>::new())
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "service.listen = \"0.0.0.0:8089\" ({}:2): is not a loopback address",
                f.path().display()
            )),
            "{e}"
        );
        assert!(e.contains("allow_public"), "{e}");
        let ok = Loader::new()
            .file(f.path())
            .env_vars([("WAVECAST_SERVICE__ALLOW_PUBLIC", "true")])
            .load();
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn service_errors_name_key_and_source_and_hide_secrets() {
        let e = Loader::new()
            .no_file()
            .env_vars([
                ("WAVECAST_SERVICE__AUTH_SECRET", "short"),
                ("WAVECAST_SERVICE__RATE_BURST", "0"),
                ("WAVECAST_SERVICE__DATABASE", "mysql://x/y"),
            ])
            .flag("service.auth_algorithm", "--alg", "hs512")
            .load()
            .unwrap_err()
            .to_string();
        assert!(e.contains("service.auth_algorithm"), "{e}");
        assert!(e.contains("command-line flag --alg"), "{e}");
        assert!(e.contains("must be one of hs256, rs256, es256"), "{e}");
        let e = Loader::new()
            .no_file()
            .env_vars([
                ("WAVECAST_SERVICE__AUTH_SECRET", "short"),
                ("WAVECAST_SERVICE__RATE_BURST", "0"),
                ("WAVECAST_SERVICE__DATABASE", "mysql://x/y"),
            ])
            .load()
            .unwrap_err()
            .to_string();
        assert!(e.contains("service.auth_secret = [redacted] (environment variable WAVECAST_SERVICE__AUTH_SECRET): is too short"), "{e}");
        assert!(!e.contains("short\""), "{e}");
        assert!(e.contains("service.rate_burst = 0 (environment variable WAVECAST_SERVICE__RATE_BURST): must be between 1 and 100000"), "{e}");
        assert!(e.contains("service.database = \"mysql://x/y\""), "{e}");
    }

    #[test]
    fn recordings_dir_that_is_a_file_is_refused_naming_the_key() {
        let f = file("");
        let e = Loader::new()
            .no_file()
            .env_vars([(
                "WAVECAST_SERVICE__RECORDINGS_DIR",
                f.path().display().to_string(),
            )])
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("service.recordings_dir")
                && e.contains("WAVECAST_SERVICE__RECORDINGS_DIR")
                && e.contains("is not a directory"),
            "{e}"
        );
        let e = Loader::new()
            .no_file()
            .env_vars([("WAVECAST_SERVICE__RECORDINGS_DIR", "")])
            .load()
            .unwrap_err()
            .to_string();
        assert!(e.contains("service.recordings_dir = \"\""), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let c = Loader::new()
            .no_file()
            .env_vars([(
                "WAVECAST_SERVICE__RECORDINGS_DIR",
                dir.path().join("new").display().to_string(),
            )])
            .load()
            .unwrap();
        assert_eq!(c.service.recordings_dir, Some(dir.path().join("new")));
    }

    #[test]
    fn unknown_service_key_suggests_the_close_one() {
        let f = file("[service]\nlisen = \"127.0.0.1:1\"\n");
        let e = Loader::new()
            .file(f.path())
            .env_vars(Vec::<(String, String)>::new())
            .load()
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `service.listen`?"), "{e}");
    }
}
