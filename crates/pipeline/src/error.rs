//! The crate's error type.

use std::sync::Arc;

use crate::video::PixelFormat;

/// Errors from the pipeline. Every variant says which pool, format or size was involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Every buffer of the pool is in use (held by consumers or writers). Counted in the pool's
    /// [`PoolStats::exhausted`](crate::PoolStats::exhausted); the caller decides whether to skip the
    /// frame (the usual choice for live media) or wait.
    #[error("frame pool `{pool}` is empty: all {capacity} buffers are in use")]
    PoolEmpty {
        /// Name of the pool.
        pool: Arc<str>,
        /// Number of buffers the pool owns.
        capacity: usize,
    },
    /// The requested frame does not fit the pool's pre-allocated buffers.
    #[error("frame pool `{pool}`: a frame needs {needed} elements but buffers hold {capacity}")]
    FrameTooLarge {
        /// Name of the pool.
        pool: Arc<str>,
        /// Elements (bytes or samples) the frame needs.
        needed: usize,
        /// Elements each buffer holds.
        capacity: usize,
    },
    /// Video dimensions are zero or too large.
    #[error("invalid {format:?} frame size {width}x{height} (each side must be 1..={max})")]
    InvalidDimensions {
        /// Pixel format requested.
        format: PixelFormat,
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Largest accepted side.
        max: u32,
    },
    /// Row alignment is not a power of two (or is zero).
    #[error("row alignment {0} is not a power of two")]
    InvalidAlignment(usize),
    /// An audio format parameter is out of range.
    #[error("invalid audio format: {what} = {value} (allowed {allowed})")]
    InvalidAudioFormat {
        /// Which parameter.
        what: &'static str,
        /// The value given.
        value: u64,
        /// The allowed range, for the message.
        allowed: &'static str,
    },
    /// A frame's format differs from what a ring or analyser was configured for.
    #[error(
        "{component}: frame is {got_rate} Hz/{got_channels} ch but {expected_rate} Hz/{expected_channels} ch was configured"
    )]
    AudioFormatMismatch {
        /// The component that rejected the frame.
        component: &'static str,
        /// Configured sample rate.
        expected_rate: u32,
        /// Configured channel count.
        expected_channels: u16,
        /// Frame sample rate.
        got_rate: u32,
        /// Frame channel count.
        got_channels: u16,
    },
    /// An analysis parameter is out of range.
    #[error("invalid analysis parameter {what} = {value} ({reason})")]
    InvalidParameter {
        /// Which parameter.
        what: &'static str,
        /// The value given.
        value: f64,
        /// Why it is rejected.
        reason: &'static str,
    },
}

/// Result alias for this crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
