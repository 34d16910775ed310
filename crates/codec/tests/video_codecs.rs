//! VP8, VP9 and H.264 through the one API: round trips, keyframes, bitrate changes, size
//! changes mid-stream, oversized pictures refused, and bad input that never panics.

use wavecast_codec::{
    CodecError, DEFAULT_MAX_PIXELS, I420, VideoCodec, VideoDecoder, VideoEncoder,
    VideoEncoderConfig, h264, keyframe_size,
};

/// A synthetic picture: a horizontal luma ramp moving with `n`, a bright square, flat chroma
/// (U 100, V 150); or, [`Picture::noisy`], fine texture that no bitrate is enough for.
struct Picture {
    width: u32,
    height: u32,
    planes: [Vec<u8>; 3],
}

impl Picture {
    fn new(width: u32, height: u32, n: u32) -> Self {
        let (w, h) = (width as usize, height as usize);
        let mut y = vec![0u8; w * h];
        for row in 0..h {
            for col in 0..w {
                let ramp = 40 + ((col + n as usize * 2) % w) * 160 / w;
                let square = (w / 4..w / 2).contains(&col) && (h / 4..h / 2).contains(&row);
                y[row * w + col] = if square { 230 } else { ramp as u8 };
            }
        }
        let c = w.div_ceil(2) * h.div_ceil(2);
        Self {
            width,
            height,
            planes: [y, vec![100; c], vec![150; c]],
        }
    }

    fn noisy(width: u32, height: u32, n: u32) -> Self {
        let mut p = Self::new(width, height, n);
        for (i, v) in p.planes[0].iter_mut().enumerate() {
            let x = (i as u32)
                .wrapping_add(n * 7919)
                .wrapping_mul(2_654_435_761);
            *v = v.saturating_add((x >> 27) as u8);
        }
        p
    }

    fn i420(&self) -> I420<'_> {
        let cw = self.width.div_ceil(2) as usize;
        I420 {
            width: self.width,
            height: self.height,
            planes: [&self.planes[0], &self.planes[1], &self.planes[2]],
            strides: [self.width as usize, cw, cw],
        }
    }
}

/// Mean absolute difference of two planes of `w`×`h`.
fn mean_abs_diff(a: &[u8], a_stride: usize, b: &[u8], b_stride: usize, w: usize, h: usize) -> f64 {
    let mut sum = 0u64;
    for row in 0..h {
        for col in 0..w {
            sum += u64::from(a[row * a_stride + col].abs_diff(b[row * b_stride + col]));
        }
    }
    sum as f64 / (w * h) as f64
}

/// `frames` encoded frames of `w`×`h` (data, keyframe).
fn encode(codec: VideoCodec, w: u32, h: u32, frames: u32) -> Vec<(Vec<u8>, bool)> {
    let mut enc = VideoEncoder::new(VideoEncoderConfig::new(codec, w, h, 30)).unwrap();
    (0..frames)
        .map(|n| {
            let p = Picture::new(w, h, n);
            let f = enc
                .encode(&p.i420(), i64::from(n) * 3000)
                .unwrap()
                .unwrap_or_else(|| panic!("{codec}: no frame for picture {n}"));
            (f.data.to_vec(), f.keyframe)
        })
        .collect()
}

