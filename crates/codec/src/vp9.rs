//! What a VP9 frame announces before libvpx sees it: the frames of a superframe and the picture
//! size each frame's uncompressed header carries (VP9 bitstream spec §6.2). Pure, allocation
//! free, and total: bad input gives `None`, never a panic. The decoder's size check and the
//! recorder's WebM muxer (`wavecast-media`) both read VP9 through it.
//!
//! Unlike VP8, a VP9 *inter* frame may change the picture size (`frame_size_with_refs` with no
//! reference found), so the decoder's size check reads every frame, not only keyframes.

/// Reads bits MSB first; reading past the end gives `None`.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }
}

/// The frames of a VP9 superframe (the index at its end, Annex B of the spec), or the data as
/// one frame when it has no valid index; frames of size 0 are skipped. Yields nothing for
/// empty data.
pub fn frames(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut sizes = [0usize; 8];
    let mut count = 0;
    let mut body = data;
    if let Some(&marker) = data.last()
        && marker & 0xe0 == 0xc0
    {
        let n = usize::from(marker & 7) + 1;
        let bytes = usize::from((marker >> 3) & 3) + 1;
        let index_len = 2 + bytes * n;
        if data.len() >= index_len && data[data.len() - index_len] == marker {
            let index = &data[data.len() - index_len + 1..data.len() - 1];
            let mut total = 0usize;
            for (i, chunk) in index.chunks_exact(bytes).enumerate() {
                let size = chunk
                    .iter()
                    .rev()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
                sizes[i] = size;
                total = total.saturating_add(size);
            }
            if total <= data.len() - index_len {
                count = n;
                body = &data[..data.len() - index_len];
            }
        }
    }
    if count == 0 && !data.is_empty() {
        sizes[0] = data.len();
        count = 1;
    }
    let mut offset = 0;
    sizes
        .into_iter()
        .take(count)
        .map(move |size| {
            let frame = &body[offset..offset + size];
            offset += size;
            frame
        })
        .filter(|f| !f.is_empty())
}

/// What one VP9 frame's uncompressed header says about its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// A keyframe (not intra-only, not inter).
    pub keyframe: bool,
    /// The picture size the frame announces explicitly (keyframes, intra-only frames, and
    /// inter frames that take their size from no reference); `None` when it reuses a
    /// reference's size or shows an existing frame.
    pub size: Option<(u32, u32)>,
}

const SYNC_CODE: u32 = 0x49_83_42;
const CS_RGB: u32 = 7;

fn color_config(b: &mut Bits<'_>, profile: u32) -> Option<()> {
    if profile >= 2 {
        b.bit()?; // ten_or_twelve_bit
    }
    let color_space = b.bits(3)?;
    let odd_profile = profile == 1 || profile == 3;
    if color_space != CS_RGB {
        b.bit()?; // color_range
        if odd_profile {
            b.bits(2)?; // subsampling_x, subsampling_y
            (b.bit()? == 0).then_some(())?; // reserved_zero
        }
    } else if odd_profile {
        (b.bit()? == 0).then_some(())?; // reserved_zero
    } else {
        return None; // RGB is only in profiles 1 and 3 (§7.2)
    }
    Some(())
}

fn frame_size(b: &mut Bits<'_>) -> Option<(u32, u32)> {
    let w = b.bits(16)? + 1;
    let h = b.bits(16)? + 1;
    Some((w, h))
}

