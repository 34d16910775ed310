//! Synthetic signals through the pipeline's analysis: a tone burst drives the speaking
//! indicator; the test pattern survives pooled fan-out.

use std::time::Duration;

use wavecast_media::{TestPattern, ToneGenerator, Waveform, stamp};
use wavecast_pipeline::analysis::{SpeakingConfig, SpeakingDetector, SpectrumAnalyzer};
use wavecast_pipeline::{
    AudioFormat, AudioFramePool, FanOut, PixelFormat, Timestamp, VideoFrame, VideoFramePool,
    VideoLayout,
};

#[test]
fn speaking_indicator_switches_with_hysteresis_on_a_tone_burst() {
    let format = AudioFormat::MONO_48K;
    let pool = AudioFramePool::for_format("mic", format, Duration::from_millis(10), 4);
    let mut tone = ToneGenerator::new(format, Waveform::Tone(300.0), 0.2, Timestamp::ZERO).unwrap();
    let mut quiet =
        ToneGenerator::new(format, Waveform::Tone(300.0), 0.0005, Timestamp::ZERO).unwrap();
    let mut detector = SpeakingDetector::new(SpeakingConfig::default()).unwrap();
    let mut spectrum = SpectrumAnalyzer::new(2048, 48_000).unwrap();
    // (10 ms frames of tone?, count): silence, burst, short pause, burst, long silence.
    let script = [
        (false, 20),
        (true, 50),
        (false, 10),
        (true, 30),
        (false, 60),
    ];
    let mut states = Vec::new();
    for (loud, frames) in script {
        for _ in 0..frames {
            let mut f = pool.acquire(format, 480).unwrap();
            if loud {
                tone.fill(&mut f)
            } else {
                quiet.fill(&mut f)
            }
            let f = f.freeze();
            if loud {
                spectrum.push_frame(&f);
            }
            states.push(detector.update_frame(&f));
        }
    }
    let on_at = states.iter().position(|&s| s).unwrap();
    assert_eq!(
        on_at, 21,
        "on after two 10 ms frames of tone (20 ms attack)"
    );
    assert!(
        states[21..110].iter().all(|&s| s),
        "stays on through the 100 ms pause"
    );
    let off_at = 110 + states[110..].iter().position(|&s| !s).unwrap();
    assert_eq!(off_at, 139, "off after 300 ms of silence");
    assert!(states[off_at..].iter().all(|&s| !s));
    assert_eq!(detector.transitions(), 2);
    spectrum.compute();
    let (freq, _) = spectrum.dominant_frequency().unwrap();
    assert!((freq - 300.0).abs() < 3.0, "{freq}");
}

#[test]
fn pattern_frames_fan_out_and_decode_in_every_consumer() {
    let layout = VideoLayout::new(PixelFormat::I420, 640, 360).unwrap();
    let pool = VideoFramePool::new("synthetic", layout, 3);
    let mut fan: FanOut<VideoFrame> = FanOut::new();
    let consumers = [
        fan.add_queue("a", 2),
        fan.add_queue("b", 2),
        fan.add_queue("c", 2),
    ];
    let pattern = TestPattern::default();
    for n in 0..30u32 {
        let mut f = pool.acquire().expect("consumers release every frame");
        let ts = Timestamp::from_micros(1_763_000_000_000_000 + u64::from(n) * 33_333);
        pattern.render(&mut f, n, ts).unwrap();
        fan.publish(f.freeze());
        for q in &consumers {
            let got = q.pop().unwrap();
            assert_eq!(
                stamp::decode_frame(&got).unwrap(),
                stamp::Stamp {
                    frame_number: n,
                    timestamp: ts
                }
            );
        }
    }
    assert_eq!(pool.stats().exhausted, 0);
}
