//! VP8 and VP9 over the system libvpx (`env-libvpx-sys`, linked via pkg-config with
//! pre-generated bindings — no bindgen, no download). One encoder and one decoder type serve
//! both codecs; [`Vp8Encoder`] and [`Vp8Decoder`] are the VP8 faces kept for existing callers.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::ptr;

use vpx_sys as sys;

use crate::video::EncodedVideo;
use crate::{CodecError, DecodedImage, I420, VideoCodec};

/// RTP clock of video: encoder timestamps are in 1/90 000 s.
pub const VIDEO_CLOCK: i32 = 90_000;

/// Largest picture a decoder accepts unless told otherwise: 3840×2160 (4K UHD) in pixels.
/// A VP8 keyframe may announce up to 16383×16383 (VP9 and H.264 more), which the library would
/// allocate (~400 MB) on the word of whoever sent it.
pub const DEFAULT_MAX_PIXELS: u64 = 3840 * 2160;

/// The picture size a VP8 keyframe announces (RFC 6386 §9.1: frame tag, start code
/// `9d 01 2a`, then 14-bit width and height); `None` for an interframe or anything that is not
/// a well-formed keyframe header. Reads 10 bytes, allocates nothing.
///
/// ```
/// // Keyframe tag, start code, 16383x16383 (scale bits 0).
/// let header = [0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0x3f, 0xff, 0x3f];
/// assert_eq!(wavecast_codec::vp8_keyframe_size(&header), Some((16383, 16383)));
/// assert_eq!(wavecast_codec::vp8_keyframe_size(&[0x01, 0, 0]), None); // interframe
/// ```
pub fn vp8_keyframe_size(data: &[u8]) -> Option<(u32, u32)> {
    let h: &[u8; 10] = data.get(..10)?.try_into().ok()?;
    // Bit 0 of the frame tag is 0 for a keyframe.
    if h[0] & 1 != 0 || h[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([h[6], h[7]]) & 0x3fff;
    let height = u16::from_le_bytes([h[8], h[9]]) & 0x3fff;
    Some((u32::from(width), u32::from(height)))
}

/// VP8 encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Config {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Nominal frame rate (frames per second).
    pub fps: u32,
    /// Target bitrate, bits per second.
    pub bitrate: u32,
    /// Force a keyframe at least every this many frames.
    pub keyframe_interval: u32,
    /// libvpx speed (`VP8E_SET_CPUUSED`, -16..=16; larger magnitude = faster, lower quality).
    pub cpu_used: i32,
    /// Encoder threads.
    pub threads: u32,
}

impl Vp8Config {
    /// Real-time defaults for a `width`×`height` stream at `fps`: bitrate by pixel rate,
    /// keyframe every 3 s, speed -6 (what WebRTC uses on desktop).
    pub fn new(width: u32, height: u32, fps: u32) -> Self {
        let pixels = u64::from(width) * u64::from(height) * u64::from(fps.max(1));
        // About 0.07 bits per pixel, clamped: ~1.9 Mbit/s at 720p30, ~160 kbit/s at 320x240x30.
        let bitrate = (pixels * 7 / 100).clamp(100_000, 4_000_000) as u32;
        Self {
            width,
            height,
            fps: fps.max(1),
            bitrate,
            keyframe_interval: fps.max(1) * 3,
            cpu_used: -6,
            threads: 1,
        }
    }
}

/// The settings of a libvpx encoder, for either codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VpxSettings {
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u32,
    pub keyframe_interval: u32,
    pub cpu_used: i32,
    pub threads: u32,
}

impl From<Vp8Config> for VpxSettings {
    fn from(c: Vp8Config) -> Self {
        Self {
            codec: VideoCodec::Vp8,
            width: c.width,
            height: c.height,
            fps: c.fps,
            bitrate: c.bitrate,
            keyframe_interval: c.keyframe_interval,
            cpu_used: c.cpu_used,
            threads: c.threads,
        }
    }
}

