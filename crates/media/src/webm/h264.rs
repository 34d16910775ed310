//! The little of H.264 a Matroska muxer needs, read from Annex B frames (start codes before each
//! NAL unit, as WebRTC depacketizers deliver them): the NAL units, whether a frame holds an IDR
//! picture, the picture size from a sequence parameter set, and the
//! `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 § 5.3.3) that is a track's CodecPrivate.
//!
//! Every function takes arbitrary bytes: malformed input gives `None` (or no NAL units), never a
//! panic, and nothing here allocates except [`avc_decoder_config`].
//!
//! ```
//! use wavecast_media::webm::h264;
//!
//! // A 4-byte start code and the SPS of a 320×240 baseline stream (libx264's), then 3-byte start
//! // codes before a PPS and (the start of) an IDR slice.
//! let frame = [
//!     0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x0D, 0xD9, 0x01, 0x41, 0xFB, 0x01, 0x10, 0x00, 0x00,
//!     0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x42, 0xA4, 0x80,
//!     0, 0, 1, 0x68, 0xCB, 0x83, 0xCB, 0x20,
//!     0, 0, 1, 0x65, 0x88, 0x84,
//! ];
//! let types: Vec<u8> = h264::nal_units(&frame).map(h264::nal_type).collect();
//! assert_eq!(types, [h264::NAL_SPS, h264::NAL_PPS, h264::NAL_IDR]);
//! assert!(h264::is_keyframe(&frame));
//! assert_eq!(h264::keyframe_size(&frame), Some((320, 240)));
//! let config = h264::avc_decoder_config(&frame).unwrap();
//! assert_eq!(&config[..6], &[1, 0x42, 0xC0, 0x0D, 0xFF, 0xE1]);
//! ```

/// NAL unit type of a coded slice of an IDR picture (a keyframe).
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// Position just past the next start code (`00 00 01`, which a 4-byte `00 00 00 01` ends with)
/// at or after `from`, and where that start code begins.
fn next_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        // Skip fast: a start code's third byte is 1, so a byte > 1 there rules out three places.
        let b = data[i + 2];
        if b > 1 {
            i += 3;
        } else if b == 1 && data[i] == 0 && data[i + 1] == 0 {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

/// The NAL units of an Annex B byte stream, without their start codes (and without the zero
/// bytes before a start code, which belong to it). Bytes before the first start code are not a
/// NAL unit and are skipped; empty units are skipped.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = next_start_code(data, 0).map(|(_, after)| after);
    std::iter::from_fn(move || {
        loop {
            let start = at?;
            let (end, next) = match next_start_code(data, start) {
                Some((sc, after)) => (sc, Some(after)),
                None => (data.len(), None),
            };
            at = next;
            let mut unit = &data[start..end];
            while let [rest @ .., 0] = unit {
                unit = rest;
            }
            if !unit.is_empty() {
                return Some(unit);
            }
        }
    })
}

/// The type of a NAL unit (low 5 bits of its header byte; 0 for an empty unit).
pub fn nal_type(unit: &[u8]) -> u8 {
    unit.first().map_or(0, |h| h & 0x1F)
}

/// Whether an Annex B frame holds an IDR slice (a picture that decodes on its own).
pub fn is_keyframe(frame: &[u8]) -> bool {
    nal_units(frame).any(|u| nal_type(u) == NAL_IDR)
}

/// The first SPS of an Annex B frame.
pub fn find_sps(frame: &[u8]) -> Option<&[u8]> {
    nal_units(frame).find(|u| nal_type(u) == NAL_SPS)
}

/// The picture size the first SPS of an Annex B frame declares (`None` when the frame has no
/// readable SPS). Keyframes of WebRTC streams carry their SPS and PPS in-band.
pub fn keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    find_sps(frame)
        .and_then(parse_sps)
        .map(|s| (s.width, s.height))
}

/// What a sequence parameter set says (profile, level, chroma format, bit depths, the picture
/// size): `wavecast-codec`'s reading, the one the decoders use too.
pub use wavecast_codec::h264::Sps;

/// Parse an SPS NAL unit (header byte included, no start code); `None` for anything that is not
/// a well-formed SPS of a picture between 1 and 16 384 pixels each way.
pub fn parse_sps(unit: &[u8]) -> Option<Sps> {
    Sps::parse(unit)
        .ok()
        .filter(|s| (1..=16_384).contains(&s.width) && (1..=16_384).contains(&s.height))
}

