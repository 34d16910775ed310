//! Lock-free, allocation-free frame pipeline for wavecast.
//!
//! Decoded (or captured) media moves from one producer thread to several consumers — renderer,
//! analyser, recorder, playback — without locks, without unbounded queues and without
//! allocating once warmed up:
//!
//! - frame types: [`AudioFrame`] (interleaved `i16`) and [`VideoFrame`] (I420, NV12, RGBA, with
//!   strides, rotation and a GPU-friendly padded layout, see [`VideoLayout::with_row_alignment`]);
//! - fixed pools of pre-allocated buffers: [`AudioFramePool`], [`VideoFramePool`];
//! - the audio path: an SPSC sample ring with a target latency, [`audio_ring`];
//! - the video path: the latest-frame [`Mailbox`];
//! - fan-out to several consumers sharing one buffer: [`FanOut`], with bounded drop-oldest
//!   [`FrameQueue`]s;
//! - [`analysis`]: RMS, peak, dBFS, envelopes, waveform history, spectrum, speaking indicator;
//! - metrics: counters on every component and an [`AgeHistogram`] of frame age at consumption,
//!   summarised into serde structs for overlays and JSON; [`cpu`]: this process's CPU time,
//!   for benches that report CPU per unit of work.
//!
//! ```
//! use wavecast_pipeline::{FanOut, PixelFormat, Timestamp, VideoFramePool, VideoLayout, GPU_ROW_ALIGNMENT};
//!
//! // 720p I420 with rows padded for GPU upload; four buffers allocated once.
//! let layout = VideoLayout::with_row_alignment(PixelFormat::I420, 1280, 720, GPU_ROW_ALIGNMENT)?;
//! let pool = VideoFramePool::new("camera", layout, 4);
//!
//! let mut fan_out = FanOut::new();
//! let renderer = fan_out.add_mailbox("renderer"); // newest frame only
//! let recorder = fan_out.add_queue("recorder", 8); // every frame, drop-oldest when full
//!
//! // Producer (decoder thread): fill a pooled buffer and publish it.
//! let mut frame = pool.acquire()?; // PoolEmpty (counted) if consumers hold every buffer
//! frame.plane_mut(0).fill(16);
//! frame.set_timestamp(Timestamp::now()).set_sequence(1);
//! fan_out.publish(frame.freeze());
//!
//! // Consumers (other threads): same pixels, no copy.
//! let shown = renderer.take().expect("a frame was posted");
//! let kept = recorder.pop().expect("a frame was queued");
//! assert!(shown.ptr_eq(&kept));
//! assert_eq!(shown.plane(0).row(0)[0], 16);
//! assert_eq!(shown.strides()[0], 1280);
//! drop((shown, kept)); // the buffer is free in the pool again
//! assert_eq!(pool.stats().exhausted, 0);
//! # Ok::<(), wavecast_pipeline::PipelineError>(())
//! ```
//!
//! # Design
//! Frames are `Arc`s to pool slots. A pool keeps one reference to each of its slots in a
//! crossbeam `ArrayQueue`; a slot is free when that is the only reference left, so a frame
//! "returns" to its pool simply by its last clone being dropped — on whichever thread — and
//! fan-out is an atomic increment per consumer. Writers get exclusive access through
//! `Arc::get_mut`, so there is no `unsafe` and no hand-written lock-free structure in this crate:
//! the shared-memory structures are std's `Arc`, crossbeam's `ArrayQueue` (pools, mailboxes,
//! queues) and `ringbuf`'s SPSC ring (audio samples), plus statistics counters kept on separate
//! cache lines for the producer and consumer sides. The pool protocol and the counters are
//! model-checked with loom (`RUSTFLAGS="--cfg loom" cargo test -p wavecast-pipeline --release
//! --test loom`, and `--lib loom_`). Every hand-off has a stated policy when full (drop oldest
//! for queues and mailboxes, drop newest for the audio ring, refuse for an empty pool) and
//! counts what it dropped. Nothing here does IO,
//! spawns threads or owns an async runtime; time comes in as [`Timestamp`] arguments or one clock
//! read.
#![deny(missing_docs)]

pub mod analysis;
mod audio;
mod counter;
pub mod cpu;
mod error;
#[cfg(loom)]
mod loom_queue;
mod metrics;
mod pool;
mod queue;
mod ring;
mod sync;
mod time;
mod video;

pub use audio::{AudioFormat, AudioFrame, AudioFrameMut, AudioFramePool};
pub use error::{PipelineError, Result};
pub use metrics::{AgeHistogram, LatencySummary, MAX_TRACKED_AGE};
pub use pool::PoolStats;
pub use queue::{FanOut, FrameQueue, Mailbox, QueueStats, Subscriber};
pub use ring::{
    AudioRingConfig, AudioRingConsumer, AudioRingProducer, AudioRingStats, AudioRingStatsHandle,
    DEFAULT_TARGET_LATENCY, audio_ring,
};
pub use time::Timestamp;
pub use video::{
    GPU_ROW_ALIGNMENT, MAX_DIMENSION, PixelFormat, Plane, PlaneLayout, PlaneMut, Rotation, Vec3,
    VideoFrame, VideoFrameMut, VideoFramePool, VideoLayout,
};
