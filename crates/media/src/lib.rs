//! Media sources and sinks for wavecast — where file and device IO lives, around the
//! allocation-free [`wavecast_pipeline`].
//!
//! - synthetic video: [`TestPattern`] (colour bars, a moving box, and the frame number and
//!   capture time drawn as a [`stamp`] that survives lossy codecs, with its decoder);
//! - synthetic audio: [`ToneGenerator`] (tone or chirp) with timestamp [`Markers`] and the
//!   [`MarkerDetector`] a receiver uses to find them;
//! - files: [`Y4mReader`]/[`Y4mWriter`], [`WavReader`]/[`WavWriter`], [`IvfWriter`] (VP8 or VP9
//!   as received), [`snapshot::write_i420_png`], and [`Looping`] over any
//!   [`VideoSource`] or [`AudioSource`];
//! - recordings: [`webm`], a crash-safe writer of encoded VP8, VP9 and Opus into WebM and of
//!   H.264 into Matroska, with a repair routine for files a crash cut short;
//! - audio outputs by name ([`OutputSpec`]: `null`, `wav:PATH`, `device[:NAME]`) so everything
//!   runs headless; devices (output and capture) through cpal behind the `cpal` cargo feature (off
//!   by default; needs `libasound2-dev`), tested on ALSA's `null` device
//!   (`cargo test -p wavecast-media --features cpal`).
//!
//! ```
//! use wavecast_media::{stamp, TestPattern};
//! use wavecast_pipeline::{PixelFormat, Timestamp, VideoFramePool, VideoLayout};
//!
//! let pool = VideoFramePool::new("synthetic", VideoLayout::new(PixelFormat::I420, 640, 360)?, 3);
//! let mut frame = pool.acquire()?;
//! let now = Timestamp::now();
//! TestPattern::default().render(&mut frame, 7, now)?;
//! let frame = frame.freeze();
//! // A receiver (after any lossless or lossy path) reads the number and capture time back.
//! let s = stamp::decode_frame(&frame)?;
//! assert_eq!((s.frame_number, s.timestamp), (7, now));
//! # Ok::<(), wavecast_media::MediaError>(())
//! ```
//!
//! # Design
//! Sources fill buffers the caller acquired from a pipeline pool (`read_frame(&mut out)`), so
//! the caller owns memory, pacing and threads; nothing here spawns threads except cpal's own
//! device callbacks, which only touch a lock-free audio ring. Every file error names the file and
//! says what is wrong (truncated frame, bad header tag, unsupported sample format); bad input is
//! never a panic. Synthetic signals are deterministic functions of the frame number or sample
//! position and a start timestamp, so tests can predict every pixel and sample.
#![deny(missing_docs)]

#[cfg(feature = "cpal")]
pub mod device;
mod error;
mod ivf;
mod output;
pub mod snapshot;
mod source;
pub mod stamp;
mod synth;
mod wav;
pub mod webm;
mod y4m;

pub use error::{MediaError, Result};
pub use ivf::{IVF_FRAME_HEADER_LEN, IVF_HEADER_LEN, IvfWriter};
pub use output::{AudioSink, InputSpec, NullSink, OutputSpec, SinkStats, WavSink, open_output};
pub use source::{AudioSource, FrameRate, Looping, VideoSource};
pub use synth::{Marker, MarkerDetector, Markers, TestPattern, ToneGenerator, Waveform};
pub use wav::{WavReader, WavWriter};
pub use y4m::{Y4mInfo, Y4mReader, Y4mWriter};
