//! Layered configuration for wavecast tools.
//!
//! Values come from four layers, each overriding the one before:
//!
//! 1. built-in defaults ([`Config::default`]);
//! 2. a TOML file (`config/livekit.toml`, or the file given with `--config`);
//! 3. the environment: `LIVEKIT_URL`, `LIVEKIT_API_KEY`, `LIVEKIT_API_SECRET`, and
//!    `WAVECAST_<SECTION>__<KEY>` for everything else (e.g. `WAVECAST_VIDEO__FPS=15`);
//! 4. command-line flags, registered by the app with [`Loader::flag`].
//!
//! Loading validates everything and reports every problem at once. Each problem names the key, the
//! value, where the value came from (file and line, environment variable, flag or default) and what is
//! allowed:
//!
//! ```text
//! video.fps = 0 (config/livekit.toml:12): must be between 1 and 120
//! ```
//!
//! Unknown keys are errors, with a "did you mean" when a known key is close. The API secret is a
//! [`Secret`]: it never shows in `Debug` output or logs.
//!
//! ```
//! use wavecast_config::Loader;
//!
//! let config = Loader::new()
//!     .env_vars([("WAVECAST_VIDEO__FPS", "15")])
//!     .flag("connection.room", "--room", "standup")
//!     .load()?;
//! assert_eq!(config.video.fps, 15);
//! assert_eq!(config.connection.room, "standup");
//! # Ok::<(), wavecast_config::ConfigError>(())
//! ```
//!
//! # Design
//! Two stages, as in ripgrep: [`Loader::load`] parses and validates without side effects and returns
//! plain values; apps build resources from them afterwards. figment does the layering and keeps, for
//! every value, the provider it came from; this crate turns that into messages a person can act on.
#![deny(missing_docs)]

mod error;
mod model;
mod service;
mod sources;

pub use error::{ConfigError, Problem};
pub use model::{
    AudioConfig, Config, ConnectionConfig, ReconnectPolicy, Secret, Transport, VideoCodec,
    VideoConfig,
};
pub use service::{CallerAlgorithm, ServiceConfig};
pub use sources::{DEFAULT_FILE, Loader};
