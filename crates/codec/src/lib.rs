//! Opus and VP8 encoders and decoders over the system libopus and libvpx.
#![deny(missing_docs)]

/// Errors of the codecs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A codec library call failed.
    #[error("{codec} {op} failed: {message}")]
    Library {
        /// `opus` or `vp8`.
        codec: &'static str,
        /// The operation.
        op: &'static str,
        /// The library's message.
        message: String,
    },
}