fn err_string(ctx: &mut sys::vpx_codec_ctx_t, code: sys::vpx_codec_err_t) -> String {
    // SAFETY: both return pointers to static or context-owned NUL-terminated strings.
    unsafe {
        let base = CStr::from_ptr(sys::vpx_codec_err_to_string(code))
            .to_string_lossy()
            .into_owned();
        let detail = sys::vpx_codec_error_detail(ctx);
        if detail.is_null() {
            base
        } else {
            format!("{base}: {}", CStr::from_ptr(detail).to_string_lossy())
        }
    }
}

fn check(
    ctx: &mut sys::vpx_codec_ctx_t,
    codec: VideoCodec,
    code: sys::vpx_codec_err_t,
    op: &'static str,
) -> Result<(), CodecError> {
    if code == sys::vpx_codec_err_t::VPX_CODEC_OK {
        Ok(())
    } else {
        Err(CodecError::Library {
            codec: codec.name(),
            op,
            message: err_string(ctx, code),
        })
    }
}

/// The VP9 tile columns (log2) for a picture `width` wide: tiles are at least 256 pixels wide,
/// at most 4 of them (enough for row-based threading on a few cores).
fn vp9_tile_columns_log2(width: u32) -> i32 {
    match width {
        0..512 => 0,
        512..1024 => 1,
        _ => 2,
    }
}

/// A real-time libvpx encoder (one-pass CBR, no lag, error resilient) for VP8 or VP9.
pub(crate) struct VpxEncoder {
    ctx: Box<sys::vpx_codec_ctx_t>,
    cfg: Box<sys::vpx_codec_enc_cfg_t>,
    settings: VpxSettings,
    out: Vec<u8>,
    force_keyframe: bool,
    frames: u64,
}

// SAFETY: a libvpx context has no thread affinity; `&mut self` on every call keeps use exclusive.
unsafe impl Send for VpxEncoder {}

impl std::fmt::Debug for VpxEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpxEncoder")
            .field("settings", &self.settings)
            .field("frames", &self.frames)
            .finish()
    }
}

