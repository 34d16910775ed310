//! The synthetic frame number and capture timestamp (wavecast-media's frame stamp, drawn by the
//! test pattern) survive VP8 encode and decode — at 720p and at a small size, at the default
//! bitrate and at a starved one. (The full network path is covered by `server_restart`, which
//! counts only frames whose stamp decodes, and by the `probe` example.)

use wavecast_codec::{Vp8Config, Vp8Decoder, Vp8Encoder};
use wavecast_media::TestPattern;
use wavecast_media::stamp::{self, Stamp};
use wavecast_pipeline::{PixelFormat, Timestamp, VideoFrameMut, VideoLayout};

/// Encode `frames` pattern frames at `bitrate`; returns (decoded pictures, stamps read back
/// exactly, keyframes).
fn round_trip(width: u32, height: u32, bitrate: u32, frames: u32) -> (u32, u32, u32) {
    let mut config = Vp8Config::new(width, height, 30);
    config.bitrate = bitrate;
    let mut encoder = Vp8Encoder::new(config).expect("encoder");
    let mut decoder = Vp8Decoder::new().expect("decoder");
    let layout = VideoLayout::new(PixelFormat::I420, width, height).expect("layout");
    let pattern = TestPattern::default();
    let start = Timestamp::from_micros(1_763_000_000_000_000);
    let (mut decoded, mut exact, mut keyframes) = (0, 0, 0);
    for n in 0..frames {
        let capture = start + std::time::Duration::from_micros(u64::from(n) * 33_333);
        let mut frame = VideoFrameMut::new(layout);
        pattern.render(&mut frame, n, capture).expect("render");
        let frame = frame.freeze();
        let image = wavecast_codec::pipeline::i420_of(&frame).expect("i420");
        let Some(packet) = encoder.encode(&image, i64::from(n) * 3000).expect("encode") else {
            continue;
        };
        keyframes += u32::from(packet.keyframe);
        let data = packet.data.to_vec();
        let Some(picture) = decoder.decode(&data).expect("decode") else {
            continue;
        };
        decoded += 1;
        let img = picture.image;
        assert_eq!((img.width, img.height), (width, height));
        let got = stamp::decode_plane(img.planes[0], img.strides[0], 1, width, height);
        let want = Stamp {
            frame_number: n,
            timestamp: capture,
        };
        match got {
            Ok(s) => {
                assert_eq!(s, want, "frame {n} decoded a wrong stamp");
                exact += 1;
            }
            Err(e) => eprintln!("{width}x{height} @ {bitrate}: frame {n}: {e}"),
        }
    }
    (decoded, exact, keyframes)
}

#[test]
fn stamp_survives_vp8_at_720p() {
    let (decoded, exact, keyframes) =
        round_trip(1280, 720, Vp8Config::new(1280, 720, 30).bitrate, 45);
    eprintln!("720p default bitrate: {exact}/{decoded} stamps exact, {keyframes} keyframes");
    assert!(decoded >= 44, "{decoded}");
    assert_eq!(
        exact, decoded,
        "every decoded picture carries its exact stamp"
    );
}

#[test]
fn stamp_survives_vp8_small_and_starved() {
    // 320x240 (6-pixel cells) at a default and at a starved bitrate.
    for bitrate in [Vp8Config::new(320, 240, 30).bitrate, 100_000] {
        let (decoded, exact, _) = round_trip(320, 240, bitrate, 90);
        eprintln!("320x240 @ {bitrate} bit/s: {exact}/{decoded} stamps exact");
        assert!(decoded >= 89, "{decoded}");
        assert_eq!(
            exact, decoded,
            "every decoded picture carries its exact stamp"
        );
    }
    // 720p squeezed to 300 kbit/s: the stamp band still reads back on every picture.
    let (decoded, exact, _) = round_trip(1280, 720, 300_000, 30);
    eprintln!("720p @ 300000 bit/s: {exact}/{decoded} stamps exact");
    assert_eq!(exact, decoded);
}
