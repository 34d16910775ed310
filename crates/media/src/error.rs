//! The crate's error type.

use std::io;
use std::path::PathBuf;

use wavecast_pipeline::{PipelineError, PixelFormat};

/// Errors from media sources and sinks. File errors always name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Opening, reading or writing a file failed.
    #[error("{path}: {action} failed")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done ("open", "read frame 3", ...).
        action: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A Y4M file's header is missing or malformed.
    #[error("{path}: bad Y4M header: {reason}")]
    Y4mHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A Y4M file uses a feature this reader does not support (only 8-bit 4:2:0 is).
    #[error("{path}: unsupported Y4M stream: {reason}")]
    Y4mUnsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// A Y4M file ends in the middle of a frame.
    #[error("{path}: truncated Y4M frame {frame}: expected {expected} bytes, found {found}")]
    Y4mTruncated {
        /// The file.
        path: PathBuf,
        /// Zero-based index of the incomplete frame.
        frame: u64,
        /// Bytes the frame should have.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// A Y4M frame header is malformed.
    #[error("{path}: bad Y4M frame header at frame {frame}: {reason}")]
    Y4mFrame {
        /// The file.
        path: PathBuf,
        /// Zero-based frame index.
        frame: u64,
        /// What is wrong.
        reason: String,
    },
    /// A WAV file could not be parsed or written.
    #[error("{path}: WAV error")]
    Wav {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: hound::Error,
    },
    /// A WAV file is valid but in a format this crate does not read.
    #[error("{path}: unsupported WAV format: {reason}")]
    WavUnsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// A WebM file cannot be written or read as asked.
    #[error("{path}: WebM: {reason}")]
    Webm {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A frame does not match what the sink or source was opened with.
    #[error("{what}: {reason}")]
    FormatMismatch {
        /// The sink or source.
        what: String,
        /// What differs.
        reason: String,
    },
    /// A pixel format a sink cannot take.
    #[error("{what} takes I420 frames, got {format:?}")]
    UnsupportedPixelFormat {
        /// The sink.
        what: String,
        /// The format given.
        format: PixelFormat,
    },
    /// A source that yields no frames cannot loop.
    #[error("{what} is empty: nothing to loop")]
    EmptySource {
        /// The source.
        what: String,
    },
    /// No frame stamp could be found or it failed its checksum.
    #[error("frame stamp not decoded: {reason}")]
    Stamp {
        /// Why.
        reason: String,
    },
    /// An output or input specification could not be parsed.
    #[error("bad audio {kind} `{spec}`: {reason}")]
    BadSpec {
        /// "output" or "input".
        kind: &'static str,
        /// The text given.
        spec: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// An audio device could not be opened or failed.
    #[error("audio device {device}: {reason}")]
    Device {
        /// The device name (or "default").
        device: String,
        /// What happened.
        reason: String,
    },
    /// A parameter is out of range.
    #[error("invalid {what}: {reason}")]
    InvalidParameter {
        /// Which parameter.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A PNG could not be written.
    #[error("{path}: PNG error")]
    Png {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: png::EncodingError,
    },
    /// A pipeline error (pool, layout or format).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Result alias for this crate.
pub type Result<T, E = MediaError> = std::result::Result<T, E>;

/// `map_err` helper naming the file and the action; path and action are copied only when the
/// error happens (per-frame writers call this on every frame).
pub(crate) fn io_err(
    path: &std::path::Path,
    action: impl Into<String>,
) -> impl FnOnce(io::Error) -> MediaError {
    move |source| MediaError::Io {
        path: path.to_path_buf(),
        action: action.into(),
        source,
    }
}