impl VpxEncoder {
    /// Create an encoder.
    pub(crate) fn new(settings: VpxSettings) -> Result<Self, CodecError> {
        let codec = settings.codec;
        if codec == VideoCodec::H264 {
            return Err(CodecError::Unsupported {
                what: "H.264 on libvpx".into(),
            });
        }
        if settings.width == 0
            || settings.height == 0
            || settings.width > 16_384
            || settings.height > 16_384
        {
            return Err(CodecError::Unsupported {
                what: format!("{codec} frame size {}x{}", settings.width, settings.height),
            });
        }
        let vp9 = codec == VideoCodec::Vp9;
        // SAFETY: zeroed POD structs are valid inputs to the libvpx init functions, which fill
        // them; pointers passed live for the calls.
        unsafe {
            let mut cfg: Box<sys::vpx_codec_enc_cfg_t> =
                Box::new(MaybeUninit::zeroed().assume_init());
            let mut ctx: Box<sys::vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let iface = if vp9 {
                sys::vpx_codec_vp9_cx()
            } else {
                sys::vpx_codec_vp8_cx()
            };
            let code = sys::vpx_codec_enc_config_default(iface, &mut *cfg, 0);
            check(&mut ctx, codec, code, "default config")?;
            cfg.g_w = settings.width;
            cfg.g_h = settings.height;
            cfg.g_timebase.num = 1;
            cfg.g_timebase.den = VIDEO_CLOCK;
            cfg.g_threads = settings.threads.max(1);
            cfg.g_error_resilient = sys::VPX_ERROR_RESILIENT_DEFAULT;
            cfg.g_lag_in_frames = 0;
            cfg.g_pass = sys::vpx_enc_pass::VPX_RC_ONE_PASS;
            cfg.rc_end_usage = sys::vpx_rc_mode::VPX_CBR;
            cfg.rc_target_bitrate = (settings.bitrate / 1000).max(1);
            cfg.rc_min_quantizer = 2;
            // WebRTC's ceilings: 56 for VP8, 52 for VP9.
            cfg.rc_max_quantizer = if vp9 { 52 } else { 56 };
            cfg.rc_undershoot_pct = if vp9 { 50 } else { 100 };
            cfg.rc_overshoot_pct = if vp9 { 50 } else { 15 };
            cfg.rc_buf_sz = 1000;
            cfg.rc_buf_initial_sz = 500;
            cfg.rc_buf_optimal_sz = 600;
            // Never drop frames: the receiver counts them.
            cfg.rc_dropframe_thresh = 0;
            cfg.rc_resize_allowed = 0;
            cfg.kf_mode = sys::vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_min_dist = 0;
            cfg.kf_max_dist = settings.keyframe_interval.max(1);
            let code = sys::vpx_codec_enc_init_ver(
                &mut *ctx,
                iface,
                &*cfg,
                0,
                sys::VPX_ENCODER_ABI_VERSION as i32,
            );
            check(&mut ctx, codec, code, "init encoder")?;
            let mut controls = vec![(
                sys::vp8e_enc_control_id::VP8E_SET_CPUUSED,
                settings.cpu_used.clamp(-16, 16),
                "set cpu_used",
            )];
            if vp9 {
                controls.extend([
                    (sys::vp8e_enc_control_id::VP9E_SET_ROW_MT, 1, "set row_mt"),
                    (
                        sys::vp8e_enc_control_id::VP9E_SET_TILE_COLUMNS,
                        vp9_tile_columns_log2(settings.width),
                        "set tile columns",
                    ),
                    // Cyclic refresh: what WebRTC uses for real-time VP9.
                    (sys::vp8e_enc_control_id::VP9E_SET_AQ_MODE, 3, "set aq_mode"),
                ]);
            }
            for (id, value, op) in controls {
                let code = sys::vpx_codec_control_(&mut *ctx, id as i32, value);
                if let Err(e) = check(&mut ctx, codec, code, op) {
                    sys::vpx_codec_destroy(&mut *ctx);
                    return Err(e);
                }
            }
            Ok(Self {
                ctx,
                cfg,
                settings,
                out: Vec::with_capacity(256 * 1024),
                force_keyframe: true,
                frames: 0,
            })
        }
    }

    /// The settings in force.
    pub(crate) fn settings(&self) -> VpxSettings {
        self.settings
    }

