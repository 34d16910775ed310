//! Load test for LiveKit that reports glass-to-glass latency.
//!
//! P publishers send synthetic video (colour bars, a moving box and the wavecast frame stamp:
//! frame number + capture time) and optionally a tone; S subscribers in R rooms decode every
//! frame and read the stamps back. All of it runs in one process on the wavecast room API
//! ([`wavecast_session::Room`]) and media-stream crate ([`wavecast_stream`]: its publish loops,
//! its receive path, its latency percentiles), against one server or several nodes of a cluster. The [`Report`] gives, per subscriber and
//! in total: join success, join → first frame, tracks subscribed/expected, packets, audio loss,
//! bitrate, frames delivered, glass-to-glass latency p50/p95/p99 (capture stamp → decoded
//! picture, one machine clock), decode errors, and the process's CPU.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wavecast_loadtest::LoadTestError> {
//! use std::time::Duration;
//! use tokio_util::sync::CancellationToken;
//! use wavecast_loadtest::{LoadTest, LoadTestConfig};
//! use wavecast_token::Keys;
//!
//! let mut config = LoadTestConfig::new("ws://127.0.0.1:7880", Keys::new("devkey", "secret"));
//! config.publishers = 2;
//! config.subscribers = 6;
//! config.duration = Duration::from_secs(10);
//! let test = LoadTest::new(config)?; // validates: bad values are errors naming the setting
//! let cancel = CancellationToken::new(); // cancel it on Ctrl-C: rooms are still left
//! let report = test.run(cancel).await?;
//! println!("{}", report.total_table());
//! println!("{}", serde_json::to_string_pretty(&report).unwrap());
//! # Ok(()) }
//! ```
//!
//! # Design
//! [`LoadTest::run`] checks the server API first (an unreachable server is one clear error, not
//! S failed joins), joins the publishers (each a [`Room`](wavecast_session::Room) plus the
//! stream crate's paced capture → encode threads behind a
//! [`Broadcast`](wavecast_stream::broadcast::Broadcast)), then spawns one task per subscriber at
//! the ramp's pace. A subscriber task hands every subscribed track to a task on the runtime given
//! to [`LoadTest::decode_on`] (the app gives it one worker per core, apart from the network
//! runtime) that feeds the stream crate's
//! [`VideoReceiver`](wavecast_stream::receive::VideoReceiver) /
//! [`AudioReceiver`](wavecast_stream::receive::AudioReceiver): every frame decoded, every stamp
//! read, pictures not copied out (`deliver_every` 0). Receivers own their counters, age
//! histogram and frame-number set and return them when the run stops, so the media path takes
//! no locks; the progress display sums their relaxed atomic counters. Frames delivered counts,
//! per subscriber and publisher, the stamped frame numbers decoded from the first one it saw up
//! to what the publisher had numbered one in-flight allowance before the end (so a subscriber
//! whose video stalls is not counted complete). Latency totals are the per-subscriber
//! histograms merged ([`AgeHistogram::merge`](wavecast_pipeline::AgeHistogram::merge)), read
//! with [`Percentiles`]. Audio loss comes from gaps in the RTP time span; the engine exposes no
//! per-packet video counters, so video loss shows as frames not delivered and as `gaps`.
//!
//! Stopping (the duration ran out, or `cancel` — Ctrl-C): joins still in flight get a few
//! seconds to finish and are then left at once (a connect dropped half-way would leave the
//! server waiting for a reconnect); every joined room is left; the report covers what ran.
#![deny(missing_docs)]

mod config;
mod error;
mod media;
mod plan;
mod report;
mod runner;

pub use config::{LoadTestConfig, VideoSettings};
pub use error::LoadTestError;
pub use report::{
    CpuReport, PublisherReport, Quantiles, Report, Settings, SubscriberReport, Totals,
};
pub use runner::{LoadTest, Phase, Progress, ProgressHandle};
pub use wavecast_stream::latency::Percentiles;