#[test]
fn every_codec_round_trips_a_picture_closely() {
    for codec in VideoCodec::ALL {
        for (w, h) in [(320, 240), (321, 241)] {
            let mut enc = VideoEncoder::new(VideoEncoderConfig::new(codec, w, h, 30)).unwrap();
            assert_eq!(enc.codec(), codec);
            let mut dec = VideoDecoder::new(codec).unwrap();
            assert_eq!(dec.codec(), codec);
            for n in 0..20u32 {
                let p = Picture::new(w, h, n);
                let frame = enc.encode(&p.i420(), i64::from(n) * 3000).unwrap().unwrap();
                assert_eq!(frame.keyframe, n == 0, "{codec} {w}x{h} frame {n}");
                assert_eq!(frame.pts, i64::from(n) * 3000);
                let data = frame.data.to_vec();
                assert!(dec.decode_frame(&data).unwrap(), "{codec} frame {n}");
                let img = dec.image().unwrap().image;
                // 4:2:0 H.264 has no odd sizes: the last column and row are left out.
                let (dw, dh) = match codec {
                    VideoCodec::H264 => (w & !1, h & !1),
                    _ => (w, h),
                };
                assert_eq!((img.width, img.height), (dw, dh), "{codec}");
                let (wu, hu) = (dw as usize, dh as usize);
                let y = mean_abs_diff(
                    img.planes[0],
                    img.strides[0],
                    &p.planes[0],
                    w as usize,
                    wu,
                    hu,
                );
                assert!(
                    y < 6.0,
                    "{codec} {w}x{h} frame {n}: luma off by {y:.2} on average"
                );
                let (cw, ch) = (wu.div_ceil(2), hu.div_ceil(2));
                let src_cw = w.div_ceil(2) as usize;
                for (i, want) in [(1, 100u8), (2, 150u8)] {
                    let d =
                        mean_abs_diff(img.planes[i], img.strides[i], &p.planes[i], src_cw, cw, ch);
                    assert!(
                        d < 8.0,
                        "{codec} {w}x{h} frame {n}: plane {i} off by {d:.2} (want {want})"
                    );
                }
            }
            assert_eq!(enc.frames(), 20);
            assert_eq!(dec.frames(), 20);
        }
    }
}

#[test]
fn keyframes_on_demand_bitrate_changes_and_sizes() {
    for codec in VideoCodec::ALL {
        let (w, h) = (352, 288);
        let mut enc = VideoEncoder::new(VideoEncoderConfig::new(codec, w, h, 30)).unwrap();
        // Before the first picture too.
        enc.set_bitrate(400_000).unwrap();
        let p = Picture::new(w, h, 0);
        let key = enc.encode(&p.i420(), 0).unwrap().unwrap();
        assert!(key.keyframe, "{codec}");
        assert_eq!(keyframe_size(codec, key.data), Some((w, h)), "{codec}");
        assert!(!enc.encode(&p.i420(), 3000).unwrap().unwrap().keyframe);
        let inter = enc.encode(&p.i420(), 6000).unwrap().unwrap();
        assert!(!inter.keyframe, "{codec}");
        assert_eq!(keyframe_size(codec, inter.data), None, "{codec}");
        enc.set_bitrate(1_500_000).unwrap();
        enc.set_bitrate(200_000).unwrap();
        assert_eq!(enc.config().bitrate, 200_000);
        enc.force_keyframe();
        let forced = enc.encode(&p.i420(), 9000).unwrap().unwrap();
        assert!(forced.keyframe, "{codec}");
        assert!(!enc.encode(&p.i420(), 12000).unwrap().unwrap().keyframe);
        // A picture of another size is an error, not a panic.
        let other = Picture::new(320, 240, 0);
        assert!(matches!(
            enc.encode(&other.i420(), 15000),
            Err(CodecError::BadFrame { .. })
        ));
    }
}

#[test]
fn keyframes_come_at_least_every_keyframe_interval() {
    for codec in VideoCodec::ALL {
        let mut config = VideoEncoderConfig::new(codec, 160, 120, 30);
        config.keyframe_interval = 6;
        let mut enc = VideoEncoder::new(config).unwrap();
        let keys: Vec<u32> = (0..40u32)
            .filter(|&n| {
                let p = Picture::new(160, 120, n);
                enc.encode(&p.i420(), i64::from(n) * 3000)
                    .unwrap()
                    .unwrap()
                    .keyframe
            })
            .collect();
        assert_eq!(keys.first(), Some(&0), "{codec}: {keys:?}");
        let widest = keys
            .windows(2)
            .map(|w| w[1] - w[0])
            .chain([40 - keys[keys.len() - 1]])
            .max();
        assert!(widest <= Some(6), "{codec}: keyframes at {keys:?}");
        assert!(keys.len() < 20, "{codec}: keyframes at {keys:?}");
    }
}

