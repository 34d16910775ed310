//! Synthetic sources: a colour-bar test pattern with a moving box and a frame stamp, and a tone
//! or chirp generator with timestamp markers.

use std::f64::consts::TAU;
use std::time::Duration;

use wavecast_pipeline::{AudioFormat, AudioFrameMut, PixelFormat, Timestamp, VideoFrameMut};

use crate::error::{MediaError, Result};
use crate::stamp::{self, Stamp};

/// 75 % colour bars: white, yellow, cyan, green, magenta, red, blue, black.
const BARS_RGB: [[u8; 3]; 8] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
    [0, 0, 0],
];

/// BT.601 limited-range Y, U, V of an RGB colour.
fn yuv(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb.map(f32::from);
    let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
    let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
    [y, u, v].map(|c| c.round().clamp(0.0, 255.0) as u8)
}

/// Colour bars with a box sweeping across the lower part and a [`stamp`] band on top carrying
/// the frame number and capture time.
#[derive(Clone, Debug)]
pub struct TestPattern {
    /// Horizontal box speed, in pixels per frame.
    pub box_speed: u32,
}

impl Default for TestPattern {
    fn default() -> Self {
        TestPattern { box_speed: 8 }
    }
}

impl TestPattern {
    /// Draws frame `frame_number` captured at `timestamp` into `frame` (I420, NV12 or RGBA, any
    /// size with width ≥ [`stamp::MIN_WIDTH`]) and sets the frame's timestamp and sequence.
    pub fn render(
        &self,
        frame: &mut VideoFrameMut,
        frame_number: u32,
        timestamp: Timestamp,
    ) -> Result<()> {
        let layout = *frame.layout();
        let (w, h) = (layout.width() as usize, layout.height() as usize);
        let box_size = (h / 6).max(2);
        let box_y = h * 2 / 3;
        let span = (w + box_size) as u64;
        let box_x = ((u64::from(frame_number) * u64::from(self.box_speed)) % span) as usize;
        let in_box = |x: usize, y: usize| {
            (box_y..box_y + box_size).contains(&y) && x + box_size >= box_x && x < box_x
        };
        let bar = |x: usize| BARS_RGB[x * BARS_RGB.len() / w];
        let bars_yuv = BARS_RGB.map(yuv);
        let bar_yuv = |x: usize| bars_yuv[x * BARS_RGB.len() / w];
        match layout.format() {
            PixelFormat::Rgba => {
                let mut p = frame.plane_mut(0);
                for y in 0..h {
                    let row = p.row_mut(y);
                    for (x, px) in row.chunks_exact_mut(4).enumerate() {
                        let rgb = if in_box(x, y) {
                            [235, 235, 235]
                        } else {
                            bar(x)
                        };
                        px.copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
                    }
                }
            }
            format => {
                {
                    let mut luma = frame.plane_mut(0);
                    for y in 0..h {
                        let row = luma.row_mut(y);
                        for (x, px) in row.iter_mut().enumerate() {
                            *px = if in_box(x, y) { 235 } else { bar_yuv(x)[0] };
                        }
                    }
                }
                let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
                let chroma = |x: usize, y: usize, c: usize| {
                    if in_box(x * 2, y * 2) {
                        128
                    } else {
                        yuv(bar(x * 2))[c]
                    }
                };
                if format == PixelFormat::Nv12 {
                    let mut uv = frame.plane_mut(1);
                    for y in 0..ch {
                        let row = uv.row_mut(y);
                        for x in 0..cw {
                            row[2 * x] = chroma(x, y, 1);
                            row[2 * x + 1] = chroma(x, y, 2);
                        }
                    }
                } else {
                    for (plane, c) in [(1, 1), (2, 2)] {
                        let mut p = frame.plane_mut(plane);
                        for y in 0..ch {
                            let row = p.row_mut(y);
                            for (x, px) in row.iter_mut().enumerate().take(cw) {
                                *px = chroma(x, y, c);
                            }
                        }
                    }
                }
            }
        }
        stamp::stamp_frame(
            frame,
            Stamp {
                frame_number,
                timestamp,
            },
        )?;
        frame
            .set_timestamp(timestamp)
            .set_sequence(u64::from(frame_number));
        Ok(())
    }
}

