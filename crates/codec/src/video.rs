//! One encoder and one decoder type over the three video codecs.
//!
//! ```
//! use wavecast_codec::{I420, VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig};
//! let (w, h) = (64u32, 48u32);
//! let (y, c) = (vec![120u8; (w * h) as usize], vec![128u8; (w * h / 4) as usize]);
//! let picture = I420 { width: w, height: h, planes: [&y, &c, &c], strides: [64, 32, 32] };
//! for codec in VideoCodec::ALL {
//!     let mut enc = VideoEncoder::new(VideoEncoderConfig::new(codec, w, h, 30))?;
//!     let mut dec = VideoDecoder::new(codec)?;
//!     let frame = enc.encode(&picture, 0)?.expect("a frame");
//!     assert!(frame.keyframe);
//!     assert_eq!(wavecast_codec::keyframe_size(codec, frame.data), Some((w, h)));
//!     let data = frame.data.to_vec();
//!     assert!(dec.decode_frame(&data)?);
//!     assert_eq!(dec.image().map(|p| (p.image.width, p.image.height)), Some((w, h)));
//! }
//! # Ok::<(), wavecast_codec::CodecError>(())
//! ```

use crate::h264::{H264Decoder, H264Encoder, H264Settings};
use crate::vpx::{VpxDecoder, VpxEncoder, VpxSettings};
use crate::{CodecError, DecodedImage, I420, VideoCodec, Vp8Config};

/// One encoded video frame, borrowed from the encoder's buffer until its next call.
#[derive(Debug, Clone, Copy)]
pub struct EncodedVideo<'a> {
    /// The frame, ready for RTP packetisation (H.264: an Annex B access unit).
    pub data: &'a [u8],
    /// Whether it is a keyframe (H.264: an IDR picture, its SPS and PPS in front).
    pub keyframe: bool,
    /// Its timestamp, 90 kHz.
    pub pts: i64,
}

/// Settings of a [`VideoEncoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoEncoderConfig {
    /// The codec.
    pub codec: VideoCodec,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Nominal frame rate (frames per second).
    pub fps: u32,
    /// Target bitrate, bits per second.
    pub bitrate: u32,
    /// A keyframe at least every this many frames.
    pub keyframe_interval: u32,
    /// libvpx speed (`VP8E_SET_CPUUSED`; larger magnitude = faster, lower quality); `None` for
    /// the codec's real-time default (VP8 -6, VP9 7, as WebRTC on desktop). H.264 ignores it.
    pub cpu_used: Option<i32>,
    /// Encoder threads (libvpx threads; OpenH264 threads, at most 4).
    pub threads: u32,
}

impl VideoEncoderConfig {
    /// Real-time defaults for a `width`×`height` stream at `fps` in `codec`: bitrate by pixel
    /// rate (as [`Vp8Config::new`]), keyframe every 3 s, one thread.
    pub fn new(codec: VideoCodec, width: u32, height: u32, fps: u32) -> Self {
        let v = Vp8Config::new(width, height, fps);
        Self {
            codec,
            width,
            height,
            fps: v.fps,
            bitrate: v.bitrate,
            keyframe_interval: v.keyframe_interval,
            cpu_used: None,
            threads: 1,
        }
    }

    /// The libvpx speed in force: [`VideoEncoderConfig::cpu_used`] or the codec's default.
    pub fn effective_cpu_used(&self) -> i32 {
        self.cpu_used.unwrap_or(match self.codec {
            VideoCodec::Vp9 => 7,
            _ => -6,
        })
    }

    fn vpx(&self) -> VpxSettings {
        VpxSettings {
            codec: self.codec,
            width: self.width,
            height: self.height,
            fps: self.fps,
            bitrate: self.bitrate,
            keyframe_interval: self.keyframe_interval,
            cpu_used: self.effective_cpu_used(),
            threads: self.threads,
        }
    }

    fn h264(&self) -> H264Settings {
        H264Settings {
            width: self.width,
            height: self.height,
            fps: self.fps,
            bitrate: self.bitrate,
            keyframe_interval: self.keyframe_interval,
            threads: self.threads,
        }
    }
}

impl From<Vp8Config> for VideoEncoderConfig {
    fn from(c: Vp8Config) -> Self {
        Self {
            codec: VideoCodec::Vp8,
            width: c.width,
            height: c.height,
            fps: c.fps,
            bitrate: c.bitrate,
            keyframe_interval: c.keyframe_interval,
            cpu_used: Some(c.cpu_used),
            threads: c.threads,
        }
    }
}

#[derive(Debug)]
enum Encoder {
    Vpx(VpxEncoder),
    H264(H264Encoder),
}

/// A real-time video encoder of any [`VideoCodec`]: target bitrate changeable at any time,
/// keyframes on demand, no frame dropped, the output buffer reused from frame to frame.
#[derive(Debug)]
pub struct VideoEncoder {
    inner: Encoder,
    config: VideoEncoderConfig,
}

impl VideoEncoder {
    /// Create an encoder.
    ///
    /// # Errors
    /// [`CodecError::Unsupported`] for a size or rate the codec cannot take,
    /// [`CodecError::Library`] when the library refuses the settings.
    pub fn new(config: VideoEncoderConfig) -> Result<Self, CodecError> {
        let inner = match config.codec {
            VideoCodec::Vp8 | VideoCodec::Vp9 => Encoder::Vpx(VpxEncoder::new(config.vpx())?),
            VideoCodec::H264 => Encoder::H264(H264Encoder::new(config.h264())?),
        };
        Ok(Self { inner, config })
    }