#[test]
fn a_lower_bitrate_makes_smaller_frames() {
    for codec in VideoCodec::ALL {
        let (w, h) = (640, 360);
        let bytes = |bitrate: u32| {
            let mut c = VideoEncoderConfig::new(codec, w, h, 30);
            c.bitrate = bitrate;
            let mut enc = VideoEncoder::new(c).unwrap();
            (0..60u32)
                .map(|n| {
                    let p = Picture::noisy(w, h, n);
                    enc.encode(&p.i420(), i64::from(n) * 3000)
                        .unwrap()
                        .map_or(0, |f| f.data.len())
                })
                .skip(30)
                .sum::<usize>()
        };
        let (low, high) = (bytes(150_000), bytes(1_500_000));
        assert!(
            low * 2 < high,
            "{codec}: {low} bytes at 150 kbit/s, {high} at 1.5 Mbit/s"
        );
    }
}

#[test]
fn h264_keyframes_carry_constrained_baseline_parameter_sets() {
    let frames = encode(VideoCodec::H264, 640, 480, 3);
    let (key, is_key) = &frames[0];
    assert!(is_key);
    assert!(key.starts_with(&[0, 0, 0, 1]) || key.starts_with(&[0, 0, 1]));
    let types: Vec<u8> = h264::annex_b_nals(key).map(h264::nal_type).collect();
    let sps_at = types.iter().position(|&t| t == h264::NAL_SPS).unwrap();
    let pps_at = types.iter().position(|&t| t == h264::NAL_PPS).unwrap();
    let idr_at = types.iter().position(|&t| t == h264::NAL_IDR).unwrap();
    assert!(sps_at < pps_at && pps_at < idr_at, "{types:?}");
    assert!(h264::is_keyframe(key));
    let (sps, pps) = h264::parameter_sets(key).unwrap();
    assert_eq!(h264::nal_type(pps), h264::NAL_PPS);
    let sps = h264::Sps::parse(sps).unwrap();
    // profile_idc 66 with constraint_set0 and constraint_set1: constrained baseline (42c0 here;
    // WebRTC reads 42c0 and 42e0 alike), level 3.1 as in the negotiated 42e01f.
    assert_eq!(sps.profile_idc, 66);
    assert_eq!(sps.constraints & 0xc0, 0xc0, "constraint_set0/1 flags");
    assert_eq!(sps.level_idc, 31);
    assert_eq!((sps.width, sps.height), (640, 480));
    for (f, key) in &frames[1..] {
        assert!(!key && !h264::is_keyframe(f));
        assert_eq!(h264::parameter_sets(f), None);
    }
}

#[test]
fn decoding_follows_a_size_change_mid_stream() {
    for codec in VideoCodec::ALL {
        let mut dec = VideoDecoder::new(codec).unwrap();
        for (w, h) in [(320, 240), (176, 144), (640, 360)] {
            for (n, (data, _)) in encode(codec, w, h, 5).iter().enumerate() {
                assert!(dec.decode_frame(data).unwrap(), "{codec} {w}x{h} frame {n}");
                let img = dec.image().unwrap().image;
                assert_eq!((img.width, img.height), (w, h), "{codec} frame {n}");
            }
        }
        assert_eq!(dec.frames(), 15);
    }
}

#[test]
fn a_too_large_keyframe_is_refused_and_the_decoder_goes_on() {
    for codec in VideoCodec::ALL {
        let frames = encode(codec, 352, 288, 3);
        let mut small = VideoDecoder::new(codec)
            .unwrap()
            .with_max_pixels(352 * 288 - 1);
        assert_eq!(small.max_pixels(), 352 * 288 - 1);
        match small.decode_frame(&frames[0].0) {
            Err(CodecError::TooLarge {
                width,
                height,
                max_pixels,
            }) => assert_eq!((width, height, max_pixels), (352, 288, 352 * 288 - 1)),
            other => panic!("{codec}: expected TooLarge, got {other:?}"),
        }
        assert!(small.image().is_none());
        // The default accepts it, and a smaller stream then decodes on the refusing decoder.
        let mut dec = VideoDecoder::new(codec).unwrap();
        assert_eq!(dec.max_pixels(), DEFAULT_MAX_PIXELS);
        assert!(dec.decode_frame(&frames[0].0).unwrap());
        for (data, _) in encode(codec, 160, 120, 2) {
            assert!(small.decode_frame(&data).unwrap(), "{codec}");
        }
    }
}