/// The `AVCDecoderConfigurationRecord` (a Matroska `V_MPEG4/ISO/AVC` track's CodecPrivate,
/// an MP4 `avcC` box's payload) for the SPS and PPS units of an Annex B keyframe, declaring
/// 4-byte NAL unit lengths. Every SPS and PPS of the frame is listed (at most 31 and 255, each
/// under 64 KiB). `None` when the frame has no readable SPS or no PPS.
pub fn avc_decoder_config(frame: &[u8]) -> Option<Vec<u8>> {
    let sps_units = || nal_units(frame).filter(|u| nal_type(u) == NAL_SPS);
    let pps_units = || nal_units(frame).filter(|u| nal_type(u) == NAL_PPS);
    let first = sps_units().next()?;
    let sps = parse_sps(first)?;
    let (n_sps, n_pps) = (sps_units().count(), pps_units().count());
    if n_pps == 0 || n_sps > 31 || n_pps > 255 {
        return None;
    }
    if sps_units().chain(pps_units()).any(|u| u.len() > 0xFFFF) {
        return None;
    }
    let mut out = Vec::with_capacity(
        16 + sps_units()
            .chain(pps_units())
            .map(|u| u.len() + 2)
            .sum::<usize>(),
    );
    out.extend_from_slice(&[1, sps.profile_idc, sps.constraints, sps.level_idc]);
    out.push(0xFC | 3); // lengthSizeMinusOne = 3: 4-byte lengths
    out.push(0xE0 | n_sps as u8);
    for u in sps_units() {
        out.extend_from_slice(&(u.len() as u16).to_be_bytes());
        out.extend_from_slice(u);
    }
    out.push(n_pps as u8);
    for u in pps_units() {
        out.extend_from_slice(&(u.len() as u16).to_be_bytes());
        out.extend_from_slice(u);
    }
    if matches!(sps.profile_idc, 100 | 110 | 122 | 144) {
        // The high profiles' extension: chroma format and bit depths, no SPS extensions.
        out.push(0xFC | sps.chroma_format_idc);
        out.push(0xF8 | sps.bit_depth_luma_minus8);
        out.push(0xF8 | sps.bit_depth_chroma_minus8);
        out.push(0);
    }
    Some(out)
}

/// Bytes an Annex B frame takes with each NAL unit behind a 4-byte length instead of a start
/// code (what [`write_length_prefixed`] appends); 0 when it has no NAL unit.
pub fn length_prefixed_len(frame: &[u8]) -> usize {
    nal_units(frame).map(|u| u.len() + 4).sum()
}

