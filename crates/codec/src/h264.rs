//! H.264 through OpenH264 (the `openh264` crate, its bundled sources built with `cc`), and the
//! pure Annex B helpers a recorder needs: NAL units, parameter sets, keyframes, and the picture
//! size an SPS announces.
//!
//! The encoder writes what LiveKit and Chromium negotiate for H.264 (`profile-level-id` 42e01f,
//! `packetization-mode` 1): constrained baseline — its SPS says profile 66 with
//! `constraint_set0` and `constraint_set1` (42c0xx, which WebRTC reads as constrained baseline
//! like 42e0xx), level 3.1 unless the picture needs more (OpenH264 raises it) — one slice per
//! picture (packetization-mode 1 fragments it), Annex B output with start codes, SPS and PPS
//! before every IDR.
//!
//! ```
//! use wavecast_codec::h264;
//! // SPS (type 7), PPS (type 8), IDR slice (type 5), with 4- and 3-byte start codes.
//! let au = [0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88];
//! let nals: Vec<&[u8]> = h264::annex_b_nals(&au).collect();
//! assert_eq!(nals, [&[0x67, 0x42][..], &[0x68, 0xce], &[0x65, 0x88]]);
//! assert_eq!(h264::parameter_sets(&au), Some((&[0x67, 0x42][..], &[0x68, 0xce][..])));
//! assert!(h264::is_keyframe(&au));
//! ```

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

use openh264::Timestamp;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Level, Profile,
    RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSource;

use crate::video::EncodedVideo;
use crate::{CodecError, DEFAULT_MAX_PIXELS, DecodedImage, I420, VIDEO_CLOCK, VideoCodec};

/// NAL unit type of a coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of a subset sequence parameter set (SVC/MVC; its start is an SPS's).
pub const NAL_SUBSET_SPS: u8 = 15;

/// The type of a NAL unit (the low 5 bits of its header byte); 0 (unspecified) for an empty one.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| h & 0x1f)
}

/// The NAL units of an Annex B byte stream, without their start codes (`00 00 01` or
/// `00 00 00 01`) and trailing zero bytes. Bytes before the first start code, if any, come
/// first as a unit of their own; empty units are skipped. Allocates nothing.
pub fn annex_b_nals(data: &[u8]) -> AnnexBNals<'_> {
    AnnexBNals { rest: data }
}

/// Iterator of [`annex_b_nals`].
#[derive(Debug, Clone)]
pub struct AnnexBNals<'a> {
    rest: &'a [u8],
}

/// Where the next `00 00 01` starts.
fn find_start_code(data: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 3 <= data.len() {
        // Skip ahead fast: a start code needs data[i + 2] == 1 and two zeros before it.
        match data[i + 2] {
            1 if data[i] == 0 && data[i + 1] == 0 => return Some(i),
            0 => i += 1,
            _ => i += 3,
        }
    }
    None
}

impl<'a> Iterator for AnnexBNals<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let (unit, rest) = match find_start_code(self.rest) {
                Some(at) => (&self.rest[..at], &self.rest[at + 3..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            // The zero of a 4-byte start code (and any trailing_zero_8bits) ends the unit before.
            let end = unit.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            if end > 0 {
                return Some(&unit[..end]);
            }
        }
        None
    }
}

/// The first SPS and the first PPS of an access unit (NAL units with their header byte, no
/// start codes): what an MP4 `avcC` or a Matroska `CodecPrivate` is built from. `None` unless
/// both are there.
pub fn parameter_sets(annex_b: &[u8]) -> Option<(&[u8], &[u8])> {
    let sps = annex_b_nals(annex_b).find(|n| nal_type(n) == NAL_SPS)?;
    let pps = annex_b_nals(annex_b).find(|n| nal_type(n) == NAL_PPS)?;
    Some((sps, pps))
}

/// Whether an access unit holds an IDR picture (a keyframe a decoder can start from).
pub fn is_keyframe(annex_b: &[u8]) -> bool {
    annex_b_nals(annex_b).any(|n| nal_type(n) == NAL_IDR)
}