/// What a [`ToneGenerator`] plays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Waveform {
    /// A sine at a fixed frequency (Hz).
    Tone(f64),
    /// A linear sweep from `from` to `to` Hz over `period`, repeating.
    Chirp {
        /// Start frequency (Hz).
        from: f64,
        /// End frequency (Hz).
        to: f64,
        /// Sweep duration.
        period: Duration,
    },
}

/// Timestamp markers: the signal is silent for `length` at every multiple of `period` of the
/// capture clock (microseconds since the UNIX epoch), so a receiver that finds the start of a
/// gap knows the capture time of that sample: the multiple of `period` just before it arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Markers {
    /// Interval between markers (default 500 ms).
    pub period: Duration,
    /// Gap length (default 20 ms: long enough to survive Opus at 20 ms frames).
    pub length: Duration,
}

impl Default for Markers {
    fn default() -> Self {
        Markers {
            period: Duration::from_millis(500),
            length: Duration::from_millis(10),
        }
    }
}

/// A tone or chirp generator with optional [`Markers`], producing 16-bit frames on its own
/// capture timeline (`start` + samples generated / rate).
#[derive(Clone, Debug)]
pub struct ToneGenerator {
    format: AudioFormat,
    waveform: Waveform,
    amplitude: f64,
    markers: Option<Markers>,
    start: Timestamp,
    position: u64,
    phase: f64,
}

impl ToneGenerator {
    /// A generator of `waveform` at `amplitude` (0.0 ..= 1.0 of full scale) whose first sample is
    /// captured at `start`.
    pub fn new(
        format: AudioFormat,
        waveform: Waveform,
        amplitude: f64,
        start: Timestamp,
    ) -> Result<Self> {
        let nyquist = f64::from(format.sample_rate) / 2.0;
        let freqs = match waveform {
            Waveform::Tone(f) => [f, f],
            Waveform::Chirp { from, to, period } => {
                if period.is_zero() {
                    return Err(MediaError::InvalidParameter {
                        what: "chirp period",
                        reason: "must be positive".into(),
                    });
                }
                [from, to]
            }
        };
        if freqs
            .iter()
            .any(|f| !(f.is_finite() && *f > 0.0 && *f < nyquist))
        {
            return Err(MediaError::InvalidParameter {
                what: "frequency",
                reason: format!("{freqs:?} Hz must be within 0 < f < {nyquist} Hz"),
            });
        }
        if !(0.0..=1.0).contains(&amplitude) {
            return Err(MediaError::InvalidParameter {
                what: "amplitude",
                reason: format!("{amplitude} not in 0..=1"),
            });
        }
        Ok(ToneGenerator {
            format,
            waveform,
            amplitude,
            markers: None,
            start,
            position: 0,
            phase: 0.0,
        })
    }

    /// Adds timestamp markers.
    pub fn with_markers(mut self, markers: Markers) -> Self {
        self.markers = Some(markers);
        self
    }

    /// The output format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Capture time of the next sample.
    pub fn next_timestamp(&self) -> Timestamp {
        self.timestamp_of(self.position)
    }

    fn timestamp_of(&self, position: u64) -> Timestamp {
        let micros = u128::from(position) * 1_000_000 / u128::from(self.format.sample_rate);
        Timestamp::from_micros(self.start.as_micros() + micros as u64)
    }

    /// Fills all of `frame` with the next samples (every channel the same) and sets its
    /// timestamp to the capture time of its first sample.
    pub fn fill(&mut self, frame: &mut AudioFrameMut) {
        let ch = usize::from(frame.format().channels);
        let rate = f64::from(self.format.sample_rate);
        frame.set_timestamp(self.next_timestamp());
        let scale = self.amplitude * f64::from(i16::MAX);
        let (period_us, length_us) = match self.markers {
            Some(m) => (
                m.period.as_micros().max(1) as u64,
                m.length.as_micros() as u64,
            ),
            None => (1, 0),
        };
        for chunk in frame.samples_mut().chunks_exact_mut(ch) {
            let t = self.position as f64 / rate;
            let freq = match self.waveform {
                Waveform::Tone(f) => f,
                Waveform::Chirp { from, to, period } => {
                    let p = period.as_secs_f64();
                    from + (to - from) * (t % p) / p
                }
            };
            let ts = self.timestamp_of(self.position).as_micros();
            let silent = ts % period_us < length_us;
            let value = if silent {
                0
            } else {
                (scale * self.phase.sin()).round() as i16
            };
            chunk.fill(value);
            self.phase = (self.phase + TAU * freq / rate) % TAU;
            self.position += 1;
        }
    }
}