    /// The codec.
    pub fn codec(&self) -> VideoCodec {
        self.config.codec
    }

    /// The settings in force (the bitrate as last set).
    pub fn config(&self) -> VideoEncoderConfig {
        let bitrate = match &self.inner {
            Encoder::Vpx(e) => e.settings().bitrate,
            Encoder::H264(e) => e.settings().bitrate,
        };
        VideoEncoderConfig {
            bitrate,
            ..self.config
        }
    }

    /// Change the target bitrate (bits per second) without restarting.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        match &mut self.inner {
            Encoder::Vpx(e) => e.set_bitrate(bitrate),
            Encoder::H264(e) => e.set_bitrate(bitrate),
        }
    }

    /// Make the next encoded frame a keyframe (answer to PLI/FIR).
    pub fn force_keyframe(&mut self) {
        match &mut self.inner {
            Encoder::Vpx(e) => e.force_keyframe(),
            Encoder::H264(e) => e.force_keyframe(),
        }
    }

    /// Frames encoded so far.
    pub fn frames(&self) -> u64 {
        match &self.inner {
            Encoder::Vpx(e) => e.frames(),
            Encoder::H264(e) => e.frames(),
        }
    }

    /// Encode one picture taken at `pts` (90 kHz). Returns the encoded frame (borrowed until the
    /// next call), or `None` when the encoder produced nothing for this picture. The first
    /// frame is a keyframe. H.264 encodes an odd-sized picture without its last column or row
    /// (4:2:0 H.264 has no odd sizes); VP8 and VP9 keep every pixel.
    ///
    /// # Errors
    /// [`CodecError::BadFrame`] for a picture of another size or with short planes.
    pub fn encode(
        &mut self,
        image: &I420<'_>,
        pts: i64,
    ) -> Result<Option<EncodedVideo<'_>>, CodecError> {
        match &mut self.inner {
            Encoder::Vpx(e) => e.encode(image, pts),
            Encoder::H264(e) => e.encode(image, pts),
        }
    }
}

#[derive(Debug)]
enum Decoder {
    Vpx(VpxDecoder),
    H264(H264Decoder),
}

/// A video decoder of any [`VideoCodec`]. It follows picture size changes, and refuses
/// pictures larger than [`VideoDecoder::max_pixels`] (default
/// [`DEFAULT_MAX_PIXELS`](crate::DEFAULT_MAX_PIXELS)) with [`CodecError::TooLarge`] before the
/// library allocates for them.
#[derive(Debug)]
pub struct VideoDecoder {
    inner: Decoder,
}

impl VideoDecoder {
    /// Create a decoder.
    pub fn new(codec: VideoCodec) -> Result<Self, CodecError> {
        let inner = match codec {
            VideoCodec::Vp8 | VideoCodec::Vp9 => Decoder::Vpx(VpxDecoder::new(codec)?),
            VideoCodec::H264 => Decoder::H264(H264Decoder::new()?),
        };
        Ok(Self { inner })
    }

    /// Accept pictures of at most `max_pixels` pixels (width × height) from now on.
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        match &mut self.inner {
            Decoder::Vpx(d) => d.set_max_pixels(max_pixels),
            Decoder::H264(d) => d.set_max_pixels(max_pixels),
        }
        self
    }

    /// The largest picture accepted, in pixels.
    pub fn max_pixels(&self) -> u64 {
        match &self.inner {
            Decoder::Vpx(d) => d.max_pixels(),
            Decoder::H264(d) => d.max_pixels(),
        }
    }

    /// The codec.
    pub fn codec(&self) -> VideoCodec {
        match &self.inner {
            Decoder::Vpx(d) => d.codec(),
            Decoder::H264(d) => d.codec(),
        }
    }

    /// Pictures decoded so far.
    pub fn frames(&self) -> u64 {
        match &self.inner {
            Decoder::Vpx(d) => d.frames(),
            Decoder::H264(d) => d.frames(),
        }
    }

    /// Decode one whole frame (H.264: an Annex B access unit); true when it produced a picture,
    /// then available from [`VideoDecoder::image`] until the next call.
    ///
    /// # Errors
    /// [`CodecError::TooLarge`] for a picture larger than [`VideoDecoder::max_pixels`] (nothing
    /// was allocated; the decoder keeps its previous state), [`CodecError::BadFrame`] or
    /// [`CodecError::Library`] for corrupt input (ask for a keyframe).
    pub fn decode_frame(&mut self, data: &[u8]) -> Result<bool, CodecError> {
        match &mut self.inner {
            Decoder::Vpx(d) => d.decode_frame(data),
            Decoder::H264(d) => d.decode_frame(data),
        }
    }

    /// Decode one whole frame and borrow its picture; `None` when it produced none.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedImage<'_>>, CodecError> {
        self.decode_frame(data)?;
        Ok(self.image())
    }

    /// The picture of the last successful decode.
    pub fn image(&self) -> Option<DecodedImage<'_>> {
        match &self.inner {
            Decoder::Vpx(d) => d.image(),
            Decoder::H264(d) => d.image(),
        }
    }
}

/// The picture size a keyframe of `codec` announces; `None` for any other frame or data that
/// is not a well-formed keyframe (H.264: an IDR access unit with its SPS). Allocates nothing.
pub fn keyframe_size(codec: VideoCodec, data: &[u8]) -> Option<(u32, u32)> {
    match codec {
        VideoCodec::Vp8 => crate::vp8_keyframe_size(data),
        VideoCodec::Vp9 => crate::vp9_keyframe_size(data),
        VideoCodec::H264 => crate::h264::keyframe_size(data),
    }
}