    /// Change the target bitrate (bits per second) without restarting.
    pub(crate) fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        self.cfg.rc_target_bitrate = (bitrate / 1000).max(1);
        // SAFETY: ctx was initialised in `new`; cfg is a valid config.
        let code = unsafe { sys::vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) };
        check(&mut self.ctx, self.settings.codec, code, "set bitrate")?;
        self.settings.bitrate = bitrate;
        Ok(())
    }

    /// Make the next encoded frame a keyframe (answer to PLI/FIR).
    pub(crate) fn force_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    /// Frames encoded so far.
    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// Encode one picture taken at `pts` (90 kHz).
    pub(crate) fn encode(
        &mut self,
        image: &I420<'_>,
        pts: i64,
    ) -> Result<Option<EncodedVideo<'_>>, CodecError> {
        let codec = self.settings.codec;
        if image.width != self.settings.width || image.height != self.settings.height {
            return Err(CodecError::BadFrame {
                what: format!(
                    "{}x{} picture for a {}x{} {codec} encoder",
                    image.width, image.height, self.settings.width, self.settings.height
                ),
            });
        }
        image.check()?;
        let flags = if std::mem::take(&mut self.force_keyframe) {
            sys::VPX_EFLAG_FORCE_KF as sys::vpx_enc_frame_flags_t
        } else {
            0
        };
        let duration = (VIDEO_CLOCK as u32 / self.settings.fps.max(1)) as std::os::raw::c_ulong;
        self.out.clear();
        let mut keyframe = false;
        let mut out_pts = pts;
        // SAFETY: the image struct points into `image`'s planes, which outlive the encode call
        // (libvpx copies the picture into its own buffers with lag_in_frames = 0); sizes were
        // checked above. Packets returned by get_cx_data stay valid until the next encode call,
        // and are copied out before it.
        unsafe {
            let mut img: sys::vpx_image_t = MaybeUninit::zeroed().assume_init();
            let wrapped = sys::vpx_img_wrap(
                &mut img,
                sys::vpx_img_fmt::VPX_IMG_FMT_I420,
                image.width,
                image.height,
                1,
                image.planes[0].as_ptr() as *mut u8,
            );
            if wrapped.is_null() {
                return Err(CodecError::Library {
                    codec: codec.name(),
                    op: "wrap image",
                    message: "vpx_img_wrap returned null".into(),
                });
            }
            for i in 0..3 {
                img.planes[i] = image.planes[i].as_ptr() as *mut u8;
                img.stride[i] = image.strides[i] as i32;
            }
            let code = sys::vpx_codec_encode(
                &mut *self.ctx,
                &img,
                pts,
                duration,
                flags,
                sys::VPX_DL_REALTIME as std::os::raw::c_ulong,
            );
            check(&mut self.ctx, codec, code, "encode")?;
            let mut iter: sys::vpx_codec_iter_t = ptr::null();
            loop {
                let pkt = sys::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                if pkt.is_null() {
                    break;
                }
                if (*pkt).kind == sys::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    let f = (*pkt).data.frame;
                    let data = std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize);
                    self.out.extend_from_slice(data);
                    keyframe |= f.flags & sys::VPX_FRAME_IS_KEY != 0;
                    out_pts = f.pts;
                }
            }
        }
        if self.out.is_empty() {
            return Ok(None);
        }
        self.frames += 1;
        Ok(Some(EncodedVideo {
            data: &self.out,
            keyframe,
            pts: out_pts,
        }))
    }
}

impl Drop for VpxEncoder {
    fn drop(&mut self) {
        // SAFETY: ctx was initialised in `new` and is destroyed once.
        unsafe {
            sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// One encoded VP8 frame, borrowed from the encoder's buffer (the same type every codec gives).
pub type Vp8Frame<'a> = EncodedVideo<'a>;

/// A real-time VP8 encoder (one-pass CBR, no lag, error resilient); [`crate::VideoEncoder`] is
/// the same for every codec.
#[derive(Debug)]
pub struct Vp8Encoder(VpxEncoder);

impl Vp8Encoder {
    /// Create an encoder.
    pub fn new(config: Vp8Config) -> Result<Self, CodecError> {
        VpxEncoder::new(config.into()).map(Self)
    }

    /// The settings in force.
    pub fn config(&self) -> Vp8Config {
        let s = self.0.settings();
        Vp8Config {
            width: s.width,
            height: s.height,
            fps: s.fps,
            bitrate: s.bitrate,
            keyframe_interval: s.keyframe_interval,
            cpu_used: s.cpu_used,
            threads: s.threads,
        }
    }

    /// Change the target bitrate (bits per second) without restarting.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        self.0.set_bitrate(bitrate)
    }

    /// Make the next encoded frame a keyframe (answer to PLI/FIR).
    pub fn force_keyframe(&mut self) {
        self.0.force_keyframe();
    }

    /// Frames encoded so far.
    pub fn frames(&self) -> u64 {
        self.0.frames()
    }

    /// Encode one picture taken at `pts` (90 kHz). Returns the encoded frame (borrowed until the
    /// next call), or `None` when the encoder produced nothing for this picture.
    pub fn encode(
        &mut self,
        image: &I420<'_>,
        pts: i64,
    ) -> Result<Option<Vp8Frame<'_>>, CodecError> {
        self.0.encode(image, pts)
    }
}

/// A libvpx decoder for VP8 or VP9.
///
/// Frames announcing more than `max_pixels` pixels are refused with [`CodecError::TooLarge`]
/// before libvpx sees them (VP8: keyframes; VP9: every frame of a superframe that states its
/// size, inter frames included), so a hostile publisher cannot make the decoder allocate for a
/// huge picture. The picture size may change mid-stream; the decoder follows.
pub(crate) struct VpxDecoder {
    ctx: Box<sys::vpx_codec_ctx_t>,
    codec: VideoCodec,
    frames: u64,
    max_pixels: u64,
    /// The picture of the last successful decode (owned by libvpx until the next decode).
    last: *const sys::vpx_image_t,
}

// SAFETY: as for the encoder.
unsafe impl Send for VpxDecoder {}

impl std::fmt::Debug for VpxDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VpxDecoder")
            .field("codec", &self.codec)
            .field("frames", &self.frames)
            .field("max_pixels", &self.max_pixels)
            .finish()
    }
}