/// A marker found by a [`MarkerDetector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// Index of the gap's first sample frame in the stream fed to the detector.
    pub position: u64,
    /// Time of that sample as given by the frames' timestamps (receive time on a network path,
    /// capture time on a lossless one).
    pub timestamp: Timestamp,
}

impl Marker {
    /// The capture time the marker stands for: the latest multiple of `period` at or before
    /// this marker's timestamp plus 1 ms (detection may run up to `1 / (6 f)` early on a lossless
    /// path: tones of 170 Hz and up). Valid while the path delay stays below `period` − 1 ms.
    pub fn capture_time(&self, period: Duration) -> Timestamp {
        let p = period.as_micros().max(1) as u64;
        Timestamp::from_micros((self.timestamp.as_micros() + 1_000) / p * p)
    }
}

/// Finds the start of marker gaps in a received tone, lossless or through a lossy codec.
///
/// A sample is *loud* when its magnitude reaches half the tone's amplitude; a marker is reported
/// once no loud sample has arrived for `min_gap`, after some sound. Its position is the sample
/// after the last loud one, so on a lossless path it lands at most `1 / (6 f)` before the true
/// gap start (0.38 ms for a 440 Hz tone). Behind Opus it is shifted by the codec delay (the
/// encoder lookahead), so callers allow for a few ms; the figures are in docs/PERFORMANCE.md,
/// "Marker detection behind Opus".
#[derive(Clone, Debug)]
pub struct MarkerDetector {
    loud: i32,
    min_gap: u64,
    last_loud: Option<(u64, Timestamp)>,
    reported: bool,
    position: u64,
}

impl MarkerDetector {
    /// A detector for a tone of `amplitude` (0..=1 of full scale) at `sample_rate`; a gap must
    /// last `min_gap` to count (use about half the marker length: 10 ms for the default 20 ms).
    pub fn new(sample_rate: u32, amplitude: f64, min_gap: Duration) -> Self {
        MarkerDetector {
            loud: ((amplitude * f64::from(i16::MAX)) * 0.5).max(1.0) as i32,
            min_gap: (min_gap.as_secs_f64() * f64::from(sample_rate)).max(1.0) as u64,
            last_loud: None,
            reported: true,
            position: 0,
        }
    }