/// Parse the start of one VP9 frame's uncompressed header; `None` when it is not a well-formed
/// VP9 frame header (bad marker, bad sync code, truncated).
pub(crate) fn frame_header(frame: &[u8]) -> Option<FrameHeader> {
    let mut b = Bits {
        data: frame,
        pos: 0,
    };
    if b.bits(2)? != 2 {
        return None; // frame_marker
    }
    let low = b.bit()?;
    let high = b.bit()?;
    let profile = (high << 1) | low;
    if profile == 3 && b.bit()? != 0 {
        return None; // reserved_zero
    }
    if b.bit()? == 1 {
        // show_existing_frame: no new picture size.
        return Some(FrameHeader {
            keyframe: false,
            size: None,
        });
    }
    let frame_type = b.bit()?;
    let show_frame = b.bit()?;
    let error_resilient = b.bit()?;
    if frame_type == 0 {
        if b.bits(24)? != SYNC_CODE {
            return None;
        }
        color_config(&mut b, profile)?;
        return Some(FrameHeader {
            keyframe: true,
            size: Some(frame_size(&mut b)?),
        });
    }
    let intra_only = if show_frame == 0 { b.bit()? } else { 0 };
    if error_resilient == 0 {
        b.bits(2)?; // reset_frame_context
    }
    if intra_only == 1 {
        if b.bits(24)? != SYNC_CODE {
            return None;
        }
        if profile > 0 {
            color_config(&mut b, profile)?;
        }
        b.bits(8)?; // refresh_frame_flags
        return Some(FrameHeader {
            keyframe: false,
            size: Some(frame_size(&mut b)?),
        });
    }
    b.bits(8)?; // refresh_frame_flags
    b.bits(3 * 4)?; // ref_frame_idx[3] and ref_frame_sign_bias[3]
    for _ in 0..3 {
        if b.bit()? == 1 {
            // found_ref: the size of a reference, already accepted when it was decoded.
            return Some(FrameHeader {
                keyframe: false,
                size: None,
            });
        }
    }
    Some(FrameHeader {
        keyframe: false,
        size: Some(frame_size(&mut b)?),
    })
}

/// The largest picture any frame of `data` (a frame or a superframe) announces, by pixels.
pub(crate) fn largest_announced(data: &[u8]) -> Option<(u32, u32)> {
    frames(data)
        .filter_map(|f| frame_header(f)?.size)
        .max_by_key(|&(w, h)| u64::from(w) * u64::from(h))
}

/// The picture size a VP9 keyframe announces in its uncompressed header (in a superframe, the
/// first of its frames that is a keyframe: an SVC keyframe's base layer); `None` for any other
/// frame or malformed data. Pure Rust, no libvpx; tests hold it to libvpx's own reading,
/// [`crate::vp9_keyframe_size`].
pub fn keyframe_size(data: &[u8]) -> Option<(u32, u32)> {
    frames(data).find_map(|f| {
        let h = frame_header(f)?;
        if h.keyframe { h.size } else { None }
    })
}