impl VpxDecoder {
    /// Create a decoder.
    pub(crate) fn new(codec: VideoCodec) -> Result<Self, CodecError> {
        let iface = match codec {
            // SAFETY: returns a pointer to a static interface table.
            VideoCodec::Vp8 => unsafe { sys::vpx_codec_vp8_dx() },
            // SAFETY: as above.
            VideoCodec::Vp9 => unsafe { sys::vpx_codec_vp9_dx() },
            VideoCodec::H264 => {
                return Err(CodecError::Unsupported {
                    what: "H.264 on libvpx".into(),
                });
            }
        };
        // SAFETY: zeroed ctx is filled by init; a null config means defaults.
        unsafe {
            let mut ctx: Box<sys::vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let code = sys::vpx_codec_dec_init_ver(
                &mut *ctx,
                iface,
                ptr::null(),
                0,
                sys::VPX_DECODER_ABI_VERSION as i32,
            );
            check(&mut ctx, codec, code, "init decoder")?;
            Ok(Self {
                ctx,
                codec,
                frames: 0,
                max_pixels: DEFAULT_MAX_PIXELS,
                last: ptr::null(),
            })
        }
    }

    pub(crate) fn codec(&self) -> VideoCodec {
        self.codec
    }

    pub(crate) fn set_max_pixels(&mut self, max_pixels: u64) {
        self.max_pixels = max_pixels;
    }

    pub(crate) fn max_pixels(&self) -> u64 {
        self.max_pixels
    }

    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    /// The size `data` announces when it is larger than the limit.
    fn too_large(&self, data: &[u8]) -> Option<(u32, u32)> {
        let announced = match self.codec {
            VideoCodec::Vp8 => vp8_keyframe_size(data),
            _ => crate::vp9::largest_announced(data),
        };
        announced.filter(|&(w, h)| u64::from(w) * u64::from(h) > self.max_pixels)
    }

    /// Decode one whole frame; true when it produced a picture, then available from
    /// [`VpxDecoder::image`] until the next call.
    pub(crate) fn decode_frame(&mut self, data: &[u8]) -> Result<bool, CodecError> {
        self.last = ptr::null();
        let codec = self.codec;
        if data.is_empty() {
            return Err(CodecError::BadFrame {
                what: format!("empty {codec} frame"),
            });
        }
        if let Some((width, height)) = self.too_large(data) {
            return Err(CodecError::TooLarge {
                width,
                height,
                max_pixels: self.max_pixels,
            });
        }
        // SAFETY: data lives for the call; the returned image belongs to the decoder and stays
        // valid until the next decode call (`last` is cleared at the start of every call).
        unsafe {
            let code = sys::vpx_codec_decode(
                &mut *self.ctx,
                data.as_ptr(),
                data.len() as u32,
                ptr::null_mut(),
                0,
            );
            check(&mut self.ctx, codec, code, "decode")?;
            let mut iter: sys::vpx_codec_iter_t = ptr::null();
            let img = sys::vpx_codec_get_frame(&mut *self.ctx, &mut iter);
            if img.is_null() {
                return Ok(false);
            }
            if (*img).fmt != sys::vpx_img_fmt::VPX_IMG_FMT_I420 {
                return Err(CodecError::Unsupported {
                    what: format!("decoded {codec} image format {:?}", (*img).fmt),
                });
            }
            self.last = img;
        }
        self.frames += 1;
        Ok(true)
    }