/// The picture size of a keyframe: an IDR access unit that carries its SPS; `None` otherwise.
pub fn keyframe_size(annex_b: &[u8]) -> Option<(u32, u32)> {
    if !is_keyframe(annex_b) {
        return None;
    }
    let sps = annex_b_nals(annex_b).find(|n| nal_type(n) == NAL_SPS)?;
    Sps::parse(sps).ok().map(|s| (s.width, s.height))
}

/// Reads an RBSP (emulation-prevention bytes `00 00 03` removed on the fly) bit by bit, with
/// the Exp-Golomb codes of H.264 §9.1. Reading past the end is an error.
struct Rbsp<'a> {
    data: &'a [u8],
    pos: usize,
    zeros: u32,
    byte: u8,
    left: u32,
}

fn bad_sps(what: &str) -> CodecError {
    CodecError::BadFrame {
        what: format!("H.264 SPS: {what}"),
    }
}

impl<'a> Rbsp<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            zeros: 0,
            byte: 0,
            left: 0,
        }
    }

    fn bit(&mut self) -> Result<u32, CodecError> {
        if self.left == 0 {
            loop {
                let b = *self
                    .data
                    .get(self.pos)
                    .ok_or_else(|| bad_sps("truncated"))?;
                self.pos += 1;
                if self.zeros >= 2 && b == 3 {
                    self.zeros = 0;
                    continue;
                }
                self.zeros = if b == 0 { self.zeros + 1 } else { 0 };
                self.byte = b;
                self.left = 8;
                break;
            }
        }
        self.left -= 1;
        Ok(u32::from((self.byte >> self.left) & 1))
    }

    fn bits(&mut self, n: u32) -> Result<u32, CodecError> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    /// ue(v), at most 32 leading zeros (values up to 2^32 - 2 fit a u64).
    fn ue(&mut self) -> Result<u64, CodecError> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(bad_sps("Exp-Golomb code longer than 32 bits"));
            }
        }
        Ok((1u64 << zeros) - 1 + u64::from(self.bits(zeros)?))
    }

    /// ue(v) no larger than `max`.
    fn ue_max(&mut self, max: u64, what: &str) -> Result<u64, CodecError> {
        let v = self.ue()?;
        if v > max {
            return Err(bad_sps(&format!("{what} {v} > {max}")));
        }
        Ok(v)
    }

    /// se(v).
    fn se(&mut self) -> Result<i64, CodecError> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// What a sequence parameter set says about the pictures that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 baseline, 77 main, 100 high, …).
    pub profile_idc: u8,
    /// The constraint flags byte (`constraint_set0_flag` is its top bit).
    pub constraints: u8,
    /// `level_idc` (31 = level 3.1).
    pub level_idc: u8,
    /// `chroma_format_idc` (1 = 4:2:0, what profiles below high always are).
    pub chroma_format_idc: u8,
    /// `bit_depth_luma_minus8` (0 below the high profiles).
    pub bit_depth_luma_minus8: u8,
    /// `bit_depth_chroma_minus8` (0 below the high profiles).
    pub bit_depth_chroma_minus8: u8,
    /// Picture width after cropping, pixels.
    pub width: u32,
    /// Picture height after cropping, pixels.
    pub height: u32,
    /// Coded width (whole macroblocks), pixels; saturates at `u32::MAX`.
    pub coded_width: u32,
    /// Coded height (whole macroblocks), pixels; saturates at `u32::MAX`.
    pub coded_height: u32,
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices (H.264 §7.3.2.1.1).
const HIGH_PROFILES: [u8; 12] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134];

