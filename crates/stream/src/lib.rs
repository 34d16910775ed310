//! Media streams for wavecast, between the session and the apps: what turns sources into
//! published tracks and subscribed tracks into pictures and sound.
//!
//! - [`publish`]: one paced thread per kind — source (synthetic bars and tone with embedded
//!   timestamps, Y4M/WAV files, a live [`publish::Grabber`], the microphone with `cpal`) →
//!   encoder (VP8, Opus) → [`publish::EncodedSink`] (a published track, or the loopback link);
//!   mute, keyframe requests and counters steered through a bounded control channel;
//! - [`receive`]: one thread per subscribed track ([`receive::spawn_video`],
//!   [`receive::spawn_audio`]) — the session subscriber's decode step
//!   ([`wavecast_session::VideoSubscriber::decode`]; this crate decodes nothing itself) →
//!   pipeline frames in a latest-frame [`Mailbox`](wavecast_pipeline::Mailbox) (video, any size
//!   at any point of the stream) or a drop-oldest fan-out (audio), with the stamp-derived delivery
//!   ratio and latency, within [`receive::ReceiveLimits`] (largest picture, most tracks) against
//!   hostile publishers; the same path without a thread ([`receive::VideoReceiver`],
//!   [`receive::AudioReceiver`]) for callers that drive many tracks from their own workers (a
//!   load test);
//! - [`broadcast`]: a participant's publish loops and tracks — publish, mute, leave, stats;
//! - [`decoders`]: the decoders of one watched participant, handing their
//!   [`record::ivf_wav`] files along;
//! - [`record`]: the room recorder — joins hidden, every participant's VP8 and Opus untouched
//!   into one crash-safe WebM file per participant visit, a JSON manifest per room; and
//!   [`record::ivf_wav`], the viewer's received VP8 into IVF and decoded audio into WAV;
//! - [`loopback`]: capture → encode → decode in one process, no server;
//! - [`latency`]: percentiles on the pipeline's [`AgeHistogram`](wavecast_pipeline::AgeHistogram);
//! - [`frames`]: the set of stamped frame numbers a receiver decoded (delivery ratios).
//!
//! ```no_run
//! use std::sync::Arc;
//! use wavecast_stream::decoders::{Decoders, Outputs};
//! use wavecast_stream::loopback::Loopback;
//! use wavecast_stream::publish::{AudioInput, VideoSettings};
//! use wavecast_stream::receive::{AudioOut, VideoOut};
//!
//! // Synthetic 320x180 video and a tone, encoded and decoded in this process.
//! let out = Outputs { video: Arc::new(VideoOut::default()), audio: Arc::new(AudioOut::new(false)), channels: 1 };
//! let video = VideoSettings::pattern(320, 180, 30, 400_000);
//! let tone = AudioInput::Tone { frequency: 440.0, channels: 1 };
//! let lb = Loopback::start(&video, &tone, 32_000, &out, Decoders::new(None, None))?;
//! std::thread::sleep(std::time::Duration::from_secs(1));
//! if let Some(frame) = out.video.mailbox.take() {
//!     println!("latest picture {}x{}", frame.width(), frame.height());
//! }
//! let finished = lb.stop();
//! println!("{} frames decoded", finished.video[0].frames_decoded);
//! # Ok::<(), wavecast_stream::StreamError>(())
//! ```
//!
//! # Design
//! Media runs on plain threads, never on the async runtime: a capture thread sleeps to its next
//! tick and never waits on the network (a full sink drops the frame and counts it); a decoder
//! thread blocks on its source only. What the renderer reads is lock-free (relaxed atomics, the
//! mailbox, bounded queues with drop-oldest); full statistics stay on the decoder thread and come
//! back when its track ends. Buffers come from pipeline pools, so steady state allocates nothing;
//! a decoded picture larger than the pool's buffers rebuilds the pool once.
#![deny(missing_docs)]

pub mod broadcast;
pub mod decoders;
mod error;
pub mod frames;
pub mod latency;
pub mod loopback;
pub mod publish;
pub mod receive;
pub mod record;
#[cfg(feature = "x11")]
pub mod screen;

pub use error::{Result, StreamError};