    /// The picture of the last successful decode.
    pub(crate) fn image(&self) -> Option<DecodedImage<'_>> {
        if self.last.is_null() {
            return None;
        }
        // SAFETY: `last` points at libvpx's image for the last decode, valid until the next
        // decode call, which needs `&mut self` and so cannot overlap this borrow.
        unsafe {
            let img = &*self.last;
            let (w, h) = (img.d_w, img.d_h);
            if w == 0 || h == 0 {
                return None;
            }
            let ch = h.div_ceil(2) as usize;
            let cw = w.div_ceil(2) as usize;
            let strides = [
                img.stride[0] as usize,
                img.stride[1] as usize,
                img.stride[2] as usize,
            ];
            let y = std::slice::from_raw_parts(
                img.planes[0],
                strides[0] * (h as usize - 1) + w as usize,
            );
            let u = std::slice::from_raw_parts(img.planes[1], strides[1] * (ch - 1) + cw);
            let v = std::slice::from_raw_parts(img.planes[2], strides[2] * (ch - 1) + cw);
            Some(DecodedImage {
                image: I420 {
                    width: w,
                    height: h,
                    planes: [y, u, v],
                    strides,
                },
            })
        }
    }
}

impl Drop for VpxDecoder {
    fn drop(&mut self) {
        // SAFETY: ctx was initialised in `new` and is destroyed once.
        unsafe {
            sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// The picture size a VP9 keyframe announces, as libvpx reads it
/// (`vpx_codec_peek_stream_info`; the first frame of a superframe); `None` for any other frame
/// or malformed data. Allocates nothing.
pub fn vp9_keyframe_size(data: &[u8]) -> Option<(u32, u32)> {
    // SAFETY: a zeroed stream info with its size set is what peek expects; data lives for the
    // call and libvpx only reads it.
    unsafe {
        let mut si: sys::vpx_codec_stream_info_t = MaybeUninit::zeroed().assume_init();
        si.sz = std::mem::size_of::<sys::vpx_codec_stream_info_t>() as u32;
        let first = crate::vp9::frames(data).next()?;
        let code = sys::vpx_codec_peek_stream_info(
            sys::vpx_codec_vp9_dx(),
            first.as_ptr(),
            first.len() as u32,
            &mut si,
        );
        (code == sys::vpx_codec_err_t::VPX_CODEC_OK && si.is_kf != 0 && si.w > 0 && si.h > 0)
            .then_some((si.w, si.h))
    }
}

/// A VP8 decoder ([`crate::VideoDecoder`] is the same for every codec).
///
/// Keyframes announcing more than [`Vp8Decoder::max_pixels`] pixels (default
/// [`DEFAULT_MAX_PIXELS`]) are refused with [`CodecError::TooLarge`] before libvpx sees them, so
/// a hostile publisher cannot make the decoder allocate for a huge picture.
#[derive(Debug)]
pub struct Vp8Decoder(VpxDecoder);

impl Vp8Decoder {
    /// Create a decoder.
    pub fn new() -> Result<Self, CodecError> {
        VpxDecoder::new(VideoCodec::Vp8).map(Self)
    }

    /// Accept keyframes of at most `max_pixels` pixels (width × height) from now on.
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.0.set_max_pixels(max_pixels);
        self
    }

    /// The largest picture accepted, in pixels.
    pub fn max_pixels(&self) -> u64 {
        self.0.max_pixels()
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.0.frames()
    }

    /// Decode one whole VP8 frame. Returns the picture (borrowed until the next call), or `None`
    /// when the frame produced no picture. Corrupt input is an error (ask for a keyframe).
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedImage<'_>>, CodecError> {
        self.decode_frame(data)?;
        Ok(self.image())
    }

    /// Decode one whole VP8 frame; true when it produced a picture, then available from
    /// [`Vp8Decoder::image`] until the next call.
    ///
    /// # Errors
    /// [`CodecError::TooLarge`] for a keyframe larger than [`Vp8Decoder::max_pixels`] (nothing
    /// was allocated; the decoder keeps its previous state), [`CodecError::BadFrame`] or
    /// [`CodecError::Library`] for corrupt input.
    pub fn decode_frame(&mut self, data: &[u8]) -> Result<bool, CodecError> {
        self.0.decode_frame(data)
    }

    /// The picture of the last successful decode.
    pub fn image(&self) -> Option<DecodedImage<'_>> {
        self.0.image()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: u32, h: u32, n: u32) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let y = (0..w * h).map(|i| ((i % w + n * 4) % 256) as u8).collect();
        let c = (w.div_ceil(2) * h.div_ceil(2)) as usize;
        (y, vec![100; c], vec![150; c])
    }

    #[test]
    fn encode_decode_round_trip_keeps_size_and_content() {
        let (w, h) = (320, 240);
        let mut enc = Vp8Encoder::new(Vp8Config::new(w, h, 30)).unwrap();
        let mut dec = Vp8Decoder::new().unwrap();
        let mut decoded = 0;
        for n in 0..30u32 {
            let (y, u, v) = picture(w, h, n);
            let img = I420 {
                width: w,
                height: h,
                planes: [&y, &u, &v],
                strides: [w as usize, (w / 2) as usize, (w / 2) as usize],
            };
            let frame = enc.encode(&img, i64::from(n) * 3000).unwrap().unwrap();
            assert_eq!(frame.keyframe, n == 0, "frame {n}");
            let data = frame.data.to_vec();
            let pic = dec.decode(&data).unwrap().unwrap();
            assert_eq!((pic.image.width, pic.image.height), (w, h));
            // Chroma is flat: decoded U should be close to 100.
            let u_mid = pic.image.planes[1][pic.image.strides[1] * 60 + 80];
            assert!((i32::from(u_mid) - 100).abs() < 8, "u = {u_mid}");
            decoded += 1;
        }
        assert_eq!(decoded, 30);
    }

    #[test]
    fn forced_keyframe_and_bitrate_change() {
        let (w, h) = (160, 120);
        let mut enc = Vp8Encoder::new(Vp8Config::new(w, h, 30)).unwrap();
        let (y, u, v) = picture(w, h, 0);
        let img = I420 {
            width: w,
            height: h,
            planes: [&y, &u, &v],
            strides: [w as usize, (w / 2) as usize, (w / 2) as usize],
        };
        assert!(enc.encode(&img, 0).unwrap().unwrap().keyframe);
        assert!(!enc.encode(&img, 3000).unwrap().unwrap().keyframe);
        enc.set_bitrate(300_000).unwrap();
        enc.force_keyframe();
        assert!(enc.encode(&img, 6000).unwrap().unwrap().keyframe);
        assert_eq!(enc.config().bitrate, 300_000);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut enc = Vp8Encoder::new(Vp8Config::new(64, 64, 30)).unwrap();
        let y = vec![0u8; 10];
        let img = I420 {
            width: 64,
            height: 64,
            planes: [&y, &y, &y],
            strides: [64, 32, 32],
        };
        assert!(matches!(
            enc.encode(&img, 0),
            Err(CodecError::BadFrame { .. })
        ));
        assert!(Vp8Encoder::new(Vp8Config::new(0, 64, 30)).is_err());
        let mut dec = Vp8Decoder::new().unwrap();
        assert!(dec.decode(&[]).is_err());
        assert!(dec.decode(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).is_err());
    }

    /// A keyframe header announcing `w`x`h`, followed by `tail` bytes of noise.
    fn keyframe_header(w: u16, h: u16, tail: usize) -> Vec<u8> {
        let mut d = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        d.extend_from_slice(&w.to_le_bytes());
        d.extend_from_slice(&h.to_le_bytes());
        d.extend((0..tail).map(|i| (i * 37 % 251) as u8));
        d
    }

    #[test]
    fn real_keyframes_announce_their_size() {
        let mut enc = Vp8Encoder::new(Vp8Config::new(352, 288, 30)).unwrap();
        let (y, u, v) = picture(352, 288, 0);
        let img = I420 {
            width: 352,
            height: 288,
            planes: [&y, &u, &v],
            strides: [352, 176, 176],
        };
        let key = enc.encode(&img, 0).unwrap().unwrap().data.to_vec();
        assert_eq!(vp8_keyframe_size(&key), Some((352, 288)));
        let inter = enc.encode(&img, 3000).unwrap().unwrap().data.to_vec();
        assert_eq!(vp8_keyframe_size(&inter), None);
    }

    /// Regression: a 16383x16383 keyframe made every viewer allocate ~400 MB.
    #[test]
    fn a_huge_keyframe_is_refused_before_libvpx_sees_it() {
        let mut dec = Vp8Decoder::new().unwrap();
        let huge = keyframe_header(16383, 16383, 2000);
        match dec.decode_frame(&huge) {
            Err(CodecError::TooLarge {
                width,
                height,
                max_pixels,
            }) => {
                assert_eq!((width, height), (16383, 16383));
                assert_eq!(max_pixels, DEFAULT_MAX_PIXELS);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // The decoder still works for a proper stream afterwards.
        let mut enc = Vp8Encoder::new(Vp8Config::new(64, 48, 30)).unwrap();
        let (y, u, v) = picture(64, 48, 0);
        let img = I420 {
            width: 64,
            height: 48,
            planes: [&y, &u, &v],
            strides: [64, 32, 32],
        };
        let key = enc.encode(&img, 0).unwrap().unwrap().data.to_vec();
        assert!(dec.decode_frame(&key).unwrap());
        // A lower limit refuses what the default accepts.
        let mut small = Vp8Decoder::new().unwrap().with_max_pixels(64 * 47);
        assert!(matches!(
            small.decode_frame(&key),
            Err(CodecError::TooLarge { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn keyframe_size_reads_any_header(w in 0u16..16384, h in 0u16..16384, scale in 0u16..4, tail in 0usize..64) {
            let d = keyframe_header(w | (scale << 14), h | (scale << 14), tail);
            proptest::prop_assert_eq!(vp8_keyframe_size(&d), Some((u32::from(w), u32::from(h))));
            // An interframe tag, or a broken start code, is never a keyframe.
            let mut inter = d.clone();
            inter[0] |= 1;
            proptest::prop_assert_eq!(vp8_keyframe_size(&inter), None);
            let mut broken = d.clone();
            broken[4] ^= 0x40;
            proptest::prop_assert_eq!(vp8_keyframe_size(&broken), None);
        }

        #[test]
        fn keyframe_size_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
            let got = vp8_keyframe_size(&data);
            if let Some((w, h)) = got {
                proptest::prop_assert!(w < 16384 && h < 16384);
                proptest::prop_assert!(data.len() >= 10);
            }
        }

        #[test]
        fn oversized_keyframes_never_reach_libvpx(w in 1u16..16384, h in 1u16..16384, limit in 1u64..20_000_000) {
            let mut dec = Vp8Decoder::new().unwrap().with_max_pixels(limit);
            let r = dec.decode_frame(&keyframe_header(w, h, 32));
            let too_large = matches!(r, Err(CodecError::TooLarge { .. }));
            proptest::prop_assert_eq!(too_large, u64::from(w) * u64::from(h) > limit);
        }
    }
}