impl Sps {
    /// Parse an SPS NAL unit (header byte included, no start code); a subset SPS is read for
    /// the SPS it starts with.
    ///
    /// # Errors
    /// [`CodecError::BadFrame`] for anything that is not a well-formed SPS: never a panic.
    pub fn parse(nal: &[u8]) -> Result<Sps, CodecError> {
        if !matches!(nal_type(nal), NAL_SPS | NAL_SUBSET_SPS) {
            return Err(bad_sps("not an SPS NAL unit"));
        }
        let mut r = Rbsp::new(&nal[1..]);
        let profile_idc = r.bits(8)? as u8;
        let constraints = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        r.ue_max(31, "seq_parameter_set_id")?;
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        let (mut depth_luma, mut depth_chroma) = (0, 0);
        if HIGH_PROFILES.contains(&profile_idc) || profile_idc == 135 {
            chroma_format_idc = r.ue_max(3, "chroma_format_idc")?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()? == 1;
            }
            depth_luma = r.ue_max(6, "bit_depth_luma_minus8")?;
            depth_chroma = r.ue_max(6, "bit_depth_chroma_minus8")?;
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? == 1 {
                // seq_scaling_matrix_present_flag
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? == 1 {
                        let size = if i < 6 { 16 } else { 64 };
                        let (mut last, mut next) = (8i64, 8i64);
                        for _ in 0..size {
                            if next != 0 {
                                let delta = r.se()?;
                                if !(-128..=127).contains(&delta) {
                                    return Err(bad_sps("delta_scale out of range"));
                                }
                                next = (last + delta + 256) % 256;
                            }
                            if next != 0 {
                                last = next;
                            }
                        }
                    }
                }
            }
        }
        r.ue_max(12, "log2_max_frame_num_minus4")?;
        match r.ue_max(2, "pic_order_cnt_type")? {
            0 => {
                r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")?;
            }
            1 => {
                r.bit()?; // delta_pic_order_always_zero_flag
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                let n = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle")?;
                for _ in 0..n {
                    r.se()?;
                }
            }
            _ => {}
        }
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = r.ue()? + 1;
        let height_map_units = r.ue()? + 1;
        let frame_mbs_only = r.bit()?;
        if frame_mbs_only == 0 {
            r.bit()?; // mb_adaptive_frame_field_flag
        }
        r.bit()?; // direct_8x8_inference_flag
        let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
        if r.bit()? == 1 {
            left = r.ue()?;
            right = r.ue()?;
            top = r.ue()?;
            bottom = r.ue()?;
        }
        let field_factor = 2 - u64::from(frame_mbs_only);
        let coded_w = width_mbs * 16;
        let coded_h = height_map_units * 16 * field_factor;
        // Crop units (H.264 §7.4.2.1.1, ChromaArrayType 0 for monochrome or separate planes).
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (unit_x, unit_y) = match chroma_array_type {
            0 => (1, field_factor),
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        let crop_w = unit_x * (left + right);
        let crop_h = unit_y * (top + bottom);
        if crop_w >= coded_w || crop_h >= coded_h {
            return Err(bad_sps("cropping removes the whole picture"));
        }
        let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(Sps {
            profile_idc,
            constraints,
            level_idc,
            chroma_format_idc: chroma_format_idc as u8,
            bit_depth_luma_minus8: depth_luma as u8,
            bit_depth_chroma_minus8: depth_chroma as u8,
            width: sat(coded_w - crop_w),
            height: sat(coded_h - crop_h),
            coded_width: sat(coded_w),
            coded_height: sat(coded_h),
        })
    }

    /// The size to weigh against a decoder's limit: the cropped picture, unless the cropping is
    /// more than the padding to whole macroblocks (then the coded size, which is what the
    /// decoder allocates).
    pub(crate) fn weighed_size(&self) -> (u32, u32) {
        let padded = self.coded_width - self.width < 16 && self.coded_height - self.height < 32;
        if padded {
            (self.width, self.height)
        } else {
            (self.coded_width, self.coded_height)
        }
    }
}

/// Settings of the H.264 encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct H264Settings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u32,
    pub keyframe_interval: u32,
    pub threads: u32,
}

