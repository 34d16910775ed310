//! The crate's error type.

use std::path::PathBuf;

/// Errors of the shared app layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// Neither a token nor an API key and secret were given.
    #[error(
        "no credentials: give --token (or LIVEKIT_TOKEN), or an API key and secret \
         (--api-key/--api-secret, LIVEKIT_API_KEY/LIVEKIT_API_SECRET, or [connection] in the \
         config file)"
    )]
    NoCredentials,
    /// The layered configuration is invalid.
    #[error("{message}")]
    Config {
        /// Every problem, one a line, each naming its key and source.
        message: String,
        /// The loader's error.
        #[source]
        source: wavecast_config::ConfigError,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The end-to-end key file could not be used.
    #[error("cannot read the end-to-end key from {}: {reason}", path.display())]
    E2eeKey {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        reason: String,
    },
    /// Statistics could not be serialised.
    #[error("cannot serialise the statistics for {}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The serialiser's error.
        #[source]
        source: serde_json::Error,
    },
}