/// Truncated, bit-flipped and reordered frames give errors or pictures, never a panic, and a
/// keyframe afterwards decodes.
#[test]
fn corrupt_and_truncated_frames_never_panic() {
    for codec in VideoCodec::ALL {
        let frames = encode(codec, 320, 240, 8);
        let mut dec = VideoDecoder::new(codec).unwrap();
        let mut errors = 0;
        for (i, (data, _)) in frames.iter().enumerate() {
            for cut in [1, 2, 5, data.len() / 3, data.len() / 2, data.len() - 1] {
                errors += usize::from(dec.decode_frame(&data[..cut.min(data.len())]).is_err());
            }
            let mut flipped = data.clone();
            for k in (i % 7..flipped.len()).step_by(13) {
                flipped[k] ^= 0x5a;
            }
            errors += usize::from(dec.decode_frame(&flipped).is_err());
            // An empty frame is always an error.
            assert!(dec.decode_frame(&[]).is_err(), "{codec}");
        }
        // Interframes without their keyframe.
        let mut fresh = VideoDecoder::new(codec).unwrap();
        for (data, _) in &frames[1..] {
            let _ = fresh.decode_frame(data);
        }
        assert!(errors > 0, "{codec}: corruption went unnoticed every time");
        // Recovery on the next keyframe.
        let mut enc = VideoEncoder::new(VideoEncoderConfig::new(codec, 320, 240, 30)).unwrap();
        let p = Picture::new(320, 240, 0);
        let key = enc.encode(&p.i420(), 0).unwrap().unwrap().data.to_vec();
        assert!(dec.decode_frame(&key).unwrap(), "{codec} after corruption");
        assert_eq!(dec.image().unwrap().image.width, 320);
    }
}

#[test]
fn bad_encoder_settings_are_errors() {
    for codec in VideoCodec::ALL {
        assert!(VideoEncoder::new(VideoEncoderConfig::new(codec, 0, 240, 30)).is_err());
        assert!(VideoEncoder::new(VideoEncoderConfig::new(codec, 320, 0, 30)).is_err());
        assert!(VideoEncoder::new(VideoEncoderConfig::new(codec, 20_000, 240, 30)).is_err());
    }
    let c = VideoEncoderConfig::new(VideoCodec::Vp9, 1280, 720, 30);
    assert_eq!(
        (c.fps, c.keyframe_interval, c.effective_cpu_used()),
        (30, 90, 7)
    );
    assert_eq!(
        c.bitrate,
        wavecast_codec::Vp8Config::new(1280, 720, 30).bitrate
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Random bytes into a fresh decoder and into one that has a picture.
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
                                codec in proptest::sample::select(VideoCodec::ALL.to_vec())) {
        let mut fresh = VideoDecoder::new(codec).unwrap();
        let _ = fresh.decode_frame(&data);
        let _ = keyframe_size(codec, &data);
        // As an H.264 access unit too (a start code in front).
        let mut au = vec![0, 0, 0, 1];
        au.extend_from_slice(&data);
        let _ = fresh.decode_frame(&au);
    }

    /// A real keyframe with random bytes overwritten.
    #[test]
    fn damaged_keyframes_never_panic(seed in proptest::collection::vec((0usize..4096, proptest::num::u8::ANY), 1..24),
                                     codec in proptest::sample::select(VideoCodec::ALL.to_vec())) {
        let mut enc = VideoEncoder::new(VideoEncoderConfig::new(codec, 96, 64, 30)).unwrap();
        let p = Picture::new(96, 64, 1);
        let mut key = enc.encode(&p.i420(), 0).unwrap().unwrap().data.to_vec();
        for (at, b) in seed {
            let i = at % key.len();
            key[i] = b;
        }
        let mut dec = VideoDecoder::new(codec).unwrap();
        if dec.decode_frame(&key).unwrap_or(false) {
            let img = dec.image().unwrap().image;
            proptest::prop_assert!(u64::from(img.width) * u64::from(img.height) <= DEFAULT_MAX_PIXELS);
        }
    }
}