fn encoder_config(s: &H264Settings) -> EncoderConfig {
    EncoderConfig::new()
        .bitrate(BitRate::from_bps(s.bitrate))
        .max_frame_rate(FrameRate::from_hz(s.fps.max(1) as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        // Never drop frames: the receiver counts them.
        .skip_frames(false)
        .usage_type(UsageType::CameraVideoRealTime)
        .profile(Profile::Baseline)
        .level(Level::Level_3_1)
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        .intra_frame_period(IntraFramePeriod::from_num_frames(
            s.keyframe_interval.max(1),
        ))
        .num_threads(s.threads.clamp(1, 4) as u16)
}

fn library_error(op: &'static str) -> impl FnOnce(openh264::Error) -> CodecError {
    move |e| CodecError::Library {
        codec: "h264",
        op,
        message: e.to_string(),
    }
}

/// OpenH264's log lines, into `tracing` instead of stderr (errors as warnings, the rest debug).
extern "C" fn trace(_ctx: *mut c_void, level: c_int, line: *const c_char) {
    if line.is_null() {
        return;
    }
    // SAFETY: OpenH264 passes a NUL-terminated string that lives for the call.
    let text = unsafe { CStr::from_ptr(line) }.to_string_lossy();
    let text = text.trim_end();
    if level <= openh264_sys2::WELS_LOG_ERROR as c_int {
        tracing::warn!(target: "openh264", "{text}");
    } else {
        tracing::debug!(target: "openh264", "{text}");
    }
}

/// A borrowed I420 picture as OpenH264's input: its even part (H.264 crops 4:2:0 pictures in
/// steps of two pixels, so an odd last column or row cannot be carried).
struct Source<'a, 'b>(&'a I420<'b>);

impl YUVSource for Source<'_, '_> {
    fn dimensions(&self) -> (usize, usize) {
        ((self.0.width & !1) as usize, (self.0.height & !1) as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.0.strides[0], self.0.strides[1], self.0.strides[2])
    }

    fn y(&self) -> &[u8] {
        self.0.planes[0]
    }

    fn u(&self) -> &[u8] {
        self.0.planes[1]
    }

    fn v(&self) -> &[u8] {
        self.0.planes[2]
    }
}

/// A real-time H.264 encoder (OpenH264, constrained baseline, bitrate rate control, no frame
/// skipping, single slice, Annex B out). Pictures of odd width or height are encoded without
/// their last column or row: 4:2:0 H.264 cannot describe an odd size.
pub(crate) struct H264Encoder {
    /// Boxed: it holds OpenH264's frame info (~7 kB) inline.
    encoder: Box<Encoder>,
    settings: H264Settings,
    out: Vec<u8>,
    frames: u64,
    force_keyframe: bool,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder")
            .field("settings", &self.settings)
            .field("frames", &self.frames)
            .finish()
    }
}

impl H264Encoder {
    pub(crate) fn new(settings: H264Settings) -> Result<Self, CodecError> {
        let (w, h) = (settings.width, settings.height);
        // OpenH264 encodes up to level 5.2: 3840x2160 either way round.
        if w < 2 || h < 2 || w.max(h) > 3840 || w.min(h) > 2160 {
            return Err(CodecError::Unsupported {
                what: format!("H.264 frame size {w}x{h} (2x2 up to 3840x2160)"),
            });
        }
        if settings.bitrate < settings.fps.max(1) {
            return Err(CodecError::Unsupported {
                what: format!("H.264 bitrate {} bit/s", settings.bitrate),
            });
        }
        let mut encoder = Box::new(
            Encoder::with_api_config(
                openh264::OpenH264API::from_source(),
                encoder_config(&settings),
            )
            .map_err(library_error("init encoder"))?,
        );
        let mut callback: openh264_sys2::WelsTraceCallback = Some(trace);
        // SAFETY: the trace callback is one of the options OpenH264 takes before it is
        // initialised (on the first picture); the pointer lives for the call, the function for
        // the program.
        unsafe {
            encoder.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_TRACE_CALLBACK,
                (&raw mut callback).cast::<c_void>(),
            );
        }
        Ok(Self {
            encoder,
            settings,
            out: Vec::with_capacity(256 * 1024),
            frames: 0,
            force_keyframe: false,
        })
    }

    pub(crate) fn settings(&self) -> H264Settings {
        self.settings
    }

    pub(crate) fn frames(&self) -> u64 {
        self.frames
    }

    pub(crate) fn force_keyframe(&mut self) {
        self.force_keyframe = true;
    }

    fn set_option(&mut self, option: openh264_sys2::ENCODER_OPTION, bitrate: u32) -> i32 {
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_ALL,
            iBitrate: i32::try_from(bitrate).unwrap_or(i32::MAX),
        };
        if option == openh264_sys2::ENCODER_OPTION_MAX_BITRATE {
            info.iLayer = openh264_sys2::SPATIAL_LAYER_0;
        }
        // SAFETY: the encoder is initialised (a frame was encoded); the option takes a pointer
        // to an SBitrateInfo that lives for the call. Neither option is one the wrapper relies
        // on: it reads the bitrate only when it re-initialises on a size change, which a fixed
        // size encoder never does.
        unsafe {
            self.encoder
                .raw_api()
                .set_option(option, (&raw mut info).cast::<c_void>())
        }
    }

    pub(crate) fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        if bitrate < self.settings.fps.max(1) {
            return Err(CodecError::Unsupported {
                what: format!("H.264 bitrate {bitrate} bit/s"),
            });
        }
        if self.frames == 0 {
            // OpenH264 initialises on the first picture: start over with the new rate.
            let settings = H264Settings {
                bitrate,
                ..self.settings
            };
            *self = Self {
                force_keyframe: self.force_keyframe,
                ..Self::new(settings)?
            };
            return Ok(());
        }
        // The layer's maximum must stay at or above its target: raise it first, lower it last.
        let order = if bitrate > self.settings.bitrate {
            [
                openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
                openh264_sys2::ENCODER_OPTION_BITRATE,
            ]
        } else {
            [
                openh264_sys2::ENCODER_OPTION_BITRATE,
                openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
            ]
        };
        for option in order {
            let code = self.set_option(option, bitrate);
            if code != 0 {
                return Err(CodecError::Library {
                    codec: "h264",
                    op: "set bitrate",
                    message: format!("SetOption({option}) returned {code}"),
                });
            }
        }
        self.settings.bitrate = bitrate;
        Ok(())
    }

    pub(crate) fn encode(
        &mut self,
        image: &I420<'_>,
        pts: i64,
    ) -> Result<Option<EncodedVideo<'_>>, CodecError> {
        let s = self.settings;
        if image.width != s.width || image.height != s.height {
            return Err(CodecError::BadFrame {
                what: format!(
                    "{}x{} picture for a {}x{} h264 encoder",
                    image.width, image.height, s.width, s.height
                ),
            });
        }
        image.check()?;
        if image.strides[1] != image.strides[2] {
            return Err(CodecError::BadFrame {
                what: "H.264 input needs the same stride for U and V".into(),
            });
        }
        if std::mem::take(&mut self.force_keyframe) && self.frames > 0 {
            self.encoder.force_intra_frame();
        }
        let millis = u64::try_from(pts).unwrap_or(0).saturating_mul(1000) / VIDEO_CLOCK as u64;
        let stream = self
            .encoder
            .encode_at(&Source(image), Timestamp::from_millis(millis))
            .map_err(library_error("encode"))?;
        let frame_type = stream.frame_type();
        self.out.clear();
        for l in 0..stream.num_layers() {
            let Some(layer) = stream.layer(l) else {
                continue;
            };
            for n in 0..layer.nal_count() {
                if let Some(nal) = layer.nal_unit(n) {
                    self.out.extend_from_slice(nal);
                }
            }
        }
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) || self.out.is_empty() {
            return Ok(None);
        }
        self.frames += 1;
        Ok(Some(EncodedVideo {
            data: &self.out,
            keyframe: frame_type == FrameType::IDR,
            pts,
        }))
    }
}

