//! The synthetic signals survive the real lossy codecs (system libvpx and libopus through
//! `wavecast-codec`): frame number and capture time decode exactly from VP8-decoded pictures, and
//! the audio timestamp markers are found behind Opus at a constant codec delay.

use std::time::Duration;

use wavecast_codec::pipeline::{i420_of, to_frame};
use wavecast_codec::{
    MAX_OPUS_DECODED, MAX_OPUS_PACKET, OPUS_FRAME_SAMPLES, OpusDecoder, OpusEncoder, Vp8Config,
    Vp8Decoder, Vp8Encoder,
};
use wavecast_media::{MarkerDetector, Markers, TestPattern, ToneGenerator, Waveform, stamp};
use wavecast_pipeline::{
    AudioFormat, AudioFrameMut, PixelFormat, Timestamp, VideoFramePool, VideoLayout,
};

const START: u64 = 1_763_000_000_123_456;

#[test]
fn stamp_decodes_exactly_after_vp8() {
    // Two sizes and bitrates, the lower one well below what LiveKit sends for that size.
    for (w, h, bitrate) in [(640u32, 360u32, 300_000u32), (320, 180, 60_000)] {
        let mut config = Vp8Config::new(w, h, 30);
        config.bitrate = bitrate;
        let mut encoder = Vp8Encoder::new(config).unwrap();
        let mut decoder = Vp8Decoder::new().unwrap();
        let layout = VideoLayout::new(PixelFormat::I420, w, h).unwrap();
        let (send_pool, recv_pool) = (
            VideoFramePool::new("tx", layout, 2),
            VideoFramePool::new("rx", layout, 2),
        );
        let pattern = TestPattern::default();
        let mut decoded = 0;
        for n in 0..45u32 {
            let ts = Timestamp::from_micros(START + u64::from(n) * 33_333);
            let mut frame = send_pool.acquire().unwrap();
            pattern.render(&mut frame, n, ts).unwrap();
            let frame = frame.freeze();
            let Some(packet) = encoder
                .encode(&i420_of(&frame).unwrap(), i64::from(n) * 3_000)
                .unwrap()
            else {
                continue;
            };
            let packet = packet.data.to_vec();
            let Some(image) = decoder.decode(&packet).unwrap() else {
                continue;
            };
            let received = to_frame(&image, &recv_pool).unwrap().freeze();
            let got =
                stamp::decode_frame(&received).unwrap_or_else(|e| panic!("{w}x{h} frame {n}: {e}"));
            assert_eq!(
                got,
                stamp::Stamp {
                    frame_number: n,
                    timestamp: ts
                },
                "{w}x{h} @ {bitrate} bit/s"
            );
            decoded += 1;
        }
        assert!(
            decoded >= 40,
            "{w}x{h}: only {decoded} of 45 frames came out of the codec"
        );
    }
}

#[test]
fn audio_markers_are_found_behind_opus() {
    // With in-band FEC (the encoder's default 10 % expected loss) the markers come through at
    // 32 kbit/s mono (the broadcaster's default) and above; at 24 kbit/s mono the FEC's share of
    // the bits smears them (3 of 6 found), so that case runs without FEC.
    let fec = wavecast_codec::DEFAULT_EXPECTED_LOSS_PERCENT;
    for (channels, bitrate, loss) in [(1u16, 24_000u32, 0), (1, 32_000, fec), (2, 64_000, fec)] {
        let format = AudioFormat::new(48_000, channels).unwrap();
        let markers = Markers::default();
        let mut tone = ToneGenerator::new(
            format,
            Waveform::Tone(440.0),
            0.5,
            Timestamp::from_micros(START),
        )
        .unwrap()
        .with_markers(markers);
        let mut encoder = OpusEncoder::new(channels, bitrate).unwrap();
        encoder.set_expected_loss(loss).unwrap();
        let mut decoder = OpusDecoder::new(channels).unwrap();
        let mut detector = MarkerDetector::new(48_000, 0.5, Duration::from_millis(10));
        let (mut packet, mut pcm) = ([0u8; MAX_OPUS_PACKET], vec![0i16; MAX_OPUS_DECODED * 2]);
        let mut found = Vec::new();
        let mut received = 0u64;
        for _ in 0..150 {
            // 3 s in 20 ms Opus frames.
            let mut frame = AudioFrameMut::new(format, OPUS_FRAME_SAMPLES);
            tone.fill(&mut frame);
            let frame = frame.freeze();
            let len = encoder.encode(frame.samples(), &mut packet).unwrap();
            let n = decoder.decode(&packet[..len], &mut pcm).unwrap();
            // Receive time on a zero-delay network: whatever offset remains is the codec's.
            let at = Timestamp::from_micros(START + received * 1_000_000 / 48_000);
            detector.push(
                &pcm[..n * usize::from(channels)],
                channels,
                48_000,
                at,
                &mut found,
            );
            received += n as u64;
        }
        // Markers every 500 ms from START rounded up: 6 in 3 s.
        assert_eq!(found.len(), 6, "{channels} ch @ {bitrate}: {found:?}");
        let first = (START / 500_000 + 1) * 500_000;
        for (k, m) in found.iter().enumerate() {
            let capture = m.capture_time(markers.period);
            assert_eq!(capture.as_micros(), first + k as u64 * 500_000, "{m:?}");
            let delay = m.timestamp.saturating_duration_since(capture);
            // libopus's 6.5 ms lookahead, give or take the edge smearing.
            assert!(
                (Duration::from_millis(5)..Duration::from_millis(9)).contains(&delay),
                "{channels} ch @ {bitrate}: marker {k} delay {delay:?}"
            );
        }
    }
}