/// Whether `data` (a frame or a superframe) holds a VP9 keyframe.
pub fn is_keyframe(data: &[u8]) -> bool {
    keyframe_size(data).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits written MSB first.
    struct Writer {
        bytes: Vec<u8>,
        n: usize,
    }

    impl Writer {
        fn new() -> Self {
            Self {
                bytes: Vec::new(),
                n: 0,
            }
        }
        fn put(&mut self, v: u32, bits: u32) -> &mut Self {
            for i in (0..bits).rev() {
                if self.n.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = ((v >> i) & 1) as u8;
                *self.bytes.last_mut().unwrap() |= bit << (7 - self.n % 8);
                self.n += 1;
            }
            self
        }
    }

    fn keyframe(profile: u32, w: u32, h: u32) -> Vec<u8> {
        let mut b = Writer::new();
        b.put(2, 2).put(profile & 1, 1).put(profile >> 1, 1);
        if profile == 3 {
            b.put(0, 1);
        }
        b.put(0, 1).put(0, 1).put(1, 1).put(0, 1); // show_existing, key, show, error_res
        b.put(SYNC_CODE, 24);
        if profile >= 2 {
            b.put(0, 1);
        }
        b.put(1, 3).put(0, 1); // BT.601, studio range
        if profile == 1 || profile == 3 {
            b.put(0, 3);
        }
        b.put(w - 1, 16).put(h - 1, 16).put(0, 1);
        b.bytes.extend_from_slice(&[0x55; 16]);
        b.bytes
    }

    fn inter_with_size(w: u32, h: u32) -> Vec<u8> {
        let mut b = Writer::new();
        b.put(2, 2)
            .put(0, 2)
            .put(0, 1)
            .put(1, 1)
            .put(1, 1)
            .put(0, 1);
        b.put(0, 2).put(0x01, 8).put(0, 12).put(0, 3); // no found_ref
        b.put(w - 1, 16).put(h - 1, 16);
        b.bytes.extend_from_slice(&[0xaa; 8]);
        b.bytes
    }

    #[test]
    fn keyframes_of_every_profile_announce_their_size() {
        for profile in 0..4 {
            let k = keyframe(profile, 1920, 1080);
            assert_eq!(keyframe_size(&k), Some((1920, 1080)), "profile {profile}");
        }
        assert_eq!(keyframe_size(&keyframe(0, 65536, 1)), Some((65536, 1)));
    }

    #[test]
    fn an_inter_frame_may_announce_a_new_size() {
        let f = inter_with_size(16000, 16000);
        assert_eq!(keyframe_size(&f), None);
        assert_eq!(largest_announced(&f), Some((16000, 16000)));
    }

    #[test]
    fn superframes_are_split_by_their_index() {
        let a = keyframe(0, 64, 48);
        let b = inter_with_size(8000, 8000);
        let mut data = a.clone();
        data.extend_from_slice(&b);
        // Two frames, 2 bytes per size.
        let marker = 0xc0 | (1 << 3) | 1;
        data.push(marker);
        data.extend_from_slice(&(a.len() as u16).to_le_bytes());
        data.extend_from_slice(&(b.len() as u16).to_le_bytes());
        data.push(marker);
        let parts: Vec<&[u8]> = frames(&data).collect();
        assert_eq!(parts, vec![&a[..], &b[..]]);
        assert_eq!(keyframe_size(&data), Some((64, 48)));
        assert_eq!(largest_announced(&data), Some((8000, 8000)));
        // An index whose sizes overrun the data is not an index.
        let mut bad = data.clone();
        let at = bad.len() - 3;
        bad[at] = 0xff;
        assert_eq!(frames(&bad).count(), 1);
    }

    /// Regression guard: VP9 inter frames may grow the picture; the decoder reads them too.
    #[test]
    fn the_decoder_refuses_any_frame_that_announces_a_huge_picture() {
        use crate::{CodecError, VideoCodec};
        let mut dec = crate::vpx::VpxDecoder::new(VideoCodec::Vp9).unwrap();
        for frame in [inter_with_size(16000, 16000), keyframe(0, 8192, 8192)] {
            match dec.decode_frame(&frame) {
                Err(CodecError::TooLarge { width, height, .. }) => {
                    assert_eq!(Some((width, height)), largest_announced(&frame));
                }
                other => panic!("expected TooLarge, got {other:?}"),
            }
        }
    }

    /// This parser and libvpx's agree on real keyframes, of odd sizes too.
    #[test]
    fn the_parser_agrees_with_libvpx() {
        use crate::{I420, VideoCodec, VideoEncoder, VideoEncoderConfig};
        for (w, h) in [(64u32, 48u32), (321, 179), (1280, 720)] {
            let mut enc =
                VideoEncoder::new(VideoEncoderConfig::new(VideoCodec::Vp9, w, h, 30)).unwrap();
            let (y, c) = (
                vec![90u8; (w * h) as usize],
                vec![128u8; (w.div_ceil(2) * h.div_ceil(2)) as usize],
            );
            let cw = w.div_ceil(2) as usize;
            let img = I420 {
                width: w,
                height: h,
                planes: [&y, &c, &c],
                strides: [w as usize, cw, cw],
            };
            let key = enc.encode(&img, 0).unwrap().unwrap().data.to_vec();
            assert_eq!(keyframe_size(&key), Some((w, h)));
            assert_eq!(crate::vp9_keyframe_size(&key), Some((w, h)));
            let inter = enc.encode(&img, 3000).unwrap().unwrap().data.to_vec();
            assert_eq!(keyframe_size(&inter), None);
            assert_eq!(crate::vp9_keyframe_size(&inter), None);
            assert_eq!(largest_announced(&inter), None, "inter frames reuse a size");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = frames(&data).count();
            let _ = largest_announced(&data);
            let _ = keyframe_size(&data);
        }

        #[test]
        fn any_size_round_trips(w in 1u32..=65536, h in 1u32..=65536, profile in 0u32..4) {
            proptest::prop_assert_eq!(keyframe_size(&keyframe(profile, w, h)), Some((w, h)));
            proptest::prop_assert_eq!(largest_announced(&inter_with_size(w, h)), Some((w, h)));
        }
    }
}