/// The picture of the last decode, as OpenH264 left it (valid until the next decode).
#[derive(Debug, Clone, Copy)]
struct Picture {
    planes: [*const u8; 3],
    strides: [usize; 3],
    width: u32,
    height: u32,
}

/// An H.264 decoder (OpenH264, Annex B input).
///
/// Access units whose SPS announces a picture larger than `max_pixels` are refused with
/// [`CodecError::TooLarge`] before OpenH264 sees them.
pub(crate) struct H264Decoder {
    decoder: openh264::decoder::Decoder,
    frames: u64,
    max_pixels: u64,
    last: Option<Picture>,
}

// SAFETY: `last` points into buffers of the decoder this struct owns; OpenH264 has no thread
// affinity and `&mut self` on every decode keeps use exclusive.
unsafe impl Send for H264Decoder {}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder")
            .field("frames", &self.frames)
            .field("max_pixels", &self.max_pixels)
            .finish()
    }
}

impl H264Decoder {
    pub(crate) fn new() -> Result<Self, CodecError> {
        let decoder = openh264::decoder::Decoder::new().map_err(library_error("init decoder"))?;
        Ok(Self {
            decoder,
            frames: 0,
            max_pixels: DEFAULT_MAX_PIXELS,
            last: None,
        })
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

    pub(crate) fn decode_frame(&mut self, data: &[u8]) -> Result<bool, CodecError> {
        self.last = None;
        if find_start_code(data).is_none() {
            return Err(CodecError::BadFrame {
                what: format!(
                    "{} bytes of H.264 without an Annex B start code",
                    data.len()
                ),
            });
        }
        let parameter_sets =
            annex_b_nals(data).filter(|n| matches!(nal_type(n), NAL_SPS | NAL_SUBSET_SPS));
        for sps in parameter_sets {
            let (width, height) = Sps::parse(sps)?.weighed_size();
            if u64::from(width) * u64::from(height) > self.max_pixels {
                return Err(CodecError::TooLarge {
                    width,
                    height,
                    max_pixels: self.max_pixels,
                });
            }
        }
        let decoded = self.decoder.decode(data).map_err(library_error("decode"))?;
        let Some(yuv) = decoded else {
            return Ok(false);
        };
        let (w, h) = yuv.dimensions();
        let (sy, su, sv) = yuv.strides();
        if w == 0 || h == 0 {
            return Ok(false);
        }
        self.last = Some(Picture {
            planes: [yuv.y().as_ptr(), yuv.u().as_ptr(), yuv.v().as_ptr()],
            strides: [sy, su, sv],
            width: w as u32,
            height: h as u32,
        });
        self.frames += 1;
        Ok(true)
    }

    pub(crate) fn image(&self) -> Option<DecodedImage<'_>> {
        let p = self.last?;
        let (w, h) = (p.width as usize, p.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        // SAFETY: the planes are OpenH264's picture buffers of the last decode, valid until the
        // next decode call (which needs `&mut self`). They hold whole macroblocks with padding,
        // so `stride * (rows - 1) + row width` bytes are in bounds for each plane.
        unsafe {
            let y = std::slice::from_raw_parts(p.planes[0], p.strides[0] * (h - 1) + w);
            let u = std::slice::from_raw_parts(p.planes[1], p.strides[1] * (ch - 1) + cw);
            let v = std::slice::from_raw_parts(p.planes[2], p.strides[2] * (ch - 1) + cw);
            Some(DecodedImage {
                image: I420 {
                    width: p.width,
                    height: p.height,
                    planes: [y, u, v],
                    strides: p.strides,
                },
            })
        }
    }

    pub(crate) fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits written MSB first, with Exp-Golomb codes.
    #[derive(Default)]
    struct Writer {
        bits: Vec<bool>,
    }

    impl Writer {
        fn u(&mut self, v: u64, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
            self
        }
        fn ue(&mut self, v: u64) -> &mut Self {
            let x = v + 1;
            let len = 64 - x.leading_zeros();
            self.u(0, len - 1).u(x, len)
        }
        fn se(&mut self, v: i64) -> &mut Self {
            let k = if v > 0 { 2 * v - 1 } else { -2 * v };
            self.ue(k as u64)
        }
        /// The RBSP with stop bit, emulation prevention inserted, NAL header in front.
        fn nal(&mut self, header: u8) -> Vec<u8> {
            self.bits.push(true);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            let rbsp: Vec<u8> = self
                .bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |a, &b| (a << 1) | u8::from(b)))
                .collect();
            let mut out = vec![header];
            let mut zeros = 0;
            for b in rbsp {
                if zeros >= 2 && b <= 3 {
                    out.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                out.push(b);
            }
            out
        }
    }

