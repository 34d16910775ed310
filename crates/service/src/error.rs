//! The crate's error type.

/// Why the service could not be set up or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A configuration value is missing or unusable (named by its dotted key).
    #[error("{key}: {message}")]
    Config {
        /// Dotted config key, e.g. `service.auth_secret`.
        key: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A public key file could not be read or parsed.
    #[error("service.auth_public_key {path}: {message}")]
    PublicKey {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The database could not be opened.
    #[error("cannot open the database {url}")]
    Connect {
        /// The database URL with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the migrations failed.
    #[error("cannot apply the migrations to {url}")]
    Migrate {
        /// The database URL with any password removed.
        url: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("storage: {what}")]
    Storage {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The listening socket failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

/// `e` and its causes, `: `-separated, for a log line (messages do not repeat their causes).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}
