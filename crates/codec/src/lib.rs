//! Opus, VP8, VP9 and H.264 encoders and decoders, and the simulcast downscaler.
//!
//! Opus and VP8/VP9 run over the distro's libopus and libvpx (`libopus-dev`, `libvpx-dev`,
//! found with pkg-config); H.264 over OpenH264, which the `openh264` crate builds from its
//! bundled sources with the C++ compiler (and with its assembly when `nasm` is installed).
//! The codecs work on plain slices (interleaved `i16` PCM, borrowed [`I420`] planes) so they
//! slot under any frame type; [`pipeline`] adapts them to `wavecast-pipeline`'s `AudioFrame` and
//! `VideoFrame`.
//!
//! Video goes through one API whatever the codec: [`VideoCodec`] names it (`vp8`, `vp9`,
//! `h264`, and the MIME types SDP uses), [`VideoEncoder`] (with [`VideoEncoderConfig`]) and
//! [`VideoDecoder`] do the work, [`keyframe_size`] reads the picture size a keyframe announces,
//! and [`h264`] has the Annex B helpers a recorder needs. [`Vp8Encoder`] and [`Vp8Decoder`] are
//! the VP8-only faces of the same code, kept for existing callers. [`I420Scaler`] scales every
//! captured picture to a simulcast layer's size.
//!
//! ```
//! use wavecast_codec::{OpusDecoder, OpusEncoder, OPUS_FRAME_SAMPLES, MAX_OPUS_DECODED, MAX_OPUS_PACKET};
//! let mut enc = OpusEncoder::new(1, 32_000)?;
//! let mut dec = OpusDecoder::new(1)?;
//! let pcm = [0i16; OPUS_FRAME_SAMPLES];
//! let mut packet = [0u8; MAX_OPUS_PACKET];
//! let len = enc.encode(&pcm, &mut packet)?;
//! let mut out = vec![0i16; MAX_OPUS_DECODED];
//! assert_eq!(dec.decode(&packet[..len], &mut out)?, OPUS_FRAME_SAMPLES);
//! # Ok::<(), wavecast_codec::CodecError>(())
//! ```
//!
//! # Design
//! Thin safe wrappers: the encoders own their output buffer (allocated once) and hand out
//! borrows, so steady-state encoding allocates nothing; so does scaling. Target bitrate can
//! change at any time and `force_keyframe` answers PLI/FIR. Bad input (wrong sizes, corrupt
//! packets) is an error, never a panic; a picture larger than a decoder accepts is refused
//! before the library allocates for it (VP8 and VP9 frame headers and H.264 SPSs are read
//! first). No threads: callers run codecs off the network path. Audio survives loss: the Opus
//! encoder sends in-band FEC (it expects [`DEFAULT_EXPECTED_LOSS_PERCENT`] loss until told
//! otherwise) and [`OpusStreamDecoder`] fills the gaps in a received stream's RTP times with
//! that FEC and libopus's concealment.
#![deny(missing_docs)]

mod codec;
pub mod h264;
mod image;
mod opus;
mod opus_stream;
pub mod pipeline;
mod scale;
mod video;
pub mod vp9;
mod vpx;

pub use crate::codec::{UnknownCodec, VideoCodec};
pub use crate::image::{DecodedImage, I420};
pub use crate::opus::{
    DEFAULT_EXPECTED_LOSS_PERCENT, MAX_OPUS_DECODED, MAX_OPUS_PACKET, OPUS_FRAME_SAMPLES,
    OPUS_SAMPLE_RATE, OpusDecoder, OpusEncoder, packet_has_fec, packet_samples,
};
pub use crate::opus_stream::{DEFAULT_MAX_CONCEAL, OpusStreamDecoder, StreamDecoded, StreamStats};
pub use crate::scale::I420Scaler;
pub use crate::video::{
    EncodedVideo, VideoDecoder, VideoEncoder, VideoEncoderConfig, keyframe_size,
};
pub use crate::vpx::{
    DEFAULT_MAX_PIXELS, VIDEO_CLOCK, Vp8Config, Vp8Decoder, Vp8Encoder, Vp8Frame,
    vp8_keyframe_size, vp9_keyframe_size,
};

/// Errors of the codecs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A codec library call failed.
    #[error("{codec} {op} failed: {message}")]
    Library {
        /// `opus`, `vp8`, `vp9` or `h264`.
        codec: &'static str,
        /// The operation.
        op: &'static str,
        /// The library's message.
        message: String,
    },
    /// A setting the codec does not support.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What was asked.
        what: String,
    },
    /// A frame or buffer of the wrong shape.
    #[error("bad frame: {what}")]
    BadFrame {
        /// What is wrong.
        what: String,
    },
    /// A frame announced a picture larger than the decoder accepts (refused before any
    /// allocation; see [`VideoDecoder::with_max_pixels`]).
    #[error("a picture of {width}x{height} is larger than the {max_pixels} pixels accepted")]
    TooLarge {
        /// Announced width.
        width: u32,
        /// Announced height.
        height: u32,
        /// The decoder's limit, pixels.
        max_pixels: u64,
    },
    /// A pipeline frame could not be had (pool empty, bad layout).
    #[error("frame pipeline error")]
    Pipeline(#[from] wavecast_pipeline::PipelineError),
}