    /// An SPS of `profile` for `w_mbs`×`h_mbs` macroblocks with the given crop (in crop units).
    fn sps(profile: u8, w_mbs: u64, h_mbs: u64, frame_mbs_only: bool, crop: [u64; 4]) -> Vec<u8> {
        let mut b = Writer::default();
        b.u(u64::from(profile), 8).u(0xc0, 8).u(31, 8).ue(0);
        if HIGH_PROFILES.contains(&profile) {
            b.ue(1).ue(0).ue(0).u(0, 1);
            // A scaling matrix with one list present, to walk the delta_scale loop.
            b.u(1, 1).u(1, 1);
            for _ in 0..16 {
                b.se(1);
            }
            b.u(0, 7);
        }
        b.ue(0).ue(1).u(0, 1).se(-2).se(3).ue(2).se(1).se(-1); // frame_num, poc type 1, a cycle
        b.ue(1).u(0, 1).ue(w_mbs - 1).ue(h_mbs - 1);
        b.u(u64::from(frame_mbs_only), 1);
        if !frame_mbs_only {
            b.u(0, 1);
        }
        b.u(1, 1);
        if crop == [0; 4] {
            b.u(0, 1);
        } else {
            b.u(1, 1);
            for c in crop {
                b.ue(c);
            }
        }
        b.u(0, 1); // no VUI
        b.nal(0x67)
    }

    fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }

    #[test]
    fn sps_sizes_with_cropping_and_fields() {
        // 1080p: 120x68 macroblocks, 8 rows cropped at the bottom (4 crop units).
        let s = Sps::parse(&sps(66, 120, 68, true, [0, 0, 0, 4])).unwrap();
        assert_eq!((s.width, s.height), (1920, 1080));
        assert_eq!((s.coded_width, s.coded_height), (1920, 1088));
        assert_eq!((s.profile_idc, s.constraints, s.level_idc), (66, 0xc0, 31));
        assert_eq!(s.weighed_size(), (1920, 1080));
        // High profile, a scaling list, odd size by cropping one unit each side.
        let s = Sps::parse(&sps(100, 20, 15, true, [0, 1, 0, 1])).unwrap();
        assert_eq!((s.width, s.height), (318, 238));
        // Field coding doubles the map units.
        let s = Sps::parse(&sps(77, 120, 34, false, [0, 0, 0, 2])).unwrap();
        assert_eq!((s.width, s.height), (1920, 1080));
        // Cropping far beyond the padding is weighed by the coded size.
        let s = Sps::parse(&sps(66, 1024, 1024, true, [0, 8000, 0, 8000])).unwrap();
        assert_eq!((s.width, s.height), (384, 384));
        assert_eq!(s.weighed_size(), (16384, 16384));
        // Cropping everything is malformed.
        assert!(Sps::parse(&sps(66, 2, 2, true, [8, 8, 0, 0])).is_err());
    }

    #[test]
    fn bad_sps_are_errors() {
        assert!(Sps::parse(&[]).is_err());
        assert!(Sps::parse(&[0x68, 1, 2, 3]).is_err());
        let good = sps(66, 20, 15, true, [0; 4]);
        for len in 1..good.len() - 1 {
            assert!(Sps::parse(&good[..len]).is_err(), "truncated at {len}");
        }
        // 33 leading zeros: not an Exp-Golomb code we read.
        assert!(Sps::parse(&[0x67, 66, 0, 31, 0, 0, 0, 0, 0x80]).is_err());
    }

    #[test]
    fn nals_split_on_both_start_codes() {
        let data = [
            9, 9, 0, 0, 1, 0x67, 1, 0, 0, 0, 0, 1, 0x68, 2, 0, 0, 1, 0, 0, 1, 0x65, 0, 0,
        ];
        let nals: Vec<&[u8]> = annex_b_nals(&data).collect();
        assert_eq!(nals, [&[9, 9][..], &[0x67, 1], &[0x68, 2], &[0x65]]);
        assert_eq!(annex_b_nals(&[]).count(), 0);
        assert_eq!(annex_b_nals(&[0, 0, 1]).count(), 0);
        assert!(!is_keyframe(&[0, 0, 1, 0x41, 5]));
        assert_eq!(parameter_sets(&[0, 0, 1, 0x67, 1]), None);
    }

    #[test]
    fn keyframe_size_needs_an_idr_and_its_sps() {
        let s = sps(66, 40, 30, true, [0; 4]);
        let pps = [0x68, 0xce, 0x38, 0x80];
        let idr = [0x65, 0x88, 0x84];
        assert_eq!(keyframe_size(&annex_b(&[&s, &pps, &idr])), Some((640, 480)));
        assert_eq!(keyframe_size(&annex_b(&[&s, &pps, &[0x41, 0x9a]])), None);
        assert_eq!(keyframe_size(&annex_b(&[&idr])), None);
    }

    /// Regression guard: a 16384x16384 SPS never reaches OpenH264.
    #[test]
    fn a_huge_sps_is_refused_before_openh264_sees_it() {
        let mut dec = H264Decoder::new().unwrap();
        let huge = annex_b(&[
            &sps(66, 1024, 1024, true, [0; 4]),
            &[0x68, 0xce, 0x38, 0x80],
            &[0x65, 0x88, 0x84, 0, 1, 2, 3],
        ]);
        match dec.decode_frame(&huge) {
            Err(CodecError::TooLarge {
                width,
                height,
                max_pixels,
            }) => {
                assert_eq!((width, height), (16384, 16384));
                assert_eq!(max_pixels, DEFAULT_MAX_PIXELS);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        // In a subset SPS (SVC), too.
        let mut subset = sps(66, 1024, 1024, true, [0; 4]);
        subset[0] = 0x6f;
        assert!(matches!(
            dec.decode_frame(&annex_b(&[&subset])),
            Err(CodecError::TooLarge { .. })
        ));
        // Hidden behind heavy cropping, too.
        let cropped = annex_b(&[&sps(66, 1024, 1024, true, [0, 8000, 0, 8000])]);
        assert!(matches!(
            dec.decode_frame(&cropped),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            dec.decode_frame(&[1, 2, 3]),
            Err(CodecError::BadFrame { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn sps_round_trips(w in 1u64..600, h in 1u64..400, profile in proptest::sample::select(vec![66u8, 77, 100]),
                           fmo in proptest::bool::ANY, r in 0u64..8, b in 0u64..4) {
            let unit_y = if fmo { 2 } else { 4 };
            let s = Sps::parse(&sps(profile, w, h, fmo, [0, r, 0, b])).unwrap();
            let coded_h = h * 16 * if fmo { 1 } else { 2 };
            proptest::prop_assert_eq!(u64::from(s.coded_width), w * 16);
            proptest::prop_assert_eq!(u64::from(s.coded_height), coded_h);
            proptest::prop_assert_eq!(u64::from(s.width), w * 16 - 2 * r);
            proptest::prop_assert_eq!(u64::from(s.height), coded_h - unit_y * b);
        }

        #[test]
        fn any_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..96)) {
            let mut nal = vec![0x67];
            nal.extend_from_slice(&data);
            let _ = Sps::parse(&nal);
            let _ = Sps::parse(&data);
            let _ = annex_b_nals(&data).count();
            let _ = parameter_sets(&data);
            let _ = keyframe_size(&data);
        }

        #[test]
        fn nals_never_contain_a_start_code(data in proptest::collection::vec(0u8..3, 0..64)) {
            for n in annex_b_nals(&data) {
                proptest::prop_assert!(!n.is_empty());
                proptest::prop_assert!(find_start_code(n).is_none());
                proptest::prop_assert!(*n.last().unwrap() != 0);
            }
        }
    }
}