    /// Feeds interleaved samples (first channel used) whose first sample has `timestamp`, and
    /// appends markers found to `found`.
    pub fn push(
        &mut self,
        samples: &[i16],
        channels: u16,
        sample_rate: u32,
        timestamp: Timestamp,
        found: &mut Vec<Marker>,
    ) {
        let ch = usize::from(channels.max(1));
        let rate = u64::from(sample_rate.max(1));
        for (i, chunk) in samples.chunks_exact(ch).enumerate() {
            if i32::from(chunk[0]).abs() >= self.loud {
                // The gap, if one follows, starts at the next sample.
                let next = Duration::from_micros((i as u64 + 1) * 1_000_000 / rate);
                self.last_loud = Some((self.position + 1, timestamp + next));
                self.reported = false;
            } else if let Some((position, at)) = self.last_loud
                && !self.reported
                && self.position + 1 - position >= self.min_gap
            {
                found.push(Marker {
                    position,
                    timestamp: at,
                });
                self.reported = true;
            }
            self.position += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavecast_pipeline::VideoLayout;
    use wavecast_pipeline::analysis::{Levels, SpectrumAnalyzer};

    #[test]
    fn pattern_has_bars_box_and_stamp() {
        let p = TestPattern::default();
        for format in [PixelFormat::I420, PixelFormat::Nv12, PixelFormat::Rgba] {
            let mut f = VideoFrameMut::new(VideoLayout::new(format, 640, 360).unwrap());
            let ts = Timestamp::from_micros(1_763_000_000_000_000);
            p.render(&mut f, 10, ts).unwrap();
            let frame = f.freeze();
            assert_eq!(
                stamp::decode_frame(&frame).unwrap(),
                Stamp {
                    frame_number: 10,
                    timestamp: ts
                }
            );
            assert_eq!((frame.sequence(), frame.timestamp()), (10, ts));
            if format != PixelFormat::Rgba {
                let y = frame.plane(0);
                assert_eq!(y.row(100)[10], yuv(BARS_RGB[0])[0], "white bar");
                assert_eq!(y.row(100)[600], 16, "black bar");
                // The box: 60 px square at y=240, its right edge at x=80 for frame 10.
                assert_eq!(y.row(250)[70], 235);
                assert_ne!(y.row(250)[90], 235);
            }
        }
    }

    #[test]
    fn tone_has_the_right_frequency_and_level() {
        let fmt = AudioFormat::MONO_48K;
        let mut g = ToneGenerator::new(fmt, Waveform::Tone(1000.0), 0.5, Timestamp::ZERO).unwrap();
        let mut f = AudioFrameMut::new(fmt, 4096);
        g.fill(&mut f);
        let frame = f.freeze();
        let l = Levels::of(frame.samples());
        assert!((l.rms - 0.3535).abs() < 0.002, "{l:?}");
        let mut s = SpectrumAnalyzer::new(4096, 48_000).unwrap();
        s.push_frame(&frame);
        s.compute();
        assert!((s.dominant_frequency().unwrap().0 - 1000.0).abs() < 2.0);
        assert!(ToneGenerator::new(fmt, Waveform::Tone(30_000.0), 0.5, Timestamp::ZERO).is_err());
    }

    #[test]
    fn chirp_sweeps() {
        let fmt = AudioFormat::MONO_48K;
        let wave = Waveform::Chirp {
            from: 500.0,
            to: 4_500.0,
            period: Duration::from_secs(1),
        };
        let mut g = ToneGenerator::new(fmt, wave, 0.5, Timestamp::ZERO).unwrap();
        let mut dominant = Vec::new();
        for _ in 0..4 {
            let mut f = AudioFrameMut::new(fmt, 12_000);
            g.fill(&mut f);
            let frame = f.freeze();
            let mut s = SpectrumAnalyzer::new(2048, 48_000).unwrap();
            s.push(&frame.samples()[..2048], 1);
            s.compute();
            dominant.push(s.dominant_frequency().unwrap().0);
        }
        // Quarter-second blocks start at 500, 1500, 2500, 3500 Hz (+ ~85 Hz over 2048 samples).
        for (i, f) in dominant.iter().enumerate() {
            let expected = 500.0 + 1000.0 * i as f32 + 85.0;
            assert!((f - expected).abs() < 60.0, "block {i}: {f} vs {expected}");
        }
    }

    #[test]
    fn markers_are_found_at_their_capture_times() {
        let fmt = AudioFormat::STEREO_48K;
        let markers = Markers::default();
        // Start 123.456 ms past a second so the first marker is mid-stream.
        const START_US: u64 = 1_763_000_000_123_456;
        let start = Timestamp::from_micros(START_US);
        let mut g = ToneGenerator::new(fmt, Waveform::Tone(440.0), 0.5, start)
            .unwrap()
            .with_markers(markers);
        let mut det = MarkerDetector::new(48_000, 0.5, Duration::from_millis(10));
        let mut found = Vec::new();
        for _ in 0..200 {
            let mut f = AudioFrameMut::new(fmt, 480);
            g.fill(&mut f);
            let frame = f.freeze();
            det.push(frame.samples(), 2, 48_000, frame.timestamp(), &mut found);
        }
        // 2 s of audio → markers at +376.544 ms, +876.544 ms, ... four of them.
        assert_eq!(found.len(), 4, "{found:?}");
        for m in &found {
            let ideal = m.capture_time(markers.period);
            let error = m.timestamp.saturating_duration_since(ideal);
            assert!(
                error < Duration::from_micros(21),
                "marker {m:?} is {error:?} after {ideal:?}"
            );
            assert_eq!(ideal.as_micros() % 500_000, 0);
        }
    }
}
