//! The little of VP9 a recorder reads: the frames of a superframe (VP9 § B.3), and whether a
//! frame is a keyframe and its size, from the uncompressed header (VP9 § 6.2: frame marker,
//! profile, `show_existing_frame`, `frame_type`, the sync code `49 83 42`, the colour config,
//! then the 16-bit width − 1 and height − 1).
//!
//! `wavecast-codec`'s VP9 reader (the one its decoder checks sizes with), re-exported: pure
//! functions over arbitrary bytes, malformed input gives `None`, never a panic, and
//! nothing allocates.
//!
//! ```
//! use wavecast_media::webm::vp9;
//!
//! // The start of a profile-0 keyframe of 320×240 (libvpx's), as WebM and RTP carry it.
//! let key = [0x82, 0x49, 0x83, 0x42, 0x00, 0x13, 0xF0, 0x0E, 0xF6, 0x0A, 0x38];
//! assert_eq!(vp9::keyframe_size(&key), Some((320, 240)));
//! // An interframe (frame_type 1) has no size of its own here.
//! assert_eq!(vp9::keyframe_size(&[0x86, 0x00, 0x40, 0x92]), None);
//! ```

pub use wavecast_codec::vp9::{frames, is_keyframe, keyframe_size};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A keyframe header: profile, colour space, size (then a few payload bytes).
    fn key_header(profile: u32, color_space: u32, w: u32, h: u32) -> Vec<u8> {
        let mut bits: Vec<u32> = Vec::new();
        let mut put = |v: u32, n: usize| {
            for i in (0..n).rev() {
                bits.push((v >> i) & 1);
            }
        };
        put(2, 2);
        put(profile & 1, 1);
        put(profile >> 1, 1);
        if profile == 3 {
            put(0, 1);
        }
        put(0, 1); // show_existing_frame
        put(0, 1); // key frame
        put(1, 1);
        put(0, 1);
        put(0x49_83_42, 24);
        if profile >= 2 {
            put(1, 1);
        }
        put(color_space, 3);
        let odd = profile == 1 || profile == 3;
        if color_space != 7 {
            put(0, 1);
            if odd {
                put(1, 1);
                put(0, 1);
                put(0, 1);
            }
        } else {
            put(0, 1);
        }
        put(w - 1, 16);
        put(h - 1, 16);
        put(0b1011_0110, 8);
        bits.chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, bit)| b | ((*bit as u8) << (7 - i)))
            })
            .collect()
    }

    fn superframe(frames: &[&[u8]]) -> Vec<u8> {
        let mut out: Vec<u8> = frames.concat();
        let mag = 2usize;
        let marker = 0xC0 | (((mag - 1) as u8) << 3) | (frames.len() as u8 - 1);
        out.push(marker);
        for f in frames {
            out.extend_from_slice(&(f.len() as u16).to_le_bytes());
        }
        out.push(marker);
        out
    }

    #[test]
    fn keyframe_sizes_of_every_profile() {
        for (profile, cs, w, h) in [
            (0, 1, 320, 240),
            (0, 2, 1, 1),
            (1, 7, 640, 360),
            (1, 2, 1920, 1080),
            (2, 1, 65_536, 3),
            (3, 7, 4096, 2160),
            (3, 5, 17, 9),
        ] {
            let f = key_header(profile, cs, w, h);
            assert_eq!(
                keyframe_size(&f),
                Some((w, h)),
                "profile {profile}: {f:02x?}"
            );
        }
        // RGB is not allowed in profile 0.
        assert_eq!(keyframe_size(&key_header(0, 7, 32, 32)), None);
    }

    #[test]
    fn superframes_yield_their_frames_and_the_first_keyframe() {
        let inter = [0x86u8, 0x00, 0x40, 0x92, 0x11];
        let key = key_header(0, 1, 640, 480);
        let s = superframe(&[&inter, &key]);
        let parts: Vec<&[u8]> = frames(&s).collect();
        assert_eq!(parts, [&inter[..], &key[..]]);
        assert_eq!(keyframe_size(&s), Some((640, 480)));
        assert!(!is_keyframe(&superframe(&[&inter, &inter])));
        // A marker byte without a matching index is just the last byte of one frame.
        let mut plain = key.clone();
        plain.push(0xC1);
        assert_eq!(frames(&plain).count(), 1);
        // An index claiming more bytes than there are is no index.
        let mut bad = superframe(&[&inter, &key]);
        let n = bad.len();
        bad[n - 3] = 0xFF;
        assert_eq!(frames(&bad).count(), 1);
    }

    #[test]
    fn show_existing_and_interframes_have_no_size() {
        assert_eq!(keyframe_size(&[0x88]), None); // show_existing_frame
        assert_eq!(keyframe_size(&[0x86, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(keyframe_size(&[]), None);
        let mut wrong_sync = key_header(0, 1, 320, 240);
        wrong_sync[2] ^= 0x10;
        assert_eq!(keyframe_size(&wrong_sync), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let total: usize = frames(&data).map(<[u8]>::len).sum();
            prop_assert!(total <= data.len());
            if let Some((w, h)) = keyframe_size(&data) {
                prop_assert!((1..=65_536).contains(&w) && (1..=65_536).contains(&h));
            }
        }

        #[test]
        fn built_headers_round_trip(
            profile in 0u32..4, cs in 0u32..8, w in 1u32..=65_536, h in 1u32..=65_536,
            cut in 0usize..16,
        ) {
            let f = key_header(profile, cs, w, h);
            let expected = (cs != 7 || profile % 2 == 1).then_some((w, h));
            prop_assert_eq!(keyframe_size(&f), expected);
            // Cut short: no size, or (cut in the payload) the same one.
            let cut = cut.min(f.len());
            let got = keyframe_size(&f[..cut]);
            prop_assert!(got.is_none() || got == expected);
            // In a superframe after an interframe.
            let s = superframe(&[&[0x86, 0, 0x40], &f]);
            prop_assert_eq!(keyframe_size(&s), expected);
        }
    }
}
