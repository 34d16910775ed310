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
    #[error("cannot open the database {url}: {source}")]
    Connect {
        /// The database URL with any password removed.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the migrations failed.
    #[error("cannot apply the migrations to {url}: {source}")]
    Migrate {
        /// The database URL with any password removed.
        url: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("storage: {what}: {source}")]
    Storage {
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The listening socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}