/// Append an Annex B frame's NAL units to `out`, each behind its 4-byte big-endian length (the
/// sample format of Matroska and MP4). Units over 4 GiB cannot occur in a slice.
pub fn write_length_prefixed(frame: &[u8], out: &mut Vec<u8>) {
    for u in nal_units(frame) {
        out.extend_from_slice(&(u.len() as u32).to_be_bytes());
        out.extend_from_slice(u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes bits MSB first, with emulation prevention, for hand-built SPSs.
    struct BitWriter {
        bytes: Vec<u8>,
        acc: u32,
        n: u32,
    }

    impl BitWriter {
        fn new() -> Self {
            Self {
                bytes: Vec::new(),
                acc: 0,
                n: 0,
            }
        }
        fn bit(&mut self, b: u32) {
            self.acc = (self.acc << 1) | (b & 1);
            self.n += 1;
            if self.n == 8 {
                self.bytes.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
        fn ue(&mut self, v: u32) {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            for _ in 0..len - 1 {
                self.bit(0);
            }
            for i in (0..len).rev() {
                self.bit((x >> i) as u32);
            }
        }
        fn se(&mut self, v: i32) {
            self.ue(if v > 0 {
                2 * v as u32 - 1
            } else {
                (-2 * v) as u32
            });
        }
        /// RBSP trailing bits, then emulation prevention.
        fn finish(mut self) -> Vec<u8> {
            self.bit(1);
            while self.n != 0 {
                self.bit(0);
            }
            let mut out = Vec::new();
            let mut zeros = 0;
            for b in self.bytes {
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

    /// An SPS NAL unit (header included) of `w`×`h` pixels for `profile`.
    fn sps(profile: u8, w: u32, h: u32, frame_mbs_only: bool, poc_type: u32) -> Vec<u8> {
        let mut b = BitWriter::new();
        b.ue(0); // sps id
        if profile == 100 {
            b.ue(1); // 4:2:0
            b.ue(0);
            b.ue(0);
            b.bit(0);
            b.bit(1); // scaling matrices present
            for i in 0..8 {
                b.bit(u32::from(i % 3 == 0));
                if i % 3 == 0 {
                    let size = if i < 6 { 16 } else { 64 };
                    for j in 0..size {
                        b.se(if j == 3 { -8 } else { 1 });
                    }
                }
            }
        }
        b.ue(0); // log2_max_frame_num - 4
        b.ue(poc_type);
        match poc_type {
            0 => b.ue(2),
            1 => {
                b.bit(0);
                b.se(-3);
                b.se(2);
                b.ue(2);
                b.se(1);
                b.se(-1);
            }
            _ => {}
        }
        b.ue(1); // refs
        b.bit(0);
        let fy = if frame_mbs_only { 1 } else { 2 };
        let (mw, mh) = (w.div_ceil(16), h.div_ceil(16 * fy));
        b.ue(mw - 1);
        b.ue(mh - 1);
        b.bit(u32::from(frame_mbs_only));
        if !frame_mbs_only {
            b.bit(0);
        }
        b.bit(1);
        let (cw, ch) = (mw * 16 - w, mh * 16 * fy - h);
        if cw + ch > 0 {
            b.bit(1);
            b.ue(0);
            b.ue(cw / 2);
            b.ue(0);
            b.ue(ch / (2 * fy));
        } else {
            b.bit(0);
        }
        b.bit(0); // no VUI
        let mut unit = vec![0x67, profile, 0, 30];
        unit.extend(b.finish());
        unit
    }

    #[test]
    fn nal_units_split_on_3_and_4_byte_start_codes() {
        let data = [
            9, 9, 0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 0, 0, 1, 0x65, 0, 0, 1,
        ];
        let units: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(units, [&[0x67, 1][..], &[0x68, 2], &[0x65]]);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3, 0, 0]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
        assert!(!is_keyframe(&data[..12]));
        assert!(is_keyframe(&data));
        assert_eq!(length_prefixed_len(&data), 4 + 2 + 4 + 2 + 4 + 1);
        let mut out = Vec::new();
        write_length_prefixed(&data, &mut out);
        assert_eq!(
            out,
            [0, 0, 0, 2, 0x67, 1, 0, 0, 0, 2, 0x68, 2, 0, 0, 0, 1, 0x65]
        );
    }

    #[test]
    fn sps_sizes_with_cropping_fields_and_scaling_lists() {
        for (profile, w, h, progressive, poc) in [
            (66, 320, 240, true, 2),
            (66, 1280, 720, true, 0),
            (77, 1920, 1080, true, 0),
            (100, 1920, 1080, true, 1),
            (100, 640, 360, false, 0),
            (66, 16, 16, true, 2),
            (66, 2, 2, true, 2),
        ] {
            let unit = sps(profile, w, h, progressive, poc);
            let s = parse_sps(&unit).unwrap_or_else(|| panic!("{profile} {w}x{h}: {unit:02x?}"));
            assert_eq!((s.width, s.height), (w, h), "{profile} {w}x{h}");
            assert_eq!((s.profile_idc, s.level_idc), (profile, 30));
        }
    }

    #[test]
    fn config_record_lists_sps_and_pps() {
        let s = sps(100, 640, 480, true, 0);
        let mut frame = vec![0, 0, 0, 1];
        frame.extend_from_slice(&s);
        frame.extend_from_slice(&[0, 0, 1, 0x68, 0xEB, 0xE3, 0xCB, 0, 0, 1, 0x65, 0x88]);
        let c = avc_decoder_config(&frame).unwrap();
        assert_eq!(&c[..6], &[1, 100, 0, 30, 0xFF, 0xE1]);
        assert_eq!(usize::from(u16::from_be_bytes([c[6], c[7]])), s.len());
        assert_eq!(&c[8..8 + s.len()], &s[..]);
        let p = 8 + s.len();
        assert_eq!(&c[p..p + 7], &[1, 0, 4, 0x68, 0xEB, 0xE3, 0xCB]);
        assert_eq!(&c[p + 7..], &[0xFD, 0xF8, 0xF8, 0]);
        // No PPS, or no SPS: no record.
        assert!(avc_decoder_config(&frame[..4 + s.len()]).is_none());
        assert!(avc_decoder_config(&frame[4 + s.len()..]).is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let total: usize = nal_units(&data).map(|u| u.len()).sum();
            prop_assert!(total <= data.len());
            for u in nal_units(&data) {
                prop_assert!(!u.is_empty() && u.last() != Some(&0));
            }
            let _ = is_keyframe(&data);
            if let Some((w, h)) = keyframe_size(&data) {
                prop_assert!(w > 0 && h > 0);
            }
            let _ = avc_decoder_config(&data);
            let mut sps_data = vec![0x67];
            sps_data.extend_from_slice(&data);
            let _ = parse_sps(&sps_data);
            let mut out = Vec::new();
            write_length_prefixed(&data, &mut out);
            prop_assert_eq!(out.len(), length_prefixed_len(&data));
        }

        #[test]
        fn hand_built_sps_round_trip(
            mw in 1u32..120, mh in 1u32..68, cw in 0u32..8, ch in 0u32..8,
            progressive in any::<bool>(), poc in 0u32..3, high in any::<bool>(),
        ) {
            let fy = if progressive { 1 } else { 2 };
            let (w, h) = (mw * 16 - cw * 2, mh * 16 * fy - ch * 2 * fy);
            let unit = sps(if high { 100 } else { 66 }, w, h, progressive, poc);
            let s = parse_sps(&unit);
            prop_assert_eq!(s.map(|s| (s.width, s.height)), Some((w, h)));
            // Cut short anywhere: None or (if only trailing bits are missing) the same size.
            for cut in 0..unit.len() {
                if let Some(s) = parse_sps(&unit[..cut]) {
                    prop_assert_eq!((s.width, s.height), (w, h));
                }
            }
            // In a frame, after a start code.
            let mut frame = vec![0, 0, 1];
            frame.extend_from_slice(&unit);
            prop_assert_eq!(keyframe_size(&frame), Some((w, h)));
        }
    }
}
