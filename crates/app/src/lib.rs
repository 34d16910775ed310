//! What every wavecast app shares (not published): connection flags ([`ConnectArgs`], clap),
//! layered config loading, logging set-up, exit codes, SIGINT/SIGTERM handling
//! ([`signal`]), the connection ([`Connector`]: the first join of a [`wavecast_session::Room`]
//! with the reconnect policy, then the room's state as a [`Link`]), participant following ([`follow`]: watch one
//! participant and follow the next publisher; `participant`: its media from a room or the
//! loopback, and the headless run of its scene; `roster`: decode everyone, within the
//! [`limits`] on picture size and decoded tracks), and a serde
//! stats-file writer ([`write_stats`]); chat and transcriptions as lines, JSON ([`chat`]) and
//! captions under the speakers' tiles ([`captions`]).
//!
//! Feature `visualizer` (default): the modules that feed scenes on wgpu (`feeds`,
//! `participant`, `render`, `roster`). Apps that render nothing (the recorder) turn it off and
//! link no wgpu.
//!
//! ```no_run
//! use clap::{CommandFactory, FromArgMatches, Parser};
//! use wavecast_app::{ConnectArgs, Connector, Credentials, EXIT_USAGE, fail, load_config};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     conn: ConnectArgs,
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     let m = Cli::command().get_matches();
//!     let cli = Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
//!     wavecast_app::init_logging(false);
//!     let config = match load_config(&cli.conn, &m) {
//!         Ok(c) => c,
//!         Err(e) => return fail(&e.into(), EXIT_USAGE),
//!     };
//!     let creds = Credentials::from_config(&config, &cli.conn, "demo", wavecast_token::Preset::Viewer)
//!         .expect("credentials");
//!     let connector = Connector::new(config.connection.url.clone(), creds,
//!         config.reconnect.clone(), config.connection.connect_timeout);
//!     let rt = tokio::runtime::Runtime::new().expect("runtime");
//!     match rt.block_on(connector.connect()) {
//!         Ok((room, _events)) => { rt.block_on(room.close()); std::process::ExitCode::SUCCESS }
//!         Err(e) => std::process::ExitCode::from(e.exit_code()),
//!     }
//! }
//! ```
//!
//! # Design
//! Apps parse and validate first (no side effects), then build from validated values, run, and
//! map errors to the exit codes here. A signal never ends the process by itself: it sets a flag
//! the app's loop (or window) reads, so recordings are finalised and the room is left on the
//! normal path.
#![deny(missing_docs)]

pub mod captions;
pub mod chat;
mod cli;
mod connection;
pub mod env;
mod error;
#[cfg(feature = "visualizer")]
pub mod feeds;
pub mod follow;
pub mod limits;
#[cfg(feature = "visualizer")]
pub mod participant;
#[cfg(feature = "visualizer")]
pub mod render;
#[cfg(feature = "visualizer")]
pub mod roster;
pub mod rpc_exec;
pub mod signal;
mod stats;

pub use cli::{
    ConnectArgs, Credentials, E2eeKey, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, LAYERS_HELP,
    VideoArgs, config_error_message, defaults, end_of_run, fail, given, init_logging, load_config,
    loader, parse, random_u64, video_codec,
};
pub use connection::{
    ConnectError, Connector, Followed, Link, describe, end_failure, human_delay, ice_transport,
};
pub use error::AppError;
pub use stats::write_stats;
