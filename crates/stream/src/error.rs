//! The crate's error type.

use std::path::PathBuf;

use wavecast_codec::CodecError;
use wavecast_media::MediaError;
use wavecast_pipeline::PipelineError;

/// Errors of media streams. Each variant says which stream, file or thread it is about and
/// keeps the underlying error as its `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// An encoder or decoder failed.
    #[error("{what}")]
    Codec {
        /// Which codec step ("start the VP8 encoder", "encode video frame 12", …).
        what: String,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// A media file or device failed.
    #[error("{what}")]
    Media {
        /// Which source or sink.
        what: String,
        /// The media error (names the file).
        #[source]
        source: MediaError,
    },
    /// A pipeline pool or queue failed.
    #[error("{what}")]
    Pipeline {
        /// Which pool or frame.
        what: String,
        /// The pipeline's error.
        #[source]
        source: PipelineError,
    },
    /// A source or setting that cannot be streamed.
    #[error("{what}: {reason}")]
    Unsupported {
        /// The source or setting (a file, a flag).
        what: String,
        /// Why, and what is accepted.
        reason: String,
    },
    /// A live capture source (screen, camera) failed.
    #[error("{what}: {reason}")]
    Capture {
        /// The source.
        what: String,
        /// What happened.
        reason: String,
    },
    /// A sink's receiving end is gone (track unpublished, session ended, link closed).
    #[error("{what} closed")]
    SinkClosed {
        /// The track or link.
        what: String,
    },
    /// The server refused to publish a track.
    #[error("cannot publish the {track} track")]
    Publish {
        /// `video` or `audio`.
        track: String,
        /// The session's error.
        #[source]
        source: Box<wavecast_session::SessionError>,
    },
    /// A session publisher (the encoders of a published video track) failed.
    #[error("{what}")]
    Publisher {
        /// What it was doing.
        what: String,
        /// The session's error.
        #[source]
        source: Box<wavecast_session::SessionError>,
    },
    /// A session subscriber (the decoder of a receive path) could not start.
    #[error("{what}")]
    Subscriber {
        /// What was being started.
        what: String,
        /// The session's error.
        #[source]
        source: Box<wavecast_session::SessionError>,
    },
    /// A track's decoder thread needs a tokio runtime to read the track, and none is current.
    #[error("cannot {what} outside a tokio runtime")]
    NoRuntime {
        /// What was being started.
        what: String,
        /// Tokio's error.
        #[source]
        source: tokio::runtime::TryCurrentError,
    },
    /// A thread could not be started.
    #[error("cannot start the {name} thread")]
    Thread {
        /// Thread name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A stream's thread panicked (a bug).
    #[error("the {name} thread panicked")]
    Panicked {
        /// Thread name.
        name: String,
    },
    /// A file or directory could not be created or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;

/// `map_err` helpers naming what failed. The description is turned into a `String` only when
/// the error happens: a `&'static str` costs nothing on the per-frame success path (pass a
/// closure instead of these helpers where the description needs `format!`).
pub(crate) fn codec(what: impl Into<String>) -> impl FnOnce(CodecError) -> StreamError {
    move |source| StreamError::Codec {
        what: what.into(),
        source,
    }
}

pub(crate) fn media(what: impl Into<String>) -> impl FnOnce(MediaError) -> StreamError {
    move |source| StreamError::Media {
        what: what.into(),
        source,
    }
}

pub(crate) fn pipeline(what: impl Into<String>) -> impl FnOnce(PipelineError) -> StreamError {
    move |source| StreamError::Pipeline {
        what: what.into(),
        source,
    }
}

pub(crate) fn subscriber(
    what: impl Into<String>,
) -> impl FnOnce(wavecast_session::SessionError) -> StreamError {
    move |source| StreamError::Subscriber {
        what: what.into(),
        source: Box::new(source),
    }
}

pub(crate) fn thread(name: &str) -> impl FnOnce(std::io::Error) -> StreamError {
    let name = name.to_owned();
    move |source| StreamError::Thread { name, source }
}
